"""The start-up scan names a running process by the path it was exec'd by, as its exec event
does, only when /proc proves that path (real processes the test starts through its own links)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from exporter.proc_read import exec_path

SLEEP = os.path.realpath(shutil.which("sleep"))


@pytest.fixture
def links(tmp_path):
    """A symlink to sleep (another name) and a copy of it under its own name (another file)."""
    (tmp_path / "napper").symlink_to(SLEEP)
    shutil.copy(SLEEP, tmp_path / "sleep")
    return tmp_path


def scanned_path(argv: list[str], executable: str) -> str:
    """exec_path of a child started as argv by exec'ing executable, from its own /proc."""
    child = subprocess.Popen(argv, executable=executable)
    try:
        base = Path(f"/proc/{child.pid}")
        while True:  # until the exec is done: the kernel names the task before its arguments
            comm = (base / "comm").read_text().strip()
            args = (base / "cmdline").read_bytes().decode().split("\0")[:-1]
            if comm == Path(executable).name[:15] and args == argv:
                return exec_path(base, os.readlink(base / "exe"), comm, args)
    finally:
        child.kill()
        child.wait()


@pytest.mark.causes_flags("exec_from_tmp")  # the link it runs is in tmp_path
def test_a_symlink_exec_is_named_by_the_link(links):
    link = str(links / "napper")
    assert scanned_path([link, "30"], link) == link


def test_a_bare_argv0_beside_the_executable_is_resolved():
    # /bin/sh -> dash: argv[0] "sh" names /usr/bin/sh (or /bin/sh), the same file as dash.
    sh = os.path.realpath("/bin/sh")
    if sh.endswith("/sh"):
        pytest.skip("/bin/sh is not a link here")
    got = scanned_path(["sh", "-c", "sleep 30"], "/bin/sh")
    assert got != sh and got.endswith("/sh") and os.path.samefile(got, sh)


def test_an_argv0_naming_another_file_is_not_believed(links):
    # sleep ran with argv[0] naming the copy: same name, another file: the resolved path stays.
    assert scanned_path([str(links / "sleep"), "30"], SLEEP) == SLEEP
