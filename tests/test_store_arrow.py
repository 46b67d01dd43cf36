"""Inserts into the embedded store travel as Arrow columns (store.arrow_batch): every value
arrives exactly, and a batch Arrow cannot carry goes as JSON, judged by the store as before."""

from __future__ import annotations

import dataclasses

import pytest

from schema.events import UNSET_ID, ConnectionEvent
from store.arrow_batch import arrow_stream
from store.db import columnar
from store.errors import is_data_error
from store.migrations import migrate
from testservices.store_helpers import make_events, open_test_store

U64_MAX = 2**64 - 1


def edge_events() -> list:
    """Events whose fields hold the ends of their types: the widest ints, negatives, empty and
    non-ASCII text, no arguments and many."""
    events = make_events(3)
    events[0] = dataclasses.replace(events[0], lifetime_ns=U64_MAX, exit_code=-(2**31), argv=[])
    events[1] = dataclasses.replace(
        events[1], comm="café ☕", argv=["", "x" * 127, "日本"], uid=UNSET_ID, signal=255
    )
    conn = ConnectionEvent(
        event_id="c-1", kind="close", time_ns=events[0].time_ns, host="host-a",
        bytes_sent=U64_MAX, local_addr="::1", remote_addr="127.0.0.1", local_port=65535,
    )  # fmt: skip
    return [*events, conn]


@pytest.fixture
def chdb_store(chdb_database):
    store = open_test_store("chdb", None, chdb_database)
    migrate(store)
    yield store
    store.close()


def test_every_event_type_fits_arrow_and_arrives_exactly(chdb_store):
    events = edge_events()
    tables = columnar(events)
    for table, cols in tables.items():
        assert arrow_stream(table, cols) is not None, table  # the Arrow way, not the fallback
        chdb_store.insert(table, cols)
    for table, cols in tables.items():
        names = list(cols)
        rows = chdb_store.query(f"SELECT {', '.join(names)} FROM {table} ORDER BY event_id")
        stored = {name: [row[i] for row in rows] for i, name in enumerate(names)}
        order = sorted(range(len(cols["event_id"])), key=lambda i: cols["event_id"][i])
        assert stored == {name: [values[i] for i in order] for name, values in cols.items()}


def test_a_batch_arrow_cannot_carry_is_judged_by_the_store_as_before(chdb_store):
    """A value of the wrong type: no Arrow stream; the JSON insert is refused as bad data (the
    writer then isolates the row), not taken for a store that is down."""
    events = make_events(3)
    events[1] = dataclasses.replace(events[1], pid="not a number")
    ((table, cols),) = columnar(events).items()
    assert arrow_stream(table, cols) is None
    with pytest.raises(Exception) as refused:
        chdb_store.insert(table, cols)
    assert is_data_error(refused.value)
    assert chdb_store.query(f"SELECT count() FROM {table}") == [(0,)]


def test_a_column_the_table_does_not_have_is_not_guessed_at():
    ((table, cols),) = columnar(make_events(1)).items()
    assert arrow_stream(table, {**cols, "no_such_column": [1]}) is None
    assert arrow_stream("no_such_table", cols) is None
