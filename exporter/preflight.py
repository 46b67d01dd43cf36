"""Start-up checks: each problem that stops the probes from loading, with what to do."""

from __future__ import annotations

import os
import platform
from pathlib import Path

TRACEFS = Path("/sys/kernel/tracing")
BTF = Path("/sys/kernel/btf/vmlinux")


def preflight_problems(compile_check: bool = False) -> list[str]:
    problems = []
    if os.geteuid() != 0:
        # The other checks read root-only files: this one line is what to fix first.
        return ["not running as root: run it with sudo (BPF needs CAP_BPF and CAP_SYS_ADMIN)"]
    try:
        import bcc  # noqa: F401
    except ImportError:
        problems.append(
            "bcc is not importable: apt-get install python3-bpfcc and use a virtual environment "
            "made with /usr/bin/python3 -m venv --system-site-packages (make setup does this)"
        )
        return problems
    if not (TRACEFS / "events").is_dir():
        problems.append(
            "tracefs is not mounted: mount -t tracefs tracefs /sys/kernel/tracing (make setup)"
        )
    build = Path("/lib/modules") / platform.release() / "build"
    if not build.exists():
        problems.append(
            f"no kernel headers at {build}: apt-get install linux-headers-amd64 and link "
            "them there (make setup does this)"
        )
    if not BTF.exists():
        problems.append(f"no kernel BTF at {BTF}: a kernel built with CONFIG_DEBUG_INFO_BTF=y")
    if compile_check and not problems:
        problems += _compile_problems()
    return problems


def _compile_problems() -> list[str]:
    """Load the smallest tracepoint program: proves BPF syscalls and tracepoints work."""
    from bcc import BPF

    try:
        b = BPF(text=b"TRACEPOINT_PROBE(sched, sched_process_exit) { return 0; }")
        b.cleanup()
    except Exception as e:  # noqa: BLE001 - any failure is the reason to report
        return [f"loading a test BPF program failed: {e}"]
    return []
