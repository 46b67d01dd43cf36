"""The workload of a process in a login session: ``session:<program of the session's first
process>`` (issue 18's "the top program of its session").

A login (``sshd``, ``login``, ``cron`` through pam_loginuid) writes ``/proc/self/loginuid``;
the kernel then gives that process a new audit session id, which its descendants inherit and
which nothing else can join: the session's first process is the topmost process holding that id.
It is found once per session, when the exporter first sees an exec in it (or the start-up scan
a process of it), by walking up /proc from that process while the parent holds the same session
id, and named by the path it was exec'd by (``exec_path``), as exec events name programs. Every
login of the same kind then has the same workload (``session:sshd``), while the session id, the
pids and the user change: that is what makes it a baseline's key.

Nothing is guessed: when neither the process nor its parent is still there to ask (the session
ended before its event was read) the workload is '' for that event, and asked again for the
next one.
"""

from __future__ import annotations

import os
from pathlib import Path

from exporter.containers import HOST, Container
from exporter.flags.ancestry import program_of
from exporter.proc_read import exec_path, parse_stat, read_id
from exporter.workloads import HOST_WORKLOAD
from schema.events import UNSET_ID

SESSION_PREFIX = "session:"
SESSIONS_MAX = 4096  # sessions remembered; past it, forgotten all at once (asked again)
PROCESSES_MAX = 16384  # session processes remembered; past it, forgotten all at once
DEPTH_MAX = 64  # a walk up the parents stops here
UNKNOWN_SESSION = Container("", "", "", "")


def first_process(session_id: int, pids: tuple[int, ...], proc: Path = Path("/proc")) -> int:
    """The pid of the topmost process holding ``session_id``, walking up from the first of
    ``pids`` still in that session; 0 when none is."""
    found = 0
    for pid in pids:
        if pid > 0 and read_id(proc / str(pid) / "sessionid") == session_id:
            found = pid
            break
    for _ in range(DEPTH_MAX):
        if not found:
            break
        try:
            ppid = parse_stat((proc / str(found) / "stat").read_text())[1]
        except (OSError, ValueError, IndexError):
            return 0  # exited while we looked
        if ppid <= 0 or read_id(proc / str(ppid) / "sessionid") != session_id:
            break
        found = ppid
    return found


def program_at(pid: int, proc: Path = Path("/proc")) -> str:
    """The program a live process runs, named as its exec event named it; '' if it is gone."""
    base = proc / str(pid)
    try:
        comm = parse_stat((base / "stat").read_text())[0]
        args = [a.decode("utf-8", "replace") for a in (base / "cmdline").read_bytes().split(b"\0")]
        exe = os.readlink(base / "exe")
    except (OSError, ValueError, IndexError):
        return ""
    return program_of(exec_path(base, exe, comm, args[:-1]), comm, args[:1])


class SessionWorkloads:
    """Audit session id -> the container record of its processes (no container, workload
    ``session:PROGRAM``), found once per session and cached: an exec in a known session costs
    one dict lookup."""

    def __init__(self, proc: Path = Path("/proc")):
        self.proc = proc
        self.lookups = 0  # sessions looked up in /proc
        self._found: dict[int, Container] = {}
        # process key -> its session's workload; empty on a host without logins, so a fork
        # there costs one truth test
        self.processes: dict[str, str] = {}

    def container(self, session_id: int, pid: int, ppid: int, host: Container) -> Container:
        """What a host process (pid, its parent ppid) in a login session is attributed to:
        ``host`` when the session id is not set; workload '' when the session's first process
        cannot be found any more."""
        found = self._found.get(session_id)
        if found is None:
            if session_id == UNSET_ID:
                return host
            self.lookups += 1
            leader = first_process(session_id, (pid, ppid), self.proc)
            program = program_at(leader, self.proc) if leader else ""
            if not program:
                return UNKNOWN_SESSION  # not cached: a later event of a live process may tell
            if len(self._found) >= SESSIONS_MAX:
                self._found.clear()
            found = self._found[session_id] = Container("", "", "", SESSION_PREFIX + program)
        return found

    def remember(self, process_key: str, workload: str) -> None:
        """A process seen in a session (its exec, its fork from one, the scan): its connections
        are often read after its exit, when neither the process table nor /proc has it."""
        if len(self.processes) >= PROCESSES_MAX:
            self.processes.clear()
        self.processes[process_key] = workload

    def of_process(self, workload: str, process_key: str, pid: int) -> str:
        """The workload of a process, given its cgroup's: the session it was seen in, else its
        login ids read from /proc while it runs (called once per process: callers cache)."""
        if workload != HOST_WORKLOAD:
            return workload
        found = self.processes.get(process_key)
        if found is not None:
            return found
        if not self.processes:
            return workload  # no login seen on this host: nothing to read
        base = self.proc / str(pid)
        login = read_id(base / "loginuid"), read_id(base / "sessionid")
        return self.running(workload, pid, 0, *login)

    def running(self, workload: str, pid: int, ppid: int, auid: int, session_id: int) -> str:
        """The workload of a process found running (the start-up scans), given its cgroup's."""
        if workload != HOST_WORKLOAD or auid == UNSET_ID:
            return workload
        return self.container(session_id, pid, ppid, HOST).workload
