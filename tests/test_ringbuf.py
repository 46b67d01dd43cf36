"""exporter.ringbuf reads the kernel's ring buffer layout: here laid out in a memfd by the test.

The layout (include/uapi/linux/bpf.h, kernel/bpf/ringbuf.c): a page with the consumer position,
a page with the producer position, then the data pages, which the kernel maps twice in a row
so that a record wrapping around the end reads contiguously; the memfd holds that second copy
explicitly. Each record: a u32 length with the busy and discard bits, a u32 page offset, the
sample, padded to 8 bytes. The real kernel's side is covered by the probe tests.
"""

from __future__ import annotations

import mmap
import os
import struct

import pytest

from exporter.ringbuf import BUSY_BIT, DISCARD_BIT, RingBufferReader

PAGE = mmap.PAGESIZE
DATA_SIZE = 4 * PAGE
POSITION = struct.Struct("<Q")


class FakeKernelRing:
    """The producer side: writes records and positions where the kernel would."""

    def __init__(self):
        self.fd = os.memfd_create("ringbuf-test")
        os.ftruncate(self.fd, 2 * PAGE + 2 * DATA_SIZE)
        self.mem = mmap.mmap(self.fd, 2 * PAGE + 2 * DATA_SIZE)
        self.producer = 0

    def start_at(self, position: int) -> None:
        """Both positions at ``position`` (as after earlier records were consumed)."""
        self.producer = position
        POSITION.pack_into(self.mem, 0, position)
        POSITION.pack_into(self.mem, PAGE, position)

    def submit(self, sample: bytes, flags: int = 0) -> int:
        """Writes a record (header flags as given) and publishes it; returns its position."""
        at = self.producer
        record = struct.pack("<II", len(sample) | flags, 0) + sample
        record += b"\0" * (-len(record) % 8)
        for copy in (0, DATA_SIZE):  # the data pages, and the kernel's second mapping of them
            for i, byte in enumerate(record):
                self.mem[2 * PAGE + copy + (at + i) % DATA_SIZE] = byte
        self.producer += len(record)
        POSITION.pack_into(self.mem, PAGE, self.producer)
        return at

    def set_header(self, position: int, header: int) -> None:
        struct.pack_into("<I", self.mem, 2 * PAGE + position % DATA_SIZE, header)

    def consumer(self) -> int:
        return POSITION.unpack_from(self.mem, 0)[0]


@pytest.fixture
def ring():
    kernel = FakeKernelRing()
    reader = RingBufferReader(kernel.fd, DATA_SIZE)
    yield kernel, reader
    reader.close()
    kernel.mem.close()
    os.close(kernel.fd)


def test_records_are_read_in_order_and_their_space_released(ring):
    kernel, reader = ring
    samples = [b"fork", b"exec /bin/true", b"x" * 100, b"exit"]
    for sample in samples:
        kernel.submit(sample)
    assert reader.read() == samples
    assert kernel.consumer() == kernel.producer
    assert reader.read() == []


def test_a_record_still_being_written_stops_the_read_until_it_is_submitted(ring):
    kernel, reader = ring
    kernel.submit(b"first")
    busy = kernel.submit(b"second", flags=BUSY_BIT)
    kernel.submit(b"third")
    assert reader.read() == [b"first"]
    assert kernel.consumer() == busy  # the busy record's space is not released
    kernel.set_header(busy, len(b"second"))
    assert reader.read() == [b"second", b"third"]


def test_discarded_records_are_skipped(ring):
    kernel, reader = ring
    kernel.submit(b"kept")
    kernel.submit(b"discarded", flags=DISCARD_BIT)
    kernel.submit(b"kept too")
    assert reader.read() == [b"kept", b"kept too"]
    assert kernel.consumer() == kernel.producer


def test_a_record_wrapping_around_the_end_reads_whole(ring):
    kernel, reader = ring
    kernel.start_at(3 * DATA_SIZE - 16)  # positions only grow; 16 bytes before the end
    sample = bytes(range(200))
    kernel.submit(sample)
    kernel.submit(b"after the wrap")
    assert reader.read() == [sample, b"after the wrap"]


def test_pending_bytes_are_what_the_kernel_queued_and_no_read_has_taken(ring):
    kernel, reader = ring
    assert reader.pending_bytes() == 0
    kernel.submit(b"x" * 5)  # an 8-byte header and the sample, padded to 8 bytes: 16
    kernel.submit(b"y" * 8)  # 16
    assert reader.pending_bytes() == 32
    reader.read()
    assert reader.pending_bytes() == 0


def test_a_size_that_is_not_a_power_of_two_is_refused():
    with pytest.raises(ValueError, match="power of two"):
        RingBufferReader(-1, 3 * PAGE)
