"""Prometheus: flags by rule, class and severity, and the detector's own health.

Labels are bounded: rule ids come from the rules file, class and severity from fixed lists.
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class FlagsCollector:
    def __init__(self, detector):
        self.detector = detector

    def collect(self):
        d = self.detector
        raised = CounterMetricFamily(
            "groundtruth_flags",
            "Flags raised, by rule, class and severity (repeats not stored again included).",
            labels=["rule", "class", "severity"],
        )
        for (rule, cls, severity), n in sorted(dict(d.raised).items()):
            raised.add_metric([rule, cls, severity], n)
        yield raised
        for name, counts, help_ in (
            ("groundtruth_flags_repeated", d.repeated,
             "Flags counted but not stored again: a repeat within the repeat window."),
            ("groundtruth_flags_excepted", d.excepted,
             "Rule matches silenced by an exception of the rules file."),
        ):  # fmt: skip
            family = CounterMetricFamily(name, help_, labels=["rule"])
            for rule in sorted(d.rules):
                family.add_metric([rule], counts.get(rule, 0))
            yield family
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
