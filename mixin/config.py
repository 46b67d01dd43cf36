"""The one config of the dashboards and alerts: thresholds, selectors, data sources, ownership.

Defaults live in ``mixin.yaml`` beside this module, with the meaning of every number. A user's
override file is merged on top key by key; a key the defaults do not have, or a value of the
wrong kind, is an error that names the key, so a typo cannot silently leave a default in place.
Both ``dashboards`` and ``alerts`` build from a ``MixinConfig``: nothing is written twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULTS_PATH = Path(__file__).with_name("mixin.yaml")
_DURATION = re.compile(r"^[0-9]+[smhd]$")


class MixinConfigError(ValueError):
    pass


def _merge(base: dict, override: dict, where: str = "") -> dict:
    """``override`` on top of ``base``; keys must exist in ``base`` (except under ``teams``)."""
    merged = dict(base)
    for key, value in override.items():
        path = f"{where}{key}"
        if key not in base and where != "teams.":
            raise MixinConfigError(f"unknown key {path!r} (known: {', '.join(sorted(base))})")
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            merged[key] = _merge(base[key], value, f"{path}.")
        elif key in base and not _same_kind(base[key], value):
            raise MixinConfigError(
                f"{path!r} must be {type(base[key]).__name__}, got {type(value).__name__}"
            )
        else:
            merged[key] = value
    return merged


def _same_kind(default, value) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return type(default) is type(value)
    if isinstance(default, int | float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


@dataclass(frozen=True)
class Team:
    name: str
    containers: tuple[str, ...]
    programs: tuple[str, ...]
    receivers: dict


@dataclass(frozen=True)
class MixinConfig:
    raw: dict

    @property
    def prefix(self) -> str:
        return self.raw["alert_prefix"]

    @property
    def host_label(self) -> str:
        return self.raw["host_label"]

    @property
    def datasources(self) -> dict:
        return self.raw["datasources"]

    @property
    def grafana_url(self) -> str:
        return self.raw["grafana_url"].rstrip("/")

    @property
    def graphapi_url(self) -> str:
        return self.raw["graphapi_url"].rstrip("/")

    def threshold(self, name: str):
        try:
            return self.raw["thresholds"][name]
        except KeyError:
            raise MixinConfigError(f"no threshold named {name!r}") from None

    def selector(self, *matchers: str) -> str:
        """``{job="groundtruth",...}``: the exporter selector plus extra matchers."""
        return "{" + ",".join([self.raw["exporter_selector"], *matchers]) + "}"

    def runbook_url(self, alertname: str) -> str:
        # GitHub's heading anchors are the lower-cased heading text.
        return f"{self.raw['runbook_url']}#{alertname.lower()}"

    @property
    def default_team(self) -> str:
        return self.raw["default_team"]

    @property
    def teams(self) -> list[Team]:
        return [
            Team(
                name=name,
                containers=tuple(spec.get("containers") or ()),
                programs=tuple(spec.get("programs") or ()),
                receivers=dict(spec.get("receivers") or {}),
            )
            for name, spec in sorted(self.raw["teams"].items())
        ]


def _validate(raw: dict) -> None:
    for name, value in raw["thresholds"].items():
        if name.endswith("_for"):
            if not isinstance(value, str) or not _DURATION.match(value):
                raise MixinConfigError(f"thresholds.{name} must be a duration like 5m: {value!r}")
        elif not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise MixinConfigError(f"thresholds.{name} must be a number >= 0: {value!r}")
    for name, spec in raw["teams"].items():
        if not isinstance(spec, dict):
            raise MixinConfigError(f"teams.{name} must be a mapping")
        for kind in ("containers", "programs"):
            for pattern in spec.get(kind) or ():
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise MixinConfigError(
                        f"teams.{name}.{kind}: bad regex {pattern!r}: {e}"
                    ) from e
    if raw["default_team"] not in raw["teams"]:
        raise MixinConfigError(f"default_team {raw['default_team']!r} is not under teams")


def load_config(override: Path | str | None = None) -> MixinConfig:
    """The defaults, with the user's override file (if any) merged on top."""
    raw = yaml.safe_load(DEFAULTS_PATH.read_text())
    if override is not None:
        try:
            user = yaml.safe_load(Path(override).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise MixinConfigError(f"cannot read config override {override}: {e}") from e
        if not isinstance(user, dict):
            raise MixinConfigError(f"{override}: the override must be a YAML mapping")
        raw = _merge(raw, user)
    _validate(raw)
    return MixinConfig(raw)
