"""Inserts into the embedded store travel as Arrow columns (store.arrow_batch): every value
arrives exactly, and a batch Arrow cannot carry goes as JSON, judged by the store as before."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from schema.column_batch import Coded, ColumnBatch, concat
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


def test_coded_text_arrives_exactly_though_its_values_repeat(chdb_store):
    """Coded columns go as Arrow dictionaries, which ClickHouse refuses with a repeated value;
    a Coded column's values repeat within a batch (two owners, one comm) and across batches
    joined into one insert. Each row reads back as its own text, in a LowCardinality column
    (comm) and in a String one (local_addr)."""
    now = time.time_ns()  # (the store's TTL drops old rows on insert)
    conns = [
        ConnectionEvent(event_id=f"c-{i}", kind="close", time_ns=now, host="host-a", pid=i)
        for i in range(6)
    ]
    cols = columnar(conns)["tcp_connection_events"]
    comms = ["nginx", "curl", "nginx", "café ☕"]  # "nginx" twice: two processes, one name
    addrs = ["10.0.0.1", "::1", "10.0.0.1"]
    first = ColumnBatch(
        ConnectionEvent,
        {
            **{n: v[:3] for n, v in cols.items()},
            "comm": Coded(np.array([0, 2, 3]), comms),
            "local_addr": Coded(np.array([2, 1, 0]), addrs),
        },
    )
    second = ColumnBatch(ConnectionEvent, {
        **{n: v[3:] for n, v in cols.items()},
        "comm": Coded(np.array([1, 0, 2]), comms),
        "local_addr": Coded(np.array([0, 0, 1]), addrs),
    })  # fmt: skip
    joined = concat([first, second])
    assert arrow_stream("tcp_connection_events", joined) is not None
    chdb_store.insert("tcp_connection_events", joined)
    rows = chdb_store.query("SELECT pid, comm, local_addr FROM tcp_connection_events ORDER BY pid")
    assert rows == [
        (0, "nginx", "10.0.0.1"),
        (1, "nginx", "::1"),
        (2, "café ☕", "10.0.0.1"),
        (3, "curl", "10.0.0.1"),
        (4, "nginx", "10.0.0.1"),
        (5, "nginx", "::1"),
    ]


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
