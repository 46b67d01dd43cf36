"""Operations rules decided when a process ends: OOM kills, crashes, crash loops."""

from __future__ import annotations

import signal

from exporter.flags.windows import WindowCounts

PARAMS = {
    "oom_kill": {},
    "crash": {"signals": "ints"},
    "crash_loop": {"stopped_exit_codes": "ints"},
}
# Signals that mean someone stopped the process, not that it failed.
STOPPED_BY_SOMEONE = frozenset(
    {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE}
)


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


class ExitRules:
    def __init__(self, rules: dict, thresholds: dict, emit):
        self.emit = emit
        self.oom = "oom_kill" in rules
        crash = rules.get("crash")
        self.crash_signals = frozenset(crash.params["signals"]) if crash else frozenset()
        self.crash = crash is not None
        self.loops = None
        loop = rules.get("crash_loop")
        self.stopped_codes = frozenset(loop.params["stopped_exit_codes"]) if loop else frozenset()
        if loop is not None:
            self.loops = WindowCounts(
                thresholds["flag_crash_loop_exits"],
                thresholds["flag_crash_loop_window_seconds"] * 1_000_000_000,
            )
            self.loop_window_s = thresholds["flag_crash_loop_window_seconds"]

    def on_failed_exit(self, ev, program: str) -> None:
        """An exit whose outcome is not ok (error, signal or oom)."""
        sig = ev.signal
        if self.crash and (sig in self.crash_signals or ev.core_dumped):
            core = ", core dumped" if ev.core_dumped else ""
            self.emit("crash", ev, program, f"{program} killed by {signal_name(sig)}{core}")
        if self.loops is None or sig in STOPPED_BY_SOMEONE or ev.exit_code in self.stopped_codes:
            return
        where = f"container {ev.container_id[:12]}" if ev.container_id else "the host"
        n = self.loops.add((ev.container_id, program), ev.time_ns)
        if n:
            self.emit(
                "crash_loop", ev, program,
                f"{program} in {where} failed {n} times within {self.loop_window_s}s "
                f"(last: {_how(ev)})",
                occurrences=n,
            )  # fmt: skip

    def on_oom_kill(self, ev, program: str) -> None:
        if self.oom:
            where = f" in container {ev.container_id[:12]}" if ev.container_id else ""
            self.emit(
                "oom_kill", ev, program, f"{program or ev.comm} (pid {ev.pid}) OOM-killed{where}"
            )


def _how(ev) -> str:
    if ev.outcome == "oom":
        return "OOM-killed"
    if ev.signal:
        return signal_name(ev.signal)
    return f"exit {ev.exit_code}"
