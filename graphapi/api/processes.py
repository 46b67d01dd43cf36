"""Rows for table panels: the processes of a window, one process's detail, an event timeline."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import NotFound

from graph import queries as Q
from graph.nodegraph_fields import exit_text, host_of, iso, process_state
from graphapi.request_args import limit_arg, scope_arg, text_arg, window_arg
from graphapi.storage import get_store

bp = Blueprint("processes", __name__)


def window_where(window, scope, lookback_ns: int = 0) -> Q.Where:
    from_ns = max(0, window.from_ns - lookback_ns)
    where = Q.Where().add(Q.WINDOW, from_ns=from_ns, to_ns=window.to_ns)
    if scope.hosts:
        where.add(Q.IN_HOSTS, hosts=list(scope.hosts))
    if scope.container:
        where.add(Q.IN_CONTAINER, container=scope.container)
    return where


def _table_row(d: dict) -> dict:
    return {
        "process_key": d["process_key"],
        "host": d["host"],
        "pid": d["pid"],
        "parent_key": d["parent_key"],
        "program": d["program"],
        "command_line": " ".join(d["argv"] or []),
        "executable": d["exe_path"],
        "cwd": d["cwd"],
        "start": iso(d["start_ns"] or d["first_ns"]),
        "end": iso(d["end_ns"]),
        "state": process_state(d),
        "exit": exit_text(d),
        "container_id": d["container_id"],
    }


@bp.get("/api/processes")
def processes():
    """Processes with events in the window and scope (one row each)."""
    window, scope, limit = window_arg(), scope_arg(), limit_arg()
    where = window_where(window, scope)
    rows = get_store().query(
        Q.process_details(where.sql() + " AND process_key != ''"),
        {**where.params, "details_max": limit},
    )
    return jsonify([_table_row(dict(zip(Q.DETAIL_COLUMNS, r, strict=True))) for r in rows])


@bp.get("/api/processes/<path:key>")
def process(key: str):
    """One process: its summary, its events, its flags, and its children in the window."""
    key = text_arg("process key", key)
    return jsonify(process_facts(key, window_arg(), limit_arg()))


def process_facts(key: str, window, limit: int) -> dict:
    """One process's summary, events, flags and children (at most ``limit`` of each): what
    /api/processes/<key> answers and the process page shows. A 404 when nothing is stored."""
    lookback = int(current_app.config["ANCESTRY_LOOKBACK_SECONDS"] * 1e9)
    where = window_where(window, scope_arg({"host": host_of(key)}), lookback)
    where.add("process_key = {key:String}", key=key)
    store = get_store()
    summary = store.query(Q.process_details(where.sql()), {**where.params, "details_max": 1})
    if not summary:
        raise NotFound(description=f"no events of process {key!r} are stored for this window")
    events = store.query(Q.process_events_of(where.sql()), {**where.params, "rows_max": limit})
    flags = store.query(Q.flags_of(where.sql()), {**where.params, "rows_max": limit})
    kids = window_where(window, scope_arg({"host": host_of(key)}))
    kids.add("parent_key = {key:String} AND process_key != ''", key=key)
    children = store.query(Q.process_details(kids.sql()), {**kids.params, "details_max": limit})
    return {
        "process": _table_row(dict(zip(Q.DETAIL_COLUMNS, summary[0], strict=True))),
        "events": [
            {**dict(zip(Q.PROCESS_EVENT_COLUMNS, r, strict=True)), "time": iso(r[0])}
            for r in events
        ],
        "flags": [{**dict(zip(Q.FLAG_COLUMNS, r, strict=True)), "time": iso(r[0])} for r in flags],
        "children": [_table_row(dict(zip(Q.DETAIL_COLUMNS, r, strict=True))) for r in children],
    }


@bp.get("/api/timeline")
def timeline():
    """Process and connection events of the window and scope, in time order."""
    key = text_arg("process_key", request.args.get("process_key"))
    return jsonify(timeline_rows(window_arg(), scope_arg(), limit_arg(), key))


def timeline_rows(window, scope, limit: int, process_key: str = "") -> list[dict]:
    """Process and connection events in time order (of one process when a key is given)."""
    where = window_where(window, scope)
    if process_key:
        where.add("process_key = {key:String}", key=process_key)
    rows = get_store().query(Q.timeline(where.sql()), {**where.params, "rows_max": limit})
    return [{**dict(zip(Q.TIMELINE_COLUMNS, r, strict=True)), "time": iso(r[0])} for r in rows]
