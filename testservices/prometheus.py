"""Real Prometheus and Alertmanager servers (Debian's packages) for tests and benchmarks.

``start_prometheus`` / ``start_alertmanager`` run the real binaries on a free loopback port with
a temporary data directory and return once ``/-/ready`` answers; a broken config fails with the
server's own log tail (``ServiceStartError``). The ``prometheus_factory`` and
``alertmanager_factory`` fixtures (tests/fixtures/services.py) start as many as a test needs
and stop them all afterwards.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from testservices.service import ServerProcess, free_port

PROMETHEUS_BIN = "/usr/bin/prometheus"
ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"


def http_get_json(url: str, timeout: float = 10.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


def _is_ready(base_url: str) -> bool:
    with urllib.request.urlopen(f"{base_url}/-/ready", timeout=2) as resp:
        return resp.status == 200


@dataclass
class Prometheus:
    url: str
    workdir: Path
    process: ServerProcess

    def api(self, path: str, **params) -> dict:
        """GET /api/v1/<path>; the JSON reply whatever its status (errors included)."""
        query = urllib.parse.urlencode(params)
        try:
            return http_get_json(f"{self.url}/api/v1/{path}?{query}")
        except urllib.error.HTTPError as e:  # 4xx/5xx carry {"status":"error",...} bodies
            return json.load(e)

    def query(self, expr: str, **params) -> dict:
        return self.api("query", query=expr, **params)

    def stop(self) -> None:
        self.process.stop()


@dataclass
class Alertmanager:
    url: str
    workdir: Path
    process: ServerProcess

    def alerts(self) -> list:
        return http_get_json(f"{self.url}/api/v2/alerts")

    def stop(self) -> None:
        self.process.stop()


def start_prometheus(
    workdir: Path,
    config: dict | None = None,
    rule_files: list[Path] = (),
    timeout: float = 60.0,
) -> Prometheus:
    """Prometheus with ``config`` (a prometheus.yml as a dict) and copies of ``rule_files``.

    Without a config it scrapes itself every second, so ``up`` and its own metrics exist.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = dict(config or {})
    config.setdefault("global", {"scrape_interval": "1s", "evaluation_interval": "1s"})
    config.setdefault(
        "scrape_configs",
        [{"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
    )
    rules_dir = workdir / "rules"
    rules_dir.mkdir(exist_ok=True)
    copied = []
    for path in rule_files:
        dest = rules_dir / Path(path).name
        shutil.copyfile(path, dest)
        copied.append(str(dest))
    if copied:
        config["rule_files"] = copied
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    url = f"http://127.0.0.1:{port}"
    process = ServerProcess(
        "prometheus",
        [
            PROMETHEUS_BIN,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        ready=lambda: _is_ready(url),
        log_path=workdir / "prometheus.log",
        timeout=timeout,
    ).start()
    return Prometheus(url=url, workdir=workdir, process=process)


def start_alertmanager(workdir: Path, config_path: Path, timeout: float = 60.0) -> Alertmanager:
    """Alertmanager with the given config file, clustering off (no gossip port to collide)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = ServerProcess(
        "alertmanager",
        [
            ALERTMANAGER_BIN,
            f"--config.file={config_path}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        ready=lambda: _is_ready(url),
        log_path=workdir / "alertmanager.log",
        timeout=timeout,
    ).start()
    return Alertmanager(url=url, workdir=workdir, process=process)
