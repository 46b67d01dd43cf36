"""The postmortem as Markdown: facts from the store, and sections left for the responders.

It is written to be blameless: it names processes, exits and connections, never people. The
human parts (impact, remediation, follow-ups) are headed and left empty with a prompt.
"""

from __future__ import annotations

import re
from datetime import tzinfo

from incident.describe import endpoint, short_container
from incident.postmortem import Facts
from incident.times import format_ns

TIMELINE_ROWS = 200  # per host in the report; the full timeline is in timeline.jsonl
HUMAN_SECTIONS = (
    ("Impact", "Who and what was affected, for how long, and how it was noticed."),
    ("Remediation", "What was done to recover, in order, and what made it work."),
    ("Follow-ups", "- [ ] Action items, each with an owner and a date."),
)


def cell(value) -> str:
    """A table cell: one line, pipes escaped, so a command line cannot break the table."""
    if isinstance(value, Code):
        return value.markdown()
    text = " ".join(str(value).split())
    return text.replace("\\", "\\\\").replace("|", "\\|") or " "


class Code(str):
    """Text shown verbatim (a command line): a code span, so ``*``, ``_`` or ``<`` stay as
    typed. Inside a table, GFM still needs its pipes escaped."""

    def markdown(self) -> str:
        text = " ".join(self.split())
        if not text:
            return " "
        fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
        pad = " " if text.startswith("`") or text.endswith("`") else ""
        return f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}"


def table(headings: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def render(facts: Facts, zone: tzinfo, store: str, files: dict[str, str]) -> str:
    """The report; ``files`` names what was written beside it (graph, timeline)."""
    req = facts.request
    when = facts.request.window.describe(zone)
    names = sorted({a.fields["alertname"] for a in facts.alerts})
    title = ", ".join(names) if names else "events"
    out = [
        f"# Postmortem: {title} on {', '.join(facts.hosts)}",
        "",
        f"Window: {when}. Facts below are ground truth from the event store ({store}), "
        "recorded by the groundtruth exporter; the report describes processes and causes, "
        "not people.",
        "",
    ]
    out += _summary(facts, zone)
    out += _alerts(facts, zone)
    out += _traces(facts, zone)
    out += _new_for_workloads(facts, zone)
    out += _timeline(facts, zone)
    out += _graph(facts, files)
    out += _failed(facts, zone)
    out += _destinations(facts, zone, req.baseline_ns)
    out += _hosts_and_containers(facts)
    for heading, prompt in HUMAN_SECTIONS:
        out += [f"## {heading}", "", f"_{prompt}_" if not prompt.startswith("-") else prompt, ""]
    return "\n".join(out)


def _summary(facts: Facts, zone) -> list[str]:
    failed = sum(len(h.failed) for h in facts.per_host)
    new = sum(len(h.new_destinations) for h in facts.per_host)
    containers = {c for h in facts.per_host for c, _, _ in h.containers if c}
    return [
        "## Summary",
        "",
        f"- Alerts in the window: {len(facts.alerts)}",
        f"- Hosts involved: {', '.join(facts.hosts)}",
        f"- Containers involved: {len(containers)}",
        f"- Processes that failed, were killed or OOM-killed: {failed}",
        f"- New outbound destinations: {new}",
        f"- Timeline shown: {facts.focus.describe(zone)}",
        "",
    ]


def _alerts(facts: Facts, zone) -> list[str]:
    out = ["## Alerts", ""]
    if not facts.alerts:
        return out + ["No alert was received in the window.", ""]
    rows = [
        [
            format_ns(a.time_ns, zone),
            a.fields["status"],
            a.fields["alertname"],
            a.fields["severity"],
            a.host,
            a.container[:12],
            a.fields["fingerprint"],
            a.detail,
        ]
        for a in facts.alerts
    ]
    head = ["Time", "Status", "Alert", "Severity", "Host", "Container", "Fingerprint", "Detail"]
    return out + table(head, rows) + [""]


def _traces(facts: Facts, zone) -> list[str]:
    """Each trace: its root, its score, and the path from the root to each flag."""
    out = ["## Traces", ""]
    if not facts.traces:
        return out + ["No flag was raised in the window.", ""]
    shown = facts.traces[: facts.request.traces_max]
    rows = [
        [t.score, t.band, t.id, t.root_kind, Code(" ".join(t.root["argv"]) or t.root["program"]),
         ", ".join(t.hosts), len(t.flags), format_ns(t.first_ns, zone)]
        for t in shown
    ]  # fmt: skip
    head = ["Score", "Band", "Trace", "Root", "Root command", "Hosts", "Flags", "First flag"]
    out += table(head, rows) + [""]
    if len(shown) < len(facts.traces):
        out += [f"{len(shown)} of {len(facts.traces)} traces: `groundtruth traces` lists all.", ""]
    for t in shown:
        out += [f"### Trace {t.id} (score {t.score}, {t.band})", ""]
        if facts.trace_graphs.get(t.id):
            out += [f"![trace {t.id}]({facts.trace_graphs[t.id]})", ""]
        rows = [
            [format_ns(f["time_ns"], zone), f["severity"], f["flag_class"], f["rule_id"],
             f["technique"], Code(_path(facts, t.paths[f["process_key"]])), f["description"]]
            for f in t.flags
        ]  # fmt: skip
        head = ["Time", "Severity", "Class", "Rule", "Technique", "Path from the root", "Facts"]
        out += table(head, rows) + [""]
    return out


def _new_for_workloads(facts: Facts, zone) -> list[str]:
    """The baseline policy deviations (policy flags) of the traces, by workload."""
    if facts.request.scoring is None:
        return []
    out = [
        "## New for this workload",
        "",
        "What each workload did that its baseline policy does not allow (exporter `--policies`, "
        "[baselines](docs/baselines.md)): once per process and deviation.",
        "",
    ]
    found = sorted(
        ((f["workload"], f["time_ns"], f, t) for t in facts.traces for f in t.flags
         if f.get("kind") == "policy"),
        key=lambda x: (x[0], x[1]),
    )  # fmt: skip
    if not found:
        return out + ["None (no policy flag in the window).", ""]
    rows = [
        [workload, format_ns(t_ns, zone), f["host"], f["rule_id"].removeprefix("policy_"),
         Code(_path(facts, t.paths[f["process_key"]])), f["description"], t.id]
        for workload, t_ns, f, t in found
    ]  # fmt: skip
    head = ["Workload", "Time", "Host", "New", "Path from the root", "Facts", "Trace"]
    return out + table(head, rows) + [""]


def _path(facts: Facts, keys: list[str]) -> str:
    """root > ... > flagged process, each by its program and pid."""
    steps = []
    for key in keys:
        d = facts.trace_processes.get(key, {})
        steps.append(f"{d.get('program') or '?'}[{d.get('pid', key.rsplit(':', 2)[-2])}]")
    return " > ".join(steps)


def _timeline(facts: Facts, zone) -> list[str]:
    heading = "## Timeline around the alerts" if facts.alerts else "## Timeline"
    out = [heading, "", f"{facts.focus.describe(zone)}.", ""]
    for h in facts.per_host:
        entries = h.timeline
        out += [f"### {h.host}", ""]
        if not entries:
            out += ["No events in this part of the window.", ""]
            continue
        shown = pick_rows(entries, [a.time_ns for a in facts.alerts], TIMELINE_ROWS)
        rows = [
            [
                format_ns(e.time_ns, zone),
                e.kind,
                e.pid or "",
                e.program,
                e.container,
                Code(e.detail),
            ]
            for e in shown
        ]
        out += table(["Time", "Kind", "PID", "Program", "Container", "Detail"], rows)
        if len(shown) < len(entries):
            out += [
                "",
                f"{len(shown)} of {len(entries)} events read: the alerts and the events nearest "
                "them. All of them are in `timeline.jsonl`.",
            ]
        if h.timeline_truncated:
            out += ["", f"The store had more {' and '.join(h.timeline_truncated)} than read."]
        out.append("")
    return out


NOTABLE = {"exec_failed", "oom_kill", "connect_failed"}


def notable(e) -> bool:
    """Failures: first in line when there are no alerts to centre on."""
    return e.kind in NOTABLE or (e.kind == "exit" and e.fields.get("outcome") != "ok")


def pick_rows(entries: list, alert_times: list[int], n: int) -> list:
    """At most n entries, in time order: the alerts, then the entries nearest an alert (without
    alerts: the failures, then the earliest). Every failure is also in its own section."""
    if len(entries) <= n:
        return entries
    if alert_times:
        first = [e for e in entries if e.source == "alert"][:n]
        rest = [e for e in entries if e.source != "alert"]
        rest.sort(key=lambda e: min(abs(e.time_ns - t) for t in alert_times))
    else:
        first = [e for e in entries if notable(e)][:n]
        rest = [e for e in entries if not notable(e)]
    chosen = first + rest[: n - len(first)]
    return sorted(chosen, key=lambda e: e.sort_key())


def _graph(facts: Facts, files: dict[str, str]) -> list[str]:
    out = ["## Causal graph", ""]
    if "graph_svg" in files:
        meta = (facts.graph or {}).get("meta", {})
        nodes = len((facts.graph or {}).get("nodes", []))
        out += [
            f"![causal graph]({files['graph_svg']})",
            "",
            f"{nodes} nodes (processes, connections, alerts, hosts, containers) as graphapi "
            f"builds them for Grafana's Node Graph; {meta.get('not_shown', 0)} left out. "
            f"DOT source: `{files['graph_dot']}`.",
        ]
    else:
        out.append(f"No graph was drawn: {facts.graph_error}")
    return out + [""]


def _failed(facts: Facts, zone) -> list[str]:
    out = ["## Processes that failed, were killed or OOM-killed", ""]
    rows = []
    for h in facts.per_host:
        for e in h.failed:
            rows.append(
                [
                    format_ns(e.time_ns, zone),
                    h.host,
                    e.pid,
                    e.container,
                    Code(e.detail),
                    Code(e.process_key),
                ]
            )
    if not rows:
        return out + ["None in the window.", ""]
    return out + table(["Time", "Host", "PID", "Container", "What", "Process key"], rows) + [""]


def _destinations(facts: Facts, zone, baseline_ns: int) -> list[str]:
    hours = baseline_ns / 3.6e12
    out = [
        "## New outbound destinations",
        "",
        f"Contacted in the window, not in the {hours:g} h before it.",
        "",
    ]
    rows = [
        [
            d.host,
            endpoint(d.addr, d.port),
            format_ns(d.first_ns, zone),
            d.connections,
            ", ".join(d.programs),
            ", ".join(d.outcomes),
        ]
        for h in facts.per_host
        for d in h.new_destinations
    ]
    if not rows:
        return out + ["None.", ""]
    head = ["Host", "Destination", "First seen", "Connections", "Programs", "Outcomes"]
    return out + table(head, rows) + [""]


def _hosts_and_containers(facts: Facts) -> list[str]:
    out = ["## Hosts and containers involved", ""]
    rows = [
        [h.host, short_container(cid) or "(host, no container)", n, ", ".join(programs)]
        for h in facts.per_host
        for cid, n, programs in h.containers
    ]
    if not rows:
        return out + ["No process events in the window.", ""]
    return out + table(["Host", "Container", "Process events", "Programs"], rows) + [""]
