/* The thread pool's cancellation: running a task while it is published for cancel
 * requests, the cancel pass of shutdown(cancel_futures), and draining the queues.
 *
 * Design notes.
 *
 * Cancel requests on running tasks. br__pool_run publishes the running task in
 * worker->current between br__task_begin and br__task_finish, so that
 * shutdown(cancel_futures) can call br_future_request_cancel on it; the hard part is
 * never touching a future after its task finished (br__task_finish may free it). Two
 * protocols:
 *   - asymmetric (membarrier, platform/platform.h; the default): the worker only stores
 *     and loads (current = t; check CANCEL; run; current = 0; wait while claim == t),
 *     with compiler barriers; shutdown does the fencing with br__membarrier(), which
 *     runs a full barrier on every CPU running one of our threads. Shutdown sets
 *     CANCEL, fences, reads current (a worker whose store it missed reads CANCEL after
 *     the fence and cancels itself); to use a task c it stores claim = c, fences, and
 *     re-reads current: if it still holds c, the worker's later load of claim sees c,
 *     so the worker waits until shutdown clears claim. This is the Dekker pattern with
 *     one side's fences moved into a syscall, as liburcu and folly's hazard pointers
 *     do; it costs the task's path nothing.
 *   - CAS (where membarrier is missing): current is set with a seq_cst exchange and
 *     cleared with a CAS; shutdown marks it BUSY with a CAS while it requests the
 *     cancel, and the worker's clearing CAS waits BUSY out.
 * cancel_lock serializes shutdowns' cancel passes (one claimer per worker at a time).
 *
 * Draining. Shutdown with cancel_futures and a broken pool take every queued task out
 * of the pool and abandon it (br__pool_drain_all): the stack, spill, the fifo, the
 * workers' runs and their deques. A worker's claim of a run holds its tasks in no
 * queue between its CAS and its fill; `runs` counts it (sched.c, "Runs"), and the
 * drain empties the runs until `runs` is 0, so such tasks are cancelled before the
 * shutdown returns, not when their worker gets to them. In a forked child the same
 * drain completes what was queued at the fork, lock-free (below).
 */
#include "executor/pool/private.h"

#include <sched.h>

/* Whether membarrier works here: decided at the first pool (pthread_once), and again
 * in a forked child (the registration belongs to the address space). */
static bool asym_ok;
static pthread_once_t asym_once = PTHREAD_ONCE_INIT;
bool br__pool_no_membarrier;

static void asym_init(void) { asym_ok = br__membarrier_init(); }

bool br__pool_asym_available(void) {
    pthread_once(&asym_once, asym_init);
    return asym_ok && !br__pool_no_membarrier;
}

void br__pool_asym_after_fork(void) {
    if (asym_ok)
        asym_ok = br__membarrier_init(); /* registering again is harmless */
}

/* A full barrier on every CPU running one of this process's threads. 0 or -1. */
static inline int heavy_fence(void) { return br__membarrier(); }

/* Runs the task's function with t published in w->current (the notes). */
static int call_published(struct worker *w, br_task *t) {
    struct pool *p = w->pool;
    int rc;
    if (p->asym) {
        atomic_store_explicit(&w->current, (uintptr_t)t, memory_order_relaxed);
        atomic_signal_fence(memory_order_seq_cst); /* the other side fences for both */
        if (BR__UNLIKELY(atomic_load_explicit(&p->flags, memory_order_relaxed) & F_CANCEL))
            br_future_request_cancel(br__task_future(t));
        rc = br__task_call(t);
        atomic_store_explicit(&w->current, 0, memory_order_relaxed);
        atomic_signal_fence(memory_order_seq_cst);
        while (BR__UNLIKELY(atomic_load_explicit(&w->claim, memory_order_acquire) ==
                            (uintptr_t)t))
            br__cpu_relax(); /* shutdown is requesting a cancel on t right now */
        return rc;
    }
    atomic_store_explicit(&w->current, (uintptr_t)t, memory_order_seq_cst);
    if (BR__UNLIKELY(atomic_load_explicit(&p->flags, memory_order_seq_cst) & F_CANCEL))
        br_future_request_cancel(br__task_future(t));
    rc = br__task_call(t);
    uintptr_t c = (uintptr_t)t;
    while (!atomic_compare_exchange_weak_explicit(&w->current, &c, 0, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
        c = (uintptr_t)t; /* BUSY: shutdown is requesting a cancel right now */
        br__cpu_relax();
    }
    return rc;
}

void br__pool_run(struct worker *w, br_task *t) {
    struct pool *p = w->pool;
    /* The next task was most likely written by another CPU (the submitter): start
     * fetching its future's state line and its task line while this one runs. */
    br_task *nx;
    uint64_t rw = atomic_load_explicit(&w->run.word, memory_order_relaxed);
    if (!br__deque_owner_empty(&w->dq))
        nx = br__deque_peek(&w->dq);
    else if (br__run_size(rw) != 0)
        nx = atomic_load_explicit(&w->run.slot[br__run_lo(rw) & (RUN_MAX - 1)],
                                  memory_order_relaxed);
    else
        nx = br__deque_peek_top(&p->fifo);
    if (nx != NULL) {
        __builtin_prefetch(br__task_future(nx), 0);
        __builtin_prefetch(nx, 0);
    }
    if (p->max_pending)
        br__pool_pending_release(p);
    uint32_t fl = atomic_load_explicit(&p->flags, memory_order_acquire);
    if (BR__UNLIKELY(fl & (F_CANCEL | F_BROKEN))) {
        br__task_abandon(t, (fl & F_BROKEN) ? BR_EBROKEN : BR_ECANCELED);
        return;
    }
    if (!br__task_begin(t))
        return; /* cancelled while queued, or expired: completed already */
    br__task_finish(t, call_published(w, t));
}

/* Takes every task out of the workers' runs and abandons it with code (drain_all). */
static void drain_runs(struct pool *p, struct worker *const *ws, int n, int code,
                       bool release) {
    for (int i = 0; i < n; i++) {
        for (;;) {
            br_task *buf[RUN_MAX];
            bool emptied;
            int m = br__run_grab(&ws[i]->run, buf, RUN_MAX, false, &emptied);
            if (m == 0)
                break;
            if (m < 0) {
                br__cpu_relax();
                continue;
            }
            if (emptied)
                atomic_fetch_sub_explicit(&p->runs, 1, memory_order_seq_cst);
            for (int j = 0; j < m; j++) {
                if (release)
                    br__pool_pending_release(p);
                br__task_abandon(buf[j], code);
            }
        }
    }
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
void br__pool_drain_all(struct pool *p, int code, bool child) {
    uintptr_t h = atomic_load_explicit(&p->inject, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&p->inject, &h, h & INJ_FLAGS,
                                                  memory_order_acquire, memory_order_relaxed))
        ;
    br_task *list[2] = {br__inj_ptr(h), NULL};
    /* A mover holds fifo_lock for a few instructions, unless it is preempted. */
    for (unsigned i = 1; !child && !br__pool_fifo_trylock(p); i++) {
        br__cpu_relax();
        if ((i & 63) == 0)
            sched_yield();
    }
    list[1] = atomic_exchange_explicit(&p->spill, NULL, memory_order_relaxed);
    if (!child)
        br__pool_fifo_unlock(p);
    bool release = p->max_pending && !child;
    for (int k = 0; k < 2; k++)
        for (br_task *t = list[k]; t != NULL;) {
            br_task *next = br__pool_link(t);
            if (release)
                br__pool_pending_release(p);
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
            br__pool_pending_release(p);
        br__task_abandon(t, code);
    }
    /* The workers' runs: taken from the fifo, not started (sched.c, "Runs"). The fifo
     * is empty now and the stack closed, so runs only shrink; but a claim between its
     * CAS and its fill holds tasks that no run shows yet: wait until `runs` is 0 (a
     * few instructions, unless its worker is preempted), draining the runs meanwhile.
     * Not in a child: a claim frozen by the fork never finishes. */
    int n;
    struct worker *const *ws = br__pool_workers(p, &n);
    for (unsigned spin = 1;; spin++) {
        drain_runs(p, ws, n, code, release);
        if (child || atomic_load_explicit(&p->runs, memory_order_seq_cst) == 0)
            break;
        br__cpu_relax();
        if ((spin & 63) == 0)
            sched_yield();
    }
    for (int i = 0; i < n; i++) {
        br__deque *d = &ws[i]->dq;
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
                br__pool_pending_release(p);
            br__task_abandon(t, code);
        }
    }
}

/* Asks every running task to stop (shutdown with cancel_futures; F_CANCEL is set). */
void br__pool_cancel_running(struct pool *p) {
    pthread_mutex_lock(&p->cancel_lock);
    int n;
    struct worker *const *ws = br__pool_workers(p, &n);
    if (p->asym) {
        /* A worker whose `current` this fence doesn't reveal reads F_CANCEL after it. */
        if (heavy_fence() != 0)
            goto out; /* can't happen once registered; never risk a freed future */
        for (int i = 0; i < n; i++) {
            struct worker *w = ws[i];
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
            struct worker *w = ws[i];
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
void br__pool_break(struct pool *p) {
    atomic_fetch_or_explicit(&p->flags, F_BROKEN, memory_order_seq_cst);
    atomic_fetch_or_explicit(&p->inject, INJ_BROKEN, memory_order_seq_cst);
    br__pool_drain_all(p, BR_EBROKEN, false);
    br__pool_bp_wake(p, -1);
}

