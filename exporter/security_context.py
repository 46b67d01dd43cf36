"""Decoders for a process's security context: what its standard fds are, its terminal's name.

The probe (from raw inode modes, device numbers and the kernel's tty name) and the start-up
scan (from /proc) both name things here, so a scanned process and an exec'd one read alike.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

PTS_MAJOR = 136  # UNIX98 pty slaves, when /proc/tty/drivers cannot be read
_KERNEL_PTS_NAME = re.compile(r"pts(\d+)")


@dataclass(frozen=True)
class TtyDrivers:
    """Device majors of the kernel's tty drivers (/proc/tty/drivers): a character device with
    one of them is a terminal."""

    majors: frozenset[int] = field(default_factory=frozenset)
    pts_major: int = PTS_MAJOR

    @classmethod
    def read(cls, proc: Path = Path("/proc")) -> TtyDrivers:
        try:
            text = (proc / "tty" / "drivers").read_text()
        except OSError:
            return cls(frozenset({4, 5, PTS_MAJOR}))
        return cls.parse(text)

    @classmethod
    def parse(cls, text: str) -> TtyDrivers:
        """Lines of ``name node major minors type``; the name may hold spaces."""
        majors, pts_major = set(), PTS_MAJOR
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 5 or not parts[-3].isdigit():
                continue
            majors.add(int(parts[-3]))
            if parts[-1] == "pty:slave":
                pts_major = int(parts[-3])
        return cls(frozenset(majors), pts_major)


def fd_type(mode: int, major: int, ttys: TtyDrivers) -> str:
    """socket, pipe, tty, file, none (mode 0: not open) or other, from an inode's mode and
    (for a character device) its major number."""
    if mode == 0:
        return "none"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISFIFO(mode):
        return "pipe"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISCHR(mode) and major in ttys.majors:
        return "tty"
    return "other"


def kernel_tty_name(name: str) -> str:
    """A terminal named as under /dev from the kernel's tty name: pty slaves are "pts3" in the
    kernel and /dev/pts/3 on disk; others (tty1, ttyS0) are the same in both."""
    found = _KERNEL_PTS_NAME.fullmatch(name)
    return f"pts/{found.group(1)}" if found else name


def device_tty_name(tty_nr: int, ttys: TtyDrivers, sys_dev: Path = Path("/sys/dev/char")) -> str:
    """A terminal's name from its device number (/proc/<pid>/stat's tty_nr), '' for 0 (none).

    pty slaves have no sysfs entry; every other terminal's is named after its device.
    """
    if not tty_nr:
        return ""
    major, minor = os.major(tty_nr), os.minor(tty_nr)
    if major == ttys.pts_major:
        return f"pts/{minor}"
    try:
        return os.path.basename(os.readlink(sys_dev / f"{major}:{minor}"))
    except OSError:
        return ""
