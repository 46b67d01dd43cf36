"""TCP counters kept in the TCP probe's BPF maps: connections, durations, bytes, retransmits.

The kernel counts per (cgroup id, kind, port, direction, outcome); this collector turns cgroup
ids into bounded container labels and ports into the bounded ``remote`` label at scrape time:
the listening port for inbound connections; for outbound ones the remote port when it is in the
probe's list of well-known ports, else ``ephemeral``. Connections found open by the start-up
scan are added to the open-connections gauge until the probe sees them close.

Bytes: the kernel counts a tracked connection's bytes for its cgroup when it closes (in
``closes``), and keeps those of open ones in their slots of the connection table. A scrape reads
the closed ones first, then the open ones: a connection that closes in between is in neither,
for that scrape only, so the byte counters are kept from going down (a Prometheus counter that
goes down reads as a reset).
"""

from __future__ import annotations

from collections import Counter

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from exporter.collectors.errors import CollectorErrors
from exporter.labels import BoundedLabels
from exporter.probes.tcp import (
    C_BYTES_RECEIVED,
    C_BYTES_SENT,
    C_OPENED,
    C_RESETS,
    C_RETRANSMITS,
    DURATION_BOUNDS_S,
    OUTCOMES,
)

BYTE_KINDS = {C_BYTES_SENT: "sent", C_BYTES_RECEIVED: "received"}

EPHEMERAL = "ephemeral"


def direction(inbound: int) -> str:
    return "inbound" if inbound else "outbound"


def remote_label(bounded: BoundedLabels, inbound: int, port: int) -> str:
    """The ``remote`` label: the port (the kernel reports 0 for an outbound port that is not
    well-known), capped."""
    if not inbound and port == 0:
        return EPHEMERAL
    return bounded(str(port))


class TcpCountsCollector(Collector):
    def __init__(
        self,
        probe,
        container_cap: int = 200,
        remote_cap: int = 100,
    ):
        self.probe = probe
        self.containers = BoundedLabels(container_cap)
        self.remotes = BoundedLabels(remote_cap)
        self.errors = CollectorErrors("tcp_counts")
        self._bytes_reported: Counter = Counter()  # the byte counters' last values

    def _container_label(self, cgroup_id: int) -> str:
        found = self.probe.containers.by_cgroup_id(cgroup_id)
        return self.containers(found.short_id) if found else ""

    def read_counts(self) -> dict[str, Counter]:
        """Sums by metric and labels, from the BPF map (its overflow is a kernel-stage drop)."""
        c: dict[str, Counter] = {
            name: Counter() for name in ("conns", "closed", "buckets", "sum", "bytes")
        }
        c["retransmits"], c["resets"] = Counter(), Counter()
        for key, value in self.probe.bpf[b"counts"].items():
            container, n, way = self._container_label(key.cgroup_id), sum(value), key.inbound
            if key.kind == C_OPENED:
                outcome = OUTCOMES.get(key.outcome, "error")
                remote = remote_label(self.remotes, way, key.port)
                c["conns"][(direction(way), outcome, container, remote)] += n
            elif key.kind in BYTE_KINDS:
                c["bytes"][(BYTE_KINDS[key.kind], container)] += n
            elif key.kind == C_RETRANSMITS:
                c["retransmits"][(container,)] += n
            elif key.kind == C_RESETS:
                c["resets"][(container,)] += n
        # Closed connections: a count and a duration sum per bucket (one per connection end).
        for key, per_cpu in self.probe.bpf[b"closes"].items():
            way, container = direction(key.inbound), self._container_label(key.cgroup_id)
            closed = sum(v.closed for v in per_cpu)
            c["buckets"][(way, container, key.bucket)] += closed
            c["closed"][(way, container)] += closed
            c["sum"][(way, container)] += sum(v.duration_sum_us for v in per_cpu) / 1e6
            c["bytes"][("sent", container)] += sum(v.bytes_sent for v in per_cpu)
            c["bytes"][("received", container)] += sum(v.bytes_received for v in per_cpu)
        self.add_open_bytes(c["bytes"])
        return c

    def add_open_bytes(self, by_labels: Counter) -> None:
        """Add the bytes so far of connections still open (read after `closes`), then keep
        every byte counter at least at its last value."""
        table = self.probe.conn_table
        if table is not None:
            found = table.open_bytes()
            for cgroup_id, sent, received in zip(
                found["cgroup_id"].tolist(), found["sent"].tolist(), found["received"].tolist(),
                strict=True,
            ):  # fmt: skip
                container = self._container_label(cgroup_id)
                by_labels[("sent", container)] += sent
                by_labels[("received", container)] += received
        for labels in set(by_labels) | set(self._bytes_reported):
            by_labels[labels] = max(by_labels[labels], self._bytes_reported[labels])
        self._bytes_reported = Counter(by_labels)

    def open_connections(self, c: dict[str, Counter]) -> Counter:
        """Established minus closed, per direction and container, plus the scan's still open."""
        gauge: Counter = Counter()
        for (way, outcome, container, _remote), n in c["conns"].items():
            if outcome == "ok":
                gauge[(way, container)] += n
        for key, n in c["closed"].items():
            gauge[key] -= n
        for ev in self.probe.scanned_open():
            found = self.probe.containers.by_cgroup_id(ev.cgroup_id)
            gauge[(ev.direction, self.containers(found.short_id) if found else "")] += 1
        return gauge

    @staticmethod
    def _families() -> tuple[list[CounterMetricFamily], HistogramMetricFamily, GaugeMetricFamily]:
        """(connections, bytes, retransmits, resets counters; the duration histogram; the open
        connections gauge)."""
        counters = [
            CounterMetricFamily(
                "groundtruth_tcp_connections",
                "TCP connections opened (outbound attempts, inbound established), by outcome.",
                labels=["direction", "outcome", "container", "remote"],
            ),
            CounterMetricFamily(
                "groundtruth_tcp_bytes",
                "Bytes written (sent) and read (received) on TCP connections by processes.",
                labels=["direction", "container"],
            ),
            CounterMetricFamily(
                "groundtruth_tcp_retransmits", "TCP segments retransmitted.", labels=["container"]
            ),
            CounterMetricFamily(
                "groundtruth_tcp_resets", "TCP RSTs sent and received.", labels=["container"]
            ),
        ]
        histogram = HistogramMetricFamily(
            "groundtruth_tcp_connection_duration_seconds",
            "Time established of closed TCP connections, by direction and container.",
            labels=["direction", "container"],
        )
        open_now = GaugeMetricFamily(
            "groundtruth_tcp_open_connections",
            "TCP connections open now, by direction and container.",
            labels=["direction", "container"],
        )
        return counters, histogram, open_now

    def describe(self):
        counters, histogram, open_now = self._families()
        return [*counters, histogram, open_now]

    def histogram(self, c: dict[str, Counter], family: HistogramMetricFamily) -> None:
        for way, container in sorted({k[:2] for k in c["buckets"]}):
            cumulative, buckets = 0, []
            for i, bound in enumerate(DURATION_BOUNDS_S):
                cumulative += c["buckets"].get((way, container, i), 0)
                buckets.append((str(float(bound)), cumulative))
            cumulative += c["buckets"].get((way, container, len(DURATION_BOUNDS_S)), 0)
            buckets.append(("+Inf", cumulative))
            family.add_metric([way, container], buckets, c["sum"].get((way, container), 0.0))

    def collect(self):
        if self.probe.bpf is None:
            return
        try:
            c = self.read_counts()
            gauge = self.open_connections(c)
        except Exception as e:  # noqa: BLE001 - a scrape never raises
            self.errors.failed(e)
            return
        self.errors.succeeded()
        counters, histogram, open_family = self._families()
        values = (c["conns"], c["bytes"], c["retransmits"], c["resets"])
        for family, by_labels in zip(counters, values, strict=True):
            for label_values, n in sorted(by_labels.items()):
                family.add_metric(list(label_values), n)
            yield family
        self.histogram(c, histogram)
        yield histogram
        for label_values, n in sorted(gauge.items()):
            open_family.add_metric(list(label_values), max(n, 0))
        yield open_family
