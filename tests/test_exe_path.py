"""The paths an exec records against real execs: the file the kernel ran (``exe_path``),
whatever name execve() was given (a relative name, a symlink, a script's interpreter), across a
mount point, from the process's own root (a chroot, as a container's); and the working
directory (``cwd``). Every path asserted is one this test made."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from schema.events import DEEP_PATH
from testservices.exporter import exporter_with_wrong_offset, selftest_ok

pytestmark = [pytest.mark.ebpf, pytest.mark.causes_flags("exec_from_tmp")]


def token() -> str:
    return f"gt-exe-{uuid.uuid4().hex[:8]}"


def exec_of(exporter, pid: int, argv: list[str]):
    """The exec event of `pid` that ran `argv` (a shell or chroot may have exec'd before)."""
    (found,) = exporter.wait_for(
        lambda e: e.pid == pid and e.kind == "exec" and e.argv == argv, what=f"exec of {argv}"
    )
    return found


def test_a_relative_name_and_a_symlink_resolve_to_the_file_run(running_exporter, tmp_path):
    directory = Path(os.path.realpath(tmp_path))
    program = directory / "gt-true"
    shutil.copy("/bin/true", program)
    elsewhere = directory / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "link").symlink_to(program)
    relative, linked = token(), token()
    by_name = subprocess.Popen(["./gt-true", relative], cwd=directory)
    by_link = subprocess.Popen([str(elsewhere / "link"), linked])
    assert by_name.wait() == 0 and by_link.wait() == 0
    one = exec_of(running_exporter, by_name.pid, ["./gt-true", relative])
    two = exec_of(running_exporter, by_link.pid, [str(elsewhere / "link"), linked])
    assert (one.filename, one.exe_path, one.exe_script) == ("./gt-true", str(program), 0)
    assert (one.cwd, two.cwd) == (str(directory), os.path.realpath(os.getcwd()))
    assert (two.filename, two.exe_path, two.exe_script) == (
        str(elsewhere / "link"),
        str(program),
        0,
    )


def test_a_deep_path_is_read_whole_and_a_long_one_keeps_its_top(running_exporter, tmp_path):
    """40 levels down (more than one call of the walker: bpf/process.c's tail calls) the path
    is whole; under three 200-byte names (over PATH_LEN) the top of it is kept, up to where the
    names overflowed, and ends in /…: where it is (here: under the test's tmp_path) still shows.
    Both run by a relative name from there, so their cwd is the same directory."""
    directory = Path(os.path.realpath(tmp_path))
    deep = directory.joinpath(*["d"] * 40)
    long = directory / ("A" * 200) / ("B" * 200) / ("C" * 200)
    runs = {}
    for where in (deep, long):
        where.mkdir(parents=True)
        shutil.copy("/bin/true", where / "x")
        argv = ["./x", token()]
        child = subprocess.Popen(argv, cwd=where)
        assert child.wait() == 0
        runs[where] = exec_of(running_exporter, child.pid, argv)
    assert (runs[deep].exe_path, runs[deep].cwd) == (str(deep / "x"), str(deep))
    # x, C..., B... fill 404 of the 512 bytes; A... does not fit, so the names so far give way.
    top = f"{directory / ('A' * 200)}/…"
    assert (runs[long].exe_path, runs[long].cwd) == (top, top)


@pytest.mark.causes_flags("exec_from_deep_path")  # under a watching detector (flag-watch)
def test_a_path_deeper_than_the_walk_reaches_is_marked_and_the_exec_still_arrives(
    running_exporter, tmp_path
):
    """600 directories down: more steps than the walker's tail calls take (33 of 16 steps), so
    both paths are DEEP_PATH (not a guess, and not '', which says there is none), and the exec
    is delivered as every other is."""
    deep = Path(os.path.realpath(tmp_path)).joinpath(*["d"] * 600)
    deep.mkdir(parents=True)
    shutil.copy("/bin/true", deep / "x")
    argv = ["./x", token()]
    child = subprocess.Popen(argv, cwd=deep)
    assert child.wait() == 0
    ev = exec_of(running_exporter, child.pid, argv)
    assert (ev.filename, ev.exe_path, ev.cwd) == ("./x", DEEP_PATH, DEEP_PATH)


def test_a_script_names_itself_and_runs_its_interpreter(running_exporter, tmp_path):
    script = Path(os.path.realpath(tmp_path)) / "gt-script.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    last = token()
    child = subprocess.Popen([str(script), last])
    relative = subprocess.Popen(["./gt-script.sh", last], cwd=script.parent)
    assert child.wait() == 0 and relative.wait() == 0
    ev = exec_of(running_exporter, child.pid, [str(script), last])
    assert (ev.filename, ev.exe_path, ev.exe_script) == (
        str(script), os.path.realpath("/bin/sh"), 1,
    )  # fmt: skip
    ev = exec_of(running_exporter, relative.pid, ["./gt-script.sh", last])
    assert (ev.filename, ev.exe_script, ev.cwd) == ("./gt-script.sh", 1, str(script.parent))


def test_a_file_on_another_mount_is_named_through_its_mount_point(running_exporter, tmp_path):
    """A tmpfs mounted (in a private mount namespace) on a directory: the walk goes from the
    tmpfs's root on to the directory it is mounted on."""
    mount_point = Path(os.path.realpath(tmp_path)) / "mounted"
    mount_point.mkdir()
    last = token()
    script = f"mount -t tmpfs gt-test {mount_point} && cp /bin/true {mount_point}/x && "
    script += f"exec {mount_point}/x {last}"
    child = subprocess.Popen(["unshare", "--mount", "sh", "-c", script])
    assert child.wait() == 0
    ev = exec_of(running_exporter, child.pid, [f"{mount_point}/x", last])
    assert ev.exe_path == f"{mount_point}/x"
    assert not any(mount_point.iterdir())  # the tmpfs was the child's namespace's alone


def chrooted(tmp_path: Path, program: str, *args: str) -> subprocess.Popen:
    """`program`, copied to /tmp/x of a root of its own under tmp_path, run chrooted there (in
    a mount namespace of its own, with the host's /usr bind-mounted for its libraries)."""
    root = Path(os.path.realpath(tmp_path)) / "root"
    (root / "usr").mkdir(parents=True)
    (root / "tmp").mkdir()
    for name in ("bin", "lib", "lib64"):
        (root / name).symlink_to(f"usr/{name}")
    shutil.copy(program, root / "tmp" / "x")
    script = f"mount --bind /usr {root}/usr && exec chroot {root} /tmp/x {' '.join(args)}"
    return subprocess.Popen(["unshare", "--mount", "sh", "-c", script])


def test_a_chrooted_process_names_it_from_its_own_root(running_exporter, tmp_path):
    """As a container's process does: /tmp/x, not the host's path to the container's root."""
    last = token()
    child = chrooted(tmp_path, "/bin/true", last)
    assert child.wait() == 0
    ev = exec_of(running_exporter, child.pid, ["/tmp/x", last])
    assert (ev.filename, ev.exe_path, ev.cwd) == ("/tmp/x", "/tmp/x", "/")  # chroot's chdir


def test_the_start_up_scan_names_it_as_exec_does(ebpf_problems, tmp_path):
    """A process found running at start-up: its exe_path from its own root (a chroot here),
    and a host process's, as exec would have recorded them."""
    from tests.fixtures.ebpf import skip_or_fail_without_ebpf
    from testservices.exporter import RunningExporter, exporter_config

    skip_or_fail_without_ebpf(ebpf_problems)
    inside = chrooted(tmp_path, "/bin/sleep", "30")
    outside = subprocess.Popen(["/bin/sleep", "30"])
    exp = None
    try:
        while not os.readlink(f"/proc/{inside.pid}/exe").endswith("/tmp/x"):
            assert inside.poll() is None
            time.sleep(0.01)
        exp = RunningExporter(exporter_config(selftest=False)).start()
        scanned = {e.pid: e for e in exp.sink.snapshot() if e.kind == "scan"}
        assert (scanned[inside.pid].exe_path, scanned[inside.pid].cwd) == ("/tmp/x", "/")
        assert (scanned[outside.pid].exe_path, scanned[outside.pid].cwd) == (
            os.path.realpath("/bin/sleep"), os.path.realpath(os.getcwd()),
        )  # fmt: skip
    finally:
        for proc in (inside, outside):
            proc.kill()
            proc.wait()
        if exp is not None:
            exp.stop()


@pytest.mark.parametrize(
    "define,member,field,blank",
    [
        ("DENTRY_PARENT", ("dentry", "d_inode"), "exe_path", ""),
        ("BPRM_INTERP", ("linux_binprm", "file"), "exe_script", 0),  # every exec a "script"
        ("BPRM_FILENAME", ("linux_binprm", "file"), "filename", ""),
        ("FS_PWD_DENTRY", ("fs_struct", "root.dentry"), "cwd", ""),  # every cwd the root
    ],
)
def test_a_wrong_offset_fails_the_selftest_and_blanks_its_field(
    ebpf_problems, define, member, field, blank
):
    """A wrong struct offset (as a kernel change could cause) must not become wrong data."""
    from tests.fixtures.ebpf import skip_or_fail_without_ebpf

    skip_or_fail_without_ebpf(ebpf_problems)
    exp = exporter_with_wrong_offset(define, member)
    try:
        assert selftest_ok(exp) == 0
        last = token()
        child = subprocess.Popen(["/usr/bin/true", last])
        assert child.wait() == 0
        ev = exec_of(exp, child.pid, ["/usr/bin/true", last])
        assert getattr(ev, field) == blank
        assert ev.uid == os.getuid()  # the rest still flows
    finally:
        exp.stop()
