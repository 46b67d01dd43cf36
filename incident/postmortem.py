"""What a postmortem needs from the store, gathered step by step (``gather``).

1. The alerts whose status changed in the window (of one host, or one fingerprint).
2. The hosts involved: the one asked for, else the alerts' hosts, else every host with events.
3. The focus window: from ``around`` before the first alert to ``around`` after the last one
   (clipped to the window); the whole window when there are no alerts.
4. Per host: the timeline of the focus window, the processes that failed, were killed or
   OOM-killed in the window, outbound destinations not contacted in the ``baseline`` before
   the window, and the containers that ran processes.
5. The traces with a flag in the window (``graph.traces``), highest score first: each one's
   root, the path to each flag, its score, and its own graph.
6. The causal graph, built by graphapi (``incident.graph_svg``).

Each step runs under the progress display, since a busy host's window can take a while.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graph.traces import Trace, TraceAssembler, TraceScoring
from incident import queries as Q
from incident.errors import NothingFound
from incident.progress import Progress
from incident.store_access import Reader
from incident.timeline import (
    Entry,
    TimelineRequest,
    alert_entries,
    build_timeline,
    check_host,
    commands_of,
    process_entries,
)
from incident.times import Window

NS = 1_000_000_000


@dataclass
class Destination:
    host: str
    addr: str
    port: int
    first_ns: int
    connections: int
    programs: list[str]
    outcomes: list[str]


@dataclass
class HostFacts:
    host: str
    timeline: list[Entry] = field(default_factory=list)
    timeline_truncated: list[str] = field(default_factory=list)
    failed: list[Entry] = field(default_factory=list)
    new_destinations: list[Destination] = field(default_factory=list)
    containers: list[tuple[str, int, list[str]]] = field(default_factory=list)


@dataclass
class PostmortemRequest:
    window: Window
    host: str = ""
    alert: str = ""  # fingerprint
    around_ns: int = 10 * 60 * NS
    baseline_ns: int = 24 * 3600 * NS
    timeline_limit: int = 2000
    graph_limit: int = 150
    scoring: TraceScoring | None = None  # None: no traces section
    traces_max: int = 5


@dataclass
class Facts:
    request: PostmortemRequest
    alerts: list[Entry]
    hosts: list[str]
    focus: Window
    per_host: list[HostFacts]
    graph: dict | None = None
    graph_error: str = ""
    traces: list[Trace] = field(default_factory=list)
    trace_processes: dict[str, dict] = field(default_factory=dict)  # key -> what a path shows
    trace_graphs: dict[str, str] = field(default_factory=dict)  # trace id -> its SVG file


def gather(reader: Reader, req: PostmortemRequest, progress: Progress) -> Facts:
    w = req.window
    span = {"lo": w.start_ns, "hi": w.end_ns}
    with progress.step("alerts in the window") as step:
        sql, params = Q.alerts_in_window(req.host, req.alert, 500)
        alerts = alert_entries(reader.rows(sql, {**span, **params}))
        step.note = f"{len(alerts)} found"
    if req.alert and not alerts:
        raise NothingFound(f"no alert with fingerprint {req.alert!r} was received in the window")
    if req.host:
        check_host(reader, req.host)
    with progress.step("hosts involved") as step:
        hosts = involved_hosts(reader, req, alerts)
        step.note = ", ".join(hosts) or "none"
    if not hosts:
        raise NothingFound("no events and no alerts in the window: nothing to report on")
    focus = focus_window(req, alerts)
    per_host = []
    for host in hosts:
        per_host.append(host_facts(reader, req, host, focus, alerts, progress))
    if not alerts and not any(h.timeline or h.failed for h in per_host):
        raise NothingFound(f"no events on {', '.join(hosts)} and no alerts in the window")
    facts = Facts(req, alerts, hosts, focus, per_host)
    if req.scoring is not None:
        with progress.step("traces") as step:
            assembler = TraceAssembler(reader, req.scoring)
            facts.traces = assembler.assemble(w.start_ns, w.end_ns, tuple(hosts))
            facts.trace_processes = assembler.details
            step.note = f"{len(facts.traces)} found"
    return facts


def involved_hosts(reader: Reader, req: PostmortemRequest, alerts: list[Entry]) -> list[str]:
    if req.host:
        return [req.host]
    with_events = {
        h for (h,) in reader.rows(Q.hosts_in_window("process_events"), _span(req.window))
    }
    with_events |= {
        h for (h,) in reader.rows(Q.hosts_in_window("tcp_connection_events"), _span(req.window))
    }
    if alerts:
        # An alert names its host by a host label or by the scrape's instance (host:port).
        named = {a.host for a in alerts} | {a.host.rsplit(":", 1)[0] for a in alerts}
        chosen = sorted(named & with_events)
        if chosen:
            return chosen
    return sorted(with_events)


def _span(w: Window) -> dict:
    return {"lo": w.start_ns, "hi": w.end_ns}


def focus_window(req: PostmortemRequest, alerts: list[Entry]) -> Window:
    if not alerts:
        return req.window
    first = min(a.time_ns for a in alerts)
    last = max(a.time_ns for a in alerts)
    return Window(
        max(req.window.start_ns, first - req.around_ns),
        min(req.window.end_ns, last + req.around_ns),
    )


def host_facts(
    reader: Reader,
    req: PostmortemRequest,
    host: str,
    focus: Window,
    alerts: list[Entry],
    progress: Progress,
) -> HostFacts:
    facts = HostFacts(host)
    span = {"host": host, **_span(req.window)}
    with progress.step(f"{host}: timeline around the alerts") as step:
        facts.timeline, facts.timeline_truncated = timeline_around(
            reader, req, host, focus, [a.time_ns for a in alerts]
        )
        step.note = f"{len(facts.timeline)} events"
    with progress.step(f"{host}: failed, killed and OOM-killed processes") as step:
        rows = reader.rows(Q.FAILED_PROCESSES, span)
        ended = [r for r in rows if r[2] in ("exit", "oom_kill") and r[15]]
        facts.failed = process_entries(rows, commands_of(reader, host, ended))
        step.note = f"{len(facts.failed)} found"
    with progress.step(f"{host}: new outbound destinations") as step:
        facts.new_destinations = new_destinations(reader, req, host)
        step.note = f"{len(facts.new_destinations)} new"
    with progress.step(f"{host}: containers") as step:
        facts.containers = [
            (cid, n, sorted(programs)[:8])
            for cid, n, programs in reader.rows(Q.CONTAINERS_IN_WINDOW, span)
        ]
        step.note = f"{sum(1 for c in facts.containers if c[0])} containers"
    return facts


MAX_CENTRES = 10


def timeline_around(
    reader: Reader, req: PostmortemRequest, host: str, focus: Window, alert_times: list[int]
) -> tuple[list[Entry], list[str]]:
    """The focus window's events; on a busy host, those nearest each alert (up to the limit)."""
    centres = sorted(set(alert_times))[:MAX_CENTRES] or [None]
    seen, entries, truncated = set(), [], []
    for centre in centres:
        t = build_timeline(
            reader, TimelineRequest(host, focus, limit=req.timeline_limit, center_ns=centre)
        )
        truncated += [s for s in t.truncated if s not in truncated]
        for e in t.entries:
            if e.identity() not in seen:
                seen.add(e.identity())
                entries.append(e)
    entries.sort(key=Entry.sort_key)
    return entries, truncated


def new_destinations(reader: Reader, req: PostmortemRequest, host: str) -> list[Destination]:
    """Outbound destinations of the window that the baseline before it never contacted."""
    w = req.window
    before = {"host": host, "lo": max(0, w.start_ns - req.baseline_ns), "hi": w.start_ns}
    known = {(a, p) for a, p in reader.rows(Q.BASELINE_DESTINATIONS, before)}
    out = []
    for addr, port, first, n, programs, outcomes in reader.rows(
        Q.OUTBOUND_DESTINATIONS, {"host": host, **_span(w)}
    ):
        if (addr, port) not in known:
            out.append(Destination(host, addr, port, first, n, sorted(programs), sorted(outcomes)))
    return out
