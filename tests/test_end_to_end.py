"""End to end with real binaries and no Docker: an exec storm becomes a stored alert and a graph.

``testservices.alert_stack.AlertStack`` runs the compose stack's Prometheus and Alertmanager configs
and the generated rules (addresses rewritten to loopback, the exec-storm threshold low), the
real exporter writing to a real ClickHouse server, and the real ``groundtruth graphapi``.

A child process execs /bin/true in a loop. The alert must fire in Prometheus, Alertmanager must
deliver it to graphapi's webhook (it is stored), and the causal graph centred on that alert
must contain the process that caused the storm with its /bin/true children. The time from the
first exec to the stored alert is printed and recorded as a property (``make bench`` measures
it with the deployed intervals).
"""

from __future__ import annotations

import time

import pytest

from alerts.alertmanager import GRAPHAPI_RECEIVER
from graph.nodegraph_fields import ALERT as ALERT_NODE
from tests.fixtures.ebpf import skip_or_fail_without_ebpf
from testservices.alert_stack import ALERT, AlertStack


def descendants(graph: dict, root: str) -> set[str]:
    """Nodes reachable from root along the graph's edges (spawned, exec, ...)."""
    out, frontier = set(), {root}
    while frontier:
        frontier = {e["target"] for e in graph["edges"] if e["source"] in frontier} - out
        out |= frontier
    return out & {n["id"] for n in graph["nodes"]}


@pytest.fixture
def stack(ebpf_problems, tmp_path, clickhouse_url):
    skip_or_fail_without_ebpf(ebpf_problems)
    stack = AlertStack(tmp_path, clickhouse_url).start()
    yield stack
    stack.stop()


def test_exec_storm_alert_reaches_graphapi_and_its_graph(stack, record_property):
    storm = stack.storm()
    provoked, provoked_ns = time.monotonic(), time.time_ns()
    try:
        fired = stack.wait_fired(timeout=60)
        fired_after = time.monotonic() - provoked
        stored = stack.wait_stored(timeout=60)
        delivered_after = time.monotonic() - provoked
        stack.wait_children_stored(storm.pid, timeout=60)
    finally:
        storm.kill()
        storm.wait()
    record_property("exec_storm_fired_seconds", round(fired_after, 2))
    record_property("exec_storm_delivered_seconds", round(delivered_after, 2))
    print(
        f"exec storm -> firing in {fired_after:.1f}s, stored by graphapi in {delivered_after:.1f}s"
    )

    assert fired[0]["metric"][stack.cfg.host_label] == stack.host
    fingerprint, host, status = stored[0]
    assert (host, status) == (stack.host, "firing")
    # (One alert per top program: busy neighbours on this machine may add another.)
    am_alerts = {a["fingerprint"]: a for a in stack.alertmanager.alerts()}
    assert am_alerts[fingerprint]["labels"]["alertname"] == ALERT
    assert GRAPHAPI_RECEIVER in [r["name"] for r in am_alerts[fingerprint]["receivers"]]

    # The graph of the alert's window and host: the storm's parent and the /bin/true it ran.
    window = {"from": provoked_ns // 10**6 - 60_000, "to": time.time_ns() // 10**6 + 1000}
    params = {**window, "focus": f"alert={fingerprint}", "host": stack.host}
    assert stack.graph(token=None, **params).status_code == 401
    reply = stack.graph(**params)
    assert reply.status_code == 200, reply.text
    graph = reply.json()
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes[f"{ALERT_NODE}{fingerprint}"]["highlighted"] is True
    (storm_node,) = [i for i in nodes if i.startswith(f"{stack.host}:{storm.pid}:")]
    programs = {nodes[d]["title"].rsplit("/", 1)[-1] for d in descendants(graph, storm_node)}
    assert "true" in programs, f"what the storm started, in the graph: {programs}"
