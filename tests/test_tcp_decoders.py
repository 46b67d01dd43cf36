"""The TCP probe's small decoders, table-driven: addresses, outcomes, who closed, label values."""

from __future__ import annotations

import dataclasses

import pytest

from exporter.collectors.tcp_counts import remote_label
from exporter.containers import Container
from exporter.labels import BoundedLabels
from exporter.probes.base import ProbeContext
from exporter.probes.conn_table import slots_for
from exporter.probes.tcp import (
    AF_INET,
    EV_CLOSE,
    EV_LISTEN,
    EVENT,
    F_CLOSED_LOCAL,
    F_CLOSED_REMOTE,
    F_RESET_RECEIVED,
    F_RESET_SENT,
    TICK_NS,
    TcpProbe,
    close_outcome,
    closed_by,
    ip_address,
)
from exporter.tcp_scan import parse_address, parse_table
from exporter.tcp_selftest import UNTRUSTED_FIELDS


@pytest.mark.parametrize(
    "text,expected",
    [
        ("0100007F:1F90", ("127.0.0.1", 8080)),
        ("00000000:0016", ("0.0.0.0", 22)),
        ("00000000000000000000000001000000:01BB", ("::1", 443)),
        ("0000000000000000FFFF00000100007F:0050", ("::ffff:127.0.0.1", 80)),
        ("B80D0120000000000000000001000000:0035", ("2001:db8::1", 53)),
    ],
)
def test_proc_net_addresses(text, expected):
    assert parse_address(text) == expected


def test_proc_net_table_rows():
    text = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
        "timeout inode\n"
        "   0: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0 "
        "       0 4242 1 0000000000000000 20 4 30 10 -1\n"
    )
    (row,) = parse_table(text, "ipv4")
    assert (row.state, row.local_port, row.remote_port, row.inode) == (1, 8080, 50000, 4242)


@pytest.mark.parametrize(
    "family,raw,expected",
    [
        (2, bytes([10, 1, 2, 3]) + bytes(12), "10.1.2.3"),
        (10, bytes(15) + b"\x01", "::1"),
    ],
)
def test_tracepoint_addresses(family, raw, expected):
    assert ip_address(family, raw) == expected


@pytest.mark.parametrize(
    "flags,err,outcome,by",
    [
        (F_CLOSED_LOCAL, 0, "ok", "local"),
        (F_CLOSED_REMOTE, 0, "ok", "remote"),
        (F_RESET_RECEIVED, 104, "reset", "remote"),
        (F_RESET_SENT, 0, "reset", "local"),
        (F_CLOSED_REMOTE | F_RESET_SENT, 0, "reset", "remote"),
        (0, 110, "timeout", ""),
        (0, 113, "error", ""),
    ],
)
def test_close_outcome_and_closer(flags, err, outcome, by):
    assert (close_outcome(flags, err), closed_by(flags)) == (outcome, by)


@pytest.mark.parametrize(
    "inbound,port,expected",
    [(1, 8080, "8080"), (0, 443, "443"), (0, 0, "ephemeral"), (1, 9999, "other")],
)
def test_remote_label_is_bounded(inbound, port, expected):
    bounded = BoundedLabels(2)
    bounded("8080"), bounded("443")  # the cap is reached: new ports become `other`
    assert remote_label(bounded, inbound, port) == expected


def packed_event(kind: int, flags: int, err: int = 0) -> bytes:
    loopback = bytes([127, 0, 0, 1]) + bytes(12)
    return EVENT.pack(
        2_000, 0x2A, 1_000, 1_500, 11, 22, 3 * TICK_NS, 77, 4242, 0, b"curl",
        loopback, loopback, 50_000, 443, AF_INET, 0, kind, flags, 5, err,
    )  # fmt: skip


def test_decode_puts_every_value_in_its_field():
    probe = TcpProbe(ProbeContext(host="h"), containers=KnownCgroups())
    probe.ctx.clock.offset_ns = 10
    ev = probe.decode(packed_event(EV_CLOSE, F_CLOSED_LOCAL | F_RESET_RECEIVED, 104))
    assert dataclasses.asdict(ev) == dict(
        event_id=ev.event_id, kind="close", time_ns=2_010, host="h",
        connection_id=f"{probe._run_id}-2a", pid=4242, process_key="h:4242:3", comm="curl",
        cgroup_id=77, container_id="c" * 64, pod_uid="", direction="outbound", family="ipv4",
        local_addr="127.0.0.1", local_port=50_000, remote_addr="127.0.0.1", remote_port=443,
        outcome="reset", error="ECONNRESET", open_time_ns=1_010, establish_ns=500,
        duration_ns=500, bytes_sent=11, bytes_received=22, retransmits=5, resets=1,
        closed_by="local", source="ebpf", workload="image:nginx",
    )  # fmt: skip
    listen = probe.decode(packed_event(EV_LISTEN, 0))
    assert dataclasses.asdict(listen) == dict(
        event_id=listen.event_id, kind="listen", time_ns=2_010, host="h", pid=4242,
        process_key="h:4242:3", comm="curl", cgroup_id=77, container_id="c" * 64, pod_uid="",
        family="ipv4", local_addr="127.0.0.1", local_port=50_000, source="ebpf",
        workload="image:nginx",
    )  # fmt: skip


class KnownCgroups:
    """A resolver that knows one cgroup: 77 is a container."""

    def by_cgroup_id(self, cgroup_id):
        return Container("c" * 64, "docker", "", "image:nginx") if cgroup_id == 77 else None


def test_fields_a_failed_selftest_distrusts_are_blanked():
    probe = TcpProbe(ProbeContext(host="h"), containers=KnownCgroups())
    probe.untrusted = UNTRUSTED_FIELDS["bytes"] | UNTRUSTED_FIELDS["pid"]
    ev = probe.decode(packed_event(EV_CLOSE, F_CLOSED_LOCAL))
    assert (ev.bytes_sent, ev.bytes_received, ev.pid, ev.process_key, ev.comm) == (0, 0, 0, "", "")
    assert (ev.remote_port, ev.cgroup_id) == (443, 77)  # the rest is kept
    listen = probe.decode(packed_event(EV_LISTEN, 0))
    assert (listen.pid, listen.process_key, listen.local_port) == (0, "", 50_000)


def test_a_batch_decodes_like_its_records_one_by_one_and_an_unknown_kind_keeps_its_number():
    """A kind this decoder does not know (a newer probe) is passed on, not a crash that would
    lose the rest of the drained batch."""
    probe = TcpProbe(ProbeContext(host="h"), containers=KnownCgroups())
    records = [
        packed_event(EV_CLOSE, F_CLOSED_LOCAL),
        packed_event(99, 0),
        packed_event(EV_LISTEN, 0),
    ]
    batch = probe.decode_batch(records)
    one_by_one = [probe.decode(r) for r in records]
    assert [e.kind for e in batch] == ["close", "99", "listen"]
    no_ids = [dataclasses.replace(e, event_id="") for e in batch]
    assert no_ids == [dataclasses.replace(e, event_id="") for e in one_by_one]


def test_a_record_that_is_not_the_event_size_is_a_counted_decode_error():
    probe = TcpProbe(ProbeContext(host="h"), containers=KnownCgroups())
    good = packed_event(EV_CLOSE, F_CLOSED_LOCAL)
    batch = probe.decode_batch([good[:-4], good, good + bytes(8)])
    assert [e.kind for e in batch] == ["close"]
    assert probe.ctx.stats.snapshot()[1] == {("decode", "tcp_record_size"): 2}
    # One record alone too: counted, not an IndexError.
    assert probe.decode(good[:-4]) is None
    assert probe.ctx.stats.snapshot()[1] == {("decode", "tcp_record_size"): 3}


@pytest.mark.parametrize("connections,slots", [(1, 2), (2, 4), (3, 8), (65536, 131072)])
def test_the_connection_table_has_twice_the_slots_a_power_of_two(connections, slots):
    assert slots_for(connections) == slots
