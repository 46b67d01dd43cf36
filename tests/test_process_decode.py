"""Exec records decoded by the process probe, from records laid out as bpf/process.h sends them."""

from __future__ import annotations

import dataclasses
import pickle
import struct
from stat import S_IFCHR, S_IFIFO, S_IFSOCK

import pytest

from exporter.containers import ContainerResolver
from exporter.probes.base import ProbeContext
from exporter.probes.process import ProcessProbe
from exporter.probes.process_abi import (
    CGROUP_PATH_LEN,
    CONTEXT,
    CRED,
    EV_CGROUP_MKDIR,
    EV_CRED_CHANGE,
    EV_EXEC,
    EV_FORK,
    F_CWD_CUT,
    F_CWD_DEEP,
    F_EXE_PATH_CUT,
    F_EXE_PATH_DEEP,
    F_EXE_SCRIPT,
    HEAD,
)
from exporter.selftest import UNTRUSTED_FIELDS
from schema.events import DEEP_PATH, UNSET_ID, ProcessEvent

NO_CONTEXT = CONTEXT.pack(0, 0, 2**32 - 1, 2**32 - 1, 0, 0, 0, 0, 0, 0, 0, b"")


def exec_record(
    filename: bytes,
    argv: list[bytes],
    pid: int = 4242,
    cgroup_id: int = 1,
    context: bytes = NO_CONTEXT,
    flags: int = 0,
    exe_path: bytes = b"",
    cwd: bytes = b"",
) -> bytes:
    head = HEAD.pack(
        10**9, 5 * 10**8, 10**8, cgroup_id, 0, EV_EXEC, pid, 1, 0, 0, 0, flags, pid, b"prog"
    )
    # As bpf/process.h packs them: the command line, then the path's names from the file up.
    cmdline = b"".join(s + b"\0" for s in [filename, *argv])
    exe, where = names(exe_path), names(cwd)
    sizes = struct.pack("<IIII", len(argv), len(cmdline), len(exe), len(where))
    return head + context + sizes + cmdline + exe + where


def names(path: bytes) -> bytes:
    """A path as bpf/path.h sends it: names from the leaf up, each ended by a NUL; the root
    alone one NUL; none for b""."""
    if path == b"/":
        return b"\0"
    return b"".join(s + b"\0" for s in reversed(path.split(b"/")[1:])) if path else b""


def test_the_security_context_decodes_from_its_raw_fields():
    probe = ProcessProbe(ProbeContext(host="h"))
    pts = 136 << 20 | 3  # the kernel's dev_t of /dev/pts/3
    shell = CONTEXT.pack(
        0, 0, 1000, 7, pts, pts, pts, S_IFCHR | 0o620, S_IFCHR | 0o620, S_IFCHR | 0o620, 0,
        b"pts3",
    )  # fmt: skip
    reverse = CONTEXT.pack(
        0, 0, 1000, 7, 0, 0, 0, S_IFSOCK | 0o777, S_IFIFO | 0o600, 0, 0, b""
    )  # fmt: skip
    one = probe.decode(exec_record(b"/bin/sh", [b"sh"], context=shell))
    two = probe.decode(exec_record(b"/bin/sh", [b"sh"], context=reverse, flags=16 | 32))
    three = probe.decode(exec_record(b"/bin/sh", [b"sh"], context=reverse, flags=16))
    assert (one.auid, one.session_id, one.tty) == (1000, 7, "pts/3")
    assert (one.stdin_type, one.stdout_type, one.stderr_type) == ("tty", "tty", "tty")
    assert (one.exe_deleted, one.exe_memfd) == (0, 0)
    assert (two.tty, two.stdin_type, two.stdout_type, two.stderr_type) == (
        "", "socket", "pipe", "none",
    )  # fmt: skip
    assert (two.exe_deleted, two.exe_memfd) == (1, 1)  # the same context, other flags: apart
    assert (three.exe_deleted, three.exe_memfd) == (1, 0)
    four = probe.decode(exec_record(b"/tmp/x.sh", [b"x.sh"], context=reverse, flags=64))
    assert (four.exe_deleted, four.exe_memfd, four.exe_script) == (0, 0, 1)
    assert (one.exe_script, two.exe_script, three.exe_script) == (0, 0, 0)


def test_a_cred_change_record_decodes_ids_before_and_after():
    probe = ProcessProbe(ProbeContext(host="h"))
    head = HEAD.pack(
        10**9, 5 * 10**8, 10**8, 1, 0, EV_CRED_CHANGE, 77, 1, 65534, 0, 0, 0, 77, b"python3"
    )
    after, before = (65534, 0, 65534, 0), (0, 0, 0, 0)
    ev = probe.decode(head + CRED.pack(*after, *before, 3))
    assert (ev.kind, ev.outcome, ev.pid) == ("cred_change", "setresuid", 77)
    assert (ev.uid, ev.gid, ev.euid, ev.egid) == after
    assert (ev.prev_uid, ev.prev_gid, ev.prev_euid, ev.prev_egid) == before
    assert (ev.auid, ev.stdin_type) == (4294967295, "")  # not part of a cred_change


def test_a_repeated_command_line_decodes_the_same_into_a_list_of_its_own():
    probe = ProcessProbe(ProbeContext(host="h"))
    record = exec_record(b"/usr/bin/curl", [b"curl", b"-s", b"http://db:5432/"])
    first, again = probe.decode(record), probe.decode(record)
    assert (first.filename, first.argv) == ("/usr/bin/curl", ["curl", "-s", "http://db:5432/"])
    assert (again.filename, again.argv) == (first.filename, first.argv)
    again.argv.append("changed by a sink")
    assert first.argv == ["curl", "-s", "http://db:5432/"]


def test_command_lines_that_differ_in_one_byte_decode_apart():
    probe = ProcessProbe(ProbeContext(host="h"))
    one = probe.decode(exec_record(b"/bin/sh", [b"sh", b"-c", b"exit 1"]))
    two = probe.decode(exec_record(b"/bin/sh", [b"sh", b"-c", b"exit 2"]))
    three = probe.decode(exec_record(b"/bin/sh", [b"sh", b"-c"]))
    assert [one.argv, two.argv, three.argv] == [
        ["sh", "-c", "exit 1"],
        ["sh", "-c", "exit 2"],
        ["sh", "-c"],
    ]


def test_a_cgroup_created_mid_batch_attributes_the_events_after_it(tmp_path):
    """Containers are resolved once per batch: a cgroup_mkdir record must end that reuse."""
    probe = ProcessProbe(ProbeContext(host="h"), ContainerResolver(tmp_path, v1_hierarchy=0))
    container_id = "ab" * 32
    cgroup_id = 777
    path = f"/system.slice/docker-{container_id}.scope".encode()
    mkdir = HEAD.pack(10**9, 0, 0, cgroup_id, 0, EV_CGROUP_MKDIR, 1, 0, 0, 0, 0, 0, 1, b"")
    before = exec_record(b"/bin/true", [b"true"], pid=100, cgroup_id=cgroup_id)
    after = exec_record(b"/bin/true", [b"true"], pid=101, cgroup_id=cgroup_id)
    events = probe.decode_batch([before, mkdir + path.ljust(CGROUP_PATH_LEN, b"\0"), after])
    assert [(e.pid, e.container_id) for e in events] == [(100, ""), (101, container_id)]


def test_a_field_failing_its_selftest_is_emitted_blank():
    probe = ProcessProbe(ProbeContext(host="h"))
    probe.untrusted = UNTRUSTED_FIELDS["argv"]
    one = probe.decode(exec_record(b"/bin/sh", [b"sh", b"-c", b"exit 1"]))
    two = probe.decode(exec_record(b"/bin/sh", [b"sh", b"-c", b"exit 1"]))
    assert (one.filename, one.argv, one.argv_truncated) == ("/bin/sh", [], 0)
    one.argv.append("changed by a sink")
    assert two.argv == []


@pytest.mark.parametrize(
    "filename,argv,expected_argv",
    [
        (b"/bin/true", [], []),  # no arguments (or none known: exec began before the probe)
        (b"/bin/echo", [b"echo", b"", b"x"], ["echo", "", "x"]),  # an empty argument
        (b"/bin/echo", [b"echo", b""], ["echo", ""]),  # an empty last argument
        (b"/bin/echo", [b"echo", b"caf\xc3\xa9", b"\xff"], ["echo", "café", "\ufffd"]),
    ],
)
def test_the_packed_command_line_decodes_to_filename_and_argv(filename, argv, expected_argv):
    ev = ProcessProbe(ProbeContext(host="h")).decode(exec_record(filename, argv))
    assert (ev.filename, ev.argv) == (filename.decode(), expected_argv)


def test_the_paths_decode_from_their_names_in_reverse():
    """The kernel walks up from the file (and the working directory): names "x", "t", "tmp"
    are /tmp/t/x, one NUL the root; a record with none (a memfd, an exec_failed) has ''; two
    records alike but for a path decode apart."""
    probe = ProcessProbe(ProbeContext(host="h"))
    relative = probe.decode(exec_record(b"./x", [b"./x"], exe_path=b"/tmp/t/x", cwd=b"/tmp/t"))
    none = probe.decode(exec_record(b"./x", [b"./x"]))
    other = probe.decode(exec_record(b"./x", [b"./x"], exe_path=b"/home/u/x", cwd=b"/"))
    utf8 = probe.decode(exec_record(b"x", [], exe_path="/srv/café/x".encode()))
    assert (relative.filename, relative.exe_path, relative.argv) == ("./x", "/tmp/t/x", ["./x"])
    assert (none.exe_path, other.exe_path, utf8.exe_path) == ("", "/home/u/x", "/srv/café/x")
    assert (relative.cwd, none.cwd, other.cwd, utf8.cwd) == ("/tmp/t", "", "/", "")


def test_a_path_the_kernel_kept_the_top_of_ends_in_a_mark():
    """F_EXE_PATH_CUT and F_CWD_CUT (bpf/path.h: names over PATH_LEN, the top kept) add /… to
    that path alone, also to a record whose tail was decoded before without them (the flags are
    in the head, the cache is by the tail); with F_EXE_SCRIPT too, each flag still counts."""
    probe = ProcessProbe(ProbeContext(host="h"))
    paths = {"exe_path": b"/tmp/" + b"A" * 200, "cwd": b"/tmp/" + b"A" * 200}
    whole = probe.decode(exec_record(b"./x", [b"./x"], **paths))
    exe_cut = probe.decode(exec_record(b"./x", [b"./x"], flags=F_EXE_PATH_CUT, **paths))
    both = probe.decode(
        exec_record(b"./x", [b"./x"], flags=F_EXE_PATH_CUT | F_CWD_CUT | F_EXE_SCRIPT, **paths)
    )
    top = "/tmp/" + "A" * 200
    assert (whole.exe_path, whole.cwd) == (top, top)
    assert (exe_cut.exe_path, exe_cut.cwd, exe_cut.exe_script) == (f"{top}/…", top, 0)
    assert (both.exe_path, both.cwd, both.exe_script) == (f"{top}/…", f"{top}/…", 1)


def test_a_path_too_deep_for_the_kernels_walk_is_the_deep_mark():
    """F_EXE_PATH_DEEP and F_CWD_DEEP (process.c: the walk ran out of tail calls) make that path
    DEEP_PATH, each on its own, also for a record whose tail was decoded before without them."""
    probe = ProcessProbe(ProbeContext(host="h"))
    paths = {"exe_path": b"", "cwd": b"/srv"}
    before = probe.decode(exec_record(b"./x", [b"./x"], **paths))
    exe_deep = probe.decode(exec_record(b"./x", [b"./x"], flags=F_EXE_PATH_DEEP, **paths))
    both = probe.decode(exec_record(b"./x", [b"./x"], flags=F_EXE_PATH_DEEP | F_CWD_DEEP, **paths))
    assert (before.exe_path, before.cwd) == ("", "/srv")
    assert (exe_deep.exe_path, exe_deep.cwd) == (DEEP_PATH, "/srv")
    assert (both.exe_path, both.cwd) == (DEEP_PATH, DEEP_PATH) == ("…", "…")


def test_a_record_that_is_not_its_events_size_is_a_counted_decode_error():
    """Each kind's struct has its size (an exec's: its head, context, and the command line and
    path it declares); any other length is counted as a decode drop, and the rest of the batch
    decodes."""
    probe = ProcessProbe(ProbeContext(host="h"))
    exec_ok = exec_record(b"/bin/echo", [b"echo", b"x"], pid=11)
    fork = HEAD.pack(10**9, 5 * 10**8, 10**8, 1, 0, EV_FORK, 12, 1, 0, 0, 0, 0, 12, b"sh")
    cred = HEAD.pack(10**9, 5 * 10**8, 10**8, 1, 0, EV_CRED_CHANGE, 13, 1, 0, 0, 0, 0, 13, b"")
    cred += CRED.pack(*(0,) * 8, 1)
    with_path = exec_record(b"/bin/echo", [b"echo"], exe_path=b"/usr/bin/echo")
    misfits = [
        exec_ok + bytes(8),  # bytes after the command line it declares
        with_path[:-1],  # a path cut short
        with_path + bytes(1),  # bytes after the path it declares
        exec_record(b"x", [], exe_path=b"/x" * 300),  # a path longer than the struct holds
        exec_record(b"x", [], cwd=b"/x" * 300),
        exec_record(b"x", [], cwd=b"/tmp")[:-1],  # a working directory cut short
        exec_ok[:-1],  # a command line cut short
        exec_ok[: HEAD.size + 4],  # not even its command line's size
        exec_record(b"/bin/x" * 500, []),  # a command line longer than the struct holds
        fork + bytes(8),
        fork[:-1],  # shorter than the head every event starts with
        cred[:-4],
        HEAD.pack(1, 0, 0, 1, 0, EV_CGROUP_MKDIR, 1, 0, 0, 0, 0, 0, 1, b"") + b"/x",
    ]
    events = probe.decode_batch([misfits[0], exec_ok, *misfits[1:], fork, cred])
    assert [(e.kind, e.pid) for e in events] == [("exec", 11), ("fork", 12), ("cred_change", 13)]
    assert events[0].argv == ["echo", "x"]
    assert probe.ctx.stats.snapshot()[1] == {("decode", "process_record_size"): len(misfits)}


def test_a_kind_this_decoder_does_not_know_keeps_its_number():
    """A newer probe's kind is passed on by its head, not dropped with the rest of the batch."""
    probe = ProcessProbe(ProbeContext(host="h"))
    head = HEAD.pack(10**9, 5 * 10**8, 10**8, 1, 0, 99, 14, 1, 0, 0, 0, 0, 14, b"new")
    (ev,) = probe.decode_batch([head + bytes(24)])
    assert (ev.kind, ev.pid, ev.comm) == ("99", 14, "new")
    assert probe.ctx.stats.snapshot()[1] == {}


def test_a_process_event_is_a_row_that_is_still_the_dataclass_it_declares():
    """decode_batch makes each event from a tuple of its fields in one C call; what it makes is
    what the keyword constructor makes, and dataclass tools still work on it."""
    row = tuple(f"value {i}" for i in range(len(dataclasses.fields(ProcessEvent))))
    made = tuple.__new__(ProcessEvent, row)  # as decode_batch makes it
    assert type(made) is ProcessEvent and made == ProcessEvent(*row)
    assert (made.event_id, made.workload) == ("value 0", row[-1])
    changed = dataclasses.replace(made, kind="exit")
    assert (changed.kind, changed.event_id, made.kind) == ("exit", "value 0", "value 1")
    assert dataclasses.asdict(made)["workload"] == row[-1]
    assert pickle.loads(pickle.dumps(made)) == made
    default = ProcessEvent()
    assert (default.auid, default.exit_code, default.argv) == (UNSET_ID, -1, [])
    assert default.argv is not ProcessEvent().argv  # a list of its own, as default_factory
    with pytest.raises(TypeError):  # one field too many is refused, not dropped
        ProcessEvent(*row, "one too many")
