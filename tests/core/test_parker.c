/* The cancellable test parker (tests/parker.h) against the waiter contract of
 * core/lib.h: a park ends signalled, timed out, or cancelled; a cancel is reported once;
 * a NOCANCEL park leaves it pending; a wake that wins the race keeps the cancel pending
 * for the next park (rule 2). */
#include "harness.h"
#include "parker.h"

#include "core/lib.h"
#include "thread/private.h"

#include <pthread.h>

typedef struct waiter_run {
    br_test_ctx ctx;
    br__wq *wq;
    int64_t deadline;
    int rc;
    pthread_t th;
} waiter_run;

static void *park_on_wq(void *arg) {
    waiter_run *r = arg;
    br_test_ctx_enter(&r->ctx);
    br__waiter w;
    br__waiter_init(&w);
    br__ilock_lock(&r->wq->lock);
    br__wq_push(r->wq, &w);
    br__ilock_unlock(&r->wq->lock);
    r->rc = br__waiter_park_or_leave(&w, r->wq, r->deadline, NULL, NULL);
    br_test_ctx_leave();
    return NULL;
}

static void cancel_ends_a_park_and_unlinks(void **state) {
    (void)state;
    br__wq wq = {0};
    waiter_run r = {.ctx = BR_TEST_CTX_INIT, .wq = &wq, .deadline = BR_FOREVER, .rc = 1};
    assert_int_equal(pthread_create(&r.th, NULL, park_on_wq, &r), 0);
    br_test_ctx_wait_parks(&r.ctx, 1);
    br_test_ctx_cancel(&r.ctx);
    pthread_join(r.th, NULL);
    BR_CHECK_ERR(r.rc, BR_ECANCELED);
    BR_CHECK(br__wq_empty(&wq));
    BR_CHECK_EQ(atomic_load(&r.ctx.cancelled), 1);
    BR_CHECK(!br_test_ctx_cancel_pending(&r.ctx)); /* reported, so consumed */
}

static void timeout_still_works_in_a_context(void **state) {
    (void)state;
    br__wq wq = {0};
    waiter_run r = {.ctx = BR_TEST_CTX_INIT, .wq = &wq,
                    .deadline = br_deadline_after(5 * BR_MSEC), .rc = 1};
    assert_int_equal(pthread_create(&r.th, NULL, park_on_wq, &r), 0);
    pthread_join(r.th, NULL);
    BR_CHECK_ERR(r.rc, BR_ETIMEDOUT);
    BR_CHECK(br__wq_empty(&wq));
}

static void a_pending_cancel_ends_the_next_park_at_once(void **state) {
    (void)state;
    br__wq wq = {0};
    waiter_run r = {.ctx = BR_TEST_CTX_INIT, .wq = &wq, .deadline = BR_FOREVER, .rc = 1};
    br_test_ctx_cancel(&r.ctx); /* before the call */
    assert_int_equal(pthread_create(&r.th, NULL, park_on_wq, &r), 0);
    pthread_join(r.th, NULL);
    BR_CHECK_ERR(r.rc, BR_ECANCELED);
    BR_CHECK(br__wq_empty(&wq));
}

static void *sleep_nocancel(void *arg) {
    waiter_run *r = arg;
    br_test_ctx_enter(&r->ctx);
    br__waiter w;
    br__waiter_init(&w);
    w.flags |= BR__WAITER_NOCANCEL;
    r->rc = br__waiter_park(&w, r->deadline);
    br_test_ctx_leave();
    return NULL;
}

static void nocancel_leaves_the_request_pending(void **state) {
    (void)state;
    waiter_run r = {.ctx = BR_TEST_CTX_INIT, .deadline = br_deadline_after(20 * BR_MSEC),
                    .rc = 1};
    br_test_ctx_cancel(&r.ctx);
    assert_int_equal(pthread_create(&r.th, NULL, sleep_nocancel, &r), 0);
    pthread_join(r.th, NULL);
    BR_CHECK_ERR(r.rc, BR_ETIMEDOUT); /* not cancelled */
    BR_CHECK(br_test_ctx_cancel_pending(&r.ctx));
    BR_CHECK_EQ(atomic_load(&r.ctx.nocancel), 1);
}

/* A wake and a cancel at once, many times: exactly one of them ends each park; when
 * the wake wins, the request stays pending (rule 2 reposts it), never lost. */
static void wake_or_cancel_never_loses_either(void **state) {
    (void)state;
    long rounds = br_test_scaled(2000, 200);
    for (long i = 0; i < rounds; i++) {
        br__wq wq = {0};
        waiter_run r = {.ctx = BR_TEST_CTX_INIT, .wq = &wq, .deadline = BR_FOREVER,
                        .rc = 1};
        assert_int_equal(pthread_create(&r.th, NULL, park_on_wq, &r), 0);
        while (atomic_load(&r.ctx.parks) < 1)
            br__cpu_relax();
        br_test_ctx_cancel(&r.ctx);
        int woken = br__wq_wake(&wq, 1, 0);
        pthread_join(r.th, NULL);
        BR_CHECK(br__wq_empty(&wq));
        if (r.rc == 0) {
            BR_CHECK_EQ(woken, 1);
            BR_CHECK(br_test_ctx_cancel_pending(&r.ctx)); /* reposted, or never seen */
        } else {
            BR_CHECK_ERR(r.rc, BR_ECANCELED);
            BR_CHECK_EQ(woken, 0);
            BR_CHECK(!br_test_ctx_cancel_pending(&r.ctx));
        }
    }
}

BR_TEST_MAIN(cmocka_unit_test(cancel_ends_a_park_and_unlinks),
             cmocka_unit_test(timeout_still_works_in_a_context),
             cmocka_unit_test(a_pending_cancel_ends_the_next_park_at_once),
             cmocka_unit_test(nocancel_leaves_the_request_pending),
             cmocka_unit_test(wake_or_cancel_never_loses_either))
