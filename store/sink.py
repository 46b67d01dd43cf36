"""The exporter's store sink from a sink spec, with a spool directory of its own.

``open_sink("clickhouse://user:password@host:9000/groundtruth", stats)`` or
``open_sink("chdb:/var/lib/groundtruth/chdb", stats)`` (or None: chDB in the default data
directory) returns a started ``StoreWriter``; ``SinkCollector([writer])`` exports its health.
"""

from __future__ import annotations

from pathlib import Path

from schema.pipeline_stats import PipelineStats
from store.db import DEFAULT_DATA_DIR, open_store, parse_url
from store.writer import StoreWriter, WriterSettings

SPOOL_ROOT = Path("/var/lib/groundtruth/spool")


def default_spool_dir(url: str | None, data_dir: str | Path) -> Path:
    """Where a writer spools unless told: one directory per store it writes to."""
    if url and not url.startswith("chdb:"):
        args = parse_url(url)
        return SPOOL_ROOT / f"{args['host']}-{args['port']}-{args['database']}"
    directory = Path(url[len("chdb:") :] if url else data_dir)
    return SPOOL_ROOT / ("chdb-" + "-".join(directory.resolve().parts[1:]))


def open_sink(
    url: str | None,
    stats: PipelineStats,
    data_dir: str | Path = DEFAULT_DATA_DIR,
    spool_dir: str | Path | None = None,
    settings: WriterSettings | None = None,
) -> StoreWriter:
    """The exporter's store sink for a sink spec: ``clickhouse://...``, ``chdb:DIR``, or None
    (chDB in ``data_dir``). Export its health with ``SinkCollector([writer])``."""
    store = open_store(url, data_dir=data_dir)
    spool = spool_dir or default_spool_dir(url, data_dir)
    return StoreWriter(store, spool, stats, settings)
