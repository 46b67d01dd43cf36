"""Table-driven tests of the security context decoders (exporter/security_context.py) and of
the /proc parsing the start-up scan does for the same fields."""

from __future__ import annotations

import os
import stat

import pytest

from exporter.proc_scan import parse_ids, stat_tty_nr
from exporter.security_context import TtyDrivers, device_tty_name, fd_type, kernel_tty_name

# /proc/tty/drivers as this kernel writes it.
DRIVERS = """\
/dev/tty             /dev/tty        5       0 system:/dev/tty
/dev/console         /dev/console    5       1 system:console
/dev/ptmx            /dev/ptmx       5       2 system
/dev/vc/0            /dev/vc/0       4       0 system:vtmaster
serial               /dev/ttyS       4      64 serial
pty_slave            /dev/pts      136 0-1048575 pty:slave
pty_master           /dev/ptm      128 0-1048575 pty:master
unknown              /dev/tty        4 1-63 console
"""
TTYS = TtyDrivers.parse(DRIVERS)


def test_tty_drivers_are_parsed_from_proc():
    assert TTYS == TtyDrivers(frozenset({4, 5, 128, 136}), pts_major=136)
    assert TtyDrivers.parse("a driver with spaces /dev/x 200 0-3 pty:slave\n").pts_major == 200
    assert TtyDrivers.parse("garbage\n\n").majors == frozenset()


@pytest.mark.parametrize(
    "mode, major, expected",
    [
        (0, 0, "none"),
        (stat.S_IFSOCK | 0o777, 0, "socket"),
        (stat.S_IFIFO | 0o600, 0, "pipe"),
        (stat.S_IFREG | 0o644, 0, "file"),
        (stat.S_IFCHR | 0o620, 136, "tty"),  # a pty slave
        (stat.S_IFCHR | 0o620, 4, "tty"),  # a virtual console
        (stat.S_IFCHR | 0o666, 5, "tty"),  # /dev/tty, /dev/ptmx
        (stat.S_IFCHR | 0o666, 1, "other"),  # /dev/null
        (stat.S_IFBLK | 0o660, 8, "other"),
        (stat.S_IFDIR | 0o755, 0, "other"),
        (0o600, 0, "other"),  # an anonymous inode (eventfd, epoll): no file type bits
    ],
)
def test_fd_type(mode, major, expected):
    assert fd_type(mode, major, TTYS) == expected


@pytest.mark.parametrize(
    "kernel, expected",
    [("pts3", "pts/3"), ("pts1048575", "pts/1048575"), ("tty1", "tty1"), ("ttyS0", "ttyS0"),
     ("", ""), ("ptsx", "ptsx")],
)  # fmt: skip
def test_kernel_tty_name(kernel, expected):
    assert kernel_tty_name(kernel) == expected


def test_device_tty_name(tmp_path):
    (tmp_path / "4:1").symlink_to("../../devices/virtual/tty/tty1")
    assert device_tty_name(0, TTYS, tmp_path) == ""
    assert device_tty_name(os.makedev(136, 3), TTYS, tmp_path) == "pts/3"
    assert device_tty_name(os.makedev(136, 300), TTYS, tmp_path) == "pts/300"
    assert device_tty_name(os.makedev(4, 1), TTYS, tmp_path) == "tty1"
    assert device_tty_name(os.makedev(4, 2), TTYS, tmp_path) == ""  # no such device


def test_stat_tty_nr_with_a_hostile_comm():
    line = "42 (a) 1 2 3 (c) S 7 42 42 34819 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 0 0"
    assert stat_tty_nr(line) == 34819


def test_parse_ids_reads_real_and_effective():
    status = "Name:\tsu\nUid:\t1000\t0\t0\t0\nGid:\t100\t50\t50\t50\nGroups:\t\n"
    assert parse_ids(status) == (1000, 100, 0, 50)
