"""A process outside any container or service, in a login session, has the workload
``session:<program of the session's first process>``, from real activity under a real exporter
(real eBPF): a child starts a new session and logs in (writes /proc/self/loginuid, as
pam_loginuid does, which opens a new audit session), then runs programs. Their execs, forks and
connections carry the session's workload; a second session led by another program has its own;
a process with no login stays ``host``; an exporter started while the session runs finds the
same workload by its start-up scan; and ``baseline learn`` learns the session's programs under
it from the store."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import time

import pytest

from baseline.learn import learn
from schema.events import ConnectionEvent, ProcessEvent
from testservices.exporter import RunningExporter, exporter_config
from testservices.store_helpers import wait_until

pytestmark = pytest.mark.ebpf
NOBODY = 65534
PYTHON = "/usr/bin/python3"  # a link to python3.11: the session is named by the path exec'd
# The session's first process: a new session, a login, then one program (a JSON argv) per line
# of stdin.
LEADER = (
    "import json, os, subprocess, sys\n"
    "os.setsid()\n"
    f"open('/proc/self/loginuid', 'w').write('{NOBODY}')\n"
    "print('in', flush=True)\n"
    "for line in sys.stdin:\n"
    "    subprocess.run(json.loads(line), check=True)\n"
    "    print('done', flush=True)\n"
)
CONNECT = "import socket, sys\nsocket.create_connection(('127.0.0.1', int(sys.argv[1]))).close()\n"


class Session:
    """The leader, driven line by line."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [PYTHON, "-c", LEADER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout.readline().strip() == "in"

    def run(self, *argv: str) -> None:
        self.proc.stdin.write(json.dumps(argv) + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "done"

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


def exec_of(exp, token: str) -> ProcessEvent:
    """The exec of the /bin/true the test ran with ``token``."""
    (found,) = exp.wait_for(
        lambda e: (
            isinstance(e, ProcessEvent) and e.kind == "exec" and e.argv == ["/bin/true", token]
        ),
        what=f"/bin/true {token}",
    )
    return found


@pytest.mark.causes_flags("exec_from_tmp")  # connect.py in its tmp_path, run by python3
def test_a_login_session_is_its_first_programs_workload(flagging_exporter, tmp_path):
    exp = flagging_exporter
    tokens = [secrets.token_hex(4) for _ in range(5)]
    (tmp_path / "connect.py").write_text(CONNECT)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    start_ns = time.time_ns()
    session = Session()
    # Another session, led by sh, which stays until its stdin closes.
    other = subprocess.Popen(
        ["/bin/sh", "-c", f"echo {NOBODY} > /proc/self/loginuid; /bin/true {tokens[1]}; read x"],
        stdin=subprocess.PIPE,
    )
    try:
        session.run("/bin/true", tokens[0])
        session.run(PYTHON, str(tmp_path / "connect.py"), str(port))
        ran = exec_of(exp, tokens[0])
        assert (ran.workload, ran.auid, ran.ppid) == ("session:python3", NOBODY, session.proc.pid)
        # A process of the session that forks (sh, for its first command): the child is in the
        # session from its fork on.
        session.run("/bin/sh", "-c", f"/bin/true {tokens[4]}; /bin/true")
        in_sh = exec_of(exp, tokens[4])
        (fork,) = exp.wait_for(
            lambda e: isinstance(e, ProcessEvent) and e.kind == "fork" and e.pid == in_sh.pid,
            what="sh's fork of /bin/true",
        )
        assert (fork.workload, in_sh.workload) == ("session:python3", "session:python3")
        (connector,) = exp.wait_for(
            lambda e: (
                isinstance(e, ProcessEvent)
                and e.kind == "exec"
                and e.argv == [PYTHON, str(tmp_path / "connect.py"), str(port)]
            ),
            what="the connecting program's exec",
        )
        connections = exp.wait_for(
            lambda e: (
                isinstance(e, ConnectionEvent)
                and e.remote_port == port
                and e.process_key == connector.process_key
            ),
            what="its connection",
        )
        assert {c.workload for c in connections} == {"session:python3"}
        assert exec_of(exp, tokens[1]).workload == "session:sh"
        subprocess.run(["/bin/true", tokens[2]], check=True)  # the test's own: no login
        assert exec_of(exp, tokens[2]).workload == "host"

        # An exporter started while the session runs: the scan names it the same way.
        restarted = RunningExporter(exporter_config(selftest=False)).start()
        try:
            (scanned,) = restarted.wait_for(
                lambda e: (
                    isinstance(e, ProcessEvent) and e.kind == "scan" and e.pid == session.proc.pid
                ),
                what="the session's first process in the scan",
            )
            assert (scanned.workload, scanned.auid) == ("session:python3", NOBODY)
            session.run("/bin/true", tokens[3])
            after = exec_of(restarted, tokens[3])
            (fork,) = restarted.wait_for(
                lambda e: isinstance(e, ProcessEvent) and e.kind == "fork" and e.pid == after.pid,
                what="the scanned first process's fork",
            )
            # The scan saw the first process in its session: its own forks are the session's.
            assert (fork.workload, after.workload) == ("session:python3", "session:python3")
        finally:
            restarted.stop()

        # Learned from the store under the session's workload, with its parent program.
        def stored() -> int:
            return exp.reader.query(
                "SELECT count() FROM process_events WHERE process_key = {k:String} "
                "AND kind = 'exec' AND workload = 'session:python3'",
                {"k": ran.process_key},
            )[0][0]

        wait_until(lambda: stored() == 1, what="the session's exec in the store")
        seen = learn(exp.reader, start_ns, time.time_ns(), "session:python3").seen(
            "session:python3"
        )
        assert ("parent", "/bin/true", "python3") in seen
        assert ("user", "/bin/true", os.getuid()) in seen
    finally:
        session.stop()
        other.stdin.close()
        other.wait(10)
        listener.close()
