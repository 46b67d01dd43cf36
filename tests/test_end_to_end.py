"""End to end with real binaries and no Docker: an exec storm becomes a stored alert and a graph.

The compose stack's own Prometheus config (groundtruth.compose), the generated rules and the
compose Alertmanager config run as real processes, with their addresses rewritten to loopback
ports and the exec-storm threshold set low. The real exporter (real eBPF probes) writes its
events to a real ClickHouse server through the store writer and serves /metrics; graphapi runs
as the real ``groundtruth graphapi`` process on the same store with a bearer token.

A child process then execs /bin/true in a loop. The test asserts that the alert fires in
Prometheus, that Alertmanager delivers it to graphapi's webhook (it is stored), and that the
causal graph centred on that alert contains the process that caused the storm and its children.
The time from the first exec to the stored alert is printed and recorded as a property.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests
import yaml

from alerts import build as alerts_build
from alerts.alertmanager import GRAPHAPI_RECEIVER, alertmanager_config
from exporter.sinks import FanoutSink
from graphapi.nodegraph_fields import ALERT as ALERT_NODE
from groundtruth import compose
from groundtruth.mixin import load_config
from store.db import open_store
from store.writer import StoreWriter
from tests.fixtures.ebpf import skip_or_fail_without_ebpf
from tests.fixtures.exporter import RunningExporter, exporter_config
from tests.fixtures.service import ServerProcess, free_port

pytestmark = pytest.mark.ebpf

HOST = "e2e-host"
STORM_PER_SECOND = 5  # the test's threshold; the storm below runs far above it
ALERT = "GroundtruthExecStorm"
TOKEN = "e2e-token-0123456789abcdef"
STORED_ALERTS = "SELECT fingerprint, host, status FROM received_alerts WHERE alertname = {a:String}"
# Exec /bin/true until killed: the parent stays alive, so the graph has it and its children.
STORM = "import subprocess\nwhile True:\n    subprocess.run(['/bin/true'])\n"


def poll(what: str, fn, timeout: float, explain=lambda: ""):
    """fn()'s first truthy result, polling; fails naming what never happened (and why)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = fn()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {timeout}s. {explain()}")


def loopback(config: dict, replace: dict[str, str]):
    """The config with every compose address (host:port) replaced by its loopback one."""
    text = json.dumps(config)
    for compose_address, local in replace.items():
        text = text.replace(compose_address, local)
    return json.loads(text)


@pytest.fixture
def graphapi(tmp_path, clickhouse_url):
    """The real ``groundtruth graphapi`` on the test's ClickHouse database, with a token."""
    token_file = tmp_path / "graphapi.token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "groundtruth.cli", "graphapi", "--listen", f"127.0.0.1:{port}"]
    argv += ["--store", clickhouse_url, "--token-file", str(token_file)]
    process = ServerProcess(
        "graphapi",
        argv,
        ready=lambda: requests.get(f"{url}/api/health", timeout=2).ok,
        log_path=tmp_path / "graphapi.log",
    ).start()
    yield url, token_file
    process.stop()


@pytest.fixture
def exporter_to_store(ebpf_problems, tmp_path, clickhouse_url, graphapi):
    """The real exporter, its events going to the store (graphapi migrated it already)."""
    skip_or_fail_without_ebpf(ebpf_problems)
    running = RunningExporter(exporter_config(host=HOST, program_label_cap=1000))
    writer = StoreWriter(open_store(clickhouse_url), tmp_path / "spool", running.exporter.stats)
    running.exporter.sink = FanoutSink([running.sink, writer])
    running.start()
    yield running
    running.stop()


def test_exec_storm_alert_reaches_graphapi_and_its_graph(
    tmp_path,
    graphapi,
    exporter_to_store,
    clickhouse_url,
    prometheus_factory,
    alertmanager_factory,
    record_property,
):
    graphapi_url, token_file = graphapi
    override = tmp_path / "site.yaml"
    override.write_text(
        yaml.safe_dump(
            {"thresholds": {"exec_storm_per_second": STORM_PER_SECOND, "exec_storm_for": "0s"}}
        )
    )
    cfg = load_config(override)
    rules = tmp_path / alerts_build.RULES
    rules.write_text(alerts_build.render(cfg, with_tests=False)[alerts_build.RULES])

    # Alertmanager: the compose config, graphapi and its token file at their loopback places.
    am_config = loopback(
        alertmanager_config(compose.compose_mixin(cfg)),
        {compose.GRAPHAPI.url: graphapi_url, compose.GRAPHAPI_TOKEN_FILE: str(token_file)},
    )
    # Deployed: 30s before a host's first notification and 5m before the next one (an alert
    # joining a host's group that already notified, e.g. for an OOM kill elsewhere on this
    # machine, waits that long). Both only add waiting, so the test shortens them.
    am_config["route"].update(group_wait="1s", group_interval="1s")
    am_path = tmp_path / "alertmanager.yml"
    am_path.write_text(yaml.safe_dump(am_config))
    am = alertmanager_factory(am_path)

    # Prometheus: the compose config, its file target pointing at the exporter's port.
    targets = tmp_path / "targets.json"
    exporter_address = exporter_to_store.config.listen
    targets.write_text(
        json.dumps([{"targets": [exporter_address], "labels": {cfg.host_label: HOST}}])
    )
    prom_config = loopback(
        compose.prometheus_config(cfg),
        {
            compose.ALERTMANAGER.hostport: am.url.removeprefix("http://"),
            compose.EXPORTER_TARGETS: str(targets),
        },
    )
    prom_config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    prom_config.pop("rule_files")  # the fixture installs the rule file itself
    prom = prometheus_factory(prom_config, [rules])
    poll(
        "a scrape of the exporter",
        lambda: prom.query(f'up{{job="groundtruth",{cfg.host_label}="{HOST}"}} == 1')["data"][
            "result"
        ],
        timeout=30,
    )

    storm = subprocess.Popen([sys.executable, "-c", STORM])
    provoked = time.monotonic()
    provoked_ns = time.time_ns()
    try:
        fired = poll(
            f"{ALERT} firing in Prometheus",
            lambda: prom.query(f'ALERTS{{alertname="{ALERT}",alertstate="firing"}}')["data"][
                "result"
            ],
            timeout=60,
        )
        fired_after = time.monotonic() - provoked
        store = open_store(clickhouse_url)
        stored = poll(
            f"{ALERT} stored by graphapi's webhook",
            lambda: store.query(STORED_ALERTS, {"a": ALERT}),
            timeout=60,
            explain=lambda: (
                f"Alertmanager has {am.alerts()}; Prometheus sent "
                f"{prom.query('prometheus_notifications_sent_total')['data']['result']}"
            ),
        )
        delivered_after = time.monotonic() - provoked
    finally:
        storm.kill()
        storm.wait()

    record_property("exec_storm_fired_seconds", round(fired_after, 2))
    record_property("exec_storm_delivered_seconds", round(delivered_after, 2))
    print(
        f"exec storm -> firing in {fired_after:.1f}s, stored by graphapi in {delivered_after:.1f}s"
    )

    assert fired[0]["metric"][cfg.host_label] == HOST
    fingerprint, host, status = stored[0]
    assert (host, status) == (HOST, "firing")
    (am_alert,) = [a for a in am.alerts() if a["labels"]["alertname"] == ALERT]
    assert am_alert["fingerprint"] == fingerprint
    assert GRAPHAPI_RECEIVER in [r["name"] for r in am_alert["receivers"]]

    # The graph of the alert's window and host: the storm's parent and the /bin/true it ran.
    window = {"from": provoked_ns // 10**6 - 60_000, "to": time.time_ns() // 10**6 + 1000}
    params = {**window, "focus": f"alert={fingerprint}", "host": HOST}
    assert requests.get(f"{graphapi_url}/api/graph", params=params, timeout=30).status_code == 401
    reply = requests.get(
        f"{graphapi_url}/api/graph",
        params=params,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    graph = reply.json()
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes[f"{ALERT_NODE}{fingerprint}"]["highlighted"] is True
    (storm_node,) = [i for i in nodes if i.startswith(f"{HOST}:{storm.pid}:")]
    children = [e["target"] for e in graph["edges"] if e["source"] == storm_node]
    programs = {nodes[c]["title"].rsplit("/", 1)[-1] for c in children if c in nodes}
    assert "true" in programs, f"the storm's children in the graph: {programs}"
