"""Where decoded events go. A sink takes batches; it never blocks the ring-buffer consumer.

Every sink implements ``write(events)`` (a list of events of any type from ``schema.events``,
called once per drained batch) and ``close()`` (flush what is buffered, release resources).
A sink that cannot take events counts them in ``PipelineStats.dropped`` with stage ``sink``.
"""

from __future__ import annotations

from typing import Protocol


class Sink(Protocol):
    def write(self, events: list) -> None: ...

    def close(self) -> None: ...


class FanoutSink:
    """Sends each batch to several sinks, in order."""

    def __init__(self, sinks: list):
        self.sinks = sinks

    def write(self, events: list) -> None:
        for sink in self.sinks:
            sink.write(events)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
