"""``Store``: the event store as the rest of groundtruth sees it, on either backend.

``open_store(url, data_dir)`` picks the backend: a ``clickhouse://user:password@host:port/db``
URL means a ClickHouse server; no URL means chDB in ``data_dir``. With ``cluster`` set, DDL
runs on every server of that cluster (from ``system.clusters``) and reads and writes go
through the ``Distributed`` tables, which carry the plain table names: queries do not change.
"""

from __future__ import annotations

import urllib.parse
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from operator import attrgetter
from pathlib import Path

from schema.events import columns, row_columns
from store.backends import EmbeddedBackend, ServerBackend, ident
from store.errors import StoreConfigError
from store.schema import LOCAL_SUFFIX, TABLE_OF_CLASS, Features

DEFAULT_DATABASE = "groundtruth"
DEFAULT_DATA_DIR = "/var/lib/groundtruth/chdb"
DEFAULT_PORT = 9000


class Store:
    def __init__(self, backend, cluster: str | None = None, on_cluster_ddl: bool = False):
        if on_cluster_ddl and not cluster:
            raise StoreConfigError("ON CLUSTER DDL needs a cluster name")
        if cluster is not None:
            ident(cluster)
            if backend.name != "clickhouse":
                raise StoreConfigError("cluster mode needs a ClickHouse server URL, not chDB")
        self.backend = backend
        self.cluster = cluster
        # DDL once with ON CLUSTER (the servers' ZooKeeper spreads it), or on each server.
        self.on_cluster_ddl = on_cluster_ddl

    # --- the four operations, same SQL on both backends -------------------------------------
    def execute(self, sql: str, params: dict | None = None) -> None:
        self.backend.execute(sql, params)

    def query(self, sql: str, params: dict | None = None) -> list[tuple]:
        return self.backend.query(sql, params)

    def insert(self, table: str, columns: dict[str, list]) -> None:
        self.backend.insert(table, columns)

    def insert_events(self, events: list) -> int:
        """Columnar inserts of a mixed batch, one per event type; returns the rows written."""
        for table, cols in columnar(events).items():
            self.insert(table, cols)
        return len(events)

    # --- what the schema code needs ------------------------------------------------------------
    @property
    def database(self) -> str:
        return self.backend.database

    @cached_property
    def features(self) -> Features:
        return Features.for_version(self.backend.version())

    def local_table(self, table: str) -> str:
        """The table holding the rows on each server: ``<table>_local`` in cluster mode."""
        return table + LOCAL_SUFFIX if self.cluster else table

    @contextmanager
    def nodes(self) -> Iterator[list]:
        """A backend per server to run DDL on: each server of the cluster, or just this one."""
        if not self.cluster:
            yield [self.backend]
            return
        rows = self.query(
            "SELECT DISTINCT host_address, port FROM system.clusters WHERE cluster = {c:String}",
            {"c": self.cluster},
        )
        if not rows:
            raise StoreConfigError(f"cluster {self.cluster!r} is not in system.clusters")
        nodes = [self.backend.with_address(host, port) for host, port in sorted(rows)]
        try:
            yield nodes
        finally:
            for node in nodes:
                node.close()

    def describe(self) -> str:
        where = self.backend.describe()
        return f"{where} cluster {self.cluster}" if self.cluster else where

    def close(self) -> None:
        self.backend.close()


def columnar(events: list) -> dict[str, dict[str, list]]:
    """{table: {column: [values...]}} for a batch of events of any known types, in order."""
    by_table: dict[str, list] = defaultdict(list)
    for event in events:
        try:
            by_table[TABLE_OF_CLASS[type(event)]].append(event)
        except KeyError:
            raise TypeError(f"no table stores {type(event).__name__}") from None
    out = {}
    for table, rows in by_table.items():
        names = [name for name, _, _ in columns(type(rows[0]))]
        if isinstance(rows[0], tuple):  # rows (schema.events row_class)
            out[table] = row_columns(names, rows)
        else:  # map() with a C-level getter per column: the fastest way measured here
            out[table] = {name: list(map(attrgetter(name), rows)) for name in names}
    return out


URL_FORMS = (
    "clickhouse://user:password@host:port/database[?cluster=NAME[&ddl=on_cluster]] "
    "or chdb:DIRECTORY"
)

PASSWORD_ESCAPES = "a password holding / ? # or @ must be %-encoded"


def parse_url(url: str) -> dict:
    """A ClickHouse URL (``URL_FORMS``) -> ServerBackend arguments, plus ``cluster`` and
    ``on_cluster_ddl``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as e:  # "Invalid IPv6 URL": it quotes nothing of the URL
        raise StoreConfigError(f"store URL {redact(url)!r}: {e}") from None
    if parts.scheme != "clickhouse" or not parts.hostname:
        raise StoreConfigError(f"store URL {redact(url)!r} is not {URL_FORMS}")
    if "@" in parts.path + parts.query + parts.fragment:  # the password went past the host
        raise StoreConfigError(f"store URL {redact(url)!r}: {PASSWORD_ESCAPES}")
    query = urllib.parse.parse_qs(parts.query)
    unknown = set(query) - {"cluster", "ddl"}
    if unknown:
        raise StoreConfigError(f"store URL {redact(url)!r}: unknown options {sorted(unknown)}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:  # its message quotes the text, which may be part of the password
        raise StoreConfigError(
            f"store URL {redact(url)!r}: the port is out of range or not a number "
            f"({PASSWORD_ESCAPES})"
        ) from None
    database = urllib.parse.unquote(parts.path.lstrip("/")) or DEFAULT_DATABASE
    ident(database)
    return dict(
        host=parts.hostname,
        port=port,
        user=urllib.parse.unquote(parts.username or "default"),
        password=urllib.parse.unquote(parts.password or ""),
        database=database,
        cluster=query.get("cluster", [None])[-1],
        on_cluster_ddl=_ddl_mode(query.get("ddl", ["per_server"])[-1], url),
    )


def _ddl_mode(value: str, url: str) -> bool:
    if value not in ("per_server", "on_cluster"):
        raise StoreConfigError(f"store URL {redact(url)!r}: ddl is per_server or on_cluster")
    return value == "on_cluster"


def redact(url: str) -> str:
    """The URL with its password (and any query value but ``cluster`` and ``ddl``) replaced,
    for messages. Written for malformed URLs too: the user info is everything between
    ``//`` and the last ``@`` (a password may hold ``/``, ``?`` or ``@``)."""
    head, sep, rest = url.partition("//")
    if not sep:
        return url
    userinfo, at, tail = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = userinfo.split(":", 1)[0] + ":***@" + tail
    base, q, query = rest.partition("?")
    if q:
        pairs = [p.partition("=") for p in query.split("&")]
        query = "&".join(
            k + eq + (v if k in ("cluster", "ddl") else "***") if eq else k for k, eq, v in pairs
        )
    return head + sep + base + q + query


def open_store(
    url: str | None = None,
    data_dir: str | Path = DEFAULT_DATA_DIR,
    cluster: str | None = None,
    database: str | None = None,
    on_cluster_ddl: bool = False,
) -> Store:
    """The store at ``url`` (see ``URL_FORMS``) or, without one, chDB in ``data_dir``.

    Opening does not connect to a server: a server that is down fails the first operation,
    which is what the writer retries. ``database`` overrides the URL's (chDB: the default is
    ``groundtruth``); ``cluster`` and ``on_cluster_ddl`` add to the URL's ``?cluster=`` and
    ``&ddl=on_cluster``.
    """
    if url and url.startswith("chdb:"):
        url, data_dir = None, url[len("chdb:") :]
    if url:
        args = parse_url(url)
        url_cluster, url_on_cluster = args.pop("cluster"), args.pop("on_cluster_ddl")
        cluster, on_cluster_ddl = cluster or url_cluster, on_cluster_ddl or url_on_cluster
        if database:
            args["database"] = database
        # Through a Distributed table, make an insert return only once every shard has it:
        # otherwise rows wait in a local queue the writer cannot see or retry. And let a query
        # whose IN / JOIN subquery reads Distributed tables too run it once, on the initiator
        # (GLOBAL), instead of being refused as "double-distributed": the same SQL then serves
        # one server and a cluster.
        settings = (
            {"insert_distributed_sync": 1, "distributed_product_mode": "global"} if cluster else {}
        )
        return Store(ServerBackend(**args, settings=settings), cluster, on_cluster_ddl)
    if cluster:  # said before chDB is opened: it can open only one directory per process
        raise StoreConfigError("cluster mode needs a ClickHouse server URL, not chDB")
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    return Store(EmbeddedBackend(data_dir, database or DEFAULT_DATABASE))
