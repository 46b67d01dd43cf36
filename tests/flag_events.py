"""Events the flag detector's unit tests feed it."""

from __future__ import annotations

from schema.events import ProcessEvent


def execs_from_tmp(pids, filename: str = "/tmp/loop") -> list[ProcessEvent]:
    """One exec per pid of a program in /tmp under one parent (h:1:1), a nanosecond apart: what
    exec_from_tmp matches. ``filename`` may name each pid's own program with ``{pid}``."""
    return [
        ProcessEvent(kind="exec", pid=p, process_key=f"h:{p}:1", parent_key="h:1:1",
                     filename=filename.format(pid=p), time_ns=10**18 + p)
        for p in pids
    ]  # fmt: skip
