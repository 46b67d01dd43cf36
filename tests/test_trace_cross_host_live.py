"""A trace across two hosts from real activity: two network namespaces joined by a veth pair
stand in for hosts "alpha" and "beta", each with its own real exporter (real eBPF, the flag
detector on, ``--netns`` filtered to its namespace), both writing into one store, as a fleet's
exporters meet in one ClickHouse.

In beta the test runs a small server that starts ``/bin/sh`` per request (shell_from_server);
in alpha a client it copied to /tmp (exec_from_tmp) connects to it over the veth pair. The
trace assembled from the store holds both flags, rooted at the client on alpha: beta's trace is
joined into it through the connection (connect on alpha, accept on beta), which the causal
graph draws as the cross-host edge. Neither exporter recorded a process or a connection of the
other namespace (or of the test's own), and each one's counters count what it recorded.

The same lab also checks the filter's other parts: a refused connect counted in both namespaces
(the reset no socket owns goes by its packet's device), the start-up scans, and running code in
a namespace (``exporter.netns.run_in_netns``, which the scans and self-tests use).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from exporter.netns import run_in_netns
from exporter.probes.base import BootClock
from exporter.proc_read import netns_of
from exporter.proc_scan import ProcScanner, start_ticks
from exporter.tcp_scan import TcpScanner
from graph.causal import build_graph
from graph.request import TRACE_FOCUS, Focus, GraphLimits, GraphRequest, Scope, Window
from graph.traces import TraceAssembler, trace_id
from groundtruth.cli import main
from schema.events import ConnectionEvent, FlagEvent, ListenEvent, ProcessEvent, process_key
from store.db import open_store
from store.migrations import migrate
from tests.fixtures.ebpf import skip_or_fail_without_ebpf
from tests.test_flags_context_live import started
from tests.test_flags_live import SHELL_SERVER, flags_for, key_of
from tests.test_graphapi import edges
from tests.test_traces_live import PYTHON, SCORING, stored_flags
from testservices.clickhouse import fresh_database_name
from testservices.exporter import RunningExporter, exporter_config

pytestmark = pytest.mark.ebpf
HOSTS = ("alpha", "beta")


@dataclass
class Host:
    name: str  # the host name its exporter records
    netns: str  # the namespace's name (ip netns) ...
    addr: str  # ... and its end of the veth pair's address

    @property
    def path(self) -> str:
        return f"/run/netns/{self.netns}"

    def run(self, argv: list[str], **popen):
        """``argv`` in this host's namespace, and its process key (``ip netns exec`` joins the
        namespace, then execs: the pid and its start time stay those of the child)."""
        return started(["ip", "netns", "exec", self.netns, *argv], host=self.name, **popen)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def lab():
    """alpha and beta: two network namespaces joined by a veth pair, deleted afterwards
    (deleting a namespace deletes its end of the pair, and the pair with it)."""
    tag, net = secrets.token_hex(3), 100 + secrets.randbelow(100)
    hosts = [Host(name, f"gt-{name}-{tag}", f"10.{net}.0.{i}") for i, name in enumerate(HOSTS, 1)]
    made = []
    try:
        for h in hosts:
            ip("netns", "add", h.netns)
            made.append(h.netns)
            ip("-n", h.netns, "link", "set", "lo", "up")  # the TCP self-test's canary uses it
        ends = [f"gt{h.name[0]}{tag}" for h in hosts]
        ip("link", "add", ends[0], "netns", hosts[0].netns, "type", "veth", "peer", "name",
           ends[1], "netns", hosts[1].netns)  # fmt: skip
        for h, end in zip(hosts, ends, strict=True):
            ip("-n", h.netns, "addr", "add", f"{h.addr}/24", "dev", end)
            ip("-n", h.netns, "link", "set", end, "up")
        yield hosts
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


@pytest.fixture
def exporters(lab, ebpf_problems, chdb_dir, tmp_path):
    """One real exporter per host, filtered to its namespace, both writing into one chDB
    database; each one's ``reader`` is a client of it for the test (the same one), its
    ``store_args`` what the incident CLI is given to open it."""
    skip_or_fail_without_ebpf(ebpf_problems)
    database = fresh_database_name()
    reader = open_store(None, data_dir=chdb_dir, database=database)
    migrate(reader)
    running = []
    try:
        for h in lab:
            config = exporter_config(tcp=True, host=h.name, netns=h.path)
            store = open_store(None, data_dir=chdb_dir, database=database)
            exp = RunningExporter(config, store=store, spool_dir=tmp_path / h.name).start()
            exp.reader = reader
            exp.store_args = ["--data-dir", str(chdb_dir), "--database", database]  # the CLI's
            running.append(exp)
        yield running
    finally:
        for exp in running:
            exp.stop()
        reader.close()


def stored_connections(reader, port: int, timeout: float = 60.0) -> dict[str, tuple]:
    """{host: (direction, process key, local port, remote port)} of the connections to the
    server's port, once both ends are stored."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = reader.query(
            "SELECT host, direction, process_key, local_port, remote_port "
            "FROM tcp_connection_events WHERE local_port = {p:UInt16} OR remote_port = {p:UInt16}",
            {"p": port},
        )
        found = {r[0]: tuple(r[1:]) for r in rows}
        if set(HOSTS) <= found.keys():
            return found
        time.sleep(0.2)
    raise AssertionError(f"both ends of the connection to port {port} not stored: {rows}")


def selftest_pids(exp) -> set[int]:
    """Pids of the exporter's process self-test canary (it runs in the exporter's namespace)."""
    return {
        e.pid for e in exp.sink.snapshot()
        if isinstance(e, ProcessEvent) and e.kind == "exec"
        and any(a.startswith("groundtruth-selftest-") for a in e.argv)
    }  # fmt: skip


def counted(exp, counter: str) -> float:
    """A counter of the exporter's /metrics, summed over its labels."""
    return sum(v for (name, _), v in exp.scrape().items() if name == counter)


def pids_of(exp, kinds: tuple[type, ...]) -> set[int]:
    return {e.pid for e in exp.sink.snapshot() if isinstance(e, kinds)}


@pytest.mark.causes_flags("exec_from_tmp", "shell_from_server")
def test_flags_on_two_hosts_joined_by_a_connection_are_one_trace(lab, exporters, capsys):
    (alpha, beta), (on_alpha, on_beta) = lab, exporters
    reader, started_ns = on_alpha.reader, time.time_ns()
    # Each exporter is in its own namespace's view only, and every probe self-tested there.
    for h, exp in zip(lab, (on_alpha, on_beta), strict=True):
        assert exp.exporter.ctx.netns_inum == Path(h.path).stat().st_ino != netns_of("self")
        assert exp.exporter.selftest_results == {"process": True, "tcp": True}
    # A process of the test's own namespace: neither exporter may record it.
    outside = subprocess.Popen(["/bin/true", f"gt-outside-{secrets.token_hex(4)}"])
    assert outside.wait() == 0

    server, server_key = beta.run([PYTHON, "-c", SHELL_SERVER, "1"], stdout=subprocess.PIPE)
    try:
        port = int(server.stdout.readline())
        on_beta.wait_for(
            lambda e: isinstance(e, ListenEvent) and e.pid == server.pid and e.local_port == port,
            what="the server's listen event",
        )
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            program = Path(tmp) / f"gt-cl-{secrets.token_hex(3)}"  # bash, to use its /dev/tcp
            program.write_bytes(Path("/bin/bash").read_bytes())
            program.chmod(0o755)
            # Sends a request, prints the reply (the pid of the shell the server started for
            # it), then keeps the connection open until the test says so.
            request = (
                f"exec 3<>/dev/tcp/{beta.addr}/{port}; read -r line <&3; echo $line; read -r _"
            )
            client, client_key = alpha.run(
                [str(program), "-c", request], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            shell_pid = int(client.stdout.readline())
            shell_key = key_of(on_beta, shell_pid)
            # The connection outlives the flag it led to (a long-lived connection, as an
            # attacker's is): both ends close only after beta flagged the shell.
            flags_for(on_beta, "shell_from_server", shell_key)
            client.communicate(b"\n", timeout=60)
        assert client.returncode == 0 and server.wait(30) == 0
    finally:
        server.kill()
        server.wait()
    on_beta.events_of(shell_pid, ("exec", "exit"))
    on_beta.events_of(server.pid, ("exec", "exit"))
    assert on_alpha.events_of(client.pid, ("exec", "exit"))["exit"][0].exit_code == 0

    # Each host's flag, about the process the test started there.
    stored_flags(on_alpha, {client_key: "exec_from_tmp", shell_key: "shell_from_server"})
    (tmp_flag,) = [f for f in on_alpha.sink.snapshot() if isinstance(f, FlagEvent)]
    (server_flag,) = [f for f in on_beta.sink.snapshot() if isinstance(f, FlagEvent)]
    assert (tmp_flag.rule_id, tmp_flag.host, tmp_flag.pid) == ("exec_from_tmp", "alpha", client.pid)
    assert (server_flag.rule_id, server_flag.host, server_flag.parent_key) == (
        "shell_from_server", "beta", server_key,
    )  # fmt: skip

    # The connection, as each host recorded it: connect on alpha, accept on beta.
    conns = stored_connections(reader, port)
    client_port = conns["alpha"][2]
    assert conns == {
        "alpha": ("outbound", client_key, client_port, port),
        "beta": ("inbound", server_key, port, client_port),
    }

    # One trace holds both flags, rooted at the client on alpha; beta's joined it.
    traces = TraceAssembler(reader, SCORING).assemble(started_ns - 10**9, time.time_ns())
    ours = [t for t in traces if {client_key, shell_key} & {f["process_key"] for f in t.flags}]
    assert len(ours) == 1, [t.summary() for t in ours]
    (trace,) = ours
    assert sorted((f["host"], f["rule_id"], f["process_key"]) for f in trace.flags) == [
        ("alpha", "exec_from_tmp", client_key),
        ("beta", "shell_from_server", shell_key),
    ]
    assert (trace.root["process_key"], trace.root["host"]) == (client_key, "alpha")
    assert trace.id == trace_id(client_key) and trace.joined_from == [trace_id(server_key)]
    assert trace.hosts == ["alpha", "beta"]
    assert trace.paths == {client_key: [client_key], shell_key: [server_key, shell_key]}

    # The incident CLI lists it so (its own client of the store).
    assert main(["traces", *on_alpha.store_args, "--since", "1h", "--format", "jsonl"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["root"], r["hosts"]) for r in listed if r["id"] == trace.id] == [
        (client_key, ["alpha", "beta"])
    ]

    # The causal graph of the trace (graphapi's and the incident CLI's) draws the connection
    # from the client to the server: the cross-host edge.
    window = Window(started_ns - 10**9, time.time_ns() + 10**9)
    graph = build_graph(
        reader, GraphRequest(window, Scope(), Focus(TRACE_FOCUS, trace.id), 300), GraphLimits()
    )
    assert (client_key, server_key) in edges(graph, "connected")
    assert (server_key, shell_key) in edges(graph, "spawned")

    # Neither exporter recorded another namespace's processes or connections: alpha only the
    # client (and its own self-test canary), beta only the server and its shell; the sockets
    # of the TCP self-test belong to the test process, made in each namespace's loopback.
    assert pids_of(on_alpha, (ProcessEvent,)) == {client.pid} | selftest_pids(on_alpha)
    assert pids_of(on_beta, (ProcessEvent,)) == {server.pid, shell_pid} | selftest_pids(on_beta)
    own = os.getpid()
    assert pids_of(on_alpha, (ConnectionEvent, ListenEvent)) == {client.pid, own}
    assert pids_of(on_beta, (ConnectionEvent, ListenEvent)) == {server.pid, own}
    assert outside.pid not in pids_of(on_alpha, (ProcessEvent,)) | pids_of(on_beta, (ProcessEvent,))
    # So do the counters: each counted the execs and connections it recorded, no more.
    for exp in (on_alpha, on_beta):
        recorded = exp.sink.snapshot()
        assert counted(exp, "groundtruth_process_execs_total") == len(
            [e for e in recorded if isinstance(e, ProcessEvent) and e.kind == "exec"]
        )
        assert counted(exp, "groundtruth_tcp_connections_total") == len(
            [e for e in recorded if isinstance(e, ConnectionEvent) and e.kind == "close"]
        )


def test_run_in_netns_runs_there_and_hands_back_what_happened(lab):
    alpha = lab[0]
    inode = Path(alpha.path).stat().st_ino
    assert run_in_netns(alpha.path, netns_of, "thread-self") == inode != netns_of("thread-self")
    with pytest.raises(ConnectionRefusedError):  # nothing listens in alpha
        run_in_netns(alpha.path, socket.create_connection, (alpha.addr, 9))
    with pytest.raises(OSError, match="setns into /etc/hostname"):
        run_in_netns("/etc/hostname", netns_of, "thread-self")


# argv[1]: an address to listen on. Listens, connects to itself, prints the listening port,
# then holds all three sockets until its stdin closes.
CONNECTED_TO_ITSELF = """
import socket, sys
server = socket.create_server((sys.argv[1], 0))
client = socket.create_connection(server.getsockname())
accepted, _ = server.accept()
print(server.getsockname()[1], flush=True)
sys.stdin.read()
"""


def test_the_start_up_scans_read_only_their_namespace(lab):
    beta = lab[1]
    inode = Path(beta.path).stat().st_ino
    ids = iter(range(10**6))
    with socket.create_server(("127.0.0.1", 0)):  # a listener in the test's own namespace
        child, key = beta.run(
            [PYTHON, "-c", CONNECTED_TO_ITSELF, beta.addr],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            port = int(child.stdout.readline())
            procs = ProcScanner("beta", BootClock(), netns_inum=inode).scan(lambda: next(ids))
            sockets = TcpScanner("beta", BootClock(), netns=beta.path).scan(lambda: next(ids))
        finally:
            child.communicate(b"")
    own_key = process_key("beta", os.getpid(), start_ticks(os.getpid()))
    # The only process in beta; its parent (outside) is still named, as its exec names it.
    assert [(e.process_key, e.parent_key) for e in procs] == [(key, own_key)]
    # Its listener and both ends of its connection, all on beta's address; not the test's
    # listener.
    found = {(type(e).__name__, getattr(e, "direction", "")): e for e in sockets}
    assert len(sockets) == len(found) == 3
    listen, inbound = found["ListenEvent", ""], found["ConnectionEvent", "inbound"]
    outbound = found["ConnectionEvent", "outbound"]
    assert (listen.local_port, inbound.local_port, outbound.remote_port) == (port, port, port)
    assert {(e.pid, e.local_addr) for e in sockets} == {(child.pid, beta.addr)}


def test_a_refused_connect_is_counted_in_both_namespaces_and_nowhere_else(lab, exporters):
    """alpha connects to a port nothing listens on in beta: beta's kernel answers with a reset
    that no socket owns (counted by the device it came in on), alpha's socket receives it."""
    (alpha, beta), (on_alpha, on_beta) = lab, exporters
    client, _ = alpha.run(["/bin/bash", "-c", f"exec 3<>/dev/tcp/{beta.addr}/9"])
    assert client.wait(60) == 1
    (failed,) = on_alpha.wait_for(
        lambda e: isinstance(e, ConnectionEvent) and e.pid == client.pid,
        what="the refused connection",
    )
    assert (failed.kind, failed.outcome, failed.remote_port) == ("connect_failed", "refused", 9)
    # The reset was sent before alpha's socket failed on it: both counts are in.
    assert counted(on_alpha, "groundtruth_tcp_resets_total") == 1
    assert counted(on_beta, "groundtruth_tcp_resets_total") == 1
    assert not [e for e in on_beta.sink.snapshot() if isinstance(e, ConnectionEvent)
                and e.pid != os.getpid()]  # fmt: skip
