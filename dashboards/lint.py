"""Dashboard lint, with the rules of grafana/dashboard-linter (same names), on dashboard JSON.

Rules: template-datasource-rule, panel-datasource-rule, template-job-rule,
template-instance-rule, template-on-time-change-reload-rule, template-label-promql-rule,
panel-title-description-rule, panel-units-rule, panel-no-targets-rule,
target-rate-interval-rule, target-counter-agg-rule, target-job-rule, target-instance-rule,
and uneditable-dashboard-rule (dashboards are generated: edits in Grafana would be lost, so they
are not editable). Then groundtruth's own rules about what Grafana does with a dashboard
(``dashboards/grafana_rules.py``): current schema, no legacy keys or nulls, encoded same-tab
data links, the Node Graph panel within Grafana's drawing limit, Prometheus resolution, plugin
query versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dashboards import grafana_rules
from dashboards.current_form import annotation_expr
from dashboards.promql import ranges, selectors

# Grafana unit ids these dashboards may use (a typo shows up as a lint error, not a raw number).
KNOWN_UNITS = {
    "percentunit", "percent", "bytes", "decbytes", "Bps", "bps", "s", "ms", "us", "ns",
    "short", "none", "cps", "ops", "reqps", "bool_on_off", "bool", "dateTimeAsIso",
}  # fmt: skip
# Panel types that show no unit-carrying values, or whose values come preformatted.
UNITLESS_PANELS = {"nodeGraph", "row", "text", "dashlist", "alertlist", "news"}
# Which field of a target holds its query, per data source plugin.
QUERY_FIELD = {
    "prometheus": "expr",
    "grafana-clickhouse-datasource": "rawSql",
    "yesoreyeram-infinity-datasource": "url",
}
COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")
RATE_FUNCTIONS = ("rate", "irate", "increase")


@dataclass(frozen=True)
class Problem:
    dashboard: str
    panel: str  # "" for the dashboard itself
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"{self.dashboard}" + (f" / {self.panel}" if self.panel else "")
        return f"{where}: [{self.rule}] {self.message}"


def _is_variable(uid) -> bool:
    return isinstance(uid, str) and re.fullmatch(r"\$\{?\w+\}?", uid) is not None


def _variables(dash: dict) -> dict[str, dict]:
    return {v["name"]: v for v in dash.get("templating", {}).get("list", [])}


def _panels(dash: dict):
    for panel in dash.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # rows


def _datasource_type(panel: dict, target: dict) -> str:
    return (target.get("datasource") or panel.get("datasource") or {}).get("type", "")


def _host_label(variables: dict) -> str:
    # The host variable is the one named after the host label; "instance" by default.
    return (
        "instance"
        if "instance" in variables
        else next((n for n, v in variables.items() if v.get("label") == "Host"), "instance")
    )


def lint_dashboard(dash: dict) -> list[Problem]:
    name = dash.get("title") or dash.get("uid") or "(untitled)"
    problems: list[Problem] = []

    def report(panel: str, rule: str, message: str) -> None:
        problems.append(Problem(name, panel, rule, message))

    variables = _variables(dash)
    host = _host_label(variables)
    if dash.get("editable", True):
        report("", "uneditable-dashboard-rule", "dashboard is editable")

    ds_vars = {v["query"]: n for n, v in variables.items() if v.get("type") == "datasource"}
    used_types = set()
    for panel in _panels(dash):
        for t in panel.get("targets", []):
            used_types.add(_datasource_type(panel, t))
    for plugin in sorted(used_types - {""}):
        if plugin not in ds_vars:
            report("", "template-datasource-rule", f"no data source variable for {plugin}")
    if "prometheus" in used_types:
        for var in ("job", host):
            rule = "template-job-rule" if var == "job" else "template-instance-rule"
            v = variables.get(var)
            if v is None:
                report("", rule, f"no template variable {var!r}")
            elif v.get("type") != "query" or not _is_variable(
                (v.get("datasource") or {}).get("uid")
            ):
                report("", rule, f"variable {var!r} must be a query on the data source variable")

    for var_name, v in variables.items():
        if v.get("type") != "query":
            continue
        if v.get("refresh") != 2:
            report("", "template-on-time-change-reload-rule", f"variable {var_name!r}")
        query = v.get("query") or ""
        if "label_values" in query and not re.fullmatch(r"label_values\((?:.+,\s*)?\w+\)", query):
            report("", "template-label-promql-rule", f"variable {var_name!r}: {query}")

    for panel in _panels(dash):
        if panel.get("type") == "row":
            continue
        problems += _lint_panel(name, panel, host)
    problems += [Problem(name, where, r, m) for where, r, m in grafana_rules.check(dash)]
    for ann in dash.get("annotations", {}).get("list", []):
        if (ann.get("datasource") or {}).get("type") == "prometheus":
            where = f"annotation {ann.get('name')}"
            if not _is_variable(ann["datasource"].get("uid")):
                report(where, "panel-datasource-rule", "data source is not a template variable")
            expr = annotation_expr(ann)
            problems += [Problem(name, where, r, m) for r, m in lint_promql(expr, host)]
    return problems


def _lint_panel(dashboard: str, panel: dict, host: str) -> list[Problem]:
    title = panel.get("title") or f"panel {panel.get('id')}"
    out: list[Problem] = []

    def report(rule: str, message: str) -> None:
        out.append(Problem(dashboard, title, rule, message))

    if not panel.get("title") or not panel.get("description"):
        report("panel-title-description-rule", "a panel needs a title and a description")
    if panel.get("type") not in UNITLESS_PANELS:
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if not unit:
            report("panel-units-rule", "no unit")
        elif unit not in KNOWN_UNITS:
            report("panel-units-rule", f"unknown unit {unit!r}")
    if not _is_variable((panel.get("datasource") or {}).get("uid")):
        report("panel-datasource-rule", "panel data source is not a template variable")

    targets = panel.get("targets", [])
    if not targets:
        report("panel-no-targets-rule", "panel has no queries")
    for t in targets:
        ds_type = _datasource_type(panel, t)
        ref = t.get("refId", "?")
        if t.get("datasource") and not _is_variable(t["datasource"].get("uid")):
            report("panel-datasource-rule", f"query {ref}: data source is not a variable")
        query = t.get(QUERY_FIELD.get(ds_type, "expr")) or ""
        if not query.strip():
            report("panel-no-targets-rule", f"query {ref} is empty")
        elif ds_type == "prometheus":
            out += [Problem(dashboard, title, r, f"query {ref}: {m}") for r, m in
                    lint_promql(query, host)]  # fmt: skip
    return out


def lint_promql(expr: str, host: str = "instance") -> list[tuple[str, str]]:
    """(rule, message) for one dashboard PromQL expression."""
    out = []
    for fn, duration in ranges(expr):
        allowed = {"$__rate_interval"} | ({"$__range"} if fn == "increase" else set())
        if duration not in allowed:
            out.append(("target-rate-interval-rule", f"{fn or 'range'}[{duration}]"))
    for sel in selectors(expr):
        labels = {(label, op, value) for label, op, value in sel.matchers}
        if sel.metric.endswith(COUNTER_SUFFIXES) and ":" not in sel.metric:
            if not sel.before.endswith(tuple(f"{f}(" for f in RATE_FUNCTIONS)):
                out.append(("target-counter-agg-rule", f"{sel.metric} outside rate/increase"))
        if ("job", "=~", "$job") not in labels:
            out.append(("target-job-rule", f'{sel.metric} has no job=~"$job"'))
        if (host, "=~", f"${host}") not in labels:
            out.append(("target-instance-rule", f'{sel.metric} has no {host}=~"${host}"'))
    return out


def lint(dashboards: dict[str, dict]) -> list[Problem]:
    problems = []
    for dash in dashboards.values():
        problems += lint_dashboard(dash)
    return problems
