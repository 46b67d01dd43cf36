"""The store's tables, derived from the event classes: one table per event type, plus alerts.

Columns come from ``schema.events.columns()`` (and ``ReceivedAlert``), so a field added to an
event class becomes a column on the next ``groundtruth db migrate``. Every table is:

- sorted by ``(host, time_ns)``: timelines and graphs read one host's time range;
- partitioned by day of a derived ``time`` column, so retention drops whole partitions;
  ``time`` follows ``time_ns``, or the column a class names in ``RETAINED_BY`` (alerts are
  kept by when they were received, not by when they started);
- on servers that have them (``Features``), LowCardinality for low-variety strings, a
  nanosecond ``DateTime64`` for ``time``, compression codecs, a bloom-filter index for lookups
  by ``process_key`` / ``parent_key``, and a TTL. ClickHouse 18.16 (Debian) has none of these,
  and gets plain types; the queries are the same on both.

In cluster mode each server holds ``<table>_local`` and a ``Distributed`` table named
``<table>`` over them, sharded by ``cityHash64(host)`` so one host's events stay on one shard.
"""

from __future__ import annotations

from dataclasses import dataclass

from schema.events import EVENT_TYPES, columns
from store.backends import ident
from store.received_alerts import ReceivedAlert

# Table name -> the class its rows are. Event types get "<type>_events".
TABLES: dict[str, type] = {f"{name}_events": cls for name, cls in EVENT_TYPES.items()}
TABLES["received_alerts"] = ReceivedAlert
TABLE_OF_CLASS = {cls: name for name, cls in TABLES.items()}

# String columns with few distinct values: LowCardinality where the server has it.
LOW_CARDINALITY = {
    "kind", "host", "outcome", "source", "container_id", "pod_uid", "comm", "direction",
    "state", "status", "alertname", "severity", "container", "receiver", "family", "closed_by",
    "error", "rule_id", "flag_class", "technique", "tty", "stdin_type", "stdout_type",
    "stderr_type", "workload",
}  # fmt: skip
# Columns looked up by equality (a process, its children, a connection): bloom-filter indexed.
LOOKUP_COLUMNS = ("process_key", "parent_key", "connection_id")
LOCAL_SUFFIX = "_local"


@dataclass(frozen=True)
class Features:
    """What the server supports beyond ClickHouse 18.16, decided from its version."""

    low_cardinality: bool = False  # 19.3: no longer behind an experimental setting
    codecs: bool = False  # 19.1
    ttl: bool = False  # 19.6
    datetime64: bool = False  # 20.1
    skip_index: bool = False  # 20.1: data-skipping indexes without an experimental setting

    @classmethod
    def for_version(cls, version: tuple[int, ...]) -> Features:
        v = tuple(version[:2])
        return cls(
            low_cardinality=v >= (19, 3),
            codecs=v >= (19, 1),
            ttl=v >= (19, 6),
            datetime64=v >= (20, 1),
            skip_index=v >= (20, 1),
        )


def _literal(text: str) -> str:
    """A quoted SQL string for our own constant text (column docs): DDL takes no parameters."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def column_type(name: str, ch_type: str, features: Features) -> str:
    if features.low_cardinality and ch_type == "String" and name in LOW_CARDINALITY:
        ch_type = "LowCardinality(String)"
    if features.codecs and name.endswith("_ns"):
        ch_type += " CODEC(Delta, ZSTD)" if name == "time_ns" else " CODEC(ZSTD)"
    return ch_type


def column_default(cls: type, name: str) -> str | None:
    """A column's DEFAULT, where the class's default for the field is not the type's zero (a
    login uid's 4294967295, "unset"): rows written before the column existed read as that."""
    field = getattr(cls, "__dataclass_fields__", {}).get(name)
    value = getattr(field, "default", None)
    if isinstance(value, int) and not isinstance(value, bool) and value != 0:
        return str(value)
    return None


def column_definition(
    name: str, ch_type: str, doc: str, features: Features, default: str | None = None
) -> str:
    default_clause = f" DEFAULT {default}" if default is not None else ""
    column = f"{ident(name)} {column_type(name, ch_type, features)}{default_clause}"
    return f"{column} COMMENT {_literal(doc)}"


def column_definitions(cls: type, features: Features) -> list[str]:
    """Every column of a class's table, in field order."""
    return [
        column_definition(name, ch_type, doc, features, column_default(cls, name))
        for name, ch_type, doc in columns(cls)
    ]


def retained_by(cls: type) -> str:
    """The ns column whose day decides when a row of cls expires (time_ns unless it says)."""
    return getattr(cls, "RETAINED_BY", "time_ns")


def time_column(features: Features, kind: str = "MATERIALIZED", source: str = "time_ns") -> str:
    """``time``: the source ns column as a date-time, computed on insert; partitions and TTL
    use it.

    A Distributed table declares it ALIAS instead: ClickHouse 18.16 forwards MATERIALIZED
    columns to the shards on insert, which then refuse them.
    """
    col = ident(source)
    if features.datetime64:
        expr = f"DateTime64(9, 'UTC') {kind} fromUnixTimestamp64Nano(toInt64({col}), 'UTC')"
    else:
        expr = f"DateTime {kind} toDateTime(intDiv({col}, 1000000000))"
    return f"`time` {expr} COMMENT {_literal(f'{source} as a date-time (derived).')}"


def ddl_target(table: str, on_cluster: str | None = None) -> str:
    """A table in DDL; with ``on_cluster``, the statement runs on every server of the cluster
    (ClickHouse's distributed DDL, which needs ZooKeeper)."""
    return f"{ident(table)} ON CLUSTER {ident(on_cluster)}" if on_cluster else ident(table)


def create_table(
    table: str, cls: type, features: Features, retention_days: int, on_cluster: str | None = None
) -> str:
    """CREATE TABLE IF NOT EXISTS for one event class, as a MergeTree."""
    names = [name for name, _, _ in columns(cls)]
    parts = column_definitions(cls, features)
    parts.append(time_column(features, source=retained_by(cls)))
    if features.skip_index:
        parts += [
            f"INDEX {ident('idx_' + c)} {ident(c)} TYPE bloom_filter GRANULARITY 4"
            for c in LOOKUP_COLUMNS
            if c in names
        ]
    ttl = " " + _ttl(retention_days) if features.ttl else ""
    return (
        f"CREATE TABLE IF NOT EXISTS {ddl_target(table, on_cluster)} (\n    "
        + ",\n    ".join(parts)
        + "\n) ENGINE = MergeTree PARTITION BY toDate(time) ORDER BY (host, time_ns)"
        + ttl
    )


def create_distributed(
    table: str,
    cls: type,
    features: Features,
    cluster: str,
    database: str,
    on_cluster: str | None = None,
) -> str:
    """The cluster-wide table over every shard's ``<table>_local``, sharded by host."""
    local = table + LOCAL_SUFFIX
    for name in (cluster, database, local):
        ident(name)  # validates: these go into the engine's string arguments
    parts = column_definitions(cls, features)
    parts.append(time_column(features, kind="ALIAS", source=retained_by(cls)))
    return (
        f"CREATE TABLE IF NOT EXISTS {ddl_target(table, on_cluster)} (\n    "
        + ",\n    ".join(parts)
        + f"\n) ENGINE = Distributed('{cluster}', '{database}', '{local}', cityHash64(host))"
    )


def add_column(
    table: str,
    name: str,
    ch_type: str,
    doc: str,
    features: Features,
    on_cluster=None,
    default: str | None = None,
) -> str:
    column = column_definition(name, ch_type, doc, features, default)
    return f"ALTER TABLE {ddl_target(table, on_cluster)} ADD COLUMN {column}"


def _ttl(retention_days: int) -> str:
    return f"TTL toDateTime(time) + INTERVAL {int(retention_days)} DAY"


def set_ttl(table: str, retention_days: int, on_cluster: str | None = None) -> str:
    return f"ALTER TABLE {ddl_target(table, on_cluster)} MODIFY {_ttl(retention_days)}"
