"""Retention: drop the day partitions older than the retention period, on any server version.

Tables are partitioned by day (``toDate(time)``), so a partition id is the day as ``YYYYMMDD``
and dropping one removes that day at once, without rewriting data. This works on ClickHouse
18.16, which has no TTL; newer servers also get a TTL from the schema.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta

from store.db import Store
from store.schema import TABLES

_DAY_PARTITION = re.compile(r"\d{8}$")


def cutoff_day(retention_days: int, now_ns: int | None = None) -> date:
    """The oldest day kept: partitions of earlier days are dropped."""
    now = datetime.fromtimestamp((now_ns or time.time_ns()) / 1e9, UTC).date()
    return now - timedelta(days=retention_days - 1)


def expired_partitions(node, table: str, oldest_kept: date) -> list[str]:
    rows = node.query(
        "SELECT DISTINCT partition_id FROM system.parts "
        "WHERE database = currentDatabase() AND table = {t:String} AND active",
        {"t": table},
    )
    return sorted(
        pid
        for (pid,) in rows
        if _DAY_PARTITION.match(pid) and datetime.strptime(pid, "%Y%m%d").date() < oldest_kept
    )


def drop_expired(store: Store, retention_days: int, now_ns: int | None = None) -> list[str]:
    """Drops every partition older than ``retention_days`` on every server; returns them."""
    if retention_days < 1:
        raise ValueError(f"retention must be at least 1 day, not {retention_days}")
    oldest_kept = cutoff_day(retention_days, now_ns)
    dropped = []
    with store.nodes() as nodes:
        for node in nodes:
            for table in TABLES:
                local = store.local_table(table)
                for pid in expired_partitions(node, local, oldest_kept):
                    # pid matched \d{8} above: it is safe in the statement's text, where
                    # ClickHouse 18.16 takes no parameter.
                    node.execute(f"ALTER TABLE `{local}` DROP PARTITION ID '{pid}'")
                    dropped.append(f"{node.describe()} {local} {pid}")
    return dropped
