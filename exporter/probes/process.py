"""The process lifecycle probe: decodes bpf/process.c's events into ProcessEvents.

Decoding only: identity (process keys), container attribution and wall-clock times are
derived here from what the kernel sent; counting for metrics happens in the BPF maps.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from exporter.btf import BtfError, enum_value, member_offset
from exporter.containers import NO_CONTAINER, Container, ContainerResolver
from exporter.netns import TASK_NETNS_OFFSETS, netns_defines
from exporter.probes.base import TASK_OFFSETS, BpfProbe, ProbeContext
from exporter.probes.process_abi import (
    CGROUP_PATH_LEN,
    CMDLINE_AT,
    CMDLINE_LEN,
    CMDLINE_SIZE_AT,
    CONTEXT,
    CRED,
    CRED_SYSCALLS,
    EV_CGROUP_MKDIR,
    EV_CRED_CHANGE,
    EV_EXEC,
    EV_EXEC_FAILED,
    EV_EXIT,
    EV_FORK,
    EV_OOM_KILL,
    EXEC_RECORD_MAX,
    EXEC_SIZES,
    F_ARGV_TRUNCATED,
    F_ARGV_UNKNOWN,
    F_CGROUP_V1,
    F_CWD_CUT,
    F_CWD_DEEP,
    F_EXE_DELETED,
    F_EXE_MEMFD,
    F_EXE_PATH_CUT,
    F_EXE_PATH_DEEP,
    F_EXE_SCRIPT,
    F_OOM_KILLED,
    HEAD,
    KIND_NAMES,
    PATH_LEN,
    RECORD_SIZES,
)
from exporter.process_table import ProcessTable
from exporter.security_context import TtyDrivers, fd_type, kernel_tty_name
from exporter.sessions import SESSION_PREFIX, SessionWorkloads
from exporter.workloads import HOST_WORKLOAD
from schema.column_batch import RowBatch
from schema.events import DEEP_PATH, UNSET_ID, ProcessEvent, from_row

KDEV_MINOR_BITS = 20  # the kernel's dev_t: major << 20 | minor

TICK_NS = 10_000_000
COMM_CACHE_MAX = 4096
EXEC_CACHE_MAX = 1024
KEY_CACHE_MAX = 16384
STATUS_CACHE_MAX = 1024
# An exec's own flags (what it ran, how its paths were read), applied after its cached parts.
EXEC_FLAGS = (
    F_EXE_DELETED | F_EXE_MEMFD | F_EXE_SCRIPT | F_EXE_PATH_CUT | F_CWD_CUT | F_EXE_PATH_DEEP
    | F_CWD_DEEP
)  # fmt: skip
CUT_MARK = "/…"  # ends a path longer than PATH_LEN, of which the top was kept
# filename, exe_path, cwd, argv_truncated, exit_code, signal, core_dumped, outcome, lifetime_ns
# of events that are neither an exec nor an exit (ProcessEvent's defaults).
NOT_EXEC_OR_EXIT = ("", "", "", 0, -1, 0, 0, "", 0)
# euid, egid, auid, session_id, tty, stdin/stdout/stderr types, exe_deleted, exe_memfd,
# exe_script of events that carry no security context (ProcessEvent's defaults).
NO_CONTEXT = (0, 0, UNSET_ID, UNSET_ID, "", "", "", "", 0, 0, 0)
NO_PREV_IDS = (0, 0, 0, 0)  # prev_uid, prev_gid, prev_euid, prev_egid

# The path from a task to its v1 memory cgroup's id (task_v1_memcg_id in bpf/task.h).
CGROUP_OFFSETS = {
    "TASK_CGROUPS": ("task_struct", "cgroups"),
    "CSS_SET_SUBSYS": ("css_set", "subsys"),
    "CSS_CGROUP": ("cgroup_subsys_state", "cgroup"),
    "CGROUP_KN": ("cgroup", "kn"),
    "KERNFS_NODE_ID": ("kernfs_node", "id"),
}  # USER_HZ = 100: the unit of /proc/<pid>/stat start times

# What bpf/security.h reads: credentials, login, terminal, fds 0-2, the executable.
SECURITY_OFFSETS = {
    "TASK_REAL_CRED": ("task_struct", "real_cred"),
    "CRED_EUID": ("cred", "euid"),
    "CRED_EGID": ("cred", "egid"),
    "TASK_SIGNAL": ("task_struct", "signal"),
    "SIGNAL_TTY": ("signal_struct", "tty"),
    "TTY_NAME": ("tty_struct", "name"),
    "TASK_FILES": ("task_struct", "files"),
    "FILES_FDT": ("files_struct", "fdt"),
    "FDTABLE_FD": ("fdtable", "fd"),
    "FDTABLE_MAX_FDS": ("fdtable", "max_fds"),
    "FILE_INODE": ("file", "f_inode"),
    "FILE_PATH_DENTRY": ("file", "f_path.dentry"),
    "DENTRY_NAME": ("dentry", "d_name.name"),
    "INODE_MODE": ("inode", "i_mode"),
    "INODE_RDEV": ("inode", "i_rdev"),
    "INODE_NLINK": ("inode", "__i_nlink"),
    "INODE_SB": ("inode", "i_sb"),
    "SB_FLAGS": ("super_block", "s_flags"),
    "TASK_MM": ("task_struct", "mm"),
    "MM_EXE_FILE": ("mm_struct", "exe_file"),
}


# What bpf/path.h reads: the executable's and the working directory's paths up to the task's
# root, across mounts.
PATH_OFFSETS = {
    "TASK_FS": ("task_struct", "fs"),
    "FS_ROOT_MNT": ("fs_struct", "root.mnt"),
    "FS_ROOT_DENTRY": ("fs_struct", "root.dentry"),
    "FS_PWD_MNT": ("fs_struct", "pwd.mnt"),
    "FS_PWD_DENTRY": ("fs_struct", "pwd.dentry"),
    "FILE_PATH_MNT": ("file", "f_path.mnt"),
    "DENTRY_PARENT": ("dentry", "d_parent"),
    "VFSMOUNT_ROOT": ("vfsmount", "mnt_root"),
    "MOUNT_MNT": ("mount", "mnt"),
    "MOUNT_PARENT": ("mount", "mnt_parent"),
    "MOUNT_MOUNTPOINT": ("mount", "mnt_mountpoint"),
    # and the exec's own names (bpf/process.c, sched_process_exec): given, and run
    "BPRM_FILENAME": ("linux_binprm", "filename"),
    "BPRM_INTERP": ("linux_binprm", "interp"),
}


def login_offsets() -> dict[str, int]:
    """TASK_LOGINUID and TASK_SESSIONID, or {} on a kernel built without audit support (no
    such members), whose processes then all report them unset."""
    try:
        return {
            "TASK_LOGINUID": member_offset("task_struct", "loginuid"),
            "TASK_SESSIONID": member_offset("task_struct", "sessionid"),
        }
    except BtfError:
        return {}


def cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def decode_exit_status(raw: int) -> tuple[int, int, int]:
    """(exit code, signal, core dumped) from a task's exit_code; exit code is -1 if signalled."""
    sig = raw & 0x7F
    if sig:
        return -1, sig, 1 if raw & 0x80 else 0
    return (raw >> 8) & 0xFF, 0, 0


def exit_outcome(exit_code: int, sig: int, oom: bool) -> str:
    if oom:
        return "oom"
    if sig:
        return "signal"
    return "error" if exit_code else "ok"


def exit_status(raw: int, oom: int) -> tuple[int, int, int, str]:
    """(exit code, signal, core dumped, outcome) of an exit event (few distinct values)."""
    exit_code, sig, core = decode_exit_status(raw)
    return exit_code, sig, core, exit_outcome(exit_code, sig, bool(oom))


def slot_text(raw: bytes, at: int, size: int) -> str:
    """The NUL-terminated string in raw[at : at + size] (a fixed-size slot of an event)."""
    end = raw.find(b"\0", at, at + size)
    return raw[at : end if end >= 0 else at + size].decode("utf-8", "replace")


def exec_args(raw: bytes) -> tuple[str, list[str], str, str]:
    """(filename, argv, executable's path, working directory) of an exec event, from its packed
    command line and paths ('' for a path the record has none of)."""
    cmdline_size, exe_size, cwd_size = EXEC_SIZES.unpack_from(raw, CMDLINE_SIZE_AT)
    end = CMDLINE_AT + cmdline_size
    filename, *argv = raw[CMDLINE_AT:end].removesuffix(b"\0").decode("utf-8", "replace").split("\0")
    exe_end = end + exe_size
    return filename, argv, path_of(raw[end:exe_end]), path_of(raw[exe_end : exe_end + cwd_size])


def exec_record_size(raw: bytes) -> int:
    """The size an exec record declares (its command line and paths after the fixed part), or
    -1 where a part declares more than the struct holds."""
    cmdline_size, exe_size, cwd_size = EXEC_SIZES.unpack_from(raw, CMDLINE_SIZE_AT)
    if cmdline_size > CMDLINE_LEN or exe_size > PATH_LEN or cwd_size > PATH_LEN:
        return -1
    return CMDLINE_AT + cmdline_size + exe_size + cwd_size


def path_of(names: bytes) -> str:
    """The path whose names, from the leaf up, each ended by a NUL, are ``names``: b"true\0bin\0"
    is /bin/true, b"\0" the root; '' for none."""
    if not names:
        return ""
    parts = names.removesuffix(b"\0").decode("utf-8", "replace").split("\0")
    return "/" + "/".join(reversed(parts))


def with_exec_flags(flags: int, context: tuple, path: str, cwd: str) -> tuple[tuple, str, str]:
    """(security context, executable's path, working directory) of an exec as its flags say:
    the context's last three fields are exe_flags(); a path the kernel kept only the top of
    (bpf/path.h: longer than PATH_LEN) ends in CUT_MARK, what was left out being below it; one
    too deep for its walk is DEEP_PATH."""
    return (
        (*context[:-3], *exe_flags(flags)),
        shown_path(path, flags & F_EXE_PATH_CUT, flags & F_EXE_PATH_DEEP),
        shown_path(cwd, flags & F_CWD_CUT, flags & F_CWD_DEEP),
    )


def shown_path(path: str, cut: int, deep: int) -> str:
    if deep:
        return DEEP_PATH
    return path + CUT_MARK if cut and path else path


def exec_context(raw: bytes, ttys: TtyDrivers) -> tuple:
    """An exec event's security context, in ProcessEvent's order (NO_CONTEXT's fields), with
    the executable's flags at 0: they are in the record's head, which the exec cache is not
    keyed by, so decode_batch sets them per event (with_exec_flags)."""
    fields = CONTEXT.unpack_from(raw, HEAD.size)
    euid, egid, auid, session = fields[:4]
    rdevs, modes, tty = fields[4:7], fields[7:10], fields[11]  # (fields[10] is padding)
    types = [
        fd_type(mode, rdev >> KDEV_MINOR_BITS, ttys)
        for mode, rdev in zip(modes, rdevs, strict=True)
    ]
    return (
        euid, egid, auid, session, kernel_tty_name(cstr(tty)), *types, *exe_flags(0),
    )  # fmt: skip


def exe_flags(flags: int) -> tuple[int, int, int]:
    """exe_deleted, exe_memfd and exe_script from an exec's flags."""
    return (
        1 if flags & F_EXE_DELETED else 0,
        1 if flags & F_EXE_MEMFD else 0,
        1 if flags & F_EXE_SCRIPT else 0,
    )


def rare_kind_fields(kind: int, raw: bytes) -> tuple[str, tuple, tuple, str]:
    """(kind's name, security context, previous ids, outcome) of an event that is none of fork,
    exec, exec_failed and exit."""
    if kind != EV_CRED_CHANGE:  # an OOM kill, or a kind a newer probe sends
        return KIND_NAMES.get(kind) or str(kind), NO_CONTEXT, NO_PREV_IDS, ""
    _uid, _gid, euid, egid, prev_uid, prev_gid, prev_euid, prev_egid, call = CRED.unpack_from(
        raw, HEAD.size
    )
    context = (euid, egid, *NO_CONTEXT[2:])
    prev_ids = (prev_uid, prev_gid, prev_euid, prev_egid)
    return "cred_change", context, prev_ids, CRED_SYSCALLS.get(call) or str(call)


def errno_name(err: int) -> str:
    """ECONNREFUSED for 111; '' for 0 (no error)."""
    return errno.errorcode.get(err, str(err)) if err else ""


class ProcessProbe(BpfProbe):
    name = "process"
    source = "process.c"
    offsets = {**TASK_OFFSETS, **CGROUP_OFFSETS, **SECURITY_OFFSETS, **PATH_OFFSETS}

    def __init__(
        self,
        ctx: ProbeContext,
        containers: ContainerResolver | None = None,
        table: ProcessTable | None = None,
        counts_max: int = 16384,
    ):
        super().__init__(ctx)
        self.containers = containers or ContainerResolver()
        self.table = table if table is not None else ProcessTable()
        self.sessions = SessionWorkloads()
        self.counts_max = counts_max
        self.ttys = TtyDrivers.read()
        self._run_id = os.urandom(4).hex()
        self._next_seq = 0  # of event ids: decode_batch and the start-up scan, on one thread
        # Caches, bounded by _make_room: command names; process keys by (pid, start); an exec
        # record's filename, argv and context by its tail; an exit's status by code and flag.
        self._comms: dict[bytes, str] = {}
        self._keys: dict[tuple[int, int], str] = {}
        self._execs: dict[bytes, tuple[str, str, str, tuple[str, ...], tuple]] = {}
        self._statuses: dict[int, tuple[int, int, int, str]] = {}

    def defines(self) -> dict[str, int]:
        defines = {**super().defines(), "COUNTS_MAX": self.counts_max}
        hierarchy = self.containers.v1_hierarchy
        defines["MEMCG_V1_HIERARCHY"] = hierarchy or -1
        defines.update(login_offsets())
        defines.update(netns_defines(self.ctx.netns_inum, TASK_NETNS_OFFSETS))
        if hierarchy:
            defines["MEMCG_V1"] = 1
            defines["MEMORY_CGRP_ID"] = enum_value("cgroup_subsys_id", "memory_cgrp_id")
        return defines

    def load(self) -> None:
        """Loads and attaches (BpfProbe.load), then sets the exec paths' walker, a tail call of
        sched_process_exec's (bpf/process.c): until it is set, execs have no paths."""
        from bcc import BPF

        super().load()
        bpf = self.bpf
        assert bpf is not None  # (load() made it)
        walker = bpf.load_func(b"walk_exec_paths", BPF.RAW_TRACEPOINT)
        bpf[b"path_walker"][ctypes.c_int(0)] = ctypes.c_int(walker.fd)

    def next_event_id(self) -> str:
        """Unique per event: this run's random id and a sequence (decode() inlines it)."""
        seq = self._next_seq
        self._next_seq = seq + 1
        return f"{self._run_id}-{seq}"

    def adopt_scanned(self, events: list[ProcessEvent]) -> None:
        """Add processes found by the start-up scan, unless an event already told us more."""
        for ev in events:
            if not self.table.key(ev.pid):
                self.table.add(
                    ev.pid, ev.process_key, Container(ev.container_id, "", ev.pod_uid, ev.workload)
                )

    def decode(self, raw: bytes) -> ProcessEvent | None:
        """One record's event; None for a record that only feeds container attribution."""
        events = self.decode_batch([raw])
        return events[0] if events else None

    def _login_session(
        self, session: int, pid: int, ppid: int, key: str, host: Container
    ) -> Container:
        """A host process in a login session: its session's workload (looked up once per
        session), remembered so its children and connections inherit it."""
        container = self.sessions.container(session, pid, ppid, host)
        self.sessions.remember(key, container.workload)
        return container

    def _parents_session(self, ppid: int, key: str, host: Container) -> Container:
        """A forked host process stays in its parent's login session, if it has one."""
        parent = self.table.container(ppid)
        if not parent.workload.startswith(SESSION_PREFIX):
            return host
        self.sessions.remember(key, parent.workload)
        return parent

    def decode_batch(self, records: list[bytes]) -> list[ProcessEvent]:
        """The events as event objects (``drain()``: bcc's consumer, the self-test, tests)."""
        return [from_row(ProcessEvent, row) for row in self.decode_rows(records)]

    def decode_columns(self, records: list[bytes]) -> tuple[list, list]:
        """The exporter's hot path: the events as one RowBatch (``schema.column_batch``)."""
        rows = self.decode_rows(records)
        return [], [RowBatch(ProcessEvent, rows)] if rows else []

    def decode_rows(self, records: list[bytes]) -> list[tuple]:
        """The events of a batch of records as plain tuples in ProcessEvent's field order."""
        # The hot path. What does not change within a batch (attributes, bound methods, the
        # clock offset, containers already resolved) is looked up once per batch; the caches are
        # bounded once per batch (_make_room) so the loop only reads and fills them; the common
        # steps (process keys, the process table, an exec's arguments and context, an exit's
        # status) are inlined rather than called; each event is one plain tuple in
        # ProcessEvent's field order (a RowBatch's row: schema.column_batch says why).
        self._make_room(len(records))
        host, keys, comms, execs = self.ctx.host, self._keys, self._comms, self._execs
        statuses, by_pid = self._statuses, self.table.by_pid
        new_comm, new_exec, new_status = self._comm, self._exec, self._status
        new_key, resolve = self._key, self.containers.resolve
        login_session, parents_session = self._login_session, self._parents_session
        in_sessions = self.sessions.processes  # empty: no login seen, nothing to inherit
        offset = self.ctx.clock.offset_ns
        id_prefix, seq = f"{self._run_id}-", self._next_seq
        head_size = HEAD.size  # (an attribute of a C object: a lookup each time)
        # Events in a row often share a parent (a shell's loop, a service manager, a build, an
        # exec storm): its key is kept from one to the next rather than looked up again.
        last_ppid = last_pstart = -1
        # (cgroup id, v1 id), or the cgroup id alone where there is no v1 id -> container.
        containers: dict[object, Container] = {}
        events, misfits, fixed_size = [], 0, RECORD_SIZES.get
        for raw in records:
            # A record that is not its kind's struct is counted, never guessed at (an exec's
            # size is checked where its tail is first seen: _exec).
            try:
                (ts, start, pstart, cgroup_id, v1_id, kind, pid, ppid, uid, gid, code, flags,
                 _tid, comm) = HEAD.unpack_from(raw)  # fmt: skip
            except struct.error:  # shorter than the head it starts with
                misfits += 1
                continue
            size = fixed_size(kind)
            if size is not None and len(raw) != size:
                misfits += 1
                continue
            if kind == EV_CGROUP_MKDIR:  # not an event of its own: feeds container attribution
                path = slot_text(raw, HEAD.size, CGROUP_PATH_LEN)
                self.containers.learn(cgroup_id, path, v1=bool(flags & F_CGROUP_V1))
                containers.clear()
                continue
            if start:
                key = keys.get((pid, start))
                if key is None:  # events.process_key's format, built inline
                    key = keys[pid, start] = f"{host}:{pid}:{start // TICK_NS}"
            else:
                entry = by_pid.get(pid)
                key = entry[0] if entry else ""
            if kind == EV_OOM_KILL:
                # Sent from the task that ran into the limit: the victim is known by its pid.
                entry = by_pid.get(pid)
                container, key = (entry[1], entry[0]) if entry else (NO_CONTAINER, "")
            else:
                # A fork is sent from the parent: the child starts in its parent's cgroups.
                cgroup = (cgroup_id, v1_id) if v1_id else cgroup_id
                known = containers.get(cgroup)
                container = (
                    known
                    if known is not None
                    else containers.setdefault(cgroup, resolve(cgroup_id, v1_id))
                )
            if ppid != last_ppid or pstart != last_pstart:  # else the last event's parent
                last_ppid, last_pstart = ppid, pstart
                parent_key = (keys.get((ppid, pstart)) or new_key(ppid, pstart)) if ppid else ""
            filename, path, cwd, truncated, exit_code, sig, core, outcome, lifetime = (
                NOT_EXEC_OR_EXIT
            )
            argv, context, prev_ids = [], NO_CONTEXT, NO_PREV_IDS
            if kind == EV_EXIT:
                name = "exit"
                exit_code, sig, core, outcome = statuses.get(
                    code << 3 | flags & F_OOM_KILLED
                ) or new_status(code, flags & F_OOM_KILLED)
                lifetime = ts - start if start else 0
                entry = by_pid.get(pid)  # ProcessTable.remove(), inlined
                if entry is not None and entry[0] == key:
                    del by_pid[pid]
            elif kind == EV_EXEC or kind == EV_EXEC_FAILED:
                # Cached by the record's context and command line: in an exec storm (a crash
                # loop, a fork bomb, a script's loop) they repeat.
                tail = raw[head_size:]
                found = execs.get(tail) or new_exec(raw, tail)
                if found is None:  # not an exec record's size
                    misfits += 1
                    continue
                filename, path, cwd, args, context = found
                argv = list(args)  # a list of its own for each event
                if flags & EXEC_FLAGS:  # a script, a fileless exec, a path cut: rare
                    context, path, cwd = with_exec_flags(flags, context, path, cwd)
                if context[2] != UNSET_ID and container.workload == HOST_WORKLOAD:
                    # A login session (auid set): its workload, looked up once per session.
                    container = login_session(context[3], pid, ppid, key, container)
                truncated = 1 if flags & (F_ARGV_TRUNCATED | F_ARGV_UNKNOWN) else 0
                if kind == EV_EXEC:
                    name = "exec"
                    by_pid[pid] = (key, container)  # ProcessTable.add(), inlined
                else:
                    name = "exec_failed"
                    outcome = errno_name(-code)  # the kernel returned -errno
            elif kind == EV_FORK:
                name = "fork"
                if in_sessions and container.workload == HOST_WORKLOAD:
                    # A child stays in its parent's login session.
                    container = parents_session(ppid, key, container)
                by_pid[pid] = (key, container)
            else:  # a cred change, an OOM kill, or a kind a newer probe sends
                name, context, prev_ids, outcome = rare_kind_fields(kind, raw)
            events.append((
                f"{id_prefix}{seq}", name, ts + offset, host, pid, ppid, key,
                parent_key,
                start + offset if start else 0,
                uid, gid, comms.get(comm) or new_comm(comm), filename, path, cwd, argv, truncated,
                exit_code, sig, core, outcome, lifetime, cgroup_id, container.id,
                container.pod_uid, "ebpf", *context, *prev_ids, container.workload,
            ))  # fmt: skip
            seq += 1
        self._next_seq = seq
        if misfits:
            self.count_misfits(misfits)
        if self.untrusted:  # a failed self-test: rare, so done on event objects
            blanked = self.blank_untrusted([from_row(ProcessEvent, e) for e in events])
            return list(map(tuple, blanked))
        return events

    def _make_room(self, records: int) -> None:
        """Empties a cache that this many records could fill past its bound (each record adds
        at most two process keys, one command name, one exec and one exit status)."""
        for cache, most, per_record in (
            (self._keys, KEY_CACHE_MAX, 2),
            (self._comms, COMM_CACHE_MAX, 1),
            (self._execs, EXEC_CACHE_MAX, 1),
            (self._statuses, STATUS_CACHE_MAX, 1),
        ):
            if len(cache) + per_record * records > most:
                cache.clear()

    def _key(self, pid: int, start_ns: int) -> str:
        """A process key (events.process_key's format, built inline), kept: a process's fork,
        exec and exit events and its children's all name it."""
        key = self._keys[pid, start_ns] = f"{self.ctx.host}:{pid}:{start_ns // TICK_NS}"
        return key

    def _status(self, code: int, oom: int) -> tuple[int, int, int, str]:
        """exit_status(), kept by its arguments (few distinct values)."""
        found = self._statuses[code << 3 | oom] = exit_status(code, oom)
        return found

    def _exec(self, raw: bytes, tail: bytes) -> tuple[str, str, str, tuple[str, ...], tuple] | None:
        """(filename, executable's path, working directory, argv, security context without the
        executable's flags) of an exec record, kept by its tail (everything after the head); None
        for a record whose size is not the one it declares (a record with a tail seen before
        has the size that tail was checked for)."""
        try:
            size = exec_record_size(raw)
        except struct.error:  # shorter than the context and sizes that follow the head
            return None
        if len(raw) != size or size > EXEC_RECORD_MAX:
            return None
        filename, argv, path, cwd = exec_args(raw)
        context = exec_context(raw, self.ttys)
        found = self._execs[tail] = (filename, path, cwd, tuple(argv), context)
        return found

    def _comm(self, raw: bytes) -> str:
        """A command name's text, cached: few distinct names make most events."""
        text = self._comms[raw] = cstr(raw)
        return text
