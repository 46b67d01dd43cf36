"""Exporter health / data trust: can the other dashboards be believed right now?

The top row answers at a glance (green: yes): exporter scraped, probes pass their self-tests,
nothing dropped, store not behind. The rest says where the pipeline loses or delays events.
"""

from __future__ import annotations

from dashboards.common import (
    BYTES,
    COUNT,
    NONE,
    PER_SECOND,
    SECONDS,
    dashboard,
    host_matchers,
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

UID = "groundtruth-exporter-health"

UP_DOWN = [
    {
        "type": "value",
        "options": {
            "0": {"text": "DOWN", "color": "red"},
            "1": {"text": "UP", "color": "green"},
        },
    }
]
PASS_FAIL = [
    {
        "type": "value",
        "options": {
            "0": {"text": "FAILING", "color": "red"},
            "1": {"text": "PASS", "color": "green"},
        },
    }
]
RED_BELOW_ONE = [{"color": "red", "value": None}, {"color": "green", "value": 1}]


def build(cfg: MixinConfig):
    t = cfg.threshold
    r = recording_names(cfg)
    h = cfg.host_label
    s = sel(cfg)
    rate = "[$__rate_interval]"
    dropped = steps(("red", t("events_dropped_per_second") or 1e-9))
    return dashboard(
        uid=UID,
        title="groundtruth / Exporter health",
        description="Whether the exporter's data is complete and current: read this first.",
        variables=[prometheus_variable(cfg), job_variable(cfg), host_variable(cfg)],
        panels=[
            stat(
                "Exporter scraped",
                "Whether Prometheus scrapes the exporter on each host (up). DOWN: nothing "
                "from that host is current.",
                [target(f"up{{{host_matchers(cfg)}}}", legend(h))],
                NONE,
                (0, 0, 6, 4),
                RED_BELOW_ONE,
                UP_DOWN,
            ),
            stat(
                "Probe self-tests",
                "Each probe provokes an event it must see, at start-up and periodically. "
                "FAILING: that probe's events and metrics cannot be believed.",
                [target(f"min by (probe) (groundtruth_probe_selftest_ok{s})", "{{probe}}")],
                NONE,
                (6, 0, 6, 4),
                RED_BELOW_ONE,
                PASS_FAIL,
            ),
            stat(
                "Events dropped",
                "Events per second lost anywhere in the pipeline (5-minute rate). Anything "
                "but 0 means the event store is missing events.",
                [target(f"sum({r['dropped']}{s}) or vector(0)")],
                PER_SECOND,
                (12, 0, 6, 4),
                dropped,
            ),
            stat(
                "Store lag",
                "Age of the oldest event not yet written to the store. Red at the "
                "SinkBacklogGrowing alert threshold.",
                [target(f"max(groundtruth_sink_lag_seconds{s})")],
                SECONDS,
                (18, 0, 6, 4),
                steps(("red", t("sink_lag_seconds"))),
            ),
            timeseries(
                "Events by type",
                "Events per second the exporter produced, by type.",
                [
                    target(
                        f"sum by ({h}, type) (rate(groundtruth_events_total{s}{rate}))",
                        legend(h, "type"),
                    )
                ],
                PER_SECOND,
                (0, 4, 12, 8),
            ),
            timeseries(
                "Drops by stage",
                "Events per second lost, by stage (kernel ring buffer, queue, sink) and "
                "reason. The line is the EventsDropped alert threshold.",
                [
                    target(
                        f"sum by ({h}, stage, reason) "
                        f"(rate(groundtruth_events_dropped_total{s}{rate}))",
                        legend(h, "stage", "reason"),
                    )
                ],
                PER_SECOND,
                (12, 4, 12, 8),
                dropped,
            ),
            timeseries(
                "Store lag",
                "Age of the oldest event not yet written to the store. The line is the "
                "SinkBacklogGrowing alert threshold.",
                [target(f"groundtruth_sink_lag_seconds{s}", legend(h, "sink"))],
                SECONDS,
                (0, 12, 8, 8),
                steps(("red", t("sink_lag_seconds"))),
            ),
            timeseries(
                "Spooled events",
                "Events waiting in the on-disk spool while the store is slow or unreachable.",
                [target(f"groundtruth_sink_spool_events{s}", legend(h, "sink"))],
                COUNT,
                (8, 12, 8, 8),
            ),
            timeseries(
                "Spool size",
                "Bytes of the on-disk spool. When it is full the oldest events are dropped.",
                [target(f"groundtruth_sink_spool_bytes{s}", legend(h, "sink"))],
                BYTES,
                (16, 12, 8, 8),
            ),
            timeseries(
                "Sink errors and replay",
                "Failed writes per second by sink, and spooled events replayed per second "
                "after the store came back.",
                [
                    target(
                        f"sum by ({h}, sink) (rate(groundtruth_sink_errors_total{s}{rate}))",
                        legend(h, "sink") + " errors",
                    ),
                    target(
                        f"sum by ({h}, sink) "
                        f"(rate(groundtruth_sink_replayed_events_total{s}{rate}))",
                        legend(h, "sink") + " replayed",
                        ref="B",
                    ),
                ],
                PER_SECOND,
                (0, 20, 8, 8),
            ),
            stat(
                "Start-up scan",
                "How long the exporter's start-up /proc scan took: it finds the processes "
                "that were running before the probes were attached.",
                [target(f"groundtruth_exporter_scan_duration_seconds{s}", legend(h))],
                SECONDS,
                (8, 20, 8, 8),
            ),
            timeseries(
                "Tracked processes",
                "Processes in the exporter's process table.",
                [target(f"groundtruth_exporter_process_table_size{s}", legend(h))],
                COUNT,
                (16, 20, 8, 8),
            ),
            stat(
                "Exporter versions",
                "The exporter version running on each host (from build_info).",
                [
                    target(
                        f"count by (version) (groundtruth_exporter_build_info{s})",
                        "{{version}}",
                    )
                ],
                COUNT,
                (0, 28, 24, 4),
            ),
        ],
    )
