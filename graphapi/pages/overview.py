"""``/``: what happened in the window: the hosts with their counts, the traces of flags by
score, the alerts received."""

from __future__ import annotations

from flask import render_template

from graph import queries as Q
from graphapi.api.processes import window_where
from graphapi.api.traces import assembler
from graphapi.pages.blueprint import bp
from graphapi.pages.window import page_window
from graphapi.request_args import limit_arg, scope_arg
from graphapi.storage import get_store


def host_rows(where: Q.Where, limit: int) -> list[dict]:
    """One row per host with events in the window: processes, failures, OOM kills, connections."""
    store = get_store()
    params = {**where.params, "hosts_max": limit}
    hosts: dict[str, dict] = {}
    for r in store.query(Q.host_processes(where.sql()), params):
        hosts[r[0]] = {
            **dict.fromkeys(Q.HOST_CONNECTION_COLUMNS, 0),
            **dict(zip(Q.HOST_PROCESS_COLUMNS, r, strict=True)),
        }
    for r in store.query(Q.host_connections(where.sql()), params):
        row = hosts.setdefault(r[0], dict.fromkeys(Q.HOST_PROCESS_COLUMNS, 0))
        row.update(zip(Q.HOST_CONNECTION_COLUMNS, r, strict=True))
    return [hosts[h] for h in sorted(hosts)][:limit]


def alert_rows(window, scope, limit: int) -> list[dict]:
    """Alerts active at some point of the window (on the scope's hosts), as the graph reads them."""
    where = Q.Where().add(Q.ALERT_ACTIVE, from_ns=window.from_ns, to_ns=window.to_ns)
    if scope.hosts:
        where.add(Q.IN_HOSTS, hosts=list(scope.hosts))
    rows = get_store().query(Q.alerts(where.sql()), {**where.params, "alerts_max": limit})
    return [dict(zip(Q.ALERT_COLUMNS, r, strict=True)) for r in rows]


@bp.get("/")
def overview():
    """Hosts, traces and alerts of the window."""
    win, scope, limit = page_window(), scope_arg(), limit_arg()
    w = win.window
    traces = assembler().assemble(w.from_ns, w.to_ns, scope.hosts)[:limit]
    return render_template(
        "pages/overview.html",
        win=win,
        scope=scope,
        hosts=host_rows(window_where(w, scope), limit),
        traces=[(t.summary(), t.flags) for t in traces],
        alerts=alert_rows(w, scope, limit),
    )
