"""Reading one process from /proc: its stat line, its login ids, the path it was exec'd by,
its network namespace.

It imports nothing of the exporter: the start-up scan and the session workloads
(exporter/sessions.py) share it.
"""

from __future__ import annotations

import os
from pathlib import Path

from schema.events import UNSET_ID

COMM_CHARS = 15  # TASK_COMM_LEN less its NUL: exec sets comm to the exec'd path's base, cut


def parse_stat(text: str) -> tuple[str, int, int]:
    """(comm, ppid, start ticks) from /proc/<pid>/stat; comm may hold spaces and parentheses."""
    head, _, rest = text.rpartition(")")
    comm = head.partition("(")[2]
    fields = rest.split()
    return comm, int(fields[1]), int(fields[19])


def read_id(path: Path) -> int:
    """/proc/<pid>/loginuid or sessionid; unset when the kernel has no audit support."""
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return UNSET_ID


def exec_path(base: Path, exe: str, comm: str, args: list[str]) -> str:
    """The path the process was exec'd by, as an exec event names it (``/usr/bin/python3``),
    when /proc proves it; else its resolved executable (``/usr/bin/python3.11``).

    /proc keeps only the resolved file (``exe``), but exec set ``comm`` to the base name of the
    path it was given. A candidate (argv[0] if absolute, else argv[0]'s or comm's name beside
    ``exe``) is taken only when its base name gives that comm and it is the very file ``exe``
    is (same device and inode, looked up in the process's own root): never a guess."""
    if not exe or not comm:
        return exe
    argv0 = args[0] if args else ""
    folder = exe.rpartition("/")[0]
    candidates = [argv0] if argv0.startswith("/") else []
    candidates += [f"{folder}/{argv0.rpartition('/')[2]}", f"{folder}/{comm}"]
    try:
        real = os.stat(base / "exe")
    except OSError:
        return exe
    for path in candidates:
        if path == exe or path.rpartition("/")[2][:COMM_CHARS] != comm:
            continue
        try:
            found = os.stat(f"{base}/root{path}")
        except OSError:
            continue
        if (found.st_dev, found.st_ino) == (real.st_dev, real.st_ino):
            return path
    return exe


def netns_of(pid: int | str, proc: str = "/proc") -> int:
    """The network namespace inode of a process (``pid`` may be ``self`` or ``thread-self``);
    0 when it cannot be read (it exited)."""
    try:
        return os.stat(f"{proc}/{pid}/ns/net").st_ino
    except OSError:
        return 0
