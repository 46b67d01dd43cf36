"""The writer loses nothing it can keep: outages, small spools, redelivery, bad credentials.

Every test runs on the real ClickHouse server (18.16) and on chDB. An outage is real on both:
the server is killed with SIGKILL and restarted; chDB's table is detached and attached back.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from schema.column_batch import RowBatch
from schema.events import ProcessEvent
from schema.pipeline_stats import PipelineStats
from store.buffer import MemoryBuffer
from store.db import columnar, open_store
from store.metrics import SinkCollector
from store.migrations import migrate
from store.spool import Spool
from store.writer import StoreWriter, WriterSettings
from testservices.clickhouse import WRITER_USER, fresh_database_name
from testservices.service import free_port
from testservices.store_helpers import make_events, open_test_store, stored_ids, wait_until

FAST = dict(batch_size=200, max_age=0.2, retry_min=0.2, retry_max=1.0)


class Outage:
    """A real failure of the store and its recovery, for either backend."""

    def __init__(self, backend: str, server=None, store=None):
        self.backend, self.server, self.store = backend, server, store

    def begin(self) -> None:
        if self.server:
            self.server.kill()
        else:
            self.store.execute("DETACH TABLE process_events")

    def end(self) -> None:
        if self.server:
            self.server.start()
        else:
            self.store.execute("ATTACH TABLE process_events")


@pytest.fixture(params=["clickhouse", "chdb"])
def target(request, clickhouse_factory, chdb_database):
    """(store URL or None, a reader Store, Outage, outage seconds) on a store the test owns."""
    if request.param == "clickhouse":
        server = clickhouse_factory()
        url = server.url(fresh_database_name())
        reader = open_store(url)
        migrate(reader)
        yield dict(
            open=lambda: open_store(url), reader=reader, outage=Outage("ch", server), secs=10
        )
    else:
        reader = open_test_store("chdb", None, chdb_database)
        migrate(reader)
        opener = lambda: open_test_store("chdb", None, chdb_database)  # noqa: E731
        yield dict(open=opener, reader=reader, outage=Outage("chdb", store=reader), secs=3)
    reader.close()


class Producer:
    """Writes batches of fresh events to the sink from its own thread, like the exporter."""

    def __init__(self, sink, per_batch: int = 50, every: float = 0.05):
        self.sink, self.per_batch, self.every = sink, per_batch, every
        self.generated: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            events = make_events(self.per_batch)
            self.generated += events
            self.sink.write(events)
            time.sleep(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def ids(self) -> list[str]:
        return [e.event_id for e in self.generated]


def run_outage(
    target, tmp_path, seconds: float, until=None, **settings
) -> tuple[list, StoreWriter, PipelineStats]:
    """An outage of at least ``seconds``, and until ``until(stats)`` holds (if given)."""
    stats = PipelineStats()
    writer = StoreWriter(
        target["open"](), tmp_path / "spool", stats, WriterSettings(**FAST, **settings)
    )
    seen_spooled = []
    with Producer(writer) as producer:
        wait_until(lambda: len(producer.generated) >= 500, what="events before the outage")
        target["outage"].begin()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            seen_spooled.append(writer.spool.events)
            time.sleep(0.2)
        if until is not None:
            wait_until(lambda: until(stats), what="the outage's effect")
        target["outage"].end()
        wait_until(lambda: writer.spool.events == 0 and writer.replayed > 0, what="replay")
    writer.close()
    assert max(seen_spooled) > 0  # the outage was real: events waited on disk
    return producer.ids(), writer, stats


def test_an_outage_loses_nothing_and_duplicates_nothing(target, tmp_path):
    generated, writer, stats = run_outage(target, tmp_path, target["secs"])
    stored = stored_ids(target["reader"])
    assert len(stored) == len(set(stored))  # zero duplicates
    assert sorted(stored) == sorted(generated)
    assert stats.snapshot()[1] == {}  # nothing dropped anywhere
    assert writer.errors > 0 and writer.replayed > 0


def test_a_spool_smaller_than_the_outage_drops_exactly_what_it_counts(target, tmp_path):
    def spool_full(stats) -> int:
        return stats.snapshot()[1].get(("sink", "spool_full"), 0)

    # Until the spool overflowed: how many events 3 s bring depends on the machine's load.
    generated, writer, stats = run_outage(
        target, tmp_path, 3, until=spool_full, spool_max_bytes=300_000
    )
    stored = stored_ids(target["reader"])
    dropped = spool_full(stats)
    missing = [i for i in generated if i not in set(stored)]
    assert dropped > 0
    assert len(missing) == dropped and len(stored) == len(set(stored))
    # The oldest spooled events went: the missing ones are one unbroken run of the sequence.
    first = generated.index(missing[0])
    assert generated[first : first + len(missing)] == missing


@pytest.mark.parametrize("form", ["objects", "rows"])
def test_every_field_arrives_exactly(target, tmp_path, form):
    # rows: as the exporter delivers process events, plain tuples in a RowBatch (here split
    # across two deliveries and the writer's batches).
    events = make_events(1234)
    writer = StoreWriter(
        target["open"](), tmp_path / "spool", PipelineStats(), WriterSettings(**FAST)
    )
    if form == "rows":
        batch = RowBatch(ProcessEvent, [tuple(e) for e in events])
        writer.write([batch[:700]])
        writer.write([batch[700:]])
    else:
        writer.write(events)
    writer.close()
    names = list(columnar(events[:1])["process_events"])
    rows = target["reader"].query(f"SELECT {', '.join(names)} FROM process_events ORDER BY time_ns")
    assert [dict(zip(names, row, strict=True)) for row in rows] == [
        {n: getattr(e, n) for n in names} for e in events
    ]


def test_a_batch_already_stored_is_not_stored_again_on_replay(target, tmp_path):
    """A writer that crashed after its insert but before clearing its spool."""
    events = make_events(300)
    target["reader"].insert_events(events[:200])  # the insert that was acknowledged too late
    spool = Spool(tmp_path / "spool", 10**8, on_drop=lambda n: None)
    for table, cols in columnar(events).items():
        spool.append(table, cols)
    writer = StoreWriter(
        target["open"](), tmp_path / "spool", PipelineStats(), WriterSettings(**FAST)
    )
    wait_until(lambda: writer.spool.events == 0, what="replay")
    writer.close()
    stored = stored_ids(target["reader"])
    assert sorted(stored) == sorted(e.event_id for e in events)
    assert writer.replayed == 300


def test_rows_the_store_refuses_are_isolated_kept_and_counted(target, tmp_path, caplog):
    """Two bad rows in a batch of 100: 98 stored, the 2 kept aside on disk, 2 counted."""
    events = make_events(100)
    for i in (17, 60):
        events[i] = dataclasses.replace(events[i], pid="not a number")
    stats = PipelineStats()
    caplog.set_level(logging.ERROR, logger="groundtruth.store")
    writer = StoreWriter(target["open"](), tmp_path / "spool", stats, WriterSettings(**FAST))
    writer.write(events)
    writer.close()
    good = [e.event_id for i, e in enumerate(events) if i not in (17, 60)]
    assert stats.snapshot()[1] == {("sink", "rejected"): 2}
    assert sorted(stored_ids(target["reader"])) == sorted(good)
    kept = [json.loads(p.read_text()) for p in (tmp_path / "spool" / "rejected").iterdir()]
    assert sorted(i for k in kept for i in k["columns"]["event_id"]) == sorted(
        events[i].event_id for i in (17, 60)
    )
    assert any("refused 2 of 100 events" in r.getMessage() for r in caplog.records)


def test_bad_credentials_one_error_line_then_events_wait_on_disk(
    clickhouse_server, tmp_path, caplog
):
    database = fresh_database_name()
    bad_url = clickhouse_server.url(database, password="wrong-password")
    stats = PipelineStats()
    caplog.set_level(logging.ERROR, logger="groundtruth.store")
    writer = StoreWriter(open_store(bad_url), tmp_path / "spool", stats, WriterSettings(**FAST))
    events = make_events(500)
    writer.write(events)
    wait_until(lambda: writer.errors >= 3, what="retries")
    assert not writer.connected
    registry = CollectorRegistry()
    registry.register(SinkCollector([writer]))
    text = generate_latest(registry).decode()  # a scrape works while the store does not
    writer.close()
    errors = [r.getMessage() for r in caplog.records]
    assert len(errors) == 1, errors
    assert WRITER_USER in errors[0] and "wrong-password" not in errors[0]
    assert "password" in errors[0].lower() or "authentication" in errors[0].lower()
    sink = f"clickhouse://{WRITER_USER}@127.0.0.1:{clickhouse_server.tcp_port}/{database}"
    assert f'groundtruth_sink_errors_total{{sink="{sink}"}}' in text
    assert "wrong-password" not in text
    assert writer.spool.events == 500 and stats.snapshot()[1] == {}
    # The right credentials later: everything that waited arrives.
    good = open_store(clickhouse_server.url(database))
    writer = StoreWriter(good, tmp_path / "spool", stats, WriterSettings(**FAST))
    wait_until(lambda: writer.spool.events == 0, what="replay")
    assert writer.connected
    writer.close()
    reader = open_store(clickhouse_server.url(database))
    assert sorted(stored_ids(reader)) == sorted(e.event_id for e in events)
    reader.close()


def test_metrics_report_the_spool(target, tmp_path):
    stats = PipelineStats()
    writer = StoreWriter(target["open"](), tmp_path / "spool", stats, WriterSettings(**FAST))
    target["outage"].begin()
    try:
        writer.write(make_events(100))
        wait_until(lambda: writer.spool.events == 100, what="spooling")
        registry = CollectorRegistry()
        registry.register(SinkCollector([writer]))
        sink = {"sink": writer.store.describe()}
        values = {
            name: registry.get_sample_value(name, sink)
            for name in ("groundtruth_sink_spool_events", "groundtruth_sink_spool_bytes")
        }
        assert values["groundtruth_sink_spool_events"] == 100
        assert values["groundtruth_sink_spool_bytes"] == writer.spool.bytes > 0
        assert registry.get_sample_value("groundtruth_sink_lag_seconds", sink) > 0
    finally:
        target["outage"].end()
    wait_until(lambda: writer.spool.events == 0, what="replay")
    writer.close()
    assert registry.get_sample_value("groundtruth_sink_replayed_events_total", sink) == 100
    assert registry.get_sample_value("groundtruth_sink_lag_seconds", sink) == 0


def test_the_writer_applies_retention(target, tmp_path):
    now = time.time_ns()
    old = make_events(5, start_ns=now - 9 * 86400 * 10**9)
    target["reader"].insert_events(old)
    new = make_events(5, start_ns=now)
    writer = StoreWriter(
        target["open"](), tmp_path / "spool", PipelineStats(), WriterSettings(**FAST)
    )
    writer.write(new)
    writer.close()
    assert sorted(stored_ids(target["reader"])) == sorted(e.event_id for e in new)


def test_events_without_a_table_are_counted_not_fatal(target, tmp_path):
    class Stray:
        pass

    stats = PipelineStats()
    writer = StoreWriter(target["open"](), tmp_path / "spool", stats, WriterSettings(**FAST))
    events = make_events(5)
    writer.write([Stray()] + events + [Stray()])
    writer.close()
    assert stats.snapshot()[1] == {("sink", "rejected"): 2}
    assert sorted(stored_ids(target["reader"])) == sorted(e.event_id for e in events)


def test_a_failing_spool_disk_loses_only_what_it_counts(tmp_path):
    dead = f"clickhouse://default@127.0.0.1:{free_port()}/nowhere"
    stats = PipelineStats()
    spool_dir = tmp_path / "spool"
    writer = StoreWriter(open_store(dead), spool_dir, stats, WriterSettings(**FAST))
    spool_dir.rmdir()
    spool_dir.write_text("a file where the spool directory was")  # every segment write fails
    writer.write(make_events(70))
    writer.close()
    assert stats.snapshot()[1] == {("sink", "spool_error"): 70}


def test_the_memory_buffer_keeps_order_and_drops_the_oldest_beyond_its_limit():
    b = MemoryBuffer()
    assert b.add(list(range(10)), 1.0, limit=100) == 0
    assert b.add(list(range(10, 13)), 2.0, limit=100) == 0
    assert b.take(4) == (1.0, [0, 1, 2, 3]) and len(b) == 9
    assert b.take(7) == (1.0, [4, 5, 6, 7, 8, 9, 10]) and b.oldest() == 2.0
    assert b.add(list(range(13, 20)), 3.0, limit=5) == 4  # 11, 12, 13, 14 dropped
    assert b.take(99) == (3.0, [15, 16, 17, 18, 19])
    assert b.take(3) == (None, []) and len(b) == 0


def connection_columns(n: int):
    """(a ColumnBatch of n close events of the TCP probe's hot path, dated now, its events)."""
    from exporter.probes.base import ProbeContext
    from exporter.probes.tcp import AF_INET, EV_CLOSE, EVENT, F_CLOSED_LOCAL, TICK_NS, TcpProbe
    from exporter.probes.tcp_columns import decode_columns

    now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    loopback = bytes([127, 0, 0, 1]) + bytes(12)
    records = [
        EVENT.pack(
            now + i,
            i + 1,
            now - 10**6,
            now - 10**5,
            i * 3,
            i * 7,
            (100 + i % 5) * TICK_NS,
            1,
            1000 + i % 5,
            0,
            b"client",
            loopback,
            loopback,
            40_000 + i,
            8080,
            AF_INET,
            0,
            EV_CLOSE,
            F_CLOSED_LOCAL,
            i % 3,
            0,
        )  # fmt: skip
        for i in range(n)
    ]
    events, batch = decode_columns(TcpProbe(ProbeContext(host="host-a")), records)
    assert events == [] and len(batch) == n
    return batch, batch.events()


def stored_connections(reader, names: list[str]) -> list[dict]:
    rows = reader.query(f"SELECT {', '.join(names)} FROM tcp_connection_events ORDER BY time_ns")
    return [dict(zip(names, row, strict=True)) for row in rows]


def test_columns_arrive_exactly_with_the_objects_around_them(target, tmp_path):
    """ColumnBatches (after a batch's objects, as the exporter delivers them), split across the
    writer's batches, are stored as their rows' events would be."""
    batch, expected = connection_columns(450)  # FAST's batch_size 200: split three ways
    processes = make_events(30)
    stats = PipelineStats()
    writer = StoreWriter(target["open"](), tmp_path / "spool", stats, WriterSettings(**FAST))
    writer.write(processes[:10] + [batch[:300]])
    writer.write([batch[300:]])
    writer.write(processes[10:])
    writer.close()
    names = list(columnar(expected[:1])["tcp_connection_events"])
    assert stored_connections(target["reader"], names) == [
        {n: getattr(e, n) for n in names} for e in expected
    ]
    assert sorted(stored_ids(target["reader"])) == sorted(e.event_id for e in processes)
    assert stats.snapshot()[1] == {}


def test_columns_spooled_in_an_outage_are_replayed_exactly(target, tmp_path):
    """A ColumnBatch the store could not take waits on disk as rows and is stored later."""
    batch, expected = connection_columns(120)
    dead = f"clickhouse://default@127.0.0.1:{free_port()}/nowhere"
    down = StoreWriter(
        open_store(dead), tmp_path / "spool", PipelineStats(), WriterSettings(**FAST)
    )
    down.write([batch])
    down.close()
    assert down.spool.events == 120
    stats = PipelineStats()
    writer = StoreWriter(target["open"](), tmp_path / "spool", stats, WriterSettings(**FAST))
    wait_until(lambda: writer.spool.events == 0 and writer.replayed == 120, what="replay")
    writer.close()
    names = list(columnar(expected[:1])["tcp_connection_events"])
    assert stored_connections(target["reader"], names) == [
        {n: getattr(e, n) for n in names} for e in expected
    ]
    assert stats.snapshot()[1] == {}


def test_the_memory_buffer_takes_column_batches_by_rows():
    batch, expected = connection_columns(10)
    b = MemoryBuffer()
    assert b.add([1, 2], 1.0, limit=100) == 0
    assert b.add_columns(batch, 2.0, limit=100) == 0
    received, taken = b.take(5)
    assert received == 1.0 and taken[:2] == [1, 2] and len(b) == 7
    assert [e.event_id for e in taken[2].events()] == [e.event_id for e in expected[:3]]
    _, rest = b.take(99)
    assert [e.event_id for e in rest[0].events()] == [e.event_id for e in expected[3:]]
    assert b.add_columns(batch, 3.0, limit=4) == 6  # the oldest rows dropped
    assert [e.event_id for e in b.take(99)[1][0].events()] == [e.event_id for e in expected[6:]]
