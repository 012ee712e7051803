/* br_as_completed: the iterator over futures completed by hand and from threads. */
#include "harness.h"
#include "future/private.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

static void done_first_then_completion_order(void **state) {
    (void)state;
    enum { N = 6 };
    br_future *fs[N];
    br_test_futures_new(fs, N);
    BR_CHECK_OK(br_future_set_result_i64(fs[4], 4));
    BR_CHECK_OK(br_future_set_result_i64(fs[1], 1));
    br_as_completed *it;
    BR_CHECK_OK(br_as_completed_new(&it, fs, N, BR_FOREVER));
    br_future *got;
    /* already done: in input order */
    BR_CHECK_OK(br_as_completed_next(it, &got));
    BR_CHECK(got == fs[1]);
    BR_CHECK_OK(br_as_completed_next(it, &got));
    BR_CHECK(got == fs[4]);
    BR_CHECK_ERR(br_as_completed_set_deadline(it, BR_NOWAIT), 0);
    BR_CHECK_ERR(br_as_completed_next(it, &got), BR_ETIMEDOUT);
    BR_CHECK(got == NULL);
    BR_CHECK_OK(br_as_completed_set_deadline(it, BR_FOREVER));
    /* then in completion order */
    int order[] = {5, 0, 3, 2};
    for (int k = 0; k < 4; k++) {
        if (order[k] == 3)
            BR_CHECK(br_future_cancel(fs[3])); /* cancelled counts as done */
        else
            BR_CHECK_OK(br_future_set_result_i64(fs[order[k]], order[k]));
        BR_CHECK_OK(br_as_completed_next(it, &got));
        BR_CHECK(got == fs[order[k]]);
    }
    BR_CHECK_ERR(br_as_completed_next(it, &got), BR_EOF);
    BR_CHECK_ERR(br_as_completed_next(it, &got), BR_EOF);
    BR_CHECK_OK(br_as_completed_free(it));
    br_test_futures_release(fs, N);
}

static void duplicates_once(void **state) {
    (void)state;
    br_future *a, *b;
    BR_CHECK_OK(br_future_new(&a));
    BR_CHECK_OK(br_future_new(&b));
    br_future *fs[] = {a, b, a, a, b};
    br_as_completed *it;
    BR_CHECK_OK(br_future_set_result_i64(b, 2));
    BR_CHECK_OK(br_as_completed_new(&it, fs, 5, BR_FOREVER));
    BR_CHECK_OK(br_future_set_result_i64(a, 1));
    br_future *got;
    BR_CHECK_OK(br_as_completed_next(it, &got));
    BR_CHECK(got == b);
    BR_CHECK_OK(br_as_completed_next(it, &got));
    BR_CHECK(got == a);
    BR_CHECK_ERR(br_as_completed_next(it, &got), BR_EOF);
    BR_CHECK_OK(br_as_completed_free(it));
    br_future_release(a);
    br_future_release(b);
}

static void holds_references(void **state) {
    (void)state;
    br_future *f;
    BR_CHECK_OK(br_future_new(&f));
    br_as_completed *it;
    BR_CHECK_OK(br_as_completed_new(&it, &f, 1, BR_FOREVER));
    br_future *mine = f;
    br_future_retain(mine);
    br_future_release(f); /* ours and the extra; the iterator keeps its own */
    br_future_release(mine);
    /* still alive: only the iterator holds it now */
    BR_CHECK_EQ(atomic_load(&mine->refs), 1);
    BR_CHECK_OK(br_future_set_result_i64(mine, 8));
    br_future *got;
    BR_CHECK_OK(br_as_completed_next(it, &got));
    int64_t v;
    BR_CHECK_OK(br_future_result_i64(got, BR_NOWAIT, &v)); /* borrowed, valid */
    BR_CHECK_EQ(v, 8);
    BR_CHECK_OK(br_as_completed_free(it)); /* drops the last reference (ASan: no leak) */
}

static void overall_deadline(void **state) {
    (void)state;
    enum { N = 3 };
    br_future *fs[N];
    br_test_futures_new(fs, N);
    int64_t dl = br_deadline_after(20 * BR_MSEC);
    br_as_completed *it;
    BR_CHECK_OK(br_as_completed_new(&it, fs, N, dl));
    BR_CHECK_OK(br_future_set_result_i64(fs[1], 1));
    br_future *got;
    BR_CHECK_OK(br_as_completed_next(it, &got));
    BR_CHECK(got == fs[1]);
    /* the deadline bounds the whole iteration, not each call */
    BR_CHECK_ERR(br_as_completed_next(it, &got), BR_ETIMEDOUT);
    BR_CHECK(br_now() >= dl);
    BR_CHECK_ERR(br_as_completed_next(it, &got), BR_ETIMEDOUT);
    /* move it and go on */
    BR_CHECK_OK(br_future_set_result_i64(fs[2], 2));
    BR_CHECK_OK(br_as_completed_set_deadline(it, br_test_hang_guard()));
    BR_CHECK_OK(br_as_completed_next(it, &got));
    BR_CHECK(got == fs[2]);
    /* free while one is pending: it keeps its watcher no longer */
    BR_CHECK_OK(br_as_completed_free(it));
    BR_CHECK(fs[0]->u.lst == NULL);
    BR_CHECK_OK(br_future_set_result_i64(fs[0], 0));
    br_test_futures_release(fs, N);
}

/* Waits (in any thread) until `n` consumers are blocked in next() on it. A consumer
 * counts from under the iterator's lock, before it links its waiter and unlocks, so
 * anything that takes the lock afterwards finds it linked. False if the guard passed. */
static bool until_blocked(br_as_completed *it, size_t n) {
    int64_t guard = br_test_hang_guard();
    while (br__as_completed_blocked(it) != n) {
        if (br_now() >= guard)
            return false;
        sched_yield();
    }
    return true;
}

typedef struct {
    br_as_completed *it;
    int64_t new_deadline;
    _Atomic bool saw_blocked;
} mover_arg;

static void *mover(void *p) {
    mover_arg *m = p;
    atomic_store(&m->saw_blocked, until_blocked(m->it, 1));
    m->new_deadline = br_deadline_after(10 * BR_MSEC);
    br_as_completed_set_deadline(m->it, m->new_deadline);
    return NULL;
}

static void set_deadline_wakes_blocked(void **state) {
    (void)state;
    br_future *f;
    BR_CHECK_OK(br_future_new(&f));
    br_as_completed *it;
    BR_CHECK_OK(br_as_completed_new(&it, &f, 1, br_test_hang_guard()));
    /* a consumer blocked with a far deadline sees an earlier one set meanwhile */
    mover_arg m = {it, 0, false};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, mover, &m), 0);
    br_future *got;
    BR_CHECK_ERR(br_as_completed_next(it, &got), BR_ETIMEDOUT);
    pthread_join(th, NULL);
    BR_CHECK(atomic_load(&m.saw_blocked));
    BR_CHECK(br_now() >= m.new_deadline);
    BR_CHECK_OK(br_as_completed_free(it));
    br_future_release(f);
}

typedef struct {
    br_as_completed *it;
    int rc;
    br_future *got;
} next_arg;

static void *next_once(void *p) {
    next_arg *a = p;
    a->rc = br_as_completed_next(a->it, &a->got);
    return NULL;
}

static void free_while_blocked_is_busy(void **state) {
    (void)state;
    br_future *f;
    BR_CHECK_OK(br_future_new(&f));
    br_as_completed *it;
    /* BR_FOREVER: the consumer that doesn't get f must be woken to see BR_EOF, not
     * left for a deadline (ctest's timeout catches that hang) */
    BR_CHECK_OK(br_as_completed_new(&it, &f, 1, BR_FOREVER));
    enum { C = 2 };
    next_arg a[C];
    pthread_t th[C];
    for (int i = 0; i < C; i++) {
        a[i] = (next_arg){it, 1, NULL};
        assert_int_equal(pthread_create(&th[i], NULL, next_once, &a[i]), 0);
    }
    BR_CHECK(until_blocked(it, C));
    /* freeing under blocked consumers would pull the iterator from under them */
    BR_CHECK_ERR(br_as_completed_free(it), BR_EBUSY);
    BR_CHECK_OK(br_future_set_result_i64(f, 5)); /* one gets f, the other EOF */
    for (int i = 0; i < C; i++)
        pthread_join(th[i], NULL);
    BR_CHECK_EQ(br__as_completed_blocked(it), 0);
    int got = 0, eof = 0;
    for (int i = 0; i < C; i++) {
        if (a[i].rc == 0 && a[i].got == f)
            got++;
        else if (a[i].rc == BR_EOF && a[i].got == NULL)
            eof++;
    }
    BR_CHECK_EQ(got, 1);
    BR_CHECK_EQ(eof, 1);
    BR_CHECK_OK(br_as_completed_free(it));
    br_future_release(f);
}

typedef struct {
    br_future **fs; /* completes fs[base .. base + n) with their index */
    int base, n;
} cmpl_arg;

static void *complete_all(void *p) {
    cmpl_arg *a = p;
    for (int i = a->base + a->n - 1; i >= a->base; i--)
        br_future_set_result_i64(a->fs[i], i);
    return NULL;
}

static void from_threads_each_once(void **state) {
    (void)state;
    enum { N = 200, T = 4 };
    br_future *fs[N];
    br_test_futures_new(fs, N);
    for (int i = 0; i < N; i += 17)
        br_future_set_result_i64(fs[i], i); /* some done on entry */
    br_as_completed *it;
    BR_CHECK_OK(br_as_completed_new(&it, fs, N, br_test_hang_guard()));
    cmpl_arg a[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        a[t] = (cmpl_arg){fs, t * (N / T), N / T};
        assert_int_equal(pthread_create(&th[t], NULL, complete_all, &a[t]), 0);
    }
    int seen[N] = {0};
    br_future *got;
    int count = 0;
    int rc;
    while ((rc = br_as_completed_next(it, &got)) == 0) {
        BR_CHECK(br_future_done(got));
        int64_t v;
        BR_CHECK_OK(br_future_result_i64(got, BR_NOWAIT, &v));
        BR_CHECK(got == fs[v]);
        seen[v]++;
        count++;
    }
    BR_CHECK_ERR(rc, BR_EOF);
    BR_CHECK_EQ(count, N);
    for (int i = 0; i < N; i++)
        BR_CHECK_EQ(seen[i], 1);
    for (int t = 0; t < T; t++)
        pthread_join(th[t], NULL);
    BR_CHECK_OK(br_as_completed_free(it));
    br_test_futures_release(fs, N);
}

typedef struct {
    br_as_completed *it;
    _Atomic int *seen;
    _Atomic int count;
} consumer_ctx;

static void *consumer(void *p) {
    consumer_ctx *c = p;
    br_future *got;
    while (br_as_completed_next(c->it, &got) == 0) {
        int64_t v;
        br_future_result_i64(got, BR_NOWAIT, &v);
        atomic_fetch_add(&c->seen[v], 1);
        atomic_fetch_add(&c->count, 1);
    }
    return NULL;
}

static void several_consumers(void **state) {
    (void)state;
    enum { N = 300, C = 3 };
    br_future *fs[N];
    br_test_futures_new(fs, N);
    br_as_completed *it;
    BR_CHECK_OK(br_as_completed_new(&it, fs, N, br_test_hang_guard()));
    _Atomic int seen[N];
    for (int i = 0; i < N; i++)
        atomic_init(&seen[i], 0);
    consumer_ctx c = {it, seen, 0};
    pthread_t th[C];
    for (int i = 0; i < C; i++)
        assert_int_equal(pthread_create(&th[i], NULL, consumer, &c), 0);
    for (int i = 0; i < N; i++)
        BR_CHECK_OK(br_future_set_result_i64(fs[i], i));
    for (int i = 0; i < C; i++)
        pthread_join(th[i], NULL);
    BR_CHECK_EQ(atomic_load(&c.count), N);
    for (int i = 0; i < N; i++)
        BR_CHECK_EQ(atomic_load(&seen[i]), 1);
    BR_CHECK_OK(br_as_completed_free(it));
    br_test_futures_release(fs, N);
}

static void free_races_completion(void **state) {
    (void)state;
    /* completions racing the iterator's free: no watcher fires into freed memory */
    int rounds = (int)br_test_scaled(2000, 100);
    enum { N = 8 };
    for (int r = 0; r < rounds; r++) {
        br_future *fs[N];
        br_test_futures_new(fs, N);
        br_as_completed *it;
        BR_CHECK_OK(br_as_completed_new(&it, fs, N, BR_FOREVER));
        cmpl_arg a = {fs, 0, N};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, complete_all, &a), 0);
        BR_CHECK_OK(br_as_completed_free(it));
        pthread_join(th, NULL);
        br_test_futures_release(fs, N);
    }
}

static void bad_input(void **state) {
    (void)state;
    br_as_completed *it = (br_as_completed *)1;
    BR_CHECK_ERR(br_as_completed_new(NULL, NULL, 0, BR_FOREVER), BR_EINVAL);
    BR_CHECK_ERR(br_as_completed_new(&it, NULL, 2, BR_FOREVER), BR_EINVAL);
    br_future *bad[1] = {NULL};
    BR_CHECK_ERR(br_as_completed_new(&it, bad, 1, BR_FOREVER), BR_EINVAL);
    BR_CHECK(it == NULL);
    br_future *got;
    BR_CHECK_ERR(br_as_completed_next(NULL, &got), BR_EINVAL);
    BR_CHECK_ERR(br_as_completed_free(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_as_completed_set_deadline(NULL, 0), BR_EINVAL);
    /* empty: EOF at once */
    BR_CHECK_OK(br_as_completed_new(&it, NULL, 0, BR_NOWAIT));
    BR_CHECK_ERR(br_as_completed_next(it, &got), BR_EOF);
    BR_CHECK_ERR(br_as_completed_next(it, NULL), BR_EINVAL);
    BR_CHECK_OK(br_as_completed_free(it));
}

static void next_index_gives_positions(void **state) {
    (void)state;
    enum { N = 5 };
    br_future *fs[N + 1];
    br_test_futures_new(fs, N);
    fs[N] = fs[2]; /* listed twice: its first position counts */
    BR_CHECK_OK(br_future_set_result_i64(fs[3], 3));
    br_as_completed *it;
    BR_CHECK_OK(br_as_completed_new(&it, fs, N + 1, BR_FOREVER));
    int order[] = {4, 2, 0, 1};
    for (int k = 0; k < 4; k++)
        BR_CHECK_OK(br_future_set_result_i64(fs[order[k]], order[k]));
    br_future *got;
    size_t idx = 99;
    BR_CHECK_OK(br_as_completed_next_index(it, &got, &idx));
    BR_CHECK(got == fs[3]);
    BR_CHECK_EQ(idx, 3);
    for (int k = 0; k < 4; k++) {
        BR_CHECK_OK(br_as_completed_next_index(it, &got, &idx));
        BR_CHECK_EQ(idx, order[k]);
        BR_CHECK(got == fs[idx]);
        int64_t v;
        BR_CHECK_OK(br_future_result_i64(got, BR_NOWAIT, &v));
        BR_CHECK_EQ(v, (int64_t)idx);
    }
    BR_CHECK_ERR(br_as_completed_next_index(it, &got, NULL), BR_EOF);
    BR_CHECK_OK(br_as_completed_free(it));
    br_test_futures_release(fs, N);
}

BR_TEST_MAIN(cmocka_unit_test(done_first_then_completion_order),
             cmocka_unit_test(next_index_gives_positions),
             cmocka_unit_test(duplicates_once), cmocka_unit_test(holds_references),
             cmocka_unit_test(overall_deadline), cmocka_unit_test(set_deadline_wakes_blocked),
             cmocka_unit_test(free_while_blocked_is_busy),
             cmocka_unit_test(from_threads_each_once), cmocka_unit_test(several_consumers),
             cmocka_unit_test(free_races_completion), cmocka_unit_test(bad_input))
