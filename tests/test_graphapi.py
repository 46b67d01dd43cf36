"""graphapi on recorded events (tests/graphapi_events.py), on ClickHouse 18.16 and on chDB.

Every expected node, edge and count follows from the events the test wrote.
"""

from __future__ import annotations

import dataclasses
import re
import time

import pytest

from graphapi import create_app
from graphapi.server import InsecureListen, check_listen
from tests import graphapi_events as E
from testservices.service import free_port
from testservices.store_helpers import database_with

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module", params=["clickhouse", "chdb"])
def store(request, clickhouse_server, chdb_dir):
    with database_with(E.events(), request.param, clickhouse_server, chdb_dir) as s:
        yield s


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
        ({"host": "x\n"}, 400, "control characters"),  # a final newline, which "$" accepts
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
    routes = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r.rule)
        for r in app.url_map.iter_rules()
        if not r.endpoint.startswith("pages.")  # HTML for people (test_graphapi_pages.py)
    }
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


# ---- hostile input (issue 16): a client's mistake is a 4xx that says why, and loses nothing ----


def stored_alerts(store, fingerprint_prefix: str) -> list[tuple]:
    return store.query(
        "SELECT fingerprint, status FROM received_alerts WHERE startsWith(fingerprint, {p:String})",
        {"p": fingerprint_prefix},
    )


@pytest.mark.parametrize("year", [2600, 9999])
def test_an_alert_starting_after_2116_is_a_400_and_nothing_is_stored(store, client, year):
    """Nanoseconds since the epoch overflow UInt64 after 2554: such a time is refused whole."""
    payload = E.alert_payload(fingerprint=f"far{year}")
    payload["alerts"].append({**payload["alerts"][0], "fingerprint": f"far{year}b"})
    payload["alerts"][1]["startsAt"] = f"{year}-01-01T00:00:00Z"
    reply = client.post("/api/alerts/webhook", json=payload, headers=AUTH)
    assert reply.status_code == 400
    assert reply.get_json()["description"] == (
        "not an Alertmanager webhook payload: alerts[1].startsAt "
        f"'{year}-01-01T00:00:00Z' is out of range (after 2116)"
    )
    assert stored_alerts(store, f"far{year}") == [], "a refused payload stores none of its alerts"


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"version": "4", "alerts": [{"status": "firing", "labels": {"a": '
        + "[" * 5000
        + "]" * 5000
        + "}}]}",
    ],
    ids=["100000-deep", "5000-deep-in-labels"],
)
def test_a_deeply_nested_webhook_body_is_a_400(client, body):
    reply = client.post(
        "/api/alerts/webhook", data=body, content_type="application/json", headers=AUTH
    )
    assert reply.status_code == 400
    assert reply.get_json()["description"] == (
        "not an Alertmanager webhook payload: the body is nested too deeply"
    )


def test_a_thousand_alerts_with_long_multibyte_fingerprints_are_stored_once(store, client):
    """64 four-byte characters each: the stored-id lookup must stay under 18.16's 256 KiB query
    text (ids are inlined there), not turn into a 503 Alertmanager retries forever."""
    payload = E.alert_payload()
    template = payload["alerts"][0]
    prefix = "\U0001d518mb"
    fingerprints = [f"{prefix}{i:04d}" + "\U0001d518" * 57 for i in range(1000)]
    assert all(len(f) == 64 and len(f.encode()) == 4 + 2 + 4 + 57 * 4 for f in fingerprints)
    payload["alerts"] = [{**template, "fingerprint": f} for f in fingerprints]
    first = client.post("/api/alerts/webhook", json=payload, headers=AUTH)
    again = client.post("/api/alerts/webhook", json=payload, headers=AUTH)
    assert (first.status_code, again.status_code) == (200, 200), again.get_json()
    assert (first.get_json()["stored"], again.get_json()["duplicates"]) == (1000, 1000)
    assert sorted(f for f, _ in stored_alerts(store, prefix)) == fingerprints


def test_a_query_the_server_rejects_is_a_500_not_store_unavailable(store):
    """The server answered (it refused the query): retrying cannot help, so no 503."""
    from flask import Blueprint

    from graphapi.storage import get_store

    app = create_app({"STORE": store})
    bp = Blueprint("too_long", __name__)
    # Longer than the server's query-size limit (256 KiB on 18.16, cut mid-character).
    too_long = "SELECT '" + "\U0001d518" * 100_000 + "'"
    bp.get("/too-long")(lambda: {"rows": get_store().query(too_long)})
    app.register_blueprint(bp)
    reply = app.test_client().get("/too-long")
    assert reply.status_code in (200, 500), reply.get_json()  # chDB has no such limit
    if reply.status_code == 500:
        assert reply.get_json()["description"] == "internal error (logged on the server)"


def test_the_focused_alert_is_drawn_whatever_the_alert_limit_cuts(store, app):
    """More alerts in the window than MAX_ALERTS, the focused one starting last."""
    client = app.test_client()
    payload = E.alert_payload(fingerprint="crowd0000")
    template = payload["alerts"][0]
    crowd = app.config["MAX_ALERTS"] + 20
    payload["alerts"] = [{**template, "fingerprint": f"crowd{i:04d}"} for i in range(crowd)]
    late = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((E.T0 + 600 * E.S) // E.S))
    payload["alerts"].append({**template, "fingerprint": "crowdlast", "startsAt": late})
    assert client.post("/api/alerts/webhook", json=payload, headers=AUTH).status_code == 200
    g = get(client, focus="alert=crowdlast")
    nodes = by_id(g)
    assert nodes["alert=crowdlast"]["highlighted"]
    assert ("alert=crowdlast", f"host={E.B}") in edges(g, "fired")
    # The first MAX_ALERTS by start time, and the focused one, which starts after them all.
    assert sum(n["detail__kind"] == "alert" for n in g["nodes"]) == app.config["MAX_ALERTS"] + 1


@pytest.mark.parametrize("limit", ["1", "2"])
def test_the_focused_process_is_drawn_whatever_the_node_limit_cuts(client, limit):
    g = get(client, focus=E.key(E.A, 101), limit=limit)
    check_contract(g, int(limit))
    assert g["nodes"][0]["id"] == E.key(E.A, 101) and g["nodes"][0]["highlighted"]
    assert g["meta"]["not_shown"] > 0


# Two hosts, two containers, three hours before the other tests' window (issue 16, item 7).
SCOPED_T = E.T0 - 3 * 3600 * E.S
SCOPED_WINDOW = {
    "from": str((SCOPED_T - 60 * E.S) // 10**6),
    "to": str((SCOPED_T + 600 * E.S) // 10**6),
}
SA, SB, CA, CB = "scope-a", "scope-b", "ca" * 32, "cb" * 32


def scoped_events() -> list:
    """scope-a: app (container CA) runs worker (CA), which connects to db on scope-b
    (container CB, listening on 10.9.9.9:5432); sshd runs outside any container."""
    t = SCOPED_T

    def started(host, pid, ppid, at, comm, container=""):
        return [
            E.proc(kind, host, pid, ppid, at, comm, start=at, argv=[comm], container_id=container)
            for kind in ("fork", "exec")
        ]

    def connection(host, pid, direction, local, remote, cid, container, kinds):
        rows = E.conn(host, pid, direction, local, remote, t + 4 * E.S, cid, kinds=kinds)
        return [dataclasses.replace(r, container_id=container) for r in rows]

    ev = started(SA, 10, 1, t + E.S, "app", CA) + started(SA, 11, 10, t + 2 * E.S, "worker", CA)
    ev += started(SA, 12, 1, t + 3 * E.S, "sshd") + started(SB, 20, 1, t + E.S, "db", CB)
    ev.append(
        E.ListenEvent(
            event_id="scoped-listen", kind="listen", time_ns=t + 2 * E.S, host=SB, pid=20,
            process_key=E.key(SB, 20), comm="db", family="ipv4", local_addr="0.0.0.0",
            local_port=5432, container_id=CB,
        )
    )  # fmt: skip
    client, server = ("10.1.0.1", 40000), ("10.9.9.9", 5432)
    ev += connection(SA, 11, "outbound", client, server, "s1", CA, ("connect", "close"))
    ev += connection(SB, 20, "inbound", server, client, "s2", CB, ("accept", "close"))
    return ev


@pytest.fixture(scope="module")
def scoped(store, app):
    store.insert_events(scoped_events())
    payload = E.alert_payload(fingerprint="scoped-alert", host=SA)
    payload["alerts"][0]["startsAt"] = time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime((SCOPED_T + 5 * E.S) // E.S)
    )
    reply = app.test_client().post("/api/alerts/webhook", json=payload, headers=AUTH)
    assert reply.status_code == 200


def process_nodes(graph) -> set[str]:
    return {n["id"] for n in graph["nodes"] if n["detail__kind"] == "process"}


# Every focus kind: (focus, a scope holding it and what the graph then holds, a scope that
# does not hold it). A focus narrows the scope; outside it, a 404 says so.
FOCUS_IN_AND_OUT_OF_SCOPE = {
    "process": (E.key(SA, 11), {"host": SA, "container": CA}, {"host": SB}),
    "pid": (f"11@{SA}", {"host": SA, "container": CA}, {"host": SA, "container": CB}),
    "address": ("10.9.9.9:5432", {"host": SA, "container": CA}, {"host": SA, "container": CB}),
    "alert": ("alert=scoped-alert", {"host": f"{SA},{SB}", "container": CA}, {"host": SB}),
    "host": (f"host={SA}", {"host": f"{SA},{SB}", "container": CA}, {"host": SB}),
    "container": (f"container={CA}", {"host": SA}, {"container": CB}),
    "group": (f"group={E.key(SA, 10)}|worker", {"host": SA, "container": CA}, {"host": SB}),
}


@pytest.mark.parametrize("kind", FOCUS_IN_AND_OUT_OF_SCOPE)
def test_a_focus_narrows_within_the_scope_for_every_focus_kind(scoped, client, kind):
    focus, inside, outside = FOCUS_IN_AND_OUT_OF_SCOPE[kind]
    g = get(client, focus=focus, **inside, **SCOPED_WINDOW)
    # Only container CA's processes on scope-a are the graph's own; db on scope-b may only be
    # drawn as the far end of worker's connection (context, like ancestors outside the scope).
    own = process_nodes(g) - {E.key(SB, 20), E.key(SA, 1)}
    assert own and own <= {E.key(SA, 10), E.key(SA, 11)}, (kind, own)
    assert E.key(SA, 12) not in process_nodes(g), "sshd is outside container CA"

    reply = client.get(
        "/api/graph", query_string={**SCOPED_WINDOW, "focus": focus, **outside}, headers=AUTH
    )
    assert reply.status_code == 404, reply.get_json()
    scope_text = " ".join(f"{k}={v}" for k, v in outside.items())
    assert reply.get_json()["description"] == (
        f"focus {focus!r} is outside the scope ({scope_text}): "
        "a focus narrows the scope, it does not replace it"
    )


def test_a_host_scope_with_no_such_host_stays_empty_whatever_the_focus(scoped, client):
    assert get(client, host="nohost", **SCOPED_WINDOW)["nodes"] == []
    for focus in (f"host={SA}", f"container={CA}"):
        reply = client.get(
            "/api/graph",
            query_string={**SCOPED_WINDOW, "host": "nohost", "focus": focus},
            headers=AUTH,
        )
        assert reply.status_code == 404 if focus.startswith("host") else 200
        if reply.status_code == 200:
            assert reply.get_json()["nodes"] == []


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


def test_a_405_says_which_methods_are_allowed(client):
    reply = client.delete("/api/graph", headers=AUTH)
    assert reply.status_code == 405
    assert set(reply.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert reply.get_json()["code"] == 405


def test_a_repeated_query_parameter_is_a_400(client):
    reply = client.get("/api/graph?limit=5&limit=6", headers=AUTH)
    assert reply.status_code == 400
    assert reply.get_json()["description"] == "'limit' is given 2 times; give it once"


def test_the_openapi_document_states_the_bounds_the_server_enforces(app, client):
    doc = client.get("/api/openapi.json").get_json()
    for path, item in doc["paths"].items():
        params = {p["name"]: p["schema"] for p in item.get("get", {}).get("parameters", [])}
        if "limit" in params:
            (integer,) = [s for s in params["limit"]["anyOf"] if s.get("type") == "integer"]
            assert (integer["minimum"], integer["maximum"]) == (1, app.config["MAX_LIMIT"]), path
    assert "limit" in {p["name"] for p in doc["paths"]["/api/processes/{key}"]["get"]["parameters"]}
    body = doc["paths"]["/api/alerts/webhook"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["required"] == ["version", "alerts"]
