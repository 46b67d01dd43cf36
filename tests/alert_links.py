"""An alert for a trace at the team's pager, and its dashboard link followed as Grafana would:
the investigation dashboard opened by the link asks graphapi for its Causal graph with the
link's variables."""

from __future__ import annotations

import json
import time
import urllib.parse

import requests

from dashboards import build as dashboards_build
from testservices.alert_stack import poll

GRAPH_PANEL = "Causal graph"


def paged_for_trace(stack, pager, alertname: str, tid: str, metric: str) -> list[dict]:
    """The alerts named alertname for trace tid that reached the pager (waits for one);
    Prometheus' ``metric`` explains a wait that ends without one."""

    def ours():
        return [
            a
            for a in pager.alerts()
            if a["labels"].get("alertname") == alertname and a["labels"].get("trace_id") == tid
        ]

    return poll(
        f"{alertname} for trace {tid} at the team's webhook",
        ours,
        timeout=120,
        explain=lambda: (
            f"Prometheus has {stack._result(metric)}; "
            f"Alertmanager has {stack.alertmanager.alerts()}"
        ),
    )


def dashboard_by_uid(cfg, uid: str) -> dict:
    for text in dashboards_build.render(cfg).values():
        dashboard = json.loads(text)
        if dashboard["uid"] == uid:
            return dashboard
    raise AssertionError(f"no dashboard with uid {uid}")


def panel_request(dashboard: dict, title: str, link_query: dict, now_ms: int) -> dict:
    """The query parameters the panel's Infinity query sends once the dashboard is opened by a
    link: ``var-<name>`` from the link, else the variable's default (``$__all`` is its all
    value); ``${__from}`` and ``${__to}`` from the link's relative ``from`` / ``to``."""
    variables = {}
    for v in dashboard["templating"]["list"]:
        current = (v.get("current") or {}).get("value", "")
        variables[v["name"]] = v.get("allValue") if current == "$__all" else current
    variables |= {k.removeprefix("var-"): v for k, v in link_query.items() if k.startswith("var-")}
    variables["__from"] = str(now_ms + relative_ms(link_query["from"]))
    variables["__to"] = str(now_ms + relative_ms(link_query["to"]))
    (panel,) = [p for p in dashboard["panels"] if p["title"] == title]
    target = panel["targets"][0]
    return {p["key"]: variables[p["value"].strip("${}")] for p in target["url_options"]["params"]}


def relative_ms(when: str) -> int:
    """``now``, ``now-1h``, ``now-5m``: Grafana's relative times used by the alert links."""
    if when == "now":
        return 0
    amount, unit = int(when.removeprefix("now-")[:-1]), when[-1]
    return -amount * {"s": 1000, "m": 60_000, "h": 3_600_000}[unit]


def follow_to_graph(stack, dashboard_url: str) -> tuple[dict, dict, requests.Response]:
    """(the link's query, the graph panel's request, graphapi's reply) for an alert's
    ``dashboard_url``, which must lead to the stack's Grafana."""
    link = urllib.parse.urlsplit(dashboard_url)
    query = dict(urllib.parse.parse_qsl(link.query))  # URLSearchParams' reading
    assert f"{link.scheme}://{link.netloc}" == stack.cfg.grafana_url
    uid = link.path.split("/")[2]
    dashboard = dashboard_by_uid(stack.cfg, uid)
    params = panel_request(dashboard, GRAPH_PANEL, query, time.time_ns() // 10**6)
    return query, params, stack.graph(**params)
