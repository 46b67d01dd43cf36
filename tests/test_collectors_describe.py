"""Every collector is a prometheus_client ``Collector`` that describes its metrics, so two that
clash fail when they are registered (at start-up), not when Prometheus scrapes."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from exporter.collectors.host import HostResourcesCollector
from schema.pipeline_stats import PipelineCollector, PipelineStats
from store.metrics import SinkCollector


def names(families) -> list[str]:
    return [f.name for f in families]


def test_every_exporter_collector_describes_exactly_what_it_collects(running_exporter):
    collectors = running_exporter.exporter.collectors
    assert len(collectors) >= 6
    for collector in collectors:
        assert Collector in type(collector).__mro__, collector
        described = names(collector.describe())
        assert described, f"{type(collector).__name__} describes nothing"
        assert names(collector.collect()) == described, type(collector).__name__


@pytest.mark.parametrize(
    "make",
    [
        lambda: PipelineCollector(PipelineStats()),
        lambda: HostResourcesCollector(),
        lambda: SinkCollector([]),
    ],
    ids=["pipeline", "host", "sink"],
)
def test_registering_a_clashing_collector_fails_at_once(make):
    registry = CollectorRegistry()
    registry.register(make())
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(make())
