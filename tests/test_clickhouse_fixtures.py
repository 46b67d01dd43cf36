"""The ClickHouse fixtures start real servers on loopback, and say why when they cannot."""

import urllib.request

import pytest

from testservices.clickhouse import CLUSTER_NAME, WRITER_PASSWORD, WRITER_USER, ClickHouseServer
from testservices.service import ServiceStartError


def test_server_answers_on_its_own_native_and_http_ports(clickhouse_server):
    assert clickhouse_server.client().execute("SELECT 40 + 2") == [(42,)]
    with urllib.request.urlopen(f"http://127.0.0.1:{clickhouse_server.http_port}/ping") as r:
        assert r.read() == b"Ok.\n"
    assert {clickhouse_server.tcp_port, clickhouse_server.http_port}.isdisjoint({9000, 8123})


def test_writer_user_needs_its_password(clickhouse_server):
    good = clickhouse_server.client(user=WRITER_USER, password=WRITER_PASSWORD)
    assert good.execute("SELECT 1") == [(1,)]
    bad = clickhouse_server.client(user=WRITER_USER, password="wrong")
    with pytest.raises(Exception, match="(?i)password|authentication"):
        bad.execute("SELECT 1")


def test_broken_config_fails_with_the_servers_log(tmp_path):
    server = ClickHouseServer(
        tmp_path, profile_extra="<no_such_setting_xyz>1</no_such_setting_xyz>"
    )
    with pytest.raises(ServiceStartError) as err:
        server.start(timeout=30)
    server.stop()
    assert "no_such_setting_xyz" in str(err.value)


def test_cluster_has_two_shards_on_the_two_servers(clickhouse_cluster):
    client = clickhouse_cluster[0].client()
    rows = client.execute(
        "SELECT shard_num, port FROM system.clusters WHERE cluster = %(c)s ORDER BY shard_num",
        {"c": CLUSTER_NAME},
    )
    assert rows == [(1, clickhouse_cluster[0].tcp_port), (2, clickhouse_cluster[1].tcp_port)]
