"""The flag detector's own cost on recorded events, without the wall clock (the machine is shared).

    python -m bench.detector_profile record FILE   # an exec storm's batches (detector off)
    python -m bench.detector_profile time FILE     # CPU us per event (process time)
    python -m bench.detector_profile profile FILE  # cProfile of the replays, by own time
    python -m bench.detector_profile count FILE N  # N replays and nothing else: for valgrind

Instructions per event, which other processes on the machine do not change: run ``count`` under
``valgrind --tool=callgrind`` with N replays and with 0, and divide the difference of the totals
by N times the events. Not a ``bench_*`` module: ``make bench`` does not run it.
"""

from __future__ import annotations

import cProfile
import gc
import pickle
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_process import STORM_EXECS, StormExecsSink, exporter_through
from exporter.flags.detector import Detector
from exporter.flags.rulebook import load_rulebook
from mixin.config import load_config

REPLAYS = 30


def record(path: str) -> None:
    """The batches of a storm of a copy of /bin/true in /tmp (every exec matches exec_from_tmp:
    the detector's worst common case, a repeat after the first)."""
    with tempfile.TemporaryDirectory() as tmp:
        true = Path(tmp) / "gt-storm-true"
        shutil.copy("/bin/true", true)
        sink = StormExecsSink(str(true))
        storm = ["/bin/bash", "-c", f"for i in $(seq {STORM_EXECS}); do {true}; done"]
        exporter_through(storm, sink, flags=False)
    with open(path, "wb") as f:
        pickle.dump(sink.batches, f)
    print(f"{sum(map(len, sink.batches))} events in {len(sink.batches)} batches -> {path}")


def replay(detector: Detector, batches: list[list]) -> None:
    for batch in batches:
        detector.observe(batch)


def print_profile(fresh, replay_through, top: int) -> None:
    """cProfile of REPLAYS replays (``replay_through`` each of ``fresh()``'s objects: only the
    replays are profiled), by own time, the ``top`` functions."""
    profile = cProfile.Profile()
    for _ in range(REPLAYS):
        target = fresh()
        profile.enable()
        replay_through(target)
        profile.disable()
    pstats.Stats(profile).sort_stats("tottime").print_stats(top)


def main(argv: list[str]) -> int:
    mode, path = argv[0], argv[1]
    if mode == "record":
        record(path)
        return 0
    with open(path, "rb") as f:
        batches = pickle.load(f)
    events = sum(map(len, batches))
    rulebook, thresholds = load_rulebook(), load_config().raw["thresholds"]
    if mode == "time":
        per_event = []
        for _ in range(REPLAYS):
            detector = Detector(rulebook, thresholds)
            gc.collect()
            cpu0 = time.process_time()
            for batch in batches:
                detector.observe(batch)
            per_event.append((time.process_time() - cpu0) / events * 1e6)
        print(f"{events} events: median {statistics.median(per_event):.3f} us/event "
              f"(min {min(per_event):.3f}, {REPLAYS} replays)")  # fmt: skip
    elif mode == "count":
        for detector in [Detector(rulebook, thresholds) for _ in range(int(argv[2]))]:
            for batch in batches:
                detector.observe(batch)
    elif mode == "profile":
        print_profile(lambda: Detector(rulebook, thresholds), lambda d: replay(d, batches), 15)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
