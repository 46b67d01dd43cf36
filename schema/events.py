"""The event schema: every raw event the exporter emits, defined once.

Each event class is a plain dataclass whose fields carry their ClickHouse type and meaning in
``metadata`` (ProcessEvent, made once per process event on the exporter's hot path, is kept as
a row: see ``row_class``). The store's DDL, the JSON-lines sink, the README's field table and
the graph queries all follow from these classes (see ``columns()``), so a field is added in one
place.

Times are wall-clock nanoseconds since the Unix epoch (``*_ns``), converted once from the
kernel's boot clock by the probe that decodes them.
"""

from __future__ import annotations

import collections
import dataclasses
import posixpath
import re
from dataclasses import dataclass, field


def col(ch_type: str, doc: str, default=None):
    """A dataclass field with its ClickHouse type and a one-line meaning."""
    meta = {"ch_type": ch_type, "doc": doc}
    if default is None:
        default = _ZERO.get(ch_type.split("(")[0], "")
    if isinstance(default, list):
        return field(default_factory=list, metadata=meta)
    return field(default=default, metadata=meta)


_ZERO = {
    "UInt8": 0,
    "UInt16": 0,
    "UInt32": 0,
    "UInt64": 0,
    "Int32": 0,
    "Int64": 0,
    "String": "",
    "Array": [],
}


# (u32)-1: the kernel's "not set" login uid and session id.
UNSET_ID = 4294967295


def process_key(host: str, pid: int, start_ticks: int) -> str:
    """Identity of a process that survives pid reuse: host, pid and start time in clock ticks.

    Ticks (1/100 s since boot) are what ``/proc/<pid>/stat`` reports, and the kernel derives
    them from the same ``start_boottime`` the BPF side reads, so a scanned process and one seen
    at fork get the same key.
    """
    return f"{host}:{pid}:{start_ticks}"


def row_class(spec):
    """Dataclass ``spec`` as a tuple of its fields in order, a named tuple that is still a
    dataclass to ``dataclasses.fields``, ``replace`` and ``asdict`` (it has spec's fields).

    Why: the process probe makes one event per record, and a row is made in one C call,
    ``tuple.__new__(cls, row)``, where a slots dataclass sets its 39 fields one by one (about
    2,800 instructions more per event, 15% of decoding one); the store writer then takes its
    columns with ``zip(*rows)``. Read by name as the dataclass is; made by keyword, with
    spec's defaults and checks. Immutable: a changed copy is ``dataclasses.replace(ev, ...)``.
    """
    names = [f.name for f in dataclasses.fields(spec)]
    row = collections.namedtuple(spec.__name__, names)

    def __new__(cls, *args, **kwargs):  # the dataclass's __init__ fills in the defaults
        filled = spec(*args, **kwargs)
        return tuple.__new__(cls, [getattr(filled, name) for name in names])

    namespace = {
        "__slots__": (),
        "__doc__": spec.__doc__,
        "__new__": __new__,
        "__module__": spec.__module__,
        "__qualname__": spec.__qualname__,
        "__dataclass_fields__": spec.__dataclass_fields__,
        "__dataclass_params__": spec.__dataclass_params__,
    }
    return type(spec.__name__, (row,), namespace)


def field_indexes(cls: type, *names: str) -> tuple[int, ...]:
    """Where these fields are in the tuples of row class ``cls``."""
    order = [f.name for f in dataclasses.fields(cls)]
    return tuple(order.index(name) for name in names)


def row_columns(names: list[str], rows: list) -> dict[str, list]:
    """{name: [values...]} of rows of a row class (plain tuples or its objects, ``names`` its
    fields in order), transposed in C."""
    if not rows:
        return {name: [] for name in names}
    return dict(zip(names, map(list, zip(*rows, strict=True)), strict=True))


def from_row(cls: type, row: tuple):
    """The event object of a row class's plain tuple (its fields in order), in one C call."""
    return tuple.__new__(cls, row)


# exe_path or cwd of an exec whose path is deeper than the kernel's walk reaches (bpf/path.h):
# not a path, and no path's prefix.
DEEP_PATH = "…"


def in_cwd(path: str, cwd: str) -> str:
    """An exec's file name as a path: a relative one joined to the working directory it ran in
    (as given where that is not known), and one that names the same file in another way
    normalized (``//tmp/x``, ``/usr/../tmp/x``, ``/proc/self/cwd/x``): a rule that reads where
    a file is by its path's start must not be told another start.

    Joined to DEEP_PATH it stays under it: '..' cannot climb out of a directory whose path is
    not known (``../x`` normalized against it would read as the plain name ``x``)."""
    if path.startswith("/"):
        own_cwd = PROC_SELF_CWD.match(path)
        if own_cwd and cwd and cwd != DEEP_PATH:
            path = cwd + path[own_cwd.end() :]
        if "//" in path or "/." in path:
            path = "/" + posixpath.normpath(path).lstrip("/")  # (normpath keeps a leading //)
        return path
    if not cwd:
        return path
    if cwd == DEEP_PATH:
        return f"{DEEP_PATH}/{path}"
    return posixpath.normpath(posixpath.join(cwd, path))


# The process's own working directory, as /proc names it.
PROC_SELF_CWD = re.compile(r"/proc/(?:self|thread-self)/cwd(?=/|\Z)")


@row_class
@dataclass
class ProcessEvent:
    """One process lifecycle fact: a fork, exec, exit or OOM kill, or a process found by scan."""

    event_id: str = col("String", "Unique id of this event (exporter run id and sequence).")
    kind: str = col("String", "fork, exec, exec_failed, exit, oom_kill, cred_change or scan.")
    time_ns: int = col("UInt64", "When it happened, ns since the epoch.")
    host: str = col("String", "Host name the exporter runs on.")
    pid: int = col("UInt32", "Process id (thread group id).")
    ppid: int = col("UInt32", "Parent process id.")
    process_key: str = col("String", "host:pid:start_ticks; unique across pid reuse.")
    parent_key: str = col("String", "process_key of the parent.")
    start_time_ns: int = col("UInt64", "Process start time, ns since the epoch.")
    uid: int = col("UInt32", "Real user id.")
    gid: int = col("UInt32", "Real group id.")
    comm: str = col("String", "Kernel command name (at most 15 bytes).")
    filename: str = col(
        "String", "Executed file as given to execve (relative paths stay relative)."
    )
    exe_path: str = col(
        "String",
        "exec, scan: the executed file's path as the kernel resolved it (a relative name and "
        "symlinks followed), from the process's root directory (a container's own). Longer than "
        "512 bytes: its top, ending in /… (what is left out is below). … alone: more than "
        "about 500 directories deep, too deep for the kernel's walk (the exec's two path walks "
        "share 33 calls of 16 steps). '' where it has none there (a memfd), and for other "
        "kinds.",
    )
    cwd: str = col(
        "String",
        "exec, scan: the process's working directory, from its root directory (as exe_path); "
        "longer than 512 bytes, its top ending in /…; … alone: too deep (or the executable's "
        "walk left it no steps); '' where it has none there.",
    )
    argv: list = col("Array(String)", "Arguments: the first 20, each cut at 127 bytes.")
    argv_truncated: int = col(
        "UInt8", "1 when an argument was cut or unreadable, or more than 20 were given."
    )
    exit_code: int = col("Int32", "Exit status (exit); -1 when killed by a signal.", -1)
    signal: int = col("UInt8", "Signal that killed the process, 0 if none.")
    core_dumped: int = col("UInt8", "1 when the killing signal dumped core.")
    outcome: str = col("String", "exit: ok, error, signal or oom. exec_failed: the errno name.")
    lifetime_ns: int = col("UInt64", "exit: time from start to exit in ns.")
    cgroup_id: int = col("UInt64", "cgroup v2 id (inode) of the process.")
    container_id: str = col("String", "Container id (docker, containerd, CRI-O, podman) or ''.")
    pod_uid: str = col("String", "Kubernetes pod UID from a kubepods cgroup path, or ''.")
    source: str = col("String", "ebpf (seen live) or scan (found in /proc at start-up).")
    # Security context (exec, scan; euid/egid also cred_change).
    euid: int = col("UInt32", "Effective user id (exec, scan, cred_change).")
    egid: int = col("UInt32", "Effective group id (exec, scan, cred_change).")
    auid: int = col(
        "UInt32",
        "Login uid: the user who logged in, kept across sudo; 4294967295 when unset.",
        UNSET_ID,
    )
    session_id: int = col(
        "UInt32", "Audit session id of the login; 4294967295 when unset.", UNSET_ID
    )
    tty: str = col("String", "Controlling terminal as under /dev (pts/3, tty1), '' when none.")
    stdin_type: str = col(
        "String",
        "What fd 0 is: socket, pipe (or FIFO), tty (a terminal), file (regular), none (not open), "
        "or other (another device such as /dev/null, a directory, an eventfd or other "
        "anonymous file).",
    )
    stdout_type: str = col("String", "What fd 1 is (as stdin_type).")
    stderr_type: str = col("String", "What fd 2 is (as stdin_type).")
    exe_deleted: int = col(
        "UInt8",
        "1 when the executed file has no links left: unlinked, or a memfd. exec: at exec; scan: "
        "at the scan (so also a program replaced on disk since it started, as by an upgrade).",
    )
    exe_memfd: int = col("UInt8", "1 when the executed file is a memfd: a fileless exec.")
    exe_script: int = col(
        "UInt8",
        "exec: 1 when the file run is a script (#!) or another format an interpreter runs "
        "(binfmt_misc): filename is then the script's, exe_path the interpreter's. scan: 0.",
    )
    # kind cred_change: a set*id call changed the real or effective uid or gid; uid, gid,
    # euid, egid are the ids after it, outcome is the call's name.
    prev_uid: int = col(
        "UInt32",
        "cred_change (a setuid, setreuid, setresuid, setgid, setregid or setresgid call, named "
        "in outcome, that changed a real or effective id): real user id before the call.",
    )
    prev_gid: int = col("UInt32", "cred_change: real group id before the call.")
    prev_euid: int = col("UInt32", "cred_change: effective user id before the call.")
    prev_egid: int = col("UInt32", "cred_change: effective group id before the call.")
    workload: str = col(
        "String",
        "Stable workload name: k8s:NAMESPACE/WORKLOAD/CONTAINER, image:REPOSITORY or "
        "container:ID12 (a container), a systemd unit (nginx.service), or host; '' if unknown.",
    )


EVENT_TYPES: dict[str, type] = {"process": ProcessEvent}


def columns(event_class) -> list[tuple[str, str, str]]:
    """(name, ClickHouse type, meaning) of every field of an event class, in order."""
    return [
        (f.name, f.metadata["ch_type"], f.metadata["doc"]) for f in dataclasses.fields(event_class)
    ]


def blank(event_class, name: str):
    """The value of a field that is not known: its default (a new list for an array)."""
    f = event_class.__dataclass_fields__[name]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def as_dict(event) -> dict:
    """An event as a plain dict (for JSON)."""
    return dataclasses.asdict(event)


# ---- TCP connections (exporter/probes/tcp.py, exporter/tcp_scan.py) ----


@dataclass(slots=True)
class ConnectionEvent:
    """One TCP connection fact: still open (open), ended (close), never established, or scanned."""

    event_id: str = col("String", "Unique id of this event (exporter run id and sequence).")
    kind: str = col("String", "open, close, connect_failed or scan.")
    time_ns: int = col("UInt64", "When it happened, ns since the epoch.")
    host: str = col("String", "Host name the exporter runs on.")
    connection_id: str = col("String", "Same for every event of one connection on this host.")
    pid: int = col(
        "UInt32",
        "Owning process: connecting; inbound: first to read/write it, or to close it unread "
        "(until then its listener's).",
    )
    process_key: str = col("String", "host:pid:start_ticks of the owning process.")
    comm: str = col("String", "Kernel command name of the owning process.")
    cgroup_id: int = col("UInt64", "cgroup v2 id (inode) of the owning process.")
    container_id: str = col("String", "Container id of the owning process, or ''.")
    pod_uid: str = col("String", "Kubernetes pod UID of the owning process, or ''.")
    direction: str = col("String", "outbound (this host connected) or inbound (accepted).")
    family: str = col("String", "ipv4 or ipv6.")
    local_addr: str = col("String", "Local IP address.")
    local_port: int = col("UInt16", "Local port.")
    remote_addr: str = col("String", "Remote IP address.")
    remote_port: int = col("UInt16", "Remote port.")
    outcome: str = col("String", "ok, refused, timeout, reset or error.")
    error: str = col("String", "Socket error at failure or close (errno name), or ''.")
    open_time_ns: int = col("UInt64", "When the handshake began, ns since the epoch (0 if unseen).")
    establish_ns: int = col("UInt64", "Handshake time in ns; connect_failed: time until it failed.")
    duration_ns: int = col("UInt64", "close: time established in ns.")
    bytes_sent: int = col("UInt64", "Bytes written to the connection by processes (so far).")
    bytes_received: int = col("UInt64", "Bytes read from the connection by processes (so far).")
    retransmits: int = col("UInt32", "Segments retransmitted.")
    resets: int = col("UInt8", "RSTs seen: sent and received (0 to 2).")
    closed_by: str = col("String", "close: local or remote (who sent the first FIN or the RST).")
    source: str = col("String", "ebpf (seen live) or scan (open when the exporter started).")
    workload: str = col("String", "Workload of the owning process (as in process events), or ''.")


@dataclass(slots=True)
class ListenEvent:
    """A TCP listening socket opened (listen), closed, or found by scan."""

    event_id: str = col("String", "Unique id of this event (exporter run id and sequence).")
    kind: str = col("String", "listen, listen_close or scan.")
    time_ns: int = col("UInt64", "When it happened, ns since the epoch.")
    host: str = col("String", "Host name the exporter runs on.")
    pid: int = col("UInt32", "Process that called listen() or closed the socket.")
    process_key: str = col("String", "host:pid:start_ticks of that process.")
    comm: str = col("String", "Kernel command name of that process.")
    cgroup_id: int = col("UInt64", "cgroup v2 id (inode) of that process.")
    container_id: str = col("String", "Container id of that process, or ''.")
    pod_uid: str = col("String", "Kubernetes pod UID of that process, or ''.")
    family: str = col("String", "ipv4 or ipv6.")
    local_addr: str = col("String", "Address listened on ('0.0.0.0' or '::' for any).")
    local_port: int = col("UInt16", "Port listened on.")
    source: str = col("String", "ebpf (seen live) or scan (open when the exporter started).")
    workload: str = col("String", "Workload of that process (as in process events), or ''.")


EVENT_TYPES["tcp_connection"] = ConnectionEvent
EVENT_TYPES["tcp_listen"] = ListenEvent


# ---- Flags (exporter/flags/: raised by the detector from the events above) ----


@dataclass(slots=True)
class FlagEvent:
    """Something abnormal about a process or connection, raised live by a rule of the rules file."""

    event_id: str = col("String", "Unique id of this flag (exporter run id and sequence).")
    kind: str = col("String", "rule (a rule of the rules file); policy (a baseline deviation).")
    time_ns: int = col("UInt64", "When the flag was raised, ns since the epoch.")
    host: str = col("String", "Host name the exporter runs on.")
    rule_id: str = col("String", "Id of the rule that raised it (rules file).")
    flag_class: str = col("String", "security or operations.")
    severity: str = col("String", "info, low, medium, high or critical.")
    technique: str = col("String", "MITRE ATT&CK technique id (security rules), or ''.")
    description: str = col("String", "One line with the facts that raised it.")
    process_key: str = col("String", "host:pid:start_ticks of the process it is about.")
    pid: int = col("UInt32", "Process id of that process.")
    comm: str = col("String", "Kernel command name of that process.")
    program: str = col("String", "Its program: base name of the executed file, or its comm.")
    parent_key: str = col("String", "process_key of its parent ('' if unknown).")
    uid: int = col("UInt32", "Real user id of that process.")
    connection_id: str = col("String", "connection_id of the connection it is about, or ''.")
    container_id: str = col("String", "Container id of that process, or ''.")
    pod_uid: str = col("String", "Kubernetes pod UID of that process, or ''.")
    event_time_ns: int = col("UInt64", "Time of the event that triggered it, ns since the epoch.")
    trigger_event_id: str = col("String", "event_id of the event that triggered it.")
    occurrences: int = col("UInt32", "Events that decided it: 1, or N for a loop or a burst.", 1)
    exception: str = col("String", "id of the rules file's exception that set its severity, or ''.")
    workload: str = col(
        "String", "Workload of that process; for a policy flag, the policy's workload, or ''."
    )


EVENT_TYPES["flag"] = FlagEvent
