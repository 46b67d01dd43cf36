"""A bounded first-in-first-out spool of event batches on disk, for when the store is failing.

Each batch is one segment file, ``<seq>-<rows>-<received_ms>.json`` holding
``{"table": ..., "columns": {column: [values...]}}``: the sequence number orders replay, and the
name alone says how many events a segment holds and how old they are, so a restarted writer
knows its spool without reading it. A segment is written to a temporary name and renamed, so a
crash never leaves half a batch. When a new segment would push the spool past ``max_bytes``,
the oldest segments are dropped, and ``on_drop(rows)`` counts every event lost that way.

Only the writer's thread uses a spool; ``events`` and ``bytes`` may be read from any thread.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_SEGMENT = re.compile(r"(\d{12})-(\d+)-(\d+)\.json$")


@dataclass(frozen=True)
class Segment:
    seq: int
    rows: int
    received_ms: int
    size: int
    path: Path


class Spool:
    def __init__(self, directory: str | Path, max_bytes: int, on_drop: Callable[[int], None]):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.on_drop = on_drop
        self._segments: deque[Segment] = deque(sorted(self._scan(), key=lambda s: s.seq))
        self._next_seq = self._segments[-1].seq + 1 if self._segments else 0
        self.events = sum(s.rows for s in self._segments)
        self.bytes = sum(s.size for s in self._segments)

    def _scan(self):
        for path in self.directory.iterdir():
            m = _SEGMENT.match(path.name)
            if m:
                seq, rows, received_ms = map(int, m.groups())
                yield Segment(seq, rows, received_ms, path.stat().st_size, path)
            elif path.name.endswith(".tmp"):
                path.unlink()  # a write cut short by a crash: its batch was never acknowledged

    def __len__(self) -> int:
        return len(self._segments)

    def oldest_received(self) -> float | None:
        """Arrival time (epoch seconds) of the oldest spooled event, or None when empty."""
        return self._segments[0].received_ms / 1000 if self._segments else None

    def append(self, table: str, columns: dict[str, list], received: float | None = None) -> None:
        rows = len(next(iter(columns.values()), []))
        received_ms = int((received or time.time()) * 1000)
        body = json.dumps({"table": table, "columns": columns}).encode()
        name = f"{self._next_seq:012d}-{rows}-{received_ms}.json"
        self._next_seq += 1
        if len(body) > self.max_bytes:
            self.on_drop(rows)  # bigger than the whole spool: keeping it would drop everything
            return
        while self._segments and self.bytes + len(body) > self.max_bytes:
            dropped = self.pop()
            self.on_drop(dropped.rows)
        path = self.directory / name
        tmp = path.with_name(name + ".tmp")
        try:
            tmp.write_bytes(body)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)  # a full or broken disk: leave no partial segment
            raise
        self._segments.append(Segment(self._next_seq - 1, rows, received_ms, len(body), path))
        self.events += rows
        self.bytes += len(body)

    def peek(self) -> tuple[Segment, str, dict[str, list]] | None:
        """The oldest segment and its (table, columns), without removing it."""
        if not self._segments:
            return None
        segment = self._segments[0]
        data = json.loads(segment.path.read_bytes())
        return segment, data["table"], data["columns"]

    def pop(self) -> Segment:
        """Removes the oldest segment (replayed, or dropped to make room)."""
        segment = self._segments.popleft()
        segment.path.unlink(missing_ok=True)
        self.events -= segment.rows
        self.bytes -= segment.size
        return segment

    @property
    def rejected_dir(self) -> Path:
        """Where refused batches are kept, out of the queue, for someone to look at."""
        return self.directory / "rejected"

    def set_aside(self) -> Segment:
        """Moves the oldest segment out of the queue into ``rejected_dir``."""
        segment = self._segments[0]
        self.rejected_dir.mkdir(exist_ok=True)
        os.replace(segment.path, self.rejected_dir / segment.path.name)
        return self.pop()

    def keep_rejected(self, table: str, columns: dict[str, list]) -> None:
        """Writes refused rows into ``rejected_dir`` (in the segment format)."""
        self.rejected_dir.mkdir(exist_ok=True)
        rows = len(columns["event_id"])
        name = f"{time.time_ns()}-{rows}-{table}.json"
        (self.rejected_dir / name).write_text(json.dumps({"table": table, "columns": columns}))
