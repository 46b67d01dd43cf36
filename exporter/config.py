"""Exporter configuration: defaults, then a YAML file, then GROUNDTRUTH_* variables, then flags."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, fields

import yaml


class ConfigError(ValueError):
    pass


def setting(default, doc: str, factory=None):
    """A setting with its meaning (the README's settings table is made from these)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass
class ExporterConfig:
    listen: str = setting("127.0.0.1:9435", "Metrics endpoint, HOST:PORT.")
    host: str = setting(None, "Names this host in every event.", socket.gethostname)
    sinks: list[str] = setting(
        None,
        "Where raw events go: jsonl:- (stdout), jsonl:PATH, clickhouse://..., chdb:DIR.",
        list,
    )
    container_label_cap: int = setting(200, "Distinct container labels in metrics.")
    program_label_cap: int = setting(200, "Distinct program labels in metrics.")
    # (Exporter.poll says why the drain waits for a batch.)
    drain_interval_seconds: float = setting(0.05, "How often the ring buffers are looked at.")
    drain_fill_fraction: float = setting(
        0.0625, "A ring buffer this full is drained at the next look (above 0, at most 1)."
    )
    drain_max_delay_seconds: float = setting(
        0.25,
        "Else they are drained this long after the last drain, so a lone event waits about "
        "this at most (0: drain at every look).",
    )
    ringbuf_pages: int = setting(1024, "Pages (4 KiB) of each probe's ring buffer, a power of 2.")
    selftest: bool = setting(True, "Self-test the probes at start-up with a canary process.")
    tcp: bool = setting(True, "Load the TCP connection probe.")
    flags: bool = setting(True, "Run the flag detector (docs/flags.md).")
    flag_rules: str = setting("", "The flag rules file; '' for mixin/flag_rules.yaml.")
    policies: str = setting(
        "", "A directory of baseline policies (docs/baselines.md); '' for none."
    )
    mixin_config: str = setting(
        "",
        "YAML merged over mixin/mixin.yaml, as `alerts build --config` takes it: the flag "
        "detector's flag_* thresholds; '' for the shipped numbers.",
    )
    netns: str = setting(
        "", "Record only this network namespace (a path, e.g. /run/netns/NAME); '' for all."
    )

    def netns_inode(self) -> int:
        """The inode of the --netns namespace, 0 for none; ConfigError when it is not one."""
        if not self.netns:
            return 0
        from exporter.netns import NetnsError, netns_inode

        try:
            return netns_inode(self.netns)
        except NetnsError as e:
            raise ConfigError(str(e)) from e

    def listen_address(self) -> tuple[str, int]:
        addr, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"listen address {self.listen!r} is not HOST:PORT")
        return addr.strip("[]") or "0.0.0.0", int(port)

    def validate(self) -> None:
        self.listen_address()
        self.netns_inode()
        for name in ("container_label_cap", "program_label_cap", "ringbuf_pages"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.ringbuf_pages & (self.ringbuf_pages - 1):
            raise ConfigError(f"ringbuf_pages must be a power of two, not {self.ringbuf_pages}")
        if not 0.001 <= self.drain_interval_seconds <= 5:
            raise ConfigError("drain_interval_seconds must be between 0.001 and 5")
        if not 0 < self.drain_fill_fraction <= 1:
            raise ConfigError("drain_fill_fraction must be above 0 and at most 1")
        if not 0 <= self.drain_max_delay_seconds <= 5:
            raise ConfigError("drain_max_delay_seconds must be between 0 and 5")
        if self.flags:
            from exporter.flags.setup import flag_detector

            flag_detector(self)  # a bad rules file: ConfigError with its file and line
        elif self.policies:
            raise ConfigError("--policies needs the flag detector (drop --no-flags)")
        for sink in self.sinks:
            if not sink.startswith(("jsonl:", "clickhouse://", "chdb:")):
                # Only the scheme: the rest may be a URL with a password.
                raise ConfigError(
                    f"unknown sink {sink.partition(':')[0]!r}: use jsonl:PATH, jsonl:-, "
                    "clickhouse://... or chdb:DIR"
                )


def _coerce(name: str, current, value):
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("1", "true", "yes", "on")
    if isinstance(current, list):
        return value if isinstance(value, list) else [v for v in str(value).split(",") if v]
    try:
        return type(current)(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}: {value!r} is not a valid {type(current).__name__}") from e


def load_config(path: str | None = None, env=None, overrides: dict | None = None):
    """Build the config from its layers; unknown keys and bad values raise ConfigError."""
    config = ExporterConfig()
    names = {f.name for f in fields(ExporterConfig)}
    layers = []
    if path:
        try:
            with open(path) as f:
                data = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read config file {path}: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping")
        layers.append(("config file", data))
    env = os.environ if env is None else env
    layers.append(
        (
            "environment",
            {
                k[len("GROUNDTRUTH_") :].lower(): v
                for k, v in env.items()
                if k.startswith("GROUNDTRUTH_") and k[len("GROUNDTRUTH_") :].lower() in names
            },
        )
    )
    layers.append(("flags", {k: v for k, v in (overrides or {}).items() if v is not None}))
    for where, data in layers:
        for key, value in data.items():
            if key not in names:
                raise ConfigError(f"unknown setting {key!r} in {where}")
            setattr(config, key, _coerce(key, getattr(config, key), value))
    config.validate()
    return config
