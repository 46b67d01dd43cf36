/* TCP connections: who connected to whom, for how long, bytes each way, failures, retransmits,
 * resets; listening sockets opened and closed.
 *
 * Tracepoints only (no kprobes on these kernels). Attribution is always taken in process
 * context: outbound at CLOSE->SYN_SENT (runs in connect()), inbound at the first read or write
 * (a worker forked per connection takes it over), or, for a connection closed unread, at the
 * close step that runs in close() or shutdown() (to FIN_WAIT1 or LAST_ACK). Until then an
 * inbound connection belongs to its listener's owner. No syscall tracepoint is used: enabling
 * any (accept's, say) sends every syscall of every task through the slow path, and accept's
 * program read the file table on every accepted connection. (Measured: the programs' run time
 * per request went from 2.1 to 1.8 us; CPU per request moved less than this machine's noise,
 * ~3%.) The handshake and reset state changes run in softirq with whatever
 * task happened to be running, so they never set an owner; they are joined to the socket's
 * state in `conns` by the struct sock address.
 * Byte counts come from sock_send_length / sock_recv_length, which run in the caller's context.
 * A tracked connection's bytes are added up in its slot only (`conn_bytes`), and counted for its
 * cgroup once, when it closes: the per-cgroup counter is those of closed connections plus those
 * of open ones, which user space reads from the slots at scrape time. A map update per read and
 * write would cost more than the rest of that program.
 *
 * The tracked connections are not in a hash map but in a table of slots (arrays, open
 * addressing): see `conn_socks` below.
 *
 * The tracepoints that fire several times per connection (state changes, reads, writes) are
 * attached raw: a formatted tracepoint fills a trace record (addresses, ports, family) before
 * any program runs, about 300 ns each time, ~10 times per connection. Raw ones hand over the
 * socket, and the few fields needed are read from it only where they are used. Every kernel
 * struct field read (socket addresses, sk_err, the fd table) uses an offset from the running
 * kernel's BTF, passed as a -D define by exporter/probes/tcp.py.
 *
 * With a network namespace filter (netns.h), a socket is checked where it is first seen (listen,
 * connect, a listener's new child, the close of one opened before the probe): only sockets of
 * the namespace enter `conns`, so everything joined on `conns` follows. Counts of sockets not in
 * `conns` (bytes, retransmits, resets) check the socket themselves.
 */
#include "tcp.h"
#include "task.h"
#include "ring.h"
#include "netns.h"

BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
BPF_PERCPU_ARRAY(drops, u64, EV_KIND_MAX);          /* refused by the ring buffer, by kind */
BPF_PERCPU_ARRAY(conns_full, u64, 1);               /* sockets not tracked: `conns` was full */
BPF_PERCPU_ARRAY(conn_seq, u64, 1);                 /* per-CPU part of connection ids */
/* The connections being tracked, by socket, at ~15 uses per connection. A hash map costs about
 * 150 ns per update or delete (a bucket lock, a free list) and 50 ns per lookup; here a socket's
 * slot is found by open addressing from a hash of its address: `conn_socks` holds each slot's
 * socket (0: free), claimed with one compare-and-swap, and `conns` its connection. The
 * verifier inlines array lookups. Measured with bpf_stats on the connection benchmark, the
 * probe's programs took 3.1 us per request instead of 4.1. CONN_SLOTS (a power of two) is twice
 * the connections to track.
 * User space finds long-lived connections from small mmapable arrays, read from memory
 * with no system call per slot: the sockets, `conn_since`, the time each slot's connection
 * was established (0: not yet), and `conn_bytes`, its bytes so far. It looks up a connection
 * itself only to announce it (exporter/probes/conn_table.py); `conns` is not mapped, as a
 * mapping counts whole in the exporter's resident memory. */
BPF_F_TABLE("array", u32, u64, conn_socks, CONN_SLOTS, BPF_F_MMAPABLE);
BPF_F_TABLE("array", u32, u64, conn_since, CONN_SLOTS, BPF_F_MMAPABLE);
BPF_F_TABLE("array", u32, struct conn_bytes, conn_bytes, CONN_SLOTS, BPF_F_MMAPABLE);
BPF_ARRAY(conns, struct conn, CONN_SLOTS);
BPF_HASH(listeners, struct listen_key, struct owner, 4096);
/* Per-CPU counters: every connection updates the same few keys, and shared ones would bounce
 * between CPUs on each update. The collector sums them over CPUs at scrape time. */
BPF_PERCPU_HASH(counts, struct count_key, u64, COUNTS_MAX);
BPF_PERCPU_HASH(closes, struct close_key, struct close_counts, COUNTS_MAX);
BPF_PERCPU_ARRAY(counts_overflow, u64, C_KIND_MAX); /* by count kind, when `counts` is full */
/* Outbound remote ports counted by number (1), by port: an array, whose lookup the verifier
 * inlines, where a hash lookup cost each outbound connection about 40 ns. */
BPF_ARRAY(remote_ports, u8, 65536);

/* ---- the connection table ---- */

#define SLOT_TRIES 8  /* slots a socket may take; all 8 taken: not tracked (conns_full) */

static __always_inline u32 slot_of(u64 sk, u32 try)
{
    /* Fibonacci hashing: socket addresses are slab offsets, alike in their low bits. */
    return ((u32)((sk * 0x9E3779B97F4A7C15ULL) >> 32) + try) & (CONN_SLOTS - 1);
}

/* The slot of a tracked socket, or -1. */
static __always_inline int find_slot(u64 sk)
{
#pragma unroll
    for (u32 try = 0; try < SLOT_TRIES; try++) {
        u32 slot = slot_of(sk, try);
        u64 *owner = conn_socks.lookup(&slot);
        if (owner && *owner == sk)
            return slot;
    }
    return -1;
}

static __always_inline struct conn *conn_at(int slot)
{
    u32 key = slot;
    return slot < 0 ? 0 : conns.lookup(&key);
}

static __always_inline struct conn *conn_find(u64 sk)
{
    return conn_at(find_slot(sk));
}

static __always_inline void set_since(int slot, u64 established_ns)
{
    u32 key = slot;
    u64 *since = slot < 0 ? 0 : conn_since.lookup(&key);
    if (since)
        *since = established_ns;
}

static __always_inline struct conn_bytes *bytes_at(int slot)
{
    u32 key = slot;
    return slot < 0 ? 0 : conn_bytes.lookup(&key);
}

/* A slot's connection is new: no bytes yet, counted under its owner's cgroup. */
static __always_inline void bytes_reset(int slot, u64 cgroup_id)
{
    struct conn_bytes *b = bytes_at(slot);
    if (b) {
        b->sent = 0;
        b->received = 0;
        b->cgroup_id = cgroup_id;
    }
}

/* Tracks a socket (again, if its memory was a socket not seen closing); -1 if no slot is free. */
static __always_inline int conn_insert(u64 sk, struct conn *c)
{
    int found = find_slot(sk);
    struct conn *entry = conn_at(found);
    if (entry) {
        __builtin_memcpy(entry, c, sizeof(*c));
        set_since(found, c->established_ns);
        bytes_reset(found, c->owner.cgroup_id);
        return 0;
    }
#pragma unroll
    for (u32 try = 0; try < SLOT_TRIES; try++) {
        u32 slot = slot_of(sk, try);
        u64 *owner = conn_socks.lookup(&slot);
        entry = conns.lookup(&slot);
        if (owner && entry && *owner == 0 && __sync_val_compare_and_swap(owner, 0, sk) == 0) {
            __builtin_memcpy(entry, c, sizeof(*c));
            set_since(slot, c->established_ns);
            bytes_reset(slot, c->owner.cgroup_id);
            return 0;
        }
    }
    return -1;
}

/* Frees a socket's slot (its connection is overwritten by the next one to take it). */
static __always_inline void conn_remove(int slot)
{
    u32 key = slot;
    u64 *owner = slot < 0 ? 0 : conn_socks.lookup(&key);
    set_since(slot, 0);
    if (owner)
        *owner = 0;
}

/* ring.h's accessors of this probe's maps (bcc rewrites map calls only in this file). */
static __always_inline void *ring_reserve(u32 size) { return events.ringbuf_reserve(size); }
static __always_inline int ring_output(void *data, u32 size)
{
    return events.ringbuf_output(data, size, RINGBUF_FLAGS);
}
static __always_inline u64 *ring_drops(u32 kind) { return drops.lookup(&kind); }

static __always_inline void count_add(u64 cgroup_id, u32 kind, u16 port, u8 inbound, u8 outcome,
                                      u64 n)
{
    struct count_key key = {
        .cgroup_id = cgroup_id, .kind = kind, .port = port, .inbound = inbound, .outcome = outcome};
    u64 zero = 0;
    u64 *v = counts.lookup_or_try_init(&key, &zero);
    if (v) {
        *v += n;
    } else {
        u64 *o = counts_overflow.lookup(&kind);
        if (o)
            *o += n;
    }
}

static __always_inline void owner_from_current(struct owner *o)
{
    void *task = (void *)bpf_get_current_task();
    o->pid = bpf_get_current_pid_tgid() >> 32;
    o->start_ns = process_start_ns(task);
    o->cgroup_id = bpf_get_current_cgroup_id();
    bpf_get_current_comm(&o->comm, sizeof(o->comm));
}

static __always_inline u16 sock_u16(u64 sk, u32 offset)
{
    u16 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), (char *)sk + offset);
    return v;
}

static __always_inline u16 swap16(u16 v)
{
    return (v >> 8) | (v << 8);
}

/* The local port as the formatted tracepoint reports it (host order). */
static __always_inline u16 local_port(u64 sk)
{
    return swap16(sock_u16(sk, INET_SPORT));
}

/* A socket's addresses, as the formatted inet_sock_set_state would report them: ports in
 * host order, IPv4 addresses in the first 4 bytes. Family, addresses and remote port are all
 * in the head of struct sock_common (SK_HEAD_LEN bytes, from the BTF offsets): one read. */
static __always_inline void read_addrs(u64 sk, struct addrs *a)
{
    u8 head[SK_HEAD_LEN];
    u16 dport;
    bpf_probe_read_kernel(head, sizeof(head), (void *)sk);
    __builtin_memcpy(&a->family, head + SK_FAMILY, 2);
    __builtin_memcpy(&dport, head + SK_DPORT, 2);
    a->dport = swap16(dport);
    a->sport = local_port(sk);
    if (a->family == AF_INET6) {
        __builtin_memcpy(a->saddr, head + SK_V6_RCV_SADDR, 16);
        __builtin_memcpy(a->daddr, head + SK_V6_DADDR, 16);
    } else {
        __builtin_memcpy(a->saddr, head + SK_RCV_SADDR, 4);
        __builtin_memcpy(a->daddr, head + SK_DADDR, 4);
    }
}

/* TCP over IPv4 or IPv6 (inet_sock_set_state also fires for MPTCP's own sockets). */
static __always_inline int is_tcp(u64 sk, u16 family)
{
    return sock_u16(sk, SK_PROTOCOL) == IPPROTO_TCP && (family == AF_INET || family == AF_INET6);
}

static __always_inline int sock_error(u64 sk)
{
    int err = 0;
    bpf_probe_read_kernel(&err, sizeof(err), (char *)sk + SOCK_SK_ERR);
    return err;
}

static __always_inline u8 connect_outcome(int err)
{
    if (err == ECONNREFUSED)
        return O_REFUSED;
    if (err == ETIMEDOUT)
        return O_TIMEOUT;
    if (err == ECONNRESET)
        return O_RESET;
    return O_ERROR;
}

/* The port a connection is counted under: the listening (local) port for inbound; for
 * outbound the remote port if it is a configured well-known one, else 0 (`ephemeral`), which
 * keeps the number of counter keys bounded. */
static __always_inline u16 label_port(struct conn *c)
{
    if (c->flags & F_INBOUND)
        return c->addrs.sport;
    u32 port = c->addrs.dport;
    u8 *counted = remote_ports.lookup(&port);
    return counted && *counted ? port : 0;
}

static __always_inline u16 duration_bucket(u64 ns)
{
    /* Bounds come from exporter/probes/tcp.py (DURATION_BOUNDS_S) as DURATION_BOUND_<i>. */
    if (ns <= DURATION_BOUND_0) return 0;
    if (ns <= DURATION_BOUND_1) return 1;
    if (ns <= DURATION_BOUND_2) return 2;
    if (ns <= DURATION_BOUND_3) return 3;
    if (ns <= DURATION_BOUND_4) return 4;
    if (ns <= DURATION_BOUND_5) return 5;
    if (ns <= DURATION_BOUND_6) return 6;
    if (ns <= DURATION_BOUND_7) return 7;
    if (ns <= DURATION_BOUND_8) return 8;
    if (ns <= DURATION_BOUND_9) return 9;
    if (ns <= DURATION_BOUND_10) return 10;
    if (ns <= DURATION_BOUND_11) return 11;
    return DURATION_BUCKETS;
}

/* One end of an established connection closed after `duration` ns, its bytes with it: in the
 * same update where they count under the cgroup its opening was counted under (nearly always),
 * else in `counts`. */
static __always_inline void count_close(u64 cgroup_id, u8 inbound, u64 duration,
                                        struct conn_bytes *b)
{
    struct close_key key = {
        .cgroup_id = cgroup_id, .bucket = duration_bucket(duration), .inbound = inbound};
    struct close_counts zero = {};
    struct close_counts *v = closes.lookup_or_try_init(&key, &zero);
    u8 bytes_counted = 0;
    if (v) {
        v->closed++;
        v->duration_sum_us += duration / 1000;
        if (b && b->cgroup_id == cgroup_id) {
            v->bytes_sent += b->sent;
            v->bytes_received += b->received;
            bytes_counted = 1;
        }
    } else {
        u32 kind = C_DURATION;
        u64 *o = counts_overflow.lookup(&kind);
        if (o)
            (*o)++;
    }
    if (b && !bytes_counted) {
        count_add(b->cgroup_id, C_BYTES_SENT, 0, inbound, O_OK, b->sent);
        count_add(b->cgroup_id, C_BYTES_RECEIVED, 0, inbound, O_OK, b->received);
    }
}

/* An event at `now` (boot clock: a close passes the time it read for the duration). */
static __always_inline void emit(u32 kind, u64 now, struct conn *c, struct conn_bytes *b,
                                 int error)
{
    struct tcp_event *e = reserve_event(sizeof(*e), kind);
    if (!e)
        return;
    e->ts_ns = now;
    e->conn_id = c->id;
    e->kind = kind;
    e->error = error;
    e->open_ns = c->open_ns;
    e->established_ns = c->established_ns;
    e->bytes_sent = b ? b->sent : 0;
    e->bytes_received = b ? b->received : 0;
    e->retransmits = c->retransmits;
    e->flags = c->flags;
    __builtin_memcpy(&e->owner, &c->owner, sizeof(e->owner));
    __builtin_memcpy(&e->addrs, &c->addrs, sizeof(e->addrs));
    events.ringbuf_submit(e, RINGBUF_FLAGS);
}

/* Count an established connection as opened, once, under its owner's cgroup at that moment. */
static __always_inline void count_opened(struct conn *c)
{
    if (c->flags & F_COUNTED)
        return;
    c->flags |= F_COUNTED;
    c->counted_cgroup = c->owner.cgroup_id;
    count_add(c->counted_cgroup, C_OPENED, label_port(c), c->flags & F_INBOUND, O_OK, 1);
}

/* The current process takes over the inbound connection in a slot, and its bytes from now on
 * (none before); count it if it is new. */
static __always_inline void adopt(int slot, struct conn *c, u32 how)
{
    owner_from_current(&c->owner);
    c->flags |= how;
    count_opened(c);
    struct conn_bytes *b = bytes_at(slot);
    if (b)
        b->cgroup_id = c->owner.cgroup_id;
}

static __always_inline void track(u64 sk, struct conn *c)
{
    u32 zero = 0;
    u64 *seq = conn_seq.lookup(&zero);
    if (seq)
        c->id = ((u64)bpf_get_smp_processor_id() << 48) | ++*seq;
    if (conn_insert(sk, c) != 0) {
        u64 *n = conns_full.lookup(&zero);
        if (n)
            (*n)++;
    }
}

/* ---- state changes ---- */

/* A listener's key: every network namespace has its own ports. */
static __always_inline struct listen_key listen_key_of(u64 sk, struct addrs *a)
{
    struct listen_key key = {.netns = sock_netns_inum(sk), .family = a->family, .port = a->sport};
    return key;
}

static __always_inline int on_listen(u64 sk, struct addrs *a, u32 kind)
{
    struct conn c = {.addrs = *a};
    struct listen_key key = listen_key_of(sk, a);
    /* listen() and close() of a listener run in the owning process. */
    owner_from_current(&c.owner);
    if (kind == EV_LISTEN)
        listeners.update(&key, &c.owner);
    else
        listeners.delete(&key);
    emit(kind, bpf_ktime_get_boot_ns(), &c, 0, 0);
    return 0;
}

static __always_inline int on_connect_start(u64 sk, struct addrs *a)
{
    struct conn c = {};
    c.open_ns = bpf_ktime_get_boot_ns();
    owner_from_current(&c.owner);  /* connect() runs in the connecting process */
    c.addrs = *a;
    track(sk, &c);
    return 0;
}

/* A new child socket of a listener (softirq: the current task is not its owner). */
static __always_inline int on_inbound(u64 sk, struct addrs *a)
{
    struct conn c = {};
    c.open_ns = bpf_ktime_get_boot_ns();
    c.flags = F_INBOUND;
    c.addrs = *a;
    /* Until a process accepts it, it belongs to whoever listens on the port. */
    struct listen_key key = listen_key_of(sk, a);
    struct owner *listener = listeners.lookup(&key);
    if (listener)
        __builtin_memcpy(&c.owner, listener, sizeof(c.owner));
    track(sk, &c);
    return 0;
}

static __always_inline int on_established(u64 sk)
{
    int slot = find_slot(sk);
    struct conn *c = conn_at(slot);
    if (!c)
        return 0;
    c->established_ns = bpf_ktime_get_boot_ns();
    set_since(slot, c->established_ns);
    /* Read again: an outbound socket's local port is chosen after SYN_SENT is set, and a child
     * socket's remote end may be filled in after its SYN_RECV (kernels differ). */
    read_addrs(sk, &c->addrs);
    /* Inbound: counted now, in the accept queue, under the listener's owner, if it is known;
     * else under the first process to read, write or close it (adopt). */
    if (!(c->flags & F_INBOUND) || c->owner.pid)
        count_opened(c);
    return 0;
}

/* Who sent the first FIN, told by the state an end leaves for CLOSE: this end went on from
 * FIN_WAIT1 (to FIN_WAIT2, CLOSING or TIME_WAIT) if it did, from CLOSE_WAIT (to LAST_ACK) if
 * the peer did. Read once, at close, rather than by a lookup at each of those steps. */
static __always_inline u32 closer_flag(int old)
{
    if (old == TCP_FIN_WAIT1 || old == TCP_FIN_WAIT2 || old == TCP_CLOSING || old == TCP_TIME_WAIT)
        return F_CLOSED_LOCAL;
    if (old == TCP_CLOSE_WAIT || old == TCP_LAST_ACK)
        return F_CLOSED_REMOTE;
    return 0;
}

static __always_inline int on_close(u64 sk, int old)
{
    int slot = find_slot(sk);
    struct conn *c = conn_at(slot);
    if (!c) {
        if (old == TCP_SYN_SENT || old == TCP_SYN_RECV || old == TCP_CLOSE || !sock_in_netns(sk))
            return 0;
        /* Opened before the probe: report the end; user space knows the owner from its scan. */
        struct conn u = {.flags = F_UNTRACKED};
        read_addrs(sk, &u.addrs);
        if (is_tcp(sk, u.addrs.family))
            emit(EV_CLOSE, bpf_ktime_get_boot_ns(), &u, 0, sock_error(sk));
        return 0;
    }
    if (old == TCP_SYN_SENT)
        c->addrs.sport = local_port(sk);  /* chosen after SYN_SENT was set */
    c->flags |= closer_flag(old);
    int err = sock_error(sk);
    u8 inbound = c->flags & F_INBOUND;
    if (old == TCP_SYN_SENT) {
        count_add(c->owner.cgroup_id, C_OPENED, label_port(c), 0, connect_outcome(err), 1);
        emit(EV_CONNECT_FAILED, bpf_ktime_get_boot_ns(), c, 0, err);
    } else if (c->established_ns) {
        count_opened(c);  /* an inbound connection nobody accepted or read */
        u64 now = bpf_ktime_get_boot_ns();
        struct conn_bytes *b = bytes_at(slot);
        count_close(c->counted_cgroup, inbound, now - c->established_ns, b);
        emit(EV_CLOSE, now, c, b, err);
    }
    conn_remove(slot);
    return 0;
}

/* An inbound connection that no process has read or written is closed by one: it is that
 * process's. To FIN_WAIT1 (this end closes first) and to LAST_ACK (after the peer did) are set
 * only by close() and shutdown(), so they run in the closing process. */
static __always_inline int on_closing(u64 sk)
{
    int slot = find_slot(sk);
    struct conn *c = conn_at(slot);
    if (c && (c->flags & F_INBOUND) && !(c->flags & (F_OWNER_IO | F_OWNER_CLOSE)))
        adopt(slot, c, F_OWNER_CLOSE);
    return 0;
}

/* args: the socket, its old state, its new state. Only TCP sockets are in `conns`, so the
 * protocol is checked where a socket is first seen. */
RAW_TRACEPOINT_PROBE(inet_sock_set_state)
{
    u64 sk = ctx->args[0];
    int old = ctx->args[1], new = ctx->args[2];
    if (new == TCP_ESTABLISHED)
        return on_established(sk);
    if (new == TCP_CLOSE && old != TCP_LISTEN)
        return on_close(sk, old);
    if (new == TCP_FIN_WAIT1 || new == TCP_LAST_ACK)
        return on_closing(sk);
    /* The other steps of an orderly close (FIN_WAIT2, CLOSE_WAIT, ...) need nothing. */
    if (new != TCP_LISTEN && new != TCP_SYN_SENT && new != TCP_SYN_RECV && new != TCP_CLOSE)
        return 0;
    if (!sock_in_netns(sk))
        return 0;
    struct addrs a = {};
    read_addrs(sk, &a);
    if (!is_tcp(sk, a.family))
        return 0;
    if (new == TCP_LISTEN)
        return on_listen(sk, &a, EV_LISTEN);
    if (new == TCP_CLOSE)  /* from LISTEN */
        return on_listen(sk, &a, EV_LISTEN_CLOSE);
    if (new == TCP_SYN_SENT)
        return on_connect_start(sk, &a);
    if (old == TCP_LISTEN)  /* new == TCP_SYN_RECV */
        return on_inbound(sk, &a);
    return 0;
}

/* ---- bytes, and attribution of inbound connections at the first read or write ---- */

/* Bytes moved by a process on a TCP socket: added up in its connection's slot (counted for its
 * cgroup when it closes), or, for a socket not tracked, counted for the cgroup now. */
static __always_inline int transferred(u64 sk, int ret, u32 kind)
{
    if (ret <= 0)
        return 0;
    int slot = find_slot(sk);
    struct conn *c = conn_at(slot);
    struct conn_bytes *b = bytes_at(slot);
    if (!c || !b) {
        /* Opened before the probe (or not TCP): a TCP socket's bytes are still its cgroup's. */
        if (is_tcp(sk, sock_u16(sk, SK_FAMILY)) && sock_in_netns(sk))
            count_add(bpf_get_current_cgroup_id(), kind, 0, 0, O_OK, ret);
        return 0;
    }
    if ((c->flags & F_INBOUND) && !(c->flags & F_OWNER_IO))
        adopt(slot, c, F_OWNER_IO);
    if (kind == C_BYTES_SENT)
        __sync_fetch_and_add(&b->sent, ret);
    else
        __sync_fetch_and_add(&b->received, ret);
    return 0;
}

/* args of both: the socket, the length (or -errno), the flags. */
RAW_TRACEPOINT_PROBE(sock_send_length)
{
    return transferred(ctx->args[0], (int)ctx->args[1], C_BYTES_SENT);
}

RAW_TRACEPOINT_PROBE(sock_recv_length)
{
    if ((int)ctx->args[2] & (MSG_PEEK | MSG_ERRQUEUE))  /* data read again later / not data */
        return 0;
    return transferred(ctx->args[0], (int)ctx->args[1], C_BYTES_RECEIVED);
}

/* ---- retransmits and resets: timer and softirq context, joined on the socket ---- */

static __always_inline u64 owner_cgroup(struct conn *c)
{
    return c ? c->owner.cgroup_id : 0;
}

TRACEPOINT_PROBE(tcp, tcp_retransmit_skb)
{
    u64 sk = (u64)args->skaddr;
    struct conn *c = conn_find(sk);
    if (c)
        __sync_fetch_and_add(&c->retransmits, 1);
    else if (!sock_in_netns(sk))
        return 0;
    count_add(owner_cgroup(c), C_RETRANSMITS, 0, 0, O_OK, 1);
    return 0;
}

TRACEPOINT_PROBE(tcp, tcp_receive_reset)
{
    u64 sk = (u64)args->skaddr;
    struct conn *c = conn_find(sk);
    if (c)
        c->flags |= F_RESET_RECEIVED;
    else if (!sock_in_netns(sk))
        return 0;
    count_add(owner_cgroup(c), C_RESETS, 0, 0, O_OK, 1);
    return 0;
}

/* A raw tracepoint: the formatted one has an enum field bcc cannot declare. args[0] is the
 * socket, NULL for a reset answering a segment no socket owns (a closed port); args[1] is the
 * segment it answers. */
RAW_TRACEPOINT_PROBE(tcp_send_reset)
{
    u64 sk = ctx->args[0];
    struct conn *c = sk ? conn_find(sk) : 0;
    if (c)
        c->flags |= F_RESET_SENT;
    else if (sk ? !sock_in_netns(sk) : !skb_in_netns(ctx->args[1]))
        return 0;
    count_add(owner_cgroup(c), C_RESETS, 0, 0, O_OK, 1);
    return 0;
}
