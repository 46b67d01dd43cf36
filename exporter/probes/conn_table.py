"""The TCP probe's table of tracked connections (bpf/tcp.c `conn_socks` and `conns`), read from
its memory.

The kernel side keeps it as two mmapable arrays of slots: the socket of each slot (0: free)
and its connection. Mapped, they are read with no system call per entry: the live slots are
found with one numpy scan of the sockets (1 MiB at the default size), and only their
connections' pages are touched.
"""

from __future__ import annotations

import ctypes
import mmap
from typing import Any

import numpy as np


def slots_for(connections: int) -> int:
    """Slots for this many tracked connections: twice as many, a power of two (tcp.c hashes
    into it with a mask, and a half-empty table keeps a socket within its few tries)."""
    return 1 << max(2 * connections - 1, 1).bit_length()


def _mapped(map_fd: int, size: int) -> mmap.mmap:
    length = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE
    return mmap.mmap(map_fd, length, mmap.MAP_SHARED, mmap.PROT_READ)


class ConnTable:
    def __init__(self, bpf: Any, slots: int):
        """The table of a loaded bcc BPF object built with CONN_SLOTS = ``slots``."""
        socks, conns = bpf[b"conn_socks"], bpf[b"conns"]
        self.slots = slots
        self._conn_type = conns.Leaf
        self._conn_size = -(-ctypes.sizeof(conns.Leaf) // 8) * 8  # array values are 8-aligned
        self._socks = _mapped(socks.map_fd, slots * 8)
        self._conns = _mapped(conns.map_fd, slots * self._conn_size)

    def live(self) -> list[tuple[int, object]]:
        """(socket, connection) of every taken slot. A slot taken or freed meanwhile may be
        seen either way, as with any read of a map that the kernel writes to."""
        socks = np.frombuffer(self._socks, dtype=np.uint64, count=self.slots)
        taken = np.flatnonzero(socks)
        owners = socks[taken].tolist()  # (a copy: no view of the mapping outlives this call)
        del socks
        return [
            (sk, self._conn_type.from_buffer_copy(self._conns, slot * self._conn_size))
            for slot, sk in zip(taken.tolist(), owners, strict=True)
        ]

    def close(self) -> None:
        self._socks.close()
        self._conns.close()
