"""The alerting path as deployed, on loopback, with real binaries: for the end-to-end test and
its benchmark.

``AlertStack`` runs the compose stack's own Prometheus config (groundtruth.compose), the
generated rules and the compose Alertmanager config as real processes, their compose addresses
rewritten to loopback ports; the real exporter (real eBPF probes) writing to the store through
its store sink (what ``--sink clickhouse://...`` opens); and the real ``groundtruth graphapi``
process on the same store, with a token.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from alerts import build as alerts_build
from alerts.alertmanager import alertmanager_config
from exporter.sinks import FanoutSink
from groundtruth import compose
from mixin.config import load_config
from store.db import open_store
from store.sink import open_sink
from testservices.exporter import RunningExporter, exporter_config
from testservices.prometheus import start_alertmanager, start_prometheus
from testservices.service import ServerProcess, free_port

ALERT = "GroundtruthExecStorm"
TOKEN = "e2e-token-0123456789abcdef"
STORED_ALERTS = "SELECT fingerprint, host, status FROM received_alerts WHERE alertname = {a:String}"
STORED_CHILD_EXECS = (
    "SELECT count() FROM process_events WHERE kind = 'exec' AND host = {h:String} "
    "AND ppid = {p:UInt32} AND filename = '/bin/true'"
)
# Exec /bin/true until killed: the parent stays alive, so the graph has it and its children.
STORM = "import subprocess\nwhile True:\n    subprocess.run(['/bin/true'])\n"


class NeverHappened(AssertionError):
    pass


def poll(what: str, fn, timeout: float, explain=lambda: ""):
    """fn()'s first truthy result, polling; raises naming what never happened (and why)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = fn()
        if result:
            return result
        time.sleep(0.2)
    raise NeverHappened(f"{what} did not happen within {timeout}s. {explain()}")


def loopback(config: dict, replace: dict[str, str]) -> dict:
    """The config with every compose address replaced by its loopback one."""
    text = json.dumps(config)
    for compose_address, local in replace.items():
        text = text.replace(compose_address, local)
    return json.loads(text)


@dataclass
class Timings:
    """Prometheus' and Alertmanager's waits. ``deployed()`` is what the compose stack uses."""

    scrape_interval: str = "1s"
    evaluation_interval: str = "1s"
    group_wait: str = "1s"
    # An alert joining a host's group that has already notified (say, for an OOM kill elsewhere
    # on this machine) waits this long: deployed, 5m.
    group_interval: str = "1s"

    @classmethod
    def deployed(cls) -> Timings:
        prometheus = compose.prometheus_config(load_config())["global"]
        route = alertmanager_config(load_config())["route"]
        return cls(
            prometheus["scrape_interval"],
            prometheus["evaluation_interval"],
            route["group_wait"],
            route["group_interval"],
        )


@dataclass
class AlertStack:
    workdir: Path
    store_url: str
    host: str = "e2e-host"
    storm_per_second: float = 5  # the exec-storm threshold; the storm runs far above it
    timings: Timings = field(default_factory=Timings)
    # Where the default team's alerts go, by severity (critical, warning): a WebhookReceiver's
    # url; none for a severity not given.
    team_webhooks: dict[str, str] = field(default_factory=dict)
    # ExporterConfig fields the exporter is started with (e.g. policies, tcp).
    exporter_options: dict = field(default_factory=dict)

    def start(self) -> AlertStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._stoppers = []
        try:
            self.cfg = self._config()
            self._start_graphapi()
            self._start_exporter()
            self._start_alertmanager()
            self._start_prometheus()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for stop in reversed(self._stoppers):
            stop()
        self._stoppers.clear()

    def _config(self):
        override = self.workdir / "site.yaml"
        thresholds = {"exec_storm_per_second": self.storm_per_second, "exec_storm_for": "0s"}
        site: dict = {"thresholds": thresholds}
        if self.team_webhooks:
            team = load_config().default_team
            site["teams"] = {team: {"receivers": dict(self.team_webhooks)}}
        override.write_text(yaml.safe_dump(site))
        return load_config(override)

    def _start_graphapi(self) -> None:
        self.token_file = self.workdir / "graphapi.token"
        self.token_file.write_text(TOKEN + "\n")
        port = free_port()
        self.graphapi_hostport = f"127.0.0.1:{port}"
        self.graphapi_url = f"http://{self.graphapi_hostport}"
        argv = [sys.executable, "-m", "groundtruth.cli", "graphapi"]
        argv += ["--listen", f"127.0.0.1:{port}", "--store-url", self.store_url]
        argv += ["--token-file", str(self.token_file)]
        process = ServerProcess(
            "graphapi",
            argv,
            ready=lambda: requests.get(f"{self.graphapi_url}/api/health", timeout=2).ok,
            log_path=self.workdir / "graphapi.log",
        ).start()
        self._stoppers.append(process.stop)

    def _start_exporter(self) -> None:
        """The exporter, its events going to the store (graphapi has migrated it)."""
        self.exporter = RunningExporter(
            exporter_config(host=self.host, program_label_cap=1000, **self.exporter_options)
        )
        stats = self.exporter.exporter.stats
        writer = open_sink(self.store_url, stats, spool_dir=self.workdir / "spool")
        self.exporter.exporter.sink = FanoutSink([self.exporter.sink, writer])
        self.exporter.start()
        self._stoppers.append(self.exporter.stop)

    def _start_alertmanager(self) -> None:
        config = loopback(
            alertmanager_config(compose.compose_mixin(self.cfg)),
            {
                compose.GRAPHAPI.url: self.graphapi_url,
                compose.GRAPHAPI_TOKEN_FILE: str(self.token_file),
            },
        )
        config["route"].update(
            group_wait=self.timings.group_wait, group_interval=self.timings.group_interval
        )
        path = self.workdir / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config))
        self.alertmanager = start_alertmanager(self.workdir / "alertmanager", path)
        self._stoppers.append(self.alertmanager.stop)

    def _start_prometheus(self) -> None:
        rules = self.workdir / alerts_build.RULES
        rules.write_text(alerts_build.render(self.cfg, with_tests=False)[alerts_build.RULES])
        targets = self.workdir / "targets.json"
        labels = {self.cfg.host_label: self.host}
        targets.write_text(
            json.dumps([{"targets": [self.exporter.config.listen], "labels": labels}])
        )
        config = loopback(
            compose.prometheus_config(self.cfg),
            {
                compose.ALERTMANAGER.hostport: self.alertmanager.url.removeprefix("http://"),
                compose.EXPORTER_TARGETS: str(targets),
                # graphapi's trace scores, scraped with its token as in the compose stack
                compose.GRAPHAPI.hostport: self.graphapi_hostport,
                compose.PROMETHEUS_GRAPHAPI_TOKEN: str(self.token_file),
            },
        )
        config["global"] = {
            "scrape_interval": self.timings.scrape_interval,
            "evaluation_interval": self.timings.evaluation_interval,
        }
        config.pop("rule_files")  # start_prometheus installs the rule file itself
        self.prometheus = start_prometheus(self.workdir / "prometheus", config, [rules])
        self._stoppers.append(self.prometheus.stop)
        up = f'up{{job="groundtruth",{self.cfg.host_label}="{self.host}"}} == 1'
        poll("a scrape of the exporter", lambda: self._result(up), timeout=60)

    def _result(self, expr: str) -> list:
        return self.prometheus.query(expr)["data"]["result"]

    # --- what a test or benchmark does with it -----------------------------------------------

    def storm(self) -> subprocess.Popen:
        """Starts the exec storm; the caller kills it."""
        return subprocess.Popen([sys.executable, "-c", STORM])

    def wait_fired(self, timeout: float) -> list:
        firing = f'ALERTS{{alertname="{ALERT}",alertstate="firing"}}'
        return poll(f"{ALERT} firing in Prometheus", lambda: self._result(firing), timeout)

    def wait_stored(self, timeout: float) -> list[tuple]:
        """The (fingerprint, host, status) graphapi's webhook stored for the alert."""
        return self._poll_store(
            f"{ALERT} stored by graphapi's webhook",
            STORED_ALERTS,
            {"a": ALERT},
            timeout,
            explain=lambda: (
                f"Alertmanager has {self.alertmanager.alerts()}; Prometheus sent "
                f"{self._result('prometheus_notifications_sent_total')}"
            ),
        )

    def wait_children_stored(self, storm_pid: int, timeout: float) -> int:
        """How many /bin/true execs of the storm the exporter has stored (at least one).

        The alert can be stored before the storm's own events: they travel separately, through
        the exporter's writer, which batches.
        """
        ((count,),) = self._poll_store(
            f"execs of /bin/true by pid {storm_pid} in the store",
            STORED_CHILD_EXECS,
            {"h": self.host, "p": storm_pid},
            timeout,
            accept=lambda rows: rows[0][0] > 0,
        )
        return count

    def _poll_store(self, what, sql, params, timeout, explain=lambda: "", accept=bool):
        store = open_store(self.store_url)
        try:

            def rows():
                found = store.query(sql, params)
                return found if accept(found) else None

            return poll(what, rows, timeout, explain)
        finally:
            store.backend.close()

    def graph(self, token: str | None = TOKEN, **params) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(
            f"{self.graphapi_url}/api/graph", params=params, headers=headers, timeout=60
        )
