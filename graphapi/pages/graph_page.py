"""``/graph``: the causal graph of ``/api/graph`` (same request arguments, same snapshot), drawn,
with every node's details one click away and a link to the same view in Grafana."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from urllib.parse import urlencode

from flask import current_app, render_template, request

from graph.errors import FocusNotFound
from graph.request import GraphRequest, Scope
from graphapi import graph_limits
from graphapi.api.graph import graph_for
from graphapi.pages.blueprint import bp
from graphapi.pages.drawing import node_views, svg_of
from graphapi.pages.window import PageWindow, page_window
from graphapi.request_args import bad, focus_arg, limit_arg, scope_arg, text_arg
from mixin.recording import INVESTIGATION_SLUG, INVESTIGATION_UID

MAX_COLLAPSE = 100_000


def collapse_arg() -> int:
    """Siblings running one program drawn as one node from this many (default: the config's)."""
    value = text_arg("collapse", request.args.get("collapse"))
    if not value:
        return current_app.config["COLLAPSE_MIN"]
    if not (value.isascii() and value.isdigit()) or not 2 <= int(value) <= MAX_COLLAPSE:
        raise bad(f"collapse={value!r} is not a whole number from 2 to {MAX_COLLAPSE}")
    return int(value)


@cache
def _host_variable() -> str:
    """The investigation dashboard's host variable: named after the mixin's host label."""
    from mixin.config import load_config

    return f"var-{load_config().host_label}"


def grafana_link(win: PageWindow, req: GraphRequest, focus_text: str) -> str:
    """The same view on Grafana's investigation dashboard, '' when no Grafana URL is set."""
    base = (current_app.config.get("GRAFANA_URL") or "").rstrip("/")
    if not base:
        return ""
    args: dict[str, str | int] = {
        "from": win.window.from_ns // 10**6,
        "to": win.window.to_ns // 10**6,
    }
    if win.last:
        args = {"from": f"now-{win.last}", "to": "now"}
    if req.scope.hosts:
        args[_host_variable()] = req.scope.hosts[0]
    args["var-focus"] = focus_text
    args["var-limit"] = req.limit
    return f"{base}/d/{INVESTIGATION_UID}/{INVESTIGATION_SLUG}?{urlencode(args)}"


@bp.get("/graph")
def graph_page():
    """The causal graph of a window, optionally focused, drawn."""
    return graph_view(page_window(), scope_arg(), request.args.get("focus", ""))


def graph_view(win: PageWindow, scope: Scope, focus_text: str, note: str = ""):
    """The graph page of ``focus_text`` (a focus as the API takes it, or '') in ``win`` and
    ``scope``, with the request's limit and collapse, and ``note`` said above the graph."""
    focus, limit, collapse = focus_arg({"focus": focus_text}), limit_arg(), collapse_arg()
    req = GraphRequest(win.window, scope, focus, limit)
    limits = replace(graph_limits(current_app.config), collapse_min=collapse)
    context = dict(
        win=win, scope=scope, focus=focus_text, limit=limit, collapse=collapse,
        grafana=grafana_link(win, req, focus_text), note=note,
    )  # fmt: skip
    try:
        graph = graph_for(req, limits)
    except FocusNotFound as e:
        return render_template("pages/graph.html", **context, missing=str(e)), 404
    svg, svg_error = (None, "") if not graph["nodes"] else svg_of(graph, focus_text)
    nodes = node_views(graph)
    # Shown until another node is clicked: the focus itself, else the first highlighted node.
    selected = next((v for v in nodes if v["node"]["id"] == focus_text), None) or next(
        (v for v in nodes if focus_text and v["node"]["highlighted"]), None
    )
    return render_template(
        "pages/graph.html",
        **context,
        graph=graph,
        svg=svg,
        svg_error=svg_error,
        nodes=nodes,
        selected=selected["anchor"] if selected else "",
    )
