"""The SQL ``baseline learn``, ``diff`` and ``merge`` run: parameterized, for ClickHouse 18.16
and chDB alike (graph/queries.py's dialect notes apply)."""

from __future__ import annotations

from graph.queries import WINDOW, in_set

# Fork, exec and scan events of every workload in time order: the ancestry (which program
# started which) is replayed from them, as the exporter's detector follows it live.
PROCESSES = f"""
SELECT kind, process_key, parent_key, filename, cwd, comm, uid, workload, time_ns
FROM process_events
WHERE {WINDOW} AND kind IN ('fork', 'exec', 'scan') AND process_key != ''
ORDER BY time_ns"""

# The program of processes whose exec was before the window (a long-running parent).
PROGRAMS_BEFORE = f"""
SELECT process_key, argMaxIf(filename, time_ns, kind IN ('exec', 'scan')), argMax(comm, time_ns)
FROM process_events
WHERE time_ns < {{from_ns:UInt64}} AND {in_set("process_key", "keys")}
GROUP BY process_key"""

LISTENING = f"""
SELECT workload, local_port, min(time_ns), max(time_ns), count()
FROM tcp_listen_events
WHERE {WINDOW} AND kind IN ('listen', 'scan') AND workload != '' AND local_port != 0
GROUP BY workload, local_port"""

# Outbound: the destination; inbound: the source and the local port. Counted by connection.
ENDPOINTS = f"""
SELECT workload, direction, remote_addr,
       if(direction = 'inbound', local_port, remote_port) AS port,
       min(time_ns), max(time_ns), uniqExact(connection_id)
FROM tcp_connection_events
WHERE {WINDOW} AND direction IN ('outbound', 'inbound') AND workload != '' AND remote_addr != ''
GROUP BY workload, direction, remote_addr, port"""
