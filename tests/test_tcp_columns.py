"""The TCP probe's columnar hot path decodes every record as the object decoder does.

``decode_columns`` (numpy, per batch) and ``TcpProbe.decode_batch`` (one object per record) are
held equal field by field on records this test packs, covering every branch of a field: both
kinds the columns carry, the kinds they leave to the object decoder, owners and addresses that
repeat and that differ, IPv6, records of the wrong size, fields a self-test distrusts.
"""

from __future__ import annotations

import dataclasses
import socket

import numpy as np

from exporter.containers import Container
from exporter.detector_rows import detector_rows
from exporter.flags.detector import load_detector
from exporter.probes.base import ProbeContext
from exporter.probes.tcp import (
    AF_INET,
    AF_INET6,
    EV_CLOSE,
    EV_CONNECT_FAILED,
    EV_LISTEN,
    EVENT,
    F_CLOSED_LOCAL,
    F_CLOSED_REMOTE,
    F_INBOUND,
    F_RESET_RECEIVED,
    F_UNTRACKED,
    TICK_NS,
    TcpProbe,
)
from exporter.probes.tcp_columns import decode_columns
from exporter.tcp_selftest import UNTRUSTED_FIELDS
from schema.column_batch import ColumnBatch
from schema.events import ConnectionEvent, ListenEvent


class KnownCgroups:
    """A resolver that knows one cgroup: 77 is a container."""

    def by_cgroup_id(self, cgroup_id):
        return Container("c" * 64, "docker", "", "image:nginx") if cgroup_id == 77 else None


def address(family: int, text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if family == AF_INET6 else socket.AF_INET, text).ljust(
        16, b"\0"
    )


def record(kind, flags=0, err=0, *, pid=4242, cgroup=77, comm=b"curl", family=AF_INET,
           local="127.0.0.1", remote="127.0.0.1", sport=50_000, dport=443, conn_id=0x2A,
           open_ns=1_000, established_ns=1_500, ts=2_000, n=0) -> bytes:  # fmt: skip
    return EVENT.pack(
        ts + n, conn_id + n, open_ns, established_ns, 11 + n, 22 + n, (3 + pid) * TICK_NS,
        cgroup, pid, 0, comm, address(family, local), address(family, remote), sport + n,
        dport, family, 0, kind, flags, 5 + n, err,
    )  # fmt: skip


RECORDS = [
    record(EV_CLOSE, F_CLOSED_LOCAL | F_RESET_RECEIVED, 104),
    record(EV_CLOSE, F_INBOUND | F_CLOSED_REMOTE, n=1, pid=7, cgroup=1, comm=b"nginx\0junk"),
    record(EV_CONNECT_FAILED, 0, 111, n=2, established_ns=0),
    record(EV_CONNECT_FAILED, 0, 110, n=3, open_ns=0, established_ns=0),
    record(EV_CLOSE, F_CLOSED_LOCAL, n=4, family=AF_INET6, local="::1", remote="2001:db8::7"),
    record(EV_CLOSE, F_CLOSED_LOCAL, n=5, established_ns=0, conn_id=0),
    record(EV_LISTEN, 0, n=6),
    record(99, 0, n=7),  # a kind a newer probe sends: left to the object decoder
    record(EV_CLOSE, F_CLOSED_LOCAL | F_UNTRACKED, n=8),  # older than the probe: the scan's
    record(EV_CLOSE, F_CLOSED_REMOTE, n=9),
]


def probe(**kwargs) -> TcpProbe:
    p = TcpProbe(ProbeContext(host="h"), containers=KnownCgroups(), **kwargs)
    p.ctx.clock.offset_ns = 10
    return p


def without_ids(events) -> list:
    """Events without their event ids (an unmatched older socket's connection id holds one)."""
    return sorted(
        (
            dataclasses.replace(
                e,
                event_id="",
                **(
                    {"connection_id": "untracked"}
                    if getattr(e, "connection_id", "").startswith("untracked")
                    else {}
                ),
            )
            for e in events
        ),
        key=repr,
    )


def test_columns_hold_every_field_the_object_decoder_gives():
    p = probe()
    events, batch = decode_columns(p, RECORDS)
    assert isinstance(batch, ColumnBatch) and batch.cls is ConnectionEvent
    assert len(batch) == 7  # the closes and failed connects, less the scanned socket's close
    assert {e.kind for e in events} == {"listen", "99", "close"}
    assert without_ids(events + batch.events()) == without_ids(p.decode_batch(RECORDS))
    ids = [e.event_id for e in events + batch.events()]
    assert len(set(ids)) == len(RECORDS)  # distinct, as the object decoder's
    assert batch.kind_counts() == {"close": 5, "connect_failed": 2}
    # The rows as the store takes them: the same values as the objects' columns.
    plain = batch.plain()
    assert plain["comm"][:2] == ["curl", "nginx"] and plain["remote_addr"][4] == "2001:db8::7"
    assert plain["time_ns"] == [2_010 + n for n in (0, 1, 2, 3, 4, 5, 9)]


def test_wrong_sized_records_are_counted_and_the_rest_decoded():
    p = probe()
    good = RECORDS[0]
    events, batch = decode_columns(p, [good[:-4], good, good + bytes(8)])
    assert events == [] and len(batch) == 1
    assert p.ctx.stats.snapshot()[1] == {("decode", "tcp_record_size"): 2}
    assert decode_columns(p, [good[:-1]]) == ([], None)
    assert p.ctx.stats.snapshot()[1] == {("decode", "tcp_record_size"): 3}


def test_a_drain_of_listens_only_has_no_columns():
    events, batch = decode_columns(probe(), [record(EV_LISTEN)])
    assert batch is None and [type(e) for e in events] == [ListenEvent]


def test_fields_a_failed_selftest_distrusts_are_blanked_in_the_columns_too():
    p = probe()
    p.untrusted = UNTRUSTED_FIELDS["bytes"] | UNTRUSTED_FIELDS["pid"]
    _, batch = decode_columns(p, RECORDS[:2])
    for ev in batch.events():
        assert (ev.bytes_sent, ev.bytes_received, ev.pid, ev.process_key, ev.comm) == (
            0, 0, 0, "", "",
        )  # fmt: skip
        assert ev.remote_port == 443  # the rest is kept
    assert without_ids(batch.events()) == without_ids(p.decode_batch(RECORDS[:2]))


def test_the_detector_gets_the_rows_it_reads():
    """Failed connects; inbound connections from an address off this host; none of the rest."""
    detector = load_detector(None)
    records = [
        record(EV_CLOSE, F_CLOSED_LOCAL),  # outbound: not read
        record(EV_CLOSE, F_INBOUND, n=1),  # inbound from loopback (local_only): not read
        record(EV_CLOSE, F_INBOUND, n=2, remote="10.1.2.3"),  # makes its process a server
        record(EV_CONNECT_FAILED, 0, 111, n=3),
    ]
    _, batch = decode_columns(probe(), records)
    rows = detector_rows(detector, batch)
    assert sorted((e.kind, e.remote_addr) for e in rows) == [
        ("close", "10.1.2.3"),
        ("connect_failed", "127.0.0.1"),
    ]
    by_id = {e.event_id: e for e in batch.events()}
    assert all(by_id[e.event_id] == e for e in rows)


def test_a_batch_slices_and_expands_in_order():
    _, batch = decode_columns(probe(), RECORDS)
    ports = [e.local_port for e in batch.events()]
    assert [e.local_port for e in batch[2:5].events()] == ports[2:5]
    assert [e.local_port for e in batch.rows(np.array([6, 0]))] == [ports[6], ports[0]]
