/* Process lifecycle: fork, exec (filename, argv, uid/gid, security context, the executable's
 * and the working directory's paths: path.h), exit (code or signal), OOM kills, credential
 * changes (set*id).
 *
 * Tracepoints and raw tracepoints only (no kprobes on these kernels). Task fields are read at
 * offsets from the running kernel's BTF (task.h). Counters for metrics are kept here in maps
 * and read at scrape time; only raw events travel through the ring buffer, submitted without
 * a wake-up: the consumer drains on a timer, which keeps fork/exec storms at full speed.
 * With a network namespace filter (netns.h), a task outside it makes no event and no count.
 */
#include "process.h"
#include "task.h"
#include "security.h"
#include "path.h"
#include "ring.h"
#include "netns.h"

#define EPERM 1
#define ENOENT 2
#define EEXIST 17
#define CLONE_THREAD 0x00010000

BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
BPF_PERCPU_ARRAY(drops, u64, EV_KIND_MAX);          /* refused by the ring buffer, by kind */
BPF_PERCPU_ARRAY(exec_scratch, struct exec_args, 1);
BPF_PERCPU_ARRAY(exec_out, struct exec_event, 1);     /* an exec event being built */
BPF_PERCPU_ARRAY(exec_walk, struct path_walk, 1);     /* its paths' walk, between tail calls */
BPF_PROG_ARRAY(path_walker, 1);                        /* walk_exec_paths, set by the probe */
BPF_HASH(exec_args_by_tid, u32, struct exec_args, 10240);
BPF_HASH(oom_victims, u32, u8, 1024);
BPF_HASH(cred_before, u32, struct cred_ids, 1024);   /* by thread, during a set*id call */
/* One change is one event, although glibc makes every thread of a process repeat a set*id call
 * (each thread has its own credentials), on both CPUs at once: the first thread to insert the
 * (process, change) claim sends it. A process's last claim is dropped at its next change, so
 * changing back and forth again is sent again, and at its exit. */
struct cred_claim {
    u32 tgid;
    struct cred_ids before;
    struct cred_ids now;
};
BPF_HASH(cred_claims, struct cred_claim, u8, 10240);
BPF_HASH(cred_last_claim, u32, struct cred_claim, 10240);

/* ring.h's accessors of this probe's maps (bcc rewrites map calls only in this file). */
static __always_inline void *ring_reserve(u32 size) { return events.ringbuf_reserve(size); }
static __always_inline int ring_output(void *data, u32 size)
{
    return events.ringbuf_output(data, size, RINGBUF_FLAGS);
}
static __always_inline u64 *ring_drops(u32 kind) { return drops.lookup(&kind); }

static __always_inline void drop_last_claim(u32 tgid)
{
    struct cred_claim *last = cred_last_claim.lookup(&tgid);
    if (last) {
        struct cred_claim old = *last;
        cred_claims.delete(&old);
    }
}
BPF_HASH(counts, struct count_key, u64, COUNTS_MAX);
BPF_ARRAY(counts_overflow, u64, 8);                  /* by count kind, when `counts` is full */

static __always_inline void count(u32 kind, const char *comm)
{
    struct count_key key = {.kind = kind};
    key.cgroup_id = bpf_get_current_cgroup_id();
    key.v1_cgroup_id = task_v1_memcg_id((void *)bpf_get_current_task());
    if (comm)
        __builtin_memcpy(key.comm, comm, COMM_LEN);
    u64 zero = 0;
    u64 *v = counts.lookup_or_try_init(&key, &zero);
    if (v) {
        __sync_fetch_and_add(v, 1);
    } else {
        u64 *o = counts_overflow.lookup(&kind);
        if (o)
            __sync_fetch_and_add(o, 1);
    }
}

/* Fill the common head from the current task. */
static __always_inline void fill_head(struct proc_event *e, u32 kind)
{
    void *task = (void *)bpf_get_current_task();
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u64 uid_gid = bpf_get_current_uid_gid();
    e->ts_ns = bpf_ktime_get_boot_ns();
    e->kind = kind;
    e->pid = pid_tgid >> 32;
    e->tid = (u32)pid_tgid;
    e->uid = (u32)uid_gid;
    e->gid = uid_gid >> 32;
    e->cgroup_id = bpf_get_current_cgroup_id();
    e->v1_cgroup_id = task_v1_memcg_id(task);
    e->start_ns = process_start_ns(task);
    e->ppid = parent_tgid(task, &e->parent_start_ns);
    e->exit_code = 0;
    e->flags = 0;
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
}

/* ---- fork: a new process (threads are skipped) ---- */
RAW_TRACEPOINT_PROBE(sched_process_fork)
{
    void *child = (void *)ctx->args[1];
    u32 pid = task_read_u32(child, TASK_PID);
    u32 tgid = task_read_u32(child, TASK_TGID);
    if (pid != tgid || !task_in_netns(child))
        return 0;
    struct proc_event *e = reserve_event(sizeof(*e), EV_FORK);
    if (!e)
        return 0;
    fill_head(e, EV_FORK);
    /* The head describes the forking task; the event is about the child. */
    e->pid = tgid;
    e->start_ns = task_read_u64(child, TASK_START_BOOTTIME);
    e->ppid = parent_tgid(child, &e->parent_start_ns);
    events.ringbuf_submit(e, RINGBUF_FLAGS);
    return 0;
}

/* ---- exec: arguments are read at syscall entry, the event is sent once exec succeeded ---- */
static __always_inline int read_exec_args(const char *filename, const char *const *argv)
{
    u32 zero = 0;
    struct exec_args *a = exec_scratch.lookup(&zero);
    if (!a)
        return 0;
    a->argc = 0;
    a->flags = 0;
    a->args_size = 0;
    bpf_probe_read_user_str(a->filename, sizeof(a->filename), filename);
    u32 size = 0;
    #pragma unroll
    for (int i = 0; i < ARGV_MAX; i++) {
        const char *arg = 0;
        bpf_probe_read_user(&arg, sizeof(arg), &argv[i]);
        if (!arg)
            goto done;
        if (size > ARGS_LEN - ARG_LEN)  /* never (ARGV_MAX slots of ARG_LEN): for the verifier */
            goto done;
        int n = bpf_probe_read_user_str(&a->args[size], ARG_LEN, arg);
        if (n <= 0) {  /* unreadable (not paged in): an empty argument, and argv is not whole */
            a->args[size] = 0;
            n = 1;
            a->flags |= F_ARGV_TRUNCATED;
        } else if (n == ARG_LEN) {
            /* The buffer is full: was there more? */
            char next = 0;
            bpf_probe_read_user(&next, 1, arg + ARG_LEN - 1);
            if (next)
                a->flags |= F_ARGV_TRUNCATED;
        }
        size += n;
        a->args_size = size;
        a->argc = i + 1;
    }
    {
        const char *more = 0;
        bpf_probe_read_user(&more, sizeof(more), &argv[ARGV_MAX]);
        if (more)
            a->flags |= F_ARGV_TRUNCATED;
    }
done:;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    exec_args_by_tid.update(&tid, a);
    return 0;
}

/* A task outside the namespace stores no arguments, so its failed execs are not sent either. */
TRACEPOINT_PROBE(syscalls, sys_enter_execve)
{
    return current_in_netns() ? read_exec_args(args->filename, args->argv) : 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_execveat)
{
    return current_in_netns() ? read_exec_args(args->filename, args->argv) : 0;
}

/* An exec event: the head, then the command line packed (process.h) behind `filename`, a string
 * in kernel memory (the exec tracepoint's, or the copy made at syscall entry). */
static __always_inline struct exec_event *exec_event(u32 kind, struct exec_args *a,
                                                     const char *filename)
{
    u32 zero = 0;
    struct exec_event *e = exec_out.lookup(&zero);
    if (!e)
        return 0;
    fill_head(&e->hdr, kind);
    u32 exe = read_exec_context((void *)bpf_get_current_task(), &e->sec);
    /* The filename's bytes, its NUL included; a failed read (-errno, a huge u64 here) is an
     * empty filename. The empty asm keeps the compiler from checking a copy of `at` that the
     * verifier cannot connect to the `at` used below. */
    u64 at = bpf_probe_read_kernel_str(e->cmdline, FILENAME_LEN, filename);
    asm volatile("" : "+r"(at));
    if (at > FILENAME_LEN) {
        e->cmdline[0] = 0;
        at = 1;
    }
    e->cmdline_size = at;
    e->exe_path_size = e->cwd_size = 0;
    e->argc = 0;
    /* The executable is the new one only once exec succeeded. */
    u32 flags = kind == EV_EXEC ? exe : 0;
    if (!a) {
        e->hdr.flags = flags | F_ARGV_UNKNOWN;
        return e;
    }
    u32 size = a->args_size > ARGS_LEN ? ARGS_LEN : a->args_size;
    e->hdr.flags = flags | a->flags;
    if (bpf_probe_read_kernel(&e->cmdline[at], size, a->args) == 0) {
        e->argc = a->argc;
        e->cmdline_size = at + size;
    } else {
        e->hdr.flags |= F_ARGV_UNKNOWN;
    }
    return e;
}

/* Sends only the parts of the command line and the paths in use. */
static __always_inline void send_exec(struct exec_event *e, u32 kind)
{
    u32 size = __builtin_offsetof(struct exec_event, cmdline) + e->cmdline_size;
    size += e->exe_path_size + e->cwd_size;
    if (size > sizeof(*e))  /* never: the bound the verifier asks for */
        return;
    output_event(e, size, kind);
}

/* args: the task, its thread id before exec (a thread other than the leader may exec), and the
 * exec's struct linux_binprm: raw, for the binprm, whose `interp` tells a script from a binary. */
RAW_TRACEPOINT_PROBE(sched_process_exec)
{
    if (!current_in_netns())  /* and so stored no arguments at syscall entry */
        return 0;
    u32 old_tid = (u32)ctx->args[1];
    void *bprm = (void *)ctx->args[2];
    struct exec_args *a = exec_args_by_tid.lookup(&old_tid);
    /* Counted before the event is queued: counted execs = delivered + dropped, exactly. */
    char comm[COMM_LEN];
    bpf_get_current_comm(&comm, sizeof(comm));
    count(C_EXEC, comm);
    const char *filename = task_read_ptr(bprm, BPRM_FILENAME);
    struct exec_event *e = exec_event(EV_EXEC, a, filename);
    if (e) {
        /* A script (#!) or a binfmt_misc format: the kernel ran an interpreter instead, whose
         * name replaced `interp` (for a binary it stays the filename itself). */
        if (task_read_ptr(bprm, BPRM_INTERP) != filename)
            e->hdr.flags |= F_EXE_SCRIPT;
    }
    if (a)
        exec_args_by_tid.delete(&old_tid);
    if (!e)
        return 0;
    /* The paths are walked by walk_exec_paths, which sends the event, in as many tail calls
     * as they are deep (a path can be deeper than one program may walk). */
    u32 zero = 0;
    struct path_walk *w = exec_walk.lookup(&zero);
    if (w) {
        begin_exe_walk(w, (void *)bpf_get_current_task(), e->cmdline_size);
        w->which = 0;
        path_walker.call(ctx, 0);
    }
    send_exec(e, EV_EXEC);  /* without the walker (not set yet): the event without its paths */
    return 0;
}

/* The exec's paths, PATH_STEPS steps per call, going on with a tail call of itself: the
 * executable's, then the working directory's; then the event is sent (sched_process_exec
 * built it in exec_out). Out of tail calls (the kernel's limit, 33: about 500 directories
 * for both paths), a path is too deep to know: '' and a flag that says so (no installed
 * program is that deep; a payload hidden from path rules can be). */
int walk_exec_paths(struct bpf_raw_tracepoint_args *ctx)
{
    u32 zero = 0;
    struct path_walk *w = exec_walk.lookup(&zero);
    struct exec_event *e = exec_out.lookup(&zero);
    if (!w || !e)
        return 0;
    u32 deep = 0;
    if (!walk_path(w, e->cmdline)) {
        path_walker.call(ctx, 0);  /* on up the same path */
        w->size = w->cut = 0;      /* out of tail calls: too deep */
        deep = 1;
    }
    if (w->which == 0) {
        e->exe_path_size = w->size;
        if (w->cut)
            e->hdr.flags |= F_EXE_PATH_CUT;
        if (deep)
            e->hdr.flags |= F_EXE_PATH_DEEP;
        /* The working directory's names go after the executable's. */
        u32 at = e->cmdline_size + w->size;
        if (at <= PATH_ROOM) {  /* always: the bound the verifier asks for */
            begin_cwd_walk(w, (void *)bpf_get_current_task(), at);
            w->which = 1;
            path_walker.call(ctx, 0);
        }
        w->size = w->cut = 0;  /* out of tail calls: no steps left for it */
        deep = 1;
    }
    e->cwd_size = w->size;
    if (w->cut)
        e->hdr.flags |= F_CWD_CUT;
    if (deep)
        e->hdr.flags |= F_CWD_DEEP;
    send_exec(e, EV_EXEC);
    return 0;
}

static __always_inline int exec_returned(long ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct exec_args *a = exec_args_by_tid.lookup(&tid);
    if (!a)
        return 0;  /* succeeded: sched_process_exec took it */
    if (ret < 0) {
        count(C_EXEC_FAILED, 0);
        /* ENOENT is the PATH search of execvp(): counted, not sent. */
        if (ret != -ENOENT) {
            struct exec_event *e = exec_event(EV_EXEC_FAILED, a, a->filename);
            if (e) {
                e->hdr.exit_code = ret;
                send_exec(e, EV_EXEC_FAILED);
            }
        }
    }
    exec_args_by_tid.delete(&tid);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_execve)
{
    return exec_returned(args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_execveat)
{
    return exec_returned(args->ret);
}

/* ---- exit: once per process, when its last thread exits ---- */
TRACEPOINT_PROBE(sched, sched_process_exit)
{
    if (!args->group_dead)
        return 0;
    void *task = (void *)bpf_get_current_task();
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    s32 code = task_read_u32(task, TASK_EXIT_CODE);
    u32 flags = 0;
    if (oom_victims.lookup(&tgid)) {
        flags |= F_OOM_KILLED;
        oom_victims.delete(&tgid);
    }
    struct cred_claim *claim = cred_last_claim.lookup(&tgid);
    if (claim) {  /* the process changed its ids: forget its last change */
        struct cred_claim last = *claim;
        cred_claims.delete(&last);
        cred_last_claim.delete(&tgid);
    }
    if (!task_in_netns(task))
        return 0;
    u32 outcome = C_EXIT_OK;
    if (flags & F_OOM_KILLED)
        outcome = C_EXIT_OOM;
    else if (code & 0x7f)
        outcome = C_EXIT_SIGNAL;
    else if (code >> 8)
        outcome = C_EXIT_ERROR;
    count(outcome, 0);

    struct proc_event *e = reserve_event(sizeof(*e), EV_EXIT);
    if (!e)
        return 0;
    fill_head(e, EV_EXIT);
    e->exit_code = code;
    e->flags = flags;
    events.ringbuf_submit(e, RINGBUF_FLAGS);
    return 0;
}

/* ---- OOM killer: the victim is marked before it dies; its exit carries the flag ---- */
TRACEPOINT_PROBE(oom, mark_victim)
{
    u32 pid = args->pid;
    u8 one = 1;
    oom_victims.update(&pid, &one);  /* the victim's exit, if it is in the namespace, says so */
    if (!current_in_netns())  /* the victim's pid alone does not tell its namespace */
        return 0;
    count(C_OOM_KILL, 0);
    struct proc_event *e = reserve_event(sizeof(*e), EV_OOM_KILL);
    if (!e)
        return 0;
    fill_head(e, EV_OOM_KILL);  /* runs in the task that triggered the OOM kill */
    e->pid = pid;
    e->uid = args->uid;
    e->start_ns = 0;            /* unknown here; the victim's exit event carries it */
    e->ppid = 0;
    e->parent_start_ns = 0;
    TP_DATA_LOC_READ_STR(e->comm, comm, sizeof(e->comm));
    events.ringbuf_submit(e, RINGBUF_FLAGS);
    return 0;
}

/* ---- new cgroups (v2, and the v1 memory hierarchy): feed the cgroup id -> container map ---- */
TRACEPOINT_PROBE(cgroup, cgroup_mkdir)
{
    if (args->root != 0 && args->root != MEMCG_V1_HIERARCHY)
        return 0;
    struct cgroup_event *e = reserve_event(sizeof(*e), EV_CGROUP_MKDIR);
    if (!e)
        return 0;
    fill_head(&e->hdr, EV_CGROUP_MKDIR);
    e->hdr.cgroup_id = args->id;
    e->hdr.flags = args->root ? F_CGROUP_V1 : 0;
    TP_DATA_LOC_READ_STR(e->path, path, sizeof(e->path));
    events.ringbuf_submit(e, RINGBUF_FLAGS);
    return 0;
}

/* ---- credential changes: set*id calls that changed the real or effective uid or gid ----
 * setfsuid/setfsgid are left out: they change only the ids used for file access. */
static __always_inline int cred_enter(void)
{
    if (!current_in_netns())
        return 0;
    struct cred_ids ids = {};
    current_cred_ids(&ids);
    u32 tid = (u32)bpf_get_current_pid_tgid();
    cred_before.update(&tid, &ids);
    return 0;
}

static __always_inline int same_ids(const struct cred_ids *a, const struct cred_ids *b)
{
    return a->uid == b->uid && a->gid == b->gid && a->euid == b->euid && a->egid == b->egid;
}

static __always_inline int cred_exit(long ret, u32 syscall)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct cred_ids *before = cred_before.lookup(&tid);
    if (!before)
        return 0;
    struct cred_claim change = {.tgid = bpf_get_current_pid_tgid() >> 32, .before = *before};
    cred_before.delete(&tid);
    if (ret != 0)
        return 0;
    current_cred_ids(&change.now);
    if (same_ids(&change.now, &change.before))
        return 0;
    u8 one = 1;
    /* (A full map fails otherwise: then the change is sent, perhaps once per thread.) */
    if (cred_claims.insert(&change, &one) == -EEXIST)
        return 0;  /* another thread of the process made the same change and sent it */
    drop_last_claim(change.tgid);
    cred_last_claim.update(&change.tgid, &change);
    struct cred_event *e = reserve_event(sizeof(*e), EV_CRED_CHANGE);
    if (!e)
        return 0;
    fill_head(&e->hdr, EV_CRED_CHANGE);
    e->now = change.now;
    e->before = change.before;
    e->syscall = syscall;
    e->pad = 0;
    events.ringbuf_submit(e, RINGBUF_FLAGS);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_setuid) { return cred_enter(); }
TRACEPOINT_PROBE(syscalls, sys_exit_setuid) { return cred_exit(args->ret, SYS_SETUID); }
TRACEPOINT_PROBE(syscalls, sys_enter_setreuid) { return cred_enter(); }
TRACEPOINT_PROBE(syscalls, sys_exit_setreuid) { return cred_exit(args->ret, SYS_SETREUID); }
TRACEPOINT_PROBE(syscalls, sys_enter_setresuid) { return cred_enter(); }
TRACEPOINT_PROBE(syscalls, sys_exit_setresuid) { return cred_exit(args->ret, SYS_SETRESUID); }
TRACEPOINT_PROBE(syscalls, sys_enter_setgid) { return cred_enter(); }
TRACEPOINT_PROBE(syscalls, sys_exit_setgid) { return cred_exit(args->ret, SYS_SETGID); }
TRACEPOINT_PROBE(syscalls, sys_enter_setregid) { return cred_enter(); }
TRACEPOINT_PROBE(syscalls, sys_exit_setregid) { return cred_exit(args->ret, SYS_SETREGID); }
TRACEPOINT_PROBE(syscalls, sys_enter_setresgid) { return cred_enter(); }
TRACEPOINT_PROBE(syscalls, sys_exit_setresgid) { return cred_exit(args->ret, SYS_SETRESGID); }
