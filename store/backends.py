"""The two ways to reach ClickHouse, behind one small interface.

``ServerBackend`` talks the native protocol to a clickhouse-server through clickhouse-driver;
``EmbeddedBackend`` runs chDB in this process on a data directory. Both offer the same four
operations on the same SQL (placeholders as in ``store.params``):

- ``execute(sql, params)``: a statement, no result;
- ``query(sql, params)``: rows as tuples;
- ``insert(table, columns)``: a columnar insert of ``{column: [values...]}``;
- ``version()``: the server's version as a tuple of ints.

Each backend works in one database (``ensure_database`` creates it), so queries name tables
without a database, and serializes its own calls with a lock: the writer thread and readers
may share one.
"""

from __future__ import annotations

import json
import logging
import re
import threading

from schema.column_batch import plain
from store import params as P
from store.errors import StoreConfigError, short_error

# clickhouse-driver logs every failed connect with a traceback; the writer reports outages in
# one line of its own instead.
logging.getLogger("clickhouse_driver.connection").setLevel(logging.ERROR)

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")


def ident(name: str) -> str:
    """A database, table, column or cluster name, checked and back-quoted for SQL text."""
    if not IDENTIFIER.match(name):
        raise ValueError(f"not a valid identifier: {name!r}")
    return f"`{name}`"


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _insert_head(table: str, columns: dict) -> str:
    return f"INSERT INTO {ident(table)} ({', '.join(ident(c) for c in columns)})"


class ServerBackend:
    """clickhouse-server over the native protocol (clickhouse-driver)."""

    name = "clickhouse"

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        database: str,
        settings: dict | None = None,
        connect_timeout: float = 3.0,
        timeout: float = 30.0,
    ):
        from clickhouse_driver import Client

        self.host, self.port, self.user, self.password = host, port, user, password
        self.database = database
        self._lock = threading.Lock()
        self._options = dict(
            port=port,
            user=user,
            password=password,
            connect_timeout=connect_timeout,
            send_receive_timeout=timeout,
            sync_request_timeout=timeout,
            settings=settings or {},
        )
        self._client = Client(host, database=database, **self._options)

    def _run(self, sql: str, data=None, params=None, **kwargs):
        with self._lock:
            try:
                return self._client.execute(sql, data if data is not None else params, **kwargs)
            except BaseException:
                # A failed call can leave the connection mid-packet: start the next one afresh.
                self._client.disconnect()
                raise

    def execute(self, sql: str, params: dict | None = None) -> None:
        self.query(sql, params)

    def query(self, sql: str, params: dict | None = None) -> list[tuple]:
        if P.check(sql, params):
            return self._run(P.to_pyformat(sql), params=params)
        return self._run(sql)

    def insert(self, table: str, columns: dict) -> None:
        """A columnar insert; a column may be a list, a numpy array or ``Coded`` text
        (``schema.column_batch``): the driver is given lists."""
        data = [plain(column) for column in columns.values()]
        self._run(_insert_head(table, columns) + " VALUES", data=data, columnar=True)

    def version(self) -> tuple[int, ...]:
        return parse_version(self.query("SELECT version()")[0][0])

    def ensure_database(self, on_cluster: str | None = None) -> None:
        """CREATE DATABASE through a connection that does not need it to exist yet (on every
        server of ``on_cluster``, with distributed DDL)."""
        from clickhouse_driver import Client

        where = f" ON CLUSTER {ident(on_cluster)}" if on_cluster else ""
        bootstrap = Client(self.host, **self._options)
        try:
            bootstrap.execute(f"CREATE DATABASE IF NOT EXISTS {ident(self.database)}{where}")
        finally:
            bootstrap.disconnect()

    def with_address(self, host: str, port: int) -> ServerBackend:
        """The same credentials and database on another server (a cluster's shard)."""
        return ServerBackend(host, port, self.user, self.password, self.database, **self._rest())

    def _rest(self) -> dict:
        o = self._options
        return dict(
            settings=o["settings"],
            connect_timeout=o["connect_timeout"],
            timeout=o["send_receive_timeout"],
        )

    def describe(self) -> str:
        """Where this backend points, without the password (for log lines)."""
        return f"clickhouse://{self.user}@{self.host}:{self.port}/{self.database}"

    def close(self) -> None:
        with self._lock:
            self._client.disconnect()


class EmbeddedBackend:
    """chDB in this process, on a data directory (one process per directory)."""

    name = "chdb"

    def __init__(self, path: str, database: str):
        from chdb import state

        from store.arrow_batch import arrow_stream  # pyarrow comes with chDB

        self._arrow_stream = arrow_stream
        self.path, self.database = str(path), database
        self._lock = threading.Lock()
        try:
            self._conn = state.connect(self.path)
        except RuntimeError as e:
            raise StoreConfigError(
                f"chDB cannot open {self.path}: {short_error(e)} (chDB lets one process at a "
                "time open a data directory: is another groundtruth running on it?)"
            ) from None
        self.ensure_database()

    def _query(self, sql: str, params: dict | None, fmt: str):
        types = P.check(sql, params)
        encoded = {name: P.encode(params[name], t) for name, t in types.items()}
        with self._lock:
            return self._conn.query(sql, fmt, params=encoded or None)

    def execute(self, sql: str, params: dict | None = None) -> None:
        self._query(sql, params, "Null")

    def query(self, sql: str, params: dict | None = None) -> list[tuple]:
        table = self._query(sql, params, "Arrowtable")
        return list(zip(*(column.to_pylist() for column in table.columns), strict=True))

    def insert(self, table: str, columns: dict) -> None:
        # Arrow columns (store.arrow_batch), or, for a batch Arrow cannot carry, JSONColumns:
        # ClickHouse's columnar JSON input, {"col": [values...]}. Data travels as data, never
        # as SQL text.
        body: memoryview | str | None = self._arrow_stream(table, columns)
        fmt = "ArrowStream"
        if body is None:
            body = json.dumps({name: plain(column) for name, column in columns.items()})
            fmt = "JSONColumns"
        with self._lock:
            with self._conn.send_insert(_insert_head(table, columns), fmt) as ins:
                ins.append(body)
                ins.finish()

    def version(self) -> tuple[int, ...]:
        return parse_version(self.query("SELECT version()")[0][0])

    def ensure_database(self, on_cluster: str | None = None) -> None:
        if on_cluster:
            raise ValueError("chDB has no cluster")
        with self._lock:
            self._conn.query(f"CREATE DATABASE IF NOT EXISTS {ident(self.database)}")
            self._conn.query(f"USE {ident(self.database)}")

    def describe(self) -> str:
        return f"chdb:{self.path} (database {self.database})"

    def close(self) -> None:
        with self._lock:
            self._conn.close()
