/* BR_WITH guards: acquire with BR_FOREVER, hand back the release function.
 *
 * A failed acquire is misuse (a destroyed object, a br_lock the caller already holds,
 * NULL) or, in a coroutine, a cancel: the guard then has obj == NULL, so the block
 * doesn't run. Misuse goes through the misuse policy (panic_on_misuse turns BR_EINVAL
 * into an abort). A cancel can't be returned from a statement, and the acquire that
 * reported it consumed it: it is posted again to the caller's context (as rule 2 of
 * core/lib.h does for a cancel a wake overtook), so the coroutine's next blocking call
 * reports it instead of it being lost. */
#include "thread/private.h"

/* Posts a cancel the caller's acquire consumed back to the caller's context. */
static void repost_cancel(void) {
    BR__PARKED(br__waiter, w);
    br__waiter_init(w); /* binds w to the current context; never parked */
    br__waiter_repost_cancel(w);
}

static int rel_lock(void *o) {
    return br_lock_release(o);
}
static int rel_rlock(void *o) {
    return br_rlock_release(o);
}
static int rel_sem(void *o) {
    return br_sem_release(o, 1);
}
static int rel_cond(void *o) {
    return br_cond_release(o);
}

static br_guard_ make(int rc, void *obj, int (*release)(void *), const char *what) {
    if (rc == BR_ECANCELED) {
        repost_cancel();
        return (br_guard_){NULL, NULL};
    }
    if (rc != 0) {
        (void)BR__MISUSE(rc, what);
        return (br_guard_){NULL, NULL};
    }
    return (br_guard_){obj, release};
}

br_guard_ br_guard_lock_(br_lock *l) {
    return make(br_lock_acquire(l, BR_FOREVER), l, rel_lock, "BR_WITH(br_lock *)");
}

br_guard_ br_guard_rlock_(br_rlock *r) {
    return make(br_rlock_acquire(r, BR_FOREVER), r, rel_rlock, "BR_WITH(br_rlock *)");
}

br_guard_ br_guard_sem_(br_sem *s) {
    return make(br_sem_acquire(s, BR_FOREVER), s, rel_sem, "BR_WITH(br_sem *)");
}

br_guard_ br_guard_cond_(br_cond *c) {
    return make(br_cond_acquire(c, BR_FOREVER), c, rel_cond, "BR_WITH(br_cond *)");
}
