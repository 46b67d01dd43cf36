/* The path of a task's executable as the kernel resolved it: walked up from the file to the
 * task's root directory (a container's own root), across mount points, as d_path() does.
 *
 * Read at exec, it names the file that runs whatever name execve() was given: a relative
 * name ("./x" run in /tmp), a symlink, a bind mount. Every member is read at an offset from
 * the running kernel's BTF (exporter/probes/process.py EXE_PATH_OFFSETS).
 */
#ifndef GT_EXE_PATH_H
#define GT_EXE_PATH_H

#include "task.h"

/* Writes the names on the path of `task`'s executable into buf[at...], from the file up, each
 * ended by its NUL; returns their bytes, or 0 when the walk does not reach the task's root
 * within EXE_PATH_STEPS steps and EXE_PATH_LEN bytes: a file with no directory (a memfd), one
 * outside the task's root, or a path too deep or too long. `buf` has EXE_PATH_LEN + NAME_LEN
 * bytes of room after CMDLINE_LEN. */
static __always_inline u32 read_exe_path(void *task, char *buf, u32 at)
{
    void *mm = task_read_ptr(task, TASK_MM);
    void *file = mm ? task_read_ptr(mm, MM_EXE_FILE) : 0;
    void *fs = task_read_ptr(task, TASK_FS);
    if (!file || !fs || at > CMDLINE_LEN)
        return 0;
    void *root_mnt = task_read_ptr(fs, FS_ROOT_MNT);
    void *root_dentry = task_read_ptr(fs, FS_ROOT_DENTRY);
    void *mnt = task_read_ptr(file, FILE_PATH_MNT);
    void *dentry = task_read_ptr(file, FILE_PATH_DENTRY);
    u32 size = 0;
    for (int step = 0; step < EXE_PATH_STEPS; step++) {
        if (dentry == root_dentry && mnt == root_mnt)
            return size;
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
        if (pos > CMDLINE_LEN + EXE_PATH_LEN)
            return 0;
        long n = bpf_probe_read_kernel_str(&buf[pos], NAME_LEN,
                                           task_read_ptr(dentry, DENTRY_NAME));
        if (n <= 0)
            return 0;
        size += n;
        if (size > EXE_PATH_LEN)
            return 0;
        dentry = parent;
    }
    return 0;
}

#endif
