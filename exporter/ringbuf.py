"""Reading a BPF ring buffer straight from its memory map, a whole batch per call.

bcc's consumer calls back into Python once per event through ctypes, which costs about as
much as decoding the event. The kernel lays the ring buffer out for user space to read
directly (as libbpf does): a consumer-position page we write, a producer-position page and
the data pages, mapped twice in a row so a record that wraps around reads contiguously. Each
record is an 8-byte header (length, with a busy and a discard bit) and the sample, padded to
8 bytes.

Ordering: the records are read before the consumer position is published, the producer
position before the records, and each record's header before its sample; x86-64 keeps loads
in order and stores after earlier loads, which is what libbpf's acquire/release pairs ask for.
(So records are not copied out in one slice: a copy may load its last bytes first, before the
kernel has finished a record whose header it then reads as committed.) Elsewhere
``supported()`` is false and the probe uses bcc's consumer.
"""

from __future__ import annotations

import mmap
import platform

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
LENGTH_MASK = DISCARD_BIT - 1
HEADER_SIZE = 8


def supported() -> bool:
    return platform.machine() in ("x86_64", "AMD64")


class RingBufferReader:
    def __init__(self, map_fd: int, data_size: int):
        if data_size & (data_size - 1):
            raise ValueError(f"ring buffer size {data_size} is not a power of two")
        page = mmap.PAGESIZE
        self.mask = data_size - 1
        self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        # The producer position's page, then the data pages twice: data offset d is at page + d.
        self._producer = mmap.mmap(
            map_fd, page + 2 * data_size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page
        )
        self._data_at = page
        # Views that read the positions and the headers and write the consumer position
        # without a call each (native byte order: x86-64's, see supported()).
        self._consumer_position = memoryview(self._consumer).cast("Q")
        self._producer_position = memoryview(self._producer).cast("Q")
        self._headers = memoryview(self._producer).cast("I")

    def read(self) -> list[bytes]:
        """Every committed record since the last call, oldest first; releases their space."""
        ring, headers, base, mask = self._producer, self._headers, self._data_at, self.mask
        records: list[bytes] = []
        append = records.append
        consumer = self._consumer_position[0]
        while True:
            producer = self._producer_position[0]
            if consumer >= producer:
                break
            while consumer < producer:  # once per record: lookups are hoisted out of it
                at = base + (consumer & mask)
                header = length = headers[at >> 2]  # (records are 8-byte aligned)
                if header > LENGTH_MASK:  # the busy or the discard bit is set: rarely
                    if header & BUSY_BIT:  # reserved, not yet submitted: the next read gets it
                        self._consumer_position[0] = consumer
                        return records
                    length = header & LENGTH_MASK  # discarded: skipped
                else:
                    at += HEADER_SIZE
                    append(ring[at : at + length])
                consumer += (length + HEADER_SIZE + 7) & ~7  # records are 8-byte aligned
            self._consumer_position[0] = consumer
        return records

    def pending_bytes(self) -> int:
        """How much the kernel has queued that ``read`` has not taken (headers and padding
        included): two loads, cheap enough to ask before every drain."""
        return self._producer_position[0] - self._consumer_position[0]

    def close(self) -> None:
        for view in (self._consumer_position, self._producer_position, self._headers):
            view.release()
        self._producer.close()
        self._consumer.close()
