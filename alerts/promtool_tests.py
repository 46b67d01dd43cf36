"""``promtool test rules`` cases: for every alert, series that make it fire and series that don't.

The cases are written for the default thresholds (``mixin/mixin.yaml``): the series are
the evidence, chosen by hand on either side of each threshold, and every expected annotation is
spelled out (the description with the value the series produce), never rendered from the rule
under test; only the deployment's own URLs (Grafana, the runbook) come from the config. A firing
case also pins its ``for:`` edge: quiet one evaluation before ``fires_from``, firing at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote_plus

from alerts.rules import Alert, alert_name, alerts
from mixin.config import MixinConfig

HOST = {"job": "groundtruth", "instance": "host1"}
INVESTIGATION = "/d/groundtruth-investigation/groundtruth-incident-investigation?from=now-1h&to=now"


def series(metric: str, values: str, **labels) -> dict:
    """One input series: ``metric{job="groundtruth",instance="host1",**labels}``."""
    all_labels = {**HOST, **labels}
    body = ",".join(f'{k}="{v}"' for k, v in all_labels.items())
    return {"series": f"{metric}{{{body}}}", "values": values}


def outbound(values: str, outcome: str, container: str, remote: str) -> dict:
    """Outbound connection attempts of one container to one remote, by outcome."""
    return series(
        "groundtruth_tcp_connections_total",
        values,
        direction="outbound",
        outcome=outcome,
        container=container,
        remote=remote,
    )


def trace_score(values: str, band: str) -> dict:
    """graphapi's score of one trace rooted at bash on host1 (scraped from graphapi)."""
    labels = {
        "job": "graphapi", "instance": "graphapi:8080", "trace_id": "t-0123456789abcdef",
        "host": "host1", "root_program": "bash", "band": band, "severity": "critical",
    }  # fmt: skip
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"groundtruth_trace_score{{{body}}}", "values": values}


def policy_deviations(values: str) -> dict:
    """graphapi's count of policy flags of workload nginx.service in one trace."""
    labels = {
        "job": "graphapi", "instance": "graphapi:8080", "trace_id": "t-0123456789abcdef",
        "host": "host1", "root_program": "bash", "workload": "nginx.service",
    }  # fmt: skip
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"groundtruth_trace_policy_deviations{{{body}}}", "values": values}


@dataclass
class Case:
    alert: str  # without the prefix
    eval_time: str
    input_series: list
    # None: the alert must not fire. Otherwise the labels of the one firing alert (besides
    # alertname and severity) and its description.
    labels: dict | None = None
    description: str = ""
    why: str = ""
    extra: dict = field(default_factory=dict)
    # Firing cases: the last evaluation at which it is still quiet and the first at which it
    # fires (the next one, unless the alert reads a recording rule: promtool evaluates the rule
    # groups in no fixed order, so a recorded series may reach the alert one evaluation late),
    # its summary, and the investigation dashboard's variables its link carries.
    quiet_until: str = ""
    fires_from: str = ""
    summary: str = ""
    link: str = ""


CASES = [
    Case(
        "ExporterDown",
        "6m",
        [series("up", "0x10")],
        HOST,
        "Prometheus cannot scrape the groundtruth exporter on host1: no process, connection or "
        "pipeline data comes from this host, and the alerts that depend on it are inhibited "
        "until it is back.",
        quiet_until="4m",
        fires_from="5m",
        summary="The groundtruth exporter on host1 is down.",
        link="&var-instance=host1",
    ),
    Case("ExporterDown", "6m", [series("up", "1x10")], why="scraped fine"),
    Case(
        "ExporterAbsent",
        "16m",
        [{"series": 'up{job="other",instance="x"}', "values": "1x20"}],
        {"job": "groundtruth"},
        "Prometheus has no scrape target for the groundtruth exporter at all: every "
        "groundtruth dashboard and alert is blind.",
        quiet_until="14m",
        fires_from="15m",
        summary="No groundtruth exporter is being scraped.",
    ),
    Case("ExporterAbsent", "16m", [series("up", "1x20")], why="the target exists"),
    Case(
        "EventsDropped",
        "10m",
        [series("groundtruth_events_dropped_total", "0+60x15", stage="sink", reason="spool_full")],
        {**HOST, "stage": "sink", "reason": "spool_full"},
        "host1 drops 1 events/s at stage sink (spool_full): the event store is missing events "
        "from this host, so graphs and timelines from it are incomplete.",
        quiet_until="5m",
        fires_from="7m",
        summary="The groundtruth exporter on host1 is dropping events.",
        link="&var-instance=host1",
    ),
    Case(
        "EventsDropped",
        "10m",
        [series("groundtruth_events_dropped_total", "5x15", stage="sink", reason="spool_full")],
        why="drops long ago (counter not moving)",
    ),
    Case(
        "SinkBacklogGrowing",
        "11m",
        [series("groundtruth_sink_lag_seconds", "400x15")],
        HOST,
        "The oldest event not yet written to the store on host1 is 6m 40s old: the store is "
        "down or too slow, events are spooling on disk and will be dropped when the spool is "
        "full.",
        quiet_until="9m",
        fires_from="10m",
        summary="The event store is falling behind on host1.",
        link="&var-instance=host1",
    ),
    Case(
        "SinkBacklogGrowing",
        "11m",
        [series("groundtruth_sink_lag_seconds", "100x15")],
        why="lag under 5 minutes",
    ),
    Case(
        "ProbeSelftestFailing",
        "6m",
        [series("groundtruth_probe_selftest_ok", "0x10", probe="process")],
        {**HOST, "probe": "process"},
        "The process probe's self-test fails on host1: its events and metrics cannot be "
        "believed until it passes again.",
        quiet_until="4m",
        fires_from="5m",
        summary="The process probe on host1 fails its self-test.",
        link="&var-instance=host1",
    ),
    Case(
        "ProbeSelftestFailing",
        "6m",
        [series("groundtruth_probe_selftest_ok", "1x10", probe="process")],
        why="self-test passes",
    ),
    Case(
        "CollectorFailing",
        "16m",
        [series("groundtruth_collector_errors_total", "0+1x20", collector="tcp_counts")],
        {**HOST, "collector": "tcp_counts"},
        "The tcp_counts collector on host1 failed 5 reads in 5 minutes: the metrics it exports "
        "are missing from this host's scrapes (the exporter's log names the error).",
        quiet_until="10m",
        fires_from="11m",
        summary="The tcp_counts collector on host1 keeps failing.",
        link="&var-instance=host1",
    ),
    Case(
        "CollectorFailing",
        "16m",
        [
            series(
                "groundtruth_collector_errors_total",
                "0 1x16",
                collector="tcp_counts",
            )
        ],
        why="one failed read long ago",
    ),
    Case(
        "HostCpuSaturated",
        "20m",
        [
            series("groundtruth_host_cpu_seconds_total", "0+57x20", mode="user"),
            series("groundtruth_host_cpu_seconds_total", "0+3x20", mode="idle"),
        ],
        HOST,
        "host1 has been 95% busy for 15m: work queues up and latency grows.",
        quiet_until="15m",
        fires_from="17m",
        summary="CPU on host1 is saturated.",
        link="&var-instance=host1",
    ),
    Case(
        "HostCpuSaturated",
        "20m",
        [
            series("groundtruth_host_cpu_seconds_total", "0+30x20", mode="user"),
            series("groundtruth_host_cpu_seconds_total", "0+24x20", mode="iowait"),
            series("groundtruth_host_cpu_seconds_total", "0+6x20", mode="idle"),
        ],
        why="half busy; iowait counts as idle",
    ),
    Case(
        "HostMemoryPressure",
        "11m",
        [
            series("groundtruth_host_memory_available_bytes", "5e8x15"),
            series("groundtruth_host_memory_total_bytes", "1e10x15"),
        ],
        HOST,
        "Only 5% of the memory of host1 is available: the kernel reclaims hard and the OOM "
        "killer is next.",
        quiet_until="9m",
        fires_from="11m",
        summary="host1 is running out of memory.",
        link="&var-instance=host1",
    ),
    Case(
        "HostMemoryPressure",
        "11m",
        [
            series("groundtruth_host_memory_available_bytes", "5e9x15"),
            series("groundtruth_host_memory_total_bytes", "1e10x15"),
        ],
        why="half the memory available",
    ),
    Case(
        "ContainerNearMemoryLimit",
        "16m",
        [
            series("groundtruth_container_memory_bytes", "950x20", container="web"),
            series("groundtruth_container_memory_limit_bytes", "1000x20", container="web"),
        ],
        {**HOST, "container": "web"},
        "Container web on host1 uses 95% of its memory limit: it will be OOM-killed when it "
        "reaches it.",
        quiet_until="14m",
        fires_from="16m",
        summary="Container web on host1 is near its memory limit.",
        link="&var-instance=host1&var-container=web",
    ),
    Case(
        "ContainerNearMemoryLimit",
        "16m",
        [
            series("groundtruth_container_memory_bytes", "500x20", container="web"),
            series("groundtruth_container_memory_limit_bytes", "1000x20", container="web"),
            series("groundtruth_container_memory_bytes", "500x20", container="nolimit"),
            series("groundtruth_container_memory_limit_bytes", "0x20", container="nolimit"),
        ],
        why="half the limit; a container without a limit (0) is left out",
    ),
    Case(
        "OomKill",
        "15m",
        [series("groundtruth_oom_kills_total", "0x10 1x10", container="web")],
        {**HOST, "container": "web"},
        "1 processes in container web (empty: not in a container) on host1 were OOM-killed "
        "in the last 10 minutes.",
        quiet_until="10m",
        fires_from="11m",
        summary="A process in web on host1 was OOM-killed.",
        link="&var-instance=host1&var-container=web",
    ),
    Case(
        "OomKill",
        "15m",
        [series("groundtruth_oom_kills_total", "1x20", container="web")],
        why="a kill more than 10 minutes ago",
    ),
    Case(
        "OomKill",
        "6m",
        [series("groundtruth_oom_kills_total", "_x4 1x10", container="db")],
        {**HOST, "container": "db"},
        "1 processes in container db (empty: not in a container) on host1 were OOM-killed in "
        "the last 10 minutes.",
        why="the container's first kill: its counter appears at 1",
        quiet_until="3m",
        fires_from="4m",
        summary="A process in db on host1 was OOM-killed.",
        link="&var-instance=host1&var-container=db",
    ),
    Case(
        "OomKill",
        "16m",
        [series("groundtruth_oom_kills_total", "_x4 1x15", container="db")],
        why="a first kill more than 10 minutes ago",
    ),
    Case(
        "ExecStorm",
        "10m",
        [
            series("groundtruth_process_execs_total", "0+24000x20", container="", program="sh"),
            series("groundtruth_process_execs_total", "0+6000x20", container="", program="curl"),
        ],
        {**HOST, "program": "sh"},
        "host1 runs more than 200 execs/s; most of them are sh at 400/s: a crash loop, a "
        "runaway script or a health check spawning shells. The causal graph shows which parent.",
        quiet_until="7m",
        fires_from="9m",
        summary="Exec storm on host1.",
        link="&var-instance=host1",
    ),
    Case(
        "ExecStorm",
        "10m",
        [
            series("groundtruth_process_execs_total", "0+9000x20", container="", program="sh"),
            series("groundtruth_process_execs_total", "0+2400x20", container="", program="curl"),
        ],
        why="190 execs/s in all",
    ),
    Case(
        "FailedConnectionSurge",
        "16m",
        [
            outbound("0+120x20", "ok", "web", "10.0.0.5:5432"),
            outbound("0+360x20", "refused", "web", "10.0.0.5:5432"),
        ],
        {**HOST, "container": "web"},
        "75% of outbound connection attempts from container web on host1 fail (refused, "
        "timeout, reset or error).",
        quiet_until="10m",
        fires_from="12m",
        summary="Outbound connections from web on host1 are failing.",
        link="&var-instance=host1&var-container=web",
    ),
    Case(
        "FailedConnectionSurge",
        "16m",
        [
            # web: 2/s succeed, 0.1/s refused: a low failure ratio.
            outbound("0+120x20", "ok", "web", "10.0.0.5:5432"),
            outbound("0+6x20", "refused", "web", "10.0.0.5:5432"),
            # batch: two thirds fail, but only 0.2 failures/s: under the minimum rate.
            outbound("0+6x20", "ok", "batch", "10.0.0.6:443"),
            outbound("0+12x20", "timeout", "batch", "10.0.0.6:443"),
        ],
        why="low ratio in one container, low rate in the other",
    ),
    Case(
        "RetransmitSurge",
        "16m",
        [series("groundtruth_tcp_retransmits_total", "0+6000x20")],
        HOST,
        "host1 retransmits 100 TCP segments/s: packet loss on the path or an overloaded peer.",
        quiet_until="12m",
        fires_from="14m",
        summary="TCP retransmits surge on host1.",
        link="&var-instance=host1",
    ),
    Case(
        "RetransmitSurge",
        "16m",
        [series("groundtruth_tcp_retransmits_total", "0+600x20")],
        why="10 retransmits/s",
    ),
    Case(
        "TraceScoreHigh",
        "5m",
        [trace_score("60 60 90x10", band="critical")],
        {"trace_id": "t-0123456789abcdef", "host": "host1", "root_program": "bash"},
        "Flags linked to one root cause (bash on host1, trace t-0123456789abcdef) score 90: "
        "security or operational rules fired along one chain of processes. Open the trace's "
        "graph: the root, the path to each flag, the connections between hosts.",
        quiet_until="1m",
        fires_from="2m",
        summary="A trace of flags from bash on host1 scores 90.",
        link="&var-instance=host1&var-focus=trace%3Dt-0123456789abcdef",
    ),
    Case(
        "TraceScoreHigh",
        "5m",
        [trace_score("79x10", band="high")],
        why="a score under the line",
    ),
    Case(
        "PolicyDeviation",
        "5m",
        [policy_deviations("0 0 2x10")],
        {
            "trace_id": "t-0123456789abcdef",
            "host": "host1",
            "root_program": "bash",
            "workload": "nginx.service",
        },  # fmt: skip
        "2 deviations from the baseline policy of workload nginx.service (a new program, "
        "parent, user, port, destination or source) in trace t-0123456789abcdef from bash on "
        "host1. Open the trace's graph; if it is expected, `groundtruth baseline merge` adds "
        "it to the policy.",
        quiet_until="1m",
        fires_from="2m",
        summary="Workload nginx.service on host1 did something its baseline policy does not allow.",
        link="&var-instance=host1&var-focus=trace%3Dt-0123456789abcdef",
    ),
    Case(
        "PolicyDeviation",
        "5m",
        [policy_deviations("0x10")],
        why="a trace without deviations",
    ),
]


def test_file(cfg: MixinConfig, rule_file_name: str) -> dict:
    """The promtool test file for the rules in ``rule_file_name`` (same directory)."""
    by_name = {a.name: a for a in alerts(cfg)}
    tests = []
    for case in CASES:
        alert = by_name[case.alert]
        name = f"{case.alert} {'fires' if case.labels is not None else 'stays quiet'}"
        if case.why:
            name += f": {case.why}"
        tests.append(
            {
                "name": name,
                "interval": "1m",
                "input_series": case.input_series,
                "alert_rule_test": [
                    {"eval_time": at, "alertname": alert_name(cfg, alert), "exp_alerts": expected}
                    for at, expected in evaluations(cfg, case, alert)
                ],
            }
        )
    return {"rule_files": [rule_file_name], "evaluation_interval": "1m", "tests": tests}


def dashboard_link(cfg: MixinConfig, case: Case, alert: Alert) -> str:
    """The firing case's dashboard_url: the investigation dashboard with the case's variables;
    without Grafana, graphapi's alert page with every label of the series (the case's labels
    but the rule's own), URL-encoded, in key order."""
    if cfg.grafana_url:
        return f"{cfg.grafana_url}{INVESTIGATION}{case.link}"
    series_labels = sorted((k, v) for k, v in (case.labels or {}).items() if k not in alert.labels)
    query = "".join(f"&{quote_plus(k)}={quote_plus(v)}" for k, v in series_labels)
    return f"{cfg.graphapi_url}/alert?alertname=Groundtruth{case.alert}{query}"


def evaluations(cfg: MixinConfig, case: Case, alert: Alert) -> list[tuple[str, list]]:
    """(eval time, expected alerts) of a case: quiet at its eval time, or quiet at
    ``quiet_until``, then firing at ``fires_from`` and at its eval time."""
    if case.labels is None:
        return [(case.eval_time, [])]
    firing = [
        {
            "exp_labels": {**case.labels, "severity": alert.severity},
            "exp_annotations": {
                "summary": case.summary,
                "description": case.description,
                "runbook_url": f"{cfg.raw['runbook_url']}#groundtruth{case.alert.lower()}",
                "dashboard_url": dashboard_link(cfg, case, alert),
            },
        }
    ]
    return [(case.quiet_until, []), (case.fires_from, firing), (case.eval_time, firing)]
