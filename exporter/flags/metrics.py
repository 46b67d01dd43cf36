"""Prometheus: flags by rule, class and severity, and the detector's own health.

Labels are bounded: rule ids come from the rules file, class and severity from fixed lists.
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class FlagsCollector(Collector):
    def __init__(self, detector):
        self.detector = detector

    def describe(self):
        """The families collect() yields, without their samples (the detector is cheap to read
        at registration, and the names are then checked against the other collectors')."""
        for family in self.collect():
            family.samples = []
            yield family

    def collect(self):
        d = self.detector
        raised = CounterMetricFamily(
            "groundtruth_flags",
            "Flags raised, by rule, class and severity (repeats not stored again included).",
            labels=["rule", "class", "severity"],
        )
        raised_total = d.raised_total()
        for r in d.rules.values():  # every rule from 0, at its default severity
            raised_total.setdefault((r.id, r.flag_class, r.severity), 0)
        for (rule, cls, severity), n in sorted(raised_total.items()):
            raised.add_metric([rule, cls, severity], n)
        yield raised
        not_stored = CounterMetricFamily(
            "groundtruth_flags_not_stored",
            "Flags counted but not stored: a repeat within the repeat window, or over the "
            "rule's budget of stored flags per window.",
            labels=["rule", "reason"],
        )
        excepted = CounterMetricFamily(
            "groundtruth_flags_excepted",
            "Rule matches silenced by an exception of the rules file.",
            labels=["rule"],
        )
        not_stored_total = d.not_stored_total()
        for rule in sorted(d.rules):
            for reason in ("repeat", "budget"):
                not_stored.add_metric([rule, reason], not_stored_total.get((rule, reason), 0))
            excepted.add_metric([rule], d.excepted.get(rule, 0))
        yield not_stored
        yield excepted
        yield GaugeMetricFamily(
            "groundtruth_exporter_flag_ancestry_processes",
            "Processes whose ancestry the flag detector holds.",
            value=len(d.ancestry),
        )
        yield CounterMetricFamily(
            "groundtruth_exporter_flag_ancestry_evictions",
            "Processes the flag detector forgot early because its bound was reached.",
            value=d.ancestry.evictions,
        )
        yield CounterMetricFamily(
            "groundtruth_exporter_flag_detector_cpu_seconds",
            "CPU time the flag detector spent on the event stream.",
            value=d.cpu_ns / 1e9,
        )
