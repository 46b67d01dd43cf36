"""``GET /api/openapi.json``: an OpenAPI 3 document of every endpoint (a test checks the app's
routes and this document list the same paths)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

bp = Blueprint("openapi", __name__)


def _q(name: str, description: str, schema: dict | None = None) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


WINDOW = [
    _q("from", "Window start: epoch milliseconds or RFC 3339 (default: `to` minus 1 hour)."),
    _q("to", "Window end: epoch milliseconds or RFC 3339 (default: now)."),
    _q("host", "Host name, or several separated by commas; empty: every host."),
    _q("container", "Container id; empty or `__all__`: any."),
    _q("limit", "Most nodes or rows (default and maximum from the config).", {"type": "integer"}),
]
FOCUS = _q(
    "focus",
    "Process key (host:pid:start_ticks), pid@host or host:pid, address:port, "
    "alert=<fingerprint>, trace=<id>, host=<name>, container=<id>, or any node id of a graph.",
)
ERROR = {
    "description": "Bad input, unknown focus, missing token or unavailable store.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
GRAPH = {
    "description": "Nodes and edges with the Node Graph panel's field names.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Graph"}}},
}


def _op(summary: str, params: list, ok: dict, secured: bool = True) -> dict:
    op = {
        "summary": summary,
        "parameters": params,
        "responses": {"200": ok, "4XX": ERROR, "5XX": ERROR},
    }
    if not secured:
        op["security"] = []
    return op


JSON_OK = {"description": "JSON rows or object.", "content": {"application/json": {}}}
PATHS = {
    "/api/graph": {"get": _op("The causal graph of a window.", WINDOW + [FOCUS], GRAPH)},
    "/api/graph/data": {
        "get": _op("Node Graph API plugin: the causal graph.", WINDOW + [FOCUS], GRAPH)
    },
    "/api/graph/fields": {"get": _op("Node Graph API plugin: the fields.", [], JSON_OK)},
    "/api/health": {"get": _op("Node Graph API plugin: health.", [], JSON_OK, secured=False)},
    "/api/processes": {"get": _op("Processes of a window, one row each.", WINDOW, JSON_OK)},
    "/api/processes/{key}": {
        "get": _op(
            "One process: summary, events, children.",
            WINDOW[:2]
            + [{"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}],
            JSON_OK,
        )
    },
    "/api/timeline": {
        "get": _op(
            "Process and connection events in time order.",
            WINDOW + [_q("process_key", "Only this process's events.")],
            JSON_OK,
        )
    },
    "/api/traces": {
        "get": _op("Traces with a flag in the window, highest score first.", WINDOW, JSON_OK)
    },
    "/api/traces/{trace_id}": {
        "get": _op(
            "One trace: its flags and the path from its root to each.",
            WINDOW[:2]
            + [{"name": "trace_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            JSON_OK,
        )
    },
    "/api/alerts/webhook": {
        "post": {
            **_op("Alertmanager webhook receiver (payload version 4).", [], JSON_OK),
            "requestBody": {"required": True, "content": {"application/json": {}}},
        }
    },
    "/api/openapi.json": {"get": _op("This document.", [], JSON_OK, secured=False)},
}
SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["code", "name", "description"],
        "properties": {
            "code": {"type": "integer"},
            "name": {"type": "string"},
            "description": {"type": "string"},
        },
    },
    "Graph": {
        "type": "object",
        "required": ["nodes", "edges"],
        "properties": {
            "nodes": {"type": "array", "items": {"type": "object"}},
            "edges": {"type": "array", "items": {"type": "object"}},
            "meta": {"type": "object"},
        },
    },
}


def document() -> dict:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "groundtruth graphapi",
            "version": current_app.config.get("VERSION", "0"),
            "description": "The temporal causal graph of processes and connections, for "
            "Grafana's Node Graph panel, and Alertmanager's webhook receiver.",
        },
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


@bp.get("/api/openapi.json", endpoint="document")
def openapi_document():
    """The OpenAPI document."""
    return jsonify(document())
