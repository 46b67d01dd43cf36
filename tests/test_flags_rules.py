"""The rules file, its validation (file and line), `groundtruth flags test`, the detector's
bounds: on constructed events (the eBPF scenarios are in test_flags_live.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from exporter.config import ConfigError, ExporterConfig
from exporter.flags.detector import Detector
from exporter.flags.families.exec_rules import read_arguments, script_operand
from exporter.flags.rule_tests import _events, _LineLoader
from exporter.flags.rulebook import DEFAULT_RULES_PATH, RulebookError, load_rulebook
from groundtruth.cli import main
from mixin.config import load_config
from schema.events import ProcessEvent
from tests.flag_events import execs_from_tmp

RULE_TESTS = Path(__file__).parent / "flags" / "rules_test.yaml"


def test_shipped_rule_tests_pass(capsys):
    assert main(["flags", "test", str(RULE_TESTS)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("SUCCESS")
    cases = len(yaml.safe_load(RULE_TESTS.read_text())["tests"])
    assert out.count("\nok   ") + out.startswith("ok   ") == cases


def test_process_rows_raise_what_their_event_objects_raise():
    # The exporter hands the detector the process probe's events as plain tuples in
    # ProcessEvent's field order (schema.column_batch.RowBatch): each shipped rule test
    # raises the same flags from those as from event objects.
    doc = yaml.load(RULE_TESTS.read_text(), Loader=_LineLoader)
    thresholds = {**load_config().raw["thresholds"], **doc["thresholds"]}
    rulebook = load_rulebook()

    def raised(events: list) -> list[str]:
        flags = Detector(rulebook, thresholds).observe(events)
        return sorted(repr(dataclasses.replace(f, event_id="", time_ns=0)) for f in flags)

    rows = flags = 0
    for test in doc["tests"]:
        events = _events(test, RULE_TESTS.parent, str(RULE_TESTS))
        as_rows = [tuple(e) if type(e) is ProcessEvent else e for e in events]
        assert raised(as_rows) == raised(events), test["name"]
        rows += sum(type(e) is tuple for e in as_rows)
        flags += len(raised(events))
    assert rows > 50 and flags > 30  # (the file's tests are still mostly process events)


def test_a_wrong_expectation_prints_a_diff(tmp_path, capsys):
    test = tmp_path / "t.yaml"
    test.write_text(
        "tests:\n"
        "  - name: tmp\n"
        "    events:\n"
        "      - {kind: exec, pid: 5, process_key: 'h:5:1', filename: /tmp/a}\n"
        "    expect:\n"
        "      - {rule_id: exec_from_tmp, severity: low, process_key: 'h:5:1'}\n"
    )
    assert main(["flags", "test", str(test)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {test}:2: tmp" in out
    assert "- expected, not raised: {rule_id: 'exec_from_tmp', severity: 'low'" in out
    assert "+ raised, not expected: {rule_id: 'exec_from_tmp', severity: 'high'" in out


def test_recorded_json_lines_are_test_input(tmp_path, capsys):
    """The jsonl sink's own lines (with their type) replay through `flags test`."""
    import json

    from schema.events import as_dict

    ev = ProcessEvent(kind="exec", pid=9, process_key="h:9:1", filename="/dev/shm/p", host="h")
    (tmp_path / "rec.jsonl").write_text(json.dumps({"type": "ProcessEvent", **as_dict(ev)}) + "\n")
    (tmp_path / "t.yaml").write_text(
        "tests:\n  - name: recorded\n    events_file: rec.jsonl\n    expect:\n"
        "      - {rule_id: exec_from_tmp, process_key: 'h:9:1'}\n"
    )
    assert main(["flags", "test", str(tmp_path / "t.yaml")]) == 0


def test_an_unknown_event_field_names_file_and_line(tmp_path, capsys):
    test = tmp_path / "t.yaml"
    test.write_text("tests:\n  - name: x\n    events:\n      - {kind: exec, filenme: /tmp/a}\n")
    assert main(["flags", "test", str(test)]) == 2
    assert f"{test}:4: process has no field filenme" in capsys.readouterr().err


def test_the_shipped_rules_file_checks_clean(capsys):
    assert main(["flags", "rules", "--check"]) == 0
    assert "12 rules, 4 exceptions: valid" in capsys.readouterr().out


GOOD_RULE = (
    "rules:\n"
    "  - id: oom_kill\n"
    "    class: operations\n"
    "    severity: high\n"
    "    technique: ''\n"
    "    meaning: OOM.\n"
)


@pytest.mark.parametrize(
    "text, line, message",
    [
        (GOOD_RULE.replace("severity: high", "severity: urgent"), 4,
         "severity must be one of info, low, medium, high, critical, not 'urgent'"),
        (GOOD_RULE.replace("id: oom_kill", "id: oom_kil"), 2, "no rule logic named 'oom_kil'"),
        (GOOD_RULE + "    colour: red\n", 7, "rule oom_kill: unknown key 'colour'"),
        (GOOD_RULE.replace("class: operations", "class: security"), 5,
         "security rule oom_kill needs a MITRE ATT&CK technique"),
        (GOOD_RULE.replace("technique: ''", "technique: T99"), 5, "MITRE ATT&CK id"),
        (GOOD_RULE.replace("    meaning: OOM.\n", ""), 2, "rule lacks 'meaning'"),
        (GOOD_RULE + GOOD_RULE[7:], 7, "rule 'oom_kill' is defined twice (first at line 2)"),
        (GOOD_RULE + "exceptions:\n  - {id: x, rule: crash, programs: [a], reason: r}\n", 8,
         "exception for unknown rule 'crash'"),
        (GOOD_RULE + "exceptions:\n  - {id: x, rule: oom_kill, reason: r}\n", 8,
         "exception must name programs, ancestors, containers or users"),
        (GOOD_RULE + "exceptions:\n  - {id: x, rule: oom_kill, users: [nobody-here], reason: r}\n",
         8, "no user named 'nobody-here'"),
        ("rules:\n  - id: [\n", 3, "not valid YAML"),
    ],
)  # fmt: skip
def test_bad_rules_files_name_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RulebookError) as e:
        load_rulebook(path)
    assert str(e.value).startswith(f"{path}:{line}:")
    assert message in str(e.value)


TMP_RULE = (
    "rules:\n"
    "  - id: exec_from_tmp\n"
    "    class: security\n"
    "    severity: high\n"
    "    technique: T1204.002\n"
    "    meaning: From /tmp.\n"
    "    paths: [/tmp/]\n"
)


def test_exec_from_tmp_may_leave_out_its_interpreters_not_its_paths(tmp_path):
    # A rules file written before the interpreters list still loads, and flags scripts run by
    # their own path; without paths the rule has nothing to watch.
    path = tmp_path / "rules.yaml"
    path.write_text(TMP_RULE)
    detector = Detector(load_rulebook(path), load_config().raw["thresholds"])
    execs = [
        ProcessEvent(kind="exec", pid=p, process_key=f"h:{p}:1", filename=name, argv=argv,
                     time_ns=10**18 + p)
        for p, name, argv in ((1, "/bin/sh", ["sh", "/tmp/x.sh"]), (2, "/tmp/y", ["y"]))
    ]  # fmt: skip
    assert [f.process_key for f in detector.observe(execs)] == ["h:2:1"]
    path.write_text(TMP_RULE.replace("    paths: [/tmp/]\n", ""))
    with pytest.raises(RulebookError, match=f"^{path}:2: rule exec_from_tmp lacks 'paths'"):
        load_rulebook(path)


@pytest.mark.parametrize(
    "argv, script",
    [
        (["sh", "/tmp/x.sh"], "/tmp/x.sh"),
        (["bash", "-x", "-o", "pipefail", "run.sh", "arg"], "run.sh"),
        (["bash", "--norc", "--", "-odd-name.sh"], "-odd-name.sh"),
        (["bash", "-e", "/tmp/x.sh"], "/tmp/x.sh"),  # a shell's -e: errexit, not inline code
        (["sh", "-c", "/tmp/x.sh"], ""),  # inline: /tmp/x.sh is an exec of its own
        (["bash", "-ec", "echo hi"], ""),  # options bundled with c
        (["sh", "-"], ""),  # standard input
        (["sh"], ""),
        (["python3", "-u", "-W", "ignore", "x.py"], "x.py"),
        (["python3", "-m", "http.server"], ""),
        (["python3", "-O", "x.py"], "x.py"),  # python's -O takes no value (bash's does)
        (["perl", "-e", "print 1"], ""),
        (["perl", "-w", "x.pl"], "x.pl"),
        (["node", "-r", "ts-node/register", "x.ts"], "x.ts"),
        (["node", "--eval", "1"], ""),
        # A value-taking option's value is not the script (each once hid the script after it).
        (["bash", "--rcfile", "/etc/profile", "/tmp/x.sh"], "/tmp/x.sh"),
        (["bash", "--init-file", "/etc/profile", "/tmp/x.sh"], "/tmp/x.sh"),
        (["python3", "--check-hash-based-pycs", "never", "/tmp/x.py"], "/tmp/x.py"),
        (["ruby", "-C", "/srv", "-E", "UTF-8", "x.rb"], "x.rb"),
        (["node", "--conditions", "dev", "--title", "t", "/dev/shm/x.js"], "/dev/shm/x.js"),
        (["node", "--conditions=dev", "/dev/shm/x.js"], "/dev/shm/x.js"),  # value attached
        (["php", "-t", "/srv", "-S", "0:80", "/tmp/router.php"], "/tmp/router.php"),
        (["php", "-B", "$n = 0;", "-F", "/tmp/x.php"], "/tmp/x.php"),
        (["php", "-R", "echo $argn;"], ""),
        # Bundles, read as getopt reads them: a value-taking option last takes the next
        # argument; one with letters after it has them as its value.
        (["bash", "-xo", "pipefail", "/tmp/x.sh"], "/tmp/x.sh"),
        (["python3", "-uW", "ignore", "/tmp/x.py"], "/tmp/x.py"),
        (["python3", "-uWignore", "/tmp/x.py"], "/tmp/x.py"),
        (["bash", "-ce", "echo hi"], ""),  # c anywhere in a shell's bundle
        (["python3", "-uc", "pass"], ""),
        (["ld-linux-x86-64.so.2", "--library-path", "/lib", "/tmp/x"], "/tmp/x"),
    ],
)
def test_the_script_given_to_an_interpreter(argv, script):
    assert script_operand(argv[0], argv) == script


@pytest.mark.parametrize(
    "argv, loaded",
    [
        (["bash", "--rcfile", "/tmp/x.sh", "-i"], ["/tmp/x.sh"]),
        (["bash", "--init-file", "./rc", "/srv/x.sh"], ["./rc"]),
        (["node", "-r", "/tmp/a.js", "--require=../b.js", "--import", "./c.mjs", "x.js"],
         ["/tmp/a.js", "../b.js", "./c.mjs"]),
        (["node", "-r", "ts-node/register", "x.ts"], []),  # a module name: not a path
        (["ruby", "-r/tmp/x.rb", "-e0"], ["/tmp/x.rb"]),
        (["ruby", "-rjson", "x.rb"], []),
        (["python3", "-r", "/tmp/x"], []),  # python has no such option
        # A shell's inline code sourcing a file by its path (`. x` alone searches PATH).
        (["sh", "-c", ". /tmp/x.sh"], ["/tmp/x.sh"]),
        (["bash", "-ec", "cd /; source '/tmp/y.sh' && echo"], ["/tmp/y.sh"]),
        (["sh", "-c", "a; . ./rel/x.sh"], ["./rel/x.sh"]),
        (["sh", "-c", "echo . /tmp/z"], []),  # an argument, not a command
        (["sh", "-c", ". lib.sh"], []),
        (["python3", "-c", ". /tmp/x"], []),  # not a shell
    ],
)  # fmt: skip
def test_the_files_an_interpreter_s_options_load(argv, loaded):
    assert read_arguments(argv[0], argv)[1] == loaded


def test_the_exporter_refuses_a_bad_rules_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD_RULE.replace("severity: high", "severity: urgent"))
    with pytest.raises(ConfigError, match=f"^{path}:4: severity"):
        ExporterConfig(flag_rules=str(path)).validate()
    ExporterConfig(flag_rules=str(path), flags=False).validate()  # off: not read


def test_rules_numbers_come_from_the_thresholds_file():
    thresholds = dict(load_config().raw["thresholds"], flag_crash_loop_exits=2)
    detector = Detector(load_rulebook(DEFAULT_RULES_PATH), thresholds)
    exits = [
        ProcessEvent(kind="exit", pid=p, process_key=f"h:{p}:1", comm="app", outcome="error",
                     exit_code=1, time_ns=10**18 + p)
        for p in (1, 2)
    ]  # fmt: skip
    flags = detector.observe(exits)
    assert [(f.rule_id, f.process_key, f.occurrences) for f in flags] == [
        ("crash_loop", "h:2:1", 2)
    ]


def test_ancestry_is_bounded_and_evictions_are_counted():
    thresholds = dict(load_config().raw["thresholds"], flag_ancestry_max_processes=3)
    detector = Detector(load_rulebook(), thresholds)
    forks = [ProcessEvent(kind="fork", pid=p, process_key=f"h:{p}:1", parent_key="h:1:1")
             for p in range(10, 15)]  # fmt: skip
    detector.observe(forks)
    assert len(detector.ancestry) == 3 and detector.ancestry.evictions == 2
    assert set(detector.ancestry.procs) == {"h:12:1", "h:13:1", "h:14:1"}  # the newest stay
    detector.observe([ProcessEvent(kind="exit", pid=14, process_key="h:14:1", outcome="ok")])
    assert len(detector.ancestry) == 2


def test_a_flood_is_stored_up_to_the_budget_and_counted_whole():
    thresholds = dict(load_config().raw["thresholds"], flag_stored_per_rule_max=2)
    detector = Detector(load_rulebook(), thresholds)
    execs = execs_from_tmp(range(5), "/tmp/p{pid}")
    flags = detector.observe(execs)
    assert [f.process_key for f in flags] == ["h:0:1", "h:1:1"]
    assert detector.raised["exec_from_tmp", "security", "high"] == 5
    assert detector.not_stored == {("exec_from_tmp", "budget"): 3}
    later = ProcessEvent(kind="exec", pid=9, process_key="h:9:1", parent_key="h:1:1",
                         filename="/tmp/p9", time_ns=10**18 + 61 * 10**9)  # fmt: skip
    assert [f.process_key for f in detector.observe([later])] == ["h:9:1"]  # a new window


def test_the_exporters_mixin_config_sets_the_detectors_numbers(tmp_path):
    """--mixin-config FILE: how scripts/flag-watch.sh has every flag stored (no repeat window,
    no budget), so each one can be matched to the test that caused it; a bad file is refused."""
    from exporter.flags.setup import flag_detector

    path = tmp_path / "mixin.yaml"
    path.write_text("thresholds:\n  flag_repeat_window_seconds: 0\n")
    detector = flag_detector(ExporterConfig(mixin_config=str(path)))
    execs = execs_from_tmp(range(2, 200))
    assert [f.process_key for f in detector.observe(execs)] == [e.process_key for e in execs]
    assert detector.not_stored_total() == {}
    shipped = flag_detector(ExporterConfig())
    assert [f.process_key for f in shipped.observe(execs)] == ["h:2:1"]  # the default repeats
    path.write_text("thresholds:\n  flag_repeat_window_seconds: -1\n")
    with pytest.raises(ConfigError, match="flag_repeat_window_seconds must be a number >= 0"):
        ExporterConfig(mixin_config=str(path)).validate()


def test_a_loop_from_tmp_is_stored_once_and_counted_whole():
    """The exec path counts a repeat without building its flag: every exec is still counted."""
    detector = Detector(load_rulebook(), load_config().raw["thresholds"])
    loop = execs_from_tmp(range(2, 6))
    assert [f.process_key for f in detector.observe(loop)] == ["h:2:1"]
    assert detector.raised_total() == {("exec_from_tmp", "security", "high"): 4}
    assert detector.not_stored_total() == {("exec_from_tmp", "repeat"): 3}
    # Under another parent, or suspect as well (a setuid binary in /tmp): not a repeat.
    other = ProcessEvent(kind="exec", pid=7, process_key="h:7:1", parent_key="h:6:1",
                         filename="/tmp/loop", time_ns=10**18 + 7)  # fmt: skip
    setuid = ProcessEvent(kind="exec", pid=8, process_key="h:8:1", parent_key="h:1:1",
                          filename="/tmp/loop", time_ns=10**18 + 8,
                          uid=1000, euid=0, auid=1000)  # fmt: skip
    flags = detector.observe([other, setuid])
    assert [(f.rule_id, f.process_key) for f in flags] == [
        ("exec_from_tmp", "h:7:1"),
        ("privilege_gain", "h:8:1"),
    ]


def test_a_family_added_later_raises_policy_flags_through_the_same_path():
    """How baseline policies plug in: a family with on_exec, flags of kind policy."""
    detector = Detector(load_rulebook(), load_config().raw["thresholds"])

    class NewProgram:
        def on_exec(self, ev, program):
            if program != "allowed":
                detector.emit("exec_from_tmp", ev, program, f"{program} is new", kind="policy")

    detector.add_family(NewProgram())
    events = [
        ProcessEvent(kind="exec", pid=p, process_key=f"h:{p}:1", filename=f"/usr/bin/{name}")
        for p, name in ((1, "allowed"), (2, "surprise"))
    ]
    flags = detector.observe(events)
    assert [(f.kind, f.process_key, f.description) for f in flags] == [
        ("policy", "h:2:1", "surprise is new")
    ]


def test_flags_test_has_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["flags", "test", "--help"])
    assert e.value.code == 0
    assert "promtool test rules" in capsys.readouterr().out
