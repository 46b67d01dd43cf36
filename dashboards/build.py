"""Render every dashboard to Grafana JSON, for provisioning and for review."""

from __future__ import annotations

import json
from pathlib import Path

from grafanalib._gen import DashboardEncoder

from dashboards import containers, exporter_health, host, investigation
from dashboards.current_form import current_form
from mixin.config import MixinConfig

GENERATED_DIR = Path(__file__).with_name("generated")

# File stem -> builder. The stems are the provisioned file names.
DASHBOARDS = {
    "host": host.build,
    "containers": containers.build,
    "investigation": investigation.build,
    "exporter-health": exporter_health.build,
}


def to_json(dashboard) -> dict:
    """The dashboard as plain JSON data (every grafanalib object resolved), in the form current
    Grafana reads as it is (``dashboards.current_form``)."""
    return current_form(json.loads(json.dumps(dashboard.to_json_data(), cls=DashboardEncoder)))


def render(cfg: MixinConfig) -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        f"{name}.json": json.dumps(to_json(build(cfg)), sort_keys=True, indent=2) + "\n"
        for name, build in DASHBOARDS.items()
    }


def write(cfg: MixinConfig, out_dir: Path = GENERATED_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render(cfg).items():
        path = out_dir / name
        path.write_text(text)
        written.append(path)
    return written
