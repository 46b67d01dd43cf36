"""A real ZooKeeper (Debian's zookeeper 3.8) on a free loopback port, for ClickHouse's
distributed DDL (``ON CLUSTER``).

``start_zookeeper`` writes a standalone zoo.cfg into a temporary directory (client port bound
to 127.0.0.1, admin server off), runs ``ZooKeeperServerMain`` through ``ServerProcess`` and
waits until the ``srvr`` command says it serves.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from testservices.service import ServerProcess, free_port

CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"


@dataclass
class ZooKeeper:
    port: int
    process: ServerProcess

    def stop(self) -> None:
        self.process.stop()


def _serving(port: int) -> bool:
    """``srvr`` names the mode only once the server serves requests (``ruok`` answers before)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"srvr")
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    return b"Mode: standalone" in reply


def start_zookeeper(workdir: Path) -> ZooKeeper:
    java = shutil.which("java")
    if java is None or not Path("/usr/share/java/zookeeper.jar").exists():
        pytest.fail("zookeeper is not installed (make setup installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "zoo.cfg"
    config.write_text(
        f"tickTime=2000\ndataDir={workdir / 'data'}\nclientPort={port}\n"
        "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=srvr\n"
        "maxClientCnxns=0\n"
    )
    process = ServerProcess(
        "zookeeper",
        [java, "-Xmx256m", "-cp", CLASSPATH, "org.apache.zookeeper.server.ZooKeeperServerMain",
         str(config)],
        ready=lambda: _serving(port),
        log_path=workdir / "zookeeper.log",
        cwd=workdir,
    )  # fmt: skip
    process.start()
    return ZooKeeper(port, process)
