"""``groundtruth postmortem``: gather the facts, draw the graph, write the report into DIR.

DIR receives ``postmortem.md``, ``causal-graph.svg`` and ``.dot`` (when graphviz could draw it)
and ``timeline.jsonl`` (every event of the focus window, all hosts). A graph that cannot be
drawn is said in the report, not fatal: the facts matter more than the picture.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from incident.errors import IncidentError
from incident.graph_svg import causal_graph, render_svg, to_dot
from incident.postmortem import PostmortemRequest, gather
from incident.progress import Progress
from incident.render import write_jsonl
from incident.report_md import render
from incident.store_access import Reader, open_from_args
from incident.times import get_zone, make_window, parse_duration_ns
from incident.traces_cli import scoring_from_args

REPORT, SVG, DOT, TIMELINE = (
    "postmortem.md",
    "causal-graph.svg",
    "causal-graph.dot",
    "timeline.jsonl",
)


def check_output_dir(path: str) -> Path:
    """The report's directory, checked before any query (it is made once there is a report)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise IncidentError(f"-o {path}: exists and is not a directory")
    if (out / REPORT).exists():
        raise IncidentError(f"-o {path}: already holds a {REPORT}; choose a new directory")
    return out


def make_output_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise IncidentError(f"-o {out}: {e.strerror}") from None


def graph_focus(asked: str, alerts: list) -> str:
    """The alert the graph centres on: the one asked for, or the only one in the window."""
    fingerprints = {a.fields["fingerprint"] for a in alerts}
    return asked or (fingerprints.pop() if len(fingerprints) == 1 else "")


def run_postmortem(args) -> int:
    zone = get_zone(args.tz)
    window = make_window(None, args.start, args.end, time.time_ns(), zone, default_since=None)
    req = PostmortemRequest(
        window,
        host=args.host or "",
        alert=args.alert or "",
        around_ns=parse_duration_ns(args.around),
        baseline_ns=parse_duration_ns(args.baseline),
        graph_limit=args.graph_limit,
        scoring=scoring_from_args(args),
    )
    if not 1 <= req.graph_limit <= 1500:
        raise IncidentError("--graph-limit must be between 1 and 1500")
    out = check_output_dir(args.output)
    progress = Progress(quiet=args.quiet)
    store = open_from_args(args)
    try:
        reader = Reader(store)
        facts = gather(reader, req, progress)
        make_output_dir(out)
        files = {}
        with progress.step("causal graph") as step:
            try:
                facts.graph = causal_graph(
                    store, facts.hosts, facts.focus.start_ns, facts.focus.end_ns,
                    graph_focus(req.alert, facts.alerts), req.graph_limit,
                )  # fmt: skip
                dot_text = to_dot(facts.graph, f"groundtruth: {facts.focus.describe(zone)}")
                (out / DOT).write_text(dot_text)
                (out / SVG).write_bytes(render_svg(dot_text))
                files = {"graph_svg": SVG, "graph_dot": DOT}
                step.note = f"{len(facts.graph['nodes'])} nodes"
            except IncidentError as e:
                facts.graph_error = str(e)
                step.note = f"not drawn: {e}"
        for trace in facts.traces[: req.traces_max]:
            with progress.step(f"graph of trace {trace.id}") as step:
                facts.trace_graphs[trace.id] = draw_trace(store, facts, trace.id, out, zone)
                step.note = "drawn" if facts.trace_graphs[trace.id] else "not drawn"
        describe = store.describe()
    finally:
        store.close()
    with (out / TIMELINE).open("w") as f:
        entries = sorted(
            [e for h in facts.per_host for e in h.timeline], key=lambda e: e.sort_key()
        )
        write_jsonl(entries, f, zone)
    (out / REPORT).write_text(render(facts, zone, describe, files))
    print(out / REPORT)
    if not args.quiet:
        print(f"{reader.queries} queries in {reader.seconds:.1f}s", file=sys.stderr)
    return 0


def draw_trace(store, facts, trace_id: str, out: Path, zone) -> str:
    """The trace's own graph as ``trace-<id>.svg`` (its name), or '' when it cannot be drawn."""
    w = facts.request.window
    try:
        graph = causal_graph(
            store, facts.hosts, w.start_ns, w.end_ns, "", facts.request.graph_limit, trace_id
        )
        svg = f"trace-{trace_id}.svg"
        (out / svg).write_bytes(render_svg(to_dot(graph, f"groundtruth: trace {trace_id}")))
        return svg
    except IncidentError:
        return ""


def add_postmortem_parser(sub, common, guarded) -> None:
    p = sub.add_parser(
        "postmortem",
        help="a Markdown postmortem of a window: alerts, timeline, causal graph, failures",
        description="Write a postmortem for a time window into DIR: the alerts received, the "
        "timeline around them, the causal graph as SVG (graphviz), processes that failed, were "
        "killed or OOM-killed, new outbound destinations, hosts and containers involved, the "
        "traces of flags (root, path to each flag, score, graph), and "
        "headed sections for impact, remediation and follow-ups. Progress goes to stderr.",
    )
    common(p)
    p.add_argument("--from", dest="start", metavar="TIME", required=True, help="window start")
    p.add_argument("--to", dest="end", metavar="TIME", help="window end (default now)")
    p.add_argument("--host", help="only this host (default: the alerts' hosts)")
    p.add_argument("--alert", metavar="FINGERPRINT", help="only this alert (and centre on it)")
    p.add_argument(
        "--around", default="10m", help="timeline this long around the alerts (default 10m)"
    )
    p.add_argument(
        "--baseline",
        default="24h",
        help="a destination is new if not contacted this long before the window (24h)",
    )
    p.add_argument("--graph-limit", type=int, default=150, help="nodes in the graph (150)")
    p.add_argument("--config", help="a thresholds file merged over the defaults (trace scores)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for the report")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=guarded("postmortem", run_postmortem), since=None, since_default=None)
