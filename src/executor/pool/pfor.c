/* br_parallel_for on the thread pool.
 *
 * Design notes.
 *
 * One job on the caller's stack; chunks are claimed with fetch_add on `next`, so no
 * task exists per index or per chunk: the caller and up to (CPUs - 1) helper tasks
 * loop claiming chunks. When the caller runs out of chunks it cancels the helpers
 * that haven't started (their futures say CANCELLED; br__task_begin skips them without
 * touching the job) and waits for the started ones, which stop after their current
 * chunk. Nothing ever waits for a queued task, so a call from inside a worker of the
 * same pool can't deadlock even when every other worker is busy.
 *
 * Cancellation: none. The wait for the started helpers can't be cancelled (a
 * coroutine's cancel stays pending for its next wait), since they use the job on the
 * caller's stack; helpers are queued without waiting for room, so nothing else
 * parks. */
#include "executor/pool/private.h"

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

/* Splits [begin, end) into j's chunks and returns how many helpers to ask for: at most
 * one per other CPU and per worker left (the caller is one, if it is a worker of this
 * pool), and never more than there are chunks beyond the caller's first. */
static int plan(struct pool *p, bool inside, struct pfor *j, int64_t begin, int64_t end,
                int64_t grain) {
    j->n = (uint64_t)end - (uint64_t)begin;
    j->begin = begin;
    int helpers = p->ncpu - 1;
    if (helpers > p->max_workers - (inside ? 1 : 0))
        helpers = p->max_workers - (inside ? 1 : 0);
    if (helpers > PFOR_MAX_HELPERS)
        helpers = PFOR_MAX_HELPERS;
    if (helpers < 0)
        helpers = 0;
    if (grain <= 0) {
        uint64_t chunks = (uint64_t)(helpers + 1) * 8;
        grain = (int64_t)(j->n / chunks + (j->n % chunks != 0));
        if (grain <= 0)
            grain = 1;
    }
    j->grain = (uint64_t)grain;
    j->nchunks = j->n / j->grain + (j->n % j->grain != 0);
    if ((uint64_t)helpers > j->nchunks - 1)
        helpers = (int)(j->nchunks - 1);
    return helpers;
}

/* Queues one helper task on j; its future (two references: ours and the pool's), or
 * NULL if it couldn't be made or queued (the caller does its share then). */
static br_future *queue_helper(struct pool *p, struct pfor *j) {
    int64_t jp = (int64_t)(uintptr_t)j;
    br_future *f = br__task_prepare(pfor_task, &jp, sizeof jp,
                                    BR__ARG_COPY | BR__ARG_IN_PROCESS, BR_FOREVER, 2);
    if (f == NULL)
        return NULL;
    if (p->max_pending)
        atomic_fetch_add_explicit(&p->pending, 1, memory_order_seq_cst);
    if (br__pool_push(p, br__future_task(f)) != 0) {
        if (p->max_pending)
            br__pool_pending_release(p);
        br_future_release(f);
        br_future_release(f);
        return NULL;
    }
    return f;
}

int br__pool_parallel_for(br_executor *ex, int64_t begin, int64_t end, int64_t grain,
                          br_range_fn fn, void *ctx) {
    struct pool *p = br__as_pool(ex);
    uintptr_t h = atomic_load_explicit(&p->inject, memory_order_acquire);
    if (h & INJ_FLAGS)
        return br__pool_closed_code(h);
    if (br__pool_forked_away(p))
        return BR_ESHUTDOWN;
    struct worker *self = br__pool_self;
    struct pfor j;
    int helpers = plan(p, self != NULL && self->pool == p, &j, begin, end, grain);
    atomic_init(&j.next, 0);
    atomic_init(&j.err, 0);
    j.fn = fn;
    j.ctx = ctx;

    br_future *fs[PFOR_MAX_HELPERS];
    int nf = 0;
    while (nf < helpers && (fs[nf] = queue_helper(p, &j)) != NULL)
        nf++;
    pfor_loop(&j);
    for (int i = 0; i < nf; i++) {
        if (!br_future_cancel(fs[i]))
            br__future_wait_done_nocancel(fs[i]); /* it uses j, on our stack */
        br_future_release(fs[i]);
    }
    return atomic_load_explicit(&j.err, memory_order_relaxed);
}
