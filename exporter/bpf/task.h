/* Reading task_struct fields at offsets taken from the running kernel's BTF.
 *
 * The loader (exporter/probes/base.py) passes TASK_* offsets as -D defines; nothing here
 * depends on the installed kernel headers, whose layouts are wrong for this kernel.
 */
#ifndef GT_TASK_H
#define GT_TASK_H

static __always_inline u64 task_read_u64(void *task, u32 off)
{
    u64 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (char *)task + off);
    return v;
}

static __always_inline u32 task_read_u32(void *task, u32 off)
{
    u32 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (char *)task + off);
    return v;
}

static __always_inline void *task_read_ptr(void *task, u32 off)
{
    void *v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (char *)task + off);
    return v;
}

/* Start time of the task's process (its group leader), ns since boot: the kernel's own
 * identity clock, which /proc/<pid>/stat reports in 1/100 s ticks. */
static __always_inline u64 process_start_ns(void *task)
{
    void *leader = task_read_ptr(task, TASK_GROUP_LEADER);
    return task_read_u64(leader, TASK_START_BOOTTIME);
}

/* The parent process of a task: its tgid and start time. */
static __always_inline u32 parent_tgid(void *task, u64 *parent_start_ns)
{
    void *parent = task_read_ptr(task, TASK_REAL_PARENT);
    *parent_start_ns = process_start_ns(parent);
    return task_read_u32(parent, TASK_TGID);
}

/* Id (kernfs inode) of the task's cgroup in the v1 memory hierarchy, on hybrid hosts where
 * runtimes may put containers in v1 hierarchies only; 0 where there is none. */
static __always_inline u64 task_v1_memcg_id(void *task)
{
#ifdef MEMCG_V1
    void *css_set = task_read_ptr(task, TASK_CGROUPS);
    void *css = task_read_ptr(css_set, CSS_SET_SUBSYS + MEMORY_CGRP_ID * sizeof(void *));
    void *cgrp = task_read_ptr(css, CSS_CGROUP);
    void *kn = task_read_ptr(cgrp, CGROUP_KN);
    return task_read_u64(kn, KERNFS_NODE_ID);
#else
    return 0;
#endif
}

#endif
