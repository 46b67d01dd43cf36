"""``groundtruth traces``: the traces of a window, highest score first, or one trace's paths.

A trace is a set of causally linked flags and the chain from their root cause to each flag
(``graph.traces``). The table is for reading during an incident; ``--format jsonl`` gives one
JSON object per trace (or, with ``--trace``, per flag) for tools.
"""

from __future__ import annotations

import json
import sys
import time

from graph.traces import Trace, TraceAssembler, TraceLimits, TraceScoring
from incident.errors import IncidentError, NothingFound
from incident.render import printable
from incident.store_access import Reader, open_from_args
from incident.times import format_ns, get_zone
from mixin.config import MixinConfigError, load_config


def scoring_from_args(args) -> TraceScoring:
    try:
        return TraceScoring.from_thresholds(load_config(args.config).raw["thresholds"])
    except (OSError, MixinConfigError) as e:
        raise IncidentError(f"cannot read the thresholds file: {e}") from None


def run_traces(args, window_from_args, out=None) -> int:
    out = out or sys.stdout
    zone = get_zone(args.tz)
    window = window_from_args(args, zone, time.time_ns())
    hosts = tuple(h for h in (args.host or "").split(",") if h)
    scoring = scoring_from_args(args)
    store = open_from_args(args)
    try:
        assembler = TraceAssembler(Reader(store), scoring, TraceLimits())
        if args.trace:
            found = assembler.trace(args.trace, window.start_ns, window.end_ns)
            if found is None:
                raise IncidentError(
                    f"no trace {args.trace!r} has a flag in {window.describe(zone)}"
                )
            traces = [found]
        else:
            traces = assembler.assemble(window.start_ns, window.end_ns, hosts)
    finally:
        store.close()
    if not traces:
        raise NothingFound(f"no flags in {window.describe(zone)}")
    if args.trace:
        write_trace(traces[0], assembler.details, out, zone, args.format)
    else:
        write_traces(traces, out, zone, args.format)
    return 0


def write_traces(traces: list[Trace], out, zone, fmt: str) -> None:
    if fmt == "jsonl":
        for t in traces:
            out.write(json.dumps(t.summary(), ensure_ascii=False) + "\n")
        return
    out.write(f"{'SCORE':>5}  {'BAND':<8}  {'TRACE':<18}  {'FIRST SEEN':<29}  FLAGS  ROOT\n")
    for t in traces:
        s = t.summary()
        root = printable(s["root_argv"] or s["root_program"])
        rules = ", ".join(s["rules"])
        out.write(
            f"{s['score']:>5}  {s['band']:<8}  {s['id']:<18}  "
            f"{format_ns(s['first_ns'], zone):<29}  {s['flags']:>5}  {root} "
            f"({s['root_kind']} {s['root']}{', interactive' if s['interactive'] else ''}): "
            f"{rules}\n"
        )


def write_trace(t: Trace, details: dict, out, zone, fmt: str) -> None:
    """Each flag with the path from the trace's root to its process."""
    if fmt == "jsonl":
        for f in t.flags:
            record = {**f, "trace": t.id, "path": t.paths[f["process_key"]]}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    s = t.summary()
    out.write(f"trace {t.id}: score {s['score']} ({s['band']}), hosts {', '.join(s['hosts'])}\n")
    for f in t.flags:
        out.write(
            f"\n{format_ns(f['time_ns'], zone)}  {f['severity']} {f['flag_class']} "
            f"{f['rule_id']}  {f['technique']}\n  {printable(f['description'])}\n"
        )
        for depth, key in enumerate(t.paths[f["process_key"]]):
            d = details.get(key, {})
            command = printable(" ".join(d.get("argv") or []) or d.get("program", "?"))
            out.write(f"  {'  ' * depth}└─ pid {d.get('pid', '?')}  {command}  ({key})\n")


def add_traces_parser(sub, common, window_arguments, guarded, window_from_args) -> None:
    p = sub.add_parser(
        "traces",
        help="flags linked into traces from their root cause, highest score first",
        description="Traces of a window: flags (rules on the live event stream) grouped by "
        "their root cause (a container's entrypoint, a login session, a service) across hosts, "
        "scored by number and severity (docs/traces.md). With --trace ID, each flag of one "
        "trace and the path from its root to it. Exit status 1 when the window has no flags.",
    )
    common(p)
    window_arguments(p, "1h")
    p.add_argument("--host", help="only traces with a flag on this host (comma-separated list)")
    p.add_argument("--trace", metavar="ID", help="one trace: its flags and their paths")
    p.add_argument("--config", help="a thresholds file merged over the defaults (scoring)")
    p.add_argument("--format", choices=("table", "jsonl"), default="table")
    p.set_defaults(func=guarded("traces", lambda args: run_traces(args, window_from_args)))
