"""Failed reads of the collectors: counted, exported, and logged once per failure streak.

A scrape never raises: a collector whose read fails yields fewer samples. Without this, every
TCP or process metric could vanish with no log line and no metric; now each failure counts in
``groundtruth_collector_errors_total{collector}``, the first of a streak is logged with its
error, and the recovery is logged too, so a log that fails every scrape does not flood.
"""

from __future__ import annotations

import logging

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("groundtruth.exporter")


class CollectorErrors:
    """One collector's failed reads."""

    def __init__(self, collector: str):
        self.collector = collector
        self.total = 0
        self.streak = 0  # failures since the last good read

    def failed(self, error: Exception) -> None:
        self.total += 1
        self.streak += 1
        if self.streak == 1:
            log.warning(
                "collector %s: reading failed (%s: %s); its metrics are missing until it "
                "recovers, failures count in groundtruth_collector_errors_total",
                self.collector, type(error).__name__, error,
            )  # fmt: skip

    def succeeded(self) -> None:
        if self.streak:
            log.info("collector %s: recovered after %d failed reads", self.collector, self.streak)
        self.streak = 0


class CollectorErrorsCollector(Collector):
    """Exports every collector's failed reads, one series per collector (0 included)."""

    def __init__(self, errors: list[CollectorErrors]):
        self.errors = list(errors)

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily(
            "groundtruth_collector_errors",
            "Failed reads of a collector (its metrics were missing from that scrape).",
            labels=["collector"],
        )

    def describe(self):
        return [self._family()]

    def collect(self):
        family = self._family()
        for e in self.errors:
            family.add_metric([e.collector], e.total)
        return [family]
