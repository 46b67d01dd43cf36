"""Per-container CPU and memory, read from cgroupfs (v1 and v2) at scrape time.

Container cgroups are found by walking the hierarchies for paths the container decoders
recognise (the top-most one per container). On hybrid hosts the v1 controllers hold the
accounting; on pure v2 hosts the unified hierarchy does. One source per container and metric,
so nothing is counted twice.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from exporter.collectors.errors import CollectorErrors
from exporter.containers import CGROUP_ROOT, NO_CONTAINER, container_from_path, unified_mount
from exporter.labels import BoundedLabels

USER_HZ = 100
UNLIMITED = 1 << 62  # v1 reports "no limit" as a page-rounded LONG_MAX


def container_dirs(root: Path) -> dict[str, Path]:
    """{container id: its top-most cgroup directory} under one hierarchy."""
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for dirpath, dirs, _files in os.walk(root):
        container = container_from_path("/" + os.path.relpath(dirpath, root))
        if container != NO_CONTAINER and container.id:
            found.setdefault(container.id, Path(dirpath))
            dirs.clear()  # its children belong to it
    return found


def read_kv(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def read_int(path: Path) -> int | None:
    text = path.read_text().strip()
    return None if text == "max" else int(text)


class ContainerResourcesCollector(Collector):
    def __init__(self, cgroup_root: Path = CGROUP_ROOT, container_cap: int = 200):
        self.root = cgroup_root
        self.unified = unified_mount(cgroup_root)
        self.pure_v2 = self.unified == cgroup_root
        self.containers = BoundedLabels(container_cap)
        self.errors = CollectorErrors("container_resources")

    def _cpu(self) -> dict[str, tuple[float, float]]:
        """{container id: (user seconds, system seconds)}"""
        out = {}
        if not self.pure_v2:
            for cid, d in container_dirs(self.root / "cpuacct").items():
                stat = read_kv(d / "cpuacct.stat")
                out[cid] = (stat["user"] / USER_HZ, stat["system"] / USER_HZ)
        for cid, d in container_dirs(self.unified).items():
            if cid not in out and (d / "cpu.stat").exists():
                stat = read_kv(d / "cpu.stat")
                out[cid] = (stat["user_usec"] / 1e6, stat["system_usec"] / 1e6)
        return out

    def _memory(self) -> dict[str, tuple[int | None, int | None]]:
        """{container id: (usage bytes, limit bytes or None)}"""
        out = {}
        if not self.pure_v2:
            for cid, d in container_dirs(self.root / "memory").items():
                limit = read_int(d / "memory.limit_in_bytes")
                out[cid] = (read_int(d / "memory.usage_in_bytes"), limit)
        for cid, d in container_dirs(self.unified).items():
            if cid not in out and (d / "memory.current").exists():
                out[cid] = (read_int(d / "memory.current"), read_int(d / "memory.max"))
        return out

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        cpu = CounterMetricFamily(
            "groundtruth_container_cpu_seconds",
            "CPU time used by a container's processes, by mode.",
            labels=["container", "mode"],
        )
        mem = GaugeMetricFamily(
            "groundtruth_container_memory_bytes",
            "Memory charged to a container's cgroup.",
            labels=["container"],
        )
        limit = GaugeMetricFamily(
            "groundtruth_container_memory_limit_bytes",
            "Memory limit of a container's cgroup (absent when unlimited).",
            labels=["container"],
        )
        return cpu, mem, limit

    def describe(self):
        return self._families()

    def collect(self):
        cpu, mem, limit = self._families()
        try:
            for cid, (user, system) in sorted(self._cpu().items()):
                label = self.containers(cid[:12])
                cpu.add_metric([label, "user"], user)
                cpu.add_metric([label, "system"], system)
            for cid, (usage, max_bytes) in sorted(self._memory().items()):
                label = self.containers(cid[:12])
                mem.add_metric([label], usage)
                if max_bytes is not None and max_bytes < UNLIMITED:
                    limit.add_metric([label], max_bytes)
            self.errors.succeeded()
        except (OSError, KeyError, ValueError) as e:
            self.errors.failed(e)  # a container went away mid-read; next scrape sees the rest
        yield cpu
        yield mem
        yield limit
