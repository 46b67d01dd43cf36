"""Bounded label values: the first ``cap`` distinct values keep their name, the rest are ``other``.

Assignment is sticky for the life of the exporter, so a counter never moves between series
(which would make rate() jump); memory and series count stay bounded whatever the kernel sees.
"""

from __future__ import annotations

OTHER = "other"


class BoundedLabels:
    def __init__(self, cap: int):
        if cap < 1:
            raise ValueError("a label cap must be at least 1")
        self.cap = cap
        self._kept: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._kept:
            return value
        if len(self._kept) < self.cap:
            self._kept.add(value)
            return value
        return OTHER
