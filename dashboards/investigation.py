"""Incident investigation: the traces of one host's window, its causal graph, its raw events,
its alerts.

Alerts link here with the host, container and time set; every other dashboard's data links
too. The graph comes from graphapi through the Infinity data source, the event tables straight
from ClickHouse (SQL in ``dashboards/sql.py``), the alert markers from Prometheus.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafanalib.core import GridPos, Table, Template

from dashboards import sql
from dashboards.common import (
    ALL,
    CLICKHOUSE,
    INFINITY,
    NONE,
    PER_SECOND,
    PLUGIN_VERSIONS,
    PROMETHEUS,
    container_variable,
    dashboard,
    datasource_variable,
    host_variable,
    investigation_link,
    job_variable,
    prometheus_variable,
    sel,
    target,
    timeseries,
)
from dashboards.nodegraph import (
    MAX_NODES_DRAWN,
    NODE_LIMITS,
    NodeGraph,
    infinity_graph_target,
    infinity_traces_target,
)
from mixin.config import MixinConfig
from mixin.recording import INVESTIGATION_UID

UID = INVESTIGATION_UID
TABLE_FORMAT = 1  # grafana-clickhouse-datasource's "table" result format
URL_TIME_RANGE = "${__url_time_range}"  # the dashboard's time range as URL parameters


def clickhouse_target(rawsql: str, ref: str = "A") -> dict:
    """A raw-SQL query of the ClickHouse plugin, in its v4 form: the plugin migrates a query
    without ``pluginVersion`` >= 4.0.0 as a v3 query on every load (``isV3CHQuery`` in its
    ``src/data/migration.ts``)."""
    return {
        "refId": ref,
        "datasource": CLICKHOUSE,
        "pluginVersion": PLUGIN_VERSIONS[CLICKHOUSE["type"]],
        "editorType": "sql",
        "queryType": "table",
        "format": TABLE_FORMAT,
        "rawSql": rawsql,
    }


def refocus_link(cfg: MixinConfig) -> dict:
    """Clicking a node of the causal graph re-focuses the graph on it (the link sits on the node
    frame's focus field: ``__value.raw`` is the node's focus), same host and time."""
    h = cfg.host_label
    return investigation_link(
        "Focus the causal graph here", {h: h, "focus": "__value.raw"}, URL_TIME_RANGE
    )


def focus_link(cfg: MixinConfig) -> dict:
    """Clicking a process key re-focuses the graph on that process, same host and time."""
    return column_focus_link(cfg, "process_key", "Focus the causal graph on this process")


def trace_focus_link(cfg: MixinConfig) -> dict:
    """Clicking a trace's focus (``trace=ID``) draws that trace's graph, same host and time."""
    return column_focus_link(cfg, "focus", "Draw this trace's graph")


def column_focus_link(cfg: MixinConfig, column: str, title: str) -> dict:
    """A table column whose values are graph focuses: a click re-focuses the graph on one."""
    h = cfg.host_label
    return {
        "matcher": {"id": "byName", "options": column},
        "properties": [
            {
                "id": "links",
                "value": [
                    investigation_link(title, {h: h, "focus": "__value.raw"}, URL_TIME_RANGE)
                ],
            }
        ],
    }


def unit_override(column: str, unit: str) -> dict:
    return {
        "matcher": {"id": "byName", "options": column},
        "properties": [{"id": "unit", "value": unit}],
    }


def events_table(
    title: str, description: str, rawsql: str, grid, overrides: Sequence[dict] = ()
) -> Table:
    x, y, w, h = grid
    return Table(
        title=title,
        description=description,
        dataSource=CLICKHOUSE,
        targets=[clickhouse_target(rawsql)],
        unit=NONE,
        gridPos=GridPos(h=h, w=w, x=x, y=y),
        filterable=True,
        overrides=list(overrides),
        editable=False,
    )


def alert_annotation(cfg: MixinConfig) -> dict:
    """Firing groundtruth alerts as annotations. The query sits in ``target``, where Grafana's
    Prometheus annotation support keeps it (packages/grafana-prometheus/src/annotations.ts:
    ``prepareAnnotation`` moves a root ``expr``/``step`` there on every load); the title, text
    and tag options stay at the root, where its ``processEvents`` reads them."""
    return {
        "name": "groundtruth alerts",
        "datasource": PROMETHEUS,
        "enable": True,
        "iconColor": "red",
        "target": {
            "refId": "Anno",
            "datasource": PROMETHEUS,
            "expr": "ALERTS" + sel(cfg, 'alertstate="firing"', f'alertname=~"{cfg.prefix}.*"'),
            "interval": "30s",
        },
        "titleFormat": "{{alertname}}",
        "textFormat": "{{severity}} {{container}}",
        "tagKeys": "severity,container",
        "useValueForTime": False,
    }


def build(cfg: MixinConfig):
    h = cfg.host_label
    s = sel(cfg)
    rate = "[$__rate_interval]"
    ds = cfg.datasources
    return dashboard(
        uid=UID,
        title="groundtruth / Incident investigation",
        description="What ran on a host in a time window, what started it, whom it talked to.",
        variables=[
            prometheus_variable(cfg),
            datasource_variable(
                "clickhouse", "ClickHouse", "grafana-clickhouse-datasource", ds["clickhouse"]
            ),
            datasource_variable(
                "graphapi", "graphapi", "yesoreyeram-infinity-datasource", ds["infinity"]
            ),
            job_variable(cfg),
            host_variable(cfg, multi=False),
            container_variable(cfg, multi=False, all_value=ALL),
            Template(name="focus", label="Focus", type="textbox", query="", default=""),
            Template(
                name="limit",
                label="Max nodes",
                type="custom",
                query=",".join(str(n) for n in NODE_LIMITS),
                default=str(MAX_NODES_DRAWN),
            ),
        ],
        annotations=[alert_annotation(cfg)],
        panels=[
            Table(
                title="Traces",
                description="Flags (security and operations rules on the live event stream) "
                "linked to one root cause (a login session, a container's entrypoint, a "
                "service), highest score first (docs/traces.md). Click a focus to draw the "
                "trace's graph below.",
                dataSource=INFINITY,
                targets=[infinity_traces_target(h)],
                unit=NONE,
                gridPos=GridPos(h=8, w=16, x=0, y=0),
                filterable=True,
                overrides=[trace_focus_link(cfg)],
                editable=False,
            ),
            timeseries(
                "Flags by class and severity",
                "Flags raised on this host per second, by class (security, operations) and "
                "severity (every occurrence, repeats included).",
                [
                    target(
                        f"sum by (class, severity) (rate(groundtruth_flags_total{s}{rate}))",
                        "{{class}} {{severity}}",
                    )
                ],
                PER_SECOND,
                (16, 0, 8, 8),
                stacked=True,
            ),
            NodeGraph(
                title="Causal graph",
                description="Processes (by exec), their parents and children, and the "
                "connections they made or accepted, in the time window on the selected host. "
                "Set Focus to a process key, host:pid or remote address:port for its chain of "
                "ancestors, its descendants and their connections. Failed, signalled and "
                "OOM-killed processes are coloured; click a node to re-focus on it.",
                dataSource=INFINITY,
                targets=[
                    infinity_graph_target("nodes", h),
                    infinity_graph_target("edges", h),
                ],
                gridPos=GridPos(h=16, w=24, x=0, y=8),
                editable=False,
                nodeLinks=[refocus_link(cfg)],
            ),
            timeseries(
                "Execs per second by program",
                "Successful execs per second on this host, the 10 busiest programs.",
                [
                    target(
                        f"topk(10, sum by (program) "
                        f"(rate(groundtruth_process_execs_total{s}{rate})))",
                        "{{program}}",
                    )
                ],
                PER_SECOND,
                (0, 24, 12, 8),
            ),
            timeseries(
                "Exits by outcome",
                "Processes exiting per second on this host: ok, error, signal, oom.",
                [
                    target(
                        f"sum by (outcome) (rate(groundtruth_process_exits_total{s}{rate}))",
                        "{{outcome}}",
                    )
                ],
                PER_SECOND,
                (12, 24, 12, 8),
                stacked=True,
            ),
            events_table(
                "Programs started",
                "Every exec on this host (and container) in the window, newest first, from "
                "the event store: full command line, parent, user. Click a process key to "
                "focus the graph on it.",
                sql.PROCESS_EXECS,
                (0, 32, 24, 10),
                [focus_link(cfg)],
            ),
            events_table(
                "Failed, killed and OOM-killed processes",
                "Execs that failed, exits with a non-zero status or a signal, and OOM kills, "
                "newest first.",
                sql.PROCESS_FAILURES,
                (0, 42, 24, 8),
                [focus_link(cfg), unit_override("lifetime_seconds", "s")],
            ),
            events_table(
                "Connections",
                "TCP connections made (outbound) and accepted (inbound) on this host in the "
                "window, newest first: the process, both ends, outcome, bytes and duration.",
                sql.CONNECTIONS,
                (0, 50, 24, 10),
                [
                    focus_link(cfg),
                    unit_override("duration_seconds", "s"),
                    unit_override("bytes_sent", "bytes"),
                    unit_override("bytes_received", "bytes"),
                ],
            ),
            events_table(
                "Alerts received",
                "Alerts Alertmanager delivered to graphapi for this host in the window.",
                sql.RECEIVED_ALERTS,
                (0, 60, 24, 6),
            ),
            timeseries(
                "Policy deviations by workload and kind",
                "Events outside their workload's baseline policy per second on this host "
                "(exporter --policies, docs/baselines.md): a new executable, parent or user, a "
                "new listening port, destination or source; every occurrence counted.",
                [
                    target(
                        f"sum by (policy, kind) "
                        f"(rate(groundtruth_policy_deviations_total{s}{rate}))",
                        "{{policy}} {{kind}}",
                    )
                ],
                PER_SECOND,
                (0, 66, 8, 10),
                stacked=True,
            ),
            events_table(
                "New for their workload (policy deviations)",
                "Policy flags on this host in the window, newest first: what a workload did "
                "that its policy does not allow, and what the policy allows instead. Click a "
                "process key to focus the graph on it; `baseline merge` allows it.",
                sql.POLICY_DEVIATIONS,
                (8, 66, 16, 10),
                [focus_link(cfg)],
            ),
        ],
    )
