"""Every SQL statement graphapi runs, written once for ClickHouse 18.16 and chDB alike.

Values only ever enter through ``{name:Type}`` placeholders (``store.params``). What varies in
the text is chosen from the constant fragments below by ``Where``; the only numbers formatted
into the text are graphapi's own configured integers (aggregate-function parameters cannot be
placeholders on chDB).

Dialect notes, each learnt on ClickHouse 18.16: ``x IN {a:Array(String)}`` is a type error there,
so sets are ``x IN (SELECT arrayJoin({a:Array(String)}))`` and callers never pass an empty array
(18.16 types ``[]`` as ``Array(Nothing)``); chDB wants every joined subquery aliased.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def in_set(column: str, name: str) -> str:
    """``column`` is one of the strings of the Array(String) parameter ``name`` (non-empty)."""
    return f"{column} IN (SELECT arrayJoin({{{name}:Array(String)}}))"


WINDOW = "time_ns >= {from_ns:UInt64} AND time_ns < {to_ns:UInt64}"
SINCE_LOOKBACK = "time_ns >= {since_ns:UInt64} AND time_ns < {to_ns:UInt64}"
IN_HOSTS = in_set("host", "hosts")
# A container by its full id or the metrics label (its first 12 characters).
IN_CONTAINER = "substring(container_id, 1, 12) = substring({container:String}, 1, 12)"
IN_KEYS = in_set("process_key", "keys")


@dataclass
class Where:
    """A WHERE clause assembled from the fragments above, and the parameters it uses."""

    parts: list[str] = field(default_factory=list)
    params: dict = field(default_factory=dict)

    def add(self, fragment: str, **params) -> Where:
        self.parts.append(fragment)
        self.params.update(params)
        return self

    def sql(self) -> str:
        return " AND ".join(self.parts) if self.parts else "1"


# ---- processes ----------------------------------------------------------------------------

# A process failed when its exec failed, it exited non-zero or by a signal, or was OOM-killed.
FAILED = "(kind IN ('exec_failed', 'oom_kill') OR (kind = 'exit' AND outcome != 'ok'))"


# One row per process: its first parent (at fork), its program (comm after the last exec).
def per_process(where: str) -> str:
    return f"""
    SELECT process_key, argMin(parent_key, time_ns) AS parent,
           argMax(comm, time_ns) AS program, max({FAILED}) AS failed, min(time_ns) AS first_ns
    FROM process_events
    WHERE {where} AND process_key != ''
    GROUP BY process_key"""


def process_groups(where: str, sample: int) -> str:
    """Processes grouped by (parent, program): how many, a sample of keys; failures first, then
    the largest groups (a storm outranks a quiet process when the limit cuts).

    This is the collapse of siblings, done by the server: Python sees one row per group.
    """
    return f"""
SELECT parent, program, count() AS n, groupArray({int(sample)})(process_key) AS keys,
       max(failed) AS any_failed, min(first_ns) AS first_ns
FROM ({per_process(where)})
GROUP BY parent, program
ORDER BY any_failed DESC, n DESC, first_ns ASC
LIMIT {{groups_max:UInt32}}"""


EXECS_MAX = 8  # programs a process ran (exec after exec) drawn as nodes of their own


def process_details(where: str) -> str:
    """Everything a process node shows, one row per process key."""
    return f"""
SELECT process_key, any(host) AS p_host, argMax(pid, time_ns) AS p_pid,
       argMin(parent_key, time_ns) AS p_parent, argMax(comm, time_ns) AS program,
       argMaxIf(filename, time_ns, kind = 'exec') AS filename,
       argMaxIf(exe_path, time_ns, kind IN ('exec', 'scan')) AS exe_path,
       argMaxIf(cwd, time_ns, kind IN ('exec', 'scan')) AS cwd,
       argMaxIf(argv, time_ns, kind = 'exec') AS argv, countIf(kind = 'exec') AS execs,
       argMax(uid, time_ns) AS uid, max(start_time_ns) AS start_ns,
       maxIf(time_ns, kind = 'exit') AS end_ns,
       argMaxIf(exit_code, time_ns, kind = 'exit') AS exit_code,
       argMaxIf(signal, time_ns, kind = 'exit') AS signal,
       argMaxIf(outcome, time_ns, kind IN ('exit', 'exec_failed')) AS outcome,
       max(kind = 'oom_kill') AS oom_killed, max(kind = 'exec_failed') AS exec_failed,
       argMax(container_id, time_ns) AS p_container, min(time_ns) AS first_ns,
       groupArrayIf({EXECS_MAX})(comm, kind = 'exec') AS exec_comms,
       groupArrayIf({EXECS_MAX})(time_ns, kind = 'exec') AS exec_times
FROM process_events
WHERE {where}
GROUP BY process_key
LIMIT {{details_max:UInt32}}"""


DETAIL_COLUMNS = (
    "process_key host pid parent_key program filename exe_path cwd argv execs uid start_ns end_ns "
    "exit_code signal outcome oom_killed exec_failed container_id first_ns exec_comms exec_times"
).split()


def children_of(where: str) -> str:
    """Processes whose parent is in a set (one level of the walk down)."""
    return f"""
SELECT DISTINCT process_key
FROM process_events
WHERE {where} AND {in_set("parent_key", "parents")} AND process_key != ''
LIMIT {{children_max:UInt32}}"""


def processes_by_pid(where: str) -> str:
    """Processes with one pid on one host, newest first (a pid is reused: there may be several)."""
    return f"""
SELECT process_key, max(time_ns) AS last_ns
FROM process_events
WHERE {where} AND host = {{host:String}} AND pid = {{pid:UInt32}} AND process_key != ''
GROUP BY process_key
ORDER BY last_ns DESC
LIMIT 8"""


# ---- connections --------------------------------------------------------------------------

# The client side first, whichever end recorded it: both ends of one connection agree on it.
# A loopback connection has both ends on one host, and its 4-tuple repeats on other hosts: the
# host is part of its identity.
LOOPBACK = "(startsWith(local_addr, '127.') OR local_addr = '::1')"
CANONICAL = (
    f"concat(if({LOOPBACK}, host, ''), '/', if(direction = 'outbound', "
    "concat(local_addr, ':', toString(local_port), '>', remote_addr, ':', toString(remote_port)), "
    "concat(remote_addr, ':', toString(remote_port), '>', local_addr, ':', toString(local_port))))"
)


def _node_of_process(where: str) -> str:
    """process key -> graph node: its collapsed group's id when (parent, program) is one of
    ``groups``, else the key itself."""
    return f"""
    SELECT process_key, if(gk IN (SELECT arrayJoin({{groups:Array(String)}})),
                           concat('group=', gk), process_key) AS m_node
    FROM (
      SELECT process_key, concat(argMin(parent_key, time_ns), '|', argMax(comm, time_ns)) AS gk
      FROM process_events
      WHERE {where} AND process_key != ''
      GROUP BY process_key
    )"""


def _connections(where: str) -> str:
    """One row per connection on the graph's hosts whose process is drawn as one of ``nodes``."""
    return f"""
    SELECT * FROM (
      SELECT *, if(m_node = '', process_key, m_node) AS node
      FROM (
        SELECT process_key, connection_id, any(direction) AS dir,
               any(local_addr) AS laddr, any(local_port) AS lport,
               any(remote_addr) AS raddr, any(remote_port) AS rport,
               argMax(outcome, time_ns) AS outcome, max(bytes_sent) AS sent,
               max(bytes_received) AS received, min(time_ns) AS first_ns,
               max(time_ns) AS last_ns, any({CANONICAL}) AS ck
        FROM tcp_connection_events
        WHERE {where}
        GROUP BY process_key, connection_id
      ) AS c
      ANY LEFT JOIN ({_node_of_process(where)}) AS m USING process_key
    )
    WHERE {in_set("node", "nodes")}"""


def _drawn(where: str) -> str:
    """Rows of processes drawn as one of ``nodes``: by key, or as a member of a group (any row
    of a process carrying its group's parent and program is enough)."""
    return f"""
    ({in_set("process_key", "nodes")} OR process_key IN (
        SELECT process_key FROM process_events
        WHERE {where} AND {in_set("concat('group=', parent_key, '|', comm)", "nodes")}))"""


def connection_edges(where: str, peer_where: str) -> str:
    """Connections of the graph's nodes, per (node, direction, other end).

    ``where`` selects the graph's hosts and window; only connections of processes drawn as one
    of ``nodes`` count, each under its node (a process, or its collapsed group). Key lists are
    never sent: on 18.16 they are inlined into the query text, which is capped at 256 KiB.

    The other end is the process on the far side when that side was recorded too (any host: the
    same canonical 4-tuple, first seen within ``match_ns`` of each other): the cross-host edge.
    Otherwise it is the remote address (and port, outbound). The far side's rows are found by
    their ports (PREWHERE reads two UInt16 columns; the far side has ours mirrored), on the
    hosts that can hold them only: ours, and those whose own address one of our connections
    went to (the table is sorted by host: the rest of the fleet is not read). The join on the
    4-tuple does the rest. With ``far_inbound`` = 0 only outbound connections look for their
    far side (a busy server's thousands of clients would each become a node, to be cut by the
    limit anyway).
    """
    conns = _connections(where)
    return f"""
SELECT node, dir, peer, if(peer = '', raddr, '') AS addr,
       if(peer = '' AND dir = 'outbound', rport, 0) AS port, lport_in AS service_port,
       count() AS conns, countIf(outcome != 'ok') AS failed, sum(sent) AS sent,
       sum(received) AS received, min(first_ns) AS first_ns, max(last_ns) AS last_ns
FROM (
  SELECT node, dir, raddr, rport, if(dir = 'inbound', lport, 0) AS lport_in,
         outcome, sent, received, first_ns, last_ns,
         if(abs(toInt64(first_ns) - toInt64(if(dir = 'outbound', server_ns, client_ns)))
              <= {{match_ns:UInt64}},
            if(dir = 'outbound', server_key, client_key), '') AS peer
  FROM ({conns}) AS x
  ANY LEFT JOIN (
    SELECT {CANONICAL} AS ck, anyIf(process_key, direction = 'inbound') AS server_key,
           anyIf(process_key, direction = 'outbound') AS client_key,
           minIf(time_ns, direction = 'inbound') AS server_ns,
           minIf(time_ns, direction = 'outbound') AS client_ns
    FROM tcp_connection_events
    PREWHERE (local_port, remote_port) IN (
        SELECT remote_port, local_port FROM tcp_connection_events
        WHERE {where} AND {_drawn(where)}
          AND (direction = 'outbound' OR {{far_inbound:UInt8}} = 1))
    WHERE {peer_where}
      AND (host IN (SELECT arrayJoin({{hosts:Array(String)}}))
           OR host IN (SELECT DISTINCT host FROM tcp_connection_events
                       WHERE {peer_where} AND local_addr IN (
                           SELECT remote_addr FROM tcp_connection_events
                           WHERE {where} AND {_drawn(where)}
                             AND (direction = 'outbound' OR {{far_inbound:UInt8}} = 1))))
    GROUP BY ck
  ) AS p USING ck
)
GROUP BY node, dir, peer, addr, port, service_port
ORDER BY conns DESC
LIMIT {{edges_max:UInt32}}"""


EDGE_COLUMNS = (
    "node direction peer addr port service_port conns failed sent received first_ns last_ns"
).split()


def listening(where: str) -> str:
    """Listening sockets the chosen processes opened (and whether they closed them)."""
    return f"""
SELECT process_key, local_addr, local_port, countIf(kind != 'listen_close') AS opened,
       maxIf(time_ns, kind = 'listen_close') AS closed_ns, min(time_ns) AS first_ns
FROM tcp_listen_events
WHERE {where}
GROUP BY process_key, local_addr, local_port
LIMIT {{services_max:UInt32}}"""


def processes_at_endpoint(where: str) -> str:
    """Processes that connected to, accepted on, or listened on one address:port (port 0: any)."""
    return f"""
SELECT process_key FROM (
  SELECT process_key FROM tcp_connection_events
  WHERE {where} AND ((remote_addr = {{addr:String}}
                      AND ({{port:UInt16}} = 0 OR remote_port = {{port:UInt16}}))
                  OR (local_addr = {{addr:String}} AND local_port = {{port:UInt16}}))
  UNION ALL
  SELECT process_key FROM tcp_listen_events
  WHERE {where} AND {{port:UInt16}} != 0 AND local_port = {{port:UInt16}}
    AND local_addr IN ({{addr:String}}, '0.0.0.0', '::')
)
WHERE process_key != ''
GROUP BY process_key
LIMIT 32"""


# ---- alerts -------------------------------------------------------------------------------

ALERT_ACTIVE = (
    "starts_at_ns < {to_ns:UInt64} AND (ends_at_ns = 0 OR ends_at_ns >= {from_ns:UInt64})"
)

ALERT_IS = "fingerprint = {fingerprint:String}"


def alerts(where: str) -> str:
    """Alerts active at some point of the window, one row per fingerprint."""
    return f"""
SELECT fingerprint, argMax(status, time_ns) AS a_status, any(alertname) AS a_name,
       any(severity) AS a_severity, any(host) AS a_host, any(container) AS a_container,
       min(starts_at_ns) AS a_starts_ns, max(ends_at_ns) AS a_ends_ns,
       argMax(annotations, time_ns) AS a_annotations
FROM received_alerts
WHERE {where}
GROUP BY fingerprint
ORDER BY a_starts_ns
LIMIT {{alerts_max:UInt32}}"""


ALERT_COLUMNS = (
    "fingerprint status alertname severity host container starts_ns ends_ns annotations"
).split()

ALERT_BY_FINGERPRINT = """
SELECT any(host), any(container), min(starts_at_ns), max(ends_at_ns), count()
FROM received_alerts
WHERE fingerprint = {fingerprint:String}"""

ALERT_NAMED = "alertname = {alertname:String}"
ALERT_ON_HOST = "host = {host:String}"


def alerts_named(where: str) -> str:
    """Alerts of one name (``ALERT_NAMED``, maybe ``ALERT_ON_HOST``), one row per fingerprint,
    the most recently received first: their labels are matched by the caller (a JSON object)."""
    return f"""
SELECT fingerprint, any(labels) AS a_labels, min(starts_at_ns) AS a_starts_ns,
       max(ends_at_ns) AS a_ends_ns, max(received_ns) AS a_received_ns
FROM received_alerts
WHERE {where}
GROUP BY fingerprint
ORDER BY a_received_ns DESC
LIMIT {{alerts_max:UInt32}}"""


STORED_ALERT_IDS = f"SELECT event_id FROM received_alerts WHERE {in_set('event_id', 'ids')}"

# ---- tables for panels --------------------------------------------------------------------


def timeline(where: str) -> str:
    """Process and connection events in time order, as rows for a table panel."""
    # The union is wrapped: on 18.16 an ORDER BY after UNION ALL sorts only the last SELECT.
    return f"""
SELECT * FROM (
  SELECT time_ns, 'process' AS type, kind, host, pid, process_key, comm,
         arrayStringConcat(argv, ' ') AS detail, outcome, container_id
  FROM process_events WHERE {where}
  UNION ALL
  SELECT time_ns, 'connection' AS type, kind, host, pid, process_key, comm,
         concat(direction, ' ', local_addr, ':', toString(local_port), ' -> ',
                remote_addr, ':', toString(remote_port)) AS detail, outcome, container_id
  FROM tcp_connection_events WHERE {where}
)
ORDER BY time_ns, type DESC
LIMIT {{rows_max:UInt32}}"""


TIMELINE_COLUMNS = "time_ns type kind host pid process_key comm detail outcome container_id".split()


def process_events_of(where: str) -> str:
    """Every stored event of one process, in order."""
    return f"""
SELECT time_ns, kind, pid, ppid, comm, filename, argv, exit_code, signal, outcome,
       container_id, source
FROM process_events
WHERE {where}
ORDER BY time_ns
LIMIT {{rows_max:UInt32}}"""


def flags_of(where: str) -> str:
    """The flags raised about one process, in order."""
    return f"""
SELECT time_ns, rule_id, flag_class, severity, technique, description, connection_id
FROM flag_events
WHERE {where}
ORDER BY time_ns
LIMIT {{rows_max:UInt32}}"""


FLAG_COLUMNS = "time_ns rule_id flag_class severity technique description connection_id".split()

PROCESS_EVENT_COLUMNS = (
    "time_ns kind pid ppid comm filename argv exit_code signal outcome container_id source"
).split()


# ---- hosts --------------------------------------------------------------------------------


def host_processes(where: str) -> str:
    """Per host of the window: processes with events, of those the failed ones, OOM kills."""
    return f"""
SELECT host, uniqExactIf(process_key, process_key != '') AS processes,
       uniqExactIf(process_key, {FAILED}) AS failed, countIf(kind = 'oom_kill') AS oom_kills
FROM process_events
WHERE {where}
GROUP BY host
ORDER BY host
LIMIT {{hosts_max:UInt32}}"""


def host_connections(where: str) -> str:
    """Per host of the window: connections seen, of those the ones that did not end ok."""
    return f"""
SELECT host, uniqExact(connection_id) AS connections,
       uniqExactIf(connection_id, outcome != 'ok') AS failed_connections
FROM tcp_connection_events
WHERE {where}
GROUP BY host
ORDER BY host
LIMIT {{hosts_max:UInt32}}"""


HOST_PROCESS_COLUMNS = "host processes failed oom_kills".split()
HOST_CONNECTION_COLUMNS = "host connections failed_connections".split()
