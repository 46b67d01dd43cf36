"""What each workload did in a window, from the store: the activity a policy is learned from
and diffed against.

Activity is counted under the keys a policy's entries have (policy/model.py): executables (with
their parent program and user), listening ports, outbound destinations and inbound sources, each
with its first and last time and a count. A parent's program comes from replaying the window's
fork, exec and scan events through the exporter's own ``Ancestry``, so learning and the live
detector agree on it; a parent that started before the window is looked up before it.
"""

from __future__ import annotations

from baseline import queries as Q
from exporter.flags.ancestry import Ancestry, program_of
from graph.queries import Where
from policy.model import Seen
from schema.events import in_cwd

KEYS_PER_QUERY = 1000
NOUNS = {"exec": "exec", "parent": "exec", "user": "exec", "listen": "listen"}


class Activity(dict):
    """workload -> {activity key: [first ns, last ns, count]}."""

    def add(self, workload: str, key: tuple, first: int, last: int, count: int = 1) -> None:
        seen = self.setdefault(workload, {}).get(key)
        if seen is None:
            self[workload][key] = [first, last, count]
        else:
            seen[0], seen[1], seen[2] = min(seen[0], first), max(seen[1], last), seen[2] + count

    def seen(self, workload: str) -> dict[tuple, Seen]:
        return {k: Seen(*v) for k, v in self.get(workload, {}).items()}


def noun(kind: str) -> str:
    """What a count of an activity key counts: execs, listens, connections."""
    return NOUNS.get(kind, "connection")


def learn(reader, start_ns: int, end_ns: int, workload: str | None = None) -> Activity:
    """The activity of every workload (or one) between start_ns and end_ns."""
    window = Where().add(Q.WINDOW, from_ns=start_ns, to_ns=end_ns)
    activity = Activity()
    _processes(reader, window.params, activity, workload)
    for wl, port, first, last, n in reader.query(Q.LISTENING, window.params):
        if workload is None or wl == workload:
            activity.add(wl, ("listen", int(port)), first, last, n)
    for wl, direction, addr, port, first, last, n in reader.query(Q.ENDPOINTS, window.params):
        if workload is None or wl == workload:
            activity.add(wl, (direction, addr, int(port)), first, last, n)
    return activity


def _processes(reader, params: dict, activity: Activity, workload: str | None) -> None:
    rows = reader.query(Q.PROCESSES, params)
    anc = Ancestry(max_processes=len(rows) + 1)
    programs_before = _programs_before(reader, params["from_ns"], rows)
    add = activity.add
    for kind, key, parent_key, filename, cwd, comm, uid, wl, t in rows:
        if kind == "fork":
            if parent_key not in anc.procs and parent_key in programs_before:
                anc.known(parent_key, "", programs_before[parent_key])
            anc.fork(key, parent_key)
            continue
        program = program_of(filename, comm)
        parent = anc.program(parent_key) or programs_before.get(parent_key, "")
        if kind == "exec":
            anc.exec(key, parent_key, program)
        else:
            anc.known(key, parent_key, program)
        if not wl or not filename or (workload is not None and wl != workload):
            continue
        path = in_cwd(filename, cwd)  # as the live detector names it (exporter/flags/policies.py)
        add(wl, ("exec", path), t, t)
        if parent:
            add(wl, ("parent", path, parent), t, t)
        add(wl, ("user", path, uid), t, t)


def _programs_before(reader, start_ns: int, rows) -> dict[str, str]:
    """Programs of the parents the window names but does not start (they began before it)."""
    started = {row[1] for row in rows if row[0] in ("fork", "scan")}
    wanted = sorted({row[2] for row in rows if row[2] and row[2] not in started})
    found = {}
    for i in range(0, len(wanted), KEYS_PER_QUERY):
        params = {"from_ns": start_ns, "keys": wanted[i : i + KEYS_PER_QUERY]}
        for key, filename, comm in reader.query(Q.PROGRAMS_BEFORE, params):
            found[key] = program_of(filename, comm)
    return found
