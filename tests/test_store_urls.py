"""Store URLs and sink specs: what they open, where they spool, and clear errors."""

import subprocess
import sys

import pytest

from schema.pipeline_stats import PipelineStats
from store.db import StoreConfigError, open_store, parse_url, redact
from store.sink import SPOOL_ROOT, default_spool_dir, open_sink
from testservices.clickhouse import CLUSTER_NAME
from testservices.store_helpers import make_events, stored_ids


def test_a_full_url():
    assert parse_url("clickhouse://u:p%40ss@db.example:9001/events?cluster=c1") == dict(
        host="db.example",
        port=9001,
        user="u",
        password="p@ss",
        database="events",
        cluster="c1",
        on_cluster_ddl=False,
    )
    assert parse_url("clickhouse://h/d?cluster=c&ddl=on_cluster")["on_cluster_ddl"] is True


def test_defaults():
    args = parse_url("clickhouse://localhost")
    assert (args["port"], args["user"], args["password"], args["database"]) == (
        9000,
        "default",
        "",
        "groundtruth",
    )


@pytest.mark.parametrize(
    "url, says",
    [
        ("http://h:1/db", "is not clickhouse://"),
        ("clickhouse://u:secret@h:99999/db", "out of range"),
        ("clickhouse://h/db?clutser=x", "unknown options"),
        ("clickhouse://h/db?cluster=c&ddl=zookeeper", "ddl is per_server or on_cluster"),
        ("clickhouse://h/bad-name", "not a valid identifier"),
    ],
)
def test_bad_urls_say_why_without_the_password(url, says):
    with pytest.raises(ValueError, match=says) as err:
        open_store(url)
    assert "secret" not in str(err.value)


def test_redact_hides_only_the_password():
    assert redact("clickhouse://u:pw@h:1/d") == "clickhouse://u:***@h:1/d"


def test_each_store_gets_its_own_spool():
    assert default_spool_dir("clickhouse://u:p@h:9001/ev", "/x") == SPOOL_ROOT / "h-9001-ev"
    assert default_spool_dir(None, "/var/lib/gt/chdb") == SPOOL_ROOT / "chdb-var-lib-gt-chdb"
    assert default_spool_dir("chdb:/a/b", "/x") == SPOOL_ROOT / "chdb-a-b"


def test_cluster_needs_a_server():
    with pytest.raises(StoreConfigError, match="cluster mode needs a ClickHouse server"):
        open_store("chdb:/tmp/x", cluster="c")


def test_open_sink_with_a_cluster_url(clickhouse_cluster, tmp_path):
    url = clickhouse_cluster[0].url("sink_spec") + f"?cluster={CLUSTER_NAME}"
    writer = open_sink(url, PipelineStats(), spool_dir=tmp_path / "spool")
    assert writer.store.cluster == CLUSTER_NAME
    events = make_events(20)
    writer.write(events)
    writer.close()
    reader = open_store(url)
    assert sorted(stored_ids(reader)) == sorted(e.event_id for e in events)
    reader.close()


def test_a_chdb_directory_held_by_another_process_is_a_clear_error(tmp_path):
    held = tmp_path / "held"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_CHDB, str(held)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(StoreConfigError, match="one process at a time"):
            open_store(f"chdb:{held}")
    finally:
        holder.kill()
        holder.wait()


HOLD_CHDB = """
import sys, time
from chdb import state
conn = state.connect(sys.argv[1])
conn.query("SELECT 1")
print("holding", flush=True)
time.sleep(60)
"""
