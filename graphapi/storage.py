"""The event store for one request: ``get_store()`` through ``g``, released at teardown.

Config ``STORE`` (a ``store.db.Store``) is shared by every request and left open: that is how an
embedded chDB store is served (one process may open a data directory once). Otherwise
``STORE_URL`` (``clickhouse://...``) is opened per request and closed at teardown.

Every call goes through ``Gateway``, which turns a store failure into ``StoreUnavailable`` (503)
and appends the statements run to config ``STATEMENT_LOG`` when that is a list (the
benchmark replays them as raw SQL).
"""

from __future__ import annotations

import logging
import re

from flask import current_app, g

from graphapi.errors import StoreUnavailable
from store.db import open_store, redact
from store.params import ParameterError

log = logging.getLogger("groundtruth.graphapi")

# ClickHouse error codes that mean our SQL is wrong, not that the store is away: a 500 (and a
# logged traceback), not a 503 that invites retrying. Syntax error, unknown identifier or
# function, bad argument count or type, type mismatch, aggregate misuse.
QUERY_BUG_CODES = {42, 43, 46, 47, 53, 62, 184, 215}


def is_query_bug(exc: Exception) -> bool:
    """clickhouse-driver carries the code as ``.code``; chDB only in its message."""
    if isinstance(exc, UnicodeDecodeError):
        # The server answered with text the driver cannot decode: an error message cut
        # mid-character (a query over the size limit, quoted back) or stored bytes that are
        # not UTF-8. Either way retrying cannot help: not "unavailable".
        return True
    code = getattr(exc, "code", None)
    if code is None:
        m = re.search(r"Code: (\d+)", str(exc))
        code = int(m.group(1)) if m else None
    return code in QUERY_BUG_CODES


class Gateway:
    """The store's query/insert, with failures mapped to 503 and an optional statement log."""

    def __init__(self, store, record: list | None = None):
        self.store = store
        self.record = record

    def _call(self, what: str, fn, *args):
        try:
            return fn(*args)
        except ParameterError:
            raise  # our own SQL and its parameters disagree: a bug, not an outage
        except Exception as e:  # any other failure means "unavailable"
            if is_query_bug(e):
                raise  # the error handler logs it with its traceback and answers 500
            log.warning("graphapi: store %s failed: %s", what, e)
            raise StoreUnavailable(
                description=f"the event store is unavailable ({type(e).__name__}); retry later"
            ) from None

    def query(self, sql: str, params: dict | None = None) -> list[tuple]:
        if self.record is not None:
            self.record.append((sql, dict(params or {})))
        return self._call("query", self.store.query, sql, params)

    def insert(self, table: str, columns: dict) -> None:
        self._call("insert", self.store.insert, table, columns)


def get_store() -> Gateway:
    if "store" not in g:
        cfg = current_app.config
        shared = cfg.get("STORE")
        if shared is not None:
            store = shared
        elif cfg.get("STORE_URL"):
            try:
                store = open_store(cfg["STORE_URL"])
            except Exception as e:  # noqa: BLE001
                log.warning("graphapi: cannot open %s: %s", redact(cfg["STORE_URL"]), e)
                raise StoreUnavailable(description="the event store is unavailable") from None
            g.owned_store = store
        else:
            raise StoreUnavailable(description="no event store is configured")
        g.store = Gateway(store, cfg.get("STATEMENT_LOG"))
    return g.store


def close_store(_exc=None) -> None:
    store = g.pop("owned_store", None)
    g.pop("store", None)
    if store is not None:
        try:
            store.close()
        except Exception as e:  # noqa: BLE001 - closing a broken connection must not fail a reply
            log.debug("graphapi: closing the store: %s", e)


def register(app) -> None:
    app.teardown_appcontext(close_store)
