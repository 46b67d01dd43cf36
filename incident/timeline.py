"""One host's ordered timeline: execs, exits, connections, OOM kills and received alerts.

``build_timeline`` runs one bounded query per source (process events, TCP connection events,
received alerts), turns each row into an ``Entry`` with a one-line ``detail``, and merges them by
time. Exits carry the command line of the process that exited, looked up by process key, so
a line reads on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from incident import queries as Q
from incident.describe import (
    command_line,
    duration,
    endpoint,
    exit_phrase,
    short_container,
    size,
)
from incident.errors import NothingFound
from incident.store_access import Reader
from incident.times import Window

# Same-instant order: what happened to processes, then their connections, the flags on them
# (each right after the event that raised it), then the alert.
_SOURCE_ORDER = {"process": 0, "tcp": 1, "flag": 2, "alert": 3}


@dataclass
class Entry:
    """One line of the timeline."""

    time_ns: int
    host: str
    source: str  # process, tcp, flag or alert
    kind: str  # exec, exec_failed, exit, oom_kill; open, close, connect_failed; flag; alert
    pid: int
    program: str
    container: str
    process_key: str
    detail: str
    fields: dict = field(default_factory=dict)  # the raw values behind detail, for jsonl/csv

    def sort_key(self) -> tuple:
        return (self.time_ns, _SOURCE_ORDER[self.source])

    def identity(self) -> tuple:
        """Equal for the same event read twice (e.g. by two overlapping queries)."""
        return (self.time_ns, self.source, self.kind, self.pid, self.process_key, self.detail)


@dataclass
class TimelineRequest:
    host: str
    window: Window
    filters: Q.Filters = field(default_factory=Q.Filters)
    limit: int = 5000  # per source
    alerts: bool = True
    center_ns: int | None = None  # when set: the ``limit`` events nearest this instant


@dataclass
class Timeline:
    request: TimelineRequest
    entries: list[Entry]
    truncated: list[str]  # sources that hit the limit


def check_host(reader: Reader, host: str) -> None:
    """Raises NothingFound, naming the hosts the store knows, when ``host`` has no events."""
    for table in ("process_events", "tcp_connection_events", "received_alerts"):
        if reader.rows(Q.host_seen(table), {"host": host}):
            return
    known = sorted({h for (h,) in reader.rows(Q.known_hosts("process_events"), {}) if h})
    hint = f" (hosts in the store: {', '.join(known)})" if known else " (the store has no events)"
    raise NothingFound(f"unknown host {host!r}: no events from it in the store{hint}")


def build_timeline(reader: Reader, req: TimelineRequest) -> Timeline:
    base = {"host": req.host, "lo": req.window.start_ns, "hi": req.window.end_ns}
    entries: list[Entry] = []
    truncated = []
    if not req.filters.excludes_processes:
        sql, params = Q.process_timeline(req.filters, req.limit, req.center_ns)
        rows = reader.rows(sql, {**base, **params})
        truncated += ["process events"] if len(rows) >= req.limit else []
        entries += process_entries(rows, _commands_of_exits(reader, req.host, rows))
    sql, params = Q.connection_timeline(req.filters, req.limit, req.center_ns)
    rows = reader.rows(sql, {**base, **params})
    truncated += ["connections"] if len(rows) >= req.limit else []
    entries += [connection_entry(r) for r in rows]
    if not (req.filters.program or req.filters.uid is not None or req.filters.remote_addr):
        sql, params = Q.flag_timeline(req.filters.container, req.limit, req.center_ns)
        rows = reader.rows(sql, {**base, **params})
        truncated += ["flags"] if len(rows) >= req.limit else []
        entries += [flag_entry(r) for r in rows]
    if req.alerts:
        sql, params = Q.alerts_for_host(req.filters.container, req.limit)
        rows = reader.rows(sql, {**base, "host_colon": req.host + ":", **params})
        truncated += ["alerts"] if len(rows) >= req.limit else []
        entries += alert_entries(rows)
    entries.sort(key=Entry.sort_key)
    return Timeline(req, entries, truncated)


def _commands_of_exits(reader: Reader, host: str, rows: list[tuple]) -> dict[str, str]:
    """{process_key: command line} for the processes whose exit is in ``rows``."""
    execs = {r[15]: command_line(r[8], r[7], r[6]) for r in rows if r[2] == "exec" and r[15]}
    ended = [r for r in rows if r[2] in ("exit", "oom_kill") and r[15] and r[15] not in execs]
    return {**commands_of(reader, host, ended), **execs}


# Wall-clock times of one process's events come from one boot-clock offset, refreshed now and
# then: allow this much skew when bounding a lifetime.
SKEW_NS = 1_000_000_000


def commands_of(reader: Reader, host: str, ended: list[tuple]) -> dict[str, str]:
    """{process_key: its last command line} for exit/oom_kill rows (``PROCESS_COLUMNS``).

    An exit row bounds when the process lived (its time, minus its lifetime), so the lookup
    reads only that stretch of the host's events, not its whole history.
    """
    last = {}  # key -> latest time seen
    born = {}  # key -> start, from an exit's lifetime (an OOM kill row has none)
    for r in ended:
        t, lifetime, key = r[0], r[13], r[15]
        last[key] = max(last.get(key, t), t)
        if r[2] == "exit" and lifetime:
            born[key] = t - lifetime - SKEW_NS
    spans = {key: (born.get(key, 0), t) for key, t in last.items()}
    out: dict[str, str] = {}
    keys = sorted(spans)
    for chunk in _chunks(keys, 1000):
        lo = max(0, min(spans[k][0] for k in chunk))
        hi = max(spans[k][1] for k in chunk) + SKEW_NS
        params = {"host": host, "keys": chunk, "lo": lo, "hi": hi}
        for row in reader.rows(Q.PROCESS_FACTS_BETWEEN, params):
            key, kind, argv, filename, comm = row[0], row[1], row[10], row[9], row[8]
            if kind in ("exec", "scan"):
                out[key] = command_line(argv, filename, comm)
            elif kind == "fork" and key not in out:
                out[key] = f"[{comm}]"
    return out


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i : i + n]


def process_entries(rows: list[tuple], commands: dict[str, str]) -> list[Entry]:
    out = []
    for r in rows:
        (t, host, kind, pid, ppid, uid, comm, filename, argv, exit_code, sig, core) = r[:12]
        outcome, lifetime_ns, container, key, parent_key, exe_path, cwd = r[12:19]
        fields = {"ppid": ppid, "uid": uid, "parent_key": parent_key}
        if kind == "exec":
            detail = command_line(argv, filename, comm)
            if cwd and not filename.startswith("/"):  # a relative name: where it was run
                detail += f" (in {cwd})"
            fields.update(argv=list(argv), filename=filename, exe_path=exe_path, cwd=cwd)
        elif kind == "exec_failed":
            detail = f"exec failed ({outcome}): {command_line(argv, filename, comm)}"
            fields.update(argv=list(argv), filename=filename, error=outcome)
        elif kind == "exit":
            detail = exit_phrase(exit_code, sig, outcome, core)
            if lifetime_ns:
                detail += f" after {duration(lifetime_ns)}"
            if commands.get(key):
                detail += f": {commands[key]}"
            fields.update(exit_code=exit_code, signal=sig, outcome=outcome, lifetime_ns=lifetime_ns)
        else:  # oom_kill
            detail = "OOM killer chose this process" + (
                f": {commands[key]}" if commands.get(key) else ""
            )
        out.append(
            Entry(
                t, host, "process", kind, pid, comm, short_container(container), key, detail, fields
            )
        )
    return out


def connection_entry(r: tuple) -> Entry:
    (t, host, kind, pid, comm, container, key, direction, laddr, lport, raddr, rport) = r[:12]
    outcome, error, duration_ns, sent, received, retransmits, closed_by = r[12:19]
    remote, local = endpoint(raddr, rport), endpoint(laddr, lport)
    arrow = f"{local} -> {remote}" if direction == "outbound" else f"{local} <- {remote}"
    if kind == "close":
        detail = f"closed {direction} {arrow}: sent {size(sent)}, received {size(received)}"
        detail += f", open {duration(duration_ns)}" if duration_ns else ""
        detail += f", closed by {closed_by}" if closed_by else ""
        if outcome != "ok":
            detail += f", {outcome}" + (f" ({error})" if error else "")
        if retransmits:
            detail += f", {retransmits} retransmits"
    elif kind == "connect_failed":
        detail = f"{direction} {arrow} {outcome}" + (f" ({error})" if error else "")
    else:  # open: a connection still open a few seconds after its handshake
        detail = f"{direction} {arrow} open: sent {size(sent)}, received {size(received)} so far"
    fields = {
        "direction": direction,
        "local": local,
        "remote": remote,
        "outcome": outcome,
        "error": error,
        "bytes_sent": sent,
        "bytes_received": received,
        "duration_ns": duration_ns,
        "retransmits": retransmits,
        "closed_by": closed_by,
    }
    return Entry(t, host, "tcp", kind, pid, comm, short_container(container), key, detail, fields)


def flag_entry(r: tuple) -> Entry:
    """A flag, placed at the time of the event that raised it (so it follows that event)."""
    (raised_ns, event_ns, host, event_id, rule, flag_class, severity, technique) = r[:8]
    description, pid, comm, container, key = r[8:13]
    detail = f"FLAG {severity} {flag_class} {rule}" + (f" ({technique})" if technique else "")
    detail += f": {description}"
    fields = {
        "flag_id": event_id, "rule_id": rule, "flag_class": flag_class, "severity": severity,
        "technique": technique, "raised_ns": raised_ns, "container_id": container,
    }  # fmt: skip
    return Entry(
        event_ns or raised_ns, host, "flag", "flag", pid, comm, short_container(container), key,
        detail, fields,
    )  # fmt: skip


def alert_entries(rows: list[tuple]) -> list[Entry]:
    """Alert status changes, once each (Alertmanager redelivers; the event id is stable)."""
    seen, out = set(), []
    for r in rows:
        (t, host, container, event_id, fingerprint, status, name, severity, labels) = r[:9]
        annotations, starts, ends = r[9:12]
        if event_id in seen:
            continue
        seen.add(event_id)
        summary = _json(annotations).get("summary", "")
        detail = f"{name} {status}" + (f" [{severity}]" if severity else "")
        detail += f": {summary}" if summary else ""
        fields = {
            "fingerprint": fingerprint,
            "status": status,
            "alertname": name,
            "severity": severity,
            "labels": _json(labels),
            "starts_at_ns": starts,
            "ends_at_ns": ends,
        }
        fields["container_id"] = container
        out.append(
            Entry(t, host, "alert", "alert", 0, "", short_container(container), "", detail, fields)
        )
    return out


def _json(text: str) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def require_entries(timeline: Timeline, describe_window: str) -> None:
    """An empty window is reported plainly, with the filters that applied."""
    if timeline.entries:
        return
    req = timeline.request
    f = req.filters
    applied = [
        f"{name} {value}"
        for name, value in (
            ("container", f.container),
            ("program", f.program),
            ("uid", "" if f.uid is None else f.uid),
            ("remote", f.remote_addr + (f":{f.remote_port}" if f.remote_port else "")),
        )
        if value != ""
    ]
    extra = f" matching {', '.join(applied)}" if applied else ""
    raise NothingFound(f"no events on host {req.host!r}{extra} from {describe_window}")
