"""False positives of the flag detector while the test suite runs.

Usage (scripts/flag-watch.sh does all three):

1. run an exporter of its own that writes every event to JSON lines:
   ``groundtruth run --host flag-watch --sink jsonl:EVENTS --listen 127.0.0.1:PORT``;
2. run the suite with this module as a pytest plugin, which writes each test's time span:
   ``GT_TEST_SPANS=SPANS pytest -p scripts.flag_watch``;
3. ``python -m scripts.flag_watch report EVENTS SPANS --root-pid PID``: every security flag on
   a process descending from PID (the suite; other processes on a shared host are left out),
   with the test that was running when its event happened. A flag whose rule the running test
   declares with ``@pytest.mark.causes_flags(rule, ...)`` is caused on purpose and listed apart;
   the rest are the false positives. With ``--metrics`` (the exporter's /metrics at the end),
   it also says how many flags were counted but not stored: those it cannot match to a test,
   so the script runs the exporter with no repeat window (and so no per-window budget).

A test's copy of /bin/true executed from pytest's directory under /tmp *is* an exec from /tmp:
the flag is right, and the test that does it says so with the marker (reviewed with the test,
as an exception is with the rules) rather than the detector learning to ignore pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from bisect import bisect_right
from collections import Counter

MARKER = "causes_flags"
EXAMPLES = 3


# -- the pytest plugin ------------------------------------------------------------------------
def pytest_runtest_logstart(nodeid, location):
    _span({"test": nodeid, "start": time.time_ns()})


def pytest_runtest_setup(item):
    causes = sorted({rule for mark in item.iter_markers(MARKER) for rule in mark.args})
    _span({"test": item.nodeid, "causes": causes})


def pytest_runtest_logfinish(nodeid, location):
    _span({"test": nodeid, "end": time.time_ns()})


def _span(record: dict) -> None:
    path = os.environ.get("GT_TEST_SPANS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


# -- the report -------------------------------------------------------------------------------
def read_lines(path: str):
    with open(path) as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def test_at(starts: list[tuple[int, str]], t: int) -> str:
    i = bisect_right(starts, (t, "\uffff")) - 1
    return starts[i][1] if i >= 0 else "(before the first test)"


def descendants(parents: dict[str, str], roots: set[str]):
    """process keys whose ancestry reaches one of roots."""
    memo: dict[str, bool] = {}

    def under(key: str) -> bool:
        chain = []
        while key and key not in memo and key not in roots and len(chain) < 256:
            chain.append(key)
            key = parents.get(key, "")
        found = key in roots or memo.get(key, False)
        for k in chain:
            memo[k] = found
        return found

    return under


def not_stored(metrics_path: str) -> int:
    """Flags the exporter counted but did not store (repeats, over budget), on the whole host."""
    from prometheus_client.parser import text_string_to_metric_families

    with open(metrics_path) as f:
        families = text_string_to_metric_families(f.read())
        return int(sum(
            s.value for fam in families if fam.name == "groundtruth_flags_not_stored"
            for s in fam.samples if s.name.endswith("_total")
        ))  # fmt: skip


def report(events_path: str, spans_path: str, root_pid: int, metrics_path: str = "") -> int:
    parents, roots, flags = {}, set(), []
    for ev in read_lines(events_path):
        if ev["type"] == "ProcessEvent" and ev["kind"] in ("fork", "exec", "scan"):
            parents[ev["process_key"]] = ev["parent_key"]
            if ev["pid"] == root_pid:
                roots.add(ev["process_key"])
        elif ev["type"] == "FlagEvent":
            flags.append(ev)
    spans = list(read_lines(spans_path))
    starts = sorted((s["start"], s["test"]) for s in spans if "start" in s)
    causes = {s["test"]: set(s["causes"]) for s in spans if "causes" in s}
    under = descendants(parents, roots)
    ours = [f for f in flags if under(f["process_key"])]
    security = [f for f in ours if f["flag_class"] == "security"]
    by_purpose = [
        f for f in security
        if f["rule_id"] in causes.get(test_at(starts, f["event_time_ns"]), ())
    ]  # fmt: skip
    unwanted = [f for f in security if f not in by_purpose]
    print(f"flags on the suite's processes: {len(ours)} ({len(flags)} on the whole host)")
    print(f"  by class: {dict(Counter(f['flag_class'] for f in ours))}")
    if metrics_path:
        print(f"flags counted but not stored, so not matched to a test: {not_stored(metrics_path)}")
    print(f"security flags caused on purpose (@pytest.mark.{MARKER}): {len(by_purpose)}")
    for (rule, test), n in sorted(
        Counter((f["rule_id"], test_at(starts, f["event_time_ns"])) for f in by_purpose).items()
    ):
        print(f"  {n} x {rule} in {test}")
    print(f"security flags no test meant to cause: {len(unwanted)}")
    groups: dict[tuple[str, str], list] = {}
    for f in unwanted:
        groups.setdefault((f["rule_id"], test_at(starts, f["event_time_ns"])), []).append(f)
    for (rule, test), group in sorted(groups.items(), key=lambda g: -len(g[1])):
        print(f"  {len(group)} x {rule} in {test}, e.g.:")
        for f in group[:EXAMPLES]:
            print(f"      {f['severity']} {f['process_key']}: {f['description'][:160]}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.flag_watch", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("report", help="security flags raised on the suite's processes")
    r.add_argument("events")
    r.add_argument("spans")
    r.add_argument("--root-pid", type=int, required=True, help="pid of the suite's pytest")
    r.add_argument("--metrics", default="", help="the exporter's /metrics text at the end")
    args = p.parse_args(argv)
    return report(args.events, args.spans, args.root_pid, args.metrics)


if __name__ == "__main__":
    sys.exit(main())
