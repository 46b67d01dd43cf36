"""Traces assembled from stored flags, ancestry and connections (ClickHouse 18.16 and chDB).

The events below are written by the test; every expected root, trace, join and score follows
from them and from the thresholds file's numbers.

Host a:
- init (1) -> sshd (100, a service) -> bash (200): a login session (auid 1000, audit session
  7, on pts/0) -> sh (210, flagged: reverse shell) -> /tmp/x (220, flagged: exec from /tmp),
  which connects to host b's app.
- init -> nginx (300, a service) -> worker (310, flagged: crash).
- init -> containerd-shim (390) -> entrypoint (400, container c0ffee...) -> sh (410, flagged:
  interactive shell in a container).
Host b: init -> app (500, a service) accepts /tmp/x's connection, then starts sh (510, flagged:
shell from a server): joined into host a's session trace.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from graph.traces import UNSET_ID, TraceAssembler, TraceScoring, trace_id
from graphapi import create_app
from groundtruth.cli import main
from mixin.config import load_config
from schema.events import FlagEvent
from store.db import open_store
from store.migrations import migrate
from tests.graphapi_events import A_ADDR, B_ADDR, T0, WINDOW, A, B, S, conn, key, proc
from testservices.clickhouse import fresh_database_name
from testservices.store_helpers import database_with

TOKEN = "trace-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONTAINER = "c0ffee" + "0" * 58
SCORING = TraceScoring.from_thresholds(load_config().raw["thresholds"])
W = SCORING.weights


def spawn(host, pid, ppid, t, comm, argv, **fields) -> list:
    """fork and exec of one process, both carrying ``fields`` (its session, terminal, ...)."""
    return [
        proc("fork", host, pid, ppid, t, comm, start=t, **fields),
        proc("exec", host, pid, ppid, t + 1000, comm, start=t, filename=argv[0], argv=argv,
             **fields),
    ]  # fmt: skip


def session(**kw) -> dict:
    return {"auid": 1000, "session_id": 7, **kw}


def flag(host, pid, t, rule, severity, flag_class="security", **kw) -> FlagEvent:
    return FlagEvent(
        event_id=f"f-{host}-{pid}-{rule}",
        kind="rule",
        time_ns=t,
        host=host,
        rule_id=rule,
        flag_class=flag_class,
        severity=severity,
        description=f"{rule} on pid {pid}",
        process_key=key(host, pid),
        pid=pid,
        event_time_ns=t,
        **kw,
    )


def events() -> list:
    unset = {"auid": UNSET_ID, "session_id": UNSET_ID}
    ev = [proc("scan", A, 1, 0, T0 - 3600 * S, "systemd", start=T0 - 7200 * S, uid=0, **unset)]
    ev.append(proc("scan", A, 100, 1, T0 - 3600 * S, "sshd", uid=0, **unset))
    ev += spawn(A, 200, 100, T0 + 1 * S, "bash", ["-bash"], **session(tty="pts/0"))
    ev += spawn(A, 210, 200, T0 + 2 * S, "sh", ["sh", "-i"], **session(tty="pts/0"))
    ev += spawn(A, 220, 210, T0 + 3 * S, "x", ["/tmp/x"], **session())
    ev += conn(A, 220, "outbound", (A_ADDR, 41000), (B_ADDR, 8080), T0 + 4 * S, "ax", comm="x")
    ev.append(proc("scan", A, 300, 1, T0 - 3600 * S, "nginx", uid=0, **unset))
    ev += spawn(A, 310, 300, T0 + 5 * S, "nginx", ["nginx: worker"], **unset)
    ev.append(proc("scan", A, 390, 1, T0 - 3600 * S, "containerd-shim", uid=0, **unset))
    inside = {"container_id": CONTAINER, **unset}
    ev += spawn(A, 400, 390, T0 + 6 * S, "entrypoint", ["/entrypoint"], **inside)
    ev += spawn(A, 410, 400, T0 + 7 * S, "sh", ["sh"], tty="pts/1", **inside)

    ev.append(proc("scan", B, 1, 0, T0 - 3600 * S, "systemd", uid=0, **unset))
    ev.append(proc("scan", B, 500, 1, T0 - 3600 * S, "app", uid=0, **unset))
    ev += conn(B, 500, "inbound", (B_ADDR, 8080), (A_ADDR, 41000), T0 + 4 * S + 10**6, "bx",
               kinds=("accept", "close"), comm="app")  # fmt: skip
    ev += spawn(B, 510, 500, T0 + 8 * S, "sh", ["sh", "-c", "id"], **unset)

    ev += [
        flag(A, 210, T0 + 2 * S, "reverse_shell", "critical", technique="T1059.004"),
        flag(A, 220, T0 + 3 * S, "exec_from_tmp", "high", technique="T1204.002"),
        flag(A, 220, T0 + 3 * S + 1, "exec_from_tmp", "high"),  # the same rule again: once
        flag(A, 310, T0 + 5 * S, "crash", "medium", "operations"),
        flag(A, 410, T0 + 7 * S, "interactive_shell_in_container", "high", container_id=CONTAINER),
        flag(B, 510, T0 + 9 * S, "shell_from_server", "high", technique="T1190"),
    ]
    return ev


@pytest.fixture(scope="module", params=["clickhouse", "chdb"])
def store(request, clickhouse_server, chdb_dir):
    with database_with(events(), request.param, clickhouse_server, chdb_dir) as s:
        yield s


FROM_NS, TO_NS = int(WINDOW["from"]) * 10**6, int(WINDOW["to"]) * 10**6


def assemble(store, hosts=()):
    traces = TraceAssembler(store, SCORING).assemble(FROM_NS, TO_NS, hosts)
    return {t.root["process_key"]: t for t in traces}


def test_flags_group_by_root_cause_and_join_across_hosts(store):
    traces = assemble(store)
    assert set(traces) == {key(A, 200), key(A, 300), key(A, 400)}

    attack = traces[key(A, 200)]
    assert (attack.id, attack.root_kind) == (trace_id(key(A, 200)), "session")
    assert sorted(f["rule_id"] for f in attack.flags) == [
        "exec_from_tmp", "exec_from_tmp", "reverse_shell", "shell_from_server",
    ]  # fmt: skip
    assert attack.hosts == [A, B] and attack.joined_from == [trace_id(key(B, 500))]
    assert attack.paths[key(A, 220)] == [key(A, 200), key(A, 210), key(A, 220)]
    assert attack.paths[key(B, 510)] == [key(B, 500), key(B, 510)]

    crash = traces[key(A, 300)]
    assert crash.root_kind == "service" and crash.paths[key(A, 310)] == [key(A, 300), key(A, 310)]
    shell = traces[key(A, 400)]
    assert shell.root_kind == "container"
    assert shell.paths[key(A, 410)] == [key(A, 400), key(A, 410)]


def test_scores_follow_the_thresholds_file(store):
    traces = assemble(store)
    # Distinct flags: reverse shell (critical), exec from tmp (high, counted once), shell from
    # server (high); the root session has a terminal.
    attack_sum = (W["critical"] + 2 * W["high"]) * SCORING.interactive_factor
    expected = round(min(attack_sum, SCORING.caps["critical"]))
    assert (traces[key(A, 200)].score, traces[key(A, 200)].band) == (expected, "critical")
    assert traces[key(A, 300)].score == round(min(W["medium"], SCORING.caps["medium"]))
    assert traces[key(A, 400)].score == round(min(W["high"], SCORING.caps["high"]))
    # Highest score first.
    found = TraceAssembler(store, SCORING).assemble(FROM_NS, TO_NS)
    assert [t.score for t in found] == sorted((t.score for t in found), reverse=True)


@pytest.mark.parametrize(
    ("severities", "interactive", "score", "band"),
    [
        ([], False, 0, "low"),
        (["info", "info"], True, 0, "low"),
        (["low"] * 50, False, 29, "low"),  # capped: many low flags never look critical
        (["high"], False, 40, "high"),
        (["high"], True, 60, "high"),
        (["high", "high"], False, 80, "critical"),
        (["critical"], False, 80, "critical"),
        (["medium", "critical"], True, 100, "critical"),
    ],
)
def test_score_formula(severities, interactive, score, band):
    flags = [{"rule_id": f"r{i}", "process_key": "h:1:1", "severity": s}
             for i, s in enumerate(severities)]  # fmt: skip
    assert SCORING.score(flags, interactive) == (score, band)


def test_a_joined_trace_is_found_from_either_host_and_by_either_id(store):
    from_b = assemble(store, hosts=(B,))
    assert set(from_b) == {key(A, 200)}
    a = TraceAssembler(store, SCORING)
    by_b_id = a.trace(trace_id(key(B, 500)), FROM_NS, TO_NS)
    assert by_b_id is not None and by_b_id.id == trace_id(key(A, 200))
    assert a.trace("t-0000000000000000", FROM_NS, TO_NS) is None


@pytest.fixture(scope="module")
def client(store):
    app = create_app({"STORE": store, "TOKEN": TOKEN, "TESTING": True})
    return app.test_client()


def test_traces_api_lists_and_details(client):
    reply = client.get("/api/traces", query_string=WINDOW, headers=AUTH)
    assert reply.status_code == 200, reply.get_json()
    rows = reply.get_json()
    assert [r["root"] for r in rows][0] == key(A, 200)
    top = rows[0]
    assert top["band"] == "critical" and top["hosts"] == f"{A}, {B}" and top["interactive"]
    assert top["rules"] == "exec_from_tmp, reverse_shell, shell_from_server"

    reply = client.get(f"/api/traces/{top['id']}", query_string=WINDOW, headers=AUTH)
    detail = reply.get_json()
    assert reply.status_code == 200 and detail["joined_from"] == [trace_id(key(B, 500))]
    assert detail["paths"][key(B, 510)] == [key(B, 500), key(B, 510)]
    assert {f["rule_id"] for f in detail["flags"]} >= {"reverse_shell", "shell_from_server"}


@pytest.mark.parametrize(
    ("path", "args", "status", "says"),
    [
        ("/api/traces/t-0000000000000000", {}, 404, "no trace"),
        ("/api/traces", {"from": "yesterday"}, 400, "from"),
        ("/api/traces", {"limit": "0"}, 400, "limit"),
    ],
)
def test_traces_api_bad_requests_say_why(client, path, args, status, says):
    reply = client.get(path, query_string={**WINDOW, **args}, headers=AUTH)
    assert reply.status_code == status
    assert says in reply.get_json()["description"]


@pytest.fixture(scope="module")
def server_url(clickhouse_server):
    """The events on a ClickHouse server: the command opens the store itself (a chDB
    directory takes one client at a time, and the module's store holds it)."""
    name = fresh_database_name()
    url = clickhouse_server.url(name)
    s = open_store(url)
    migrate(s)
    s.insert_events(events())
    yield url
    s.execute(f"DROP DATABASE IF EXISTS {name}")
    s.close()


def test_traces_command(server_url, capsys):
    window = ["--from", str(FROM_NS // 10**9), "--to", str(TO_NS // 10**9), "--tz", "UTC"]
    store = ["--store-url", server_url]
    assert main(["traces", *store, *window, "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["root"] for r in rows][0] == key(A, 200)
    assert rows[0]["hosts"] == [A, B] and rows[0]["band"] == "critical"

    assert main(["traces", *store, *window, "--trace", rows[0]["id"]]) == 0
    out = capsys.readouterr().out
    assert "reverse_shell" in out and "/tmp/x" in out and f"({key(B, 510)})" in out

    assert main(["traces", *store, "--from", "2001-01-01", "--to", "2001-01-02"]) == 1
    assert "no flags" in capsys.readouterr().err


def test_focus_on_a_trace_draws_its_chain_with_the_flags_in_the_nodes(client):
    top = client.get("/api/traces", query_string=WINDOW, headers=AUTH).get_json()[0]
    reply = client.get(
        "/api/graph", query_string={**WINDOW, "focus": f"trace={top['id']}"}, headers=AUTH
    )
    assert reply.status_code == 200, reply.get_json()
    nodes = {n["id"]: n for n in reply.get_json()["nodes"]}
    flagged = {key(A, 210), key(A, 220), key(B, 510)}
    assert flagged | {key(A, 200), key(B, 500)} <= set(nodes)
    assert all(nodes[k]["highlighted"] for k in flagged)
    assert nodes[key(A, 210)]["detail__flags"] == "critical reverse_shell"
    assert nodes[key(A, 220)]["detail__flags"] == "high exec_from_tmp"
    assert nodes[key(A, 200)]["detail__flags"] == ""
    assert key(A, 310) not in nodes, "the crash is another trace"

    missing = {**WINDOW, "focus": "trace=t-0000000000000000"}
    reply = client.get("/api/graph", query_string=missing, headers=AUTH)
    assert reply.status_code == 404 and "no trace" in reply.get_json()["description"]


def test_metrics_export_each_traces_score_for_the_alert(store):
    """graphapi's /metrics: the score of every trace of the last window, as Prometheus reads it
    (``promtool check metrics`` accepts the page)."""
    app = create_app(
        {"STORE": store, "TOKEN": TOKEN, "TESTING": True,
         "TRACE_METRICS_WINDOW_SECONDS": (TO_NS - FROM_NS) / 1e9 + 3600}
    )  # fmt: skip
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    reply = client.get("/metrics", headers=AUTH)
    assert reply.status_code == 200
    text = reply.get_data(as_text=True)
    scores = {
        s.labels["trace_id"]: (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        if family.name == "groundtruth_trace_score"
        for s in family.samples
    }
    traces = assemble(store)
    assert set(scores) == {t.id for t in traces.values()}
    labels, value = scores[trace_id(key(A, 200))]
    assert value == traces[key(A, 200)].score
    assert labels == {
        "trace_id": trace_id(key(A, 200)), "host": A, "root_program": "bash",
        "band": "critical", "severity": "critical",
    }  # fmt: skip
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_metrics_without_a_store_have_no_scores_and_count_the_failure():
    app = create_app({"STORE_URL": "clickhouse://u:p@127.0.0.1:1/nowhere", "TESTING": True})
    client = app.test_client()
    for expected_errors in (1.0, 2.0):
        text = client.get("/metrics").get_data(as_text=True)
        samples = {
            s.name: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert samples["groundtruth_graphapi_trace_errors_total"] == expected_errors
        assert not any(name.startswith("groundtruth_trace_score") for name in samples)


def test_process_details_carry_the_process_flags(client):
    reply = client.get(f"/api/processes/{key(A, 220)}", query_string=WINDOW, headers=AUTH)
    assert reply.status_code == 200, reply.get_json()
    flags = reply.get_json()["flags"]
    assert [(f["rule_id"], f["severity"]) for f in flags] == [("exec_from_tmp", "high")] * 2
    assert flags[0]["time_ns"] == T0 + 3 * S
    reply = client.get(f"/api/processes/{key(A, 200)}", query_string=WINDOW, headers=AUTH)
    assert reply.get_json()["flags"] == []
