"""Start-up self-test of the process probe: a canary with known argv, exit code and parent.

The exporter spawns the canary, drains the probe until the canary's exec and exit arrive, and
compares every field it can know exactly. A field that does not match is reported and blanked
from then on (``ProcessProbe.untrusted``): wrong ground truth is worse than none.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid

CANARY_EXIT_CODE = 42

# Which event fields a failed check makes untrustworthy.
UNTRUSTED_FIELDS = {
    "argv": {"argv", "argv_truncated"},
    "ppid": {"ppid", "parent_key"},
    "uid": {"uid", "gid"},
    "exit_code": {"exit_code", "signal", "core_dumped", "outcome"},
    "process_key": {"process_key", "parent_key"},
}


def run_process_selftest(probe, on_events, timeout: float = 10.0) -> dict[str, str]:
    """Spawn the canary; return {field: what was wrong} ({} when every field matched).

    ``on_events`` receives every drained batch, so events seen meanwhile are not lost.
    """
    token = f"groundtruth-selftest-{uuid.uuid4().hex[:8]}"
    argv = ["/bin/sh", "-c", f"exit {CANARY_EXIT_CODE}", token]
    child = subprocess.Popen(argv)
    child.wait()
    seen = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not {"exec", "exit"} <= seen.keys():
        batch = probe.drain()
        on_events(batch)
        for ev in batch:
            if ev.pid == child.pid and ev.kind in ("exec", "exit"):
                seen[ev.kind] = ev
        time.sleep(0.02)
    problems = {}
    exec_ev, exit_ev = seen.get("exec"), seen.get("exit")
    if exec_ev is None or exit_ev is None:
        missing = ", ".join(k for k in ("exec", "exit") if k not in seen)
        return {"events": f"no {missing} event for canary pid {child.pid} within {timeout}s"}
    expected = {
        "argv": (exec_ev.argv, argv),
        "ppid": (exec_ev.ppid, os.getpid()),
        "uid": (exec_ev.uid, os.getuid()),
        "exit_code": (exit_ev.exit_code, CANARY_EXIT_CODE),
        "process_key": (exit_ev.process_key, exec_ev.process_key),
    }
    for field, (got, want) in expected.items():
        if got != want:
            problems[field] = f"canary {field} decoded as {got!r}, expected {want!r}"
    return problems
