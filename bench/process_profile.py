"""The process probe's whole user-space path on recorded ring-buffer records, without the wall
clock (the machine is shared): decode (identity, containers and workloads, process table), the
flag detector (optionally with the baseline benchmark's 100 workload policies) and the
exporter's delivery (counting, the sink).

    python -m bench.process_profile record FILE            # an exec storm's raw records
    python -m bench.process_profile time FILE [policies]   # CPU us per event, by stage
    python -m bench.process_profile profile FILE [policies]  # cProfile, by own time
    python -m bench.process_profile count FILE N 0|1 [policies]  # for valgrind (below)

The storm runs in a systemd service's cgroup of its own, made while recording, so its
cgroup_mkdir record is replayed too and every exec resolves to that service's workload (the
one the policies' first policy is for). Instructions per event, which other processes on the
machine do not change: ``count FILE N 1`` builds N exporters, then replays the records through
each between two calls of getppid() (nothing else here calls it), so

    PYTHONHASHSEED=0 valgrind --tool=callgrind --dump-before=getppid \
        --callgrind-out-file=cg.out python -m bench.process_profile count FILE N 1

dumps the replays alone in cg.out.2: its total over N times the records is the figure, the same
on every run (a fixed hash seed). (``count FILE N 0`` builds them without replaying; the
difference of two whole-run totals also gives it, give or take 1.5% of start-up's noise.)
Not a ``bench_*`` module: ``make bench`` does not run it.
"""

from __future__ import annotations

import gc
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_baseline import write_policies
from bench.bench_main_job import Recorder
from bench.bench_process import STORM_EXECS, CountingSink
from bench.detector_profile import REPLAYS, print_profile
from exporter.config import ExporterConfig
from exporter.containers import unified_mount
from exporter.runner import Exporter


def record(path: str) -> None:
    """The raw records of a storm of a copy of /bin/true in /tmp, run in a service's cgroup."""
    unit = f"gt-profile-{os.urandom(4).hex()}.service"
    with tempfile.TemporaryDirectory() as tmp:
        true = Path(tmp) / "gt-storm-true"
        shutil.copy("/bin/true", true)
        recorder = Recorder(("process",))
        cgroup = unified_mount() / "system.slice" / unit
        cgroup.mkdir(parents=True)
        try:
            enter = f"echo $$ > {cgroup}/cgroup.procs"
            loop = f"{enter}; for i in $(seq {STORM_EXECS}); do {true}; done"
            subprocess.run(["/bin/bash", "-c", loop], check=True)
            records = recorder.stop()["process"]
        finally:
            cgroup.rmdir()
    with open(path, "wb") as f:
        pickle.dump({"records": records, "unit": unit, "binary": str(true)}, f)
    print(f"{sum(map(len, records))} records in {len(records)} batches -> {path}")


def exporter_for(policies: str) -> Exporter:
    """An exporter as deployed (flag detector on; the policies of directory ``policies``, if
    any), not started: its probe decodes what it is given."""
    config = ExporterConfig(host="bench", selftest=False, tcp=False, policies=policies)
    return Exporter(config, CountingSink())


def replay(exporter: Exporter, records: list[list[bytes]]) -> tuple[float, float, int]:
    """(decode CPU s, delivery CPU s, events): each batch decoded, then delivered, as the
    exporter's drain does."""
    decode, deliver = exporter.process_probe.decode_columns, exporter.deliver
    decode_s = deliver_s = 0.0
    events = 0
    clock = time.process_time
    for raw in records:
        t0 = clock()
        objects, batches = decode(raw)
        t1 = clock()
        deliver(objects, batches)
        deliver_s += clock() - t1
        decode_s += t1 - t0
        events += len(objects) + sum(map(len, batches))
    return decode_s, deliver_s, events


def main(argv: list[str]) -> int:
    mode, path = argv[0], argv[1]
    if mode == "record":
        record(path)
        return 0
    with open(path, "rb") as f:
        recording = pickle.load(f)
    records = recording["records"]
    with_policies = argv[-1] == "policies"
    policy_dir = tempfile.mkdtemp(prefix="gt-profile-policies-") if with_policies else ""
    try:
        if policy_dir:
            write_policies(Path(policy_dir), recording["binary"], recording["unit"])
        return run_mode(mode, argv, records, policy_dir)
    finally:
        if policy_dir:
            shutil.rmtree(policy_dir)


def run_mode(mode: str, argv: list[str], records: list, policy_dir: str) -> int:
    if mode == "time":
        stages: dict[str, list[float]] = {"decode": [], "detector": [], "rest": [], "all": []}
        for _ in range(REPLAYS):
            exporter = exporter_for(policy_dir)
            gc.collect()
            decode_s, deliver_s, events = replay(exporter, records)
            detector_s = exporter.detector.cpu_ns / 1e9
            for name, seconds in (("decode", decode_s), ("detector", detector_s),
                                  ("rest", deliver_s - detector_s),
                                  ("all", decode_s + deliver_s)):  # fmt: skip
                stages[name].append(seconds / events * 1e6)
        medians = ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in stages.items())
        print(f"{events} events, median of {REPLAYS} replays, CPU us per event: {medians}")
    elif mode == "count":
        exporters = [exporter_for(policy_dir) for _ in range(int(argv[2]))]
        if argv[3] == "1":
            os.getppid()  # callgrind's marker (--dump-before=getppid): the replays start
            for exporter in exporters:
                replay(exporter, records)
            os.getppid()  # and end
    elif mode == "profile":
        print_profile(lambda: exporter_for(policy_dir), lambda e: replay(e, records), 25)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
