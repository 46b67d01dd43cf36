"""The exporter's own state: build, process table, start-up scan, probe self-tests."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

from exporter import __version__


class ExporterHealthCollector:
    def __init__(self, exporter):
        self.exporter = exporter

    def collect(self):
        yield InfoMetricFamily(
            "groundtruth_exporter_build", "groundtruth exporter version.", {"version": __version__}
        )
        yield GaugeMetricFamily(
            "groundtruth_exporter_process_table_size",
            "Live processes the exporter tracks.",
            len(self.exporter.table),
        )
        yield GaugeMetricFamily(
            "groundtruth_exporter_scan_duration_seconds",
            "How long the start-up /proc scan took.",
            self.exporter.scan_duration_seconds,
        )
        selftest = GaugeMetricFamily(
            "groundtruth_probe_selftest_ok",
            "1 when the probe decoded its start-up canary exactly, else 0.",
            labels=["probe"],
        )
        for probe, ok in sorted(self.exporter.selftest_results.items()):
            selftest.add_metric([probe], 1 if ok else 0)
        yield selftest
