"""Traces from real activity: the real exporter (real eBPF, the shipped rules) flags what the test
does, the flags reach the store (chDB), and the trace assembled from it links them to their
root cause.

- An attack chain in its own login session (the test sets the login uid, as ``login`` or
  ``sshd`` do, which opens a new audit session): a reverse shell (``sh`` with a socket on its
  standard fds, connected to a listener the test runs), through which the test then drops a
  program in /tmp and runs it. Two flags, one trace, rooted at the session's first process.
- An unrelated crash (SIGSEGV) in another session: a trace of its own.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time

import pytest

from graph.traces import TraceAssembler, TraceScoring
from mixin.config import load_config

SCORING = TraceScoring.from_thresholds(load_config().raw["thresholds"])
# Debian's interpreter, never under /tmp (a checkout's virtual environment may be, and a program
# run from /tmp is a flag of its own): the flags here are exactly those the test means.
PYTHON = "/usr/bin/python3"
# A child that logs in as `uid` (a new audit session), then runs argv.
LOGIN = "import os, sys\nopen('/proc/self/loginuid', 'w').write(sys.argv[1])\nos.execv(sys.argv[2], sys.argv[3:])\n"  # noqa: E501


def stored_flags(exp, wanted: dict[str, str], timeout: float = 60.0) -> None:
    """Waits until the store holds each {process key: rule} flag."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = set(exp.reader.query("SELECT process_key, rule_id FROM flag_events"))
        if set(wanted.items()) <= rows:
            return
        time.sleep(0.2)
    raise AssertionError(f"flags {wanted} not stored within {timeout}s; stored: {rows}")


def key_of(exp, pid: int, predicate=lambda e: True) -> str:
    found = exp.wait_for(lambda e: e.pid == pid and e.kind == "exec" and predicate(e))
    return found[-1].process_key


def reverse_shell_dropping_a_program(uid: int) -> tuple[int, int]:
    """(pid of the reverse shell, pid of the program it ran from /tmp)."""
    dropped = f"/tmp/gt-trace-{secrets.token_hex(4)}"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        connect = (
            f"import socket, os, sys\ns = socket.create_connection(('127.0.0.1', {port}))\n"
            "for fd in (0, 1, 2): os.dup2(s.fileno(), fd)\n"
            f"open('/proc/self/loginuid', 'w').write('{uid}')\nos.execv('/bin/sh', ['sh'])\n"
        )
        shell = subprocess.Popen([PYTHON, "-c", connect])
        conn, _ = listener.accept()
        with conn:
            script = f"cp /bin/true {dropped}; {dropped} & echo $!; wait; rm -f {dropped}; exit\n"
            conn.sendall(script.encode())
            out = b""
            while not out.endswith(b"\n"):
                chunk = conn.recv(64)
                assert chunk, "the shell ended early"
                out += chunk
        assert shell.wait(30) == 0
    return shell.pid, int(out.strip())


@pytest.mark.causes_flags("reverse_shell", "exec_from_tmp")
def test_two_flags_of_one_chain_share_a_trace_and_an_unrelated_flag_does_not(
    flagging_exporter,
):
    exp = flagging_exporter
    started_ns = time.time_ns()
    shell_pid, dropped_pid = reverse_shell_dropping_a_program(uid=4242)
    crash = subprocess.Popen([PYTHON, "-c", LOGIN, "4343", "/bin/sh", "sh", "-c", "kill -SEGV $$"])
    assert crash.wait() == -11

    shell = key_of(exp, shell_pid, lambda e: e.filename == "/bin/sh")
    dropped = key_of(exp, dropped_pid)
    crashed = key_of(exp, crash.pid, lambda e: e.filename == "/bin/sh")
    stored_flags(exp, {shell: "reverse_shell", dropped: "exec_from_tmp", crashed: "crash"})

    traces = TraceAssembler(exp.reader, SCORING).assemble(started_ns - 10**9, time.time_ns())
    by_root = {t.root["process_key"]: t for t in traces}
    attack = by_root[shell]
    assert attack.root_kind == "session" and attack.root["auid"] == 4242
    assert {(f["process_key"], f["rule_id"]) for f in attack.flags} >= {
        (shell, "reverse_shell"),
        (dropped, "exec_from_tmp"),
    }
    assert attack.paths[dropped] == [shell, dropped]
    weights = SCORING.weights
    expected = min(weights["critical"] + weights["high"], SCORING.caps["critical"])
    assert (attack.score, attack.band) == (round(expected), "critical")

    crash_trace = by_root[crashed]
    assert crash_trace is not attack and crash_trace.root["auid"] == 4343
    assert [f["rule_id"] for f in crash_trace.flags] == ["crash"]
    assert crashed not in attack.process_keys and shell not in crash_trace.process_keys
