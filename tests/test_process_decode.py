"""Exec records decoded by the process probe, from records laid out as bpf/process.h sends them."""

from __future__ import annotations

import struct

from exporter.probes.base import ProbeContext
from exporter.probes.process import ARG_LEN, EV_EXEC, FILENAME_LEN, HEAD, ProcessProbe


def exec_record(filename: bytes, argv: list[bytes], pid: int = 4242) -> bytes:
    head = HEAD.pack(10**9, 5 * 10**8, 10**8, 1, 0, EV_EXEC, pid, 1, 0, 0, 0, 0, pid, b"prog")
    slots = b"".join(a.ljust(ARG_LEN, b"\0") for a in argv)
    return head + struct.pack("<II", len(argv), 0) + filename.ljust(FILENAME_LEN, b"\0") + slots


def test_a_repeated_command_line_decodes_the_same_into_a_list_of_its_own():
    probe = ProcessProbe(ProbeContext(host="h"))
    record = exec_record(b"/usr/bin/curl", [b"curl", b"-s", b"http://db:5432/"])
    first, again = probe.decode(record), probe.decode(record)
    assert (first.filename, first.argv) == ("/usr/bin/curl", ["curl", "-s", "http://db:5432/"])
    assert (again.filename, again.argv) == (first.filename, first.argv)
    again.argv.append("changed by a sink")
    assert first.argv == ["curl", "-s", "http://db:5432/"]


def test_command_lines_that_differ_in_one_byte_decode_apart():
    probe = ProcessProbe(ProbeContext(host="h"))
    one = probe.decode(exec_record(b"/bin/sh", [b"sh", b"-c", b"exit 1"]))
    two = probe.decode(exec_record(b"/bin/sh", [b"sh", b"-c", b"exit 2"]))
    three = probe.decode(exec_record(b"/bin/sh", [b"sh", b"-c"]))
    assert [one.argv, two.argv, three.argv] == [
        ["sh", "-c", "exit 1"],
        ["sh", "-c", "exit 2"],
        ["sh", "-c"],
    ]
