"""Keeps events in memory: for tests and benchmarks that inspect what the exporter delivered."""

from __future__ import annotations

import threading


class MemorySink:
    def __init__(self):
        self._lock = threading.Lock()
        self.events: list = []
        self.closed = False

    def write(self, events: list) -> None:
        with self._lock:
            self.events.extend(events)

    def snapshot(self) -> list:
        with self._lock:
            return list(self.events)

    def close(self) -> None:
        self.closed = True
