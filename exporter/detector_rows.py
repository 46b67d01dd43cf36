"""Which rows of a ConnectionEvent ColumnBatch the flag detector reads (``exporter.flags``).
(Of a process RowBatch it reads every row, as the plain tuple it is.)

The detector takes event objects; making one per connection would undo the columnar hot path,
and it reads few of them. This filter follows what ``FlagDetector.observe`` does with a
connection, and must change with it:

- ``connect_failed``: the connect rules;
- inbound with a process key from a network-facing address, when the exec rules track servers
  (``ancestry.serving``);
- every connection of a workload that has a policy (the policy family's ``on_connection``);
- every row, when a family other than the policies' watches connections (its needs are unknown).

Rows are chosen on the columns: each distinct value is tested once, not each row.
"""

from __future__ import annotations

import numpy as np

from schema.column_batch import Coded, ColumnBatch, RowBatch
from schema.events import ConnectionEvent


def _rows_where(column, test) -> np.ndarray:
    """Whether each row's value passes ``test`` (called once per distinct value)."""
    if isinstance(column, Coded):
        return np.array([bool(test(v)) for v in column.values], bool)[column.codes]
    return np.array([bool(test(v)) for v in column], bool)


def detector_rows(detector, batch: ColumnBatch) -> list:
    """The event objects of the batch's rows the detector reads (most batches: none)."""
    if isinstance(batch, RowBatch):  # process rows: the detector reads every one, as they are
        return batch.tuples
    if batch.cls is not ConnectionEvent:
        return batch.events()
    policies = getattr(getattr(detector, "policy_family", None), "policies", None) or {}
    hooks = getattr(detector, "_connection_hooks", ())
    family = getattr(detector, "policy_family", None)
    if any(getattr(hook, "__self__", None) is not family for hook in hooks):
        return batch.events()
    cols = batch.columns
    wanted = _rows_where(cols["kind"], "connect_failed".__eq__)
    exec_rules = detector.exec_rules
    if exec_rules.tracks_servers:
        wanted |= (
            _rows_where(cols["direction"], "inbound".__eq__)
            & _rows_where(cols["process_key"], bool)
            & _rows_where(cols["remote_addr"], exec_rules.network_facing)
        )
    if policies and hooks:
        wanted |= _rows_where(cols["workload"], policies.__contains__)
    found = np.flatnonzero(wanted)
    return batch.rows(found) if len(found) else []
