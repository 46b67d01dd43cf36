"""TCP probe: short-lived loopback HTTP connections (wrk, `Connection: close`, one connection per
request) against a small local server: requests/s with the probe loaded and drained against
without it, every connection accounted for, and CPU per event against a counting-only floor."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from bench.floor import counting_only
from bench.result import Result
from exporter.probes.base import ProbeContext
from exporter.probes.tcp import TcpProbe

ROUNDS = 5
SECONDS = 2
SERVER = [sys.executable, str(Path(__file__).with_name("tiny_http.py"))]


CountingOnlyProbe = counting_only(TcpProbe)


def wrk(port: int) -> float:
    """Requests per second of one wrk run, each request on a new connection."""
    out = subprocess.run(
        ["wrk", "-t1", "-c4", f"-d{SECONDS}s", "-H", "Connection: close",
         f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not found:
        raise RuntimeError(f"wrk printed no rate: {out!r}")
    return float(found.group(1))


def serve_and_load(drain=None, tally=None) -> tuple[float, int, int, float]:
    """(requests/s, server port, connections the server accepted, CPU s of this process) of
    one wrk run against a fresh server, with `drain` called every 50 ms meanwhile; `tally`
    learns the server's port."""
    server = subprocess.Popen(SERVER, stdout=subprocess.PIPE, text=True)
    stop = threading.Event()
    thread = None
    if drain is not None:

        def loop():
            while not stop.wait(0.05):
                drain()

        thread = threading.Thread(target=loop, daemon=True)
    try:
        port = int(server.stdout.readline())
        if tally is not None:
            tally.port = port
        cpu0 = time.process_time()
        if thread:
            thread.start()
        rate = wrk(port)
        time.sleep(0.3)  # let the server take what is left in its accept queue
    finally:
        server.terminate()
        accepted = int(server.stdout.readline() or 0)
        server.wait(10)
        stop.set()
        if thread:
            thread.join()
            drain()
    return rate, port, accepted, time.process_time() - cpu0


class CloseTally:
    """A sink that keeps nothing: it counts each end's close events of the server's port."""

    def __init__(self):
        self.port = 0
        self.events = 0
        self.ends = Counter()

    def write(self, events: list) -> None:
        self.events += len(events)
        for e in events:
            if e.kind == "close" and self.port in (e.local_port, e.remote_port):
                self.ends[e.direction] += 1


def with_probe(probe) -> tuple[float, float, int, int, int]:
    """(requests/s, CPU s, events drained, connections accepted, connections accounted for)."""
    probe.load()
    tally = CloseTally()
    try:
        rate, port, accepted, cpu = serve_and_load(lambda: tally.write(probe.drain()), tally)
        drops = sum(probe.kernel_drops().values())
    finally:
        probe.close()
    if drops:
        raise RuntimeError(f"{drops} events dropped in the kernel")
    both = min(tally.ends["inbound"], tally.ends["outbound"])
    accounted = both if tally.ends["inbound"] == tally.ends["outbound"] else -1
    return rate, cpu, tally.events, accepted, accounted


def run() -> list[Result]:
    serve_and_load()  # warm up
    base, full, floor_rates = [], [], []
    cpu = floor_cpu = 0.0
    events = floor_events = accepted = accounted = 0
    # Interleaved rounds: the machine is shared, so each figure sees the same background load.
    for _ in range(ROUNDS):
        base.append(serve_and_load()[0])
        rate, c, n, acc, ok = with_probe(TcpProbe(ProbeContext(host="bench")))
        full.append(rate)
        cpu, events, accepted, accounted = cpu + c, events + n, accepted + acc, accounted + ok
        floor = CountingOnlyProbe(ProbeContext(host="bench"))
        floor.load()
        try:
            floor_rate, _port, _acc, c = serve_and_load(floor.drain)
        finally:
            floor.close()
        floor_rates.append(floor_rate)
        floor_cpu, floor_events = floor_cpu + c, floor_events + floor.seen
    rate, base_rate = statistics.median(full), statistics.median(base)
    per_event, floor_per_event = cpu / events * 1e6, floor_cpu / floor_events * 1e6
    floor_rate = statistics.median(floor_rates)
    return [
        Result(
            "loopback HTTP, new connection per request, with the TCP probe",
            rate,
            "req/s",
            "without the probe",
            base_rate,
            ">= 0.95x",
            rate >= 0.95 * base_rate,
            f"median of {ROUNDS} x {SECONDS} s wrk runs",
        ),
        Result(
            "the same with a counting-only consumer (the kernel side's cost alone)",
            floor_rate,
            "req/s",
            "without the probe",
            base_rate,
            note=f"median of {ROUNDS}",
        ),
        Result(
            "connections accounted for (close events, both ends)",
            accounted,
            "connections",
            "connections accepted by the server",
            accepted,
            "= 1.00x",
            accounted == accepted,
        ),
        Result(
            "probe CPU per event, full path (drain and decode)",
            per_event,
            "us",
            "counting-only ring buffer consumer",
            floor_per_event,
            "<= 3x",
            per_event <= 3 * floor_per_event,
            f"{events} events",
        ),
    ]
