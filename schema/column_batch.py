"""Events as columns: a batch of one event class held as typed columns, not one object per event.

The hot path (the TCP probe's close events) decodes a ring buffer drain straight into columns and
hands them to the store as columns; an event object is made only for a consumer that asks for
one (``events()``: the JSON-lines sink, tests, the flag detector's few rows via ``rows()``).

A column is one of:
- a numpy integer array (a ``UInt*``/``Int*`` field);
- ``Coded``: text as codes into a short list of distinct values (what a batch repeats: hosts,
  process keys, addresses, outcomes), expanded only where a consumer needs the strings;
- a plain list (text that differs on every row, such as event ids).

A ``RowBatch`` is the other hot path's form (the process probe's events, which the flag detector
reads every one of): plain tuples in the class's field order, turned into columns or event
objects only where a consumer asks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from itertools import chain
from operator import itemgetter

import numpy as np

from schema.events import field_indexes, from_row, row_columns


@dataclass(frozen=True)
class Coded:
    """Text column: ``values[codes[i]]`` is row i."""

    codes: np.ndarray
    values: list

    def __len__(self) -> int:
        return len(self.codes)

    def tolist(self) -> list:
        values = self.values
        return [values[i] for i in self.codes.tolist()]

    def take(self, indexes) -> Coded:
        return Coded(self.codes[indexes], self.values)


def plain(column) -> list:
    """A column as a list of Python values."""
    return column if isinstance(column, list) else column.tolist()


def _slice(column, rows: slice):
    return Coded(column.codes[rows], column.values) if isinstance(column, Coded) else column[rows]


def _take(column, indexes):
    if isinstance(column, list):
        return [column[i] for i in np.asarray(indexes).tolist()]
    return column.take(indexes) if isinstance(column, Coded) else column[indexes]


class ColumnBatch:
    """Rows of one event class (``cls``, a dataclass of ``schema.events``) as columns named and
    ordered as its fields."""

    def __init__(self, cls: type, columns: dict):
        self.cls = cls
        self.columns = columns
        self._events: list | None = None

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitem__(self, rows: slice) -> ColumnBatch:
        """The rows of a slice (the store writer takes batches of its own size)."""
        return ColumnBatch(self.cls, {n: _slice(c, rows) for n, c in self.columns.items()})

    def plain(self) -> dict[str, list]:
        """{column: [values...]}, as ``store.db.columnar`` gives for event objects."""
        return {name: plain(column) for name, column in self.columns.items()}

    def events(self) -> list:
        """One event object per row, in order (made once)."""
        if self._events is None:
            self._events = self._objects(self.columns)
        return self._events

    def rows(self, indexes) -> list:
        """Event objects of the given rows only."""
        if self._events is not None:
            return [self._events[i] for i in np.asarray(indexes).tolist()]
        return self._objects({n: _take(c, indexes) for n, c in self.columns.items()})

    def _objects(self, columns: dict) -> list:
        cls = self.cls
        names = [f.name for f in fields(cls)]
        return [cls(*row) for row in zip(*(plain(columns[n]) for n in names), strict=True)]

    def kind_counts(self) -> Counter:
        """{kind: rows} of the batch (for groundtruth_events_total)."""
        kind = self.columns["kind"]
        if isinstance(kind, Coded):
            counts = np.bincount(kind.codes, minlength=len(kind.values))
            out: Counter = Counter()
            for value, n in zip(kind.values, counts.tolist(), strict=True):
                if n:
                    out[value] += n
            return out
        return Counter(plain(kind))


class RowBatch(ColumnBatch):
    """Rows of a row class (``schema.events.row_class``: ProcessEvent) as plain tuples in its
    field order, a ColumnBatch to every consumer of one.

    Why: such an event object is a tuple subclass, and making one takes a second allocation
    and a copy of its 42 fields after the tuple itself is made; on an exec storm, decoding
    into plain tuples cost 0.4 us less per event (of ~3). The detector reads the tuples by
    field index (an event object is a tuple in the same order, so it reads either), the store
    writer transposes them into columns as it does event objects, and ``events()`` makes the
    objects for a sink that takes no columns (JSON lines, tests)."""

    def __init__(self, cls: type, tuples: list):  # (no ColumnBatch.__init__: no columns yet)
        self.cls = cls
        self.tuples = tuples
        self._events: list | None = None
        self._columns: dict | None = None

    @property
    def columns(self) -> dict:  # type: ignore[override]  # made when first asked
        if self._columns is None:
            self._columns = row_columns([f.name for f in fields(self.cls)], self.tuples)
        return self._columns

    def __len__(self) -> int:
        return len(self.tuples)

    def __getitem__(self, rows: slice) -> RowBatch:
        return RowBatch(self.cls, self.tuples[rows])

    def events(self) -> list:
        if self._events is None:
            cls = self.cls
            self._events = [from_row(cls, row) for row in self.tuples]
        return self._events

    def rows(self, indexes) -> list:
        events = self.events()
        return [events[i] for i in np.asarray(indexes).tolist()]

    def kind_counts(self) -> Counter:
        (kind,) = field_indexes(self.cls, "kind")
        return Counter(map(itemgetter(kind), self.tuples))


def concat(batches: list[ColumnBatch]) -> dict:
    """The columns of several batches of one class, one after the other."""
    if len(batches) == 1:
        return batches[0].columns
    row_batches = [b for b in batches if isinstance(b, RowBatch)]
    if len(row_batches) == len(batches):  # their rows transposed at once, in C
        rows = list(chain.from_iterable(b.tuples for b in row_batches))
        return RowBatch(batches[0].cls, rows).columns
    out: dict = {}
    for name, first in batches[0].columns.items():
        parts = [b.columns[name] for b in batches]
        if isinstance(first, Coded):
            values, codes, at = [], [], 0
            for part in parts:
                codes.append(part.codes.astype(np.int64) + at)
                values += part.values
                at += len(part.values)
            out[name] = Coded(np.concatenate(codes), values)
        elif isinstance(first, list):
            out[name] = list(chain.from_iterable(parts))
        else:
            out[name] = np.concatenate(parts)
    return out


def expand(items: list) -> list:
    """Event objects in place of every ColumnBatch of a delivered batch."""
    if not any(isinstance(i, ColumnBatch) for i in items):
        return items
    out: list = []
    for item in items:
        if isinstance(item, ColumnBatch):
            out += item.events()
        else:
            out.append(item)
    return out
