/* The network namespace filter (exporter/netns.py): NETNS_INUM is the inode number of the one
 * namespace whose processes and connections this exporter records, 0 for all of them. With 0
 * every check is the constant 1 and compiles away: the default path costs nothing.
 *
 * Offsets come from the running kernel's BTF, and only when NETNS_INUM is set: the process
 * probe gets a task's (TASK_NSPROXY, NSPROXY_NET_NS), the TCP probe a socket's and a packet's
 * (SK_NET, SKB_DEV, DEV_NET), both NET_NS_INUM. A task's nsproxy is still in place at the exit
 * tracepoint (do_exit traces the exit before exit_task_namespaces); a NULL nsproxy (a task
 * past that point) is in no namespace.
 */
#ifndef GT_NETNS_H
#define GT_NETNS_H

#include "task.h"

#if NETNS_INUM
static __always_inline int net_is_ours(void *net)
{
    return net && task_read_u32(net, NET_NS_INUM) == NETNS_INUM;
}
#endif

#if !NETNS_INUM || defined(TASK_NSPROXY)
static __always_inline int task_in_netns(void *task)
{
#if NETNS_INUM
    void *nsproxy = task_read_ptr(task, TASK_NSPROXY);
    return nsproxy && net_is_ours(task_read_ptr(nsproxy, NSPROXY_NET_NS));
#else
    return 1;
#endif
}

static __always_inline int current_in_netns(void)
{
#if NETNS_INUM
    return task_in_netns((void *)bpf_get_current_task());
#else
    return 1;
#endif
}
#endif /* tasks */

#ifdef SK_NET
/* The inode number of a socket's network namespace (the TCP probe always has SK_NET). */
static __always_inline u32 sock_netns_inum(u64 sk)
{
    void *net = task_read_ptr((void *)sk, SK_NET);
    return net ? task_read_u32(net, NET_NS_INUM) : 0;
}
#endif

#if !NETNS_INUM || defined(SK_NET)
/* A socket is in the namespace it was made in. */
static __always_inline int sock_in_netns(u64 sk)
{
#if NETNS_INUM
    return net_is_ours(task_read_ptr((void *)sk, SK_NET));
#else
    return 1;
#endif
}

/* A packet that no socket owns: the namespace of the device it came in on. */
static __always_inline int skb_in_netns(u64 skb)
{
#if NETNS_INUM
    void *dev = task_read_ptr((void *)skb, SKB_DEV);
    return dev && net_is_ours(task_read_ptr(dev, DEV_NET));
#else
    return 1;
#endif
}
#endif /* sockets */

#endif
