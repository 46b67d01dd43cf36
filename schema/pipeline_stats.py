"""The exporter's own accounting: events seen and dropped, by stage. Nothing is lost silently.

Probes, the user-space queue and the sinks all report here; ``PipelineCollector`` exports it as
``groundtruth_events_total{type}`` and ``groundtruth_events_dropped_total{stage,reason}``.
Stages: ``kernel`` (ring buffer full; read from BPF maps by the probe's collector), ``decode``
(a record that is not the probe's event struct), ``queue`` (user-space queue full), ``sink``
(store unreachable and spool full, or rejected rows).
"""

from __future__ import annotations

import threading
from collections import Counter

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class PipelineStats:
    def __init__(self):
        self._lock = threading.Lock()
        self.events = Counter()  # type -> count
        self.dropped = Counter()  # (stage, reason) -> count
        self.declared: set[tuple[str, str]] = set()  # (stage, reason) exported even at zero

    def count_events(self, event_type: str, n: int = 1) -> None:
        with self._lock:
            self.events[event_type] += n

    def count_dropped(self, stage: str, reason: str, n: int = 1) -> None:
        with self._lock:
            self.dropped[(stage, reason)] += n

    def declare_dropped(self, stage: str, reasons) -> None:
        """Export these reasons from the start, at zero until something is dropped."""
        with self._lock:
            self.declared |= {(stage, reason) for reason in reasons}

    def declared_drops(self) -> set:
        with self._lock:
            return set(self.declared)

    def snapshot(self) -> tuple[dict, dict]:
        with self._lock:
            return dict(self.events), dict(self.dropped)


class PipelineCollector(Collector):
    """Exports PipelineStats at scrape time."""

    def __init__(self, stats: PipelineStats, kernel_drop_sources=()):
        self.stats = stats
        # Callables returning {(stage, reason): count} kept in BPF maps, one per probe.
        self.kernel_drop_sources = list(kernel_drop_sources)

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, CounterMetricFamily]:
        ev = CounterMetricFamily(
            "groundtruth_events",
            "Events delivered by the probes, by type and kind (e.g. process_exec).",
            labels=["type"],
        )
        dr = CounterMetricFamily(
            "groundtruth_events_dropped",
            "Events lost, by pipeline stage and reason.",
            labels=["stage", "reason"],
        )
        return ev, dr

    def describe(self):
        return self._families()

    def collect(self):
        events, dropped = self.stats.snapshot()
        for key in self.stats.declared_drops():
            dropped.setdefault(key, 0)
        for source in self.kernel_drop_sources:
            for key, n in source().items():
                dropped[key] = dropped.get(key, 0) + n
        ev, dr = self._families()
        for event_type, n in sorted(events.items()):
            ev.add_metric([event_type], n)
        for (stage, reason), n in sorted(dropped.items()):
            dr.add_metric([stage, reason], n)
        yield ev
        yield dr
