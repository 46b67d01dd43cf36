"""``groundtruth db``: create or upgrade the store's schema, apply retention, show its version.

The store options (``add_store_arguments``) are shared with the commands that write events,
so ``groundtruth run`` and ``groundtruth db migrate`` point at a store the same way:
``--store-url clickhouse://user:password@host:9000/groundtruth`` (or $GROUNDTRUTH_STORE_URL) for
a ClickHouse server, or nothing for chDB in ``--data-dir``.
"""

from __future__ import annotations

import argparse
import os
import sys

from store.db import DEFAULT_DATA_DIR, URL_FORMS, StoreConfigError, open_store
from store.errors import short_error
from store.migrations import DEFAULT_RETENTION_DAYS, LATEST, SchemaTooNew, migrate, schema_version
from store.retention import drop_expired


def add_store_arguments(parser: argparse.ArgumentParser, writes: bool = True) -> None:
    """The store options every command shares; ``writes`` adds the ones only schema changes use."""
    g = parser.add_argument_group("event store")
    g.add_argument(
        "--store-url",
        default=os.environ.get("GROUNDTRUTH_STORE_URL"),
        help=f"{URL_FORMS} (default $GROUNDTRUTH_STORE_URL; none: chDB in --data-dir)",
    )
    g.add_argument(
        "--data-dir",
        default=os.environ.get("GROUNDTRUTH_DATA_DIR", DEFAULT_DATA_DIR),
        help="chDB data directory when there is no --store-url (default %(default)s)",
    )
    g.add_argument(
        "--cluster",
        default=None,
        help="ClickHouse cluster name (remote_servers): local tables on every server, "
        "Distributed tables sharded by host",
    )
    g.add_argument("--database", help="database (default: the URL's; chDB: groundtruth)")
    if not writes:
        return
    g.add_argument(
        "--on-cluster",
        action="store_true",
        help="with --cluster: run DDL once with ON CLUSTER (the servers need ZooKeeper and "
        "<distributed_ddl>) instead of on each server",
    )
    g.add_argument(
        "--retention-days",
        type=int,
        default=DEFAULT_RETENTION_DAYS,
        help="days of events kept (default %(default)s)",
    )


def open_store_from_args(args):
    return open_store(
        args.store_url,
        data_dir=args.data_dir,
        cluster=args.cluster,
        database=args.database,
        on_cluster_ddl=getattr(args, "on_cluster", False),
    )


def _migrate(store, args) -> None:
    done = migrate(store, args.retention_days)
    for line in done:
        print(line.splitlines()[0])
    print(f"{store.describe()}: schema version {LATEST}" + ("" if done else ", up to date"))


def _retention(store, args) -> None:
    for line in drop_expired(store, args.retention_days):
        print(f"dropped {line}")


def _version(store, args) -> None:
    print(f"{store.describe()}: schema version {schema_version(store)} (this code: {LATEST})")
    print(f"server {'.'.join(map(str, store.backend.version()))}: {store.features}")


def _on_store(command):
    """Runs command(store, args) on the configured store; errors become one line on stderr
    and exit status 1, not a traceback."""

    def run(args) -> int:
        try:
            store = open_store_from_args(args)
            try:
                command(store, args)
            finally:
                store.close()
            return 0
        except (StoreConfigError, SchemaTooNew, ValueError) as e:
            print(f"groundtruth db: {e}", file=sys.stderr)
        except Exception as e:  # noqa: BLE001 - a driver's or chDB's error, said in one line
            print(f"groundtruth db: {short_error(e)}", file=sys.stderr)
        return 1

    return run


def register(sub) -> None:
    db = sub.add_parser("db", help="the event store: migrate the schema, apply retention")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, func, help_text in [
        ("migrate", _migrate, "create or upgrade the schema (idempotent)"),
        ("retention", _retention, "drop day partitions older than --retention-days"),
        ("version", _version, "show the schema version and the server's features"),
    ]:
        p = db_sub.add_parser(name, help=help_text)
        add_store_arguments(p)
        p.set_defaults(func=_on_store(func))
