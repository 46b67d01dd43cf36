"""The process lifecycle probe: decodes bpf/process.c's events into ProcessEvents.

Decoding only: identity (process keys), container attribution and wall-clock times are
derived here from what the kernel sent; counting for metrics happens in the BPF maps.
"""

from __future__ import annotations

import errno
import itertools
import os
import struct

from exporter.btf import enum_value
from exporter.containers import Container, ContainerResolver
from exporter.events import ProcessEvent
from exporter.probes.base import TASK_OFFSETS, BpfProbe, ProbeContext
from exporter.process_table import ProcessTable

# Layouts of bpf/process.h.
HEAD = struct.Struct("<5Q5IiII16s")  # struct proc_event
EXEC_TAIL = struct.Struct("<II256s")  # argc, pad, filename (argv follows)
ARGV_MAX, ARG_LEN, CGROUP_PATH_LEN = 20, 128, 256
EXEC_ARGV_AT = HEAD.size + EXEC_TAIL.size

EV_FORK, EV_EXEC, EV_EXEC_FAILED, EV_EXIT, EV_OOM_KILL, EV_CGROUP_MKDIR = range(1, 7)
F_ARGV_TRUNCATED, F_ARGV_UNKNOWN, F_OOM_KILLED, F_CGROUP_V1 = 1, 2, 4, 8
KIND_NAMES = {
    EV_FORK: "fork",
    EV_EXEC: "exec",
    EV_EXEC_FAILED: "exec_failed",
    EV_EXIT: "exit",
    EV_OOM_KILL: "oom_kill",
}

TICK_NS = 10_000_000

# The path from a task to its v1 memory cgroup's id (task_v1_memcg_id in bpf/task.h).
CGROUP_OFFSETS = {
    "TASK_CGROUPS": ("task_struct", "cgroups"),
    "CSS_SET_SUBSYS": ("css_set", "subsys"),
    "CSS_CGROUP": ("cgroup_subsys_state", "cgroup"),
    "CGROUP_KN": ("cgroup", "kn"),
    "KERNFS_NODE_ID": ("kernfs_node", "id"),
}  # USER_HZ = 100: the unit of /proc/<pid>/stat start times


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


def errno_name(err: int) -> str:
    """ECONNREFUSED for 111; '' for 0 (no error)."""
    return errno.errorcode.get(err, str(err)) if err else ""


class ProcessProbe(BpfProbe):
    name = "process"
    source = "process.c"
    offsets = {**TASK_OFFSETS, **CGROUP_OFFSETS}

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
        self.counts_max = counts_max
        # Fields a failed self-test showed to be wrong: blanked rather than emitted.
        self.untrusted: set[str] = set()
        self._run_id = os.urandom(4).hex()
        self._seq = itertools.count()

    def defines(self) -> dict[str, int]:
        defines = {**super().defines(), "COUNTS_MAX": self.counts_max}
        hierarchy = self.containers.v1_hierarchy
        defines["MEMCG_V1_HIERARCHY"] = hierarchy or -1
        if hierarchy:
            defines["MEMCG_V1"] = 1
            defines["MEMORY_CGRP_ID"] = enum_value("cgroup_subsys_id", "memory_cgrp_id")
        return defines

    def next_event_id(self) -> str:
        """Unique per event: this run's random id and a sequence (decode() inlines it)."""
        return f"{self._run_id}-{next(self._seq)}"

    def adopt_scanned(self, events: list[ProcessEvent]) -> None:
        """Add processes found by the start-up scan, unless an event already told us more."""
        for ev in events:
            if not self.table.key(ev.pid):
                self.table.add(ev.pid, ev.process_key, Container(ev.container_id, "", ev.pod_uid))

    def decode(self, raw: bytes) -> ProcessEvent | None:
        # The hot path: one call per event, so lookups are hoisted and keys built inline in
        # events.process_key's format (tests compare them with keys the scan builds with it).
        (
            ts,
            start,
            pstart,
            cgroup_id,
            v1_id,
            kind,
            pid,
            ppid,
            uid,
            gid,
            code,
            flags,
            _tid,
            comm,
        ) = HEAD.unpack_from(raw)
        if kind == EV_CGROUP_MKDIR:
            path = cstr(raw[HEAD.size : HEAD.size + CGROUP_PATH_LEN])
            self.containers.learn(cgroup_id, path, v1=bool(flags & F_CGROUP_V1))
            return None
        host, offset = self.ctx.host, self.ctx.clock.offset_ns
        ev = ProcessEvent(
            f"{self._run_id}-{next(self._seq)}",
            KIND_NAMES.get(kind) or str(kind),
            ts + offset,
            host,
            pid,
            ppid,
            f"{host}:{pid}:{start // TICK_NS}" if start else self.table.key(pid),
            f"{host}:{ppid}:{pstart // TICK_NS}" if ppid else "",
            start + offset if start else 0,
            uid,
            gid,
            comm.split(b"\0", 1)[0].decode("utf-8", "replace"),
            cgroup_id=cgroup_id,
            source="ebpf",
        )
        if kind == EV_EXEC or kind == EV_EXEC_FAILED:
            self._decode_exec(raw, ev, flags, code)
        elif kind == EV_EXIT:
            ev.exit_code, ev.signal, ev.core_dumped = decode_exit_status(code)
            ev.outcome = exit_outcome(ev.exit_code, ev.signal, bool(flags & F_OOM_KILLED))
            ev.lifetime_ns = ts - start if start else 0
        self._attribute(ev, kind, v1_id)
        for name in self.untrusted:
            setattr(ev, name, ProcessEvent.__dataclass_fields__[name].default)
        return ev

    def _decode_exec(self, raw: bytes, ev: ProcessEvent, flags: int, code: int) -> None:
        argc, _pad, filename = EXEC_TAIL.unpack_from(raw, HEAD.size)
        ev.filename = cstr(filename)
        argv = raw[EXEC_ARGV_AT : EXEC_ARGV_AT + ARG_LEN * min(argc, ARGV_MAX)]
        ev.argv = [cstr(argv[i : i + ARG_LEN]) for i in range(0, len(argv), ARG_LEN)]
        ev.argv_truncated = 1 if flags & (F_ARGV_TRUNCATED | F_ARGV_UNKNOWN) else 0
        if ev.kind == "exec_failed":
            ev.outcome = errno_name(-code)  # the kernel returned -errno

    def _attribute(self, ev: ProcessEvent, kind: int, v1_cgroup_id: int) -> None:
        """Container of the event's process, and the process table kept in step."""
        if kind == EV_OOM_KILL:
            # Sent from the task that ran into the limit: the victim is known by its pid.
            container = self.table.container(ev.pid)
            ev.process_key = self.table.key(ev.pid)
        elif kind == EV_FORK:
            # Sent from the parent; the child starts in its parent's cgroups.
            container = self.containers.resolve(ev.cgroup_id, v1_cgroup_id)
            self.table.add(ev.pid, ev.process_key, container)
        else:
            container = self.containers.resolve(ev.cgroup_id, v1_cgroup_id)
            if kind == EV_EXEC:
                self.table.add(ev.pid, ev.process_key, container)
            elif kind == EV_EXIT:
                self.table.remove(ev.pid, ev.process_key)
        ev.container_id, ev.pod_uid = container.id, container.pod_uid
