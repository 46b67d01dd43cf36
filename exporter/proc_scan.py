"""Processes that existed before the probes were attached, read from /proc.

The exporter attaches its probes first and scans second, so no process can fall between the
two: one that starts during the scan is seen by the probes (and perhaps by the scan too, with
the same process key). Each scanned process becomes a ``scan`` event with its parent's key, so
ancestry is whole from the first second.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from exporter.containers import identify_proc_cgroup
from exporter.probes.process import TICK_NS
from exporter.probes.process_abi import ARG_LEN, ARGV_MAX
from exporter.proc_read import exec_path, netns_of, parse_stat, read_id
from exporter.security_context import TtyDrivers, device_tty_name, fd_type
from exporter.sessions import SESSION_PREFIX
from schema.events import ProcessEvent, process_key

MAX_ARG_CHARS = ARG_LEN - 1  # the same limits as the probe's argv capture


def stat_tty_nr(text: str) -> int:
    """The controlling terminal's device number (0: none) from /proc/<pid>/stat."""
    return int(text.rpartition(")")[2].split()[4])


def start_ticks(pid: int, proc: Path = Path("/proc")) -> int:
    """A live process's start time in clock ticks: the last part of its process key."""
    return parse_stat((proc / str(pid) / "stat").read_text())[2]


def parse_ids(status: str) -> tuple[int, int, int, int]:
    """Real uid and gid, effective uid and gid from /proc/<pid>/status."""
    uid = gid = euid = egid = 0
    for line in status.splitlines():
        if line.startswith("Uid:"):
            uid, euid = (int(v) for v in line.split()[1:3])
        elif line.startswith("Gid:"):
            gid, egid = (int(v) for v in line.split()[1:3])
            break
    return uid, gid, euid, egid


def fd_type_of(path: Path, ttys: TtyDrivers) -> str:
    """What /proc/<pid>/fd/<n> is (security_context.fd_type); '' when it cannot be told."""
    try:
        st = os.stat(path)  # follows the link to the open file itself, as the probe reads it
    except FileNotFoundError:
        return "none"
    except OSError:
        return ""
    return fd_type(st.st_mode, os.major(st.st_rdev), ttys)


def exe_state(base: Path) -> tuple[int, int]:
    """(exe_deleted, exe_memfd) of /proc/<pid>/exe; (0, 0) for kernel threads."""
    try:
        links = os.stat(base / "exe").st_nlink
        target = os.readlink(base / "exe")
    except OSError:
        return 0, 0
    deleted = links == 0
    return int(deleted), int(deleted and target.startswith("/memfd:"))


def process_root(base: Path) -> str:
    """The process's root directory as /proc shows it from here ('' when it cannot be read)."""
    try:
        return os.readlink(base / "root")
    except OSError:
        return ""


def path_from_root(root: str, path: str) -> str:
    """A path /proc gives from this process's root (``/proc/<pid>/exe``, ``cwd``) as the probe
    reads it at exec: from the process's own root, ``root`` as ``process_root`` gives it, taken
    off the front ('' outside it, or where either is unknown)."""
    if not path.startswith("/") or not root:
        return ""
    if root == "/":
        return path
    if path == root:
        return "/"
    return path[len(root) :] if path.startswith(f"{root}/") else ""


def exe_path_of(root: str, exe: str, deleted: int, memfd: int) -> str:
    """A process's exe_path ('' for a memfd or a kernel thread; an unlinked file's name without
    the " (deleted)" /proc adds)."""
    if memfd:
        return ""
    return path_from_root(root, exe.removesuffix(" (deleted)") if deleted else exe)


def cwd_of(base: Path, root: str) -> str:
    """A process's working directory, as its exec event has it."""
    try:
        return path_from_root(root, os.readlink(base / "cwd"))
    except OSError:
        return ""


def cap_argv(args: list[str]) -> tuple[list[str], int]:
    """Arguments cut to the probe's limits, and whether anything was cut."""
    kept = [a[:MAX_ARG_CHARS] for a in args[:ARGV_MAX]]
    truncated = len(args) > ARGV_MAX or any(len(a) > MAX_ARG_CHARS for a in args[:ARGV_MAX])
    return kept, int(truncated)


class ProcScanner:
    def __init__(
        self, host: str, clock, proc: Path = Path("/proc"), ttys: TtyDrivers | None = None,
        names=None, sessions=None, netns_inum: int = 0,
    ):  # fmt: skip
        self.host = host
        self.netns_inum = netns_inum  # only processes of this network namespace (0: all)
        self.names = names  # RuntimeNames: containers' workloads, as the resolver has them
        self.sessions = sessions  # SessionWorkloads: login sessions' workloads, as the probe's
        self.clock = clock
        self.proc = proc
        self.ttys = ttys or TtyDrivers.read(proc)
        self.duration_seconds = 0.0

    def _read(self, pid: int) -> dict | None:
        base = self.proc / str(pid)
        try:
            stat_text = (base / "stat").read_text()
            comm, ppid, ticks = parse_stat(stat_text)
            tty_nr = stat_tty_nr(stat_text)
            uid, gid, euid, egid = parse_ids((base / "status").read_text())
            cmdline = (base / "cmdline").read_bytes()
            cgroup = (base / "cgroup").read_text()
        except (OSError, ValueError, IndexError):
            return None  # exited while we looked
        try:
            exe = os.readlink(base / "exe")
        except OSError:
            exe = ""  # kernel threads have none
        args = [a.decode("utf-8", "replace") for a in cmdline.split(b"\0")[:-1]]
        context = self._context(base, euid, egid, tty_nr)
        root = process_root(base)  # read once: both paths are taken from it
        exe_path = exe_path_of(root, exe, context["exe_deleted"], context["exe_memfd"])
        exe = exec_path(base, exe, comm, args)
        return dict(
            comm=comm, ppid=ppid, ticks=ticks, uid=uid, gid=gid, exe=exe, args=args, cgroup=cgroup,
            exe_path=exe_path, cwd=cwd_of(base, root), context=context,
        )  # fmt: skip

    def _context(self, base: Path, euid: int, egid: int, tty_nr: int) -> dict:
        """The security context fields of a process, as the probe fills them at exec."""
        types = [fd_type_of(base / "fd" / str(fd), self.ttys) for fd in range(3)]
        deleted, memfd = exe_state(base)
        return dict(
            euid=euid, egid=egid, auid=read_id(base / "loginuid"),
            session_id=read_id(base / "sessionid"), tty=device_tty_name(tty_nr, self.ttys),
            stdin_type=types[0], stdout_type=types[1], stderr_type=types[2],
            exe_deleted=deleted, exe_memfd=memfd,
        )  # fmt: skip

    def scan(self, next_event_id) -> list[ProcessEvent]:
        started = time.monotonic()
        found = {}
        for entry in os.scandir(self.proc):
            if entry.name.isdigit():
                info = self._read(int(entry.name))
                if info is not None:
                    found[int(entry.name)] = info
        now = time.time_ns()
        events = []
        for pid, p in found.items():
            # Filtered here, not while reading: a parent outside the namespace still names
            # its children's parent key, as their exec events do.
            if self.netns_inum and netns_of(pid, str(self.proc)) != self.netns_inum:
                continue
            parent = found.get(p["ppid"])
            argv, truncated = cap_argv(p["args"])
            container = identify_proc_cgroup(p["cgroup"], self.names)
            workload, context = container.workload, p["context"]
            key = process_key(self.host, pid, p["ticks"])
            if self.sessions is not None:
                workload = self.sessions.running(
                    workload, pid, p["ppid"], context["auid"], context["session_id"]
                )
                if workload.startswith(SESSION_PREFIX):
                    self.sessions.remember(key, workload)
            events.append(
                ProcessEvent(
                    event_id=next_event_id(),
                    kind="scan",
                    time_ns=now,
                    host=self.host,
                    pid=pid,
                    ppid=p["ppid"],
                    process_key=key,
                    parent_key=process_key(self.host, p["ppid"], parent["ticks"]) if parent else "",
                    start_time_ns=self.clock.wall_ns(p["ticks"] * TICK_NS),
                    uid=p["uid"],
                    gid=p["gid"],
                    comm=p["comm"],
                    filename=p["exe"],
                    exe_path=p["exe_path"],
                    cwd=p["cwd"],
                    argv=argv,
                    argv_truncated=truncated,
                    container_id=container.id,
                    pod_uid=container.pod_uid,
                    workload=workload,
                    source="scan",
                    **context,
                )
            )
        self.duration_seconds = time.monotonic() - started
        return events
