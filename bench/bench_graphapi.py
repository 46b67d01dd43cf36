"""graphapi: causal graph latency over 1,000,000 process and 1,000,000 connection events (one
hour, 20 hosts) on a real ClickHouse 18.16 server, against the raw time of the same SQL
statements (recorded from each request and replayed on the same server in the same run)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.result import Result
from graphapi import create_app
from schema.events import ConnectionEvent, ProcessEvent, columns
from store.db import open_store
from store.migrations import migrate
from testservices.clickhouse import ClickHouseServer, fresh_database_name

HOSTS = 20
PROCESS_EVENTS = 1_000_000
CONNECTION_EVENTS = 1_000_000
DAEMONS = 50  # per host: children of the host's init, each spawning short-lived jobs
PROGRAMS = ["cron", "backup", "curl", "python3", "sh", "grep", "tar", "git", "ssh", "make"]
RUNS = 25
S = 10**9


def _defaults(cls, n: int) -> dict[str, list]:
    out = {}
    for name, ch_type, _ in columns(cls):
        zero = [] if ch_type.startswith("Array") else (0 if "Int" in ch_type else "")
        out[name] = [zero] * n if not isinstance(zero, list) else [[] for _ in range(n)]
    return out


def key(host: str, pid: int) -> str:
    return f"{host}:{pid}:{pid}"


def process_columns(t0: int) -> dict[str, list]:
    """fork, exec, exit of jobs under daemons under init, spread evenly over the hour."""
    jobs = PROCESS_EVENTS // 3
    per_host = jobs // HOSTS
    c = _defaults(ProcessEvent, jobs * 3)
    i = 0
    for h in range(HOSTS):
        host = f"host-{h:02d}"
        for j in range(per_host):
            pid = 1000 + j
            ppid = 100 + j % DAEMONS
            start = t0 + (j * 3600 * S) // per_host
            program = PROGRAMS[j % len(PROGRAMS)]
            for step, (kind, dt) in enumerate((("fork", 0), ("exec", 10**6), ("exit", S))):
                c["event_id"][i] = f"p{h}-{j}-{step}"
                c["kind"][i] = kind
                c["time_ns"][i] = start + dt
                c["host"][i] = host
                c["pid"][i] = pid
                c["ppid"][i] = ppid
                c["process_key"][i] = key(host, pid)
                c["parent_key"][i] = key(host, ppid)
                c["start_time_ns"][i] = start
                c["comm"][i] = program
                c["exit_code"][i] = (j % 17 == 0) if kind == "exit" else -1
                c["outcome"][i] = ("error" if j % 17 == 0 else "ok") if kind == "exit" else ""
                if kind == "exec":
                    c["filename"][i] = f"/usr/bin/{program}"
                    c["argv"][i] = [program, f"--job={j}"]
                c["source"][i] = "ebpf"
                i += 1
    for name in c:
        del c[name][i:]
    return c


def daemon_columns(t0: int) -> dict[str, list]:
    """init and the daemons, found by the start-up scan an hour before the window."""
    c = _defaults(ProcessEvent, HOSTS * (DAEMONS + 1))
    i = 0
    for h in range(HOSTS):
        host = f"host-{h:02d}"
        for pid, ppid, comm in [(1, 0, "systemd")] + [
            (100 + d, 1, "daemon") for d in range(DAEMONS)
        ]:
            c["event_id"][i], c["kind"][i], c["time_ns"][i] = f"s{h}-{pid}", "scan", t0 - 3600 * S
            c["host"][i], c["pid"][i], c["ppid"][i] = host, pid, ppid
            c["process_key"][i] = key(host, pid)
            c["parent_key"][i] = key(host, ppid) if ppid else ""
            c["comm"][i], c["source"][i], c["exit_code"][i] = comm, "scan", -1
            i += 1
    return c


def connection_columns(t0: int) -> dict[str, list]:
    """Jobs connecting to daemon 100 of the next host: both ends recorded, 4 events each."""
    conns = CONNECTION_EVENTS // 4
    per_host = conns // HOSTS
    c = _defaults(ConnectionEvent, conns * 4)
    i = 0
    for h in range(HOSTS):
        host, server = f"host-{h:02d}", f"host-{(h + 1) % HOSTS:02d}"
        caddr, saddr = f"10.0.0.{h + 1}", f"10.0.0.{(h + 1) % HOSTS + 1}"
        jobs = PROCESS_EVENTS // 3 // HOSTS
        for j in range(per_host):
            job = (j * jobs) // per_host
            start = t0 + (job * 3600 * S) // jobs + 2 * 10**6
            cport = 20000 + j % 40000
            sides = (
                (host, 1000 + job, "outbound", caddr, cport, saddr, 80, ("connect", "close")),
                (server, 100, "inbound", saddr, 80, caddr, cport, ("accept", "close")),
            )
            for side, (hh, pid, direction, la, lp, ra, rp, kinds) in enumerate(sides):
                for step, kind in enumerate(kinds):
                    c["event_id"][i] = f"c{h}-{j}-{side}{step}"
                    c["kind"][i], c["time_ns"][i] = kind, start + step * S // 2 + side * 10**5
                    c["host"][i], c["connection_id"][i] = hh, f"{h}-{j}"
                    c["pid"][i], c["process_key"][i] = pid, key(hh, pid)
                    c["direction"][i], c["family"][i], c["outcome"][i] = direction, "ipv4", "ok"
                    c["local_addr"][i], c["local_port"][i] = la, lp
                    c["remote_addr"][i], c["remote_port"][i] = ra, rp
                    c["bytes_sent"][i] = 512 * step
                    i += 1
    for name in c:
        del c[name][i:]
    return c


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def measure(app, store, args: dict) -> tuple[list[float], list[float], int]:
    """(request seconds, raw SQL seconds of the same statements, nodes) over RUNS runs."""
    client = app.test_client()
    api, raw, nodes = [], [], 0
    for _ in range(RUNS):
        log: list = []
        app.config["STATEMENT_LOG"] = log
        started = time.perf_counter()
        reply = client.get("/api/graph", query_string=args)
        api.append(time.perf_counter() - started)
        assert reply.status_code == 200, reply.get_json()
        nodes = len(reply.get_json()["nodes"])
        raw.append(sum(timed(lambda s=s, p=p: store.query(s, p)) for s, p in log))
    return api, raw, nodes


def run() -> list[Result]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-graphapi-"))
    server = ClickHouseServer(workdir / "ch").start()
    try:
        store = open_store(server.url(fresh_database_name()))
        migrate(store)
        t0 = (time.time_ns() // S - 2 * 3600) * S
        for table, make in (
            ("process_events", daemon_columns),
            ("process_events", process_columns),
            ("tcp_connection_events", connection_columns),
        ):
            store.insert(table, make(t0))
        app = create_app({"STORE": store})
        window = {"from": str(t0 // 10**6), "to": str((t0 + 3600 * S) // 10**6)}
        job = 1000 + PROCESS_EVENTS // 3 // HOSTS // 2
        cases = {
            "overview of one host": {**window, "host": "host-03"},
            "focus on a daemon (descendants, connections)": {
                **window,
                "focus": key("host-03", 105),
            },
            "focus on a job (ancestors, cross-host edge)": {**window, "focus": key("host-03", job)},
        }
        results = []
        for name, args in cases.items():
            api, raw, nodes = measure(app, store, args)
            p50, p95, raw95 = percentile(api, 0.5), percentile(api, 0.95), percentile(raw, 0.95)
            results += [
                Result(
                    f"{name}: p50",
                    p50 * 1000,
                    "ms",
                    note=f"{nodes} nodes, load average {os.getloadavg()[0]:.1f} on this machine",
                ),
                Result(
                    f"{name}: p95",
                    p95 * 1000,
                    "ms",
                    peer="raw SQL of the same statements, p95",
                    peer_value=raw95 * 1000,
                    goal="<= 250 ms and <= 2x raw",
                    met=p95 <= 0.25 and p95 <= 2 * raw95,
                ),
            ]
        store.close()
        return results
    finally:
        server.stop()
