"""The security context of process events against real processes: terminals, standard fds,
login uid, deleted and memfd executables, setuid binaries and credential changes. Every value
asserted is one this test caused."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import time
import uuid
from pathlib import Path

import pytest

from schema.events import UNSET_ID
from testservices.exporter import (
    RunningExporter,
    exporter_config,
    exporter_with_wrong_offset,
    selftest_ok,
)

NOBODY = 65534  # an unprivileged uid and gid that exist on Debian


def token() -> str:
    return f"gt-sec-{uuid.uuid4().hex[:8]}"


def exec_with(exporter, pid: int, argv: list[str]):
    """The exec event of `pid` that ran `argv` (a wrapper may have exec'd before it)."""
    found = exporter.wait_for(
        lambda e: e.pid == pid and e.kind == "exec" and e.argv == argv, what=f"exec of {argv}"
    )
    return found[0]


# Child programs (python -c). Each ends by exec'ing the program and arguments it is given.
LOGIN_UID = 4321
SET_LOGIN_UID = f"open('/proc/self/loginuid', 'w').write('{LOGIN_UID}')\n"  # as root, unset
LOGIN_THEN_EXEC = f"import os, sys\n{SET_LOGIN_UID}os.execv(sys.argv[1], sys.argv[1:])\n"
# argv[1]: the binary to copy into a memfd; argv[2:]: the argv it runs with.
MEMFD_EXEC = (
    "import os, sys\n"
    "fd = os.memfd_create('gt-test', 0)\n"
    "os.write(fd, open(sys.argv[1], 'rb').read())\n"
    "{before_exec}"
    "os.execv(f'/proc/self/fd/{{fd}}', sys.argv[2:])\n"
)


def python_child(code: str, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], **popen)


def take_terminal() -> None:
    """In the child (after setsid): make stdin, a pty slave, the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_a_child_under_a_pseudo_terminal_reports_it(running_exporter):
    master, slave = os.openpty()
    argv = ["/bin/true", token()]
    try:
        child = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
            preexec_fn=take_terminal,
        )  # fmt: skip
        assert child.wait() == 0
        exec_ = exec_with(running_exporter, child.pid, argv)
        assert exec_.tty == os.ttyname(slave).removeprefix("/dev/")
        assert exec_.tty.startswith("pts/")
        assert (exec_.stdin_type, exec_.stdout_type, exec_.stderr_type) == ("tty",) * 3
        assert (exec_.exe_deleted, exec_.exe_memfd) == (0, 0)
    finally:
        os.close(master)
        os.close(slave)


def test_a_child_without_a_terminal_has_none(running_exporter):
    argv = ["/bin/true", token()]
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    assert child.wait() == 0
    exec_ = exec_with(running_exporter, child.pid, argv)
    assert exec_.tty == ""
    assert exec_.stdin_type == "other"  # /dev/null: a character device that is no terminal


def test_socket_pipe_and_file_on_stdin_stdout_stderr(running_exporter, tmp_path):
    argv = ["/bin/true", token()]
    ours, theirs = socket.socketpair()
    with ours, theirs, open(tmp_path / "stderr", "wb") as err:
        child = subprocess.Popen(argv, stdin=theirs, stdout=subprocess.PIPE, stderr=err)
        child.communicate()
    exec_ = exec_with(running_exporter, child.pid, argv)
    assert (exec_.stdin_type, exec_.stdout_type, exec_.stderr_type) == ("socket", "pipe", "file")


def test_a_closed_fd_is_none(running_exporter):
    argv = ["/bin/true", token()]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, preexec_fn=lambda: os.close(0))
    child.communicate()
    exec_ = exec_with(running_exporter, child.pid, argv)
    assert (exec_.stdin_type, exec_.stdout_type) == ("none", "pipe")


@pytest.mark.causes_flags("exec_fileless", "exec_from_tmp")  # a file in its tmp_path
def test_an_unlinked_executable_is_deleted_and_not_a_memfd(running_exporter, tmp_path):
    """Named like a memfd, but an ordinary file unlinked before fexecve."""
    program = tmp_path / "memfd:not-one"
    shutil.copy("/bin/true", program)
    argv = ["gt-deleted-true", token()]
    code = (
        "import os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
        "os.unlink(sys.argv[1])\n"
        "os.execve(fd, sys.argv[2:], {})\n"
    )
    child = python_child(code, str(program), *argv)
    assert child.wait() == 0
    assert not program.exists()
    exec_ = exec_with(running_exporter, child.pid, argv)
    assert (exec_.exe_deleted, exec_.exe_memfd) == (1, 0)
    assert exec_.exe_path == os.path.realpath(program)  # the name it had


@pytest.mark.causes_flags("exec_fileless")
def test_a_memfd_exec_is_a_memfd(running_exporter):
    argv = ["gt-memfd-true", token()]
    child = python_child(MEMFD_EXEC.format(before_exec=""), "/bin/true", *argv)
    assert child.wait() == 0
    exec_ = exec_with(running_exporter, child.pid, argv)
    assert (exec_.exe_deleted, exec_.exe_memfd) == (1, 1)  # a memfd never had a link
    assert exec_.exe_path == ""  # nor a directory


def test_a_set_login_uid_and_its_session_are_reported(running_exporter):
    """Writing loginuid (as root, while unset) starts a new audit session, as a login does."""
    argv = ["/bin/true", token()]
    code = (
        "import os, sys\n"
        f"{SET_LOGIN_UID}"
        "print(open('/proc/self/sessionid').read(), flush=True)\n"
        "os.execv(sys.argv[1], sys.argv[1:])\n"
    )
    child = python_child(code, *argv, stdout=subprocess.PIPE, text=True)
    session = int(child.communicate()[0])
    assert child.returncode == 0
    exec_ = exec_with(running_exporter, child.pid, argv)
    assert (exec_.auid, exec_.session_id) == (LOGIN_UID, session)
    assert session != UNSET_ID


def test_credential_changes_are_events_with_before_and_after(running_exporter):
    """A root child with threads changes its gid (there, back, and there again), then its uid;
    calls that change nothing or fail make no event, and each change is one event although
    every thread makes the call (glibc repeats it in each, on both CPUs at once)."""
    marker = ["/bin/true", token()]
    code = (
        "import os, sys, threading, time\n"
        "for _ in range(8):\n"
        "    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
        "os.setresuid(0, 0, 0)\n"  # no change
        f"os.setresgid({NOBODY}, {NOBODY}, {NOBODY})\n"
        "os.setresgid(0, 0, 0)\n"
        f"os.setresgid({NOBODY}, {NOBODY}, {NOBODY})\n"
        f"os.setresuid({NOBODY}, {NOBODY}, {NOBODY})\n"
        "try:\n    os.setuid(0)\nexcept PermissionError:\n    pass\n"  # fails: no event
        "os.execv(sys.argv[1], sys.argv[1:])\n"
    )
    uid, gid = os.getuid(), os.getgid()
    assert uid == 0  # the eBPF suite runs as root
    child = python_child(code, *marker)
    assert child.wait() == 0
    # The exec comes after every change: once it is here, so are they.
    exec_ = exec_with(running_exporter, child.pid, marker)
    assert (exec_.uid, exec_.euid, exec_.gid, exec_.egid) == (NOBODY,) * 4
    changes = [
        (e.outcome, (e.prev_uid, e.prev_euid, e.prev_gid, e.prev_egid),
         (e.uid, e.euid, e.gid, e.egid))
        for e in running_exporter.sink.snapshot()
        if e.pid == child.pid and e.kind == "cred_change"
    ]  # fmt: skip
    assert gid == 0
    assert changes == [
        ("setresgid", (uid, uid, gid, gid), (uid, uid, NOBODY, NOBODY)),
        ("setresgid", (uid, uid, NOBODY, NOBODY), (uid, uid, gid, gid)),
        ("setresgid", (uid, uid, gid, gid), (uid, uid, NOBODY, NOBODY)),
        ("setresuid", (uid, uid, NOBODY, NOBODY), (NOBODY, NOBODY, NOBODY, NOBODY)),
    ]


@pytest.mark.causes_flags("exec_from_tmp", "privilege_gain")
def test_a_setuid_root_binary_run_by_a_user_has_euid_0(running_exporter):
    directory = Path(tempfile.mkdtemp(prefix="gt-setuid-"))  # not under pytest's 0700 dirs
    try:
        directory.chmod(0o755)
        program = directory / "gt-setuid-true"
        shutil.copy("/bin/true", program)
        os.chown(program, 0, 0)
        program.chmod(0o4755)
        argv = [str(program), token()]
        child = subprocess.Popen(argv, user=NOBODY, group=NOBODY, extra_groups=[])
        assert child.wait() == 0
        exec_ = exec_with(running_exporter, child.pid, argv)
        assert (exec_.uid, exec_.euid, exec_.gid, exec_.egid) == (NOBODY, 0, NOBODY, NOBODY)
    finally:
        shutil.rmtree(directory)


@pytest.mark.causes_flags("exec_fileless", "exec_from_tmp")  # a file in its tmp_path
def test_scanned_processes_carry_the_same_context(ebpf_problems, tmp_path):
    """Processes started before the exporter: the /proc scan fills what exec would have."""
    from tests.fixtures.ebpf import skip_or_fail_without_ebpf

    skip_or_fail_without_ebpf(ebpf_problems)
    master, slave = os.openpty()
    program = tmp_path / "gt-deleted-sleep"
    shutil.copy("/bin/sleep", program)
    # Under a terminal, with a login uid, running an unlinked copy of sleep.
    code = (
        f"import os, sys\n{SET_LOGIN_UID}"
        "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
        "os.unlink(sys.argv[1])\n"
        "os.execve(fd, ['sleep', '30'], {})\n"
    )
    at_terminal = python_child(
        code, str(program), stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=take_terminal,
    )  # fmt: skip
    # A memfd sleep on a socket, a pipe and nothing.
    # (fd 2 closed after memfd_create, which would have taken the free fd 2)
    memfd_code = MEMFD_EXEC.format(before_exec="os.close(2)\n")
    ours, theirs = socket.socketpair()
    fileless = python_child(
        memfd_code, "/bin/sleep", "sleep", "30", stdin=theirs, stdout=subprocess.PIPE
    )
    exp = None
    try:
        for proc in (at_terminal, fileless):  # both are sleeping in their final program
            exe = Path(f"/proc/{proc.pid}/exe")
            while not os.readlink(exe).endswith(" (deleted)"):
                assert proc.poll() is None
                time.sleep(0.01)
        exp = RunningExporter(exporter_config(selftest=False)).start()
        scanned = {e.pid: e for e in exp.sink.snapshot() if e.kind == "scan"}
        term, mem = scanned[at_terminal.pid], scanned[fileless.pid]
        assert term.tty == os.ttyname(slave).removeprefix("/dev/")
        assert (term.stdin_type, term.stdout_type, term.stderr_type) == ("tty",) * 3
        assert term.auid == LOGIN_UID and term.session_id != UNSET_ID
        assert (term.exe_deleted, term.exe_memfd) == (1, 0)
        assert term.exe_path == os.path.realpath(program)  # the name it had, as at exec
        assert (term.euid, term.egid) == (os.geteuid(), os.getegid())
        assert mem.tty == ""
        assert mem.exe_path == ""
        assert (mem.stdin_type, mem.stdout_type, mem.stderr_type) == ("socket", "pipe", "none")
        assert (mem.exe_deleted, mem.exe_memfd) == (1, 1)
    finally:
        for proc in (at_terminal, fileless):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        ours.close()
        theirs.close()
        os.close(master)
        os.close(slave)
        if exp is not None:
            exp.stop()


def test_a_wrong_fd_offset_fails_the_selftest_and_blanks_the_fd_types(ebpf_problems):
    """A wrong struct offset (as a kernel change could cause) must not become wrong data."""
    from tests.fixtures.ebpf import skip_or_fail_without_ebpf

    skip_or_fail_without_ebpf(ebpf_problems)
    exp = exporter_with_wrong_offset("INODE_MODE", ("inode", "i_rdev"))
    try:
        assert selftest_ok(exp) == 0
        argv = ["/bin/true", token()]
        child = subprocess.Popen(argv, stdout=subprocess.PIPE)
        child.communicate()
        exec_ = exec_with(exp, child.pid, argv)
        assert (exec_.stdin_type, exec_.stdout_type, exec_.stderr_type) == ("", "", "")
        assert (exec_.euid, exec_.egid) == (os.geteuid(), os.getegid())  # the rest still flows
    finally:
        exp.stop()


def test_without_audit_support_the_login_uid_is_unset(ebpf_problems):
    """On a kernel built without audit (no task_struct.loginuid) the probe still loads."""
    from exporter.probes.process import ProcessProbe
    from tests.fixtures.ebpf import skip_or_fail_without_ebpf

    skip_or_fail_without_ebpf(ebpf_problems)
    login_defines = {"TASK_LOGINUID", "TASK_SESSIONID"}  # what login_offsets() leaves out

    class WithoutAudit(ProcessProbe):
        def defines(self):
            return {k: v for k, v in super().defines().items() if k not in login_defines}

    exp = RunningExporter(exporter_config(selftest=False))
    exp.exporter.process_probe.__class__ = WithoutAudit
    exp.start()
    try:
        argv = ["/bin/true", token()]
        child = python_child(LOGIN_THEN_EXEC, *argv)
        assert child.wait() == 0
        exec_ = exec_with(exp, child.pid, argv)
        assert (exec_.auid, exec_.session_id) == (UNSET_ID, UNSET_ID)
        assert exec_.euid == os.geteuid()  # the rest of the context is read
    finally:
        exp.stop()
