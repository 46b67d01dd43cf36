"""Container attribution, per-container counters and resources, OOM kills: real cgroups."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.cgroups import (
    cgroup_dirs,
    docker_scope_v2,
    docker_v1,
    fake_container_id,
    oom_killed_in_container,
    random_service_unit,
    run_in,
    service_v2,
)


def test_docker_scope_on_cgroup_v2_is_attributed_and_counted(running_exporter):
    cid = fake_container_id()
    with cgroup_dirs(docker_scope_v2(cid)) as (scope,):
        codes = [0, 0, 3, 4]
        children = [run_in([scope], ["/bin/sh", "-c", f"exit {c}"]) for c in codes]
        killed = run_in([scope], ["/bin/sleep", "30"])
        time.sleep(0.2)
        killed.kill()
        for child in children + [killed]:
            child.wait()
        for child in children + [killed]:
            got = running_exporter.events_of(child.pid, ("exec", "exit"))
            assert got["exec"][0].container_id == cid
            assert got["exit"][0].container_id == cid
        label = ("container", cid[:12])
        # No wait: the kernel counted each exit (and exec) in its tracepoint, before the
        # process could be reaped; the events above showed the container is known.
        samples = running_exporter.scrape()
        for outcome, want in (("ok", 2), ("error", 2), ("signal", 1)):
            metric = ("groundtruth_process_exits_total", (label, ("outcome", outcome)))
            assert samples.get(metric, 0) == want, outcome
        execs = {
            k[1]: v
            for k, v in samples.items()
            if k[0] == "groundtruth_process_execs_total" and label in k[1]
        }
        assert sum(execs.values()) == 5


def test_container_cpu_and_memory_from_v1_cgroups(running_exporter):
    cid = fake_container_id()
    limit = 256 << 20
    mem, cpu = docker_v1("memory", cid), docker_v1("cpuacct", cid)
    with cgroup_dirs(mem, cpu):
        (mem / "memory.limit_in_bytes").write_text(str(limit))
        spin = (
            "import time, sys\nx = b'a' * (64 << 20)\nt = time.process_time()\n"
            "while time.process_time() - t < 0.5: pass\nprint('done', flush=True)\ntime.sleep(30)"
        )
        hog = run_in([mem, cpu], [sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
        try:
            assert hog.stdout.readline() == "done\n"
            label = (("container", cid[:12]),)
            samples = running_exporter.scrape()
            assert samples[("groundtruth_container_memory_limit_bytes", label)] == limit
            assert samples[("groundtruth_container_memory_bytes", label)] >= 64 << 20
            cpu_seconds = sum(
                samples[("groundtruth_container_cpu_seconds_total", label + (("mode", m),))]
                for m in ("user", "system")
            )
            assert cpu_seconds >= 0.45  # it used 0.5 s of CPU (cpuacct counts in 1/100 s)
        finally:
            hog.kill()
            hog.wait()


def test_oom_kill_is_tied_to_the_exit_it_causes(running_exporter):
    cid = fake_container_id()
    with oom_killed_in_container(cid) as hog:
        assert hog.returncode == -9
        got = running_exporter.events_of(hog.pid, ("exec", "exit", "oom_kill"))
        exit_ = got["exit"][0]
        assert (exit_.outcome, exit_.signal) == ("oom", 9)
        assert got["oom_kill"][0].process_key == exit_.process_key
        # A container that exists only in the v1 memory hierarchy (hybrid host): attributed
        # from the v1 cgroup id the kernel reported, not from a /proc read.
        assert got["exec"][0].container_id == exit_.container_id == cid
        assert got["exec"][0].workload == exit_.workload == f"container:{cid[:12]}"
        label = (("container", cid[:12]), ("outcome", "oom"))
        # Counted in the exit tracepoint, before wait() returned: nothing to wait for.
        assert running_exporter.scrape().get(("groundtruth_process_exits_total", label), 0) == 1


def test_container_cpu_from_cgroup_v2(running_exporter):
    cid = fake_container_id()
    spin = (
        "import time\nt = time.process_time()\n"
        "while time.process_time() - t < 0.3: pass\nprint('done', flush=True)\ntime.sleep(30)"
    )
    with cgroup_dirs(docker_scope_v2(cid)) as (scope,):
        hog = run_in([scope], [sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
        try:
            assert hog.stdout.readline() == "done\n"
            samples = running_exporter.scrape()
            label = (("container", cid[:12]),)
            cpu_seconds = sum(
                samples[("groundtruth_container_cpu_seconds_total", label + (("mode", m),))]
                for m in ("user", "system")
            )
            assert cpu_seconds >= 0.29  # it used 0.3 s of CPU (cpu.stat counts in us)
        finally:
            hog.kill()
            hog.wait()


LISTEN_AND_CONNECT = """
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
cli = socket.create_connection(srv.getsockname()); conn, _ = srv.accept()
cli.sendall(b"x"); conn.recv(1); print(srv.getsockname()[1], flush=True)
"""


def test_workload_of_a_service_a_container_and_the_host(running_exporter):
    """Process, listen and connection events name the workload of their cgroup: a systemd unit
    (a real cgroup v2 directory named like one), a container (no runtime answers here: its id),
    and everything else ``host``."""
    cid, unit = fake_container_id(), random_service_unit()
    with cgroup_dirs(service_v2(unit), docker_scope_v2(cid)) as (service, scope):
        in_service = run_in(
            [service], [sys.executable, "-c", LISTEN_AND_CONNECT], stdout=subprocess.PIPE, text=True
        )
        port = int(in_service.stdout.readline())
        in_container = run_in([scope], ["/bin/true"])
        on_host = subprocess.Popen(["/bin/true"])
        for child in (in_service, in_container, on_host):
            child.wait()
        for child, workload in (
            (in_service, unit), (in_container, f"container:{cid[:12]}"), (on_host, "host"),
        ):  # fmt: skip
            got = running_exporter.events_of(child.pid, ("exec", "exit"))
            assert got["exec"][0].workload == got["exit"][0].workload == workload
        listens = running_exporter.wait_for(
            lambda e: getattr(e, "local_port", None) == port and e.kind == "listen", what="listen"
        )
        assert [e.workload for e in listens] == [unit]
        outbound = running_exporter.wait_for(
            lambda e: getattr(e, "remote_port", None) == port and e.pid == in_service.pid,
            what="the service's connection",
        )
        assert {e.workload for e in outbound} == {unit}
