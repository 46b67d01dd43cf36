"""Event store: the writer's rows/s against a raw columnar insert of the same events in the same
batches and the same run (on a real ClickHouse 18.16 server through clickhouse-driver, and on
embedded chDB), and replay of an on-disk spool after an outage against live writing.

"Raw" turns the events into columns and inserts them, in one thread, with nothing else: it is
what a caller holding the same events would do without the writer. The floor rows compare with
inserting columns built before the clock starts, i.e. the insert alone."""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.result import Result
from schema.pipeline_stats import PipelineStats
from store.db import columnar, open_store
from store.migrations import migrate
from store.writer import StoreWriter, WriterSettings
from testservices.clickhouse import ClickHouseServer, fresh_database_name
from testservices.service import free_port
from testservices.store_helpers import make_events

ROWS = 200_000
ROUNDS = 5  # the contenders alternate, so a busy neighbour slows them alike
BATCH = WriterSettings().batch_size
TABLE = "process_events"


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


def _raw_seconds(backend, events) -> float:
    """Columns from the events and a columnar insert, batch by batch, in this thread."""
    started = time.perf_counter()
    for i in range(0, len(events), BATCH):
        backend.insert(TABLE, columnar(events[i : i + BATCH])[TABLE])
    return time.perf_counter() - started


def _floor_seconds(backend, cols: dict[str, list]) -> float:
    """The insert alone: columns built beforehand."""
    batches = [{k: v[i : i + BATCH] for k, v in cols.items()} for i in range(0, ROWS, BATCH)]
    started = time.perf_counter()
    for batch in batches:
        backend.insert(TABLE, batch)
    return time.perf_counter() - started


def _compare(open_target, work: Path) -> dict[str, list[float]]:
    """Seconds per round of "writer", "raw" and "floor", each writing the same ROWS events.

    All write into the same table, in rotating order, without truncating between them
    (dropping parts would burden whichever runs next).
    """
    seconds = {"writer": [], "raw": [], "floor": []}
    store = open_target()
    migrate(store)
    for r in range(ROUNDS):
        host = f"bench-{r}"
        events = make_events(ROWS, host=host)
        cols = columnar(events)[TABLE]
        # The bench's own pre-built rows are no part of an exporter's heap: keep the garbage
        # collector from rescanning them during the measurements.
        gc.collect()
        gc.freeze()
        order = ["writer", "raw", "floor"]
        for name in order[r % 3 :] + order[: r % 3]:
            if name == "writer":
                took = _writer_seconds(open_target, events, work / f"spool-{r}")
            elif name == "raw":
                took = _raw_seconds(store.backend, events)
            else:
                took = _floor_seconds(store.backend, cols)
            seconds[name].append(took)
        gc.unfreeze()
        stored = store.query(f"SELECT count() FROM {TABLE} WHERE host = {{h:String}}", {"h": host})
        if stored[0][0] != 3 * ROWS:
            raise RuntimeError(f"stored {stored[0][0]} of {3 * ROWS} rows")
    store.close()
    return seconds


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


def _rate(figure, seconds, peer, peer_seconds, goal=None) -> Result:
    """Median rows/s against a same-run peer. A goal is judged on the median of the per-round
    ratios (runs moments apart); the load average goes in the note, since other work on this
    shared machine skews every figure."""
    rate = ROWS / statistics.median(seconds)
    peer_rate = ROWS / statistics.median(peer_seconds)
    paired = statistics.median(p / s for s, p in zip(seconds, peer_seconds, strict=True))
    note = f"per-round ratio {paired:.2f}x; load average {os.getloadavg()[0]:.1f}"
    return Result(
        f"{figure} ({ROWS:,} exec events, median of {ROUNDS})",
        rate,
        "rows/s",
        peer=peer,
        peer_value=peer_rate,
        goal=f">= {goal}x" if goal else "",
        met=paired >= goal if goal else None,
        note=note,
    )


def _rows_for(backend_name: str, seconds: dict[str, list[float]]) -> list[Result]:
    return [
        _rate(
            f"StoreWriter into {backend_name}",
            seconds["writer"],
            f"raw: columns + insert, {BATCH}-event batches, one thread",
            seconds["raw"],
            goal=0.8,
        ),
        _rate(
            f"StoreWriter into {backend_name}, against the insert alone",
            seconds["writer"],
            "floor: insert of columns built beforehand",
            seconds["floor"],
        ),
    ]


def run() -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = ClickHouseServer(work / "clickhouse").start()
        try:
            url = server.url(fresh_database_name())
            seconds = _compare(lambda: open_store(url), work)
            results += _rows_for("ClickHouse 18.16 (clickhouse-driver)", seconds)
            replay = _replay_rate(url, work)
            live = ROWS / statistics.median(seconds["writer"])
            results.append(
                Result(
                    "spool replay after an outage (dedupe read + insert per batch)",
                    replay,
                    "rows/s",
                    peer="live writing, same run",
                    peer_value=live,
                    goal=">= 0.5x",
                    met=replay / live >= 0.5,
                    note=f"load average {os.getloadavg()[0]:.1f}",
                )
            )
        finally:
            server.stop()
        chdb_dir, database = work / "chdb", fresh_database_name()
        seconds = _compare(lambda: open_store(None, data_dir=chdb_dir, database=database), work)
        results += _rows_for("embedded chDB (JSONColumns)", seconds)
    return results
