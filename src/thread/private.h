/* thread/private.h: the thread layer's own internals (the Lock and RLock that Condition
 * and the BR_WITH guards share, the other primitives' layouts). For src/thread/ and the
 * tests only. Never installed.
 *
 * The real structs behind the opaque public storage live here so that cond.c can
 * release a lock completely (an RLock at any depth) and take it back at the same level.
 * The protocol itself is described in lock.c's design notes.
 */
#ifndef BRAID_THREAD_PRIVATE_H
#define BRAID_THREAD_PRIVATE_H

#include "braid/thread.h"
#include "core/lib.h"

#include <pthread.h>

/* --- Lock -------------------------------------------------------------------------- */

/* state bits. DESTROYED has LOCKED set, so no path that only looks at LOCKED can take a
 * destroyed lock; every slow path compares against DESTROYED explicitly. HANDOFF: the
 * first sleeper asked to be handed the lock at the next release (lock.c). */
#define BR__LOCK_LOCKED 1u
#define BR__LOCK_WAITERS 2u
#define BR__LOCK_HANDOFF 4u
#define BR__LOCK_DESTROYED 0xdead0001u

struct br__lock {
    _Atomic uint32_t state; /* LOCKED | WAITERS | HANDOFF, or DESTROYED */
    uint32_t unused_;
    _Atomic uintptr_t owner; /* br__self() of the holder, 0 when free */
    br__wq wq;               /* sleepers; WAITERS is set whenever it is non-empty */
};

/* Takes l for the caller (any state but "already owned by the caller", which the
 * public functions check first). 0, BR_ETIMEDOUT, BR_ECANCELED (the calling context
 * was cancelled while it waited; never with wflags = BR__WAITER_NOCANCEL) or BR_EINVAL
 * (destroyed). wflags: 0, or BR__WAITER_NOCANCEL for a wait that must finish. */
int br__lock_acquire_slow(struct br__lock *l, int64_t deadline, uint32_t wflags);
/* The same, naming the primitive that waits (its file and function, for br_aio_dump's
 * "suspended on rlock": core/lib.h, br__waiter_init_at) instead of the lock itself. */
int br__lock_acquire_slow_at(struct br__lock *l, int64_t deadline, uint32_t wflags,
                             const char *site_file, const char *site_func);
/* A release that found more than LOCKED in the state: wakes one sleeper, or hands it
 * the lock. */
void br__lock_release_slow(struct br__lock *l);
/* For tests: wakes the first sleeper without releasing or handing over the lock, as if
 * a barger had re-taken it at once. */
void br__lock_wake_slow(struct br__lock *l);
/* Poisons a free lock: 0, BR_EBUSY (held or waited on), BR_EINVAL (destroyed). */
int br__lock_destroy(struct br__lock *l);

/* While the process has a single thread (BR__SINGLE_THREADED, platform/platform.h), the
 * fast paths use plain loads and stores instead of locked instructions, as glibc's own
 * pthread_mutex does: no other thread can look at the word, and pthread_create orders
 * our stores before anything a new thread does. Coroutines on that one thread
 * interleave only at park points, so they can't split a load-store pair either. */

/* The uncontended acquire: true if we took l. */
static inline bool br__lock_try_fast(struct br__lock *l) {
    uint32_t z = 0;
    if (BR__SINGLE_THREADED()) {
        if (atomic_load_explicit(&l->state, memory_order_relaxed) != 0)
            return false;
        atomic_store_explicit(&l->state, BR__LOCK_LOCKED, memory_order_relaxed);
    } else if (!atomic_compare_exchange_strong_explicit(&l->state, &z, BR__LOCK_LOCKED,
                                                        memory_order_acquire,
                                                        memory_order_relaxed)) {
        /* acquire: pairs with the release RMW in br__lock_release, so everything the
         * previous holder wrote under the lock is visible to us. */
        return false;
    }
    /* owner is only compared against br__self() by each context itself, so relaxed is
     * enough: a context always sees its own last store (see lock.c). */
    atomic_store_explicit(&l->owner, br__self(), memory_order_relaxed);
    return true;
}

/* For a primitive built on the lock (the RLock, a condition taking its lock back): a
 * wait is named after the caller's file and function (br__lock_acquire_slow_at). */
static inline int br__lock_acquire_at(struct br__lock *l, int64_t deadline, uint32_t wflags,
                                      const char *file, const char *func) {
    if (BR__LIKELY(br__lock_try_fast(l)))
        return 0;
    return br__lock_acquire_slow_at(l, deadline, wflags, file, func);
}
#define br__lock_acquire(l, deadline) br__lock_acquire_at((l), (deadline), 0, __FILE__, __func__)

/* Takes l whatever happens: no deadline, and a cancel request stays pending (a
 * condition taking its lock back). 0, or BR_EINVAL (destroyed). */
#define br__lock_acquire_nocancel(l)                                                       \
    br__lock_acquire_at((l), BR_FOREVER, BR__WAITER_NOCANCEL, __FILE__, __func__)

/* Releases l, which the caller holds (checked by the callers). */
static inline void br__lock_release(struct br__lock *l) {
    atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
    uint32_t s = BR__LOCK_LOCKED;
    if (BR__SINGLE_THREADED()) {
        s = atomic_load_explicit(&l->state, memory_order_relaxed);
        if (BR__LIKELY(s == BR__LOCK_LOCKED)) {
            atomic_store_explicit(&l->state, 0, memory_order_relaxed);
            return;
        }
    } else if (BR__LIKELY(atomic_compare_exchange_strong_explicit(
                   &l->state, &s, 0, memory_order_release, memory_order_relaxed))) {
        /* LOCKED alone: nobody sleeps. release: publishes the critical section (and
         * the owner store above) to the next acquirer. */
        return;
    }
    br__lock_release_slow(l);
}

static inline bool br__lock_owned(const struct br__lock *l) {
    return atomic_load_explicit(&l->owner, memory_order_relaxed) == br__self();
}

/* --- RLock ------------------------------------------------------------------------- */

struct br__rlock {
    struct br__lock lock;
    uint32_t count; /* recursion depth; only the holder reads or writes it */
};

/* --- Condition, Semaphore, Event, Barrier ------------------------------------------
 * Their protocols are in cond.c, sem.c, event.c and barrier.c; the structs are here so
 * that the tests can look at the wait-queues (is a thread blocked yet?). */

enum {
    BR__COND_OWN = 0,   /* zero storage: the embedded RLock */
    BR__COND_LOCK = 1,  /* a user br_lock */
    BR__COND_RLOCK = 2, /* a user br_rlock */
    BR__COND_DESTROYED = 0xdeadc0d0
};

struct br__cond {
    _Atomic uint32_t kind; /* BR__COND_* */
    uint32_t unused_;
    void *lock; /* the user lock for BR__COND_LOCK and BR__COND_RLOCK */
    br__wq wq;
    struct br__rlock own; /* the lock of a zero-initialised condition */
};

#define BR__SEM_W 1u   /* state: the wait-queue is not empty */
#define BR__SEM_ONE 2u /* state: one unit (value << 1) */
#define BR__SEM_MAX 0x7fffffffu
#define BR__SEM_BOUNDED 1u /* flags */
#define BR__SEM_DESTROYED 0xdead5e00u

struct br__sem {
    _Atomic uint32_t state; /* value << 1 | W */
    _Atomic uint32_t flags; /* BR__SEM_BOUNDED, or BR__SEM_DESTROYED */
    uint32_t bound;         /* a bounded semaphore's initial value */
    uint32_t unused_;
    br__wq wq;
};

#define BR__EV_CLEAR 0u
#define BR__EV_SET 1u
#define BR__EV_DESTROYED 0xdeadefe0u

struct br__event {
    _Atomic uint32_t state;
    uint32_t unused_;
    br__wq wq;
};

#define BR__BARRIER_ALIVE 0x62617272u /* "barr" */
#define BR__BARRIER_DESTROYED 0xdeadba77u

struct br__barrier {
    _Atomic uint32_t magic; /* BR__BARRIER_ALIVE once initialised */
    uint32_t parties;
    _Atomic uint32_t count;  /* arrivals in the filling round; written under wq.lock */
    _Atomic uint32_t broken; /* written under wq.lock */
    uint32_t busy;           /* actions running (destroy says BR_EBUSY) */
    uint32_t unused_;
    br_barrier_action action;
    void *arg;
    br__wq wq;
};

/* --- threads (thread.c) ------------------------------------------------------------ */

#define BR__THREAD_ALIVE 0x74687264u /* "thrd" */
#define BR__THREAD_FREED 0xdead7468u

/* Who reaps the pthread (joins or detaches it, exactly once): NONE nobody yet, BUSY a
 * joiner is in pthread_join, DONE joined, DETACHED detached. */
enum { BR__REAP_NONE, BR__REAP_BUSY, BR__REAP_DONE, BR__REAP_DETACHED };

struct br_thread {
    _Atomic uint32_t magic; /* BR__THREAD_ALIVE until br_thread_free */
    _Atomic uint32_t refs;  /* the handle, the running thread, each join in progress */
    _Atomic uint32_t done;  /* 1 once fn returned; set under wq.lock */
    _Atomic uint32_t reap;  /* BR__REAP_*; changed only under wq.lock */
    uint32_t joiners;       /* br_thread_join calls in progress; under wq.lock */
    bool handle_freed;      /* br_thread_free has run; under wq.lock */
    bool daemon;
    br__wq wq;              /* joiners (and the exit handler) waiting for done or reap */
    pthread_t pt;           /* written by br_thread_start before anyone can join */
    _Atomic uint64_t ident;
    _Atomic int tid;
    br_thread_fn fn;
    void *arg;
    char *name;
    /* The registry: every block from br_thread_start until it is freed (not only while
     * the thread runs), so that an atfork child finds every handle. Under reg_lock. */
    struct br_thread *next, *prev;
};

/* pthread_create, through a seam: a test can make thread creation fail (or pause in
 * it) by pointing this elsewhere. Never changed outside tests. */
extern int (*br__thread_create)(pthread_t *pt, const pthread_attr_t *attr,
                                void *(*start)(void *), void *arg);

/* A reference on a thread's block, for tests that look at it after br_thread_free. */
void br__thread_ref(struct br_thread *t);
void br__thread_unref(struct br_thread *t);

/* Waiters queued on q right now (takes q->lock). For tests and assertions. */
static inline int br__wq_len(br__wq *q) {
    int n = 0;
    br__ilock_lock(&q->lock);
    for (br__waiter *w = q->head; w; w = w->next)
        n++;
    br__ilock_unlock(&q->lock);
    return n;
}

#define BR__LOCK_IMPL(pub) ((struct br__lock *)(void *)(pub))
#define BR__RLOCK_IMPL(pub) ((struct br__rlock *)(void *)(pub))
#define BR__COND_IMPL(pub) ((struct br__cond *)(void *)(pub))
#define BR__SEM_IMPL(pub) ((struct br__sem *)(void *)(pub))
#define BR__EVENT_IMPL(pub) ((struct br__event *)(void *)(pub))
#define BR__BARRIER_IMPL(pub) ((struct br__barrier *)(void *)(pub))

#endif
