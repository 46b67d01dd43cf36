"""Login sessions' workloads from /proc, on real processes the test starts: the first process of
a session is the topmost holding its id (not the test, not a child), named as exec'd, found
once per session; an unset session is left to its cgroup, an ended one is unknown ('')."""

from __future__ import annotations

import subprocess
from pathlib import Path

from exporter.containers import HOST
from exporter.proc_read import read_id
from exporter.sessions import SessionWorkloads, first_process
from schema.events import UNSET_ID

NOBODY = 65534
# Logs in (a new audit session), then starts a child that waits: prints both pids.
LOGIN_THEN_CHILD = (
    "import subprocess, sys\n"
    f"open('/proc/self/loginuid', 'w').write('{NOBODY}')\n"
    "child = subprocess.Popen(['/bin/sleep', '30'])\n"
    "print(child.pid, flush=True)\n"
    "sys.stdin.read()\n"
    "child.kill()\n"
)


def test_the_first_process_of_a_session_names_it():
    leader = subprocess.Popen(
        ["/usr/bin/python3", "-c", LOGIN_THEN_CHILD],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        child = int(leader.stdout.readline())
        session = read_id(Path(f"/proc/{child}/sessionid"))
        assert session != UNSET_ID and session == read_id(Path(f"/proc/{leader.pid}/sessionid"))
        assert first_process(session, (child, leader.pid)) == leader.pid
        sessions = SessionWorkloads()
        found = sessions.container(session, child, leader.pid, HOST)
        assert (found.id, found.workload) == ("", "session:python3")  # as exec'd, not 3.11
        assert sessions.container(session, 0, 0, HOST) is found  # cached: no process needed
        assert sessions.lookups == 1
    finally:
        leader.stdin.close()
        leader.wait(10)
    # Ended before it was asked: unknown, and asked again next time.
    later = SessionWorkloads()
    assert later.container(session, child, leader.pid, HOST).workload == ""
    assert later.lookups == 1 and later.container(session, 0, 0, HOST).workload == ""
    assert later.lookups == 2


def test_no_session_is_left_to_the_cgroup():
    assert SessionWorkloads().container(UNSET_ID, 1, 0, HOST) is HOST
