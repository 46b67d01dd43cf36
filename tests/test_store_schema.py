"""Schema, migrations and retention on the real server (18.16) and on chDB."""

import time

import pytest

from schema.events import ProcessEvent, columns
from store.migrations import (
    LATEST,
    MIGRATIONS,
    SECURITY_CONTEXT_COLUMNS,
    WORKLOAD_TABLES,
    SchemaTooNew,
    _ensure_migrations_table,
    _record,
    migrate,
    schema_version,
)
from store.retention import drop_expired
from store.schema import TABLES, Features
from testservices.store_helpers import make_events, open_test_store, stored_ids

DAY_NS = 86400 * 10**9


@pytest.fixture(params=["clickhouse", "chdb"])
def store(request, clickhouse_url, chdb_database):
    s = open_test_store(request.param, clickhouse_url, chdb_database)
    yield s
    s.close()


def table_columns(store, table):
    return store.query(
        "SELECT name, type FROM system.columns "
        "WHERE database = currentDatabase() AND table = {t:String}",
        {"t": table},
    )


def test_migrate_creates_every_table_with_every_field(store):
    migrate(store)
    assert schema_version(store) == LATEST
    for table, cls in TABLES.items():
        names = [name for name, _ in table_columns(store, table)]
        assert names == [name for name, _, _ in columns(cls)] + ["time"]


def test_migrate_twice_is_a_no_op(store):
    first = migrate(store)
    before = {t: table_columns(store, t) for t in TABLES}
    assert first  # it did create the tables
    assert migrate(store) == []
    assert {t: table_columns(store, t) for t in TABLES} == before
    assert store.query("SELECT count() FROM schema_migrations") == [(LATEST,)]


def test_a_field_missing_from_the_table_is_added(store):
    migrate(store)
    store.execute("ALTER TABLE process_events DROP COLUMN filename")
    done = migrate(store)
    assert len(done) == 1 and "ADD COLUMN `filename` String" in done[0]
    assert ("filename", "String") in table_columns(store, "process_events")


def test_version_1_process_events_get_the_security_context(store):
    """A database written by version 1: the columns are added, its rows read as unknown."""
    migrate(store)
    for name in SECURITY_CONTEXT_COLUMNS:
        store.execute(f"ALTER TABLE process_events DROP COLUMN {name}")
    store.execute("DROP TABLE schema_migrations")
    _ensure_migrations_table(store.backend)
    _record(store.backend, MIGRATIONS[0])
    assert schema_version(store) == 1
    store.execute(
        "INSERT INTO process_events (event_id, kind, time_ns, host, pid) "
        "SELECT 'old-row', 'exec', {t:UInt64}, 'host-a', 77",
        {"t": time.time_ns()},
    )
    done = migrate(store)
    assert any("migration 4: process_events: security context" in line for line in done)
    assert schema_version(store) == LATEST == 5
    types = dict(table_columns(store, "process_events"))
    expected = {name: ch_type for name, ch_type, _ in columns(ProcessEvent)}
    for name in SECURITY_CONTEXT_COLUMNS:
        assert types[name].removeprefix("LowCardinality(").removesuffix(")") == expected[name]
    row = store.query(
        "SELECT pid, euid, auid, session_id, tty, stdin_type, exe_deleted, prev_uid "
        "FROM process_events WHERE event_id = 'old-row'"
    )
    assert row == [(77, 0, 4294967295, 4294967295, "", "", 0, 0)]
    assert migrate(store) == []


def test_version_4_tables_get_the_workload(store):
    """A database written by version 4: each table about a process gets ``workload``; its old
    rows read as not known ('')."""
    migrate(store)
    for table in WORKLOAD_TABLES:
        store.execute(f"ALTER TABLE {table} DROP COLUMN workload")
    store.execute("DROP TABLE schema_migrations")
    _ensure_migrations_table(store.backend)
    for m in MIGRATIONS[:4]:
        _record(store.backend, m)
    assert schema_version(store) == 4
    store.execute(
        "INSERT INTO tcp_listen_events (event_id, kind, time_ns, host, pid, local_port) "
        "SELECT 'old-listen', 'listen', {t:UInt64}, 'host-a', 78, 8080",
        {"t": time.time_ns()},
    )
    done = migrate(store)
    assert any("migration 5: process, connection, listen and flag events" in d for d in done)
    assert schema_version(store) == LATEST
    for table in WORKLOAD_TABLES:
        types = dict(table_columns(store, table))
        assert types["workload"].removeprefix("LowCardinality(").removesuffix(")") == "String"
    rows = store.query(
        "SELECT pid, local_port, workload FROM tcp_listen_events WHERE event_id = 'old-listen'"
    )
    assert rows == [(78, 8080, "")]
    assert migrate(store) == []


def test_refuses_a_newer_schema(store):
    migrate(store)
    store.execute(
        "INSERT INTO schema_migrations SELECT {v:UInt32}, 'from the future', now()",
        {"v": LATEST + 1},
    )
    with pytest.raises(SchemaTooNew, match=f"version {LATEST + 1}"):
        migrate(store)


def test_features_follow_the_server(store):
    migrate(store)
    f = store.features
    if store.backend.name == "clickhouse" and store.backend.version() < (19,):
        assert f == Features()  # Debian's 18.16: plain types, retention by partitions only
    else:
        assert f.low_cardinality and f.datetime64 and f.ttl and f.skip_index
    types = dict(table_columns(store, "process_events"))
    assert types["host"] == ("LowCardinality(String)" if f.low_cardinality else "String")
    assert types["time"].startswith("DateTime64(9" if f.datetime64 else "DateTime")


def test_retention_drops_whole_days_older_than_the_limit(store):
    migrate(store, retention_days=30)  # a TTL (where there is one) that keeps all of these
    now = time.time_ns()
    old = make_events(3, start_ns=now - 9 * DAY_NS)
    edge = make_events(2, start_ns=now - 6 * DAY_NS)
    new = make_events(4, start_ns=now)
    store.insert_events(old + edge + new)
    dropped = drop_expired(store, retention_days=7, now_ns=now)
    assert len(dropped) == 1 and "process_events" in dropped[0]
    assert sorted(stored_ids(store)) == sorted(e.event_id for e in edge + new)
    assert drop_expired(store, retention_days=7, now_ns=now) == []


def test_every_field_round_trips_exactly(store):
    migrate(store)
    events = make_events(50)
    store.insert_events(events)
    names = [name for name, _, _ in columns(ProcessEvent)]
    rows = store.query(f"SELECT {', '.join(names)} FROM process_events ORDER BY time_ns")
    assert [ProcessEvent(*row) for row in rows] == events


def test_ttl_drops_expired_rows_on_a_server_with_ttl(chdb_database):
    store = open_test_store("chdb", None, chdb_database)
    migrate(store, retention_days=7)
    assert store.features.ttl  # 18.16 has none: drop_expired does retention there
    now = time.time_ns()
    store.insert_events(make_events(3, start_ns=now - 9 * DAY_NS) + make_events(2, start_ns=now))
    store.execute("OPTIMIZE TABLE process_events FINAL")
    assert len(stored_ids(store)) == 2
    store.close()


def test_a_changed_retention_changes_the_ttl_once(chdb_database):
    store = open_test_store("chdb", None, chdb_database)
    migrate(store, retention_days=7)
    done = migrate(store, retention_days=30)
    assert len(done) == len(TABLES) and all("MODIFY TTL" in sql for sql in done)
    assert migrate(store, retention_days=30) == []
    store.close()
