"""Grafana's Node Graph panel (grafanalib 0.7.1 has none) and the Infinity queries feeding it.

graphapi's contract, as these queries call it:
``GET /api/graph?from=<ms>&to=<ms>&host=<host>&container=<id or __all__>&focus=<focus>&limit=<n>``
answers ``{"nodes": [...], "edges": [...]}`` with the Node Graph field names (``id``, ``title``,
``subtitle``, ``mainstat``, ``detail__*``, ... / ``id``, ``source``, ``target``, ...). The URL is
relative: the Infinity data source is provisioned with graphapi as its base URL (and its token).

What Grafana's Node Graph panel does with those frames (Grafana's
``public/app/plugins/panel/nodeGraph/``), and what follows here:

- It draws at most 200 nodes and hides the rest behind "N nodes are hidden" (``NodeGraph.tsx``,
  ``defaultNodeCountLimit = 200``; ``NodeGraphPanel.tsx`` passes no other limit, and no option
  raises it). ``MAX_NODES_DRAWN``: the dashboard never asks graphapi for more, so graphapi's own
  "N more not shown" node (the last of the ``limit``) does the cutting and says what was cut.
- A node's menu lists the links of *every* field of the node's row (``useLinks`` in
  ``public/app/features/explore/utils/links.ts``), so the re-focus link sits on one field: the
  node frame's focus field, through a field override.
- That path interpolates a link's URL with no default encoding (its ``replace`` drops the
  ``UriEncode`` format ``link_srv.ts`` passes), so values go in with ``:percentencode``
  (``encodeURIComponentStrict``).
- The menu labels a detail field by ``config.displayName || field.name`` and prints a number
  with ``toFixed(config.decimals || 2)`` (``useContextMenu.tsx``, ``statToString`` in
  ``utils.ts``: 3 shows as ``3.00``, decimals 0 included); the panel disables the standard
  field options that would set them. So the panel's transformations do: ``convertFieldType``
  makes the counts strings (``3``), ``organize`` gives each frame's detail fields display names
  (Grafana's rename sets ``config.displayName`` and keeps the name the panel matches on).
"""

from __future__ import annotations

import attr
from grafanalib.core import Panel

from dashboards.common import INFINITY

NODE_GRAPH_TYPE = "nodeGraph"
GRAPH_PATH = "/api/graph"
MAX_NODES_DRAWN = 200  # Grafana's Node Graph: defaultNodeCountLimit in NodeGraph.tsx
NODE_LIMITS = (50, 100, MAX_NODES_DRAWN)  # the dashboard's "Max nodes" choices

# Display names of graphapi's detail fields in the node and edge menus (graphapi lists the same
# names for the Node Graph API plugin: a test keeps the two equal).
NODE_DETAIL_NAMES = {
    "detail__kind": "Kind",
    "detail__argv": "Command line",
    "detail__exe": "Executable",
    "detail__start": "Started",
    "detail__end": "Ended",
    "detail__exit": "Exit",
    "detail__container": "Container",
    "detail__count": "Processes",
    "detail__focus": "Focus",
    "detail__flags": "Flags",
}
EDGE_DETAIL_NAMES = {
    "detail__kind": "Kind",
    "detail__first": "First",
    "detail__last": "Last",
    "detail__count": "Count",
}
COUNT_FIELDS = ("detail__count",)  # whole numbers: shown as strings, not as 3.00
FOCUS_FIELD = "detail__focus"  # the node field whose value is a focus graphapi accepts


@attr.s
class NodeGraph(Panel):
    """Node Graph panel: one query must give the ``nodes`` frame, another the ``edges`` frame.

    ``nodeLinks`` are the data links of a clicked node, on its focus field only
    (``${__value.raw}`` is the node's focus).
    """

    nodeMainStatUnit = attr.ib(default="", validator=attr.validators.instance_of(str))
    nodeSecondaryStatUnit = attr.ib(default="", validator=attr.validators.instance_of(str))
    edgeMainStatUnit = attr.ib(default="", validator=attr.validators.instance_of(str))
    edgeSecondaryStatUnit = attr.ib(default="", validator=attr.validators.instance_of(str))
    nodeLinks = attr.ib(factory=list, validator=attr.validators.instance_of(list))

    def to_json_data(self):
        return self.panel_json(
            {
                "type": NODE_GRAPH_TYPE,
                "fieldConfig": {
                    "defaults": {"links": []},
                    "overrides": [focus_field_links(self.nodeLinks)] if self.nodeLinks else [],
                },
                "transformations": detail_field_transformations(),
                "options": {
                    "nodes": {
                        "mainStatUnit": self.nodeMainStatUnit,
                        "secondaryStatUnit": self.nodeSecondaryStatUnit,
                    },
                    "edges": {
                        "mainStatUnit": self.edgeMainStatUnit,
                        "secondaryStatUnit": self.edgeSecondaryStatUnit,
                    },
                },
            }
        )


def focus_field_links(links: list[dict]) -> dict:
    """A field override putting ``links`` on the node frame's focus field. Overrides match the
    display name, which the transformations below set."""
    return {
        "matcher": {"id": "byName", "options": NODE_DETAIL_NAMES[FOCUS_FIELD]},
        "properties": [{"id": "links", "value": links}],
    }


def detail_field_transformations() -> list[dict]:
    """Counts as strings first (matched by field name), then each frame's display names."""
    return [
        {
            "id": "convertFieldType",
            "options": {
                "conversions": [
                    {"targetField": f, "destinationType": "string"} for f in COUNT_FIELDS
                ],
                "fields": {},
            },
        },
        rename_in_frame("nodes", NODE_DETAIL_NAMES),
        rename_in_frame("edges", EDGE_DETAIL_NAMES),
    ]


def rename_in_frame(ref_id: str, names: dict[str, str]) -> dict:
    return {
        "id": "organize",
        "filter": {"id": "byRefId", "options": ref_id},
        "options": {"renameByName": dict(names), "excludeByName": {}, "indexByName": {}},
    }


def graph_params(host_var: str) -> list[dict]:
    """Query parameters of graphapi's /api/graph, from the dashboard's time and variables."""
    return [
        {"key": "from", "value": "${__from}"},
        {"key": "to", "value": "${__to}"},
        {"key": "host", "value": f"${{{host_var}}}"},
        {"key": "container", "value": "${container}"},
        {"key": "focus", "value": "${focus}"},
        {"key": "limit", "value": "${limit}"},
    ]


TRACES_PATH = "/api/traces"


def infinity_traces_target(host_var: str) -> dict:
    """An Infinity table of graphapi's traces of the window (on the selected host)."""
    params = [p for p in graph_params(host_var) if p["key"] in ("from", "to", "host")]
    return {
        "refId": "traces",
        "datasource": INFINITY,
        "type": "json",
        "source": "url",
        "parser": "backend",
        "format": "table",
        "url": TRACES_PATH,
        "url_options": {"method": "GET", "params": params},
        "root_selector": "",
        "columns": [],
    }


def infinity_graph_target(frame: str, host_var: str) -> dict:
    """An Infinity query reading the ``nodes`` or ``edges`` array of graphapi's answer."""
    return {
        "refId": frame,
        "datasource": INFINITY,
        "type": "json",
        "source": "url",
        "parser": "backend",
        "format": f"node-graph-{frame}",
        "url": GRAPH_PATH,
        "url_options": {"method": "GET", "params": graph_params(host_var)},
        "root_selector": frame,
        "columns": [],
    }
