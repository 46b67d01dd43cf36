"""The dashboards and rules on live data: the real exporter scraped by a real Prometheus, and
the investigation SQL on the real probes' events in the real store.

Conditions the panels show are provoked here (a container with a memory limit that uses CPU
and memory, execs in it, a failing exit, an OOM kill, an exec storm that overflows a small ring
buffer); then every panel and recording-rule expression must return data, except those listed
with the reason they are empty.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from alerts import build as alerts_build
from alerts.rules import rule_file
from dashboards import sql, verify
from exporter.probes.base import ProbeContext
from exporter.probes.tcp import TcpProbe
from mixin.config import load_config
from schema.events import ConnectionEvent, ProcessEvent
from store.db import open_store
from store.migrations import migrate
from tests.cgroups import cgroup_dirs, docker_scope_v2, docker_v1, fake_container_id, run_in
from tests.fixtures.ebpf import skip_or_fail_without_ebpf
from testservices.exporter import RunningExporter, exporter_config
from testservices.store_helpers import open_test_store

HOST = "test-host"  # the exporter fixture's host name
LOSSY_HOST = "lossy-host"

# Empty here for a reason that is not an incident. Each entry must still match some empty
# expression: once the reason is gone, the test says to remove it.
NOT_HERE: dict[str, str] = {}
# Incident-only series this test provokes, so they must have data.
PROVOKED = (
    "groundtruth_oom_kills_total",
    "groundtruth_events_dropped",
    "container_memory_limit_used",
    "outbound_failed",
)
# In the container: one connection that succeeds (the kernel completes the handshake into the
# listener's backlog) and one refused.
TCP_CLIENT = """\
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1]))).close()
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[2])))
except ConnectionRefusedError:
    pass
"""


def provoke_container_activity():
    """A fake Docker container (v1 memory + cpuacct cgroups with a 128 MiB limit, and its v2
    scope) that uses CPU and memory, runs a failing command, makes one good and one refused
    connection, and has a process OOM-killed.

    Returns (container id, {role: pid}, stop): one process keeps running in the container
    until ``stop()``."""
    cid = fake_container_id()
    mem, cpu, scope = docker_v1("memory", cid), docker_v1("cpuacct", cid), docker_scope_v2(cid)
    dirs = cgroup_dirs(mem, cpu, scope)
    dirs.__enter__()
    cgroups = [mem, cpu, scope]
    (mem / "memory.limit_in_bytes").write_text(str(128 << 20))
    busy = (
        "import time\nx = b'a' * (32 << 20)\nt = time.process_time()\n"
        "while time.process_time() - t < 0.3: pass\nprint('ok', flush=True)\ntime.sleep(120)"
    )
    resident = run_in(cgroups, [sys.executable, "-c", busy], stdout=subprocess.PIPE, text=True)
    assert resident.stdout.readline() == "ok\n"
    failing = run_in(cgroups, ["/bin/sh", "-c", "exit 3"])
    assert failing.wait() == 3
    with socket.create_server(("127.0.0.1", 0)) as listener:
        with socket.create_server(("127.0.0.1", 0)) as closed:
            refused_port = closed.getsockname()[1]
        port = listener.getsockname()[1]
        client = run_in(cgroups, [sys.executable, "-c", TCP_CLIENT, str(port), str(refused_port)])
        assert client.wait() == 0
    hog = run_in(cgroups, [sys.executable, "-c", "x = b'a' * (512 << 20)"])
    assert hog.wait() == -9  # the OOM killer

    def stop():
        resident.kill()
        resident.wait()
        dirs.__exit__(None, None, None)

    pids = {"resident": resident.pid, "failing": failing.pid, "client": client.pid, "hog": hog.pid}
    return cid, pids, stop


@pytest.fixture
def lossy_exporter(ebpf_problems, chdb_database, tmp_path):
    """A second exporter whose ring buffer holds one event and is drained once a second: an
    exec storm overflows it, so the drop counters have data. (Its events are incomplete, so
    the attribution checks use the other exporter.) It writes to a real store (chDB), so the
    store sink's metrics have data too."""
    skip_or_fail_without_ebpf(ebpf_problems)
    config = exporter_config(
        host=LOSSY_HOST, ringbuf_pages=1, drain_interval_seconds=1.0, selftest=False
    )
    data_dir, database = chdb_database
    store = open_store(None, data_dir=data_dir, database=database)
    migrate(store)
    exp = RunningExporter(config, store=store, spool_dir=tmp_path / "spool").start()
    yield exp
    exp.stop()


@pytest.fixture
def scraped(running_exporter, lossy_exporter, prometheus_factory):
    """Prometheus scraping both exporters, instance set to each one's host name as the mixin
    expects, with the generated rules."""
    targets = [(running_exporter, HOST), (lossy_exporter, LOSSY_HOST)]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "groundtruth",
                "static_configs": [
                    {"targets": [exp.config.listen], "labels": {"instance": host}}
                    for exp, host in targets
                ],
            }
        ],
    }
    rules = alerts_build.GENERATED_DIR / alerts_build.RULES
    return prometheus_factory(config, [rules])


def test_every_panel_and_recording_rule_returns_live_data(scraped):
    cid, _, stop = provoke_container_activity()
    subprocess.run(["/bin/sh", "-c", "for i in $(seq 300); do /bin/true; done"], check=True)
    try:
        cfg = load_config()
        expressions = verify.all_expressions(cfg, rule_file(cfg))
        expected_empty = {**verify.INCIDENT_ONLY, **NOT_HERE}
        # Rates need two scrapes after the provoked events: poll until it settles.
        deadline = time.monotonic() + 60
        while True:
            missing, explained = verify.expressions_without_data(
                scraped.url, expressions, expected_empty
            )
            provoked_but_empty = [
                e.where for e, _ in explained if any(p in e.promql for p in PROVOKED)
            ]
            if not (missing or provoked_but_empty) or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        stop()
    assert [f"{e.where}: {e.promql}" for e in missing] == []
    assert provoked_but_empty == []
    reasons = {reason for _, reason in explained}
    for marker, reason in NOT_HERE.items():
        assert reason in reasons, f"{marker!r} has data now: remove it from NOT_HERE"
    assert verify.evaluation_errors(scraped.url, expressions) == []
    # And the OOM kill fired its alert, for this container on this host.
    # Other OOM kills on this machine (the exporter sees the whole host) may fire too; an
    # empty container label (outside any container) is absent from the series.
    deadline = time.monotonic() + 30
    while True:
        firing = scraped.query('ALERTS{alertname="GroundtruthOomKill",alertstate="firing"}')
        hosts_containers = [(r["metric"]["instance"], r["metric"].get("container", ""))
                            for r in firing["data"]["result"]]  # fmt: skip
        if (HOST, cid[:12]) in hosts_containers or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (HOST, cid[:12]) in hosts_containers


def test_event_tables_show_the_provoked_processes(running_exporter, chdb_database):
    """The investigation dashboard's SQL on the real exporter's events, in the real store."""
    window = (time.time_ns() // 10**6 - 60_000, time.time_ns() // 10**6 + 600_000)
    cid, pids, stop = provoke_container_activity()
    try:
        # Every process the queries below must list, with the events they read.
        for role, kinds in (
            ("failing", ("exec", "exit")),
            ("client", ("exec",)),
            ("hog", ("exec", "exit", "oom_kill")),
        ):
            running_exporter.events_of(pids[role], kinds)
    finally:
        stop()
    running_exporter.events_of(pids["resident"], ("exec", "exit"))
    store = open_test_store("chdb", None, chdb_database)
    try:
        migrate(store)
        store.insert_events(
            [e for e in running_exporter.sink.snapshot() if isinstance(e, ProcessEvent)]
        )
        # As the dashboard asks: host and the container label's value (the short id).
        variables = {"instance": HOST, "container": cid[:12]}

        def rows(name: str, columns: str) -> set:
            query = sql.expand(sql.QUERIES[name][1], *window, variables)
            return set(store.query(f"SELECT {columns} FROM ({query})"))

        assert {pid for (pid,) in rows("process_execs", "pid")} == set(pids.values())
        assert rows("process_failures", "pid, kind, outcome") == {
            (pids["failing"], "exit", "error"),
            (pids["hog"], "exit", "oom"),
            (pids["hog"], "oom_kill", ""),
            (pids["resident"], "exit", "signal"),  # stop() killed it
        }
    finally:
        store.close()


def test_connection_table_shows_real_connections(ebpf_problems, chdb_database):
    """The investigation dashboard's connection SQL on the TCP probe's events, in the store:
    one connection that moved 100 bytes and one that was refused, from a client process."""
    skip_or_fail_without_ebpf(ebpf_problems)
    probe = TcpProbe(ProbeContext(host=HOST))
    probe.load()
    window = (time.time_ns() // 10**6 - 60_000, time.time_ns() // 10**6 + 600_000)
    listener = socket.create_server(("127.0.0.1", 0))
    closed = socket.create_server(("127.0.0.1", 0))
    port, refused_port = listener.getsockname()[1], closed.getsockname()[1]
    closed.close()
    client_code = (
        "import socket, sys\n"
        f"s = socket.create_connection(('127.0.0.1', {port})); s.sendall(b'x' * 100); s.close()\n"
        f"try: socket.create_connection(('127.0.0.1', {refused_port}))\n"
        "except ConnectionRefusedError: pass\n"
    )
    events = []
    try:
        client = subprocess.Popen([sys.executable, "-c", client_code])
        conn, _ = listener.accept()
        while conn.recv(4096):
            pass
        conn.close()
        assert client.wait() == 0
        deadline = time.monotonic() + 30  # generous: only turns a hang into a failure
        while time.monotonic() < deadline:
            events += [e for e in probe.drain() if isinstance(e, ConnectionEvent)]
            kinds = {(e.kind, e.direction) for e in events if port in (e.local_port, e.remote_port)}
            if {("close", "outbound"), ("close", "inbound")} <= kinds and any(
                e.kind == "connect_failed" and e.pid == client.pid for e in events
            ):
                break
            time.sleep(0.05)
    finally:
        listener.close()
        probe.close()
    store = open_test_store("chdb", None, chdb_database)
    try:
        migrate(store)
        store.insert_events(events)
        query = sql.expand(sql.CONNECTIONS, *window, {"instance": HOST, "container": "__all__"})
        rows = set(
            store.query(
                "SELECT kind, direction, outcome, pid, bytes_sent, bytes_received "
                f"FROM ({query}) WHERE remote IN ('127.0.0.1:{port}', '127.0.0.1:{refused_port}') "
                "AND kind IN ('close', 'connect_failed')"
            )
        )
    finally:
        store.close()
    seen = [(e.kind, e.direction, e.pid, e.local_port, e.remote_port, e.host) for e in events]
    assert rows == {
        ("close", "outbound", "ok", client.pid, 100, 0),
        ("connect_failed", "outbound", "refused", client.pid, 0, 0),
    }, f"ports {port}, {refused_port}; client {client.pid}; events: {seen}"
