"""Short human phrases for raw values: a command line, an exit, a byte count, a duration."""

from __future__ import annotations

import shlex
import signal as _signal

NS = 1_000_000_000


def command_line(argv: list[str], filename: str = "", comm: str = "") -> str:
    """argv as a shell would show it; the file or kernel name when there is no argv."""
    if argv:
        return shlex.join(argv)
    return filename or (f"[{comm}]" if comm else "")


def signal_name(number: int) -> str:
    try:
        return _signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_phrase(exit_code: int, sig: int, outcome: str, core_dumped: int = 0) -> str:
    """``exit 0``, ``exit 7 (error)``, ``killed by SIGKILL``, ``OOM-killed``."""
    if outcome == "oom":
        return "OOM-killed" + (f" ({signal_name(sig)})" if sig else "")
    if sig:
        return f"killed by {signal_name(sig)}" + (" (core dumped)" if core_dumped else "")
    return f"exit {exit_code}" + ("" if exit_code == 0 else " (error)")


def size(n: int) -> str:
    """Bytes, readable: 512 B, 1.5 KiB, 3.2 MiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def duration(ns: int) -> str:
    """ns, readable: 850us, 12ms, 3.4s, 5m02s, 2h05m."""
    if ns < 1_000_000:
        return f"{ns // 1000}us"
    if ns < NS:
        return f"{ns // 1_000_000}ms"
    seconds = ns / NS
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def short_container(container_id: str) -> str:
    return container_id[:12]
