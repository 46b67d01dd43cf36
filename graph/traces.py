"""Traces: causally linked flags, from the root cause down, scored.

Flags are raised per host by each exporter's detector (``flag_events``). A trace is assembled
here, where every host's events meet, from stored facts only:

1. Each flagged process's ancestry is read from ``process_events``, one generation per query.
2. Its **root** is the first ancestor that starts a unit of activity someone is responsible for:
   - in a container: the topmost ancestor still in that container (its entrypoint);
   - in a login session (an audit session id is set): the topmost ancestor of that session
     (the session's first process: what ``sshd`` or ``login`` started);
   - otherwise: the topmost ancestor below init (a service's main process, or a daemon).
3. Flags with the same root form one trace. A trace whose root (or a process on the path to one
   of its flags) accepted a connection from a process on another host whose own root has a
   trace is joined into that trace: the attack (or the failure) came from there.
4. The score grows with the number and severity of distinct flags (a rule on a process counts
   once; info counts nothing), is raised when the root is an interactive session (it has a
   terminal), is capped by the highest severity, and falls into a band. Every number comes from
   the thresholds file (``TraceScoring.from_thresholds``); the formula is in docs/traces.md.

A trace's id is derived from its root's process key, so it is the same on every read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from graph.queries import CANONICAL, in_set

SEVERITIES = ("info", "low", "medium", "high", "critical")
UNSET_ID = 4294967295  # auid / audit session id of a process no login has marked
INIT_PIDS = (0, 1, 2)  # the idle task, init, kthreadd: never a root


@dataclass(frozen=True)
class TraceScoring:
    """The numbers of the score: weight per severity, cap per highest severity, bands."""

    weights: dict[str, float]
    caps: dict[str, float]
    interactive_factor: float
    band_critical: float
    band_high: float

    @classmethod
    def from_thresholds(cls, thresholds: dict) -> TraceScoring:
        return cls(
            weights={s: float(thresholds[f"trace_weight_{s}"]) for s in SEVERITIES[1:]},
            caps={s: float(thresholds[f"trace_cap_{s}"]) for s in SEVERITIES[1:]},
            interactive_factor=float(thresholds["trace_interactive_factor"]),
            band_critical=float(thresholds["trace_band_critical"]),
            band_high=float(thresholds["trace_band_high"]),
        )

    def score(self, flags: list[dict], interactive: bool) -> tuple[int, str]:
        """(score, band) of a trace's flags."""
        distinct = {(f["rule_id"], f["process_key"]): f["severity"] for f in flags}
        counted = [s for s in distinct.values() if s in self.weights]
        if not counted:
            return 0, "low"
        total = sum(self.weights[s] for s in counted)
        if interactive:
            total *= self.interactive_factor
        highest = max(counted, key=SEVERITIES.index)
        score = round(min(total, self.caps[highest]))
        if score >= self.band_critical:
            return score, "critical"
        return score, "high" if score >= self.band_high else "low"


@dataclass
class Trace:
    id: str
    root: dict  # the root process's details (see PROCESS_COLUMNS)
    root_kind: str  # container, session or service
    flags: list[dict] = field(default_factory=list)
    paths: dict[str, list[str]] = field(default_factory=dict)  # flagged key -> root..flagged
    joined_from: list[str] = field(default_factory=list)  # traces of other hosts joined in
    score: int = 0
    band: str = "low"

    @property
    def hosts(self) -> list[str]:
        return sorted({f["host"] for f in self.flags})

    @property
    def first_ns(self) -> int:
        return min(f["time_ns"] for f in self.flags)

    @property
    def last_ns(self) -> int:
        return max(f["time_ns"] for f in self.flags)

    @property
    def process_keys(self) -> list[str]:
        """Every process from the roots to the flags, each once."""
        return list(dict.fromkeys(k for path in self.paths.values() for k in path))

    def policy_deviations(self) -> dict[str, int]:
        """Policy flags (baseline deviations) of the trace, by workload."""
        out: dict[str, int] = {}
        for f in self.flags:
            if f.get("kind") == "policy":
                out[f["workload"]] = out.get(f["workload"], 0) + 1
        return out

    def summary(self) -> dict:
        """One row of the traces table."""
        root = self.root
        severities = [f["severity"] for f in self.flags]
        return {
            "id": self.id,
            "score": self.score,
            "band": self.band,
            "root": root["process_key"],
            "root_kind": self.root_kind,
            "root_program": root["program"],
            "root_argv": " ".join(root["argv"]),
            "interactive": bool(root["tty"]),
            "flags": len(self.flags),
            "rules": sorted({f["rule_id"] for f in self.flags}),
            "highest_severity": max(severities, key=SEVERITIES.index),
            "hosts": self.hosts,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
        }


def trace_id(root_key: str) -> str:
    return "t-" + hashlib.blake2b(root_key.encode(), digest_size=8).hexdigest()


# ---- SQL ------------------------------------------------------------------------------------

FLAG_COLUMNS = (
    "event_id time_ns host rule_id flag_class severity technique description process_key pid "
    "comm connection_id container_id kind workload"
).split()


def flags_in(where: str) -> str:
    return f"""
SELECT {", ".join(FLAG_COLUMNS)}
FROM flag_events
WHERE {where}
ORDER BY time_ns
LIMIT {{flags_max:UInt32}}"""


PROCESS_COLUMNS = (
    "process_key host pid parent_key program filename argv container_id auid session_id tty "
    "start_ns"
).split()


def processes(where: str) -> str:
    """What a trace needs of each process: its parent and what marks a root (the security
    context is read at exec and by the scan; other events do not carry it)."""
    return f"""
SELECT process_key, any(host), argMax(pid, time_ns), argMin(parent_key, time_ns),
       argMax(comm, time_ns), argMaxIf(filename, time_ns, kind IN ('exec', 'scan')),
       argMaxIf(argv, time_ns, kind IN ('exec', 'scan')), argMax(container_id, time_ns),
       argMaxIf(auid, time_ns, kind IN ('exec', 'scan')),
       argMaxIf(session_id, time_ns, kind IN ('exec', 'scan')),
       argMaxIf(tty, time_ns, kind IN ('exec', 'scan')),
       max(start_time_ns)
FROM process_events
WHERE {where} AND {in_set("process_key", "keys")}
GROUP BY process_key"""


def accepted_from_elsewhere(where: str) -> str:
    """Connections that the given processes accepted, with the process on another host that
    made each (where that host recorded it too: the same 4-tuple, outbound there). Only rows
    with the accepted connections' ports mirrored are read for the client side.

    A connection is accepted when it opened (its handshake), not when an event about it was
    written: the exporter writes one at the close (or a while after it opened), often after
    the flags it led to."""
    accepted = f"{where} AND direction = 'inbound' AND {in_set('process_key', 'keys')}"
    return f"""
SELECT server_key, accepted_ns, client_key
FROM (
  SELECT process_key AS server_key,
         min(if(open_time_ns > 0, open_time_ns, time_ns)) AS accepted_ns, any({CANONICAL}) AS ck,
         any(host) AS server_host
  FROM tcp_connection_events
  WHERE {accepted}
  GROUP BY process_key, connection_id
) AS s
ANY INNER JOIN (
  SELECT {CANONICAL} AS ck, any(process_key) AS client_key, any(host) AS client_host
  FROM tcp_connection_events
  PREWHERE (local_port, remote_port) IN (
      SELECT remote_port, local_port FROM tcp_connection_events WHERE {accepted})
  WHERE {where} AND direction = 'outbound'
  GROUP BY ck
) AS c USING ck
WHERE client_host != server_host AND client_key != ''
ORDER BY accepted_ns"""


# ---- assembly -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceLimits:
    flags_max: int = 5000  # flags read per assembly (the newest beyond it are left out)
    depth_max: int = 64  # generations walked up from a flagged process
    lookback_ns: int = 86400 * 10**9  # how long before the window ancestors are looked for


class TraceAssembler:
    """Builds the traces of a window from the store (flags, process ancestry, connections)."""

    def __init__(self, store, scoring: TraceScoring | None, limits: TraceLimits = TraceLimits()):
        self.store, self.scoring, self.limits = store, scoring, limits
        self.details: dict[str, dict] = {}

    def assemble(self, from_ns: int, to_ns: int, hosts: tuple[str, ...] = ()) -> list[Trace]:
        """Every trace with a flag in [from_ns, to_ns) (on ``hosts``; all when empty), highest
        score first. A trace joined from another host is found through either host."""
        self.since_ns = max(0, from_ns - self.limits.lookback_ns)
        self.to_ns = to_ns
        flags = self._flags(from_ns, to_ns, ())
        traces = self._by_root(flags)
        self._join_across_hosts(traces)
        found = [t for t in traces.values() if not hosts or set(t.hosts) & set(hosts)]
        scoring = self.scoring
        if scoring is not None:  # no scoring: a graph focus needs none
            for t in found:
                t.score, t.band = scoring.score(t.flags, interactive=bool(t.root["tty"]))
        return sorted(found, key=lambda t: (-t.score, t.first_ns))

    def trace(self, trace_id_: str, from_ns: int, to_ns: int) -> Trace | None:
        """One trace by id (also the id of a trace that was joined into another)."""
        for t in self.assemble(from_ns, to_ns):
            if trace_id_ == t.id or trace_id_ in t.joined_from:
                return t
        return None

    # ---- reading ---------------------------------------------------------------------------
    def _flags(self, from_ns: int, to_ns: int, hosts: tuple[str, ...]) -> list[dict]:
        where = "time_ns >= {from_ns:UInt64} AND time_ns < {to_ns:UInt64}"
        params: dict[str, object] = {
            "from_ns": from_ns,
            "to_ns": to_ns,
            "flags_max": self.limits.flags_max,
        }
        if hosts:
            where += " AND " + in_set("host", "hosts")
            params["hosts"] = list(hosts)
        rows = self.store.query(flags_in(where), params)
        return [dict(zip(FLAG_COLUMNS, r, strict=True)) for r in rows]

    def _lookback(self) -> tuple[str, dict]:
        where = "time_ns >= {since_ns:UInt64} AND time_ns < {to_ns:UInt64}"
        return where, {"since_ns": self.since_ns, "to_ns": self.to_ns}

    def _fetch(self, keys) -> None:
        wanted = [k for k in dict.fromkeys(keys) if k and k not in self.details]
        if not wanted:
            return
        where, params = self._lookback()
        hosts = sorted({k.rsplit(":", 2)[0] for k in wanted})
        where += " AND " + in_set("host", "hosts")
        for row in self.store.query(processes(where), {**params, "keys": wanted, "hosts": hosts}):
            self.details[row[0]] = dict(zip(PROCESS_COLUMNS, row, strict=True))

    def _chains(self, keys: list[str]) -> dict[str, list[str]]:
        """key -> [key, parent, grandparent, ...] as far as the store knows."""
        chains = {k: [k] for k in keys}
        frontier = list(dict.fromkeys(keys))
        for _ in range(self.limits.depth_max):
            self._fetch(frontier)
            grown = []
            for chain in chains.values():
                top = self.details.get(chain[-1])
                if top is None:  # the store does not know this process: the chain ends
                    continue
                parent = top["parent_key"]
                if parent and parent not in chain and top["pid"] not in INIT_PIDS:
                    chain.append(parent)
                    grown.append(parent)
            frontier = [k for k in dict.fromkeys(grown) if k not in self.details]
            if not grown:
                break
        return chains

    # ---- roots and traces -------------------------------------------------------------------
    def root_of(self, chain: list[str]) -> tuple[str, str]:
        """(root key, root kind) of a chain [flagged, parent, ..., topmost known]."""
        known = [self.details[k] for k in chain if k in self.details]
        if not known:
            return chain[0], "process"
        me = known[0]
        if me["container_id"]:
            same = _contiguous(known, lambda d: d["container_id"] == me["container_id"])
            return same[-1]["process_key"], "container"
        if me["session_id"] != UNSET_ID and me["auid"] != UNSET_ID:
            same = _contiguous(known, lambda d: d["session_id"] == me["session_id"])
            return same[-1]["process_key"], "session"
        below_init = _contiguous(known, lambda d: d["pid"] not in INIT_PIDS)
        return (below_init or known)[-1]["process_key"], "service"

    def _by_root(self, flags: list[dict]) -> dict[str, Trace]:
        chains = self._chains([f["process_key"] for f in flags])
        traces: dict[str, Trace] = {}
        for f in flags:
            chain = chains[f["process_key"]]
            root_key, kind = self.root_of(chain)
            tid = trace_id(root_key)
            if tid not in traces:
                root = self.details.get(root_key) or _unknown(root_key)
                traces[tid] = Trace(tid, root, kind)
            t = traces[tid]
            t.flags.append(f)
            t.paths[f["process_key"]] = list(reversed(chain[: chain.index(root_key) + 1]))
        return traces

    def _join_across_hosts(self, traces: dict[str, Trace]) -> None:
        """A trace whose path accepted a connection from another host's traced process joins
        that process's trace (the earliest such connection before its first flag decides)."""
        trace_of_key = {k: t for t in traces.values() for k in t.process_keys}
        keys = list(trace_of_key)
        if not keys:
            return
        where, params = self._lookback()
        rows = self.store.query(accepted_from_elsewhere(where), {**params, "keys": keys})
        clients = {client for _, _, client in rows}
        chains = self._chains([c for c in clients if c not in trace_of_key])
        for server_key, accepted_ns, client_key in rows:
            into = trace_of_key.get(server_key)
            if into is None or into.id not in traces or accepted_ns > into.first_ns:
                continue
            outer: Trace | None
            if client_key in trace_of_key:
                outer = trace_of_key[client_key]
            else:
                outer = traces.get(trace_id(self.root_of(chains[client_key])[0]))
            if outer is None or outer is into or outer.id not in traces:
                continue
            outer.flags += into.flags
            outer.paths.update(into.paths)
            outer.joined_from += [into.id, *into.joined_from]
            del traces[into.id]
            for k in into.process_keys:
                trace_of_key[k] = outer


def _contiguous(details: list[dict], keep) -> list[dict]:
    """The leading run of ``details`` for which ``keep`` holds."""
    run = []
    for d in details:
        if not keep(d):
            break
        run.append(d)
    return run


def _unknown(key: str) -> dict:
    host, pid, _ = key.rsplit(":", 2)
    return dict.fromkeys(PROCESS_COLUMNS, "") | {
        "process_key": key, "host": host, "pid": int(pid), "argv": [], "tty": "",
    }  # fmt: skip
