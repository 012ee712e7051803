/* The shared-memory message ring (process/mp_ring.h) under the cross-process Queue and
 * the Pipe.
 *
 * Design notes: the protocol. Read all of it before changing anything here.
 *
 * Memory. One struct br__mpr at the start of a shared mapping, then `cap` data bytes
 * (a power of two). Everything is reached by offsets from the mapping: no pointers.
 * The header's cache lines are split by writer: the producers' private lines (their
 * lock, their bias, their cached view of the consumers' progress), the producers'
 * published line (tail, nput), the consumers' lines likewise (glock; head, nget), a
 * read-mostly line of sleeper flags and state, and the futex words. In one-producer
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
 * Biases. Two atomic read-modify-writes per message per side (take, give) cost more
 * than the message once each has to wait for the side's stores to reach the other
 * process. So a side (pb for the producers, cb for the consumers) that one thread has
 * had to itself for a while is biased to it: a thread that took the lock uncontended
 * `thresh` times in a row (16, doubled by every revocation up to 65536) stores its
 * token (pid << 32 | a per-process thread serial that starts from 32 random bits) in owner before it gives the lock
 * back, if its process is registered for the global membarrier. The owner then puts
 * (gets) without the lock when the message fits one record and there is room (data):
 *   store inside = 1; compiler barrier; load revoke (acquire); load owner;
 *   if revoke == 0 and owner is still its token: the operation, as under the lock;
 *   store inside = 0 (release).
 * Anything else (full, empty, a streamed message, an error) takes the slow path, the
 * lock. Every slow-path taker of the lock, right after taking it, settles the bias: if
 * owner is another thread it revokes it: store revoke = 1; membarrier (global,
 * expedited: a full barrier on every CPU running a thread of a registered process);
 * wait until inside == 0 (acquire), or the owner's process is gone (then it recovers
 * after it, as after a dead lock holder, and clears inside); owner = 0; thresh doubles;
 * revoke = 0 (release). A Dekker pair with the barrier on the revoker's side only: if
 * the owner's load of revoke came before the barrier hit its CPU, so did its store of
 * inside, which the revoker then sees; if after, it sees revoke == 1, or the later
 * revoke == 0 whose release carries owner == 0. So the owner and a lock holder are
 * never both inside, provided no other thread writes inside (next paragraph).
 * Everything about the bias except inside is written under the
 * lock, by one holder at a time; a holder that dies revoking leaves a state the next
 * holder (who takes the lock over) completes: it revokes again, with its own barrier.
 * Stale owners. A thread enters on its own earlier read of owner (put and get read it
 * before calling the fast path), so a thread whose bias is taken away just after that
 * read still stores inside = 1 and, finding owner changed, inside = 0. Were the bias
 * given to another thread meanwhile, those two stores would land on the new owner's
 * flag: lowered while the new owner is inside, its next revoker would find it down and
 * write beside it (two producers at one tail: a message lost, repeated or out of
 * order; two consumers on c_tail and head). That was issue 9's "fifth race". So a
 * revocation by another thread notes the owner it took the bias from as `stale`, and
 * no bias is given while a stale owner is noted: then no fast path relies on inside,
 * and a stale store is harmless. The note is cleared when the stale thread takes the
 * side's lock (bias_settle): it runs one operation at a time, so any entry it had
 * begun is over, and after the lock it reads owner as cleared or given anew. Or when
 * it can no longer run (stale_gone: its process gone, or its thread: tgkill(pid, tid,
 * 0) answers ESRCH), looked at by a would-be owner once per streak. The owner's own
 * drop in its slow path leaves nothing stale. The price: a side whose revoked owner
 * never operates on it again while its thread lives stays unbiased (the lock path).
 * The owner in its own slow path keeps its bias, unless a revocation is pending (a
 * revoker that timed out left revoke == 1): then it drops it. A revoker with a
 * deadline gives up (BR_ETIMEDOUT) if the owner stays inside past it (stopped); a
 * BR_NOWAIT one waits it out, as lk_take does. If the barrier itself fails in the
 * revoker's process (a filter forbids it; EINTR/ENOMEM are retried first) inside == 0
 * proves nothing: if the owner's process is gone (owner_gone) the revoker settles
 * without the barrier (recovering if inside is up); otherwise it leaves revoke = 1,
 * gives the lock back and waits, within its deadline, until owner no longer names
 * that owner: the owner's fast path sees revoke (no barrier is needed for that, only
 * for the other direction) and its slow path, under the lock, drops the bias (as a
 * revocation would: thresh doubles). A live owner that never operates again keeps
 * such a revoker out until its deadline.
 * Tokens. pid << 32 | a serial that starts from 32 random bits in every process (see
 * tok_next), so a process reusing a dead owner's pid doesn't get its token; a token
 * with our own pid outside the serials we handed out is a dead process's (owner_gone).
 * The pid and token cache lives in a MADV_WIPEONFORK page, so no child, however made,
 * runs on its parent's; without that page nothing is biased.
 * Recovery after a dead lock holder runs after the bias is settled (a holder that died
 * revoking may have left the owner inside). A taker that took
 * the lock over sets p_owed / c_owed first and clears it once the recovery ran, so a
 * taker that had to give the lock back before recovering (revocation pending, deadline)
 * leaves it to the next one (watch_producer also takes a free plock to pay it).
 *
 * Publication. A producer writes a record, then stores tail (release), then nput (the
 * message count, on LAST only). A consumer reads tail (acquire), the record, then stores
 * head (release) and nget. Both sides first note in their private line what they are
 * about to publish (p_commit_tail/p_commit_nput, c_commit_head/c_commit_nget), so that
 * a holder dying between the two stores can be completed by the recovery.
 *
 * Sleeping (rule 3 of core/lib.h, across processes). The consumer that holds glock is
 * the only one sleeping for data (the others sleep on glock); the producer that holds
 * plock the only one sleeping for room (a biased owner never sleeps in its fast path).
 * A sleeper reads the futex word (data_seq), stores its flag (data_wait = 1), fences
 * (seq_cst), runs the global membarrier, re-checks its condition, and only then
 * sleeps on the word. A waker changes the condition (stores tail), then a compiler
 * barrier only (a fence if its process isn't registered for the membarrier, for the
 * pipe, or once `heavy` is set), and if the flag is set exchanges it to 0 and, if it
 * got 1, bumps the word and wakes. Either the sleeper's re-check sees the new tail or
 * the waker sees the flag: if the waker's load of the flag ran before the barrier hit
 * its CPU, its store of tail (earlier in program order) is visible after the barrier;
 * if after, the load sees the flag. So a put costs a load of a read-mostly line; a
 * syscall only when someone sleeps, and the sleeper pays the barrier (~1 us). A
 * sleeper whose barrier fails sets `heavy`: wakers fence from then on, and one that
 * read heavy == 0 just before is caught by the slices below.
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
 *  - A biased owner that dies inside its fast path: its next revoker finds its process
 *    gone while inside == 1 and runs the same recovery as after a dead lock holder
 *    (the fast path publishes through p_commit_* / c_commit_* too; it never streams).
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
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MPR_MAGIC 0x5252504du /* "MPRR" */
#define MPR_VERSION 3u
#define LK_WAITERS 0x80000000u
#define SER_MASK 0xffffffu
#define ABORT_NONE 0xffffffffu
#define F_FIRST 1u
#define F_LAST 2u
#define NAP_HUP 1 /* nap(): the doorbell socket hung up */
#define ABORTED 2 /* wait_data(): the message being received was withdrawn */

/* One side's bias (see the design note): written by the side's lock holder (owner,
 * revoke, last, streak, thresh, owner_tid, stale, stale_tid) and by the biased owner
 * (inside). */
typedef struct bias {
    _Atomic uint32_t inside; /* the owner is in its fast path */
    _Atomic uint32_t revoke; /* a lock holder is taking the bias away */
    _Atomic uint64_t owner;  /* the owner's token (tok()); 0: no bias */
    uint64_t last;           /* token of the last lock holder */
    uint32_t streak;         /* its uncontended takes in a row */
    uint32_t thresh;         /* the streak that biases (0: BIAS_THRESH0) */
    int32_t owner_tid;       /* the owner's kernel thread id */
    int32_t stale_tid;       /* stale's thread id */
    uint64_t stale;          /* token of an owner another thread took the bias from, until
                                it has taken the lock since (or is gone): it may still be
                                about to raise and lower inside. 0: none. No bias while set */
} bias;

struct br__mpr {
    uint32_t magic, version;
    uint64_t cap, maxsize;
    uint32_t flags, pad0;
    /* producers' private lines (under plock, or the biased producer's) */
    _Alignas(64) _Atomic uint32_t plock;
    uint32_t p_serial;
    _Atomic uint32_t p_stream; /* 1 + serial of the message being streamed; 0: none */
    _Atomic uint32_t p_owed;   /* a taker took plock over and owes the recovery */
    bias pb;
    uint64_t p_head, p_nget; /* cached views of head and nget */
    uint64_t p_commit_tail, p_commit_nput;
    /* producers' published line */
    _Alignas(64) _Atomic uint64_t tail;
    _Atomic uint64_t nput;
    /* consumers' private lines (under glock, or the biased consumer's) */
    _Alignas(64) _Atomic uint32_t glock;
    _Atomic uint32_t c_owed; /* a taker took glock over and owes the recovery */
    bias cb;
    uint64_t c_tail; /* cached view of tail */
    uint64_t c_commit_head, c_commit_nget;
    /* consumers' published line */
    _Alignas(64) _Atomic uint64_t head;
    _Atomic uint64_t nget;
    /* read-mostly: sleeper flags, state */
    _Alignas(64) _Atomic uint32_t data_wait, room_wait, join_wait;
    _Atomic uint32_t state;
    _Atomic uint32_t abort_serial;
    _Atomic uint32_t heavy; /* a sleeper's membarrier failed: wakers fence */
    /* futex words and rarely written counters */
    _Alignas(64) _Atomic uint32_t data_seq, room_seq, join_seq;
    _Atomic uint64_t ndone, lost;
    _Atomic uint64_t late; /* data sleepers that found data after a whole slice */
    _Atomic uint32_t nbias, nrevoke; /* biases given, taken away (for tests) */
    _Atomic uint32_t nstale;          /* entries by a thread no longer the owner (tests) */
    _Atomic uint32_t bias_after;      /* tests: a fixed streak that biases, 0: adaptive */
    _Alignas(64) unsigned char data[];
};

/* --- this process's id and its threads' tokens ------------------------------------
 *
 * Cached in one page marked MADV_WIPEONFORK: the kernel hands every child a zeroed copy,
 * however it was created (fork() with or without the C library's atfork handlers,
 * _Fork(), clone(), syscall(SYS_fork)), so a child never runs on its parent's pid or
 * thread tokens: it finds pid 0 and recomputes. Where the page can't be had (a kernel
 * before 4.14) the pid is asked of the kernel at every use and no side is ever biased
 * (a child's token would otherwise be its parent's). */
typedef struct wiped {
    _Atomic int pid;      /* this process (0: not yet known in this process) */
    _Atomic int mb;       /* br__membarrier_global_init: 0 not yet, 1 ok, 2 refused */
    _Atomic uint64_t tok; /* the last token handed out (tok_next) */
    _Atomic uint32_t base;     /* the serial this process's tokens started from */
    _Atomic int base_pid;      /* base is this process's (stored after base) */
} wiped;
static wiped *_Atomic g_w;  /* the wiped page, or &g_w_plain */
static wiped g_w_plain;      /* without MADV_WIPEONFORK: pid and mb stay 0 */
static bool g_wiped;         /* g_w is the wiped page (biases allowed) */
static pthread_once_t g_w_once = PTHREAD_ONCE_INIT;

static void w_init(void) {
    long pg = sysconf(_SC_PAGESIZE);
    size_t n = pg > 0 ? (size_t)pg : 4096;
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
#ifdef MADV_WIPEONFORK
    if (p != MAP_FAILED && madvise(p, n, MADV_WIPEONFORK) == 0) {
        g_wiped = true;
        atomic_store_explicit(&g_w, (wiped *)p, memory_order_release);
        return;
    }
#endif
    if (p != MAP_FAILED)
        munmap(p, n);
    atomic_store_explicit(&g_w, &g_w_plain, memory_order_release);
}

static BR__NOINLINE int pid_slow(void) {
    pthread_once(&g_w_once, w_init);
    int p = (int)getpid();
    if (g_wiped)
        atomic_store_explicit(&atomic_load(&g_w)->pid, p, memory_order_relaxed);
    return p;
}

int br__mpr_pid(void) {
    wiped *w = atomic_load_explicit(&g_w, memory_order_acquire);
    if (BR__LIKELY(w != NULL)) {
        int p = atomic_load_explicit(&w->pid, memory_order_relaxed);
        if (BR__LIKELY(p != 0))
            return p;
    }
    return pid_slow();
}

/* A fresh token for a thread of process p: pid << 32 | a serial. The word holds the
 * last token handed out; in a process that hasn't handed one out yet (a fresh or
 * wiped word, or one inherited from a parent with another pid) the serial starts from
 * 32 random bits, so a process that reuses a dead process's pid doesn't hand out the
 * dead process's tokens again (1 in 2^32 per token, rather than certainty). */
/* 32 random bits: getrandom, or (it failing) the clock, the pid and an address mixed. */
static uint32_t random32(void) {
    uint32_t v;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v)
        return v;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)getpid() << 17 ^
                 (uint64_t)(uintptr_t)&v;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x;
}

static uint64_t tok_next(wiped *w, int p) {
    uint64_t v = atomic_load_explicit(&w->tok, memory_order_relaxed), nv;
    do {
        if ((uint32_t)(v >> 32) != (uint32_t)p)
            nv = (uint64_t)(uint32_t)p << 32 | random32();
        else
            nv = (v & ~(uint64_t)0xffffffffu) | (uint32_t)(v + 1);
    } while (!atomic_compare_exchange_weak_explicit(&w->tok, &v, nv, memory_order_relaxed,
                                                    memory_order_relaxed));
    if ((uint32_t)(v >> 32) != (uint32_t)p) {
        atomic_store_explicit(&w->base, (uint32_t)nv, memory_order_relaxed);
        atomic_store_explicit(&w->base_pid, p, memory_order_release);
    }
    return nv;
}

/* Whether the process of token o (not this thread's) is gone. A token that carries this
 * process's pid but isn't one this process handed out (its serial lies outside
 * [base, last]) belongs to a dead process whose pid this one reuses. Unsure (the base
 * not yet published): not gone, the caller looks again later. */
static bool owner_gone(uint64_t o) {
    int op = (int)(uint32_t)(o >> 32);
    int p = br__mpr_pid();
    if (op != p)
        return br__pid_gone(op);
    wiped *w = atomic_load_explicit(&g_w, memory_order_acquire);
    if (!g_wiped || atomic_load_explicit(&w->base_pid, memory_order_acquire) != p)
        return false;
    uint32_t base = atomic_load_explicit(&w->base, memory_order_relaxed);
    uint64_t last = atomic_load_explicit(&w->tok, memory_order_relaxed);
    if ((uint32_t)(last >> 32) != (uint32_t)p)
        return false;
    return (uint32_t)((uint32_t)o - base) > (uint32_t)((uint32_t)last - base);
}

/* This thread's view, refreshed when the process id changes (a child): its token
 * (tok_next), and whether this process is registered for br__membarrier_global (so
 * that its wakers may skip their fence and its threads may hold a bias). One
 * initial-exec TLS block: the fast paths read it once or twice. */
typedef struct me_t {
    int pid;
    int tid; /* the kernel's thread id (a bias owner's, for stale_gone) */
    bool light;
    uint64_t tok;
} me_t;
static BR__TLS me_t tl_me;

static BR__NOINLINE const me_t *me_refresh(void) {
    int p = br__mpr_pid();
    wiped *w = atomic_load_explicit(&g_w, memory_order_acquire);
    bool light = false;
    if (g_wiped) {
        int mb = atomic_load_explicit(&w->mb, memory_order_acquire);
        if (mb == 0) {
            mb = br__membarrier_global_init() ? 1 : 2;
            atomic_store_explicit(&w->mb, mb, memory_order_release);
        }
        light = mb == 1;
    }
    tl_me.tok = tok_next(w, p);
    tl_me.tid = (int)syscall(SYS_gettid);
    tl_me.light = light;
    tl_me.pid = p;
    return &tl_me;
}

static inline const me_t *me(void) {
    wiped *w = atomic_load_explicit(&g_w, memory_order_acquire);
    if (BR__LIKELY(w != NULL)) {
        int p = atomic_load_explicit(&w->pid, memory_order_relaxed);
        if (BR__LIKELY(p != 0 && tl_me.pid == p))
            return &tl_me;
    }
    return me_refresh();
}

static inline uint64_t tok(void) { return me()->tok; }
static inline bool mb_light(void) { return me()->light; }

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
    (void)br__mpr_pid();
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

/* The waker's half of the sleeping protocol (see the design note): a queue's waker
 * in a registered process needs only a compiler barrier between its store of the
 * position and its load of the flag, the sleeper's membarrier doing the rest. */
static void bell(br__mpr_side *s, _Atomic uint32_t *flag, _Atomic uint32_t *seq) {
    if (BR__LIKELY(s->fd < 0 && mb_light() &&
                   !atomic_load_explicit(&s->r->heavy, memory_order_relaxed)))
        atomic_signal_fence(memory_order_seq_cst);
    else
        atomic_thread_fence(memory_order_seq_cst);
    if (BR__LIKELY(atomic_load_explicit(flag, memory_order_relaxed) == 0))
        return;
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

/* Before a sleeper raises its flag it polls its condition SPINS times (a pause
 * each) and then yields YIELDS times: a peer that is running refills or drains the
 * ring within that, and neither side pays a syscall. */
enum { SPINS = 256, YIELDS = 2 };

/* The sleeper's half, after it raised its flag and fenced: a queue's sleeper makes
 * every waker's position store visible (or its flag load late enough to see the flag).
 * If the barrier fails, wakers fence from now on (those that skipped it meanwhile
 * are caught by the sleeper's slices). */
static void sleeper_barrier(br__mpr_side *s) {
    if (s->fd < 0 && br__membarrier_global() != 0)
        atomic_store(&s->r->heavy, 1);
}

static int64_t slice_end(int64_t deadline) {
    int64_t t = br_now() + BR__MPR_SLICE_NS;
    return deadline != BR_FOREVER && deadline < t ? deadline : t;
}

/* --- the locks ---------------------------------------------------------------- */

/* Takes *w (plock or glock). `busy`: the holder's sleeping flag (room_wait for
 * plock, data_wait for glock), which lets a BR_NOWAIT taker answer at once. *took_over:
 * the holder was gone and we took the lock from it (the caller recovers). */
static int lk_take(_Atomic uint32_t *w, int64_t deadline, _Atomic uint32_t *busy,
                   bool *took_over) {
    uint32_t me = (uint32_t)br__mpr_pid();
    uint32_t v = 0;
    *took_over = false;
    if (BR__LIKELY(atomic_compare_exchange_strong_explicit(w, &v, me, memory_order_acquire,
                                                           memory_order_relaxed)))
        return 0;
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

static void lk_give(_Atomic uint32_t *w) {
    uint32_t me = (uint32_t)br__mpr_pid();
    uint32_t v = me;
    if (BR__LIKELY(atomic_compare_exchange_strong_explicit(w, &v, 0, memory_order_release,
                                                           memory_order_relaxed)))
        return;
    atomic_store_explicit(w, 0, memory_order_release);
    br__futex_wake(w, 1, true);
}

/* --- records ------------------------------------------------------------------ */

static inline size_t r8(size_t n) { return (n + 7) & ~(size_t)7; }

static inline uint64_t hdr_make(size_t len, uint32_t flags, uint32_t serial) {
    return (uint64_t)(uint32_t)len | (uint64_t)flags << 32 | (uint64_t)(serial & SER_MASK) << 40;
}

static inline uint64_t *word_at(br__mpr *r, uint64_t pos) {
    return (uint64_t *)(void *)(r->data + (pos & (r->cap - 1)));
}

static void ring_write(br__mpr *r, uint64_t pos, const void *src, size_t n) {
    if (n == 0)
        return;
    size_t off = (size_t)(pos & (r->cap - 1));
    size_t first = (size_t)r->cap - off < n ? (size_t)r->cap - off : n;
    memcpy(r->data + off, src, first);
    if (n > first)
        memcpy(r->data, (const unsigned char *)src + first, n - first);
}

static void ring_read(br__mpr *r, uint64_t pos, void *dst, size_t n) {
    if (n == 0)
        return;
    size_t off = (size_t)(pos & (r->cap - 1));
    size_t first = (size_t)r->cap - off < n ? (size_t)r->cap - off : n;
    memcpy(dst, r->data + off, first);
    if (n > first)
        memcpy((unsigned char *)dst + first, r->data, n - first);
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

/* --- biases (see the design note) ------------------------------------------------ */

enum { BIAS_THRESH0 = 16, BIAS_THRESH_MAX = 1 << 16 };
enum { OWNER_BUSY = 1 }; /* bias_revoke without the barrier: the owner lives, it drops the bias */

/* Holding the side's lock, its owner out of the fast path: ends the bias (the next
 * one takes twice the streak, up to BIAS_THRESH_MAX). `by_other`: the owner isn't this
 * thread, so it may have read owner just before and be about to raise inside (the
 * design note, "Stale owners"): it becomes stale, and no bias is given until it has
 * taken the lock since or is gone. */
static void bias_clear(br__mpr_side *s, bias *b, bool by_other) {
    if (by_other) {
        b->stale = atomic_load_explicit(&b->owner, memory_order_relaxed);
        b->stale_tid = b->owner_tid;
    }
    uint32_t t = b->thresh ? b->thresh : BIAS_THRESH0;
    b->thresh = t < BIAS_THRESH_MAX ? t * 2 : t;
    b->streak = 0;
    b->last = 0;
    atomic_store_explicit(&b->owner, 0, memory_order_relaxed);
    atomic_store_explicit(&b->revoke, 0, memory_order_release);
    atomic_fetch_add_explicit(&s->r->nrevoke, 1, memory_order_relaxed);
}

/* Holding the side's lock: takes bias b away from its owner o (not this thread).
 * Raises revoke, makes it visible to the owner's next look (or the owner's inside flag
 * visible to us), and waits until the owner is out of its fast path or dead (then
 * recovers after it). 0, BR_ETIMEDOUT (the revocation stays pending: a later holder
 * or the owner finishes it), OWNER_BUSY (no barrier in this process and the owner
 * lives: the revocation stays pending, the caller lets go of the lock and waits for
 * the owner to drop the bias). */
static int bias_revoke(br__mpr_side *s, bias *b, uint64_t o, bool producer,
                       int64_t deadline) {
    atomic_store_explicit(&b->revoke, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (br__membarrier_global() != 0) {
        /* No barrier here: inside == 0 proves nothing, but a gone process writes no
         * more (settle without the barrier); a live owner must drop the bias itself,
         * in its own slow path (its fast path sees revoke == 1 and leaves). */
        if (!owner_gone(o))
            return OWNER_BUSY;
        if (atomic_load_explicit(&b->inside, memory_order_acquire)) {
            if (producer)
                recover_producer(s);
            else
                recover_consumer(s->r);
            atomic_store_explicit(&b->inside, 0, memory_order_relaxed);
        }
        goto settled;
    }
    bool nowait = br__deadline_passed(deadline);
    for (unsigned i = 0;; i++) {
        if (atomic_load_explicit(&b->inside, memory_order_acquire) == 0)
            break;
        if (i % 64 == 63 && owner_gone(o)) {
            /* It died in its fast path: complete what it published. */
            if (producer)
                recover_producer(s);
            else
                recover_consumer(s->r);
            atomic_store_explicit(&b->inside, 0, memory_order_relaxed);
            break;
        }
        if (!nowait && br__deadline_passed(deadline))
            return BR_ETIMEDOUT;
        if (i < 64)
            br__cpu_relax();
        else
            sched_yield();
    }
settled:
    bias_clear(s, b, true);
    return 0;
}

/* Holding the side's lock (just taken): makes sure no other thread is in the side's
 * fast path, and honours a pending revocation of this thread's own bias. */
static int bias_settle(br__mpr_side *s, bias *b, bool producer, int64_t deadline) {
    /* Acquire the last owner's leaving directly: the holder that revoked it may have
     * been another process, which synchronized with it for us (so this is for the
     * thread sanitizer, which sees one process only, and for the C model). */
    (void)atomic_load_explicit(&b->inside, memory_order_acquire);
    /* A stale owner that takes the lock has finished any entry it had begun (this
     * thread runs one operation at a time): the side may be biased again. */
    if (BR__UNLIKELY(b->stale != 0) && b->stale == tok())
        b->stale = 0;
    uint64_t o = atomic_load_explicit(&b->owner, memory_order_relaxed);
    if (BR__LIKELY(o == 0)) {
        /* a revoker died between its last two stores */
        if (BR__UNLIKELY(atomic_load_explicit(&b->revoke, memory_order_relaxed)))
            atomic_store_explicit(&b->revoke, 0, memory_order_relaxed);
        return 0;
    }
    if (o == tok()) {
        if (atomic_load_explicit(&b->revoke, memory_order_relaxed)) {
            bias_clear(s, b, false); /* dropped as a revocation would have */
        }
        return 0;
    }
    return bias_revoke(s, b, o, producer, deadline);
}

/* Without the barrier, waits (not holding the lock) until bias b no longer names o (its
 * owner dropped it), o's process is gone, or the deadline passes (BR_ETIMEDOUT). */
static int owner_wait(bias *b, uint64_t o, int64_t deadline) {
    for (unsigned i = 0;; i++) {
        if (atomic_load_explicit(&b->owner, memory_order_relaxed) != o)
            return 0;
        if (i % 64 == 63 && owner_gone(o))
            return 0;
        if (br__deadline_passed(deadline))
            return BR_ETIMEDOUT;
        if (i < 64) {
            sched_yield();
        } else {
            struct timespec ts = {0, 100 * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

/* Whether the stale owner of b can no longer touch inside: its process is gone, or its
 * thread is (a thread id reused meanwhile by another thread of that process reads as
 * alive: the side stays unbiased a while longer). */
static bool stale_gone(const bias *b) {
    uint64_t o = b->stale;
    if (owner_gone(o))
        return true;
    int pid = (int)(uint32_t)(o >> 32);
    return syscall(SYS_tgkill, pid, b->stale_tid, 0) != 0 && errno == ESRCH;
}

/* Runs the recovery a taker owes (flag *owed, set when a lock was taken over from a dead
 * holder and cleared once the recovery ran: a taker that had to give the lock back
 * before recovering leaves it to the next one). Holding the side's lock, bias settled. */
static void pay_owed(br__mpr_side *s, bool producer) {
    br__mpr *r = s->r;
    _Atomic uint32_t *owed = producer ? &r->p_owed : &r->c_owed;
    if (BR__LIKELY(atomic_load_explicit(owed, memory_order_relaxed) == 0))
        return;
    if (producer)
        recover_producer(s);
    else
        recover_consumer(r);
    atomic_store_explicit(owed, 0, memory_order_relaxed);
}

/* Takes the side's lock (plock or glock) for a slow-path operation: the lock, then
 * the bias settled, then the recovery owed after a dead holder (the bias first: a
 * holder that died revoking may have left the owner inside). */
static int side_take(br__mpr_side *s, bool producer, int64_t deadline) {
    br__mpr *r = s->r;
    _Atomic uint32_t *w = producer ? &r->plock : &r->glock;
    bias *b = producer ? &r->pb : &r->cb;
    for (;;) {
        bool took_over;
        int rc = lk_take(w, deadline, producer ? &r->room_wait : &r->data_wait, &took_over);
        if (rc)
            return rc;
        if (BR__UNLIKELY(took_over))
            atomic_store_explicit(producer ? &r->p_owed : &r->c_owed, 1, memory_order_relaxed);
        uint64_t o = atomic_load_explicit(&b->owner, memory_order_relaxed);
        rc = bias_settle(s, b, producer, deadline);
        if (BR__UNLIKELY(rc)) {
            lk_give(w);
            if (rc != OWNER_BUSY)
                return rc;
            if (br__deadline_passed(deadline) || (rc = owner_wait(b, o, deadline)) != 0)
                return BR_ETIMEDOUT;
            continue;
        }
        pay_owed(s, producer);
        return 0;
    }
}

/* Gives the side's lock back after a slow-path operation that succeeded; a thread
 * that took it uncontended often enough in a row first biases the side to itself. */
static void side_give(br__mpr_side *s, bool producer) {
    br__mpr *r = s->r;
    _Atomic uint32_t *w = producer ? &r->plock : &r->glock;
    bias *b = producer ? &r->pb : &r->cb;
    uint64_t me = tok();
    if (b->last == me && !(atomic_load_explicit(w, memory_order_relaxed) & LK_WAITERS)) {
        uint32_t t = atomic_load_explicit(&r->bias_after, memory_order_relaxed);
        if (++b->streak >= (t ? t : b->thresh ? b->thresh : BIAS_THRESH0) &&
            atomic_load_explicit(&b->owner, memory_order_relaxed) == 0 && mb_light()) {
            if (BR__UNLIKELY(b->stale != 0) && stale_gone(b))
                b->stale = 0;
            if (BR__LIKELY(b->stale == 0)) {
                atomic_store_explicit(&b->revoke, 0, memory_order_relaxed);
                b->owner_tid = tl_me.tid; /* current: tok() above refreshed it */
                /* published by lk_give's release */
                atomic_store_explicit(&b->owner, me, memory_order_relaxed);
                atomic_fetch_add_explicit(&r->nbias, 1, memory_order_relaxed);
            } else {
                b->streak = 0; /* look again after as many takes */
            }
        }
    } else {
        b->last = me;
        b->streak = 1;
    }
    lk_give(w);
}

/* The biased owner's entry: 1 if it may go on (inside raised), else 0 (it takes the
 * slow path). The store of inside and the load of revoke form the fast side of a
 * Dekker pair whose other side is bias_revoke's store, membarrier and load. A thread
 * whose bias was taken since it read owner stores to inside too: the design note's
 * "Stale owners" says why that is harmless. */
static inline bool bias_enter(br__mpr *r, bias *b, uint64_t me) {
    atomic_store_explicit(&b->inside, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    if (BR__LIKELY(atomic_load_explicit(&b->revoke, memory_order_acquire) == 0 &&
                   atomic_load_explicit(&b->owner, memory_order_relaxed) == me))
        return true;
    atomic_store_explicit(&b->inside, 0, memory_order_release);
    if (atomic_load_explicit(&b->owner, memory_order_relaxed) != me)
        atomic_fetch_add_explicit(&r->nstale, 1, memory_order_relaxed);
    return false;
}

static inline void bias_leave(bias *b) {
    atomic_store_explicit(&b->inside, 0, memory_order_release);
}

/* --- producing ------------------------------------------------------------------ */

/* Is there room (holding plock) for `need` bytes at tail and, if `count`, for one more
 * message under maxsize? 0 yes; 1 not yet; BR_ESHUTDOWN, BR_EPIPE. */
static int room_state(br__mpr_side *s, uint64_t tail, size_t need, bool count) {
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
static int wait_room(br__mpr_side *s, uint64_t tail, size_t need, bool count,
                     int64_t deadline) {
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
        sleeper_barrier(s);
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

static void publish_tail(br__mpr_side *s, uint64_t tail, uint64_t nput) {
    br__mpr *r = s->r;
    r->p_commit_tail = tail;
    r->p_commit_nput = nput;
    atomic_store_explicit(&r->tail, tail, memory_order_release);
    atomic_store_explicit(&r->nput, nput, memory_order_release);
    bell(s, &r->data_wait, &r->data_seq);
}

/* The biased producer's put of a message that fits in one record and finds room at
 * once: 0 or 1 (take the slow path). */
static int put_fast(br__mpr_side *s, bias *b, uint64_t me, const void *p, size_t len) {
    br__mpr *r = s->r;
    size_t rec = 8 + r8(len);
    if (BR__UNLIKELY(len > r->cap / 2 || rec > r->cap / 2) || !bias_enter(r, b, me))
        return 1;
    int rc = 1;
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (BR__LIKELY(room_state(s, tail, rec, true) == 0)) {
        uint64_t nput = atomic_load_explicit(&r->nput, memory_order_relaxed);
        uint32_t ser = (r->p_serial + 1) & SER_MASK;
        r->p_serial = ser;
        _Atomic uint32_t *ab = &r->abort_serial;
        if (BR__UNLIKELY(atomic_load_explicit(ab, memory_order_relaxed) == ser))
            atomic_store_explicit(ab, ABORT_NONE, memory_order_relaxed);
        *word_at(r, tail) = hdr_make(len, F_FIRST | F_LAST, ser);
        ring_write(r, tail + 8, p, len);
        publish_tail(s, tail + rec, nput + 1);
        rc = 0;
    }
    bias_leave(b);
    return rc;
}

int br__mpr_put(br__mpr_side *s, const void *p, size_t len, int64_t deadline) {
    br__mpr *r = s->r;
    uint32_t st = atomic_load_explicit(&r->state, memory_order_relaxed);
    if (BR__UNLIKELY(st & (BR__MPR_SHUTDOWN | BR__MPR_SHUTDOWN_NOW)))
        return BR_ESHUTDOWN;
    if (BR__UNLIKELY((st & BR__MPR_RX_CLOSED) || s->hup))
        return BR_EPIPE;
    uint64_t o = atomic_load_explicit(&r->pb.owner, memory_order_relaxed);
    if (o != 0 && o == tok() && put_fast(s, &r->pb, o, p, len) == 0)
        return BR__UNLIKELY(s->hup) ? BR_EPIPE : 0;
    int rc = side_take(s, true, deadline);
    if (rc)
        return rc;
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
    side_give(s, true);
    if (rc == 0 && BR__UNLIKELY(s->hup))
        rc = BR_EPIPE; /* the doorbell found the receiver gone */
    return rc;
}

/* --- consuming ------------------------------------------------------------------ */

/* Is there data at head? 0 yes; otherwise the reason not to wait (BR_ESHUTDOWN, BR_EOF,
 * ABORTED) or 1 (wait). `mid`: 1 + serial of the message being received, or 0. */
static int data_state(br__mpr_side *s, uint64_t head, uint32_t mid) {
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
 * plock over and withdraw the message (the caller then sees ABORTED). Also takes a
 * free plock when a recovery is still owed (a taker that had to give it back first). */
static void watch_producer(br__mpr_side *s) {
    br__mpr *r = s->r;
    uint32_t me = (uint32_t)br__mpr_pid();
    uint32_t v = atomic_load_explicit(&r->plock, memory_order_relaxed);
    uint32_t owner = v & ~LK_WAITERS;
    if (v == 0) {
        if (!atomic_load_explicit(&r->p_owed, memory_order_relaxed) ||
            !atomic_compare_exchange_strong_explicit(&r->plock, &v, me, memory_order_acquire,
                                                     memory_order_relaxed))
            return;
    } else {
        if (owner == me || !br__pid_gone((int)owner) ||
            !atomic_compare_exchange_strong_explicit(&r->plock, &v, me | LK_WAITERS,
                                                     memory_order_acquire,
                                                     memory_order_relaxed))
            return;
        atomic_store_explicit(&r->p_owed, 1, memory_order_relaxed);
    }
    /* A holder that died revoking may have left the biased producer inside. */
    if (bias_settle(s, &r->pb, true, BR_FOREVER) == 0)
        pay_owed(s, true);
    lk_give(&r->plock);
}

/* Waits (holding glock) for data at head: 0, or BR_ETIMEDOUT / BR_ESHUTDOWN / BR_EOF /
 * ABORTED. Mid-message the deadline doesn't apply (see br_mp_queue_get). */
static int wait_data(br__mpr_side *s, uint64_t head, uint32_t mid, int64_t deadline) {
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
        sleeper_barrier(s);
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
            if (!mid && s->fd < 0 && data_state(s, head, mid) == 0)
                atomic_fetch_add_explicit(&r->late, 1, memory_order_relaxed);
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

static void publish_head(br__mpr_side *s, uint64_t head, uint64_t nget) {
    br__mpr *r = s->r;
    r->c_commit_head = head;
    r->c_commit_nget = nget;
    atomic_store_explicit(&r->head, head, memory_order_release);
    atomic_store_explicit(&r->nget, nget, memory_order_release);
    bell(s, &r->room_wait, &r->room_seq);
}

/* The biased consumer's get of a whole one-record message found at head: 0 or 1
 * (take the slow path: empty, a streamed message, too small a buffer, no memory). */
static int get_fast(br__mpr_side *s, bias *b, uint64_t me, void *buf, size_t cap,
                    void **out, size_t *lenp) {
    br__mpr *r = s->r;
    if (!bias_enter(r, b, me))
        return 1;
    int rc = 1;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (r->c_tail == head)
        r->c_tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (BR__LIKELY(r->c_tail != head)) {
        uint64_t h = *word_at(r, head);
        size_t flen = (uint32_t)h;
        uint32_t fl = (uint32_t)(h >> 32) & 0xff;
        bool whole = (fl & (F_FIRST | F_LAST)) == (F_FIRST | F_LAST);
        if (BR__LIKELY(whole) && (out || flen <= cap)) {
            void *dst = buf;
            if (out)
                dst = flen ? br__malloc(flen) : NULL;
            if (!out || !flen || dst) {
                if (out)
                    *out = dst;
                ring_read(r, head + 8, dst, flen);
                *lenp = flen;
                uint64_t nget = atomic_load_explicit(&r->nget, memory_order_relaxed);
                publish_head(s, head + 8 + r8(flen), nget + 1);
                rc = 0;
            }
        }
    }
    bias_leave(b);
    return rc;
}

int br__mpr_get(br__mpr_side *s, void *buf, size_t cap, void **out, size_t *lenp,
                int64_t deadline) {
    br__mpr *r = s->r;
    uint64_t o = atomic_load_explicit(&r->cb.owner, memory_order_relaxed);
    if (o != 0 && o == tok() && get_fast(s, &r->cb, o, buf, cap, out, lenp) == 0)
        return 0;
    int rc = side_take(s, false, deadline);
    if (rc)
        return rc;
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
    br__free(msg);
    side_give(s, false);
    return rc;
}

int br__mpr_poll(br__mpr_side *s, int64_t deadline) {
    br__mpr *r = s->r;
    int rc = side_take(s, false, deadline);
    if (rc)
        return rc;
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
    /* plock first: no producer is then mid-message (it withdraws on the shutdown). */
    if (side_take(s, true, BR_FOREVER) != 0)
        return;
    if (side_take(s, false, BR_FOREVER) != 0) {
        lk_give(&r->plock);
        return;
    }
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

void br__mpr_debug_bias_after(br__mpr *r, uint32_t streak) {
    atomic_store(&r->bias_after, streak);
}

void br__mpr_debug_get(br__mpr *r, br__mpr_debug *d) {
    d->plock = atomic_load(&r->plock) & ~LK_WAITERS;
    d->glock = atomic_load(&r->glock) & ~LK_WAITERS;
    d->data_wait = atomic_load(&r->data_wait);
    d->room_wait = atomic_load(&r->room_wait);
    d->p_stream = atomic_load(&r->p_stream);
    d->tail = atomic_load(&r->tail);
    d->head = atomic_load(&r->head);
    d->p_bias = (uint32_t)(atomic_load(&r->pb.owner) >> 32);
    d->g_bias = (uint32_t)(atomic_load(&r->cb.owner) >> 32);
    d->p_inside = atomic_load(&r->pb.inside);
    d->g_inside = atomic_load(&r->cb.inside);
    d->late = atomic_load(&r->late);
    d->nbias = atomic_load(&r->nbias);
    d->nrevoke = atomic_load(&r->nrevoke);
    d->nstale = atomic_load(&r->nstale);
}
