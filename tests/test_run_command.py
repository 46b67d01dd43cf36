"""``groundtruth run`` as a user meets it: start-up checks, events to a sink, clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.fixtures.ebpf import skip_or_fail_without_ebpf
from testservices.service import free_port

GROUNDTRUTH = [sys.executable, "-m", "groundtruth.cli"]


def test_help_explains_run():
    out = subprocess.run([*GROUNDTRUTH, "run", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "--sink" in out.stdout and "SIGTERM" in out.stdout


def test_not_root_is_one_clear_line():
    out = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *GROUNDTRUTH, "run"],
        capture_output=True,
        text=True,
        cwd="/",
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert out.returncode == 2
    assert "groundtruth: error: not running as root" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_flag_value_is_one_clear_line():
    out = subprocess.run(
        [*GROUNDTRUTH, "run", "--listen", "nowhere"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr.strip() == "groundtruth: error: listen address 'nowhere' is not HOST:PORT"


def test_sigterm_flushes_every_event(ebpf_problems, tmp_path):
    skip_or_fail_without_ebpf(ebpf_problems)
    out_file = tmp_path / "events.jsonl"
    port = free_port()
    exporter = subprocess.Popen(
        [
            *GROUNDTRUTH,
            "run",
            "--listen",
            f"127.0.0.1:{port}",
            "--host",
            "cli-host",
            "--sink",
            f"jsonl:{out_file}",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while "metrics on" not in (line := exporter.stderr.readline()):
            assert line and time.monotonic() < deadline, "exporter did not start"
        child = subprocess.Popen(["/bin/sh", "-c", "exit 13", "cli-canary"])
        child.wait()
        exporter.send_signal(signal.SIGTERM)  # at once: the final drain must deliver it
        assert exporter.wait(30) == 0
    finally:
        exporter.kill()
    events = [json.loads(line) for line in out_file.read_text().splitlines()]
    ours = {e["kind"]: e for e in events if e["pid"] == child.pid}
    assert ours["exec"]["argv"] == ["/bin/sh", "-c", "exit 13", "cli-canary"]
    assert ours["exit"]["exit_code"] == 13
    assert ours["exit"]["host"] == "cli-host"
    assert any(e["kind"] == "scan" for e in events)
