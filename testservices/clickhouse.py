"""Real ClickHouse servers (Debian's clickhouse-server 18.16) for tests and benchmarks.

``ClickHouseServer`` writes a config into a temporary directory (free loopback TCP and HTTP
ports, data, tmp and log paths inside that directory, no system service touched), starts the
real binary through ``ServerProcess`` and waits until ``SELECT 1`` answers on the native port. A
broken config fails with the server's own log tail (``ServiceStartError``). ``kill()`` and
``start()`` again give an outage on the same ports and data.

The pytest fixtures on them (tests/fixtures/services.py): ``clickhouse_server`` (one per
session) with ``clickhouse_url`` (a fresh database per test on it), ``clickhouse_factory``
(servers a test owns, e.g. to kill them), ``clickhouse_cluster`` (two servers forming the
two-shard cluster ``CLUSTER_NAME``), ``clickhouse_zk_cluster`` (the same with ZooKeeper, for ON
CLUSTER DDL) and ``chdb_dir`` / ``chdb_database`` (chDB allows one data directory per process,
so one directory per session and a fresh database per test).
"""

from __future__ import annotations

import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from clickhouse_driver import Client

from testservices.service import ServerProcess, free_port

# A user with a password, to test credentials; "default" has none.
WRITER_USER, WRITER_PASSWORD = "writer", "s3cret-pw"
CLUSTER_NAME = "gt_two_shards"


def server_argv(config: Path) -> list[str]:
    """The server command: Debian ships clickhouse-server; newer builds one `clickhouse`."""
    for path in ("/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"):
        if Path(path).exists():
            return [path, f"--config-file={config}"]
    binary = shutil.which("clickhouse-server") or shutil.which("clickhouse")
    if binary is None:
        pytest.fail("clickhouse-server is not installed (make setup installs it)")
    if binary.endswith("clickhouse-server"):
        return [binary, f"--config-file={config}"]
    return [binary, "server", f"--config-file={config}"]


def remote_servers_xml(cluster: str, shard_ports: list[int]) -> str:
    shards = "".join(
        f"<shard><replica><host>127.0.0.1</host><port>{p}</port></replica></shard>"
        for p in shard_ports
    )
    return f"<remote_servers><{cluster}>{shards}</{cluster}></remote_servers>"


USERS_XML = f"""<?xml version="1.0"?>
<yandex>
  <profiles><default>
    <max_memory_usage>2000000000</max_memory_usage>{{profile_extra}}
  </default></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile><quota>default</quota></default>
    <{WRITER_USER}><password>{escape(WRITER_PASSWORD)}</password>
      <networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota>
    </{WRITER_USER}>
  </users>
  <quotas><default></default></quotas>
</yandex>
"""


@dataclass
class ClickHouseServer:
    workdir: Path
    tcp_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    remote_servers: str = ""  # a <remote_servers> section, for clusters
    extra_config: str = ""  # more top-level sections (ZooKeeper, distributed DDL)
    profile_extra: str = ""  # extra settings in the default profile (a broken one, in a test)
    process: ServerProcess | None = None

    def __post_init__(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "config.xml"
        self.server_log = self.workdir / "server.log"
        self.error_log = self.workdir / "server.err.log"
        (self.workdir / "users.xml").write_text(
            USERS_XML.replace("{profile_extra}", self.profile_extra)
        )
        self.config_path.write_text(self._config())

    def _config(self) -> str:
        d = self.workdir
        return f"""<?xml version="1.0"?>
<yandex>
  <logger><level>information</level><console>0</console>
    <log>{self.server_log}</log><errorlog>{self.error_log}</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>{self.tcp_port}</tcp_port>
  <http_port>{self.http_port}</http_port>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>104857600</mark_cache_size>
  <uncompressed_cache_size>104857600</uncompressed_cache_size>
  <mlock_executable>false</mlock_executable>
  {self.remote_servers}
  {self.extra_config}
</yandex>
"""

    def client(self, database: str = "default", **kwargs) -> Client:
        return Client(
            "127.0.0.1", port=self.tcp_port, database=database, connect_timeout=2, **kwargs
        )

    def url(self, database: str, user: str = WRITER_USER, password: str = WRITER_PASSWORD) -> str:
        return f"clickhouse://{user}:{password}@127.0.0.1:{self.tcp_port}/{database}"

    def _ready(self) -> bool:
        client = self.client()
        try:
            return client.execute("SELECT 1") == [(1,)]
        finally:
            client.disconnect()

    def start(self, timeout: float = 60.0) -> ClickHouseServer:
        self.process = ServerProcess(
            "clickhouse-server",
            server_argv(self.config_path),
            ready=self._ready,
            log_path=self.workdir / "stdout.log",
            extra_logs=(self.error_log, self.server_log),
            cwd=self.workdir,
            timeout=timeout,
        )
        self.process.start()
        return self

    def kill(self) -> None:
        """kill -9: an outage with no clean shutdown. start() brings it back on the same data."""
        self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def fresh_database_name() -> str:
    return "t_" + uuid.uuid4().hex[:12]


@contextmanager
def running_cluster(base: Path, zookeeper_port: int | None = None):
    """Two servers, each a shard of CLUSTER_NAME (one replica each); with a ZooKeeper port,
    configured for distributed (ON CLUSTER) DDL. Stopped on exit."""
    ports = [free_port(), free_port()]
    extra = zookeeper_xml(zookeeper_port) if zookeeper_port else ""
    shards = [
        ClickHouseServer(
            base / f"shard{i}",
            tcp_port=port,
            remote_servers=remote_servers_xml(CLUSTER_NAME, ports),
            extra_config=extra,
        )
        for i, port in enumerate(ports, 1)
    ]
    try:
        for shard in shards:
            shard.start()
            if zookeeper_port:
                wait_for_zookeeper_session(shard)
        yield shards
    finally:
        for shard in shards:
            shard.stop()


def zookeeper_xml(port: int) -> str:
    """ZooKeeper and the distributed DDL queue: what ON CLUSTER needs."""
    return (
        f"<zookeeper><node><host>127.0.0.1</host><port>{port}</port></node></zookeeper>"
        "<distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>"
    )


def wait_for_zookeeper_session(server: ClickHouseServer, timeout: float = 30.0) -> None:
    """ClickHouse 18.16 crashes on distributed DDL sent before its ZooKeeper session is up."""
    client = server.client()
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.execute("SELECT count() FROM system.zookeeper WHERE path = '/'")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        client.disconnect()
