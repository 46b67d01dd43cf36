"""scripts/flag_watch.py's report: a security flag on the suite's processes is caused on purpose
when the test running at the time declares its rule (``@pytest.mark.causes_flags``); any other
is a false positive, and flags on processes outside the suite are not the suite's."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, generate_latest

from exporter.flags.detector import Detector
from exporter.flags.metrics import FlagsCollector
from exporter.flags.rulebook import load_rulebook
from mixin.config import load_config
from scripts.flag_watch import report
from tests.flag_events import execs_from_tmp


def lines(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def process(kind, key, parent, pid):
    return {"type": "ProcessEvent", "kind": kind, "process_key": key, "parent_key": parent,
            "pid": pid}  # fmt: skip


def flag(rule, key, t, flag_class="security"):
    return {
        "type": "FlagEvent", "rule_id": rule, "process_key": key, "event_time_ns": t,
        "flag_class": flag_class, "severity": "high", "description": f"{rule} on {key}",
    }  # fmt: skip


def test_declared_rules_are_on_purpose_and_the_rest_are_false_positives(tmp_path, capsys):
    events = lines(tmp_path / "events.jsonl", [
        process("exec", "h:10:1", "h:1:1", 10),  # the suite (pytest)
        process("fork", "h:11:1", "h:10:1", 11),  # a child of a test
        process("fork", "h:12:1", "h:10:1", 12),
        process("fork", "h:13:1", "h:10:1", 13),
        process("fork", "h:99:1", "h:1:1", 99),  # a neighbour on a shared host
        flag("exec_from_tmp", "h:11:1", 150),  # declared by test_a
        flag("privilege_gain", "h:12:1", 160),  # test_a did not declare this one
        flag("exec_from_tmp", "h:13:1", 250),  # test_b declares nothing
        flag("crash", "h:13:1", 260, "operations"),  # not a security flag
        flag("exec_from_tmp", "h:99:1", 150),  # not the suite's
    ])  # fmt: skip
    spans = lines(tmp_path / "spans.jsonl", [
        {"test": "t.py::test_a", "start": 100},
        {"test": "t.py::test_a", "causes": ["exec_from_tmp"]},
        {"test": "t.py::test_a", "end": 200},
        {"test": "t.py::test_b", "start": 200},
        {"test": "t.py::test_b", "causes": []},
        {"test": "t.py::test_b", "end": 300},
    ])  # fmt: skip
    assert report(events, spans, root_pid=10) == 0
    out = capsys.readouterr().out
    assert "not stored" not in out  # without the exporter's metrics, nothing said about them
    assert "flags on the suite's processes: 4 (5 on the whole host)" in out
    assert "security flags caused on purpose (@pytest.mark.causes_flags): 1\n" in out
    assert "  1 x exec_from_tmp in t.py::test_a\n" in out
    assert "security flags no test meant to cause: 2\n" in out
    assert "  1 x privilege_gain in t.py::test_a, e.g.:" in out
    assert "  1 x exec_from_tmp in t.py::test_b, e.g.:" in out


def test_flags_counted_but_not_stored_are_reported(tmp_path, capsys):
    """A flag repeating a stored one (or over the budget) is only counted: the report says how
    many, from the exporter's metrics, as it cannot match them to a test."""
    detector = Detector(load_rulebook(), load_config().raw["thresholds"])
    loop = execs_from_tmp(range(2, 9))
    assert len(detector.observe(loop)) == 1  # stored once, 6 repeats counted
    registry = CollectorRegistry()
    registry.register(FlagsCollector(detector))
    metrics = tmp_path / "metrics.txt"
    metrics.write_bytes(generate_latest(registry))
    events = lines(tmp_path / "events.jsonl", [process("exec", "h:10:1", "h:1:1", 10)])
    spans = lines(tmp_path / "spans.jsonl", [{"test": "t.py::test_a", "start": 100}])
    assert report(events, spans, root_pid=10, metrics_path=str(metrics)) == 0
    assert "flags counted but not stored, so not matched to a test: 6\n" in capsys.readouterr().out
