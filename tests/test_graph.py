"""The causal graph without HTTP (graph/): built straight from a store, its limits a dataclass,
its errors its own; graphapi maps those errors to 404 / 400.

Expected nodes follow from the recorded events of tests/graphapi_events.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from graph.causal import build_graph
from graph.errors import BadScope, FocusNotFound
from graph.request import (
    ALERT_FOCUS,
    PROCESS,
    Focus,
    GraphLimits,
    GraphRequest,
    Scope,
    Window,
)
from graphapi import create_app, errors, graph_limits
from store.db import open_store
from store.migrations import migrate
from tests import graphapi_events as E

WINDOW = Window(int(E.WINDOW["from"]) * 10**6, int(E.WINDOW["to"]) * 10**6)
EVERYWHERE = Scope()
DEFAULT_LIMITS = GraphLimits()


@pytest.fixture(scope="module")
def store(chdb_dir):
    s = open_store(None, data_dir=chdb_dir, database="graph_without_http")
    migrate(s)
    s.insert_events(E.events())
    yield s
    s.close()


def graph_of(store, focus=None, scope=EVERYWHERE, limits=DEFAULT_LIMITS) -> dict:
    return build_graph(store, GraphRequest(WINDOW, scope, focus, 300), limits)


def test_a_focused_graph_is_built_from_the_store_alone(store):
    curl, sh = E.key(E.A, 101), E.key(E.A, 100)
    g = graph_of(store, Focus(PROCESS, curl, host=E.A, pid=101))
    nodes = {n["id"]: n for n in g["nodes"]}
    assert nodes[curl]["detail__argv"] == "curl http://10.0.0.2/"
    assert nodes[curl]["detail__exe"] == "/usr/bin/curl"
    assert (sh, curl) in {(e["source"], e["target"]) for e in g["edges"]}
    assert g["meta"]["seeds"] == [curl]


def test_a_process_found_by_the_scan_names_its_executable(store):
    nginx = E.key(E.B, 200)
    g = graph_of(store, Focus(PROCESS, nginx, host=E.B, pid=200))
    assert {n["id"]: n for n in g["nodes"]}[nginx]["detail__exe"] == "/usr/sbin/nginx"


def test_the_limits_dataclass_is_what_the_builder_obeys(store):
    sh = E.key(E.A, 100)
    collapsed = graph_of(store, scope=Scope(hosts=(E.A,)))
    assert f"group={sh}|true" in {n["id"] for n in collapsed["nodes"]}
    # The five `true` siblings stay single when collapsing needs more of them.
    apart = graph_of(store, scope=Scope(hosts=(E.A,)), limits=GraphLimits(collapse_min=6))
    ids = {n["id"] for n in apart["nodes"]}
    assert f"group={sh}|true" not in ids
    assert len([i for i in ids if i.startswith("host-a:11")]) == 5


def test_a_focus_not_stored_is_focus_not_found(store):
    with pytest.raises(FocusNotFound, match="'host-a:99999:1': no such process"):
        graph_of(store, Focus(PROCESS, "host-a:99999:1", host=E.A, pid=99999))
    with pytest.raises(FocusNotFound, match="no alert with fingerprint 'ffff'"):
        graph_of(store, Focus(ALERT_FOCUS, "ffff"))


def test_an_empty_window_or_no_room_for_a_node_is_a_bad_scope():
    with pytest.raises(BadScope, match="empty or inverted"):
        GraphRequest(Window(WINDOW.to_ns, WINDOW.from_ns), Scope(), None, 300)
    with pytest.raises(BadScope, match="limit=0"):
        GraphRequest(WINDOW, Scope(), None, 0)


def test_graphapi_maps_the_graphs_errors_to_404_and_400():
    app = create_app({"TESTING": True})
    with app.test_request_context():
        not_found = errors.handle(FocusNotFound("focus 'x': no such process"))
        bad = errors.handle(BadScope("limit=0: a graph needs at least one node"))
    assert not_found.status_code == 404
    assert not_found.get_json()["description"] == "focus 'x': no such process"
    assert bad.status_code == 400
    assert bad.get_json()["description"] == "limit=0: a graph needs at least one node"


def test_graphapi_config_keys_become_the_limits():
    app = create_app({"MAX_DEPTH": 5, "MATCH_SECONDS": 0.5})
    assert graph_limits(app.config) == GraphLimits(max_depth=5, match_seconds=0.5)


def test_the_graph_and_the_incident_cli_load_no_http_framework():
    code = (
        "import sys, graph.causal, incident.graph_svg, incident.cli\n"
        "web = sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug'))\n"
        "print(web)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
