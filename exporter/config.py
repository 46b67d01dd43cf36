"""Exporter configuration: defaults, then a YAML file, then GROUNDTRUTH_* variables, then flags."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, fields

import yaml


class ConfigError(ValueError):
    pass


@dataclass
class ExporterConfig:
    listen: str = "127.0.0.1:9435"  # metrics endpoint, host:port
    host: str = field(default_factory=socket.gethostname)  # names this host in every event
    # Where raw events go: "jsonl:-" (stdout), "jsonl:PATH", "clickhouse://...", "chdb:DIR".
    sinks: list[str] = field(default_factory=list)
    container_label_cap: int = 200
    program_label_cap: int = 200
    # The ring buffers are looked at every drain_interval_seconds and drained when one is
    # drain_fill_fraction full or drain_max_delay_seconds have passed since the last drain
    # (exporter.runner.Exporter.poll says why).
    drain_interval_seconds: float = 0.05
    drain_fill_fraction: float = 0.0625
    drain_max_delay_seconds: float = 0.25
    ringbuf_pages: int = 1024
    selftest: bool = True
    tcp: bool = True  # the TCP connection probe
    flags: bool = True  # the flag detector (exporter/flags/)
    flag_rules: str = ""  # the rules file; '' is mixin/flag_rules.yaml
    policies: str = ""  # a directory of baseline policies (docs/baselines.md); '' for none
    # YAML merged over mixin/mixin.yaml, as `alerts build --config` takes it: the detector's
    # flag_* thresholds; '' for the shipped numbers.
    mixin_config: str = ""
    netns: str = ""  # record only this network namespace (exporter/netns.py); '' for all

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
