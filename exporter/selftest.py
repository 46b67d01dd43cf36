"""Start-up self-test of the process probe: a canary with known argv, exit code and parent,
credentials, login, terminal and standard fds (a pipe, a file and a socket).

The exporter spawns the canary, drains the probe until the canary's exec and exit arrive, and
compares every field it can know exactly. A field that does not match is reported and blanked
from then on (``ProcessProbe.untrusted``): wrong ground truth is worse than none.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from exporter.netns import run_in_netns
from exporter.proc_scan import read_id, stat_tty_nr
from exporter.security_context import TtyDrivers, device_tty_name

CANARY_EXIT_CODE = 42

# Which event fields a failed check makes untrustworthy.
UNTRUSTED_FIELDS = {
    "argv": {"argv", "argv_truncated"},
    "ppid": {"ppid", "parent_key"},
    "uid": {"uid", "gid", "prev_uid", "prev_gid"},
    "exit_code": {"exit_code", "signal", "core_dumped", "outcome"},
    "process_key": {"process_key", "parent_key"},
    "euid": {"euid", "egid", "prev_euid", "prev_egid"},
    "auid": {"auid", "session_id"},
    "tty": {"tty"},
    "stdio": {"stdin_type", "stdout_type", "stderr_type"},
    "filename": {"filename"},
    "exe": {"exe_deleted", "exe_memfd", "exe_script"},
    "exe_path": {"exe_path"},
    "cwd": {"cwd"},
}
# The canary's standard fds: one of each kind a probe could confuse.
CANARY_STDIO = ("pipe", "file", "socket")


def run_canary(argv: list[str]) -> subprocess.Popen:
    """The canary, run to its end with a pipe, a file and a socket as its standard fds."""
    ours, theirs = socket.socketpair()
    with tempfile.TemporaryFile() as out, ours, theirs:
        child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=theirs.fileno())
        child.communicate()  # closes its stdin (the pipe it was given), then waits
    return child


def run_process_selftest(
    probe, on_events, timeout: float = 10.0, netns: str = ""
) -> dict[str, str]:
    """Spawn the canary; return {field: what was wrong} ({} when every field matched).

    ``on_events`` receives every drained batch, so events seen meanwhile are not lost. With
    ``netns`` (the exporter's filter) the canary runs in that network namespace.
    """
    token = f"groundtruth-selftest-{uuid.uuid4().hex[:8]}"
    argv = ["/bin/sh", "-c", f"exit {CANARY_EXIT_CODE}", token]
    child = run_in_netns(netns, run_canary, argv)
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
        "euid": ((exec_ev.euid, exec_ev.egid), (os.geteuid(), os.getegid())),
        "auid": ((exec_ev.auid, exec_ev.session_id), own_login()),
        "tty": (exec_ev.tty, own_tty()),
        "stdio": ((exec_ev.stdin_type, exec_ev.stdout_type, exec_ev.stderr_type), CANARY_STDIO),
        "filename": (exec_ev.filename, argv[0]),
        "exe": ((exec_ev.exe_deleted, exec_ev.exe_memfd, exec_ev.exe_script), (0, 0, 0)),
        # Where the canary's shell really is (/bin/sh is a symlink on most systems).
        "exe_path": (exec_ev.exe_path, os.path.realpath(argv[0])),
        "cwd": (exec_ev.cwd, os.path.realpath(os.getcwd())),  # the canary's is ours
    }
    for field, (got, want) in expected.items():
        if got != want:
            problems[field] = f"canary {field} decoded as {got!r}, expected {want!r}"
    return problems


def own_login() -> tuple[int, int]:
    """This process's login uid and session id, which the canary inherits."""
    return read_id(Path("/proc/self/loginuid")), read_id(Path("/proc/self/sessionid"))


def own_tty() -> str:
    """This process's controlling terminal, which the canary inherits ('' for a daemon)."""
    tty_nr = stat_tty_nr(Path("/proc/self/stat").read_text())
    return device_tty_name(tty_nr, TtyDrivers.read())
