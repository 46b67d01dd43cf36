"""Flags from real activity: the real exporter (real eBPF probes, TCP probe on, the shipped rules
file and thresholds) sees what each test does and raises exactly the flag for it, about exactly
the process the test started; flags reach the store (chDB) and groundtruth_flags_total."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from exporter.proc_scan import start_ticks
from mixin.config import load_config
from schema.events import DEEP_PATH, FlagEvent, ListenEvent, process_key
from tests.cgroups import (
    cgroup_dirs,
    docker_scope_v2,
    fake_container_id,
    oom_killed_in_container,
    run_in,
)

pytestmark = pytest.mark.ebpf
THRESHOLDS = load_config().raw["thresholds"]


def flags_for(exp, rule: str, key: str, timeout: float = 15.0) -> list[FlagEvent]:
    return exp.wait_for(
        lambda e: isinstance(e, FlagEvent) and e.rule_id == rule and e.process_key == key,
        timeout=timeout,
        what=f"{rule} flag for {key}",
    )


def key_of(exp, pid: int, kind: str = "exec") -> str:
    return exp.events_of(pid, (kind,))[kind][-1].process_key


def flags_total(exp, rule: str) -> float:
    return sum(
        v
        for (name, labels), v in exp.scrape().items()
        if name == "groundtruth_flags_total" and ("rule", rule) in labels
    )


def run_each(exp, runs) -> tuple[dict, dict]:
    """Runs each (name, argv, cwd) to a clean end, in order: ({name: its process key}, {name: its
    exec event})."""
    keys, execs = {}, {}
    for name, argv, cwd in runs:
        child = subprocess.Popen(argv, cwd=cwd)
        assert child.wait() == 0
        keys[name] = key_of(exp, child.pid)
        execs[name] = exp.events_of(child.pid, ("exec",))["exec"][-1]
    return keys, execs


def copy_program(source: str, directory: Path, name: str) -> Path:
    target = directory / name
    shutil.copy(source, target)
    return target


@pytest.mark.causes_flags("exec_from_tmp")
def test_exec_from_tmp_is_flagged_and_stored(flagging_exporter):
    exp = flagging_exporter
    before = flags_total(exp, "exec_from_tmp")
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        program = copy_program("/bin/true", Path(tmp), f"dropped-{secrets.token_hex(3)}")
        child = subprocess.Popen([str(program)])
        child.wait()
    key = key_of(exp, child.pid)
    (flag,) = flags_for(exp, "exec_from_tmp", key)
    assert (flag.flag_class, flag.severity, flag.technique) == ("security", "high", "T1204.002")
    assert (flag.pid, flag.program, flag.parent_key) == (
        child.pid,
        program.name,
        process_key("test-host", os.getpid(), start_ticks(os.getpid())),
    )
    assert str(program) in flag.description
    # Other processes on this host may be flagged meanwhile: at least this one was counted.
    assert flags_total(exp, "exec_from_tmp") >= before + 1
    assert exp.scrape()[("groundtruth_events_total", (("type", "flag_rule"),))] >= 1
    rows = []
    deadline = time.monotonic() + 20
    while not rows and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = exp.reader.query(
            "SELECT rule_id, severity, process_key, pid, trigger_event_id FROM flag_events "
            "WHERE host = {h:String} AND process_key = {k:String}",
            {"h": "test-host", "k": key},
        )
    exec_id = exp.events_of(child.pid, ("exec",))["exec"][-1].event_id
    assert rows == [("exec_from_tmp", "high", key, child.pid, exec_id)]


@pytest.mark.causes_flags("exec_from_tmp")
def test_exec_from_tmp_sees_the_file_run_and_the_name_it_was_run_by(flagging_exporter):
    """./x run in /tmp and a symlink elsewhere to a file in /tmp are flagged by where the file
    is (exe_path); a script in /tmp run by its path, or by ./ from /tmp, by that name (joined
    to the working directory: its exe_path is the interpreter's); a symlink in /tmp to a system
    binary is not flagged. That absence is read
    once the later execs' flags are there: the detector follows events in order."""
    exp = flagging_exporter
    with (
        tempfile.TemporaryDirectory(dir="/tmp") as tmp,
        tempfile.TemporaryDirectory(dir="/run") as elsewhere,
    ):
        tmp = os.path.realpath(tmp)
        program = copy_program("/bin/true", Path(tmp), f"dropped-{secrets.token_hex(3)}")
        # Two scripts: one program run twice under one parent would be a repeat of one flag.
        script, other_script = Path(tmp, "dropped.sh"), Path(tmp, "relative.sh")
        for path in (script, other_script):
            path.write_text("#!/bin/sh\nexit 0\n")
            path.chmod(0o755)
        link = Path(elsewhere, "innocent-name")
        link.symlink_to(program)
        system = Path(tmp, "system-true")
        system.symlink_to("/usr/bin/true")
        keys, execs = run_each(exp, (("system", [str(system)], None),
                                     ("relative", [f"./{program.name}"], tmp),
                                     ("link", [str(link)], None),
                                     ("script", [str(script)], None),
                                     ("relative script", ["./relative.sh"], tmp)))  # fmt: skip
    system_key = keys.pop("system")
    flags = {name: flags_for(exp, "exec_from_tmp", key)[0] for name, key in keys.items()}
    assert {name: f.program for name, f in flags.items()} == {
        "relative": program.name, "link": "innocent-name", "script": "dropped.sh",
        "relative script": "relative.sh",
    }  # fmt: skip
    description = flags["relative script"].description
    assert f"./relative.sh executed, which is {other_script}" in description
    assert f"./{program.name} executed, which is {program}" in flags["relative"].description
    assert f"{link} executed, which is {program}" in flags["link"].description
    assert execs["script"].exe_path == os.path.realpath("/bin/sh")  # the interpreter
    assert (execs["script"].exe_script, execs["system"].exe_script) == (1, 0)
    assert not [
        e for e in exp.sink.snapshot() if isinstance(e, FlagEvent) and e.process_key == system_key
    ]


@pytest.mark.causes_flags("exec_from_tmp")
def test_exec_from_tmp_sees_a_script_given_to_an_interpreter(flagging_exporter):
    """sh /tmp/.../given.sh, python3 -u given.py run in /tmp, and sh -c '. /tmp/.../sourced.sh':
    flagged by the script, named by it; sh -c run in /tmp (inline code, no script) is not
    flagged, read once the later execs' flags are there."""
    exp = flagging_exporter
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        tmp = os.path.realpath(tmp)
        shell_script, python_script = Path(tmp, "given.sh"), Path(tmp, "given.py")
        sourced = Path(tmp, "sourced.sh")
        for script in (shell_script, sourced):
            script.write_text("exit 0\n")  # not executable: the interpreter reads it
        python_script.write_text("pass\n")
        runs = (("inline", ["/bin/sh", "-c", "exit 0"], tmp),
                ("shell", ["/bin/sh", str(shell_script)], None),
                ("python", ["/usr/bin/python3", "-u", "given.py"], tmp),
                ("sourced", ["/bin/sh", "-c", f". {sourced}"], None))  # fmt: skip
        keys, _ = run_each(exp, runs)
    inline_key = keys.pop("inline")
    flags = {name: flags_for(exp, "exec_from_tmp", key)[0] for name, key in keys.items()}
    assert {name: (f.program, f.description) for name, f in flags.items()} == {
        "shell": ("given.sh", f"sh ran the script {shell_script} (from a temporary directory)"),
        "python": ("given.py",
                   f"python3 ran the script {python_script} (from a temporary directory)"),
        "sourced": ("sourced.sh", f"sh loaded {sourced} (from a temporary directory)"),
    }  # fmt: skip
    assert not [
        e for e in exp.sink.snapshot() if isinstance(e, FlagEvent) and e.process_key == inline_key
    ]


@pytest.mark.causes_flags("reverse_shell")
def test_a_shell_run_by_another_name_with_a_socket_is_a_reverse_shell(flagging_exporter, run_dir):
    """bash run through a link named like a kernel thread, its standard input and output a
    socket: the rules judge the file the kernel ran, not the name its runner chose."""
    exp = flagging_exporter
    link = run_dir / f"kworker-{secrets.token_hex(3)}"
    link.symlink_to("/bin/bash")
    ours, theirs = socket.socketpair()
    with ours, theirs:
        child = subprocess.Popen([str(link), "-c", "exit 3"], stdin=theirs, stdout=theirs)
        assert child.wait() == 3
    (exec_,) = exp.events_of(child.pid, ("exec",))["exec"]
    assert (exec_.filename, exec_.exe_path) == (str(link), os.path.realpath("/bin/bash"))
    (flag,) = flags_for(exp, "reverse_shell", exec_.process_key)
    assert (flag.pid, flag.program) == (child.pid, link.name)
    assert "socket" in flag.description


@pytest.mark.causes_flags("exec_from_tmp")
def test_exec_from_the_lock_directory_every_user_may_write_is_flagged(flagging_exporter):
    """/run/lock is writable by every user, as /tmp is: a program dropped there and run is
    flagged, by where the file is."""
    exp = flagging_exporter
    lock = Path("/run/lock")
    lock.mkdir(mode=0o1777, exist_ok=True)  # Debian's; a bare machine may not have it
    program = copy_program("/bin/true", lock, f"gt-dropped-{secrets.token_hex(3)}")
    try:
        child = subprocess.Popen([str(program)])
        assert child.wait() == 0
    finally:
        program.unlink()
    (flag,) = flags_for(exp, "exec_from_tmp", key_of(exp, child.pid))
    assert (flag.pid, flag.program) == (child.pid, program.name)
    assert str(program) in flag.description


@pytest.mark.causes_flags("exec_from_tmp")
def test_exec_from_tmp_sees_a_deep_or_long_path(flagging_exporter):
    """./x run from 40 directories down in /tmp, and from under three 200-byte names (whose
    path the kernel keeps only the top of): where they are is still read, so both are flagged
    (before the walker's tail calls, both paths read '' and a relative name said nothing)."""
    exp = flagging_exporter
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        tmp = os.path.realpath(tmp)
        keys = {}
        for name, where in (("deep", Path(tmp).joinpath(*["d"] * 40)),
                            ("long", Path(tmp, "A" * 200, "B" * 200, "C" * 200))):  # fmt: skip
            where.mkdir(parents=True)
            copy_program("/bin/true", where, f"{name}-{secrets.token_hex(3)}")
            child = subprocess.Popen([f"./{next(where.iterdir()).name}"], cwd=where)
            assert child.wait() == 0
            keys[name] = key_of(exp, child.pid)
    flags = {name: flags_for(exp, "exec_from_tmp", key)[0] for name, key in keys.items()}
    assert flags["deep"].description.endswith(
        f"{'/d' * 40}/{flags['deep'].program} (from a temporary directory)"
    )
    assert f"which is {tmp}/{'A' * 200}/… (from a temporary directory)" in flags["long"].description


@pytest.mark.causes_flags("exec_from_deep_path")
def test_a_program_too_deep_for_the_path_walk_is_flagged(flagging_exporter):
    """./payload run 600 directories down under /tmp, past what the kernel's walk of an exec's
    paths reaches: its exe_path and cwd are DEEP_PATH, so exec_from_tmp cannot see it is in
    /tmp, and exec_from_deep_path flags it; so are `sh ./stage.sh` run there and `sh ../up.sh`
    (one directory up is as far from known). /bin/true run there is not flagged, read once the
    others' flags are there."""
    exp = flagging_exporter
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        deep = Path(os.path.realpath(tmp)).joinpath(*["d"] * 600)
        deep.mkdir(parents=True)
        payload = copy_program("/bin/true", deep, f"payload-{secrets.token_hex(3)}")
        Path(deep, "stage.sh").write_text("exit 0\n")  # read by sh: not executable
        Path(deep.parent, "up.sh").write_text("exit 0\n")
        keys, execs = run_each(exp, (("system", ["/bin/true"], deep),
                                     ("payload", [f"./{payload.name}"], deep),
                                     ("script", ["/bin/sh", "./stage.sh"], deep),
                                     ("up", ["/bin/sh", "../up.sh"], deep)))  # fmt: skip
    system_key = keys.pop("system")
    flags = {name: flags_for(exp, "exec_from_deep_path", key)[0] for name, key in keys.items()}
    where = "a directory too deep for the kernel's path walk (over about 500 levels)"
    assert {name: (f.program, f.description) for name, f in flags.items()} == {
        "payload": (payload.name, f"./{payload.name} executed from {where}"),
        "script": ("stage.sh", f"sh ran the script ./stage.sh from {where}"),
        "up": ("up.sh", f"sh ran the script ../up.sh from {where}"),
    }
    assert (execs["payload"].exe_path, execs["payload"].cwd) == (DEEP_PATH, DEEP_PATH)
    assert (execs["system"].exe_path, execs["system"].cwd) == (
        os.path.realpath("/bin/true"), DEEP_PATH,
    )  # fmt: skip
    assert not [
        e for e in exp.sink.snapshot() if isinstance(e, FlagEvent) and e.process_key == system_key
    ]


def test_sigsegv_is_a_crash(flagging_exporter):
    exp = flagging_exporter
    child = subprocess.Popen(["/bin/sh", "-c", "kill -SEGV $$"])
    assert child.wait() == -11
    key = key_of(exp, child.pid, "exit")
    (flag,) = flags_for(exp, "crash", key)
    assert (flag.flag_class, flag.severity, flag.pid) == ("operations", "medium", child.pid)
    assert "SIGSEGV" in flag.description


def test_crash_loop_after_n_failures_of_one_program(flagging_exporter, run_dir):
    exp = flagging_exporter
    n = THRESHOLDS["flag_crash_loop_exits"]
    program = copy_program("/bin/false", run_dir, f"gt-loop-{secrets.token_hex(3)}")
    children = []
    for _ in range(n):
        child = subprocess.Popen([str(program)])
        assert child.wait() == 1
        children.append(child)
    last_key = key_of(exp, children[-1].pid, "exit")
    (flag,) = flags_for(exp, "crash_loop", last_key)
    assert (flag.severity, flag.occurrences, flag.program) == ("high", n, program.name)
    assert f"failed {n} times" in flag.description
    earlier = {key_of(exp, c.pid, "exit") for c in children[:-1]}
    raised = [e for e in exp.sink.snapshot() if isinstance(e, FlagEvent)]
    assert not [f for f in raised if f.process_key in earlier]  # one flag, on the n-th


def test_oom_kill_is_flagged(flagging_exporter):
    exp = flagging_exporter
    cid = fake_container_id()
    with oom_killed_in_container(cid) as hog:
        assert hog.returncode == -9
    key = exp.events_of(hog.pid, ("oom_kill",))["oom_kill"][0].process_key
    (flag,) = flags_for(exp, "oom_kill", key)
    assert (flag.flag_class, flag.severity, flag.container_id) == ("operations", "high", cid)
    assert flag.pid == hog.pid


SHELL_SERVER = """
import socket, subprocess, sys
server = socket.create_server(("0.0.0.0", 0))
print(server.getsockname()[1], flush=True)
for _ in range(int(sys.argv[1])):
    conn, _ = server.accept()
    with conn:
        sh = subprocess.run(["/bin/sh", "-c", "echo $$"], stdout=subprocess.PIPE)
        conn.sendall(sh.stdout)
"""


@pytest.mark.causes_flags("shell_from_server")
def test_shell_started_by_a_server_per_request(flagging_exporter):
    exp = flagging_exporter
    before = flags_total(exp, "shell_from_server")
    requests = 3
    server = subprocess.Popen(
        [sys.executable, "-c", SHELL_SERVER, str(requests)], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(server.stdout.readline())
        exp.wait_for(
            lambda e: isinstance(e, ListenEvent) and e.pid == server.pid and e.local_port == port,
            what="the server's listen event",
        )
        shell_pids = []
        for _ in range(requests):
            with socket.create_connection(("127.0.0.1", port)) as c:
                shell_pids.append(int(c.makefile().readline()))
        assert server.wait(10) == 0
    finally:
        server.kill()
        server.wait()
    server_key = key_of(exp, server.pid)
    first_shell, *_ = [key_of(exp, pid) for pid in shell_pids]  # every shell's exec is in
    (flag,) = flags_for(exp, "shell_from_server", first_shell)
    assert (flag.severity, flag.technique, flag.program) == ("high", "T1190", "sh")
    assert flag.parent_key == server_key
    # Every request is counted; the repeats under the same server are not stored again.
    assert flags_total(exp, "shell_from_server") == before + requests
    stored = [
        e
        for e in exp.sink.snapshot()
        if isinstance(e, FlagEvent) and e.rule_id == "shell_from_server"
        and e.parent_key == server_key
    ]  # fmt: skip
    assert [f.process_key for f in stored] == [first_shell]


def test_burst_of_refused_connections(flagging_exporter):
    exp = flagging_exporter
    n = THRESHOLDS["flag_connect_failures"]
    with socket.socket() as closed:  # a port bound but not listening: connects are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        for _ in range(n):
            with socket.socket() as s, pytest.raises(ConnectionRefusedError):
                s.connect(("127.0.0.1", port))
    own_key = process_key("test-host", os.getpid(), start_ticks(os.getpid()))
    flags = exp.wait_for(
        lambda e: (
            isinstance(e, FlagEvent)
            and e.rule_id == "connect_failure_burst"
            and f"127.0.0.1:{port} " in e.description
        ),
        timeout=15,
        what="the burst flag",
    )
    (flag,) = flags
    assert (flag.severity, flag.occurrences, flag.process_key) == ("medium", n, own_key)
    failed = [
        e
        for e in exp.sink.snapshot()
        if getattr(e, "kind", "") == "connect_failed" and getattr(e, "remote_port", 0) == port
    ]
    assert len(failed) == n
    assert flag.connection_id == failed[-1].connection_id


@pytest.mark.causes_flags("network_tool_in_container")
def test_network_tool_in_a_container(flagging_exporter, run_dir):
    exp = flagging_exporter
    nc = copy_program("/bin/true", run_dir, "nc")
    cid = fake_container_id()
    with cgroup_dirs(docker_scope_v2(cid)) as (scope,):
        child = run_in([scope], [str(nc), "-l", "4444"])
        assert child.wait() == 0
        on_host = subprocess.Popen([str(nc)])
        on_host.wait()
    key = key_of(exp, child.pid)
    (flag,) = flags_for(exp, "network_tool_in_container", key)
    assert (flag.severity, flag.technique, flag.container_id) == ("high", "T1046", cid)
    # A flag is delivered with the events that raised it: once the exec is in, so is any flag.
    host_key = key_of(exp, on_host.pid)
    raised = [e for e in exp.sink.snapshot() if isinstance(e, FlagEvent)]
    assert not [f for f in raised if f.process_key == host_key]
