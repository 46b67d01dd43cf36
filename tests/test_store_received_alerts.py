"""Alertmanager webhook payloads become received_alerts rows; redelivery keeps the same id."""

import json

import pytest

from store.migrations import migrate
from store.received_alerts import from_webhook, parse_time_ns
from testservices.store_helpers import open_test_store

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


@pytest.mark.parametrize("backend", ["clickhouse", "chdb"])
def test_received_alerts_round_trip(backend, clickhouse_url, chdb_database):
    store = open_test_store(backend, clickhouse_url, chdb_database)
    migrate(store)
    rows = from_webhook(PAYLOAD, received_ns=42)
    store.insert_events(rows)
    got = store.query(
        "SELECT event_id, labels, annotations, starts_at_ns, received_ns FROM received_alerts "
        "WHERE fingerprint = {f:String}",
        {"f": "abc123"},
    )
    assert got == [
        (rows[0].event_id, rows[0].labels, rows[0].annotations, rows[0].starts_at_ns, 42)
    ]
    store.close()
