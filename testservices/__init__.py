"""Real services started on free loopback ports for the tests and the benchmarks: ClickHouse,
Prometheus, Alertmanager, ZooKeeper, an exporter in a thread, and the whole alerting stack.

Both ``tests`` (through the pytest fixtures in ``tests/fixtures/``) and ``bench`` import this
package; it imports neither of them. It is not installed with groundtruth.
"""
