"""The process probe against real processes: every value asserted is one this test caused."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from exporter.proc_scan import start_ticks
from testservices.exporter import (
    RunningExporter,
    exporter_config,
    exporter_with_wrong_offset,
    selftest_ok,
)


def test_exec_and_exit_are_exact(running_exporter):
    argv = ["/bin/sh", "-c", "exit 7", "first arg", "x" * 10]
    child = subprocess.Popen(argv)
    ticks = start_ticks(child.pid)
    assert child.wait() == 7
    got = running_exporter.events_of(child.pid)
    fork, exec_, exit_ = got["fork"][0], got["exec"][0], got["exit"][0]
    key = f"test-host:{child.pid}:{ticks}"
    parent_key = f"test-host:{os.getpid()}:{start_ticks(os.getpid())}"
    for ev in (fork, exec_, exit_):
        assert ev.process_key == key
        assert ev.ppid == os.getpid()
        assert ev.parent_key == parent_key
    assert exec_.argv == argv
    assert exec_.argv_truncated == 0
    assert exec_.filename == "/bin/sh"
    assert (exec_.uid, exec_.gid) == (os.getuid(), os.getgid())
    assert (exit_.exit_code, exit_.signal, exit_.outcome) == (7, 0, "error")
    assert exit_.lifetime_ns > 0 and exit_.start_time_ns == exec_.start_time_ns


def test_long_and_many_arguments_are_cut_and_flagged(running_exporter):
    argv = ["/bin/true", "a" * 300] + [str(i) for i in range(30)]
    child = subprocess.Popen(argv)
    child.wait()
    exec_ = running_exporter.events_of(child.pid, ("exec",))["exec"][0]
    assert exec_.argv == ["/bin/true", "a" * 127] + [str(i) for i in range(18)]
    assert exec_.argv_truncated == 1


def test_argument_of_exactly_127_bytes_is_not_flagged(running_exporter):
    argv = ["/bin/true", "b" * 127]
    child = subprocess.Popen(argv)
    child.wait()
    exec_ = running_exporter.events_of(child.pid, ("exec",))["exec"][0]
    assert exec_.argv == argv
    assert exec_.argv_truncated == 0


@pytest.mark.causes_flags("exec_from_tmp")
def test_the_longest_command_line_arrives_whole(running_exporter, tmp_path):
    """A filename of 255 bytes and 20 arguments of 127: the most an exec event carries."""
    directory = tmp_path / ("d" * 100)
    directory.mkdir()
    program = str(directory / ("t" * (255 - len(str(directory)) - 1)))
    shutil.copy("/bin/true", program)
    long_args = [chr(ord("a") + i) * 127 for i in range(19)]
    child = subprocess.Popen([program, *long_args, "the 21st"])
    child.wait()
    exec_ = running_exporter.events_of(child.pid, ("exec",))["exec"][0]
    assert len(exec_.filename) == 255 and exec_.filename == program
    assert exec_.argv == [program[:127], *long_args]  # each cut at 127 bytes, 20 at most
    assert exec_.argv_truncated == 1


def test_a_failed_exec_carries_its_filename_argv_and_errno(running_exporter, tmp_path):
    not_executable = tmp_path / "not-executable"
    not_executable.write_text("#!/bin/sh\n")
    child = subprocess.Popen(["/bin/sh", "-c", f"exec {not_executable} '' second"])
    assert child.wait() == 126  # sh: permission denied
    failed = running_exporter.events_of(child.pid, ("exec_failed",))["exec_failed"][0]
    assert failed.filename == str(not_executable)
    assert failed.argv == [str(not_executable), "", "second"]
    assert failed.outcome == "EACCES"


def test_sigkill_reads_signal_9(running_exporter):
    child = subprocess.Popen(["/bin/sleep", "30"])
    time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -9
    exit_ = running_exporter.events_of(child.pid, ("exit",))["exit"][0]
    assert (exit_.exit_code, exit_.signal, exit_.outcome) == (-1, 9, "signal")


def test_exit_from_a_non_main_thread_is_one_exit(running_exporter):
    code = (
        "import os, threading, time\n"
        "def worker():\n    time.sleep(0.2)\n    os._exit(5)\n"
        "for _ in range(3): threading.Thread(target=worker).start()\n"
        "time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    assert child.wait() == 5
    got = running_exporter.events_of(child.pid, ("exec", "exit"))
    running_exporter.caught_up()  # every thread had exited before wait() returned
    exits = [e for e in running_exporter.sink.snapshot() if e.pid == child.pid and e.kind == "exit"]
    assert len(exits) == 1
    assert (exits[0].exit_code, exits[0].outcome) == (5, "error")
    assert got["exec"][0].argv[:2] == [sys.executable, "-c"]


def test_reused_pid_gives_two_processes(running_exporter):
    """Force the kernel to hand out the same pid twice (ns_last_pid) and compare keys."""
    first = subprocess.Popen(["/bin/true", "first"])
    first.wait()
    for _ in range(20):
        time.sleep(0.02)  # a new clock tick, so the start times differ
        Path("/proc/sys/kernel/ns_last_pid").write_text(str(first.pid - 1))
        second = subprocess.Popen(["/bin/true", "second"])
        second.wait()
        if second.pid == first.pid:
            break
    else:
        pytest.fail("could not make the kernel reuse a pid")
    execs = running_exporter.wait_for(
        lambda e: (
            e.pid == first.pid
            and e.kind == "exec"
            and len(e.argv) == 2
            and e.argv[1] in ("first", "second")
            and e.argv[0] == "/bin/true"
        ),
        what="both execs",
    )
    deadline = time.monotonic() + 10
    while len({e.argv[1] for e in execs}) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        execs = [
            e
            for e in running_exporter.sink.snapshot()
            if e.pid == first.pid and e.kind == "exec" and e.argv[1:] in (["first"], ["second"])
        ]
    by_arg = {e.argv[1]: e for e in execs}
    assert by_arg["first"].process_key != by_arg["second"].process_key
    assert by_arg["first"].start_time_ns < by_arg["second"].start_time_ns


@pytest.mark.causes_flags("exec_from_tmp")
def test_counter_rises_by_exactly_the_execs_made(running_exporter, tmp_path):
    program = f"gt{uuid.uuid4().hex[:10]}"
    binary = tmp_path / program
    shutil.copy("/bin/true", binary)
    metric = ("groundtruth_process_execs_total", (("container", ""), ("program", program)))
    before = running_exporter.scrape().get(metric, 0)
    for _ in range(25):
        subprocess.run([str(binary)], check=True)
    # Nothing to wait for: the kernel counts in the exec tracepoint, before each run() returns.
    assert running_exporter.scrape().get(metric, 0) - before == 25


def test_a_batch_that_fails_to_decode_is_counted_and_the_exporter_goes_on(ebpf_problems, caplog):
    # A fault in decoding (injected: the first two batches of records raise) loses those
    # batches, counted as dropped, the first logged (a fault that repeats is logged once a
    # minute); the exporter keeps running and records the next process.
    from exporter.probes.process import ProcessProbe
    from tests.fixtures.ebpf import skip_or_fail_without_ebpf

    skip_or_fail_without_ebpf(ebpf_problems)
    failed: list[int] = []  # the sizes of the batches that raised

    class FailsOnce(ProcessProbe):
        def decode_rows(self, records):  # what the exporter's drain decodes with
            if records and len(failed) < 2:
                failed.append(len(records))
                raise RuntimeError("an injected decoding fault")
            return super().decode_rows(records)

    exp = RunningExporter(exporter_config(selftest=False))
    exp.exporter.process_probe.__class__ = FailsOnce
    exp.start()
    try:
        deadline = time.monotonic() + 30
        while len(failed) < 2:  # records to decode: processes of ours
            assert time.monotonic() < deadline, "no batch was drained"
            subprocess.run(["/bin/true"], check=True)
            time.sleep(0.05)
        child = subprocess.Popen(["/bin/sh", "-c", "exit 9"])
        assert child.wait() == 9
        (exit_,) = exp.events_of(child.pid, ("exit",))["exit"]
        assert (exit_.exit_code, exit_.outcome) == (9, "error")
        reason = (("reason", "process_decode_error"), ("stage", "decode"))
        assert exp.scrape()[("groundtruth_events_dropped_total", reason)] == sum(failed)
        assert exp.thread.is_alive()
    finally:
        exp.stop()
    logged = [r for r in caplog.records if "decoding" in r.getMessage()]
    assert [r.getMessage() for r in logged] == [
        f"process probe: decoding {failed[0]} records failed"
    ]
    assert "an injected decoding fault" in logged[0].exc_text


def wait_for_exec(parent: int, argv: list[str], timeout: float = 30.0) -> int:
    """The pid of parent's child once it runs argv (forked is not enough: the scan reads it)."""
    want = "\0".join(argv) + "\0"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True)
        for pid in children.stdout.split():
            try:
                if Path(f"/proc/{pid}/cmdline").read_text() == want:
                    return int(pid)
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no child of {parent} ran {argv} within {timeout}s")


def test_process_started_before_the_exporter_has_its_parent(ebpf_problems):
    from tests.fixtures.ebpf import skip_or_fail_without_ebpf

    skip_or_fail_without_ebpf(ebpf_problems)
    shell = subprocess.Popen(["/bin/sh", "-c", "/bin/sleep 30 & wait"])
    sleeper = wait_for_exec(shell.pid, ["/bin/sleep", "30"])
    exp = RunningExporter(exporter_config(selftest=False)).start()
    try:
        scanned = {e.pid: e for e in exp.sink.snapshot() if e.kind == "scan"}
        assert scanned[sleeper].ppid == shell.pid
        assert scanned[sleeper].parent_key == scanned[shell.pid].process_key
        assert scanned[shell.pid].process_key == f"test-host:{shell.pid}:{start_ticks(shell.pid)}"
        assert scanned[sleeper].argv == ["/bin/sleep", "30"]
        assert scanned[sleeper].source == "scan"
        # Its exit, seen live, carries the key the scan gave it.
        os.kill(sleeper, signal.SIGKILL)
        exit_ = exp.events_of(sleeper, ("exit",))["exit"][0]
        assert exit_.process_key == scanned[sleeper].process_key
        assert exit_.signal == 9
    finally:
        shell.kill()
        shell.wait()
        exp.stop()


def test_promtool_check_metrics_is_clean_on_the_real_output(running_exporter):
    import urllib.request

    subprocess.run(["/bin/sh", "-c", "exit 1"])
    text = urllib.request.urlopen(running_exporter.url, timeout=10).read()
    out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
    assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()
    assert b"groundtruth_process_execs_total" in text


def test_a_failed_selftest_blanks_the_untrusted_field(ebpf_problems):
    """A wrong struct offset (as a kernel change could cause) must not become wrong data."""
    from tests.fixtures.ebpf import skip_or_fail_without_ebpf

    skip_or_fail_without_ebpf(ebpf_problems)
    exp = exporter_with_wrong_offset("TASK_EXIT_CODE", ("task_struct", "pid"))
    try:
        assert selftest_ok(exp) == 0
        child = subprocess.Popen(["/bin/sh", "-c", "exit 3"])
        child.wait()
        got = exp.events_of(child.pid, ("exec", "exit"))
        exit_ = got["exit"][0]
        assert (exit_.exit_code, exit_.signal, exit_.outcome) == (-1, 0, "")  # blanked
        assert got["exec"][0].argv == ["/bin/sh", "-c", "exit 3"]  # the rest still flows
    finally:
        exp.stop()


def test_a_drain_waits_for_a_batch_until_a_ring_buffer_fills_or_the_delay_passes(ebpf_problems):
    # poll() drains when a ring buffer is drain_fill_fraction full, or drain_max_delay_seconds
    # have passed since the last drain; until then the records wait in the kernel, none lost.
    from exporter.runner import Exporter
    from exporter.sinks.memory import MemorySink
    from tests.fixtures.ebpf import skip_or_fail_without_ebpf

    skip_or_fail_without_ebpf(ebpf_problems)
    config = exporter_config(selftest=False, drain_fill_fraction=1.0, drain_max_delay_seconds=5)
    sink = MemorySink()
    exporter = Exporter(config, sink)
    exporter.start(serve=False)
    probe = exporter.process_probe

    def exits_of(pid: int) -> list[int]:
        return [e.exit_code for e in sink.snapshot() if e.pid == pid and e.kind == "exit"]

    try:
        exporter.drain_once()  # the last drain: now
        # A process's exit is queued before its parent's wait returns.
        waits = subprocess.Popen(["/bin/sh", "-c", "exit 7"])
        assert waits.wait() == 7
        assert probe.ring_fill() > 0
        assert not exporter.poll()  # far from full, and well within the delay
        assert exits_of(waits.pid) == []
        fill = config.drain_fill_fraction = probe.ring_fill()  # as full as the ring is now: due
        assert exporter.poll()
        assert exits_of(waits.pid) == [7]

        config.drain_fill_fraction, config.drain_max_delay_seconds = 1.0, 0.0
        late = subprocess.Popen(["/bin/sh", "-c", "exit 8"])
        assert late.wait() == 8
        assert exporter.poll()  # the delay has passed
        assert exits_of(late.pid) == [8]
        # Each of the three drains observed how full the ring was, the second at least `fill`.
        registry, labels = exporter.registry, {"probe": "process"}
        assert registry.get_sample_value("groundtruth_ringbuf_fill_ratio_count", labels) == 3
        assert registry.get_sample_value("groundtruth_ringbuf_fill_ratio_sum", labels) >= fill
    finally:
        exporter.shutdown()


def test_where_bcc_consumes_the_ring_every_look_drains_and_no_fill_is_observed(ebpf_problems):
    # bcc's per-event consumer (where the ring's memory map is not read directly) cannot tell
    # how full the ring is: poll() then drains at every look, as before drain batching, and
    # groundtruth_ringbuf_fill_ratio observes nothing rather than a made-up fill.
    from exporter.probes.process import ProcessProbe
    from exporter.runner import Exporter
    from exporter.sinks.memory import MemorySink
    from tests.fixtures.ebpf import skip_or_fail_without_ebpf

    skip_or_fail_without_ebpf(ebpf_problems)

    class ThroughBcc(ProcessProbe):
        read_directly = False

    config = exporter_config(selftest=False, drain_fill_fraction=1.0, drain_max_delay_seconds=5)
    sink = MemorySink()
    exporter = Exporter(config, sink)
    exporter.process_probe.__class__ = ThroughBcc
    exporter.start(serve=False)
    try:
        exporter.drain_once()
        child = subprocess.Popen(["/bin/sh", "-c", "exit 5"])
        assert child.wait() == 5
        assert exporter.process_probe.ring_fill() is None
        assert exporter.poll()  # well within the delay, yet drained
        assert [
            e.exit_code for e in sink.snapshot() if e.pid == child.pid and e.kind == "exit"
        ] == [5]
        count = exporter.registry.get_sample_value(
            "groundtruth_ringbuf_fill_ratio_count", {"probe": "process"}
        )
        assert count is None  # no observation: no series
    finally:
        exporter.shutdown()
