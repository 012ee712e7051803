/* br_wait: concurrent.futures.wait over any mix of futures.
 *
 * Design notes: the watcher protocol.
 *
 * A call first looks at every distinct future once (duplicates are found by pointer:
 * a quadratic scan for small n, a sort of indices beyond). Futures already done are
 * counted and cost nothing more. If `when` already holds, or the deadline is
 * BR_NOWAIT, the call returns without registering anything.
 *
 * Otherwise it links one watcher (future/internal.h) into each distinct pending
 * future: the nodes live on the caller's stack for small n and in one allocation
 * beyond. All of them point at one context on the caller's stack holding two atomic
 * counters (done, failed), the goal and a br__waiter. A watcher's fn runs on the
 * completing thread under that future's lock: it bumps the counters and, the first time
 * the goal is met, signals the waiter. A registration that finds its future done
 * meanwhile counts it itself. The caller then parks until signalled or the deadline.
 *
 * Leaving is always the same: unwatch every node. br__future_unwatch takes the
 * future's lock, so when it returns the node's fn has either never run or has
 * finished; after the last unwatch nothing can touch the context, and the stack frame
 * may go. If the park timed out but a fn signalled meanwhile, the signal is taken
 * before leaving (core rule 2), so a coroutine's parker never keeps a stray wake-up. (That is why the fn runs under the future's lock: the lock doubles as the
 * "fn has finished" handshake, and the waiter's signal word needs no extra rule.) The
 * sets and the return code are computed from the futures' states after that, so they
 * always agree: 0 if `when` holds for the sets returned.
 *
 * Cost: one watch and one unwatch (a lock each) per distinct pending future per call,
 * no allocation for n <= STACK_N, and O(1) work per completion.
 */
#include "future/impl.h"

#include <stdlib.h>
#include <string.h>

enum { STACK_N = 16, SORT_N = 32 };

typedef struct wait_ctx {
    _Atomic size_t ndone;
    _Atomic size_t nfailed;
    _Atomic bool signalled;
    size_t total; /* distinct futures */
    br_return_when when;
    br__waiter w;
} wait_ctx;

static bool goal_met(br_return_when when, size_t ndone, size_t nfailed, size_t total) {
    switch (when) {
    case BR_FIRST_COMPLETED:
        return ndone > 0 || total == 0;
    case BR_FIRST_EXCEPTION:
        return nfailed > 0 || ndone == total;
    default:
        return ndone == total;
    }
}

/* A done future that counts for FIRST_EXCEPTION: finished with a failure (a
 * cancellation doesn't count, as in Python). */
static bool is_failure(const br_future *f) {
    return (atomic_load_explicit(&((br_future *)f)->st, memory_order_acquire) &
            BR__FS_MASK) == BR__FS_FINISHED &&
           f->code < 0;
}

/* Counts f as done; returns true if that met the goal for the first time. */
static bool count_done(wait_ctx *c, const br_future *f) {
    size_t nf = atomic_load_explicit(&c->nfailed, memory_order_relaxed);
    if (is_failure(f))
        nf = atomic_fetch_add_explicit(&c->nfailed, 1, memory_order_relaxed) + 1;
    size_t nd = atomic_fetch_add_explicit(&c->ndone, 1, memory_order_relaxed) + 1;
    if (!goal_met(c->when, nd, nf, c->total))
        return false;
    return !atomic_exchange_explicit(&c->signalled, true, memory_order_relaxed);
}

static void on_done(br__watcher *w, br_future *f) {
    wait_ctx *c = w->arg;
    if (count_done(c, f))
        br__waiter_wake(&c->w); /* the caller can't leave before it unwatches us */
}

typedef struct {
    uintptr_t p;
    size_t i;
} ptr_idx;

static int cmp_ptr_idx(const void *a_, const void *b_) {
    const ptr_idx *a = a_, *b = b_;
    if (a->p != b->p)
        return a->p < b->p ? -1 : 1;
    return a->i < b->i ? -1 : (a->i > b->i);
}

int br__future_dedupe(br_future *const fs[], size_t n, unsigned char *dup) {
    memset(dup, 0, n);
    if (n <= SORT_N) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (fs[j] == fs[i]) {
                    dup[i] = 1;
                    break;
                }
        return 0;
    }
    ptr_idx *v = malloc(n * sizeof *v);
    if (v == NULL)
        return BR_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        v[i].p = (uintptr_t)fs[i];
        v[i].i = i;
    }
    qsort(v, n, sizeof *v, cmp_ptr_idx);
    for (size_t i = 1; i < n; i++)
        if (v[i].p == v[i - 1].p)
            dup[v[i].i] = 1; /* sorted by (pointer, index): the first stays */
    free(v);
    return 0;
}

int br_wait(br_future *const fs[], size_t n, br_return_when when, int64_t deadline,
            br_future *sets[], size_t *ndone, size_t *nnot_done) {
    if (ndone)
        *ndone = 0;
    if (nnot_done)
        *nnot_done = 0;
    if ((fs == NULL && n > 0) || (when != BR_ALL_COMPLETED && when != BR_FIRST_COMPLETED &&
                                  when != BR_FIRST_EXCEPTION))
        return BR__MISUSE(BR_EINVAL, "br_wait: bad futures or return_when");
    for (size_t i = 0; i < n; i++)
        if (!br__future_ok(fs[i]))
            return BR__MISUSE(BR_EINVAL, "br_wait: not a live future");

    unsigned char dup_stack[STACK_N];
    br__watcher nodes_stack[STACK_N];
    unsigned char *dup = n <= STACK_N ? dup_stack : malloc(n ? n : 1);
    br__watcher *nodes = NULL;
    int rc = 0;
    if (dup == NULL)
        return BR_ENOMEM;
    if ((rc = br__future_dedupe(fs, n, dup)) != 0)
        goto out;

    wait_ctx c;
    atomic_init(&c.ndone, 0);
    atomic_init(&c.nfailed, 0);
    atomic_init(&c.signalled, false);
    c.when = when;
    c.total = 0;
    for (size_t i = 0; i < n; i++)
        c.total += !dup[i]; /* before any counting: the goal depends on it */
    size_t npending = 0;
    for (size_t i = 0; i < n; i++) {
        if (dup[i])
            continue;
        if (br__fs_done(atomic_load_explicit(&fs[i]->st, memory_order_acquire))) {
            count_done(&c, fs[i]);
            dup[i] = 2; /* counted */
        } else {
            npending++;
        }
    }

    if (npending > 0 && deadline > 0 &&
        !goal_met(when, atomic_load(&c.ndone), atomic_load(&c.nfailed), c.total)) {
        nodes = npending <= STACK_N ? nodes_stack : malloc(npending * sizeof *nodes);
        if (nodes == NULL) {
            rc = BR_ENOMEM;
            goto out;
        }
        br__waiter_init(&c.w);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (dup[i])
                continue;
            /* Bail out of registering once the goal is met (e.g. FIRST_COMPLETED). */
            if (atomic_load_explicit(&c.signalled, memory_order_relaxed))
                break;
            br__watcher *w = &nodes[k];
            w->fn = on_done;
            w->arg = &c;
            w->data = i;
            if (br__future_watch(fs[i], w))
                k++;
            else
                count_done(&c, fs[i]); /* done meanwhile: count it ourselves */
        }
        int prc = 0;
        if (!atomic_load_explicit(&c.signalled, memory_order_relaxed))
            prc = br__waiter_park(&c.w, deadline);
        for (size_t j = 0; j < k; j++)
            br__future_unwatch(fs[nodes[j].data], &nodes[j]);
        /* Core rule 2: a watcher may have signalled us between the timeout and the
         * unwatch. It has finished (the unwatches took its lock), so the signal is
         * there to take: take it, so that no parker (a coroutine's) is left with a
         * wake-up for a wait that is over. Returns at once. */
        if (prc == BR_ETIMEDOUT && atomic_load_explicit(&c.signalled, memory_order_relaxed))
            while (br__waiter_park(&c.w, BR_FOREVER) != 0)
                ;
    }

    /* The sets and the answer, from one snapshot of the states (mark 2: done). */
    size_t nd = 0, nf = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        if (dup[i] == 1)
            continue;
        total++;
        dup[i] = 0;
        if (br__fs_done(atomic_load_explicit(&fs[i]->st, memory_order_acquire))) {
            dup[i] = 2;
            nd++;
            if (is_failure(fs[i]))
                nf++;
        }
    }
    if (sets) {
        /* sets may be fs itself (wait in place): then read from a copy */
        br_future *copy_stack[STACK_N];
        br_future *const *src = fs;
        if ((const void *)sets == (const void *)fs && n > 0) {
            br_future **copy = n <= STACK_N ? copy_stack : malloc(n * sizeof *copy);
            if (copy == NULL) {
                rc = BR_ENOMEM;
                goto out;
            }
            memcpy(copy, fs, n * sizeof *copy);
            src = copy;
        }
        size_t a = 0, b = nd;
        for (size_t i = 0; i < n; i++) {
            if (dup[i] == 2)
                sets[a++] = src[i];
            else if (dup[i] == 0)
                sets[b++] = src[i];
        }
        if (src != fs && src != copy_stack)
            free((void *)src);
    }
    if (ndone)
        *ndone = nd;
    if (nnot_done)
        *nnot_done = total - nd;
    rc = goal_met(when, nd, nf, total) ? 0 : BR_ETIMEDOUT;

out:
    if (nodes != NULL && nodes != nodes_stack)
        free(nodes);
    if (dup != dup_stack)
        free(dup);
    return rc;
}
