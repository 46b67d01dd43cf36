"""Operations rules on connections: bursts of refused or timed-out connects to one place."""

from __future__ import annotations

from exporter.flags.windows import WindowCounts

PARAMS: dict[str, dict[str, str]] = {"connect_failure_burst": {}}
FAILED = frozenset({"refused", "timeout"})


class ConnectRules:
    def __init__(self, rules: dict, thresholds: dict, emit):
        self.emit = emit
        self.bursts = None
        if "connect_failure_burst" in rules:
            self.window_s = thresholds["flag_connect_failure_window_seconds"]
            self.bursts = WindowCounts(
                thresholds["flag_connect_failures"], self.window_s * 1_000_000_000
            )

    def on_connect_failed(self, ev, program: str) -> None:
        if self.bursts is None or ev.outcome not in FAILED:
            return
        n = self.bursts.add((ev.remote_addr, ev.remote_port), ev.time_ns)
        if n:
            self.emit(
                "connect_failure_burst", ev, program,
                f"{n} connections to {ev.remote_addr}:{ev.remote_port} refused or timed out "
                f"within {self.window_s}s (last by {program or ev.comm}: {ev.outcome})",
                occurrences=n, connection_id=ev.connection_id,
            )  # fmt: skip
