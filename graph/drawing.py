"""A causal graph's drawing: nodes and edges in the order they matter, in the Node Graph
panel's fields, and the node limit applied when finishing. The builder (``graph.causal``)
decides what is in it; this module only decides how it looks.
"""

from __future__ import annotations

from collections import OrderedDict

from graph.nodegraph_fields import (
    ALERT,
    COLORS,
    CONTAINER,
    ENDPOINT,
    GROUP,
    HOST,
    MORE,
    PEER,
    edge,
    endpoint_id,
    host_of,
    image_id,
    image_node,
    images,
    iso,
    node,
    process_node,
)
from graph.plan import Plan
from graph.request import GraphRequest
from graph.traces import SEVERITIES

# Drawing priorities, lowest first kept when the node limit cuts: the focus (its processes
# or its alert) is always drawn, then the pinned ancestors, alerts and context, the rest.
FOCUSED = -1


class Drawing:
    """Nodes and edges in the order they matter, and the limit applied when finishing."""

    def __init__(self, limit: int):
        self.limit = limit
        self.nodes: OrderedDict[str, dict] = OrderedDict()
        self.edges: OrderedDict[str, dict] = OrderedDict()
        self.priority: dict[str, int] = {}
        # Host or container node id -> the alerts that fired on it (linked in context()).
        self.alert_targets: dict[str, list[str]] = {}

    def add_node(self, n: dict, priority: int = 2) -> None:
        if n["id"] not in self.nodes:
            self.nodes[n["id"]] = n
            self.priority[n["id"]] = priority

    def add_edge(self, e: dict, matched: bool = False) -> None:
        old = self.edges.get(e["id"])
        if old is None:
            self.edges[e["id"]] = e
        elif not matched:  # the same kind of edge from another row: add up
            old["detail__count"] += e["detail__count"]

    def add_process(
        self, details: dict | None, key: str, pinned: bool = False, focused: bool = False
    ) -> None:
        if details is None:  # known only as someone's parent: no event of it is stored
            pid = key.rsplit(":", 2)[1] if key.count(":") >= 2 else "?"
            n = node(key, f"pid {pid}", "process", subtitle=f"{host_of(key)} (no events stored)")
        else:
            n = process_node(details)
        if pinned or focused:
            n["highlighted"] = True
        priority = FOCUSED if focused else 0 if pinned else 2
        self.add_node(n, priority)
        if details is None:
            return
        # One node per exec: earlier programs of this pid lead to the last one (the key).
        ran = images(details)
        for i, (at_ns, program) in enumerate(ran[:-1], 1):
            self.add_node(image_node(details, i, at_ns, program), priority)
            later = image_id(key, i + 1) if i + 1 < len(ran) else key
            self.add_edge(edge(image_id(key, i), later, "exec"))

    def add_flags(self, flags: dict[str, list[dict]]) -> None:
        """Each flagged process's flags in its node's details, most severe first."""
        for key, found in flags.items():
            if key in self.nodes:
                ranked = sorted(found, key=lambda f: -SEVERITIES.index(f["severity"]))
                self.nodes[key]["detail__flags"] = "; ".join(
                    dict.fromkeys(f"{f['severity']} {f['rule_id']}" for f in ranked)
                )

    def entry(self, key: str) -> str:
        """The node a process's life starts at: its first program's, when it ran several."""
        first = image_id(key, 1)
        return first if first in self.nodes else key

    def add_group(self, grp: dict) -> None:
        n = node(
            grp["id"], grp["program"], "group",
            subtitle=f"{grp['count']} processes", mainstat=f"{grp['count']} processes",
            color=COLORS["error"] if grp["failed"] else COLORS["ok"],
            detail__count=grp["count"], detail__start=iso(grp["first_ns"]),
        )  # fmt: skip
        self.add_node(n)

    def spawn_edges(self, details: dict, plan: Plan) -> None:
        for key in list(self.nodes):
            parent = details.get(key, {}).get("parent_key")
            if parent and parent in self.nodes:
                self.add_edge(edge(parent, self.entry(key), "spawned"))
        for grp in plan.groups:
            if grp["parent"] in self.nodes:
                e = edge(grp["parent"], grp["id"], "spawned", detail__count=grp["count"])
                e["mainstat"] = f"spawned x{grp['count']}"
                self.add_edge(e)

    def node_of(self, key: str, details: dict) -> str:
        """The node a process is drawn as: itself, or the collapsed group it belongs to."""
        d = details.get(key)
        if key in self.nodes or d is None:
            return key
        gid = f"{GROUP}{d['parent_key']}|{d['program']}"
        return gid if gid in self.nodes else key

    def add_connection(self, r: dict, details: dict) -> None:
        src = r["node"]
        if src not in self.nodes:
            return
        stats = dict(
            detail__count=r["conns"],
            secondarystat=f"{r['sent']} B sent, {r['received']} B received",
            detail__first=iso(r["first_ns"]),
            detail__last=iso(r["last_ns"]),
        )
        failed = f", {r['failed']} failed" if r["failed"] else ""
        stats["mainstat"] = f"{r['conns']} conns{failed}"
        if r["peer"]:
            peer = self.node_of(r["peer"], details)
            if peer not in self.nodes:
                self.add_process(details.get(peer), peer)
                self.priority[peer] = 3
            client, server = (src, peer) if r["direction"] == "outbound" else (peer, src)
            self.add_edge(edge(client, server, "connected", **stats), matched=True)
        elif r["direction"] == "outbound":
            eid = endpoint_id(r["addr"], r["port"])
            self.add_node(node(eid, eid[len(ENDPOINT) :], "endpoint", subtitle="remote"), 4)
            self.add_edge(edge(src, eid, "connected", **stats))
        else:
            pid_ = f"{PEER}{r['addr']}"
            self.add_node(node(pid_, r["addr"], "peer", subtitle=f"to port {r['service_port']}"), 4)
            self.add_edge(edge(pid_, src, "accepted", **stats))

    def add_alert(self, a: dict, focused: bool) -> None:
        aid = f"{ALERT}{a['fingerprint']}"
        n = node(
            aid, a["alertname"], "alert", subtitle=f"{a['severity']} {a['status']}".strip(),
            color=COLORS["alert"], highlighted=focused, detail__start=iso(a["starts_ns"]),
            detail__end=iso(a["ends_ns"]), detail__container=a["container"],
            detail__argv=a["annotations"],
        )  # fmt: skip
        self.add_node(n, FOCUSED if focused else 1)
        target = f"{CONTAINER}{a['container']}" if a["container"] else f"{HOST}{a['host']}"
        self.alert_targets.setdefault(target, []).append(aid)

    def context(self, details: dict) -> None:
        """Host and container nodes, each linked to the topmost processes it runs."""
        targets = self.alert_targets
        for key in list(self.nodes):
            d = details.get(key)
            if d is None:
                continue
            parent = d.get("parent_key")
            if parent in self.nodes and details.get(parent, {}).get("container_id") == d.get(
                "container_id"
            ):
                continue  # not topmost: its parent carries the context
            hid = f"{HOST}{d['host']}"
            self._context_node(hid, d["host"], "host", targets)
            owner = hid
            if d.get("container_id"):
                cid = f"{CONTAINER}{d['container_id']}"
                self._context_node(cid, d["container_id"][:12], "container", targets)
                self.add_edge(edge(hid, cid, "runs"))
                owner = cid
            self.add_edge(edge(owner, self.entry(key), "runs"))
        for target, alert_ids in targets.items():
            if target.startswith(HOST):
                self._context_node(target, target[len(HOST) :], "host", targets)
            else:
                self._context_node(target, target[len(CONTAINER) :][:12], "container", targets)
            for aid in alert_ids:
                self.add_edge(edge(aid, target, "fired"))

    def _context_node(self, nid: str, title: str, kind: str, alert_targets: dict) -> None:
        alerted = nid in alert_targets
        self.add_node(
            node(nid, title, kind, subtitle=kind, highlighted=alerted,
                 color=COLORS["alert"] if alerted else COLORS["context"]),
            1,
        )  # fmt: skip

    def finish(self, req: GraphRequest, plan: Plan) -> dict:
        order = sorted(self.nodes, key=lambda i: self.priority[i])  # stable: insertion order
        keep, dropped = order, []
        if len(order) > self.limit:
            # The last place goes to the "more" node, unless the focus would lose its own.
            room = self.limit - 1 if self.limit > 1 or self.priority[order[0]] > FOCUSED else 1
            keep, dropped = order[:room], order[room:]
        kept = set(keep)
        edges = [e for e in self.edges.values() if e["source"] in kept and e["target"] in kept]
        nodes = [self.nodes[i] for i in keep]
        children: dict[str, int] = {}
        conns: dict[str, int] = {}
        for e in edges:
            if e["detail__kind"] == "spawned":
                children[e["source"]] = children.get(e["source"], 0) + e["detail__count"]
            elif e["detail__kind"] in ("connected", "accepted"):
                for end in (e["source"], e["target"]):
                    conns[end] = conns.get(end, 0) + e["detail__count"]
        for n in nodes:
            if n["detail__kind"] == "process":
                n["mainstat"] = f"{children.get(n['id'], 0)} children"
                n["secondarystat"] = f"{conns.get(n['id'], 0)} connections"
        if dropped and len(nodes) < self.limit:
            nodes.append(
                node(f"{MORE}{len(dropped)}", f"{len(dropped)} more not shown", "more",
                     subtitle=f"limit {self.limit}: narrow the window or focus",
                     detail__count=len(dropped))
            )  # fmt: skip
        meta = {
            "window": {"from": iso(req.window.from_ns), "to": iso(req.window.to_ns)},
            "focus": req.focus.value if req.focus else "",
            "seeds": plan.seeds,
            "limit": self.limit,
            "collapsed": [
                {
                    "id": grp["id"],
                    "program": grp["program"],
                    "parent": grp["parent"],
                    "count": grp["count"],
                }
                for grp in plan.groups
            ],
            "not_shown": len(dropped),
            **plan.notes,
        }
        return {"nodes": nodes, "edges": edges, "meta": meta}
