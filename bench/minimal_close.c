/* The least a per-connection exporter does in the kernel: one event per connection end, when it
 * closes, laid out as exporter/bpf/tcp.h's struct tcp_event (owner and addresses left empty).
 * bench/bench_tcp.py decodes these with the TCP probe's decoder: together, a lower bound on what
 * exporting every connection from Python costs. */
#define TCP_CLOSE 7
#define EV_CLOSE 1

struct tcp_event_words {
    u64 words[18];            /* sizeof(struct tcp_event): 144 bytes */
};

BPF_RINGBUF_OUTPUT(events, 1024);

RAW_TRACEPOINT_PROBE(inet_sock_set_state)
{
    if (ctx->args[2] != TCP_CLOSE)
        return 0;
    struct tcp_event_words *e = events.ringbuf_reserve(sizeof(*e));
    if (!e)
        return 0;
    __builtin_memset(e, 0, sizeof(*e));
    e->words[0] = bpf_ktime_get_boot_ns();  /* ts_ns */
    e->words[1] = ctx->args[0];             /* conn_id: the socket */
    e->words[16] = EV_CLOSE;                /* kind (the low half of the 17th word) */
    events.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
    return 0;
}
