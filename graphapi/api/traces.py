"""``GET /api/traces``: the traces of a window, highest score first (an Infinity table);
``GET /api/traces/<id>``: one trace with its flags and the path from its root to each."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from werkzeug.exceptions import NotFound

from graph.nodegraph_fields import TRACE, iso
from graph.traces import Trace, TraceAssembler, TraceLimits
from graphapi.request_args import limit_arg, scope_arg, text_arg, window_arg
from graphapi.storage import get_store

bp = Blueprint("traces", __name__)


def assembler() -> TraceAssembler:
    cfg = current_app.config
    limits = TraceLimits(lookback_ns=int(cfg["ANCESTRY_LOOKBACK_SECONDS"] * 1e9))
    return TraceAssembler(get_store(), cfg["TRACE_SCORING"], limits)


def _row(t: Trace) -> dict:
    s = t.summary()
    return {
        **s,
        "focus": f"{TRACE}{t.id}",  # the graph's focus on this trace (the dashboard's link)
        "rules": ", ".join(s["rules"]),
        "hosts": ", ".join(s["hosts"]),
        "first_seen": iso(s.pop("first_ns")),
        "last_seen": iso(s.pop("last_ns")),
    }


@bp.get("/api/traces")
def traces():
    """Traces with a flag in the window (on the scope's hosts), highest score first."""
    window, scope, limit = window_arg(), scope_arg(), limit_arg()
    found = assembler().assemble(window.from_ns, window.to_ns, scope.hosts)
    return jsonify([_row(t) for t in found[:limit]])


@bp.get("/api/traces/<trace_id>")
def trace(trace_id: str):
    """One trace: its summary, its flags, and the path from the root to each flagged process."""
    trace_id = text_arg("trace id", trace_id)
    window = window_arg()
    found = assembler().trace(trace_id, window.from_ns, window.to_ns)
    if found is None:
        raise NotFound(description=f"no trace {trace_id!r} has a flag in this window")
    flags = [{**f, "time": iso(f["time_ns"])} for f in found.flags]
    return jsonify({**_row(found), "joined_from": found.joined_from, "flags": flags,
                    "paths": found.paths})  # fmt: skip
