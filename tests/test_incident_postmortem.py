"""``groundtruth postmortem`` of a provoked alert, on the real events of the scripted incident.

The alert is delivered the way Alertmanager delivers it: a version 4 webhook payload posted to
graphapi's real webhook endpoint, which stores it. The report must contain that alert, the
processes the scenario made fail (exit 7, SIGKILL, the OOM kill) and a valid SVG graph.
"""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET

from graph.nodegraph_fields import iso
from graphapi import create_app
from groundtruth.cli import main
from tests.fixtures.incident import MARKER

SVG_NS = "{http://www.w3.org/2000/svg}"


def post_alert(store, scenario, fingerprint: str) -> None:
    """A firing alert about the scenario's container, started at its OOM kill."""
    oom_ns = next(
        e.time_ns for e in scenario.events if e.pid == scenario.pids["oom"] and e.kind == "oom_kill"
    )
    payload = {
        "version": "4",
        "status": "firing",
        "receiver": "groundtruth",
        "groupKey": '{}:{alertname="GroundtruthOomKill"}',
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "GroundtruthOomKill",
                    "severity": "warning",
                    "host": scenario.host,
                    "container": scenario.container,
                },
                "annotations": {"summary": "A process was OOM-killed in a container."},
                "startsAt": iso(oom_ns),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph",
                "fingerprint": fingerprint,
            }
        ],
    }
    client = create_app({"STORE": store}).test_client()
    reply = client.post("/api/alerts/webhook", json=payload)
    assert reply.status_code == 200, reply.get_json()
    assert reply.get_json()["stored"] == 1


def section(report: str, heading: str) -> str:
    start = report.index(f"## {heading}\n")
    end = report.find("\n## ", start + 1)
    return report[start : end if end > 0 else None]


def test_postmortem_of_a_provoked_alert(capsys, tmp_path, incident_store, incident_scenario):
    s = incident_scenario
    fingerprint = uuid.uuid4().hex[:16]
    post_alert(incident_store.store, s, fingerprint)
    out_dir = tmp_path / "pm"
    code = main(
        [
            "postmortem",
            *incident_store.options,
            "--from",
            str(s.start_ns - 10**9),
            "--to",
            str(s.end_ns + 5 * 10**9),
            "--alert",
            fingerprint,
            "--tz",
            "UTC",
            "-o",
            str(out_dir),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == str(out_dir / "postmortem.md")
    assert "alerts in the window: 1 found" in err and "causal graph" in err  # progress
    report = (out_dir / "postmortem.md").read_text()

    assert report.startswith(f"# Postmortem: GroundtruthOomKill on {s.host}\n")
    alerts = section(report, "Alerts")
    assert fingerprint in alerts and "GroundtruthOomKill firing [warning]" in alerts
    assert s.container[:12] in alerts

    failed = section(report, "Processes that failed, were killed or OOM-killed")
    lines = failed.splitlines()

    def line_of(pid: int, what: str) -> str:
        found = [ln for ln in lines if f"| {pid} |" in ln and what in ln]
        assert len(found) == 1, (pid, what, failed)
        return found[0]

    assert f"grandchild.sh {MARKER}" in line_of(s.pids["grandchild"], "exit 7 (error)")
    assert "/bin/sleep 30" in line_of(s.pids["killed"], "killed by SIGKILL")
    assert s.container[:12] in line_of(s.pids["oom"], "OOM-killed")
    assert not [ln for ln in lines if f"| {s.pids['child']} |" in ln]  # exited 0: not failed

    timeline = section(report, "Timeline around the alerts")
    assert "GroundtruthOomKill firing" in timeline and f"| oom_kill | {s.pids['oom']} |" in timeline
    assert f"127.0.0.1:{s.server_port}" in section(report, "New outbound destinations")
    involved = section(report, "Hosts and containers involved")
    assert s.host in involved and s.container[:12] in involved
    for heading in ("Impact", "Remediation", "Follow-ups"):
        assert f"\n## {heading}\n" in report

    # The graph: graphapi's, focused on the alert (its container), drawn by graphviz.
    assert "![causal graph](causal-graph.svg)" in report
    root = ET.parse(out_dir / "causal-graph.svg").getroot()
    assert root.tag == f"{SVG_NS}svg"
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG_NS}text"))
    assert "GroundtruthOomKill" in texts
    assert f"pid {s.pids['oom']}" in texts and "OOM-killed" in texts
    lines = (out_dir / "timeline.jsonl").read_text().splitlines()
    assert any(f'"pid": {s.pids["oom"]}' in ln and '"oom_kill"' in ln for ln in lines)

    # The OOM kill raised the detector's oom_kill flag: its trace, the path from the trace's
    # root ending at the OOM-killed process, and the trace's own graph.
    (block,) = [b for b in section(report, "Traces").split("### Trace ")[1:] if "| oom_kill |" in b]
    (row,) = [ln for ln in block.splitlines() if "| oom_kill |" in ln]
    assert f"[{s.pids['oom']}]`" in row and "| operations |" in row
    (image,) = [ln for ln in block.splitlines() if ln.startswith("![trace ")]
    svg = ET.parse(out_dir / image.split("](")[1].rstrip(")")).getroot()
    assert f"pid {s.pids['oom']}" in " ".join(t.text or "" for t in svg.iter(f"{SVG_NS}text"))


def test_postmortem_bad_input_is_one_clear_line(
    capsys, tmp_path, incident_store, incident_scenario
):
    s = incident_scenario
    window = ["--from", str(s.start_ns - 10**9), "--to", str(s.end_ns + 5 * 10**9)]
    cases = [
        (["--alert", "no-such-fingerprint"], 1, "no alert with fingerprint 'no-such-fingerprint'"),
        (["--around", "soon"], 2, "cannot read duration 'soon'"),
        (["--host", "no-such-host"], 1, "no events"),
    ]
    for extra, status, message in cases:
        code = main(
            [
                "postmortem",
                *incident_store.options,
                *window,
                *extra,
                "-q",
                "-o",
                str(tmp_path / "x"),
            ]
        )
        _, err = capsys.readouterr()
        assert code == status, err
        assert err.startswith("groundtruth postmortem: ") and message in err
        assert err.count("\n") == 1 and "Traceback" not in err
    (tmp_path / "file").write_text("")
    code = main(["postmortem", *incident_store.options, *window, "-o", str(tmp_path / "file")])
    _, err = capsys.readouterr()
    assert code == 2 and "is not a directory" in err


def test_progress_is_plain_lines_off_a_terminal():
    import io

    from incident.progress import Progress

    stream = io.StringIO()
    progress = Progress(stream)
    with progress.step("querying") as step:
        time.sleep(0.01)
        step.note = "3 rows"
    assert stream.getvalue().startswith("querying: 3 rows (")
    assert stream.getvalue().count("\n") == 1
