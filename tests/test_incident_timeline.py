"""``groundtruth timeline`` and ``ancestry`` on real events of a scripted incident.

The real exporter watched the scenario of ``tests/fixtures/incident.py``; its events were
written to chDB and to clickhouse-server. Every value asserted here (pids, argv, exit codes,
ports, bytes, the container) is one the scenario caused.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from exporter.proc_scan import start_ticks
from groundtruth.cli import main
from tests.fixtures.incident import MARKER, PEER, RECEIVED, SENT


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def window(scenario) -> list[str]:
    # Epoch nanoseconds (19 digits) on both ends: the window the scenario ran in, with margin.
    return ["--from", scenario.start_ns - 10**9, "--to", scenario.end_ns + 5 * 10**9]


def timeline_records(capsys, target, scenario, *extra) -> list[dict]:
    code, out, err = run(
        capsys,
        "timeline",
        *target.options,
        "--host",
        scenario.host,
        *window(scenario),
        "--format",
        "jsonl",
        "--tz",
        "UTC",
        *extra,
    )
    assert code == 0, err
    # The tests read the host's whole window: one so busy that a source hit the limit breaks
    # their premise, and says so here rather than as a missing event.
    assert "are shown" not in err, f"the host was too busy for this test: {err}"
    return [json.loads(line) for line in out.splitlines()]


def test_timeline_of_the_scenario_is_in_order_and_complete(
    capsys, incident_store, incident_scenario
):
    s = incident_scenario
    records = timeline_records(capsys, incident_store, s)
    times = [r["time_ns"] for r in records]
    assert times == sorted(times)
    pids = s.pids
    script = s.script

    def only(pid, kind):
        found = [r for r in records if r["pid"] == pid and r["kind"] == kind]
        assert len(found) == 1, (pid, kind, found)
        return found[0]

    parent_exec = only(pids["parent"], "exec")
    child_exec = only(pids["child"], "exec")
    grandchild_exec = only(pids["grandchild"], "exec")
    grandchild_exit = only(pids["grandchild"], "exit")
    child_exit = only(pids["child"], "exit")
    killed_exec = only(pids["killed"], "exec")
    killed_exit = only(pids["killed"], "exit")
    parent_exit = only(pids["parent"], "exit")
    assert parent_exec["argv"] == ["/bin/sh", script("parent.sh")]
    assert (parent_exec["exe_path"], parent_exec["cwd"]) == (
        os.path.realpath("/bin/sh"), os.path.dirname(os.path.realpath(script("parent.sh"))),
    )  # fmt: skip
    assert child_exec["argv"] == ["/bin/sh", script("child.sh")]
    assert grandchild_exec["argv"] == ["/bin/sh", script("grandchild.sh"), MARKER]
    assert killed_exec["argv"] == ["/bin/sleep", "30"]
    assert (grandchild_exit["exit_code"], grandchild_exit["outcome"]) == (7, "error")
    assert grandchild_exit["detail"].startswith("exit 7 (error)")
    assert grandchild_exit["detail"].endswith(f"/bin/sh {script('grandchild.sh')} {MARKER}")
    assert (child_exit["exit_code"], child_exit["outcome"]) == (0, "ok")
    assert (killed_exit["signal"], killed_exit["outcome"]) == (9, "signal")
    assert killed_exit["detail"].startswith("killed by SIGKILL")
    assert (parent_exit["exit_code"], parent_exit["outcome"]) == (0, "ok")

    # The client's connection (exact bytes) and its refused attempt, from the client's pids.
    # Matched by pid as well as port: once the test server is gone, the machine's other
    # processes may reuse its port number within the window.
    def client_pid(port: int) -> int:
        (r,) = [
            r
            for r in records
            if r["kind"] == "exec"
            and r["argv"][:3] == [PEER[0], PEER[1], "client"]
            and r["argv"][4] == str(port)
        ]
        return r["pid"]

    client_exec = only(client_pid(s.server_port), "exec")
    close = only(client_exec["pid"], "close")
    assert close["remote"] == f"127.0.0.1:{s.server_port}"
    assert (close["direction"], close["outcome"]) == ("outbound", "ok")
    assert (close["bytes_sent"], close["bytes_received"]) == (SENT, RECEIVED)
    inbound = only(pids["server"], "close")
    assert (inbound["direction"], inbound["local"]) == ("inbound", close["remote"])
    assert inbound["remote"] == close["local"]
    refused = only(client_pid(s.closed_port), "connect_failed")
    assert refused["remote"] == f"127.0.0.1:{s.closed_port}"
    assert refused["outcome"] == "refused"

    # The causal order the script imposed.
    order = [
        parent_exec,
        child_exec,
        grandchild_exec,
        grandchild_exit,
        child_exit,
        client_exec,
        close,
        refused,
        killed_exec,
        killed_exit,
        parent_exit,
    ]
    assert [r["time_ns"] for r in order] == sorted(r["time_ns"] for r in order)
    assert records.index(parent_exec) < records.index(child_exec) < records.index(parent_exit)

    # The OOM kill in the container: the kill and the exit, both attributed to it.
    oom = [r for r in records if r["pid"] == pids["oom"] and r["kind"] in ("oom_kill", "exit")]
    assert {r["kind"] for r in oom} == {"oom_kill", "exit"}
    assert all(r["container"] == s.container[:12] for r in oom)
    assert next(r for r in oom if r["kind"] == "exit")["outcome"] == "oom"


def test_filters_narrow_the_timeline(capsys, incident_store, incident_scenario):
    s = incident_scenario
    in_container = timeline_records(capsys, incident_store, s, "--container", s.container[:12])
    assert in_container and {r["container"] for r in in_container} == {s.container[:12]}
    assert s.pids["oom"] in {r["pid"] for r in in_container}

    sleeps = timeline_records(capsys, incident_store, s, "--program", "sleep", "--no-alerts")
    assert {r["program"] for r in sleeps} == {"sleep"}
    assert s.pids["killed"] in {r["pid"] for r in sleeps}

    remote = timeline_records(capsys, incident_store, s, "--remote", f"127.0.0.1:{s.closed_port}")
    assert {r["remote"] for r in remote} == {f"127.0.0.1:{s.closed_port}"}
    assert ("connect_failed", "refused") in [(r["kind"], r["outcome"]) for r in remote]

    mine = timeline_records(capsys, incident_store, s, "--user", os.getuid(), "--program", "sh")
    assert s.pids["grandchild"] in {r["pid"] for r in mine}


def test_table_and_csv_carry_the_same_events(capsys, incident_store, incident_scenario):
    s = incident_scenario
    records = timeline_records(capsys, incident_store, s)
    code, out, _ = run(
        capsys, "timeline", *incident_store.options, "--host", s.host, *window(s), "--format", "csv"
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["time_ns"]) for r in rows] == [r["time_ns"] for r in records]
    code, out, _ = run(
        capsys, "timeline", *incident_store.options, "--host", s.host, *window(s), "--tz", "UTC"
    )
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "KIND", "PID", "PROGRAM", "CONTAINER", "DETAIL"]
    assert len(lines) == len(records) + 1
    (line,) = [ln for ln in lines if f"grandchild.sh {MARKER}" in ln and " exit " in ln]
    assert "exit 7 (error)" in line and str(s.pids["grandchild"]) in line


def test_unknown_host_and_empty_window_say_so(capsys, incident_store, incident_scenario):
    s = incident_scenario
    code, out, err = run(capsys, "timeline", *incident_store.options, "--host", "no-such-host")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "unknown host 'no-such-host'" in err and s.host in err
    code, out, err = run(
        capsys,
        "timeline",
        *incident_store.options,
        "--host",
        s.host,
        "--from",
        "2001-01-01T00:00:00Z",
        "--to",
        "2001-01-01T01:00:00Z",
    )
    assert code == 1 and out == ""
    assert (
        err
        == (
            f"groundtruth timeline: no events on host {s.host!r} from "
            f"2001-01-01T00:00:00.000+00:00 to 2001-01-01T01:00:00.000+00:00\n"
        )
        or "no events on host" in err
    )


def ancestry(capsys, target, *argv) -> tuple[int, list[dict], str]:
    code, out, err = run(capsys, "ancestry", *target.options, "--format", "jsonl", *argv)
    return code, [json.loads(line) for line in out.splitlines()], err


def test_ancestry_of_the_grandchild_is_exact(capsys, incident_store, incident_scenario):
    s = incident_scenario
    code, chain, err = ancestry(capsys, incident_store, s.pids["grandchild"], "--host", s.host)
    assert code == 0, err
    *_, test_process, parent, child, grandchild = chain
    assert [p["pid"] for p in (parent, child, grandchild)] == [
        s.pids["parent"],
        s.pids["child"],
        s.pids["grandchild"],
    ]
    assert parent["argv"] == ["/bin/sh", s.script("parent.sh")]
    assert child["argv"] == ["/bin/sh", s.script("child.sh")]
    assert grandchild["argv"] == ["/bin/sh", s.script("grandchild.sh"), MARKER]
    assert (grandchild["exit_code"], grandchild["exit"]) == (7, "exit 7 (error)")
    assert (child["exit_code"], parent["exit_code"]) == (0, 0)
    assert test_process["pid"] == os.getpid()
    own_argv = Path("/proc/self/cmdline").read_bytes().decode().split("\0")[:-1]
    assert test_process["argv"][0] == own_argv[0][:127]
    assert test_process["process_key"] == f"{s.host}:{os.getpid()}:{start_ticks(os.getpid())}"
    assert all(p["uid"] == os.getuid() for p in (parent, child, grandchild))
    # Each links to the one above it, and the chain starts at the root (pid 1, no parent).
    for above, below in zip(chain, chain[1:], strict=False):
        assert below["parent_key"] == above["process_key"]
    assert chain[0]["pid"] == 1 and chain[0]["parent_key"] == ""
    assert [p["depth"] for p in chain] == list(range(len(chain)))

    # The same process by its key, and its parent's descendants.
    code, by_key, _ = ancestry(capsys, incident_store, "--key", grandchild["process_key"])
    assert code == 0 and by_key == chain
    code, tree, _ = ancestry(
        capsys, incident_store, "--key", parent["process_key"], "--descendants"
    )
    assert code == 0
    below = tree[len(chain) - 3 :]  # the parent, then its descendants
    assert below[0]["pid"] == s.pids["parent"]
    by_pid = {p["pid"]: p for p in below}
    assert by_pid[s.pids["child"]]["depth"] == below[0]["depth"] + 1
    assert by_pid[s.pids["grandchild"]]["depth"] == below[0]["depth"] + 2
    assert by_pid[s.pids["killed"]]["argv"] == ["/bin/sleep", "30"]


def test_reused_pid_lists_the_candidates(capsys, incident_store, incident_scenario):
    s = incident_scenario
    code, candidates, err = ancestry(capsys, incident_store, s.reused_pid, "--host", s.host)
    assert code == 3
    assert f"pid {s.reused_pid}" in err and "--key" in err and err.count("\n") == 1
    ours = [c for c in candidates if c["argv"][1:] in (["reuse-first"], ["reuse-second"])]
    assert [c["argv"][1] for c in ours] == ["reuse-first", "reuse-second"]
    assert ours[0]["process_key"] != ours[1]["process_key"]
    # At the first one's exit only it was alive: no guessing needed.
    first_exit = ours[0]["exit_ns"]
    code, chain, err = ancestry(
        capsys, incident_store, s.reused_pid, "--host", s.host, "--at", first_exit
    )
    assert code == 0, err
    assert chain[-1]["process_key"] == ours[0]["process_key"]
    # A window after the first one ended holds only the second.
    code, chain, err = ancestry(
        capsys, incident_store, s.reused_pid, "--host", s.host, "--from", first_exit + 1
    )
    assert code == 0, err
    assert chain[-1]["process_key"] == ours[1]["process_key"]
    # A window holding both lists both again.
    code, listed, err = ancestry(capsys, incident_store, s.reused_pid, "--host", s.host, *window(s))
    assert code == 3 and "different processes from " in err
    assert {c["process_key"] for c in ours} <= {c["process_key"] for c in listed}


def test_on_a_two_shard_cluster(capsys, tmp_path, clickhouse_cluster, incident_scenario):
    """Through Distributed tables (cluster mode), with the subquery of the --user filter."""
    from store.db import open_store
    from store.migrations import migrate
    from testservices.clickhouse import CLUSTER_NAME, fresh_database_name

    s = incident_scenario
    url = clickhouse_cluster[1].url(fresh_database_name())
    store = open_store(url, cluster=CLUSTER_NAME)
    migrate(store)
    store.insert_events(s.events)
    store.close()
    target = type("Target", (), {"options": ["--store-url", url, "--cluster", CLUSTER_NAME]})
    mine = timeline_records(capsys, target, s, "--user", os.getuid(), "--program", "python")
    client_closes = [r for r in mine if r["kind"] == "close" and r["direction"] == "outbound"]
    assert f"127.0.0.1:{s.server_port}" in {r["remote"] for r in client_closes}
    code, chain, err = ancestry(capsys, target, s.pids["grandchild"], "--host", s.host)
    assert code == 0, err
    assert [p["pid"] for p in chain[-3:]] == [s.pids[r] for r in ("parent", "child", "grandchild")]
    out_dir = tmp_path / "pm"
    code, _, err = run(
        capsys, "postmortem", *target.options, *window(s), "--host", s.host, "-o", out_dir
    )
    assert code == 0, err
    report = (out_dir / "postmortem.md").read_text()
    assert f"| {s.pids['grandchild']} |" in report and "exit 7 (error)" in report
    # graphapi's own queries decide whether a cluster gets a picture; the report is written
    # either way, saying why when there is none.
    graph = report[report.index("## Causal graph") :].split("\n## ")[0]
    assert "![causal graph](causal-graph.svg)" in graph or "No graph was drawn: " in graph


def test_the_timeline_marks_the_flag_right_after_the_event_that_raised_it(
    capsys, incident_store, incident_scenario
):
    """The scenario's OOM kill raised the detector's oom_kill flag: it follows that event."""
    s = incident_scenario
    records = timeline_records(capsys, incident_store, s)
    oom = s.pids["oom"]
    (kill_at,) = [i for i, r in enumerate(records) if r["pid"] == oom and r["kind"] == "oom_kill"]
    # (Other rules may flag the hog too: a python run from a virtual environment under /tmp
    # is an exec from /tmp.)
    (flag,) = [r for r in records if r.get("rule_id") == "oom_kill" and r["pid"] == oom]
    assert flag["source"] == "flag"
    assert flag["time_ns"] == records[kill_at]["time_ns"]
    assert records.index(flag) > kill_at
    assert flag["detail"].startswith("FLAG ") and "oom_kill" in flag["detail"]
    assert flag["container"] == s.container[:12]


def test_an_exec_by_a_relative_name_says_where_it_was_run():
    """./x means nothing without the working directory; an absolute name needs none."""
    from incident.timeline import process_entries

    row = (1, "h", "exec", 7, 1, 0, "x", "./x", ["./x", "-v"], -1, 0, 0, "", 0, "", "h:7:1",
           "h:1:1", "/tmp/t/x", "/tmp/t")  # fmt: skip
    absolute = (*row[:7], "/usr/bin/x", ["/usr/bin/x"], *row[9:17], "/usr/bin/x", "/tmp/t")
    relative, plain = process_entries([row, absolute], {})
    assert relative.detail == "./x -v (in /tmp/t)"
    assert (relative.fields["exe_path"], relative.fields["cwd"]) == ("/tmp/t/x", "/tmp/t")
    assert plain.detail == "/usr/bin/x"
