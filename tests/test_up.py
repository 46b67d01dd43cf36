"""``groundtruth up`` (make run) as a new user meets it: it serves real metrics and a graph of
what runs, and Ctrl-C stops it cleanly with every event written to the embedded store."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

from tests.fixtures.ebpf import skip_or_fail_without_ebpf
from testservices.service import free_port


def stored_events(data_dir, pid: int) -> list:
    """(kind, argv, exit_code) of pid's events in a chDB directory, read in a process of its
    own: chDB serves one data directory per process, and the suite's is another."""
    reader = (
        "import json, sys\n"
        "from store.db import open_store\n"
        "store = open_store(None, sys.argv[1])\n"
        "rows = store.query('SELECT kind, argv, exit_code FROM process_events '\n"
        "    'WHERE pid = {pid:UInt32} AND host = {host:String} ORDER BY time_ns',\n"
        "    {'pid': int(sys.argv[2]), 'host': 'up-host'})\n"
        "print(json.dumps([list(r) for r in rows]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", reader, str(data_dir), str(pid)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def test_up_serves_metrics_and_graph_and_stops_losing_nothing(ebpf_problems, tmp_path):
    skip_or_fail_without_ebpf(ebpf_problems)
    metrics_port, graph_port = free_port(), free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "groundtruth.cli", "up", "--data-dir", str(tmp_path / "chdb"),
         "--listen", f"127.0.0.1:{metrics_port}", "--graphapi-listen", f"127.0.0.1:{graph_port}",
         "--host", "up-host"],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        banner = ""
        deadline = time.monotonic() + 60
        while "Ctrl-C" not in banner:
            line = up.stderr.readline()
            assert line and time.monotonic() < deadline, f"up did not start: {banner}"
            banner += line
        assert f"http://127.0.0.1:{metrics_port}/metrics" in banner
        assert f"http://127.0.0.1:{graph_port}/api/graph" in banner

        token = f"up-{uuid.uuid4().hex[:8]}"
        # The list is capped at 1,500 processes in no set order and the exporter sees the
        # whole (busy, shared) machine: list only the seconds since the child started.
        since_ms = time.time_ns() // 10**6 - 1000
        child = subprocess.Popen(["/bin/sh", "-c", "exit 4", token])
        child.wait()
        listed = f"http://127.0.0.1:{graph_port}/api/processes?limit=1500&from={since_ms}"
        key = None
        # The writer flushes within ~5 s (max_age); the timeout only turns a hang into a failure.
        deadline = time.monotonic() + 60
        while key is None and time.monotonic() < deadline:
            time.sleep(0.3)
            rows = json.loads(get(listed))
            key = next((r["process_key"] for r in rows if token in r["command_line"]), None)
        assert key is not None, f"pid {child.pid} ({token}) not served by graphapi within 60 s"
        assert key == f"up-host:{child.pid}:" + key.rsplit(":", 1)[1]
        graph = json.loads(get(f"http://127.0.0.1:{graph_port}/api/graph?focus={key}"))
        assert key in {n["id"] for n in graph["nodes"]}
        metrics = get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert 'groundtruth_probe_selftest_ok{probe="process"} 1.0' in metrics

        # The last events before Ctrl-C are drained and written, not lost.
        last = subprocess.Popen(["/bin/sh", "-c", "exit 5", token + "-last"])
        last.wait()
        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0
    finally:
        up.kill()
        up.wait()
    kinds = {kind: (argv, code) for kind, argv, code in stored_events(tmp_path / "chdb", last.pid)}
    assert kinds["exec"][0] == ["/bin/sh", "-c", "exit 5", token + "-last"]
    assert kinds["exit"][1] == 5
