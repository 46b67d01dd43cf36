"""The TCP probe's table of tracked connections (bpf/tcp.c `conn_socks`, `conn_since`,
`conn_bytes`, `conns`).

The kernel side keeps it as arrays of slots: the socket of each slot (0: free), the time its
connection was established (0: not yet), its bytes so far and their cgroup, and the connection.
The first three are mapped into this process and read with no system call per slot (1, 1 and
3 MiB at the default size; pages count in resident memory once read); a connection itself is
looked up only when it is needed (to announce it). `conns` is not mapped: a mapping of a BPF
array counts whole in resident memory (18 MiB at the default size).
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np


def slots_for(connections: int) -> int:
    """Slots for this many tracked connections: twice as many, a power of two (tcp.c hashes
    into it with a mask, and a half-empty table keeps a socket within its few tries)."""
    return 1 << max(2 * connections - 1, 1).bit_length()


# struct conn_bytes (tcp.h): a slot's bytes so far and the cgroup they count under.
CONN_BYTES = np.dtype([("sent", "<u8"), ("received", "<u8"), ("cgroup_id", "<u8")])


def _mapped(table: Any, slots: int, size: int = 8) -> mmap.mmap:
    length = -(-slots * size // mmap.PAGESIZE) * mmap.PAGESIZE
    return mmap.mmap(table.map_fd, length, mmap.MAP_SHARED, mmap.PROT_READ)


class ConnTable:
    def __init__(self, bpf: Any, slots: int):
        """The table of a loaded bcc BPF object built with CONN_SLOTS = ``slots``."""
        self.slots = slots
        self._conns = bpf[b"conns"]
        self._socks = _mapped(bpf[b"conn_socks"], slots)
        self._since = _mapped(bpf[b"conn_since"], slots)
        self._bytes = _mapped(bpf[b"conn_bytes"], slots, CONN_BYTES.itemsize)

    def taken(self) -> list[tuple[int, int, int]]:
        """(slot, socket, established boot ns or 0) of every taken slot. A slot taken or freed
        meanwhile may be seen either way, as with any read of a map the kernel writes to."""
        # Copies, read once: numpy refuses an array that changes while it counts its non-zero
        # elements (and the kernel writes these while connections come and go). The times
        # first: a time then belongs to the slot's socket as read or to one before it, never to
        # a later one, and a caller that looks the connection up can tell (its established_ns).
        since = np.frombuffer(self._since[: self.slots * 8], dtype=np.uint64)
        socks = self._socks_now()
        slots = np.flatnonzero(socks)
        return list(zip(slots.tolist(), socks[slots].tolist(), since[slots].tolist(), strict=True))

    def _socks_now(self) -> np.ndarray:
        return np.frombuffer(self._socks[: self.slots * 8], dtype=np.uint64)

    def bytes_of(self, slot: int) -> tuple[int, int]:
        """(sent, received) so far by the connection in a slot."""
        entry = np.frombuffer(self._bytes, CONN_BYTES, count=1, offset=slot * CONN_BYTES.itemsize)
        return int(entry["sent"][0]), int(entry["received"][0])

    def open_bytes(self) -> np.ndarray:
        """The bytes so far of every taken slot's connection, with their cgroup (CONN_BYTES
        records, copied). A connection that closes meanwhile may be read here or not: its bytes
        are then in the kernel's `closes` either way, so read that first, then this."""
        taken = np.flatnonzero(self._socks_now())
        table = np.frombuffer(self._bytes, CONN_BYTES, count=self.slots)
        return table[taken]

    def connection(self, slot: int):
        """The connection in a slot (one lookup in the kernel's array)."""
        return self._conns[self._conns.Key(slot)]

    def live(self) -> list[tuple[int, Any]]:
        """(socket, connection) of every taken slot."""
        return [(sk, self.connection(slot)) for slot, sk, _ in self.taken()]

    def close(self) -> None:
        self._socks.close()
        self._since.close()
        self._bytes.close()
