"""Fixtures shared by the whole suite live in tests/fixtures/ (the servers they start, in
testservices/)."""

import os
import sys
import time
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.ebpf",
    "tests.fixtures.services",
    "tests.fixtures.incident",
    "tests.fixtures.alerting",
]


# Markers follow the fixtures a test uses, so none is forgotten by hand (`-m "not ebpf"` on a
# machine without BPF, `-m "not services"` without the server packages). Every fixture that
# loads BPF asks for ebpf_problems; these start real servers.
EBPF_FIXTURE = "ebpf_problems"
SERVICE_FIXTURES = {
    "clickhouse_server",
    "clickhouse_factory",
    "clickhouse_cluster",
    "clickhouse_zk_cluster",
    "zookeeper",
    "prometheus_factory",
    "alertmanager_factory",
}
# Fixtures that cause flags while a test sets them up (scripts/flag_watch.py matches a flag to
# the test running then): the scripted incident runs its scripts from pytest's tmp directory
# with sh, which exec_from_tmp rightly flags, in whichever test asks for it first.
FLAG_FIXTURES = {"incident_scenario": ("exec_from_tmp",)}


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = set(item.fixturenames)
        if EBPF_FIXTURE in names:
            item.add_marker(pytest.mark.ebpf)
        if names & SERVICE_FIXTURES:
            item.add_marker(pytest.mark.services)
        for fixture in names & FLAG_FIXTURES.keys():
            item.add_marker(pytest.mark.causes_flags(*FLAG_FIXTURES[fixture]))


def _children(pid: int) -> list[str]:
    """Processes whose parent is pid: (pid, command) lines."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(f"{stat.parent.name} ({comm})")
    return found


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """Tests leave no process running: every server a fixture started has been stopped."""
    deadline = time.monotonic() + 10
    while (left := _children(os.getpid())) and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        session.exitstatus = 1
        print(f"\nERROR: processes left running by the tests: {', '.join(left)}", file=sys.stderr)
