"""The generated dashboards: current, lint-clean, one source of thresholds, reviewable diffs."""

import copy
import json

import pytest

from alerts.rules import alerts
from dashboards import build, diff, lint
from dashboards.nodegraph import GRAPH_PATH
from mixin.config import load_config
from mixin.recording import INVESTIGATION_SLUG


@pytest.fixture(scope="module")
def generated():
    """File name -> JSON of the dashboards as built from the defaults."""
    return {name: json.loads(text) for name, text in build.render(load_config()).items()}


def panel(dash, title, type_="timeseries"):
    return next(p for p in dash["panels"] if p["title"] == title and p["type"] == type_)


def test_committed_dashboards_are_current():
    for name, text in build.render(load_config()).items():
        committed = build.GENERATED_DIR / name
        assert committed.exists(), f"{committed} missing: run `groundtruth dashboards build`"
        assert committed.read_text() == text, (
            f"{committed} is stale: run `groundtruth dashboards build`"
        )


def test_generated_dashboards_are_lint_clean(generated):
    assert [str(p) for p in lint.lint(generated)] == []


def test_every_dashboard_is_tagged_uneditable_and_linked(generated):
    uids = {d["uid"] for d in generated.values()}
    assert len(uids) == len(generated) == 4
    for dash in generated.values():
        assert dash["tags"] == ["groundtruth"]
        assert dash["editable"] is False
        assert dash["links"][0]["tags"] == ["groundtruth"]
        assert dash["links"][0]["keepTime"] and dash["links"][0]["includeVars"]


MUTATIONS = [
    ("panel-title-description-rule", lambda p: p.update(description="")),
    ("panel-units-rule", lambda p: p["fieldConfig"]["defaults"].update(unit="")),
    ("panel-units-rule", lambda p: p["fieldConfig"]["defaults"].update(unit="percnt")),
    ("legacy-key-rule", lambda p: p.update(editable=True)),  # only a dashboard is (un)editable
    ("panel-no-targets-rule", lambda p: p.update(targets=[])),
    ("panel-no-targets-rule", lambda p: p["targets"][0].update(expr="  ")),
    ("panel-datasource-rule", lambda p: p.update(datasource={"type": "prometheus", "uid": "x"})),
    (
        "target-rate-interval-rule",
        lambda p: p["targets"][0].update(
            expr=p["targets"][0]["expr"].replace("$__rate_interval", "5m")
        ),
    ),
    (
        "target-job-rule",
        lambda p: p["targets"][0].update(expr=p["targets"][0]["expr"].replace('job=~"$job",', "")),
    ),
    (
        "target-instance-rule",
        lambda p: p["targets"][0].update(
            expr=p["targets"][0]["expr"].replace(',instance=~"$instance"', "")
        ),
    ),
    (
        "target-counter-agg-rule",
        lambda p: p["targets"][0].update(
            expr='sum(groundtruth_tcp_retransmits_total{job=~"$job",instance=~"$instance"})'
        ),
    ),
]


def link_of(p):
    return p["fieldConfig"]["defaults"]["links"][0]


# What Grafana does with a dashboard (dashboards/grafana_rules.py): several rules per mutation.
GRAFANA_MUTATIONS = [
    (["legacy-key-rule", "prometheus-resolution-rule"], lambda p: p.update(maxDataPoints=100)),
    (
        ["legacy-key-rule", "prometheus-resolution-rule"],
        lambda p: p["targets"][0].update(intervalFactor=2),
    ),
    (["null-value-rule"], lambda p: p["fieldConfig"]["defaults"].update(color=None)),
    (["null-value-rule"], lambda p: p.update(interval=None)),
    (
        ["data-link-encoding-rule"],
        lambda p: link_of(p).update(url=link_of(p)["url"].replace(":percentencode", "")),
    ),
    (["data-link-target-rule"], lambda p: link_of(p).update(targetBlank=True)),
]


@pytest.mark.parametrize(
    "rules, mutate",
    [([r], m) for r, m in MUTATIONS] + GRAFANA_MUTATIONS,
    ids=[f"{r}-{i}" for i, (r, _) in enumerate(MUTATIONS)]
    + [f"{'+'.join(r)}-{i}" for i, (r, _) in enumerate(GRAFANA_MUTATIONS)],
)
def test_lint_catches_each_rule_on_a_real_dashboard(generated, rules, mutate):
    dash = copy.deepcopy(generated["host.json"])
    mutate(panel(dash, "TCP retransmits"))
    problems = lint.lint_dashboard(dash)
    assert sorted({p.rule for p in problems}) == rules, [str(p) for p in problems]
    assert {p.panel for p in problems} <= {"TCP retransmits", ""}


def node_graph(dash):
    return panel(dash, "Causal graph", "nodeGraph")


INVESTIGATION_MUTATIONS = [
    ("schema-version-rule", lambda d: d.update(schemaVersion=39)),
    ("legacy-key-rule", lambda d: d.update(rows=[])),
    ("null-value-rule", lambda d: d["timepicker"].update(hidden=None)),
    (
        "legacy-key-rule",
        lambda d: panel(d, "Connections", "table")["fieldConfig"]["defaults"]["custom"].update(
            displayMode="auto"
        ),
    ),
    (
        "plugin-version-rule",
        lambda d: panel(d, "Connections", "table")["targets"][0].pop("pluginVersion"),
    ),
    (
        "node-graph-link-rule",
        lambda d: node_graph(d)["fieldConfig"]["defaults"].update(
            links=node_graph(d)["fieldConfig"]["overrides"][0]["properties"][0]["value"]
        ),
    ),
    (
        "node-graph-limit-rule",
        lambda d: next(v for v in d["templating"]["list"] if v["name"] == "limit").update(
            query="200,500,1000"
        ),
    ),
    (
        "node-graph-window-rule",
        lambda d: node_graph(d)["targets"][1]["url_options"]["params"].pop(1),
    ),
    ("node-graph-detail-rule", lambda d: node_graph(d)["transformations"].pop(0)),
    ("node-graph-detail-rule", lambda d: node_graph(d)["transformations"].pop(2)),
]


@pytest.mark.parametrize(
    "rule, mutate",
    INVESTIGATION_MUTATIONS,
    ids=[f"{r}-{i}" for i, (r, _) in enumerate(INVESTIGATION_MUTATIONS)],
)
def test_lint_catches_what_grafana_would_do_on_the_investigation_dashboard(generated, rule, mutate):
    dash = copy.deepcopy(generated["investigation.json"])
    mutate(dash)
    assert {p.rule for p in lint.lint_dashboard(dash)} == {rule}


@pytest.mark.parametrize(
    "rule, mutate",
    [
        ("uneditable-dashboard-rule", lambda d: d.update(editable=True)),
        ("template-job-rule", lambda d: d["templating"]["list"].pop(1)),
        ("template-instance-rule", lambda d: d["templating"]["list"].pop(2)),
        ("template-datasource-rule", lambda d: d["templating"]["list"].pop(0)),
        (
            "template-on-time-change-reload-rule",
            lambda d: d["templating"]["list"][1].update(refresh=1),
        ),
        (
            "template-label-promql-rule",
            lambda d: d["templating"]["list"][1].update(query="label_values(up{job=~)"),
        ),
    ],
)
def test_lint_catches_dashboard_level_rules(generated, rule, mutate):
    dash = copy.deepcopy(generated["host.json"])
    mutate(dash)
    assert rule in {p.rule for p in lint.lint_dashboard(dash)}


def test_lint_reads_prometheus_annotations(generated):
    dash = copy.deepcopy(generated["investigation.json"])
    (ann,) = dash["annotations"]["list"]
    ann["target"]["expr"] = ann["target"]["expr"].replace('job=~"$job",', "")
    problems = lint.lint_dashboard(dash)
    assert [(p.panel, p.rule) for p in problems] == [
        ("annotation groundtruth alerts", "target-job-rule")
    ]


def test_one_threshold_changes_the_alert_and_the_dashboard(tmp_path):
    override = tmp_path / "o.yml"
    override.write_text("thresholds:\n  retransmits_per_second: 75\n")
    cfg = load_config(override)
    dash = json.loads(build.render(cfg)["host.json"])
    steps = panel(dash, "TCP retransmits")["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1] == {"color": "red", "value": 75}
    (rule,) = [a for a in alerts(cfg) if a.name == "RetransmitSurge"]
    assert rule.expr.endswith("> 75")


def test_diff_of_identical_dashboards_says_so(generated):
    assert diff.diff(generated, copy.deepcopy(generated)) == "No changes."


def test_diff_summarises_threshold_unit_query_move_add_remove(generated, tmp_path):
    override = tmp_path / "o.yml"
    override.write_text("thresholds:\n  exec_storm_per_second: 300\n")
    new = {name: json.loads(text) for name, text in build.render(load_config(override)).items()}
    host = new["host.json"]
    panel(host, "TCP traffic")["fieldConfig"]["defaults"]["unit"] = "bps"
    panel(host, "Open connections")["gridPos"].update(x=0, y=60)
    target = panel(host, "Exits by outcome")["targets"][0]
    target["expr"] = target["expr"].replace("sum by", "max by")
    host["panels"] = [p for p in host["panels"] if p["title"] != "Memory by container"]
    new_panel = copy.deepcopy(panel(host, "TCP retransmits"))
    new_panel["title"] = "TCP resets"
    host["panels"].append(new_panel)
    del new["investigation.json"]

    text = diff.diff(generated, new)
    print(text)
    assert "## investigation.json: dashboard removed" in text
    assert (
        "~ panel Execs per second [stat]:\n"
        "    thresholds green@None, red@200 -> green@None, red@300" in text
    )
    assert "~ panel TCP traffic [timeseries]:\n    unit Bps -> bps" in text
    assert "~ panel Open connections [timeseries]:\n    moved (8,28) 8x8 -> (0,60) 8x8" in text
    assert "    query A changed:\n        - sum by (instance, outcome)" in text
    assert "        + max by (instance, outcome)" in text
    assert "- panel Memory by container [timeseries] (was at (12,36) 12x8)" in text
    assert "+ panel TCP resets [timeseries] at (12,20) 12x8" in text
    # Dashboards that did not change are not mentioned.
    assert "containers.json" not in text and "exporter-health.json" not in text


def test_node_graph_panel_reads_graphapi_through_infinity(generated):
    dash = generated["investigation.json"]
    graph = panel(dash, "Causal graph", "nodeGraph")
    formats = {t["refId"]: t["format"] for t in graph["targets"]}
    assert formats == {"nodes": "node-graph-nodes", "edges": "node-graph-edges"}
    for t in graph["targets"]:
        assert t["datasource"] == {"type": "yesoreyeram-infinity-datasource", "uid": "${graphapi}"}
        assert t["url"] == GRAPH_PATH == "/api/graph"
        assert t["root_selector"] == t["refId"]
        params = {p["key"]: p["value"] for p in t["url_options"]["params"]}
        assert params == {
            "from": "${__from}",
            "to": "${__to}",
            "host": "${instance}",
            "container": "${container}",
            "focus": "${focus}",
            "limit": "${limit}",
        }
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["container"]["allValue"] == "__all__"
    # A clicked node re-focuses the graph on itself: one link, on the node's focus field only.
    assert graph["fieldConfig"]["defaults"]["links"] == []
    (override,) = graph["fieldConfig"]["overrides"]
    assert override["matcher"] == {"id": "byName", "options": "Focus"}
    (link,) = override["properties"][0]["value"]
    assert link["url"] == (
        f"/d/{dash['uid']}/{INVESTIGATION_SLUG}?var-instance=${{instance:percentencode}}"
        "&var-focus=${__value.raw:percentencode}&${__url_time_range}"
    )
    assert link["targetBlank"] is False


def test_alert_links_and_data_links_land_on_the_investigation_variables(generated):
    inv = generated["investigation.json"]
    names = {v["name"] for v in inv["templating"]["list"]}
    cfg = load_config()
    from alerts.rules import dashboard_url

    for alert in alerts(cfg):
        url = dashboard_url(cfg, alert)
        assert f"/d/{inv['uid']}/" in url
        for var in [
            part.split("=")[0][4:]
            for part in url.split("?")[1].split("&")
            if part.startswith("var-")
        ]:
            assert var in names, (alert.name, var)
    link = panel(generated["host.json"], "TCP retransmits")["fieldConfig"]["defaults"]["links"][0]
    assert link["url"].startswith(f"/d/{inv['uid']}/")
    assert "var-instance=${__field.labels.instance:percentencode}" in link["url"]


def test_cli_build_lint_and_diff(tmp_path, capsys):
    from groundtruth.cli import main

    old, new = tmp_path / "old", tmp_path / "new"
    assert main(["dashboards", "build", "--out", str(old)]) == 0
    override = tmp_path / "o.yml"
    override.write_text("thresholds:\n  sink_lag_seconds: 600\n")
    assert main(["dashboards", "build", "--config", str(override), "--out", str(new)]) == 0
    assert main(["dashboards", "lint", str(old), str(new)]) == 0
    capsys.readouterr()
    assert main(["dashboards", "diff", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## exporter-health.json (groundtruth / Exporter health)\n")
    assert out.count("thresholds green@None, red@300 -> green@None, red@600") == 2

    broken = json.loads((old / "host.json").read_text())
    broken["panels"][0]["description"] = ""
    (new / "host.json").write_text(json.dumps(broken))
    assert main(["dashboards", "lint", str(new)]) == 1
    assert "[panel-title-description-rule]" in capsys.readouterr().out

    (new / "bad.json").write_text("{not json")
    assert main(["dashboards", "diff", str(old), str(new)]) == 2
    assert "cannot read dashboard" in capsys.readouterr().err


def test_cli_rejects_a_bad_config_with_its_reason(tmp_path, capsys):
    from groundtruth.cli import main

    override = tmp_path / "o.yml"
    override.write_text("thresholds:\n  nope: 1\n")
    assert main(["dashboards", "build", "--config", str(override), "--out", str(tmp_path)]) == 2
    assert main(["alerts", "build", "--config", str(override), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("unknown key 'thresholds.nope'") == 2
    assert list(tmp_path.iterdir()) == [override]


def test_diff_reports_variables_and_title(generated):
    new = copy.deepcopy(generated)
    dash = new["containers.json"]
    dash["title"] = "groundtruth / Containers v2"
    variables = dash["templating"]["list"]
    variables[:] = [v for v in variables if v["name"] != "container"]
    variables.append({"name": "pod", "type": "query", "query": "label_values(up, pod)"})
    variables[1]["query"] = "label_values(up, job)"
    text = diff.diff(generated, new)
    assert text.splitlines()[:5] == [
        "## containers.json (groundtruth / Containers v2)",
        "title 'groundtruth / Containers' -> 'groundtruth / Containers v2'",
        "variable $pod added",
        "variable $container removed",
        'variable $job query: label_values(groundtruth_exporter_build_info{job="groundtruth"}, job)'
        " -> label_values(up, job)",
    ]


def test_current_form_keeps_what_a_variable_of_its_type_reads():
    from dashboards.current_form import current_form

    auto = {"auto": True, "auto_count": 30, "auto_min": "10s"}
    dash = {
        "templating": {
            "list": [
                {"name": "step", "type": "interval", "query": "1m,5m", **auto, "tags": []},
                {"name": "job", "type": "query", "query": "label_values(job)", **auto},
            ]
        }
    }
    step, job = current_form(dash)["templating"]["list"]
    assert step == {"name": "step", "type": "interval", "query": "1m,5m", **auto}
    assert job == {"name": "job", "type": "query", "query": "label_values(job)"}
    assert "legacy-key-rule" not in {p.rule for p in lint.lint_dashboard(dash)}
