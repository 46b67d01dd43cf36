"""Process counters kept in the process probe's BPF maps: execs, exits by outcome, OOM kills.

The kernel counts per (cgroup id, kind, program); this collector turns cgroup ids into bounded
container labels and program names into bounded program labels at scrape time.
"""

from __future__ import annotations

from collections import Counter

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from exporter.collectors.errors import CollectorErrors
from exporter.labels import OTHER, BoundedLabels
from exporter.probes.process_abi import C_EXEC, C_EXEC_FAILED, C_OOM_KILL, EXIT_OUTCOMES


class ProcessCountsCollector(Collector):
    def __init__(self, probe, container_cap: int = 200, program_cap: int = 200):
        self.probe = probe
        self.containers = BoundedLabels(container_cap)
        self.programs = BoundedLabels(program_cap)
        self.errors = CollectorErrors("process_counts")

    def _container_label(self, cgroup_id: int, v1_cgroup_id: int) -> str:
        found = self.probe.containers.by_cgroup_id(cgroup_id, v1_cgroup_id)
        return self.containers(found.short_id) if found and found.id else ""

    def read_counts(self):
        """Sums by metric and labels, from the BPF maps (overflow goes to `other`)."""
        execs, exits, ooms, exec_failed = Counter(), Counter(), Counter(), Counter()
        for key, value in self.probe.bpf[b"counts"].items():
            container = self._container_label(key.cgroup_id, key.v1_cgroup_id)
            n = value.value
            if key.kind == C_EXEC:
                program = self.programs(key.comm.decode("utf-8", "replace"))
                execs[(container, program)] += n
            elif key.kind in EXIT_OUTCOMES:
                exits[(container, EXIT_OUTCOMES[key.kind])] += n
            elif key.kind == C_OOM_KILL:
                ooms[(container,)] += n
            elif key.kind == C_EXEC_FAILED:
                exec_failed[(container,)] += n
        for kind, value in self.probe.bpf[b"counts_overflow"].items():
            n = value.value
            if not n:
                continue
            if kind.value == C_EXEC:
                execs[(OTHER, OTHER)] += n
            elif kind.value in EXIT_OUTCOMES:
                exits[(OTHER, EXIT_OUTCOMES[kind.value])] += n
            elif kind.value == C_OOM_KILL:
                ooms[(OTHER,)] += n
            elif kind.value == C_EXEC_FAILED:
                exec_failed[(OTHER,)] += n
        return execs, exits, ooms, exec_failed

    def collect(self):
        if self.probe.bpf is None:
            return
        try:
            execs, exits, ooms, exec_failed = self.read_counts()
        except Exception as e:  # noqa: BLE001 - a scrape never raises
            self.errors.failed(e)
            return
        self.errors.succeeded()
        for family, values in zip(self._families(), (execs, exits, ooms, exec_failed), strict=True):
            for label_values, n in sorted(values.items()):
                family.add_metric(list(label_values), n)
            yield family

    @staticmethod
    def _families() -> list[CounterMetricFamily]:
        """Execs, exits, OOM kills, exec failures: in the order ``read_counts`` returns them."""
        return [
            CounterMetricFamily(
                "groundtruth_process_execs",
                "Successful execs, by container and program.",
                labels=["container", "program"],
            ),
            CounterMetricFamily(
                "groundtruth_process_exits",
                "Process exits (last thread), by container and outcome.",
                labels=["container", "outcome"],
            ),
            CounterMetricFamily(
                "groundtruth_oom_kills", "Processes chosen by the OOM killer.", labels=["container"]
            ),
            CounterMetricFamily(
                "groundtruth_process_exec_failures",
                "Failed execve calls (PATH-search ENOENT included), by container.",
                labels=["container"],
            ),
        ]

    def describe(self):
        return self._families()
