"""The TCP connection probe: decodes bpf/tcp.c's events into ConnectionEvents and ListenEvents.

Decoding only: addresses, process keys, containers, outcomes and wall-clock times are derived
here from what the kernel sent; counting for metrics happens in the BPF maps (see
``exporter.collectors.tcp_counts``). Connections open before the probe loaded are known from
the start-up scan (``exporter.tcp_scan``): their close events are matched to it by address.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import struct
import time
from functools import lru_cache

from exporter.btf import member_offset
from exporter.containers import NO_CONTAINER, ContainerResolver
from exporter.netns import own_netns_inode, sock_netns_defines
from exporter.probes.base import TASK_OFFSETS, BpfProbe, ProbeContext
from exporter.probes.conn_table import ConnTable, slots_for
from exporter.probes.process import TICK_NS, cstr, errno_name
from exporter.process_table import ProcessTable
from schema.events import ConnectionEvent, ListenEvent, process_key

# struct tcp_event in bpf/tcp.h: six u64, struct owner, struct addrs, four u32. The field
# order of ConnectionEvent and ListenEvent is relied on by decode_batch() (positional, for speed).
EVENT = struct.Struct("<6Q2QII16s16s16s4H3Ii")
# What decode_batch() unpacks of it: the owner's comm is skipped (read only when the owner is not
# cached) and both addresses come as one 32-byte string (the key of their text form's cache).
EVENT_DECODED = struct.Struct("<6Q2QII16x32s4H3Ii")
COMM_AT, COMM_LEN = struct.calcsize("<6Q2QII"), 16  # struct owner.comm

EV_CLOSE, EV_CONNECT_FAILED, EV_LISTEN, EV_LISTEN_CLOSE = range(1, 5)
EV_OPEN = 0  # not sent by the kernel: announced by TcpProbe.sweep_open()
KIND_NAMES = {
    EV_OPEN: "open",
    EV_CLOSE: "close",
    EV_CONNECT_FAILED: "connect_failed",
    EV_LISTEN: "listen",
    EV_LISTEN_CLOSE: "listen_close",
}
F_INBOUND, F_OWNER_CLOSE, F_OWNER_IO, F_COUNTED = 1, 2, 4, 8
F_RESET_SENT, F_RESET_RECEIVED, F_CLOSED_LOCAL, F_CLOSED_REMOTE, F_UNTRACKED = 16, 32, 64, 128, 256

# count_kind and outcome: the keys of the `counts` map (read by collectors/tcp_counts.py).
C_OPENED = 1  # (2, 3, 4: closed connections and their durations, now the `closes` map)
C_BYTES_SENT, C_BYTES_RECEIVED, C_RETRANSMITS, C_RESETS = 5, 6, 7, 8
OUTCOMES = {0: "ok", 1: "refused", 2: "timeout", 3: "reset", 4: "error"}

AF_INET, AF_INET6 = 2, 10
FAMILIES = {AF_INET: "ipv4", AF_INET6: "ipv6"}
OWNER_CACHE_MAX = 4096

# Upper bounds of the connection duration histogram; the BPF side buckets with the same list.
DURATION_BOUNDS_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600)

# Outbound remote ports counted under their own number in metrics; others are `ephemeral`.
WELL_KNOWN_PORTS = frozenset(
    {
        22, 25, 53, 80, 110, 143, 389, 443, 465, 587, 636, 993, 995, 1433, 1521, 2049, 2181,
        2379, 3000, 3306, 4222, 5432, 5672, 6379, 6443, 8080, 8123, 8443, 9000, 9042, 9090,
        9092, 9093, 9200, 9300, 9435, 11211, 15672, 27017,
    }
)  # fmt: skip

# Kernel struct members read by tcp.c (offsets from the running kernel's BTF).
TCP_OFFSETS = {
    **TASK_OFFSETS,
    "SOCK_SK_ERR": ("sock", "sk_err"),
    "SK_PROTOCOL": ("sock", "sk_protocol"),
    "SK_FAMILY": ("sock", "__sk_common.skc_family"),
    # The local port as the formatted tracepoint reads it (skc_num is 0 once the port is
    # released, before the change to CLOSE is traced).
    "INET_SPORT": ("inet_sock", "inet_sport"),
    "SK_DPORT": ("sock", "__sk_common.skc_dport"),
    "SK_RCV_SADDR": ("sock", "__sk_common.skc_rcv_saddr"),
    "SK_DADDR": ("sock", "__sk_common.skc_daddr"),
    "SK_V6_RCV_SADDR": ("sock", "__sk_common.skc_v6_rcv_saddr"),
    "SK_V6_DADDR": ("sock", "__sk_common.skc_v6_daddr"),
}

# Read from the head of struct sock_common in one go (read_addrs in bpf/tcp.c).
SOCK_HEAD_FIELDS = {
    "SK_FAMILY": 2, "SK_DPORT": 2, "SK_RCV_SADDR": 4, "SK_DADDR": 4, "SK_V6_RCV_SADDR": 16,
    "SK_V6_DADDR": 16,
}  # fmt: skip


def sock_head_length() -> int:
    """Bytes from the start of struct sock that hold every field of SOCK_HEAD_FIELDS."""
    end = max(member_offset(*TCP_OFFSETS[name]) + size for name, size in SOCK_HEAD_FIELDS.items())
    return (end + 7) & ~7


# Socket errors that name an outcome; any other error is `error`.
ERROR_OUTCOMES = {
    errno.ECONNREFUSED: "refused",
    errno.ETIMEDOUT: "timeout",
    errno.ECONNRESET: "reset",
    errno.EPIPE: "reset",
}


@lru_cache(maxsize=4096)
def ip_address(family: int, raw: bytes) -> str:
    """Text form of a tracepoint address (IPv4 in the first 4 bytes), as inet_ntop writes it."""
    if family == AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw[:16])
    return socket.inet_ntop(socket.AF_INET, raw[:4])


def close_outcome(flags: int, err: int) -> str:
    """How an established connection ended: ok, reset, timeout or error."""
    if flags & (F_RESET_SENT | F_RESET_RECEIVED):
        return "reset"
    if err:
        return ERROR_OUTCOMES.get(err, "error")
    return "ok"


def closed_by(flags: int) -> str:
    """Who ended the connection: the first FIN decides, else the RST."""
    if flags & F_CLOSED_LOCAL:
        return "local"
    if flags & F_CLOSED_REMOTE:
        return "remote"
    if flags & F_RESET_SENT:
        return "local"
    if flags & F_RESET_RECEIVED:
        return "remote"
    return ""


# Decoding is the exporter's per-event cost: the few distinct combinations of flags and
# addresses are computed once.
@lru_cache(maxsize=1024)
def end_labels(kind: int, flags: int, err: int) -> tuple[str, str, str, int, str]:
    """(direction, outcome, error name, resets, closed_by) of a connection event."""
    if kind == EV_CONNECT_FAILED:
        outcome, closer = ERROR_OUTCOMES.get(err, "error"), ""
    elif kind == EV_CLOSE:
        outcome, closer = close_outcome(flags, err), closed_by(flags)
    else:
        outcome, closer = "ok", ""
    resets = bool(flags & F_RESET_SENT) + bool(flags & F_RESET_RECEIVED)
    direction = "inbound" if flags & F_INBOUND else "outbound"
    return direction, outcome, errno_name(err), resets, closer


@lru_cache(maxsize=4096)
def addresses(family: int, saddr_daddr: bytes) -> tuple[str, str, str]:
    """(family name, local address, remote address) from both addresses, 16 bytes each."""
    return (
        FAMILIES.get(family, ""),
        ip_address(family, saddr_daddr[:16]),
        ip_address(family, saddr_daddr[16:]),
    )


def tuple_key(family: str, laddr: str, lport: int, raddr: str, rport: int) -> tuple:
    """Identity of a connection both the scan and a close event can compute."""
    return (family, laddr, lport, raddr, rport)


class TcpProbe(BpfProbe):
    name = "tcp"
    source = "tcp.c"
    offsets = TCP_OFFSETS

    def __init__(
        self,
        ctx: ProbeContext,
        containers: ContainerResolver | None = None,
        table: ProcessTable | None = None,
        counts_max: int = 16384,
        conns_max: int = 65536,
        open_after_seconds: float = 5.0,
        well_known_ports=WELL_KNOWN_PORTS,
        sessions=None,
    ):
        super().__init__(ctx)
        self.containers = containers or ContainerResolver()
        # The process probe's table, when there is one: containers by pid without /proc reads.
        self.table = table
        # The process probe's login sessions (SessionWorkloads): a host process's workload.
        self.sessions = sessions
        self.counts_max = counts_max
        self.conns_max = conns_max
        self.conn_slots = slots_for(conns_max)  # CONN_SLOTS, the size of the kernel's table
        self.conn_table: ConnTable | None = None  # the kernel's, mapped (load())
        # Connections still open after this long are announced with an `open` event.
        self.open_after_seconds = open_after_seconds
        self._next_sweep = 0.0
        self._announced: set[tuple[int, int]] = set()
        self.well_known_ports = frozenset(well_known_ports)
        if len(self.well_known_ports) > 1024 or not all(
            0 < p < 65536 for p in self.well_known_ports
        ):
            raise ValueError("well_known_ports: at most 1024 ports, each 1-65535")
        self._run_id = os.urandom(4).hex()
        self._owners: dict[tuple, tuple] = {}
        self._seq = itertools.count()
        # Connections open at start-up (from the scan), by address tuple, until they close.
        self.scanned: dict[tuple, ConnectionEvent] = {}

    def defines(self) -> dict[str, int]:
        bounds = {f"DURATION_BOUND_{i}": int(s * 1e9) for i, s in enumerate(DURATION_BOUNDS_S)}
        return {
            **super().defines(),
            "SK_HEAD_LEN": sock_head_length(),
            "COUNTS_MAX": self.counts_max,
            "CONN_SLOTS": self.conn_slots,
            **bounds,
            **sock_netns_defines(self.ctx.netns_inum),
        }

    def load(self) -> None:
        super().load()
        self.conn_table = ConnTable(self.bpf, self.conn_slots)
        table = self.bpf[b"remote_ports"]
        for port in self.well_known_ports:
            table[table.Key(port)] = table.Leaf(1)

    def next_event_id(self) -> str:
        return f"{self._run_id}-{next(self._seq)}"

    def take_event_ids(self, n: int) -> int:
        """Reserves n consecutive event sequence numbers; returns the first."""
        first = next(self._seq)
        self._seq = itertools.count(first + n)
        return first

    def key(self, pid: int, start_boot_ns: int) -> str:
        if not pid or not start_boot_ns:
            return ""
        return process_key(self.ctx.host, pid, start_boot_ns // TICK_NS)

    def container(self, pid: int, cgroup_id: int):
        if self.table is not None:
            found = self.table.container(pid)
            if found != NO_CONTAINER:
                return found
        return self.containers.by_cgroup_id(cgroup_id) or NO_CONTAINER

    def adopt_scanned(self, events: list) -> None:
        """Take in the start-up scan (``TcpScanner.scan``): its connections name the owner
        when they close; its listeners own new connections until a process reads, writes or
        closes them."""
        listeners = []
        tracked = self._tracked_tuples()
        for ev in events:
            if isinstance(ev, ListenEvent):
                listeners.append(ev)
                continue
            key = tuple_key(ev.family, ev.local_addr, ev.local_port, ev.remote_addr, ev.remote_port)
            if key not in tracked:  # else opened after the probe loaded: the probe has it
                self.scanned[key] = ev
        if self.bpf is not None:
            self._seed_listeners(listeners)

    def _seed_listeners(self, listeners: list[ListenEvent]) -> None:
        """Listeners opened before the probe: their owner is who inbound connections belong to
        until a process takes them over (the BPF side learns later ones from listen()). They
        are the scanned namespace's: the --netns one, or this process's."""
        table = self.bpf[b"listeners"]
        netns = self.ctx.netns_inum or own_netns_inode()
        for ev in listeners:
            family = AF_INET6 if ev.family == "ipv6" else AF_INET
            key = table.Key(netns=netns, family=family, port=ev.local_port)
            start_ticks = int(ev.process_key.rsplit(":", 1)[1]) if ev.process_key else 0
            table[key] = table.Leaf(
                start_ns=start_ticks * TICK_NS,
                cgroup_id=ev.cgroup_id,
                pid=ev.pid,
                comm=ev.comm.encode()[:15],
            )

    def scanned_open(self) -> list[ConnectionEvent]:
        """Connections from the scan that have not closed yet."""
        return list(self.scanned.values())

    def owner(self, pid: int, start_ns: int, cgroup_id: int, comm: bytes) -> tuple:
        """(process key, comm, container id, pod uid, workload) of an event's owner, cached: a busy
        process owns many connections."""
        key = (pid, start_ns, cgroup_id)
        found = self._owners.get(key)  # comm: the kernel's bytes
        if found is None:
            if len(self._owners) >= OWNER_CACHE_MAX:
                self._owners.clear()  # also forgets containers learned too late
            container = self.container(pid, cgroup_id)
            pkey, workload = self.key(pid, start_ns), container.workload
            if self.sessions is not None:  # a login session's, found once per process
                workload = self.sessions.of_process(workload, pkey, pid)
            found = (pkey, cstr(comm), container.id, container.pod_uid, workload)
            self._owners[key] = found
        return found

    def decode(self, raw: bytes) -> ConnectionEvent | ListenEvent | None:
        """One record's event; None for a record of the wrong size (counted as a decode drop)."""
        events = self.decode_batch([raw])
        return events[0] if events else None

    def decode_batch(self, records: list[bytes]) -> list[ConnectionEvent | ListenEvent]:
        # The hot path. What does not change within a batch (attributes, bound methods, the
        # clock offset) is looked up once per batch; each event is built in one constructor
        # call (field order of ConnectionEvent).
        owners, owner_of, host = self._owners, self.owner, self.ctx.host
        offset, run_id, seq = self.ctx.clock.offset_ns, self._run_id, self._seq
        events: list[ConnectionEvent | ListenEvent] = []
        size = EVENT.size
        for raw in records:
            if len(raw) != size:  # not this probe's struct tcp_event: counted, never guessed at
                self.count_misfits()
                continue
            (ts, conn_id, open_ns, established_ns, sent, received, start_ns, cgroup_id, pid, _,
             addrs, sport, dport, family, _, kind, flags, retransmits, err,
             ) = EVENT_DECODED.unpack_from(raw)  # fmt: skip
            owner = owners.get((pid, start_ns, cgroup_id)) or owner_of(
                pid, start_ns, cgroup_id, raw[COMM_AT : COMM_AT + COMM_LEN]
            )
            if kind == EV_LISTEN or kind == EV_LISTEN_CLOSE:
                events.append(self._listen(kind, ts, pid, owner, cgroup_id, family, addrs, sport))
                continue
            pkey, comm_text, container_id, pod_uid, workload = owner
            direction, outcome, error, resets, closer = end_labels(kind, flags, err)
            family_name, local_addr, remote_addr = addresses(family, addrs)
            if not open_ns:
                establish_ns = 0
            elif kind == EV_CONNECT_FAILED:  # how long until it failed
                establish_ns = ts - open_ns
            else:
                establish_ns = established_ns - open_ns if established_ns else 0
            ev = ConnectionEvent(
                f"{run_id}-{next(seq)}", KIND_NAMES.get(kind) or str(kind), ts + offset, host,
                f"{run_id}-{conn_id:x}" if conn_id else "", pid, pkey, comm_text, cgroup_id,
                container_id, pod_uid, direction, family_name, local_addr, sport, remote_addr,
                dport, outcome, error, open_ns + offset if open_ns else 0, establish_ns,
                ts - established_ns if kind == EV_CLOSE and established_ns else 0,
                sent, received, retransmits, resets, closer, "ebpf", workload,
            )  # fmt: skip
            if flags & F_UNTRACKED:
                self._from_scan(ev)
            events.append(ev)
        if self.untrusted:
            events = self.blank_untrusted(events)
        return events

    def _listen(self, kind, ts, pid, owner, cgroup_id, family, addrs, sport) -> ListenEvent:
        pkey, comm_text, container_id, pod_uid, workload = owner
        return ListenEvent(
            self.next_event_id(), KIND_NAMES[kind], ts + self.ctx.clock.offset_ns,
            self.ctx.host, pid, pkey, comm_text, cgroup_id, container_id, pod_uid,
            FAMILIES.get(family, ""), ip_address(family, addrs[:16]), sport, "ebpf", workload,
        )  # fmt: skip

    def drain(self) -> list:
        batch = super().drain()
        return batch + self._sweep_due()

    def drain_columns(self) -> tuple[list, list]:
        """The hot path's drain: close and connect-failed records as one ColumnBatch
        (``tcp_columns``), the rest as events."""
        events, columns = super().drain_columns()
        if self._reader is None:  # drain() swept already
            return events, columns
        return events + self._sweep_due(), columns

    def decode_columns(self, records: list[bytes]) -> tuple[list, list]:
        from exporter.probes.tcp_columns import decode_columns  # imports this module

        events, batch = decode_columns(self, records)
        return events, [batch] if batch is not None else []

    def _sweep_due(self) -> list:
        now = time.monotonic()
        if now < self._next_sweep:
            return []
        self._next_sweep = now + self.open_after_seconds / 2
        try:
            return self.sweep_open()
        except Exception:  # noqa: BLE001 - logged; nothing is lost: the next sweep reads it again
            self.log_fault("tcp probe: reading the connection table failed; reading it again next")
            return []

    def sweep_open(self) -> list[ConnectionEvent | ListenEvent]:
        """`open` events for connections established at least ``open_after_seconds`` ago and
        not announced yet, read from the kernel's connection table. Short-lived connections,
        the bulk, never get one: their close event says everything."""
        now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        oldest = now - int(self.open_after_seconds * 1e9)
        table = self.conn_table
        if table is None:  # not loaded
            return []
        live, records = set(), []
        for slot, sk, since in table.taken():
            if not since or since > oldest:
                continue
            live.add((sk, since))  # a connection: its socket and when it was established
            if (sk, since) in self._announced:
                continue
            c = table.connection(slot)
            if c.established_ns != since:  # the slot changed hands since it was read
                continue
            # Laid out as the kernel's own events are, so one decoder serves both.
            o, a = c.owner, c.addrs
            sent, received = table.bytes_of(slot)
            records.append(EVENT.pack(
                now, c.id, c.open_ns, c.established_ns, sent, received,
                o.start_ns, o.cgroup_id, o.pid, 0, bytes(o.comm), bytes(a.saddr),
                bytes(a.daddr), a.sport, a.dport, a.family, 0, EV_OPEN, c.flags,
                c.retransmits, 0,
            ))  # fmt: skip
        self._announced = live
        return self.decode_batch(records)

    def _tracked_tuples(self) -> set[tuple]:
        """Address tuples of the connections the kernel side tracks."""
        if self.conn_table is None:  # not loaded
            return set()
        keys = set()
        for _sk, c in self.conn_table.live():
            a = c.addrs
            family, local, remote = addresses(a.family, bytes(a.saddr) + bytes(a.daddr))
            keys.add(tuple_key(family, local, a.sport, remote, a.dport))
        return keys

    def _from_scan(self, ev: ConnectionEvent) -> None:
        """A connection older than the probe closed: its owner and direction come from the scan."""
        key = tuple_key(ev.family, ev.local_addr, ev.local_port, ev.remote_addr, ev.remote_port)
        scanned = self.scanned.pop(key, None)
        if scanned is None:  # not in the scan either (the kernel's table was full)
            ev.direction, ev.connection_id = "", f"untracked-{ev.event_id}"
            return
        for name in ("connection_id", "pid", "process_key", "comm", "cgroup_id", "direction"):
            setattr(ev, name, getattr(scanned, name))
        ev.container_id, ev.pod_uid = scanned.container_id, scanned.pod_uid
        ev.workload = scanned.workload

    def close(self) -> None:
        if self.conn_table is not None:
            self.conn_table.close()
            self.conn_table = None
        super().close()

    def conns_untracked(self) -> int:
        """Sockets the kernel side could not track because its table was full."""
        return sum(sum(v) for _, v in self.bpf[b"conns_full"].items()) if self.bpf else 0

    def kernel_drops(self) -> dict[tuple[str, str], int]:
        """Ring buffer full; sockets not tracked (table full); counts lost (counter map full)."""
        bpf = self.bpf  # each reason is exported from the start, zero or not
        return {
            **super().kernel_drops(),
            ("kernel", f"{self.name}_conn_table_full"): self.conns_untracked(),
            ("kernel", f"{self.name}_counts_full"): (
                sum(sum(v) for _, v in bpf[b"counts_overflow"].items()) if bpf is not None else 0
            ),
            ("kernel", f"{self.name}_recursion_misses"): (
                self.recursion_misses() if bpf is not None else 0
            ),
        }

    def recursion_misses(self) -> int:
        """Program runs the kernel skipped because another BPF program was running on that CPU
        (a softirq state change arriving during a syscall's program): events possibly lost."""
        return sum(c.get("recursion_misses", 0) for c in self.program_counters().values())
