"""Grafana's Node Graph panel (grafanalib 0.7.1 has none) and the Infinity queries feeding it.

graphapi's contract, as these queries call it:
``GET /api/graph?from=<ms>&to=<ms>&host=<host>&container=<id or __all__>&focus=<focus>&limit=<n>``
answers ``{"nodes": [...], "edges": [...]}`` with the Node Graph field names (``id``, ``title``,
``subtitle``, ``mainstat``, ``detail__*``, ... / ``id``, ``source``, ``target``, ...). The URL is
relative: the Infinity data source is provisioned with graphapi as its base URL (and its token).
"""

from __future__ import annotations

import attr
from grafanalib.core import Panel

from dashboards.common import INFINITY

NODE_GRAPH_TYPE = "nodeGraph"
GRAPH_PATH = "/api/graph"


@attr.s
class NodeGraph(Panel):
    """Node Graph panel: one query must give the ``nodes`` frame, another the ``edges`` frame."""

    nodeMainStatUnit = attr.ib(default="", validator=attr.validators.instance_of(str))
    nodeSecondaryStatUnit = attr.ib(default="", validator=attr.validators.instance_of(str))
    edgeMainStatUnit = attr.ib(default="", validator=attr.validators.instance_of(str))
    edgeSecondaryStatUnit = attr.ib(default="", validator=attr.validators.instance_of(str))
    # Data links shown when a node is clicked; ${__data.fields.id} is the node's id.
    nodeLinks = attr.ib(factory=list, validator=attr.validators.instance_of(list))

    def to_json_data(self):
        return self.panel_json(
            {
                "type": NODE_GRAPH_TYPE,
                "fieldConfig": {"defaults": {"links": self.nodeLinks}, "overrides": []},
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
