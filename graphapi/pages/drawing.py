"""The graph page's picture: graphapi's nodes and edges drawn by graphviz (the postmortem's
drawing, ``incident.graph_svg``, with the same shapes and colours), each node a link to its
details on the page, and those details as a page shows them.
"""

from __future__ import annotations

import re

from markupsafe import Markup

from graph.nodegraph_fields import MORE, NODE_FIELDS
from incident.errors import IncidentError
from incident.graph_svg import render_svg, to_dot

# The details a node shows, in the Node Graph panel's own names (its "Kind", "Command line", ...).
DETAILS = [(name, label) for name, _type, label in NODE_FIELDS if name.startswith("detail__")]
# Drawn as the node's title and subtitle already, or only for the graph's own use.
HIDDEN = {"detail__kind", "detail__focus"}
_SVG_START = re.compile(rb"<svg\b")
# A node's main and secondary stats are counts with their unit ("3 children", "2 connections"):
# shown as "Children: 3", named by what they count rather than by the Node Graph's field names.
_COUNT = re.compile(r"(\d+) ([a-z][a-z ]*)")


def node_anchor(i: int) -> str:
    return f"node-{i}"


def svg_of(graph: dict, title: str) -> tuple[Markup | None, str]:
    """(inline SVG, '') or (None, why it could not be drawn).

    Graphviz writes every label and tooltip escaped for XML (``to_dot`` has it keep an ``&``
    as one); the prolog and doctype go, the ``<svg>`` element is put in the page as it is.
    """
    try:
        # Top to bottom: an ancestry chain reads down the page (scrolled), not off its side.
        svg = render_svg(
            to_dot(graph, title, link=lambda i, _n: f"#{node_anchor(i)}", rankdir="TB")
        )
    except IncidentError as e:
        return None, str(e)
    start = _SVG_START.search(svg)
    if start is None:
        return None, "graphviz wrote no SVG"
    # Markup: not escaped again; graphviz escaped every text in it.
    return Markup(svg[start.start() :].decode("utf-8", "replace")), ""


def edge_lines(graph: dict) -> dict[str, list[dict]]:
    """Node id -> its edges as its details list them: the kind, which way (→ out of this node,
    ← into it), the node at the other end (and its anchor), and the edge's stats (connections,
    bytes sent and received)."""
    anchors = {n["id"]: (node_anchor(i), n["title"]) for i, n in enumerate(graph["nodes"])}
    out: dict[str, list[dict]] = {}
    for e in graph["edges"]:
        # mainstat is the kind itself on most edges: said once.
        stats = [s for s in (e["mainstat"], e["secondarystat"]) if s and s != e["detail__kind"]]
        ends = ((e["source"], e["target"], "→"), (e["target"], e["source"], "←"))
        for end, other, direction in ends:
            anchor, title = anchors.get(other, ("", other))
            out.setdefault(end, []).append(
                {"kind": e["detail__kind"], "direction": direction, "anchor": anchor,
                 "title": title, "stats": ", ".join(stats)}
            )  # fmt: skip
    return out


def stat_fields(n: dict) -> list[tuple[str, str]]:
    """A node's main and secondary stats as (what they count, how many); a stat that is not a
    count keeps the Node Graph's name for it."""
    out = []
    for name, _type, label in NODE_FIELDS:
        if name in ("mainstat", "secondarystat") and n.get(name):
            count = _COUNT.fullmatch(n[name])
            out.append((count[2].capitalize(), count[1]) if count else (label, n[name]))
    return out


def node_views(graph: dict) -> list[dict]:
    """Each node with what its details panel shows: its fields (empty ones left out), its
    edges, and whether it can be a focus (every node but "N more not shown")."""
    edges = edge_lines(graph)
    out = []
    for i, n in enumerate(graph["nodes"]):
        fields = [
            (label, n[name])
            for name, label in DETAILS
            if name not in HIDDEN and n.get(name) not in ("", None, 0)
        ]
        # First the stats; a group's "5 processes" is its Processes detail already.
        fields = [s for s in stat_fields(n) if s[0] not in {lbl for lbl, _ in fields}] + fields
        kind = n.get("detail__kind", "")
        if kind == "process":  # one process: a count of 1 says nothing
            fields = [(label, value) for label, value in fields if label != "Processes"]
        if kind == "alert":  # an alert carries its annotations where a process has its argv
            fields = [("Annotations" if lbl == "Command line" else lbl, v) for lbl, v in fields]
        out.append(
            {
                "anchor": node_anchor(i),
                "node": n,
                "kind": kind,
                "fields": fields,
                "edges": edges.get(n["id"], []),
                "focusable": not n["id"].startswith(MORE),
                # A process's earlier program (key#n) belongs to the process key.
                "process_key": n["id"].split("#", 1)[0] if kind == "process" else "",
            }
        )
    return out
