"""What a causal graph is asked for: a time window, a scope (hosts, container), an optional focus
and a node limit. Plain values, checked by whoever builds them (graphapi from query strings,
the incident CLI from its flags).
"""

from __future__ import annotations

from dataclasses import dataclass

from graph.errors import BadScope


@dataclass(frozen=True)
class Window:
    from_ns: int
    to_ns: int

    @property
    def seconds(self) -> float:
        return (self.to_ns - self.from_ns) / 1e9


@dataclass(frozen=True)
class Scope:
    hosts: tuple[str, ...] = ()
    container: str = ""


@dataclass(frozen=True)
class Focus:
    """What the graph is centred on. ``kind`` is one of the constants below."""

    kind: str
    value: str = ""
    host: str = ""
    pid: int = 0
    addr: str = ""
    port: int = 0


PROCESS, PID, ADDRESS, ALERT_FOCUS, HOST_FOCUS, CONTAINER_FOCUS, GROUP_FOCUS, TRACE_FOCUS = (
    "process", "pid", "address", "alert", "host", "container", "group", "trace",
)  # fmt: skip


@dataclass(frozen=True)
class GraphRequest:
    window: Window
    scope: Scope
    focus: Focus | None
    limit: int

    def __post_init__(self):
        if self.window.to_ns <= self.window.from_ns:
            raise BadScope("the window is empty or inverted: 'to' must be after 'from'")
        if self.limit < 1:
            raise BadScope(f"limit={self.limit}: a graph needs at least one node")


@dataclass(frozen=True)
class GraphLimits:
    """How far the builder walks and how much it reads: every query stays bounded."""

    ancestry_lookback_seconds: float = 7 * 24 * 3600  # how far back ancestors are looked for
    max_depth: int = 32  # levels walked up (ancestors) and down (descendants)
    max_descendants: int = 4_000  # keys are inlined on ClickHouse 18.16: its queries max 256 KiB
    collapse_min: int = 3  # this many siblings running one program become one node
    max_edges: int = 2_000
    max_alerts: int = 100
    match_seconds: float = 5.0  # both ends of one connection are first seen this close in time
