/* process/mp_ring.h: the shared-memory message ring under the cross-process Queue and
 * the Pipe (braid/mp_queue.h). Files of src/process/ only (and the tests).
 *
 * A ring is a header and a power-of-two byte area in one shared mapping (process/shm.h).
 * Producers append records under the producers' lock, consumers take them under the
 * consumers' lock: a two-lock queue, MPMC. A thread that has a side to itself for a
 * while is given that side's bias and then puts (gets) without the lock: no syscall,
 * no atomic read-modify-write and no fence per message, as a plain SPSC ring; another
 * thread takes the bias away (membarrier) before it takes the lock. mp_ring.c's design
 * note has the protocol.
 */
#ifndef BRAID_PROCESS_MP_RING_H
#define BRAID_PROCESS_MP_RING_H

#include "core/lib.h"

#include <stddef.h>
#include <stdint.h>

typedef struct br__mpr br__mpr;

enum {
    BR__MPR_MIN_CAP = 4096,
    BR__MPR_MAX_CAP = 64 << 20,
    BR__MPR_DEFAULT_CAP = 256 << 10,
};

/* One process's view of one ring. fd < 0: sleepers wait on the ring's futex words (the
 * queue); fd >= 0: the pipe's doorbell socket for this side of this ring, which this
 * side sleeps on (poll) and writes one byte to to wake the other side; its hang-up is
 * the other side's death or close. hup: seen hung up (no more sleeping on it). */
typedef struct br__mpr_side {
    br__mpr *r;
    int fd;
    bool hup;
} br__mpr_side;

/* Bytes a ring of data capacity cap takes (header included); cap a power of two in
 * [BR__MPR_MIN_CAP, BR__MPR_MAX_CAP]. */
size_t br__mpr_bytes(size_t cap);
/* Rounds a requested capacity (0: the default) up to a power of two; 0 if out of range. */
size_t br__mpr_cap_for(size_t want);
/* Initializes a zeroed ring at r (br__mpr_bytes(cap) bytes). */
void br__mpr_init(br__mpr *r, size_t cap, uint64_t maxsize, uint32_t flags);
/* The flags given to br__mpr_init. */
uint32_t br__mpr_flags(const br__mpr *r);
/* Checks a ring found in a mapping of `bytes` bytes (an attach): 0 or BR_EINVAL. */
int br__mpr_check(const br__mpr *r, size_t bytes);

/* Message operations (braid/mp_queue.h has their contracts). get: out != NULL
 * allocates the message (br__malloc) into *out; else copies into buf[0..cap) or
 * answers BR_ERANGE with the length. The pipe's codes: put answers BR_EPIPE when the
 * consumers' side is closed (BR__MPR_RX_CLOSED) or hung up; get answers BR_EOF when the
 * ring is empty and the producers' side is closed (BR__MPR_TX_CLOSED) or hung up. */
int br__mpr_put(br__mpr_side *s, const void *p, size_t len, int64_t deadline);
int br__mpr_get(br__mpr_side *s, void *buf, size_t cap, void **out, size_t *len,
                int64_t deadline);
/* Waits until a get would not block (a message, shut down, EOF): 0 or BR_ETIMEDOUT. */
int br__mpr_poll(br__mpr_side *s, int64_t deadline);

size_t br__mpr_qsize(br__mpr *r);
uint64_t br__mpr_maxsize(const br__mpr *r);
uint64_t br__mpr_lost(br__mpr *r);
int br__mpr_task_done(br__mpr *r);
int br__mpr_join(br__mpr *r, int64_t deadline);

/* State bits, set with br__mpr_set_state (which wakes every sleeper of the ring;
 * fd: this side's doorbell, or -1). */
enum {
    BR__MPR_SHUTDOWN = 1,
    BR__MPR_SHUTDOWN_NOW = 2,
    BR__MPR_TX_CLOSED = 4, /* no producer left (pipe): EOF after the last message */
    BR__MPR_RX_CLOSED = 8, /* no consumer left (pipe): put answers BR_EPIPE */
};
void br__mpr_set_state(br__mpr *r, uint32_t bits, int fd);
uint32_t br__mpr_state(br__mpr *r);
/* Immediate shutdown's drain: drops every queued message (each counts as task_done). */
void br__mpr_drain(br__mpr_side *s);

/* For tests: a snapshot of the control words (lock holders without their waiters bit;
 * p_bias/g_bias: the pid of the side's biased thread, or 0; p_inside/g_inside: that
 * thread is in its fast path; late: data sleepers that found data only after sleeping
 * a whole slice, i.e. without being woken; nbias/nrevoke: biases given and taken
 * away, both sides; nstale: fast-path entries by a thread whose bias had been taken
 * since it read it, both sides). */
typedef struct br__mpr_debug {
    uint32_t plock, glock, data_wait, room_wait, p_stream;
    uint32_t p_bias, g_bias, p_inside, g_inside, nbias, nrevoke, nstale;
    uint64_t tail, head, late;
} br__mpr_debug;
void br__mpr_debug_get(br__mpr *r, br__mpr_debug *d);
/* For tests: a side is biased after `streak` uncontended takes in a row by one thread,
 * always (0: the adaptive threshold, which doubles with every revocation). */
void br__mpr_debug_bias_after(br__mpr *r, uint32_t streak);
/* For tests: the ring behind a queue handle, and behind a pipe end's two sides. */
typedef struct br_mp_queue br_mp_queue;
typedef struct br_pipe br_pipe;
br__mpr *br__mp_queue_ring(br_mp_queue *q);
br__mpr *br__pipe_rx_ring(br_pipe *p);
br__mpr *br__pipe_tx_ring(br_pipe *p);

/* This process's id, cached (refreshed in a forked child). */
int br__mpr_pid(void);

/* Liveness-check period of a sleeper that watches another process (a lock's holder, a
 * streaming producer): how long a death can go unnoticed. Not a timeout of any call. */
#define BR__MPR_SLICE_NS (50 * BR_MSEC)

#endif
