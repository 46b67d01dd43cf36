"""The Node Graph panel's fields, and graphapi's nodes and edges written in them.

Every node and every edge carries every field (an empty string when it does not apply), so the
Infinity data source and the Node Graph API plugin build frames with a stable schema.
``NODE_FIELDS`` / ``EDGE_FIELDS`` are that schema; the plugin reads them at /api/graph/fields.

Node ids are focus strings: a process node's id is its process key, the others carry a prefix
with ``=`` (never in a host name), so clicking any node can re-focus the graph on it.
"""

from __future__ import annotations

import time

# (field name, type for the Node Graph API plugin, display name)
NODE_FIELDS = [
    ("id", "string", "Id"),
    ("title", "string", "Title"),
    ("subtitle", "string", "Subtitle"),
    ("mainstat", "string", "Main stat"),
    ("secondarystat", "string", "Secondary stat"),
    ("color", "string", "Color"),
    ("icon", "string", "Icon"),
    ("highlighted", "boolean", "Highlighted"),
    ("detail__kind", "string", "Kind"),
    ("detail__argv", "string", "Command line"),
    ("detail__exe", "string", "Executable"),
    ("detail__start", "string", "Started"),
    ("detail__end", "string", "Ended"),
    ("detail__exit", "string", "Exit"),
    ("detail__container", "string", "Container"),
    ("detail__count", "number", "Processes"),
    ("detail__focus", "string", "Focus"),
    ("detail__flags", "string", "Flags"),
]
EDGE_FIELDS = [
    ("id", "string", "Id"),
    ("source", "string", "Source"),
    ("target", "string", "Target"),
    ("mainstat", "string", "Main stat"),
    ("secondarystat", "string", "Secondary stat"),
    ("color", "string", "Color"),
    ("strokeDasharray", "string", "Dash"),
    ("thickness", "number", "Thickness"),
    ("detail__kind", "string", "Kind"),
    ("detail__first", "string", "First"),
    ("detail__last", "string", "Last"),
    ("detail__count", "number", "Count"),
]

# Node kinds and id prefixes (a process node's id is its bare process key). ``trace=`` is a
# focus only: a trace is drawn as its processes, the flagged ones highlighted.
HOST, CONTAINER, ENDPOINT, PEER, SERVICE, ALERT, GROUP, MORE, TRACE = (
    "host=", "container=", "endpoint=", "peer=", "listen=", "alert=", "group=", "more=", "trace=",
)  # fmt: skip

COLORS = {
    "running": "#5794F2",  # blue: alive at the end of the window
    "ok": "#73BF69",  # green: exited 0
    "error": "#FF9830",  # orange: non-zero exit, failed exec
    "signal": "#F2495C",  # red: killed by a signal
    "oom": "#B877D9",  # purple: OOM-killed
    "alert": "#E02F44",  # dark red: an alert, or what it fired on
    "context": "#8e8e8e",  # grey: hosts, containers, endpoints, services
}
EDGE_STYLE = {
    "spawned": ("#8e8e8e", ""),
    "exec": ("#8e8e8e", "2 2"),
    "connected": ("#5794F2", ""),
    "accepted": ("#73BF69", ""),
    "listens": ("#8e8e8e", "4 4"),
    "runs": ("#cccccc", "2 4"),
    "fired": ("#E02F44", "4 2"),
}


def iso(ns: int) -> str:
    """ns since the epoch -> RFC 3339 UTC with milliseconds; '' for 0."""
    if not ns:
        return ""
    ms = ns // 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def node(id: str, title: str, kind: str, **fields) -> dict:
    """A node with every field set: the given ones, empty defaults for the rest."""
    out = {name: _empty(t) for name, t, _ in NODE_FIELDS}
    out.update(id=id, title=title, detail__kind=kind, detail__focus=id, color=COLORS["context"])
    out.update(fields)
    return out


def edge(source: str, target: str, kind: str, **fields) -> dict:
    color, dash = EDGE_STYLE[kind]
    out = {name: _empty(t) for name, t, _ in EDGE_FIELDS}
    out.update(
        id=f"{kind}:{source}->{target}",
        source=source,
        target=target,
        mainstat=kind,
        color=color,
        strokeDasharray=dash,
        thickness=1,
        detail__kind=kind,
        detail__count=1,
    )
    out.update(fields)
    return out


def _empty(field_type: str):
    return {"string": "", "number": 0, "boolean": False}[field_type]


def process_state(p: dict) -> str:
    """running, ok, error, signal or oom: what colours a process node."""
    if p.get("oom_killed"):
        return "oom"
    if p.get("exec_failed"):
        return "error"
    if not p.get("end_ns"):
        return "running"
    if p.get("signal"):
        return "signal"
    return "ok" if p.get("exit_code") == 0 else "error"


def exit_text(p: dict) -> str:
    if p.get("oom_killed"):
        return "OOM-killed"
    if p.get("exec_failed") and not p.get("execs"):
        return f"exec failed: {p.get('outcome', '')}"
    if not p.get("end_ns"):
        return "running"
    if p.get("signal"):
        return f"killed by signal {p['signal']}"
    return f"exit {p.get('exit_code')}"


def images(p: dict) -> list[tuple[int, str]]:
    """(time, program) of each exec of a process, in order."""
    return sorted(zip(p.get("exec_times") or [], p.get("exec_comms") or [], strict=False))


def image_id(key: str, n: int) -> str:
    """The node of a process's n-th program (1-based) when it ran several; the last is ``key``."""
    return f"{key}#{n}"


def host_of(key: str) -> str:
    """The host part of a process key (host:pid:start_ticks)."""
    return key.rsplit(":", 2)[0]


def endpoint_id(addr: str, port: int) -> str:
    """The id of a remote address's node (IPv6 in brackets, as in a URL)."""
    return f"{ENDPOINT}[{addr}]:{port}" if ":" in addr else f"{ENDPOINT}{addr}:{port}"


def image_node(p: dict, n: int, at_ns: int, program: str) -> dict:
    """A program a process ran before exec'ing the next one."""
    return node(
        image_id(p["process_key"], n), program, "process",
        subtitle=f"{user_of(p.get('uid'))}@{p.get('host', '')} pid {p.get('pid', '')}",
        color=COLORS["context"], detail__start=iso(at_ns), detail__exit=f"exec #{n + 1}",
        detail__container=p.get("container_id", ""), detail__count=1,
    )  # fmt: skip


def process_node(p: dict, children: int = 0, connections: int = 0) -> dict:
    """A node for one process (a row of ``queries.process_details``)."""
    argv = p.get("argv") or []
    state = process_state(p)
    return node(
        p["process_key"],
        p.get("program") or f"pid {p.get('pid', '?')}",
        "process",
        subtitle=f"{user_of(p.get('uid'))}@{p.get('host', '')} pid {p.get('pid', '')}",
        mainstat=f"{children} children",
        secondarystat=f"{connections} connections",
        color=COLORS[state],
        detail__argv=" ".join(argv) if argv else p.get("filename", ""),
        detail__exe=p.get("exe_path", ""),  # where the file run is (argv may say ./x)
        detail__start=iso(p.get("start_ns") or p.get("first_ns") or 0),
        detail__end=iso(p.get("end_ns") or 0),
        detail__exit=exit_text(p),
        detail__container=p.get("container_id", ""),
        detail__count=1,
    )


def user_of(uid) -> str:
    """uid 0 is root everywhere; other uids are shown as numbers, since names differ by host."""
    if uid is None or uid == "":
        return "?"
    return "root" if int(uid) == 0 else f"uid {uid}"
