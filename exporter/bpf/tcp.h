/* TCP connection probe: limits, constants and event structs. Fixed-width fields, widest first;
 * exporter/probes/tcp.py decodes these layouts (keep both in step). */
#ifndef GT_TCP_H
#define GT_TCP_H

/* No kernel includes: the constants are defined by hand. */
#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define MSG_PEEK 2
#define MSG_ERRQUEUE 0x2000
#define ECONNRESET 104
#define ETIMEDOUT 110
#define ECONNREFUSED 111

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_FIN_WAIT1 4
#define TCP_FIN_WAIT2 5
#define TCP_TIME_WAIT 6
#define TCP_CLOSE 7
#define TCP_CLOSE_WAIT 8
#define TCP_LAST_ACK 9
#define TCP_LISTEN 10
#define TCP_CLOSING 11

#define COMM_LEN 16
#define DURATION_BUCKETS 12   /* bounds in DURATION_BOUNDS_NS; one more bucket for +Inf */

/* Only ends and failures travel as events: a connection that lives long enough is announced
 * by user space, which reads `conns` now and then (exporter/probes/tcp.py). Short-lived ones,
 * the bulk, cost one event per end. */
enum event_kind {
    EV_CLOSE = 1,             /* an established connection ended */
    EV_CONNECT_FAILED = 2,    /* outbound handshake never completed */
    EV_LISTEN = 3,
    EV_LISTEN_CLOSE = 4,
    EV_KIND_MAX = 5,
};

enum conn_flags {
    F_INBOUND = 1,
    F_OWNER_CLOSE = 2,        /* owner is the process that closed it, unread */
    F_OWNER_IO = 4,           /* owner is the first process that read or wrote it */
    F_COUNTED = 8,            /* counted as opened (metrics) */
    F_RESET_SENT = 16,
    F_RESET_RECEIVED = 32,
    F_CLOSED_LOCAL = 64,      /* this end sent the first FIN */
    F_CLOSED_REMOTE = 128,    /* the peer sent the first FIN */
    F_UNTRACKED = 256,        /* opened before the probe was loaded: only the close was seen */
};

/* Counter kinds kept in the `counts` map, read at scrape time. `port` is the listening port
 * (inbound) or remote port (outbound) for connection kinds. */
enum count_kind {
    C_OPENED = 1,             /* connection attempts by outcome (see `outcome`) */
    /* 2 and 4 are not used: closed connections and their durations are in `closes`. */
    C_DURATION = 3,           /* only an index of counts_overflow: closes `closes` could not keep */
    C_BYTES_SENT = 5,
    C_BYTES_RECEIVED = 6,
    C_RETRANSMITS = 7,
    C_RESETS = 8,
    C_KIND_MAX = 9,
};

enum outcome {
    O_OK = 0,
    O_REFUSED = 1,
    O_TIMEOUT = 2,
    O_RESET = 3,
    O_ERROR = 4,
};

/* Who a connection belongs to: the process, and its cgroup for the container label. */
struct owner {
    u64 start_ns;             /* process start, boot clock: half of the process key */
    u64 cgroup_id;
    u32 pid;                  /* tgid */
    u32 pad;
    char comm[COMM_LEN];
};

struct addrs {
    u8 saddr[16];             /* IPv4 in the first 4 bytes */
    u8 daddr[16];
    u16 sport;                /* host order */
    u16 dport;
    u16 family;
    u16 pad;
};

/* Bytes a tracked connection's processes have moved so far, and the cgroup they count under
 * (its owner's), in the slot of its connection (`conn_bytes`). */
struct conn_bytes {
    u64 sent;                 /* from sock_send_length: what processes wrote */
    u64 received;
    u64 cgroup_id;
};

/* Per-socket state, keyed by the struct sock address, deleted when the socket closes. */
struct conn {
    u64 id;                   /* (cpu << 48) | per-CPU sequence: names the connection outside */
    u64 open_ns;              /* SYN sent (outbound) or received (inbound), boot clock */
    u64 established_ns;
    u64 counted_cgroup;       /* the cgroup the opening was counted under */
    struct owner owner;
    struct addrs addrs;
    u32 retransmits;
    u32 flags;
};

struct tcp_event {
    u64 ts_ns;                /* boot clock */
    u64 conn_id;              /* struct conn.id; 0 for sockets older than the probe */
    u64 open_ns;
    u64 established_ns;
    u64 bytes_sent;
    u64 bytes_received;
    struct owner owner;
    struct addrs addrs;
    u32 kind;
    u32 flags;
    u32 retransmits;
    s32 error;                /* sk_err at close or failure (errno), 0 if none */
};

/* Established connections that ended, by duration bucket (`closes`): the count, the sum of
 * the durations and their bytes in one update per connection end. The count over all buckets
 * is the closed connections' count. */
struct close_key {
    u64 cgroup_id;
    u16 bucket;               /* 0..DURATION_BUCKETS (the last one is +Inf) */
    u8 inbound;
    u8 pad[5];
};

struct close_counts {
    u64 closed;
    u64 duration_sum_us;
    u64 bytes_sent;           /* of the connections closed, where their owner's cgroup is the key's */
    u64 bytes_received;
};

struct count_key {
    u64 cgroup_id;
    u32 kind;
    u16 port;
    u8 inbound;
    u8 outcome;
};

struct listen_key {
    u32 netns;  /* the inode number of the listener's network namespace: each has its own ports */
    u16 family;
    u16 port;
};

#endif
