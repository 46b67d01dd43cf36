"""Shared by the store tests: events built by hand, and a store on either backend."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager

from schema.events import ProcessEvent, process_key
from store.db import open_store
from store.migrations import migrate
from testservices.clickhouse import fresh_database_name

_run = itertools.count()


def make_events(n: int, host: str = "host-a", start_ns: int | None = None, tag: str = "") -> list:
    """n distinct exec events with every field set to something checkable."""
    run = f"{tag or 'r'}{next(_run)}"
    # Recent by default, taken now (not when this module was imported, maybe long before):
    # servers with TTL drop rows older than the retention as they are inserted.
    t0 = start_ns if start_ns is not None else time.time_ns() - 3600 * 10**9
    events = []
    for i in range(n):
        pid = 1000 + i % 30000
        events.append(
            ProcessEvent(
                event_id=f"{run}-{i}",
                kind="exec",
                time_ns=t0 + i * 1000,
                host=host,
                pid=pid,
                ppid=1,
                process_key=process_key(host, pid, 500 + i),
                parent_key=process_key(host, 1, 1),
                start_time_ns=t0 + i * 1000 - 5,
                uid=1000,
                gid=100,
                comm="worker",
                filename="/usr/bin/worker",
                argv=["/usr/bin/worker", f"--n={i}", 'it\'s \\ "quoted"\n'],
                argv_truncated=i % 2,
                exit_code=-1,
                signal=0,
                core_dumped=0,
                outcome="",
                lifetime_ns=0,
                cgroup_id=2**63 + i,
                container_id="c0ffee" if i % 3 else "",
                pod_uid="",
                source="ebpf",
                euid=i % 2 * 1000,
                egid=100,
                auid=1000,
                session_id=3 + i,
                tty="pts/3" if i % 2 else "",
                stdin_type="socket",
                stdout_type="pipe",
                stderr_type="none",
                exe_deleted=i % 2,
                exe_memfd=i % 4 // 3,
                prev_uid=i,
                prev_gid=2 * i,
                prev_euid=3 * i,
                prev_egid=4 * i,
            )
        )
    return events


def stored_ids(store, table: str = "process_events") -> list[str]:
    return [event_id for (event_id,) in store.query(f"SELECT event_id FROM {table}")]


def open_test_store(backend: str, clickhouse_url: str | None, chdb_database) -> object:
    if backend == "clickhouse":
        return open_store(clickhouse_url)
    data_dir, database = chdb_database
    return open_store(None, data_dir=data_dir, database=database)


def wait_until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    """Polls until predicate() holds; a generous timeout only turns a hang into a failure."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def database_with(events: list, backend: str, clickhouse_server, chdb_dir) -> Iterator:
    """A fresh database on ``backend`` (clickhouse or chdb), migrated, holding ``events``;
    dropped afterwards on the server."""
    name = fresh_database_name()
    if backend == "clickhouse":
        store = open_store(clickhouse_server.url(name))
    else:
        store = open_store(None, data_dir=chdb_dir, database=name)
    migrate(store)
    store.insert_events(events)
    try:
        yield store
    finally:
        if backend == "clickhouse":
            store.execute(f"DROP DATABASE IF EXISTS {name}")
        store.close()
