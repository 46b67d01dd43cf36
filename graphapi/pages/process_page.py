"""``/process/<key>``: one process: its ancestry to the root, its children, its connections, its
flags and its events."""

from __future__ import annotations

from flask import render_template

from graph.nodegraph_fields import host_of
from graph.request import Scope
from graphapi.api.processes import process_facts, timeline_rows
from graphapi.pages.blueprint import bp
from graphapi.pages.incident_store import incident_reader
from graphapi.pages.window import page_window
from graphapi.request_args import limit_arg, text_arg
from incident import ancestry as A


@bp.get("/process/<path:key>")
def process_page(key: str):
    """One process and what surrounds it."""
    key = text_arg("process key", key)
    win, limit = page_window(), limit_arg()
    facts = process_facts(key, win.window, limit)  # a 404 page when it has no events
    reader = incident_reader()
    chain, missing = A.chain(reader, A.resolve_key(reader, key))
    rows = timeline_rows(win.window, Scope(hosts=(host_of(key),)), limit, key)
    return render_template(
        "pages/process.html",
        win=win,
        key=key,
        host=host_of(key),
        facts=facts,
        chain=chain,
        missing=missing,
        connections=[r for r in rows if r["type"] == "connection"],
    )
