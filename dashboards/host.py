"""Host ground truth: CPU, memory, execs, exits, OOM kills, connections and retransmits."""

from __future__ import annotations

from dashboards.common import (
    BYTES,
    CORES,
    COUNT,
    PER_SECOND,
    PERCENT,
    SECONDS,
    dashboard,
    graph_link,
    host_variable,
    job_variable,
    legend,
    prometheus_variable,
    sel,
    stat,
    steps,
    target,
    timeseries,
)
from mixin.config import MixinConfig
from mixin.recording import recording_names

UID = "groundtruth-host"


def build(cfg: MixinConfig):
    t = cfg.threshold
    r = recording_names(cfg)
    h = cfg.host_label
    s = sel(cfg)
    link = [graph_link(cfg)]
    rate = "[$__rate_interval]"
    # Shown twice (a stat for now, a graph for the window): one query and threshold each.
    cpu_busy = [target(f"{r['cpu_busy']}{s}", legend(h))]
    cpu_saturated = steps(("red", t("host_cpu_saturated_ratio")))
    mem_available = [target(f"{r['mem_available']}{s}", legend(h))]
    low_memory = [
        {"color": "red", "value": None},
        {"color": "green", "value": t("host_memory_available_min_ratio")},
    ]
    exec_storm = steps(("red", t("exec_storm_per_second")))
    return dashboard(
        uid=UID,
        title="groundtruth / Host",
        description="What ran and what it cost on each host, measured in the kernel by eBPF.",
        variables=[prometheus_variable(cfg), job_variable(cfg), host_variable(cfg)],
        panels=[
            stat(
                "CPU busy",
                "Share of all CPU time that is neither idle nor iowait, over 5 minutes. "
                "Red at the HostCpuSaturated alert threshold.",
                cpu_busy,
                PERCENT,
                (0, 0, 6, 4),
                cpu_saturated,
            ),
            stat(
                "Memory available",
                "MemAvailable / MemTotal. Red under the HostMemoryPressure alert threshold.",
                mem_available,
                PERCENT,
                (6, 0, 6, 4),
                low_memory,
            ),
            stat(
                "Execs per second",
                "Programs started per second (execve that succeeded), over 5 minutes. Red at "
                "the ExecStorm alert threshold.",
                [target(f"{r['execs']}{s}", legend(h))],
                PER_SECOND,
                (12, 0, 6, 4),
                exec_storm,
            ),
            stat(
                "OOM kills in range",
                "Processes the kernel's OOM killer killed in the dashboard's time range.",
                [target(f"sum(increase(groundtruth_oom_kills_total{s}[$__range]))")],
                COUNT,
                (18, 0, 6, 4),
                steps(("red", 1)),
            ),
            timeseries(
                "CPU busy",
                "Share of all CPU time that is neither idle nor iowait (5-minute rate, "
                "recorded). The line is the HostCpuSaturated alert threshold.",
                cpu_busy,
                PERCENT,
                (0, 4, 12, 8),
                cpu_saturated,
                link,
            ),
            timeseries(
                "Memory available",
                "MemAvailable / MemTotal. The line is the HostMemoryPressure alert threshold.",
                mem_available,
                PERCENT,
                (12, 4, 12, 8),
                low_memory,
                link,
            ),
            timeseries(
                "Execs per second by program",
                "Successful execs per second, the 10 busiest programs on the selected hosts. "
                "Click a point for the causal graph of that host at that time.",
                [
                    target(
                        f"topk(10, sum by ({h}, program) "
                        f"(rate(groundtruth_process_execs_total{s}{rate})))",
                        legend(h, "program"),
                    )
                ],
                PER_SECOND,
                (0, 12, 12, 8),
                exec_storm,
                link,
            ),
            timeseries(
                "Exits by outcome",
                "Processes exiting per second: ok (status 0), error (non-zero status), "
                "signal (killed by a signal), oom (killed by the OOM killer).",
                [
                    target(
                        f"sum by ({h}, outcome) (rate(groundtruth_process_exits_total{s}{rate}))",
                        legend(h, "outcome"),
                    )
                ],
                PER_SECOND,
                (12, 12, 12, 8),
                links=link,
                stacked=True,
            ),
            timeseries(
                "Connections by direction and outcome",
                "TCP connections per second: outbound (connect) and inbound (accept), by "
                "outcome (ok, refused, timeout, reset, error).",
                [
                    target(
                        f"sum by ({h}, direction, outcome) "
                        f"(rate(groundtruth_tcp_connections_total{s}{rate}))",
                        legend(h, "direction", "outcome"),
                    )
                ],
                PER_SECOND,
                (0, 20, 12, 8),
                links=link,
            ),
            timeseries(
                "TCP retransmits",
                "TCP segments retransmitted per second. The line is the RetransmitSurge "
                "alert threshold.",
                [
                    target(
                        f"sum by ({h}) (rate(groundtruth_tcp_retransmits_total{s}{rate}))",
                        legend(h),
                    )
                ],
                PER_SECOND,
                (12, 20, 12, 8),
                steps(("red", t("retransmits_per_second"))),
                link,
            ),
            timeseries(
                "TCP traffic",
                "Bytes per second sent and received over TCP.",
                [
                    target(
                        f"sum by ({h}, direction) (rate(groundtruth_tcp_bytes_total{s}{rate}))",
                        legend(h, "direction"),
                    )
                ],
                "Bps",
                (0, 28, 8, 8),
                links=link,
            ),
            timeseries(
                "Open connections",
                "TCP connections open now, by direction.",
                [
                    target(
                        f"sum by ({h}, direction) (groundtruth_tcp_open_connections{s})",
                        legend(h, "direction"),
                    )
                ],
                COUNT,
                (8, 28, 8, 8),
                links=link,
            ),
            timeseries(
                "Connection duration p95",
                "95th percentile of how long TCP connections lived, from open to close.",
                [
                    target(
                        f"histogram_quantile(0.95, sum by ({h}, direction, le) "
                        f"(rate(groundtruth_tcp_connection_duration_seconds_bucket{s}{rate})))",
                        legend(h, "direction"),
                    )
                ],
                SECONDS,
                (16, 28, 8, 8),
                links=link,
            ),
            timeseries(
                "CPU by container",
                "CPU seconds per second (cores busy) of the 10 busiest containers; the "
                'empty container "" is everything outside containers.',
                [
                    target(
                        f"topk(10, sum by ({h}, container) "
                        f"(rate(groundtruth_container_cpu_seconds_total{s}{rate})))",
                        legend(h, "container"),
                    )
                ],
                CORES,
                (0, 36, 12, 8),
                links=[graph_link(cfg, with_container=True)],
            ),
            timeseries(
                "Memory by container",
                "Memory in use by the 10 largest containers.",
                [
                    target(
                        f"topk(10, sum by ({h}, container) "
                        f"(groundtruth_container_memory_bytes{s}))",
                        legend(h, "container"),
                    )
                ],
                BYTES,
                (12, 36, 12, 8),
                links=[graph_link(cfg, with_container=True)],
            ),
        ],
    )
