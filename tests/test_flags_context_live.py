"""Flags decided from the security context, from real activity: a memfd exec, an exec of a deleted
file, a setuid-root binary run by an unprivileged user (and su, kept low by exception), a shell
under a pseudo-terminal in a container. The real exporter (real eBPF, the shipped rules) sees
each, raises exactly the flag for it about the process the test started (its key from the pid
and start time the test read itself), stores it, and the trace assembled from the store is
rooted where the test put the root: each child logs in (sets its login uid, as ``login`` does,
which opens a new audit session), so it is the first process of its own session; the
container's shell is the first process in its container.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import subprocess
import termios
import time

import pytest

from exporter.proc_scan import start_ticks
from graph.traces import TraceAssembler
from schema.events import FlagEvent, process_key
from tests.cgroups import cgroup_dirs, docker_scope_v2, fake_container_id
from tests.test_flags_live import flags_for
from tests.test_traces_live import PYTHON, SCORING, stored_flags

pytestmark = pytest.mark.ebpf
NOBODY = 65534  # an unprivileged uid and gid that exist on Debian
HOST = "test-host"  # the test exporter's host name


def started(argv: list[str], host: str = HOST, **popen) -> tuple[subprocess.Popen, str]:
    """A child and its process key on ``host``, from its pid and the start time the test reads
    itself (a child stays in /proc until it is waited for)."""
    child = subprocess.Popen(argv, **popen)
    return child, process_key(host, child.pid, start_ticks(child.pid))


def login_then(code: str, auid: int) -> str:
    """Python code that logs in as ``auid`` (a new audit session), then runs ``code``."""
    return f"import os, sys\nopen('/proc/self/loginuid', 'w').write('{auid}')\n{code}"


def only_flag(exp, rule: str, key: str) -> FlagEvent:
    """The one flag of ``rule`` about ``key``, and no other flag about that process."""
    (flag,) = flags_for(exp, rule, key)
    about = [(f.rule_id, f.process_key) for f in exp.sink.snapshot() if isinstance(f, FlagEvent)]
    assert [r for r, k in about if k == key] == [rule]
    return flag


def trace_of(exp, key: str, rule: str, since_ns: int):
    """The trace (assembled from the store) holding the flag of ``rule`` about ``key``."""
    stored_flags(exp, {key: rule})
    traces = TraceAssembler(exp.reader, SCORING).assemble(since_ns - 10**9, time.time_ns())
    (trace,) = [t for t in traces if key in {f["process_key"] for f in t.flags}]
    return trace


def assert_session_trace(trace, key: str, rule: str, auid: int) -> None:
    """The trace is rooted at the test's child (its session's first process), holds exactly
    its flag, and is scored by that flag's severity alone."""
    assert (trace.root["process_key"], trace.root_kind, trace.root["auid"]) == (
        key,
        "session",
        auid,
    )
    assert [(f["process_key"], f["rule_id"]) for f in trace.flags] == [(key, rule)]
    assert trace.paths[key] == [key]
    severity = trace.flags[0]["severity"]
    assert (trace.score, trace.band) == SCORING.score(trace.flags, interactive=False)
    assert trace.score == min(SCORING.weights[severity], SCORING.caps[severity])


# argv[1]: the binary copied into a memfd; argv[2:]: the argv it runs with.
MEMFD_EXEC = (
    "fd = os.memfd_create('gt-flag', 0)\n"
    "os.write(fd, open(sys.argv[1], 'rb').read())\n"
    "os.execv(f'/proc/self/fd/{fd}', sys.argv[2:])\n"
)
# argv[1]: a file the child opens, unlinks, then executes through its fd (fexecve).
DELETED_EXEC = (
    "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
    "os.unlink(sys.argv[1])\n"
    "os.execve(fd, sys.argv[2:], {})\n"
)


@pytest.mark.causes_flags("exec_fileless")
def test_a_memfd_exec_is_fileless_and_critical(flagging_exporter):
    exp, since, auid = flagging_exporter, time.time_ns(), 4501
    argv = ["gt-memfd-true", secrets.token_hex(4)]
    child, key = started([PYTHON, "-c", login_then(MEMFD_EXEC, auid), "/bin/true", *argv])
    assert child.wait() == 0
    flag = only_flag(exp, "exec_fileless", key)
    assert (flag.flag_class, flag.severity, flag.technique) == ("security", "critical", "T1620")
    assert (flag.pid, flag.kind, flag.program) == (child.pid, "rule", "gt-memfd-true")
    assert flag.description.endswith("executed from a memfd")
    assert_session_trace(trace_of(exp, key, "exec_fileless", since), key, "exec_fileless", auid)


@pytest.mark.causes_flags("exec_fileless")
def test_an_exec_of_a_deleted_file_is_fileless(flagging_exporter, run_dir):
    exp, since, auid = flagging_exporter, time.time_ns(), 4502
    # Not in a temporary directory; a name the kernel's command name holds whole (15 bytes).
    program = run_dir / f"gt-del-{secrets.token_hex(3)}"
    shutil.copy("/bin/true", program)
    code = login_then(DELETED_EXEC, auid)
    child, key = started([PYTHON, "-c", code, str(program), "gt-deleted-true"])
    assert child.wait() == 0
    assert not program.exists()
    flag = only_flag(exp, "exec_fileless", key)
    assert (flag.severity, flag.pid, flag.program) == ("critical", child.pid, program.name)
    assert flag.description.endswith("executed from a deleted file")
    assert_session_trace(trace_of(exp, key, "exec_fileless", since), key, "exec_fileless", auid)


# A logged-in user (login uid argv[1]) who is not root: drops to nobody, then runs argv[2:].
USER_RUNS = (
    "open('/proc/self/loginuid', 'w').write(sys.argv[1])\n"
    f"os.setgroups([])\nos.setresgid({NOBODY}, {NOBODY}, {NOBODY})\n"
    f"os.setresuid({NOBODY}, {NOBODY}, {NOBODY})\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


@pytest.mark.causes_flags("privilege_gain")
def test_a_setuid_root_binary_run_by_a_user_is_a_privilege_gain(flagging_exporter, run_dir):
    exp, since, auid = flagging_exporter, time.time_ns(), 4503
    run_dir.chmod(0o755)  # nobody must reach the program; /run is not mounted nosuid
    program = run_dir / f"gt-suid-{secrets.token_hex(3)}"
    shutil.copy("/bin/true", program)
    os.chown(program, 0, 0)
    program.chmod(0o4755)
    code = f"import os, sys\n{USER_RUNS}"
    child, key = started([PYTHON, "-c", code, str(auid), str(program)])
    assert child.wait() == 0
    flag = only_flag(exp, "privilege_gain", key)
    assert (flag.flag_class, flag.severity, flag.technique) == ("security", "high", "T1548.001")
    assert (flag.pid, flag.uid, flag.program, flag.exception) == (
        child.pid,
        NOBODY,
        program.name,
        "",
    )
    assert f"for uid {NOBODY}, login uid {auid}: setuid binary" in flag.description
    assert_session_trace(trace_of(exp, key, "privilege_gain", since), key, "privilege_gain", auid)


@pytest.mark.causes_flags("privilege_gain")
def test_su_run_by_a_user_stays_visible_at_low_severity(flagging_exporter):
    """su is setuid root: its exec is a privilege gain, lowered (not silenced) by the rules
    file's exception. Without a password it fails, having run as root all the same."""
    exp, since, auid = flagging_exporter, time.time_ns(), 4504
    code = f"import os, sys\n{USER_RUNS}"
    child, key = started(
        [PYTHON, "-c", code, str(auid), "/usr/bin/su", "-c", "true", "root"],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert child.wait() == 1  # authentication failure
    flag = only_flag(exp, "privilege_gain", key)
    assert (flag.severity, flag.exception, flag.program) == ("low", "sudo-and-su-stay-low", "su")
    assert (flag.pid, flag.uid) == (child.pid, NOBODY)
    assert_session_trace(trace_of(exp, key, "privilege_gain", since), key, "privilege_gain", auid)


@pytest.mark.causes_flags("interactive_shell_in_container")
def test_a_shell_under_a_pseudo_terminal_in_a_container(flagging_exporter):
    exp, since = flagging_exporter, time.time_ns()
    cid = fake_container_id()
    master, slave = os.openpty()
    tty = os.ttyname(slave).removeprefix("/dev/")
    try:
        with cgroup_dirs(docker_scope_v2(cid)) as (scope,):

            def enter_and_take_terminal():  # after setsid: a new session, the pty its terminal
                (scope / "cgroup.procs").write_text(str(os.getpid()))
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)

            shell, key = started(
                ["/bin/sh", "-c", "exit 7"],
                stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                preexec_fn=enter_and_take_terminal,
            )  # fmt: skip
            assert shell.wait() == 7
            # The same shell without a terminal in the same container: no flag.
            quiet, quiet_key = started(
                ["/bin/sh", "-c", "exit 8"],
                stdin=subprocess.DEVNULL,
                preexec_fn=lambda: (scope / "cgroup.procs").write_text(str(os.getpid())),
            )
            assert quiet.wait() == 8
    finally:
        os.close(master)
        os.close(slave)
    flag = only_flag(exp, "interactive_shell_in_container", key)
    assert (flag.flag_class, flag.severity, flag.technique) == ("security", "medium", "T1059.004")
    assert (flag.pid, flag.container_id, flag.program) == (shell.pid, cid, "sh")
    assert f"on terminal {tty} in container {cid[:12]}" in flag.description
    trace = trace_of(exp, key, "interactive_shell_in_container", since)
    assert (trace.root["process_key"], trace.root_kind, trace.root["container_id"]) == (
        key,
        "container",
        cid,
    )
    assert [(f["process_key"], f["rule_id"]) for f in trace.flags] == [
        (key, "interactive_shell_in_container")
    ]
    # The flag is delivered with the exec that raised it: once the exec is in, so is any flag.
    exp.wait_for(lambda e: e.process_key == quiet_key and e.kind == "exec", what="quiet exec")
    flagged = {f.process_key for f in exp.sink.snapshot() if isinstance(f, FlagEvent)}
    assert quiet_key not in flagged
