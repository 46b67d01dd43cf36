"""cgroup -> container attribution: decoders for runtime cgroup names, and a cgroup id map.

Decoders are small and table-driven (see tests/test_containers.py): each recognises one
runtime's cgroup naming, under both the systemd and the cgroupfs drivers. The resolver maps
the cgroup v2 id that BPF reports (``bpf_get_current_cgroup_id``: the directory's inode) to a
path, learning new cgroups from the probe's ``cgroup_mkdir`` events; on hybrid hosts, where
containers may live only in v1 hierarchies, ``/proc/<pid>/cgroup`` is read as well.

Each resolved cgroup also carries its workload (exporter/workloads.py): a container's as its
runtime names it (asked once, when the container is discovered), a systemd service's unit, or
``host``; the resolver caches it per cgroup, so no event pays for it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

from exporter.workloads import HOST_WORKLOAD, RuntimeNames, container_workload, service_unit

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True, slots=True)
class Container:
    id: str
    runtime: str
    pod_uid: str = ""
    workload: str = ""  # '' when not known (exporter/workloads.py)

    @property
    def short_id(self) -> str:
        return self.id[:12]


NO_CONTAINER = Container("", "")  # a singleton: compared with `is` on the hot path
HOST = Container("", "", "", HOST_WORKLOAD)  # known to be in no container and no service

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


def identify(path: str, names: RuntimeNames | None = None) -> Container:
    """The container of a cgroup path with its workload: a container's (as its runtime names
    it, when ``names`` is given), else the systemd service's unit, else ``host``."""
    container = container_from_path(path)
    if container.id:
        workload = names.workload(container.id, container.runtime) if names else ""
        return dataclasses.replace(container, workload=workload or container_workload(container.id))
    if container is not NO_CONTAINER:
        return container  # a pod's cgroup above its containers: no workload of its own
    unit = service_unit(path)
    return Container("", "", "", unit) if unit else HOST


def identify_proc_cgroup(text: str, names: RuntimeNames | None = None) -> Container:
    """identify() over the lines of /proc/<pid>/cgroup: a container named by any line, else a
    service named by any line (v1 ``name=systemd`` on hybrid hosts), else ``host``."""
    found = [identify(line.split(":", 2)[-1], names) for line in text.splitlines() if line]
    for wanted in (lambda c: c.id, lambda c: c.workload not in ("", HOST_WORKLOAD)):
        hit = next((c for c in found if wanted(c)), None)
        if hit is not None:
            return hit
    return HOST if found else NO_CONTAINER


def unified_mount(root: Path = CGROUP_ROOT) -> Path:
    """Where cgroup v2 is mounted: the root itself, or root/unified on hybrid hosts."""
    if (root / "cgroup.controllers").exists():
        return root
    return root / "unified"


def memcg_v1_hierarchy(proc_cgroups: Path = Path("/proc/cgroups")) -> int:
    """Hierarchy id of the v1 memory controller, 0 when memory is on cgroup v2 (or absent)."""
    try:
        for line in proc_cgroups.read_text().splitlines():
            fields = line.split()
            if fields and fields[0] == "memory":
                return int(fields[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class ContainerResolver:
    """cgroup ids (v2, and v1 memory on hybrid hosts) -> Container.

    The probe reports both ids with every event (the v1 one read in the kernel through BTF
    offsets), so attribution needs no per-event /proc read and works for processes that are
    already gone.
    """

    def __init__(
        self,
        cgroup_root: Path = CGROUP_ROOT,
        v1_hierarchy: int | None = None,
        names: RuntimeNames | None = None,
    ):
        self.names = names if names is not None else RuntimeNames()
        self.unified = unified_mount(cgroup_root)
        self.v1_hierarchy = memcg_v1_hierarchy() if v1_hierarchy is None else v1_hierarchy
        self.v1_memory = cgroup_root / "memory" if self.v1_hierarchy else None
        self._by_id: dict[int, Container] = {}
        self._by_v1_id: dict[int, Container] = {}
        self.rescan()

    def rescan(self) -> None:
        """Walk the hierarchies: each directory's inode is its cgroup id."""
        self._walk(self.unified, self._by_id)
        if self.v1_memory is not None:
            self._walk(self.v1_memory, self._by_v1_id)

    def _walk(self, root: Path, into: dict[int, Container]) -> None:
        if not root.is_dir():
            return
        for dirpath, _dirs, _files in os.walk(root):
            try:
                inode = os.stat(dirpath).st_ino
            except OSError:
                continue
            into[inode] = identify("/" + os.path.relpath(dirpath, root).lstrip("."), self.names)

    def learn(self, cgroup_id: int, path: str, v1: bool = False) -> Container:
        """A new cgroup, from the probe's cgroup_mkdir event."""
        container = identify(path, self.names)
        (self._by_v1_id if v1 else self._by_id)[cgroup_id] = container
        return container

    def by_cgroup_id(self, cgroup_id: int, v1_cgroup_id: int = 0) -> Container | None:
        """The container of a v2 cgroup id, else of a v1 memory cgroup id; None if unknown.

        On hybrid hosts a container or a service may show only in the v1 hierarchy: the v1
        answer wins over a v2 one that knows less (no container; ``host`` only)."""
        found = self._by_id.get(cgroup_id)
        if v1_cgroup_id and (found is None or not found.id):
            v1 = self._by_v1_id.get(v1_cgroup_id)
            if v1 is not None and (
                found is None
                or v1.id
                or (found.workload in ("", HOST_WORKLOAD) and v1.workload != HOST_WORKLOAD)
            ):
                return v1
        return found

    def resolve(self, cgroup_id: int, v1_cgroup_id: int = 0) -> Container:
        """Like by_cgroup_id, rescanning once for an id never seen (created before we looked)."""
        found = self.by_cgroup_id(cgroup_id, v1_cgroup_id)
        if found is None:
            self.rescan()
            self._by_id.setdefault(cgroup_id, NO_CONTAINER)
            found = self.by_cgroup_id(cgroup_id, v1_cgroup_id)
        return found or NO_CONTAINER
