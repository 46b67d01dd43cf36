"""Baselines on real activity: a service in a systemd-like cgroup and one in a container cgroup
(real cgroup v2 directories) do their normal work under a real exporter (real eBPF, stored in
chDB); a policy is learned from the store; an exporter started with ``--policies`` then sees
each service (a) run a new program, (b) listen on a new port, (c) connect to a new destination:
exactly those three deviations, once each, about the right process and workload, and nothing
for the normal work repeated. Re-learning the same window changes nothing; merging what
happened allows the very events that were flagged."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from baseline.cli import learned, merged
from baseline.learn import learn
from exporter.flags.detector import load_detector
from exporter.flags.policies import PolicyFamily
from policy.files import file_name, load_policies, render
from policy.model import KINDS
from schema.events import ConnectionEvent, FlagEvent, ListenEvent, ProcessEvent
from tests.cgroups import (
    cgroup_dirs,
    docker_scope_v2,
    fake_container_id,
    random_service_unit,
    run_in,
    service_v2,
)
from testservices.exporter import RunningExporter, exporter_config
from testservices.store_helpers import wait_until

pytestmark = pytest.mark.ebpf
SERVICE = Path(__file__).parent / "policy_service.py"
# The interpreter's real file (the restart test below runs it through its symlink).
PYTHON = os.path.realpath("/usr/bin/python3")


class Peer:
    """A listener the test runs: answers one byte per connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(1)
                conn.sendall(b"z")

    def close(self):
        self.sock.close()


class Service:
    """policy_service.py in a cgroup, driven line by line."""

    def __init__(self, cgroup: Path, workload: str, python: str = PYTHON):
        self.workload = workload
        self.proc = run_in(
            [cgroup], [python, str(SERVICE)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.port = int(self.proc.stdout.readline())

    def ask(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def report(self, user: str, *argv: str) -> str:
        """What the program printed first, run by the service as ``user`` ('-': its own)."""
        assert not any("\n" in arg for arg in argv), "one command a line"
        return self.ask(shlex.join(["report", user, *argv]))

    def accept_from_test(self, source: str = "127.0.0.1") -> None:
        """accept, with the test connecting to the service's port from address ``source``."""
        self.proc.stdin.write("accept\n")
        self.proc.stdin.flush()
        with socket.create_connection(("127.0.0.1", self.port), source_address=(source, 0)) as conn:
            conn.sendall(b"x")
            conn.recv(1)
        assert self.proc.stdout.readline().strip() == "done"

    def normal_work(self, usual: Peer) -> None:
        assert self.ask("exec /bin/true") == "done"
        assert self.ask(f"connect {usual.port}") == "done"
        self.accept_from_test()

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


def stored(reader, sql: str, params: dict) -> int:
    return reader.query(sql, params)[0][0]


def test_new_program_port_and_destination_are_flagged_once(flagging_exporter, tmp_path):
    recorder = flagging_exporter  # records to chDB what baselines are learned from
    unit, cid = random_service_unit(), fake_container_id()
    usual, new = Peer(), Peer()
    start_ns = time.time_ns()
    with cgroup_dirs(service_v2(unit), docker_scope_v2(cid)) as (service_cg, container_cg):
        services = [Service(service_cg, unit), Service(container_cg, f"container:{cid[:12]}")]
        try:
            for s in services:
                s.normal_work(usual)
                s.normal_work(usual)
            for s in services:  # everything reached the store
                wait_until(
                    lambda s=s: (
                        stored(
                            recorder.reader,
                            "SELECT count() FROM tcp_connection_events WHERE workload = {w:String} "
                            "AND remote_port = {p:UInt16} AND kind = 'close'",
                            {"w": s.workload, "p": usual.port},
                        )
                        >= 2
                    ),
                    what=f"{s.workload}'s connections in the store",
                )
            learned_ns = time.time_ns()
            policies = tmp_path / "policies"
            policies.mkdir()
            for s in services:
                activity = learn(recorder.reader, start_ns, learned_ns, s.workload)
                text = render(learned(s.workload, activity.seen(s.workload)))
                (policies / file_name(s.workload)).write_text(text)
                # Re-learning the same window writes the same bytes and allows all of it.
                again = learn(recorder.reader, start_ns, learned_ns, s.workload)
                assert render(learned(s.workload, again.seen(s.workload))) == text
                policy = load_policies(policies)[s.workload]
                assert merged(policy, again.seen(s.workload))[1] == 0
                assert f"  {PYTHON}:" in text and "  /bin/true:" in text
                assert f"  - {s.port}" in text

            watcher = RunningExporter(exporter_config(tcp=True, policies=str(policies))).start()
            try:
                deviations = {}
                for s in services:
                    assert s.ask("exec /bin/echo new") == "done"
                    new_port = int(s.ask("listen"))
                    assert s.ask(f"connect {new.port}") == "done"
                    deviations[s.workload] = new_port
                for s in services:  # the normal work, repeated: nothing
                    s.normal_work(usual)
                    s.normal_work(usual)
                for s in services:
                    echo = watcher.wait_for(
                        lambda e, s=s: (
                            e.kind == "exec"
                            and e.filename == "/bin/echo"
                            and e.workload == s.workload
                        ),
                        what=f"{s.workload}'s /bin/echo",
                    )[0]
                    s.echo_key = echo.process_key
                    wait_until(  # both inbound connections of the repeated normal work
                        lambda s=s: inbound_closes(watcher, s.workload) >= 2,
                        what=f"{s.workload}'s inbound connections",
                    )
                watcher.caught_up()
                time.sleep(0.5)  # the TCP probe's events after its last drain
                seen = watcher.sink.snapshot()
                flags = [e for e in seen if isinstance(e, FlagEvent) and e.kind == "policy"]
                for s in services:
                    service_key = next(
                        e.process_key
                        for e in seen
                        if isinstance(e, ListenEvent)
                        and e.local_port == deviations[s.workload]
                        and e.pid == s.proc.pid  # a port another process had before
                    )
                    got = sorted(
                        (f.rule_id, f.process_key, f.pid) for f in flags if f.workload == s.workload
                    )
                    assert got == sorted(
                        [
                            ("policy_exec", s.echo_key, int(s.echo_key.split(":")[1])),
                            ("policy_listen", service_key, s.proc.pid),
                            ("policy_outbound", service_key, s.proc.pid),
                        ]
                    ), s.workload
                    by_rule = {f.rule_id: f for f in flags if f.workload == s.workload}
                    assert "/bin/echo" in by_rule["policy_exec"].description
                    assert str(deviations[s.workload]) in by_rule["policy_listen"].description
                    assert f"127.0.0.1:{new.port}" in by_rule["policy_outbound"].description
                    assert {f.container_id for f in by_rule.values()} == {
                        cid if s.workload.startswith("container:") else ""
                    }
                samples = watcher.scrape()
                for s in services:
                    for kind in KINDS:  # one each of the three (a loop: test_policy_live)
                        label = (("kind", kind), ("policy", s.workload))
                        expected = int(kind in ("exec", "listen", "outbound"))
                        assert samples[("groundtruth_policy_deviations_total", label)] == expected
            finally:
                watcher.stop()

            # Merged with what happened since, the policies allow the very events flagged.
            wait_until(
                lambda: (
                    stored(
                        recorder.reader,
                        "SELECT count() FROM tcp_connection_events WHERE remote_port = {p:UInt16} "
                        "AND kind = 'close' AND workload != 'host'",
                        {"p": new.port},
                    )
                    >= 2
                ),
                what="the new destination's connections in the store",
            )
            current = load_policies(policies)
            for s in services:
                activity = learn(recorder.reader, start_ns, time.time_ns(), s.workload)
                new_policy, added = merged(current[s.workload], activity.seen(s.workload))
                assert added >= 3  # the program (with its parent and user), the port, the place
                Path(current[s.workload].path).write_text(render(new_policy))
            replayed = [e for e in seen if not isinstance(e, FlagEvent)]
            assert replay(load_policies(policies), replayed) == []
        finally:
            for s in services:
                s.stop()
            usual.close()
            new.close()


def test_a_restarted_exporter_names_a_running_parent_as_its_exec_did(flagging_exporter, tmp_path):
    """A service run through a symlink (/usr/bin/python3 -> python3.11) is learned from its exec
    events; an exporter started while it runs finds it by the /proc scan, and its children's
    parent program is still the one the policy was learned with: no new parent."""
    link = "/usr/bin/python3"
    assert os.path.islink(link)  # the point of the test: the exec'd path is not the file
    recorder, unit = flagging_exporter, random_service_unit()
    start_ns = time.time_ns()
    with cgroup_dirs(service_v2(unit)) as (cgroup,):
        service = Service(cgroup, unit, python=link)
        try:
            assert service.ask("exec /bin/true") == "done"
            wait_until(
                lambda: (
                    stored(
                        recorder.reader,
                        "SELECT count() FROM process_events WHERE workload = {w:String} "
                        "AND kind = 'exec' AND filename = '/bin/true'",
                        {"w": unit},
                    )
                    >= 1
                ),
                what="the service's exec of /bin/true in the store",
            )
            activity = learn(recorder.reader, start_ns, time.time_ns(), unit)
            policies = tmp_path / "policies"
            policies.mkdir()
            text = render(learned(unit, activity.seen(unit)))
            (policies / file_name(unit)).write_text(text)
            policy = load_policies(policies)[unit]
            assert ("exec", link) in policy.entries  # named as exec'd, not python3.11
            assert ("parent", "/bin/true", "python3") in policy.entries

            watcher = RunningExporter(exporter_config(tcp=True, policies=str(policies))).start()
            try:
                (scanned,) = watcher.wait_for(
                    lambda e: (
                        isinstance(e, ProcessEvent)
                        and e.kind == "scan"
                        and e.pid == service.proc.pid
                    ),
                    what="the running service in the start-up scan",
                )
                assert (scanned.filename, scanned.workload) == (link, unit)
                assert service.ask("exec /bin/true") == "done"
                (child,) = watcher.wait_for(
                    lambda e: e.kind == "exec" and e.filename == "/bin/true" and e.workload == unit,
                    what="the service's exec of /bin/true after the restart",
                )
                assert child.parent_key == scanned.process_key
                watcher.caught_up()
                flags = [
                    e
                    for e in watcher.sink.snapshot()
                    if isinstance(e, FlagEvent) and e.workload == unit
                ]
                assert flags == []
                samples = watcher.scrape()
                for kind in ("exec", "parent", "user"):
                    label = (("kind", kind), ("policy", unit))
                    assert samples[("groundtruth_policy_deviations_total", label)] == 0
            finally:
                watcher.stop()
        finally:
            service.stop()


def replay(policies, events) -> list:
    detector = load_detector()
    detector.add_family(PolicyFamily(policies, detector))
    return [f for f in detector.observe(events) if f.kind == "policy"]


def inbound_closes(exp, workload: str) -> int:
    return sum(
        isinstance(e, ConnectionEvent)
        and e.kind == "close"
        and e.workload == workload
        and e.direction == "inbound"
        for e in exp.sink.snapshot()
    )
