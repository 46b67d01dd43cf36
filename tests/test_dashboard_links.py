"""The dashboards' data links as Grafana renders and follows them.

``grafana_link_url`` reproduces what Grafana's code does with a data link's URL (read in
Grafana's repository): ``${name}``, ``${name.path}`` and ``${name:format}`` are replaced from
the clicked value's scoped variables (``__value.raw``, ``__data.fields.<name>``,
``__field.labels.<label>``), the built-ins (``__url_time_range``: ``from=<ms>&to=<ms>``) and the
dashboard's variables. The Node Graph's menu (``useLinks`` in
``public/app/features/explore/utils/links.ts``) interpolates with no format at all, so a value
goes in as it is unless the URL says ``:percentencode``, which is ``encodeURIComponent`` plus
``!'()*`` (``encodeURIComponentStrict``, Grafana's ``formatRegistry``). The browser then reads
the query string the ``URLSearchParams`` way: ``#`` ends it, ``+`` is a space, ``%XX`` is UTF-8.
"""

from __future__ import annotations

import json
import re
import urllib.parse

import pytest

from dashboards import build
from dashboards.nodegraph import EDGE_DETAIL_NAMES, NODE_DETAIL_NAMES
from graph.nodegraph_fields import EDGE_FIELDS, NODE_FIELDS
from mixin.config import load_config

FROM_MS, TO_MS = 1_764_900_000_000, 1_764_903_600_000
# Grafana's variable syntaxes: $name, [[name:format]], ${name.path:format}.
VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:}]+))?(?::([^}]+))?\}")
FORMATS = {
    None: str,  # the Node Graph's path passes no format: the value as it is
    "percentencode": lambda v: urllib.parse.quote(str(v), safe=""),  # encodeURIComponentStrict
}
# Node ids graphapi makes that URLs mangle: a process's earlier program (#), programs with
# '+', spaces and non-ASCII names in group ids, an IPv6 endpoint, a unicode host.
HARD_IDS = [
    "host-a:140:1400#1",
    "group=host-a:100:1000|g++",
    "group=host-a:100:1000|Web Content",
    "group=host-a:100:1000|café ☕",
    "endpoint=[2001:db8::1]:443",
    "host=名前.example",
    "alert=a1b2&c3=d4?e5",
]


def grafana_link_url(url: str, scoped: dict, variables: dict) -> str:
    """``url`` as Grafana interpolates a data link on the Node Graph's (and a table's) menu."""

    def value(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        path, fmt = m.group(5), m.group(3) or m.group(6)
        if name == "__url_time_range":
            return f"from={FROM_MS}&to={TO_MS}"
        if name in scoped:
            v = scoped[name]
            for part in (path or "").split(".") if path else []:
                v = v[part]
        else:
            v = variables[name]
        return FORMATS[fmt](v)

    return VARIABLE.sub(value, url)


def followed(url: str) -> dict[str, str]:
    """The dashboard variables the browser hands Grafana when it follows ``url``."""
    query = urllib.parse.urlsplit(url).query
    return {k: v[0] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    return {name: json.loads(text) for name, text in build.render(load_config()).items()}


def node_graph(dashboards) -> dict:
    inv = dashboards["investigation.json"]
    return next(p for p in inv["panels"] if p["type"] == "nodeGraph")


def refocus_url(dashboards) -> str:
    (override,) = node_graph(dashboards)["fieldConfig"]["overrides"]
    (link,) = override["properties"][0]["value"]
    return link["url"]


@pytest.mark.parametrize("node_id", HARD_IDS)
def test_the_refocus_link_hands_the_node_id_over_intact(dashboards, node_id):
    url = grafana_link_url(
        refocus_url(dashboards), {"__value": {"raw": node_id}}, {"instance": "host a+b"}
    )
    params = followed(url)
    assert params["var-focus"] == node_id
    assert params["var-instance"] == "host a+b"
    assert (params["from"], params["to"]) == (str(FROM_MS), str(TO_MS))
    assert urllib.parse.urlsplit(url).fragment == ""


def test_unencoded_the_same_link_would_lose_the_id(dashboards):
    """What the link did before: ``#`` cut the URL, ``+`` came back as a space."""
    legacy = refocus_url(dashboards).replace(":percentencode", "")
    for node_id, arrives in [("host-a:140:1400#1", "host-a:140:1400"), ("g++", "g  ")]:
        url = grafana_link_url(legacy, {"__value": {"raw": node_id}}, {"instance": "h"})
        assert followed(url).get("var-focus") == arrives


@pytest.mark.parametrize("key", ["host-a:101:1010", "名前:7:70"])
def test_the_tables_focus_link_hands_the_process_key_over(dashboards, key):
    inv = dashboards["investigation.json"]
    table = next(p for p in inv["panels"] if p["title"] == "Programs started")
    (link,) = table["fieldConfig"]["overrides"][0]["properties"][0]["value"]
    url = grafana_link_url(link["url"], {"__value": {"raw": key}}, {"instance": "名前"})
    assert followed(url)["var-focus"] == key and followed(url)["var-instance"] == "名前"
    assert link["targetBlank"] is False


def test_the_series_link_hands_the_host_label_over(dashboards):
    ts = next(p for p in dashboards["host.json"]["panels"] if p["title"] == "TCP retransmits")
    (link,) = ts["fieldConfig"]["defaults"]["links"]
    scoped = {"__field": {"labels": {"instance": "db#1 eu+west"}}, "__value": {"time": 1234}}
    params = followed(grafana_link_url(link["url"], scoped, {}))
    assert params["var-instance"] == "db#1 eu+west" and params["time"] == "1234"


def menu_links(panel: dict, frame: str, fields) -> list[dict]:
    """The links a node's (or an edge's) menu lists: every field's links (``useLinks``), where a
    field's links are the defaults, or an override's when its byName matcher names the field's
    display name (set by the panel's organize transformation for that frame)."""
    renames = {}
    for t in panel["transformations"]:
        if t["id"] == "organize" and t.get("filter", {}).get("options") == frame:
            renames.update(t["options"]["renameByName"])
    links = []
    for name, _type, _display in fields:
        shown = renames.get(name, name)
        field_links = panel["fieldConfig"]["defaults"].get("links", [])
        for o in panel["fieldConfig"]["overrides"]:
            if o["matcher"] == {"id": "byName", "options": shown}:
                for prop in o["properties"]:
                    if prop["id"] == "links":
                        field_links = prop["value"]
        links += field_links
    return links


def test_a_nodes_menu_offers_the_link_once_and_an_edges_not_at_all(dashboards):
    panel = node_graph(dashboards)
    assert len(menu_links(panel, "nodes", NODE_FIELDS)) == 1
    assert menu_links(panel, "edges", EDGE_FIELDS) == []


def test_detail_fields_are_named_as_graphapi_names_them():
    """graphapi lists display names for the Node Graph API plugin; the panel uses the same."""
    for fields, names in ((NODE_FIELDS, NODE_DETAIL_NAMES), (EDGE_FIELDS, EDGE_DETAIL_NAMES)):
        details = {name: display for name, _t, display in fields if name.startswith("detail__")}
        assert names == details
