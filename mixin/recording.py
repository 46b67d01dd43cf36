"""The recording rules and the investigation dashboard's address: what alerts and dashboards share.

Recording rules (``level:metric:operations``) carry the rates and ratios that both the alerts
and the dashboards read, so each is computed once per evaluation. The alerts link to the
investigation dashboard that ``dashboards`` builds, so its uid and slug are kept here, beside
the thresholds, and neither of the two packages imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from mixin.config import MixinConfig

INVESTIGATION_UID = "groundtruth-investigation"
INVESTIGATION_SLUG = "groundtruth-incident-investigation"


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str


def recording_names(cfg: MixinConfig) -> dict[str, str]:
    """Short handles -> recorded metric names (the level prefix follows the host label)."""
    host = cfg.host_label
    return {
        "cpu_busy": f"{host}:groundtruth_host_cpu_busy:ratio",
        "mem_available": f"{host}:groundtruth_host_memory_available:ratio",
        "container_mem_limit": f"{host}_container:groundtruth_container_memory_limit_used:ratio",
        "container_cpu": f"{host}_container:groundtruth_container_cpu_seconds:rate5m",
        "execs": f"{host}:groundtruth_process_execs:rate5m",
        "program_execs": f"{host}_program:groundtruth_process_execs:rate5m",
        "outbound": f"{host}_container:groundtruth_tcp_connections_outbound:rate5m",
        "outbound_failed": f"{host}_container:groundtruth_tcp_connections_outbound_failed:rate5m",
        "failed_ratio": f"{host}_container:groundtruth_tcp_connections_outbound_failed:ratio",
        "retransmits": f"{host}:groundtruth_tcp_retransmits:rate5m",
        "dropped": f"{host}_stage_reason:groundtruth_events_dropped:rate5m",
    }


def recording_rules(cfg: MixinConfig) -> list[Recording]:
    r = recording_names(cfg)
    s = cfg.selector
    by_host = f"job, {cfg.host_label}"
    by_container = f"{by_host}, container"
    cpu = "groundtruth_host_cpu_seconds_total"
    busy = 'mode!~"idle|iowait"'
    conns = "groundtruth_tcp_connections_total"
    outbound, failed = 'direction="outbound"', 'outcome!="ok"'
    return [
        Recording(
            r["cpu_busy"],
            f"sum by ({by_host}) (rate({cpu}{s(busy)}[5m]))"
            f" / sum by ({by_host}) (rate({cpu}{s()}[5m]))",
        ),
        Recording(
            r["mem_available"],
            f"groundtruth_host_memory_available_bytes{s()}"
            f" / groundtruth_host_memory_total_bytes{s()}",
        ),
        Recording(
            # Containers without a limit report 0 (or nothing): they are left out, not divided by.
            r["container_mem_limit"],
            f"groundtruth_container_memory_bytes{s()}"
            f" / (groundtruth_container_memory_limit_bytes{s()} > 0)",
        ),
        Recording(
            r["container_cpu"],
            f"sum by ({by_container}) (rate(groundtruth_container_cpu_seconds_total{s()}[5m]))",
        ),
        Recording(
            r["execs"],
            f"sum by ({by_host}) (rate(groundtruth_process_execs_total{s()}[5m]))",
        ),
        Recording(
            r["program_execs"],
            f"sum by ({by_host}, program) (rate(groundtruth_process_execs_total{s()}[5m]))",
        ),
        Recording(
            r["outbound"],
            f"sum by ({by_container}) (rate({conns}{s(outbound)}[5m]))",
        ),
        Recording(
            r["outbound_failed"],
            f"sum by ({by_container}) (rate({conns}{s(outbound, failed)}[5m]))",
        ),
        Recording(r["failed_ratio"], f"{r['outbound_failed']} / {r['outbound']}"),
        Recording(
            r["retransmits"],
            f"sum by ({by_host}) (rate(groundtruth_tcp_retransmits_total{s()}[5m]))",
        ),
        Recording(
            r["dropped"],
            f"sum by ({by_host}, stage, reason) (rate(groundtruth_events_dropped_total{s()}[5m]))",
        ),
    ]
