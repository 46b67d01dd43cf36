"""Which store the incident commands read, and store failures as one clear line.

The store is chosen with the store's own options (``store.cli.add_store_arguments``:
``--store-url`` or chDB in ``--data-dir``), plus ``--database`` to read another database than
the URL's or chDB's default. The commands only read: they never migrate or write.
"""

from __future__ import annotations

import os
import time

from incident.errors import IncidentError
from store.cli import add_store_arguments as add_store_options
from store.db import Store, StoreConfigError, open_store
from store.writer import short_error


def add_store_arguments(p) -> None:
    add_store_options(p, writes=False)  # the incident commands only read


def open_from_args(args) -> Store:
    if not args.store_url and not os.path.isdir(args.data_dir):
        raise IncidentError(
            f"no event store: {args.data_dir!r} does not exist (give --store-url for a "
            "ClickHouse server, or --data-dir for chDB)"
        )
    try:
        return open_store(
            args.store_url, data_dir=args.data_dir, cluster=args.cluster, database=args.database
        )
    except (StoreConfigError, ValueError) as e:  # a bad URL, database or cluster name
        raise IncidentError(str(e)) from None
    except ImportError as e:
        raise IncidentError(f"cannot open the event store: {e}") from None


class Reader:
    """Runs the commands' queries, counting them, and turns store failures into one line."""

    def __init__(self, store: Store, record: list | None = None):
        self.store = store
        self.record = record  # (sql, params) of every query, when a list is given (benchmarks)
        self.queries = 0
        self.seconds = 0.0

    def query(self, sql: str, params: dict | None = None) -> list[tuple]:
        """``Store.query``'s form, for code written against a store (the trace assembler)."""
        return self.rows(sql, params or {})

    def rows(self, sql: str, params: dict) -> list[tuple]:
        if self.record is not None:
            self.record.append((sql, dict(params)))
        started = time.monotonic()
        try:
            return self.store.query(sql, params)
        except Exception as e:  # noqa: BLE001 - any store failure becomes one clear line
            raise IncidentError(explain(e, self.store), exit_code=1) from None
        finally:
            self.queries += 1
            self.seconds += time.monotonic() - started


def explain(exc: BaseException, store: Store) -> str:
    text = short_error(exc)
    where = store.describe()
    if "UNKNOWN_TABLE" in text or "doesn't exist" in text or "Code: 60." in text:
        return f"the store {where} has no groundtruth tables yet (no events were written to it)"
    if "UNKNOWN_DATABASE" in text or "Code: 81." in text:
        return f"the store {where} has no such database"
    return f"reading the store {where} failed: {text}"
