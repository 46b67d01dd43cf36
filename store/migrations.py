"""Versioned, idempotent schema migrations (``groundtruth db migrate``).

Each server records the versions applied to it in ``schema_migrations``. ``migrate`` applies
the versions it has not seen, in order, on every server (all shards in cluster mode), and
refuses to touch a database whose schema is newer than this code knows.

Two kinds of change:
- layout changes (sort keys, engines, new kinds of table) are numbered ``MIGRATIONS``;
- additions that follow from the event classes (a new event type's table, a new field's column)
  are made by ``sync_tables`` on every run, by comparing the classes with ``system.columns``;
  so is a changed retention, on servers with TTL.
Running ``migrate`` again changes nothing.

Cluster mode runs the DDL on each server itself by default: the server list is in
``system.clusters``, and no ZooKeeper is needed. Where the servers have ZooKeeper and
``<distributed_ddl>`` configured, ``ddl=on_cluster`` runs each statement once with
``ON CLUSTER`` instead, and the cluster spreads it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from schema.events import columns
from store.backends import ident
from store.db import Store
from store.schema import (
    TABLES,
    add_column,
    column_default,
    create_distributed,
    create_table,
    ddl_target,
    retained_by,
    set_ttl,
)

DEFAULT_RETENTION_DAYS = 7
MIGRATIONS_TABLE = "schema_migrations"


class SchemaTooNew(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Store, object, int], None]  # (store, node backend, retention days)
    # Migrations that copy rows run on each server even with ON CLUSTER DDL: an
    # INSERT ... SELECT cannot be sent ON CLUSTER.
    per_server: bool = False


def _initial_layout(store: Store, node, retention_days: int) -> None:
    """The layout sync_tables creates (a new event type's table): nothing to do beyond it."""


def _time_source(node, table: str) -> str | None:
    """The expression a table's derived ``time`` column is computed from, or None."""
    rows = node.query(
        "SELECT default_expression FROM system.columns WHERE database = currentDatabase() "
        "AND table = {t:String} AND name = 'time'",
        {"t": table},
    )
    return rows[0][0] if rows else None


def _retain_by_class_column(store: Store, node, retention_days: int) -> None:
    """Rebuilds each table whose ``time`` does not follow its class's ``RETAINED_BY`` column
    (received_alerts: by arrival, no longer by start), keeping every row.

    ClickHouse cannot change a partition key in place: the rows are copied into a new table
    of the current layout, which then takes the old one's name. A cluster's Distributed table
    (whose ALIAS ``time`` is out of date too) is dropped here and created again by sync_tables.
    """
    for table, cls in TABLES.items():
        local = store.local_table(table)
        source = _time_source(node, local)
        if source is None or retained_by(cls) in source:
            continue  # a new database (sync_tables creates it) or already rebuilt
        new, old = local + "_rebuilt", local + "_before_rebuild"
        node.execute(f"DROP TABLE IF EXISTS {ident(new)}")  # left by an interrupted run
        node.execute(create_table(new, cls, store.features, retention_days))
        kept = ", ".join(ident(c) for c in _column_names(node, local) if c != "time")
        node.execute(f"INSERT INTO {ident(new)} ({kept}) SELECT {kept} FROM {ident(local)}")
        node.execute(f"RENAME TABLE {ident(local)} TO {ident(old)}, {ident(new)} TO {ident(local)}")
        node.execute(f"DROP TABLE {ident(old)}")
        if store.cluster:
            node.execute(f"DROP TABLE IF EXISTS {ident(table)}")


# The process security context (exporter/events.py), added to process_events in version 2.
SECURITY_CONTEXT_COLUMNS = (
    "euid", "egid", "auid", "session_id", "tty", "stdin_type", "stdout_type", "stderr_type",
    "exe_deleted", "exe_memfd", "prev_uid", "prev_gid", "prev_euid", "prev_egid",
)  # fmt: skip


def _security_context(store: Store, node, retention_days: int) -> None:
    """Adds the security context columns to an existing process_events table. Rows written
    before read as unknown: the login uid and session id as unset (4294967295), the rest
    empty. (A new database gets them from sync_tables, with the table.)"""
    on = store.cluster if store.on_cluster_ddl else None
    add_missing_columns(store, node, "process_events", SECURITY_CONTEXT_COLUMNS, node.execute, on)


# Tables that carry the workload of their process (schema/events.py), added in version 5.
WORKLOAD_TABLES = ("process_events", "tcp_connection_events", "tcp_listen_events", "flag_events")


def _workload(store: Store, node, retention_days: int) -> None:
    """Adds the workload column to the tables of events about a process. Rows written before
    read as '' (not known). (A new database gets it from sync_tables, with the tables.)"""
    on = store.cluster if store.on_cluster_ddl else None
    for table in WORKLOAD_TABLES:
        add_missing_columns(store, node, table, ("workload",), node.execute, on)


MIGRATIONS = [
    Migration(
        1,
        "a table per event type and received_alerts, by (host, time_ns), partitioned by day",
        _initial_layout,
    ),
    Migration(
        2,
        "received_alerts expire by when they were received, not by when they started",
        _retain_by_class_column,
        per_server=True,
    ),
    Migration(3, "flag_events: flags raised by the exporter's detector", _initial_layout),
    Migration(
        4,
        "process_events: security context (effective ids, login uid and session, terminal, "
        "stdin/stdout/stderr types, deleted or memfd executable, ids before a cred_change)",
        _security_context,
    ),
    Migration(
        5,
        "process, connection, listen and flag events: the workload of their process (a "
        "container's image or Kubernetes workload, a systemd unit, or host)",
        _workload,
    ),
]
LATEST = MIGRATIONS[-1].version


def _ensure_migrations_table(node, on_cluster: str | None = None) -> None:
    node.execute(
        f"CREATE TABLE IF NOT EXISTS {ddl_target(MIGRATIONS_TABLE, on_cluster)} "
        "(version UInt32, description String, applied_at DateTime) "
        "ENGINE = MergeTree ORDER BY version"
    )


def node_version(node) -> int:
    """The highest schema version recorded on one server (0 for a new database)."""
    return node.query(f"SELECT max(version) FROM {MIGRATIONS_TABLE}")[0][0] or 0


def schema_version(store: Store) -> int:
    """The schema version of the store (the lowest over a cluster's servers)."""
    with store.nodes() as nodes:
        return min(node_version(node) for node in nodes)


def _column_names(node, table: str) -> list[str]:
    """A table's columns, in order ([] when there is no such table)."""
    rows = node.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String}",
        {"t": table},
    )
    return [name for (name,) in rows]


def _existing_columns(node, table: str) -> list[str] | None:
    """A table's columns, or None when it does not exist."""
    return _column_names(node, table) or None


def sync_tables(store: Store, node, retention_days: int) -> list[str]:
    """Creates the missing tables and columns as seen on one server; returns the statements.

    With ON CLUSTER DDL the statements carry ``ON CLUSTER`` and reach every server.
    """
    ran = []
    on = store.cluster if store.on_cluster_ddl else None

    def run(sql: str) -> None:
        node.execute(sql)
        ran.append(sql)

    for table, cls in TABLES.items():
        local = store.local_table(table)
        if _existing_columns(node, local) is None:
            run(create_table(local, cls, store.features, retention_days, on))
        if store.cluster and _existing_columns(node, table) is None:
            run(create_distributed(table, cls, store.features, store.cluster, store.database, on))
        add_missing_columns(store, node, table, [name for name, _, _ in columns(cls)], run, on)
        if store.features.ttl and _ttl_days(node, local) != retention_days:
            run(set_ttl(local, retention_days, on))
    return ran


def add_missing_columns(store: Store, node, table: str, names, run, on_cluster=None) -> None:
    """Runs ADD COLUMN for each of ``names`` (fields of the table's class) that one of the
    table's existing tables on this server lacks: the local one, and in cluster mode the
    Distributed one over it."""
    cls = TABLES[table]
    wanted = {name: (ch_type, doc) for name, ch_type, doc in columns(cls) if name in names}
    for target in (
        [store.local_table(table), table] if store.cluster else [store.local_table(table)]
    ):
        present = _existing_columns(node, target)
        if present is None:
            continue  # not created yet: it will have every column
        for name, (ch_type, doc) in wanted.items():
            if name not in present:
                default = column_default(cls, name)
                run(add_column(target, name, ch_type, doc, store.features, on_cluster, default))


def _ttl_days(node, table: str) -> int | None:
    """The retention in a table's TTL clause (as the server prints it), or None."""
    rows = node.query(
        "SELECT engine_full FROM system.tables "
        "WHERE database = currentDatabase() AND name = {t:String}",
        {"t": table},
    )
    found = re.search(r"toIntervalDay\((\d+)\)", rows[0][0]) if rows else None
    return int(found.group(1)) if found else None


def migrate(store: Store, retention_days: int = DEFAULT_RETENTION_DAYS) -> list[str]:
    """Brings every server of the store to the latest schema; returns what it did (or [])."""
    on = store.cluster if store.on_cluster_ddl else None
    store.backend.ensure_database(on)
    with store.nodes() as nodes:
        # DDL runs on each server, or once with ON CLUSTER; versions are recorded on each.
        ddl_nodes = [store.backend] if on else nodes
        for node in ddl_nodes:
            node.ensure_database()
            _ensure_migrations_table(node, on)
        versions = [(node_version(node), node.describe()) for node in nodes]
        newest, where = max(versions)
        if newest > LATEST:
            raise SchemaTooNew(
                f"{where} has schema version {newest}; this groundtruth knows versions up to "
                f"{LATEST}: upgrade groundtruth before writing to it"
            )
        done = []
        for m in MIGRATIONS:
            pairs = zip(versions, nodes, strict=True)
            needing = [(node, where) for (v, where), node in pairs if m.version > v]
            if not needing:
                continue
            once = on and not m.per_server
            for node in [store.backend] if once else [node for node, _ in needing]:
                m.apply(store, node, retention_days)
            for node, where in needing:
                _record(node, m)
                done.append(f"{where}: migration {m.version}: {m.description}")
        for node in ddl_nodes:
            done += sync_tables(store, node, retention_days)
        return done


def _record(node, m: Migration) -> None:
    node.execute(
        f"INSERT INTO {MIGRATIONS_TABLE} (version, description, applied_at) "
        "SELECT {v:UInt32}, {d:String}, now()",
        {"v": m.version, "d": m.description},
    )
