"""The exporter's main loop: attach probes, scan /proc, self-test, then drain on a timer.

Order matters: probes are attached before the scan so no process falls between the two, and
the self-test runs before serving so its verdict is in the first scrape. Every drained batch
goes to the sink whole; the sink never blocks (it queues, spools or counts a drop).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from prometheus_client import CollectorRegistry, start_http_server

from exporter.collectors.cgroups import ContainerResourcesCollector
from exporter.collectors.exporter_health import ExporterHealthCollector
from exporter.collectors.host import HostResourcesCollector
from exporter.collectors.process_counts import ProcessCountsCollector
from exporter.compiler_memory import release_compiler_memory
from exporter.containers import ContainerResolver
from exporter.pipeline_stats import PipelineCollector, PipelineStats
from exporter.probes.base import ProbeContext
from exporter.probes.process import ProcessProbe
from exporter.proc_scan import ProcScanner
from exporter.process_table import ProcessTable
from exporter.selftest import UNTRUSTED_FIELDS, run_process_selftest

log = logging.getLogger("groundtruth.exporter")
CLOCK_REFRESH_SECONDS = 60


class Exporter:
    def __init__(self, config, sink, registry: CollectorRegistry | None = None, stats=None):
        self.config = config
        self.sink = sink
        self.registry = registry if registry is not None else CollectorRegistry()
        self.stats = stats if stats is not None else PipelineStats()
        self.ctx = ProbeContext(
            host=config.host, stats=self.stats, ringbuf_pages=config.ringbuf_pages
        )
        self.table = ProcessTable()
        self.containers = ContainerResolver()
        self.process_probe = ProcessProbe(self.ctx, self.containers, self.table)
        self.probes = [self.process_probe]
        self.selftest_results: dict[str, bool] = {}
        self.scan_duration_seconds = 0.0
        self._stop = threading.Event()
        self._http = None

    # -- start-up -------------------------------------------------------------------------
    def start(self, serve: bool = True) -> None:
        for probe in self.probes:
            probe.load()
        release_compiler_memory()
        scanner = ProcScanner(self.config.host, self.ctx.clock)
        scanned = scanner.scan(self.process_probe.next_event_id)
        self.scan_duration_seconds = scanner.duration_seconds
        self.process_probe.adopt_scanned(scanned)
        self.deliver(scanned)
        if self.config.selftest:
            self.selftest_process_probe()
        self._register_collectors()
        if serve:
            addr, port = self.config.listen_address()
            self._http = start_http_server(port, addr, registry=self.registry)

    def selftest_process_probe(self) -> None:
        problems = run_process_selftest(self.process_probe, self.deliver)
        self.selftest_results["process"] = not problems
        for field, what in problems.items():
            log.error("process probe self-test failed: %s; not emitting it", what)
            self.process_probe.untrusted |= UNTRUSTED_FIELDS.get(field, set())

    def _register_collectors(self) -> None:
        cfg = self.config
        for collector in (
            PipelineCollector(self.stats, [p.kernel_drops for p in self.probes]),
            ProcessCountsCollector(
                self.process_probe, cfg.container_label_cap, cfg.program_label_cap
            ),
            ContainerResourcesCollector(container_cap=cfg.container_label_cap),
            HostResourcesCollector(),
            ExporterHealthCollector(self),
        ):
            self.registry.register(collector)

    # -- the loop --------------------------------------------------------------------------
    def deliver(self, events: list) -> None:
        if not events:
            return
        for kind, n in Counter(e.kind for e in events).items():
            self.stats.count_events(kind, n)
        self.sink.write(events)

    def drain_once(self) -> None:
        for probe in self.probes:
            self.deliver(probe.drain())

    def run(self) -> None:
        """Drain until stop(); then drain what is left and close the sink."""
        last_clock = time.monotonic()
        try:
            while not self._stop.wait(self.config.drain_interval_seconds):
                self.drain_once()
                if time.monotonic() - last_clock > CLOCK_REFRESH_SECONDS:
                    self.ctx.clock.refresh()
                    last_clock = time.monotonic()
        finally:
            self.shutdown()

    def stop(self) -> None:
        self._stop.set()

    def shutdown(self) -> None:
        if self.process_probe.bpf is not None:
            self.drain_once()
        self.sink.close()
        for probe in self.probes:
            probe.close()
        if self._http is not None:
            self._http[0].shutdown()
            self._http = None
