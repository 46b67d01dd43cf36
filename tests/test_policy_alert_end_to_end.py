"""The baseline policy alert end to end, with real binaries: a deviation becomes a notification
whose link opens the graph of the deviating process's trace.

The stack is the trace alert's (``tests/test_trace_alert_end_to_end.py``): the generated rules
in a real Prometheus that scrapes graphapi, the generated Alertmanager config, the real exporter
(real eBPF) started with ``--policies``, writing to a real ClickHouse server. The default team's
warning receiver is the test's webhook.

A service runs in a systemd-like cgroup under a policy that allows it no program; it starts
one, which enters a login session of its own (so it roots its own trace) and prints its pid and
start time. The exporter flags the new executable, graphapi exports the trace's deviation,
Prometheus fires ``GroundtruthPolicyDeviation`` for that trace and workload, and Alertmanager
delivers it; the notification's link, followed as Grafana would, returns a graph holding the
deviating process, highlighted.
"""

from __future__ import annotations

import os

import pytest

from graph.nodegraph_fields import TRACE as TRACE_PREFIX
from graph.traces import trace_id
from policy.files import file_name, render
from policy.model import Policy
from schema.events import FlagEvent
from tests.alert_links import follow_to_graph, paged_for_trace
from tests.cgroups import cgroup_dirs, random_service_unit, service_v2
from tests.test_baseline_live import PYTHON, Service
from tests.test_policy_live import IDENTIFY, key_of_report
from tests.test_traces_live import LOGIN

ALERT = "GroundtruthPolicyDeviation"
LOGIN_UID = 4615  # the deviating program's login user: a session, and so a trace, of its own
LOGIN_LINE = "; ".join(LOGIN.splitlines())  # the service reads one command a line


@pytest.fixture
def service():
    """The service, started before the exporter (which finds it by its start-up scan)."""
    unit = random_service_unit()
    with cgroup_dirs(service_v2(unit)) as (cgroup,):
        s = Service(cgroup, unit)
        try:
            yield s
        finally:
            s.stop()


def test_a_deviation_pages_the_team_with_a_link_to_its_trace(alert_stack, pager, service, tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / file_name(service.workload)).write_text(
        render(Policy(workload=service.workload, severity="high"))  # no program allowed
    )
    stack = alert_stack(
        team_webhooks={"warning": pager.url}, exporter_options={"policies": str(policies)}
    )
    in_a_session = [PYTHON, "-c", LOGIN_LINE, str(LOGIN_UID), PYTHON, PYTHON, "-c", IDENTIFY]
    deviating = key_of_report(service.report("-", *in_a_session), stack.host)
    (flag,) = stack.exporter.wait_for(
        lambda e: isinstance(e, FlagEvent) and e.workload == service.workload,
        what=f"the policy flag of {service.workload}",
    )
    assert (flag.rule_id, flag.process_key) == ("policy_exec", deviating)
    tid = trace_id(deviating)  # the first process of its login session: its trace's root

    metric = "groundtruth_trace_policy_deviations"
    alert = paged_for_trace(stack, pager, ALERT, tid, metric)[0]
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": ALERT,
        "trace_id": tid,
        "host": stack.host,
        "root_program": os.path.basename(PYTHON),
        "workload": service.workload,
        "severity": "warning",
    }
    assert alert["annotations"]["description"].startswith(
        f"1 deviations from the baseline policy of workload {service.workload} "
    )

    # The link: the investigation dashboard focused on the trace; its graph holds the process.
    query, params, reply = follow_to_graph(stack, alert["annotations"]["dashboard_url"])
    assert query["var-focus"] == params["focus"] == f"{TRACE_PREFIX}{tid}"
    assert params["host"] == stack.host
    assert reply.status_code == 200, reply.text
    nodes = {n["id"]: n for n in reply.json()["nodes"]}
    assert nodes[deviating]["highlighted"] is True
