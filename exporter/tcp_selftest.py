"""Start-up self-test of the TCP probe: a canary connection on loopback with known bytes.

The exporter opens a listener, connects to it and accepts, sends a known number of bytes each
way, closes both ends, then drains the probe until both close events arrive and compares what
it can know exactly: owner pid and process key, ports, direction and bytes each way. A field
that does not match is reported and blanked from then on (``TcpProbe.untrusted``).
"""

from __future__ import annotations

import os
import socket
import time

from exporter.netns import run_in_netns

CANARY_SENT, CANARY_RECEIVED = 3001, 211  # client -> server, server -> client

# Which event fields a failed check makes untrustworthy (``TcpProbe.untrusted``).
UNTRUSTED_FIELDS = {
    "pid": {"pid", "process_key", "comm"},
    "process_key": {"process_key"},
    "bytes": {"bytes_sent", "bytes_received"},
}


def canary_connection() -> tuple[int, int]:
    """Open, use and close one loopback connection; return (listening port, client port)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = listener.accept()
        client.sendall(b"c" * CANARY_SENT)
        got = 0
        while got < CANARY_SENT:
            got += len(conn.recv(65536))
        conn.sendall(b"s" * CANARY_RECEIVED)
        got = 0
        while got < CANARY_RECEIVED:
            got += len(client.recv(65536))
        client_port = client.getsockname()[1]
        client.close()
        conn.close()
    return port, client_port


def run_tcp_selftest(
    probe, on_events, own_key: str = "", timeout: float = 10.0, netns: str = ""
) -> dict[str, str]:
    """Run the canary; return {check: what was wrong} ({} when everything matched).

    ``on_events`` receives every drained batch, so events seen meanwhile are not lost.
    ``own_key`` is this process's process key, checked when given. With ``netns`` (the
    exporter's filter) the canary's sockets are made in that network namespace (its loopback).
    """
    try:
        port, client_port = run_in_netns(netns, canary_connection)
    except OSError as e:  # e.g. a namespace whose loopback is down
        return {"connection": f"canary connection failed: {e}"}
    found = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(found) < 2:
        batch = probe.drain()
        on_events(batch)
        for ev in batch:
            if getattr(ev, "kind", "") != "close" or not hasattr(ev, "direction"):
                continue
            if (ev.direction, ev.local_port, ev.remote_port) in (
                ("outbound", client_port, port),
                ("inbound", port, client_port),
            ):
                found[ev.direction] = ev
        time.sleep(0.02)
    missing = {"outbound", "inbound"} - found.keys()
    if missing:
        return {"events": f"no close event for the canary's {', '.join(sorted(missing))} end"}
    out, inb = found["outbound"], found["inbound"]
    expected = {
        "pid": ((out.pid, inb.pid), (os.getpid(), os.getpid())),
        "bytes": (
            (out.bytes_sent, out.bytes_received, inb.bytes_sent, inb.bytes_received),
            (CANARY_SENT, CANARY_RECEIVED, CANARY_RECEIVED, CANARY_SENT),
        ),
    }
    if own_key:
        expected["process_key"] = ((out.process_key, inb.process_key), (own_key, own_key))
    return {
        check: f"canary {check} decoded as {got!r}, expected {want!r}"
        for check, (got, want) in expected.items()
        if got != want
    }
