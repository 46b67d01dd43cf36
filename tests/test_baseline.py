"""``groundtruth baseline learn|diff|merge`` on a real store (ClickHouse 18.16 and chDB), from
events this test writes (dated relative to now), and ``baseline test`` on recorded events."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from groundtruth.cli import main
from schema.events import ConnectionEvent, ListenEvent, ProcessEvent
from testservices.store_helpers import database_with

MIN = 60 * 10**9
SVC = "svc.service"


def proc(kind, t, pid, parent, filename="", workload=SVC, uid=0, comm=""):
    return ProcessEvent(
        event_id=f"p-{kind}-{pid}-{t}", kind=kind, time_ns=t, host="h", pid=pid,
        process_key=f"h:{pid}:1", parent_key=f"h:{parent}:1" if parent else "",
        filename=filename, comm=comm or filename.rpartition("/")[2], uid=uid, workload=workload,
    )  # fmt: skip


def conn(t, pid, direction, remote, port, local_port=40000, conn_id="c"):
    return [
        ConnectionEvent(
            event_id=f"c-{conn_id}-{kind}",
            kind=kind,
            time_ns=t + i,
            host="h",
            connection_id=conn_id,
            pid=pid,
            process_key=f"h:{pid}:1",
            direction=direction,
            family="ipv4",
            local_addr="10.0.0.1",
            local_port=local_port,
            remote_addr=remote,
            remote_port=port,
            outcome="ok",
            workload=SVC,
        )  # fmt: skip
        for i, kind in enumerate(("open", "close"))
    ]


def normal_work(t0):
    """A service started by systemd (a host process): it runs a shell as uid 33, listens on
    8080, calls 10.0.0.5:5432 and accepts from 192.168.1.9. cron (exec'd before the window)
    starts a backup in cron.service."""
    return [
        proc("scan", t0, 1, 0, "/lib/systemd/systemd", workload="host"),
        proc("exec", t0 - 30 * MIN, 50, 1, "/usr/sbin/cron", workload="cron.service"),
        proc("fork", t0 + 1, 100, 1, comm="systemd"),
        proc("exec", t0 + 2, 100, 1, "/usr/sbin/svc"),
        proc("fork", t0 + 3, 101, 100, comm="svc"),
        proc("exec", t0 + 4, 101, 100, "/bin/sh", uid=33),
        ListenEvent(
            event_id="l-1",
            kind="listen",
            time_ns=t0 + 5,
            host="h",
            pid=100,
            process_key="h:100:1",
            family="ipv4",
            local_addr="0.0.0.0",
            local_port=8080,
            workload=SVC,
        ),  # fmt: skip
        *conn(t0 + 6, 100, "outbound", "10.0.0.5", 5432, conn_id="c1"),
        *conn(t0 + 8, 100, "inbound", "192.168.1.9", 40123, local_port=8080, conn_id="c2"),
        proc("fork", t0 + 10, 60, 50, comm="cron", workload="cron.service"),
        proc("exec", t0 + 11, 60, 50, "/usr/bin/backup", workload="cron.service"),
    ]


def later_work(t1):
    """The same normal work again, and two things that are new: a program, a destination."""
    return [
        proc("fork", t1, 102, 100, comm="svc"),
        proc("exec", t1 + 1, 102, 100, "/bin/sh", uid=33),
        *conn(t1 + 2, 100, "outbound", "10.0.0.5", 5432, conn_id="c3"),
        proc("fork", t1 + 4, 103, 100, comm="svc"),
        proc("exec", t1 + 5, 103, 100, "/usr/bin/nc", uid=33),
        *conn(t1 + 6, 103, "outbound", "10.0.0.6", 443, conn_id="c4"),
    ]


@pytest.mark.parametrize("backend", ["clickhouse", "chdb"])
def test_learn_diff_merge(backend, clickhouse_server, chdb_dir, tmp_path, capsys):
    t0 = time.time_ns() - 20 * MIN
    t1 = t0 + 10 * MIN
    events = normal_work(t0) + later_work(t1)
    with database_with(events, backend, clickhouse_server, chdb_dir) as store:
        if backend == "clickhouse":
            where = ["--store-url", clickhouse_server.url(store.database)]
        else:
            where = ["--data-dir", str(chdb_dir), "--database", store.database]
        first = ["--from", str(t0 - MIN), "--to", str(t0 + 5 * MIN)]
        second = ["--from", str(t1 - MIN), "--to", str(t1 + 5 * MIN)]
        out = tmp_path / "policies"

        assert main(["baseline", "learn", *where, *first, "-o", str(out)]) == 0
        svc = (out / "svc.service.yaml").read_text()
        body = svc[svc.index("workload:") :]
        assert strip_comments(body) == (
            "workload: svc.service\nmode: audit\nseverity: medium\n"
            "executables:\n"
            "  /bin/sh:\n    parents:\n      - svc\n    users:\n      - 33\n"
            "  /usr/sbin/svc:\n    parents:\n      - systemd\n    users:\n      - 0\n"
            "listen:\n  - 8080\n"
            "outbound:\n  - {to: 10.0.0.5, port: 5432}\n"
            "inbound:\n  - {from: 192.168.1.9, port: 8080}\n"
        )
        assert "  - {to: 10.0.0.5, port: 5432}  # 1 connection, first " in svc
        # A parent that started before the window: its program is looked up before it.
        assert "      - cron" in (out / "cron.service.yaml").read_text()
        assert (out / "host.yaml").exists()
        written = {p.name: p.read_text() for p in out.iterdir()}
        capsys.readouterr()

        # The same window again: the same bytes (a no-op diff), and nothing outside the policy;
        # a reviewer's choices (a renamed file, its severity) are kept.
        (out / "cron.service.yaml").rename(out / "backups.yaml")
        (out / "backups.yaml").write_text(
            (out / "backups.yaml").read_text().replace("severity: medium", "severity: high")
        )
        written["backups.yaml"] = (out / "backups.yaml").read_text()
        del written["cron.service.yaml"]
        assert main(["baseline", "learn", *where, *first, "-o", str(out)]) == 0
        assert "unchanged" in capsys.readouterr().out
        assert {p.name: p.read_text() for p in out.iterdir()} == written
        assert main(["baseline", "diff", str(out), *where, *first]) == 0
        assert "stayed within it" in capsys.readouterr().out

        # Later: a new program and a new destination, in a diff a reviewer reads.
        assert main(["baseline", "diff", str(out), *where, *second]) == 1
        diff = capsys.readouterr().out
        added = [line for line in diff.splitlines() if line.startswith("+") and "+++" not in line]
        assert [strip_comments(line) for line in added] == [
            "+  /usr/bin/nc:", "+    parents:", "+      - svc", "+    users:", "+      - 33",
            "+  - {to: 10.0.0.6, port: 443}",
        ]  # fmt: skip
        assert "# workload svc.service: 4 entries its policy does not allow" in diff

        # Merged, they are within the policy; the rest of the file is unchanged.
        assert main(["baseline", "merge", str(out), *where, *second]) == 0
        assert "svc.service.yaml: 4 entries added" in capsys.readouterr().out
        assert main(["baseline", "diff", str(out), *where, *second]) == 0
        merged = (out / "svc.service.yaml").read_text()
        for line in svc.splitlines():
            assert line in merged


def strip_comments(text: str) -> str:
    return "\n".join(line.split("  #")[0] for line in text.split("\n"))


def test_learn_needs_events_of_the_workload(clickhouse_server, chdb_dir, tmp_path, capsys):
    with database_with(normal_work(time.time_ns() - MIN), "chdb", clickhouse_server, chdb_dir) as s:
        where = ["--data-dir", str(chdb_dir), "--database", s.database, "--since", "1h"]
        code = main(["baseline", "learn", *where, "--workload", "nope", "-o", str(tmp_path)])
    assert code == 1
    assert "no exec, listen or connection of workload 'nope'" in capsys.readouterr().err


def test_a_bad_policy_directory_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("workload: w\nlisten: [http]\n")
    code = main(["baseline", "diff", str(tmp_path), "--data-dir", str(tmp_path), "--since", "1h"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"groundtruth baseline diff: {tmp_path}/bad.yaml:2: listen item must be a port (1-65535)"
    )


POLICY_TESTS = Path(__file__).parent / "baseline" / "policy_test.yaml"


def test_policy_tests_pass_on_recorded_events(capsys):
    assert main(["baseline", "test", str(POLICY_TESTS)]) == 0
    out = capsys.readouterr().out
    assert out.count("ok   ") == 4 and out.rstrip().endswith("SUCCESS")


def test_a_failing_policy_test_prints_a_diff(tmp_path, capsys):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "w.yaml").write_text("workload: w\nlisten: [80]\n")
    test = tmp_path / "t.yaml"
    test.write_text(
        "policies: policies/\ntests:\n  - name: port\n    events:\n"
        "      - {type: tcp_listen, kind: listen, process_key: h:1:1, local_port: 81,"
        " workload: w}\n"
        "    expect:\n      - {rule_id: policy_listen, process_key: h:1:2}\n"
    )
    assert main(["baseline", "test", str(test)]) == 1
    out = capsys.readouterr().out
    assert "  - expected, not raised: {rule_id: 'policy_listen', process_key: 'h:1:2'}" in out
    assert (
        "  + raised, not expected: {rule_id: 'policy_listen', severity: 'medium', "
        "process_key: 'h:1:1'}" in out
    )


def test_graphapi_exports_each_traces_policy_deviations(clickhouse_server, chdb_dir):
    """A policy flag joins its process's trace; graphapi's /metrics counts it by workload, as
    the GroundtruthPolicyDeviation alert reads it."""
    from prometheus_client.parser import text_string_to_metric_families

    from graphapi import create_app
    from schema.events import FlagEvent

    t0 = time.time_ns() - 5 * MIN
    events = normal_work(t0) + [
        FlagEvent(
            event_id=f"f-{n}",
            kind=kind,
            time_ns=t0 + 20 + n,
            host="h",
            rule_id=rule,
            flag_class="security",
            severity="medium",
            description="new",
            pid=101,
            process_key="h:101:1",
            workload=SVC if kind == "policy" else "",
        )  # fmt: skip
        for n, (kind, rule) in enumerate(
            [("policy", "policy_exec"), ("policy", "policy_outbound"), ("rule", "exec_from_tmp")]
        )
    ]
    with database_with(events, "chdb", clickhouse_server, chdb_dir) as store:
        app = create_app({"STORE": store, "TESTING": True, "TOKEN": "t0ken"})
        client = app.test_client()
        text = client.get("/metrics", headers={"Authorization": "Bearer t0ken"}).get_data(True)
    samples = [
        s
        for family in text_string_to_metric_families(text)
        if family.name == "groundtruth_trace_policy_deviations"
        for s in family.samples
    ]
    assert [(s.labels["host"], s.labels["workload"], s.value) for s in samples] == [("h", SVC, 2.0)]
    scores = [
        s.labels["trace_id"]
        for family in text_string_to_metric_families(text)
        if family.name == "groundtruth_trace_score"
        for s in family.samples
    ]
    assert scores == [samples[0].labels["trace_id"]]


def test_the_postmortem_lists_what_was_new_for_each_workload(clickhouse_server, chdb_dir, tmp_path):
    from schema.events import FlagEvent

    t0 = time.time_ns() - 5 * MIN
    flags = [
        FlagEvent(
            event_id=f"f-{rule}",
            kind="policy",
            time_ns=t0 + 20 + n,
            host="h",
            rule_id=rule,
            flag_class="security",
            severity="medium",
            description=text,
            pid=101,
            process_key="h:101:1",
            workload=SVC,
        )  # fmt: skip
        for n, (rule, text) in enumerate(
            [
                ("policy_exec", "new executable /usr/bin/nc: not in the policy of svc.service"),
                ("policy_listen", "listens on a new port 9999: not in the policy"),
            ]
        )
    ]
    with database_with(normal_work(t0) + flags, "chdb", clickhouse_server, chdb_dir) as store:
        where = ["--data-dir", str(chdb_dir), "--database", store.database]
        out = tmp_path / "pm"
        args = ["postmortem", *where, "--from", str(t0 - MIN), "--to", str(t0 + MIN), "-q"]
        assert main([*args, "--tz", "UTC", "--host", "h", "-o", str(out)]) == 0
    report = (out / "postmortem.md").read_text()
    block = report[report.index("## New for this workload\n") :]
    block = block[: block.index("\n## ", 1)]
    rows = [line for line in block.splitlines() if line.startswith(f"| {SVC} |")]
    assert [row.split(" | ")[3] for row in rows] == ["exec", "listen"]
    assert "new executable /usr/bin/nc" in rows[0] and "`svc[100] > sh[101]`" in rows[0]


@pytest.mark.parametrize(
    "text, message",
    [
        ("tests: []\n", "t.yaml:1: a policy test needs 'policies' (a directory)"),
        ("tests: []\npolicies: [p]\n", "t.yaml:2: 'policies' must be a directory: ['p']"),
        ("tests: []\npolicies: nowhere\n", "t.yaml:2: 'policies' {dir}/nowhere is not a directory"),
        ("policies: p\ntests:\n  - events: [\n", "t.yaml:4: not valid YAML: expected the node"),
        ("policies: p\ntests: {a: 1}\n", "t.yaml:2: a rule test file needs a 'tests' list"),
        ("policies: p\nthresholds: [1]\ntests: []\n", "t.yaml:2: thresholds must be a mapping"),
        (
            "policies: p\ntests:\n  - events:\n      - listen\n",
            "t.yaml:3: an event must be a mapping of its fields, not 'listen'",
        ),
        (
            "policies: p\ntests:\n  - events:\n      - {type: tcp_listen, local_port: http}\n",
            "t.yaml:4: tcp_listen field local_port must be an integer, not 'http'",
        ),
        (
            "policies: p\ntests:\n  - events:\n      - {type: process, uid: root}\n",
            "t.yaml:4: process field uid must be an integer, not 'root'",
        ),
        (
            "policies: p\ntests:\n  - events: []\n    expect:\n      - policy_exec\n",
            "t.yaml:4: expect must be a list of mappings ({field: value})",
        ),
        (
            "policies: p\ntests:\n  - events: []\n    expect: {rule_id: policy_exec}\n",
            "t.yaml:4: expect must be a list of mappings ({field: value})",
        ),
        ("policies: p\ntests: []\n", "p/w.yaml:2: listen item must be a port (1-65535)"),
    ],
)
def test_a_bad_policy_test_file_is_one_line_naming_its_file_and_line(
    tmp_path, capsys, text, message
):
    (tmp_path / "p").mkdir()
    port = "x80" if message.startswith("p/") else "80"  # the last case: a bad policy file
    (tmp_path / "p" / "w.yaml").write_text(f"workload: w\nlisten: [{port}]\n")
    (tmp_path / "t.yaml").write_text(text)
    assert main(["baseline", "test", str(tmp_path / "t.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    expected = message.replace("{dir}", str(tmp_path))
    assert err.startswith(f"groundtruth baseline test: {tmp_path}/{expected}"), err
