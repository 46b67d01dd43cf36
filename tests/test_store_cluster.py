"""Cluster mode on a real two-shard cluster: events of a host land on one shard, reads see all."""

import time

from exporter.pipeline_stats import PipelineStats
from groundtruth.cli import main
from store.db import open_store
from store.migrations import LATEST, migrate, node_version, schema_version
from store.received_alerts import ReceivedAlert
from store.retention import drop_expired
from store.schema import create_distributed, create_table
from store.writer import StoreWriter, WriterSettings
from tests.fixtures.clickhouse import CLUSTER_NAME, fresh_database_name
from tests.store_helpers import make_events, stored_ids, wait_until


def shard_ids(shard, database: str) -> list[str]:
    client = shard.client(database=database)
    rows = client.execute("SELECT event_id FROM process_events_local")
    client.disconnect()
    return [event_id for (event_id,) in rows]


def test_events_of_each_host_land_on_one_shard_and_reads_see_both(clickhouse_cluster, tmp_path):
    database = fresh_database_name()
    urls = [shard.url(database) for shard in clickhouse_cluster]
    store = open_store(urls[0], cluster=CLUSTER_NAME)
    migrate(store)
    assert migrate(store) == []  # idempotent on every shard
    # Hosts whose cityHash64 falls on different shards (checked, not assumed).
    hosts = [f"host-{i}" for i in range(16)]
    shard_of = dict(
        store.query(
            "SELECT h, cityHash64(h) % 2 FROM system.one ARRAY JOIN {hs:Array(String)} AS h",
            {"hs": hosts},
        )
    )
    a = next(h for h in hosts if shard_of[h] == 0)
    b = next(h for h in hosts if shard_of[h] == 1)
    events_a, events_b = make_events(300, host=a), make_events(200, host=b)

    writer = StoreWriter(store, tmp_path / "spool", PipelineStats(), WriterSettings(max_age=0.1))
    writer.write(events_a + events_b)
    writer.close()

    on_shards = [sorted(shard_ids(shard, database)) for shard in clickhouse_cluster]
    assert on_shards == [sorted(e.event_id for e in events_a), sorted(e.event_id for e in events_b)]
    for url in urls:  # any server answers for the whole cluster
        reader = open_store(url, cluster=CLUSTER_NAME)
        assert sorted(stored_ids(reader)) == sorted(e.event_id for e in events_a + events_b)
        assert schema_version(reader) == LATEST
        assert drop_expired(reader, retention_days=7) == []
        reader.close()


def test_a_shard_outage_loses_nothing_and_duplicates_nothing(clickhouse_cluster, tmp_path):
    """One shard killed while both hosts keep sending: the other shard's events still wait in
    the spool (a Distributed insert is all or nothing for the writer), and replay dedupes."""
    database = fresh_database_name()
    url = clickhouse_cluster[0].url(database)
    store = open_store(url, cluster=CLUSTER_NAME)
    settings = WriterSettings(batch_size=100, max_age=0.1, retry_min=0.2, retry_max=0.5)
    writer = StoreWriter(store, tmp_path / "spool", PipelineStats(), settings)
    generated = []

    def send(n):
        for host in ("host-0", "host-1", "host-2", "host-3"):
            events = make_events(n, host=host)
            generated.extend(events)
            writer.write(events)

    send(50)
    wait_until(lambda: writer.spool.events == 0 and not writer._buffer, what="first batches")
    clickhouse_cluster[1].kill()
    try:
        for _ in range(10):
            send(25)
            time.sleep(0.2)
        wait_until(lambda: writer.spool.events > 0, what="spooling")
    finally:
        clickhouse_cluster[1].start()
    wait_until(lambda: writer.spool.events == 0 and writer.replayed > 0, what="replay")
    writer.close()
    reader = open_store(url, cluster=CLUSTER_NAME)
    stored = stored_ids(reader)
    reader.close()
    assert len(stored) == len(set(stored))
    assert sorted(stored) == sorted(e.event_id for e in generated)


def test_db_migrate_on_the_cluster_from_the_command_line(clickhouse_cluster, capsys):
    url = clickhouse_cluster[1].url(fresh_database_name())
    assert main(["db", "migrate", "--store-url", url, "--cluster", CLUSTER_NAME]) == 0
    out = capsys.readouterr().out
    # The migration ran on both servers, from either one.
    for shard in clickhouse_cluster:
        assert f"127.0.0.1:{shard.tcp_port}" in out and "migration 1" in out
    assert main(["db", "migrate", "--store-url", url, "--cluster", CLUSTER_NAME]) == 0
    assert capsys.readouterr().out.strip().endswith("up to date")


def test_on_cluster_ddl_through_zookeeper(clickhouse_zk_cluster, tmp_path):
    """With ZooKeeper, ddl=on_cluster runs each statement once and the cluster spreads it."""
    database = fresh_database_name()
    url = clickhouse_zk_cluster[0].url(database) + f"?cluster={CLUSTER_NAME}&ddl=on_cluster"
    store = open_store(url)
    done = migrate(store)
    ddl = [sql for sql in done if sql.startswith(("CREATE", "ALTER"))]
    assert ddl and all(f"ON CLUSTER `{CLUSTER_NAME}`" in sql for sql in ddl)
    assert migrate(store) == []
    for shard in clickhouse_zk_cluster:  # every server has the tables and the version
        client = shard.client(database=database)
        tables = {t for (t,) in client.execute("SHOW TABLES")}
        assert {"process_events", "process_events_local", "schema_migrations"} <= tables
        assert client.execute("SELECT max(version) FROM schema_migrations") == [(LATEST,)]
        client.disconnect()
    events = make_events(100, host="host-1") + make_events(100, host="host-2")
    writer = StoreWriter(store, tmp_path / "spool", PipelineStats(), WriterSettings(max_age=0.1))
    writer.write(events)
    writer.close()
    reader = open_store(url)
    assert sorted(stored_ids(reader)) == sorted(e.event_id for e in events)
    reader.close()


def test_db_migrate_on_cluster_flag(clickhouse_zk_cluster, capsys):
    url = clickhouse_zk_cluster[1].url(fresh_database_name())
    argv = ["db", "migrate", "--store-url", url, "--cluster", CLUSTER_NAME, "--on-cluster"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"ON CLUSTER `{CLUSTER_NAME}`" in out
    assert main(argv) == 0 and capsys.readouterr().out.strip().endswith("up to date")


def test_received_alerts_rekeyed_by_arrival_on_every_shard(clickhouse_cluster):
    """A cluster made by schema version 1 (alerts expire by startsAt): migration 2 rebuilds
    each shard's local table and the Distributed table, and keeps every alert."""

    class ByStart(ReceivedAlert):
        RETAINED_BY = "time_ns"

    database = fresh_database_name()
    store = open_store(clickhouse_cluster[0].url(database), cluster=CLUSTER_NAME)
    migrate(store)
    with store.nodes() as nodes:
        for node in nodes:  # back to version 1's layout on each server
            node.execute("DROP TABLE received_alerts")
            node.execute("DROP TABLE received_alerts_local")
            node.execute(create_table("received_alerts_local", ByStart, store.features, 7))
            node.execute(
                create_distributed("received_alerts", ByStart, store.features, CLUSTER_NAME,
                                   database)
            )  # fmt: skip
            node.execute("ALTER TABLE schema_migrations DELETE WHERE version > 1")
    # A DELETE is a mutation each server applies in the background (18.16 cannot wait for it).

    def every_server_at_version_1() -> bool:
        with store.nodes() as nodes:
            return all(node_version(node) == 1 for node in nodes)

    wait_until(every_server_at_version_1, what="the deletion of later versions on each server")
    now = time.time_ns()
    alerts = [
        ReceivedAlert(event_id=f"a{i}", time_ns=now - 3600 * 10**9, host=f"host-{i}",
                      fingerprint=f"f{i}", received_ns=now)
        for i in range(16)
    ]  # fmt: skip
    store.insert_events(alerts)

    done = migrate(store)
    assert sum("migration 2" in d for d in done) == len(clickhouse_cluster)
    rows = store.query("SELECT event_id, received_ns FROM received_alerts ORDER BY event_id")
    assert rows == sorted((a.event_id, now) for a in alerts)
    for shard in clickhouse_cluster:
        client = shard.client(database=database)
        (local,), (dist,) = [
            client.execute(
                "SELECT default_expression FROM system.columns WHERE database = currentDatabase()"
                " AND table = %(t)s AND name = 'time'",
                {"t": table},
            )[0]
            for table in ("received_alerts_local", "received_alerts")
        ]
        client.disconnect()
        assert "received_ns" in local and "received_ns" in dist
    assert migrate(store) == []
    store.close()
