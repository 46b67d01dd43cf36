/* Paths as the kernel resolved them, from a task's root directory (a container's own root):
 * walked up from a (mount, dentry) pair across mount points, as d_path() does, PATH_STEPS steps
 * per call (process.c takes the calls as tail calls: a path may be deep).
 *
 * Read at exec for the executable (mm->exe_file: the file run, whatever name execve() was
 * given: a relative name, a symlink, a bind mount) and the working directory (fs->pwd). Every
 * member is read at an offset from the running kernel's BTF (exporter/probes/process.py
 * PATH_OFFSETS).
 */
#ifndef GT_PATH_H
#define GT_PATH_H

#include "task.h"

/* A walk up a path, kept between the calls that take its steps (walk_path). */
struct path_walk {
    void *mnt;               /* where the walk is */
    void *dentry;
    void *root_mnt;          /* the task's root: where it ends */
    void *root_dentry;
    u32 at;                  /* where the path's names go in the buffer */
    u32 size;                /* their bytes so far */
    u32 cut;                 /* 1: the names overflowed PATH_LEN and the top ones were kept */
    u32 which;               /* the caller's: which path this is */
};

/* Starts a walk from (mnt, dentry) up to `fs`'s root, its names into buf[at...]. */
static __always_inline void begin_walk(struct path_walk *w, void *fs, void *mnt, void *dentry,
                                       u32 at)
{
    w->mnt = fs ? mnt : 0;
    w->dentry = fs ? dentry : 0;
    w->root_mnt = fs ? task_read_ptr(fs, FS_ROOT_MNT) : 0;
    w->root_dentry = fs ? task_read_ptr(fs, FS_ROOT_DENTRY) : 0;
    w->at = at;
    w->size = 0;
    w->cut = 0;
}

/* Takes up to PATH_STEPS steps of walk `w`, as d_path() walks: up d_parent, and across mount
 * points through struct mount. Writes the names into buf[w->at...] from the leaf up, each
 * ended by its NUL (the root alone: one NUL). Where they would overflow PATH_LEN, writing starts
 * again at w->at (w->cut = 1): what is kept is the top of the path, which says where it is.
 * Returns 1 when the walk is over, with w->size its bytes (0: no path, a file in no directory
 * such as a memfd, or one outside the task's root), or 0 when it has steps left to take (the
 * caller takes them in another call). `buf` has PATH_LEN + NAME_LEN bytes of room at w->at
 * (which is at most PATH_ROOM). */
static __always_inline int walk_path(struct path_walk *w, char *buf)
{
    void *mnt = w->mnt, *dentry = w->dentry;
    u32 at = w->at, size = w->size;
    if (!mnt || !dentry || at > PATH_ROOM || size > PATH_LEN)
        goto none;
    for (int step = 0; step < PATH_STEPS; step++) {
        if (dentry == w->root_dentry && mnt == w->root_mnt) {
            if (!size) {  /* the root itself: one NUL */
                buf[at] = 0;
                size = 1;
            }
            w->size = size;
            return 1;
        }
        if (dentry == task_read_ptr(mnt, VFSMOUNT_ROOT)) {
            /* The top of a mount: on from its mount point, in the mount above. */
            void *mount = (char *)mnt - MOUNT_MNT;
            void *above = task_read_ptr(mount, MOUNT_PARENT);
            if (!above || above == mount)
                goto none;  /* the top of the mount tree, and not the task's root */
            dentry = task_read_ptr(mount, MOUNT_MOUNTPOINT);
            mnt = (char *)above + MOUNT_MNT;
            continue;
        }
        void *parent = task_read_ptr(dentry, DENTRY_PARENT);
        if (!parent || parent == dentry)
            goto none;  /* in no directory: a memfd, an anonymous file */
        const char *name = task_read_ptr(dentry, DENTRY_NAME);
        u32 pos = at + size;
        asm volatile("" : "+r"(pos));  /* (the bound below is checked on this copy) */
        if (pos > PATH_ROOM + PATH_LEN)
            goto none;
        long n = bpf_probe_read_kernel_str(&buf[pos], NAME_LEN, name);
        if (n <= 0)
            goto none;
        size += n;
        if (size > PATH_LEN) {
            /* Out of room: the names so far give way to this one and those above it. */
            u32 start = at;
            asm volatile("" : "+r"(start));
            if (start > PATH_ROOM)
                goto none;
            n = bpf_probe_read_kernel_str(&buf[start], NAME_LEN, name);
            if (n <= 0)
                goto none;
            size = n;
            w->cut = 1;
        }
        dentry = parent;
    }
    w->mnt = mnt;
    w->dentry = dentry;
    w->size = size;
    return 0;
none:
    w->size = 0;
    w->cut = 0;
    return 1;
}

/* Begins the walk of `task`'s executable's path (mm->exe_file: the file run, whatever name
 * execve() was given), its names into buf[at...]. */
static __always_inline void begin_exe_walk(struct path_walk *w, void *task, u32 at)
{
    void *mm = task_read_ptr(task, TASK_MM);
    void *file = mm ? task_read_ptr(mm, MM_EXE_FILE) : 0;
    void *fs = file ? task_read_ptr(task, TASK_FS) : 0;
    begin_walk(w, fs, fs ? task_read_ptr(file, FILE_PATH_MNT) : 0,
               fs ? task_read_ptr(file, FILE_PATH_DENTRY) : 0, at);
}

/* Begins the walk of `task`'s working directory's path (fs->pwd). */
static __always_inline void begin_cwd_walk(struct path_walk *w, void *task, u32 at)
{
    void *fs = task_read_ptr(task, TASK_FS);
    begin_walk(w, fs, fs ? task_read_ptr(fs, FS_PWD_MNT) : 0,
               fs ? task_read_ptr(fs, FS_PWD_DENTRY) : 0, at);
}

#endif
