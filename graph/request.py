"""What a causal graph is asked for: a time window, a scope (hosts, container), an optional focus
and a node limit. Plain values, checked by whoever builds them (graphapi from query strings,
the incident CLI from its flags).
"""

from __future__ import annotations

from dataclasses import dataclass


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


PROCESS, PID, ADDRESS, ALERT_FOCUS, HOST_FOCUS, CONTAINER_FOCUS, GROUP_FOCUS = (
    "process", "pid", "address", "alert", "host", "container", "group",
)  # fmt: skip


@dataclass(frozen=True)
class GraphRequest:
    window: Window
    scope: Scope
    focus: Focus | None
    limit: int
