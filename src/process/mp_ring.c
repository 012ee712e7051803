/* The shared-memory message ring (process/mp_ring.h) under the cross-process Queue and
 * the Pipe.
 *
 * Design notes: the protocol. Read all of it before changing anything here.
 *
 * Memory. One struct br__mpr at the start of a shared mapping, then `cap` data bytes
 * (a power of two). Everything is reached by offsets from the mapping: no pointers.
 * The header's cache lines are split by writer: the producers' private line (their
 * lock, their cached view of the consumers' progress), the producers' published line
 * (tail, nput), the consumers' two lines likewise (glock; head, nget), a read-mostly
 * line of sleeper flags and state, and the futex words. In one-producer
 * one-consumer use each side's lock word and private fields stay in that side's cache;
 * the only lines that cross are tail/nput, head/nget and the records themselves, as in
 * a plain SPSC ring.
 *
 * Positions. tail and head are free-running byte counters (never wrapped); a position's
 * place in the data area is pos & (cap - 1). Every record starts 8-aligned, so its
 * 8-byte header never straddles the end of the area (payloads may: they are copied in
 * two pieces). tail - head <= cap always.
 *
 * Records. A header word: payload length (bits 0-31), flags (32-39: FIRST, LAST), the
 * message's serial (40-63, 24 bits). A message whose record (8 + payload rounded up to
 * 8) takes at most cap / 2 travels as one record, FIRST|LAST. A larger one streams: a
 * FIRST record whose header is followed by the message's total length (8 bytes), then
 * continuation records, the last one flagged LAST, each payload at most cap / 4. The
 * producer holds plock for the whole message, so its fragments are contiguous; the
 * consumer holds glock for the whole message, so one consumer receives all of it.
 *
 * Locks. plock (producers) and glock (consumers) hold the holder's pid, with bit 31
 * (LK_WAITERS) set when someone may sleep on the word. Taking: CAS 0 -> pid; a
 * contender spins briefly, sets LK_WAITERS and futex-waits (shared) in slices of
 * BR__MPR_SLICE_NS; after each slice it asks the platform whether the holder's process
 * is gone (br__pid_gone) and, if so, takes the lock over by CAS from the dead value and
 * runs the recovery (below). Releasing: CAS pid -> 0; if LK_WAITERS was set, store 0 and
 * wake one (who takes the lock with LK_WAITERS set, so that the chain goes on).
 * A BR_NOWAIT taker doesn't give up merely because the lock is held: it yields until the
 * holder releases, unless the holder sleeps on the ring (data_wait / room_wait set: the
 * queue is empty / full, so the answer is "would block" anyway) or is gone.
 *
 * Publication. A producer writes a record, then stores tail (release), then nput (the
 * message count, on LAST only). A consumer reads tail (acquire), the record, then stores
 * head (release) and nget. Both sides first note in their private line what they are
 * about to publish (p_commit_tail/p_commit_nput, c_commit_head/c_commit_nget), so that
 * a holder dying between the two stores can be completed by the recovery.
 *
 * Sleeping (rule 3 of core/lib.h, across processes). The consumer that holds glock is
 * the only one sleeping for data (the others sleep on glock); the producer that holds
 * plock the only one sleeping for room. A sleeper reads the futex word (data_seq),
 * stores its flag (data_wait = 1), fences (seq_cst), re-checks its condition, and only
 * then sleeps on the word. A waker changes the condition (stores tail), fences, and if
 * the flag is set exchanges it to 0 and, if it got 1, bumps the word and wakes. Either
 * the sleeper's re-check sees the new tail or the waker sees the flag. So a put costs
 * a fence and a load of a read-mostly line; a syscall only when someone sleeps.
 * The pipe replaces futex words by doorbell sockets (side->fd): the waker sends one
 * byte, the sleeper polls its socket and drains it. A stale byte only causes a
 * spurious wake-up (every sleeper loops). The socket's hang-up tells the sleeper that
 * every process holding the other side is gone.
 *
 * Deaths and recovery.
 *  - A producer that dies holding plock: the next taker of plock finishes its
 *    publication (nput from p_commit_*) and, if it was streaming a message
 *    (p_stream != 0), withdraws that message: abort_serial = its serial, and the data
 *    bell. A consumer waiting mid-message for a producer that died takes plock over
 *    itself to do this (it watches plock's holder in slices).
 *  - A producer whose put times out or meets a shutdown mid-message withdraws it the
 *    same way. Consumers drop a message whose serial is abort_serial, and any
 *    continuation record that doesn't continue the message they hold. A consumer
 *    waiting mid-message also gives it up when, at a slice's end, p_stream no longer
 *    names it and nothing more was published (a second withdrawal may have replaced
 *    abort_serial before the consumer saw the first): p_stream is set before a
 *    message's first fragment is published and cleared (release) after its last. abort_serial is
 *    cleared when the serial comes round again (2^24 messages later: the ring, at most
 *    64 MiB of 16-byte records, can't still hold the old fragments).
 *  - A side killed after storing its position but before ringing the bell: the other
 *    side's sleeper (data or room) naps on the futex in slices of BR__MPR_SLICE_NS and
 *    looks at the position again after each, so what was published is found without
 *    another put or get (the pipe's sleeper sees the dead peer's socket hang up).
 *  - A consumer that dies holding glock: the next taker finishes its publication (nget
 *    from c_commit_*). If it died mid-message, the rest of that message are
 *    continuation records: they are dropped, and its LAST record counts as a lost
 *    message (nget + 1, lost + 1).
 */
#include "process/mp_ring.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MPR_MAGIC 0x5252504du /* "MPRR" */
#define MPR_VERSION 1u
#define LK_WAITERS 0x80000000u
#define SER_MASK 0xffffffu
#define ABORT_NONE 0xffffffffu
#define F_FIRST 1u
#define F_LAST 2u
#define NAP_HUP 1 /* nap(): the doorbell socket hung up */
#define ABORTED 2 /* wait_data(): the message being received was withdrawn */

struct br__mpr {
    uint32_t magic, version;
    uint64_t cap, maxsize;
    uint32_t flags, pad0;
    /* producers' private line (under plock) */
    _Alignas(64) _Atomic uint32_t plock;
    uint32_t p_serial;
    _Atomic uint32_t p_stream; /* 1 + serial of the message being streamed; 0: none */
    uint32_t pad1;
    uint64_t p_head, p_nget; /* cached views of head and nget */
    uint64_t p_commit_tail, p_commit_nput;
    /* producers' published line */
    _Alignas(64) _Atomic uint64_t tail;
    _Atomic uint64_t nput;
    /* consumers' private line (under glock) */
    _Alignas(64) _Atomic uint32_t glock;
    uint32_t pad2;
    uint64_t c_tail; /* cached view of tail */
    uint64_t c_commit_head, c_commit_nget;
    /* consumers' published line */
    _Alignas(64) _Atomic uint64_t head;
    _Atomic uint64_t nget;
    /* read-mostly: sleeper flags, state */
    _Alignas(64) _Atomic uint32_t data_wait, room_wait, join_wait;
    _Atomic uint32_t state;
    _Atomic uint32_t abort_serial;
    /* futex words and rarely written counters */
    _Alignas(64) _Atomic uint32_t data_seq, room_seq, join_seq;
    _Atomic uint64_t ndone, lost;
    _Alignas(64) unsigned char data[];
};

/* --- this process's id, and the fork hook -------------------------------------- */

static _Atomic int g_pid;

static void after_fork_child(void) { atomic_store_explicit(&g_pid, (int)getpid(), memory_order_relaxed); }

static br__hooks g_hooks = {.order = BR__ORDER_PROCESS, .name = "process/mp_ring",
                            .child = after_fork_child};

int br__mpr_pid(void) {
    int p = atomic_load_explicit(&g_pid, memory_order_relaxed);
    if (BR__UNLIKELY(p == 0)) {
        br__hooks_register(&g_hooks);
        p = (int)getpid();
        atomic_store_explicit(&g_pid, p, memory_order_relaxed);
    }
    return p;
}

/* br__mpr_pid without the call (an exported function is called through the PLT). */
static inline uint32_t my_pid(void) {
    int p = atomic_load_explicit(&g_pid, memory_order_relaxed);
    return (uint32_t)(BR__LIKELY(p != 0) ? p : br__mpr_pid());
}

/* --- layout --------------------------------------------------------------------- */

size_t br__mpr_bytes(size_t cap) { return sizeof(struct br__mpr) + cap; }

size_t br__mpr_cap_for(size_t want) {
    if (want == 0)
        return BR__MPR_DEFAULT_CAP;
    if (want > BR__MPR_MAX_CAP)
        return 0;
    size_t c = BR__MPR_MIN_CAP;
    while (c < want)
        c <<= 1;
    return c;
}

void br__mpr_init(br__mpr *r, size_t cap, uint64_t maxsize, uint32_t flags) {
    r->magic = MPR_MAGIC;
    r->version = MPR_VERSION;
    r->cap = cap;
    r->maxsize = maxsize;
    r->flags = flags;
    atomic_store(&r->abort_serial, ABORT_NONE);
    (void)br__mpr_pid(); /* registers the fork hook while nothing is forking */
}

uint32_t br__mpr_flags(const br__mpr *r) { return r->flags; }

int br__mpr_check(const br__mpr *r, size_t bytes) {
    if (bytes < sizeof *r || r->magic != MPR_MAGIC || r->version != MPR_VERSION)
        return BR_EINVAL;
    uint64_t c = r->cap;
    if (c < BR__MPR_MIN_CAP || c > BR__MPR_MAX_CAP || (c & (c - 1)) ||
        br__mpr_bytes((size_t)c) > bytes)
        return BR_EINVAL;
    return 0;
}

/* --- sleeping and waking -------------------------------------------------------- */

/* Sleeps until woken, the deadline, or (fd mode) the socket's hang-up: 0 (woken or
 * spurious), BR_ETIMEDOUT, NAP_HUP. */
static int nap(br__mpr_side *s, _Atomic uint32_t *seq, uint32_t seen, int64_t until) {
    if (s->fd < 0) {
        int rc = br__futex_wait(seq, seen, until, true);
        return rc == BR_ETIMEDOUT ? rc : 0;
    }
    if (s->hup)
        return NAP_HUP;
    struct timespec ts, *tp = NULL;
    if (until != BR_FOREVER) {
        int64_t left = until - br_now();
        if (left <= 0)
            return BR_ETIMEDOUT;
        ts.tv_sec = left / BR_SEC;
        ts.tv_nsec = left % BR_SEC;
        tp = &ts;
    }
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    int n = ppoll(&pfd, 1, tp, NULL);
    if (n == 0)
        return BR_ETIMEDOUT;
    if (n < 0)
        return 0; /* EINTR: the caller loops */
    if (pfd.revents & POLLIN) {
        char buf[64];
        while (recv(s->fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
        }
    }
    if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) {
        s->hup = true;
        return NAP_HUP;
    }
    return 0;
}

/* Without sleeping: has the doorbell socket hung up? (fd mode; a deadline that
 * passed must still see a peer that is gone.) */
static bool probe_hup(br__mpr_side *s) {
    if (s->fd < 0 || s->hup)
        return s->hup;
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)))
        s->hup = true;
    return s->hup;
}

/* The waker's half of the sleeping protocol (see the design note): bell() inline, the
 * part for a raised flag out of line. */
static BR__NOINLINE void bell_ring(br__mpr_side *s, _Atomic uint32_t *flag,
                                   _Atomic uint32_t *seq) {
    if (atomic_exchange_explicit(flag, 0, memory_order_relaxed) == 0)
        return;
    if (s->fd < 0) {
        atomic_fetch_add_explicit(seq, 1, memory_order_release);
        br__futex_wake(seq, INT_MAX, true);
    } else if (!s->hup) {
        char c = 0;
        if (send(s->fd, &c, 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
            (errno == EPIPE || errno == ECONNRESET))
            s->hup = true;
    }
}

static inline void bell(br__mpr_side *s, _Atomic uint32_t *flag, _Atomic uint32_t *seq) {
    atomic_thread_fence(memory_order_seq_cst);
    if (BR__UNLIKELY(atomic_load_explicit(flag, memory_order_relaxed) != 0))
        bell_ring(s, flag, seq);
}

/* Before a sleeper raises its flag it polls its condition SPINS times (a pause
 * each) and then yields YIELDS times: a peer that is running refills or drains the
 * ring within that, and neither side pays a syscall. */
enum { SPINS = 256, YIELDS = 2 };

static int64_t slice_end(int64_t deadline) {
    int64_t t = br_now() + BR__MPR_SLICE_NS;
    return deadline != BR_FOREVER && deadline < t ? deadline : t;
}

/* --- the locks ---------------------------------------------------------------- */

/* Takes *w (plock or glock). `busy`: the holder's sleeping flag (room_wait for
 * plock, data_wait for glock), which lets a BR_NOWAIT taker answer at once. *took_over:
 * the holder was gone and we took the lock from it (the caller recovers). */
static BR__NOINLINE int lk_take_slow(_Atomic uint32_t *w, int64_t deadline,
                                     _Atomic uint32_t *busy, bool *took_over) {
    uint32_t me = my_pid();
    uint32_t v;
    bool slept = false;
    bool nowait = br__deadline_passed(deadline);
    for (unsigned spin = 0;; spin++) {
        v = atomic_load_explicit(w, memory_order_relaxed);
        if (v == 0) {
            if (atomic_compare_exchange_weak_explicit(w, &v, slept ? me | LK_WAITERS : me,
                                                      memory_order_acquire,
                                                      memory_order_relaxed))
                return 0;
            continue;
        }
        uint32_t owner = v & ~LK_WAITERS;
        if (spin < 100) {
            br__cpu_relax();
            continue;
        }
        if (nowait) {
            if (atomic_load_explicit(busy, memory_order_relaxed))
                return BR_ETIMEDOUT;
            if (spin % 256 == 0 && owner != me && br__pid_gone((int)owner) &&
                atomic_compare_exchange_strong_explicit(w, &v, me | LK_WAITERS,
                                                        memory_order_acquire,
                                                        memory_order_relaxed)) {
                *took_over = true;
                return 0;
            }
            sched_yield();
            continue;
        }
        if (br__deadline_passed(deadline))
            return BR_ETIMEDOUT;
        if (!(v & LK_WAITERS)) {
            if (!atomic_compare_exchange_weak_explicit(w, &v, v | LK_WAITERS,
                                                       memory_order_relaxed,
                                                       memory_order_relaxed))
                continue;
            v |= LK_WAITERS;
        }
        int rc = br__futex_wait(w, v, slice_end(deadline), true);
        slept = true;
        if (rc == BR_ETIMEDOUT && owner != me && br__pid_gone((int)owner) &&
            atomic_compare_exchange_strong_explicit(w, &v, me | LK_WAITERS,
                                                    memory_order_acquire,
                                                    memory_order_relaxed)) {
            *took_over = true;
            return 0;
        }
    }
}

/* The uncontended take inline, the rest (lk_take_slow) out of line. */
static inline int lk_take(_Atomic uint32_t *w, int64_t deadline, _Atomic uint32_t *busy,
                          bool *took_over) {
    uint32_t v = 0;
    *took_over = false;
    if (BR__LIKELY(atomic_compare_exchange_strong_explicit(
            w, &v, my_pid(), memory_order_acquire, memory_order_relaxed)))
        return 0;
    return lk_take_slow(w, deadline, busy, took_over);
}

static BR__NOINLINE void lk_give_slow(_Atomic uint32_t *w) {
    atomic_store_explicit(w, 0, memory_order_release);
    br__futex_wake(w, 1, true);
}

static inline void lk_give(_Atomic uint32_t *w) {
    uint32_t v = my_pid();
    if (BR__LIKELY(atomic_compare_exchange_strong_explicit(w, &v, 0, memory_order_release,
                                                           memory_order_relaxed)))
        return;
    lk_give_slow(w); /* LK_WAITERS was set */
}

/* --- records ------------------------------------------------------------------ */

static inline size_t r8(size_t n) { return (n + 7) & ~(size_t)7; }

static inline uint64_t hdr_make(size_t len, uint32_t flags, uint32_t serial) {
    return (uint64_t)(uint32_t)len | (uint64_t)flags << 32 | (uint64_t)(serial & SER_MASK) << 40;
}

static inline uint64_t *word_at(br__mpr *r, uint64_t pos) {
    return (uint64_t *)(void *)(r->data + (pos & (r->cap - 1)));
}

static BR__NOINLINE void ring_write_any(br__mpr *r, uint64_t pos, const void *src,
                                        size_t n) {
    if (n == 0)
        return;
    size_t off = (size_t)(pos & (r->cap - 1));
    size_t first = (size_t)r->cap - off < n ? (size_t)r->cap - off : n;
    memcpy(r->data + off, src, first);
    if (n > first)
        memcpy(r->data, (const unsigned char *)src + first, n - first);
}

static BR__NOINLINE void ring_read_any(br__mpr *r, uint64_t pos, void *dst, size_t n) {
    if (n == 0)
        return;
    size_t off = (size_t)(pos & (r->cap - 1));
    size_t first = (size_t)r->cap - off < n ? (size_t)r->cap - off : n;
    memcpy(dst, r->data + off, first);
    if (n > first)
        memcpy((unsigned char *)dst + first, r->data, n - first);
}

/* A payload of at most 16 bytes that doesn't wrap is copied inline (the common small
 * message; memcpy of a run-time length is a call): two overlapping fixed-size copies,
 * touching only bytes [0, n) of either side. */
static inline void copy_small(unsigned char *d, const unsigned char *s, size_t n) {
    if (n >= 8) {
        memcpy(d, s, 8);
        memcpy(d + n - 8, s + n - 8, 8);
    } else if (n >= 4) {
        memcpy(d, s, 4);
        memcpy(d + n - 4, s + n - 4, 4);
    } else {
        for (size_t i = 0; i < n; i++)
            d[i] = s[i];
    }
}

static inline void ring_write(br__mpr *r, uint64_t pos, const void *src, size_t n) {
    size_t off = (size_t)(pos & (r->cap - 1));
    if (BR__LIKELY(n <= 16 && n <= (size_t)r->cap - off))
        copy_small(r->data + off, src, n);
    else
        ring_write_any(r, pos, src, n);
}

static inline void ring_read(br__mpr *r, uint64_t pos, void *dst, size_t n) {
    size_t off = (size_t)(pos & (r->cap - 1));
    if (BR__LIKELY(n <= 16 && n <= (size_t)r->cap - off))
        copy_small(dst, r->data + off, n);
    else
        ring_read_any(r, pos, dst, n);
}

/* --- recovery ------------------------------------------------------------------- */

static void withdraw(br__mpr_side *s, uint32_t serial) {
    br__mpr *r = s->r;
    atomic_store_explicit(&r->abort_serial, serial, memory_order_release);
    atomic_store_explicit(&r->p_stream, 0, memory_order_release);
    bell(s, &r->data_wait, &r->data_seq);
}

/* Under plock taken over from a dead holder. */
static void recover_producer(br__mpr_side *s) {
    br__mpr *r = s->r;
    if (atomic_load(&r->tail) == r->p_commit_tail && atomic_load(&r->nput) != r->p_commit_nput)
        atomic_store(&r->nput, r->p_commit_nput);
    uint32_t st = atomic_load_explicit(&r->p_stream, memory_order_relaxed);
    if (st)
        withdraw(s, st - 1);
}

/* Under glock taken over from a dead holder. */
static void recover_consumer(br__mpr *r) {
    if (atomic_load(&r->head) == r->c_commit_head && atomic_load(&r->nget) != r->c_commit_nget)
        atomic_store(&r->nget, r->c_commit_nget);
    r->c_tail = atomic_load(&r->tail);
}

/* --- producing ------------------------------------------------------------------ */

/* Is there room (holding plock) for `need` bytes at tail and, if `count`, for one more
 * message under maxsize? 0 yes; 1 not yet; BR_ESHUTDOWN, BR_EPIPE. */
static inline int room_state(br__mpr_side *s, uint64_t tail, size_t need, bool count) {
    br__mpr *r = s->r;
    uint32_t st = atomic_load_explicit(&r->state, memory_order_acquire);
    if (st & (BR__MPR_SHUTDOWN | BR__MPR_SHUTDOWN_NOW))
        return BR_ESHUTDOWN;
    if ((st & BR__MPR_RX_CLOSED) || s->hup)
        return BR_EPIPE;
    if (r->cap - (tail - r->p_head) < need) {
        r->p_head = atomic_load_explicit(&r->head, memory_order_acquire);
        if (r->cap - (tail - r->p_head) < need)
            return 1;
    }
    if (count && r->maxsize) {
        uint64_t np = atomic_load_explicit(&r->nput, memory_order_relaxed);
        if (np - r->p_nget >= r->maxsize) {
            r->p_nget = atomic_load_explicit(&r->nget, memory_order_acquire);
            if (np - r->p_nget >= r->maxsize)
                return 1;
        }
    }
    return 0;
}

/* Waits (holding plock) for room_state to say yes: 0, BR_ETIMEDOUT, BR_ESHUTDOWN,
 * BR_EPIPE. */
static BR__NOINLINE int wait_room_slow(br__mpr_side *s, uint64_t tail, size_t need,
                                       bool count, int64_t deadline) {
    br__mpr *r = s->r;
    int rc = room_state(s, tail, need, count);
    if (BR__LIKELY(rc != 1))
        return rc;
    if (!br__deadline_passed(deadline))
        for (int i = 0; i < SPINS + YIELDS; i++) {
            if (i < SPINS)
                br__cpu_relax();
            else
                sched_yield();
            if ((rc = room_state(s, tail, need, count)) != 1)
                return rc;
        }
    for (;;) {
        if (br__deadline_passed(deadline)) {
            atomic_store_explicit(&r->room_wait, 0, memory_order_relaxed);
            if (probe_hup(s))
                return BR_EPIPE;
            return BR_ETIMEDOUT;
        }
        uint32_t seen = atomic_load_explicit(&r->room_seq, memory_order_acquire);
        atomic_store_explicit(&r->room_wait, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        rc = room_state(s, tail, need, count);
        if (rc == 1) /* slices: see wait_data */
            nap(s, &r->room_seq, seen, s->fd < 0 ? slice_end(deadline) : deadline);
        rc = room_state(s, tail, need, count);
        if (rc != 1) {
            atomic_store_explicit(&r->room_wait, 0, memory_order_relaxed);
            return rc;
        }
    }
}

static inline int wait_room(br__mpr_side *s, uint64_t tail, size_t need, bool count,
                            int64_t deadline) {
    int rc = room_state(s, tail, need, count);
    return BR__LIKELY(rc != 1) ? rc : wait_room_slow(s, tail, need, count, deadline);
}

static inline void publish_tail(br__mpr_side *s, uint64_t tail, uint64_t nput) {
    br__mpr *r = s->r;
    r->p_commit_tail = tail;
    r->p_commit_nput = nput;
    atomic_store_explicit(&r->tail, tail, memory_order_release);
    atomic_store_explicit(&r->nput, nput, memory_order_release);
    bell(s, &r->data_wait, &r->data_seq);
}

int br__mpr_put(br__mpr_side *s, const void *p, size_t len, int64_t deadline) {
    br__mpr *r = s->r;
    uint32_t st = atomic_load_explicit(&r->state, memory_order_relaxed);
    if (BR__UNLIKELY(st & (BR__MPR_SHUTDOWN | BR__MPR_SHUTDOWN_NOW)))
        return BR_ESHUTDOWN;
    if (BR__UNLIKELY((st & BR__MPR_RX_CLOSED) || s->hup))
        return BR_EPIPE;
    bool took_over;
    int rc = lk_take(&r->plock, deadline, &r->room_wait, &took_over);
    if (rc)
        return rc;
    if (BR__UNLIKELY(took_over))
        recover_producer(s);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t nput = atomic_load_explicit(&r->nput, memory_order_relaxed);
    uint32_t ser = (r->p_serial + 1) & SER_MASK;
    r->p_serial = ser;
    if (BR__UNLIKELY(atomic_load_explicit(&r->abort_serial, memory_order_relaxed) == ser))
        atomic_store_explicit(&r->abort_serial, ABORT_NONE, memory_order_relaxed);
    size_t rec = 8 + r8(len);
    if (BR__LIKELY(len <= r->cap / 2 && rec <= r->cap / 2)) {
        rc = wait_room(s, tail, rec, true, deadline);
        if (rc == 0) {
            *word_at(r, tail) = hdr_make(len, F_FIRST | F_LAST, ser);
            ring_write(r, tail + 8, p, len);
            publish_tail(s, tail + rec, nput + 1);
        }
    } else {
        /* Streaming: see the design note. */
        size_t frag = (size_t)r->cap / 4, done = 0;
        atomic_store_explicit(&r->p_stream, ser + 1, memory_order_relaxed);
        while (done < len) {
            size_t n = len - done < frag ? len - done : frag;
            bool first = done == 0, last = done + n == len;
            size_t hl = first ? 16 : 8;
            rec = hl + r8(n);
            rc = wait_room(s, tail, rec, first, deadline);
            if (rc) {
                if (!first)
                    withdraw(s, ser);
                atomic_store_explicit(&r->p_stream, 0, memory_order_release);
                break;
            }
            *word_at(r, tail) = hdr_make(n, (first ? F_FIRST : 0) | (last ? F_LAST : 0), ser);
            if (first)
                *word_at(r, tail + 8) = (uint64_t)len;
            ring_write(r, tail + hl, (const unsigned char *)p + done, n);
            tail += rec;
            done += n;
            publish_tail(s, tail, last ? nput + 1 : nput);
        }
        atomic_store_explicit(&r->p_stream, 0, memory_order_release);
    }
    lk_give(&r->plock);
    if (rc == 0 && BR__UNLIKELY(s->hup))
        rc = BR_EPIPE; /* the doorbell found the receiver gone */
    return rc;
}

/* --- consuming ------------------------------------------------------------------ */

/* Is there data at head? 0 yes; otherwise the reason not to wait (BR_ESHUTDOWN, BR_EOF,
 * ABORTED) or 1 (wait). `mid`: 1 + serial of the message being received, or 0. */
static inline int data_state(br__mpr_side *s, uint64_t head, uint32_t mid) {
    br__mpr *r = s->r;
    if (r->c_tail != head)
        return 0;
    r->c_tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (r->c_tail != head)
        return 0;
    uint32_t st = atomic_load_explicit(&r->state, memory_order_acquire);
    if (mid && atomic_load_explicit(&r->abort_serial, memory_order_acquire) == mid - 1)
        return ABORTED;
    if (st & BR__MPR_SHUTDOWN_NOW)
        return BR_ESHUTDOWN;
    bool eof = (st & BR__MPR_TX_CLOSED) || s->hup;
    if ((st & BR__MPR_SHUTDOWN) || eof) {
        /* The state was set after the last put: look again at tail. */
        r->c_tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (r->c_tail != head)
            return 0;
        if (mid)
            return ABORTED; /* the rest will never come */
        return eof ? BR_EOF : BR_ESHUTDOWN;
    }
    return 1;
}

/* Mid-message, the producer streaming it may have died holding plock: if so, take
 * plock over and withdraw the message (the caller then sees ABORTED). */
static void watch_producer(br__mpr_side *s) {
    br__mpr *r = s->r;
    uint32_t v = atomic_load_explicit(&r->plock, memory_order_relaxed);
    uint32_t owner = v & ~LK_WAITERS;
    if (v == 0 || owner == (uint32_t)br__mpr_pid() || !br__pid_gone((int)owner))
        return;
    if (!atomic_compare_exchange_strong_explicit(&r->plock, &v, (uint32_t)br__mpr_pid() | LK_WAITERS,
                                                 memory_order_acquire, memory_order_relaxed))
        return;
    recover_producer(s);
    lk_give(&r->plock);
}

/* Waits (holding glock) for data at head: 0, or BR_ETIMEDOUT / BR_ESHUTDOWN / BR_EOF /
 * ABORTED. Mid-message the deadline doesn't apply (see br_mp_queue_get). */
static BR__NOINLINE int wait_data_slow(br__mpr_side *s, uint64_t head, uint32_t mid,
                                       int64_t deadline) {
    br__mpr *r = s->r;
    int rc = data_state(s, head, mid);
    if (BR__LIKELY(rc != 1))
        return rc;
    if (mid || !br__deadline_passed(deadline))
        for (int i = 0; i < SPINS + YIELDS; i++) {
            if (i < SPINS)
                br__cpu_relax();
            else
                sched_yield();
            if ((rc = data_state(s, head, mid)) != 1)
                return rc;
        }
    for (;;) {
        if (!mid && br__deadline_passed(deadline)) {
            atomic_store_explicit(&r->data_wait, 0, memory_order_relaxed);
            if (probe_hup(s) && (rc = data_state(s, head, mid)) != 1)
                return rc;
            return BR_ETIMEDOUT;
        }
        uint32_t seen = atomic_load_explicit(&r->data_seq, memory_order_acquire);
        atomic_store_explicit(&r->data_wait, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        rc = data_state(s, head, mid);
        if (rc != 1) {
            atomic_store_explicit(&r->data_wait, 0, memory_order_relaxed);
            return rc;
        }
        /* Slices on the futex: mid-message to watch the streaming producer; otherwise
         * because a producer killed between storing tail and ringing the bell leaves
         * its message published and this sleeper not woken (the next look at tail
         * finds it). The pipe sees a dead sender through its socket instead. */
        int64_t until = mid ? slice_end(BR_FOREVER) : s->fd < 0 ? slice_end(deadline) : deadline;
        int n = nap(s, &r->data_seq, seen, until);
        if (n == BR_ETIMEDOUT) {
            atomic_store_explicit(&r->data_wait, 0, memory_order_relaxed);
            if (mid) {
                watch_producer(s);
                /* Nobody streams our message any more (its producer withdrew it and
                 * a later withdrawal replaced abort_serial): what's published is all
                 * there will be. p_stream is stored before the first fragment and
                 * cleared after the last is published, so look at tail again. */
                if (atomic_load_explicit(&r->p_stream, memory_order_acquire) != mid &&
                    data_state(s, head, mid) == 1)
                    return ABORTED;
            }
        }
        rc = data_state(s, head, mid);
        if (rc != 1) {
            atomic_store_explicit(&r->data_wait, 0, memory_order_relaxed);
            return rc;
        }
    }
}

static inline int wait_data(br__mpr_side *s, uint64_t head, uint32_t mid,
                            int64_t deadline) {
    int rc = data_state(s, head, mid);
    return BR__LIKELY(rc != 1) ? rc : wait_data_slow(s, head, mid, deadline);
}

static inline void publish_head(br__mpr_side *s, uint64_t head, uint64_t nget) {
    br__mpr *r = s->r;
    r->c_commit_head = head;
    r->c_commit_nget = nget;
    atomic_store_explicit(&r->head, head, memory_order_release);
    atomic_store_explicit(&r->nget, nget, memory_order_release);
    bell(s, &r->room_wait, &r->room_seq);
}

int br__mpr_get(br__mpr_side *s, void *buf, size_t cap, void **out, size_t *lenp,
                int64_t deadline) {
    br__mpr *r = s->r;
    bool took_over;
    int rc = lk_take(&r->glock, deadline, &r->data_wait, &took_over);
    if (rc)
        return rc;
    if (BR__UNLIKELY(took_over))
        recover_consumer(r);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t nget = atomic_load_explicit(&r->nget, memory_order_relaxed);
    unsigned char *dst = NULL, *msg = NULL;
    size_t total = 0, got = 0;
    uint32_t mid = 0;
    for (;;) {
        rc = wait_data(s, head, mid, deadline);
        if (rc == ABORTED) {
            br__free(msg);
            msg = NULL;
            mid = 0;
            continue;
        }
        if (rc)
            break;
        uint64_t h = *word_at(r, head);
        size_t flen = (uint32_t)h;
        uint32_t fl = (uint32_t)(h >> 32) & 0xff, ser = (uint32_t)(h >> 40);
        size_t rec = 8 + r8(flen);
        if (BR__LIKELY((fl & (F_FIRST | F_LAST)) == (F_FIRST | F_LAST))) {
            if (mid) { /* the message we held was withdrawn */
                br__free(msg);
                msg = NULL;
                mid = 0;
            }
            if (!out && flen > cap) {
                *lenp = flen;
                rc = BR_ERANGE;
                break;
            }
            dst = buf;
            if (out) {
                dst = flen ? br__malloc(flen) : NULL;
                if (flen && !dst) {
                    rc = BR_ENOMEM;
                    break;
                }
                *out = dst;
            }
            ring_read(r, head + 8, dst, flen);
            *lenp = flen;
            publish_head(s, head + rec, nget + 1);
            rc = 0;
            break;
        }
        if (fl & F_FIRST) {
            if (mid) {
                br__free(msg);
                msg = NULL;
                mid = 0;
            }
            uint64_t tot = *word_at(r, head + 8);
            rec += 8;
            if (ser == atomic_load_explicit(&r->abort_serial, memory_order_acquire) ||
                tot < flen) {
                head += rec;
                publish_head(s, head, nget);
                continue;
            }
            if (!out && tot > cap) {
                *lenp = (size_t)tot;
                rc = BR_ERANGE;
                break;
            }
            dst = buf;
            if (out) {
                msg = br__malloc((size_t)tot);
                if (!msg) {
                    rc = BR_ENOMEM;
                    break;
                }
                dst = msg;
            }
            ring_read(r, head + 16, dst, flen);
            total = (size_t)tot;
            got = flen;
            mid = ser + 1;
            head += rec;
            publish_head(s, head, nget);
            continue;
        }
        /* a continuation */
        if (!mid || ser != mid - 1 || got + flen > total) {
            /* Not ours: the rest of a message withdrawn, or one a dead consumer began. */
            head += rec;
            if (fl & F_LAST) {
                nget++;
                atomic_fetch_add_explicit(&r->lost, 1, memory_order_relaxed);
            }
            publish_head(s, head, nget);
            continue;
        }
        ring_read(r, head + 8, dst + got, flen);
        got += flen;
        head += rec;
        if (fl & F_LAST) {
            if (got != total) { /* malformed: drop it */
                br__free(msg);
                msg = NULL;
                mid = 0;
                publish_head(s, head, nget + 1);
                nget++;
                continue;
            }
            if (out)
                *out = msg;
            msg = NULL;
            *lenp = total;
            publish_head(s, head, nget + 1);
            rc = 0;
            break;
        }
        publish_head(s, head, nget);
    }
    if (BR__UNLIKELY(msg != NULL))
        br__free(msg);
    lk_give(&r->glock);
    return rc;
}

int br__mpr_poll(br__mpr_side *s, int64_t deadline) {
    br__mpr *r = s->r;
    bool took_over;
    int rc = lk_take(&r->glock, deadline, &r->data_wait, &took_over);
    if (rc)
        return rc;
    if (BR__UNLIKELY(took_over))
        recover_consumer(r);
    rc = wait_data(s, atomic_load_explicit(&r->head, memory_order_relaxed), 0, deadline);
    lk_give(&r->glock);
    return rc == BR_ETIMEDOUT ? rc : 0;
}

/* --- counts, join, state --------------------------------------------------------- */

size_t br__mpr_qsize(br__mpr *r) {
    uint64_t g = atomic_load_explicit(&r->nget, memory_order_acquire);
    uint64_t p = atomic_load_explicit(&r->nput, memory_order_acquire);
    return p > g ? (size_t)(p - g) : 0;
}

uint64_t br__mpr_maxsize(const br__mpr *r) { return r->maxsize; }

uint64_t br__mpr_lost(br__mpr *r) { return atomic_load(&r->lost); }

static void wake_joiners(br__mpr *r) {
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&r->join_wait, memory_order_relaxed) &&
        atomic_exchange(&r->join_wait, 0)) {
        atomic_fetch_add(&r->join_seq, 1);
        br__futex_wake(&r->join_seq, INT_MAX, true);
    }
}

int br__mpr_task_done(br__mpr *r) {
    uint64_t d = atomic_load(&r->ndone);
    do {
        if (d >= atomic_load(&r->nget))
            return BR_EOVERFLOW;
    } while (!atomic_compare_exchange_weak(&r->ndone, &d, d + 1));
    if (d + 1 >= atomic_load(&r->nput))
        wake_joiners(r);
    return 0;
}

int br__mpr_join(br__mpr *r, int64_t deadline) {
    for (;;) {
        if (atomic_load(&r->ndone) >= atomic_load(&r->nput))
            return 0;
        if (br__deadline_passed(deadline))
            return BR_ETIMEDOUT;
        uint32_t seen = atomic_load(&r->join_seq);
        atomic_store(&r->join_wait, 1);
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load(&r->ndone) >= atomic_load(&r->nput))
            return 0;
        br__futex_wait(&r->join_seq, seen, deadline, true);
    }
}

void br__mpr_set_state(br__mpr *r, uint32_t bits, int fd) {
    atomic_fetch_or(&r->state, bits);
    atomic_thread_fence(memory_order_seq_cst);
    atomic_store(&r->data_wait, 0);
    atomic_store(&r->room_wait, 0);
    atomic_fetch_add(&r->data_seq, 1);
    atomic_fetch_add(&r->room_seq, 1);
    br__futex_wake(&r->data_seq, INT_MAX, true);
    br__futex_wake(&r->room_seq, INT_MAX, true);
    wake_joiners(r);
    if (fd >= 0) {
        char c = 0;
        (void)send(fd, &c, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
}

uint32_t br__mpr_state(br__mpr *r) { return atomic_load(&r->state); }

void br__mpr_drain(br__mpr_side *s) {
    br__mpr *r = s->r;
    bool took_over;
    /* plock first: no producer is then mid-message (it withdraws on the shutdown). */
    if (lk_take(&r->plock, BR_FOREVER, &r->room_wait, &took_over) != 0)
        return;
    if (took_over)
        recover_producer(s);
    if (lk_take(&r->glock, BR_FOREVER, &r->data_wait, &took_over) != 0) {
        lk_give(&r->plock);
        return;
    }
    if (took_over)
        recover_consumer(r);
    uint64_t np = atomic_load(&r->nput), ng = atomic_load(&r->nget);
    uint64_t n = np > ng ? np - ng : 0;
    uint64_t t = atomic_load(&r->tail);
    r->c_tail = t;
    atomic_fetch_add(&r->ndone, n);
    publish_head(s, t, ng + n);
    lk_give(&r->glock);
    lk_give(&r->plock);
    wake_joiners(r);
}

void br__mpr_debug_get(br__mpr *r, br__mpr_debug *d) {
    d->plock = atomic_load(&r->plock) & ~LK_WAITERS;
    d->glock = atomic_load(&r->glock) & ~LK_WAITERS;
    d->data_wait = atomic_load(&r->data_wait);
    d->room_wait = atomic_load(&r->room_wait);
    d->p_stream = atomic_load(&r->p_stream);
    d->tail = atomic_load(&r->tail);
    d->head = atomic_load(&r->head);
}
