"""The process probe's kernel ABI, Python side: bpf/process.h's event layouts, limits, event
kinds, flags and counter kinds, in one place (checked against the compiled header by
tests/test_kernel_abi.py).

The probe (``exporter.probes.process``) decodes with these; the counters' collector
(``exporter.collectors.process_counts``) reads the `counts` map's kinds with them.
"""

from __future__ import annotations

import struct

# Limits (#define in bpf/process.h).
ARGV_MAX, ARG_LEN = 20, 128  # arguments captured per exec; bytes per argument, NUL included
ARGS_LEN = ARGV_MAX * ARG_LEN
FILENAME_LEN, CGROUP_PATH_LEN, COMM_LEN, TTY_NAME_LEN = 256, 256, 16, 32
CMDLINE_LEN = FILENAME_LEN + ARGS_LEN
PATH_LEN, PATH_STEPS, NAME_LEN = 512, 16, 256  # a path read at exec (bpf/path.h), steps per call

# struct proc_event: fork, exit, oom_kill, and the head of every other event.
HEAD = struct.Struct("<5Q5IiII16s")
# struct exec_context: euid, egid, auid, session_id, stdio_rdev[3], stdio_mode[3], pad, tty.
CONTEXT = struct.Struct("<7I3HH32s")
# struct exec_event: the head, the context, argc (u32), cmdline_size (u32), exe_path_size
# (u32), cwd_size (u32), then the command line (the filename and each argument, each ended by a
# NUL), the executable's path and the working directory's (each: names from the leaf up, each
# ended by a NUL; the root alone is one NUL; none where its size is 0); only the parts in use
# are sent.
CONTEXT_END = HEAD.size + CONTEXT.size
CMDLINE_SIZE_AT = CONTEXT_END + 4
EXEC_SIZES = struct.Struct("<III")  # cmdline_size, exe_path_size, cwd_size, at CMDLINE_SIZE_AT
CMDLINE_AT = CONTEXT_END + 16
# struct cred_event: the head, then the ids after and before (uid, gid, euid, egid), the call
# and its padding.
CRED = struct.Struct("<8II4x")

# enum event_kind
EV_FORK, EV_EXEC, EV_EXEC_FAILED, EV_EXIT, EV_OOM_KILL, EV_CGROUP_MKDIR, EV_CRED_CHANGE = range(
    1, 8
)
EV_KIND_MAX = 8
KIND_NAMES = {
    EV_FORK: "fork",
    EV_EXEC: "exec",
    EV_EXEC_FAILED: "exec_failed",
    EV_EXIT: "exit",
    EV_OOM_KILL: "oom_kill",
    EV_CRED_CHANGE: "cred_change",
}
# The size of each kind's record: its struct's. An exec's is its head, context, and the command
# line and paths it declares (CMDLINE_AT + cmdline_size + exe_path_size + cwd_size), at most
# EXEC_RECORD_MAX. A kind this decoder does not know (a newer probe's) needs only the head it
# is decoded by.
EXEC_RECORD_MAX = CMDLINE_AT + CMDLINE_LEN + 2 * PATH_LEN
RECORD_SIZES = {
    EV_FORK: HEAD.size,
    EV_EXIT: HEAD.size,
    EV_OOM_KILL: HEAD.size,
    EV_CGROUP_MKDIR: HEAD.size + CGROUP_PATH_LEN,  # struct cgroup_event
    EV_CRED_CHANGE: HEAD.size + CRED.size,  # struct cred_event
}

# enum event_flags
F_ARGV_TRUNCATED, F_ARGV_UNKNOWN, F_OOM_KILLED, F_CGROUP_V1 = 1, 2, 4, 8
F_EXE_DELETED, F_EXE_MEMFD, F_EXE_SCRIPT = 16, 32, 64
F_EXE_PATH_CUT, F_CWD_CUT = 128, 256  # a path longer than PATH_LEN: its top was kept
F_EXE_PATH_DEEP, F_CWD_DEEP = 512, 1024  # a path deeper than the kernel's walk: not known

# enum cred_syscall: a cred_change's outcome.
CRED_SYSCALLS = {
    1: "setuid",
    2: "setreuid",
    3: "setresuid",
    4: "setgid",
    5: "setregid",
    6: "setresgid",
}

# enum count_kind: the kinds of the `counts` map, read at scrape time.
C_EXEC, C_EXIT_OK, C_EXIT_ERROR, C_EXIT_SIGNAL, C_EXIT_OOM, C_OOM_KILL, C_EXEC_FAILED = range(1, 8)
EXIT_OUTCOMES = {C_EXIT_OK: "ok", C_EXIT_ERROR: "error", C_EXIT_SIGNAL: "signal", C_EXIT_OOM: "oom"}
