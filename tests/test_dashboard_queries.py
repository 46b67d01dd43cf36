"""Every query of the dashboards and rules, run on the real servers they are written for.

PromQL: a real Prometheus loaded with the generated rules evaluates every panel, annotation
and rule expression without error. Whether each returns data needs a live exporter scraped:
``dashboards.verify.expressions_without_data`` is the check for that (exercised here on
Prometheus' own metrics). SQL: every ClickHouse table query runs, macros expanded as Grafana
would, on the store's real schema on ClickHouse 18.16 and on chDB, and returns exactly the
events this test wrote.
"""

import time

import pytest

from alerts import build as alerts_build
from alerts.rules import rule_file
from dashboards import sql, verify
from mixin.config import load_config
from schema.events import ConnectionEvent, FlagEvent, ProcessEvent
from store.migrations import migrate
from store.received_alerts import ReceivedAlert
from testservices.store_helpers import open_test_store


@pytest.fixture(scope="module")
def expressions():
    cfg = load_config()
    return verify.all_expressions(cfg, rule_file(cfg))


@pytest.fixture
def prometheus(prometheus_factory):
    rules = alerts_build.GENERATED_DIR / alerts_build.RULES
    return prometheus_factory(rule_files=[rules])


def test_every_panel_and_rule_expression_evaluates(prometheus, expressions):
    kinds = {e.kind for e in expressions}
    assert kinds == {"panel", "annotation", "record", "alert"}
    assert len(expressions) > 60
    assert verify.evaluation_errors(prometheus.url, expressions) == []


def test_a_broken_expression_is_reported_with_prometheus_error(prometheus):
    errors = verify.evaluation_errors(
        prometheus.url, [verify.Expression("somewhere", "sum(rate(up[1m])")]
    )
    assert len(errors) == 1 and errors[0].startswith("somewhere: sum(rate(up[1m]): ")
    assert "unclosed left parenthesis" in errors[0]


def test_every_loaded_rule_evaluates_healthy(prometheus, expressions):
    expected = {e.where.removeprefix("rule ") for e in expressions if e.kind in ("record", "alert")}
    deadline = time.monotonic() + 30
    while True:
        rules = [r for g in prometheus.api("rules")["data"]["groups"] for r in g["rules"]]
        if all(r["health"] != "unknown" for r in rules) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert {r["name"] for r in rules} == expected
    assert [(r["name"], r["lastError"]) for r in rules if r["health"] != "ok"] == []


def test_data_check_separates_missing_from_incident_only(prometheus):
    exprs = [
        verify.Expression("has data", 'up{job="prometheus"}'),
        verify.Expression("incident", "sum(rate(groundtruth_oom_kills_total[1m]))"),
        verify.Expression("missing", "groundtruth_no_such_metric"),
        verify.Expression("alert", "groundtruth_no_such_metric > 1", "alert"),
    ]
    # Prometheus has scraped itself once it answers `up`.
    deadline = time.monotonic() + 30
    while not prometheus.query("up")["data"]["result"] and time.monotonic() < deadline:
        time.sleep(0.2)
    missing, explained = verify.expressions_without_data(prometheus.url, exprs)
    assert [e.where for e in missing] == ["missing"]
    assert [(e.where, reason) for e, reason in explained] == [
        ("incident", "counted from the first OOM kill")
    ]


def test_grafana_variables_are_filled_like_grafana():
    expr = 'rate(x{job=~"$job",instance=~"$instance",container=~"${container}"}[$__rate_interval])'
    assert verify.fill_variables(expr) == ('rate(x{job=~".+",instance=~".+",container=~".*"}[1m])')


# --- ClickHouse SQL ------------------------------------------------------------------------

T0_MS = (time.time_ns() // 10**6) - 3_600_000  # a window one hour ago (inside any TTL)
WINDOW = (T0_MS, T0_MS + 600_000)
IN_NS = (T0_MS + 60_000) * 10**6  # one minute into the window
OUT_NS = (T0_MS - 60_000) * 10**6  # one minute before it


def process(event_id, time_ns, kind, host="host-a", container="c1", outcome="", pid=100):
    return ProcessEvent(
        event_id=event_id,
        kind=kind,
        time_ns=time_ns,
        host=host,
        pid=pid,
        ppid=1,
        process_key=f"{host}:{pid}:7",
        parent_key=f"{host}:1:1",
        comm=event_id,  # tells the rows of a result apart
        filename="/usr/bin/worker",
        argv=["/usr/bin/worker", "--it's"],
        outcome=outcome,
        exit_code=3 if outcome == "error" else -1,
        lifetime_ns=2_500_000_000,
        container_id=container,
    )


def connection(event_id, time_ns, host="host-a", container="c1"):
    return ConnectionEvent(
        event_id=event_id,
        kind="close",
        time_ns=time_ns,
        host=host,
        connection_id=event_id,
        pid=100,
        process_key=f"{host}:100:7",
        comm=event_id,
        container_id=container,
        direction="outbound",
        family="ipv4",
        local_addr="10.0.0.1",
        local_port=40000,
        remote_addr="10.0.0.2",
        remote_port=5432,
        outcome="ok",
        duration_ns=1_500_000_000,
        bytes_sent=10,
        bytes_received=20,
    )


def alert(event_id, time_ns, host="host-a"):
    return ReceivedAlert(
        event_id=event_id,
        time_ns=time_ns,
        host=host,
        status="firing",
        alertname=event_id,
        severity="warning",
        labels="{}",
        annotations="{}",
        starts_at_ns=time_ns,
        # Delivered later than it fired (the panel shows time_ns), and kept by its arrival: at
        # 0 (1970) a TTL merge may delete it at any moment.
        received_ns=time_ns + 90 * 10**9,
    )


def flag(event_id, time_ns, kind="policy", host="host-a"):
    return FlagEvent(
        event_id=event_id,
        kind=kind,
        time_ns=time_ns,
        host=host,
        rule_id="policy_exec" if kind == "policy" else "exec_from_tmp",
        flag_class="security",
        severity="medium",
        description="new executable /usr/bin/nc: not in the policy of workload svc.service",
        process_key=f"{host}:100:7",
        pid=100,
        comm=event_id,
        container_id="c1",
        workload="svc.service",
    )


EVENTS = [
    process("exec-in", IN_NS, "exec"),
    process("exec-in-other-container", IN_NS + 1, "exec", container="c2" * 32),
    process("exec-on-the-host", IN_NS + 5, "exec", container=""),
    process("exec-before", OUT_NS, "exec"),
    process("exec-other-host", IN_NS, "exec", host="host-b"),
    process("exit-ok", IN_NS + 2, "exit", outcome="ok"),
    process("exit-error", IN_NS + 3, "exit", outcome="error"),
    process("oom", IN_NS + 4, "oom_kill", outcome="oom"),
    connection("conn-in", IN_NS),
    connection("conn-other-host", IN_NS, host="host-b"),
    connection("conn-before", OUT_NS),
    alert("alert-in", IN_NS),
    alert("alert-other-host", IN_NS, host="host-b"),
    flag("policy-in", IN_NS),
    flag("policy-before", OUT_NS),
    flag("rule-in", IN_NS, kind="rule"),
]

# query -> (column naming the event, the events it must return)
EXPECTED = {
    "process_execs": ("comm", {"exec-in", "exec-in-other-container", "exec-on-the-host"}),
    "process_failures": ("comm", {"oom", "exit-error"}),
    "connections": ("comm", {"conn-in"}),
    "policy_deviations": ("comm", {"policy-in"}),
    "received_alerts": ("alertname", {"alert-in"}),
}


@pytest.fixture(params=["clickhouse", "chdb"])
def store(request, clickhouse_url, chdb_database):
    s = open_test_store(request.param, clickhouse_url, chdb_database)
    migrate(s)
    s.insert_events([e for e in EVENTS if not isinstance(e, ReceivedAlert)])
    s.insert_events([e for e in EVENTS if isinstance(e, ReceivedAlert)])
    yield s
    s.close()


def expanded(name, container="__all__"):
    table, query = sql.QUERIES[name]
    text = sql.expand(query, *WINDOW, {"instance": "host-a", "container": container})
    assert f"FROM {table}" in text
    return text


def names(store, name, column, container="__all__"):
    return {v for (v,) in store.query(f"SELECT {column} FROM ({expanded(name, container)})")}


def test_every_query_is_tested():
    assert set(EXPECTED) == set(sql.QUERIES)


@pytest.mark.parametrize("name", sorted(sql.QUERIES))
def test_every_sql_query_returns_exactly_the_events_in_its_window(store, name):
    column, expected = EXPECTED[name]
    assert names(store, name, column) == expected
    rows = store.query(expanded(name))
    times = [row[0] for row in rows]  # every query shows time first, newest first
    assert len(rows) == len(expected) and times == sorted(times, reverse=True)


def test_container_filter_takes_the_short_or_the_full_id(store):
    # The dashboards' container variable holds the metrics' label: the id's first 12 chars.
    short, full = "c2" * 6, "c2" * 32
    for value in (short, full):
        assert names(store, "process_execs", "comm", value) == {"exec-in-other-container"}
    assert names(store, "process_execs", "comm", container="") == {"exec-on-the-host"}


def test_quotes_in_variables_cannot_break_out_of_the_sql(store):
    assert names(store, "process_execs", "comm", container="c1' OR '1'='1") == set()


def test_the_alerts_panel_shows_when_the_status_took_effect_not_when_it_arrived(store):
    ((shown,),) = store.query(f"SELECT toUnixTimestamp(time) FROM ({expanded('received_alerts')})")
    assert shown == IN_NS // 10**9
