/* br_map's deadline as Python's map(timeout=) reads it (braid/executor.h, br_map_next):
 * the result iterator of concurrent.futures awaits each future with what is left of the
 * timeout, and a future already done gives its result even with nothing left; so
 * inputs done before the deadline are returned after it, in order, and the first one
 * not done (or whose task the deadline stopped) ends the map with BR_ETIMEDOUT, for
 * every later call too. Runs on the test-only executor of mini_executor.h.
 *
 * Nothing here measures time: each test waits for what it needs (tasks finished, the
 * deadline passed) and, if a loaded machine made the deadline pass too early, tries
 * again with a longer one. */
#include "harness.h"
#include "mini_executor.h"

#include <string.h>

static int64_t hang_guard(void) {
    return br_deadline_after((int64_t)(20 * BR_SEC * br_test_time_multiplier()));
}

static long finished(br_executor *ex) { return atomic_load(&((mini_ex *)ex)->finished); }

/* Waits until the executor has finished n tasks (run, or skipped as expired). */
static void wait_finished(br_executor *ex, long n) {
    int64_t guard = hang_guard();
    while (finished(ex) < n) {
        BR_CHECK(br_now() < guard);
        br_sleep(BR_MSEC / 2);
    }
}

static void sleep_past(int64_t deadline) {
    while (br_now() < deadline)
        br_sleep_until(deadline);
}

static _Atomic long ran;

static int square(br_task *t) {
    atomic_fetch_add(&ran, 1);
    int64_t x;
    memcpy(&x, br_task_arg(t, NULL), sizeof x);
    return br_task_return_i64(t, x * x);
}

enum { N = 8 };

/* Every input done before the deadline is read after it: all N results, then BR_EOF. */
static void done_inputs_past_the_deadline_with(size_t chunksize) {
    int64_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    long nchunks = (N + (long)chunksize - 1) / (long)chunksize;
    for (int64_t budget = 200 * BR_MSEC;; budget *= 2) {
        BR_CHECK(budget <= 60 * BR_SEC);
        br_executor *ex;
        BR_CHECK_OK(mini_new(&ex, 2));
        int64_t dl = br_deadline_after((int64_t)((double)budget * br_test_time_multiplier()));
        br_map *m;
        /* buffersize N: every input is submitted now, before the deadline */
        BR_CHECK_OK(br_map_new(&m, ex, square, in, N, sizeof in[0],
                               &(br_map_opts){.chunksize = chunksize, .buffersize = N,
                                              .deadline = dl}));
        wait_finished(ex, nchunks);
        if (br_now() >= dl) { /* too slow to finish before the deadline: again, longer */
            BR_CHECK_OK(br_map_free(m));
            BR_CHECK_OK(br_executor_free(ex));
            continue;
        }
        sleep_past(dl);
        for (int i = 0; i < N; i++) {
            int64_t v = -1;
            BR_CHECK_OK(br_map_next_i64(m, &v));
            BR_CHECK_EQ(v, (int64_t)i * i);
        }
        int64_t v;
        BR_CHECK_ERR(br_map_next_i64(m, &v), BR_EOF);
        BR_CHECK_OK(br_map_free(m));
        BR_CHECK_OK(br_executor_free(ex));
        return;
    }
}

static void done_inputs_past_the_deadline(void **state) {
    (void)state;
    done_inputs_past_the_deadline_with(1);
    done_inputs_past_the_deadline_with(3);
}

/* A task that blocks while its input is 2, until the deadline stops it. */
static br_future *started;

static int stuck_at_two(br_task *t) {
    atomic_fetch_add(&ran, 1);
    int64_t x;
    memcpy(&x, br_task_arg(t, NULL), sizeof x);
    if (x == 2) {
        br_future_set_result_i64(started, 1);
        while (!br_task_cancelled(t))
            br_sleep(BR_MSEC / 2);
        return BR_ECANCELED; /* only the deadline passed: BR_ETIMEDOUT (braid/task.h) */
    }
    return br_task_return_i64(t, x);
}

/* Inputs 0 and 1 done, input 2 stopped by the deadline, the rest expired unrun; all of
 * them done by the time anything is read, past the deadline. Python returns 0 and 1 and
 * raises TimeoutError at 2 (its future wasn't done at the deadline): so does braid, and
 * the map is over, even though the later inputs are "done" too. */
static void done_then_expired_ends_the_map(void **state) {
    (void)state;
    int64_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    for (int64_t budget = 200 * BR_MSEC;; budget *= 2) {
        BR_CHECK(budget <= 60 * BR_SEC);
        atomic_store(&ran, 0);
        BR_CHECK_OK(br_future_new(&started));
        br_executor *ex;
        BR_CHECK_OK(mini_new(&ex, 1)); /* one worker: inputs run in order */
        int64_t dl = br_deadline_after((int64_t)((double)budget * br_test_time_multiplier()));
        br_map *m;
        BR_CHECK_OK(br_map_new(&m, ex, stuck_at_two, in, N, sizeof in[0],
                               &(br_map_opts){.buffersize = N, .deadline = dl}));
        wait_finished(ex, N);
        if (!br_future_done(started)) { /* input 2 expired before it began: longer */
            BR_CHECK_OK(br_map_free(m));
            BR_CHECK_OK(br_executor_free(ex));
            br_future_release(started);
            continue;
        }
        BR_CHECK(br_now() >= dl); /* input 2 only stopped once it had passed */
        int64_t v = -1;
        BR_CHECK_OK(br_map_next_i64(m, &v));
        BR_CHECK_EQ(v, 0);
        BR_CHECK_OK(br_map_next_i64(m, &v));
        BR_CHECK_EQ(v, 1);
        for (int i = 2; i < N + 2; i++) /* never BR_EOF: the map ended at input 2 */
            BR_CHECK_ERR(br_map_next_i64(m, &v), BR_ETIMEDOUT);
        BR_CHECK_OK(br_map_free(m));
        BR_CHECK_EQ(atomic_load(&ran), 3); /* 0, 1 and 2; the rest expired unrun */
        BR_CHECK_OK(br_executor_free(ex));
        br_future_release(started);
        return;
    }
}

/* A deadline already past when the map is made: nothing runs, and every call says
 * BR_ETIMEDOUT, whether or not the executor has got to the inputs yet. */
static void deadline_past_at_creation_with(size_t chunksize, bool let_them_expire) {
    int64_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    atomic_store(&ran, 0);
    br_executor *ex;
    BR_CHECK_OK(mini_new(&ex, 2));
    br_map *m;
    BR_CHECK_OK(br_map_new(&m, ex, square, in, N, sizeof in[0],
                           &(br_map_opts){.chunksize = chunksize, .buffersize = N,
                                          .deadline = 1})); /* 1 ns after boot */
    if (let_them_expire) /* every input done, with BR_ETIMEDOUT, before the first read */
        wait_finished(ex, (N + (long)chunksize - 1) / (long)chunksize);
    int64_t v;
    for (int i = 0; i < N + 2; i++)
        BR_CHECK_ERR(br_map_next_i64(m, &v), BR_ETIMEDOUT);
    BR_CHECK_OK(br_map_free(m));
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_EQ(atomic_load(&ran), 0);
}

static void deadline_past_at_creation(void **state) {
    (void)state;
    deadline_past_at_creation_with(1, true);
    deadline_past_at_creation_with(1, false);
    deadline_past_at_creation_with(4, true);
    deadline_past_at_creation_with(4, false);
}

/* A task's own BR_ETIMEDOUT, read before the map's deadline, is that input's failure
 * like any other: the map goes on. */
static int own_timeout_at_one(br_task *t) {
    int64_t x;
    memcpy(&x, br_task_arg(t, NULL), sizeof x);
    if (x == 1)
        return br_task_fail(t, BR_ETIMEDOUT, "its own");
    return br_task_return_i64(t, x);
}

static void own_timeout_is_an_input_failure(void **state) {
    (void)state;
    int64_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    int64_t deadlines[] = {0, hang_guard()}; /* none, and one far off */
    for (int d = 0; d < 2; d++) {
        br_executor *ex;
        BR_CHECK_OK(mini_new(&ex, 2));
        br_map *m;
        BR_CHECK_OK(br_map_new(&m, ex, own_timeout_at_one, in, N, sizeof in[0],
                               &(br_map_opts){.deadline = deadlines[d]}));
        for (int i = 0; i < N; i++) {
            const void *data;
            size_t len;
            int rc = br_map_next(m, &data, &len);
            if (i == 1) {
                BR_CHECK_ERR(rc, BR_ETIMEDOUT);
                BR_CHECK(data != NULL && strcmp(data, "its own") == 0);
            } else {
                BR_CHECK_OK(rc);
                int64_t v;
                BR_CHECK_EQ(len, sizeof v);
                memcpy(&v, data, sizeof v);
                BR_CHECK_EQ(v, i);
            }
        }
        const void *data;
        BR_CHECK_ERR(br_map_next(m, &data, NULL), BR_EOF);
        BR_CHECK_OK(br_map_free(m));
        BR_CHECK_OK(br_executor_free(ex));
    }
}

BR_TEST_MAIN(cmocka_unit_test(done_inputs_past_the_deadline),
             cmocka_unit_test(done_then_expired_ends_the_map),
             cmocka_unit_test(deadline_past_at_creation),
             cmocka_unit_test(own_timeout_is_an_input_failure))
