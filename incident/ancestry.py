"""A process's ancestry: the chain from the root to it, and optionally its descendants.

Processes are identified by ``process_key`` (host:pid:start_ticks), which survives pid reuse.
A pid is resolved to keys first (``candidates``): when the pid was used by more than one process
(in the whole store, or alive at ``--at``), the candidates are listed rather than one guessed.

Each process is folded from its own events (``Process.fold``): the fork or start-up scan gives
the parent at creation, the last exec the command line, the exit how it ended. Walking up
follows the parent at creation, so a process reparented to init still shows who started it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from incident import queries as Q
from incident.describe import command_line, exit_phrase
from incident.errors import IncidentError, NothingFound
from incident.store_access import Reader
from incident.times import Window

MAX_DEPTH = 64  # a chain longer than this is a loop in bad data, not a process tree
MAX_DESCENDANTS = 2000


@dataclass
class Process:
    key: str
    host: str = ""
    pid: int = 0
    ppid: int = 0
    parent_key: str = ""
    start_ns: int = 0
    uid: int | None = None
    comm: str = ""
    argv: list = field(default_factory=list)
    filename: str = ""
    container: str = ""
    execs: int = 0
    exit_ns: int = 0  # 0: no exit recorded (still running, or not seen)
    exit_code: int = 0
    signal: int = 0
    outcome: str = ""
    oom_killed: bool = False

    @classmethod
    def fold(cls, key: str, rows: list[tuple]) -> Process:
        """One process from its events, in time order (columns of ``Q.FACT_COLUMNS``)."""
        p = cls(key)
        creation = ""
        for _key, kind, t, pid, ppid, parent_key, start, uid, comm, filename, argv, *rest in rows:
            exit_code, sig, outcome, container, host = rest
            p.host, p.pid = host, pid
            p.start_ns = p.start_ns or start
            p.comm = comm or p.comm
            p.container = container or p.container
            if kind in ("fork", "scan") and not creation:
                creation = parent_key
                p.ppid = ppid
            if kind in ("exec", "scan"):
                p.argv, p.filename, p.uid = list(argv), filename, uid
                p.execs += kind == "exec"
                p.parent_key = p.parent_key or parent_key
                p.ppid = p.ppid or ppid
            elif kind == "fork" and p.uid is None:
                p.uid = uid
            elif kind == "exit":
                p.exit_ns, p.exit_code, p.signal, p.outcome = t, exit_code, sig, outcome
            elif kind == "oom_kill":
                p.oom_killed = True
        p.parent_key = creation or p.parent_key
        return p

    @property
    def command(self) -> str:
        return command_line(self.argv, self.filename, self.comm)

    @property
    def ended(self) -> str:
        if not self.exit_ns:
            return "no exit seen"
        return exit_phrase(self.exit_code, self.signal, self.outcome)

    def alive_during(self, w: Window) -> bool:
        """Whether the process existed at some instant of the window (unknown ends count)."""
        started = not self.start_ns or self.start_ns < w.end_ns
        return started and (not self.exit_ns or self.exit_ns >= w.start_ns)


def split_key(key: str) -> tuple[str, int, int]:
    """host:pid:start_ticks -> its parts (the host may itself contain colons)."""
    try:
        host, pid, ticks = key.rsplit(":", 2)
        return host, int(pid), int(ticks)
    except ValueError:
        raise IncidentError(f"not a process key: {key!r} (expected host:pid:start_ticks)") from None


def load(reader: Reader, host: str, keys: list[str]) -> dict[str, Process]:
    """{key: Process} for the keys that have events (others are left out)."""
    by_key: dict[str, list] = {}
    for row in reader.rows(Q.PROCESS_FACTS, {"host": host, "keys": keys}):
        by_key.setdefault(row[0], []).append(row)
    return {key: Process.fold(key, rows) for key, rows in by_key.items()}


class AmbiguousPid(IncidentError):
    """The pid was more than one process: the message lists them, exit status 3."""

    def __init__(self, message: str, candidates: list[Process]):
        super().__init__(message, exit_code=3)
        self.candidates = candidates


def candidates(reader: Reader, host: str, pid: int, during: Window | None) -> list[Process]:
    """Processes that had ``pid`` on ``host`` (alive during the window if given), oldest first."""
    keys = [k for (k,) in reader.rows(Q.KEYS_OF_PID, {"host": host, "pid": pid})]
    if not keys:
        return []
    procs = load(reader, host, keys)
    found = [procs[k] for k in keys if k in procs]
    if during is not None:
        found = [p for p in found if p.alive_during(during)]
    return found


def resolve_pid(
    reader: Reader, host: str, pid: int, during: Window | None, when: str = ""
) -> Process:
    """The one process that had ``pid``; ``when`` describes the window in messages."""
    found = candidates(reader, host, pid, during)
    when = f" {when}" if when else ""
    if not found:
        raise NothingFound(f"no process with pid {pid} on host {host!r}{when} in the store")
    if len(found) > 1:
        raise AmbiguousPid(
            f"pid {pid} on host {host!r} was {len(found)} different processes{when}; "
            "choose one with --key (or narrow with --at or --from/--to):",
            found,
        )
    return found[0]


def resolve_key(reader: Reader, key: str) -> Process:
    host, _, _ = split_key(key)
    procs = load(reader, host, [key])
    if key not in procs:
        raise NothingFound(f"no process with key {key!r} in the store")
    return procs[key]


def chain(reader: Reader, process: Process) -> tuple[list[Process], str]:
    """[root, ..., process], and the key of the first ancestor not in the store ('' if none)."""
    out = [process]
    seen = {process.key}
    missing = ""
    while out[0].parent_key and len(out) < MAX_DEPTH:
        parent_key = out[0].parent_key
        if parent_key in seen:
            break  # a loop can only come from bad data: stop rather than spin
        parent = load(reader, process.host, [parent_key]).get(parent_key)
        if parent is None:
            missing = parent_key
            break
        out.insert(0, parent)
        seen.add(parent_key)
    return out, missing


@dataclass
class Tree:
    process: Process
    children: list[Tree] = field(default_factory=list)


def descendants(reader: Reader, root: Process) -> tuple[Tree, bool]:
    """The process's descendants, generation by generation; True if cut at MAX_DESCENDANTS."""
    tree = Tree(root)
    level = {root.key: tree}
    total, cut = 0, False
    for _ in range(MAX_DEPTH):
        params = {"host": root.host, "parents": sorted(level)}
        keys = [k for (k,) in reader.rows(Q.CHILD_KEYS, params) if k not in level]
        if not keys:
            break
        if total + len(keys) > MAX_DESCENDANTS:
            keys, cut = keys[: MAX_DESCENDANTS - total], True
        total += len(keys)
        procs = load(reader, root.host, keys)
        next_level = {}
        for key in keys:
            child = procs.get(key)
            if child is None or child.parent_key not in level:
                continue
            node = Tree(child)
            level[child.parent_key].children.append(node)
            next_level[key] = node
        level = next_level
        if cut or not level:
            break
    for node in _walk(tree):
        node.children.sort(key=lambda n: (n.process.start_ns, n.process.pid))
    return tree, cut


def _walk(tree: Tree):
    yield tree
    for child in tree.children:
        yield from _walk(child)
