"""``GET /api/openapi.json``: an OpenAPI 3 document of every endpoint (a test checks the app's
routes and this document list the same paths)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from graphapi.api.alerts import STATUSES
from graphapi.request_args import MAX_TEXT, PANEL_MAX_NODES

bp = Blueprint("openapi", __name__)


# What the server enforces (graphapi.request_args, graphapi.api.alerts), as JSON Schema: a value
# these describe is accepted (200, or 404 for what is not stored), any other is a 400. The one
# rule they cannot say is between two values: `from` before `to`, at most MAX_WINDOW_SECONDS.
TEXT = {"type": "string", "maxLength": MAX_TEXT, "pattern": "^[^\\x00-\\x1f\\x7f]*$"}
# Epoch ms before 4,600,000,000,000 (2115), or RFC 3339 from 1970 to 2115 (days 1-28 only here:
# 29-31 are valid in some months only, which a pattern cannot say).
EPOCH_MS = "0|[1-9][0-9]{0,11}|[1-3][0-9]{12}|4[0-5][0-9]{11}"
RFC3339 = (
    "(19[7-9][0-9]|20[0-9][0-9]|210[0-9]|211[0-5])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
    "T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
TIME = {"type": "string", "pattern": f"^({EPOCH_MS}|{RFC3339})$"}
# The focus forms that are always understood, as ``request_args.parse_focus`` reads them: an
# alert, host, container or trace; a process key; pid@host; host:pid (or address:port). Every
# node id of a graph is a focus too (group=, peer=, listen=, endpoint=, ...): those are
# understood, and a 404 when they name nothing stored.
CHAR = "[^\\x00-\\x1f\\x7f"
FOCUS_FORMS = (
    f"(alert|host|container|trace)={CHAR}]+",
    f"{CHAR}@]+:[0-9]{{1,9}}:[0-9]{{1,19}}",
    f"[0-9]{{1,9}}@{CHAR}#]+",
    f"{CHAR}@#:]+:[0-9]{{1,9}}",
)


def _q(name: str, description: str, schema: dict | None = None) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or TEXT,
    }


def _window(cfg) -> list[dict]:
    top = min(cfg["MAX_LIMIT"], PANEL_MAX_NODES)
    return [
        _q("from", "Window start: epoch milliseconds or RFC 3339 (default: `to` minus "
           f"{cfg['DEFAULT_WINDOW_SECONDS']} s); before `to`, at most "
           f"{cfg['MAX_WINDOW_SECONDS']} s before it.", TIME),
        _q("to", "Window end: epoch milliseconds or RFC 3339 (default: now).", TIME),
        _q("host", "Host name, or several separated by commas; empty: every host."),
        _q("container", "Container id; empty or `__all__`: any."),
        _limit(cfg, top),
    ]  # fmt: skip


def _limit(cfg, top: int) -> dict:
    return _q(
        "limit",
        f"Most nodes or rows (default {cfg['DEFAULT_LIMIT']}).",
        # Empty: the default (a dashboard variable left empty).
        {"anyOf": [{"type": "integer", "minimum": 1, "maximum": top}, {"enum": [""]}]},
    )


FOCUS = _q(
    "focus",
    "Process key (host:pid:start_ticks), pid@host or host:pid, address:port, "
    "alert=<fingerprint>, trace=<id>, host=<name>, container=<id>, or any node id of a graph. "
    "It narrows "
    "the scope (`host`, `container`): a focus outside the scope is a 404.",
    {"type": "string", "maxLength": MAX_TEXT, "pattern": f"^(|{'|'.join(FOCUS_FORMS)})$"},
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
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
ALERT_TIME = {"type": "string", "pattern": f"^({RFC3339}|0001-01-01T00:00:00Z)$"}
WEBHOOK_BODY = {
    "type": "object",
    "required": ["version", "alerts"],
    "properties": {
        "version": {"type": "string", "enum": ["4"]},
        "receiver": {"type": "string"},
        "alerts": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["status", "labels", "fingerprint", "startsAt"],
                "properties": {
                    "status": {"type": "string", "enum": list(STATUSES)},
                    "labels": STRING_MAP,
                    "annotations": STRING_MAP,
                    "fingerprint": {"type": "string", "minLength": 1, "maxLength": 64},
                    "startsAt": ALERT_TIME,
                    "endsAt": ALERT_TIME,
                    "generatorURL": {"type": "string"},
                },
            },
        },
    },
}
STORED = {
    "description": "How many alerts were received, newly stored, already stored.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["received", "stored", "duplicates"],
                "properties": {
                    "received": {"type": "integer", "minimum": 1},
                    "stored": {"type": "integer", "minimum": 0},
                    "duplicates": {"type": "integer", "minimum": 0},
                },
            }
        }
    },
}


def paths(cfg) -> dict:
    window = _window(cfg)
    key = {"name": "key", "in": "path", "required": True, "schema": {**TEXT, "minLength": 1}}
    return {
        "/api/graph": {"get": _op("The causal graph of a window.", window + [FOCUS], GRAPH)},
        "/api/graph/data": {
            "get": _op("Node Graph API plugin: the causal graph.", window + [FOCUS], GRAPH)
        },
        "/api/graph/fields": {"get": _op("Node Graph API plugin: the fields.", [], JSON_OK)},
        "/api/health": {"get": _op("Node Graph API plugin: health.", [], JSON_OK, secured=False)},
        "/api/processes": {"get": _op("Processes of a window, one row each.", window, JSON_OK)},
        "/api/processes/{key}": {
            "get": _op(
                "One process: summary, events, and children (at most `limit` of each).",
                [*window[:2], window[-1], key],
                JSON_OK,
            )
        },
        "/api/timeline": {
            "get": _op(
                "Process and connection events in time order.",
                window + [_q("process_key", "Only this process's events.")],
                JSON_OK,
            )
        },
        "/api/traces": {
            "get": _op("Traces with a flag in the window, highest score first.", window, JSON_OK)
        },
        "/api/traces/{trace_id}": {
            "get": _op(
                "One trace: its flags and the path from its root to each.",
                [*window[:2], {**key, "name": "trace_id"}],
                JSON_OK,
            )
        },
        "/api/alerts/webhook": {
            "post": {
                **_op("Alertmanager webhook receiver (payload version 4).", [], STORED),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": WEBHOOK_BODY}},
                },
            }
        },
        "/metrics": {
            "get": _op(
                "Scores of the last window's traces, in Prometheus' text format.",
                [],
                {"description": "Prometheus metrics.", "content": {"text/plain": {}}},
            )
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
        "paths": paths(current_app.config),
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
