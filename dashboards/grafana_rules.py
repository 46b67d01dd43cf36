"""Lint rules about what Grafana *does* with a dashboard, beyond the keys it accepts.

Each rule is what reading Grafana's code showed (docs/dashboards-and-alerts.md, "What Grafana
does with these dashboards", cites the files):

- schema-version-rule: ``schemaVersion`` is Grafana's current (42); older ones are migrated on
  every load.
- legacy-key-rule: none of the keys ``current_form`` removes, and no table ``displayMode``.
- null-value-rule: no ``null`` but a threshold's base step.
- data-link-encoding-rule: every value put into a data link URL is ``:percentencode``-d.
- data-link-target-rule: links into groundtruth's dashboards open in the same tab.
- node-graph-link-rule: the Node Graph panel's links sit on one field (an override), none on
  every field (``fieldConfig.defaults.links``).
- node-graph-limit-rule: the panel never asks graphapi for more nodes than Grafana draws.
- node-graph-window-rule: graphapi's window is the dashboard's time range.
- node-graph-detail-rule: detail fields have display names, counts show as whole numbers.
- prometheus-resolution-rule: no ``intervalFactor``, no ``maxDataPoints``.
- plugin-version-rule: ClickHouse queries carry a v4 ``pluginVersion``.
"""

from __future__ import annotations

import re

from dashboards.current_form import LEGACY_KEYS, SCHEMA_VERSION, legacy_variable_keys
from dashboards.nodegraph import (
    COUNT_FIELDS,
    EDGE_DETAIL_NAMES,
    MAX_NODES_DRAWN,
    NODE_DETAIL_NAMES,
    NODE_GRAPH_TYPE,
)

# Built-in link variables whose value is already URL syntax or a number.
URL_SAFE_VARIABLES = {"__url_time_range", "__all_variables", "__value.time", "__from", "__to"}
_VARIABLE = re.compile(r"\$\{([^}:]+)(?::([^}]+))?\}|\$(\w+)")
CLICKHOUSE = "grafana-clickhouse-datasource"
INFINITY = "yesoreyeram-infinity-datasource"


def check(dash: dict) -> list[tuple[str, str, str]]:
    """(where, rule, message) for every problem of ``dash``; where is "" for the dashboard."""
    out: list[tuple[str, str, str]] = []
    if dash.get("schemaVersion") != SCHEMA_VERSION:
        out.append(("", "schema-version-rule", f"schemaVersion {dash.get('schemaVersion')}, "
                    f"current Grafana's is {SCHEMA_VERSION}"))  # fmt: skip
    out += [("", "legacy-key-rule", m) for m in _legacy_keys(dash)]
    out += [("", "null-value-rule", f"{path} is null") for path in _nulls(dash, "")]
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    for panel in dash.get("panels", []):
        where = panel.get("title") or f"panel {panel.get('id')}"
        out += [(where, rule, m) for rule, m in _panel(panel, variables)]
    return out


def _legacy_keys(dash: dict) -> list[str]:
    found = [f"dashboard key {k!r}" for k in LEGACY_KEYS["dashboard"] & dash.keys()]
    found += [f"timepicker key {k!r}" for k in
              LEGACY_KEYS["timepicker"] & dash.get("timepicker", {}).keys()]  # fmt: skip
    for v in dash.get("templating", {}).get("list", []):
        keys = legacy_variable_keys(v) & v.keys()
        found += [f"variable {v.get('name')}: key {k!r}" for k in keys]
    for p in dash.get("panels", []):
        title = p.get("title")
        found += [f"panel {title}: key {k!r}" for k in LEGACY_KEYS["panel"] & p.keys()]
        for t in p.get("targets", []):
            keys = LEGACY_KEYS["target"] & t.keys()
            found += [f"panel {title} query {t.get('refId')}: key {k!r}" for k in keys]
        if "displayMode" in p.get("fieldConfig", {}).get("defaults", {}).get("custom", {}):
            found.append(f"panel {title}: table displayMode (cellOptions since schema 38)")
    return found


def _nulls(value, path: str, key: str = "") -> list[str]:
    if isinstance(value, dict):
        return [
            p
            for k, v in value.items()
            for p in (
                ([] if k == "value" and key == "steps" else [f"{path}.{k}"])
                if v is None
                else _nulls(v, f"{path}.{k}", k)
            )
        ]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nulls(v, f"{path}[{i}]", key)]
    return []


def panel_links(panel: dict) -> list[tuple[str, dict]]:
    """(where, link) of every data link of a panel: defaults, overrides, panel links."""
    field_config = panel.get("fieldConfig", {})
    out = [("fieldConfig.defaults", link) for link in field_config.get("defaults", {}).get(
        "links") or []]  # fmt: skip
    for o in field_config.get("overrides", []):
        for prop in o.get("properties", []):
            if prop.get("id") == "links":
                name = o.get("matcher", {}).get("options")
                out += [(f"override {name}", link) for link in prop.get("value") or []]
    out += [("panel links", link) for link in panel.get("links") or []]
    return out


def unencoded_values(url: str) -> list[str]:
    """The variables of ``url`` that go into it without ``:percentencode``."""
    out = []
    for m in _VARIABLE.finditer(url):
        name, fmt = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), None)
        if name not in URL_SAFE_VARIABLES and fmt != "percentencode":
            out.append(m.group(0))
    return out


def _panel(panel: dict, variables: dict) -> list[tuple[str, str]]:
    out = []
    for where, link in panel_links(panel):
        url = link.get("url", "")
        for var in unencoded_values(url):
            out.append(("data-link-encoding-rule", f"{where}: {var} is not :percentencode"))
        if url.startswith("/d/") and link.get("targetBlank"):
            out.append(("data-link-target-rule", f"{where}: opens a dashboard in a new tab"))
    if panel.get("type") == NODE_GRAPH_TYPE:
        out += _node_graph(panel, variables)
    for t in panel.get("targets", []):
        ds = (t.get("datasource") or panel.get("datasource") or {}).get("type")
        ref = t.get("refId")
        if ds == "prometheus" and t.get("intervalFactor", 1) != 1:
            out.append(("prometheus-resolution-rule", f"query {ref}: intervalFactor "
                        f"{t['intervalFactor']} multiplies the step"))  # fmt: skip
        if ds == CLICKHOUSE and not _v4(t.get("pluginVersion", "")):
            version = t.get("pluginVersion")
            message = f"query {ref}: pluginVersion {version!r}: migrated as a v3 query"
            out.append(("plugin-version-rule", message))
    uses_prometheus = any(
        (t.get("datasource") or panel.get("datasource") or {}).get("type") == "prometheus"
        for t in panel.get("targets", [])
    )
    if uses_prometheus and "maxDataPoints" in panel:
        out.append(("prometheus-resolution-rule", f"maxDataPoints {panel['maxDataPoints']}: "
                    "Grafana's default is the panel's width in pixels"))  # fmt: skip
    return out


def _v4(version: str) -> bool:
    m = re.match(r"(\d+)\.", version or "")
    return m is not None and int(m.group(1)) >= 4


def _node_graph(panel: dict, variables: dict) -> list[tuple[str, str]]:
    out = []
    if panel.get("fieldConfig", {}).get("defaults", {}).get("links"):
        message = "links on every field (fieldConfig.defaults.links): once per field in a menu"
        out.append(("node-graph-link-rule", message))
    carriers = [w for w, _ in panel_links(panel) if w.startswith("override ")]
    if len(carriers) > 1:
        out.append(("node-graph-link-rule", f"links on several fields: {carriers}"))
    for t in panel.get("targets", []):
        if (t.get("datasource") or {}).get("type") != INFINITY:
            continue
        params = {p.get("key"): p.get("value") for p in t.get("url_options", {}).get("params", [])}
        for n in _values(params.get("limit", ""), variables):
            if not n.isdigit() or int(n) > MAX_NODES_DRAWN:
                out.append(("node-graph-limit-rule", f"query {t.get('refId')}: limit {n}; "
                            f"Grafana draws at most {MAX_NODES_DRAWN} nodes"))  # fmt: skip
        if (params.get("from"), params.get("to")) != ("${__from}", "${__to}"):
            out.append(("node-graph-window-rule", f"query {t.get('refId')}: the window is not "
                        "the dashboard's time range (${__from}, ${__to})"))  # fmt: skip
    out += _node_graph_details(panel.get("transformations") or [])
    return out


def _values(value: str, variables: dict) -> list[str]:
    """A query parameter's possible values: a custom variable's options, or the value."""
    m = re.fullmatch(r"\$\{?(\w+)\}?", value or "")
    if not m:
        return [value]
    var = variables.get(m.group(1), {})
    options = [o.strip() for o in (var.get("query") or "").split(",") if o.strip()]
    current = (var.get("current") or {}).get("value")
    return options + ([str(current)] if current is not None else [])


def _node_graph_details(transformations: list[dict]) -> list[tuple[str, str]]:
    out = []
    converted = {
        c.get("targetField")
        for t in transformations
        if t.get("id") == "convertFieldType"
        for c in t.get("options", {}).get("conversions", [])
        if c.get("destinationType") == "string"
    }
    for field in sorted(set(COUNT_FIELDS) - converted):
        out.append(("node-graph-detail-rule", f"{field} is a number: the node menu shows 3 as "
                    "3.00 (convert it to a string)"))  # fmt: skip
    for frame, names in (("nodes", NODE_DETAIL_NAMES), ("edges", EDGE_DETAIL_NAMES)):
        renamed = {
            k
            for t in transformations
            if t.get("id") == "organize" and t.get("filter", {}).get("options") == frame
            for k, v in t.get("options", {}).get("renameByName", {}).items()
            if v
        }
        missing = sorted(set(names) - renamed)
        if missing:
            out.append(("node-graph-detail-rule", f"{frame} fields without a display name: "
                        f"{', '.join(missing)}"))  # fmt: skip
    return out
