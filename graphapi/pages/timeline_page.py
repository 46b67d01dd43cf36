"""``/timeline``: one host's timeline, with the filters of ``groundtruth timeline`` (container,
program, user, remote address), built by the same code."""

from __future__ import annotations

from flask import render_template, request

from graphapi.api.processes import window_where
from graphapi.pages.blueprint import bp
from graphapi.pages.incident_store import incident_reader
from graphapi.pages.overview import host_rows
from graphapi.pages.window import page_window
from graphapi.request_args import limit_arg, scope_arg, text_arg
from incident import queries as Q
from incident.filters import parse_remote, parse_user
from incident.timeline import TimelineRequest, build_timeline, check_host
from incident.times import Window

FILTERS = ("container", "program", "user", "remote")


@bp.get("/timeline")
def timeline_page():
    """A host's events in time order, filtered as the timeline command filters them."""
    win, limit = page_window(), limit_arg()
    given = {name: text_arg(name, request.args.get(name)) for name in FILTERS}
    host = text_arg("host", request.args.get("host"))
    context = dict(win=win, host=host, given=given, limit=limit)
    if not host:  # which host? the ones with events in the window
        hosts = host_rows(window_where(win.window, scope_arg({})), limit)
        return render_template("pages/timeline.html", **context, hosts=hosts)
    addr, port = parse_remote(given["remote"])
    filters = Q.Filters(
        container=given["container"],
        program=given["program"],
        uid=parse_user(given["user"]),
        remote_addr=addr,
        remote_port=port,
    )
    # An alert is about a host or container, never a program, user or remote address.
    alerts = not (filters.program or filters.uid is not None or addr or port)
    req = TimelineRequest(
        host, Window(win.window.from_ns, win.window.to_ns), filters, limit, alerts=alerts
    )
    reader = incident_reader()
    check_host(reader, host)  # an unknown host: a 404 naming the hosts the store knows
    timeline = build_timeline(reader, req)
    return render_template(
        "pages/timeline.html", **context, entries=timeline.entries, truncated=timeline.truncated
    )
