"""Where decoded events go. A sink takes batches; it never blocks the ring-buffer consumer.

Every sink implements ``write(events)`` (a list of events of any type from ``schema.events``,
called once per drained batch) and ``close()`` (flush what is buffered, release resources).
A sink that cannot take events counts them in ``PipelineStats.dropped`` with stage ``sink``.

A sink whose ``takes_columns`` is true (the store writer) may also find ``ColumnBatch`` items in a
batch (``schema.column_batch``: rows of one event class as columns, the TCP probe's hot path);
every other sink gets event objects only (``for_sink``).
"""

from __future__ import annotations

from typing import Protocol

from schema.column_batch import expand


class Sink(Protocol):
    def write(self, events: list) -> None: ...

    def close(self) -> None: ...


def for_sink(sink, items: list) -> list:
    """A delivered batch as this sink takes it: ColumnBatches only where it takes columns."""
    return items if getattr(sink, "takes_columns", False) else expand(items)


class FanoutSink:
    """Sends each batch to several sinks, in order."""

    takes_columns = True  # each sink gets the form it takes (rows made once, if at all)

    def __init__(self, sinks: list):
        self.sinks = sinks

    def write(self, events: list) -> None:
        for sink in self.sinks:
            sink.write(for_sink(sink, events))

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
