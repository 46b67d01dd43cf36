"""Sink specs from the config ("jsonl:-", "jsonl:PATH", ...) to sink objects."""

from __future__ import annotations

from exporter.config import ConfigError
from exporter.sinks import FanoutSink
from exporter.sinks.jsonlines import JsonLinesSink


def make_sink(specs: list[str], stats):
    sinks = []
    for spec in specs:
        if spec.startswith("jsonl:"):
            sinks.append(JsonLinesSink(spec[len("jsonl:") :]))
        else:
            raise ConfigError(f"sink {spec!r} is not available in this build")
    return FanoutSink(sinks)
