"""Infinity and ClickHouse queries of the dashboards against those plugins' own query models.

grafana-foundation-sdk has no model for either plugin (tests/test_dashboards_sdk.py checks the
rest), so the fields below are the plugins' own, read at the tags docker-compose.yml installs:
grafana/grafana-infinity-datasource v3.11.1, ``pkg/models/query.go`` (``Query`` and
``URLOptions`` JSON tags and the values their comments list), and grafana/clickhouse-datasource
v4.20.0, ``src/types/sql.ts`` (``CHSqlQuery``) and ``src/types/queryBuilder.ts``
(``QueryType``). Every query also has Grafana's own ``DataQuery`` fields.
"""

from __future__ import annotations

import json

import pytest

from dashboards import build
from dashboards.common import PLUGIN_VERSIONS
from mixin.config import load_config

DATA_QUERY = {"refId", "datasource", "hide", "key", "queryType"}
INFINITY_QUERY = DATA_QUERY | {
    "type", "format", "source", "referenceName", "url", "url_options", "data", "parser",
    "filterExpression", "summarizeExpression", "summarizeBy", "summarizeAlias", "uql", "groq",
    "csv_options", "json_options", "root_selector", "columns", "computed_columns", "filters",
    "seriesCount", "expression", "alias", "dataOverrides", "global_query_id", "query_mode",
}  # fmt: skip
INFINITY_URL_OPTIONS = {
    "method", "params", "headers", "data", "body_type", "body_content_type", "body_form",
    "body_graphql_query", "body_graphql_variables",
}  # fmt: skip
INFINITY_VALUES = {
    "type": {"json", "json-backend", "csv", "tsv", "xml", "graphql", "html", "uql", "groq",
             "series", "global", "google-sheets"},
    "format": {"table", "timeseries", "logs", "dataframe", "as-is", "node-graph-nodes",
               "node-graph-edges"},
    "source": {"url", "inline", "azure-blob", "reference", "random-walk", "expression"},
    "parser": {"simple", "backend", "jq-backend", "uql", "groq"},
}  # fmt: skip
CLICKHOUSE_SQL_QUERY = DATA_QUERY | {
    "pluginVersion", "editorType", "rawSql", "format", "meta", "expand",
}  # fmt: skip
CLICKHOUSE_QUERY_TYPES = {"table", "logs", "timeseries", "traces"}


def queries(plugin: str) -> list[tuple[str, dict]]:
    out = []
    for name, text in build.render(load_config()).items():
        for panel in json.loads(text)["panels"]:
            for t in panel.get("targets", []):
                if (t.get("datasource") or panel.get("datasource") or {}).get("type") == plugin:
                    out.append((f"{name} / {panel['title']} / {t['refId']}", t))
    return out


INFINITY = queries("yesoreyeram-infinity-datasource")
CLICKHOUSE = queries("grafana-clickhouse-datasource")


@pytest.mark.parametrize("where, query", INFINITY, ids=[w for w, _ in INFINITY])
def test_infinity_queries_use_only_the_plugins_fields_and_values(where, query):
    assert set(query) <= INFINITY_QUERY, set(query) - INFINITY_QUERY
    assert set(query["url_options"]) <= INFINITY_URL_OPTIONS
    assert query["url_options"]["method"] in {"GET", "POST", "PATCH", "PUT", "DELETE"}
    assert all(set(p) == {"key", "value"} for p in query["url_options"]["params"])
    for field, allowed in INFINITY_VALUES.items():
        assert query[field] in allowed, (field, query[field])


@pytest.mark.parametrize("where, query", CLICKHOUSE, ids=[w for w, _ in CLICKHOUSE])
def test_clickhouse_queries_are_the_plugins_v4_sql_queries(where, query):
    assert set(query) <= CLICKHOUSE_SQL_QUERY, set(query) - CLICKHOUSE_SQL_QUERY
    assert query["editorType"] == "sql" and query["queryType"] in CLICKHOUSE_QUERY_TYPES
    assert isinstance(query["format"], int) and query["rawSql"].strip()
    assert query["pluginVersion"] == PLUGIN_VERSIONS["grafana-clickhouse-datasource"]


def test_both_plugins_are_queried():
    assert len(INFINITY) == 3 and len(CLICKHOUSE) >= 4  # graph nodes, graph edges, traces
