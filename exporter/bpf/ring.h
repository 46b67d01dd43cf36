/* How the probes use their ring buffer (`events`, declared in each probe's C file: bcc rewrites
 * map calls only there).
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
 */
#define RINGBUF_FLAGS BPF_RB_NO_WAKEUP
#define RESERVE_TRIES 16
