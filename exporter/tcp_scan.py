"""TCP connections and listeners that existed before the probe was attached, read from /proc.

``/proc/net/tcp`` and ``/proc/net/tcp6`` list every socket with its inode (of the reader's network
namespace: with ``--netns``, that namespace's); the ``socket:[inode]`` links in
``/proc/<pid>/fd`` name the processes holding it. The exporter attaches its probes
first and scans second: a connection opened during the scan is seen by the probe (and perhaps
by the scan too). Each open connection becomes a ``scan`` ConnectionEvent, each listener a
``scan`` ListenEvent; the probe uses both (see ``TcpProbe.adopt_scanned``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from exporter.containers import CGROUP_ROOT, identify_proc_cgroup, unified_mount
from exporter.netns import run_in_netns
from exporter.probes.tcp import AF_INET, AF_INET6, ip_address
from exporter.proc_read import parse_stat
from schema.events import ConnectionEvent, ListenEvent, process_key

TCP_LISTEN = 0x0A
# States of a connection that is still a connection to someone (not TIME_WAIT, not a request).
CONNECTED = {0x01: "established", 0x04: "fin_wait1", 0x05: "fin_wait2", 0x08: "close_wait",
             0x09: "last_ack", 0x0B: "closing"}  # fmt: skip
TABLES = {"tcp": "ipv4", "tcp6": "ipv6"}


@dataclass(frozen=True, slots=True)
class SocketRow:
    family: str
    state: int
    local_addr: str
    local_port: int
    remote_addr: str
    remote_port: int
    inode: int


def parse_address(text: str) -> tuple[str, int]:
    """``0100007F:1F90`` -> ('127.0.0.1', 8080). The kernel prints each 32-bit word of the
    address as a number in host (little-endian) order, and the port in hex."""
    hex_addr, hex_port = text.split(":")
    raw = bytes.fromhex(hex_addr)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = AF_INET if len(raw) == 4 else AF_INET6
    return ip_address(family, words), int(hex_port, 16)


def parse_table(text: str, family: str) -> list[SocketRow]:
    """Rows of /proc/net/tcp or tcp6 (the header line is skipped)."""
    rows = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 10:
            continue
        local, remote = parse_address(f[1]), parse_address(f[2])
        rows.append(SocketRow(family, int(f[3], 16), *local, *remote, int(f[9])))
    return rows


class TcpScanner:
    def __init__(
        self, host: str, clock, proc: Path = Path("/proc"), cgroup_root=CGROUP_ROOT, names=None,
        sessions=None, netns: str = "",
    ):  # fmt: skip
        self.host = host
        # Only sockets of this network namespace (a path, as --netns takes it): its tables are
        # read from a thread that joined it (/proc/thread-self/net is the thread's namespace's).
        self.netns = netns
        self.names = names  # RuntimeNames: containers' workloads, as the resolver has them
        self.sessions = sessions  # SessionWorkloads: login sessions' workloads, as the probe's
        self.clock = clock
        self.proc = proc
        self.unified = unified_mount(cgroup_root)
        self.duration_seconds = 0.0

    def sockets(self) -> list[SocketRow]:
        net = self.proc / ("thread-self/net" if self.netns else "net")
        return run_in_netns(self.netns, self._read_tables, net)

    @staticmethod
    def _read_tables(net: Path) -> list[SocketRow]:
        rows = []
        for name, family in TABLES.items():
            try:
                rows += parse_table((net / name).read_text(), family)
            except OSError:
                continue  # no IPv6 on this host
        return rows

    def owners(self, inodes: set[int]) -> dict[int, int]:
        """socket inode -> pid holding it (the lowest pid when several share it)."""
        found: dict[int, int] = {}
        for entry in os.scandir(self.proc):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                fds = os.scandir(f"{entry.path}/fd")
            except OSError:
                continue  # gone, or a kernel thread
            with fds:
                for fd in fds:
                    try:
                        link = os.readlink(fd.path)
                    except OSError:
                        continue
                    if link.startswith("socket:["):
                        inode = int(link[8:-1])
                        if inode in inodes and pid < found.get(inode, 1 << 31):
                            found[inode] = pid
        return found

    def process(self, pid: int) -> dict | None:
        """What an event needs to know about its owner; None when it is gone."""
        base = self.proc / str(pid)
        try:
            comm, _ppid, ticks = parse_stat((base / "stat").read_text())
            cgroup = (base / "cgroup").read_text()
        except (OSError, ValueError, IndexError):
            return None
        container = identify_proc_cgroup(cgroup, self.names)
        workload = container.workload
        if self.sessions is not None:
            workload = self.sessions.of_process(workload, "", pid)
        return dict(
            pid=pid,
            process_key=process_key(self.host, pid, ticks),
            comm=comm,
            cgroup_id=self.cgroup_id(cgroup),
            container_id=container.id,
            pod_uid=container.pod_uid,
            workload=workload,
        )

    def cgroup_id(self, proc_cgroup: str) -> int:
        """The v2 cgroup id (directory inode) of a /proc/<pid>/cgroup text, as BPF reports it."""
        for line in proc_cgroup.splitlines():
            if line.startswith("0::"):
                try:
                    return os.stat(self.unified / line[3:].lstrip("/")).st_ino
                except OSError:
                    return 0
        return 0

    def scan(self, next_event_id) -> list[ConnectionEvent | ListenEvent]:
        """A `scan` event for each open connection and each listener, with its owner."""
        started = time.monotonic()
        rows = [
            r for r in self.sockets() if r.inode and (r.state in CONNECTED or r.state == TCP_LISTEN)
        ]
        owners = self.owners({r.inode for r in rows})
        processes = {pid: self.process(pid) for pid in set(owners.values())}
        listening = {(r.family, r.local_port) for r in rows if r.state == TCP_LISTEN}
        now = time.time_ns()
        connections, listeners = [], []
        for r in rows:
            owner = processes.get(owners.get(r.inode)) or {}
            common = dict(
                event_id=next_event_id(),
                kind="scan",
                time_ns=now,
                host=self.host,
                family=r.family,
                local_addr=r.local_addr,
                local_port=r.local_port,
                source="scan",
                **owner,
            )
            if r.state == TCP_LISTEN:
                listeners.append(ListenEvent(**common))
                continue
            inbound = (r.family, r.local_port) in listening
            connections.append(
                ConnectionEvent(
                    **common,
                    connection_id=f"scan-{r.inode}",
                    direction="inbound" if inbound else "outbound",
                    remote_addr=r.remote_addr,
                    remote_port=r.remote_port,
                    outcome="ok",
                )
            )
        self.duration_seconds = time.monotonic() - started
        return listeners + connections
