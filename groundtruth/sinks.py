"""Sink specs from the config to sink objects, with the collectors that report on them.

Wiring, so it lives in the composition root: the exporter only knows the ``Sink`` protocol,
and the store's writer is plugged in here (``exporter`` never imports ``store``).
"""

from __future__ import annotations

from exporter.config import ConfigError
from exporter.sinks import FanoutSink, Sink
from exporter.sinks.jsonlines import JsonLinesSink


def make_sink(specs: list[str], stats) -> tuple[FanoutSink, list]:
    """(one sink for all specs, the store writers among them: see ``sink_collectors``)."""
    from store.db import StoreConfigError
    from store.sink import open_sink

    sinks: list[Sink] = []
    writers: list = []
    for spec in specs:
        if spec.startswith("jsonl:"):
            sinks.append(JsonLinesSink(spec[len("jsonl:") :]))
            continue
        try:
            writer = open_sink(spec, stats)
        except (StoreConfigError, ValueError) as e:
            raise ConfigError(f"sink {spec!r}: {e}") from e
        sinks.append(writer)
        writers.append(writer)
    return FanoutSink(sinks), writers


def sink_collectors(writers: list) -> list:
    """The Prometheus collectors of the process's store writers: one for all of them, each
    writer's series labelled by its sink (one collector per writer would print each name
    twice, which Prometheus rejects)."""
    from store.metrics import SinkCollector

    return [SinkCollector(writers)] if writers else []
