/* Process lifecycle probe: limits and event structs. Fixed-width fields, widest first;
 * exporter/probes/process_abi.py mirrors them (tests/test_kernel_abi.py checks both agree). */
#ifndef GT_PROCESS_H
#define GT_PROCESS_H

#define ARGV_MAX 20          /* arguments captured per exec */
#define ARG_LEN 128          /* bytes per argument, NUL included: 127 characters kept */
#define ARGS_LEN (ARGV_MAX * ARG_LEN)
#define FILENAME_LEN 256
#define CGROUP_PATH_LEN 256
#define COMM_LEN 16
#define TTY_NAME_LEN 32      /* of the kernel's 64: "pts1048575" and "ttyUSB0" fit */
#define STDIO_FDS 3          /* stdin, stdout, stderr */
#define PATH_LEN 512         /* bytes of a path read at exec (path.h): names, each ended by a NUL */
#define PATH_STEPS 16        /* directories and mount points walked up per call (path.h) */
#define NAME_LEN 256         /* a path component's bytes, NUL included (the kernel's NAME_MAX + 1) */

enum event_kind {
    EV_FORK = 1,
    EV_EXEC = 2,
    EV_EXEC_FAILED = 3,
    EV_EXIT = 4,
    EV_OOM_KILL = 5,
    EV_CGROUP_MKDIR = 6,
    EV_CRED_CHANGE = 7,
    EV_KIND_MAX = 8,
};

enum event_flags {
    F_ARGV_TRUNCATED = 1,    /* an argument was cut or unreadable, or more than ARGV_MAX given */
    F_ARGV_UNKNOWN = 2,      /* exec began before the probe was attached (or argv not copied) */
    F_OOM_KILLED = 4,        /* exit caused by the OOM killer */
    F_CGROUP_V1 = 8,         /* cgroup_mkdir in the v1 memory hierarchy */
    F_EXE_DELETED = 16,      /* exec: the executable has no links left (unlinked, or a memfd) */
    F_EXE_MEMFD = 32,        /* exec: the executable is a memfd */
    F_EXE_SCRIPT = 64,       /* exec: the file was run by an interpreter (#!, binfmt_misc) */
    F_EXE_PATH_CUT = 128,    /* exec: exe_path longer than PATH_LEN: its top is kept (path.h) */
    F_CWD_CUT = 256,         /* exec: the working directory's, likewise */
    F_EXE_PATH_DEEP = 512,   /* exec: exe_path deeper than the walk's tail calls reach: unknown */
    F_CWD_DEEP = 1024,       /* exec: the working directory's, likewise */
};

/* Which set*id syscall changed the credentials (cred_event.syscall). */
enum cred_syscall {
    SYS_SETUID = 1,
    SYS_SETREUID = 2,
    SYS_SETRESUID = 3,
    SYS_SETGID = 4,
    SYS_SETREGID = 5,
    SYS_SETRESGID = 6,
};

/* Counter kinds kept in the `counts` map, read at scrape time. */
enum count_kind {
    C_EXEC = 1,
    C_EXIT_OK = 2,
    C_EXIT_ERROR = 3,
    C_EXIT_SIGNAL = 4,
    C_EXIT_OOM = 5,
    C_OOM_KILL = 6,
    C_EXEC_FAILED = 7,
};

/* fork, exit, oom_kill; also the head of every other event. */
struct proc_event {
    u64 ts_ns;               /* boot clock */
    u64 start_ns;            /* process start, boot clock */
    u64 parent_start_ns;
    u64 cgroup_id;           /* cgroup v2 id */
    u64 v1_cgroup_id;        /* v1 memory cgroup id on hybrid hosts, else 0 */
    u32 kind;
    u32 pid;                 /* tgid */
    u32 ppid;
    u32 uid;
    u32 gid;
    s32 exit_code;           /* raw task exit_code (exit) or -errno (exec_failed) */
    u32 flags;
    u32 tid;                 /* the thread that caused the event */
    char comm[COMM_LEN];
};

/* The command line travels packed: the filename, then each argument, each ended by its NUL, so
 * a short command line makes a short record (more events fit in the ring, less to copy). */
#define CMDLINE_LEN (FILENAME_LEN + ARGS_LEN)
#define PATH_ROOM (CMDLINE_LEN + PATH_LEN)  /* where the last path read at exec may start */

/* Security context of a process, read from its task at exec (hdr.flags has F_EXE_*). */
struct exec_context {
    u32 euid;
    u32 egid;
    u32 auid;                /* login uid, (u32)-1 when unset */
    u32 session_id;          /* audit session id, (u32)-1 when unset */
    u32 stdio_rdev[STDIO_FDS];   /* device of fds 0-2 (kernel dev_t: major << 20 | minor) */
    u16 stdio_mode[STDIO_FDS];   /* i_mode of fds 0-2; 0 when the fd is not open */
    u16 pad;
    char tty[TTY_NAME_LEN];  /* controlling terminal's kernel name ("pts3"), "" when none */
};

struct exec_event {
    struct proc_event hdr;
    struct exec_context sec;
    u32 argc;                /* arguments captured */
    u32 cmdline_size;        /* bytes of cmdline in use */
    u32 exe_path_size;       /* bytes of the executable's path, right after them */
    u32 cwd_size;            /* bytes of the working directory's path, right after those */
    /* The command line, then the executable's and the working directory's paths as the kernel
     * resolved them, from the process's root: names from the leaf up, each ended by a NUL
     * ("true\0bin\0usr\0" is /usr/bin/true; the root alone is one NUL). The last NAME_LEN
     * bytes are room for a name read whole before its length is known, never sent. */
    char cmdline[CMDLINE_LEN + 2 * PATH_LEN + NAME_LEN];
};

/* Real and effective ids of a task. */
struct cred_ids {
    u32 uid;
    u32 gid;
    u32 euid;
    u32 egid;
};

/* A set*id syscall that changed the real or effective uid or gid: hdr.uid/gid are the ids
 * after, `now` the same with the effective ones, `before` the ids at syscall entry. */
struct cred_event {
    struct proc_event hdr;
    struct cred_ids now;
    struct cred_ids before;
    u32 syscall;             /* enum cred_syscall */
    u32 pad;
};

struct cgroup_event {
    struct proc_event hdr;   /* cgroup_id is the new cgroup's id, in the hierarchy of flags */
    char path[CGROUP_PATH_LEN];
};

/* Stored between execve entry and exec (or failure): the arguments read from user memory. */
struct exec_args {
    u32 argc;
    u32 flags;
    u32 args_size;           /* bytes of args in use */
    u32 pad;
    char filename[FILENAME_LEN];
    char args[ARGS_LEN];     /* each argument and its NUL, back to back */
};

struct count_key {
    u64 cgroup_id;
    u64 v1_cgroup_id;
    u32 kind;
    char comm[COMM_LEN];     /* program name for C_EXEC, empty otherwise */
};

#endif
