"""The independent check: every generated dashboard against Grafana's own typed models.

grafana-foundation-sdk (PyPI) is Grafana's maintained schema of dashboards, panels and the core
plugins' options and queries. Our dashboards are built with grafanalib; here they must load into
the SDK's models with no unknown field, no value of the wrong type and no ``null`` where the
model wants a value (``tests/grafana_sdk.py``). Infinity and ClickHouse queries have no SDK
model: tests/test_compose.py and tests/test_dashboards.py check them against those plugins'
query fields.
"""

from __future__ import annotations

import copy
import json

import pytest
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import build
from mixin.config import load_config
from tests.grafana_sdk import problems


@pytest.fixture(scope="module")
def generated() -> dict[str, dict]:
    return {name: json.loads(text) for name, text in build.render(load_config()).items()}


@pytest.mark.parametrize("name", sorted(build.render(load_config())))
def test_every_dashboard_matches_grafanas_typed_models(generated, name):
    dash = generated[name]
    assert problems(dash) == []
    model = Dashboard.from_json(dash)
    assert (model.uid, model.schema_version, len(model.panels)) == (
        dash["uid"],
        42,
        len(dash["panels"]),
    )


def first(dash: dict, panel_type: str) -> dict:
    return next(p for p in dash["panels"] if p["type"] == panel_type)


# Each mutation of a real dashboard, and the problem the check must name.
MUTATIONS = [
    (lambda d: d.update(rows=[]), "dashboard.rows: unknown field of Dashboard"),
    (lambda d: d.update(refresh=30), "dashboard.refresh: 30 is not str"),
    (lambda d: d.update(graphTooltip=7), "dashboard.graphTooltip: 7 not in"),
    (lambda d: first(d, "stat").update(span=4), ".span: unknown field of Panel"),
    (
        lambda d: first(d, "stat")["fieldConfig"]["defaults"].update(color=None),
        ".fieldConfig.defaults.color: null where FieldConfig wants a value",
    ),
    (
        lambda d: first(d, "timeseries")["fieldConfig"]["defaults"]["custom"].update(lineWidth="1"),
        ".fieldConfig.defaults.custom.lineWidth: '1' is not float",
    ),
    (
        lambda d: first(d, "timeseries")["options"].update(legend={"showLegend": "yes"}),
        ".options.legend.showLegend: 'yes' is not bool",
    ),
    (
        lambda d: first(d, "timeseries")["targets"][0].update(step=10),
        ".targets[0].step: unknown field of Dataquery",
    ),
    (
        lambda d: d["templating"]["list"][0].update(datasource=None),
        "dashboard.templating.list[0].datasource: null where VariableModel wants a value",
    ),
]


@pytest.mark.parametrize("mutate, expected", MUTATIONS, ids=[e for _, e in MUTATIONS])
def test_the_check_names_unknown_fields_wrong_types_and_nulls(generated, mutate, expected):
    dash = copy.deepcopy(generated["host.json"])
    mutate(dash)
    found = problems(dash)
    assert len(found) == 1 and expected in found[0], found


def test_a_threshold_base_step_is_the_one_null_allowed(generated):
    dash = generated["host.json"]
    steps = first(dash, "stat")["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[0]["value"] is None and problems(dash) == []
