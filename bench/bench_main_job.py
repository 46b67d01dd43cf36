"""The main job's overhead (issue 19): `groundtruth up` (what `make run` starts), `groundtruth run`
without a sink, the minimal exporter, the counting-only floor and bcc's tcplife, each against
nothing, interleaved in one run, on the connection workload (wrk, a new connection per request,
against bench/tiny_http.py) and the exec storm (a copied /bin/true in a loop). Then whether
`up` recorded every connection and exec of its rounds exactly (rows in its store, 0 dropped),
and the CPU per event of the user-space path, ring buffer to rows in the store, against the
counting-only consumer's.

The CPU per event of the path is taken by replaying records read from the real ring buffers
under the same workloads (decode, the flag detector and event counting as `deliver` does them,
columns, the embedded store's insert) with this process's CPU clock: a figure that holds still
on a shared machine, where throughput ratios move with whatever else runs.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

from bench.bench_process import memory_in_a_fresh_process, storm_seconds
from bench.bench_tcp import Run, serve_and_load, with_minimal_exporter
from bench.floor import counting_only
from bench.result import Result
from exporter.config import ExporterConfig
from exporter.probes.base import ProbeContext
from exporter.probes.process import ProcessProbe
from exporter.probes.tcp import TcpProbe
from exporter.runner import Exporter, drain_due
from schema.column_batch import ColumnBatch
from store.arrow_batch import arrow_stream
from store.db import columnar, open_store
from store.migrations import migrate
from store.writer import WriterSettings, column_tables
from testservices.service import free_port

ROUNDS = 5  # throughput medians move by ~3% between runs of 3 rounds
SETTLE_SECONDS = 8  # chDB merges an insert's new parts within seconds
STORM_EXECS = 2000
TCPLIFE = "/usr/sbin/tcplife-bpfcc"
CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_SECONDS = 120


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a whole process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def stop_process(proc: subprocess.Popen, sig: int, timeout: float) -> None:
    """Asks a process to stop (it flushes what it holds), kills it if it takes too long."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Job:
    """The exporter as a user starts it, in a process of its own; ready once it serves
    metrics (it serves them once its probes are attached, the scan and self-tests done)."""

    def __init__(self, command: str, data_dir: Path | None = None):
        self.listen = f"127.0.0.1:{free_port()}"
        args = [sys.executable, "-m", "groundtruth.cli", command, "--listen", self.listen]
        if data_dir is not None:
            args += ["--data-dir", str(data_dir), "--graphapi-listen", f"127.0.0.1:{free_port()}"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_SECONDS
        while self.metrics() is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"groundtruth {command} did not start")
            time.sleep(0.5)

    def metrics(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://{self.listen}/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return None

    def events(self) -> int:
        """Events it delivered so far (every type and kind)."""
        text = self.metrics() or ""
        found = re.findall(r"^groundtruth_events_total\{.*\} (\S+)$", text, re.M)
        return int(sum(map(float, found)))

    def dropped(self) -> Counter:
        """Events it counted as lost, by reason (every stage)."""
        text = self.metrics() or ""
        found = re.findall(
            r'^groundtruth_events_dropped_total\{.*reason="([^"]*)".*\} (\S+)$', text, re.M
        )
        return Counter({reason: int(float(n)) for reason, n in found if float(n)})

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 60)


class Tcplife:
    """bcc's tcplife, its output (a line per connection) written to a file; ready once it
    prints its header."""

    def __init__(self, out: Path):
        self.out = out.open("w")
        self.proc = subprocess.Popen([TCPLIFE], stdout=self.out, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_SECONDS
        while not out.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("tcplife did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGINT, 30)
        self.out.close()


class Floor:
    """Both probes' kernel programs and ring buffers, with consumers that only count."""

    def __init__(self):
        ctx = ProbeContext(host="bench")
        self.probes = [counting_only(TcpProbe)(ctx), counting_only(ProcessProbe)(ctx)]
        for p in self.probes:
            p.load()
        self.stop_drain = threading.Event()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.cpu0 = time.process_time()
        self.thread.start()

    def _drain(self) -> None:
        while not self.stop_drain.wait(0.05):
            for p in self.probes:
                p.drain()

    def stop(self) -> tuple[float, int]:
        """(CPU s of this process while it ran, events counted)."""
        self.stop_drain.set()
        self.thread.join()
        for p in self.probes:
            p.drain()
        cpu = time.process_time() - self.cpu0
        seen = sum(p.seen for p in self.probes)
        for p in self.probes:
            p.close()
        return cpu, seen


class Recorder:
    """Probes loaded (both, or those named), every record read off their ring buffers and kept
    undecoded."""

    def __init__(self, names: tuple[str, ...] = ("tcp", "process")):
        ctx = ProbeContext(host="bench")
        probes = {"tcp": TcpProbe, "process": ProcessProbe}
        self.probes = {name: probes[name](ctx) for name in names}
        for p in self.probes.values():
            p.load()
        self.records: dict[str, list] = {name: [] for name in self.probes}
        self.stop_drain = threading.Event()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        """Read in the batches the exporter would drain, by its default settings."""
        config, last = ExporterConfig(), time.monotonic()
        while not self.stop_drain.wait(config.drain_interval_seconds):
            if drain_due(config, self.probes.values(), time.monotonic() - last):
                self._read()
                last = time.monotonic()

    def _read(self) -> None:
        for name, p in self.probes.items():
            batch = p._reader.read() if p._reader is not None else []
            if batch:
                self.records[name].append(batch)

    def stop(self) -> dict[str, list]:
        self.stop_drain.set()
        self.thread.join()
        self._read()
        for p in self.probes.values():
            p.close()
        return self.records


class StoreInserts:
    """A sink doing the store writer's work on its own thread's clock: columns (ColumnBatches
    taken as they are), and one insert per table for each batch of the writer's size.
    Without a store it keeps the inserts it would make (``kept``) instead."""

    takes_columns = True

    def __init__(self, store, batch_size: int = WriterSettings().batch_size):
        self.store, self.batch_size, self.events = store, batch_size, 0
        self.pending: list = []
        self.columns: list[ColumnBatch] = []
        self.rows = 0
        self.kept: list[tuple[str, dict]] = []

    def write(self, events: list) -> None:
        while events and isinstance(events[-1], ColumnBatch):  # after the objects, as delivered
            self.columns.append(events[-1])
            self.rows += len(events[-1])
            events = events[:-1]
        self.pending += events
        self.rows += len(events)
        if self.rows >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        tables = list(columnar(self.pending).items()) + column_tables(self.columns)
        for table, cols in tables:
            if self.store is None:
                self.kept.append((table, cols))
            else:
                self.store.insert(table, cols)
        self.events += self.rows
        self.pending, self.columns, self.rows = [], [], 0

    def close(self) -> None:
        self.flush()


def replay_cpu_per_event(records: dict[str, list], data_dir: Path) -> tuple[float, int]:
    """(CPU us per event, events) of the user-space path over recorded batches: each probe's
    decode, then Exporter.deliver (the flag detector, counting) into the store's inserts."""
    store = open_store(None, data_dir)
    migrate(store)
    sink = StoreInserts(store)
    exporter = Exporter(ExporterConfig(host="bench"), sink)
    probes = {"tcp": exporter.tcp_probe, "process": exporter.process_probe}
    gc.collect()
    started = time.process_time()
    for name, batches in records.items():
        for raw in batches:
            exporter.deliver(*probes[name].decode_columns(raw))
    sink.close()
    cpu = time.process_time() - started
    store.close()
    return cpu / max(sink.events, 1) * 1e6, sink.events


def embedded_store_cpu_per_row(records: dict[str, list], data_dir: Path) -> tuple[float, int]:
    """(CPU us per row, rows) that chDB itself spends storing the user-space path's inserts
    (the same recorded records, decoded and batched as the writer batches them): the CPU of its
    inserts less that of building their Arrow streams, plus its background work (merging the
    new parts) over the next SETTLE_SECONDS, less the same time idle before. No path through
    the embedded store can cost less than this."""
    sink = StoreInserts(None)
    exporter = Exporter(ExporterConfig(host="bench"), sink)
    probes = {"tcp": exporter.tcp_probe, "process": exporter.process_probe}
    for name, batches in records.items():
        for raw in batches:
            exporter.deliver(*probes[name].decode_columns(raw))
    sink.close()
    inserts = sink.kept
    store = open_store(None, data_dir)
    migrate(store)
    arrow_stream(*inserts[0][:2])  # pyarrow's first call pays its one-time set-up
    clock = time.process_time
    started = clock()
    for table, cols in inserts:
        arrow_stream(table, cols)
    arrow_s = clock() - started
    started = clock()
    time.sleep(SETTLE_SECONDS)
    idle_s = clock() - started
    started = clock()
    for table, cols in inserts:
        store.insert(table, cols)
    insert_s = clock() - started
    time.sleep(SETTLE_SECONDS)
    background_s = clock() - started - insert_s
    store.close()
    own = insert_s - arrow_s + background_s - idle_s
    return own / max(sink.events, 1) * 1e6, sink.events


def stored_exactly(data_dir: Path, binary: str, ports: list[int]) -> tuple[int, int, int]:
    """(execs of the storm binary, inbound closes, outbound closes) in `up`'s store."""
    store = open_store(None, data_dir)
    try:
        execs = store.query(
            "SELECT count() FROM process_events WHERE kind = 'exec' AND filename = {f:String}",
            {"f": binary},
        )[0][0]
        ends = store.query(
            "SELECT direction, count() FROM tcp_connection_events WHERE kind = 'close' AND "
            "(has({p:Array(UInt16)}, local_port) AND direction = 'inbound' OR "
            "has({p:Array(UInt16)}, remote_port) AND direction = 'outbound') GROUP BY direction",
            {"p": ports},
        )
    finally:
        store.close()
    by_direction = dict(ends)
    return execs, by_direction.get("inbound", 0), by_direction.get("outbound", 0)


def run() -> list[Result]:
    tmp = Path(tempfile.mkdtemp(prefix="gt-bench-main-"))
    try:
        return _run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(tmp: Path) -> list[Result]:
    true = tmp / "gt-main-storm-true"
    shutil.copy("/bin/true", true)
    storm = ["/bin/bash", "-c", f"for i in $(seq {STORM_EXECS}); do {true}; done"]
    # First, before this process loads any probe (see memory_in_a_fresh_process).
    memory = memory_in_a_fresh_process(100_000)
    storm_seconds(storm)  # warm up both workloads
    serve_and_load()
    rates: dict[str, list[float]] = {}
    storms: dict[str, list[float]] = {}
    floor_cpu = floor_events = 0.0
    up_execs = up_conns = up_accepted = 0
    uneven: list[str] = []  # rounds whose stored ends are not one per accepted connection each
    up_dropped: Counter = Counter()
    up_cpu = up_events = 0.0

    def measure(name: str, run_: Run, seconds: float) -> None:
        rates.setdefault(name, []).append(run_.rate)
        storms.setdefault(name, []).append(seconds)

    for i in range(ROUNDS):
        # Interleaved: each configuration sees the same background load, round by round.
        measure("nothing", serve_and_load(), storm_seconds(storm))

        data_dir = tmp / f"up-{i}"
        job = Job("up", data_dir)
        cpu0, events0 = cpu_seconds(job.proc.pid), job.events()
        tally = _PortTally()
        r = serve_and_load(tally=tally)
        secs = storm_seconds(storm)
        time.sleep(WriterSettings().max_age + 0.5)  # the exporter's drain, the writer's flush
        up_cpu += cpu_seconds(job.proc.pid) - cpu0
        up_events += job.events() - events0
        up_dropped.update(job.dropped())
        job.stop()
        measure("up", r, secs)
        execs, inbound, outbound = stored_exactly(data_dir, str(true), [tally.port])
        conns = min(inbound, outbound)  # connections with both ends' close
        if inbound != r.accepted or outbound != r.accepted:
            uneven.append(f"round {i + 1}: {inbound} inbound, {outbound} outbound ends")
        up_execs, up_conns, up_accepted = (
            up_execs + execs,
            up_conns + conns,
            up_accepted + r.accepted,
        )

        job = Job("run")
        measure("run", serve_and_load(), storm_seconds(storm))
        job.stop()

        r, _ = with_minimal_exporter()
        rates.setdefault("minimal", []).append(r.rate)

        floor = Floor()
        r, secs = serve_and_load(), storm_seconds(storm)
        cpu, seen = floor.stop()
        floor_cpu, floor_events = floor_cpu + cpu, floor_events + seen
        measure("floor", r, secs)

        try:
            life = Tcplife(tmp / "tcplife.out")
        except (OSError, RuntimeError) as e:
            print(f"tcplife: {e}", file=sys.stderr)
        else:
            measure("tcplife", serve_and_load(), storm_seconds(storm))
            life.stop()

    recorder = Recorder()
    serve_and_load()
    storm_seconds(storm)
    records = recorder.stop()
    path_us, path_events = replay_cpu_per_event(records, tmp / "replay")
    store_us, store_rows = embedded_store_cpu_per_row(records, tmp / "store-only")
    floor_us = floor_cpu / max(floor_events, 1) * 1e6
    up_us = up_cpu / max(up_events, 1) * 1e6
    return results(rates, storms, path_us, path_events, floor_us, int(floor_events),
                   (up_execs, up_conns, up_accepted, up_dropped, uneven)) + [
        Result(
            "CPU per event of the whole `groundtruth up` process, live (all its threads: "
            "drain, decode, detector, writer, chDB; metrics scrapes of this benchmark)",
            up_us, "us", "counting-only consumer", floor_us, note=f"{int(up_events)} events",
        ),
        Result(
            "of the path, chDB's own CPU per row: its inserts (less building their Arrow "
            f"streams) and its background merges over the next {SETTLE_SECONDS} s (less idle)",
            store_us, "us", "counting-only consumer", floor_us,
            note=f"{store_rows} rows, the replayed events' inserts",
        ),
        memory,
    ]  # fmt: skip


class _PortTally:
    """serve_and_load's `tally`: learns the server's port."""

    port = 0


def results(rates, storms, path_us, path_events, floor_us, floor_events, up) -> list[Result]:
    med = statistics.median
    base_rate, base_storm = med(rates["nothing"]), med(storms["nothing"])
    rounds = f"median of {ROUNDS} interleaved rounds"
    labels = {
        "up": ("`groundtruth up` (both probes, embedded store: `make run`)", ">= 0.92x", 0.97),
        "run": ("`groundtruth run`, no sink", "", None),
        "minimal": ("minimal exporter (bench/minimal_close.c, decoded)", "", None),
        "floor": ("counting-only consumers, both probes' kernel programs", "", None),
        "tcplife": ("bcc tcplife (the peer)", "", None),
    }
    out = []
    for name, (label, goal, storm_goal) in labels.items():
        if name not in rates:
            continue
        rate = med(rates[name])
        out.append(Result(
            f"connections: {label}", rate, "req/s", "nothing attached", base_rate, goal,
            rate >= 0.92 * base_rate if goal else None, rounds,
        ))  # fmt: skip
        if name in storms:
            # Speed, not seconds: the ratio reads as the connection figure's (1.00x = no cost).
            speed = STORM_EXECS / med(storms[name])
            out.append(Result(
                f"exec storm: {label}", speed, "execs/s", "nothing attached",
                STORM_EXECS / base_storm, f">= {storm_goal:.2f}x" if storm_goal else "",
                speed >= storm_goal * STORM_EXECS / base_storm if storm_goal else None, rounds,
            ))  # fmt: skip
    execs, conns, accepted, dropped, uneven = up
    out.append(Result(
        "`groundtruth up`: storm execs and connections stored (rows in its chDB)",
        execs + conns, "rows", "execs run + connections accepted",
        ROUNDS * STORM_EXECS + accepted, "= 1.00x, 0 dropped",
        execs == ROUNDS * STORM_EXECS and conns == accepted and not dropped,
        f"execs {execs}/{ROUNDS * STORM_EXECS}, connections {conns}/{accepted}; dropped: "
        + (", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items())) or "0")
        + "".join(f"; {line}" for line in uneven),
    ))  # fmt: skip
    out.append(Result(
        "CPU per event, user-space path: ring buffer records to rows in the store (decode, "
        "flag detector, columns, Arrow insert into chDB)",
        path_us, "us", "counting-only consumer", floor_us, "<= 1.5x", path_us <= 1.5 * floor_us,
        f"{path_events} recorded events replayed; floor over {floor_events} events live",
    ))  # fmt: skip
    return out
