"""The temporal causal graph: which processes, which connections, and how they are drawn.

``build_graph(store, request, limits)`` runs a bounded number of SQL statements (``queries``) and
assembles their bounded results:

1. The focus gives seed processes (or, for an alert, host or container, just a narrower scope).
2. With seeds: their ancestors up to the root (any time before the window's end, within the
   look-back) and their descendants within the window, level by level, capped.
   Without: every process with events in the window and scope.
3. The server groups those processes by (parent, program): siblings running one program
   collapse into one node with a count once there are ``collapse_min`` of them. Seeds and
   ancestors are never collapsed.
4. Connections of the chosen processes, per (node, other end); the other end is a process
   when the far side recorded the same connection (any host), else an address.
5. Listening sockets, alerts of the window, and host / container context nodes.
6. The node limit is applied in priority order (focus and ancestors first); what was
   collapsed or left out is listed in ``meta`` and shown as one "more" node.

Steps 1 to 5 choose (``GraphBuilder``); ``graph.drawing.Drawing`` draws what they chose. A focus
that is not stored raises ``FocusNotFound``.
"""

from __future__ import annotations

from graph import queries as Q
from graph.drawing import Drawing
from graph.errors import FocusNotFound
from graph.nodegraph_fields import (
    ALERT,
    CONTAINER,
    ENDPOINT,
    GROUP,
    HOST,
    SERVICE,
    TRACE,
    edge,
    endpoint_id,
    host_of,
    iso,
    node,
)
from graph.plan import Plan
from graph.request import (
    ADDRESS,
    ALERT_FOCUS,
    CONTAINER_FOCUS,
    GROUP_FOCUS,
    HOST_FOCUS,
    PID,
    PROCESS,
    TRACE_FOCUS,
    Focus,
    GraphLimits,
    GraphRequest,
    Scope,
)
from graph.traces import TraceAssembler, TraceLimits


def in_scope(scope: Scope, host: str = "", container: str = "") -> bool:
    """Whether a host and container ('' when not known) lie within the scope; a container is
    matched on its first 12 characters, as ``queries.IN_CONTAINER`` does."""
    if host and scope.hosts and host not in scope.hosts:
        return False
    return not (container and scope.container and container[:12] != scope.container[:12])


def outside_scope(f: Focus, scope: Scope) -> FocusNotFound:
    where = [f"host={','.join(scope.hosts)}"] if scope.hosts else []
    where += [f"container={scope.container}"] if scope.container else []
    prefix = {
        ALERT_FOCUS: ALERT, HOST_FOCUS: HOST, CONTAINER_FOCUS: CONTAINER, GROUP_FOCUS: GROUP,
        TRACE_FOCUS: TRACE,
    }  # fmt: skip
    return FocusNotFound(
        f"focus {prefix.get(f.kind, '') + f.value!r} is outside the scope "
        f"({' '.join(where)}): a focus narrows the scope, it does not replace it"
    )


class GraphBuilder:
    def __init__(self, store, req: GraphRequest, limits: GraphLimits):
        self.store, self.req, self.limits = store, req, limits
        w = req.window
        self.since_ns = max(0, w.from_ns - int(limits.ancestry_lookback_seconds * 1e9))
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
        """Seeds or a narrower scope from the focus. A focus narrows within the scope, never
        replaces it: a focus outside the scope (another host or container) is not found."""
        f, scope = self.req.focus, plan.scope
        if f is None:
            return
        if f.kind == HOST_FOCUS:
            if not in_scope(scope, host=f.value):
                raise outside_scope(f, scope)
            plan.scope = Scope(hosts=(f.value,), container=scope.container)
        elif f.kind == CONTAINER_FOCUS:
            if not in_scope(scope, container=f.value):
                raise outside_scope(f, scope)
            plan.scope = Scope(hosts=scope.hosts, container=f.value)
        elif f.kind == ALERT_FOCUS:
            rows = self.store.query(Q.ALERT_BY_FINGERPRINT, {"fingerprint": f.value})
            host, container, _starts, _ends, count = rows[0]
            if not count:
                raise FocusNotFound(f"no alert with fingerprint {f.value!r} was received")
            if not in_scope(scope, host, container):
                raise outside_scope(f, scope)
            plan.scope = Scope(
                hosts=(host,) if host else scope.hosts, container=container or scope.container
            )
            plan.alert_focus = f.value
        elif f.kind == TRACE_FOCUS:
            self.trace_focus(plan, f)
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
            # On the scope's hosts (the table is sorted by host); the container is checked below.
            where = self._window(Scope(hosts=(f.host,) if f.host else scope.hosts))
            rows = self.store.query(
                Q.processes_at_endpoint(where.sql()),
                {**where.params, "addr": f.addr, "port": f.port},
            )
            plan.seeds = [key for (key,) in rows]
        if f.kind in (PROCESS, PID, ADDRESS, GROUP_FOCUS, TRACE_FOCUS):
            self.fetch_details(plan.seeds)
            found = [self.details[k] for k in plan.seeds if k in self.details]
            if not found:
                raise FocusNotFound(
                    f"focus {f.value!r}: no such process or connection is stored for this window"
                )
            plan.seeds = [
                d["process_key"] for d in found if in_scope(scope, d["host"], d["container_id"])
            ]
            if not plan.seeds:
                raise outside_scope(f, scope)

    def trace_focus(self, plan: Plan, f: Focus) -> None:
        """A trace's flagged processes are the seeds (their ancestors lead to its root); their
        flags go into the nodes' details."""
        w = self.req.window
        limits = TraceLimits(
            depth_max=self.limits.max_depth,
            lookback_ns=int(self.limits.ancestry_lookback_seconds * 1e9),
        )
        trace = TraceAssembler(self.store, None, limits).trace(f.value, w.from_ns, w.to_ns)
        if trace is None:
            raise FocusNotFound(f"no trace {f.value!r} has a flag in this window")
        for flag in trace.flags:
            plan.flags.setdefault(flag["process_key"], []).append(flag)
        plan.seeds = list(plan.flags)

    # ---- 2. ancestors and descendants ---------------------------------------------------------
    def ancestors(self, seeds: list[str]) -> list[str]:
        """The parents up to the root, one query per generation (each also gives the details
        the node needs, so the chain is not read twice)."""
        chain: list[str] = []
        frontier, seen = list(seeds), set(seeds)
        for _ in range(self.limits.max_depth):
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
        cap = self.limits.max_descendants
        for _ in range(self.limits.max_depth):
            if not frontier or len(found) >= cap:
                break
            hosts = tuple(sorted({host_of(k) for k in frontier}))
            # Within the request's container scope too: the focus narrows it, all the way down.
            where = self._window(Scope(hosts=hosts, container=self.req.scope.container))
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
        collapse_min = self.limits.collapse_min
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
        drawing = Drawing(self.req.limit)
        self.fetch_details(plan.pinned + plan.singles)
        # Parents outside the window (or the scope) still say what started these processes.
        parents = [grp["parent"] for grp in plan.groups]
        parents += [self.details[k]["parent_key"] for k in plan.singles if k in self.details]
        self.fetch_details(parents)

        for key in plan.pinned:
            drawing.add_process(self.details.get(key), key, pinned=True, focused=key in plan.seeds)
        drawing.add_flags(plan.flags)
        # Collapsed siblings (a storm, a crash loop) and their parents before single processes:
        # past the node limit, the quiet singles are the ones left out.
        for grp in plan.groups:
            if grp["parent"] not in drawing.nodes:
                drawing.add_process(self.details.get(grp["parent"]), grp["parent"])
            drawing.add_group(grp)
        for key in plan.singles:
            drawing.add_process(self.details.get(key), key)
        for key in dict.fromkeys(parents):
            if key and key not in drawing.nodes:
                drawing.add_process(self.details.get(key), key)
        drawing.spawn_edges(self.details, plan)

        # Connections of the focus, its descendants (or everything shown, without a focus);
        # not of the ancestors: a shell's parent's traffic is not part of the trace.
        ancestors = set(plan.pinned) - set(plan.seeds)
        nodes = [k for k in drawing.nodes if k in self.details and k not in ancestors]
        nodes += [grp["id"] for grp in plan.groups]
        self.connections(drawing, plan, nodes)
        self.services(drawing, [k for k in drawing.nodes if k in self.details])
        self.alerts(drawing, plan)
        drawing.context(self.details)
        return drawing.finish(self.req, plan)

    def connections(self, drawing: Drawing, plan: Plan, nodes: list[str]) -> None:
        if not nodes:
            return
        w, match_ns = self.req.window, int(self.limits.match_seconds * 1e9)
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
            edges_max=self.limits.max_edges,
        )
        far = [r["peer"] for r in rows if r["peer"] and r["peer"] not in drawing.nodes]
        self.fetch_details(list(dict.fromkeys(far))[: self.req.limit])
        for r in rows:
            drawing.add_connection(r, self.details)

    def services(self, drawing: Drawing, keys: list[str]) -> None:
        if not keys:
            return
        where = self._keys_where(keys)
        cols = ["process_key", "addr", "port", "opened", "closed_ns", "first_ns"]
        for r in self._rows(
            Q.listening(where.sql()), where, cols, services_max=self.limits.max_edges
        ):
            host = host_of(r["process_key"])
            sid = f"{SERVICE}{host}|{endpoint_id(r['addr'], r['port'])[len(ENDPOINT) :]}"
            drawing.add_node(
                node(sid, f":{r['port']}", "service", subtitle=f"listening on {host}",
                     detail__start=iso(r["first_ns"]), detail__end=iso(r["closed_ns"]))
            )  # fmt: skip
            drawing.add_edge(edge(r["process_key"], sid, "listens"))

    def alerts(self, drawing: Drawing, plan: Plan) -> None:
        w = self.req.window
        shown = {host_of(k) for k in drawing.nodes if k in self.details}
        hosts = plan.scope.hosts or tuple(sorted(shown))
        rows = []
        if hosts:
            where = Q.Where().add(Q.ALERT_ACTIVE, from_ns=w.from_ns, to_ns=w.to_ns)
            where.add(Q.IN_HOSTS, hosts=list(hosts))
            rows = self._rows(
                Q.alerts(where.sql()), where, Q.ALERT_COLUMNS, alerts_max=self.limits.max_alerts
            )
        if plan.alert_focus and plan.alert_focus not in {a["fingerprint"] for a in rows}:
            # The focused alert is drawn whatever max_alerts (the first by start time) cut.
            where = Q.Where().add(Q.ALERT_IS, fingerprint=plan.alert_focus)
            rows += self._rows(Q.alerts(where.sql()), where, Q.ALERT_COLUMNS, alerts_max=1)
        for a in rows:
            drawing.add_alert(a, focused=a["fingerprint"] == plan.alert_focus)


def build_graph(store, req: GraphRequest, limits: GraphLimits) -> dict:
    """The graph of ``req`` from ``store``, as ``{"nodes", "edges", "meta"}``."""
    return GraphBuilder(store, req, limits).build()
