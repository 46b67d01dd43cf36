"""Process probe: exec storm speed and losses, CPU per event against a counting-only floor (the
flag detector on, as deployed; its own share reported), resident memory with 100,000 tracked
processes."""

from __future__ import annotations

import gc
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.floor import counting_only
from bench.result import Result
from exporter.compiler_memory import release_compiler_memory
from exporter.config import ExporterConfig
from exporter.flags.detector import load_detector
from exporter.probes.base import ProbeContext
from exporter.probes.process import ProcessProbe
from exporter.probes.process_abi import EV_FORK, HEAD
from exporter.runner import Exporter
from exporter.sinks.memory import MemorySink
from schema.column_batch import ColumnBatch
from schema.events import FlagEvent

STORM_EXECS = 3000
ROUNDS = 5


def storm_seconds(storm: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(storm, check=True)
    return time.perf_counter() - started


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# The floor: the same BPF program and ring buffer, a consumer that only counts.
CountingOnlyProbe = counting_only(ProcessProbe)


class CountingSink:
    """Counts what it is given and lets it go, as the store writer does once a batch is in
    (a sink that kept every event would make the benchmark measure the garbage collector).
    It takes the process probe's rows as the store writer does: as a batch (RowBatch)."""

    takes_columns = True

    def __init__(self):
        self.events = 0

    def write(self, events: list) -> None:
        self.events += sum(len(e) if isinstance(e, ColumnBatch) else 1 for e in events)

    def close(self) -> None:
        pass


class StormExecsSink(CountingSink):
    """Also counts the storm's own execs, and keeps the batches (without the flags the
    detector added): for the delivery check and the detector's replay, not the CPU figure."""

    takes_columns = False  # event objects: it reads them

    def __init__(self, binary: str):
        super().__init__()
        self.binary = binary
        self.storm_execs = 0
        self.batches: list[list] = []

    def write(self, events: list) -> None:
        super().write(events)
        self.storm_execs += sum(1 for e in events if e.kind == "exec" and e.filename == self.binary)
        self.batches.append([e for e in events if not isinstance(e, FlagEvent)])


def detector_replay_us_per_event(batches: list[list]) -> tuple[float, int]:
    """(CPU us per event, events) of a fresh detector over recorded batches: the detector's own
    cost on the storm alone, less exposed to what else the machine runs than the live figure."""
    detector = load_detector()
    gc.collect()
    cpu0 = time.process_time()
    for batch in batches:
        detector.observe(batch)
    events = sum(map(len, batches))
    return (time.process_time() - cpu0) / events * 1e6, events


def exporter_through(
    storm: list[str], sink, detector_cpu=None, flags: bool = True
) -> tuple[float, float, int]:
    """(storm seconds, CPU seconds, events dropped) with the exporter on the full path:
    probe -> decode -> identity, containers, process table -> flag detector -> sink.
    ``detector_cpu`` (a list) gets (the detector's own CPU ns, events it saw)."""
    config = ExporterConfig(host="bench", selftest=False, tcp=False, flags=flags)
    exporter = Exporter(config, sink)
    exporter.start(serve=False)
    try:
        secs, cpu = measure_with(exporter.poll, storm, last=exporter.drain_once)
    finally:
        exporter.shutdown()
    if detector_cpu is not None:
        detector_cpu.append((exporter.detector.cpu_ns, exporter.detector.events_seen))
    return secs, cpu, sum(exporter.process_probe.drops_by_kind().values())


def drain_in_thread(drain, stop: threading.Event, interval: float = 0.05, last=None):
    """A thread calling ``drain`` every ``interval`` until ``stop``, then ``last`` (by default
    ``drain`` again): an exporter's ``poll`` drains only when a batch is due, so its last call
    is ``drain_once``, which takes everything left."""

    def loop():
        while not stop.wait(interval):
            drain()
        (last or drain)()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def measure_with(probe_drain, storm: list[str], last=None) -> tuple[float, float]:
    """(storm seconds, CPU seconds of this process) while a drain loop runs (drain_in_thread)."""
    gc.collect()  # not the garbage of earlier rounds: each figure pays only for its own
    stop = threading.Event()
    thread = drain_in_thread(probe_drain, stop, last=last)
    cpu0 = time.process_time()
    seconds = storm_seconds(storm)
    stop.set()
    thread.join()
    return seconds, time.process_time() - cpu0


def run() -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        # A binary of our own, so the storm's execs are told apart from the machine's.
        true = Path(tmp) / "gt-storm-true"
        shutil.copy("/bin/true", true)
        storm = ["/bin/bash", "-c", f"for i in $(seq {STORM_EXECS}); do {true}; done"]
        memory = memory_in_a_fresh_process(100_000)  # before the storms load any probe here
        return storm_results(storm, str(true)) + [memory]


def storm_results(storm: list[str], binary: str) -> list[Result]:
    storm_seconds(storm)  # warm the page cache
    base, full, floor = [], [], []
    full_cpu = floor_cpu = bare_cpu = 0.0
    bare_events = 0
    full_events = floor_events = storm_execs = drops = 0
    detector_cpu: list[tuple[int, int]] = []
    replays: list[tuple[float, int]] = []
    for _ in range(ROUNDS):
        # Nothing attached: the machine's own speed.
        base.append(storm_seconds(storm))
        # The full path, timed.
        sink = CountingSink()
        secs, cpu, dropped = exporter_through(storm, sink, detector_cpu)
        full.append(secs)
        full_cpu += cpu
        full_events += sink.events
        drops += dropped
        # The full path without the detector: its share, measured in the same conditions.
        sink = CountingSink()
        _, cpu, dropped = exporter_through(storm, sink, flags=False)
        bare_cpu += cpu
        bare_events += sink.events
        drops += dropped
        # The same again, checking that every exec of the storm arrived.
        check = StormExecsSink(binary)
        drops += exporter_through(storm, check)[2]
        storm_execs += check.storm_execs
        replays.append(detector_replay_us_per_event(check.batches))
        # The floor: the same program and ring buffer, a consumer that only counts.
        floor_probe = CountingOnlyProbe(ProbeContext(host="bench"))
        floor_probe.load()
        try:
            secs, cpu = measure_with(floor_probe.drain, storm)
        finally:
            floor_probe.close()
        floor.append(secs)
        floor_cpu += cpu
        floor_events += floor_probe.seen

    rate = STORM_EXECS / statistics.median(full)
    base_rate = STORM_EXECS / statistics.median(base)
    per_event = full_cpu / full_events * 1e6
    floor_per_event = floor_cpu / floor_events * 1e6
    detector_ns, detector_events = map(sum, zip(*detector_cpu, strict=True))
    return [
        Result(
            "exec storm with the exporter (bash loop of a copy of /bin/true)",
            rate,
            "execs/s",
            "without the exporter",
            base_rate,
            ">= 0.95x",
            rate / base_rate >= 0.95,
            f"median of {ROUNDS} x {STORM_EXECS}",
        ),
        Result(
            "storm execs delivered as events",
            storm_execs,
            "events",
            "execs made",
            ROUNDS * STORM_EXECS,
            "= 1.00x, 0 dropped",
            storm_execs == ROUNDS * STORM_EXECS and drops == 0,
            f"{drops} dropped",
        ),
        Result(
            "exporter CPU per event, full path (decode, identity, containers, sink)",
            per_event,
            "us",
            "counting-only ring buffer consumer",
            floor_per_event,
            "<= 3x",
            per_event <= 3 * floor_per_event,
            f"{full_events} events",
        ),
        Result(
            "exporter CPU per event, full path without the flag detector (same run)",
            bare_cpu / bare_events * 1e6,
            "us",
            "counting-only ring buffer consumer",
            floor_per_event,
            note=f"{bare_events} events",
        ),
        Result(
            "of which the flag detector, live (its thread CPU time in observe(), over every "
            "event the host made meanwhile)",
            detector_ns / detector_events / 1e3,
            "us",
            note=f"{detector_events} events",
        ),
        Result(
            "flag detector CPU per event, the storm's recorded batches replayed through a fresh "
            "detector (every storm exec matches exec_from_tmp: a repeat after the first)",
            statistics.median(us for us, _ in replays),
            "us",
            note=f"median of {len(replays)} replays of {replays[0][1]} events",
        ),
    ]


def memory_in_a_fresh_process(n: int) -> Result:
    """The memory figure from a process that did nothing else (no heap left by the storms).

    The exporter hands the BPF compiler's pages back once its probes are loaded, but the kernel
    keeps a page that another process also maps: so this process (which may have compiled
    probes for other benchmarks) hands its own back first, as nothing else on a host running
    the exporter would hold them."""
    release_compiler_memory()
    code = (
        "import pickle, sys\n"
        "from bench.bench_process import memory_with_tracked_processes\n"
        f"sys.stdout.buffer.write(pickle.dumps(memory_with_tracked_processes({n})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    return pickle.loads(out.stdout)


def memory_with_tracked_processes(n: int) -> Result:
    """RSS of a loaded exporter after n processes went through decode into its table."""
    exporter = Exporter(ExporterConfig(host="bench", selftest=False), MemorySink())
    exporter.start(serve=False)
    try:
        loaded = rss_bytes()
        probe = exporter.process_probe
        for pid in range(1_000_000, 1_000_000 + n):
            raw = HEAD.pack(1, pid * 1000, 1, 1, 0, EV_FORK, pid, 1, 0, 0, 0, 0, pid, b"bench")
            probe.decode(raw)  # fork events: the process table keeps them until exit
        tracked = len(exporter.table)
        rss = rss_bytes()
    finally:
        exporter.shutdown()
    return Result(
        f"exporter resident memory with {tracked:,} tracked processes",
        rss / 2**20,
        "MiB",
        "the same exporter before",
        loaded / 2**20,
        "<= 150 MiB",
        rss <= 150 * 2**20,
    )
