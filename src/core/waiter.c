/* The waiter abstraction's shared parts: the internal lock's slow paths, the thread
 * parker, wait-queue helpers and the per-thread context. The design notes are in
 * core/lib.h. */
#include "core/lib.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>


BR__TLS br__tls br__tls_v;

/* --- br__ilock -------------------------------------------------------------------- */

void br__ilock_lock_slow(br__ilock *l) {
    /* Spin briefly, a few cache-line round trips (core/calib.c), unless spinning is off
     * (one CPU): the holder only links or unlinks a waiter. In time, not iterations: a
     * relax is ~3 ns on some CPUs and ~35 ns on others. Peeked, never measured here:
     * fork's handlers take ilocks, and measuring starts a thread. */
    int64_t until = br__calib_peek(BR__CALIB_SPIN) > 0 ? 0 : -1;
    for (unsigned i = 1; until >= 0; i++) {
        br__cpu_relax();
        uint32_t z = 0;
        if (atomic_load_explicit(&l->word, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->word, &z, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
        if ((i & 7) == 0) {
            int64_t now = br_now();
            if (until == 0)
                until = now + 4 * br__calib_peek(BR__CALIB_RTT);
            else if (now >= until)
                break;
        }
    }
    /* Mark contended (2) and sleep. Whoever takes the lock from the sleeping state
     * keeps it marked 2, which may cost one needless wake; never a lost one. */
    while (atomic_exchange_explicit(&l->word, 2, memory_order_acquire) != 0)
        br__futex_wait(&l->word, 2, BR_FOREVER, false);
}

void br__ilock_unlock_slow(br__ilock *l) { br__futex_wake(&l->word, 1, false); }

/* --- the thread parker ----------------------------------------------------------- */

static int thread_sleep(br__waiter *w, int64_t deadline);

/* The thread parker spins for the thread's adaptive budget (br__spin_budget, core/lib.h:
 * W4's round trip under one busy process was 30-35 us with a wake's time of spin every
 * time, 6 us adaptive, on an AMD EPYC 2-vCPU guest). It doesn't yield while it spins:
 * on that guest a sched_yield costs more than the round trip it would wait for (a
 * yield every 32 relaxes in the future's spin made the unloaded W4 round trip 4.5 us
 * instead of 0.95). After a spin that failed it yields a few times before the sleep
 * (br__spin_yield, core/lib.h; session 21, branch s21-yield-wip, not merged: on that
 * guest a handover between two threads on one CPU costs two context switches either
 * way, ~5 us, and the yields saved ~8% of it, while a yield that hands the CPU to a
 * busy process costs a scheduler slice, so a guard was needed). */
static int thread_park(br__waiter *w, int64_t deadline) {
    /* Not br__may_spin(): this is the thread parker, whatever the context runs now. */
    if (br__calib_spin_ns() > 0 && deadline != BR_NOWAIT &&
        !(w->flags & BR__WAITER_NOSPIN)) {
        br__spin sp;
        br__spin_start(&sp, deadline);
        for (unsigned i = 1;; i++) {
            if (atomic_load_explicit(&w->signalled, memory_order_acquire) == 1) {
                br__spin_done(&sp, true);
                return 0;
            }
            br__cpu_relax();
            if (br__spin_over(i, sp.until)) {
                br__spin_done(&sp, false);
                break;
            }
        }
        int64_t yu = 0; /* then a few yields (core/lib.h, br__spin_yield) */
        for (unsigned y = 0; br__spin_yield(y, &yu, deadline); y++)
            if (atomic_load_explicit(&w->signalled, memory_order_acquire) == 1)
                return 0;
    }
    return thread_sleep(w, deadline);
}

/* The sleeping half of the thread parker. */
static int thread_sleep(br__waiter *w, int64_t deadline) {
    for (;;) {
        uint32_t z = 0;
        /* 0 -> 2 announces the sleep, so the waker knows to issue a futex wake. */
        if (!atomic_compare_exchange_strong_explicit(&w->signalled, &z, 2,
                                                     memory_order_acq_rel,
                                                     memory_order_acquire) &&
            z == 1)
            return 0;
        int rc = br__futex_wait(&w->signalled, 2, deadline, false);
        if (atomic_load_explicit(&w->signalled, memory_order_acquire) == 1)
            return 0;
        if (rc == BR_ETIMEDOUT) {
            /* Back to 0 unless a waker got in between: then it's a wake after all. */
            uint32_t two = 2;
            if (atomic_compare_exchange_strong_explicit(&w->signalled, &two, 0,
                                                        memory_order_acq_rel,
                                                        memory_order_acquire))
                return BR_ETIMEDOUT;
            return 0;
        }
    }
}

static void thread_unpark(_Atomic uint32_t *word, void *ctx, uint32_t old) {
    (void)ctx;
    if (old == 2)
        br__futex_wake(word, 1, false);
}

/* Threads can't be cancelled: their parks end only signalled or timed out. */
const br__parker br__thread_parker = {thread_park, thread_unpark, NULL};

/* --- waiters and wait-queues -------------------------------------------------------- */

void br__waiter_init_at(br__waiter *w, const char *file, const char *func) {
    if (BR__UNLIKELY(br__on_shared_stack(w))) {
        /* A park site that didn't declare its waiter with BR__PARKED (lib.h): its
         * frame will be copied out while a waker writes to it. */
        fprintf(stderr, "braid: internal: a waiter on a shared stack (%s, %s)\n", file, func);
        abort();
    }
    w->site_file = file;
    w->site_func = func;
    w->next = w->prev = NULL;
    atomic_init(&w->signalled, 0);
    w->linked = 0;
    w->flags = 0;
    w->data = 0;
    w->data2 = 0;
    br__tls *t = br__tls_now();
    const br__parker *p = t->parker;
    w->parker = p ? p : &br__thread_parker;
    w->ctx = t->pctx;
}

void br__waiter_repost_cancel(br__waiter *w) {
    if (w->parker->cancel != NULL)
        w->parker->cancel(w->ctx);
}

void br__waiter_park_until_signalled(br__waiter *w) {
    uint32_t flags = w->flags;
    w->flags |= BR__WAITER_NOCANCEL;
    while (br__waiter_park(w, BR_FOREVER) != 0)
        ;
    w->flags = flags;
}

int br__waiter_park_or_leave_in(br__waiter *w, br__ilock *lk, int64_t deadline,
                                void (*unlink)(br__waiter *w, void *arg, int why),
                                void *arg) {
    int why = br__waiter_park(w, deadline);
    if (why == 0)
        return 0;
    br__ilock_lock(lk);
    if (w->linked) {
        unlink(w, arg, why);
        br__ilock_unlock(lk);
        return why; /* BR_ETIMEDOUT, or BR_ECANCELED: the cancel is reported */
    }
    br__ilock_unlock(lk);
    /* Popped by a waker that hasn't signalled yet (or just did): wait for it, so it
     * never writes into a frame we have left. It signals within a few instructions.
     * The wake is ours; a cancel it overtook stays pending (rule 2). */
    br__waiter_park_until_signalled(w);
    if (why == BR_ECANCELED)
        br__waiter_repost_cancel(w);
    return 0;
}

struct wq_unlink_ctx {
    br__wq *q;
    void (*left)(br__wq *q, void *arg, int why);
    void *arg;
};

static void wq_unlink(br__waiter *w, void *arg, int why) {
    struct wq_unlink_ctx *c = arg;
    br__wq_remove(c->q, w);
    if (c->left)
        c->left(c->q, c->arg, why);
}

int br__waiter_park_or_leave(br__waiter *w, br__wq *q, int64_t deadline,
                             void (*left)(br__wq *q, void *arg, int why), void *arg) {
    struct wq_unlink_ctx c = {q, left, arg};
    return br__waiter_park_or_leave_in(w, &q->lock, deadline, wq_unlink, &c);
}

br__waiter *br__wq_pop_all(br__wq *q, uintptr_t data) {
    br__waiter *chain = NULL, **tail = &chain, *w;
    while ((w = br__wq_pop(q)) != NULL) {
        w->data = data;
        *tail = w;
        tail = &w->next;
    }
    return chain;
}

int br__wq_wake(br__wq *q, int n, uintptr_t data) {
    br__waiter *chain = NULL, **tail = &chain;
    int woken = 0;
    br__ilock_lock(&q->lock);
    while ((n < 0 || woken < n) && q->head) {
        br__waiter *w = br__wq_pop(q);
        w->data = data;
        *tail = w;
        tail = &w->next;
        woken++;
    }
    br__ilock_unlock(&q->lock);
    br__wake_chain(chain);
    return woken;
}

/* --- the current context -------------------------------------------------------------- */

/* Threads' identities: even, from 2 up (lib.h, "the current execution context"). */
static _Atomic uint64_t thread_ids;

BR__NOINLINE uintptr_t br__self_slow(br__tls *t) {
    if (t->self == 0)
        t->self = (uintptr_t)(atomic_fetch_add_explicit(&thread_ids, 1, memory_order_relaxed) + 1)
                  << 1;
    t->owner = t->self;
    return t->self;
}

void br__set_context(uintptr_t owner, const br__parker *parker, void *pctx) {
    br__tls *t = br__tls_now();
    t->owner = owner ? owner : t->self;
    t->parker = parker;
    t->pctx = pctx;
    t->park_lo = t->park_hi = NULL;
    t->park_room = NULL;
    t->park_room_busy = NULL;
}

void br__set_context_stack(const void *lo, const void *hi) {
    br__tls *t = br__tls_now();
    t->park_lo = lo;
    t->park_hi = hi;
}

void br__set_context_room(void *room, bool *busy) {
    br__tls *t = br__tls_now();
    t->park_room = room;
    t->park_room_busy = busy;
}

/* --- park memory (lib.h) ---------------------------------------------------------------- */

#if defined(BRAID_ASAN) || defined(__SANITIZE_ADDRESS__)
#  include <sanitizer/asan_interface.h>
/* A free block's first word is its slab's free-list link (core/slab.c); the rest is
 * poisoned while it is free, so a waker writing into a waiter given back (its `prev`,
 * `signalled`...) is reported. */
#  define PARK_FREED(p) \
    ASAN_POISON_MEMORY_REGION((char *)(p) + sizeof(void *), BR__PARK_BLOCK - sizeof(void *))
#  define PARK_TAKEN(p) ASAN_UNPOISON_MEMORY_REGION((p), BR__PARK_BLOCK)
#else
#  define PARK_FREED(p) ((void)(p))
#  define PARK_TAKEN(p) ((void)(p))
#endif

static pthread_key_t park_key;
static bool park_key_ok; /* set once, under park_once */
static pthread_once_t park_once = PTHREAD_ONCE_INIT;

/* At the thread's end: its park slabs go, but those with a block in use (lib.h). */
static void park_thread_gone(void *arg) {
    br__tls *t = arg;
    (void)br__slab_fini_unused(&t->park_blocks);
    t->park_key_set = false; /* a park after this (another key's destructor) arranges
                              * its release again */
}

/* Without a key (the process has used up PTHREAD_KEYS_MAX) threads' park slabs stay
 * mapped when they end: memory kept, nothing broken. */
static void park_key_make(void) { park_key_ok = pthread_key_create(&park_key, park_thread_gone) == 0; }

void *br__park_heap(size_t size) {
    (void)size; /* <= BR__PARK_BLOCK: BR__PARKED_IN checks it at compile time */
    br__tls *t = br__tls_now();
    if (t->park_room_busy != NULL && !*t->park_room_busy) {
        *t->park_room_busy = true;
        return t->park_room;
    }
    if (BR__UNLIKELY(!t->park_key_set)) {
        pthread_once(&park_once, park_key_make);
        if (park_key_ok)
            (void)pthread_setspecific(park_key, t);
        t->park_key_set = true;
    }
    void *p = br__slab_get(&t->park_blocks, BR__PARK_BLOCK);
    if (p == NULL) {
        fputs("braid: out of memory for a shared-stack coroutine's wait\n", stderr);
        abort();
    }
    PARK_TAKEN(p);
    return p;
}

void br__park_put(void *p) {
    br__tls *t = br__tls_now();
    if (p == t->park_room) {
        *t->park_room_busy = false;
        return;
    }
    /* Poisoned before the put: the put may unmap the block's slab (its last block, not
     * the one kept), and a poison after that would mark memory no longer ours, which a
     * later mapping at that address (a stack) would inherit as false reports. The first
     * word stays unpoisoned for the put's free-list link. */
    PARK_FREED(p);
    br__slab_put(&t->park_blocks, p);
}

/* The fallback of br__tls_now() (core/lib.h) where no asm sequence is written: opaque to
 * the caller (noinline, and the empty volatile asm keeps the compiler from finding it
 * pure), so its result is never reused across a call. */
BR__NOINLINE br__tls *br__tls_get(void) {
    br__tls *p = &br__tls_v;
    __asm__ __volatile__("" : "+r"(p));
    return p;
}
