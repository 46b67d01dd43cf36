"""The temporal causal graph: which processes, which connections, and how they are drawn.

``build_graph(store, request, cfg)`` runs a bounded number of SQL statements (``queries``) and
assembles their bounded results:

1. The focus gives seed processes (or, for an alert, host or container, just a narrower scope).
2. With seeds: their ancestors up to the root (any time before the window's end, within the
   look-back) and their descendants within the window, level by level, capped.
   Without: every process with events in the window and scope.
3. The server groups those processes by (parent, program): siblings running one program
   collapse into one node with a count once there are ``COLLAPSE_MIN`` of them. Seeds and
   ancestors are never collapsed.
4. Connections of the chosen processes, per (node, other end); the other end is a process
   when the far side recorded the same connection (any host), else an address.
5. Listening sockets, alerts of the window, and host / container context nodes.
6. The node limit is applied in priority order (focus and ancestors first); what was
   collapsed or left out is listed in ``meta`` and shown as one "more" node.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from werkzeug.exceptions import NotFound

from graphapi import queries as Q
from graphapi.nodegraph_fields import (
    ALERT,
    COLORS,
    CONTAINER,
    ENDPOINT,
    GROUP,
    HOST,
    MORE,
    PEER,
    SERVICE,
    edge,
    image_id,
    image_node,
    images,
    iso,
    node,
    process_node,
)
from graphapi.request_args import (
    ADDRESS,
    ALERT_FOCUS,
    CONTAINER_FOCUS,
    GROUP_FOCUS,
    HOST_FOCUS,
    PID,
    PROCESS,
    Focus,
    Scope,
    Window,
)


@dataclass(frozen=True)
class GraphRequest:
    window: Window
    scope: Scope
    focus: Focus | None
    limit: int


def host_of(key: str) -> str:
    """The host part of a process key (host:pid:start_ticks)."""
    return key.rsplit(":", 2)[0]


def endpoint_id(addr: str, port: int) -> str:
    return f"{ENDPOINT}[{addr}]:{port}" if ":" in addr else f"{ENDPOINT}{addr}:{port}"


@dataclass
class Plan:
    """The processes the graph shows, before drawing."""

    scope: Scope
    seeds: list[str] = field(default_factory=list)
    pinned: list[str] = field(default_factory=list)  # seeds and ancestors: never collapsed
    singles: list[str] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)  # collapsed siblings
    alert_focus: str = ""
    notes: dict = field(default_factory=dict)


class GraphBuilder:
    def __init__(self, store, req: GraphRequest, cfg):
        self.store, self.req, self.cfg = store, req, cfg
        w = req.window
        self.since_ns = max(0, w.from_ns - int(cfg["ANCESTRY_LOOKBACK_SECONDS"] * 1e9))
        self.details: dict[str, dict] = {}

    # ---- SQL helpers ------------------------------------------------------------------------
    def _rows(self, sql: str, where: Q.Where, columns: list[str], **params) -> list[dict]:
        rows = self.store.query(sql, {**where.params, **params})
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def _window(self, scope: Scope | None = None, lookback: bool = False) -> Q.Where:
        w = self.req.window
        where = Q.Where()
        if lookback:
            where.add(Q.SINCE_LOOKBACK, since_ns=self.since_ns, to_ns=w.to_ns)
        else:
            where.add(Q.WINDOW, from_ns=w.from_ns, to_ns=w.to_ns)
        if scope and scope.hosts:
            where.add(Q.IN_HOSTS, hosts=list(scope.hosts))
        if scope and scope.container:
            where.add(Q.IN_CONTAINER, container=scope.container)
        return where

    def _keys_where(self, keys: list[str], lookback: bool = True) -> Q.Where:
        hosts = sorted({host_of(k) for k in keys})
        where = self._window(Scope(hosts=tuple(hosts)), lookback=lookback)
        return where.add(Q.IN_KEYS, keys=list(keys))

    # ---- 1. focus -----------------------------------------------------------------------------
    def resolve_focus(self, plan: Plan) -> None:
        f = self.req.focus
        if f is None:
            return
        if f.kind == HOST_FOCUS:
            plan.scope = Scope(hosts=(f.value,), container=plan.scope.container)
        elif f.kind == CONTAINER_FOCUS:
            plan.scope = Scope(hosts=plan.scope.hosts, container=f.value)
        elif f.kind == ALERT_FOCUS:
            rows = self.store.query(Q.ALERT_BY_FINGERPRINT, {"fingerprint": f.value})
            host, container, _starts, _ends, count = rows[0]
            if not count:
                raise NotFound(description=f"no alert with fingerprint {f.value!r} was received")
            plan.scope = Scope(hosts=(host,) if host else plan.scope.hosts, container=container)
            plan.alert_focus = f.value
        elif f.kind == PROCESS:
            plan.seeds = [f.value]
        elif f.kind == GROUP_FOCUS:
            plan.seeds = [f.value.rsplit("|", 1)[0]]
        elif f.kind == PID:
            where = self._window(lookback=True)
            rows = self.store.query(
                Q.processes_by_pid(where.sql()), {**where.params, "host": f.host, "pid": f.pid}
            )
            plan.seeds = [key for key, _ in rows[:1]]
        elif f.kind == ADDRESS:
            scope = Scope(hosts=(f.host,)) if f.host else plan.scope
            where = self._window(scope)
            rows = self.store.query(
                Q.processes_at_endpoint(where.sql()),
                {**where.params, "addr": f.addr, "port": f.port},
            )
            plan.seeds = [key for (key,) in rows]
        if f.kind in (PROCESS, PID, ADDRESS, GROUP_FOCUS):
            self.fetch_details(plan.seeds)
            plan.seeds = [k for k in plan.seeds if k in self.details]
            if not plan.seeds:
                raise NotFound(
                    description=f"focus {f.value!r}: no such process or connection is stored "
                    "for this window"
                )

    # ---- 2. ancestors and descendants ---------------------------------------------------------
    def ancestors(self, seeds: list[str]) -> list[str]:
        """The parents up to the root, one query per generation (each also gives the details
        the node needs, so the chain is not read twice)."""
        chain: list[str] = []
        frontier, seen = list(seeds), set(seeds)
        for _ in range(self.cfg["MAX_DEPTH"]):
            if not frontier:
                break
            self.fetch_details(frontier)
            parents = [self.details[k]["parent_key"] for k in frontier if k in self.details]
            frontier = [p for p in dict.fromkeys(parents) if p and p not in seen]
            seen.update(frontier)
            chain += frontier
        return chain

    def descendants(self, seeds: list[str], notes: dict) -> list[str]:
        found: list[str] = []
        frontier, seen = list(seeds), set(seeds)
        cap = self.cfg["MAX_DESCENDANTS"]
        for _ in range(self.cfg["MAX_DEPTH"]):
            if not frontier or len(found) >= cap:
                break
            where = self._window(Scope(hosts=tuple(sorted({host_of(k) for k in frontier}))))
            where.params["parents"] = frontier
            rows = self.store.query(
                Q.children_of(where.sql()), {**where.params, "children_max": cap - len(found)}
            )
            frontier = [k for (k,) in rows if k not in seen]
            seen.update(frontier)
            found += frontier
        if len(found) >= cap:
            notes["descendants_capped_at"] = cap
        return found

    # ---- 3. collapse siblings (in SQL) --------------------------------------------------------
    def group(self, plan: Plan, where: Q.Where, limit: int) -> None:
        collapse_min = self.cfg["COLLAPSE_MIN"]
        # Keys of small groups are all needed (they are drawn one by one); of larger ones, none.
        sql = Q.process_groups(where.sql(), collapse_min)
        pinned = set(plan.pinned)
        for parent, program, n, keys, failed, first_ns in self.store.query(
            sql, {**where.params, "groups_max": limit}
        ):
            keys = [k for k in keys if k not in pinned]
            if n < collapse_min or not keys:
                plan.singles += keys
                continue
            gid = f"{GROUP}{parent}|{program}"
            plan.groups.append(
                dict(
                    id=gid,
                    parent=parent,
                    program=program,
                    count=n,
                    failed=failed,
                    first_ns=first_ns,
                    sampled=len(keys),
                )  # fmt: skip
            )

    def plan(self) -> Plan:
        req = self.req
        plan = Plan(scope=req.scope)
        self.resolve_focus(plan)
        if plan.seeds:
            plan.pinned = plan.seeds + self.ancestors(plan.seeds)
            below = [k for k in self.descendants(plan.seeds, plan.notes) if k not in plan.pinned]
            if below:
                self.group(plan, self._keys_where(below, lookback=False), req.limit)
        else:
            self.group(plan, self._window(plan.scope), req.limit)
        return plan

    # ---- details ------------------------------------------------------------------------------
    def fetch_details(self, keys) -> None:
        wanted = [k for k in dict.fromkeys(keys) if k and k not in self.details]
        if not wanted:
            return
        where = self._keys_where(wanted)
        for row in self._rows(
            Q.process_details(where.sql()), where, Q.DETAIL_COLUMNS, details_max=len(wanted)
        ):
            self.details[row["process_key"]] = row

    # ---- the graph ----------------------------------------------------------------------------
    def build(self) -> dict:
        plan = self.plan()
        g = Drawing(self.req.limit)
        self.fetch_details(plan.pinned + plan.singles)
        # Parents outside the window (or the scope) still say what started these processes.
        parents = [grp["parent"] for grp in plan.groups]
        parents += [self.details[k]["parent_key"] for k in plan.singles if k in self.details]
        self.fetch_details(parents)

        for key in plan.pinned:
            g.add_process(self.details.get(key), key, pinned=True)
        # Collapsed siblings (a storm, a crash loop) and their parents before single processes:
        # past the node limit, the quiet singles are the ones left out.
        for grp in plan.groups:
            if grp["parent"] not in g.nodes:
                g.add_process(self.details.get(grp["parent"]), grp["parent"])
            g.add_group(grp)
        for key in plan.singles:
            g.add_process(self.details.get(key), key)
        for key in dict.fromkeys(parents):
            if key and key not in g.nodes:
                g.add_process(self.details.get(key), key)
        g.spawn_edges(self.details, plan)

        # Connections of the focus, its descendants (or everything shown, without a focus);
        # not of the ancestors: a shell's parent's traffic is not part of the trace.
        ancestors = set(plan.pinned) - set(plan.seeds)
        nodes = [k for k in g.nodes if k in self.details and k not in ancestors]
        nodes += [grp["id"] for grp in plan.groups]
        self.connections(g, plan, nodes)
        self.services(g, [k for k in g.nodes if k in self.details])
        self.alerts(g, plan)
        g.context(self.details)
        return g.finish(self.req, plan)

    def connections(self, g: Drawing, plan: Plan, nodes: list[str]) -> None:
        if not nodes:
            return
        w, match_ns = self.req.window, int(self.cfg["MATCH_SECONDS"] * 1e9)
        hosts = plan.scope.hosts if not plan.seeds else ()
        hosts = hosts or tuple(sorted({host_of(n.removeprefix(GROUP)) for n in nodes}))
        where = self._window(Scope(hosts=hosts))
        peers = Q.Where().add(
            "time_ns >= {peer_from_ns:UInt64} AND time_ns < {peer_to_ns:UInt64}",
            peer_from_ns=max(0, w.from_ns - match_ns),
            peer_to_ns=w.to_ns + match_ns,
        )
        groups = [grp["id"].removeprefix(GROUP) for grp in plan.groups] or ["-"]
        rows = self._rows(
            Q.connection_edges(where.sql(), peers.sql()),
            where,
            Q.EDGE_COLUMNS,
            **peers.params,
            match_ns=match_ns,
            far_inbound=1 if self.req.focus else 0,
            nodes=nodes,
            groups=groups,
            edges_max=self.cfg["MAX_EDGES"],
        )
        far = [r["peer"] for r in rows if r["peer"] and r["peer"] not in g.nodes]
        self.fetch_details(list(dict.fromkeys(far))[: self.req.limit])
        for r in rows:
            g.add_connection(r, self.details)

    def services(self, g: Drawing, keys: list[str]) -> None:
        if not keys:
            return
        where = self._keys_where(keys)
        cols = ["process_key", "addr", "port", "opened", "closed_ns", "first_ns"]
        for r in self._rows(
            Q.listening(where.sql()), where, cols, services_max=self.cfg["MAX_EDGES"]
        ):
            host = host_of(r["process_key"])
            sid = f"{SERVICE}{host}|{endpoint_id(r['addr'], r['port'])[len(ENDPOINT) :]}"
            g.add_node(
                node(sid, f":{r['port']}", "service", subtitle=f"listening on {host}",
                     detail__start=iso(r["first_ns"]), detail__end=iso(r["closed_ns"]))
            )  # fmt: skip
            g.add_edge(edge(r["process_key"], sid, "listens"))

    def alerts(self, g: Drawing, plan: Plan) -> None:
        w = self.req.window
        where = Q.Where().add(Q.ALERT_ACTIVE, from_ns=w.from_ns, to_ns=w.to_ns)
        shown = {host_of(k) for k in g.nodes if k in self.details}
        hosts = plan.scope.hosts or tuple(sorted(shown))
        if not hosts:
            return
        where.add(Q.IN_HOSTS, hosts=list(hosts))
        rows = self._rows(
            Q.alerts(where.sql()), where, Q.ALERT_COLUMNS, alerts_max=self.cfg["MAX_ALERTS"]
        )
        for a in rows:
            g.add_alert(a, highlighted=a["fingerprint"] == plan.alert_focus)


class Drawing:
    """Nodes and edges in the order they matter, and the limit applied when finishing."""

    def __init__(self, limit: int):
        self.limit = limit
        self.nodes: OrderedDict[str, dict] = OrderedDict()
        self.edges: OrderedDict[str, dict] = OrderedDict()
        self.priority: dict[str, int] = {}

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

    def add_process(self, details: dict | None, key: str, pinned: bool = False) -> None:
        if details is None:  # known only as someone's parent: no event of it is stored
            pid = key.rsplit(":", 2)[1] if key.count(":") >= 2 else "?"
            n = node(key, f"pid {pid}", "process", subtitle=f"{host_of(key)} (no events stored)")
        else:
            n = process_node(details)
        if pinned:
            n["highlighted"] = True
        priority = 0 if pinned else 2
        self.add_node(n, priority)
        if details is None:
            return
        # One node per exec: earlier programs of this pid lead to the last one (the key).
        ran = images(details)
        for i, (at_ns, program) in enumerate(ran[:-1], 1):
            self.add_node(image_node(details, i, at_ns, program), priority)
            later = image_id(key, i + 1) if i + 1 < len(ran) else key
            self.add_edge(edge(image_id(key, i), later, "exec"))

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

    def add_alert(self, a: dict, highlighted: bool) -> None:
        aid = f"{ALERT}{a['fingerprint']}"
        n = node(
            aid, a["alertname"], "alert", subtitle=f"{a['severity']} {a['status']}".strip(),
            color=COLORS["alert"], highlighted=highlighted, detail__start=iso(a["starts_ns"]),
            detail__end=iso(a["ends_ns"]), detail__container=a["container"],
            detail__argv=a["annotations"],
        )  # fmt: skip
        self.add_node(n, 1)
        target = f"{CONTAINER}{a['container']}" if a["container"] else f"{HOST}{a['host']}"
        self.alert_targets = getattr(self, "alert_targets", {})
        self.alert_targets.setdefault(target, []).append(aid)

    def context(self, details: dict) -> None:
        """Host and container nodes, each linked to the topmost processes it runs."""
        targets = getattr(self, "alert_targets", {})
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
            keep, dropped = order[: self.limit - 1], order[self.limit - 1 :]
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
        if dropped:
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
                {"id": g["id"], "program": g["program"], "parent": g["parent"], "count": g["count"]}
                for g in plan.groups
            ],
            "not_shown": len(dropped),
            **plan.notes,
        }
        return {"nodes": nodes, "edges": edges, "meta": meta}


def build_graph(store, req: GraphRequest, cfg) -> dict:
    return GraphBuilder(store, req, cfg).build()
