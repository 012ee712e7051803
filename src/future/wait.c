/* br_wait: concurrent.futures.wait over any mix of futures.
 *
 * Design notes.
 *
 * Positions, not distinct futures. Whether `when` holds doesn't depend on duplicates:
 * every position is done iff every distinct future is, some position is done (or
 * failed) iff some future is. So the waiting works on positions, and duplicates are
 * found only when the caller asks for what they change: the sets and the two counts
 * (Python's `done` and `not_done` are sets). A call first looks at every position
 * once (checking the handle and the state in one read of the future's first line);
 * positions already done cost nothing more. If `when` already holds, or the deadline
 * is BR_NOWAIT, it goes straight to the answer.
 *
 * ALL_COMPLETED waits for the pending positions one at a time, from the last to the
 * first, through the future's own waiter (br__future_wait_done). Executors run tasks
 * roughly in submission order, so by the time the last one is done nearly every
 * earlier one is too: the common case registers one waiter for the whole call, and
 * the completers of all the other futures stay on their lock-free path. (Going
 * forward instead, the waiter would catch up with the workers and register on nearly
 * every future.)
 *
 * FIRST_COMPLETED and FIRST_EXCEPTION need to hear about any completion, so they link
 * one watcher (future/for_executors.h) into each pending position's future: the nodes live
 * on the caller's stack for small n and in one allocation beyond. All of them point at
 * one context on the caller's stack holding two atomic counters (done, failed), the
 * goal and a br__waiter. A watcher's fn runs on the completing thread under that
 * future's lock: it bumps the counters and, the first time the goal is met, signals
 * the waiter. A registration that finds its future done meanwhile counts it itself.
 * The caller then parks until signalled or the deadline. Leaving is always the same:
 * unwatch every node. br__future_unwatch takes the future's lock, so when it returns
 * the node's fn has either never run or has finished; after the last unwatch nothing
 * can touch the context, and the stack frame may go. If the park timed out (or was
 * cancelled) but a fn signalled meanwhile, the signal is taken before leaving (core
 * rule 2), so a coroutine's parker never keeps a stray wake-up. (That is why the fn
 * runs under the future's lock: the lock doubles as the "fn has finished" handshake.)
 *
 * Cancellation (a coroutine's, core/lib.h). br_wait only looks, so a cancelled call
 * has nothing to undo but its registrations, and it returns BR_ECANCELED without
 * filling in the sets or the counts (the caller is on its way out, and an in-place fs
 * stays as it was). ALL_COMPLETED: the future-by-future wait that is cancelled
 * returns BR_ECANCELED (its waiter unlinked itself, core rule 2); a wait in which the
 * future's completion won keeps the cancel pending, so the next future still pending
 * reports it at once. FIRST_*: a cancelled park leaves the same way as a timed-out
 * one, unwatching every node. Then, if some watcher met the goal before it was
 * unwatched, its signal is taken (uncancellably: it has been sent) and the call
 * answers 0 as if the wake had won, with the cancel posted again; otherwise it returns
 * BR_ECANCELED. A cancel pending on entry ends the call only if it has to park: a goal
 * already met, or BR_NOWAIT, answers as usual and leaves the cancel pending.
 *
 * The answer. With sets or counts asked for, duplicates are marked in O(n) (an
 * open-addressing set of pointers), each distinct future's state is read once, and
 * the sets, the counts and the return code all come from that one snapshot, so they
 * always agree. Without, the return code comes from the positions.
 *
 * Cost: one pass over the input; per pending future at most one registration (a lock)
 * and its removal; no allocation unless the sets or counts are asked for with n >
 * STACK_N (a mark per position; the pointer set beyond SMALL), or FIRST_* has more
 * than STACK_N pending futures.
 */
#include "future/private.h"

#include <string.h>

enum { STACK_N = 16, SMALL = 32 };

typedef struct wait_ctx {
    _Atomic size_t ndone;
    _Atomic size_t nfailed;
    _Atomic bool signalled;
    size_t total; /* positions */
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
 * cancellation doesn't count, as in Python). Reads the state again (acquire), so
 * code is the published one. */
static bool is_failure(const br_future *f) {
    return (atomic_load_explicit(&((br_future *)f)->st, memory_order_acquire) &
            BR__FS_MASK) == BR__FS_FINISHED &&
           f->code < 0;
}

static inline bool is_done(const br_future *f) {
    return br__fs_done(atomic_load_explicit(&((br_future *)f)->st, memory_order_acquire));
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

/* --- duplicates ---------------------------------------------------------------------- */

static inline size_t ptr_hash(const void *p, unsigned shift) {
    return (size_t)(((uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull) >> shift);
}

int br__future_dedupe(br_future *const fs[], size_t n, unsigned char *dup) {
    memset(dup, 0, n);
    if (n <= SMALL) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (fs[j] == fs[i]) {
                    dup[i] = 1;
                    break;
                }
        return 0;
    }
    /* Linear probing in a table at most half full: O(1) expected per entry. */
    unsigned bits = 1;
    while (((size_t)1 << bits) < 2 * n)
        bits++;
    size_t mask = ((size_t)1 << bits) - 1;
    const void **tab = br__calloc(mask + 1, sizeof *tab);
    if (tab == NULL)
        return BR_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const void *p = fs[i];
        size_t h = ptr_hash(p, 64 - bits);
        for (;;) {
            if (tab[h] == NULL) {
                tab[h] = p;
                break;
            }
            if (tab[h] == p) {
                dup[i] = 1; /* input order: the first occurrence stays */
                break;
            }
            h = (h + 1) & mask;
        }
    }
    br__free(tab);
    return 0;
}

/* --- waiting ------------------------------------------------------------------------- */

/* FIRST_COMPLETED / FIRST_EXCEPTION with pending futures: watch them all (notes).
 * npending: how many positions the first pass saw pending (the most nodes needed). */
static int wait_any(br_future *const fs[], size_t n, size_t npending, br_return_when when,
                    int64_t deadline) {
    br__watcher stack_nodes[STACK_N];
    /* Park memory (core/lib.h): the futures' lists link the nodes while we park. */
    br__watcher *nodes = br__park_array(stack_nodes, STACK_N, npending, sizeof *nodes);
    if (nodes == NULL)
        return BR_ENOMEM;
    BR__PARKED(wait_ctx, c);
    atomic_init(&c->ndone, 0);
    atomic_init(&c->nfailed, 0);
    atomic_init(&c->signalled, false);
    c->when = when;
    c->total = n;
    br__waiter_init(&c->w);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        /* Bail out of registering once the goal is met. */
        if (atomic_load_explicit(&c->signalled, memory_order_relaxed))
            break;
        if (is_done(fs[i]) || k == npending) { /* (k == npending: it is done) */
            count_done(c, fs[i]);
            continue;
        }
        br__watcher *w = &nodes[k];
        w->fn = on_done;
        w->arg = c;
        w->data = i;
        if (br__future_watch(fs[i], w))
            k++;
        else
            count_done(c, fs[i]); /* done meanwhile: count it ourselves */
    }
    int prc = 0;
    if (!atomic_load_explicit(&c->signalled, memory_order_relaxed))
        prc = br__waiter_park(&c->w, deadline);
    for (size_t j = 0; j < k; j++)
        br__future_unwatch(fs[nodes[j].data], &nodes[j]);
    int rc = 0;
    if (prc != 0) {
        if (atomic_load_explicit(&c->signalled, memory_order_relaxed)) {
            /* Core rule 2: a watcher signalled us between the timeout or cancel and
             * the unwatch. It has finished (the unwatches took its lock), so the
             * signal is there to take: take it (it comes at once, and no cancel may
             * cut this wait short), so that no parker (a coroutine's) is left with a
             * wake-up for a wait that is over. The goal was met: a cancel it overtook
             * is posted again and the call answers as if the wake had come first. */
            br__waiter_park_until_signalled(&c->w);
            if (prc == BR_ECANCELED)
                br__waiter_repost_cancel(&c->w);
        } else if (prc == BR_ECANCELED) {
            rc = BR_ECANCELED;
        }
    }
    if (nodes != stack_nodes)
        br__free(nodes);
    return rc;
}

/* The sets and the counts, from one snapshot of the distinct futures' states. */
static int answer_sets(br_future *const fs[], size_t n, br_return_when when,
                       br_future *sets[], size_t *ndone, size_t *nnot_done) {
    unsigned char dup_stack[STACK_N];
    unsigned char *dup = n <= STACK_N ? dup_stack : br__malloc(n ? n : 1);
    if (dup == NULL)
        return BR_ENOMEM;
    int rc = br__future_dedupe(fs, n, dup);
    if (rc != 0)
        goto out;
    size_t nd = 0, nf = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        if (dup[i])
            continue;
        total++;
        if (is_done(fs[i])) {
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
            br_future **copy = n <= STACK_N ? copy_stack : br__malloc(n * sizeof *copy);
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
            br__free((void *)src);
    }
    if (ndone)
        *ndone = nd;
    if (nnot_done)
        *nnot_done = total - nd;
    rc = goal_met(when, nd, nf, total) ? 0 : BR_ETIMEDOUT;
out:
    if (dup != dup_stack)
        br__free(dup);
    return rc;
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

    /* The first pass: every handle checked, every state read once. */
    size_t first = n, last = 0, npending = 0, nfailed = 0;
    for (size_t i = 0; i < n; i++) {
        const br_future *f = fs[i];
        if (!br__future_ok(f))
            return BR__MISUSE(BR_EINVAL, "br_wait: not a live future");
        uint32_t s = atomic_load_explicit(&((br_future *)f)->st, memory_order_acquire);
        if (!br__fs_done(s)) {
            if (first == n)
                first = i;
            last = i;
            npending++;
        } else if ((s & BR__FS_MASK) == BR__FS_FINISHED && f->code < 0) {
            nfailed++;
        }
    }

    bool met = goal_met(when, n - npending, nfailed, n);
    if (!met && deadline > 0) {
        if (when == BR_ALL_COMPLETED) {
            met = true;
            for (size_t i = last + 1; i-- > first;) {
                if (is_done(fs[i]))
                    continue;
                int rc = br__future_wait_done(fs[i], deadline);
                if (rc == BR_ECANCELED)
                    return rc; /* nothing filled in (the notes) */
                if (rc != 0) {
                    met = false; /* timed out: the answer below looks again */
                    break;
                }
            }
        } else {
            int rc = wait_any(fs, n, npending, when, deadline);
            if (rc != 0)
                return rc; /* BR_ENOMEM, BR_ECANCELED: nothing filled in */
            met = false; /* the answer below looks */
        }
    }

    if (sets || ndone || nnot_done)
        return answer_sets(fs, n, when, sets, ndone, nnot_done);
    if (met)
        return 0;
    size_t nd = 0, nf = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_done(fs[i])) {
            nd++;
            if (is_failure(fs[i]))
                nf++;
        }
    }
    return goal_met(when, nd, nf, n) ? 0 : BR_ETIMEDOUT;
}
