"""incident: timeline, ancestry and postmortem latency over 1,000,000 process and 1,000,000
connection events (one hour, 20 hosts; graphapi's benchmark data) on a real ClickHouse 18.16
server, against the raw time of the same SQL statements replayed on the same server."""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from datetime import UTC
from pathlib import Path

from bench.bench_graphapi import (
    HOSTS,
    PROCESS_EVENTS,
    connection_columns,
    daemon_columns,
    key,
    percentile,
    process_columns,
    timed,
)
from bench.result import Result
from groundtruth.cli import main
from incident import ancestry as A
from incident.render import write_jsonl
from incident.store_access import Reader
from incident.timeline import TimelineRequest, build_timeline
from incident.times import Window
from store.db import open_store
from store.migrations import migrate
from store.received_alerts import from_webhook
from testservices.clickhouse import ClickHouseServer, fresh_database_name

RUNS = 15
S = 10**9
HOST = "host-03"


def measure(store, action) -> tuple[list[float], list[float]]:
    """(seconds of the action, seconds of its recorded statements replayed) over RUNS runs."""
    took, raw = [], []
    for _ in range(RUNS):
        log: list = []
        took.append(timed(lambda log=log: action(Reader(store, log))))
        raw.append(sum(timed(lambda s=s, p=p: store.query(s, p)) for s, p in log))
    return took, raw


def figures(name: str, took: list[float], raw: list[float], goal_ms: float, note: str):
    """p50, and p95 against the raw SQL. The goal is the latency a responder waits: the ratio
    shows what Python adds (for a timeline, mostly writing thousands of rows)."""
    p50, p95, raw95 = percentile(took, 0.5), percentile(took, 0.95), percentile(raw, 0.95)
    return [
        Result(f"{name}: p50", p50 * 1000, "ms", note=note),
        Result(
            f"{name}: p95",
            p95 * 1000,
            "ms",
            peer="raw SQL of the same statements, p95",
            peer_value=raw95 * 1000,
            goal=f"<= {goal_ms:g} ms",
            met=p95 * 1000 <= goal_ms,
        ),
    ]


def alert_at(t_ns: int) -> list:
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_ns // S)) + "Z"
    payload = {
        "receiver": "bench",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "BenchAlert", "host": HOST, "severity": "warning"},
                "startsAt": start,
                "fingerprint": "benchfingerprint",
            }
        ],
    }
    return from_webhook(payload, t_ns)


def run() -> list[Result]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-incident-"))
    server = ClickHouseServer(workdir / "ch").start()
    try:
        url = server.url(fresh_database_name())
        store = open_store(url)
        migrate(store)
        t0 = (time.time_ns() // S - 2 * 3600) * S
        for table, make in (
            ("process_events", daemon_columns),
            ("process_events", process_columns),
            ("tcp_connection_events", connection_columns),
        ):
            store.insert(table, make(t0))
        middle = t0 + 1800 * S
        store.insert_events(alert_at(middle))
        five_minutes = Window(middle - 150 * S, middle + 150 * S)
        jobs = PROCESS_EVENTS // 3 // HOSTS
        job_pid = 1000 + jobs // 2

        def timeline(reader):
            t = build_timeline(reader, TimelineRequest(HOST, five_minutes))
            write_jsonl(t.entries, io.StringIO(), UTC)
            return t

        events = len(timeline(Reader(store)).entries)
        results = figures(
            "timeline of one host, 5 minutes", *measure(store, timeline), 1000, f"{events} events"
        )

        def ancestry(reader):
            target = A.resolve_key(reader, key(HOST, job_pid))
            return A.chain(reader, target)

        results += figures("ancestry of a job (3 levels)", *measure(store, ancestry), 250, "")

        def descendants(reader):
            return A.descendants(reader, A.resolve_key(reader, key(HOST, 105)))

        tree, _ = descendants(Reader(store))
        results += figures(
            "descendants of a daemon",
            *measure(store, descendants),
            1000,
            f"{len(tree.children)} children",
        )
        store.close()
        results.append(postmortem(url, workdir, middle))
        return results
    finally:
        server.stop()


def postmortem(url: str, workdir: Path, middle: int) -> Result:
    """The whole command, as run from a shell (connect, queries, graph, graphviz, files)."""
    took = []
    for i in range(3):
        argv = ["postmortem", "--store-url", url, "--host", HOST, "-q"]
        argv += ["--from", str(middle - 1800 * S), "--to", str(middle + 1800 * S)]
        argv += ["--alert", "benchfingerprint", "-o", str(workdir / f"pm{i}")]
        with contextlib.redirect_stdout(io.StringIO()):
            took.append(timed(lambda argv=argv: main(argv)))
            assert (workdir / f"pm{i}" / "postmortem.md").exists()
    best = min(took)
    return Result(
        "postmortem of one host's hour around an alert (best of 3)",
        best,
        "s",
        goal="<= 10 s",
        met=best <= 10,
    )
