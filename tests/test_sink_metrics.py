"""Two store sinks in one exporter (``groundtruth run --sink clickhouse://... --sink ...``): each
sink metric is one family with a series per sink, labelled without the password, so promtool
and a real Prometheus take the scrape."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.ebpf import skip_or_fail_without_ebpf
from testservices.clickhouse import WRITER_PASSWORD, WRITER_USER, fresh_database_name
from testservices.service import free_port

SINK_METRICS = (
    "groundtruth_sink_spool_events",
    "groundtruth_sink_spool_bytes",
    "groundtruth_sink_errors",
    "groundtruth_sink_replayed_events",
    "groundtruth_sink_lag_seconds",
)


@pytest.fixture
def exporter_with_two_store_sinks(ebpf_problems, clickhouse_server):
    """(metrics port, the two sinks' labels) of a running ``groundtruth run``."""
    skip_or_fail_without_ebpf(ebpf_problems)
    databases = [fresh_database_name(), fresh_database_name()]
    port = free_port()
    sinks = [a for db in databases for a in ("--sink", clickhouse_server.url(db))]
    exporter = subprocess.Popen(
        [sys.executable, "-m", "groundtruth.cli", "run", "--listen", f"127.0.0.1:{port}",
         "--host", "two-sinks", "--no-selftest", *sinks],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "metrics on" not in (line := exporter.stderr.readline()):
            assert line and time.monotonic() < deadline, "exporter did not start"
        where = f"{WRITER_USER}@127.0.0.1:{clickhouse_server.tcp_port}"
        yield port, {f"clickhouse://{where}/{db}" for db in databases}
        exporter.send_signal(signal.SIGTERM)
        assert exporter.wait(30) == 0
    finally:
        exporter.kill()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return reply.read().decode()


def test_promtool_accepts_the_scrape_and_each_sink_has_its_series(exporter_with_two_store_sinks):
    port, sinks = exporter_with_two_store_sinks
    text = scrape(port)
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert WRITER_PASSWORD not in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in SINK_METRICS:
        assert text.count(f"# TYPE {name}") == 1, name
        assert {s.labels["sink"] for s in families[name].samples} == sinks, name


def test_prometheus_ingests_every_sink_series(exporter_with_two_store_sinks, prometheus_factory):
    port, sinks = exporter_with_two_store_sinks
    prom = prometheus_factory(
        {
            "scrape_configs": [
                {"job_name": "gt", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            ]
        }
    )
    deadline = time.monotonic() + 60
    while True:
        result = prom.query('groundtruth_sink_spool_events{job="gt"}')["data"]["result"]
        up = prom.query('up{job="gt"}')["data"]["result"]
        if len(result) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [u["value"][1] for u in up] == ["1"]
    assert {r["metric"]["sink"] for r in result} == sinks
    assert {r["value"][1] for r in result} == {"0"}  # both stores are up: nothing spooled
