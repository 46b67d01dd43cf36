"""The writer's in-memory buffer: events as write() handed them over, oldest first, bounded.

write() runs on the exporter's event path, so adding is one append of the caller's batch;
splitting into store batches happens in the writer's thread (``take``). A chunk is a list of
event objects or a ``ColumnBatch`` (rows as columns): both are sized and sliced alike.
"""

from __future__ import annotations

from collections import deque


class MemoryBuffer:
    """Events in memory, kept as the batches write() received (no per-event work there)."""

    def __init__(self):
        self._chunks: deque = deque()  # [arrival time, events, index of the first not taken]
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def add(self, events: list, now: float, limit: int) -> int:
        """Appends events; drops the oldest beyond ``limit`` and returns how many."""
        self._chunks.append([now, list(events), 0])
        self.count += len(events)
        overflow = max(self.count - limit, 0)
        if overflow:
            self.take(overflow)
        return overflow

    def add_columns(self, batch, now: float, limit: int) -> int:
        """Appends a ColumnBatch as one chunk; drops as ``add`` does."""
        self._chunks.append([now, batch, 0])
        self.count += len(batch)
        overflow = max(self.count - limit, 0)
        if overflow:
            self.take(overflow)
        return overflow

    def take(self, n: int) -> tuple[float | None, list]:
        """Removes up to n of the oldest events: (arrival time of the first, events, where a
        ColumnBatch's rows come as one ColumnBatch item)."""
        received, out, taken = self.oldest(), [], 0
        while self._chunks and taken < n:
            chunk = self._chunks[0]
            _, events, start = chunk
            end = min(len(events), start + n - taken)
            if type(events) is list:
                out += events[start:end]
            else:
                out.append(events[start:end] if start or end < len(events) else events)
            taken += end - start
            if end == len(events):
                self._chunks.popleft()
            else:
                chunk[2] = end
        self.count -= taken
        return received, out

    def oldest(self) -> float | None:
        return self._chunks[0][0] if self._chunks else None
