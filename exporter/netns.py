"""The exporter's network namespace filter (``--netns PATH``): one exporter per namespace.

Where several network namespaces stand in for hosts (a lab of namespaces joined by veth pairs,
or one container's network), an exporter given a namespace records only the processes and TCP
connections of that namespace, and the others are left to their own exporters. The filter is
applied where each event is made: in the kernel, as a compile-time constant (the namespace's
inode number; 0, the default, compiles the checks out), and in the start-up scans.

A process belongs to the namespace its task is in when the event is made (fork: the child's;
exec, exit, credential change: its own; OOM kill: the task whose allocation triggered it), a
connection or listener to its socket's namespace. A process that moves in (``ip netns exec``
joins the namespace, then execs) is seen from its exec on.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import threading

from exporter.btf import member_offset

CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703  # ioctl on a namespace file: the kind of namespace it is (linux/nsfs.h)

# The path from a task to its network namespace's inode number (bpf/netns.h).
TASK_NETNS_OFFSETS = {
    "TASK_NSPROXY": ("task_struct", "nsproxy"),
    "NSPROXY_NET_NS": ("nsproxy", "net_ns"),
    "NET_NS_INUM": ("net", "ns.inum"),
}
# ... and from a socket (the reset answering a segment no socket owns: from its packet's device).
SOCK_NETNS_OFFSETS = {
    "SK_NET": ("sock", "__sk_common.skc_net.net"),
    "SKB_DEV": ("sk_buff", "dev"),
    "DEV_NET": ("net_device", "nd_net.net"),
    "NET_NS_INUM": ("net", "ns.inum"),
}


class NetnsError(ValueError):
    pass


def netns_inode(path: str) -> int:
    """The inode number of the network namespace file ``path`` (/run/netns/NAME,
    /proc/PID/ns/net); NetnsError saying why when it is not one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise NetnsError(f"netns {path}: {e.strerror}") from e
    try:
        try:
            kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
        except OSError:
            kind = 0  # not a namespace file at all
        if kind != CLONE_NEWNET:
            raise NetnsError(
                f"netns {path} is not a network namespace (give /run/netns/NAME or "
                "/proc/PID/ns/net)"
            )
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)


def sock_netns_defines(inode: int) -> dict[str, int]:
    """The TCP probe's defines: the filter's, and the path from a socket to its namespace's
    inode number whatever the filter (the probe keys listeners by namespace: every namespace
    has its own ports, and two containers may both listen on 8080)."""
    inum_path = {k: member_offset(*SOCK_NETNS_OFFSETS[k]) for k in ("SK_NET", "NET_NS_INUM")}
    return inum_path | netns_defines(inode, SOCK_NETNS_OFFSETS)


def own_netns_inode() -> int:
    """The inode number of this process's network namespace."""
    return os.stat("/proc/self/ns/net").st_ino


def netns_defines(inode: int, offsets: dict[str, tuple[str, str]]) -> dict[str, int]:
    """A probe's -D defines of the filter: NETNS_INUM, and with a namespace, the offsets the
    check reads (TASK_NETNS_OFFSETS or SOCK_NETNS_OFFSETS) from the running kernel's BTF."""
    if not inode:
        return {"NETNS_INUM": 0}
    return {"NETNS_INUM": inode} | {k: member_offset(*where) for k, where in offsets.items()}


_libc = ctypes.CDLL(None, use_errno=True)


def run_in_netns(path: str, fn, *args):
    """``fn(*args)`` in a thread of its own that first joins the network namespace ``path``
    (setns changes only the calling thread); its result, or its exception raised here. What it
    creates there stays there: sockets, and children it starts (they inherit the namespace).
    Without a path, ``fn(*args)`` here."""
    if not path:
        return fn(*args)
    result: dict = {}

    def body() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into {path}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            result["error"] = e

    thread = threading.Thread(target=body, name="netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]
