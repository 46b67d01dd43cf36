"""Alertmanager webhook payloads become received_alerts rows; redelivery keeps the same id;
rows are kept for the retention period from when they arrived."""

import json
import time
from datetime import UTC, datetime

import pytest

from store.migrations import LATEST, MIGRATIONS_TABLE, migrate, schema_version
from store.received_alerts import ReceivedAlert, from_webhook, parse_time_ns
from store.retention import drop_expired
from store.schema import create_table
from tests.store_helpers import open_test_store, wait_until

DAY_NS = 86400 * 10**9

PAYLOAD = {
    "version": "4",
    "status": "firing",
    "receiver": "groundtruth",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "GroundtruthOOMKill", "severity": "page", "host": "web-1",
                       "container": "api", "it's": "a \\ label"},
            "annotations": {"summary": "api was OOM-killed"},
            "startsAt": "2026-11-26T16:00:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph?g0.expr=x",
            "fingerprint": "abc123",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "GroundtruthDown", "instance": "db-2:9100"},
            "annotations": {},
            "startsAt": "2026-11-26T15:00:00+01:00",
            "endsAt": "2026-11-26T15:30:00.5Z",
            "fingerprint": "def456",
        },
    ],
}  # fmt: skip


def test_times_parse_to_nanoseconds():
    assert parse_time_ns("1970-01-01T00:00:01.000000001Z") == 1_000_000_001
    assert parse_time_ns("1970-01-01T01:00:00+01:00") == 0
    assert parse_time_ns("0001-01-01T00:00:00Z") == 0
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time_ns("yesterday")


def test_payload_fields_and_stable_ids():
    firing, resolved = from_webhook(PAYLOAD, received_ns=42)
    assert firing.event_id == f"abc123:firing:{firing.starts_at_ns}"
    assert firing.starts_at_ns % 10**9 == 123456789 and firing.time_ns == firing.starts_at_ns
    assert (firing.host, firing.container, firing.severity) == ("web-1", "api", "page")
    assert json.loads(firing.labels)["it's"] == "a \\ label"
    assert resolved.host == "db-2:9100" and resolved.time_ns == resolved.ends_at_ns
    assert resolved.ends_at_ns - resolved.starts_at_ns == 5400 * 10**9 + 5 * 10**8  # 14:00Z
    assert [a.event_id for a in from_webhook(PAYLOAD, received_ns=99)] == [
        firing.event_id,
        resolved.event_id,
    ]


def rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{ns % 10**9:09d}Z"
    )


def firing(fingerprint: str, starts_ns: int) -> dict:
    """PAYLOAD's firing alert, as Alertmanager would deliver it had it started at starts_ns."""
    alert = {**PAYLOAD["alerts"][0], "fingerprint": fingerprint, "startsAt": rfc3339(starts_ns)}
    return {**PAYLOAD, "alerts": [alert]}


@pytest.fixture(params=["clickhouse", "chdb"])
def store(request, clickhouse_url, chdb_database):
    s = open_test_store(request.param, clickhouse_url, chdb_database)
    yield s
    s.close()


def stored(store, fingerprint: str) -> list[tuple]:
    return store.query(
        "SELECT event_id, labels, annotations, starts_at_ns, received_ns FROM received_alerts "
        "WHERE fingerprint = {f:String}",
        {"f": fingerprint},
    )


def test_received_alerts_round_trip(store):
    migrate(store)
    now = time.time_ns()
    rows = from_webhook(firing("abc123", now - 300 * 10**9), received_ns=now)
    store.insert_events(rows)
    r = rows[0]
    assert stored(store, "abc123") == [(r.event_id, r.labels, r.annotations, r.starts_at_ns, now)]


def test_an_alert_firing_longer_than_the_retention_is_kept_from_its_arrival(store):
    """Started 30 days ago, delivered now: kept (a disk that has filled for a month is news)."""
    migrate(store, retention_days=7)
    now = time.time_ns()
    long_firing = from_webhook(firing("month-old", now - 30 * DAY_NS), received_ns=now)
    store.insert_events(long_firing)
    if store.features.ttl:
        store.execute("OPTIMIZE TABLE received_alerts FINAL")  # applies the TTL now
    drop_expired(store, retention_days=7, now_ns=now)
    assert [row[0] for row in stored(store, "month-old")] == [long_firing[0].event_id]


def test_an_alert_received_longer_ago_than_the_retention_expires(store):
    migrate(store, retention_days=30)  # a TTL (where there is one) that keeps it at insert
    now = time.time_ns()
    old = from_webhook(firing("old-news", now - 10 * DAY_NS), received_ns=now - 9 * DAY_NS)
    store.insert_events(old)
    assert len(stored(store, "old-news")) == 1
    dropped = drop_expired(store, retention_days=7, now_ns=now)
    assert any("received_alerts" in d for d in dropped)
    assert stored(store, "old-news") == []


def test_migration_rekeys_an_existing_table_by_arrival_keeping_every_row(store):
    """A store made by the first schema version: received_alerts expired by startsAt."""

    class ByStart(ReceivedAlert):
        RETAINED_BY = "time_ns"

    migrate(store)
    store.execute("DROP TABLE received_alerts")
    store.execute(create_table("received_alerts", ByStart, store.features, 7))
    store.execute(f"ALTER TABLE {MIGRATIONS_TABLE} DELETE WHERE version > 1")
    # A DELETE is a mutation the server applies in the background (18.16 cannot wait for it).
    wait_until(lambda: schema_version(store) == 1, what="the deletion of later versions")
    assert schema_version(store) == 1
    now = time.time_ns()
    rows = from_webhook(firing("before-upgrade", now - 3600 * 10**9), received_ns=now)
    store.insert_events(rows)

    done = migrate(store)
    assert any("migration 2" in d for d in done)
    assert schema_version(store) == LATEST
    r = rows[0]
    assert stored(store, "before-upgrade") == [
        (r.event_id, r.labels, r.annotations, r.starts_at_ns, now)
    ]
    ((expression,),) = store.query(
        "SELECT default_expression FROM system.columns WHERE database = currentDatabase() "
        "AND table = 'received_alerts' AND name = 'time'"
    )
    assert "received_ns" in expression
    assert migrate(store) == []
