"""One benchmark figure, compared with its peer or floor measured in the same run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Result:
    figure: str  # what was measured
    value: float
    unit: str
    peer: str = ""  # what it is compared with, measured in the same run
    peer_value: float | None = None
    goal: str = ""  # e.g. ">= 0.95x" or "<= 150 MB"
    met: bool | None = None  # whether the goal was met, when there is one
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.peer_value in (None, 0):
            return None
        return self.value / self.peer_value
