"""A workload's policy: the entries it allows, each with the comment a reviewer reads.

An entry is a key (the same keys the activity of a workload is counted under):

- ``("exec", path)``: the workload may run the executable;
- ``("parent", path, program)``: ... started by a process running ``program`` (parent->child);
- ``("user", path, uid)``: ... as that real user;
- ``("listen", port)``: it may listen on the TCP port;
- ``("outbound", Endpoint)``: it may connect to the address or CIDR and port (0: any port);
- ``("inbound", Endpoint)``: it may accept connections from the address or CIDR on its port.

A deviation is an activity key the policy does not allow; ``Policy.deviation`` finds the one an
event is about (the exporter calls it on the hot path: a few dict and set lookups).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime

KINDS = ("exec", "parent", "user", "listen", "outbound", "inbound")
MODES = ("audit",)  # deviations are flagged; nothing is blocked (tracepoints cannot block)
SEVERITIES = ("info", "low", "medium", "high", "critical")
DEFAULT_SEVERITY = "medium"
ANY_PORT = 0


@dataclass(frozen=True, order=True)
class Endpoint:
    """An address or CIDR, and a port (ANY_PORT: every port)."""

    version: int
    network: str  # normalised text, e.g. 10.0.0.0/8 or 127.0.0.1/32
    port: int

    @classmethod
    def of(cls, address: str, port: int) -> Endpoint:
        """From an address or CIDR (ValueError when it is neither)."""
        net = ipaddress.ip_network(address, strict=True)
        return cls(net.version, str(net), port)

    @property
    def net(self):
        return ipaddress.ip_network(self.network)

    def text(self) -> str:
        """The address alone when the network is one address, else the CIDR."""
        net = self.net
        return str(net.network_address) if net.num_addresses == 1 else self.network

    def sort_key(self) -> tuple:
        net = self.net
        return (self.version, int(net.network_address), net.prefixlen, self.port)


@dataclass(frozen=True)
class Seen:
    """How often and when an activity key was seen (a learned entry's comment)."""

    first_ns: int
    last_ns: int
    count: int

    def comment(self, noun: str = "time") -> str:
        plural = noun if self.count == 1 else noun + "s"
        return f"{self.count} {plural}, first {iso(self.first_ns)}, last {iso(self.last_ns)}"


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Policy:
    workload: str
    mode: str = "audit"
    severity: str = DEFAULT_SEVERITY
    entries: dict[tuple, str] = field(default_factory=dict)  # key -> comment ('' for none)
    path: str = ""  # the file it was read from, or ''

    def __post_init__(self):
        self.compile()

    def compile(self) -> None:
        """The lookups ``deviation`` makes, from the entries (again after a change)."""
        self._execs: dict[str, tuple[set, set]] = {}
        self._listen: set[int] = set()
        # (address, port) and address (any port) of one-address endpoints; CIDRs in a list.
        self._exact: dict[str, set] = {"outbound": set(), "inbound": set()}
        self._nets: dict[str, list] = {"outbound": [], "inbound": []}
        for key in self.entries:
            kind = key[0]
            if kind == "exec":
                self._execs.setdefault(key[1], (set(), set()))
            elif kind in ("parent", "user"):
                parents, users = self._execs.setdefault(key[1], (set(), set()))
                (parents if kind == "parent" else users).add(key[2])
            elif kind == "listen":
                self._listen.add(key[1])
            else:
                ep: Endpoint = key[1]
                net = ep.net
                if net.num_addresses == 1:
                    self._exact[kind].add((str(net.network_address), ep.port))
                else:
                    self._nets[kind].append((net, ep.port))

    def add(self, key: tuple, comment: str = "") -> None:
        """Allows key (an activity key; endpoints given as (address, port) become Endpoints),
        and what it implies (a parent or user of an executable allows the executable)."""
        key = entry_key(key)
        if key[0] in ("parent", "user"):
            self.entries.setdefault(("exec", key[1]), "")
        self.entries.setdefault(key, comment)

    # -- the checks (hot path) -------------------------------------------------------------
    def exec_deviation(self, path: str, parent_program: str, uid: int) -> tuple | None:
        """The deviation an exec is, or None: a new executable; else a new parent program
        (when the parent is known); else a new user."""
        found = self._execs.get(path)
        if found is None:
            return ("exec", path)
        if parent_program and parent_program not in found[0]:
            return ("parent", path, parent_program)
        if uid not in found[1]:
            return ("user", path, uid)
        return None

    def listen_deviation(self, port: int) -> tuple | None:
        return None if port in self._listen else ("listen", port)

    def endpoint_deviation(self, kind: str, address: str, port: int) -> tuple | None:
        """kind outbound (to address:port) or inbound (from address, on local port)."""
        exact = self._exact[kind]
        if (address, port) in exact or (address, ANY_PORT) in exact:
            return None
        nets = self._nets[kind]
        if nets:
            try:
                addr = ipaddress.ip_address(address)
            except ValueError:
                return (kind, address, port)
            for net, p in nets:
                if (p == port or p == ANY_PORT) and addr in net:
                    return None
        return (kind, address, port)

    def allows(self, key: tuple) -> bool:
        """Whether an activity key is within the policy."""
        kind = key[0]
        if kind == "exec":
            return key[1] in self._execs
        if kind in ("parent", "user"):
            found = self._execs.get(key[1])
            return found is not None and key[2] in found[0 if kind == "parent" else 1]
        if kind == "listen":
            return self.listen_deviation(key[1]) is None
        return self.endpoint_deviation(kind, key[1], key[2]) is None

    def expected(self, deviation: tuple, limit: int = 5) -> str:
        """What the policy allows instead, in a few words (a flag's description)."""
        kind = deviation[0]
        if kind == "exec":
            items = sorted(self._execs)
        elif kind in ("parent", "user"):
            parents, users = self._execs.get(deviation[1], (set(), set()))
            items = sorted(map(str, parents if kind == "parent" else users))
        elif kind == "listen":
            items = [str(p) for p in sorted(self._listen)]
        else:
            items = [endpoint_text(key[1]) for key in sorted_keys(self.entries) if key[0] == kind]
        more = f" and {len(items) - limit} more" if len(items) > limit else ""
        return (", ".join(items[:limit]) + more) or "none"


def entry_key(key: tuple) -> tuple:
    """An activity key as an entry: endpoints (address, port) become an Endpoint."""
    if key[0] in ("outbound", "inbound") and not isinstance(key[1], Endpoint):
        return (key[0], Endpoint.of(key[1], key[2]))
    return key


def endpoint_text(ep: Endpoint) -> str:
    host = ep.text()
    host = f"[{host}]" if ep.version == 6 else host
    return f"{host}:{ep.port if ep.port else '*'}"


def describe(deviation: tuple) -> str:
    """A deviation in words: 'new executable /usr/bin/nc'."""
    kind = deviation[0]
    if kind == "exec":
        return f"new executable {deviation[1]}"
    if kind == "parent":
        return f"{deviation[1]} started by a new parent program {deviation[2]}"
    if kind == "user":
        return f"{deviation[1]} run by a new user {deviation[2]}"
    if kind == "listen":
        return f"listens on a new port {deviation[1]}"
    if kind == "outbound":
        return f"connects to a new destination {deviation[1]}:{deviation[2]}"
    return f"accepts from a new source {deviation[1]} on port {deviation[2]}"


def sort_key(key: tuple) -> tuple:
    """Entries in a stable order: by kind, then value (paths and programs as text, uids and
    ports as numbers, endpoints by address, then port)."""
    kind, value = key[0], key[1]
    if isinstance(value, Endpoint):
        rest: tuple = value.sort_key()
    elif kind == "listen":
        rest = (int(value),)
    elif kind == "user":
        rest = (value, int(key[2]))
    else:
        rest = tuple(str(k) for k in key[1:])
    return (KINDS.index(kind), rest)


def sorted_keys(entries) -> list[tuple]:
    return sorted(entries, key=sort_key)
