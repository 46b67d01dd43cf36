"""Fixtures shared by the whole suite live in tests/fixtures/, one module per component."""

pytest_plugins = [
    "tests.fixtures.ebpf",
    "tests.fixtures.prometheus",
    "tests.fixtures.clickhouse",
]
