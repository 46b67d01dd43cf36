"""Both calls of one Node Graph refresh describe the same graph (graphapi.snapshots).

The panel's nodes and edges come from two identical HTTP calls (two Infinity queries). The
tests make those pairs against a real ClickHouse server that is being written to meanwhile,
and check what Grafana checks before it draws anything: every edge's source and target is a
node of the pair's nodes call.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from graphapi import create_app
from graphapi.server import make_server
from graphapi.snapshots import SnapshotCache
from store.db import open_store
from store.migrations import migrate
from tests import graphapi_events as E

HOST = "storm-host"
PARENT = 900
PAIRS = 40
LIMIT = "60"


# --- the cache itself -------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_concurrent_identical_requests_build_one_graph():
    cache, built, release = SnapshotCache(10, clock=Clock()), [], threading.Event()

    def build():
        built.append(1)
        release.wait(timeout=60)
        return {"graph": len(built)}

    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(cache.get, "k", build)
        others = [pool.submit(cache.get, "k", build) for _ in range(7)]
        release.set()
        answers = [f.result(timeout=60) for f in [first, *others]]
    assert built == [1]
    assert all(a is answers[0] for a in answers)


def test_a_snapshot_expires_and_other_requests_have_their_own():
    clock = Clock()
    cache, n = SnapshotCache(10, clock=clock), iter(range(100))
    a = cache.get("a", lambda: {"n": next(n)})
    assert cache.get("a", lambda: {"n": next(n)}) is a
    assert cache.get("b", lambda: {"n": next(n)}) == {"n": 1}
    clock.now += 10
    assert cache.get("a", lambda: {"n": next(n)}) == {"n": 2}


def test_a_failed_build_is_not_shared_and_zero_seconds_caches_nothing():
    cache = SnapshotCache(10, clock=Clock())

    def fail():
        raise RuntimeError("store away")

    with pytest.raises(RuntimeError):
        cache.get("k", fail)
    assert cache.get("k", lambda: {"ok": 1}) == {"ok": 1}
    uncached, n = SnapshotCache(0), iter(range(10))
    assert [uncached.get("k", lambda: {"n": next(n)}) for _ in range(2)] == [{"n": 0}, {"n": 1}]


def test_the_cache_keeps_a_bounded_number_of_snapshots():
    cache = SnapshotCache(10, max_entries=3, clock=Clock())
    for key in range(10):
        cache.get(key, lambda key=key: {"k": key})
    assert len(cache._entries) <= 3
    assert cache.get(9, lambda: {"k": "rebuilt"}) == {"k": 9}  # the newest ones are kept


# --- pairs of calls while a storm is written --------------------------------------------------


def child_events(pid: int, t_ns: int) -> list:
    """A child of PARENT running a program of its own (so it is a node, not a group member)."""
    return E.spawn(HOST, pid, PARENT, t_ns, f"w{pid}", [f"/bin/w{pid}"])


@pytest.fixture
def served(clickhouse_url):
    """graphapi on a real ClickHouse (a connection per request, as deployed), over HTTP."""
    store = open_store(clickhouse_url)
    migrate(store)
    now = time.time_ns()
    store.insert_events(E.spawn(HOST, PARENT, 1, now - 600 * E.S, "spawner", ["spawner"]))
    app = create_app({"STORE_URL": clickhouse_url})
    server = make_server(app, "127.0.0.1", 0, threads=8)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}", store, clickhouse_url
    server.close()
    thread.join(timeout=30)
    store.close()


def panel_params(to_ms: int) -> dict:
    """What the dashboard's two Infinity queries send: the window from the time range."""
    return {"from": to_ms - 3_600_000, "to": to_ms, "host": HOST, "focus": "", "limit": LIMIT}


def refresh(base: str, to_ms: int) -> tuple[list, list]:
    """One panel refresh: the nodes call, then the edges call, with identical arguments."""
    nodes = requests.get(f"{base}/api/graph", params=panel_params(to_ms), timeout=60)
    edges = requests.get(f"{base}/api/graph", params=panel_params(to_ms), timeout=60)
    assert nodes.status_code == edges.status_code == 200, (nodes.text, edges.text)
    return nodes.json()["nodes"], edges.json()["edges"]


def missing_ends(nodes: list, edges: list) -> list:
    ids = {n["id"] for n in nodes}
    return [e["id"] for e in edges if e["source"] not in ids or e["target"] not in ids]


def stored_children(store) -> int:
    rows = store.query(
        "SELECT count() FROM process_events WHERE host = {h:String} AND kind = 'exec' "
        "AND ppid = {p:UInt32}",
        {"h": HOST, "p": PARENT},
    )
    return rows[0][0]


def test_every_pair_of_calls_agrees_while_the_store_is_written(served):
    base, _store, url = served
    stop, written = threading.Event(), []

    def storm():
        writer = open_store(url)
        pid = 10_000
        try:
            while not stop.is_set() and pid < 10_000 + 2_000:
                batch = []
                for _ in range(5):
                    batch += child_events(pid, time.time_ns() - E.S)
                    pid += 1
                writer.insert_events(batch)
                written.append(5)
                time.sleep(0.02)
        finally:
            writer.close()

    writer = threading.Thread(target=storm)
    writer.start()
    try:
        while not written:
            time.sleep(0.01)  # the storm is under way before the first refresh
        with ThreadPoolExecutor(4) as pool:
            pairs = list(pool.map(lambda _: refresh(base, time.time_ns() // 10**6), range(PAIRS)))
    finally:
        stop.set()
        writer.join(timeout=60)
    assert sum(written) > 0
    assert all(edges for _, edges in pairs), "every graph has edges to check"
    broken = [missing_ends(nodes, edges) for nodes, edges in pairs]
    assert broken == [[]] * PAIRS


def test_events_landing_between_the_two_calls_join_the_next_refresh_not_this_one(served):
    base, store, _url = served
    to_ms = time.time_ns() // 10**6
    params = panel_params(to_ms)
    first = requests.get(f"{base}/api/graph", params=params, timeout=60).json()
    before = stored_children(store)
    store.insert_events(child_events(50_000, to_ms * 10**6 - E.S))  # inside this window
    deadline = time.monotonic() + 60
    while stored_children(store) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored_children(store) == before + 1
    second = requests.get(f"{base}/api/graph", params=params, timeout=60).json()
    assert second["edges"] == first["edges"]
    assert missing_ends(first["nodes"], second["edges"]) == []
    # The event is stored and in the window: a request of its own (another limit) shows it.
    other = requests.get(f"{base}/api/graph", params={**params, "limit": "61"}, timeout=60)
    assert E.key(HOST, 50_000) in {n["id"] for n in other.json()["nodes"]}
