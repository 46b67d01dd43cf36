/* How the probes use their ring buffer (`events`) and count what it refuses (`drops`).
 *
 * Events are submitted without a wake-up: the consumer drains on a timer, so a burst costs one
 * wake-up per drain instead of one per event.
 *
 * A reservation can fail while the ring has plenty of room, for a few hundred nanoseconds at a
 * time. Measured here (kernel 6.18, two exec loops beside two busy loops, 1.7M events): with
 * 3 tries, 17 events were refused in 170-390 ns with EAGAIN while the ring was at most a
 * quarter full; with up to 64 tries, 5 refusals all got through by the 6th try (~600 ns) and
 * nothing was dropped. The ring's lock is a resilient spinlock since Linux 6.15, which can give
 * up instead of waiting. A full ring refuses every try, and then the event is counted as
 * dropped.
 *
 * bcc rewrites map calls only in the probe's own C file (not in headers, not in macros), so
 * each probe defines the three one-line accessors declared below next to its maps; the retry
 * and the drop counting are here, once.
 */
#ifndef GT_RING_H
#define GT_RING_H

#define RINGBUF_FLAGS BPF_RB_NO_WAKEUP
#define RESERVE_TRIES 16

/* events.ringbuf_reserve(size) */
static __always_inline void *ring_reserve(u32 size);
/* events.ringbuf_output(data, size, RINGBUF_FLAGS) */
static __always_inline int ring_output(void *data, u32 size);
/* drops.lookup(&kind): this CPU's count of events of `kind` the ring refused */
static __always_inline u64 *ring_drops(u32 kind);

static __always_inline void count_drop(u32 kind)
{
    u64 *d = ring_drops(kind);
    if (d)
        (*d)++;
}

/* Space for an event of `size` bytes (a constant), or 0 with the drop counted. */
static __always_inline void *reserve_event(u32 size, u32 kind)
{
    for (int i = 0; i < RESERVE_TRIES; i++) {
        void *e = ring_reserve(size);
        if (e)
            return e;
    }
    count_drop(kind);
    return 0;
}

/* Copies out an event built in a scratch map (its size known at run time only). */
static __always_inline void output_event(void *data, u32 size, u32 kind)
{
    for (int i = 0; i < RESERVE_TRIES; i++) {
        if (ring_output(data, size) == 0)
            return;
    }
    count_drop(kind);
}

#endif
