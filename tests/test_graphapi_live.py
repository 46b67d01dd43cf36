"""graphapi on what the real exporter saw: real eBPF process and TCP probes, events in chDB.

The test starts a shell that runs a client, which connects to a local server that forks a worker
for the connection. Every pid and process key asserted is one the test spawned and read from
/proc itself; the graph must give the exact ancestry chain, spawn edges and the connection.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.probes.tcp import TcpProbe
from exporter.proc_scan import start_ticks
from graphapi import create_app
from schema.events import process_key
from store.db import open_store
from store.migrations import migrate
from store.schema import TABLE_OF_CLASS
from tests.fixtures.ebpf import skip_or_fail_without_ebpf
from testservices.clickhouse import fresh_database_name
from testservices.exporter import RunningExporter, exporter_config

HOST = "graph-live-host"
PEER = [sys.executable, str(Path(__file__).with_name("tcp_peer.py"))]


def key_of(pid: int) -> str:
    return process_key(HOST, pid, start_ticks(pid))


def children_of(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture(scope="module")
def exporter(ebpf_problems):
    skip_or_fail_without_ebpf(ebpf_problems)
    exp = RunningExporter(exporter_config(host=HOST))
    core = exp.exporter
    exp.exporter.probes.append(TcpProbe(core.ctx, core.containers, core.table))
    exp.start()
    yield exp
    exp.stop()


def test_shell_client_server_worker_graph_is_exact(exporter, chdb_dir):
    server = subprocess.Popen(
        PEER + ["server", "ipv4", "64", "32", "1", "fork"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    port = int(server.stdout.readline())
    # The client is not the shell's last command, so the shell forks it rather than exec'ing.
    shell = subprocess.Popen(
        ["/bin/sh", "-c", " ".join(PEER + ["client", "ipv4", str(port), "32", "64", "1"])
         + "; echo shell-done"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    client_port = int(shell.stdout.readline())
    assert shell.stdout.readline().strip() == "done"
    worker_pid = int(server.stdout.readline().split()[0])
    assert server.stdout.readline().strip() == "done"
    (client_pid,) = children_of(shell.pid)
    keys = {
        "pytest": key_of(os.getpid()),
        "shell": key_of(shell.pid),
        "client": key_of(client_pid),
        "server": key_of(server.pid),
    }
    shell.stdin.write("\n")
    shell.stdin.close()
    server.stdin.close()
    assert shell.wait(10) == 0 and server.wait(10) == 0

    # Every event the graph below is built from: both ends' closes, the shell's and the
    # client's lives (the client's exit code is shown), the worker's fork.
    exporter.wait_for(
        lambda e: e.kind == "close" and (e.local_port, e.remote_port) == (client_port, port),
        what="the client's close",
    )
    exporter.wait_for(
        lambda e: e.kind == "close" and (e.local_port, e.remote_port) == (port, client_port),
        what="the server end's close",
    )
    exporter.events_of(shell.pid, ("fork", "exec", "exit"))
    exporter.events_of(client_pid, ("fork", "exec", "exit"))
    worker = exporter.wait_for(lambda e: e.kind == "fork" and e.pid == worker_pid, what="fork")
    keys["worker"] = worker[0].process_key

    store = open_store(None, data_dir=chdb_dir, database=fresh_database_name())
    migrate(store)
    events = [e for e in exporter.sink.snapshot() if type(e) in TABLE_OF_CLASS]
    store.insert_events(events)
    client = create_app({"STORE": store}).test_client()

    g = client.get("/api/graph", query_string={"focus": keys["client"], "host": HOST}).get_json()
    nodes = {n["id"]: n for n in g["nodes"]}
    spawned = {(e["source"], e["target"]) for e in g["edges"] if e["detail__kind"] == "spawned"}
    connected = {(e["source"], e["target"]) for e in g["edges"] if e["detail__kind"] == "connected"}
    assert (keys["pytest"], keys["shell"]) in spawned
    assert (keys["shell"], keys["client"]) in spawned
    # The far side is whichever of the server and its worker the exporter recorded as owning
    # the accepted connection (the accepting or the first reading process): matched by 4-tuple.
    (inbound_key,) = {
        e.process_key for e in events if getattr(e, "direction", "") == "inbound"
        and e.local_port == port and e.remote_port == client_port
    }  # fmt: skip
    assert inbound_key in (keys["server"], keys["worker"])
    assert connected == {(keys["client"], inbound_key)}
    assert nodes[keys["client"]]["subtitle"].endswith(f"@{HOST} pid {client_pid}")
    assert "client ipv4" in nodes[keys["client"]]["detail__argv"]
    assert nodes[keys["shell"]]["title"] == "sh"
    assert nodes[keys["client"]]["detail__exit"] == "exit 0"
    # Where each program really is: /bin/sh and the venv's python are symlinks.
    assert nodes[keys["shell"]]["detail__exe"] == os.path.realpath("/bin/sh")
    assert nodes[keys["client"]]["detail__exe"] == os.path.realpath(PEER[0])
    shell_facts = client.get(f"/api/processes/{keys['shell']}").get_json()["process"]
    assert shell_facts["executable"] == os.path.realpath("/bin/sh")

    g = client.get("/api/graph", query_string={"focus": keys["server"], "host": HOST}).get_json()
    spawned = {(e["source"], e["target"]) for e in g["edges"] if e["detail__kind"] == "spawned"}
    assert (keys["server"], keys["worker"]) in spawned
    assert any(n["id"] == f"listen={HOST}|127.0.0.1:{port}" for n in g["nodes"])

    endpoint = client.get(
        "/api/graph", query_string={"focus": f"127.0.0.1:{port}", "host": HOST}
    ).get_json()
    assert {keys["client"], keys["server"]} <= set(endpoint["meta"]["seeds"])
    store.close()
