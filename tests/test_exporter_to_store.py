"""The real exporter's events land in the real store with exact field values: what this test's
own processes did (pid, parent, argv, uid, exit code, bytes), read back with SQL."""

from __future__ import annotations

import os
import socket
import subprocess
import threading

import pytest

from exporter.runner import Exporter
from schema.pipeline_stats import PipelineStats
from store.db import open_store
from store.migrations import migrate
from store.writer import StoreWriter, WriterSettings
from tests.fixtures.ebpf import skip_or_fail_without_ebpf
from testservices.exporter import exporter_config
from testservices.store_helpers import wait_until


@pytest.fixture(params=["clickhouse", "chdb"])
def open_test_store(request):
    """Opens a fresh store (a real server's database, or chDB); each call a new connection."""
    if request.param == "clickhouse":
        url = request.getfixturevalue("clickhouse_url")
        return lambda: open_store(url)
    data_dir, database = request.getfixturevalue("chdb_database")
    return lambda: open_store(None, data_dir=data_dir, database=database)


def rows(store, columns: str, rest: str, **params) -> list[dict]:
    """SELECT columns (comma-separated names) ... as dicts."""
    names = [c.strip() for c in columns.split(",")]
    return [
        dict(zip(names, r, strict=True)) for r in store.query(f"SELECT {columns} {rest}", params)
    ]


def test_real_events_land_with_exact_values(ebpf_problems, open_test_store, tmp_path):
    skip_or_fail_without_ebpf(ebpf_problems)
    reader = open_test_store()
    migrate(reader)
    stats = PipelineStats()
    # The writer owns (and closes) a connection of its own.
    writer = StoreWriter(open_test_store(), tmp_path / "spool", stats, WriterSettings(max_age=0.2))
    exporter = Exporter(exporter_config(tcp=True, host="store-host"), writer, stats=stats)
    exporter.start(serve=False)
    loop = threading.Thread(target=exporter.run, daemon=True)
    loop.start()
    try:
        argv = ["/bin/sh", "-c", "exit 6", "store-test"]
        child = subprocess.Popen(argv)
        child.wait()
        with socket.create_server(("127.0.0.1", 0)) as listener:
            client = socket.create_connection(listener.getsockname())
            server_side, _ = listener.accept()
            client.sendall(b"x" * 12_345)
            got = 0
            while got < 12_345:
                got += len(server_side.recv(65536))
            client.close()
            server_side.close()
            port = listener.getsockname()[1]

        # Exactly the rows asserted on: the child's exec and exit, and each end's close.
        def process_rows():
            return rows(
                reader,
                "kind, pid, ppid, argv, uid, exit_code, outcome, process_key, parent_key",
                "FROM process_events WHERE host = {host:String} AND pid = {pid:UInt32} "
                "AND kind IN ('exec', 'exit') ORDER BY time_ns",
                host="store-host",
                pid=child.pid,
            )

        def close_rows():
            return {
                c["direction"]: c
                for c in rows(
                    reader,
                    "direction, pid, bytes_sent, bytes_received",
                    "FROM tcp_connection_events WHERE host = {host:String} AND kind = 'close' "
                    "AND ((direction = 'outbound' AND remote_port = {port:UInt16}) "
                    "OR (direction = 'inbound' AND local_port = {port:UInt16}))",
                    host="store-host",
                    port=port,
                )
            }

        wait_until(
            lambda: {r["kind"] for r in process_rows()} == {"exec", "exit"},
            what=f"the exec and exit of pid {child.pid} in the store",
        )
        wait_until(
            lambda: close_rows().keys() == {"outbound", "inbound"},
            what=f"both ends' close of the connection to port {port} in the store",
        )
        found, by_direction = process_rows(), close_rows()
    finally:
        exporter.stop()
        loop.join(30)
        reader.close()
    exec_, exit_ = found
    assert (exec_["kind"], exit_["kind"]) == ("exec", "exit")
    assert exec_["argv"] == argv
    assert exec_["ppid"] == exit_["ppid"] == os.getpid()
    assert exec_["uid"] == os.getuid()
    assert (exit_["exit_code"], exit_["outcome"]) == (6, "error")
    assert exec_["process_key"] == exit_["process_key"]
    assert exec_["process_key"].startswith(f"store-host:{child.pid}:")
    assert by_direction["outbound"]["bytes_sent"] == 12_345
    assert by_direction["inbound"]["bytes_received"] == 12_345
    assert by_direction["outbound"]["pid"] == by_direction["inbound"]["pid"] == os.getpid()
