"""RowBatch: the process probe's events as plain tuples, a ColumnBatch to its consumers."""

from __future__ import annotations

from collections import Counter

from exporter.sinks import for_sink
from schema.column_batch import RowBatch, concat, expand
from schema.events import ProcessEvent
from store.db import columnar


def process_events() -> list[ProcessEvent]:
    kinds = ["fork", "exec", "exit", "fork", "exec", "exit", "exec_failed"]
    return [
        ProcessEvent(event_id=f"e{i}", kind=kind, pid=100 + i, process_key=f"h:{100 + i}:1",
                     argv=[f"/bin/x{i}", "-v"] if kind == "exec" else [], exit_code=i)
        for i, kind in enumerate(kinds)
    ]  # fmt: skip


def test_a_row_batch_is_its_events_to_every_consumer():
    events = process_events()
    batch = RowBatch(ProcessEvent, [tuple(e) for e in events])
    assert len(batch) == 7
    assert batch.events() == events and all(type(e) is ProcessEvent for e in batch.events())
    assert batch.columns == columnar(events)["process_events"]  # what the writer inserts
    assert batch.plain() == batch.columns
    assert batch[2:5].events() == events[2:5] and len(batch[2:5]) == 3
    assert concat([batch[:3], batch[3:5], batch[5:]]) == batch.columns  # the writer's batches
    assert batch.rows([0, 6]) == [events[0], events[6]]
    assert batch.kind_counts() == Counter(e.kind for e in events)
    # A sink that takes no columns gets the objects, in order, with what came before them.
    flag = object()
    assert expand([flag, batch]) == [flag, *events]

    class JsonLike:
        takes_columns = False

    class WriterLike:
        takes_columns = True

    assert for_sink(JsonLike(), [batch]) == events
    assert for_sink(WriterLike(), [batch]) == [batch]


def test_an_empty_row_batch_has_empty_columns():
    batch = RowBatch(ProcessEvent, [])
    assert len(batch) == 0 and batch.events() == [] and batch.kind_counts() == Counter()
    assert set(batch.columns) == set(columnar(process_events())["process_events"])
    assert all(column == [] for column in batch.columns.values())
