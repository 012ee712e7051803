/* Out of memory in the future layer: every call that allocates is run under an
 * out-of-memory loop (the Nth allocation fails, for N = 0, 1, 2, ... until the call
 * succeeds, as in tests/core/test_alloc.c). Each failure must be BR_ENOMEM (or, where
 * the contract says so, a documented degradation) with nothing half-made: no state
 * changed, no callback run, no listener left behind. LeakSanitizer checks the "nothing
 * leaked" half in the ASan build.
 *
 * Future blocks come from a per-thread cache backed by slabs (mmap), so
 * br_future_new and the submits usually allocate nothing through br__malloc; under
 * ASan blocks come from br__malloc one at a time once the shared chains run out. The
 * loops therefore only require that every failure is clean and that the loop ends. */
#include "harness.h"
#include "future/private.h"

#include <string.h>

enum { OOM_MAX = 1000 }; /* no call here makes nearly this many allocations */

static void fail_after(long n) { br__alloc_fail_after(n); }
static void fail_never(void) { br__alloc_fail_after(-1); }

static void future_new_oom(void **state) {
    (void)state;
    for (long n = 0;; n++) {
        BR_CHECK(n < OOM_MAX);
        br_future *f = NULL;
        fail_after(n);
        int rc = br_future_new(&f);
        fail_never();
        if (rc == 0) {
            BR_CHECK(f != NULL);
            BR_CHECK_EQ(br_future_state_of(f), BR_FUTURE_PENDING);
            br_future_release(f);
            break;
        }
        BR_CHECK_ERR(rc, BR_ENOMEM);
    }
}

/* set_result with a result too big for the block, set_exception with a long message:
 * a failure leaves the future pending, ready for the next try. */
static void set_result_and_exception_oom(void **state) {
    (void)state;
    unsigned char big[1000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 13);
    char longmsg[200];
    memset(longmsg, 'm', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = 0;
    br_future *f, *g;
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK_OK(br_future_new(&g));
    for (long n = 0;; n++) {
        BR_CHECK(n < OOM_MAX);
        fail_after(n);
        int rc = br_future_set_result(f, big, sizeof big);
        fail_never();
        if (rc == 0)
            break;
        BR_CHECK_ERR(rc, BR_ENOMEM);
        BR_CHECK_EQ(br_future_state_of(f), BR_FUTURE_PENDING);
    }
    const void *d;
    size_t len;
    BR_CHECK_OK(br_future_result(f, BR_NOWAIT, &d, &len));
    BR_CHECK_EQ(len, sizeof big);
    BR_CHECK(memcmp(d, big, sizeof big) == 0);
    for (long n = 0;; n++) {
        BR_CHECK(n < OOM_MAX);
        fail_after(n);
        int rc = br_future_set_exception(g, BR_EIO, longmsg);
        fail_never();
        if (rc == 0)
            break;
        BR_CHECK_ERR(rc, BR_ENOMEM);
        BR_CHECK_EQ(br_future_state_of(g), BR_FUTURE_PENDING);
    }
    int code;
    const char *msg;
    BR_CHECK_OK(br_future_exception(g, BR_NOWAIT, &code, &msg));
    BR_CHECK_EQ(code, BR_EIO);
    assert_string_equal(msg, longmsg);
    br_future_release(f);
    br_future_release(g);
}

static void count_cb(br_future *f, void *arg) {
    (void)f;
    ++*(int *)arg;
}

/* The first callback lives in the block; the next ones need a node each. A failed add
 * never runs its callback. */
static void add_done_callback_oom(void **state) {
    (void)state;
    br_future *f;
    BR_CHECK_OK(br_future_new(&f));
    int first = 0, second = 0, failed = 0;
    fail_after(0);
    int rc = br_future_add_done_callback(f, count_cb, &first); /* inline: no allocation */
    fail_never();
    BR_CHECK_OK(rc);
    long n;
    for (n = 0;; n++) {
        BR_CHECK(n < OOM_MAX);
        fail_after(n);
        rc = br_future_add_done_callback(f, count_cb, &second);
        fail_never();
        if (rc == 0)
            break;
        BR_CHECK_ERR(rc, BR_ENOMEM);
        failed++;
    }
    BR_CHECK(failed >= 1); /* the node is a br__malloc of its own */
    BR_CHECK_OK(br_future_set_result_i64(f, 1));
    BR_CHECK_EQ(first, 1);
    BR_CHECK_EQ(second, 1); /* once: the failed adds never ran it */
    br_future_release(f);
}

/* --- inside a task ---------------------------------------------------------------- */

static int big_return(br_task *t) {
    unsigned char buf[500];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)i;
    return br_task_return(t, buf, sizeof buf); /* BR_ENOMEM fails the task with it */
}

static const char *long_fail_msg =
    "a failure message far longer than the thirty-one bytes kept inside the future";

static int long_fail(br_task *t) { return br_task_fail(t, BR_EIO, "%s", long_fail_msg); }

/* A task's future, run here as an executor would run it: one reference for us, one
 * for br__task_run. */
static br_future *run_task_oom(br_task_fn fn, long n) {
    br_future *f = br__task_prepare(NULL, NULL, 0, BR__ARG_BORROW, BR_FOREVER, 1);
    BR_CHECK(f != NULL);
    br_future_retain(f);
    br__future_task(f)->fn = fn;
    fail_after(n);
    br__task_run(br__future_task(f));
    fail_never();
    return f;
}

static void task_return_big_oom(void **state) {
    (void)state;
    for (long n = 0;; n++) {
        BR_CHECK(n < OOM_MAX);
        br_future *f = run_task_oom(big_return, n);
        const void *d;
        size_t len;
        int rc = br_future_result(f, BR_NOWAIT, &d, &len);
        if (rc == 0) {
            BR_CHECK_EQ(len, 500);
            BR_CHECK_EQ(((const unsigned char *)d)[499], (unsigned char)499);
            br_future_release(f);
            break;
        }
        BR_CHECK_ERR(rc, BR_ENOMEM); /* the task passed its BR_ENOMEM on */
        BR_CHECK(br_future_failed(f));
        br_future_release(f);
    }
}

/* br_task_fail can't fail: out of memory, a long message is kept cut to what fits in
 * the block (31 bytes). */
static void task_fail_long_message_oom(void **state) {
    (void)state;
    for (long n = 0;; n++) {
        BR_CHECK(n < OOM_MAX);
        br_future *f = run_task_oom(long_fail, n);
        int code;
        const char *msg;
        BR_CHECK_OK(br_future_exception(f, BR_NOWAIT, &code, &msg));
        BR_CHECK_EQ(code, BR_EIO);
        BR_CHECK(msg != NULL);
        bool whole = strcmp(msg, long_fail_msg) == 0;
        if (!whole) {
            BR_CHECK_EQ(strlen(msg), 31);
            BR_CHECK(strncmp(msg, long_fail_msg, 31) == 0);
        }
        br_future_release(f);
        if (whole)
            break;
    }
}

/* --- waiting on many ---------------------------------------------------------------- */

enum { MANY = 100 };

/* The sets need memory beyond 16 futures (marks, a pointer set, a copy when written in
 * place); FIRST_* with more than 16 pending needs a node each. */
static void wait_many_oom(void **state) {
    (void)state;
    br_future *fs[MANY], *in[2 * MANY], *orig[2 * MANY];
    br_test_futures_new(fs, MANY);
    for (int i = 0; i < MANY; i += 2)
        BR_CHECK_OK(br_future_set_result_i64(fs[i], i));
    for (size_t i = 0; i < 2 * MANY; i++)
        in[i] = fs[(i * 7) % MANY]; /* every future twice */
    memcpy(orig, in, sizeof in);
    /* sets written over the input: on failure the input is untouched */
    for (long n = 0;; n++) {
        BR_CHECK(n < OOM_MAX);
        size_t nd = 99, nn = 99;
        fail_after(n);
        int rc = br_wait(in, 2 * MANY, BR_ALL_COMPLETED, BR_NOWAIT, in, &nd, &nn);
        fail_never();
        if (rc != BR_ENOMEM) {
            BR_CHECK_ERR(rc, BR_ETIMEDOUT);
            BR_CHECK_EQ(nd, MANY / 2);
            BR_CHECK_EQ(nn, MANY / 2);
            for (size_t i = 0; i < nd; i++)
                BR_CHECK(br_future_done(in[i]));
            break;
        }
        BR_CHECK(memcmp(in, orig, sizeof in) == 0);
    }
    /* FIRST_COMPLETED over pending futures with a deadline that has passed: it still
     * registers (a node each), finds nothing and leaves; a failure registers nothing */
    br_future *pend[MANY];
    br_test_futures_new(pend, MANY);
    for (long n = 0;; n++) {
        BR_CHECK(n < OOM_MAX);
        fail_after(n);
        int rc = br_wait(pend, MANY, BR_FIRST_COMPLETED, br_now(), NULL, NULL, NULL);
        fail_never();
        for (int i = 0; i < MANY; i++)
            BR_CHECK(pend[i]->u.lst == NULL);
        if (rc != BR_ENOMEM) {
            BR_CHECK_ERR(rc, BR_ETIMEDOUT);
            break;
        }
    }
    for (int i = 0; i < MANY; i++) /* nothing stale is linked: completing is safe */
        BR_CHECK_OK(br_future_set_result_i64(pend[i], i));
    br_test_futures_release(pend, MANY);
    br_test_futures_release(fs, MANY);
}

static void as_completed_new_oom(void **state) {
    (void)state;
    br_future *fs[MANY], *in[2 * MANY];
    br_test_futures_new(fs, MANY);
    for (size_t i = 0; i < 2 * MANY; i++)
        in[i] = fs[(i * 3) % MANY];
    for (int i = 0; i < MANY; i += 3)
        BR_CHECK_OK(br_future_set_result_i64(fs[i], i));
    for (long n = 0;; n++) {
        BR_CHECK(n < OOM_MAX);
        br_as_completed *it = (br_as_completed *)1;
        fail_after(n);
        int rc = br_as_completed_new(&it, in, 2 * MANY, BR_FOREVER);
        fail_never();
        if (rc == 0) {
            for (int i = 0; i < MANY; i++)
                if (!br_future_done(fs[i]))
                    BR_CHECK_OK(br_future_set_result_i64(fs[i], i));
            int seen = 0;
            br_future *got;
            while ((rc = br_as_completed_next(it, &got)) == 0)
                seen++;
            BR_CHECK_ERR(rc, BR_EOF);
            BR_CHECK_EQ(seen, MANY);
            BR_CHECK_OK(br_as_completed_free(it));
            break;
        }
        BR_CHECK_ERR(rc, BR_ENOMEM);
        BR_CHECK(it == NULL);
        for (int i = 0; i < MANY; i++) { /* no reference taken, nothing watched */
            BR_CHECK_EQ(atomic_load(&fs[i]->refs), 1);
            BR_CHECK(fs[i]->u.lst == NULL);
        }
    }
    br_test_futures_release(fs, MANY);
}

BR_TEST_MAIN(cmocka_unit_test(future_new_oom), cmocka_unit_test(set_result_and_exception_oom),
             cmocka_unit_test(add_done_callback_oom), cmocka_unit_test(task_return_big_oom),
             cmocka_unit_test(task_fail_long_message_oom), cmocka_unit_test(wait_many_oom),
             cmocka_unit_test(as_completed_new_oom))
