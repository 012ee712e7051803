/* The tests' cancellable parker (parker.h). It keeps the parker contract of core/lib.h:
 * park returns 0 only once signalled, BR_ETIMEDOUT once the deadline passed, and
 * BR_ECANCELED only for a cancellable park with a request pending, which it consumes;
 * unpark and cancel never block and touch only the context. */
#include "parker.h"
#include "harness.h"

#include "core/lib.h"

#include <limits.h>

static int ctx_park(br__waiter *w, int64_t deadline) {
    br_test_ctx *c = w->ctx;
    atomic_fetch_add(&c->parks, 1);
    bool cancellable = !(w->flags & BR__WAITER_NOCANCEL);
    if (!cancellable)
        atomic_fetch_add(&c->nocancel, 1);
    for (;;) {
        uint32_t s = atomic_load(&c->seq); /* before the checks: a bump after them ends the wait */
        if (atomic_load_explicit(&w->signalled, memory_order_acquire) == 1)
            return 0;
        if (cancellable && atomic_exchange(&c->cancel, 0)) {
            atomic_fetch_add(&c->cancelled, 1);
            return BR_ECANCELED;
        }
        atomic_store(&c->asleep, 1);
        int rc = br__futex_wait(&c->seq, s, deadline, false);
        atomic_store(&c->asleep, 0);
        if (atomic_load_explicit(&w->signalled, memory_order_acquire) == 1)
            return 0;
        if (rc == BR_ETIMEDOUT)
            return BR_ETIMEDOUT;
    }
}

static void ctx_unpark(_Atomic uint32_t *signalled, void *ctx, uint32_t old) {
    (void)signalled;
    (void)old;
    br_test_ctx *c = ctx;
    atomic_fetch_add(&c->seq, 1);
    br__futex_wake(&c->seq, INT_MAX, false);
}

static void ctx_cancel(void *ctx) {
    br_test_ctx *c = ctx;
    atomic_store(&c->cancel, 1);
    atomic_fetch_add(&c->seq, 1);
    br__futex_wake(&c->seq, INT_MAX, false);
}

static const br__parker test_parker = {ctx_park, ctx_unpark, ctx_cancel};

void br_test_ctx_enter(br_test_ctx *c) { br__set_context((uintptr_t)c, &test_parker, c); }

void br_test_ctx_leave(void) { br__set_context(0, NULL, NULL); }

void br_test_ctx_cancel(br_test_ctx *c) { ctx_cancel(c); }

bool br_test_ctx_cancel_pending(br_test_ctx *c) { return atomic_load(&c->cancel) != 0; }

void br_test_ctx_wait_parks(br_test_ctx *c, int n) {
    int64_t give_up = br_test_hang_guard();
    while (atomic_load(&c->parks) < n || !atomic_load(&c->asleep)) {
        if (br_now() > give_up)
            fail_msg("test context: %d parks, asleep %d, after the hang guard (want %d)",
                     atomic_load(&c->parks), atomic_load(&c->asleep), n);
        br_sleep(50 * BR_USEC);
    }
}
