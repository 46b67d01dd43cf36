"""Sink specs from the config to sink objects, with the collectors that report on them.

Wiring, so it lives in the composition root: the exporter only knows the ``Sink`` protocol,
and the store's writer is plugged in here (``exporter`` never imports ``store``).
"""

from __future__ import annotations

from exporter.config import ConfigError
from exporter.sinks import FanoutSink, Sink
from exporter.sinks.jsonlines import JsonLinesSink


def make_sink(specs: list[str], stats) -> tuple[FanoutSink, list]:
    """(one sink for all specs, the store writers among them: see ``sink_collectors``).

    A spec that cannot be used is a ConfigError in one line, without the URL's password; the
    sinks opened before it are closed again."""
    sinks: list[Sink] = []
    try:
        for spec in specs:
            sinks.append(_open(spec, stats))
    except ConfigError:
        for sink in sinks:
            sink.close()
        raise
    writers = [sink for sink in sinks if not isinstance(sink, JsonLinesSink)]
    return FanoutSink(sinks), writers


def _open(spec: str, stats) -> Sink:
    from store.db import StoreConfigError, redact
    from store.sink import open_sink

    if spec.startswith("jsonl:"):
        path = spec[len("jsonl:") :]
        try:
            return JsonLinesSink(path)
        except OSError as e:
            raise ConfigError(f"sink {spec!r}: cannot write to {path!r}: {e.strerror}") from None
    try:
        return open_sink(spec, stats)
    except (StoreConfigError, ValueError, OSError) as e:
        raise ConfigError(f"sink {redact(spec)!r}: {e}") from None


def sink_collectors(writers: list) -> list:
    """The Prometheus collectors of the process's store writers: one for all of them, each
    writer's series labelled by its sink (one collector per writer would print each name
    twice, which Prometheus rejects)."""
    from store.metrics import SinkCollector

    return [SinkCollector(writers)] if writers else []
