"""graphapi on recorded events (tests/graphapi_events.py), on ClickHouse 18.16 and on chDB.

Every expected node, edge and count follows from the events the test wrote.
"""

from __future__ import annotations

import pytest

from graphapi import create_app
from graphapi.server import InsecureListen, check_listen
from store.db import open_store
from store.migrations import migrate
from tests import graphapi_events as E
from tests.fixtures.clickhouse import fresh_database_name
from tests.fixtures.service import free_port

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module", params=["clickhouse", "chdb"])
def store(request, clickhouse_server, chdb_dir):
    name = fresh_database_name()
    if request.param == "clickhouse":
        s = open_store(clickhouse_server.url(name))
    else:
        s = open_store(None, data_dir=chdb_dir, database=name)
    migrate(s)
    s.insert_events(E.events())
    yield s
    if request.param == "clickhouse":
        s.execute(f"DROP DATABASE IF EXISTS {name}")
    s.close()


@pytest.fixture(scope="module")
def app(store):
    return create_app({"STORE": store, "TOKEN": TOKEN, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def get(client, path="/api/graph", status=200, **args):
    reply = client.get(path, query_string={**E.WINDOW, **args}, headers=AUTH)
    assert reply.status_code == status, reply.get_json()
    return reply.get_json()


def by_id(graph):
    return {n["id"]: n for n in graph["nodes"]}


def edges(graph, kind=None):
    return {(e["source"], e["target"]) for e in graph["edges"] if kind in (None, e["detail__kind"])}


def check_contract(graph, limit):
    ids = [n["id"] for n in graph["nodes"]]
    assert len(ids) == len(set(ids)), "node ids are unique"
    assert len(ids) <= limit
    assert len({e["id"] for e in graph["edges"]}) == len(graph["edges"]), "edge ids are unique"
    for e in graph["edges"]:
        assert e["source"] in ids and e["target"] in ids, e
    fields = {frozenset(n) for n in graph["nodes"]}
    assert len(fields) <= 1, "every node has the same fields"


def test_focus_on_a_process_gives_ancestors_descendants_and_the_cross_host_edge(client):
    curl, sh, init, nginx = E.key(E.A, 101), E.key(E.A, 100), E.key(E.A, 1), E.key(E.B, 200)
    g = get(client, focus=curl)
    check_contract(g, 300)
    nodes = by_id(g)
    assert {(init, sh), (sh, curl)} <= edges(g, "spawned")
    # Host a's outbound 10.0.0.1:40000 -> 10.0.0.2:80 is host b's accepted connection.
    assert (curl, nginx) in edges(g, "connected")
    assert (curl, "endpoint=93.184.216.34:443") in edges(g, "connected")
    assert nodes[curl]["title"] == "curl"
    assert nodes[curl]["subtitle"] == "uid 1000@host-a pid 101"
    assert nodes[curl]["detail__argv"] == "curl http://10.0.0.2/"
    assert nodes[curl]["detail__exit"] == "exit 0"
    assert nodes[curl]["highlighted"] and nodes[sh]["highlighted"]
    assert nodes[nginx]["subtitle"] == "root@host-b pid 200"
    # Focused on curl: sh's other children are not descendants of curl.
    assert E.key(E.A, 120) not in nodes
    assert g["meta"]["seeds"] == [curl]


def test_one_node_per_exec(client):
    sh, app = E.key(E.A, 100), E.key(E.A, 140)
    g = get(client, focus=app)
    nodes = by_id(g)
    assert (nodes[f"{app}#1"]["title"], nodes[app]["title"]) == ("entrypoint.sh", "app")
    assert (sh, f"{app}#1") in edges(g, "spawned")
    assert (f"{app}#1", app) in edges(g, "exec")
    assert get(client, focus=f"{app}#1")["meta"]["seeds"] == [app]


def test_same_tuple_far_apart_in_time_is_not_matched(client):
    wget = E.key(E.A, 130)
    g = get(client, focus=f"130@{E.A}")
    assert g["meta"]["seeds"] == [wget]
    assert (wget, "endpoint=10.0.0.2:80") in edges(g, "connected")
    assert not [e for e in edges(g, "connected") if e[0] == wget and e[1] == E.key(E.B, 200)]


def test_overview_collapses_siblings_and_colours_failures(client):
    sh = E.key(E.A, 100)
    g = get(client, host=E.A)
    check_contract(g, 300)
    nodes = by_id(g)
    group = f"group={sh}|true"
    assert nodes[group]["detail__count"] == 5
    assert (sh, group) in edges(g, "spawned")
    assert {"id": group, "program": "true", "parent": sh, "count": 5} in g["meta"]["collapsed"]
    assert not [k for k in nodes if k.startswith("host-a:11")], "members are not drawn one by one"
    assert nodes[E.key(E.A, 120)]["color"] == "#FF9830"  # false: exit 1
    assert nodes[E.key(E.A, 120)]["detail__exit"] == "exit 1"
    assert nodes[E.key(E.A, 130)]["detail__exit"] == "running"
    assert (f"host={E.A}", E.key(E.A, 1)) in edges(g, "runs")


def test_focus_on_the_server_shows_its_worker_listener_and_client(client):
    nginx = E.key(E.B, 200)
    g = get(client, focus=nginx)
    assert (nginx, E.key(E.B, 201)) in edges(g, "spawned")
    assert (nginx, "listen=host-b|0.0.0.0:80") in edges(g, "listens")
    assert (E.key(E.A, 101), nginx) in edges(g, "connected")
    # wget's connection, accepted ten minutes after it was made, stays an unmatched peer.
    assert ("peer=10.0.0.1", nginx) in edges(g, "accepted")


def test_every_node_id_refocuses_the_graph(client):
    g = get(client, host=E.A)
    for n in g["nodes"]:
        if n["detail__kind"] in ("process", "group", "endpoint", "host"):
            assert get(client, focus=n["detail__focus"])["nodes"], n["id"]


def test_limit_is_respected_and_says_what_was_left_out(client):
    for limit in (1, 2, 5):
        g = get(client, host=f"{E.A},{E.B}", limit=str(limit))
        check_contract(g, limit)
        assert g["meta"]["not_shown"] > 0
        assert g["nodes"][-1]["detail__kind"] == "more"


def test_alert_webhook_is_idempotent_and_the_alert_joins_the_graph(client):
    payload = E.alert_payload()
    first = client.post("/api/alerts/webhook", json=payload, headers=AUTH)
    again = client.post("/api/alerts/webhook", json=payload, headers=AUTH)
    assert first.status_code == again.status_code == 200
    assert (first.get_json()["stored"], again.get_json()["stored"]) == (1, 0)
    rows = get(client, "/api/graph", focus="alert=a1b2c3d4e5f60718")
    nodes = by_id(rows)
    assert nodes["alert=a1b2c3d4e5f60718"]["title"] == "GroundtruthProcessCrashLoop"
    assert nodes["alert=a1b2c3d4e5f60718"]["highlighted"]
    assert nodes[f"host={E.B}"]["highlighted"]
    assert ("alert=a1b2c3d4e5f60718", f"host={E.B}") in edges(rows, "fired")
    # Scoped to host b: nginx and its worker, and curl only as the far end of a connection.
    assert {E.key(E.B, 200), E.key(E.B, 201), E.key(E.A, 101)} <= set(nodes)
    assert E.key(E.A, 100) not in nodes


@pytest.mark.parametrize(
    "payload, problem",
    [
        ({"version": "3", "alerts": []}, "version"),
        ({"version": "4", "alerts": []}, "alerts"),
        ({"version": "4", "alerts": [{"status": "firing"}]}, "labels"),
        ("not json", "JSON object"),
    ],
)
def test_malformed_webhook_is_a_400(client, payload, problem):
    reply = client.post("/api/alerts/webhook", json=payload, headers=AUTH)
    assert reply.status_code == 400
    assert problem in reply.get_json()["description"]


@pytest.mark.parametrize(
    "args, status, says",
    [
        ({"from": "yesterday"}, 400, "neither epoch"),
        ({"to": "99999999999999999999"}, 400, "out of range"),
        ({"from": E.WINDOW["to"], "to": E.WINDOW["from"]}, 400, "inverted"),
        ({"from": "0", "to": E.WINDOW["to"]}, 400, "at most"),
        ({"limit": "ten"}, 400, "whole number"),
        ({"limit": "0"}, 400, "out of range"),
        ({"limit": "1501"}, 400, "out of range"),
        ({"focus": "no such thing"}, 400, "not understood"),
        ({"focus": "host-a:99999:1"}, 404, "no such process"),
        ({"focus": "alert=ffffffffffffffff"}, 404, "no alert"),
        ({"focus": "host-a'; DROP TABLE process_events; --:1:2"}, 404, "no such process"),
        ({"host": "x\x00y"}, 400, "control characters"),
    ],
)
def test_bad_input_is_a_json_4xx_that_says_what_is_wrong(client, args, status, says):
    reply = client.get("/api/graph", query_string={**E.WINDOW, **args}, headers=AUTH)
    body = reply.get_json()
    assert reply.status_code == status
    assert set(body) == {"code", "name", "description"} and body["code"] == status
    assert says in body["description"]


def test_token_is_required_but_health_and_openapi_are_public(client):
    assert client.get("/api/graph", query_string=E.WINDOW).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.get("/api/graph", query_string=E.WINDOW, headers=wrong).status_code == 401
    assert client.get("/api/health").status_code == 200
    assert client.get("/api/openapi.json").status_code == 200


def test_openapi_documents_every_route(app, client):
    doc = client.get("/api/openapi.json").get_json()
    routes = {r.rule.replace("<path:key>", "{key}") for r in app.url_map.iter_rules()}
    assert routes == set(doc["paths"])


def test_nodegraph_api_plugin_contract(client):
    fields = get(client, "/api/graph/fields")
    node_fields = {f["field_name"] for f in fields["nodes_fields"]}
    g = get(client, "/api/graph/data", host=E.A)
    assert {"id", "title", "subtitle", "mainstat", "secondarystat"} <= node_fields
    assert set(g["nodes"][0]) == node_fields
    assert set(g["edges"][0]) == {f["field_name"] for f in fields["edges_fields"]}


def test_tables_processes_detail_and_timeline(client):
    rows = get(client, "/api/processes", host=E.A)
    assert {r["program"] for r in rows} >= {"sh", "curl", "true", "false", "wget"}
    detail = get(client, f"/api/processes/{E.key(E.A, 100)}")
    assert [c["pid"] for c in sorted(detail["children"], key=lambda c: c["pid"])] == [
        101, 110, 111, 112, 113, 114, 120, 130, 140
    ]  # fmt: skip
    assert [e["kind"] for e in detail["events"]] == ["fork", "exec"]
    timeline = get(client, "/api/timeline", host=E.A, process_key=E.key(E.A, 101))
    assert [(t["type"], t["kind"]) for t in timeline][:3] == [
        ("process", "fork"), ("process", "exec"), ("connection", "connect")
    ]  # fmt: skip


def test_store_unavailable_is_a_503():
    dead = f"clickhouse://default:@127.0.0.1:{free_port()}/nothing"
    client = create_app({"STORE_URL": dead}).test_client()
    reply = client.get("/api/graph", query_string=E.WINDOW)
    assert reply.status_code == 503
    reply = client.post("/api/alerts/webhook", json=E.alert_payload())
    assert reply.status_code == 503, "Alertmanager retries a 5xx"


def test_refuses_to_listen_beyond_loopback_without_a_token():
    with pytest.raises(InsecureListen):
        check_listen(create_app(), "0.0.0.0")
    check_listen(create_app(), "127.0.0.1")
    check_listen(create_app({"TOKEN": "x"}), "0.0.0.0")


def test_the_investigation_dashboards_query_is_answered(client):
    """The Infinity targets of dashboards/nodegraph.py, with values as Grafana sends them."""
    from dashboards.nodegraph import GRAPH_PATH, graph_params, infinity_graph_target

    grafana = {
        "${__from}": E.WINDOW["from"],
        "${__to}": E.WINDOW["to"],
        "${instance}": E.A,
        "${container}": "__all__",  # the dashboards' "All"
        "${focus}": "",
        "${limit}": "500",
    }
    args = {p["key"]: grafana[p["value"]] for p in graph_params("instance")}
    g = get(client, GRAPH_PATH, **args)
    check_contract(g, 500)
    for frame in ("nodes", "edges"):
        target = infinity_graph_target(frame, "instance")
        assert target["root_selector"] == frame and g[frame]


def test_a_large_notification_is_stored_once(client):
    """Thousands of alerts in one payload: the id check is chunked under 18.16's query cap."""
    payload = E.alert_payload(fingerprint="big0")
    template = payload["alerts"][0]
    payload["alerts"] = [{**template, "fingerprint": f"big{i:05d}"} for i in range(3000)]
    first = client.post("/api/alerts/webhook", json=payload, headers=AUTH).get_json()
    again = client.post("/api/alerts/webhook", json=payload, headers=AUTH).get_json()
    assert (first["stored"], again["stored"], again["duplicates"]) == (3000, 0, 3000)


def test_thousands_of_descendants_stay_within_the_limit_and_the_query_cap(store, app):
    """More children than MAX_DESCENDANTS, each its own program: every query stays under 18.16's
    256 KiB cap (keys are inlined there) and the graph under its limit."""
    n = app.config["MAX_DESCENDANTS"] + 500
    parent = 5000
    events = E.spawn(E.A, parent, 1, E.T0 + 100 * E.S, "spawner", ["spawner"])
    for i in range(n):
        pid = 100_000 + i
        events += E.spawn(E.A, pid, parent, E.T0 + 101 * E.S + i, f"p{i}", [f"p{i}"])
    store.insert_events(events)
    g = get(app.test_client(), focus=E.key(E.A, parent), limit="200")
    check_contract(g, 200)
    assert g["meta"]["descendants_capped_at"] == app.config["MAX_DESCENDANTS"]
    assert g["meta"]["not_shown"] > 0


def test_a_query_bug_is_a_500_not_a_503(store, caplog):
    """Our own SQL failing is a logged 500 (no traceback in the reply), not "store unavailable"."""
    from flask import Blueprint

    from graphapi.storage import get_store

    app = create_app({"STORE": store})
    bp = Blueprint("broken", __name__)
    bp.get("/broken")(lambda: {"rows": get_store().query("SELECT no_such_column FROM system.one")})
    app.register_blueprint(bp)
    reply = app.test_client().get("/broken")
    body = reply.get_json()
    assert reply.status_code == 500
    assert set(body) == {"code", "name", "description"} and "Traceback" not in body["description"]


def test_container_scope_takes_the_full_id_or_the_metrics_short_label(store, client):
    """The dashboards pass the metrics' container label (12 characters); alerts may carry it."""
    container = "ab12" * 16
    t = E.T0 + 7200 * 10**9  # outside the window the other tests read
    store.insert_events(
        [
            E.proc("exec", E.A, 7001, 1, t, "inside", container_id=container, argv=["inside"]),
            E.proc("exec", E.A, 7002, 1, t + 1, "outside", argv=["outside"]),
        ]
    )
    window = {"from": str((t - 10**9) // 10**6), "to": str((t + 10**9) // 10**6)}
    for scope in (container, container[:12]):
        rows = get(client, "/api/processes", host=E.A, container=scope, **window)
        assert {r["pid"] for r in rows} == {7001}, scope
    rows = get(client, "/api/processes", host=E.A, container="__all__", **window)
    assert {r["pid"] for r in rows} == {7001, 7002}


def test_the_default_graph_fits_grafanas_drawing_limit_with_graphapis_own_cut(store, client):
    """Grafana's Node Graph draws at most 200 nodes; by default graphapi returns at most that
    many, its last node saying how many it left out (dashboards/nodegraph.py)."""
    from dashboards.nodegraph import MAX_NODES_DRAWN

    t, parent, children = E.T0 + 9000 * E.S, 8000, 260
    events = E.spawn(E.A, parent, 1, t, "fanout", ["fanout"])
    for i in range(children):
        events += E.spawn(E.A, 80_000 + i, parent, t + (i + 1) * 10**6, f"c{i}", [f"c{i}"])
    store.insert_events(events)
    window = {"from": str((t - E.S) // 10**6), "to": str((t + 10 * E.S) // 10**6)}
    g = get(client, host=E.A, **window)
    check_contract(g, MAX_NODES_DRAWN)
    assert len(g["nodes"]) == MAX_NODES_DRAWN
    more = g["nodes"][-1]
    assert more["detail__kind"] == "more"
    assert more["detail__count"] == g["meta"]["not_shown"] > 0


def test_past_the_limit_a_storm_outranks_quiet_processes(store, client):
    """Quiet processes that started first, then a storm of one program: with a small limit the
    graph keeps the storm (its collapsed group and its parent) and leaves quiet ones out."""
    t, limit = E.T0 + 11_000 * E.S, 10
    events = []
    for i in range(3 * limit):  # quiet: each its own program, all before the storm
        events += E.spawn(E.A, 60_000 + i, 1, t + i * 10**6, f"quiet{i}", [f"quiet{i}"])
    storm = 61_000
    events += E.spawn(E.A, storm, 1, t + E.S, "stormer", ["stormer"])
    for i in range(25):
        pid = 62_000 + i
        events += E.spawn(
            E.A, pid, storm, t + 2 * E.S + i * 10**6, "true", ["true"], end=t + 3 * E.S
        )
    store.insert_events(events)
    window = {"from": str((t - E.S) // 10**6), "to": str((t + 10 * E.S) // 10**6)}
    g = get(client, host=E.A, limit=str(limit), **window)
    check_contract(g, limit)
    group = f"group={E.key(E.A, storm)}|true"
    assert by_id(g)[group]["detail__count"] == 25
    assert (E.key(E.A, storm), group) in edges(g, "spawned")
    assert g["meta"]["not_shown"] > 0
