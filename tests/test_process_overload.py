"""Under deliberate overload nothing is lost silently: counted = delivered + dropped, exactly."""

from __future__ import annotations

import subprocess
import time

from exporter.collectors.process_counts import ProcessCountsCollector
from exporter.probes.base import ProbeContext
from exporter.probes.process import ProcessProbe
from exporter.probes.process_abi import EV_EXEC
from tests.fixtures.ebpf import skip_or_fail_without_ebpf


def test_tiny_ring_buffer_drops_are_all_counted(ebpf_problems):
    skip_or_fail_without_ebpf(ebpf_problems)
    probe = ProcessProbe(ProbeContext(host="h", ringbuf_pages=1))  # room for one exec event
    probe.load()
    counts = ProcessCountsCollector(probe)
    delivered = 0
    try:
        subprocess.run(["/bin/bash", "-c", "for i in $(seq 300); do /bin/true; done"], check=True)
        for _ in range(50):  # execs elsewhere on the machine may race a reading: retry
            before = sum(counts.read_counts()[0].values())
            delivered += sum(1 for e in probe.drain() if e.kind == "exec")
            after = sum(counts.read_counts()[0].values())
            dropped = probe.drops_by_kind().get(EV_EXEC, 0)
            if before == after and after == delivered + dropped:
                break
            time.sleep(0.05)
        assert dropped >= 250, "the buffer was meant to overflow"
        assert after == delivered + dropped
        assert probe.kernel_drops()[("kernel", "process_ringbuf_full")] >= dropped
    finally:
        probe.close()
