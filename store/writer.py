"""``StoreWriter``: the sink that puts events into the store, and loses none it can keep.

``write(events)`` only appends to an in-memory buffer and returns: it never waits for the
store. A background thread takes batches off the buffer (when ``batch_size`` events are
waiting, or the oldest has waited ``max_age`` seconds), turns them into columns, and hands them
to an insert thread (one columnar insert per table) while it prepares the next batch.

When the store fails, batches go to a bounded on-disk ``Spool`` instead, and the thread retries
with backoff. Once the store answers again the spool is replayed oldest first, before any newer
batch, so events arrive in order. Before a spooled batch is inserted, the ids already in the
store are filtered out: a batch whose insert failed after the server had stored it (or that a
crash left in the spool after its insert) is not stored twice.

Every loss is counted in ``PipelineStats`` under stage ``sink``: ``spool_full`` (oldest spooled
events dropped to make room), ``buffer_full`` (the thread fell so far behind that even the
spool could not be fed), ``spool_error`` (the store and the spool's disk both failing),
``rejected`` (the store refused the data itself, or no table takes that event type). A batch
the store refuses is halved until the bad rows are found (within ``isolate_budget`` inserts):
the rest is stored, the bad rows are kept in ``<spool>/rejected``. Each kind of failure is said
in one log line.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from schema.column_batch import ColumnBatch, concat, plain
from schema.pipeline_stats import PipelineStats
from store.buffer import MemoryBuffer
from store.db import Store, columnar
from store.errors import is_data_error, short_error
from store.migrations import DEFAULT_RETENTION_DAYS, migrate
from store.retention import drop_expired
from store.schema import TABLE_OF_CLASS, TABLES
from store.spool import Spool

log = logging.getLogger("groundtruth.store")

STAGE = "sink"
# Every reason the writer counts drops under (groundtruth_events_dropped_total{stage="sink"}).
DROP_REASONS = ("buffer_full", "rejected", "spool_error", "spool_full")


@dataclass
class WriterSettings:
    # Few, large inserts: each insert makes the store write a new part, ~7-10 ms of chDB's CPU
    # on these 30-column tables for one row (~25 ms for 8,000), then merge it again. At
    # 8,000 events/s (the main job bench's load), 40,000-row inserts cost chDB ~35% less CPU
    # per row than 8,000-row ones, and their merges less again. The price: an event (a flag)
    # can reach the store up to max_age after the exporter read it.
    batch_size: int = 50000
    max_age: float = 5.0  # seconds an event may wait in memory before a flush
    max_buffer: int = 200_000  # events in memory before the oldest are dropped
    spool_max_bytes: int = 256 * 1024 * 1024
    retry_min: float = 0.5  # seconds between attempts after a failure, doubling...
    retry_max: float = 5.0  # ...up to this
    retention_days: int = DEFAULT_RETENTION_DAYS
    retention_every: float = 3600.0  # seconds between drops of expired day partitions
    isolate_budget: int = 64  # inserts spent finding the bad rows in a refused batch


@dataclass
class _InFlight:
    future: Future
    tables: list  # (table, columns) in insert order
    received: float


class StoreWriter:
    """A Sink (``exporter.sinks``) writing to a ``Store``; the thread starts at construction.

    It takes columns: ColumnBatch items (``schema.column_batch``) after a batch's event objects,
    as the exporter delivers them, go to the store as columns, never as objects."""

    takes_columns = True

    def __init__(
        self,
        store: Store,
        spool_dir,
        stats: PipelineStats,
        settings: WriterSettings | None = None,
    ):
        self.store = store
        self.stats = stats
        self.settings = settings or WriterSettings()
        stats.declare_dropped(STAGE, DROP_REASONS)
        self.spool = Spool(spool_dir, self.settings.spool_max_bytes, self._dropped("spool_full"))
        self.errors = 0  # failed attempts to write, for groundtruth_sink_errors_total
        self.replayed = 0  # spooled events written (or found already stored) after an outage
        self._buffer = MemoryBuffer()
        self._cv = threading.Condition()
        self._closing = False
        self._ready = False  # schema checked on this store
        self._failing = False
        self._rejected = False  # the last failure was the data's fault, not the store's
        self._spool_failing = False
        self._retry_at = 0.0
        self._backoff = self.settings.retry_min
        self._retention_at = 0.0  # monotonic time of the next retention pass
        # One insert runs in its own thread while this one converts the next batch: the
        # server's share of an insert overlaps with ours.
        self._inserter = ThreadPoolExecutor(1, thread_name_prefix="store-insert")
        self._inflight: _InFlight | None = None
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    # --- the Sink interface ---------------------------------------------------------------
    def write(self, events: list) -> None:
        columns = []
        while events and isinstance(events[-1], ColumnBatch):  # delivered after the objects
            columns.append(events[-1])
            events = events[:-1]
        if not events and not columns:
            return
        now = time.time()
        with self._cv:
            was_empty = not self._buffer
            overflow = 0
            if events:
                overflow += self._buffer.add(events, now, self.settings.max_buffer)
            for batch in reversed(columns):
                overflow += self._buffer.add_columns(batch, now, self.settings.max_buffer)
            # Wake the thread when a batch is full, or to start the age clock of a new one.
            if was_empty or len(self._buffer) >= self.settings.batch_size:
                self._cv.notify()
        if overflow > 0:
            self.stats.count_dropped(STAGE, "buffer_full", overflow)

    def close(self, timeout: float = 30.0) -> None:
        """Flushes what is buffered (to the store, or else to the spool), stops the thread and
        closes the store (the writer owns it)."""
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.store.close()

    # --- figures for the metrics ----------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Whether the store took the schema check and has not failed since."""
        return self._ready and not self._failing

    def lag_seconds(self) -> float:
        """Age of the oldest event not yet in the store (0 when all are written)."""
        inflight = self._inflight
        candidates = (self.spool.oldest_received(), self._oldest_buffered())
        oldest = [t for t in candidates + ((inflight.received,) if inflight else ()) if t]
        return max(0.0, time.time() - min(oldest)) if oldest else 0.0

    def _oldest_buffered(self) -> float | None:
        with self._cv:
            return self._buffer.oldest()

    def _dropped(self, reason: str):
        return lambda n: self.stats.count_dropped(STAGE, reason, n)

    # --- the thread -----------------------------------------------------------------------
    def _run(self) -> None:
        self._attempt(lambda: None)  # start-up: say at once when the store is unusable
        self._apply_retention()
        while True:
            try:
                if self._step():
                    return
            except Exception:  # a bug must not stop the sink for good: say it, carry on
                log.exception("store writer: unexpected error; continuing")
                time.sleep(self.settings.retry_min)

    def _step(self) -> bool:
        """One round: write a batch, replay what is due; True once closed and flushed."""
        (received, batch), closing = self._next_batch()
        self._collect_insert(wait=False)
        if batch:
            self._write_batch(received, batch)
        self._replay()
        if closing and not self._buffer:
            self._collect_insert(wait=True)
            self._replay()  # what that last insert left in the spool, if the store is up
            self._inserter.shutdown()
            return True
        self._apply_retention()
        return False

    def _next_batch(self) -> tuple[tuple[float | None, list], bool]:
        """Waits for a full batch, an old enough event, spool work or retention that is due, or
        close()."""
        s = self.settings
        with self._cv:
            while not self._closing:
                if len(self._buffer) >= s.batch_size:
                    break
                if len(self.spool) and self._retry_due():
                    break
                if self._inflight and self._inflight.future.done():
                    break
                waits = []
                if self._buffer:
                    waits.append(self._buffer.oldest() + s.max_age - time.time())
                if len(self.spool):
                    waits.append(self._retry_at - time.monotonic())
                if not self._failing:  # an idle writer still wakes up for retention
                    waits.append(self._retention_at - time.monotonic())
                wait = min(waits) if waits else None  # None: until write() notifies
                if wait is not None and wait <= 0:
                    break
                self._cv.wait(wait)
            return self._buffer.take(s.batch_size), self._closing

    def _write_batch(self, received: float, batch: list) -> None:
        """Converts a batch while the previous insert runs, then inserts it (or spools it)."""
        columns = [b for b in batch if isinstance(b, ColumnBatch)]
        if columns:
            batch = [e for e in batch if not isinstance(e, ColumnBatch)]
        known = [e for e in batch if type(e) in TABLE_OF_CLASS]
        known_columns = [b for b in columns if b.cls in TABLE_OF_CLASS]
        if len(known) < len(batch) or len(known_columns) < len(columns):
            unknown = {type(e).__name__ for e in batch} - {type(e).__name__ for e in known}
            unknown |= {b.cls.__name__ for b in columns if b.cls not in TABLE_OF_CLASS}
            log.error("store writer: no table for %s events: dropped", ", ".join(sorted(unknown)))
            lost = len(batch) - len(known) + sum(len(b) for b in columns if b not in known_columns)
            self.stats.count_dropped(STAGE, "rejected", lost)
        tables = list(columnar(known).items()) + column_tables(known_columns)
        self._collect_insert(wait=True)  # a failed insert spools its rest first: order kept
        if len(self.spool) or not self._retry_due() or not self._attempt(lambda: None):
            for table, cols in tables:  # behind what is already spooled
                self._spool(table, cols, received)
            return
        future = self._inserter.submit(self._insert_tables, tables)
        self._inflight = _InFlight(future, tables, received)
        future.add_done_callback(lambda _: self._wake())

    def _insert_tables(self, tables: list) -> tuple[int, Exception | None]:
        """In the insert thread: (tables written, the error that stopped it or None)."""
        for i, (table, cols) in enumerate(tables):
            try:
                self.store.insert(table, cols)
            except Exception as exc:  # noqa: BLE001 - handed back to the writer thread
                return i, exc
        return len(tables), None

    def _collect_insert(self, wait: bool) -> None:
        """Takes the result of the insert in flight: on failure, spools what it did not write."""
        inflight = self._inflight
        if inflight is None or not (wait or inflight.future.done()):
            return
        self._inflight = None
        written, exc = inflight.future.result()
        if exc is None:
            self._succeeded()
            return
        self._fail(exc)
        for table, cols in inflight.tables[written:]:
            self._spool(table, cols, inflight.received)

    def _spool(self, table: str, cols: dict, received: float) -> None:
        """Puts a batch on disk; a disk that fails too loses it, counted and said once."""
        cols = {name: plain(column) for name, column in cols.items()}  # JSON takes lists
        try:
            self.spool.append(table, cols, received)
        except OSError as exc:
            rows = len(cols["event_id"])
            self.stats.count_dropped(STAGE, "spool_error", rows)
            if not self._spool_failing:
                log.error("store writer: cannot spool to %s: %s", self.spool.directory, exc)
            self._spool_failing = True
            return
        self._spool_failing = False

    def _wake(self) -> None:
        with self._cv:
            self._cv.notify()

    def _replay(self) -> None:
        if len(self.spool):
            self._collect_insert(wait=True)  # the store serves one of us at a time
        while len(self.spool) and self._retry_due():
            segment, table, cols = self.spool.peek()
            if table not in TABLES:
                self.spool.set_aside()
                log.error("spool segment %s names unknown table %r: set aside", segment, table)
                continue
            refused: list[dict] = []
            if not self._attempt(partial(self._insert_new, table, cols, refused)):
                if not self._rejected:
                    return  # the store is failing: retry later
                self.spool.set_aside()  # the data is at fault: keep it aside, go on
                self.stats.count_dropped(STAGE, "rejected", segment.rows)
                continue
            lost = sum(len(part["event_id"]) for part in refused)
            if refused:
                for part in refused:
                    self.spool.keep_rejected(table, part)
                self.stats.count_dropped(STAGE, "rejected", lost)
                log.error(
                    "event store %s refused %d of %d events in %s: kept in %s",
                    self.store.describe(),
                    lost,
                    segment.rows,
                    table,
                    self.spool.rejected_dir,
                )
            self.spool.pop()
            self.replayed += segment.rows - lost
            self._spool_waiting_batches()

    def _spool_waiting_batches(self) -> None:
        """During a long replay, moves full batches from memory to the spool (it keeps order)."""
        with self._cv:
            if len(self._buffer) < self.settings.batch_size:
                return
        (received, batch), _ = self._next_batch()
        if batch:
            self._write_batch(received, batch)

    def _insert_new(self, table: str, cols: dict[str, list], refused: list) -> None:
        """Inserts the rows whose event_id is not in the store yet; adds refused rows to
        ``refused``.

        The ids already stored are read for the batch's hosts and time range (the sort key):
        a set difference here, because ClickHouse 18.16 has no IN over an array parameter and
        has() over thousands of ids is slow.
        """
        ids = cols["event_id"]
        hosts = sorted({h for h in cols["host"] if isinstance(h, str)})
        times = [t for t in cols["time_ns"] if isinstance(t, int) and t >= 0]
        stored = set()
        if hosts and times:
            rows = self.store.query(
                f"SELECT event_id FROM `{table}` WHERE has({{hosts:Array(String)}}, host) "
                "AND time_ns >= {lo:UInt64} AND time_ns <= {hi:UInt64}",
                {"hosts": hosts, "lo": min(times), "hi": max(times)},
            )
            stored = {event_id for (event_id,) in rows}
        keep = [i for i, event_id in enumerate(ids) if event_id not in stored]
        if len(keep) < len(ids):
            cols = _rows(cols, keep)
        if keep:
            refused += self._insert_isolating(table, cols)

    def _insert_isolating(self, table: str, cols: dict[str, list]) -> list[dict]:
        """Inserts cols. When the store refuses the data itself, halves it, within a budget of
        inserts, so that the bad rows are set aside and not the whole batch: returns them.
        A store that fails otherwise raises (the batch is retried; replay dedupes)."""
        refused, budget = [], [self.settings.isolate_budget]

        def attempt(part: dict) -> None:
            budget[0] -= 1
            try:
                self.store.insert(table, part)
                return
            except Exception as exc:
                if not (is_data_error(exc) and self._store_answers()):
                    raise
                n = len(part["event_id"])
                if n == 1 or budget[0] <= 0:
                    refused.append(part)
                    return
            attempt(_rows(part, range(n // 2)))
            attempt(_rows(part, range(n // 2, n)))

        attempt(cols)
        return refused

    def _apply_retention(self) -> None:
        """Drops expired day partitions now and then (the only retention ClickHouse 18.16 has)."""
        if self._failing or time.monotonic() < self._retention_at:
            return
        self._retention_at = time.monotonic() + self.settings.retention_every
        try:
            for dropped in drop_expired(self.store, self.settings.retention_days):
                log.info("retention: dropped %s", dropped)
        except Exception as exc:  # noqa: BLE001 - retried at the next pass; writing goes on
            log.warning("retention pass failed: %s", short_error(exc))

    # --- failures, retries and the one log line -------------------------------------------
    def _retry_due(self) -> bool:
        return not self._failing or time.monotonic() >= self._retry_at

    def _attempt(self, action) -> bool:
        """Runs action against the store (checking the schema first); False if it failed."""
        try:
            if not self._ready:
                migrate(self.store, self.settings.retention_days)
                self._ready = True
            action()
        except Exception as exc:  # noqa: BLE001 - any failure: spool, count, retry later
            self._fail(exc)
            return False
        self._succeeded()
        return True

    def _succeeded(self) -> None:
        if self._failing:
            log.warning(
                "event store %s is back; replaying %d spooled events",
                self.store.describe(),
                self.spool.events,
            )
        self._failing = False
        self._backoff = self.settings.retry_min

    def _fail(self, exc: Exception) -> None:
        self.errors += 1
        self._rejected = False
        if self._ready and is_data_error(exc) and self._store_answers():
            self._rejected = True
            log.error("event store %s refused a batch: %s", self.store.describe(), short_error(exc))
            return
        if not self._failing:
            log.error(
                "event store %s is unavailable (%s); spooling events to %s and retrying",
                self.store.describe(),
                short_error(exc),
                self.spool.directory,
            )
        self._failing = True
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.settings.retry_max)

    def _store_answers(self) -> bool:
        try:
            return self.store.query("SELECT 1") == [(1,)]
        except Exception:  # noqa: BLE001 - not answering is the answer
            return False


def column_tables(batches: list[ColumnBatch]) -> list[tuple[str, dict]]:
    """(table, columns) of ColumnBatches: one insert per event class, its batches joined."""
    by_class: dict[type, list] = {}
    for batch in batches:
        by_class.setdefault(batch.cls, []).append(batch)
    return [(TABLE_OF_CLASS[cls], concat(parts)) for cls, parts in by_class.items()]


def _rows(cols: dict[str, list], indexes) -> dict[str, list]:
    """The given rows of a columnar batch."""
    indexes = list(indexes)
    return {name: [values[i] for i in indexes] for name, values in cols.items()}
