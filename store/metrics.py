"""The store writers' health as Prometheus metrics, read at scrape time (a custom Collector).

One collector for every store writer of the process, each series labelled by its ``sink``: where
the writer writes, without the password (``Store.describe()``). Two store sinks in one process
(``up --sink clickhouse://...``) are two series of each metric, never one name printed twice.

groundtruth_sink_spool_events / _spool_bytes: what waits on disk for the store;
groundtruth_sink_errors_total: failed attempts to write;
groundtruth_sink_replayed_events_total: spooled events written after an outage;
groundtruth_sink_lag_seconds: age of the oldest event not yet in the store.
Events the sink lost are in groundtruth_events_dropped_total{stage="sink"} (PipelineCollector).
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class SinkCollector(Collector):
    def __init__(self, writers: list):
        self.writers = list(writers)

    @staticmethod
    def _families() -> tuple:
        sink = ["sink"]
        return (
            GaugeMetricFamily(
                "groundtruth_sink_spool_events", "Events waiting in the on-disk spool.", labels=sink
            ),
            GaugeMetricFamily(
                "groundtruth_sink_spool_bytes", "Bytes of the on-disk spool.", labels=sink
            ),
            CounterMetricFamily(
                "groundtruth_sink_errors", "Failed attempts to write to the store.", labels=sink
            ),
            CounterMetricFamily(
                "groundtruth_sink_replayed_events",
                "Spooled events written after an outage.",
                labels=sink,
            ),
            GaugeMetricFamily(
                "groundtruth_sink_lag_seconds",
                "Age of the oldest event not yet in the store.",
                labels=sink,
            ),
        )

    def describe(self):
        return self._families()

    def collect(self):
        families = spool_events, spool_bytes, errors, replayed, lag = self._families()
        for w in self.writers:
            sink = [w.store.describe()]
            spool_events.add_metric(sink, w.spool.events)
            spool_bytes.add_metric(sink, w.spool.bytes)
            errors.add_metric(sink, w.errors)
            replayed.add_metric(sink, w.replayed)
            lag.add_metric(sink, w.lag_seconds())
        return families
