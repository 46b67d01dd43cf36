"""Real cgroups for tests: made in cgroupfs, a child moved in before it execs, removed after."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from exporter.containers import CGROUP_ROOT, unified_mount


def fake_container_id() -> str:
    return secrets.token_hex(32)


@contextlib.contextmanager
def cgroup_dirs(*paths: Path):
    """Create the directories (parents too); remove them, deepest first, on the way out."""
    made = []
    try:
        for path in paths:
            for part in reversed([path, *path.parents]):
                if not part.exists():
                    part.mkdir()
                    made.append(part)
        yield paths
    finally:
        for path in reversed(made):
            for _ in range(50):  # processes may take a moment to leave
                try:
                    path.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)


def docker_scope_v2(container_id: str) -> Path:
    """Where Docker's systemd driver puts a container on cgroup v2."""
    return unified_mount() / "system.slice" / f"docker-{container_id}.scope"


def docker_v1(controller: str, container_id: str) -> Path:
    """Where Docker's cgroupfs driver puts a container in a v1 hierarchy."""
    return CGROUP_ROOT / controller / "docker" / container_id


def run_in(cgroups: list[Path], argv: list[str], **kw) -> subprocess.Popen:
    """Start argv with the child already in the given cgroups when it execs."""

    def enter():
        for cg in cgroups:
            (cg / "cgroup.procs").write_text(str(os.getpid()))

    return subprocess.Popen(argv, preexec_fn=enter, **kw)


@contextlib.contextmanager
def oom_killed_in_container(container_id: str, limit_bytes: int = 64 << 20):
    """A process that the OOM killer killed in a container's v1 memory cgroup (limit_bytes):
    yields it once it has ended; the cgroup is removed on the way out."""
    mem = docker_v1("memory", container_id)
    with cgroup_dirs(mem):
        (mem / "memory.limit_in_bytes").write_text(str(limit_bytes))
        hog = run_in([mem], [sys.executable, "-c", f"x = b'a' * {limit_bytes * 8}"])
        hog.wait()
        yield hog


def service_v2(unit: str) -> Path:
    """Where systemd puts a system service on cgroup v2 (the unified hierarchy on hybrid hosts)."""
    return unified_mount() / "system.slice" / unit


def random_service_unit() -> str:
    """A unit name no real service has: gt-test-<random>.service."""
    return f"gt-test-{secrets.token_hex(4)}.service"
