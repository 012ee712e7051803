/* The thread pool: Python's ThreadPoolExecutor behind braid's executor vtable, with a
 * work-stealing scheduler underneath.
 *
 * Design notes.
 *
 * Queues. A task submitted from any thread that isn't one of the pool's workers goes
 * to the injection stack, `inject`: a Treiber stack linked through br_task.next whose
 * push is one CAS. From there it goes to `fifo`, the one queue that workers take
 * outside submissions from: a Chase-Lev deque (executor/deque.h) used as a FIFO queue,
 * whose "owner" only pushes and whose every taker pops at the top, oldest first, one
 * task per CAS (br__deque_pop_fifo, deque.c rule 5). The owner's role belongs to
 * whoever holds fifo_lock (a try-lock): a worker that finds the fifo empty and the
 * stack not empty takes it, empties the stack with one CAS ("take all"), and pushes
 * the batch on the fifo reversed (oldest nearest the top), without writing the tasks'
 * links (move_inject). If the fifo was empty it keeps the oldest task for itself
 * instead (the pops would only hand it back). A task submitted by one of the pool's own
 * workers goes to the bottom of that worker's own Chase-Lev deque (LIFO for the owner,
 * cache-hot; the others steal from the top, batch-stealing up to half, at most 32). A
 * pool with max_workers == 1 sends every submit through the injection stack, so that
 * even nested submits run in submission order there.
 *
 * Start order (the guarantee in executor.h). Tasks reach the fifo only through a take
 * all, which takes everything on the stack at one instant and appends it oldest first
 * under the lock, so every task on the fifo is older than every task on the stack and
 * the fifo is in submission order (the order of the submits' CASes on the stack; for
 * one submitting thread, program order). Nobody takes from the stack but the mover,
 * and workers take outside submissions from the fifo one at a time, at the oldest end.
 * So a worker that looks for work starts the oldest outside submission not yet taken:
 * dequeue order is submission order, whatever the number of workers, as with Python's
 * single SimpleQueue. Batching outside submissions into a worker's own deque (as this
 * pool did before) can't keep that: a batch split between two workers, or a worker
 * holding a batch while another frees up, starts later tasks first (Python's get_html
 * 3, 4, 9, 7 started 3 and 7). The price is one CAS per task on a line the workers
 * share, instead of a take from a private deque: measured, no-op throughput and the
 * round trip didn't move (executor.md).
 *
 * Workers look for work in this order: own deque (nested submits), the fifo (moving
 * the stack over when the fifo is empty), the other deques (random start); every 61st
 * task they look at the fifo first, so that tasks which keep feeding their own deque
 * can't starve outside submitters (Go's schedtick % 61). If the fifo's ring can't grow
 * (out of memory), the batch waits in `spill`, oldest first, which the next move pushes
 * before it takes the stack again; shutdown's cancel pass empties it too.

 * The low two bits of `inject` are flags: CLOSED (shutdown) and BROKEN (an
 * initializer failed). A submit's CAS fails once either is set, and the CAS that sets
 * them is the linearization point: every task pushed before it is in the stack (or
 * moved on: the fifo, spill, or a mover's hands), where the workers (or shutdown's
 * cancel pass) will find it, and nothing is pushed after.
 *
 * Waking and parking. A worker is busy (running a task), spinning (searching for work,
 * counted in nspinning) or sleeping (parked on a br__waiter in the `idle` wait-queue,
 * counted in nsleeping). After a submit's push (a seq_cst CAS or, for a deque push,
 * a store followed by a seq_cst fence) the submitter reads nspinning and nsleeping:
 *   - someone is spinning: do nothing, the spinner will find the task;
 *   - else, if a worker is busy, give it ~300 ns to turn spinner (a worker that just
 *     finished a task does, and a futex wake costs microseconds on both sides);
 *   - else someone sleeps: pop one sleeper, count it as spinning (so that concurrent
 *     submitters don't wake a second one) and wake it;
 *   - else, if fewer than max_workers threads exist, start one (lazy start: "one more
 *     per submit while none is idle").
 * So a submit wakes at most one worker, and none when one is already searching.
 * A worker that runs out of work becomes a spinner if fewer than spin_cap are spinning
 * (half the CPUs, at least one: Go's limit), searches for its spin budget (adaptive,
 * 4-50 us, see br__pool_spin_ns) calling sched_yield() about every microsecond, then
 * stops spinning and parks. The yield matters when threads outnumber CPUs: after a
 * futex wake Linux likes to run the woken thread on the waker's CPU, where a pure PAUSE
 * loop would keep it off the CPU for the whole spin. A spinner that finds work stops spinning; if it was the
 * last spinner and more work is visible, it wakes a sleeper (or starts a thread),
 * because submitters may have skipped their wake-up on its account. The worker so
 * woken counts as a spinner; one so started, or any idle worker that finds work
 * without spinning, does the same check when it finds its task, so the duty passes
 * along until the visible work is covered or the pool is full. (Busy workers taking
 * their next task skip the check: it costs loads of lines that submitters write.)
 *
 * Lost wake-ups. The two sides are a Dekker pair on seq_cst operations: the submitter
 * publishes the task and then reads the counters; the worker changes a counter
 * (nspinning-- when it stops spinning, nsleeping++ after it links its waiter) and then
 * looks at every queue. In the single total order of seq_cst operations one of the
 * two comes first, so either the worker sees the task or the submitter sees the
 * worker leave the spinning state (and wakes a sleeper, or sees the sleeper and wakes
 * it). A spinner that stops because it found work re-checks after its decrement, as
 * above. A sleeper whose re-check finds work unlinks itself; if a waker popped it
 * first, it waits for that wake (core rule 2), so no signal is ever left pending.
 *
 * Shutdown states. flags: SHUTDOWN (no new submits), CANCEL (shutdown with
 * cancel_futures: tasks dequeued from now on are cancelled, and running tasks get a
 * cancel request), BROKEN (an initializer failed: queued and later tasks fail with
 * BR_EBROKEN). A worker exits once the injection stack is CLOSED and empty, the fifo
 * and spill are empty and its own deque is empty (a task can still be in another
 * worker's deque, or in the hands of a mover; that worker runs it before it exits).
 * shutdown(wait) joins every worker ever started, then waits for the submitters it
 * woke to leave (bp_drain). A fork bumps fork_gen: in the child the parent's pools have
 * no workers and refuse work, and their shutdown (or free) completes what was queued
 * at the fork, lock-free: cancelled with cancel_futures, else failed with
 * BR_ESHUTDOWN. Tasks running at the fork never complete in the child; the exit rule
 * leaves such pools alone there.
 *
 * Cancel requests on running tasks. A task's function runs inside a trampoline that
 * publishes the running task in worker->current, so that shutdown(cancel_futures) can
 * call br_future_request_cancel on it; the hard part is never touching a future after
 * its task finished (br__task_run may free it right after). Two protocols:
 *   - asymmetric (Linux membarrier, the default): the worker only stores and loads
 *     (current = t; check CANCEL; run; current = 0; wait while claim == t), with
 *     compiler barriers; shutdown does the fencing with membarrier(PRIVATE_EXPEDITED),
 *     which runs a full barrier on every CPU running one of our threads. Shutdown sets
 *     CANCEL, fences, reads current (a worker whose store it missed reads CANCEL after
 *     the fence and cancels itself); to use a task c it stores claim = c, fences, and
 *     re-reads current: if it still holds c, the worker's later load of claim sees c,
 *     so the worker waits until shutdown clears claim. This is the Dekker pattern with
 *     one side's fences moved into a syscall, as liburcu and folly's hazard pointers
 *     do; it costs the hot path nothing (two atomic RMWs per task otherwise: a fifth of
 *     the throughput of no-op tasks).
 *   - CAS (where membarrier is missing): current is set with a seq_cst exchange and
 *     cleared with a CAS; shutdown marks it BUSY with a CAS while it requests the
 *     cancel, and the worker's clearing CAS waits BUSY out.
 * cancel_lock serializes shutdowns' cancel passes (one claimer per worker at a time).
 *
 * Bounded submission and freeing: see the section's notes below (bp_inside: a pool is
 * never freed under a submitter that shutdown woke).
 *
 * Locking. Lock order: reg_lock -> join_lock -> spawn_lock; cancel_lock alone. The idle
 * and bp wait-queue ilocks and fifo_lock are leaves (never held while taking another
 * lock, never across a park; fifo_lock is only ever tried, except by shutdown's cancel
 * pass, which spins for it). bp.lock also guards bp_inside and the drainers list.
 *
 * Blocking outside the waiter. Every wait that can last (a worker with nothing to do,
 * a submitter waiting for room, shutdown waiting for those submitters to leave, and
 * every future the pool completes) parks on a br__waiter, so a coroutine would suspend
 * alone. These don't, and each is bounded or confined to a rare, heavyweight call:
 *   - spawn_lock (a pthread mutex) is held across pthread_create: a submit that must
 *     start a worker waits while another one is starting one (tens of microseconds).
 *     Only while the pool ramps up to max_workers, at most max_workers times in its
 *     life; holding it is what gives each submit that found no idle worker its own
 *     thread, as Python does.
 *   - pthread_join in join_all (under join_lock): shutdown(wait), br_executor_free and
 *     the exit rule wait there for the workers to finish every task and exit. A thread
 *     must be joined to be reclaimed, and these calls are the pool's end, never on a
 *     submit or a worker's path; a coroutine calling them blocks its thread until the
 *     tasks are done (an event loop should hand them to a thread of their own).
 *   - pthread_cond_wait in pool_unregister: br_executor_free waits there only while the
 *     atexit handler is shutting the same pool down, that is, while the process exits.
 *   - The trampolines' spin-waits (claim == t, asymmetric protocol; a BUSY current, CAS
 *     protocol): a worker that finishes a task while shutdown(cancel_futures) is
 *     requesting that task's cancel waits for shutdown to let go, which takes one
 *     membarrier and one request_cancel (a few microseconds); it happens only during
 *     that shutdown's cancel pass, never otherwise.
 *   - fifo_lock: a worker that finds another one moving the injection stack spins 64
 *     PAUSEs and then yields instead of waiting; drain_all (shutdown with
 *     cancel_futures, or a broken pool) spins for it with sched_yield, since the mover
 *     holds it for a handful of instructions.
 *   - cancel_lock (a pthread mutex) serializes the cancel passes of concurrent
 *     shutdowns: only shutdown(cancel_futures) takes it.
 */
#include "executor/threadpool.h"
#include "executor/deque.h"

#include <errno.h>
#if defined(__linux__)
#  include <linux/membarrier.h>
#  include <sys/syscall.h>
#  include <unistd.h>
#endif
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h> /* atexit */
#include <string.h>

/* How long an idle worker searches before it parks (ns), at most: each worker adapts
 * its own budget between SPIN_MIN_NS and this. A spin that finds work doubles the
 * worker's budget (work is arriving at a pace that spinning catches: a submit-and-wait
 * loop, a stream); a spin that ends in a park halves it (sparse work: the spin was
 * wasted CPU); a spin right after a wake-up doesn't count, since it finds the task it
 * was woken for. Measured: a pool fed one task per millisecond costs ~4% of one core
 * (10% with a fixed 50 us), and a round-trip loop keeps its sub-microsecond latency. */
int64_t br__pool_spin_ns = 50000;
enum { SPIN_MIN_NS = 4000 };

enum { INJ_CLOSED = 1, INJ_BROKEN = 2, INJ_FLAGS = 3 };
enum { F_SHUTDOWN = 1, F_CANCEL = 2, F_BROKEN = 4 };
enum { CUR_BUSY = 1 };

/* Bumped in the child of every fork: a pool made before the fork has no workers in
 * the child (only the forking thread survives), so there it refuses submits
 * (BR_ESHUTDOWN), never joins the threads it remembers, and its shutdown completes the
 * tasks still queued, since nothing will run them (drain_all). */
static _Atomic unsigned fork_gen;

struct pool;

struct worker {
    br__deque dq; /* first: cache-line aligned */
    struct pool *pool;
    /* The running task (| CUR_BUSY in the CAS protocol), 0 when none; and the task
     * shutdown is using right now (asymmetric protocol). Design notes. */
    _Alignas(BR__CACHELINE) _Atomic uintptr_t current;
    _Atomic uintptr_t claim;
    uint64_t rng;
    uint32_t tick;
    int64_t spin_ns; /* this worker's current spin budget (see br__pool_spin_ns) */
    bool fresh; /* started, and hasn't found its first task yet */
    int index;
    pthread_t tid;
    char name[64];
};

struct pool {
    struct br_executor base;
    int max_workers;
    int spin_cap;
    int ncpu;
    size_t max_pending;
    /* Submitters CAS it; the mover (whoever holds fifo_lock) empties it. */
    _Alignas(BR__CACHELINE) _Atomic uintptr_t inject;
    /* Tasks from outside the pool, oldest at the top: pushed only by the mover, popped
     * one at a time by every worker (design notes). */
    br__deque fifo;
    _Alignas(BR__CACHELINE) _Atomic uint32_t fifo_lock; /* the mover's: 0 free, 1 held */
    /* Written under fifo_lock: tasks that didn't fit on the fifo (it couldn't grow),
     * older than anything on the stack; the next move pushes them first. */
    _Atomic(br_task *) spill;
    /* Read by every submit, written when workers change state. */
    _Alignas(BR__CACHELINE) _Atomic int32_t nspinning;
    _Atomic int32_t nsleeping;
    _Atomic int32_t nthreads; /* started; workers[0..nthreads) are valid */
    _Atomic uint32_t flags;
    /* Parked workers (LIFO: the most recently parked is warmest). */
    _Alignas(BR__CACHELINE) br__wq idle;
    /* Bounded submission: tasks queued and not yet dequeued (only with max_pending),
     * and submitters waiting for room. */
    _Alignas(BR__CACHELINE) _Atomic int64_t pending;
    _Atomic int32_t nbp_waiters;
    br__wq bp;
    int32_t bp_inside;     /* submitters past the fast path (under bp.lock) */
    br__waiter *drainers;  /* shutdowns waiting for bp_inside == 0 (under bp.lock) */

    _Alignas(BR__CACHELINE) br_initializer_fn initializer;
    void *initarg;
    bool daemon;
    char *prefix;
    struct worker **workers; /* max_workers slots */
    pthread_mutex_t spawn_lock;
    pthread_mutex_t join_lock;
    pthread_mutex_t cancel_lock;
    br_task_fn tramp; /* trampoline_asym or trampoline_cas */
    int njoined;
    /* The exit registry (non-daemon pools), under reg_lock. */
    struct pool *reg_next;
    bool registered;
    bool exit_hold;
    unsigned gen; /* fork_gen at creation */
};

static inline bool forked_away(const struct pool *p) {
    return BR__UNLIKELY(p->gen != atomic_load_explicit(&fork_gen, memory_order_relaxed));
}

static BR__TLS struct worker *tls_worker;

static _Atomic int pool_counter; /* for the default names, "ThreadPoolExecutor-<n>" */

static void pool_process_init(void);
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static void pool_register(struct pool *p);
static void pool_unregister(struct pool *p);

/* --- small helpers ------------------------------------------------------------------ */

/* The pool starts with its br_executor (and is allocated cache-line aligned). */
static inline struct pool *as_pool(br_executor *ex) { return (struct pool *)(void *)ex; }

static inline br_task *inj_ptr(uintptr_t h) { return (br_task *)(h & ~(uintptr_t)INJ_FLAGS); }

static inline uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static int closed_code(uintptr_t h) { return (h & INJ_BROKEN) ? BR_EBROKEN : BR_ESHUTDOWN; }

/* --- bounded submission ----------------------------------------------------------------
 *
 * pending counts tasks pushed and not yet dequeued (only when max_pending > 0). A
 * submitter reserves a slot with a CAS before it pushes; a worker releases it when it
 * dequeues. A submitter that finds no room links a waiter into `bp`, bumps
 * nbp_waiters (seq_cst) and tries again before it parks; a worker decrements pending
 * (seq_cst) and then reads nbp_waiters: Dekker again, so no release goes unnoticed. A
 * woken submitter retries and may lose the slot to a newcomer, which is fine: pending
 * is then full again and its next release wakes the next waiter.
 *
 * Leaving before the pool is freed. Shutdown wakes every waiting submitter, and they
 * go on reading the pool (the CLOSED bit, pending, and for one that got a slot, the
 * whole push) after the wake. So bp_inside, under bp.lock, counts the submitters past
 * the fast path: one joins it when it first links its waiter (its own later reads of
 * the pool happen before it leaves), and leaves it at the very end of pool_submit,
 * under bp.lock; that unlock is its last access to the pool. shutdown(wait) waits,
 * after joining the workers, until bp_inside is 0: it links a waiter of its own on
 * `drainers` and the submitter that takes bp_inside to 0 wakes the list after its
 * unlock (core rule 1: the drainers can't leave before they are signalled). A submit
 * that begins after br_executor_free began is a use after free like any other; one that
 * is blocked when it begins is safe. */

static bool pending_try_reserve(struct pool *p) {
    int64_t n = atomic_load_explicit(&p->pending, memory_order_relaxed);
    while (n < (int64_t)p->max_pending)
        if (atomic_compare_exchange_weak_explicit(&p->pending, &n, n + 1,
                                                  memory_order_seq_cst,
                                                  memory_order_relaxed))
            return true;
    return false;
}

static void bp_wake(struct pool *p, int n) {
    br__waiter *chain = NULL, **tail = &chain;
    br__ilock_lock(&p->bp.lock);
    while ((n < 0 || n-- > 0) && !br__wq_empty(&p->bp)) {
        br__waiter *w = br__wq_pop(&p->bp);
        atomic_fetch_sub_explicit(&p->nbp_waiters, 1, memory_order_relaxed);
        *tail = w;
        tail = &w->next;
    }
    br__ilock_unlock(&p->bp.lock);
    br__wake_chain(chain);
}

static void pending_release(struct pool *p) {
    atomic_fetch_sub_explicit(&p->pending, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&p->nbp_waiters, memory_order_seq_cst) > 0)
        bp_wake(p, 1);
}

/* A waiting submitter leaves `bp` by itself (timed out, got room, or the pool closed).
 * Under bp.lock. */
static void bp_unlink(br__waiter *w, void *arg) {
    struct pool *p = arg;
    br__wq_remove(&p->bp, w);
    atomic_fetch_sub_explicit(&p->nbp_waiters, 1, memory_order_relaxed);
}

void (*br__pool_bp_woken_hook)(void);
_Atomic long br__pool_drain_parks;

/* Reserves room for one task, waiting until `deadline` if the pool is full. Sets
 * *inside once the caller has joined bp_inside: it must then call bp_leave as its last
 * access to the pool. */
static int pending_reserve(struct pool *p, int64_t deadline, bool *inside) {
    for (;;) {
        uintptr_t h = atomic_load_explicit(&p->inject, memory_order_acquire);
        if (h & INJ_FLAGS)
            return closed_code(h);
        if (pending_try_reserve(p))
            return 0;
        if (br__deadline_passed(deadline))
            return BR_ETIMEDOUT;
        br__waiter w;
        br__waiter_init(&w);
        br__ilock_lock(&p->bp.lock);
        br__wq_push(&p->bp, &w);
        atomic_fetch_add_explicit(&p->nbp_waiters, 1, memory_order_seq_cst);
        if (!*inside) {
            p->bp_inside++;
            *inside = true;
        }
        br__ilock_unlock(&p->bp.lock);
        h = atomic_load_explicit(&p->inject, memory_order_seq_cst);
        bool got = !(h & INJ_FLAGS) && pending_try_reserve(p);
        if (got || (h & INJ_FLAGS)) {
            /* Leave the queue at once; if a waker popped us already, its wake is ours
             * (core rule 2), and with a slot in hand we pass it on. */
            if (br__waiter_park_or_cancel_in(&w, &p->bp.lock, BR_NOWAIT, bp_unlink, p) == 0 &&
                got)
                bp_wake(p, 1);
            return got ? 0 : closed_code(h);
        }
        int rc = br__waiter_park_or_cancel_in(&w, &p->bp.lock, deadline, bp_unlink, p);
        if (BR__UNLIKELY(br__pool_bp_woken_hook != NULL))
            br__pool_bp_woken_hook();
        if (rc == BR_ETIMEDOUT)
            return BR_ETIMEDOUT;
    }
}

/* The end of a submit that joined bp_inside: its last access to the pool. */
static void bp_leave(struct pool *p) {
    br__waiter *chain = NULL;
    br__ilock_lock(&p->bp.lock);
    if (--p->bp_inside == 0) {
        chain = p->drainers;
        p->drainers = NULL;
    }
    br__ilock_unlock(&p->bp.lock); /* from here on a drainer may free the pool */
    br__wake_chain(chain);
}

/* Waits until no submitter is inside the pool's slow path (shutdown with wait). */
static void bp_drain(struct pool *p) {
    br__waiter w;
    br__waiter_init(&w);
    br__ilock_lock(&p->bp.lock);
    if (p->bp_inside == 0) {
        br__ilock_unlock(&p->bp.lock);
        return;
    }
    w.next = p->drainers;
    p->drainers = &w;
    br__ilock_unlock(&p->bp.lock);
    atomic_fetch_add_explicit(&br__pool_drain_parks, 1, memory_order_relaxed);
    /* Only bp_leave pops the list, and it signals everyone it popped. */
    while (br__waiter_park(&w, BR_FOREVER) != 0)
        ;
}

/* --- waking and spawning --------------------------------------------------------------- */

static int spawn_locked(struct pool *p);

/* Starts one more worker unless the pool is full or closed. Blocks while another
 * thread is starting one (spawns happen only while the pool ramps up), so that no
 * request is lost: each submit that found no idle worker gets its thread, as in
 * Python. */
static void maybe_spawn(struct pool *p) {
    pthread_mutex_lock(&p->spawn_lock);
    if (atomic_load_explicit(&p->nthreads, memory_order_relaxed) < p->max_workers &&
        !(atomic_load_explicit(&p->inject, memory_order_relaxed) & INJ_FLAGS))
        (void)spawn_locked(p); /* a failure leaves the work to the existing workers */
    pthread_mutex_unlock(&p->spawn_lock);
}

/* Pops one sleeper, counts it as spinning, wakes it. False if nobody sleeps or
 * someone started spinning meanwhile. */
static bool wake_one(struct pool *p) {
    br__ilock_lock(&p->idle.lock);
    br__waiter *w = NULL;
    if (atomic_load_explicit(&p->nspinning, memory_order_relaxed) == 0) {
        w = br__wq_pop(&p->idle);
        if (w) {
            atomic_fetch_sub_explicit(&p->nsleeping, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&p->nspinning, 1, memory_order_relaxed);
        }
    }
    br__ilock_unlock(&p->idle.lock);
    if (w)
        br__waiter_wake(w);
    return w != NULL;
}

static void wake_all(struct pool *p) {
    br__waiter *chain = NULL, **tail = &chain;
    br__ilock_lock(&p->idle.lock);
    while (!br__wq_empty(&p->idle)) {
        br__waiter *w = br__wq_pop(&p->idle);
        atomic_fetch_sub_explicit(&p->nsleeping, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&p->nspinning, 1, memory_order_relaxed);
        *tail = w;
        tail = &w->next;
    }
    br__ilock_unlock(&p->idle.lock);
    br__wake_chain(chain);
}

/* A worker that just finished a task becomes a spinner within a few hundred
 * nanoseconds; a submit that finds nobody spinning gives it that long before paying
 * for a futex wake (several microseconds, and a second spinning thread) or a new
 * thread. Bounded: about 8 PAUSEs. */
static bool await_spinner(struct pool *p) {
    for (int i = 0; i < 8; i++) {
        br__cpu_relax();
        if (atomic_load_explicit(&p->nspinning, memory_order_seq_cst) != 0)
            return true;
    }
    return false;
}

/* After publishing work (seq_cst): the submit side of the wake protocol. spawn: may
 * start a thread (false when this submit just started the first one). */
static inline void signal_work(struct pool *p, bool spawn) {
    if (atomic_load_explicit(&p->nspinning, memory_order_seq_cst) != 0)
        return;
    int32_t sleeping = atomic_load_explicit(&p->nsleeping, memory_order_seq_cst);
    int32_t threads = atomic_load_explicit(&p->nthreads, memory_order_relaxed);
    bool can_spawn = spawn && threads < p->max_workers;
    if (sleeping == 0 && !can_spawn)
        return; /* everyone is busy and the pool is full: the task waits its turn */
    if (threads > sleeping && await_spinner(p))
        return; /* a busy worker turned spinner: it will find the task */
    if (sleeping != 0) {
        if (wake_one(p))
            return;
        if (atomic_load_explicit(&p->nspinning, memory_order_seq_cst) != 0)
            return;
    }
    if (can_spawn)
        maybe_spawn(p);
}

/* True if some queue holds a task (seq_cst loads: the worker side of the protocol). */
static bool work_visible(struct pool *p) {
    if (inj_ptr(atomic_load_explicit(&p->inject, memory_order_seq_cst)))
        return true;
    if (br__deque_size(&p->fifo) > 0 || atomic_load_explicit(&p->spill, memory_order_relaxed))
        return true;
    int n = atomic_load_explicit(&p->nthreads, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (br__deque_size(&p->workers[i]->dq) > 0)
            return true;
    return false;
}

/* --- finding work ------------------------------------------------------------------------ */

static inline bool fifo_trylock(struct pool *p) {
    return atomic_load_explicit(&p->fifo_lock, memory_order_relaxed) == 0 &&
           atomic_exchange_explicit(&p->fifo_lock, 1, memory_order_acquire) == 0;
}

static inline void fifo_unlock(struct pool *p) {
    atomic_store_explicit(&p->fifo_lock, 0, memory_order_release);
}

/* Appends the chain `list` (oldest first) to spill. Caller holds fifo_lock. */
static void spill_append(struct pool *p, br_task *list) {
    br_task *sp = atomic_load_explicit(&p->spill, memory_order_relaxed);
    if (sp == NULL) {
        atomic_store_explicit(&p->spill, list, memory_order_relaxed);
        return;
    }
    while (sp->next)
        sp = sp->next;
    sp->next = list;
}

/* The mover's job: everything on the injection stack goes to the fifo, oldest first,
 * behind what the fifo holds (every task there is older than every task still on the
 * stack). Returns the oldest task if the fifo was empty (it is ours to run: nothing
 * older is queued), else NULL with the tasks on the fifo. Caller holds fifo_lock. If
 * the fifo's ring can't grow, the tasks wait in `spill` (oldest first), which the next
 * move pushes first. */
static br_task *move_inject(struct pool *p) {
    br_task *sp = atomic_load_explicit(&p->spill, memory_order_relaxed);
    if (BR__UNLIKELY(sp != NULL)) {
        atomic_store_explicit(&p->spill, NULL, memory_order_relaxed);
        br_task *rest = br__deque_push_chain(&p->fifo, sp);
        if (rest != NULL) {
            atomic_store_explicit(&p->spill, rest, memory_order_relaxed);
            return NULL; /* the stack waits behind the spill */
        }
    }
    uintptr_t h = atomic_load_explicit(&p->inject, memory_order_relaxed);
    do {
        if (inj_ptr(h) == NULL)
            return NULL;
    } while (!atomic_compare_exchange_weak_explicit(&p->inject, &h, h & INJ_FLAGS,
                                                    memory_order_acquire,
                                                    memory_order_relaxed));
    /* Newest first. Count it and find the oldest, reading the links only: writing
     * them would take every task's line away from the submitter's cache. */
    br_task *list = inj_ptr(h), *oldest = list;
    size_t n = 1;
    while (oldest->next != NULL) {
        oldest = oldest->next;
        n++;
    }
    br_task *first = NULL;
    if (br__deque_size(&p->fifo) == 0) {
        first = oldest; /* pops would only hand it back: skip the ring */
        if (--n == 0)
            return first;
    }
    if (BR__UNLIKELY(br__deque_push_reversed(&p->fifo, list, n) != 0)) {
        br_task *rev = NULL; /* out of memory: reverse the links, into spill */
        for (br_task *t = list; n-- > 0;) {
            br_task *next = t->next;
            t->next = rev;
            rev = t;
            t = next;
        }
        spill_append(p, rev);
    }
    return first;
}

/* The oldest task submitted from outside the pool, or NULL (none queued, or another
 * worker has been moving them onto the fifo for a while: they show up when it is
 * done, and work_visible sees them from then on). */
static br_task *pop_external(struct pool *p) {
    for (;;) {
        br_task *t;
        int r = br__deque_pop_fifo(&p->fifo, &t);
        if (r == BR__STEAL_OK)
            return t;
        if (r == BR__STEAL_RETRY)
            continue; /* another worker took that one: the next is ours to try */
        if (inj_ptr(atomic_load_explicit(&p->inject, memory_order_relaxed)) == NULL &&
            atomic_load_explicit(&p->spill, memory_order_relaxed) == NULL)
            return NULL;
        if (!fifo_trylock(p)) {
            /* Another worker is moving the stack over: a few instructions, unless it
             * was preempted, and then yielding is what lets it finish. */
            for (int i = 0; i < 64 && atomic_load_explicit(&p->fifo_lock,
                                                           memory_order_relaxed); i++)
                br__cpu_relax();
            if (atomic_load_explicit(&p->fifo_lock, memory_order_relaxed)) {
                sched_yield();
                return NULL;
            }
            continue;
        }
        t = move_inject(p);
        fifo_unlock(p);
        if (t != NULL)
            return t;
        if (br__deque_size(&p->fifo) == 0)
            return NULL;
    }
}

static void run_task(struct worker *w, br_task *t);

/* Steals from the other workers, starting at a random one. Takes one task, and when
 * the victim had more, up to half of them (at most 32) into w's own deque. */
static br_task *steal_work(struct worker *w) {
    struct pool *p = w->pool;
    int n = atomic_load_explicit(&p->nthreads, memory_order_acquire);
    if (n <= 1)
        return NULL;
    int start = (int)(xorshift(&w->rng) % (uint64_t)n);
    for (int round = 0; round < 2; round++) {
        bool retry = false;
        for (int k = 0; k < n; k++) {
            struct worker *v = p->workers[(start + k) % n];
            if (v == w)
                continue;
            int64_t size = br__deque_size(&v->dq);
            if (size <= 0)
                continue;
            br_task *t;
            int r = br__deque_steal(&v->dq, &t);
            if (r == BR__STEAL_RETRY) {
                retry = true;
                continue;
            }
            if (r != BR__STEAL_OK)
                continue;
            int64_t more = size / 2;
            if (more > 32)
                more = 32;
            while (more-- > 0) {
                br_task *x;
                if (br__deque_steal(&v->dq, &x) != BR__STEAL_OK)
                    break;
                if (br__deque_push(&w->dq, x) != 0) {
                    run_task(w, x); /* no room to keep it: run it now */
                    break;
                }
            }
            return t;
        }
        if (!retry)
            break;
    }
    return NULL;
}

static br_task *find_work(struct worker *w) {
    br_task *t;
    if (BR__UNLIKELY(++w->tick % 61 == 0) && (t = pop_external(w->pool)) != NULL)
        return t;
    if (!br__deque_owner_empty(&w->dq) && (t = br__deque_take(&w->dq)) != NULL)
        return t;
    if ((t = pop_external(w->pool)) != NULL)
        return t;
    return steal_work(w);
}

/* After a task: the cheap places only (own deque, outside submissions). If both are
 * empty the worker goes idle at once, so that it is counted as spinning before a
 * submit-and-wait caller can come back with its next task. */
static br_task *next_task(struct worker *w) {
    br_task *t;
    if (BR__UNLIKELY(++w->tick % 61 == 0) && (t = pop_external(w->pool)) != NULL)
        return t;
    if (!br__deque_owner_empty(&w->dq) && (t = br__deque_take(&w->dq)) != NULL)
        return t;
    return pop_external(w->pool);
}

/* --- running: the trampolines and the asymmetric fence ---------------------------------- */

static bool asym_ok; /* set once, before the first pool exists */
bool br__pool_no_membarrier;

static void asym_init(void) {
#if defined(__linux__) && defined(SYS_membarrier)
    long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
        asym_ok = true;
#endif
}

/* A full barrier on every CPU running one of this process's threads. 0 or -1. */
static int heavy_fence(void) {
#if defined(__linux__) && defined(SYS_membarrier)
    return syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0 ? 0 : -1;
#else
    return -1;
#endif
}

/* Every submitted task's fn; the real one is in t->xdata. Publishes the running task
 * for shutdown's cancel requests (design notes: the asymmetric protocol). */
static int trampoline_asym(br_task *t) {
    struct worker *w = tls_worker;
    br_task_fn fn = (br_task_fn)t->xdata;
    if (BR__UNLIKELY(w == NULL)) /* run inline by someone else (not a worker) */
        return fn(t);
    atomic_store_explicit(&w->current, (uintptr_t)t, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst); /* the other side fences for both */
    if (BR__UNLIKELY(atomic_load_explicit(&w->pool->flags, memory_order_relaxed) & F_CANCEL))
        br_future_request_cancel(br__task_future(t));
    int rc = fn(t);
    atomic_store_explicit(&w->current, 0, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    while (BR__UNLIKELY(atomic_load_explicit(&w->claim, memory_order_acquire) == (uintptr_t)t))
        br__cpu_relax(); /* shutdown is requesting a cancel on t right now */
    return rc;
}

/* The same with atomic RMWs, where membarrier is missing (design notes). */
static int trampoline_cas(br_task *t) {
    struct worker *w = tls_worker;
    br_task_fn fn = (br_task_fn)t->xdata;
    if (BR__UNLIKELY(w == NULL))
        return fn(t);
    atomic_store_explicit(&w->current, (uintptr_t)t, memory_order_seq_cst);
    if (BR__UNLIKELY(atomic_load_explicit(&w->pool->flags, memory_order_seq_cst) & F_CANCEL))
        br_future_request_cancel(br__task_future(t));
    int rc = fn(t);
    uintptr_t c = (uintptr_t)t;
    while (!atomic_compare_exchange_weak_explicit(&w->current, &c, 0, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
        c = (uintptr_t)t; /* BUSY: shutdown is requesting a cancel right now */
        br__cpu_relax();
    }
    return rc;
}

static void run_task(struct worker *w, br_task *t) {
    struct pool *p = w->pool;
    /* The next task was most likely written by another CPU (the submitter): start
     * fetching its future's state line and its task line while this one runs. */
    br_task *nx = br__deque_owner_empty(&w->dq) ? br__deque_peek_top(&p->fifo)
                                                : br__deque_peek(&w->dq);
    if (nx != NULL) {
        __builtin_prefetch(br__task_future(nx), 0);
        __builtin_prefetch(nx, 0);
    }
    if (p->max_pending)
        pending_release(p);
    uint32_t fl = atomic_load_explicit(&p->flags, memory_order_acquire);
    if (BR__UNLIKELY(fl & (F_CANCEL | F_BROKEN))) {
        br__task_abandon(t, (fl & F_BROKEN) ? BR_EBROKEN : BR_ECANCELED);
        return;
    }
    br__task_run(t);
}

/* Takes every queued task out of the pool and abandons it with `code` (shutdown with
 * cancel_futures, or a broken pool). Owners may take from their deques at the same
 * time; they see the flag and abandon what they take.
 *
 * In a forked child (`child`) nobody else runs: the workers, and whoever held a lock
 * at the fork, are gone. Every queue here is lock-free (the injection stack, the fifo,
 * the deques) and stays consistent whatever instruction a vanished thread stopped at:
 * a task it was in the middle of taking is lost with it, like the tasks it was
 * running. So the child takes fifo_lock without waiting (a mover frozen by the fork
 * never gives it back; spill is only ever changed by single stores) and skips
 * pending_release (bp.lock may have been held, and the parent's submitters waiting
 * for room don't exist here). */
static void drain_all(struct pool *p, int code, bool child) {
    uintptr_t h = atomic_load_explicit(&p->inject, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&p->inject, &h, h & INJ_FLAGS,
                                                  memory_order_acquire, memory_order_relaxed))
        ;
    br_task *list[2] = {inj_ptr(h), NULL};
    /* A mover holds fifo_lock for a few instructions, unless it is preempted. */
    for (unsigned i = 1; !child && !fifo_trylock(p); i++) {
        br__cpu_relax();
        if ((i & 63) == 0)
            sched_yield();
    }
    list[1] = atomic_exchange_explicit(&p->spill, NULL, memory_order_relaxed);
    if (!child)
        fifo_unlock(p);
    bool release = p->max_pending && !child;
    for (int k = 0; k < 2; k++)
        for (br_task *t = list[k]; t != NULL;) {
            br_task *next = t->next;
            if (release)
                pending_release(p);
            br__task_abandon(t, code);
            t = next;
        }
    for (;;) {
        br_task *t;
        int r = br__deque_pop_fifo(&p->fifo, &t);
        if (r == BR__STEAL_EMPTY)
            break;
        if (r == BR__STEAL_RETRY)
            continue;
        if (release)
            pending_release(p);
        br__task_abandon(t, code);
    }
    int n = atomic_load_explicit(&p->nthreads, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        br__deque *d = &p->workers[i]->dq;
        for (;;) {
            br_task *t;
            int r = br__deque_steal(d, &t);
            if (r == BR__STEAL_EMPTY)
                break;
            if (r == BR__STEAL_RETRY) {
                br__cpu_relax();
                continue;
            }
            if (release)
                pending_release(p);
            br__task_abandon(t, code);
        }
    }
}

/* Asks every running task to stop (shutdown with cancel_futures; F_CANCEL is set). */
static void cancel_running(struct pool *p) {
    pthread_mutex_lock(&p->cancel_lock);
    int n = atomic_load_explicit(&p->nthreads, memory_order_acquire);
    if (p->tramp == trampoline_asym) {
        /* A worker whose `current` this fence doesn't reveal reads F_CANCEL after it. */
        if (heavy_fence() != 0)
            goto out; /* can't happen once registered; never risk a freed future */
        for (int i = 0; i < n; i++) {
            struct worker *w = p->workers[i];
            uintptr_t c = atomic_load_explicit(&w->current, memory_order_relaxed);
            if (c == 0)
                continue;
            atomic_store_explicit(&w->claim, c, memory_order_relaxed);
            if (heavy_fence() == 0 &&
                atomic_load_explicit(&w->current, memory_order_relaxed) == c)
                br_future_request_cancel(br__task_future((br_task *)c));
            atomic_store_explicit(&w->claim, 0, memory_order_release);
        }
    } else {
        for (int i = 0; i < n; i++) {
            struct worker *w = p->workers[i];
            uintptr_t c = atomic_load_explicit(&w->current, memory_order_seq_cst);
            if (c == 0 || (c & CUR_BUSY))
                continue;
            if (!atomic_compare_exchange_strong_explicit(&w->current, &c, c | CUR_BUSY,
                                                         memory_order_acq_rel,
                                                         memory_order_relaxed))
                continue; /* it finished */
            br_future_request_cancel(br__task_future((br_task *)c));
            atomic_store_explicit(&w->current, c, memory_order_release);
        }
    }
out:
    pthread_mutex_unlock(&p->cancel_lock);
}

/* An initializer failed: Python's BrokenThreadPool. */
static void pool_break(struct pool *p) {
    atomic_fetch_or_explicit(&p->flags, F_BROKEN, memory_order_seq_cst);
    atomic_fetch_or_explicit(&p->inject, INJ_BROKEN, memory_order_seq_cst);
    drain_all(p, BR_EBROKEN, false);
    bp_wake(p, -1);
}

/* --- the worker ----------------------------------------------------------------------------- */

static bool try_start_spinning(struct pool *p) {
    int32_t n = atomic_load_explicit(&p->nspinning, memory_order_relaxed);
    while (n < p->spin_cap)
        if (atomic_compare_exchange_weak_explicit(&p->nspinning, &n, n + 1,
                                                  memory_order_seq_cst,
                                                  memory_order_relaxed))
            return true;
    return false;
}

/* A spinner stops. found: it is about to run a task; if it was the last spinner and
 * more work is visible, somebody else must look at it (design notes). */
static void stop_spinning(struct pool *p, bool found) {
    int32_t prev = atomic_fetch_sub_explicit(&p->nspinning, 1, memory_order_seq_cst);
    if (found && prev == 1 && work_visible(p))
        signal_work(p, true);
}

/* True once w may exit: the injection stack is closed (nothing can be pushed any more)
 * and empty, and w's own deque is empty (only w pushes there). Other deques may still
 * hold tasks; their owners run them before they exit. Reading the CLOSED bit and the
 * emptiness in one load is what makes this exact: a flag word read separately could
 * miss a push that landed just before the close. */
static inline bool can_exit(struct worker *w) {
    struct pool *p = w->pool;
    uintptr_t h = atomic_load_explicit(&p->inject, memory_order_seq_cst);
    return (h & INJ_CLOSED) && inj_ptr(h) == NULL && br__deque_size(&w->dq) == 0 &&
           br__deque_size(&p->fifo) == 0 &&
           atomic_load_explicit(&p->spill, memory_order_relaxed) == NULL;
}

enum { PARK_WOKEN, PARK_RECHECK };

/* Unlinks a parked worker that leaves the idle queue by itself (under idle.lock). */
static void idle_unlink(br__waiter *w, void *arg) {
    struct pool *p = arg;
    br__wq_remove(&p->idle, w);
    atomic_fetch_sub_explicit(&p->nsleeping, 1, memory_order_relaxed);
}

/* Parks w until a submitter (or shutdown) wakes it. PARK_WOKEN: the waker counted us
 * as spinning. PARK_RECHECK: we unlinked ourselves because work appeared or the pool
 * closed. */
static int park(struct worker *w) {
    struct pool *p = w->pool;
    br__waiter wt;
    br__waiter_init(&wt);
    br__ilock_lock(&p->idle.lock);
    br__wq_push_front(&p->idle, &wt);
    atomic_fetch_add_explicit(&p->nsleeping, 1, memory_order_seq_cst);
    br__ilock_unlock(&p->idle.lock);
    /* Work appeared or the pool closed: leave the queue at once, unless a waker popped
     * us already, in which case its wake is ours (core rule 2). */
    int64_t dl = (work_visible(p) || can_exit(w)) ? BR_NOWAIT : BR_FOREVER;
    if (br__waiter_park_or_cancel_in(&wt, &p->idle.lock, dl, idle_unlink, p) != 0)
        return PARK_RECHECK;
    return PARK_WOKEN;
}

/* A worker that was idle (or new) found work by a path other than spinning: it passes
 * on the duty a spinner would (design notes), since a submit or a spinner may have
 * counted on it. */
static void propagate(struct pool *p) {
    br__fence_sc();
    if (work_visible(p))
        signal_work(p, true);
}

/* No work found: spin, then park. Returns a task, or NULL when the worker should exit
 * (the pool closed and nothing is left for it). */
static br_task *idle_wait(struct worker *w) {
    struct pool *p = w->pool;
    bool spinning = try_start_spinning(p);
    bool woken = false; /* a spin after a wake-up finds the task it was woken for */
    for (;;) {
        if (spinning) {
            if (w->spin_ns > br__pool_spin_ns)
                w->spin_ns = br__pool_spin_ns;
            int64_t until = br_now() + w->spin_ns;
            for (unsigned i = 1;; i++) {
                br_task *t = find_work(w);
                if (t) {
                    stop_spinning(p, true);
                    if (!woken)
                        w->spin_ns = w->spin_ns * 2 < br__pool_spin_ns ? w->spin_ns * 2
                                                                       : br__pool_spin_ns;
                    return t;
                }
                if (can_exit(w)) {
                    stop_spinning(p, false);
                    return NULL;
                }
                for (int k = 0; k < 4; k++)
                    br__cpu_relax();
                if ((i & 7) == 0) {
                    if (br_now() >= until)
                        break;
                    /* On a machine with more runnable threads than CPUs (2 cores: the
                     * submitter, its waiter, this spinner) a pure PAUSE loop keeps the
                     * CPU from the thread that would give us work; after the futex wake
                     * of a waiter the scheduler likes to put that waiter on the waker's
                     * CPU. Yielding costs ~0.3 us when nobody else wants the CPU. */
                    sched_yield();
                }
            }
            stop_spinning(p, false);
            w->spin_ns = w->spin_ns / 2 > SPIN_MIN_NS ? w->spin_ns / 2 : SPIN_MIN_NS;
        }
        br_task *t = find_work(w);
        if (t) {
            propagate(p);
            return t;
        }
        if (can_exit(w))
            return NULL;
        if (park(w) == PARK_WOKEN) {
            spinning = true;
            woken = true;
        } else {
            t = find_work(w);
            if (t) {
                propagate(p);
                return t;
            }
            if (can_exit(w))
                return NULL;
            spinning = try_start_spinning(p);
        }
    }
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    struct pool *p = w->pool;
    tls_worker = w;
    br__tls_v.name = w->name;
    br__set_thread_name(w->name);

    if (p->initializer != NULL && p->initializer(p->initarg) != 0) {
        pool_break(p);
        /* Python's worker exits here; ours stays until shutdown so that the idle
         * accounting stays simple, abandoning whatever reaches it. */
    }
    for (;;) {
        br_task *t = BR__UNLIKELY(w->fresh) ? find_work(w) : next_task(w);
        if (t == NULL) {
            w->fresh = false; /* idle_wait hands on what it finds itself */
            t = idle_wait(w);
            if (t == NULL)
                break;
        } else if (BR__UNLIKELY(w->fresh)) {
            /* A new worker was started for work that a spinner (or a submit) saw. */
            w->fresh = false;
            propagate(p);
        }
        run_task(w, t);
    }
    tls_worker = NULL;
    br__tls_v.name = NULL;
    return NULL;
}

/* Creates worker number nthreads. Caller holds spawn_lock. 0, BR_EAGAIN, BR_ENOMEM. */
static int spawn_locked(struct pool *p) {
    int i = atomic_load_explicit(&p->nthreads, memory_order_relaxed);
    if (i >= p->max_workers)
        return 0;
    struct worker *w = p->workers[i];
    if (w == NULL) {
        w = br__aligned_alloc(BR__CACHELINE, sizeof *w);
        if (w == NULL)
            return BR_ENOMEM;
        memset(w, 0, sizeof *w);
        if (br__deque_init(&w->dq, 256) != 0) {
            br__free(w);
            return BR_ENOMEM;
        }
        w->pool = p;
        w->index = i;
        w->fresh = true;
        w->spin_ns = br__pool_spin_ns;
        w->rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1) | 1;
        snprintf(w->name, sizeof w->name, "%s_%d", p->prefix, i);
        p->workers[i] = w;
    }
    /* Counted before it exists: the new thread may steal into its deque at once, and
     * every scan of the deques (work_visible) must include it. On failure the slot
     * holds an empty deque, which scans skip, until the count drops back (under
     * spawn_lock, so join_all never sees a thread that wasn't created). */
    atomic_store_explicit(&p->nthreads, i + 1, memory_order_seq_cst);
    /* Workers take no signals: they belong to the application's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->tid, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        atomic_store_explicit(&p->nthreads, i, memory_order_seq_cst);
        return rc == ENOMEM ? BR_ENOMEM : BR_EAGAIN;
    }
    return 0;
}

/* Starts the first worker before the first task is pushed, so that a queued task
 * always has a worker. */
static int first_worker(struct pool *p) {
    pthread_mutex_lock(&p->spawn_lock);
    int rc = 0;
    uintptr_t h = atomic_load_explicit(&p->inject, memory_order_relaxed);
    if (h & INJ_FLAGS)
        rc = closed_code(h);
    else if (atomic_load_explicit(&p->nthreads, memory_order_relaxed) == 0)
        rc = spawn_locked(p);
    pthread_mutex_unlock(&p->spawn_lock);
    return rc == BR_EAGAIN ? BR_ENOMEM : rc;
}

/* --- the vtable ------------------------------------------------------------------------------ */

/* Queues t (forced: no waiting for room, used by parallel_for's helpers too). Callers
 * have refused a forked child's pool already (forked_away). */
static int push_task(struct pool *p, br_task *t) {
    struct worker *w = tls_worker;
    bool spawn = true;
    if (BR__UNLIKELY(atomic_load_explicit(&p->nthreads, memory_order_acquire) == 0)) {
        int rc = first_worker(p);
        if (rc != 0)
            return rc;
        spawn = false; /* one more per submit */
    }
    if (w != NULL && w->pool == p && p->max_workers > 1) {
        uintptr_t h = atomic_load_explicit(&p->inject, memory_order_acquire);
        if (h & INJ_FLAGS)
            return closed_code(h);
        if (br__deque_push(&w->dq, t) == 0) {
            br__fence_sc(); /* the Dekker pair (notes) */
            signal_work(p, spawn);
            return 0;
        }
        /* The deque could not grow: the injection stack never allocates. */
    }
    uintptr_t h = atomic_load_explicit(&p->inject, memory_order_relaxed);
    do {
        if (BR__UNLIKELY(h & INJ_FLAGS))
            return closed_code(h);
        t->next = inj_ptr(h);
    } while (!atomic_compare_exchange_weak_explicit(&p->inject, &h, (uintptr_t)t,
                                                    memory_order_seq_cst,
                                                    memory_order_relaxed));
    signal_work(p, spawn);
    return 0;
}

static int pool_submit(br_executor *ex, br_task *t, const br_call *call) {
    struct pool *p = as_pool(ex);
    if (forked_away(p))
        return BR_ESHUTDOWN; /* before bp.lock, which may have been held at the fork */
    t->xdata = (uintptr_t)t->fn;
    t->fn = p->tramp;
    bool inside = false; /* joined bp_inside: bp_leave is then our last access to p */
    if (p->max_pending) {
        struct worker *w = tls_worker;
        int rc;
        if (w != NULL && w->pool == p) {
            /* A worker never waits for room: if every worker did, nobody would make
             * any. Its task counts, and may take pending past the bound. */
            atomic_fetch_add_explicit(&p->pending, 1, memory_order_seq_cst);
            rc = 0;
        } else {
            int64_t dl = (call->flags & BR_CALL_NOWAIT) ? BR_NOWAIT
                         : call->submit_deadline > 0   ? call->submit_deadline
                                                       : BR_FOREVER;
            rc = pending_reserve(p, dl, &inside);
        }
        if (rc != 0) {
            t->fn = (br_task_fn)t->xdata;
            if (inside)
                bp_leave(p);
            return rc;
        }
    }
    int rc = push_task(p, t);
    if (BR__UNLIKELY(rc != 0)) {
        if (p->max_pending)
            pending_release(p);
        t->fn = (br_task_fn)t->xdata;
    }
    if (BR__UNLIKELY(inside))
        bp_leave(p);
    return rc;
}

/* Joins every worker started so far (except the caller, at exit from a worker). */
static void join_all(struct pool *p) {
    if (forked_away(p))
        return; /* its threads live (or lived) in the parent */
    pthread_mutex_lock(&p->join_lock);
    /* No spawn can start once the pool is closed; wait out one in progress. */
    pthread_mutex_lock(&p->spawn_lock);
    int n = atomic_load_explicit(&p->nthreads, memory_order_acquire);
    pthread_mutex_unlock(&p->spawn_lock);
    struct worker *self = tls_worker;
    for (int i = p->njoined; i < n; i++) {
        if (p->workers[i] == self)
            continue;
        pthread_join(p->workers[i]->tid, NULL);
    }
    p->njoined = n;
    pthread_mutex_unlock(&p->join_lock);
}

static int pool_shutdown(br_executor *ex, bool wait, bool cancel_futures) {
    struct pool *p = as_pool(ex);
    uint32_t f = F_SHUTDOWN | (cancel_futures ? F_CANCEL : 0);
    atomic_fetch_or_explicit(&p->flags, f, memory_order_seq_cst);
    atomic_fetch_or_explicit(&p->inject, INJ_CLOSED, memory_order_seq_cst);
    if (forked_away(p)) {
        /* No workers here, and its locks may have been held at the fork: nothing
         * queued will ever run in this process, so complete it all now, lock-free
         * (drain_all). Tasks that were running at the fork never complete here. */
        drain_all(p, cancel_futures ? BR_ECANCELED : BR_ESHUTDOWN, true);
        return 0;
    }
    if (cancel_futures) {
        drain_all(p, BR_ECANCELED, false);
        cancel_running(p);
    }
    bp_wake(p, -1);
    wake_all(p);
    if (!wait)
        return 0;
    struct worker *self = tls_worker;
    if (self != NULL && self->pool == p)
        return BR_EDEADLK;
    join_all(p);
    bp_drain(p); /* the submitters bp_wake woke, on their way out (bounded submission) */
    return 0;
}

static void pool_destroy(br_executor *ex) {
    struct pool *p = as_pool(ex);
    pool_unregister(p);
    for (int i = 0; i < p->max_workers; i++) {
        struct worker *w = p->workers[i];
        if (w == NULL)
            continue;
        br__deque_destroy(&w->dq);
        br__free(w);
    }
    br__deque_destroy(&p->fifo);
    br__free(p->workers);
    br__free(p->prefix);
    pthread_mutex_destroy(&p->spawn_lock);
    pthread_mutex_destroy(&p->join_lock);
    pthread_mutex_destroy(&p->cancel_lock);
    br__free(p);
}

static int pool_max_workers(const br_executor *ex) {
    return ((const struct pool *)(const void *)ex)->max_workers;
}

/* --- parallel_for ------------------------------------------------------------------------------
 *
 * One job on the caller's stack; chunks are claimed with fetch_add on `next`, so no
 * task exists per index or per chunk: the caller and up to (CPUs - 1) helper tasks
 * loop claiming chunks. When the caller runs out of chunks it cancels the helpers
 * that haven't started (their futures say CANCELLED; br__task_run skips them without
 * touching the job) and waits for the started ones, which stop after their current
 * chunk. Nothing ever waits for a queued task, so a call from inside a worker of the
 * same pool can't deadlock even when every other worker is busy. */

struct pfor {
    _Atomic uint64_t next;
    _Atomic int err;
    uint64_t nchunks;
    uint64_t grain;
    uint64_t n; /* end - begin, as unsigned (the range may span more than INT64_MAX) */
    int64_t begin;
    br_range_fn fn;
    void *ctx;
};

static void pfor_loop(struct pfor *j) {
    for (;;) {
        if (atomic_load_explicit(&j->err, memory_order_relaxed) != 0)
            return;
        uint64_t c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (c >= j->nchunks)
            return;
        uint64_t lo = c * j->grain;
        uint64_t hi = j->n - lo > j->grain ? lo + j->grain : j->n;
        int rc = j->fn((int64_t)((uint64_t)j->begin + lo), (int64_t)((uint64_t)j->begin + hi),
                       j->ctx);
        if (rc != 0) {
            int z = 0;
            atomic_compare_exchange_strong_explicit(&j->err, &z, rc, memory_order_relaxed,
                                                    memory_order_relaxed);
            return;
        }
    }
}

static int pfor_task(br_task *t) {
    pfor_loop((struct pfor *)(uintptr_t)br_task_arg_i64(t));
    return 0;
}

enum { PFOR_MAX_HELPERS = 64 };

static int pool_parallel_for(br_executor *ex, int64_t begin, int64_t end, int64_t grain,
                             br_range_fn fn, void *ctx) {
    struct pool *p = as_pool(ex);
    uintptr_t h = atomic_load_explicit(&p->inject, memory_order_acquire);
    if (h & INJ_FLAGS)
        return closed_code(h);
    if (forked_away(p))
        return BR_ESHUTDOWN;
    struct worker *self = tls_worker;
    bool inside = self != NULL && self->pool == p;

    struct pfor j;
    j.n = (uint64_t)end - (uint64_t)begin;
    int helpers = p->ncpu - 1;
    if (helpers > p->max_workers - (inside ? 1 : 0))
        helpers = p->max_workers - (inside ? 1 : 0);
    if (helpers > PFOR_MAX_HELPERS)
        helpers = PFOR_MAX_HELPERS;
    if (helpers < 0)
        helpers = 0;
    if (grain <= 0) {
        uint64_t chunks = (uint64_t)(helpers + 1) * 8;
        grain = (int64_t)(j.n / chunks + (j.n % chunks != 0));
        if (grain <= 0)
            grain = 1;
    }
    j.grain = (uint64_t)grain;
    j.nchunks = j.n / j.grain + (j.n % j.grain != 0);
    if ((uint64_t)helpers > j.nchunks - 1)
        helpers = (int)(j.nchunks - 1);
    atomic_init(&j.next, 0);
    atomic_init(&j.err, 0);
    j.begin = begin;
    j.fn = fn;
    j.ctx = ctx;

    br_future *fs[PFOR_MAX_HELPERS];
    int nf = 0;
    for (int i = 0; i < helpers; i++) {
        int64_t jp = (int64_t)(uintptr_t)&j;
        /* Two references: ours, for cancel and wait, and the pool's. */
        br_future *f = br__task_prepare(pfor_task, &jp, sizeof jp,
                                        BR__ARG_COPY | BR__ARG_IN_PROCESS, BR_FOREVER, 2);
        if (f == NULL)
            break;
        br_task *t = br__future_task(f);
        if (p->max_pending)
            atomic_fetch_add_explicit(&p->pending, 1, memory_order_seq_cst);
        if (push_task(p, t) != 0) {
            if (p->max_pending)
                pending_release(p);
            br_future_release(f);
            br_future_release(f);
            break;
        }
        fs[nf++] = f;
    }
    pfor_loop(&j);
    for (int i = 0; i < nf; i++) {
        if (!br_future_cancel(fs[i]))
            br_future_wait(fs[i], BR_FOREVER);
        br_future_release(fs[i]);
    }
    return atomic_load_explicit(&j.err, memory_order_relaxed);
}

void br__threadpool_stats(br_executor *ex, struct br__threadpool_stats *st) {
    struct pool *p = as_pool(ex);
    st->threads = atomic_load_explicit(&p->nthreads, memory_order_acquire);
    st->spinning = atomic_load_explicit(&p->nspinning, memory_order_acquire);
    st->sleeping = atomic_load_explicit(&p->nsleeping, memory_order_acquire);
    st->pending = atomic_load_explicit(&p->pending, memory_order_acquire);
    st->bp_waiters = atomic_load_explicit(&p->nbp_waiters, memory_order_acquire);
}

static const struct br__executor_vt pool_vt = {
    .kind = "thread",
    .in_process = true,
    .submit = pool_submit,
    .shutdown = pool_shutdown,
    .destroy = pool_destroy,
    .max_workers = pool_max_workers,
    .parallel_for = pool_parallel_for,
};

/* --- construction and the exit rule ----------------------------------------------------------- */

int br_threadpool_new(br_executor **out, const br_threadpool_opts *opts) {
    if (out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_threadpool_new: out is NULL");
    *out = NULL;
    br_threadpool_opts o;
    memset(&o, 0, sizeof o);
    if (opts)
        o = *opts;
    if (o.max_workers < 0)
        return BR__MISUSE(BR_EINVAL, "br_threadpool_new: max_workers < 0");
    int ncpu = br_cpu_count();
    if (o.max_workers == 0)
        o.max_workers = ncpu + 4 < 32 ? ncpu + 4 : 32;

    struct pool *p = br__aligned_alloc(BR__CACHELINE, sizeof(struct pool));
    if (p == NULL)
        return BR_ENOMEM;
    memset(p, 0, sizeof *p);
    p->workers = br__calloc((size_t)o.max_workers, sizeof *p->workers);
    if (o.thread_name_prefix != NULL) {
        p->prefix = br__strdup(o.thread_name_prefix);
    } else {
        char buf[48];
        snprintf(buf, sizeof buf, "ThreadPoolExecutor-%d",
                 atomic_fetch_add_explicit(&pool_counter, 1, memory_order_relaxed));
        p->prefix = br__strdup(buf);
    }
    if (p->workers == NULL || p->prefix == NULL || br__deque_init(&p->fifo, 256) != 0) {
        br__free(p->workers);
        br__free(p->prefix);
        br__free(p);
        return BR_ENOMEM;
    }
    p->base.vt = &pool_vt;
    p->base.magic = BR__EXECUTOR_MAGIC;
    p->max_workers = o.max_workers;
    p->ncpu = ncpu;
    p->spin_cap = ncpu / 2 > 1 ? ncpu / 2 : 1;
    p->max_pending = o.max_pending;
    p->initializer = o.initializer;
    p->initarg = o.initarg;
    p->daemon = o.daemon;
    atomic_init(&p->inject, 0);
    atomic_init(&p->fifo_lock, 0);
    atomic_init(&p->spill, NULL);
    atomic_init(&p->nspinning, 0);
    atomic_init(&p->nsleeping, 0);
    atomic_init(&p->nthreads, 0);
    atomic_init(&p->flags, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->nbp_waiters, 0);
    pthread_mutex_init(&p->spawn_lock, NULL);
    pthread_mutex_init(&p->join_lock, NULL);
    pthread_mutex_init(&p->cancel_lock, NULL);
    pthread_once(&reg_once, pool_process_init);
    p->tramp = asym_ok && !br__pool_no_membarrier ? trampoline_asym : trampoline_cas;
    p->gen = atomic_load_explicit(&fork_gen, memory_order_relaxed);
    if (!p->daemon)
        pool_register(p);
    *out = &p->base;
    return 0;
}

/* Non-daemon pools still alive at exit are shut down with wait, by an atexit handler
 * registered when the first one is created (Python joins its workers at interpreter
 * shutdown). The handler marks the pools it is shutting down (exit_hold) and drops
 * reg_lock while it joins, so that a task that creates or frees a pool meanwhile
 * doesn't deadlock; a concurrent br_executor_free waits for the mark to clear. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reg_cond = PTHREAD_COND_INITIALIZER;
static struct pool *reg_head;

static void pool_at_exit(void) {
    pthread_mutex_lock(&reg_lock);
    struct pool *list = reg_head;
    for (struct pool *p = list; p; p = p->reg_next)
        p->exit_hold = true;
    pthread_mutex_unlock(&reg_lock);
    for (struct pool *p = list; p; p = p->reg_next) {
        /* A pool made before a fork has nothing to wait for in the child, and its
         * queued tasks are left alone there (completing them would run the parent's
         * done-callbacks in the child as it exits). */
        if (forked_away(p))
            continue;
        pool_shutdown(&p->base, false, false);
        join_all(p); /* skips the caller if exit() was called by a worker */
    }
    pthread_mutex_lock(&reg_lock);
    for (struct pool *p = list; p; p = p->reg_next)
        p->exit_hold = false;
    pthread_cond_broadcast(&reg_cond);
    pthread_mutex_unlock(&reg_lock);
}

static void pool_after_fork_child(void) {
    atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
    /* The forking thread may have been a worker: in the child it is a plain thread. */
    tls_worker = NULL;
    /* Another thread may have held reg_lock at the fork. */
    pthread_mutex_init(&reg_lock, NULL);
    pthread_cond_init(&reg_cond, NULL);
    /* membarrier registration belongs to the address space; make sure the child's has
     * it (registering again is harmless), or fall back to the CAS protocol. */
    if (asym_ok) {
        asym_ok = false;
        asym_init();
    }
}

static void pool_process_init(void) {
    asym_init();
    atexit(pool_at_exit);
    pthread_atfork(NULL, NULL, pool_after_fork_child);
}

static void pool_register(struct pool *p) {
    pthread_mutex_lock(&reg_lock);
    p->reg_next = reg_head;
    reg_head = p;
    p->registered = true;
    pthread_mutex_unlock(&reg_lock);
}

static void pool_unregister(struct pool *p) {
    pthread_mutex_lock(&reg_lock);
    while (p->exit_hold)
        pthread_cond_wait(&reg_cond, &reg_lock);
    if (p->registered) {
        struct pool **pp = &reg_head;
        while (*pp != p)
            pp = &(*pp)->reg_next;
        *pp = p->reg_next;
        p->registered = false;
    }
    pthread_mutex_unlock(&reg_lock);
}
