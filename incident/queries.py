"""Every query the incident commands run, in one place: parameterized and bounded.

Values travel only as ``{name:Type}`` parameters (``store.params``); the only text built here is
from fixed fragments and ``int()`` limits. Every query names the host (the tables' sort key
starts with it) and a time range or a set of keys, and ends in a LIMIT. The same SQL runs on
ClickHouse 18.16 and chDB, so it sticks to functions both have.
"""

from __future__ import annotations

from dataclasses import dataclass

# Timeline: the process facts worth a line (forks and start-up scans are not events).
TIMELINE_PROCESS_KINDS = ("exec", "exec_failed", "exit", "oom_kill")
# Everything that tells us about a process's identity, parent, command and end.
FACT_KINDS = ("fork", "exec", "scan", "exit", "oom_kill")


def _in(kinds: tuple[str, ...]) -> str:
    # Constant kind names of our own, never user input.
    return "(" + ", ".join(f"'{k}'" for k in kinds) + ")"


# Filter conditions, as (on process events, on connection events); None: does not apply.
IN_CONTAINER = "startsWith(container_id, {container:String})"
PROGRAM_BY_COMM = "(comm = {program:String} OR comm = {comm15:String})"
PROGRAM_BY_FILE = (
    "(comm = {program:String} OR comm = {comm15:String} OR filename = {program:String}"
    " OR endsWith(filename, {slash_program:String}))"
)
BY_UID = "uid = {uid:UInt32}"
# Connections carry no uid: keep those of processes that ran as the user. GLOBAL: in cluster
# mode the subquery reads the Distributed table once, rather than being refused per shard.
CONNECTION_BY_UID = (
    "process_key GLOBAL IN (SELECT process_key FROM process_events WHERE host = {host:String}"
    f" AND uid = {{uid:UInt32}} AND time_ns < {{hi:UInt64}} AND kind IN {_in(FACT_KINDS)}"
    " LIMIT 1000000)"
)


@dataclass
class Filters:
    """Optional conditions of a timeline query; each adds SQL text and its parameters."""

    container: str = ""
    program: str = ""
    uid: int | None = None
    remote_addr: str = ""
    remote_port: int = 0

    def _clauses(self) -> list[tuple[str | None, str | None, dict]]:
        out = []
        if self.container:
            out.append((IN_CONTAINER, IN_CONTAINER, {"container": self.container}))
        if self.program:
            names = {"program": self.program, "comm15": self.program[:15]}
            out.append(
                (PROGRAM_BY_FILE, PROGRAM_BY_COMM, {**names, "slash_program": "/" + self.program})
            )
        if self.uid is not None:
            out.append((BY_UID, CONNECTION_BY_UID, {"uid": self.uid}))
        if self.remote_addr:
            addr = "remote_addr = {remote_addr:String}"
            out.append((None, addr, {"remote_addr": self.remote_addr}))
        if self.remote_port:
            port = "remote_port = {remote_port:UInt16}"
            out.append((None, port, {"remote_port": self.remote_port}))
        return out

    def _sql(self, which: int, params: dict) -> str:
        parts = []
        for clause in self._clauses():
            if clause[which]:
                parts.append(clause[which])
                params.update(
                    {k: v for k, v in clause[2].items() if "{" + k + ":" in clause[which]}
                )
        return "".join(" AND " + p for p in parts)

    def process_sql(self, params: dict) -> str:
        return self._sql(0, params)

    def connection_sql(self, params: dict) -> str:
        return self._sql(1, params)

    @property
    def excludes_processes(self) -> bool:
        """A remote address is about connections only: process lines cannot match it."""
        return bool(self.remote_addr or self.remote_port)


WINDOW = "host = {host:String} AND time_ns >= {lo:UInt64} AND time_ns < {hi:UInt64}"

PROCESS_COLUMNS = (
    "time_ns, host, kind, pid, ppid, uid, comm, filename, argv, exit_code, signal, core_dumped,"
    " outcome, lifetime_ns, container_id, process_key, parent_key, exe_path, cwd"
)
CONNECTION_COLUMNS = (
    "time_ns, host, kind, pid, comm, container_id, process_key, direction, local_addr,"
    " local_port, remote_addr, remote_port, outcome, error, duration_ns, bytes_sent,"
    " bytes_received, retransmits, closed_by"
)
ALERT_COLUMNS = (
    "time_ns, host, container, event_id, fingerprint, status, alertname, severity, labels,"
    " annotations, starts_at_ns, ends_at_ns"
)
FACT_COLUMNS = (
    "process_key, kind, time_ns, pid, ppid, parent_key, start_time_ns, uid, comm, filename,"
    " argv, exit_code, signal, outcome, container_id, host"
)


def _order(limit: int, center_ns: int | None, params: dict) -> str:
    """The first ``limit`` rows in time, or, around an instant, the ``limit`` nearest to it."""
    if center_ns is None:
        return f" ORDER BY time_ns LIMIT {int(limit)}"
    params["center"] = center_ns
    return f" ORDER BY abs(toInt64(time_ns) - {{center:Int64}}) LIMIT {int(limit)}"


def process_timeline(
    filters: Filters, limit: int, center_ns: int | None = None
) -> tuple[str, dict]:
    params: dict = {}
    sql = (
        f"SELECT {PROCESS_COLUMNS} FROM process_events WHERE {WINDOW}"
        f" AND kind IN {_in(TIMELINE_PROCESS_KINDS)}{filters.process_sql(params)}"
        + _order(limit, center_ns, params)
    )
    return sql, params


def connection_timeline(
    filters: Filters, limit: int, center_ns: int | None = None
) -> tuple[str, dict]:
    params: dict = {}
    sql = (
        f"SELECT {CONNECTION_COLUMNS} FROM tcp_connection_events WHERE {WINDOW}"
        f" AND kind != 'scan'{filters.connection_sql(params)}" + _order(limit, center_ns, params)
    )
    return sql, params


# Alerts name a host by a "host" label or by the scrape's instance ("host:port"); alerts with
# neither (e.g. about the whole pipeline) belong to every host.
ALERT_ON_HOST = "(host = {host:String} OR startsWith(host, {host_colon:String}) OR host = '')"


def _alerts_sql(where: str, limit: int) -> str:
    return (
        f"SELECT {ALERT_COLUMNS} FROM received_alerts WHERE {where}"
        f" ORDER BY time_ns LIMIT {int(limit)}"
    )


FLAG_COLUMNS = (
    "time_ns, event_time_ns, host, event_id, rule_id, flag_class, severity, technique,"
    " description, pid, comm, container_id, process_key"
)


def flag_timeline(container: str, limit: int, center_ns: int | None = None) -> tuple[str, dict]:
    """The flags the exporter's detector raised on the host in the window."""
    params: dict = {}
    where = WINDOW
    if container:
        where += " AND " + IN_CONTAINER
        params["container"] = container
    sql = f"SELECT {FLAG_COLUMNS} FROM flag_events WHERE {where}" + _order(limit, center_ns, params)
    return sql, params


def alerts_for_host(container: str, limit: int) -> tuple[str, dict]:
    params: dict = {}
    where = ALERT_ON_HOST + " AND time_ns >= {lo:UInt64} AND time_ns < {hi:UInt64}"
    if container:
        where += " AND (container = '' OR startsWith(container, {container:String}))"
        params["container"] = container
    return _alerts_sql(where, limit), params


def alerts_in_window(host: str, fingerprint: str, limit: int) -> tuple[str, dict]:
    """Alerts whose status changed in the window, optionally of one host or one fingerprint."""
    params: dict = {}
    where = "time_ns >= {lo:UInt64} AND time_ns < {hi:UInt64}"
    if host:
        where += " AND " + ALERT_ON_HOST
        params.update(host=host, host_colon=host + ":")
    if fingerprint:
        where += " AND fingerprint = {fingerprint:String}"
        params["fingerprint"] = fingerprint
    return _alerts_sql(where, limit), params


def host_seen(table: str) -> str:
    """One row if the host has anything in ``table`` (a constant table name of ours)."""
    return f"SELECT 1 FROM {table} WHERE host = {{host:String}} LIMIT 1"


def known_hosts(table: str, limit: int = 20) -> str:
    return f"SELECT host FROM {table} GROUP BY host ORDER BY host LIMIT {int(limit)}"


def hosts_in_window(table: str, limit: int = 50) -> str:
    return (
        f"SELECT host FROM {table} WHERE time_ns >= {{lo:UInt64}} AND time_ns < {{hi:UInt64}}"
        f" GROUP BY host ORDER BY host LIMIT {int(limit)}"
    )


# --- processes by identity ----------------------------------------------------------------


def _facts(between: bool) -> str:
    """Every fact of a set of processes; ``between`` bounds the time (the sort key) too."""
    span = " AND time_ns >= {lo:UInt64} AND time_ns <= {hi:UInt64}" if between else ""
    return (
        f"SELECT {FACT_COLUMNS} FROM process_events WHERE host = {{host:String}}{span}"
        f" AND has({{keys:Array(String)}}, process_key) AND kind IN {_in(FACT_KINDS)}"
        " ORDER BY time_ns LIMIT 20000"
    )


PROCESS_FACTS = _facts(between=False)
# The same, for processes whose lifetimes are known to lie within [lo, hi].
PROCESS_FACTS_BETWEEN = _facts(between=True)

KEYS_OF_PID = (
    "SELECT process_key FROM process_events WHERE host = {host:String} AND pid = {pid:UInt32}"
    f" AND process_key != '' AND kind IN {_in(FACT_KINDS)}"
    " GROUP BY process_key ORDER BY min(time_ns) LIMIT 200"
)

CHILD_KEYS = (
    # The parent at creation (fork, or /proc at start-up), not after a reparent to init.
    "SELECT process_key FROM process_events WHERE host = {host:String}"
    " AND has({parents:Array(String)}, parent_key) AND kind IN ('fork', 'scan')"
    " AND process_key != '' GROUP BY process_key ORDER BY min(time_ns) LIMIT 2000"
)

# --- postmortem ----------------------------------------------------------------------------

FAILED_PROCESSES = (
    f"SELECT {PROCESS_COLUMNS} FROM process_events WHERE {WINDOW}"
    " AND (kind IN ('exec_failed', 'oom_kill') OR (kind = 'exit' AND outcome != 'ok'))"
    " ORDER BY time_ns LIMIT 500"
)

OUTBOUND_DESTINATIONS = (
    "SELECT remote_addr, remote_port, min(time_ns), uniqExact(connection_id),"
    " groupUniqArray(comm), groupUniqArray(outcome) FROM tcp_connection_events WHERE "
    + WINDOW
    + " AND direction = 'outbound' AND kind IN ('open', 'close', 'connect_failed')"
    " GROUP BY remote_addr, remote_port ORDER BY min(time_ns) LIMIT 500"
)

BASELINE_DESTINATIONS = (
    "SELECT remote_addr, remote_port FROM tcp_connection_events WHERE " + WINDOW + " AND direction"
    " = 'outbound' AND kind IN ('open', 'close', 'connect_failed', 'scan')"
    " GROUP BY remote_addr, remote_port LIMIT 100000"
)

CONTAINERS_IN_WINDOW = (
    "SELECT container_id, count(), groupUniqArray(comm) FROM process_events WHERE "
    + WINDOW
    + " AND kind IN ('exec', 'exec_failed', 'exit', 'oom_kill')"
    " GROUP BY container_id ORDER BY count() DESC LIMIT 100"
)
