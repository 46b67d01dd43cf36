"""Incident tooling on the event store: ``timeline``, ``ancestry`` and ``postmortem``.

Every command reads the store (``store.db.open_store``: ClickHouse server or chDB) with
parameterized, bounded queries (``incident.queries``) and never writes to it.
"""
