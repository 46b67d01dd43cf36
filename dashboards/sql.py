"""Every ClickHouse query of the dashboards, in one place, so tests can run them on a real store.

The tables and columns are the store's (``store/schema.py``: one table per event class of
``schema/events.py``, plus ``received_alerts``). Grafana interpolates the variables before the
ClickHouse data source sees the SQL: ``$__from`` / ``$__to`` become the window in epoch
milliseconds and ``${name:singlequote}`` a quoted, escaped value. Times are filtered on
``time_ns`` (the tables' sort key, UInt64 ns since the epoch) with plain arithmetic rather than
the plugin's ``$__timeFilter``, so the same SQL runs on ClickHouse 18.16, current ClickHouse and
chDB; ``time`` is the store's derived date-time column, for display. ``expand()`` does what
Grafana does, for tests.

The container filter takes the sentinel ``__all__`` (the dashboards' "All") as "no filter", and
a container's short id (the metrics' ``container`` label) or its full id.
"""

from __future__ import annotations

import re

WINDOW = "time_ns >= toUInt64($__from) * 1000000 AND time_ns < toUInt64($__to) * 1000000"
ON_HOST = "host = ${instance:singlequote}"
# The container variable holds the metrics' container label: the id's first 12 characters
# ('' for processes outside containers), so ids compare by that prefix.
IN_CONTAINER = (
    "(${container:singlequote} = '__all__' "
    "OR substring(container_id, 1, 12) = substring(${container:singlequote}, 1, 12))"
)

PROCESS_EXECS = f"""\
SELECT
  time,
  comm,
  filename,
  arrayStringConcat(argv, ' ') AS command_line,
  pid,
  ppid,
  uid,
  container_id,
  process_key,
  parent_key
FROM process_events
WHERE {ON_HOST} AND {WINDOW} AND {IN_CONTAINER} AND kind = 'exec'
ORDER BY time_ns DESC
LIMIT 500"""

PROCESS_FAILURES = f"""\
SELECT
  time,
  kind,
  comm,
  outcome,
  exit_code,
  signal,
  lifetime_ns / 1e9 AS lifetime_seconds,
  pid,
  container_id,
  process_key
FROM process_events
WHERE {ON_HOST} AND {WINDOW} AND {IN_CONTAINER}
  AND (kind IN ('exec_failed', 'oom_kill') OR (kind = 'exit' AND outcome != 'ok'))
ORDER BY time_ns DESC
LIMIT 500"""

CONNECTIONS = f"""\
SELECT
  time,
  kind,
  direction,
  outcome,
  comm,
  pid,
  concat(local_addr, ':', toString(local_port)) AS local,
  concat(remote_addr, ':', toString(remote_port)) AS remote,
  duration_ns / 1e9 AS duration_seconds,
  bytes_sent,
  bytes_received,
  retransmits,
  error,
  container_id,
  process_key
FROM tcp_connection_events
WHERE {ON_HOST} AND {WINDOW} AND {IN_CONTAINER} AND kind != 'scan'
ORDER BY time_ns DESC
LIMIT 500"""

# Policy flags: what each workload did that its baseline policy does not allow (docs/baselines.md).
POLICY_DEVIATIONS = f"""\
SELECT
  time,
  workload,
  rule_id,
  severity,
  description,
  program,
  comm,
  pid,
  uid,
  container_id,
  process_key
FROM flag_events
WHERE {ON_HOST} AND {WINDOW} AND {IN_CONTAINER} AND kind = 'policy'
ORDER BY time_ns DESC
LIMIT 500"""

# Alerts as graphapi stored them from Alertmanager's webhook (store/received_alerts.py). Their
# ``time`` column is when they arrived (it decides retention); the panel shows when the status
# took effect.
RECEIVED_ALERTS = f"""\
SELECT
  toDateTime(intDiv(time_ns, 1000000000), 'UTC') AS time,
  status,
  alertname,
  severity,
  container,
  fingerprint,
  annotations
FROM received_alerts
WHERE {ON_HOST} AND {WINDOW}
ORDER BY time_ns DESC
LIMIT 200"""

# The table each query reads.
QUERIES = {
    "process_execs": ("process_events", PROCESS_EXECS),
    "process_failures": ("process_events", PROCESS_FAILURES),
    "connections": ("tcp_connection_events", CONNECTIONS),
    "policy_deviations": ("flag_events", POLICY_DEVIATIONS),
    "received_alerts": ("received_alerts", RECEIVED_ALERTS),
}

_QUOTED = re.compile(r"\$\{(\w+):singlequote\}")


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def expand(sql: str, from_ms: int, to_ms: int, variables: dict[str, str]) -> str:
    """The SQL as Grafana sends it, for the given window and variable values."""
    sql = sql.replace("$__from", str(int(from_ms))).replace("$__to", str(int(to_ms)))
    sql = _QUOTED.sub(lambda m: quote(variables[m.group(1)]), sql)
    if "$" in sql:
        raise ValueError(f"unexpanded Grafana variable left in: {sql}")
    return sql
