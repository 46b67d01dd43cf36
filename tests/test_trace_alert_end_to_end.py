"""The trace alert end to end, with real binaries and no Docker: flags become a page that opens
the trace's graph.

``testservices.alert_stack.AlertStack`` runs the compose stack's Prometheus config (which scrapes
graphapi's ``/metrics`` with graphapi's token) and Alertmanager config with the generated rules,
short intervals, the real exporter (real eBPF, the flag detector) writing to a real ClickHouse
server, and the real ``groundtruth graphapi`` on it. The default team's critical receiver is a
webhook this test runs: the team's pager.

The test runs an attack chain in a login session of its own (a reverse shell over loopback to a
listener it runs, which drops a program in /tmp and runs it): the exporter flags both, the
store has them, graphapi scores their trace (critical + high, capped: 100, over the alert's
line), Prometheus fires ``GroundtruthTraceScoreHigh`` for that trace, and Alertmanager delivers
it to the pager. The notification's dashboard link is then followed as Grafana would: the
investigation dashboard's Causal graph panel asks graphapi for its graph with the link's
variables, and that graph must hold both flagged processes, highlighted, under the trace's root.
"""

from __future__ import annotations

import pytest

from graph.nodegraph_fields import TRACE as TRACE_PREFIX
from graph.traces import trace_id
from tests.alert_links import follow_to_graph, paged_for_trace
from tests.test_traces_live import SCORING, key_of, reverse_shell_dropping_a_program

ALERT = "GroundtruthTraceScoreHigh"


@pytest.fixture
def stack(alert_stack, pager):
    return alert_stack(team_webhooks={"critical": pager.url})


@pytest.mark.causes_flags("reverse_shell", "exec_from_tmp")
def test_a_trace_over_the_line_pages_the_team_with_a_link_to_its_graph(stack, pager):
    shell_pid, dropped_pid = reverse_shell_dropping_a_program(uid=4610)
    exp = stack.exporter
    shell = key_of(exp, shell_pid, lambda e: e.filename == "/bin/sh")
    dropped = key_of(exp, dropped_pid)
    tid = trace_id(shell)  # the shell is the first process of its login session: the root

    alert = paged_for_trace(stack, pager, ALERT, tid, "groundtruth_trace_score")[0]
    weights, caps = SCORING.weights, SCORING.caps
    score = round(min(weights["critical"] + weights["high"], caps["critical"]))
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": ALERT,
        "trace_id": tid,
        "host": stack.host,
        "root_program": "sh",
        "severity": "critical",
    }
    assert alert["annotations"]["summary"] == (
        f"A trace of flags from sh on {stack.host} scores {score}."
    )

    # The page's link: the investigation dashboard on the trace's host, focused on the trace;
    # opened, its Causal graph panel asks graphapi for the graph with the link's variables.
    query, params, reply = follow_to_graph(stack, alert["annotations"]["dashboard_url"])
    assert query["var-focus"] == f"{TRACE_PREFIX}{tid}"
    assert (params["focus"], params["host"]) == (f"{TRACE_PREFIX}{tid}", stack.host)
    assert reply.status_code == 200, reply.text
    nodes = {n["id"]: n for n in reply.json()["nodes"]}
    assert {shell, dropped} <= set(nodes)
    assert nodes[shell]["highlighted"] is True and nodes[dropped]["highlighted"] is True
