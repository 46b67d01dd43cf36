"""A collector whose read fails cannot hide it: the failure counts in
groundtruth_collector_errors_total{collector}, the first of each streak is logged with its
error, and the recovery is logged too."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors.errors import CollectorErrorsCollector
from exporter.collectors.process_counts import ProcessCountsCollector


class MapReads:
    """The probe's BPF tables as the collector reads them; while ``refused``, reading fails as
    a map read refused by the kernel does."""

    def __init__(self):
        self.refused = True

    def __getitem__(self, name: bytes):
        if self.refused:
            raise OSError(1, f"reading map {name.decode()} refused")
        return {}


class Probe:
    """What ProcessCountsCollector takes from the process probe: its tables (and containers,
    which an empty table never asks for)."""

    def __init__(self):
        self.bpf = MapReads()
        self.containers = None


def scrape(registry) -> str:
    return generate_latest(registry).decode()


def errors_counted(text: str) -> float:
    """groundtruth_collector_errors_total of process_counts in a scrape (reading the registry
    again would be one more read)."""
    (sample,) = [
        s
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "groundtruth_collector_errors_total"
        and s.labels == {"collector": "process_counts"}
    ]
    return sample.value


def test_failed_reads_are_counted_exported_and_logged_once_per_streak(caplog):
    probe = Probe()
    collector = ProcessCountsCollector(probe)
    registry = CollectorRegistry()
    registry.register(collector)
    registry.register(CollectorErrorsCollector([collector.errors]))
    caplog.set_level(logging.INFO, logger="groundtruth.exporter")

    for n in (1, 2, 3):
        text = scrape(registry)
        assert "groundtruth_process_execs" not in text
        assert errors_counted(text) == n
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1 and "process_counts" in logged[0]
    assert "reading map counts refused" in logged[0]

    probe.bpf.refused = False
    assert "# TYPE groundtruth_process_execs_total counter" in scrape(registry)
    assert caplog.records[-1].getMessage() == (
        "collector process_counts: recovered after 3 failed reads"
    )

    probe.bpf.refused = True
    assert errors_counted(scrape(registry)) == 4
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_the_exporter_exports_every_collectors_errors(running_exporter):
    samples = running_exporter.scrape()
    collectors = {
        dict(labels)["collector"]: value
        for (name, labels), value in samples.items()
        if name == "groundtruth_collector_errors_total"
    }
    assert collectors == {
        "process_counts": 0,
        "tcp_counts": 0,
        "container_resources": 0,
        "host_resources": 0,
    }
