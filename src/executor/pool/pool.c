/* The thread pool and submit: Python's ThreadPoolExecutor behind braid's executor
 * vtable (braid/executor_impl.h). Construction, where a submitted task goes, waking a
 * worker for it, shutdown, and the exit rule. The pool's files and their rules are
 * listed in executor/pool/private.h.
 *
 * Design notes.
 *
 * Where a task goes. A submit from outside the pool pushes the task on the injection
 * stack `inject` with one CAS; a submit from one of the pool's own workers pushes it on
 * that worker's deque (sched.c, "Queues", says how workers take them and why that
 * keeps Python's start order). The low two bits of `inject` are flags: CLOSED
 * (shutdown) and BROKEN (an initializer failed). A submit's CAS fails once either is
 * set, and the CAS that sets them is the linearization point: every task pushed before
 * it is in the stack (or moved on: the fifo, spill, or a mover's hands), where the
 * workers (or shutdown's drain) will find it, and nothing is pushed after.
 *
 * Batches (vt->submit_batch: br_submit_batch, br_map). From outside, the tasks are
 * linked newest first, as n pushes would leave them, and the chain goes on the stack
 * with one CAS: it lands at one instant, in order (the move to the fifo keeps it so),
 * or, if CLOSED or BROKEN is set, not at all. From a worker they go on its deque (one
 * fence); if the deque can't grow, the rest go on the stack. Either way one signal
 * follows: it wakes at most one worker, and the spinner duty below passes the rest of
 * the batch along, one worker at a time, while more is visible. With max_pending, the
 * batch reserves as much room as is free with one CAS, pushes that much, and waits for
 * one slot at a time (bounded.c) when there is none, so a failure in that wait leaves
 * the prefix already pushed queued (the contract in braid/executor_impl.h).
 *
 * Waking. After a submit's push (a seq_cst CAS or, for a deque push, a store followed
 * by a seq_cst fence) the submitter reads nspinning and nsleeping:
 *   - someone is spinning: do nothing, the spinner will find the task;
 *   - else, if a worker is busy, give it ~300 ns to turn spinner (a worker that just
 *     finished a task does, and a futex wake costs microseconds on both sides);
 *   - else someone sleeps: pop one sleeper, count it as spinning (so that concurrent
 *     submitters don't wake a second one) and wake it;
 *   - else, if fewer than max_workers threads exist, start one (lazy start: "one more
 *     per submit while none is idle", as Python's _adjust_thread_count).
 * So a submit wakes at most one worker, and none when one is already searching. The
 * worker side of this Dekker pair, and why no wake-up is lost, is in sched.c. The
 * first two answers, by far the most common (an idle pool has a spinner; a busy one
 * is full), are decided inline in the submit (br__pool_signal_work, private.h): three
 * loads of one line. Which lines a round trip moves between the submitter and a worker
 * is in sched.c, "Lines".
 *
 * Shutdown. Sets the flags and CLOSED; with cancel_futures, drains the queues and asks
 * the running tasks to stop (cancel.c); wakes the submitters waiting for room and the
 * sleeping workers; with wait, joins every worker ever started, then waits for the
 * submitters it woke to leave (bounded.c).
 *
 * Cancellation (a coroutine's, core/lib.h). The one wait of a submit that a cancel can
 * end is the wait for room (bounded.c): pool_submit then returns BR_ECANCELED like any
 * failure of the reserve, after bp_leave, with nothing pushed. shutdown(wait) and free
 * can't be cancelled: joining the workers is a pthread_join, and the wait for the woken
 * submitters parks with BR__WAITER_NOCANCEL, since the pool's memory depends on both.
 * The workers are threads, so their idle parks (sched.c) are never cancelled.
 *
 * fork. A fork bumps br__pool_fork_gen: in the child only the forking thread exists,
 * so the parent's pools have no workers there. They refuse submits (BR_ESHUTDOWN),
 * never join the threads they remember, and their shutdown (or free) completes what
 * was queued at the fork at once, lock-free (cancelled with cancel_futures, else
 * failed with BR_ESHUTDOWN). Tasks running at the fork never complete in the child.
 *
 * Exit. Non-daemon pools still alive at exit are shut down with wait by the executor
 * layer's exit hook (core/lib.h, "Lifecycle"), as Python joins its workers at
 * interpreter shutdown; it runs before the thread layer's, which waits for non-daemon
 * threads. The hook marks the pools it is shutting down (exit_hold) and drops reg_lock
 * while it joins, so that a task that creates or frees a pool meanwhile doesn't
 * deadlock; a concurrent br_executor_free waits for the mark to clear.
 */
#include "executor/pool/private.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

_Atomic unsigned br__pool_fork_gen;

static _Atomic int pool_counter; /* for the default names, "ThreadPoolExecutor-<n>" */

static void pool_register(struct pool *p);
static void pool_unregister(struct pool *p);
static br__hooks pool_hooks;

/* --- waking and spawning --------------------------------------------------------- */

/* Starts one more worker unless the pool is full or closed. Blocks while another
 * thread is starting one (spawns happen only while the pool ramps up), so that no
 * request is lost: each submit that found no idle worker gets its thread, as in
 * Python. */
static void maybe_spawn(struct pool *p) {
    pthread_mutex_lock(&p->spawn_lock);
    if (atomic_load_explicit(&p->nthreads, memory_order_relaxed) < p->max_workers &&
        !(atomic_load_explicit(&p->inject, memory_order_relaxed) & INJ_FLAGS))
        (void)br__pool_spawn_locked(p); /* a failure leaves the work to the existing workers */
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

/* br__pool_signal_work (private.h) found nobody spinning, and a sleeper to wake or
 * room for a thread (sleeping and threads as it read them). spawn: may start a thread
 * (false when this submit just started the first one). */
void br__pool_signal_work_slow(struct pool *p, bool spawn, int32_t sleeping,
                               int32_t threads) {
    bool can_spawn = spawn && threads < p->max_workers;
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

/* Starts the first worker before the first task is pushed, so that a queued task
 * always has a worker. */
static int first_worker(struct pool *p) {
    pthread_mutex_lock(&p->spawn_lock);
    int rc = 0;
    uintptr_t h = atomic_load_explicit(&p->inject, memory_order_relaxed);
    if (h & INJ_FLAGS)
        rc = br__pool_closed_code(h);
    else if (atomic_load_explicit(&p->nthreads, memory_order_relaxed) == 0)
        rc = br__pool_spawn_locked(p);
    pthread_mutex_unlock(&p->spawn_lock);
    return rc == BR_EAGAIN ? BR_ENOMEM : rc;
}

/* --- submit ------------------------------------------------------------------------ */

/* Queues t (forced: no waiting for room). Callers have refused a forked child's pool
 * already (forked_away). Inlined in pool_submit: a submit is one call deep in the pool. */
static inline __attribute__((always_inline)) int push(struct pool *p, br_task *t) {
    struct worker *w = br__pool_self;
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
            return br__pool_closed_code(h);
        if (br__deque_push(&w->dq, t) == 0) {
            br__fence_sc(); /* the Dekker pair (notes) */
            br__pool_signal_work(p, spawn);
            return 0;
        }
        /* The deque could not grow: the injection stack never allocates. */
    }
    uintptr_t h = atomic_load_explicit(&p->inject, memory_order_relaxed);
    do {
        if (BR__UNLIKELY(h & INJ_FLAGS))
            return br__pool_closed_code(h);
        t->next = br__inj_ptr(h);
    } while (!atomic_compare_exchange_weak_explicit(&p->inject, &h, (uintptr_t)t,
                                                    memory_order_seq_cst,
                                                    memory_order_relaxed));
    br__pool_signal_work(p, spawn);
    return 0;
}

int br__pool_push(struct pool *p, br_task *t) { return push(p, t); }

/* How long a submit may wait for room on a bounded pool. */
static int64_t room_deadline(const br_call *call) {
    if (call->flags & BR_CALL_NOWAIT)
        return BR_NOWAIT;
    return call->submit_deadline > 0 ? call->submit_deadline : BR_FOREVER;
}

static int pool_submit(br_executor *ex, br_task *t, const br_call *call) {
    struct pool *p = br__as_pool(ex);
    if (br__pool_forked_away(p))
        return BR_ESHUTDOWN; /* before bp.lock, which may have been held at the fork */
    bool inside = false; /* joined bp_inside: bp_leave is then our last access to p */
    if (p->max_pending) {
        struct worker *w = br__pool_self;
        int rc;
        if (w != NULL && w->pool == p) {
            /* A worker never waits for room: if every worker did, nobody would make
             * any. Its task counts, and may take pending past the bound. */
            atomic_fetch_add_explicit(&p->pending, 1, memory_order_seq_cst);
            rc = 0;
        } else {
            rc = br__pool_pending_reserve(p, room_deadline(call), &inside);
        }
        if (rc != 0) {
            if (inside)
                br__pool_bp_leave(p);
            return rc;
        }
    }
    int rc = push(p, t);
    if (BR__UNLIKELY(rc != 0) && p->max_pending)
        br__pool_pending_release(p);
    if (BR__UNLIKELY(inside))
        br__pool_bp_leave(p);
    return rc;
}

/* Queues tasks[0..n) in order with one wake-up (no waiting for room). From outside
 * the pool: one CAS pushes the whole chain, linked newest first as n pushes would have
 * left it, so the batch lands on the stack at one instant, in order, or (closed) not
 * at all. From a worker: onto its deque, one fence and one signal; if the deque can't
 * grow, the rest goes on the stack. Returns the number queued in *queued (a prefix). */
static int push_batch(struct pool *p, br_task *const tasks[], size_t n, size_t *queued) {
    struct worker *w = br__pool_self;
    bool spawn = true;
    size_t i = 0;
    *queued = 0;
    if (BR__UNLIKELY(atomic_load_explicit(&p->nthreads, memory_order_acquire) == 0)) {
        int rc = first_worker(p);
        if (rc != 0)
            return rc;
        spawn = false;
    }
    if (w != NULL && w->pool == p && p->max_workers > 1) {
        uintptr_t h = atomic_load_explicit(&p->inject, memory_order_acquire);
        if (h & INJ_FLAGS)
            return br__pool_closed_code(h);
        while (i < n && br__deque_push(&w->dq, tasks[i]) == 0)
            i++;
        if (i == n) {
            br__fence_sc(); /* the Dekker pair (notes) */
            br__pool_signal_work(p, spawn);
            *queued = n;
            return 0;
        }
        /* The deque could not grow: the rest go on the injection stack. */
        *queued = i;
        br__fence_sc();
    }
    /* Tagged links: the older task is of the same batch (sched.c, "Runs"). */
    for (size_t j = i + 1; j < n; j++)
        tasks[j]->next = (br_task *)((uintptr_t)tasks[j - 1] | BR__DEQUE_CONT);
    uintptr_t h = atomic_load_explicit(&p->inject, memory_order_relaxed);
    do {
        if (BR__UNLIKELY(h & INJ_FLAGS)) {
            if (i > 0)
                br__pool_signal_work(p, spawn); /* for the ones on the deque */
            return br__pool_closed_code(h);
        }
        tasks[i]->next = br__inj_ptr(h);
    } while (!atomic_compare_exchange_weak_explicit(&p->inject, &h, (uintptr_t)tasks[n - 1],
                                                    memory_order_seq_cst,
                                                    memory_order_relaxed));
    *queued = n;
    br__pool_signal_work(p, spawn);
    return 0;
}

/* Reserves room for up to want tasks at once (max_pending): how many it got. */
static size_t reserve_some(struct pool *p, size_t want) {
    int64_t n = atomic_load_explicit(&p->pending, memory_order_relaxed);
    for (;;) {
        int64_t room = p->max_pending - n;
        if (room <= 0)
            return 0;
        int64_t k = (uint64_t)room < want ? room : (int64_t)want;
        if (atomic_compare_exchange_weak_explicit(
                &p->pending, &n, n + k, memory_order_seq_cst, memory_order_relaxed))
            return (size_t)k;
    }
}

/* vt->submit_batch: the batch as one push and one wake-up; on a pool with max_pending,
 * as many pushes as the room it waits for comes in pieces (a prefix stays queued if
 * the wait fails, braid/executor.h). */
static int pool_submit_batch(br_executor *ex, br_task *const tasks[], size_t n,
                             const br_call *call, size_t *queued) {
    struct pool *p = br__as_pool(ex);
    *queued = 0;
    if (br__pool_forked_away(p))
        return BR_ESHUTDOWN;
    struct worker *self = br__pool_self;
    if (p->max_pending == 0 || (self != NULL && self->pool == p)) {
        /* Unbounded, or a worker (which never waits for room: pool_submit). */
        if (p->max_pending)
            atomic_fetch_add_explicit(&p->pending, (int64_t)n, memory_order_seq_cst);
        int rc = push_batch(p, tasks, n, queued);
        if (BR__UNLIKELY(rc != 0) && p->max_pending)
            for (size_t j = *queued; j < n; j++)
                br__pool_pending_release(p);
        return rc;
    }
    int64_t dl = room_deadline(call);
    bool inside = false;
    int rc = 0;
    size_t done = 0;
    while (done < n) {
        size_t k = reserve_some(p, n - done);
        if (k == 0) {
            /* Full: wait for one slot as a submit would, then take what else is free. */
            rc = br__pool_pending_reserve(p, dl, &inside);
            if (rc != 0)
                break;
            k = 1 + (n - done > 1 ? reserve_some(p, n - done - 1) : 0);
        }
        size_t q;
        rc = push_batch(p, tasks + done, k, &q);
        done += q;
        if (rc != 0) {
            for (size_t j = q; j < k; j++)
                br__pool_pending_release(p);
            break;
        }
    }
    *queued = done;
    if (BR__UNLIKELY(inside))
        br__pool_bp_leave(p);
    return rc;
}

/* Joins every worker started so far (except the caller, at exit from a worker). */
static void join_all(struct pool *p) {
    if (br__pool_forked_away(p))
        return; /* its threads live (or lived) in the parent */
    pthread_mutex_lock(&p->join_lock);
    /* No spawn can start once the pool is closed; wait out one in progress. */
    pthread_mutex_lock(&p->spawn_lock);
    int n = atomic_load_explicit(&p->nthreads, memory_order_acquire);
    pthread_mutex_unlock(&p->spawn_lock);
    struct worker *self = br__pool_self;
    struct worker *const *ws = atomic_load_explicit(&p->workers, memory_order_acquire)->w;
    for (int i = p->njoined; i < n; i++) {
        if (ws[i] == self)
            continue;
        pthread_join(ws[i]->tid, NULL);
    }
    p->njoined = n;
    pthread_mutex_unlock(&p->join_lock);
}

static int pool_shutdown(br_executor *ex, bool wait, bool cancel_futures) {
    struct pool *p = br__as_pool(ex);
    uint32_t f = F_SHUTDOWN | (cancel_futures ? F_CANCEL : 0);
    atomic_fetch_or_explicit(&p->flags, f, memory_order_seq_cst);
    atomic_fetch_or_explicit(&p->inject, INJ_CLOSED, memory_order_seq_cst);
    if (br__pool_forked_away(p)) {
        /* No workers here, and its locks may have been held at the fork: nothing
         * queued will ever run in this process, so complete it all now, lock-free
         * (cancel.c). Tasks that were running at the fork never complete here. */
        br__pool_drain_all(p, cancel_futures ? BR_ECANCELED : BR_ESHUTDOWN, true);
        return 0;
    }
    if (cancel_futures) {
        br__pool_drain_all(p, BR_ECANCELED, false);
        br__pool_cancel_running(p);
    }
    br__pool_bp_wake(p, -1);
    wake_all(p);
    if (!wait)
        return 0;
    struct worker *self = br__pool_self;
    if (self != NULL && self->pool == p)
        return BR_EDEADLK;
    join_all(p);
    br__pool_bp_drain(p); /* the submitters woken above, on their way out (bounded.c) */
    return 0;
}

static void pool_destroy(br_executor *ex) {
    struct pool *p = br__as_pool(ex);
    pool_unregister(p);
    struct wtable *tab = atomic_load_explicit(&p->workers, memory_order_relaxed);
    for (int i = 0; i < p->nalloc; i++) {
        br__deque_destroy(&tab->w[i]->dq);
        br__free(tab->w[i]);
    }
    while (tab) {
        struct wtable *older = tab->retired;
        br__free(tab);
        tab = older;
    }
    br__deque_destroy(&p->fifo);
    br__free(p->prefix);
    pthread_mutex_destroy(&p->spawn_lock);
    pthread_mutex_destroy(&p->join_lock);
    pthread_mutex_destroy(&p->cancel_lock);
    br__free_poisoned(p, sizeof *p);
}

static int pool_max_workers(const br_executor *ex) {
    return ((const struct pool *)(const void *)ex)->max_workers;
}

void br__threadpool_stats(br_executor *ex, struct br__threadpool_stats *st) {
    struct pool *p = br__as_pool(ex);
    st->threads = atomic_load_explicit(&p->nthreads, memory_order_acquire);
    st->spinning = atomic_load_explicit(&p->nspinning, memory_order_acquire);
    st->sleeping = atomic_load_explicit(&p->nsleeping, memory_order_acquire);
    st->pending = atomic_load_explicit(&p->pending, memory_order_acquire);
    st->bp_waiters = atomic_load_explicit(&p->nbp_waiters, memory_order_acquire);
    st->closed = atomic_load_explicit(&p->inject, memory_order_seq_cst) & INJ_CLOSED;
    br__ilock_lock(&p->bp.lock);
    st->bp_inside = p->bp_inside;
    br__ilock_unlock(&p->bp.lock);
}

static const br_executor_vt pool_vt = {
    .kind = "thread",
    .in_process = true,
    .submit = pool_submit,
    .submit_chunk = br__chunk_runner_submit,
    .submit_batch = pool_submit_batch,
    .shutdown = pool_shutdown,
    .destroy = pool_destroy,
    .max_workers = pool_max_workers,
    .parallel_for = br__pool_parallel_for,
};

/* --- construction and the exit rule ------------------------------------------------- */

/* The pool's memory, zeroed (every counter, flag, list and queue starts at zero, as
 * the atomics' initial values), with its worker table, name prefix and fifo. NULL if
 * out of memory. */
static struct pool *pool_alloc(const br_threadpool_opts *o) {
    struct pool *p = br__aligned_alloc(BR__CACHELINE, sizeof(struct pool));
    if (p == NULL)
        return NULL;
    memset(p, 0, sizeof *p);
    /* The worker table starts small and grows with the workers (private.h). */
    size_t cap0 = o->max_workers < 8 ? (size_t)o->max_workers : 8;
    struct wtable *tab = br__calloc(1, sizeof *tab + cap0 * sizeof tab->w[0]);
    if (tab != NULL)
        tab->cap = cap0;
    atomic_init(&p->workers, tab);
    if (o->thread_name_prefix != NULL) {
        p->prefix = br__strdup(o->thread_name_prefix);
    } else {
        char buf[48];
        snprintf(buf, sizeof buf, "ThreadPoolExecutor-%d",
                 atomic_fetch_add_explicit(&pool_counter, 1, memory_order_relaxed));
        p->prefix = br__strdup(buf);
    }
    if (tab == NULL || p->prefix == NULL || br__deque_init(&p->fifo, 256) != 0) {
        br__free(tab);
        br__free(p->prefix);
        br__free(p);
        return NULL;
    }
    return p;
}

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
    /* max_pending: anything from 2^62 up means unbounded (the count is an int64). */
    if (o.max_pending >= BR_THREADPOOL_UNBOUNDED)
        o.max_pending = 0;
    int ncpu = br_cpu_count();
    if (o.max_workers == 0)
        o.max_workers = ncpu + 4 < 32 ? ncpu + 4 : 32;
    struct pool *p = pool_alloc(&o);
    if (p == NULL)
        return BR_ENOMEM;
    (void)br_executor_init(&p->base, &pool_vt);
    p->max_workers = o.max_workers;
    p->ncpu = ncpu;
    p->spin_cap = ncpu / 2 > 1 ? ncpu / 2 : 1;
    p->max_pending = (int64_t)o.max_pending;
    p->initializer = o.initializer;
    p->initarg = o.initarg;
    p->daemon = o.daemon;
    pthread_mutex_init(&p->spawn_lock, NULL);
    pthread_mutex_init(&p->join_lock, NULL);
    pthread_mutex_init(&p->cancel_lock, NULL);
    (void)br__hooks_register(&pool_hooks); /* fails only with too many hooks */
    p->asym = br__pool_asym_available();
    p->gen = atomic_load_explicit(&br__pool_fork_gen, memory_order_relaxed);
    if (!p->daemon)
        pool_register(p);
    *out = &p->base;
    return 0;
}

/* The exit registry: non-daemon pools, for the exit hook (design notes). */
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
        if (br__pool_forked_away(p))
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
    atomic_fetch_add_explicit(&br__pool_fork_gen, 1, memory_order_relaxed);
    /* The forking thread may have been a worker: in the child it is a plain thread. */
    br__pool_self = NULL;
    /* Another thread may have held reg_lock at the fork. */
    pthread_mutex_init(&reg_lock, NULL);
    pthread_cond_init(&reg_cond, NULL);
    /* membarrier registration belongs to the address space: the child's needs its own
     * (or pools made there fall back to the CAS protocol). */
    br__pool_asym_after_fork();
}

/* The executor layer's lifecycle (core/lib.h), registered at the first pool. */
static br__hooks pool_hooks = {
    .order = BR__ORDER_EXECUTOR,
    .name = "threadpool",
    .child = pool_after_fork_child,
    .at_exit = pool_at_exit,
};

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
