"""The generated alerting artifacts: current, valid for the real tools, tested, routed."""

import re
import subprocess
import time
from pathlib import Path

import pytest
import requests

from alerts import build
from alerts.alertmanager import alertmanager_config
from alerts.promtool_tests import CASES
from alerts.rules import alert_name, alerts, rule_file
from mixin.config import MixinConfigError, load_config
from mixin.recording import recording_rules

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cfg():
    return load_config()


def test_committed_artifacts_are_current(cfg):
    for name, text in build.render(cfg).items():
        committed = build.GENERATED_DIR / name
        assert committed.exists(), f"{committed} missing: run `groundtruth alerts build`"
        assert committed.read_text() == text, (
            f"{committed} is stale: run `groundtruth alerts build`"
        )


def test_promtool_check_and_unit_tests_and_amtool_pass(cfg, tmp_path):
    build.write(cfg, tmp_path)
    results = build.check(tmp_path)
    assert [r.command[:2] for r in results] == [
        ["promtool", "check"],
        ["promtool", "test"],
        ["amtool", "check-config"],
    ]
    for r in results:
        assert r.ok, f"{' '.join(r.command)}:\n{r.output}"


def test_promtool_tests_fail_when_a_threshold_moves(tmp_path):
    """The unit tests are evidence, not a mirror: a rule built on another threshold fails them."""
    override = tmp_path / "o.yml"
    override.write_text("thresholds:\n  exec_storm_per_second: 450\n")
    build.write(load_config(), tmp_path)
    (tmp_path / build.RULES).write_text(build.render(load_config(override))[build.RULES])
    result = build.check(tmp_path)[1]
    assert not result.ok
    assert "ExecStorm fires" in result.output


def test_every_alert_has_a_firing_and_a_quiet_case(cfg):
    for alert in alerts(cfg):
        fires = [c for c in CASES if c.alert == alert.name and c.labels is not None]
        quiet = [c for c in CASES if c.alert == alert.name and c.labels is None]
        assert fires and quiet, alert.name
    for case in CASES:
        if case.labels is not None:  # its for: edge and literal summary are spelled out
            assert case.quiet_until and case.fires_from and case.summary, case.alert


# An instance label that only arrives intact if the link URL-encodes it.
ODD_INSTANCE = "host 1/é&x=y"
ODD_LINK = (
    "http://127.0.0.1:8080/alert?alertname=GroundtruthExporterDown"
    "&instance=host+1%2F%C3%A9%26x%3Dy&job=groundtruth"
)


def test_without_grafana_links_name_the_alert_and_its_labels_for_graphapi(tmp_path):
    """grafana_url empty: promtool renders every firing case's dashboard_url as graphapi's
    /alert with the alert's name and its series' labels (the generated tests spell each one
    out), and an instance that needs escaping arrives URL-encoded (ODD_LINK, written by hand)."""
    override = tmp_path / "o.yml"
    override.write_text("grafana_url: ''\n")
    cfg = load_config(override)
    build.write(cfg, tmp_path)
    tests = (tmp_path / build.RULE_TESTS).read_text()
    assert "dashboard_url: http://127.0.0.1:8080/alert?alertname=GroundtruthOomKill&container=db&" \
        "instance=host1&job=groundtruth" in tests  # fmt: skip
    down = next(c for c in CASES if c.alert == "ExporterDown" and c.labels is not None)
    odd = {
        "rule_files": [build.RULES],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": f'up{{job="groundtruth",instance="{ODD_INSTANCE}"}}',
                        "values": "0x10",
                    }
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "6m",
                        "alertname": "GroundtruthExporterDown",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "job": "groundtruth",
                                    "instance": ODD_INSTANCE,
                                    "severity": "critical",
                                },  # fmt: skip
                                "exp_annotations": {
                                    "summary": down.summary.replace("host1", ODD_INSTANCE),
                                    "description": down.description.replace("host1", ODD_INSTANCE),
                                    "runbook_url": cfg.runbook_url("GroundtruthExporterDown"),
                                    "dashboard_url": ODD_LINK,
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / build.RULE_TESTS).write_text(build.to_yaml(odd))
    for result in build.check(tmp_path):
        assert result.ok, f"{' '.join(result.command)}:\n{result.output}"


@pytest.mark.parametrize("moved_for", ["4m", "6m"])
def test_promtool_tests_fail_when_a_for_moves_by_one_evaluation(tmp_path, moved_for):
    """The for: edge is pinned: quiet at 4m and firing at 5m for ExporterDown's 5m."""
    override = tmp_path / "o.yml"
    override.write_text(f"thresholds:\n  exporter_down_for: {moved_for}\n")
    build.write(load_config(), tmp_path)
    (tmp_path / build.RULES).write_text(build.render(load_config(override))[build.RULES])
    result = build.check(tmp_path)[1]
    assert not result.ok
    assert "ExporterDown fires" in result.output


def test_naming_annotations_and_runbook_sections(cfg):
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    sections = set(re.findall(r"^## (\S+)$", runbook, re.M))
    for rule in rule_file(cfg)["groups"][1]["rules"]:
        assert re.fullmatch(r"Groundtruth(?:[A-Z][a-z0-9]+)+", rule["alert"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["for"]
        assert set(rule["annotations"]) == {
            "summary",
            "description",
            "runbook_url",
            "dashboard_url",
        }
        assert rule["annotations"]["runbook_url"].endswith("#" + rule["alert"].lower())
        assert rule["alert"] in sections, f"docs/runbook.md has no section for {rule['alert']}"
    assert sections == {alert_name(cfg, a) for a in alerts(cfg)}
    for rec in recording_rules(cfg):
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", rec.record), rec.record


def test_override_changes_thresholds_and_owners(tmp_path):
    override = tmp_path / "o.yml"
    override.write_text(
        "thresholds:\n  exec_storm_per_second: 50\n"
        "teams:\n  payments:\n    containers: ['payments-.*']\n    programs: ['java']\n"
    )
    cfg = load_config(override)
    storm = next(a for a in alerts(cfg) if a.name == "ExecStorm")
    assert storm.expr.endswith("> 50")
    assert cfg.threshold("host_cpu_saturated_ratio") == 0.9  # untouched defaults stay
    assert [t.name for t in cfg.teams] == ["payments", "sre"]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "thresholds:\n  exec_storm_per_secnd: 5\n",
            "unknown key 'thresholds.exec_storm_per_secnd'",
        ),
        ("thresholds:\n  exec_storm_per_second: lots\n", "must be int, got str"),
        ("thresholds:\n  exec_storm_for: 5 minutes\n", "must be a duration"),
        ("default_team: nobody\n", "default_team 'nobody' is not under teams"),
        ("teams:\n  x:\n    containers: ['(']\n", "bad regex"),
        ("- a list\n", "must be a YAML mapping"),
    ],
)
def test_bad_override_is_a_clear_error(tmp_path, text, message):
    override = tmp_path / "o.yml"
    override.write_text(text)
    with pytest.raises(MixinConfigError, match=re.escape(message)):
        load_config(override)


def _routes(config: Path, *labels: str) -> str:
    out = subprocess.run(
        ["amtool", "config", "routes", "test", f"--config.file={config}", *labels],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_alerts_route_to_graphapi_and_the_owning_team(tmp_path):
    override = tmp_path / "o.yml"
    override.write_text(
        "teams:\n  payments:\n    containers: ['payments-.*']\n    programs: ['java']\n"
    )
    build.write(load_config(override), tmp_path, with_tests=False)
    am = tmp_path / build.ALERTMANAGER
    both = "alertname=GroundtruthOomKill"
    assert _routes(am, both, "container=payments-api", "severity=critical") == (
        "graphapi,team-payments-critical"
    )
    assert _routes(am, both, "program=java", "severity=warning") == "graphapi,team-payments-warning"
    assert _routes(am, both, "container=web", "severity=warning") == "graphapi,team-sre-warning"
    assert _routes(am, "alertname=Other", "severity=critical") == "team-sre-critical"


def test_graphapi_webhook_path_and_token(tmp_path):
    token = tmp_path / "token"
    override = tmp_path / "o.yml"
    override.write_text(f"graphapi_url: http://127.0.0.1:8123/\ngraphapi_token_file: {token}\n")
    receiver = alertmanager_config(load_config(override))["receivers"][0]
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"] == "http://127.0.0.1:8123/api/alerts/webhook"
    assert webhook["http_config"]["authorization"]["credentials_file"] == str(token)


def _post_alert(am_url: str, **labels) -> None:
    reply = requests.post(f"{am_url}/api/v2/alerts", json=[{"labels": labels}], timeout=10)
    reply.raise_for_status()


def test_exporter_down_inhibits_its_hosts_dependent_alerts(alertmanager_factory):
    am = alertmanager_factory(build.GENERATED_DIR / build.ALERTMANAGER)
    common = {"job": "groundtruth", "severity": "warning"}
    _post_alert(am.url, alertname="GroundtruthExporterDown", instance="host1", **common)
    _post_alert(am.url, alertname="GroundtruthExecStorm", instance="host1", **common)
    _post_alert(am.url, alertname="GroundtruthExecStorm", instance="host2", **common)
    # Alertmanager applies inhibitions on its own schedule: poll until all three are listed.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = {
            (a["labels"]["alertname"], a["labels"]["instance"]): a["status"]["inhibitedBy"]
            for a in am.alerts()
        }
        if len(state) == 3 and state[("GroundtruthExecStorm", "host1")]:
            break
        time.sleep(0.2)
    assert state[("GroundtruthExecStorm", "host1")], state
    assert state[("GroundtruthExecStorm", "host2")] == [], state
    assert state[("GroundtruthExporterDown", "host1")] == [], state


def test_cli_build_then_test(tmp_path, capsys):
    from groundtruth.cli import main

    assert main(["alerts", "build", "--out", str(tmp_path)]) == 0
    assert main(["alerts", "test", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-3:] == [
        f"ok: promtool check rules {build.RULES}",
        f"ok: promtool test rules {build.RULE_TESTS}",
        f"ok: amtool check-config {build.ALERTMANAGER}",
    ]
    (tmp_path / build.ALERTMANAGER).write_text("route: {receiver: nowhere}\n")
    assert main(["alerts", "test", "--dir", str(tmp_path)]) == 1
    assert "FAILED: amtool check-config" in capsys.readouterr().out


def test_prometheus_fires_into_alertmanager_with_the_generated_configs(
    tmp_path, prometheus_factory, alertmanager_factory
):
    """The generated rules and Alertmanager config, wired as deployed: an exporter that cannot
    be scraped fires ExporterDown, which reaches Alertmanager routed to graphapi and the team."""
    from testservices.service import free_port

    override = tmp_path / "o.yml"
    override.write_text(
        f"graphapi_url: http://127.0.0.1:{free_port()}\nthresholds:\n  exporter_down_for: 0s\n"
    )
    out = tmp_path / "built"
    build.write(load_config(override), out, with_tests=False)
    am = alertmanager_factory(out / build.ALERTMANAGER)
    nothing_listens = f"127.0.0.1:{free_port()}"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [am.url.removeprefix("http://")]}]}]
        },
        "scrape_configs": [
            {"job_name": "groundtruth", "static_configs": [{"targets": [nothing_listens]}]}
        ],
    }
    prometheus_factory(config, [out / build.RULES])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        received = [a for a in am.alerts() if a["labels"]["alertname"] == "GroundtruthExporterDown"]
        if received:
            break
        time.sleep(0.2)
    (alert,) = received
    assert alert["labels"] == {
        "alertname": "GroundtruthExporterDown",
        "instance": nothing_listens,
        "job": "groundtruth",
        "severity": "critical",
    }
    assert alert["annotations"]["runbook_url"].endswith("#groundtruthexporterdown")
    assert f"var-instance={nothing_listens}" in alert["annotations"]["dashboard_url"]
    assert sorted(r["name"] for r in alert["receivers"]) == ["graphapi", "team-sre-critical"]
