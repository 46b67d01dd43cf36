"""``groundtruth run`` as a user meets it: start-up checks, events to a sink, clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

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


def test_a_mixin_config_that_cannot_be_read_is_one_clear_line(tmp_path):
    path = tmp_path / "absent.yaml"
    out = subprocess.run(
        [*GROUNDTRUTH, "run", "--mixin-config", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr.startswith(f"groundtruth: error: cannot read config override {path}: ")
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


NOT_NETNS = " is not a network namespace (give /run/netns/NAME or /proc/PID/ns/net)"


@pytest.mark.parametrize(
    ("command", "path", "says"),
    [
        ("run", "/etc/hostname", NOT_NETNS),  # a file, not a namespace
        ("run", "/proc/self/ns/pid", NOT_NETNS),  # a namespace, not a network one
        ("up", "/nowhere/netns", ": No such file or directory"),
    ],
)
def test_a_netns_that_is_not_one_is_one_clear_line(command, path, says):
    out = subprocess.run(
        [*GROUNDTRUTH, command, "--netns", path], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert out.stderr.strip() == f"groundtruth: error: netns {path}{says}"


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
        client_port, server_port = one_connection(sent=1234)
        exporter.send_signal(signal.SIGTERM)  # at once: the final drain must deliver it
        assert exporter.wait(30) == 0
    finally:
        exporter.kill()
    events = [json.loads(line) for line in out_file.read_text().splitlines()]
    # A connection's close comes off the TCP probe's columnar path: as a whole event here too.
    (close,) = [
        e for e in events
        if e["type"] == "ConnectionEvent" and e["kind"] == "close"
        and e["local_port"] == client_port and e["remote_port"] == server_port
    ]  # fmt: skip
    assert (close["pid"], close["direction"], close["bytes_sent"]) == (
        os.getpid(),
        "outbound",
        1234,
    )
    assert close["host"] == "cli-host" and close["process_key"].startswith(
        f"cli-host:{os.getpid()}:"
    )
    ours = {e["kind"]: e for e in events if e["pid"] == child.pid}
    assert ours["exec"]["argv"] == ["/bin/sh", "-c", "exit 13", "cli-canary"]
    assert ours["exit"]["exit_code"] == 13
    assert ours["exit"]["host"] == "cli-host"
    assert any(e["kind"] == "scan" for e in events)


def one_connection(sent: int) -> tuple[int, int]:
    """A loopback connection from this process: sends ``sent`` bytes, the client closes first.
    (client port, server port)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        conn, _ = server.accept()
        client.sendall(b"x" * sent)
        got = 0
        while got < sent:
            got += len(conn.recv(65536))
        ports = client.getsockname()[1], server.getsockname()[1]
        client.close()
        conn.recv(1)  # the client's FIN
        conn.close()
    return ports


def start_up_error(port: int, sink: str, command=("run",)) -> str:
    """What ``groundtruth run`` (or ``command``) says on stderr when it refuses to start (exit
    status 2)."""
    out = subprocess.run(
        [*GROUNDTRUTH, *command, "--listen", f"127.0.0.1:{port}", "--sink", sink],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    return out.stderr.strip()


@pytest.mark.parametrize("command", ["run", "up"])
def test_a_metrics_port_in_use_is_one_line_before_anything_starts(ebpf_problems, tmp_path, command):
    """The port is bound first: no probe is loaded, no store opened and no sink has written
    when it is taken."""
    skip_or_fail_without_ebpf(ebpf_problems)
    chdb = tmp_path / "chdb"
    argv = ["run"] if command == "run" else ["up", "--data-dir", str(chdb), "--graphapi-listen",
                                             f"127.0.0.1:{free_port()}"]  # fmt: skip
    out_file = tmp_path / "events.jsonl"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        error = start_up_error(port, f"jsonl:{out_file}", argv)
    assert error == (
        f"groundtruth: error: cannot serve metrics on 127.0.0.1:{port}: Address already in use"
    )
    assert not out_file.exists(), "no sink was opened, no event written"
    assert not chdb.exists(), "no store was opened"


@pytest.mark.parametrize(
    "path, reason",
    [
        ("/nonexistent/dir/x.jsonl", "No such file or directory"),
        ("/proc/x", "No such file or directory"),
        ("/tmp", "Is a directory"),
    ],
)
def test_an_unwritable_jsonl_sink_is_one_line_and_exit_2(ebpf_problems, path, reason):
    skip_or_fail_without_ebpf(ebpf_problems)
    port = free_port()
    assert start_up_error(port, f"jsonl:{path}") == (
        f"groundtruth: error: sink 'jsonl:{path}': cannot write to '{path}': {reason}"
    )
    with socket.socket() as again:  # the metrics port bound first is released
        again.bind(("127.0.0.1", port))


# Every (stage, reason) the exporter counts drops under, with the TCP probe and a store sink.
KNOWN_DROPS = {
    ("kernel", "process_ringbuf_full"),
    ("kernel", "tcp_ringbuf_full"),
    ("kernel", "tcp_conn_table_full"),
    ("kernel", "tcp_counts_full"),
    ("kernel", "tcp_recursion_misses"),
    ("decode", "process_record_size"),
    ("decode", "tcp_record_size"),
    ("decode", "process_decode_error"),
    ("decode", "tcp_decode_error"),
    ("sink", "buffer_full"),
    ("sink", "rejected"),
    ("sink", "spool_error"),
    ("sink", "spool_full"),
}


def test_every_drop_reason_is_exported_from_the_start(ebpf_problems, tmp_path):
    """So that rate() and alert rules see each series before anything is dropped."""
    skip_or_fail_without_ebpf(ebpf_problems)
    port = free_port()
    exporter = subprocess.Popen(
        [*GROUNDTRUTH, "run", "--listen", f"127.0.0.1:{port}", "--no-selftest",
         "--sink", f"chdb:{tmp_path / 'chdb'}"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "metrics on" not in (line := exporter.stderr.readline()):
            assert line and time.monotonic() < deadline, "exporter did not start"
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        dropped = {
            (s.labels["stage"], s.labels["reason"]): s.value
            for family in text_string_to_metric_families(text.decode())
            for s in family.samples
            if s.name == "groundtruth_events_dropped_total"
        }
        exporter.send_signal(signal.SIGTERM)
        assert exporter.wait(60) == 0
    finally:
        exporter.kill()
    assert set(dropped) == KNOWN_DROPS
    assert [n for (stage, _), n in dropped.items() if stage == "sink"] == [0, 0, 0, 0]


def policies_loaded(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return next(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "groundtruth_exporter_policies"
    )


def test_sighup_reloads_the_policies_and_a_bad_file_keeps_them(ebpf_problems, tmp_path):
    skip_or_fail_without_ebpf(ebpf_problems)
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "a.yaml").write_text("workload: a.service\nlisten: [80]\n")
    port = free_port()
    exporter = subprocess.Popen(
        [*GROUNDTRUTH, "run", "--listen", f"127.0.0.1:{port}", "--no-tcp", "--no-selftest",
         "--sink", f"jsonl:{tmp_path / 'events.jsonl'}", "--policies", str(policies)],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "metrics on" not in (line := exporter.stderr.readline()):
            assert line and time.monotonic() < deadline, "exporter did not start"
        assert policies_loaded(port) == 1
        (policies / "b.yaml").write_text("workload: b.service\nlisten: [81]\n")
        exporter.send_signal(signal.SIGHUP)
        assert "policies reloaded from" in exporter.stderr.readline()
        assert policies_loaded(port) == 2
        (policies / "c.yaml").write_text("workload: c.service\nlisten: [http]\n")
        exporter.send_signal(signal.SIGHUP)
        line = exporter.stderr.readline()
        assert "policies not reloaded, the previous ones stay:" in line
        assert f"{policies / 'c.yaml'}:2: listen item must be a port" in line
        assert policies_loaded(port) == 2
        exporter.send_signal(signal.SIGTERM)
        assert exporter.wait(30) == 0
    finally:
        exporter.kill()
