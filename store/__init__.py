"""The event store: ClickHouse (a server, or chDB embedded) holding every raw event.

``open_store`` connects, ``store.migrations.migrate`` creates the schema, ``StoreWriter`` is the
exporter's sink, and ``SinkCollector`` exports the writer's health.
"""
