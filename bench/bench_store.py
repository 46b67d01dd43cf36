"""Event store: the writer's rows/s into a real ClickHouse 18.16 server against a raw
clickhouse-driver columnar insert of the same rows in the same batches; replay of an on-disk
spool after an outage against live writing; the writer on embedded chDB against a raw chDB
columnar insert."""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.result import Result
from exporter.pipeline_stats import PipelineStats
from store.db import columnar, open_store
from store.migrations import migrate
from store.writer import StoreWriter, WriterSettings
from tests.fixtures.clickhouse import ClickHouseServer, fresh_database_name
from tests.fixtures.service import free_port
from tests.store_helpers import make_events

ROWS = 200_000
ROUNDS = 5  # writer and raw alternate, so a busy neighbour slows both alike
BATCH = WriterSettings().batch_size


def _batches(cols: dict[str, list], size: int):
    n = len(cols["event_id"])
    for i in range(0, n, size):
        yield {k: v[i : i + size] for k, v in cols.items()}


def _writer_seconds(open_target, events, spool_dir: Path) -> float:
    """From the first write() until close() returned with every event stored, once the writer
    has connected."""
    writer = StoreWriter(open_target(), spool_dir, PipelineStats(), WriterSettings())
    while not writer.connected:  # start-up (schema check, retention pass) is not throughput
        time.sleep(0.01)
    time.sleep(0.1)
    started = time.perf_counter()
    for i in range(0, len(events), 1000):  # the exporter hands over drained batches like this
        writer.write(events[i : i + 1000])
    writer.close(timeout=600)
    seconds = time.perf_counter() - started
    if writer.spool.events or writer.errors:
        raise RuntimeError(f"writer spooled {writer.spool.events} events, {writer.errors} errors")
    return seconds


def _raw_seconds(backend, table: str, cols: dict[str, list]) -> float:
    started = time.perf_counter()
    for batch in _batches(cols, BATCH):
        backend.insert(table, batch)
    return time.perf_counter() - started


def _median_rate(seconds: list[float]) -> float:
    return ROWS / statistics.median(seconds)


def _compare(open_target, work: Path) -> tuple[float, float, float]:
    """(writer rows/s, raw rows/s, median of the per-round ratios), medians of ROUNDS.

    Both write the same rows into the same table, in alternating order, without truncating
    between them (dropping parts would burden whichever runs next).
    """
    writer_s, raw_s = [], []
    store = open_target()
    migrate(store)
    for r in range(ROUNDS):
        host = f"bench-{r}"
        events = make_events(ROWS, host=host)
        cols = columnar(events)["process_events"]
        # The bench's own pre-built rows are no part of an exporter's heap: keep the garbage
        # collector from rescanning them during either measurement.
        gc.collect()
        gc.freeze()
        for which in ("raw", "writer") if r % 2 == 0 else ("writer", "raw"):
            if which == "raw":
                raw_s.append(_raw_seconds(store.backend, "process_events", cols))
            else:
                writer_s.append(_writer_seconds(open_target, events, work / f"spool-{r}"))
        gc.unfreeze()
        stored = store.query(
            "SELECT count() FROM process_events WHERE host = {h:String}", {"h": host}
        )[0][0]
        if stored != 2 * ROWS:
            raise RuntimeError(f"stored {stored} of {2 * ROWS} rows")
    store.close()
    paired = statistics.median(r / w for r, w in zip(raw_s, writer_s, strict=True))
    return _median_rate(writer_s), _median_rate(raw_s), paired


def _replay_rate(url: str, work: Path) -> float:
    """Events/s replayed from a spool filled while the store was unreachable."""
    dead = f"clickhouse://default@127.0.0.1:{free_port()}/nowhere"
    events = make_events(ROWS, host="bench-replay")
    down = StoreWriter(open_store(dead), work / "replay", PipelineStats(), WriterSettings())
    down.write(events)
    down.close()
    started = time.perf_counter()
    up = StoreWriter(open_store(url), work / "replay", PipelineStats(), WriterSettings())
    while up.spool.events:
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    up.close()
    if up.replayed != ROWS:
        raise RuntimeError(f"replayed {up.replayed} of {ROWS}")
    return ROWS / seconds


def _rate(figure, value, peer, peer_value, goal, paired=None) -> Result:
    """A rows/s figure against its same-run peer, with a ratio goal (judged on the per-round
    ratios when there are rounds: they compare runs made moments apart). The load average goes
    in the note: other work on this shared machine skews every figure."""
    ratio = paired if paired is not None else value / peer_value
    load = f"load average {os.getloadavg()[0]:.1f} when measured"
    note = f"per-round ratio {paired:.2f}x; {load}" if paired is not None else load
    return Result(
        figure,
        value,
        "rows/s",
        peer=peer,
        peer_value=peer_value,
        goal=f">= {goal}x",
        met=ratio >= goal,
        note=note,
    )


def run() -> list[Result]:
    results = []
    rounds = f"{ROWS:,} exec events, median of {ROUNDS}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = ClickHouseServer(work / "clickhouse").start()
        try:
            url = server.url(fresh_database_name())
            writer, raw, paired = _compare(lambda: open_store(url), work)
            results.append(
                _rate(
                    f"StoreWriter into ClickHouse 18.16 ({rounds})",
                    writer,
                    f"raw clickhouse-driver columnar insert, {BATCH}-row batches",
                    raw,
                    0.8,
                    paired,
                )
            )
            replay = _replay_rate(url, work)
            results.append(
                _rate(
                    "spool replay after an outage (dedupe read + insert per batch)",
                    replay,
                    "live writing, same run",
                    writer,
                    0.5,
                )
            )
        finally:
            server.stop()
        chdb_dir, database = work / "chdb", fresh_database_name()
        writer, raw, paired = _compare(
            lambda: open_store(None, data_dir=chdb_dir, database=database), work
        )
        results.append(
            _rate(
                f"StoreWriter into embedded chDB ({rounds})",
                writer,
                f"raw chDB JSONColumns insert, {BATCH}-row batches",
                raw,
                0.8,
                paired,
            )
        )
    return results
