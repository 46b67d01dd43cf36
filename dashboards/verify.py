"""Check every PromQL expression of the dashboards and rules against a real Prometheus.

``all_expressions()`` collects them (panel queries and annotations with Grafana's variables
filled in as Grafana would, and every recording and alerting rule). ``evaluation_errors()``
asks a Prometheus to evaluate each one and returns the ones it rejects. With a live exporter
scraped, ``expressions_without_data()`` returns the ones that come back empty, apart from those
that can only have data during an incident (``INCIDENT_ONLY``, with the reason), which a test
must provoke to see.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from dashboards.current_form import annotation_expr

# What Grafana substitutes, with values valid on any Prometheus.
GRAFANA_VALUES = {
    "$__rate_interval": "1m",
    "$__range": "1h",
    "$__interval": "15s",
}
ALL_VALUES = {"job": ".+", "container": ".*"}

# Series that exist (or are non-zero) only once something went wrong.
INCIDENT_ONLY = {
    "groundtruth_events_dropped_total": "counted from the first dropped event",
    "groundtruth_oom_kills_total": "counted from the first OOM kill",
    "groundtruth_sink_errors_total": "counted from the first failed write",
    "groundtruth_sink_replayed_events_total": "counted from the first replay after an outage",
    "ALERTS": "only while an alert is pending or firing",
    "groundtruth_tcp_retransmits": "counted from the first retransmitted segment",
    "outbound_failed": "only once an outbound connection has failed",
    "container_memory_limit_used": "only for containers that have a memory limit",
    "groundtruth_policy_deviations_total": "exported with --policies, from the first deviation",
}


@dataclass(frozen=True)
class Expression:
    where: str  # "dashboard / panel / refId" or "rule NAME"
    promql: str
    kind: str = "panel"  # panel, annotation, record or alert


def fill_variables(expr: str, host_label: str = "instance") -> str:
    for name, value in GRAFANA_VALUES.items():
        expr = expr.replace(name, value)
    values = {**ALL_VALUES, host_label: ".+"}

    def value_of(m: re.Match) -> str:
        return values.get(m.group(1) or m.group(2), ".*")

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value_of, expr)


def dashboard_expressions(dashboards: dict[str, dict], host_label: str = "instance"):
    out = []
    for dash in dashboards.values():
        title = dash.get("title", "")
        for panel in dash.get("panels", []):
            for t in panel.get("targets", []):
                ds = (t.get("datasource") or panel.get("datasource") or {}).get("type")
                if ds == "prometheus":
                    where = f"{title} / {panel.get('title')} / {t.get('refId')}"
                    out.append(Expression(where, fill_variables(t["expr"], host_label)))
        for ann in dash.get("annotations", {}).get("list", []):
            if (ann.get("datasource") or {}).get("type") == "prometheus" and annotation_expr(ann):
                where = f"{title} / annotation {ann.get('name')}"
                expr = fill_variables(annotation_expr(ann), host_label)
                out.append(Expression(where, expr, "annotation"))
    return out


def rule_expressions(rule_file: dict) -> list[Expression]:
    return [
        Expression(
            f"rule {r.get('alert') or r.get('record')}",
            r["expr"],
            "alert" if "alert" in r else "record",
        )
        for group in rule_file["groups"]
        for r in group["rules"]
    ]


def all_expressions(cfg, rule_file: dict) -> list[Expression]:
    """Every PromQL expression the generated dashboards (for ``cfg``) and ``rule_file`` contain.

    The caller passes the rule file (``alerts.rules.rule_file(cfg)``): dashboards do not import
    alerts.
    """
    from dashboards.build import DASHBOARDS, to_json

    dashboards = {name: to_json(build(cfg)) for name, build in DASHBOARDS.items()}
    return dashboard_expressions(dashboards, cfg.host_label) + rule_expressions(rule_file)


def query(prometheus_url: str, promql: str) -> dict:
    """Prometheus' answer to an instant query, errors included (never raises on 4xx)."""
    url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as e:
        return json.load(e)


def evaluation_errors(prometheus_url: str, expressions: list[Expression]) -> list[str]:
    """``where: expr: error`` for every expression Prometheus rejects."""
    errors = []
    for e in expressions:
        reply = query(prometheus_url, e.promql)
        if reply.get("status") != "success":
            errors.append(f"{e.where}: {e.promql}: {reply.get('error')}")
    return errors


def empty_reason(expr: str, expected_empty: dict[str, str]) -> str | None:
    """Why ``expr`` may be empty: the reason of the first marker it contains, else None."""
    for marker, reason in expected_empty.items():
        if marker in expr:
            return reason
    return None


def expressions_without_data(
    prometheus_url: str,
    expressions: list[Expression],
    expected_empty: dict[str, str] = INCIDENT_ONLY,
) -> tuple[list[Expression], list[tuple[Expression, str]]]:
    """(empty and unexplained, empty with the reason from ``expected_empty``).

    Call with a Prometheus that has scraped a live exporter for a few seconds: the first list
    must be empty. Alert expressions are skipped: an alert that is not firing is empty.
    """
    unexplained, explained = [], []
    for e in expressions:
        if e.kind == "alert":
            continue
        reply = query(prometheus_url, e.promql)
        if reply.get("status") == "success" and reply["data"]["result"]:
            continue
        reason = empty_reason(e.promql, expected_empty)
        if reason:
            explained.append((e, reason))
        else:
            unexplained.append(e)
    return unexplained, explained
