"""The TCP probe against real sockets: separate client and server processes on loopback.

Every assertion is about what the test itself did: its processes' pids, the ports they used,
the bytes they moved. Metrics are read for a fresh container cgroup the test's processes run
in, so other activity on the host cannot move them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors.tcp_counts import TcpCountsCollector
from exporter.probes.base import BootClock, ProbeContext
from exporter.probes.tcp import TcpProbe
from exporter.proc_scan import start_ticks
from exporter.tcp_scan import TcpScanner
from exporter.tcp_selftest import run_tcp_selftest
from schema.events import ConnectionEvent, ListenEvent, process_key
from tests.cgroups import cgroup_dirs, docker_scope_v2, fake_container_id, run_in
from tests.fixtures.ebpf import skip_or_fail_without_ebpf

HOST = "test-host"
PEER = [sys.executable, str(Path(__file__).with_name("tcp_peer.py"))]
SENT, RECEIVED = 123_456, 7_890  # client -> server, server -> client
OPEN_AFTER = 0.3  # seconds before an open connection is announced


class Probe:
    """A loaded TcpProbe and every event it delivered so far.

    It is drained in the background every 20 ms, as the exporter drains it: a test blocked on
    its peers for seconds would otherwise leave the ring buffer to the host's other connections,
    and under load it fills and drops the test's own events. Calls into the probe go under
    ``lock``."""

    def __init__(self, probe: TcpProbe | None = None):
        self.probe = probe or TcpProbe(ProbeContext(host=HOST), open_after_seconds=OPEN_AFTER)
        self.probe.load()
        self.events: list = []
        self.lock = threading.Lock()
        self._closing = threading.Event()
        self._drainer = threading.Thread(target=self._drain_until_closed, daemon=True)
        self._drainer.start()

    def _drain(self) -> None:
        with self.lock:
            self.events += self.probe.drain()

    def _drain_until_closed(self) -> None:
        while not self._closing.wait(0.02):
            self._drain()

    def forget(self) -> None:
        """Drops the events delivered so far."""
        with self.lock:
            self.probe.drain()
            self.events = []

    def wait(self, predicate, n: int = 1, timeout: float = 10.0) -> list:
        deadline = time.monotonic() + timeout
        while True:
            self._drain()
            found = [e for e in self.events if predicate(e)]
            if len(found) >= n or time.monotonic() > deadline:
                drops = self.probe.drops_by_kind()
                assert len(found) == n, f"expected {n} matching events, got {found}; " + (
                    f"the kernel dropped events (by kind: {drops})" if drops else "no drops"
                )
                return found
            time.sleep(0.02)

    def close(self) -> None:
        self._closing.set()
        self._drainer.join()
        self.probe.close()


@pytest.fixture(scope="module")
def loaded_probe(ebpf_problems):
    skip_or_fail_without_ebpf(ebpf_problems)
    p = Probe()
    yield p
    p.close()


@pytest.fixture
def tcp(loaded_probe):
    """The module's probe, holding only events from this test on: a port number an earlier
    test used can come round again, and its events must not answer this test's waits."""
    loaded_probe.forget()
    return loaded_probe


class Peer:
    """One tcp_peer.py process: its pid, the lines it printed, and its process key."""

    def __init__(self, *args, cgroups=(), netns: str = ""):
        argv = (["ip", "netns", "exec", netns] if netns else []) + PEER + [str(a) for a in args]
        kw = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.proc = run_in(list(cgroups), argv, **kw) if cgroups else subprocess.Popen(argv, **kw)
        self.pid = self.proc.pid

    def line(self) -> str:
        text = self.proc.stdout.readline().strip()
        assert text, f"peer {self.pid} ended early (exit {self.proc.poll()})"
        return text

    def until_done(self) -> list[str]:
        """Lines printed before "done"; the process is still alive afterwards."""
        lines = []
        while (text := self.line()) != "done":
            lines.append(text)
        return lines

    def key(self) -> str:
        return process_key(HOST, self.pid, start_ticks(self.pid))

    def finish(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(10) == 0


def exchange(family: str, cgroups=()):
    """A server and a client process exchange SENT and RECEIVED bytes over one connection."""
    server = Peer("server", family, RECEIVED, SENT, 1, cgroups=cgroups)
    port = int(server.line())
    client = Peer("client", family, port, SENT, RECEIVED, 1, cgroups=cgroups)
    (client_port,) = map(int, client.until_done())
    server.until_done()
    keys = server.key(), client.key()
    server.finish()
    client.finish()
    return server, client, port, client_port, keys


@pytest.mark.parametrize("family,addr", [("ipv4", "127.0.0.1"), ("ipv6", "::1")])
def test_both_ends_attributed_with_exact_bytes(tcp, family, addr):
    server, client, port, client_port, (server_key, client_key) = exchange(family)

    def ours(e):
        return getattr(e, "remote_port", None) in (port, client_port) and e.local_port in (
            port,
            client_port,
        )

    (out,) = tcp.wait(lambda e: ours(e) and e.kind == "close" and e.direction == "outbound")
    (inb,) = tcp.wait(lambda e: ours(e) and e.kind == "close" and e.direction == "inbound")
    assert (out.pid, out.process_key, inb.pid, inb.process_key) == (
        client.pid,
        client_key,
        server.pid,
        server_key,
    )
    assert (out.bytes_sent, out.bytes_received) == (SENT, RECEIVED)
    assert (inb.bytes_sent, inb.bytes_received) == (RECEIVED, SENT)
    assert (out.family, out.local_addr, out.remote_addr) == (family, addr, addr)
    assert (out.local_port, out.remote_port, inb.local_port, inb.remote_port) == (
        client_port,
        port,
        port,
        client_port,
    )
    assert (out.outcome, out.closed_by, inb.outcome, inb.closed_by) == (
        "ok",
        "local",
        "ok",
        "remote",
    )
    assert out.duration_ns > 0 and inb.duration_ns > 0
    assert out.connection_id != inb.connection_id
    (listen,) = tcp.wait(lambda e: e.kind == "listen" and e.local_port == port)
    assert (listen.pid, listen.process_key, listen.local_addr) == (server.pid, server_key, addr)


def test_the_end_that_sent_the_first_fin_closed_the_connection(tcp):
    # Here the server closes first, and the client once it has read the server's FIN.
    server = Peer("server", "ipv4", RECEIVED, SENT, 1, "closes-first")
    port = int(server.line())
    client = Peer("client", "ipv4", port, SENT, RECEIVED, 1, "waits-for-eof")
    (client_port,) = map(int, client.until_done())
    server.until_done()
    server.finish()
    client.finish()
    (out,) = tcp.wait(
        lambda e: e.kind == "close" and (e.local_port, e.remote_port) == (client_port, port)
    )
    (inb,) = tcp.wait(
        lambda e: e.kind == "close" and (e.local_port, e.remote_port) == (port, client_port)
    )
    assert (out.direction, out.outcome, out.closed_by) == ("outbound", "ok", "remote")
    assert (inb.direction, inb.outcome, inb.closed_by) == ("inbound", "ok", "local")
    assert (out.bytes_sent, out.bytes_received, inb.bytes_sent, inb.bytes_received) == (
        SENT,
        RECEIVED,
        RECEIVED,
        SENT,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connect_to_closed_port_is_refused(tcp):
    port = closed_port()
    client = Peer("client", "ipv4", port, 1, 1, 1)
    assert client.until_done() == ["refused"]
    client.finish()
    (ev,) = tcp.wait(lambda e: getattr(e, "remote_port", 0) == port and e.pid == client.pid)
    assert (ev.kind, ev.direction, ev.outcome, ev.error) == (
        "connect_failed",
        "outbound",
        "refused",
        "ECONNREFUSED",
    )
    assert ev.resets == 1 and ev.local_port > 0 and ev.establish_ns > 0


def test_connect_that_is_never_answered_times_out(tcp, netns):
    # A full accept queue drops SYNs; in this namespace SYNs are resent once, after 1 s.
    subprocess.run(
        ["ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.tcp_syn_linear_timeouts=0"],
        check=True,
    )
    server = Peer("server", "ipv4", 0, 0, 0, "full", netns=netns)
    port = int(server.line())
    holder = Peer("client", "ipv4", port, 0, 0, 1, "hold", netns=netns)  # fills the queue
    holder.line()
    client = Peer("client", "ipv4", port, 0, 0, 1, "one-syn-retry", netns=netns)
    try:
        assert client.until_done() == ["timeout"]
    finally:
        for peer in (client, holder, server):
            peer.proc.stdin.close()
            peer.proc.wait(10)
    (ev,) = tcp.wait(lambda e: e.kind == "connect_failed" and e.pid == client.pid)
    assert (ev.direction, ev.outcome, ev.error, ev.remote_port) == (
        "outbound",
        "timeout",
        "ETIMEDOUT",
        port,
    )
    assert ev.retransmits == 1  # the SYN, resent once


def test_forked_worker_owns_each_accepted_connection(tcp):
    server = Peer("server", "ipv4", 10, 20, 3, "fork")
    port = int(server.line())
    client = Peer("client", "ipv4", port, 20, 10, 3)
    client_ports = [int(p) for p in client.until_done()]
    workers = dict(reversed(list(map(int, server.line().split()))) for _ in range(3))
    server.until_done()
    server.finish()
    client.finish()
    assert sorted(workers) == sorted(client_ports) and server.pid not in workers.values()
    closes = tcp.wait(
        lambda e: e.kind == "close" and e.direction == "inbound" and e.local_port == port, n=3
    )
    assert {e.remote_port: e.pid for e in closes} == workers
    assert all((e.bytes_received, e.bytes_sent) == (20, 10) for e in closes)


def test_preforked_worker_that_accepted_owns_the_connection(tcp):
    # No byte is read or written: the worker's close() names it, not the listener's owner.
    server = Peer("server", "ipv4", 0, 0, 2, "prefork")
    port = int(server.line())
    client = Peer("client", "ipv4", port, 0, 0, 2)
    client.until_done()
    workers = dict(reversed(list(map(int, server.line().split()))) for _ in range(2))
    server.until_done()
    server.finish()
    client.finish()
    closes = tcp.wait(
        lambda e: e.kind == "close" and e.direction == "inbound" and e.local_port == port, n=2
    )
    assert {e.remote_port: e.pid for e in closes} == workers
    assert server.pid not in workers.values()


def hold_one(family: str, to_server: int, to_client: int) -> tuple[Peer, Peer, int, int]:
    """A server and a client that hold one connection open after moving these bytes:
    (server, client, server port, client port). The client closes when its stdin does."""
    server = Peer("server", family, to_client, to_server, 1)
    port = int(server.line())
    client = Peer("client", family, port, to_server, to_client, 1, "hold")
    return server, client, port, int(client.line())


def announced(probe: Probe, port: int, client_port: int) -> list:
    """The `open` events of both ends of a connection held open."""
    return probe.wait(
        lambda e: e.kind == "open" and {e.local_port, e.remote_port} == {port, client_port}, n=2
    )


def test_long_lived_connection_is_announced_while_open(tcp):
    server, client, port, client_port = hold_one("ipv6", 4, 3)
    try:
        # Still open: the probe announces both ends once they are older than open_after.
        opened = announced(tcp, port, client_port)
        ends = {e.direction: (e.pid, e.local_port, e.remote_port) for e in opened}
        assert ends == {
            "outbound": (client.pid, client_port, port),
            "inbound": (server.pid, port, client_port),
        }
        client.proc.stdin.write("\n")
        client.proc.stdin.flush()
        client.until_done()
        server.until_done()
        closes = tcp.wait(
            lambda e: e.kind == "close" and {e.local_port, e.remote_port} == {port, client_port},
            n=2,
        )
        ids = {e.direction: e.connection_id for e in opened}
        assert {e.direction: e.connection_id for e in closes} == ids
    finally:
        server.finish()
        client.finish()


def test_a_failed_read_of_the_table_is_logged_and_read_again(ebpf_problems, caplog):
    # The first sweep raises (injected); the next one announces the held connection.
    skip_or_fail_without_ebpf(ebpf_problems)

    class FailsOnce(TcpProbe):
        failed = False

        def sweep_open(self):
            if not self.failed:
                self.failed = True
                raise RuntimeError("an injected fault reading the table")
            return super().sweep_open()

    probe = Probe(FailsOnce(ProbeContext(host=HOST), open_after_seconds=OPEN_AFTER))
    server, client, port, client_port = hold_one("ipv4", 0, 0)
    try:
        opened = announced(probe, port, client_port)
        assert {e.pid for e in opened} == {client.pid, server.pid}
    finally:
        client.proc.stdin.close()
        client.proc.wait(10)
        server.finish()
        probe.close()
    (logged,) = [r for r in caplog.records if "connection table" in r.getMessage()]
    assert "an injected fault reading the table" in logged.exc_text


def test_connection_open_before_the_probe_is_found_by_scan(ebpf_problems):
    skip_or_fail_without_ebpf(ebpf_problems)
    server = Peer("server", "ipv4", 5, 7, 1)
    port = int(server.line())
    client = Peer("client", "ipv4", port, 7, 5, 1, "hold")
    client_port = int(client.line())
    # Accepted, not just connected: until then the server's end has no owner to find.
    assert server.line() == f"accepted {client_port}"
    late = Probe()  # loaded after the connection was made
    try:
        ids = itertools.count()
        scanned = TcpScanner(HOST, BootClock()).scan(lambda: str(next(ids)))
        with late.lock:
            late.probe.adopt_scanned(scanned)
        conns = [e for e in scanned if isinstance(e, ConnectionEvent)]
        listeners = [e for e in scanned if isinstance(e, ListenEvent)]
        by_port = {(c.local_port, c.remote_port): c for c in conns}
        out, inb = by_port[(client_port, port)], by_port[(port, client_port)]
        assert (out.pid, out.direction, out.process_key) == (client.pid, "outbound", client.key())
        assert (inb.pid, inb.direction, inb.process_key) == (server.pid, "inbound", server.key())
        listening = [(x.pid, x.kind) for x in listeners if x.local_port == port]
        assert listening == [(server.pid, "scan")]
        client.proc.stdin.write("\n")
        client.proc.stdin.flush()
        assert client.until_done() == [str(client_port)]
        server.until_done()
        # The probe saw only the end; the owner comes from the scan.
        (end,) = late.wait(
            lambda e: e.kind == "close" and (e.local_port, e.remote_port) == (client_port, port)
        )
        assert (end.pid, end.direction, end.connection_id) == (
            client.pid,
            "outbound",
            out.connection_id,
        )
    finally:
        server.finish()
        client.finish()
        late.close()


def test_scan_leaves_out_connections_the_probe_already_tracks(tcp):
    server = Peer("server", "ipv4", 1, 1, 1)
    port = int(server.line())
    client = Peer("client", "ipv4", port, 1, 1, 1, "hold")
    try:
        client_port = int(client.line())
        # Accepted, not just connected: until then the server's end has no owner to find.
        assert server.line() == f"accepted {client_port}"
        ids = itertools.count()
        scanned = TcpScanner(HOST, BootClock()).scan(lambda: str(next(ids)))
        ours = [
            e
            for e in scanned
            if {e.local_port, getattr(e, "remote_port", 0)} == {port, client_port}
        ]
        assert len(ours) == 2  # both ends are in /proc/net/tcp ...
        with tcp.lock:
            tcp.probe.adopt_scanned(scanned)
            left = {(e.local_port, e.remote_port) for e in tcp.probe.scanned_open()}
        assert not left & {(port, client_port), (client_port, port)}  # ... and not kept twice
    finally:
        client.proc.stdin.write("\n")
        client.proc.stdin.flush()
        client.until_done()
        server.until_done()
        server.finish()
        client.finish()


def test_listener_from_the_scan_owns_connections_nobody_accepted(ebpf_problems):
    skip_or_fail_without_ebpf(ebpf_problems)
    server = Peer("server", "ipv4", 0, 0, 0)  # listens, never accepts
    port = int(server.line())
    server.until_done()
    late = Probe()  # loaded after listen(): only the scan knows who listens
    try:
        ids = itertools.count()
        scanned = TcpScanner(HOST, BootClock()).scan(lambda: str(next(ids)))
        with late.lock:
            late.probe.adopt_scanned(scanned)
        client = Peer("client", "ipv4", port, 0, 0, 1)
        (client_port,) = map(int, client.until_done())
        client.finish()
        server_key = server.key()
        server.finish()  # the listener closes, and the connection waiting in its queue with it
        (end,) = late.wait(
            lambda e: e.kind == "close" and (e.local_port, e.remote_port) == (port, client_port)
        )
        assert (end.direction, end.pid, end.process_key) == ("inbound", server.pid, server_key)
    finally:
        late.close()


def test_listeners_of_one_port_in_two_namespaces_each_own_their_connections(tcp):
    # Every network namespace has its own ports: two containers may both listen on 8080. Each
    # listener here owns the connection waiting in its queue, which nobody accepts.
    ends = {}
    with (
        private_netns(f"gt-tcp-a-{os.getpid()}") as a,
        private_netns(f"gt-tcp-b-{os.getpid()}") as b,
    ):
        servers = {ns: Peer("server", "ipv4", 0, 0, 0, "-", 8080, netns=ns) for ns in (a, b)}
        try:
            for server in servers.values():
                assert server.until_done() == ["8080"]
            for ns in (a, b):  # both listen before either is connected to
                client = Peer("client", "ipv4", 8080, 0, 0, 1, netns=ns)
                (client_port,) = map(int, client.until_done())
                client.finish()
                ends[client_port, servers[ns].pid] = servers[ns].key()
        finally:
            for server in servers.values():
                server.finish()  # the listener closes, and the connection in its queue with it
    closes = tcp.wait(
        lambda e: e.kind == "close" and e.local_port == 8080 and e.direction == "inbound",
        n=2,
    )
    assert {(e.remote_port, e.pid): e.process_key for e in closes} == ends


def scrape(collector) -> dict:
    registry = CollectorRegistry()
    registry.register(collector)
    samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_metrics_count_exactly_what_the_test_did(tcp):
    cid = fake_container_id()
    with cgroup_dirs(docker_scope_v2(cid)) as (cgroup,):
        with tcp.lock:
            tcp.probe.containers.rescan()
        started = time.monotonic()
        _server, _client, port, _cp, _keys = exchange("ipv4", cgroups=[cgroup])
        refused = Peer("client", "ipv4", closed_port(), 1, 1, 1, cgroups=[cgroup])
        assert refused.until_done() == ["refused"]
        refused.finish()
        # Both ends' closes: the kernel counts each end's close (duration, open gauge) when it
        # reaches TCP_CLOSE, and the server's end gets there last, on the client's final ACK.
        tcp.wait(lambda e: e.kind == "close" and getattr(e, "remote_port", 0) == port)
        tcp.wait(lambda e: e.kind == "close" and e.direction == "inbound" and e.local_port == port)
        tcp.wait(lambda e: e.kind == "connect_failed" and e.pid == refused.pid)
        at_most = time.monotonic() - started  # how long the connection can have lasted
        got = scrape(TcpCountsCollector(tcp.probe))
    c = cid[:12]

    def value(name, **labels):
        return got.get((name, tuple(sorted({"container": c, **labels}.items()))), 0)

    conns = "groundtruth_tcp_connections_total"
    assert value(conns, direction="outbound", outcome="ok", remote="ephemeral") == 1
    assert value(conns, direction="inbound", outcome="ok", remote=str(port)) == 1
    assert value(conns, direction="outbound", outcome="refused", remote="ephemeral") == 1
    assert value("groundtruth_tcp_bytes_total", direction="sent") == SENT + RECEIVED
    assert value("groundtruth_tcp_bytes_total", direction="received") == SENT + RECEIVED
    assert value("groundtruth_tcp_resets_total") == 1  # the refusal's RST, received
    assert value("groundtruth_tcp_retransmits_total") == 0
    for direction in ("outbound", "inbound"):
        count = "groundtruth_tcp_connection_duration_seconds_count"
        assert value(count, direction=direction) == 1
        assert value(count.replace("_count", "_bucket"), direction=direction, le="+Inf") == 1
        duration = value(count.replace("_count", "_sum"), direction=direction)
        assert 0 < duration <= at_most
        assert value("groundtruth_tcp_open_connections", direction=direction) == 0


def test_an_outbound_connection_to_a_well_known_port_is_counted_under_its_number(ebpf_problems):
    # Outbound ports are `ephemeral` in metrics unless configured as well-known (bounded labels).
    skip_or_fail_without_ebpf(ebpf_problems)
    port = closed_port()  # free now: the server below listens on it
    own = Probe(TcpProbe(ProbeContext(host=HOST), well_known_ports={port}))
    try:
        server = Peer("server", "ipv4", 1, 1, 1, "-", port)
        assert server.line() == str(port)
        client = Peer("client", "ipv4", port, 1, 1, 1)
        (client_port,) = map(int, client.until_done())
        server.until_done()
        server.finish()
        client.finish()
        own.wait(
            lambda e: e.kind == "close" and (e.local_port, e.remote_port) == (client_port, port)
        )
        got = scrape(TcpCountsCollector(own.probe))
    finally:
        own.close()
    labels = (
        ("container", ""),
        ("direction", "outbound"),
        ("outcome", "ok"),
        ("remote", str(port)),
    )
    assert got[("groundtruth_tcp_connections_total", labels)] == 1


def test_a_held_connection_is_open_and_its_bytes_counted_once(tcp):
    # The gauge follows the connection; its bytes, which the kernel counts for its cgroup when it
    # closes, are read from its slot while it is open. Both ends are in the container.
    cid = fake_container_id()
    with cgroup_dirs(docker_scope_v2(cid)) as (cgroup,):
        with tcp.lock:
            tcp.probe.containers.rescan()
        server = Peer("server", "ipv4", 7, 300, 1, cgroups=[cgroup])
        port = int(server.line())
        client = Peer("client", "ipv4", port, 300, 7, 1, "hold-after", cgroups=[cgroup])
        client_port = int(client.line())  # said once it has read the server's 7 bytes
        assert server.line() == f"accepted {client_port}"
        collector = TcpCountsCollector(tcp.probe)  # its counters' last values are its own
        while_open = scrape(collector)
        client.proc.stdin.write("\n")
        client.proc.stdin.flush()
        client.until_done()
        server.until_done()
        server.finish()
        client.finish()
        for ends in ((port, client_port), (client_port, port)):
            tcp.wait(
                lambda e, ends=ends: e.kind == "close" and (e.local_port, e.remote_port) == ends
            )
        after = scrape(collector)
        from_the_kernel_alone = scrape(TcpCountsCollector(tcp.probe))
    container = ("container", cid[:12])
    for direction in ("outbound", "inbound"):
        key = ("groundtruth_tcp_open_connections", (container, ("direction", direction)))
        assert (while_open[key], after[key]) == (1, 0)
    for direction in ("sent", "received"):
        key = ("groundtruth_tcp_bytes_total", (container, ("direction", direction)))
        assert (while_open[key], after[key], from_the_kernel_alone[key]) == (307, 307, 307)


def test_byte_counters_never_go_down_between_scrapes():
    # A connection that closes between a scrape's read of the closed ones and of the open ones
    # is in neither, for that scrape: the counter holds its last value instead of going down.
    collector = TcpCountsCollector(SimpleNamespace(conn_table=None))
    first = Counter({("sent", ""): 500, ("received", ""): 40})
    collector.add_open_bytes(first)
    missed = Counter({("sent", ""): 300})
    collector.add_open_bytes(missed)
    assert missed == Counter({("sent", ""): 500, ("received", ""): 40})
    later = Counter({("sent", ""): 650, ("received", ""): 41})
    collector.add_open_bytes(later)
    assert later == Counter({("sent", ""): 650, ("received", ""): 41})


def test_a_connection_waiting_to_be_accepted_is_open_under_its_listener(tcp):
    # Established by the kernel and waiting in the listener's queue: open, and counted under the
    # listener's container, before any process accepts it (the client is on the host).
    cid = fake_container_id()
    container = ("container", cid[:12])
    with cgroup_dirs(docker_scope_v2(cid)) as (cgroup,):
        with tcp.lock:
            tcp.probe.containers.rescan()
        server = Peer("server", "ipv4", 0, 0, 0, cgroups=[cgroup])  # listens, never accepts
        port = int(server.line())
        server.until_done()
        client = Peer("client", "ipv4", port, 0, 0, 1, "hold")
        client_port = int(client.line())
        open_inbound = ("groundtruth_tcp_open_connections", (container, ("direction", "inbound")))
        deadline = time.monotonic() + 5  # the server's end is established on the client's ACK
        while (queued := scrape(TcpCountsCollector(tcp.probe))).get(open_inbound) != 1:
            assert time.monotonic() < deadline, "the queued connection was never counted open"
            time.sleep(0.05)
        client.proc.stdin.write("\n")
        client.proc.stdin.flush()
        client.until_done()
        client.finish()
        server.finish()  # the listener closes, and the connection in its queue with it
        (end,) = tcp.wait(
            lambda e: e.kind == "close" and (e.local_port, e.remote_port) == (port, client_port)
        )
        after = scrape(TcpCountsCollector(tcp.probe))
    opened = (
        "groundtruth_tcp_connections_total",
        (container, ("direction", "inbound"), ("outcome", "ok"), ("remote", str(port))),
    )
    assert (queued[opened], after[opened], after[open_inbound]) == (1, 1, 0)
    assert (end.direction, end.pid) == ("inbound", server.pid)


def test_selftest_canary_passes(tcp):
    own = process_key(HOST, os.getpid(), start_ticks(os.getpid()))
    delivered = []
    with tcp.lock:  # the self-test drains the probe itself
        assert run_tcp_selftest(tcp.probe, delivered.extend, own_key=own) == {}
        tcp.events += delivered


@contextlib.contextmanager
def private_netns(name: str):
    """A network namespace of the test's own, its loopback up (`ip netns exec` keeps the pid)."""
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


@pytest.fixture
def netns():
    """A private network namespace whose loopback the test may take down."""
    with private_netns(f"gt-tcp-test-{os.getpid()}") as name:
        yield name


def test_retransmits_joined_to_their_connection_and_counted(tcp, netns):
    cid = fake_container_id()
    with cgroup_dirs(docker_scope_v2(cid)) as (cgroup,):
        with tcp.lock:
            tcp.probe.containers.rescan()
        server = Peer("server", "ipv4", 5, 1000, 1, cgroups=[cgroup], netns=netns)
        port = int(server.line())
        client = Peer("client", "ipv4", port, 1000, 5, 1, "hold", cgroups=[cgroup], netns=netns)
        client_port = int(client.line())
        # With loopback down the client's data cannot leave; the RTO timer resends it once
        # loopback is back.
        loopback = ["ip", "netns", "exec", netns, "ip", "link", "set", "lo"]
        subprocess.run([*loopback, "down"], check=True)
        client.proc.stdin.write("\n")
        client.proc.stdin.flush()
        time.sleep(0.5)
        subprocess.run([*loopback, "up"], check=True)
        assert client.until_done() == [str(client_port)]
        server.until_done()
        server.finish()
        client.finish()
        closes = tcp.wait(
            lambda e: e.kind == "close" and {e.local_port, e.remote_port} == {port, client_port},
            n=2,
        )
        got = scrape(TcpCountsCollector(tcp.probe))
    ends = {e.direction: e for e in closes}
    assert ends["outbound"].retransmits >= 1 and ends["outbound"].bytes_sent == 1000
    assert ends["inbound"].bytes_received == 1000
    key = ("groundtruth_tcp_retransmits_total", (("container", cid[:12]),))
    assert got[key] == ends["outbound"].retransmits + ends["inbound"].retransmits


def test_a_full_connection_table_counts_every_socket_it_could_not_track(ebpf_problems, netns):
    # Room for 2 connections (4 slots), 6 held open in a private namespace: 12 sockets, both
    # ends of each. The first 4 are tracked; the other 8 are counted as not tracked, and their
    # ends still arrive, marked untracked. Nothing else can reach this namespace's sockets.
    skip_or_fail_without_ebpf(ebpf_problems)
    inum = os.stat(f"/run/netns/{netns}").st_ino
    ctx = ProbeContext(host=HOST, netns_inum=inum)
    probe = Probe(TcpProbe(ctx, conns_max=2, open_after_seconds=OPEN_AFTER))
    server = Peer("server", "ipv4", 0, 0, 6, netns=netns)
    port = int(server.line())
    clients = [Peer("client", "ipv4", port, 0, 0, 1, "hold", netns=netns) for _ in range(6)]
    try:
        client_ports = [int(c.line()) for c in clients]
        ports = set(client_ports)
        ours = lambda e: e.local_port in ports or e.remote_port in ports  # noqa: E731
        opened = probe.wait(lambda e: e.kind == "open" and ours(e), n=4)
        assert probe.probe.conns_untracked() == 8
        for c, client_port in zip(clients, client_ports, strict=True):
            c.proc.stdin.write("\n")  # closes its connection
            c.proc.stdin.flush()
            assert c.until_done() == [str(client_port)]
        assert sorted(server.until_done()) == sorted(f"accepted {p}" for p in client_ports)
        closes = probe.wait(lambda e: e.kind == "close" and ours(e), n=12)
        untracked = [e for e in closes if e.direction == ""]
        assert len(untracked) == 8
        tracked = {e.connection_id for e in closes if e.direction}
        assert tracked == {e.connection_id for e in opened}
    finally:
        for peer in (*clients, server):
            peer.proc.stdin.close()
            peer.proc.wait(10)
        probe.close()


def test_the_table_is_read_whole_while_connections_come_and_go(tcp):
    # The sweep reads the kernel's table while the kernel changes it: here while 1,000
    # connections open and close. Each read sees whole slots and none ends in an error.
    server = Peer("server", "ipv4", 0, 0, 1000)
    port = int(server.line())
    client = Peer("client", "ipv4", port, 0, 0, 1000)
    table = tcp.probe.conn_table
    seen = reads = 0
    deadline = time.monotonic() + 30
    try:
        # At least 300 reads, and on until one met connections: the client, a process of its
        # own, may not have begun by the time 300 reads are done.
        while (reads < 300 or not seen) and time.monotonic() < deadline:
            taken = table.taken()
            assert all(0 <= slot < table.slots and sk for slot, sk, _ in taken)
            seen += len(taken)
            reads += 1
        assert len(client.until_done()) == 1000
        assert len(server.until_done()) == 1000
    finally:
        for peer in (client, server):
            peer.proc.stdin.close()
            peer.proc.wait(30)
    assert seen  # the reads met connections in the table
