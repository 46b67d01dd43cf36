"""``POST /api/alerts/webhook``: Alertmanager's webhook (payload version "4"), stored idempotently.

Alertmanager retries a 5xx and drops a 4xx, and redelivers notifications on its own: a payload
is validated whole first (400 names the first problem), then only alerts whose id
(fingerprint, status, start) is not yet stored are inserted, under a lock so two concurrent
deliveries cannot both insert. A store that does not answer is a 503: Alertmanager tries again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import BadRequest

from graph import queries as Q
from graphapi.request_args import MAX_NS
from graphapi.storage import get_store
from store.db import columnar
from store.received_alerts import from_webhook, parse_time_ns

bp = Blueprint("alerts", __name__)
_insert_lock = threading.Lock()
STATUSES = ("firing", "resolved")
# Bytes of ids per stored-id lookup: ClickHouse 18.16 gets them inlined into the query text,
# which it caps at 256 KiB (counted in bytes: 1,000 long multi-byte fingerprints exceed it).
ID_CHUNK_BYTES = 96 * 1024


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
                ns = parse_time_ns(value)
            except (ValueError, OverflowError):
                _check(False, f"{where}.{name} is not an RFC 3339 time")
            # Stored as UInt64 nanoseconds, which end in 2554; anything after 2116 is a mistake.
            _check(ns < MAX_NS, f"{where}.{name} {value!r} is out of range (after 2116)")
        _check(isinstance(alert.get("generatorURL", ""), str), f"{where}.generatorURL")


def id_chunks(ids: list[str], max_bytes: int = ID_CHUNK_BYTES) -> Iterator[list[str]]:
    """The ids in order, in chunks of at most ``max_bytes`` as quoted, escaped SQL text."""
    chunk: list[str] = []
    size = 0
    for i in ids:
        # Each byte may need an escape, plus quotes and a comma.
        cost = 2 * len(i.encode("utf-8")) + 3
        if chunk and size + cost > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(i)
        size += cost
    if chunk:
        yield chunk


def store_alerts(store, rows: list) -> int:
    """Inserts the rows not stored yet; returns how many were new."""
    ids = list(dict.fromkeys(r.event_id for r in rows))
    with _insert_lock:
        stored = set()
        for chunk in id_chunks(ids):
            stored |= {i for (i,) in store.query(Q.STORED_ALERT_IDS, {"ids": chunk})}
        new, seen = [], set(stored)
        for r in rows:
            if r.event_id not in seen:
                seen.add(r.event_id)
                new.append(r)
        if new:
            store.insert("received_alerts", columnar(new)["received_alerts"])
    return len(new)


def request_payload():
    """The JSON body, or None when it is not JSON; a body nested deeper than the parser goes
    (it raises RecursionError, not ValueError) is a 400 like any other malformed body."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        _check(False, "the body is nested too deeply")


@bp.post("/api/alerts/webhook")
def webhook():
    """Store the alerts of one Alertmanager notification."""
    payload = request_payload()
    validate(payload)
    rows = from_webhook(payload, time.time_ns())
    new = store_alerts(get_store(), rows)
    return jsonify({"received": len(rows), "stored": new, "duplicates": len(rows) - new})
