"""Baselines: ``baseline learn`` over the graphapi benchmark's 2,000,000 events (one hour, 20
hosts, on a real ClickHouse 18.16 server), every workload learned at once; and the process
benchmark's exec storm with 100 workload policies loaded, the storm's own workload (a service of
its own) among them, so every exec of the storm is checked against a policy and allowed."""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from baseline.learn import learn
from bench.bench_graphapi import (
    DAEMONS,
    S,
    connection_columns,
    daemon_columns,
    process_columns,
)
from bench.bench_process import (
    STORM_EXECS,
    CountingOnlyProbe,
    CountingSink,
    StormExecsSink,
    measure_with,
    storm_seconds,
)
from bench.result import Result
from exporter.config import ExporterConfig
from exporter.containers import unified_mount
from exporter.flags.detector import load_detector
from exporter.flags.policies import PolicyFamily
from exporter.probes.base import ProbeContext
from exporter.runner import Exporter
from policy.files import file_name, load_policies, render
from policy.model import Policy
from store.db import open_store
from store.migrations import migrate
from testservices.clickhouse import ClickHouseServer, fresh_database_name

POLICIES = 100
ROUNDS = 3
LEARN_GOAL_SECONDS = 10.0


def with_workloads(columns: dict[str, list]) -> dict[str, list]:
    """Each job belongs to its daemon's service (DAEMONS services per host), init to host."""
    columns["workload"] = [
        f"daemon-{int(parent.rsplit(':', 1)[1]) % DAEMONS}.service" if parent else "host"
        for parent in columns.get("parent_key") or columns["process_key"]
    ]
    return columns


def run() -> list[Result]:
    return storm_with_policies() + [learn_over_the_graphapi_events()]


def write_policies(directory: Path, storm_binary: str, storm_unit: str) -> None:
    """POLICIES policies: the storm's service's, allowing its program run by bash as root, and
    99 others of the same size for workloads the storm is not in."""
    for n in range(POLICIES):
        workload = storm_unit if n == 0 else f"svc-{n}.service"
        policy = Policy(workload)
        for i in range(20):
            policy.add(("parent", f"/usr/bin/tool-{i}", "bash"))
            policy.add(("user", f"/usr/bin/tool-{i}", 0))
            policy.add(("outbound", f"10.0.{n}.{i}", 443))
        policy.add(("parent", storm_binary, "bash"))
        policy.add(("user", storm_binary, 0))
        policy.add(("listen", 8000 + n))
        (directory / file_name(workload)).write_text(render(policy))


def exporter_storm(storm: list[str], sink, policies: str) -> tuple[float, float]:
    """(storm seconds, CPU seconds) with the exporter on the full path, with the detector, with
    or without the policies."""
    config = ExporterConfig(host="bench", selftest=False, tcp=False, policies=policies)
    exporter = Exporter(config, sink)
    exporter.start(serve=False)
    try:
        return measure_with(exporter.poll, storm, last=exporter.drain_once)
    finally:
        exporter.shutdown()


def replay_us_per_event(batches: list[list], policies: dict | None) -> float:
    """CPU us per event of a fresh detector (with the policies' family, if given) over batches."""
    detector = load_detector()
    if policies is not None:
        detector.add_family(PolicyFamily(policies, detector))
    gc.collect()
    cpu0 = time.process_time()
    for batch in batches:
        detector.observe(batch)
    return (time.process_time() - cpu0) / sum(map(len, batches)) * 1e6


def storm_with_policies() -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        true = Path(tmp) / "gt-storm-true"
        shutil.copy("/bin/true", true)
        unit = f"gt-bench-{os.urandom(4).hex()}.service"
        cgroup = unified_mount() / "system.slice" / unit
        cgroup.mkdir(parents=True)
        # The storm runs in a service of its own (a cgroup v2 directory named like one).
        loop = f"echo $$ > {cgroup}/cgroup.procs; for i in $(seq {STORM_EXECS}); do {true}; done"
        storm = ["/bin/bash", "-c", loop]
        policy_dir = Path(tmp) / "policies"
        policy_dir.mkdir()
        write_policies(policy_dir, str(true), unit)
        storm_seconds(storm)  # warm the page cache
        base, full, bare = [], [], []
        cpu = {"with": [0.0, 0], "without": [0.0, 0], "floor": [0.0, 0]}
        replays: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(ROUNDS):
            base.append(storm_seconds(storm))
            for name, times, policies in (("with", full, str(policy_dir)), ("without", bare, "")):
                counted = CountingSink()
                secs, used = exporter_storm(storm, counted, policies)
                times.append(secs)
                cpu[name][0] += used
                cpu[name][1] += counted.events
            # The batches for the detector's replays, from a storm of their own: a sink that
            # keeps every event would charge its own work to the timed runs.
            recorded = StormExecsSink(str(true))
            exporter_storm(storm, recorded, str(policy_dir))
            loaded = load_policies(policy_dir)
            replays["with"].append(replay_us_per_event(recorded.batches, loaded))
            replays["without"].append(replay_us_per_event(recorded.batches, None))
            floor_probe = CountingOnlyProbe(ProbeContext(host="bench"))
            floor_probe.load()
            try:
                _, used = measure_with(floor_probe.drain, storm)
            finally:
                floor_probe.close()
            cpu["floor"][0] += used
            cpu["floor"][1] += floor_probe.seen
        base_rate = STORM_EXECS / statistics.median(base)
        per_event = {k: v[0] / v[1] * 1e6 for k, v in cpu.items()}
        results = []
        for name, times in (("with", full), ("without", bare)):
            rate = STORM_EXECS / statistics.median(times)
            what = (
                f"{POLICIES} policies (the storm's among them)"
                if name == "with"
                else ("the detector, no policies (same run)")
            )
            results += [
                Result(
                    f"exec storm with the exporter and {what}",
                    rate,
                    "execs/s",
                    "without the exporter",
                    base_rate,
                    ">= 0.95x",
                    rate / base_rate >= 0.95,
                    f"median of {ROUNDS} x {STORM_EXECS}",
                ),
                Result(
                    f"exporter CPU per event, full path, {what}",
                    per_event[name],
                    "us",
                    "counting-only ring buffer consumer",
                    per_event["floor"],
                    "<= 3x",
                    per_event[name] <= 3 * per_event["floor"],
                    f"{cpu[name][1]} events",
                ),
            ]
        results.append(
            Result(
                f"flag detector CPU per event with {POLICIES} policies, the storm's recorded "
                "batches replayed (every storm exec checked against its service's policy)",
                statistics.median(replays["with"]),
                "us",
                "the same detector without policies",
                statistics.median(replays["without"]),
                note=f"median of {ROUNDS} replays",
            )
        )
        cgroup.rmdir()
        return results


def learn_over_the_graphapi_events() -> Result:
    workdir = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    server = ClickHouseServer(workdir / "ch").start()
    try:
        store = open_store(server.url(fresh_database_name()))
        migrate(store)
        t0 = (time.time_ns() // S - 2 * 3600) * S
        events = 0
        for table, make in (
            ("process_events", daemon_columns),
            ("process_events", process_columns),
            ("tcp_connection_events", connection_columns),
        ):
            columns = with_workloads(make(t0))
            events += len(columns["event_id"])
            store.insert(table, columns)
        cpu0, started = time.process_time(), time.perf_counter()
        activity = learn(store, t0 - 3600 * S, t0 + 3600 * S)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu0
        entries = sum(len(v) for v in activity.values())
        store.close()
        return Result(
            f"baseline learn over {events:,} events ({len(activity)} workloads, {entries} entries)",
            seconds,
            "s",
            goal=f"< {LEARN_GOAL_SECONDS:.0f} s",
            met=seconds < LEARN_GOAL_SECONDS,
            note=f"{cpu:.1f} s CPU in this process; load average {os.getloadavg()[0]:.1f}",
        )
    finally:
        server.stop()
