"""The exporter's main loop: attach probes, scan /proc, self-test, then drain on a timer.

Order matters: probes are attached before the scan so no process falls between the two, and
the self-test runs before serving so its verdict is in the first scrape. With a network namespace
filter (``--netns``), the scans read that namespace only and the self-tests' canaries run in it
(a canary outside it would rightly not be seen). Every drained batch
goes to the sink whole; the sink never blocks (it queues, spools or counts a drop).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from operator import attrgetter

from prometheus_client import CollectorRegistry, Histogram

from exporter.collectors.cgroups import ContainerResourcesCollector
from exporter.collectors.errors import CollectorErrorsCollector
from exporter.collectors.exporter_health import ExporterHealthCollector
from exporter.collectors.host import HostResourcesCollector
from exporter.collectors.process_counts import ProcessCountsCollector
from exporter.collectors.tcp_counts import TcpCountsCollector
from exporter.compiler_memory import release_compiler_memory
from exporter.containers import ContainerResolver
from exporter.detector_rows import detector_rows
from exporter.flags.metrics import FlagsCollector
from exporter.flags.policies import PolicyCollector
from exporter.flags.setup import flag_detector
from exporter.metrics_server import MetricsServer, bind_metrics
from exporter.probes.base import BpfProbe, ProbeContext
from exporter.probes.process import ProcessProbe
from exporter.probes.tcp import TcpProbe
from exporter.proc_scan import ProcScanner, start_ticks
from exporter.process_table import ProcessTable
from exporter.selftest import UNTRUSTED_FIELDS, run_process_selftest
from exporter.sinks import for_sink
from exporter.tcp_scan import TcpScanner
from exporter.tcp_selftest import UNTRUSTED_FIELDS as TCP_UNTRUSTED_FIELDS
from exporter.tcp_selftest import run_tcp_selftest
from schema.events import EVENT_TYPES, process_key
from schema.pipeline_stats import PipelineCollector, PipelineStats

log = logging.getLogger("groundtruth.exporter")
CLOCK_REFRESH_SECONDS = 60
# groundtruth_events_total{type}: "<event type>_<kind>", e.g. process_exec, tcp_connection_close.
EVENT_TYPE_NAMES = {cls: name for name, cls in EVENT_TYPES.items()}
KIND = attrgetter("kind")
# groundtruth_ringbuf_fill_ratio's buckets: 1/16 is where a drain is due (drain_fill_fraction's
# default), 1 a full ring.
RING_FILL_BUCKETS = (1 / 64, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 1.0)


def drain_due(config, probes, since_last_drain: float) -> bool:
    """Whether the probes' ring buffers are due a drain (``Exporter.poll``): one is
    ``drain_fill_fraction`` full (or cannot tell), or ``drain_max_delay_seconds`` have passed."""
    if since_last_drain >= config.drain_max_delay_seconds:
        return True
    fills = [probe.ring_fill() for probe in probes]
    return any(fill is None or fill >= config.drain_fill_fraction for fill in fills)


class Exporter:
    def __init__(
        self,
        config,
        sink,
        registry: CollectorRegistry | None = None,
        stats=None,
        collectors=(),
        metrics: MetricsServer | None = None,
    ):
        """``metrics``: the metrics server already bound (``bind_metrics``), or None to bind it
        in ``start``."""
        self.config = config
        self.sink = sink
        self.extra_collectors = list(collectors)  # e.g. the store writer's health
        self.registry = registry if registry is not None else CollectorRegistry()
        self.collectors: list = []  # what _register_collectors registered, in order
        self.stats = stats if stats is not None else PipelineStats()
        self.ctx = ProbeContext(
            host=config.host,
            stats=self.stats,
            ringbuf_pages=config.ringbuf_pages,
            netns_inum=config.netns_inode(),
        )
        self.table = ProcessTable()
        self.containers = ContainerResolver()
        self.process_probe = ProcessProbe(self.ctx, self.containers, self.table)
        self.probes: list[BpfProbe] = [self.process_probe]
        self.tcp_probe = None
        if config.tcp:
            sessions = self.process_probe.sessions
            self.tcp_probe = TcpProbe(self.ctx, self.containers, self.table, sessions=sessions)
            self.probes.append(self.tcp_probe)
        self.detector = flag_detector(config)
        self.selftest_results: dict[str, bool] = {}
        self.scan_duration_seconds = 0.0
        self._stop = threading.Event()
        self._http = metrics
        self._last_drain = time.monotonic()  # (poll)
        # How full each ring buffer was when drained: how close the exporter came to dropping
        # (groundtruth_events_dropped_total{stage="kernel"}) under the load it had.
        self.ring_fill = Histogram(
            "groundtruth_ringbuf_fill_ratio",
            "How full a probe's ring buffer was at each drain (1: full, events dropped).",
            ["probe"],
            buckets=RING_FILL_BUCKETS,
            registry=None,  # registered with the others in _register_collectors
        )

    # -- start-up -------------------------------------------------------------------------
    def start(self, serve: bool = True) -> None:
        for probe in self.probes:
            probe.load()
        release_compiler_memory()
        self.scan()
        if self.config.selftest:
            self.selftest_process_probe()
            if self.tcp_probe is not None:
                self.selftest_tcp_probe()
        self._register_collectors()
        if serve:
            if self._http is None:
                self._http = bind_metrics(self.config)
            self._http.serve(self.registry)

    def scan(self) -> None:
        """What was running (processes, then connections) before the probes were attached."""
        started = time.monotonic()
        names = self.containers.names  # the runtimes are asked once per container
        sessions = self.process_probe.sessions  # login sessions' workloads, found once each
        scanner = ProcScanner(
            self.config.host, self.ctx.clock, names=names, sessions=sessions,
            netns_inum=self.ctx.netns_inum,
        )  # fmt: skip
        processes = scanner.scan(self.process_probe.next_event_id)
        self.process_probe.adopt_scanned(processes)
        self.deliver(processes)
        if self.tcp_probe is not None:
            connections = TcpScanner(
                self.config.host, self.ctx.clock, names=names, sessions=sessions,
                netns=self.config.netns,
            ).scan(self.tcp_probe.next_event_id)  # fmt: skip
            self.tcp_probe.adopt_scanned(connections)
            self.deliver(connections)
        self.scan_duration_seconds = time.monotonic() - started

    def selftest_tcp_probe(self) -> None:
        own_key = process_key(self.config.host, os.getpid(), start_ticks(os.getpid()))
        problems = run_tcp_selftest(
            self.tcp_probe, self.deliver, own_key=own_key, netns=self.config.netns
        )
        self._record_selftest(self.tcp_probe, problems, TCP_UNTRUSTED_FIELDS)

    def selftest_process_probe(self) -> None:
        problems = run_process_selftest(self.process_probe, self.deliver, netns=self.config.netns)
        self._record_selftest(self.process_probe, problems, UNTRUSTED_FIELDS)

    def _record_selftest(self, probe, problems: dict[str, str], untrusted: dict) -> None:
        """The verdict for the metric; each failed check's fields are blanked from now on."""
        self.selftest_results[probe.name] = not problems
        for check, what in problems.items():
            log.error("%s probe self-test failed: %s; not emitting it", probe.name, what)
            probe.untrusted |= untrusted.get(check, set())

    def _register_collectors(self) -> None:
        cfg = self.config
        readers: list[
            ProcessCountsCollector
            | ContainerResourcesCollector
            | HostResourcesCollector
            | TcpCountsCollector
        ] = [
            ProcessCountsCollector(
                self.process_probe, cfg.container_label_cap, cfg.program_label_cap
            ),
            ContainerResourcesCollector(container_cap=cfg.container_label_cap),
            HostResourcesCollector(),
        ]
        if self.tcp_probe is not None:
            readers.append(TcpCountsCollector(self.tcp_probe, cfg.container_label_cap))
        self.collectors = [
            PipelineCollector(self.stats, [p.kernel_drops for p in self.probes]),
            *readers,
            CollectorErrorsCollector([r.errors for r in readers]),
            ExporterHealthCollector(self),
            *([FlagsCollector(self.detector)] if self.detector is not None else []),
            *(
                [PolicyCollector(self.detector.policy_family)]
                if getattr(self.detector, "policy_family", None) is not None
                else []
            ),
            *self.extra_collectors,
            self.ring_fill,
        ]
        # Each describes its metrics, so two that clash fail here, at start-up, not at scrape.
        for collector in self.collectors:
            self.registry.register(collector)

    # -- the loop --------------------------------------------------------------------------
    def deliver(self, events: list, columns: list | tuple = ()) -> None:
        """Events, and ColumnBatches (``schema.column_batch``) of a drain, to the detector, the
        counters and the sink."""
        if not events and not columns:
            return
        self._count_events(events)
        if self.detector is not None:
            # The detector sees every event object, and of the columns the rows it reads.
            seen = events + [e for b in columns for e in detector_rows(self.detector, b)]
            flags = self.detector.observe(seen)
            if flags:  # to the same sinks, with the events that raised them
                self._count_events(flags)
                events = events + flags
        for batch in columns:
            for kind, n in batch.kind_counts().items():
                self.stats.count_events(f"{EVENT_TYPE_NAMES[batch.cls]}_{kind}", n)
        # With no ColumnBatches (the process probe's batches) for_sink has nothing to turn
        # into events: not asking spares it a look at every event.
        self.sink.write(for_sink(self.sink, events + list(columns)) if columns else list(events))

    def _count_events(self, events: list) -> None:
        """groundtruth_events_total, by class and kind, counted without a Python-level loop
        (this runs for every event)."""
        classes = set(map(type, events))
        if len(classes) == 1:  # one class (a drain of the process probe, flags): kinds alone
            (cls,) = classes
            counts = {(cls, kind): n for kind, n in Counter(map(KIND, events)).items()}
        else:
            counts = Counter(zip(map(type, events), map(KIND, events), strict=True))
        for (cls, kind), n in counts.items():
            self.stats.count_events(f"{EVENT_TYPE_NAMES[cls]}_{kind}", n)

    def drain_once(self) -> None:
        for probe in self.probes:
            fill = probe.ring_fill()
            if fill is not None:
                self.ring_fill.labels(probe.name).observe(fill)
            self.deliver(*probe.drain_columns())
        self._last_drain = time.monotonic()

    def poll(self) -> bool:
        """Drains the probes (and says so) when a batch is due: a ring buffer is
        ``drain_fill_fraction`` full, or ``drain_max_delay_seconds`` have passed since the last
        drain.

        Why not drain at every look: much of a drain's cost is per batch, not per event (the
        wake-up, caches the workload has emptied meanwhile, the detector's and the sinks' work
        per batch). Under an exec storm, quarter-second batches cost about a fifth less CPU
        per event than 50 ms ones. A burst loses no headroom: the rings are still looked at
        every ``drain_interval_seconds``, and one that fills is drained at the next look."""
        if not drain_due(self.config, self.probes, time.monotonic() - self._last_drain):
            return False
        self.drain_once()
        return True

    def run(self) -> None:
        """Drain until stop(); then drain what is left and close the sink."""
        last_clock = time.monotonic()
        try:
            while not self._stop.wait(self.config.drain_interval_seconds):
                self.poll()
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
            self._http.close()
            self._http = None
