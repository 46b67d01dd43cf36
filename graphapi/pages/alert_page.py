"""``/alert?alertname=...&<label>=<value>...``: an alert notification's link without Grafana.

Prometheus renders the link (``alerts.rules.graphapi_alert_url``) but does not know the
fingerprint Alertmanager gives the alert, so the link names the alert by its name and labels.
This page finds the most recently received alert of that name whose labels include all of them
and sends the browser to its graph (focus on the alert). When none was received (yet): the
graph of the labels' host and container (or trace), saying so.
"""

from __future__ import annotations

import json
import time

from flask import current_app, redirect, request, url_for

from graph import queries as Q
from graph.request import Scope, Window
from graphapi.pages.blueprint import bp
from graphapi.pages.graph_page import graph_view
from graphapi.pages.window import PageWindow, page_window
from graphapi.request_args import bad, text_arg
from graphapi.storage import get_store

ALERTNAME = "alertname"
# Fingerprints of one name looked at: one per label set (host, container, ...) received lately.
CANDIDATES = 200
# The graph opens this long before the alert started (what led to it) and after it ended.
MARGIN_SECONDS = 15 * 60
# The page's own arguments, never taken as labels to match.
PAGE_ARGS = {"last", "from", "to", "limit", "collapse"}


def labels_arg() -> tuple[str, dict[str, str]]:
    """(alert name, the labels to match): every argument but the page's own."""
    name = text_arg(ALERTNAME, request.args.get(ALERTNAME))
    if not name:
        raise bad("alertname is required: the name of the alert to show")
    labels = {
        key: text_arg(key, request.args.get(key))
        for key in request.args
        if key != ALERTNAME and key not in PAGE_ARGS
    }
    for key in labels:
        text_arg("label name", key)
    return name, labels


def host_of_labels(labels: dict[str, str]) -> str:
    """The host an alert is about, as the store records it (``store.received_alerts``)."""
    return labels.get("host", labels.get("instance", ""))


def latest_matching(name: str, labels: dict[str, str]) -> tuple | None:
    """(fingerprint, starts ns, ends ns) of the most recently received alert called ``name``
    whose labels include ``labels``, or None."""
    where = Q.Where().add(Q.ALERT_NAMED, alertname=name)
    host = host_of_labels(labels)
    if host:
        where.add(Q.ALERT_ON_HOST, host=host)
    rows = get_store().query(
        Q.alerts_named(where.sql()), {**where.params, "alerts_max": CANDIDATES}
    )
    for fingerprint, labels_json, starts_ns, ends_ns, _received in rows:
        received = json.loads(labels_json or "{}")
        if all(received.get(k) == v for k, v in labels.items()):
            return fingerprint, starts_ns, ends_ns
    return None


def around(starts_ns: int, ends_ns: int) -> dict:
    """The window of an alert's graph: from a margin before it started to a margin after it
    ended (now, while it fires), at most the longest window allowed."""
    now = time.time_ns()
    margin = MARGIN_SECONDS * 10**9
    to_ns = now if not ends_ns or ends_ns + margin > now else ends_ns + margin
    top = current_app.config["MAX_WINDOW_SECONDS"] * 10**9
    from_ns = max(starts_ns - margin, to_ns - top)
    return PageWindow(Window(from_ns, to_ns), "").params()


@bp.get("/alert")
def alert_page():
    """The graph of the latest alert with this name and labels, or of where it would fire."""
    name, labels = labels_arg()
    found = latest_matching(name, labels)
    if found:
        fingerprint, starts_ns, ends_ns = found
        return redirect(
            url_for("pages.graph_page", focus=f"alert={fingerprint}", **around(starts_ns, ends_ns))
        )
    host, container = host_of_labels(labels), labels.get("container", "")
    scope = Scope(hosts=(host,) if host else (), container=container)
    focus = f"trace={labels['trace_id']}" if labels.get("trace_id") else ""
    shown = focus or " / ".join(x for x in (host, container) if x) or "every host"
    note = f"The alert {name} was not received (yet): showing the graph of {shown}."
    return graph_view(page_window(), scope, focus, note=note)
