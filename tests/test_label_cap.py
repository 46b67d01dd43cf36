"""10,000 distinct program names through the real probe stay under the label cap."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import Counter

import pytest

from tests.fixtures.ebpf import skip_or_fail_without_ebpf
from testservices.exporter import RunningExporter, exporter_config

NAMES = 10_000
CAP = 50


@pytest.mark.causes_flags("exec_from_tmp")
def test_ten_thousand_program_names_stay_under_the_cap(ebpf_problems, tmp_path):
    skip_or_fail_without_ebpf(ebpf_problems)
    # Hard links to one copy: 10,000 names for one file (links to /bin/true itself would count
    # against its link limit, shared with every earlier run still in pytest's temp dirs).
    true = tmp_path / "true"
    shutil.copy("/bin/true", true)
    for i in range(NAMES):
        os.link(true, tmp_path / f"p{i}")
    # The storm's fork, exec and exit records with these paths add up to about 5 MB, more than
    # the default 4 MiB ring: one stall of the drain thread was then a (counted) drop, in two of
    # seven full runs, with or without the flag detector. This test is about the label cap, so
    # its ring holds the whole storm.
    config = exporter_config(program_label_cap=CAP, selftest=False, ringbuf_pages=4096)
    exp = RunningExporter(config).start()
    try:
        subprocess.run(
            ["/bin/bash", "-c", f"for i in $(seq 0 {NAMES - 1}); do {tmp_path}/p$i; done"],
            cwd=tmp_path,
            check=True,
        )
        ours = f"{tmp_path}/p"
        deadline = time.monotonic() + 20
        seen = set()
        while len(seen) < NAMES and time.monotonic() < deadline:
            seen = {
                e.filename
                for e in exp.sink.snapshot()
                if e.kind == "exec" and e.filename.startswith(ours)
            }
            time.sleep(0.1)
        # Every exec delivered as an event; if not, say whether the kernel counted it dropped.
        drops = exp.exporter.process_probe.drops_by_kind()
        assert len(seen) == NAMES, f"{NAMES - len(seen)} execs missing; kernel drops {drops}"
        series = Counter()
        for (name, labels), v in exp.scrape().items():
            if name == "groundtruth_process_execs_total":
                series[dict(labels)["program"]] += v
        assert len(series) <= CAP + 1
        assert "other" in series
        # Nothing lost to the cap: our execs are all counted somewhere.
        named_ours = sum(v for p, v in series.items() if p.startswith("p") and p[1:].isdigit())
        assert named_ours + series["other"] >= NAMES
    finally:
        exp.stop()
