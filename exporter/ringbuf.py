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
import struct

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
LENGTH_MASK = DISCARD_BIT - 1
HEADER_SIZE = 8
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")


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

    def read(self) -> list[bytes]:
        """Every committed record since the last call, oldest first; releases their space."""
        ring, base, mask = self._producer, self._data_at, self.mask
        header_at, records = U32.unpack_from, []
        append = records.append
        consumer = U64.unpack_from(self._consumer, 0)[0]
        while True:
            producer = U64.unpack_from(self._producer, 0)[0]
            if consumer >= producer:
                break
            while consumer < producer:  # once per record: lookups are hoisted out of it
                at = base + (consumer & mask)
                header = header_at(ring, at)[0]
                if header & BUSY_BIT:  # reserved, not yet submitted: the next read gets it
                    U64.pack_into(self._consumer, 0, consumer)
                    return records
                sample, length = at + HEADER_SIZE, header & LENGTH_MASK
                if not header & DISCARD_BIT:
                    append(ring[sample : sample + length])
                consumer += (length + HEADER_SIZE + 7) & ~7  # records are 8-byte aligned
            U64.pack_into(self._consumer, 0, consumer)
        return records

    def close(self) -> None:
        self._producer.close()
        self._consumer.close()
