"""``POST /api/alerts/webhook``: Alertmanager's webhook (payload version "4"), stored idempotently.

Alertmanager retries a 5xx and drops a 4xx, and redelivers notifications on its own: a payload
is validated whole first (400 names the first problem), then only alerts whose id
(fingerprint, status, start) is not yet stored are inserted, under a lock so two concurrent
deliveries cannot both insert. A store that does not answer is a 503: Alertmanager tries again.
"""

from __future__ import annotations

import threading
import time

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import BadRequest

from graph import queries as Q
from graphapi.storage import get_store
from store.db import columnar
from store.received_alerts import from_webhook, parse_time_ns

bp = Blueprint("alerts", __name__)
_insert_lock = threading.Lock()
STATUSES = ("firing", "resolved")
ID_CHUNK = 1000


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise BadRequest(description=f"not an Alertmanager webhook payload: {message}")


def _is_str_map(value) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def validate(payload) -> None:
    """Raises a 400 naming the first thing that is not a version 4 webhook payload."""
    _check(isinstance(payload, dict), "the body is not a JSON object")
    _check(payload.get("version") == "4", f"version is {payload.get('version')!r}, not '4'")
    _check(isinstance(payload.get("receiver", ""), str), "receiver is not a string")
    alerts = payload.get("alerts")
    _check(isinstance(alerts, list) and alerts, "alerts is not a non-empty list")
    for i, alert in enumerate(alerts):
        where = f"alerts[{i}]"
        _check(isinstance(alert, dict), f"{where} is not an object")
        _check(alert.get("status") in STATUSES, f"{where}.status is not firing or resolved")
        _check(_is_str_map(alert.get("labels")), f"{where}.labels is not a string map")
        _check(_is_str_map(alert.get("annotations", {})), f"{where}.annotations is not a map")
        fingerprint = alert.get("fingerprint")
        _check(isinstance(fingerprint, str) and fingerprint, f"{where}.fingerprint is missing")
        _check(len(fingerprint) <= 64, f"{where}.fingerprint is too long")
        for name in ("startsAt", "endsAt"):
            value = alert.get(name, "0001-01-01T00:00:00Z" if name == "endsAt" else None)
            _check(isinstance(value, str), f"{where}.{name} is not a string")
            try:
                parse_time_ns(value)
            except (ValueError, OverflowError):
                _check(False, f"{where}.{name} is not an RFC 3339 time")
        _check(isinstance(alert.get("generatorURL", ""), str), f"{where}.generatorURL")


def store_alerts(store, rows: list) -> int:
    """Inserts the rows not stored yet; returns how many were new."""
    ids = list(dict.fromkeys(r.event_id for r in rows))
    with _insert_lock:
        stored = set()
        # In chunks: ClickHouse 18.16 gets the ids inlined, and caps a query at 256 KiB.
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            stored |= {i for (i,) in store.query(Q.STORED_ALERT_IDS, {"ids": chunk})}
        new, seen = [], set(stored)
        for r in rows:
            if r.event_id not in seen:
                seen.add(r.event_id)
                new.append(r)
        if new:
            store.insert("received_alerts", columnar(new)["received_alerts"])
    return len(new)


@bp.post("/api/alerts/webhook")
def webhook():
    """Store the alerts of one Alertmanager notification."""
    payload = request.get_json(silent=True)
    validate(payload)
    rows = from_webhook(payload, time.time_ns())
    new = store_alerts(get_store(), rows)
    return jsonify({"received": len(rows), "stored": new, "duplicates": len(rows) - new})
