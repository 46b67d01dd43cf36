"""Containers: the host's ground truth split per container, next to each container's limits."""

from __future__ import annotations

from dashboards.common import (
    BYTES,
    CORES,
    COUNT,
    PER_SECOND,
    PERCENT,
    container_variable,
    dashboard,
    graph_link,
    host_variable,
    job_variable,
    legend,
    prometheus_variable,
    sel,
    steps,
    target,
    timeseries,
)
from mixin.config import MixinConfig
from mixin.recording import recording_names

UID = "groundtruth-containers"


def build(cfg: MixinConfig):
    t = cfg.threshold
    r = recording_names(cfg)
    h = cfg.host_label
    s = sel(cfg, 'container=~"$container"')
    failed = sel(cfg, 'container=~"$container"', 'outcome!="ok"')
    by = f"{h}, container"
    name = legend(h, "container")
    rate = "[$__rate_interval]"
    link = [graph_link(cfg, with_container=True)]
    return dashboard(
        uid=UID,
        title="groundtruth / Containers",
        description="Per-container CPU, memory against its limit, processes and connections.",
        variables=[
            prometheus_variable(cfg),
            job_variable(cfg),
            host_variable(cfg),
            container_variable(cfg),
        ],
        panels=[
            timeseries(
                "CPU",
                "CPU seconds per second (cores busy) per container, user and system together.",
                [
                    target(
                        f"sum by ({by}) (rate(groundtruth_container_cpu_seconds_total{s}{rate}))",
                        name,
                    )
                ],
                CORES,
                (0, 0, 12, 8),
                links=link,
            ),
            timeseries(
                "Memory and limit",
                "Memory in use per container, and its limit (dashed) where it has one.",
                [
                    target(f"sum by ({by}) (groundtruth_container_memory_bytes{s})", name),
                    target(
                        f"sum by ({by}) (groundtruth_container_memory_limit_bytes{s}) > 0",
                        name + " limit",
                        ref="B",
                    ),
                ],
                BYTES,
                (12, 0, 12, 8),
                links=link,
            ),
            timeseries(
                "Memory used of limit",
                "Memory in use / memory limit, for containers that have a limit. The line is "
                "the ContainerNearMemoryLimit alert threshold; at 100% the kernel OOM-kills.",
                [target(f"{r['container_mem_limit']}{s}", name)],
                PERCENT,
                (0, 8, 12, 8),
                steps(("red", t("container_memory_limit_ratio"))),
                link,
            ),
            timeseries(
                "OOM kills",
                "Processes OOM-killed per container in each interval.",
                [
                    target(
                        f"sum by ({by}) (increase(groundtruth_oom_kills_total{s}{rate}))",
                        name,
                    )
                ],
                COUNT,
                (12, 8, 12, 8),
                steps(("red", 1)),
                link,
            ),
            timeseries(
                "Execs per second",
                "Successful execs per second per container.",
                [
                    target(
                        f"sum by ({by}) (rate(groundtruth_process_execs_total{s}{rate}))",
                        name,
                    )
                ],
                PER_SECOND,
                (0, 16, 12, 8),
                links=link,
            ),
            timeseries(
                "Failed exits",
                "Processes per second that exited with a non-zero status, a signal or an "
                "OOM kill, per container and outcome.",
                [
                    target(
                        f"sum by ({by}, outcome) "
                        f"(rate(groundtruth_process_exits_total{failed}{rate}))",
                        legend(h, "container", "outcome"),
                    )
                ],
                PER_SECOND,
                (12, 16, 12, 8),
                links=link,
            ),
            timeseries(
                "Connections by outcome",
                "TCP connections per second per container, by direction and outcome.",
                [
                    target(
                        f"sum by ({by}, direction, outcome) "
                        f"(rate(groundtruth_tcp_connections_total{s}{rate}))",
                        legend(h, "container", "direction", "outcome"),
                    )
                ],
                PER_SECOND,
                (0, 24, 12, 8),
                links=link,
            ),
            timeseries(
                "Failed outbound connections",
                "Share of outbound connection attempts that failed (5-minute rate, recorded). "
                "The line is the FailedConnectionSurge alert threshold.",
                [target(f"{r['failed_ratio']}{s}", name)],
                PERCENT,
                (12, 24, 12, 8),
                steps(("red", t("failed_connect_ratio"))),
                link,
            ),
        ],
    )
