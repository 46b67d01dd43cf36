"""The exporter's own state: build, process table, start-up scan, probe self-tests."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from exporter import __version__


class ExporterHealthCollector(Collector):
    def __init__(self, exporter):
        self.exporter = exporter

    @staticmethod
    def _families() -> tuple[
        InfoMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily
    ]:
        return (
            InfoMetricFamily(
                "groundtruth_exporter_build", "groundtruth exporter version.", labels=[]
            ),
            GaugeMetricFamily(
                "groundtruth_exporter_process_table_size", "Live processes the exporter tracks."
            ),
            GaugeMetricFamily(
                "groundtruth_exporter_scan_duration_seconds",
                "How long the start-up /proc scan took.",
            ),
            GaugeMetricFamily(
                "groundtruth_probe_selftest_ok",
                "1 when the probe decoded its start-up canary exactly, else 0.",
                labels=["probe"],
            ),
        )

    def describe(self):
        return self._families()

    def collect(self):
        build, table_size, scan_duration, selftest = self._families()
        build.add_metric([], {"version": __version__})
        table_size.add_metric([], len(self.exporter.table))
        scan_duration.add_metric([], self.exporter.scan_duration_seconds)
        for probe, ok in sorted(self.exporter.selftest_results.items()):
            selftest.add_metric([probe], 1 if ok else 0)
        return [build, table_size, scan_duration, selftest]
