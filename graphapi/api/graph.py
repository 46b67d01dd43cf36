"""``GET /api/graph``: the causal graph as ``{"nodes": [...], "edges": [...], "meta": {...}}``.

The Infinity data source reads it twice (formats ``node-graph-nodes`` and ``node-graph-edges``,
root selectors ``nodes`` and ``edges``), as the investigation dashboard does; both calls of one
refresh get the same snapshot of the graph (``graphapi.snapshots``).
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from graph.causal import build_graph
from graph.request import GraphLimits, GraphRequest
from graphapi import graph_limits
from graphapi.request_args import focus_arg, limit_arg, scope_arg, window_arg
from graphapi.snapshots import snapshots
from graphapi.storage import get_store

bp = Blueprint("graph", __name__)


def graph_from_request() -> dict:
    """The graph for this request's window, scope, focus and limit (a snapshot shared by
    identical requests for ``GRAPH_SNAPSHOT_SECONDS``)."""
    return graph_for(GraphRequest(window_arg(), scope_arg(), focus_arg(), limit_arg()))


def graph_for(req: GraphRequest, limits: GraphLimits | None = None) -> dict:
    """The graph of ``req`` with ``limits`` (default: the configured ones), from the snapshot
    cache; the API and the investigation pages both draw through here."""
    limits = limits or graph_limits(current_app.config)
    # build runs in this request (SnapshotCache.get calls it in the caller's thread), so the
    # proxy is this app throughout.
    return snapshots(current_app).get((req, limits), lambda: build_graph(get_store(), req, limits))


@bp.get("/api/graph")
def graph():
    """The causal graph of a window, optionally focused."""
    return jsonify(graph_from_request())
