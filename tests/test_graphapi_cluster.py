"""graphapi on a two-shard ClickHouse cluster: the same graph as on one server.

Hosts' events live on different shards (sharded by host), so the cross-host edge needs both.
"""

from __future__ import annotations

from graphapi import create_app
from store.db import open_store
from store.migrations import migrate
from tests import graphapi_events as E
from testservices.clickhouse import CLUSTER_NAME, fresh_database_name


def test_cluster_graph_has_ancestry_and_the_cross_host_edge(clickhouse_cluster):
    store = open_store(clickhouse_cluster[0].url(fresh_database_name()), cluster=CLUSTER_NAME)
    try:
        migrate(store)
        store.insert_events(E.events())
        client = create_app({"STORE": store, "TESTING": True}).test_client()
        curl, sh, init, nginx = E.key(E.A, 101), E.key(E.A, 100), E.key(E.A, 1), E.key(E.B, 200)
        reply = client.get("/api/graph", query_string={**E.WINDOW, "focus": curl})
        assert reply.status_code == 200, reply.get_json()
        graph = reply.get_json()
        edges = {(e["source"], e["target"], e["detail__kind"]) for e in graph["edges"]}
        assert {(init, sh, "spawned"), (sh, curl, "spawned"), (curl, nginx, "connected")} <= edges
        for path in ("/api/processes", "/api/timeline"):
            reply = client.get(path, query_string={**E.WINDOW, "host": E.A})
            assert reply.status_code == 200, (path, reply.get_json())
            assert reply.get_json()
    finally:
        store.close()
