"""One graph per identical request for a few seconds, so both calls of a panel refresh agree.

Grafana's Node Graph panel gets its nodes and its edges from two Infinity queries: two HTTP
calls with the same arguments, one after the other. Events that land between them would give
the edges call edges to nodes the nodes call never returned, and current Grafana then draws
nothing at all ("Cannot visualize graph data: N edges reference missing nodes", Grafana's
``public/app/plugins/panel/nodeGraph/dataErrors.ts``). So the first call of a request builds
the graph and every identical call within ``GRAPH_SNAPSHOT_SECONDS`` answers that same graph;
an identical call that arrives while it is being built waits for it instead of building its
own. The request (window, scope, focus, limit) is the key: the dashboard sends its time range
(``${__from}``/``${__to}``, one value per refresh), so a refresh is one key and the next
refresh, with its new window end, another.

A failed build is not shared: the calls waiting for it build again (and fail or succeed on
their own).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

EXTENSION = "groundtruth.graph_snapshots"
MAX_SNAPSHOTS = 64  # distinct requests kept at once (dashboards open at the same time)


class _Entry:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.graph: dict | None = None
        self.expires: float | None = None  # None while being built


class SnapshotCache:
    """Graphs by request key, each kept ``seconds`` after it was built."""

    def __init__(
        self,
        seconds: float,
        max_entries: int = MAX_SNAPSHOTS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.seconds = seconds
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], dict]) -> dict:
        """The graph for ``key``: a snapshot still fresh, else ``build()``'s (built once)."""
        if self.seconds <= 0:
            return build()
        with self._lock:
            self._drop_expired()
            entry = self._entries.get(key)
            building = entry is None
            if entry is None:
                entry = self._entries[key] = _Entry()
        if not building:
            entry.done.wait()
            return entry.graph if entry.graph is not None else build()
        try:
            entry.graph = build()
        except BaseException:
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
            raise
        finally:
            entry.expires = self.clock() + self.seconds
            entry.done.set()
        return entry.graph

    def _drop_expired(self) -> None:
        now = self.clock()
        expired = [
            k for k, e in self._entries.items() if e.expires is not None and e.expires <= now
        ]
        for key in expired:
            del self._entries[key]
        built = [k for k, e in self._entries.items() if e.expires is not None]
        for key in built[: max(0, len(self._entries) - self.max_entries + 1)]:
            del self._entries[key]  # oldest first; graphs being built are never dropped


def register(app) -> None:
    app.extensions[EXTENSION] = SnapshotCache(float(app.config["GRAPH_SNAPSHOT_SECONDS"]))


def snapshots(app) -> SnapshotCache:
    return app.extensions[EXTENSION]
