"""The writer's health as Prometheus metrics, read at scrape time (a custom Collector).

groundtruth_sink_spool_events / _spool_bytes: what waits on disk for the store;
groundtruth_sink_errors_total{sink}: failed attempts to write (sink: clickhouse or chdb);
groundtruth_sink_replayed_events_total: spooled events written after an outage;
groundtruth_sink_lag_seconds: age of the oldest event not yet in the store.
Events the sink lost are in groundtruth_events_dropped_total{stage="sink"} (PipelineCollector).
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class SinkCollector:
    def __init__(self, writer):
        self.writer = writer

    def collect(self):
        w = self.writer
        spool_events = GaugeMetricFamily(
            "groundtruth_sink_spool_events", "Events waiting in the on-disk spool."
        )
        spool_events.add_metric([], w.spool.events)
        spool_bytes = GaugeMetricFamily(
            "groundtruth_sink_spool_bytes", "Bytes of the on-disk spool."
        )
        spool_bytes.add_metric([], w.spool.bytes)
        errors = CounterMetricFamily(
            "groundtruth_sink_errors", "Failed attempts to write to the store.", labels=["sink"]
        )
        errors.add_metric([w.sink_name], w.errors)
        replayed = CounterMetricFamily(
            "groundtruth_sink_replayed_events", "Spooled events written after an outage."
        )
        replayed.add_metric([], w.replayed)
        lag = GaugeMetricFamily(
            "groundtruth_sink_lag_seconds", "Age of the oldest event not yet in the store."
        )
        lag.add_metric([], w.lag_seconds())
        yield from (spool_events, spool_bytes, errors, replayed, lag)
