/* The future: states, results, callbacks, races, misuse (braid/future.h), and the task
 * side as an executor drives it (future/internal.h). */
#include "harness.h"
#include "future/internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static int64_t hang_guard(void) {
    return br_deadline_after((int64_t)(20 * BR_SEC * br_test_time_multiplier()));
}

/* --- states ----------------------------------------------------------------------- */

static void new_is_pending(void **state) {
    (void)state;
    br_future *f;
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK_EQ(br_future_state_of(f), BR_FUTURE_PENDING);
    BR_CHECK(!br_future_done(f));
    BR_CHECK(!br_future_running(f));
    BR_CHECK(!br_future_cancelled(f));
    BR_CHECK(!br_future_failed(f));
    BR_CHECK_ERR(br_future_wait(f, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_future_result(f, BR_NOWAIT, NULL, NULL), BR_ETIMEDOUT);
    br_future_release(f);
}

static void pending_running_finished(void **state) {
    (void)state;
    br_future *f;
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK(br_future_set_running_or_notify_cancel(f));
    BR_CHECK_EQ(br_future_state_of(f), BR_FUTURE_RUNNING);
    BR_CHECK(br_future_running(f));
    BR_CHECK(!br_future_done(f));
    /* Python: a running future can't be cancelled. */
    BR_CHECK(!br_future_cancel(f));
    BR_CHECK_EQ(br_future_state_of(f), BR_FUTURE_RUNNING);
    BR_CHECK_OK(br_future_set_result_i64(f, 42));
    BR_CHECK_EQ(br_future_state_of(f), BR_FUTURE_FINISHED);
    BR_CHECK(br_future_done(f));
    BR_CHECK(!br_future_running(f));
    BR_CHECK(!br_future_cancel(f));
    int64_t v = 0;
    BR_CHECK_OK(br_future_result_i64(f, BR_NOWAIT, &v));
    BR_CHECK_EQ(v, 42);
    /* Python's InvalidStateError. */
    BR_CHECK_ERR(br_future_set_result_i64(f, 1), BR_ESTATE);
    BR_CHECK_ERR(br_future_set_exception(f, BR_EIO, "x"), BR_ESTATE);
    BR_CHECK_ERR(br_future_set_result_ptr(f, NULL, NULL), BR_ESTATE);
    BR_CHECK(!br_future_set_running_or_notify_cancel(f)); /* misuse: already done */
    BR_CHECK_OK(br_future_result_i64(f, BR_NOWAIT, &v));
    BR_CHECK_EQ(v, 42);
    br_future_release(f);
}

static void pending_finished_directly(void **state) {
    (void)state;
    br_future *f;
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK_OK(br_future_set_result(f, "abc", 3));
    BR_CHECK_EQ(br_future_state_of(f), BR_FUTURE_FINISHED);
    const void *d;
    size_t n;
    BR_CHECK_OK(br_future_result(f, BR_FOREVER, &d, &n));
    BR_CHECK_EQ(n, 3);
    BR_CHECK(memcmp(d, "abc", 3) == 0);
    br_future_release(f);
}

static void pending_cancelled(void **state) {
    (void)state;
    br_future *f;
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK(br_future_cancel(f));
    BR_CHECK_EQ(br_future_state_of(f), BR_FUTURE_CANCELLED);
    BR_CHECK(br_future_cancelled(f));
    BR_CHECK(br_future_done(f));
    BR_CHECK(!br_future_failed(f));
    BR_CHECK(br_future_cancel(f)); /* again: still true */
    BR_CHECK(br_future_request_cancel(f));
    BR_CHECK(!br_future_set_running_or_notify_cancel(f));
    BR_CHECK_ERR(br_future_set_result_i64(f, 1), BR_ESTATE);
    BR_CHECK_ERR(br_future_result(f, BR_FOREVER, NULL, NULL), BR_ECANCELED);
    int code = 1;
    BR_CHECK_ERR(br_future_exception(f, BR_FOREVER, &code, NULL), BR_ECANCELED);
    BR_CHECK_OK(br_future_wait(f, BR_NOWAIT));
    br_future_release(f);
}

static void request_cancel_states(void **state) {
    (void)state;
    br_future *f;
    /* pending: cancels */
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK(br_future_request_cancel(f));
    BR_CHECK(br_future_cancelled(f));
    br_future_release(f);
    /* running: true, stays running */
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK(br_future_set_running_or_notify_cancel(f));
    BR_CHECK(br_future_request_cancel(f));
    BR_CHECK(br_future_running(f));
    BR_CHECK_OK(br_future_set_result_i64(f, 3));
    /* finished: false */
    BR_CHECK(!br_future_request_cancel(f));
    br_future_release(f);
}

/* --- results ------------------------------------------------------------------------ */

static int dtor_calls;
static void count_dtor(void *p) {
    dtor_calls++;
    free(p);
}

static void result_kinds(void **state) {
    (void)state;
    br_future *f;
    const void *d;
    size_t n;
    int64_t v;
    void *p;

    /* inline bytes: exactly 32 */
    unsigned char small[32];
    for (int i = 0; i < 32; i++)
        small[i] = (unsigned char)i;
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK_OK(br_future_set_result(f, small, sizeof small));
    BR_CHECK_OK(br_future_result(f, BR_NOWAIT, &d, &n));
    BR_CHECK_EQ(n, 32);
    BR_CHECK(memcmp(d, small, 32) == 0);
    BR_CHECK_ERR(br_future_result_i64(f, BR_NOWAIT, &v), BR_EINVAL);
    BR_CHECK_ERR(br_future_result_ptr(f, BR_NOWAIT, &p), BR_EINVAL);
    br_future_release(f);

    /* heap bytes: copied, the caller's buffer may change */
    size_t big_n = 10000;
    unsigned char *big = malloc(big_n);
    for (size_t i = 0; i < big_n; i++)
        big[i] = (unsigned char)(i * 7);
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK_OK(br_future_set_result(f, big, big_n));
    memset(big, 0, big_n);
    BR_CHECK_OK(br_future_result(f, BR_NOWAIT, &d, &n));
    BR_CHECK_EQ(n, big_n);
    for (size_t i = 0; i < big_n; i++)
        BR_CHECK_EQ(((const unsigned char *)d)[i], (unsigned char)(i * 7));
    free(big);
    br_future_release(f);

    /* empty result */
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK_OK(br_future_set_result(f, NULL, 0));
    BR_CHECK_OK(br_future_result(f, BR_NOWAIT, &d, &n));
    BR_CHECK_EQ(n, 0);
    br_future_release(f);

    /* int64, also readable as 8 bytes */
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK_OK(br_future_set_result_i64(f, INT64_MIN));
    BR_CHECK_OK(br_future_result_i64(f, BR_NOWAIT, &v));
    BR_CHECK_EQ(v, INT64_MIN);
    BR_CHECK_OK(br_future_result(f, BR_NOWAIT, &d, &n));
    BR_CHECK_EQ(n, 8);
    br_future_release(f);

    /* pointer + dtor: the dtor runs once, at the last release */
    dtor_calls = 0;
    int *obj = malloc(sizeof *obj);
    *obj = 7;
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK_OK(br_future_set_result_ptr(f, obj, count_dtor));
    BR_CHECK_OK(br_future_result_ptr(f, BR_NOWAIT, &p));
    BR_CHECK(p == obj);
    BR_CHECK_OK(br_future_result(f, BR_NOWAIT, &d, &n));
    BR_CHECK(d == obj);
    BR_CHECK_EQ(n, 0);
    BR_CHECK_ERR(br_future_result_i64(f, BR_NOWAIT, &v), BR_EINVAL);
    br_future_retain(f);
    br_future_release(f);
    BR_CHECK_EQ(dtor_calls, 0);
    br_future_release(f);
    BR_CHECK_EQ(dtor_calls, 1);

    /* a refused pointer stays the caller's: no dtor */
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK_OK(br_future_set_result_i64(f, 1));
    int *obj2 = malloc(sizeof *obj2);
    BR_CHECK_ERR(br_future_set_result_ptr(f, obj2, count_dtor), BR_ESTATE);
    br_future_release(f);
    BR_CHECK_EQ(dtor_calls, 1);
    free(obj2);
}

static void exception_and_messages(void **state) {
    (void)state;
    br_future *f;
    int code = 0;
    const char *msg = "unset";

    /* success: exception() says code 0, no message */
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK_OK(br_future_set_result_i64(f, 5));
    BR_CHECK_OK(br_future_exception(f, BR_NOWAIT, &code, &msg));
    BR_CHECK_EQ(code, 0);
    BR_CHECK(msg == NULL);
    BR_CHECK(!br_future_failed(f));
    br_future_release(f);

    /* short message (inline) */
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK_OK(br_future_set_exception(f, BR_EIO, "disk on fire"));
    BR_CHECK(br_future_failed(f));
    BR_CHECK_ERR(br_future_result(f, BR_NOWAIT, NULL, NULL), BR_EIO);
    int64_t v;
    BR_CHECK_ERR(br_future_result_i64(f, BR_NOWAIT, &v), BR_EIO);
    BR_CHECK_OK(br_future_exception(f, BR_NOWAIT, &code, &msg));
    BR_CHECK_EQ(code, BR_EIO);
    BR_CHECK(strcmp(msg, "disk on fire") == 0);
    br_future_release(f);

    /* long message (heap), copied */
    char longmsg[300];
    memset(longmsg, 'x', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = 0;
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK_OK(br_future_set_exception(f, BR_EFAILED, longmsg));
    longmsg[0] = 'y';
    BR_CHECK_OK(br_future_exception(f, BR_NOWAIT, &code, &msg));
    BR_CHECK_EQ(code, BR_EFAILED);
    BR_CHECK_EQ(strlen(msg), 299);
    BR_CHECK(msg[0] == 'x');
    br_future_release(f);

    /* no message */
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK_OK(br_future_set_exception(f, BR_ETIMEDOUT, NULL));
    BR_CHECK_OK(br_future_exception(f, BR_NOWAIT, &code, &msg));
    BR_CHECK_EQ(code, BR_ETIMEDOUT);
    BR_CHECK(msg == NULL);
    /* a task that failed with BR_ETIMEDOUT is told apart by done() */
    BR_CHECK_ERR(br_future_result(f, BR_NOWAIT, NULL, NULL), BR_ETIMEDOUT);
    BR_CHECK(br_future_done(f));
    br_future_release(f);

    /* code must be < 0 */
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK_ERR(br_future_set_exception(f, 0, "no"), BR_EINVAL);
    BR_CHECK_ERR(br_future_set_exception(f, 5, "no"), BR_EINVAL);
    BR_CHECK(!br_future_done(f));
    br_future_release(f);
}

/* --- waiting across threads ----------------------------------------------------------- */

typedef struct {
    br_future *f;
    int64_t delay;
    int64_t value;
} setter_arg;

static void *setter(void *p) {
    setter_arg *a = p;
    if (a->delay)
        br_sleep(a->delay);
    br_future_set_result_i64(a->f, a->value);
    return NULL;
}

static void result_blocks_until_set(void **state) {
    (void)state;
    br_future *f;
    BR_CHECK_OK(br_future_new(&f));
    setter_arg a = {f, 20 * BR_MSEC, 99};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, setter, &a), 0);
    int64_t v = 0;
    BR_CHECK_OK(br_future_result_i64(f, hang_guard(), &v));
    BR_CHECK_EQ(v, 99);
    pthread_join(th, NULL);
    br_future_release(f);
}


static void deadline_not_early(void **state) {
    (void)state;
    br_future *f;
    BR_CHECK_OK(br_future_new(&f));
    for (int i = 0; i < 3; i++) {
        int64_t start = br_now();
        int64_t dl = start + 30 * BR_MSEC;
        BR_CHECK_ERR(br_future_wait(f, dl), BR_ETIMEDOUT);
        BR_CHECK(br_now() >= dl);
        BR_CHECK_ERR(br_future_result(f, start + 10 * BR_MSEC, NULL, NULL), BR_ETIMEDOUT);
        BR_CHECK(br_now() >= start + 10 * BR_MSEC);
        int code;
        BR_CHECK_ERR(br_future_exception(f, br_now() + BR_MSEC, &code, NULL), BR_ETIMEDOUT);
    }
    /* a past deadline doesn't wait */
    BR_CHECK_ERR(br_future_wait(f, br_now() - BR_SEC), BR_ETIMEDOUT);
    /* the timed-out waiters left nothing behind: completion still works */
    BR_CHECK_OK(br_future_set_result_i64(f, 1));
    BR_CHECK_OK(br_future_wait(f, BR_NOWAIT));
    br_future_release(f);
}

BR_TEST_MAIN(cmocka_unit_test(new_is_pending), cmocka_unit_test(pending_running_finished),
             cmocka_unit_test(pending_finished_directly), cmocka_unit_test(pending_cancelled),
             cmocka_unit_test(request_cancel_states), cmocka_unit_test(result_kinds),
             cmocka_unit_test(exception_and_messages),
             cmocka_unit_test(result_blocks_until_set),
             cmocka_unit_test(deadline_not_early))
