"""The TCP probe's small decoders, table-driven: addresses, outcomes, who closed, label values."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest

from exporter.collectors.tcp_counts import remote_label
from exporter.labels import BoundedLabels
from exporter.probes.tcp import (
    F_CLOSED_LOCAL,
    F_CLOSED_REMOTE,
    F_RESET_RECEIVED,
    F_RESET_SENT,
    close_outcome,
    closed_by,
    ip_address,
)
from exporter.tcp_scan import parse_address, parse_table


@pytest.mark.parametrize(
    "text,expected",
    [
        ("0100007F:1F90", ("127.0.0.1", 8080)),
        ("00000000:0016", ("0.0.0.0", 22)),
        ("00000000000000000000000001000000:01BB", ("::1", 443)),
        # Both the scan and the probe print v4-mapped addresses as ipaddress does.
        ("0000000000000000FFFF00000100007F:0050", (str(IPv6Address("::ffff:127.0.0.1")), 80)),
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
