"""Baseline deviations on real activity, beyond the new program, port and destination of
test_baseline_live: one exporter (real eBPF, stored in chDB) records a service's normal work in
a systemd-like cgroup, a policy is learned from the store and loaded into the same exporter
(what SIGHUP does), and then:

- the service runs one of its programs under a new parent program, as a new user, and accepts
  a connection from a new source address: exactly those three flags, once each, about the
  processes the test identified by pid and start time;
- the service connects N times to a destination outside its policy, then once more for long
  enough that the TCP probe announces the connection (an ``open`` event before its ``close``),
  and one of its children execs the same new program twice: one flag per deviation and
  process, and the counter rises by every occurrence (N + 1 connections, two execs).

In both, the service's normal work repeated afterwards raises nothing.
"""

from __future__ import annotations

import time

import pytest

from baseline.cli import learned
from baseline.learn import learn
from exporter.flags.setup import reload_policies
from exporter.probes.tcp import TcpProbe
from exporter.proc_scan import start_ticks
from policy.files import file_name, render
from policy.model import KINDS
from schema.events import ConnectionEvent, FlagEvent, ProcessEvent, process_key
from tests.cgroups import cgroup_dirs, random_service_unit, service_v2
from tests.test_baseline_live import PYTHON, SERVICE, Peer, Service, stored
from tests.test_flags_live import copy_program
from testservices.alert_stack import poll

HOST = "test-host"  # exporter_config's
# Run by the service: prints its pid and start time (clock ticks), the parts of its process key.
IDENTIFY = (
    "import os; print(os.getpid(), open('/proc/self/stat').read().rsplit(')', 1)[1].split()[19])"
)
NEW_SOURCE = "127.0.0.2"  # loopback, but not the address the service's clients came from
OTHER_UID = 4613  # no account: a user the service never ran anything as
LOOP = 5  # connections to the new destination


def key_of_report(line: str, host: str = HOST) -> str:
    """The process key IDENTIFY's output gives on host."""
    pid, ticks = line.split()
    return process_key(host, int(pid), int(ticks))


# Generous: a timeout only turns a hang into a failure, which says how far it got.
WAIT_SECONDS = 60


def wait_stored(reader, what: str, sql: str, params: dict, at_least: int) -> None:
    poll(
        what,
        lambda: stored(reader, sql, params) >= at_least,
        WAIT_SECONDS,
        explain=lambda: f"The store has {stored(reader, sql, params)}.",
    )


def wait_execs_stored(reader, workload: str, filenames: tuple[str, ...], n: int) -> None:
    """Until the store has n execs of those files in the workload (the service's own among
    them: it entered its cgroup before it exec'd)."""
    wait_stored(
        reader,
        f"{n} execs of {filenames} by {workload} in the store",
        "SELECT count() FROM process_events WHERE workload = {w:String} AND kind = 'exec' "
        "AND filename IN {f:Array(String)}",
        {"w": workload, "f": list(filenames)},
        n,
    )


def learn_and_load(exp, service: Service, start_ns: int) -> None:
    """The service's policy, learned from what the store holds since start_ns, written to the
    exporter's policy directory and loaded."""
    activity = learn(exp.reader, start_ns, time.time_ns(), service.workload)
    text = render(learned(service.workload, activity.seen(service.workload)))
    (exp.policies_dir / file_name(service.workload)).write_text(text)
    assert reload_policies(exp.exporter.detector, str(exp.policies_dir)).startswith("policies re")
    assert service.workload in exp.exporter.detector.policy_family.policies


def connections(exp, workload: str, direction: str, port: int) -> list[ConnectionEvent]:
    """The workload's closed connections in the sink: outbound to port, inbound on port."""
    return [
        e
        for e in exp.sink.snapshot()
        if isinstance(e, ConnectionEvent)
        and e.kind == "close"
        and e.workload == workload
        and e.direction == direction
        and (e.remote_port if direction == "outbound" else e.local_port) == port
    ]


def wait_connections(exp, workload: str, direction: str, port: int, n: int) -> None:
    poll(
        f"{n} {direction} connections of {workload} (port {port}) in the sink",
        lambda: len(connections(exp, workload, direction, port)) >= n,
        WAIT_SECONDS,
        explain=lambda: f"The sink has {connections(exp, workload, direction, port)}.",
    )


def long_connection(exp, s: Service, port: int) -> str:
    """The service connects to port and keeps the connection until the TCP probe has announced
    it (``open``, sent for connections older than ``open_after_seconds``, here lowered for the
    while), then closes it. Its connection id."""
    tcp = next(p for p in exp.exporter.probes if isinstance(p, TcpProbe))
    usual_wait = tcp.open_after_seconds
    tcp.open_after_seconds = 0.5
    try:
        assert s.ask(f"hold {port}") == "done"
        (opened,) = exp.wait_for(
            lambda e: (
                isinstance(e, ConnectionEvent)
                and e.kind == "open"
                and e.workload == s.workload
                and e.remote_port == port
            ),
            what=f"the open event of the service's long connection to port {port}",
        )
    finally:
        tcp.open_after_seconds = usual_wait
    assert s.ask("release") == "done"
    return opened.connection_id


def flags_of(exp, workload: str) -> list[tuple[str, str]]:
    """(rule, process key) of every flag about the workload's processes, rules' flags too; but
    the service's own start: where this checkout is under /tmp (CI clones there), python runs
    policy_service.py from /tmp, which exec_from_tmp rightly flags, once per repeat window (so
    in whichever of these tests comes first): where the checkout is, not what a test did."""
    return sorted(
        (f.rule_id, f.process_key)
        for f in exp.sink.snapshot()
        if isinstance(f, FlagEvent)
        and f.workload == workload
        and not (f.rule_id == "exec_from_tmp" and f.program == SERVICE.name)
    )


def deviation_counts(exp, workload: str) -> dict[str, float]:
    samples = exp.scrape()
    return {
        kind: samples[
            ("groundtruth_policy_deviations_total", (("kind", kind), ("policy", workload)))
        ]
        for kind in KINDS
    }


@pytest.fixture
def service(policy_exporter):
    """A service in a systemd-like cgroup of its own, and the listener it calls as usual."""
    unit, usual = random_service_unit(), Peer()
    with cgroup_dirs(service_v2(unit)) as (cgroup,):
        s = Service(cgroup, unit)
        s.usual = usual
        s.key = process_key(HOST, s.proc.pid, start_ticks(s.proc.pid))
        try:
            yield s
        finally:
            s.stop()
            usual.close()


def test_a_new_parent_user_and_source_are_flagged_once_each(policy_exporter, service):
    exp, s = policy_exporter, service
    shell_runs_python = ["/bin/sh", "-c", '"$0" -c "$1"; :', PYTHON, IDENTIFY]  # sh forks it

    def normal_work():
        assert s.ask("exec /bin/sh -c :") == "done"  # sh, started by the service
        s.report("-", PYTHON, "-c", IDENTIFY)  # python, started by the service, as root
        assert s.ask(f"connect {s.usual.port}") == "done"
        s.accept_from_test()  # from 127.0.0.1

    start_ns = time.time_ns()
    normal_work()
    normal_work()
    wait_execs_stored(exp.reader, s.workload, ("/bin/sh", PYTHON), 1 + 2 + 2)
    wait_stored(
        exp.reader,
        "the service's inbound connections in the store",
        "SELECT count() FROM tcp_connection_events WHERE workload = {w:String} "
        "AND kind = 'close' AND direction = 'inbound'",
        {"w": s.workload},
        2,
    )
    learn_and_load(exp, s, start_ns)

    under_new_parent = key_of_report(s.report("-", *shell_runs_python))
    as_new_user = key_of_report(s.report(str(OTHER_UID), PYTHON, "-c", IDENTIFY))
    s.accept_from_test(source=NEW_SOURCE)
    normal_work()
    normal_work()

    # Everything the flags are about, and the normal work after them, has reached the sink
    # (the detector sees a batch before the sink does).
    wait_connections(exp, s.workload, "inbound", s.port, 5)
    inbound = connections(exp, s.workload, "inbound", s.port)
    assert sorted(e.remote_addr for e in inbound) == ["127.0.0.1"] * 4 + [NEW_SOURCE]
    for key in (under_new_parent, as_new_user):
        exp.wait_for(lambda e, k=key: e.kind == "exec" and e.process_key == k, what=key)
    exp.caught_up()  # and the normal work's execs

    assert flags_of(exp, s.workload) == sorted(
        [
            ("policy_parent", under_new_parent),
            ("policy_user", as_new_user),
            ("policy_inbound", s.key),
        ]
    )
    by_rule = {
        f.rule_id: f
        for f in exp.sink.snapshot()
        if isinstance(f, FlagEvent) and f.workload == s.workload
    }
    assert f"{PYTHON} started by a new parent program sh" in by_rule["policy_parent"].description
    assert f"{PYTHON} run by a new user {OTHER_UID}" in by_rule["policy_user"].description
    assert (
        f"accepts from a new source {NEW_SOURCE} on port {s.port}"
        in by_rule["policy_inbound"].description
    )
    assert by_rule["policy_inbound"].connection_id == next(
        e.connection_id for e in inbound if e.remote_addr == NEW_SOURCE
    )
    assert deviation_counts(exp, s.workload) == {
        "exec": 0, "parent": 1, "user": 1, "listen": 0, "outbound": 0, "inbound": 1,
    }  # fmt: skip


def test_a_loop_is_flagged_once_and_counted_every_time(policy_exporter, service):
    exp, s = policy_exporter, service
    new = Peer()
    # One process execs /bin/sh, which execs /bin/sh again, which execs python: the same new
    # program twice in one process.
    shell_twice = ["/bin/sh", "-c", 'exec /bin/sh -c \'exec "$0" -c "$1"\' "$0" "$1"']

    def normal_work():
        s.report("-", PYTHON, "-c", IDENTIFY)
        assert s.ask(f"connect {s.usual.port}") == "done"

    try:
        start_ns = time.time_ns()
        normal_work()
        wait_execs_stored(exp.reader, s.workload, (PYTHON,), 1 + 1)
        wait_stored(
            exp.reader,
            "the service's connection in the store",
            "SELECT count() FROM tcp_connection_events WHERE workload = {w:String} "
            "AND kind = 'close' AND remote_port = {p:UInt16}",
            {"w": s.workload, "p": s.usual.port},
            1,
        )
        learn_and_load(exp, s, start_ns)
        severity = exp.exporter.detector.policy_family.policies[s.workload].severity
        raised = ("groundtruth_flags_total", (("class", "security"), ("rule", "policy_outbound"),
                                              ("severity", severity)))  # fmt: skip
        assert deviation_counts(exp, s.workload) == dict.fromkeys(KINDS, 0)
        flagged_before = exp.scrape().get(raised, 0)

        for _ in range(LOOP):
            assert s.ask(f"connect {new.port}") == "done"
        long_id = long_connection(exp, s, new.port)
        reexec = key_of_report(s.report("-", *shell_twice, PYTHON, IDENTIFY))
        normal_work()
        normal_work()

        wait_connections(exp, s.workload, "outbound", new.port, LOOP + 1)
        wait_connections(exp, s.workload, "outbound", s.usual.port, 3)
        exp.wait_for(
            lambda e: e.kind == "exec" and e.process_key == reexec and e.filename == PYTHON,
            what="the re-exec'd shell's python",
        )
        exp.caught_up()
        execs = [
            e.filename
            for e in exp.sink.snapshot()
            if e.kind == "exec" and getattr(e, "process_key", "") == reexec
        ]
        assert execs == ["/bin/sh", "/bin/sh", PYTHON]  # what the test meant to cause

        assert flags_of(exp, s.workload) == sorted(
            [("policy_outbound", s.key), ("policy_exec", reexec)]
        )
        # The long connection's close is the one after the loop's five: all six, each once.
        closes = connections(exp, s.workload, "outbound", new.port)
        assert [e.connection_id for e in closes].index(long_id) == LOOP == len(closes) - 1
        assert deviation_counts(exp, s.workload) == {
            "exec": 2, "parent": 0, "user": 0, "listen": 0, "outbound": LOOP + 1, "inbound": 0,
        }  # fmt: skip
        assert exp.scrape()[raised] - flagged_before == LOOP + 1  # every one, stored or repeat
    finally:
        new.close()


def test_a_program_run_by_a_relative_name_is_known_by_its_directory(
    policy_exporter, service, run_dir
):
    """The service runs ./tool in its own directory: its policy allows that directory's tool,
    named by its full path. The same ./tool run from another directory is a new program, flagged
    with where it ran from: a policy that knew it as ./tool would allow a file of that name
    anywhere, /tmp included."""
    exp, s = policy_exporter, service
    home, elsewhere = run_dir / "app", run_dir / "elsewhere"
    for directory in (home, elsewhere):
        directory.mkdir()
        copy_program("/bin/true", directory, "tool")

    start_ns = time.time_ns()
    assert s.ask(f"exec_in {home} ./tool") == "done"
    wait_execs_stored(exp.reader, s.workload, ("./tool",), 1)
    learn_and_load(exp, s, start_ns)
    entries = exp.exporter.detector.policy_family.policies[s.workload].entries
    assert ("exec", f"{home}/tool") in entries
    assert not any(key[1].startswith("./") for key in entries if key[0] == "exec")

    assert s.ask(f"exec_in {elsewhere} ./tool") == "done"
    assert s.ask(f"exec_in {home} ./tool") == "done"  # as learned: nothing
    poll(
        "./tool run once from the other directory and twice from the service's, in the sink",
        lambda: len(execs_in(exp, elsewhere)) == 1 and len(execs_in(exp, home)) == 2,
        WAIT_SECONDS,
    )
    (away,) = execs_in(exp, elsewhere)
    exp.caught_up()

    assert flags_of(exp, s.workload) == [("policy_exec", away.process_key)]
    (flag,) = [
        f
        for f in exp.sink.snapshot()
        if isinstance(f, FlagEvent) and f.workload == s.workload and f.rule_id == "policy_exec"
    ]
    assert f"new executable {elsewhere}/tool" in flag.description
    assert deviation_counts(exp, s.workload)["exec"] == 1


def execs_in(exp, directory) -> list[ProcessEvent]:
    """The execs of ./tool run in directory, in the sink."""
    return [
        e
        for e in exp.sink.snapshot()
        if isinstance(e, ProcessEvent)
        and e.kind == "exec"
        and e.filename == "./tool"
        and e.cwd == str(directory)
    ]
