"""The Node Graph API plugin's contract (hamedkarbasi93-nodegraphapi-datasource), on the same code.

``/api/health`` answers 200 when the app runs; ``/api/graph/fields`` lists the frames' fields;
``/api/graph/data`` is ``/api/graph`` (same query arguments, put in the plugin's query string).
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from graph.nodegraph_fields import EDGE_FIELDS, NODE_FIELDS
from graphapi.api.graph import graph_from_request

bp = Blueprint("nodegraph", __name__)


def _fields(fields) -> list[dict]:
    out = []
    for name, field_type, display in fields:
        entry = {"field_name": name, "type": field_type}
        if name.startswith("detail__") or name in ("mainstat", "secondarystat"):
            entry["displayName"] = display
        out.append(entry)
    return out


@bp.get("/api/health")
def health():
    """Liveness for the plugin's "Save & test"."""
    return jsonify({"status": "ok"})


@bp.get("/api/graph/fields")
def fields():
    """The nodes' and edges' fields and their types."""
    return jsonify({"nodes_fields": _fields(NODE_FIELDS), "edges_fields": _fields(EDGE_FIELDS)})


@bp.get("/api/graph/data")
def data():
    """The causal graph, as /api/graph."""
    return jsonify(graph_from_request())
