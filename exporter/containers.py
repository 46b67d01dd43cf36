"""cgroup -> container attribution: decoders for runtime cgroup names, and a cgroup id map.

Decoders are small and table-driven (see tests/test_containers.py): each recognises one
runtime's cgroup naming, under both the systemd and the cgroupfs drivers. The resolver maps
the cgroup v2 id that BPF reports (``bpf_get_current_cgroup_id``: the directory's inode) to a
path, learning new cgroups from the probe's ``cgroup_mkdir`` events; on hybrid hosts, where
containers may live only in v1 hierarchies, ``/proc/<pid>/cgroup`` is read as well.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True, slots=True)
class Container:
    id: str
    runtime: str
    pod_uid: str = ""

    @property
    def short_id(self) -> str:
        return self.id[:12]


NO_CONTAINER = Container("", "")

_ID = r"([0-9a-f]{64})"
# (runtime, pattern on one path component or path), first match wins.
CONTAINER_PATTERNS = [
    ("docker", re.compile(rf"docker-{_ID}\.scope")),
    ("docker", re.compile(rf"/docker/{_ID}(?:/|$)")),
    ("containerd", re.compile(rf"cri-containerd-{_ID}\.scope")),
    ("crio", re.compile(rf"crio-(?:conmon-)?{_ID}\.scope")),
    ("podman", re.compile(rf"libpod-(?:conmon-)?{_ID}\.scope")),
    ("podman", re.compile(rf"/libpod_parent/libpod-{_ID}")),
    # cgroupfs-driver kubepods: /kubepods/<qos>/pod<uid>/<container id>
    ("containerd", re.compile(rf"/kubepods[^ ]*/pod[0-9a-f_-]+/{_ID}(?:/|$)")),
]
# Kubernetes pod UID: systemd driver writes dashes as underscores.
POD_PATTERN = re.compile(
    r"kubepods[^ ]*?[/-]pod"
    r"([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})"
)


def container_from_path(path: str) -> Container:
    """The container a cgroup path belongs to, or NO_CONTAINER."""
    pod = POD_PATTERN.search(path)
    pod_uid = pod.group(1).replace("_", "-") if pod else ""
    for runtime, pattern in CONTAINER_PATTERNS:
        m = pattern.search(path)
        if m:
            return Container(m.group(1), runtime, pod_uid)
    if pod_uid:
        return Container("", "kubernetes", pod_uid)
    return NO_CONTAINER


def container_from_proc_cgroup(text: str) -> Container:
    """The container named by any line of /proc/<pid>/cgroup (v2 and v1 lines)."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        found = container_from_path(path)
        if found != NO_CONTAINER:
            return found
    return NO_CONTAINER


def unified_mount(root: Path = CGROUP_ROOT) -> Path:
    """Where cgroup v2 is mounted: the root itself, or root/unified on hybrid hosts."""
    if (root / "cgroup.controllers").exists():
        return root
    return root / "unified"


class ContainerResolver:
    """cgroup v2 id -> Container, plus the /proc fallback for v1-only containers."""

    def __init__(self, cgroup_root: Path = CGROUP_ROOT, proc: Path = Path("/proc")):
        self.unified = unified_mount(cgroup_root)
        self.proc = proc
        self._by_id: dict[int, Container] = {}
        # Hybrid hosts (controllers in v1): runtimes may place containers in v1 only.
        self.read_proc = not (cgroup_root / "cgroup.controllers").exists()
        self.rescan()

    def rescan(self) -> None:
        """Walk the v2 hierarchy: each directory's inode is its cgroup id."""
        if not self.unified.is_dir():
            return
        for dirpath, _dirs, _files in os.walk(self.unified):
            try:
                inode = os.stat(dirpath).st_ino
            except OSError:
                continue
            self.learn(inode, "/" + os.path.relpath(dirpath, self.unified).lstrip("."))

    def learn(self, cgroup_id: int, path: str) -> Container:
        container = container_from_path(path)
        self._by_id[cgroup_id] = container
        return container

    def by_cgroup_id(self, cgroup_id: int) -> Container | None:
        """The container of a v2 cgroup id; None when the id is not known."""
        return self._by_id.get(cgroup_id)

    def by_pid(self, pid: int) -> Container | None:
        """The container named in /proc/<pid>/cgroup; None when the process is gone."""
        try:
            text = (self.proc / str(pid) / "cgroup").read_text()
        except OSError:
            return None
        return container_from_proc_cgroup(text)

    def resolve(self, cgroup_id: int, pid: int) -> Container | None:
        """Best knowledge for a live process: its v2 cgroup, then (hybrid hosts) /proc."""
        found = self.by_cgroup_id(cgroup_id)
        if found is None:
            self.rescan()
            found = self._by_id.setdefault(cgroup_id, NO_CONTAINER)
        if found == NO_CONTAINER and self.read_proc:
            return self.by_pid(pid)
        return found
