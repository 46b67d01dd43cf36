/* Paths as the kernel resolved them, from a task's root directory (a container's own root):
 * walked up from a (mount, dentry) pair across mount points, as d_path() does.
 *
 * Read at exec for the executable (mm->exe_file: the file run, whatever name execve() was
 * given: a relative name, a symlink, a bind mount) and the working directory (fs->pwd). Every
 * member is read at an offset from the running kernel's BTF (exporter/probes/process.py
 * PATH_OFFSETS).
 */
#ifndef GT_PATH_H
#define GT_PATH_H

#include "task.h"

/* Writes the names on the path of (mnt, dentry) into buf[at...], from the leaf up, each ended
 * by its NUL (the root alone: one NUL); returns their bytes, or 0 when the walk does not reach
 * the task's root (`fs`'s) within PATH_STEPS steps and PATH_LEN bytes: a file in no directory
 * (a memfd), one outside the task's root, or a path too deep or too long. `buf` has PATH_LEN +
 * NAME_LEN bytes of room at `at` (which is at most PATH_ROOM). */
static __always_inline u32 read_path(void *fs, void *mnt, void *dentry, char *buf, u32 at)
{
    if (!fs || !mnt || !dentry || at > PATH_ROOM)
        return 0;
    void *root_mnt = task_read_ptr(fs, FS_ROOT_MNT);
    void *root_dentry = task_read_ptr(fs, FS_ROOT_DENTRY);
    u32 size = 0;
    for (int step = 0; step < PATH_STEPS; step++) {
        if (dentry == root_dentry && mnt == root_mnt) {
            if (size)
                return size;
            u32 root_at = at;  /* the root itself: one NUL */
            asm volatile("" : "+r"(root_at));
            if (root_at > PATH_ROOM)
                return 0;
            buf[root_at] = 0;
            return 1;
        }
        if (dentry == task_read_ptr(mnt, VFSMOUNT_ROOT)) {
            /* The top of a mount: on from its mount point, in the mount above. */
            void *mount = (char *)mnt - MOUNT_MNT;
            void *above = task_read_ptr(mount, MOUNT_PARENT);
            if (!above || above == mount)
                return 0;  /* the top of the mount tree, and not the task's root */
            dentry = task_read_ptr(mount, MOUNT_MOUNTPOINT);
            mnt = (char *)above + MOUNT_MNT;
            continue;
        }
        void *parent = task_read_ptr(dentry, DENTRY_PARENT);
        if (!parent || parent == dentry)
            return 0;  /* in no directory: a memfd, an anonymous file */
        u32 pos = at + size;
        asm volatile("" : "+r"(pos));  /* (the bound below is checked on this copy) */
        if (pos > PATH_ROOM + PATH_LEN)
            return 0;
        long n = bpf_probe_read_kernel_str(&buf[pos], NAME_LEN,
                                           task_read_ptr(dentry, DENTRY_NAME));
        if (n <= 0)
            return 0;
        size += n;
        if (size > PATH_LEN)
            return 0;
        dentry = parent;
    }
    return 0;
}

/* The path of `task`'s executable into buf[at...] (read_path). */
static __always_inline u32 read_exe_path(void *task, char *buf, u32 at)
{
    void *mm = task_read_ptr(task, TASK_MM);
    void *file = mm ? task_read_ptr(mm, MM_EXE_FILE) : 0;
    if (!file)
        return 0;
    return read_path(task_read_ptr(task, TASK_FS), task_read_ptr(file, FILE_PATH_MNT),
                     task_read_ptr(file, FILE_PATH_DENTRY), buf, at);
}

/* The path of `task`'s working directory into buf[at...] (read_path). */
static __always_inline u32 read_cwd(void *task, char *buf, u32 at)
{
    void *fs = task_read_ptr(task, TASK_FS);
    if (!fs)
        return 0;
    return read_path(fs, task_read_ptr(fs, FS_PWD_MNT), task_read_ptr(fs, FS_PWD_DENTRY), buf, at);
}

#endif
