"""``GET /metrics``: the scores of the traces of the last hour (and their baseline policy
deviations), for Prometheus to alert on.

Traces are assembled where every host's events meet, so their scores are exported here, not
by the exporters. Read at scrape time (a ``Collector``): the top ``TRACE_METRICS_MAX`` traces by
score, so the series stay bounded whatever happens. A scrape never fails for a store problem: it
then has no trace series and counts the failure.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

bp = Blueprint("metrics", __name__)
log = logging.getLogger("groundtruth.graphapi")
BANDS = ("low", "high", "critical")


class TraceScoreCollector(Collector):
    """``groundtruth_trace_score`` per trace (bounded), and the traces per band."""

    def __init__(self, assemble, window_seconds: float, top: int):
        self.assemble, self.window_seconds, self.top = assemble, window_seconds, top
        self.errors = 0

    def _families(self):
        score = GaugeMetricFamily(
            "groundtruth_trace_score",
            "Score of a trace with a flag in the last window, the highest-scoring ones only.",
            labels=["trace_id", "host", "root_program", "band", "severity"],
        )
        count = GaugeMetricFamily(
            "groundtruth_traces", "Traces with a flag in the last window, by band.", labels=["band"]
        )
        errors = CounterMetricFamily(
            "groundtruth_graphapi_trace_errors",
            "Scrapes whose traces could not be assembled (the store failed).",
        )
        policy = GaugeMetricFamily(
            "groundtruth_trace_policy_deviations",
            "Policy flags (baseline deviations) in a trace of the last window, by workload; the "
            "highest-scoring traces only.",
            labels=["trace_id", "host", "root_program", "workload"],
        )
        return score, count, errors, policy

    def describe(self):
        return self._families()

    def collect(self):
        score, count, errors, policy = self._families()
        now = time.time_ns()
        try:
            traces = self.assemble(now - int(self.window_seconds * 1e9), now)
        except Exception as e:  # noqa: BLE001 - a scrape never raises: fewer series, counted
            self.errors += 1
            log.warning("graphapi: trace scores not available: %s", e)
            traces = None
        for band in BANDS:
            count.add_metric([band], sum(t.band == band for t in traces or ()))
        for t in (traces or [])[: self.top]:
            s = t.summary()
            labels = [t.id, t.root["host"], s["root_program"], t.band, s["highest_severity"]]
            score.add_metric(labels, t.score)
            for workload, n in sorted(t.policy_deviations().items()):
                policy.add_metric([t.id, t.root["host"], s["root_program"], workload], n)
        errors.add_metric([], self.errors)
        yield from (score, count, errors, policy)


def _collector(app) -> TraceScoreCollector:
    """One collector (and its error count) per app, created on the first scrape; it assembles
    the traces as ``/api/traces`` does, in the scrape's own request."""
    ext = app.extensions.setdefault("groundtruth", {})
    if "trace_metrics" not in ext:
        from graphapi.api.traces import assembler

        cfg = app.config
        ext["trace_metrics"] = TraceScoreCollector(
            lambda from_ns, to_ns: assembler().assemble(from_ns, to_ns),
            cfg["TRACE_METRICS_WINDOW_SECONDS"],
            cfg["TRACE_METRICS_MAX"],
        )
    return ext["trace_metrics"]


@bp.get("/metrics")
def metrics():
    """Trace scores in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_collector(current_app))
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4")
