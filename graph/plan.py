"""The processes a graph shows, chosen by the builder (``graph.causal``) before drawing."""

from __future__ import annotations

from dataclasses import dataclass, field

from graph.request import Scope


@dataclass
class Plan:
    """The processes the graph shows, before drawing."""

    scope: Scope
    seeds: list[str] = field(default_factory=list)
    pinned: list[str] = field(default_factory=list)  # seeds and ancestors: never collapsed
    singles: list[str] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)  # collapsed siblings
    alert_focus: str = ""
    flags: dict[str, list[dict]] = field(default_factory=dict)  # trace focus: key -> its flags
    notes: dict = field(default_factory=dict)
