"""Flags: time from an exec to its flag being readable in the store (chDB, the deployed
writer settings), with the real exporter, probes and detector."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from bench.result import Result
from exporter.config import ExporterConfig
from exporter.runner import Exporter
from schema.pipeline_stats import PipelineStats
from store.db import open_store
from store.migrations import migrate
from store.writer import StoreWriter, WriterSettings

ROUNDS = 10
POLL_SECONDS = 0.02


def flag_in_store_seconds(reader, program: Path) -> float:
    """Seconds from starting program (in /tmp) until its exec_from_tmp flag is in the store."""
    started = time.perf_counter()
    child = subprocess.Popen([str(program)])
    while not reader.query(
        "SELECT count() FROM flag_events WHERE host = 'bench' AND rule_id = 'exec_from_tmp' "
        "AND pid = {pid:UInt32}",
        {"pid": child.pid},
    )[0][0]:
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - started
    child.wait()
    return seconds


def run() -> list[Result]:
    settings = WriterSettings()
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        tmp = Path(tmp)
        store = open_store(None, data_dir=tmp / "chdb", database="bench")
        migrate(store)
        writer = StoreWriter(store, tmp / "spool", PipelineStats(), settings)
        exporter = Exporter(ExporterConfig(host="bench", selftest=False, tcp=False), writer)
        exporter.start(serve=False)
        loop = threading.Thread(target=exporter.run, daemon=True)
        loop.start()
        reader = open_store(None, data_dir=tmp / "chdb", database="bench")
        try:
            times = []
            for i in range(ROUNDS):
                # A new program each round: the same one under the same parent is a repeat.
                program = tmp / f"dropped-{i}"
                shutil.copy("/bin/true", program)
                times.append(flag_in_store_seconds(reader, program))
        finally:
            exporter.stop()
            loop.join(30)
            reader.close()
    # A single exec fills no ring buffer: it waits for the drain's longest delay.
    config = exporter.config
    floor = max(config.drain_interval_seconds, config.drain_max_delay_seconds) + settings.max_age
    return [
        Result(
            f"exec to its flag in the store (median of {ROUNDS})",
            statistics.median(times),
            "s",
            "drain's longest delay + writer max_age",
            floor,
        ),
        Result(f"exec to its flag in the store (slowest of {ROUNDS})", max(times), "s"),
    ]
