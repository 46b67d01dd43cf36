"""Prometheus alerting rules, and the rule file with the mixin's recording rules, built from the
mixin config.

The recording rules (``mixin/recording.py``) carry the rates and ratios that both the alerts
and the dashboards read, so each is computed once per evaluation. Alerts are on the data (CPU,
memory, OOM kills, execs, connections, retransmits) and on the pipeline that produces it
(exporter down or absent, drops, sink backlog, probe self-tests): an alert on the data is only
as good as the pipeline, and the pipeline's alerts say when not to believe the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote_plus

from mixin.config import MixinConfig
from mixin.recording import (
    INVESTIGATION_SLUG,
    INVESTIGATION_UID,
    recording_names,
    recording_rules,
)


@dataclass(frozen=True, kw_only=True)
class Alert:
    name: str  # without the prefix
    expr: str
    for_: str
    severity: str
    summary: str  # may use {{ $labels.x }} only
    description: str  # may use $value and $labels
    # Alerts that read exporter metrics are inhibited while that exporter is down.
    needs_exporter: bool = True
    # Labels the alert keeps, passed to the investigation dashboard link.
    link_labels: tuple[str, ...] = ()
    # Other dashboard variables the link sets: (variable, value template).
    link_vars: tuple[tuple[str, str], ...] = ()
    labels: dict = field(default_factory=dict)


def _label(name: str) -> str:
    return "{{ $labels." + name + " }}"


def alerts(cfg: MixinConfig) -> list[Alert]:
    r = recording_names(cfg)
    t = cfg.threshold
    s = cfg.selector
    host = _label(cfg.host_label)
    container = _label("container")
    on_host = (cfg.host_label,)
    on_container = (cfg.host_label, "container")
    by_container = f"job, {cfg.host_label}, container"
    ooms = f"groundtruth_oom_kills_total{s()}"
    return [
        Alert(
            name="ExporterDown",
            expr=f"up{s()} == 0",
            for_=t("exporter_down_for"),
            severity="critical",
            summary=f"The groundtruth exporter on {host} is down.",
            description=(
                f"Prometheus cannot scrape the groundtruth exporter on {host}: no process, "
                "connection or pipeline data comes from this host, and the alerts that depend on "
                "it are inhibited until it is back."
            ),
            needs_exporter=False,
            link_labels=on_host,
        ),
        Alert(
            name="ExporterAbsent",
            expr=f"absent(up{s()})",
            for_=t("exporter_absent_for"),
            severity="critical",
            summary="No groundtruth exporter is being scraped.",
            description=(
                "Prometheus has no scrape target for the groundtruth exporter at all: every "
                "groundtruth dashboard and alert is blind."
            ),
            needs_exporter=False,
        ),
        Alert(
            name="EventsDropped",
            expr=f"{r['dropped']} > {t('events_dropped_per_second')}",
            for_=t("events_dropped_for"),
            severity="warning",
            summary=f"The groundtruth exporter on {host} is dropping events.",
            description=(
                f"{host} drops {{{{ $value | humanize }}}} events/s at stage "
                f"{_label('stage')} ({_label('reason')}): the event store is missing events "
                "from this host, so graphs and timelines from it are incomplete."
            ),
            link_labels=on_host,
        ),
        Alert(
            name="SinkBacklogGrowing",
            expr=f"groundtruth_sink_lag_seconds{s()} > {t('sink_lag_seconds')}",
            for_=t("sink_backlog_for"),
            severity="warning",
            summary=f"The event store is falling behind on {host}.",
            description=(
                f"The oldest event not yet written to the store on {host} is "
                "{{ $value | humanizeDuration }} old: the store is down or too slow, events are "
                "spooling on disk and will be dropped when the spool is full."
            ),
            link_labels=on_host,
        ),
        Alert(
            name="ProbeSelftestFailing",
            expr=f"groundtruth_probe_selftest_ok{s()} == 0",
            for_=t("probe_selftest_for"),
            severity="critical",
            summary=f"The {_label('probe')} probe on {host} fails its self-test.",
            description=(
                f"The {_label('probe')} probe's self-test fails on {host}: its events and "
                "metrics cannot be believed until it passes again."
            ),
            link_labels=on_host,
        ),
        Alert(
            # A container that goes away mid-read fails one scrape: only a read that keeps
            # failing for the whole `for:` pages.
            name="CollectorFailing",
            expr=f"increase(groundtruth_collector_errors_total{s()}[5m]) > 0",
            for_=t("collector_errors_for"),
            severity="warning",
            summary=f"The {_label('collector')} collector on {host} keeps failing.",
            description=(
                f"The {_label('collector')} collector on {host} failed {{{{ $value | humanize }}}} "
                "reads in 5 minutes: the metrics it exports are missing from this host's scrapes "
                "(the exporter's log names the error)."
            ),
            link_labels=on_host,
        ),
        Alert(
            name="HostCpuSaturated",
            expr=f"{r['cpu_busy']} > {t('host_cpu_saturated_ratio')}",
            for_=t("host_cpu_saturated_for"),
            severity="warning",
            summary=f"CPU on {host} is saturated.",
            description=(
                f"{host} has been {{{{ $value | humanizePercentage }}}} busy for "
                f"{t('host_cpu_saturated_for')}: work queues up and latency grows."
            ),
            link_labels=on_host,
        ),
        Alert(
            name="HostMemoryPressure",
            expr=f"{r['mem_available']} < {t('host_memory_available_min_ratio')}",
            for_=t("host_memory_pressure_for"),
            severity="warning",
            summary=f"{host} is running out of memory.",
            description=(
                f"Only {{{{ $value | humanizePercentage }}}} of the memory of {host} is "
                "available: the kernel reclaims hard and the OOM killer is next."
            ),
            link_labels=on_host,
        ),
        Alert(
            name="ContainerNearMemoryLimit",
            expr=f"{r['container_mem_limit']} > {t('container_memory_limit_ratio')}",
            for_=t("container_memory_limit_for"),
            severity="warning",
            summary=f"Container {container} on {host} is near its memory limit.",
            description=(
                f"Container {container} on {host} uses {{{{ $value | humanizePercentage }}}} "
                "of its memory limit: it will be OOM-killed when it reaches it."
            ),
            link_labels=on_container,
        ),
        Alert(
            # A container's counter appears with its first kill (value 1), which increase()
            # cannot see: a series that did not exist 10 minutes ago counts in full.
            name="OomKill",
            expr=(
                f"sum by ({by_container}) (increase({ooms}[10m])) > 0"
                f" or sum by ({by_container}) ({ooms} unless {ooms} offset 10m) > 0"
            ),
            for_="0m",
            severity="warning",
            summary=f"A process in {container} on {host} was OOM-killed.",
            description=(
                f"{{{{ $value | humanize }}}} processes in container {container} "
                f"(empty: not in a container) on {host} were OOM-killed in the last 10 minutes."
            ),
            link_labels=on_container,
        ),
        Alert(
            # The host's total crosses the threshold; the alert names the program doing most
            # of it, so it reaches the team that owns that program.
            name="ExecStorm",
            expr=(
                f"topk by (job, {cfg.host_label}) (1, {r['program_execs']})"
                f" and on (job, {cfg.host_label}) {r['execs']} > {t('exec_storm_per_second')}"
            ),
            for_=t("exec_storm_for"),
            severity="warning",
            summary=f"Exec storm on {host}.",
            description=(
                f"{host} runs more than {t('exec_storm_per_second')} execs/s; most of them are "
                f"{_label('program')} at {{{{ $value | humanize }}}}/s: a crash loop, a runaway "
                "script or a health check spawning shells. The causal graph shows which parent."
            ),
            link_labels=on_host,
        ),
        Alert(
            name="FailedConnectionSurge",
            expr=(
                f"{r['failed_ratio']} > {t('failed_connect_ratio')}"
                f" and {r['outbound_failed']} > {t('failed_connect_min_per_second')}"
            ),
            for_=t("failed_connect_for"),
            severity="warning",
            summary=f"Outbound connections from {container} on {host} are failing.",
            description=(
                f"{{{{ $value | humanizePercentage }}}} of outbound connection attempts from "
                f"container {container} on {host} fail (refused, timeout, reset or error)."
            ),
            link_labels=on_container,
        ),
        Alert(
            name="RetransmitSurge",
            expr=f"{r['retransmits']} > {t('retransmits_per_second')}",
            for_=t("retransmits_for"),
            severity="warning",
            summary=f"TCP retransmits surge on {host}.",
            description=(
                f"{host} retransmits {{{{ $value | humanize }}}} TCP segments/s: packet loss on "
                "the path or an overloaded peer."
            ),
            link_labels=on_host,
        ),
        Alert(
            name="TraceScoreHigh",
            # graphapi exports the scores (traces are assembled from every host's events);
            # band and severity labels change as a trace grows: one alert per trace.
            expr=(
                "max by (trace_id, host, root_program) (groundtruth_trace_score) >= "
                f"{t('trace_alert_score')}"
            ),
            for_=t("trace_alert_for"),
            severity="critical",
            summary=(
                f"A trace of flags from {_label('root_program')} on {_label('host')} scores "
                "{{ $value }}."
            ),
            description=(
                f"Flags linked to one root cause ({_label('root_program')} on {_label('host')},"
                f" trace {_label('trace_id')}) score {{{{ $value }}}}: security or operational "
                "rules fired along one chain of processes. Open the trace's graph: the root, "
                "the path to each flag, the connections between hosts."
            ),
            needs_exporter=False,
            link_vars=(
                (cfg.host_label, _label("host")),
                ("focus", "trace%3D" + _label("trace_id")),
            ),
        ),
        Alert(
            name="PolicyDeviation",
            # graphapi exports the policy flags of each trace by workload (docs/baselines.md).
            expr=(
                "max by (trace_id, host, root_program, workload) "
                "(groundtruth_trace_policy_deviations) > 0"
            ),
            for_=t("policy_alert_for"),
            severity="warning",
            summary=(
                f"Workload {_label('workload')} on {_label('host')} did something its baseline "
                "policy does not allow."
            ),
            description=(
                f"{{{{ $value }}}} deviations from the baseline policy of workload "
                f"{_label('workload')} (a new program, parent, user, port, destination or "
                f"source) in trace {_label('trace_id')} from {_label('root_program')} on "
                f"{_label('host')}. Open the trace's graph; if it is expected, `groundtruth "
                "baseline merge` adds it to the policy."
            ),
            needs_exporter=False,
            link_vars=(
                (cfg.host_label, _label("host")),
                ("focus", "trace%3D" + _label("trace_id")),
            ),
        ),
    ]


def alert_name(cfg: MixinConfig, alert: Alert) -> str:
    return cfg.prefix + alert.name


def dashboard_url(cfg: MixinConfig, alert: Alert) -> str:
    """The investigation dashboard focused on the alert's host (and container), last hour; with
    no Grafana (``grafana_url`` empty), graphapi's page of the alert itself.

    Prometheus' annotation templates cannot see when the alert started, so the window is
    relative; graphapi, which receives startsAt, can build exact-time links.
    """
    if not cfg.grafana_url:
        return graphapi_page_url(cfg, alert)
    params = ["from=now-1h", "to=now"]
    # The dashboard's variables are named after the labels they filter on.
    params += [f"var-{label}={_label(label)}" for label in alert.link_labels]
    params += [f"var-{name}={value}" for name, value in alert.link_vars]
    return f"{cfg.grafana_url}/d/{INVESTIGATION_UID}/{INVESTIGATION_SLUG}?" + "&".join(params)


# Every label of the alert's series, URL-encoded (Go templates range over a map in key order);
# not __name__, which a comparison keeps in the series but the alert drops.
ALL_LABELS_QUERY = (
    '{{ range $k, $v := $labels }}{{ if ne $k "__name__" }}'
    "&{{ $k | urlquery }}={{ $v | urlquery }}{{ end }}{{ end }}"
)


def graphapi_page_url(cfg: MixinConfig, alert: Alert) -> str:
    """graphapi's alert page (``/alert``, ``graphapi.pages.alert_page``): the alert's name and
    every label of its series. Prometheus does not know the fingerprint Alertmanager gives the
    alert; graphapi finds the received alert by them and opens its graph."""
    return f"{cfg.graphapi_url}/alert?alertname={quote_plus(alert_name(cfg, alert))}" + (
        ALL_LABELS_QUERY
    )


def annotations(cfg: MixinConfig, alert: Alert) -> dict:
    return {
        "summary": alert.summary,
        "description": alert.description,
        "runbook_url": cfg.runbook_url(alert_name(cfg, alert)),
        "dashboard_url": dashboard_url(cfg, alert),
    }


def rule_file(cfg: MixinConfig) -> dict:
    """The Prometheus rule file: one group of recording rules, one of alerts."""
    return {
        "groups": [
            {
                "name": "groundtruth.rules",
                "rules": [{"record": x.record, "expr": x.expr} for x in recording_rules(cfg)],
            },
            {
                "name": "groundtruth.alerts",
                "rules": [
                    {
                        "alert": alert_name(cfg, a),
                        "expr": a.expr,
                        "for": a.for_,
                        "labels": {"severity": a.severity, **a.labels},
                        "annotations": annotations(cfg, a),
                    }
                    for a in alerts(cfg)
                ],
            },
        ]
    }
