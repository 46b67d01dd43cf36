"""A real exporter (real eBPF probes) running in a thread, delivering into a MemorySink."""

from __future__ import annotations

import threading
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from exporter.config import ExporterConfig
from exporter.runner import Exporter
from exporter.sinks import FanoutSink
from exporter.sinks.memory import MemorySink
from schema.pipeline_stats import PipelineStats
from testservices.service import free_port


class RunningExporter:
    def __init__(self, config: ExporterConfig, extra_probes=(), store=None, spool_dir=None):
        """With ``store`` (a store.db.Store), events are also written there by a StoreWriter
        spooling to ``spool_dir``, and its health metrics are exported."""
        self.sink = MemorySink()
        sink, collectors = self.sink, []
        if store is not None:
            from store.metrics import SinkCollector
            from store.writer import StoreWriter, WriterSettings

            writer = StoreWriter(store, spool_dir, PipelineStats(), WriterSettings(max_age=0.2))
            sink, collectors = FanoutSink([self.sink, writer]), [SinkCollector(writer)]
        self.exporter = Exporter(config, sink, collectors=collectors)
        self.exporter.probes += list(extra_probes)
        self.config = config
        self.url = f"http://{config.listen}/metrics"

    def start(self) -> RunningExporter:
        self.exporter.start()
        self.thread = threading.Thread(target=self.exporter.run, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.exporter.stop()
        self.thread.join(30)

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "events"):
        """Events matching predicate, waiting until at least one arrives."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.sink.snapshot() if predicate(e)]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no {what} within {timeout}s")

    def events_of(self, pid: int, kinds=("fork", "exec", "exit"), timeout: float = 10.0):
        """{kind: [events]} for one pid once every kind asked for has arrived."""
        deadline = time.monotonic() + timeout
        while True:
            got = {}
            for e in self.sink.snapshot():
                if e.pid == pid and e.kind in kinds:
                    got.setdefault(e.kind, []).append(e)
            if set(kinds) <= got.keys() or time.monotonic() > deadline:
                missing = set(kinds) - got.keys()
                assert not missing, f"pid {pid}: no {sorted(missing)} event within {timeout}s"
                return got
            time.sleep(0.05)

    def scrape(self) -> dict[tuple[str, tuple], float]:
        """{(sample name, sorted labels): value} from the live /metrics endpoint."""
        text = urllib.request.urlopen(self.url, timeout=10).read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
        }


def exporter_config(**overrides) -> ExporterConfig:
    """A config on a free port; the TCP probe only where a test asks for it (tcp=True)."""
    config = ExporterConfig(listen=f"127.0.0.1:{free_port()}", host="test-host", tcp=False)
    for k, v in overrides.items():
        setattr(config, k, v)
    return config
