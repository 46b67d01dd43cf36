/* A task's security context: credentials, login, terminal, standard fds, executable.
 *
 * Every struct member is read at an offset from the running kernel's BTF (the loader passes
 * them as -D defines, exporter/probes/process.py SECURITY_OFFSETS); nothing here depends on
 * the installed kernel headers. Reads race with the task changing them (another thread closing
 * fd 0, a hang-up taking the terminal away): the values are a snapshot, never a crash, as
 * bpf_probe_read_kernel turns a bad pointer into zeroes.
 */
#ifndef GT_SECURITY_H
#define GT_SECURITY_H

#include "task.h"

#define SB_KERNMOUNT (1 << 22)   /* a kernel-internal mount, such as the one memfds live on */
#define MEMFD_PREFIX_LEN 6       /* memfd_create() names its file "memfd:<name>" */

static __always_inline u16 read_u16(void *p, u32 off)
{
    u16 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (char *)p + off);
    return v;
}

/* Real and effective ids of the current task: the real ones from the helper (as every event's
 * uid and gid), the effective ones from its credentials (what /proc/<pid>/status shows). */
static __always_inline void current_cred_ids(struct cred_ids *ids)
{
    u64 uid_gid = bpf_get_current_uid_gid();
    void *cred = task_read_ptr((void *)bpf_get_current_task(), TASK_REAL_CRED);
    ids->uid = (u32)uid_gid;
    ids->gid = uid_gid >> 32;
    ids->euid = task_read_u32(cred, CRED_EUID);
    ids->egid = task_read_u32(cred, CRED_EGID);
}

/* The inode of the file open at `fd`, or 0 when none. fds 0-2 are always inside the table
 * (it never has fewer than 64 slots), but the bound is checked anyway. */
static __always_inline void *fd_inode(void *fdt, u32 max_fds, u32 fd)
{
    if (fd >= max_fds)
        return 0;
    void **fds = task_read_ptr(fdt, FDTABLE_FD);
    void *file = task_read_ptr(fds, fd * sizeof(void *));
    return file ? task_read_ptr(file, FILE_INODE) : 0;
}

/* Mode and device of fds 0-2 (mode 0: not open); the Python side names their kind. */
static __always_inline void read_stdio(void *task, struct exec_context *c)
{
    void *files = task_read_ptr(task, TASK_FILES);
    void *fdt = files ? task_read_ptr(files, FILES_FDT) : 0;
    u32 max_fds = fdt ? task_read_u32(fdt, FDTABLE_MAX_FDS) : 0;
    #pragma unroll
    for (u32 fd = 0; fd < STDIO_FDS; fd++) {
        void *inode = fdt ? fd_inode(fdt, max_fds, fd) : 0;
        c->stdio_mode[fd] = inode ? read_u16(inode, INODE_MODE) : 0;
        c->stdio_rdev[fd] = inode ? task_read_u32(inode, INODE_RDEV) : 0;
    }
}

/* F_EXE_DELETED and F_EXE_MEMFD for the task's executable (mm->exe_file). */
static __always_inline u32 exe_flags(void *task)
{
    void *mm = task_read_ptr(task, TASK_MM);
    void *file = mm ? task_read_ptr(mm, MM_EXE_FILE) : 0;
    void *inode = file ? task_read_ptr(file, FILE_INODE) : 0;
    if (!inode)
        return 0;
    u32 flags = 0;
    if (task_read_u32(inode, INODE_NLINK) == 0)
        flags |= F_EXE_DELETED;
    /* A memfd: named "memfd:..." by memfd_create, on a kernel-internal mount (a deleted file
     * of that name on a tmpfs that someone mounted is not one). */
    void *sb = task_read_ptr(inode, INODE_SB);
    if (task_read_u64(sb, SB_FLAGS) & SB_KERNMOUNT) {
        void *dentry = task_read_ptr(file, FILE_PATH_DENTRY);
        const char *name = task_read_ptr(dentry, DENTRY_NAME);
        char prefix[MEMFD_PREFIX_LEN] = {};
        bpf_probe_read_kernel(prefix, sizeof(prefix), name);
        if (prefix[0] == 'm' && prefix[1] == 'e' && prefix[2] == 'm' && prefix[3] == 'f' &&
            prefix[4] == 'd' && prefix[5] == ':')
            flags |= F_EXE_MEMFD;
    }
    return flags;
}

/* The security context of `task`, the current task; returns its F_EXE_* flags. */
static __always_inline u32 read_exec_context(void *task, struct exec_context *c)
{
    struct cred_ids ids = {};
    current_cred_ids(&ids);
    c->euid = ids.euid;
    c->egid = ids.egid;
#ifdef TASK_LOGINUID
    c->auid = task_read_u32(task, TASK_LOGINUID);
    c->session_id = task_read_u32(task, TASK_SESSIONID);
#else
    c->auid = c->session_id = (u32)-1;  /* a kernel without audit: never set */
#endif
    c->pad = 0;
    void *signal = task_read_ptr(task, TASK_SIGNAL);
    void *tty = signal ? task_read_ptr(signal, SIGNAL_TTY) : 0;
    c->tty[0] = 0;
    if (tty)
        bpf_probe_read_kernel_str(c->tty, sizeof(c->tty), (char *)tty + TTY_NAME);
    read_stdio(task, c);
    return exe_flags(task);
}

#endif
