"""Host CPU and memory from /proc, read at scrape time."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from exporter.collectors.errors import CollectorErrors

CPU_MODES = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]


def parse_cpu_line(stat: str) -> dict[str, float]:
    """Seconds per mode from the aggregate ``cpu`` line of /proc/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = stat.splitlines()[0].split()[1 : 1 + len(CPU_MODES)]
    return {mode: int(v) / ticks for mode, v in zip(CPU_MODES, fields, strict=False)}


def parse_meminfo(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            out[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return out


class HostResourcesCollector(Collector):
    def __init__(self, proc: Path = Path("/proc")):
        self.proc = proc
        self.errors = CollectorErrors("host_resources")

    def collect(self):
        try:
            cpu_seconds = parse_cpu_line((self.proc / "stat").read_text())
            mem = parse_meminfo((self.proc / "meminfo").read_text())
            total, available = mem["MemTotal"], mem["MemAvailable"]
        except (OSError, KeyError, ValueError, IndexError) as e:
            self.errors.failed(e)
            return []
        self.errors.succeeded()
        cpu, total_family, available_family = self._families()
        for mode, seconds in cpu_seconds.items():
            cpu.add_metric([mode], seconds)
        total_family.add_metric([], total)
        available_family.add_metric([], available)
        return [cpu, total_family, available_family]

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            CounterMetricFamily(
                "groundtruth_host_cpu_seconds",
                "CPU time of the whole host, by mode.",
                labels=["mode"],
            ),
            GaugeMetricFamily("groundtruth_host_memory_total_bytes", "Usable RAM of the host."),
            GaugeMetricFamily(
                "groundtruth_host_memory_available_bytes",
                "Memory available for new work without swapping (MemAvailable).",
            ),
        )

    def describe(self):
        return self._families()
