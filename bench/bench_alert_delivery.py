"""Exec storm to stored alert: seconds from the first exec of a storm until the alert fires in
Prometheus, and until graphapi has stored Alertmanager's notification, on the real stack of
testservices/alert_stack.py (real exporter, ClickHouse, Prometheus, Alertmanager, graphapi;
threshold 5 execs/s, `for: 0s`). Run with the test's 1 s intervals, then with the deployed ones
(compose: 15 s scrape and evaluation, Alertmanager's 30 s group_wait). The floor is the sum of those
waits: one scrape, one evaluation, group_wait."""

from __future__ import annotations

import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.result import Result
from testservices.alert_stack import AlertStack, Timings
from testservices.clickhouse import ClickHouseServer, fresh_database_name

QUICK_RUNS = 3


def seconds(duration: str) -> float:
    value, unit = re.fullmatch(r"(\d+)([smh])", duration).groups()
    return int(value) * {"s": 1, "m": 60, "h": 3600}[unit]


def floor(t: Timings) -> float:
    return seconds(t.scrape_interval) + seconds(t.evaluation_interval) + seconds(t.group_wait)


def one_run(workdir: Path, store_url: str, timings: Timings) -> tuple[float, float]:
    """(seconds to firing, seconds to stored) for one storm on a fresh stack."""
    stack = AlertStack(workdir, store_url, timings=timings).start()
    try:
        storm = stack.storm()
        started = time.monotonic()
        try:
            limit = 4 * floor(timings) + 60
            stack.wait_fired(timeout=limit)
            fired = time.monotonic() - started
            stack.wait_stored(timeout=limit + seconds(timings.group_interval))
            stored = time.monotonic() - started
        finally:
            storm.kill()
            storm.wait()
    finally:
        stack.stop()
    return fired, stored


def run() -> list[Result]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-alert-delivery-"))
    server = ClickHouseServer(workdir / "ch").start()
    try:

        def fresh_run(name: str, timings: Timings) -> tuple[float, float]:
            return one_run(workdir / name, server.url(fresh_database_name()), timings)

        quick = Timings()
        runs = [fresh_run(f"quick{i}", quick) for i in range(QUICK_RUNS)]
        deployed = Timings.deployed()
        fired, stored = fresh_run("deployed", deployed)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    quick_note = f"1 s intervals, median of {QUICK_RUNS}"
    deployed_note = (
        f"deployed: {deployed.scrape_interval} scrape and evaluation, "
        f"{deployed.group_wait} group_wait"
    )
    floor_name = "scrape + evaluation + group_wait"
    return [
        Result("storm to firing", statistics.median(r[0] for r in runs), "s", note=quick_note),
        Result(
            "storm to stored by graphapi",
            statistics.median(r[1] for r in runs),
            "s",
            peer=floor_name,
            peer_value=floor(quick),
            note=quick_note,
        ),
        Result("storm to firing", fired, "s", note=deployed_note),
        Result(
            "storm to stored by graphapi",
            stored,
            "s",
            peer=floor_name,
            peer_value=floor(deployed),
            note=deployed_note,
        ),
    ]
