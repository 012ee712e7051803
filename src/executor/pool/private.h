/* executor/pool/private.h: the thread pool's structures, for the pool's own files
 * (src/executor/pool/) and its tests. Never installed.
 *
 * The pool is Python's ThreadPoolExecutor behind braid's executor vtable, with a
 * work-stealing scheduler underneath. Its files, each with the rules a reader needs
 * there at its top:
 *   pool.c     the pool and submit: construction, the vtable, where a submitted task
 *              goes, waking a worker for it, shutdown, and the exit rule
 *   sched.c    the scheduler and the worker loop: finding work, spinning, parking
 *   cancel.c   cancellation: running a task published for cancel requests, the
 *              cancel pass of shutdown(cancel_futures), draining the queues
 *   bounded.c  bounded submission (max_pending): waiting for room, and leaving
 *   pfor.c     br_parallel_for over the vtable
 *   deque.c    the Chase-Lev deque under the queues
 * docs/internals/threadpool.md has the history: what was tried, and the measurements
 * behind the choices.
 *
 * States. `flags`: SHUTDOWN (no new submits), CANCEL (shutdown with cancel_futures:
 * tasks dequeued from now on are cancelled, and running tasks get a cancel request),
 * BROKEN (an initializer failed: queued and later tasks fail with BR_EBROKEN). The low
 * two bits of `inject` repeat CLOSED and BROKEN where submits see them in the same CAS
 * that pushes (pool.c). A fork bumps br__pool_fork_gen: in the child the parent's pools
 * have no workers and refuse work (pool.c, "fork").
 *
 * Locking. Lock order: reg_lock -> join_lock -> spawn_lock; cancel_lock alone. The idle
 * and bp wait-queue ilocks and fifo_lock are leaves (never held while taking another
 * lock, never across a park; fifo_lock is only ever tried, except by a drain, which
 * spins for it). bp.lock also guards bp_inside and the drainers list.
 *
 * Blocking outside the waiter. Every wait that can last (a worker with nothing to do, a
 * submitter waiting for room, shutdown waiting for those submitters to leave, and every
 * future the pool completes) parks on a br__waiter, so a coroutine would suspend alone.
 * These don't, and each is bounded or confined to a rare, heavyweight call:
 *   - spawn_lock (a pthread mutex) is held across pthread_create: a submit that must
 *     start a worker waits while another one is starting one (tens of microseconds),
 *     only while the pool ramps up to max_workers.
 *   - pthread_join in join_all (under join_lock): shutdown(wait), br_executor_free and
 *     the exit rule wait there for the workers to finish every task and exit; a
 *     coroutine calling them blocks its thread until the tasks are done.
 *   - pthread_cond_wait in the exit registry: br_executor_free waits there only while
 *     the exit hook is shutting the same pool down, that is, while the process exits.
 *   - The cancel protocol's spin-waits (cancel.c): a worker that finishes a task while
 *     shutdown(cancel_futures) is requesting that task's cancel waits a few
 *     microseconds for it, only during that shutdown's cancel pass.
 *   - fifo_lock: a worker that finds another moving the injection stack spins 64
 *     PAUSEs and then yields; a drain spins for it with sched_yield.
 *   - cancel_lock (a pthread mutex) serializes the cancel passes of concurrent
 *     shutdowns: only shutdown(cancel_futures) takes it.
 *   - A claim in flight (sched.c, "Runs"): shutdown(cancel_futures)'s drain
 *     (br__pool_drain_all) spins with sched_yield until no claim holds tasks that no
 *     run shows yet, a few instructions unless the claiming worker is preempted, and
 *     then until its next time slice; a worker looking for work does the same briefly.
 */
#ifndef BRAID_EXECUTOR_POOL_PRIVATE_H
#define BRAID_EXECUTOR_POOL_PRIVATE_H

#include "executor/pool/deque.h"
#include "executor/pool/for_tests.h"

#include <pthread.h>

enum { INJ_CLOSED = 1, INJ_BROKEN = 2, INJ_FLAGS = 3 };
enum { F_SHUTDOWN = 1, F_CANCEL = 2, F_BROKEN = 4 };
enum { CUR_BUSY = 1 };
/* The least spin budget a worker adapts down to (sched.c). */
enum { SPIN_MIN_NS = 4000 };
/* The most tasks of one batch a worker takes from the fifo with one CAS (a power of
 * two: a run's ring); RUNS_CLAIM counts claims in flight in pool.runs (sched.c, "Runs"). */
enum { RUN_MAX = 32 };
#define RUNS_CLAIM ((uint64_t)1 << 32)

struct pool;

/* A worker's run (sched.c, "Runs"): tasks of one batch it took from the fifo and hasn't
 * started. Only the owner fills it, and only when it is empty; anyone takes from it,
 * oldest first, with a CAS of `word` (lo | hi << 32: slots [lo, hi) mod RUN_MAX hold
 * the tasks; both only grow, mod 2^32). */
struct run {
    _Alignas(BR__CACHELINE) _Atomic uint64_t word;
    _Atomic(br_task *) slot[RUN_MAX];
};

struct worker {
    br__deque dq; /* first: cache-line aligned */
    struct pool *pool;
    /* The running task (| CUR_BUSY in the CAS protocol), 0 when none; and the task
     * shutdown is using right now (asymmetric protocol). cancel.c. */
    _Alignas(BR__CACHELINE) _Atomic uintptr_t current;
    _Atomic uintptr_t claim;
    struct run run; /* its own line */
    uint64_t rng;
    uint32_t tick;
    int64_t spin_ns; /* this worker's current spin budget (sched.c) */
    bool fresh;      /* started, and hasn't found its first task yet */
    int index;
    pthread_t tid;
    char name[64];
};

/* The worker table grows with the workers (workers start lazily): an array of
 * pointers, replaced by one twice as large when full. Readers load nthreads first
 * (acquire) and then the array (br__pool_workers), and the spawner publishes a larger
 * array before it raises nthreads, so the array a reader sees always covers the count
 * it saw. Outgrown arrays stay until the pool is freed (a reader may still be in one),
 * so all of them together take at most twice the last one's size. */
struct wtable {
    struct wtable *retired; /* the table this one replaced */
    size_t cap;
    struct worker *w[];
};

struct pool {
    br_executor base;
    int max_workers;
    int spin_cap;
    int ncpu;
    int64_t max_pending; /* 0: unbounded */
    /* Submitters CAS it; the mover (whoever holds fifo_lock) empties it (sched.c). */
    _Alignas(BR__CACHELINE) _Atomic uintptr_t inject;
    /* Tasks from outside the pool, oldest at the top: pushed only by the mover, popped
     * one at a time by every worker. */
    br__deque fifo;
    _Alignas(BR__CACHELINE) _Atomic uint32_t fifo_lock; /* the mover's: 0 free, 1 held */
    /* 1 (seq_cst) from before the mover's take all until its tasks are on the fifo or
     * in spill: it may hold tasks no queue shows; can_exit reads it (sched.c, "Exit"). */
    _Atomic uint32_t moving;
    /* Written under fifo_lock: tasks that didn't fit on the fifo (it couldn't grow),
     * older than anything on the stack; the next move pushes them first. */
    _Atomic(br_task *) spill;
    /* Workers' runs that hold tasks, plus RUNS_CLAIM per claim in flight (sched.c,
     * "Runs"): 0 means no taken task waits in any run. */
    _Alignas(BR__CACHELINE) _Atomic uint64_t runs;
    /* Read by every submit, written when workers change state. */
    _Alignas(BR__CACHELINE) _Atomic int32_t nspinning;
    _Atomic int32_t nsleeping;
    _Atomic int32_t nthreads; /* started; the table's first nthreads entries are valid */
    _Atomic uint32_t flags;
    /* Parked workers (LIFO: the most recently parked is warmest). */
    _Alignas(BR__CACHELINE) br__wq idle;
    /* Bounded submission (bounded.c): tasks queued and not yet dequeued (only with
     * max_pending), and submitters waiting for room. */
    _Alignas(BR__CACHELINE) _Atomic int64_t pending;
    _Atomic int32_t nbp_waiters;
    br__wq bp;
    int32_t bp_inside;     /* submitters past the fast path (under bp.lock) */
    br__waiter *drainers;  /* shutdowns waiting for bp_inside == 0 (under bp.lock) */

    _Alignas(BR__CACHELINE) br_initializer_fn initializer;
    void *initarg;
    bool daemon;
    bool asym;             /* cancel protocol: membarrier (true) or CAS (cancel.c) */
    char *prefix;
    _Atomic(struct wtable *) workers; /* grows under spawn_lock */
    int nalloc;            /* workers allocated (started or not), under spawn_lock */
    pthread_mutex_t spawn_lock;
    pthread_mutex_t join_lock;
    pthread_mutex_t cancel_lock;
    int njoined;
    /* The exit registry (non-daemon pools), under reg_lock (pool.c). */
    struct pool *reg_next;
    bool registered;
    bool exit_hold;
    unsigned gen; /* br__pool_fork_gen at creation */
};

/* Bumped in the child of every fork (pool.c). */
extern _Atomic unsigned br__pool_fork_gen;
/* The worker running on this thread, or NULL. */
extern BR__TLS struct worker *br__pool_self;

static inline bool br__pool_forked_away(const struct pool *p) {
    return BR__UNLIKELY(p->gen != atomic_load_explicit(&br__pool_fork_gen,
                                                        memory_order_relaxed));
}

/* The pool starts with its br_executor (and is allocated cache-line aligned). */
static inline struct pool *br__as_pool(br_executor *ex) { return (struct pool *)(void *)ex; }

static inline br_task *br__inj_ptr(uintptr_t h) {
    return (br_task *)(h & ~(uintptr_t)INJ_FLAGS);
}

static inline int br__pool_closed_code(uintptr_t h) {
    return (h & INJ_BROKEN) ? BR_EBROKEN : BR_ESHUTDOWN;
}

/* The started workers: *n of them, in the returned array (see struct wtable). */
static inline struct worker *const *br__pool_workers(struct pool *p, int *n) {
    *n = atomic_load_explicit(&p->nthreads, memory_order_acquire);
    return atomic_load_explicit(&p->workers, memory_order_acquire)->w;
}

static inline bool br__pool_fifo_trylock(struct pool *p) {
    return atomic_load_explicit(&p->fifo_lock, memory_order_relaxed) == 0 &&
           atomic_exchange_explicit(&p->fifo_lock, 1, memory_order_acquire) == 0;
}

static inline void br__pool_fifo_unlock(struct pool *p) {
    atomic_store_explicit(&p->fifo_lock, 0, memory_order_release);
}

/* The next task on the injection stack (or a spill list) after t: links on the stack
 * carry BR__DEQUE_CONT when the older task belongs to t's batch (pool.c). */
static inline br_task *br__pool_link(const br_task *t) { return br__deque_untag(t->next); }

static inline uint32_t br__run_lo(uint64_t w) { return (uint32_t)w; }
static inline uint32_t br__run_hi(uint64_t w) { return (uint32_t)(w >> 32); }
static inline uint32_t br__run_size(uint64_t w) { return br__run_hi(w) - br__run_lo(w); }

/* Takes the oldest tasks of run r into out (at most max; half the run, rounded up, if
 * half), with one CAS. Returns how many (0: empty); *emptied says whether this took
 * the last one (the taker then drops the run from pool.runs). -1: lost a race. */
static inline int br__run_grab(struct run *r, br_task **out, int max, bool half,
                               bool *emptied) {
    uint64_t w = atomic_load_explicit(&r->word, memory_order_acquire);
    uint32_t size = br__run_size(w), lo = br__run_lo(w);
    if (size == 0)
        return 0;
    uint32_t n = half ? (size + 1) / 2 : size;
    if (n > (uint32_t)max)
        n = (uint32_t)max;
    for (uint32_t i = 0; i < n; i++)
        out[i] = atomic_load_explicit(&r->slot[(lo + i) & (RUN_MAX - 1)],
                                      memory_order_relaxed);
    uint64_t nw = (w & ~(uint64_t)UINT32_MAX) | (uint32_t)(lo + n);
    if (!atomic_compare_exchange_strong_explicit(&r->word, &w, nw, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return -1;
    *emptied = n == size;
    return (int)n;
}

/* pool.c: br__pool_signal_work past its two cheap answers. */
void br__pool_signal_work_slow(struct pool *p, bool spawn, int32_t sleeping,
                               int32_t threads);

/* The submit side of the wake protocol, after publishing work (seq_cst). spawn: may
 * start a thread. Its two common answers (someone is spinning; everyone is busy and
 * the pool is full) are decided here, inline in every submit: three loads of one
 * line and no call (pool.c, "Waking"). */
static inline void br__pool_signal_work(struct pool *p, bool spawn) {
    if (atomic_load_explicit(&p->nspinning, memory_order_seq_cst) != 0)
        return;
    int32_t sleeping = atomic_load_explicit(&p->nsleeping, memory_order_seq_cst);
    int32_t threads = atomic_load_explicit(&p->nthreads, memory_order_relaxed);
    if (sleeping == 0 && !(spawn && threads < p->max_workers))
        return; /* everyone is busy and the pool is full: the task waits its turn */
    br__pool_signal_work_slow(p, spawn, sleeping, threads);
}
/* pool.c: queues t without waiting for room (parallel_for's helpers use it too). */
int br__pool_push(struct pool *p, br_task *t);

/* sched.c */
void *br__pool_worker_main(void *arg);
/* Creates worker number nthreads. Caller holds spawn_lock. 0, BR_EAGAIN, BR_ENOMEM. */
int br__pool_spawn_locked(struct pool *p);
/* True if some queue holds a task (seq_cst loads: the worker side of the protocol). */
bool br__pool_work_visible(struct pool *p);

/* cancel.c */
/* Runs t on worker w: the pending count, the cancel and broken states, and the task
 * published for shutdown's cancel requests while its function runs. */
void br__pool_run(struct worker *w, br_task *t);
/* Takes every queued task out of the pool and abandons it with code. child: in a
 * forked child, where nobody else runs. */
void br__pool_drain_all(struct pool *p, int code, bool child);
/* Asks every running task to stop (shutdown with cancel_futures; F_CANCEL is set). */
void br__pool_cancel_running(struct pool *p);
/* An initializer failed: Python's BrokenThreadPool. */
void br__pool_break(struct pool *p);
/* Whether the membarrier protocol is usable: decided once per process (and again in
 * a forked child). */
bool br__pool_asym_available(void);
void br__pool_asym_after_fork(void);

/* bounded.c */
bool br__pool_pending_try_reserve(struct pool *p);
void br__pool_pending_release(struct pool *p);
/* Reserves room for one task, waiting until `deadline` if the pool is full. Sets
 * *inside once the caller has joined bp_inside: it must then call br__pool_bp_leave as
 * its last access to the pool. 0, BR_ETIMEDOUT, BR_ECANCELED, BR_ESHUTDOWN, BR_EBROKEN. */
int br__pool_pending_reserve(struct pool *p, int64_t deadline, bool *inside);
void br__pool_bp_leave(struct pool *p);
/* Wakes up to n submitters waiting for room (all if n < 0). */
void br__pool_bp_wake(struct pool *p, int n);
/* Waits until no submitter is inside the pool's slow path (shutdown with wait). */
void br__pool_bp_drain(struct pool *p);

/* pfor.c */
int br__pool_parallel_for(br_executor *ex, int64_t begin, int64_t end, int64_t grain,
                          br_range_fn fn, void *ctx);

#endif
