/* Listening to a future: waiters, watchers and done-callbacks on one list, the
 * notification that a completion sends them, and blocking until a future is done.
 *
 * Design notes.
 *
 * Listeners and the fast path. Waiters, watchers and callbacks are nodes (br__lnode)
 * on one doubly linked list, f->u.lst, newest first, guarded by f->lock (a br__ilock);
 * the first callback goes in the block itself (cb0) instead. A registrant takes the
 * lock, sets LISTENERS with an acq_rel RMW, and if the RMW shows the future already
 * done it backs off (and handles "done" itself); otherwise it links its node and drops
 * the lock. The completer publishes (RMW) and takes the lock only if the old value had
 * LISTENERS. No notification is lost: the two RMWs are ordered in the word's
 * modification order. If the registrant's came first, the completer sees LISTENERS,
 * and its lock acquisition comes after the registrant's unlock (had the completer held
 * the lock first, its publish would happen-before the registrant's RMW, contradicting
 * the order), so the node is there to find. If the publish came first, the registrant
 * sees done. So a future that nobody waits on completes with one CAS (start) and one
 * RMW (finish), plus its reference drop: no lock, no syscall. LISTENERS is never
 * cleared (a waiter that timed out leaves it set; the cost is one needless lock at
 * completion). A blocking thread registers only after watching the state for the
 * parker's spin time (br__future_wait_done), so a future that completes within it (a
 * round trip to an idle pool) stays on that path too.
 *
 * Cancellation (a coroutine's, core/lib.h). A wait whose park is cancelled unlinks its
 * node under f->lock and returns BR_ECANCELED; the future is untouched (a cancelled
 * wait is a timeout with another code, and LISTENERS stays set as after a timeout). If
 * notify popped the node first, the future is done: the wait returns 0 and the cancel
 * is posted again for the context's next wait. A waiter never consumes anything but
 * its own wake, so nothing is lost either way. The library's own waits that guard
 * memory (a map's free, parallel_for's helpers) use br__future_wait_done_nocancel.
 *
 * Notification: under the lock the completer detaches the list, runs the watchers and
 * sorts out the waiters and callbacks; after the lock it wakes the waiters (core rule
 * 1) and then runs the callbacks in the order they were added (cb0 first, then the
 * list from its oldest end), on the completing thread. A callback added after
 * completion runs at once on the adding thread. A callback may drop the last
 * reference: whoever notifies holds a reference of its own until the callbacks have
 * run (br__task_finish holds the executor's; the public completers take a temporary
 * one).
 */
#include "future/private.h"

#include <stdio.h>
#include <stdlib.h>

/* A thread (or coroutine) blocked in br__future_wait_done: its node, on its stack. */
typedef struct wait_node {
    br__lnode node;
    br__waiter *w;
    br_future *f;
} wait_node;

/* Caller holds f->lock. */
static void lst_link(br_future *f, br__lnode *n, uint32_t kind) {
    n->kind = kind;
    n->prev = NULL;
    n->next = f->u.lst;
    if (n->next)
        n->next->prev = n;
    f->u.lst = n;
    n->linked = 1;
}

/* Caller holds f->lock; n is linked. */
static void lst_unlink(br_future *f, br__lnode *n) {
    if (n->prev)
        n->prev->next = n->next;
    else
        f->u.lst = n->next;
    if (n->next)
        n->next->prev = n->prev;
    n->next = n->prev = NULL;
    n->linked = 0;
}

/* A waiter whose park timed out or was cancelled leaves the list (under f->lock). */
static void wait_unlink(br__waiter *w, void *arg, int why) {
    (void)why;
    wait_node *n = arg;
    lst_unlink(n->f, &n->node);
    w->linked = 0;
}

void br__future_notify(br_future *f, bool temp_ref) {
    if (temp_ref)
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    br__waiter *waiters = NULL; /* the blocked waiters, chained through their next */
    br__lnode *cbs = NULL;      /* relinked through next, oldest first */
    br__ilock_lock(&f->lock);
    br__lnode *n = f->u.lst;
    f->u.lst = NULL;
    br_done_fn c0 = f->cb0_fn;
    void *c0arg = f->cb0_arg;
    f->cb0_fn = NULL;
    while (n) {
        br__lnode *next = n->next; /* newest first */
        n->linked = 0;
        n->prev = NULL;
        if (n->kind == BR__LN_WATCH) {
            br__watcher *w = (br__watcher *)(void *)n;
            w->fn(w, f);
        } else if (n->kind == BR__LN_WAIT) {
            br__waiter *w = ((wait_node *)(void *)n)->w;
            w->linked = 0; /* popped: the wake is on its way (core rule 2) */
            w->next = waiters;
            waiters = w;
        } else {
            n->next = cbs; /* prepending reverses: oldest first */
            cbs = n;
        }
        n = next;
    }
    br__ilock_unlock(&f->lock);
    br__wake_chain(waiters);
    if (c0)
        c0(f, c0arg);
    while (cbs) {
        struct br__cb *cb = (struct br__cb *)(void *)cbs;
        cbs = cbs->next;
        br_done_fn fn = cb->fn;
        void *arg = cb->arg;
        br__free(cb);
        fn(f, arg);
    }
    if (temp_ref)
        br__future_unref(f);
}

/* Takes f's lock and announces a listener. Returns true with the lock held if f is not
 * done (link, then unlock); false, with the lock released, if it is done. */
static bool listen_lock(br_future *f) {
    br__ilock_lock(&f->lock);
    uint32_t old = atomic_fetch_or_explicit(&f->st, BR__FF_LISTENERS, memory_order_acq_rel);
    if (br__fs_done(old)) {
        br__ilock_unlock(&f->lock);
        return false;
    }
    return true;
}

bool br__future_watch(br_future *f, br__watcher *w) {
    if (BR__UNLIKELY(br__on_shared_stack(w))) {
        /* Park memory not declared with BR__PARKED (core/lib.h). */
        fputs("braid: internal: a future's watch node on a shared stack\n", stderr);
        abort();
    }
    if (br__fs_done(atomic_load_explicit(&f->st, memory_order_acquire)))
        return false;
    if (!listen_lock(f))
        return false;
    lst_link(f, &w->node, BR__LN_WATCH);
    br__ilock_unlock(&f->lock);
    return true;
}

bool br__future_unwatch(br_future *f, br__watcher *w) {
    br__ilock_lock(&f->lock);
    bool was = w->node.linked != 0;
    if (was)
        lst_unlink(f, &w->node);
    br__ilock_unlock(&f->lock);
    return was;
}

int br_future_add_done_callback(br_future *f, br_done_fn fn, void *arg) {
    if (!br__future_ok(f) || fn == NULL)
        return BR__MISUSE(BR_EINVAL, "br_future_add_done_callback: bad future or fn");
    if (br__fs_done(atomic_load_explicit(&f->st, memory_order_acquire))) {
        fn(f, arg);
        return 0;
    }
    struct br__cb *node = NULL;
    br__ilock_lock(&f->lock);
    if (f->cb0_fn != NULL) { /* cb0 is taken (until notify): a node, allocated unlocked */
        br__ilock_unlock(&f->lock);
        node = br__malloc(sizeof *node);
        if (node == NULL)
            return BR_ENOMEM;
        br__ilock_lock(&f->lock);
    }
    uint32_t old = atomic_fetch_or_explicit(&f->st, BR__FF_LISTENERS, memory_order_acq_rel);
    if (br__fs_done(old)) {
        br__ilock_unlock(&f->lock);
        br__free(node);
        fn(f, arg);
        return 0;
    }
    if (node == NULL) {
        f->cb0_fn = fn;
        f->cb0_arg = arg;
    } else {
        node->fn = fn;
        node->arg = arg;
        lst_link(f, &node->node, BR__LN_CB);
    }
    br__ilock_unlock(&f->lock);
    return 0;
}

/* --- blocking until done -------------------------------------------------------------------- */

/* A thread that is about to block on a future first watches its state for as long as
 * the thread parker would spin on the waiter's own word (br__spin_budget()), without
 * registering: a future that completes meanwhile (a round trip to an idle pool takes a
 * few hundred ns) then never gets LISTENERS, so its completer stays on the lock-free
 * path, and nobody takes the lock or wakes anyone. Only then does it register, and it
 * sleeps at once (the spin is spent; a few yields follow a spin that failed,
 * br__spin_yield, core/lib.h). Coroutines don't spin (their parker doesn't
 * either): they register and suspend. True if f is done. */
static bool spin_until_done(br_future *f, int64_t deadline) {
    if (!br__may_spin())
        return false;
    br__spin sp; /* the thread's adaptive budget (core/lib.h) */
    br__spin_start(&sp, deadline);
    for (unsigned i = 1;; i++) {
        br__cpu_relax();
        if (br__fs_done(br__future_state(f))) {
            br__spin_done(&sp, true);
            return true;
        }
        if (br__spin_over(i, sp.until)) {
            br__spin_done(&sp, false);
            break;
        }
    }
    int64_t yu = 0; /* then a few yields (core/lib.h, br__spin_yield) */
    for (unsigned y = 0; br__spin_yield(y, &yu, deadline); y++)
        if (br__fs_done(br__future_state(f)))
            return true;
    return false;
}

/* The slow part of a wait: spin, register, park. The waiter's node is linked under f's
 * lock and woken by br__future_notify, which unlinks every node; a waiter whose park
 * times out or is cancelled unlinks itself (core rule 2), so it leaves nothing behind
 * but the sticky LISTENERS flag. flags: BR__WAITER_NOCANCEL for a wait that must not
 * be cut short. */
static int wait_slow(br_future *f, int64_t deadline, uint32_t flags) {
    if (spin_until_done(f, deadline))
        return 0;
    struct {
        br__waiter w;
        wait_node n;
    } BR__PARKED_IN(p); /* park memory (core/lib.h): both are reached while we park */
    br__waiter *w = &p->w;
    wait_node *n = &p->n;
    br__waiter_init(w);
    w->flags |= BR__WAITER_NOSPIN | flags;
    n->w = w;
    n->f = f;
    if (!listen_lock(f))
        return 0;
    lst_link(f, &n->node, BR__LN_WAIT);
    w->linked = 1; /* mirrors n->node.linked, for br__waiter_park_or_leave_in */
    br__ilock_unlock(&f->lock);
    /* Woken only by notify, so 0 means done; a timeout or a cancel unlinks us unless
     * notify got there first (core rule 2: then it is done, and a cancel it overtook
     * is posted again). */
    return br__waiter_park_or_leave_in(w, &f->lock, deadline, wait_unlink, n);
}

int br__future_wait_done(br_future *f, int64_t deadline) {
    if (BR__LIKELY(br__fs_done(br__future_state(f))))
        return 0;
    if (deadline <= 0) /* BR_NOWAIT, or a time before boot */
        return BR_ETIMEDOUT;
    return wait_slow(f, deadline, 0);
}

void br__future_wait_done_nocancel(br_future *f) {
    if (BR__LIKELY(br__fs_done(br__future_state(f))))
        return;
    (void)wait_slow(f, BR_FOREVER, BR__WAITER_NOCANCEL); /* returns only once done */
}

int br_future_wait(br_future *f, int64_t deadline) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_wait: not a live future");
    return br__future_wait_done(f, deadline);
}

/* Waits, then returns 0 if f finished successfully, or its failure code, or
 * BR_ECANCELED. */
