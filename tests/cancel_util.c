/* The cancellation tests' scaffolding (cancel_util.h). */
#include "cancel_util.h"

#include "core/lib.h"
#include "queue/private.h"

#include <sched.h>
#include <string.h>

/* A check that names the caller's line. */
#define CHECK_AT(file, line, cond)                                                         \
    do {                                                                                   \
        if (!(cond))                                                                       \
            fail_msg("%s:%d: check failed: %s", file, line, #cond);                        \
    } while (0)

static void *call_main(void *arg) {
    br_test_call *c = arg;
    if (c->ctx)
        br_test_ctx_enter(c->ctx);
    c->rc = c->fn(c->arg);
    if (c->ctx) {
        c->pending = br_test_ctx_cancel_pending(c->ctx);
        br_test_ctx_leave();
    }
    atomic_store(&c->finished, 1);
    return NULL;
}

void br_test_call_start(br_test_call *c, br_test_ctx *ctx, int (*fn)(void *), void *arg,
                        bool cancel_first) {
    memset(c, 0, sizeof *c);
    c->ctx = ctx;
    c->fn = fn;
    c->arg = arg;
    c->rc = 12345;
    atomic_init(&c->finished, 0);
    if (ctx) {
        c->parks0 = atomic_load(&ctx->parks);
        c->cancelled0 = atomic_load(&ctx->cancelled);
        c->nocancel0 = atomic_load(&ctx->nocancel);
    }
    if (cancel_first) {
        assert_non_null(ctx);
        br_test_ctx_cancel(ctx);
    }
    assert_int_equal(pthread_create(&c->th, NULL, call_main, c), 0);
}

bool br_test_call_returned(br_test_call *c) {
    return atomic_load(&c->finished) != 0;
}

void br_test_call_join_(const char *file, int line, br_test_call *c) {
    int64_t give_up = br_test_hang_guard();
    for (unsigned i = 0; !atomic_load(&c->finished); i++) {
        if (br_now() > give_up)
            fail_msg("%s:%d: a call is still blocked after the hang guard", file, line);
        if (i < 1000)
            sched_yield();
        else
            br_sleep(50 * BR_USEC);
    }
    assert_int_equal(pthread_join(c->th, NULL), 0);
}

void br_test_call_wait_parked(br_test_call *c) {
    assert_non_null(c->ctx);
    br_test_ctx_wait_parks(c->ctx, c->parks0 + 1);
}

void br_test_call_wait_nocancel_park(br_test_call *c) {
    assert_non_null(c->ctx);
    int64_t give_up = br_test_hang_guard();
    while (atomic_load(&c->ctx->nocancel) == c->nocancel0 ||
           !atomic_load(&c->ctx->asleep)) {
        if (br_now() > give_up)
            fail_msg("no uncancellable park asleep after the hang guard");
        br_sleep(50 * BR_USEC);
    }
}

int br_test_call_parks(br_test_call *c) {
    return atomic_load(&c->ctx->parks) - c->parks0;
}

int br_test_call_cancelled(br_test_call *c) {
    return atomic_load(&c->ctx->cancelled) - c->cancelled0;
}

/* --- how a call ended ------------------------------------------------------------ */

void br_test_check_cancelled_(const char *file, int line, br_test_call *c) {
    if (c->rc != BR_ECANCELED)
        fail_msg("%s:%d: the call returned %s (%d), want BR_ECANCELED", file, line,
                 br_err_name(c->rc), c->rc);
    CHECK_AT(file, line, c->ctx != NULL);
    CHECK_AT(file, line, !c->pending); /* reported, so consumed */
    CHECK_AT(file, line, !br_test_ctx_cancel_pending(c->ctx));
}

void br_test_check_cancelled_once_(const char *file, int line, br_test_call *c) {
    br_test_check_cancelled_(file, line, c);
    if (br_test_call_cancelled(c) != 1)
        fail_msg("%s:%d: %d cancelled parks, want 1", file, line,
                 br_test_call_cancelled(c));
}

void br_test_check_cancelled_at_once_(const char *file, int line, br_test_call *c) {
    br_test_check_cancelled_once_(file, line, c);
    if (br_test_call_parks(c) != 1)
        fail_msg("%s:%d: %d parks, want 1 (which returned at once)", file, line,
                 br_test_call_parks(c));
}

void br_test_check_cancel_kept_(const char *file, int line, br_test_call *c) {
    CHECK_AT(file, line, c->ctx != NULL);
    if (br_test_call_parks(c) != 0)
        fail_msg("%s:%d: %d parks, want none", file, line, br_test_call_parks(c));
    CHECK_AT(file, line, c->pending); /* never looked at */
    CHECK_AT(file, line, br_test_ctx_cancel_pending(c->ctx));
}

void br_test_check_cancel_ignored_(const char *file, int line, br_test_call *c) {
    if (c->rc != 0)
        fail_msg("%s:%d: the call returned %s (%d), want 0", file, line, br_err_name(c->rc),
                 c->rc);
    CHECK_AT(file, line, c->ctx != NULL);
    if (br_test_call_cancelled(c) != 0)
        fail_msg("%s:%d: %d cancelled parks, want none", file, line,
                 br_test_call_cancelled(c));
    CHECK_AT(file, line, atomic_load(&c->ctx->nocancel) > c->nocancel0);
    CHECK_AT(file, line, c->pending);
    CHECK_AT(file, line, br_test_ctx_cancel_pending(c->ctx));
}

void br_test_call_cancel_(const char *file, int line, br_test_call *c) {
    assert_non_null(c->ctx);
    br_test_ctx_cancel(c->ctx);
    br_test_call_join_(file, line, c);
    br_test_check_cancelled_once_(file, line, c);
}

bool br_test_wake_won_(const char *file, int line, br_test_call *c) {
    if (c->rc == 0) {
        CHECK_AT(file, line, br_test_ctx_cancel_pending(c->ctx));
        return true;
    }
    br_test_check_cancelled_(file, line, c);
    return false;
}

/* --- a canceller ----------------------------------------------------------------- */

static void *canceller_main(void *arg) {
    br_test_canceller *k = arg;
    while (!atomic_load(&k->go))
        br__cpu_relax();
    br_test_ctx_cancel(k->ctx);
    return NULL;
}

void br_test_canceller_start(br_test_canceller *k, br_test_ctx *ctx) {
    k->ctx = ctx;
    k->cancelled0 = atomic_load(&ctx->cancelled);
    atomic_init(&k->go, false);
    assert_int_equal(pthread_create(&k->th, NULL, canceller_main, k), 0);
}

void br_test_canceller_go(br_test_canceller *k, long round) {
    atomic_store(&k->go, true);
    int64_t give_up = br_test_hang_guard();
    if (round % 4 >= 2) {
        while (atomic_load(&k->ctx->cancelled) == k->cancelled0) {
            BR_CHECK(br_now() < give_up);
            br__cpu_relax();
        }
    }
    int64_t until = br_now() + (round % 4 == 1   ? (round * 7 % 11) * 5 * BR_USEC
                                : round % 4 == 3 ? (round * 3 % 7) * BR_USEC
                                                 : 0);
    while (br_now() < until)
        br__cpu_relax();
}

void br_test_canceller_join(br_test_canceller *k) {
    assert_int_equal(pthread_join(k->th, NULL), 0);
}

/* --- a cancel storm ------------------------------------------------------------- */

static void *storm_main(void *arg) {
    br_test_cancel_storm *s = arg;
    unsigned x = s->seed;
    while (!atomic_load(&s->stop)) {
        x = x * 1103515245u + 12345u;
        br_test_ctx_cancel(&s->ctxs[(x >> 16) % s->n]);
        if ((x >> 8) & 1)
            sched_yield();
        else
            br_sleep(20 * BR_USEC);
    }
    return NULL;
}

void br_test_cancel_storm_start(br_test_cancel_storm *s, br_test_ctx *ctxs, size_t n,
                                unsigned seed) {
    s->ctxs = ctxs;
    s->n = n;
    s->seed = seed;
    atomic_init(&s->stop, false);
    assert_int_equal(pthread_create(&s->th, NULL, storm_main, s), 0);
}

void br_test_cancel_storm_stop(br_test_cancel_storm *s) {
    atomic_store(&s->stop, true);
    assert_int_equal(pthread_join(s->th, NULL), 0);
}

/* --- queues ---------------------------------------------------------------------- */

void br_test_wait_queue_waiters_(const char *file, int line, br_queue *q, size_t getters,
                                 size_t putters, size_t joiners) {
    int64_t give_up = br_test_hang_guard();
    for (;;) {
        size_t g, p, j;
        br__queue_waiters(q, &g, &p, &j);
        if (g == getters && p == putters && j == joiners)
            return;
        if (br_now() > give_up)
            fail_msg("%s:%d: waiters %zu/%zu/%zu, want %zu/%zu/%zu", file, line, g, p, j,
                     getters, putters, joiners);
        br_sleep(50 * BR_USEC);
    }
}
