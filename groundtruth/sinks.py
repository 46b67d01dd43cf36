"""Sink specs from the config to sink objects, with the collectors that report on them.

Wiring, so it lives in the composition root: the exporter only knows the ``Sink`` protocol,
and the store's writer is plugged in here (``exporter`` never imports ``store``).
"""

from __future__ import annotations

from exporter.config import ConfigError
from exporter.sinks import FanoutSink
from exporter.sinks.jsonlines import JsonLinesSink


def make_sink(specs: list[str], stats) -> tuple[FanoutSink, list]:
    """(one sink for all specs, the Prometheus collectors of the store writers among them).

    A spec that cannot be used is a ConfigError in one line, without the URL's password; the
    sinks opened before it are closed again."""
    sinks, collectors = [], []
    try:
        for spec in specs:
            sink, collector = _open(spec, stats)
            sinks.append(sink)
            collectors += [collector] if collector is not None else []
    except ConfigError:
        for sink in sinks:
            sink.close()
        raise
    return FanoutSink(sinks), collectors


def _open(spec: str, stats) -> tuple:
    from store.db import StoreConfigError, redact
    from store.metrics import SinkCollector
    from store.sink import open_sink

    if spec.startswith("jsonl:"):
        path = spec[len("jsonl:") :]
        try:
            return JsonLinesSink(path), None
        except OSError as e:
            raise ConfigError(f"sink {spec!r}: cannot write to {path!r}: {e.strerror}") from None
    try:
        writer = open_sink(spec, stats)
    except (StoreConfigError, ValueError, OSError) as e:
        raise ConfigError(f"sink {redact(spec)!r}: {e}") from None
    return writer, SinkCollector(writer)
