"""The postmortem's causal graph: the graph package builds it, graphviz draws it.

The graph is graphapi's own (``graph.causal.build_graph``: the same nodes and edges Grafana's
Node Graph panel shows, with the default limits), so the report and the dashboard never
disagree. This module only writes those nodes and edges as DOT, keeping graphapi's colours, and
runs ``dot -Tsvg``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

from graph.causal import build_graph
from graph.errors import GraphError
from graph.request import ALERT_FOCUS, TRACE_FOCUS, Focus, GraphLimits, GraphRequest, Scope
from graph.request import Window as GraphWindow
from incident.errors import IncidentError
from store.writer import short_error

DOT_TIMEOUT_SECONDS = 60
SHAPES = {
    "process": "box",
    "group": "box3d",
    "alert": "octagon",
    "host": "house",
    "container": "component",
    "endpoint": "ellipse",
    "peer": "ellipse",
    "service": "cds",
    "more": "note",
}


def causal_graph(
    store, hosts: list[str], start_ns: int, end_ns: int, alert: str, limit: int, trace: str = ""
):
    """graphapi's graph of the window: focused on the alert, or the trace, when one is given."""
    focus = Focus(TRACE_FOCUS, trace) if trace else Focus(ALERT_FOCUS, alert) if alert else None
    try:
        req = GraphRequest(
            window=GraphWindow(start_ns, end_ns),
            scope=Scope(hosts=tuple(hosts)),
            focus=focus,
            limit=limit,
        )
        return build_graph(store, req, GraphLimits())
    except GraphError as e:  # what the graph could not find or draw, in words
        raise IncidentError(f"causal graph: {e}", exit_code=1) from None
    except Exception as e:  # noqa: BLE001 - the report goes on without its picture
        raise IncidentError(f"causal graph: {short_error(e)}", exit_code=1) from None


def _quote(text) -> str:
    """A DOT double-quoted string (escapes backslash and quote; newlines become \\n)."""
    text = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\r", "").replace("\n", "\\n") + '"'


def _text(text) -> str:
    """Text shown as is: graphviz reads entities (``&amp;``, ``&#65;``) in labels and tooltips,
    so an ``&`` of an argv is written as ``&amp;`` for it to come out as ``&``."""
    return str(text).replace("&", "&amp;")


def _cut(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def to_dot(
    graph: dict,
    title: str,
    link: Callable[[int, dict], str] | None = None,
    rankdir: str = "LR",
) -> str:
    """DOT of graphapi's nodes and edges, drawn in ``rankdir`` (LR or TB). With ``link``, node i
    of ``graph["nodes"]`` is a link to ``link(i, node)`` and its SVG group has the id ``n<i>``
    (the investigation page)."""
    lines = [
        "digraph causal {",
        f"  label={_quote(_text(title))}; labelloc=t; rankdir={rankdir}; fontname=Helvetica;",
        '  node [style="filled,rounded" fontname=Helvetica fontsize=10 fontcolor=black];',
        "  edge [fontname=Helvetica fontsize=8];",
    ]
    for i, n in enumerate(graph["nodes"]):
        label = [n["title"], n.get("subtitle", "")]
        if n.get("detail__kind") == "process":
            label += [_cut(n.get("detail__argv", "")), n.get("detail__exit", "")]
        attrs = {
            "label": _text("\n".join(part for part in label if part)),
            "shape": SHAPES.get(n.get("detail__kind"), "box"),
            "fillcolor": n.get("color") or "#cccccc",
            "tooltip": _text(n.get("detail__argv") or n["id"]),
        }
        if n.get("highlighted"):
            attrs["penwidth"] = "3"
        if link is not None:
            attrs.update(URL=link(i, n), id=f"n{i}")
        lines.append(f"  {_quote(n['id'])} [{_attrs(attrs)}];")
    for e in graph["edges"]:
        attrs = {"label": _text(e.get("mainstat", "")), "color": e.get("color") or "#888888"}
        if e.get("strokeDasharray"):
            attrs["style"] = "dashed"
        lines.append(f"  {_quote(e['source'])} -> {_quote(e['target'])} [{_attrs(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _attrs(attrs: dict) -> str:
    return " ".join(f"{k}={_quote(v)}" for k, v in attrs.items())


def render_svg(dot_text: str) -> bytes:
    """SVG from graphviz; an IncidentError when it is missing or fails."""
    dot = shutil.which("dot")
    if dot is None:
        raise IncidentError("graphviz is not installed (`dot` not found): no SVG drawn")
    try:
        done = subprocess.run(
            [dot, "-Tsvg"],
            input=dot_text.encode(),
            capture_output=True,
            timeout=DOT_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise IncidentError(f"graphviz took over {DOT_TIMEOUT_SECONDS}s: no SVG drawn") from None
    if done.returncode != 0:
        raise IncidentError("graphviz failed: " + done.stderr.decode(errors="replace")[:300])
    return done.stdout
