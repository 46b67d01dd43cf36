"""The Prometheus and Alertmanager fixtures start real servers, and say why when they cannot."""

import pytest
import yaml

from testservices.prometheus import start_alertmanager, start_prometheus
from testservices.service import ServiceStartError


def test_prometheus_scrapes_itself_and_evaluates_a_rule(prometheus_factory, tmp_path):
    rules = tmp_path / "r.yml"
    rules.write_text(
        yaml.safe_dump(
            {"groups": [{"name": "t", "rules": [{"record": "job:up:sum", "expr": "sum(up)"}]}]}
        )
    )
    prom = prometheus_factory(rule_files=[rules])
    reply = prom.query("vector(42)")
    assert reply["status"] == "success"
    assert reply["data"]["result"][0]["value"][1] == "42"
    groups = prom.api("rules")["data"]["groups"]
    assert [r["name"] for g in groups for r in g["rules"]] == ["job:up:sum"]


def test_prometheus_rejects_a_bad_query_with_its_error(prometheus_factory):
    reply = prometheus_factory().query("sum(rate(")
    assert reply["status"] == "error"
    assert reply["errorType"] == "bad_data"


def test_broken_prometheus_config_fails_with_the_log_tail(tmp_path):
    with pytest.raises(ServiceStartError) as err:
        start_prometheus(tmp_path, {"scrape_configs": [{"job_name": "x", "no_such_key": 1}]})
    assert "no_such_key" in str(err.value)


def test_alertmanager_starts_with_clustering_off(alertmanager_factory, tmp_path):
    config = tmp_path / "am.yml"
    config.write_text(
        yaml.safe_dump({"route": {"receiver": "null"}, "receivers": [{"name": "null"}]})
    )
    am = alertmanager_factory(config)
    assert am.alerts() == []


def test_broken_alertmanager_config_fails_with_the_log_tail(tmp_path):
    config = tmp_path / "am.yml"
    config.write_text(yaml.safe_dump({"route": {"receiver": "missing"}, "receivers": []}))
    with pytest.raises(ServiceStartError) as err:
        start_alertmanager(tmp_path / "am", config)
    assert "missing" in str(err.value)
