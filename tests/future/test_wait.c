/* br_wait: concurrent.futures.wait over futures completed by hand and from threads. */
#include "harness.h"
#include "future/private.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* Completes futures from another thread, in the given order. No sleeps: to make sure
 * br_wait really blocks, the completer first waits until br_wait has registered on the
 * future (LISTENERS appears on it: a waiter or a watcher), either before each
 * completion (EACH: br_wait is known to be registered on that very future next) or
 * once before the first (FIRST: on any of fs[0..nall)). NONE races on purpose. */
enum { SYNC_NONE, SYNC_EACH, SYNC_FIRST };

typedef struct {
    br_future **fs;
    const int *order;
    int n;
    int sync;
    int nall;       /* SYNC_FIRST: how many of fs to watch */
    int fail_index; /* this one fails instead (-1: none) */
    bool cancel_instead;
    _Atomic bool gave_up; /* a registration never appeared (checked by the test) */
} completer_arg;

static void until_listener(completer_arg *a, br_future *const *fs, int n) {
    if (!br_test_until_listener(fs, (size_t)n))
        atomic_store(&a->gave_up, true);
}

static void *completer(void *p) {
    completer_arg *a = p;
    if (a->sync == SYNC_FIRST)
        until_listener(a, a->fs, a->nall);
    for (int k = 0; k < a->n; k++) {
        int i = a->order[k];
        if (a->sync == SYNC_EACH)
            until_listener(a, &a->fs[i], 1);
        if (i == a->fail_index)
            br_future_set_exception(a->fs[i], BR_EIO, "boom");
        else if (a->cancel_instead)
            br_future_cancel(a->fs[i]);
        else
            br_future_set_result_i64(a->fs[i], i);
    }
    return NULL;
}

static void join_completer(pthread_t th, completer_arg *a) {
    pthread_join(th, NULL);
    BR_CHECK(!atomic_load(&a->gave_up));
}

static void all_done_on_entry(void **state) {
    (void)state;
    enum { N = 5 };
    br_future *fs[N], *sets[N];
    br_test_futures_new(fs, N);
    for (int i = 0; i < N; i++)
        BR_CHECK_OK(br_future_set_result_i64(fs[i], i));
    size_t nd = 99, nn = 99;
    for (int w = BR_ALL_COMPLETED; w <= BR_FIRST_EXCEPTION; w++) {
        BR_CHECK_OK(br_wait(fs, N, (br_return_when)w, BR_NOWAIT, sets, &nd, &nn));
        BR_CHECK_EQ(nd, N);
        BR_CHECK_EQ(nn, 0);
        for (int i = 0; i < N; i++)
            BR_CHECK(sets[i] == fs[i]);
    }
    /* done futures cost nothing: no listener was registered on any */
    for (int i = 0; i < N; i++)
        BR_CHECK_EQ(atomic_load(&fs[i]->st) & BR__FF_LISTENERS, 0);
    br_test_futures_release(fs, N);
}

static void empty_and_bad_input(void **state) {
    (void)state;
    size_t nd = 9, nn = 9;
    BR_CHECK_OK(br_wait(NULL, 0, BR_ALL_COMPLETED, BR_FOREVER, NULL, &nd, &nn));
    BR_CHECK_EQ(nd, 0);
    BR_CHECK_EQ(nn, 0);
    BR_CHECK_OK(br_wait(NULL, 0, BR_FIRST_COMPLETED, BR_NOWAIT, NULL, NULL, NULL));
    BR_CHECK_ERR(br_wait(NULL, 3, BR_ALL_COMPLETED, BR_NOWAIT, NULL, NULL, NULL), BR_EINVAL);
    br_future *fs[2];
    br_test_futures_new(fs, 2);
    BR_CHECK_ERR(br_wait(fs, 2, (br_return_when)7, BR_NOWAIT, NULL, NULL, NULL), BR_EINVAL);
    br_future *bad[2] = {fs[0], NULL};
    BR_CHECK_ERR(br_wait(bad, 2, BR_ALL_COMPLETED, BR_NOWAIT, NULL, NULL, NULL), BR_EINVAL);
    br_test_futures_release(fs, 2);
}

static void sets_in_place(void **state) {
    (void)state;
    /* the sets may be written over the input array itself */
    br_future *fs[20], *orig[20];
    br_test_futures_new(fs, 20);
    memcpy(orig, fs, sizeof fs);
    for (int i = 0; i < 20; i += 3)
        BR_CHECK_OK(br_future_set_result_i64(fs[i], i));
    size_t nd, nn;
    BR_CHECK_ERR(br_wait(fs, 20, BR_ALL_COMPLETED, BR_NOWAIT, fs, &nd, &nn), BR_ETIMEDOUT);
    BR_CHECK_EQ(nd, 7);
    BR_CHECK_EQ(nn, 13);
    size_t a = 0, b = 7;
    for (int i = 0; i < 20; i++)
        BR_CHECK(fs[i % 3 == 0 ? a++ : b++] == orig[i]);
    br_test_futures_release(orig, 20);
}

static void first_completed(void **state) {
    (void)state;
    enum { N = 6 };
    br_future *fs[N], *sets[N];
    br_test_futures_new(fs, N);
    int order[] = {4};
    completer_arg a = {fs, order, 1, SYNC_EACH, 0, -1, false, false};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, completer, &a), 0);
    size_t nd, nn;
    BR_CHECK_OK(br_wait(fs, N, BR_FIRST_COMPLETED, br_test_hang_guard(), sets, &nd, &nn));
    join_completer(th, &a);
    BR_CHECK_EQ(nd, 1);
    BR_CHECK_EQ(nn, N - 1);
    BR_CHECK(sets[0] == fs[4]);
    /* not-done set in input order */
    BR_CHECK(sets[1] == fs[0] && sets[2] == fs[1] && sets[3] == fs[2] && sets[4] == fs[3] &&
             sets[5] == fs[5]);
    /* nothing stays linked: all watchers were removed */
    for (int i = 0; i < N; i++)
        BR_CHECK(fs[i]->u.lst == NULL);
    br_test_futures_release(fs, N);
}

static void all_completed_from_threads(void **state) {
    (void)state;
    enum { N = 40, T = 4 };
    br_future *fs[N], *sets[N];
    br_test_futures_new(fs, N);
    int orders[T][N / T];
    completer_arg a[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        for (int k = 0; k < N / T; k++)
            orders[t][k] = N - 1 - (k * T + t); /* back to front */
        /* br_wait waits from the last future back: each is registered on in turn */
        a[t] = (completer_arg){fs, orders[t], N / T, SYNC_EACH, 0, -1, false, false};
        assert_int_equal(pthread_create(&th[t], NULL, completer, &a[t]), 0);
    }
    size_t nd, nn;
    BR_CHECK_OK(br_wait(fs, N, BR_ALL_COMPLETED, br_test_hang_guard(), sets, &nd, &nn));
    BR_CHECK_EQ(nd, N);
    BR_CHECK_EQ(nn, 0);
    for (int i = 0; i < N; i++) {
        BR_CHECK(br_future_done(fs[i]));
        BR_CHECK(sets[i] == fs[i]);
    }
    for (int t = 0; t < T; t++)
        join_completer(th[t], &a[t]);
    br_test_futures_release(fs, N);
}

static void first_exception(void **state) {
    (void)state;
    enum { N = 5 };
    br_future *fs[N], *sets[N];
    br_test_futures_new(fs, N);
    /* two succeed, then one fails */
    int order[] = {0, 1, 3};
    completer_arg a = {fs, order, 3, SYNC_EACH, 0, 3, false, false};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, completer, &a), 0);
    size_t nd, nn;
    BR_CHECK_OK(br_wait(fs, N, BR_FIRST_EXCEPTION, br_test_hang_guard(), sets, &nd, &nn));
    join_completer(th, &a);
    BR_CHECK(br_future_failed(fs[3]));
    BR_CHECK_EQ(nd, 3);
    BR_CHECK(sets[0] == fs[0] && sets[1] == fs[1] && sets[2] == fs[3]);
    BR_CHECK(sets[3] == fs[2] && sets[4] == fs[4]);
    br_test_futures_release(fs, N);

    /* with no failure, it is ALL_COMPLETED; cancellations are not failures */
    br_test_futures_new(fs, N);
    BR_CHECK(br_future_cancel(fs[0]));
    int order2[] = {1, 2, 3, 4};
    completer_arg b = {fs, order2, 4, SYNC_EACH, 0, -1, false, false};
    assert_int_equal(pthread_create(&th, NULL, completer, &b), 0);
    BR_CHECK_OK(br_wait(fs, N, BR_FIRST_EXCEPTION, br_test_hang_guard(), sets, &nd, &nn));
    BR_CHECK_EQ(nd, N);
    join_completer(th, &b);
    br_test_futures_release(fs, N);

    /* a failure done on entry ends it at once */
    br_test_futures_new(fs, N);
    BR_CHECK_OK(br_future_set_exception(fs[2], BR_EIO, NULL));
    BR_CHECK_OK(br_wait(fs, N, BR_FIRST_EXCEPTION, BR_NOWAIT, sets, &nd, &nn));
    BR_CHECK_EQ(nd, 1);
    BR_CHECK(sets[0] == fs[2]);
    br_test_futures_release(fs, N);
}

static void duplicates_count_once(void **state) {
    (void)state;
    br_future *a, *b, *c;
    BR_CHECK_OK(br_future_new(&a));
    BR_CHECK_OK(br_future_new(&b));
    BR_CHECK_OK(br_future_new(&c));
    br_future *fs[] = {a, b, a, c, b, a};
    br_future *sets[6];
    size_t nd, nn;
    BR_CHECK_OK(br_future_set_result_i64(b, 1));
    BR_CHECK_ERR(br_wait(fs, 6, BR_ALL_COMPLETED, BR_NOWAIT, sets, &nd, &nn), BR_ETIMEDOUT);
    BR_CHECK_EQ(nd, 1);
    BR_CHECK_EQ(nn, 2);
    BR_CHECK(sets[0] == b && sets[1] == a && sets[2] == c);
    /* a duplicate doesn't make ALL_COMPLETED wait for it twice */
    BR_CHECK_OK(br_future_set_result_i64(a, 1));
    BR_CHECK_OK(br_future_set_result_i64(c, 1));
    BR_CHECK_OK(br_wait(fs, 6, BR_ALL_COMPLETED, br_test_hang_guard(), sets, &nd, &nn));
    BR_CHECK_EQ(nd, 3);
    BR_CHECK_EQ(nn, 0);
    BR_CHECK(sets[0] == a && sets[1] == b && sets[2] == c);
    br_future_release(a);
    br_future_release(b);
    br_future_release(c);
}

static void many_with_duplicates(void **state) {
    (void)state;
    /* beyond the stack arrays and the quadratic dedupe: heap nodes, sorted dedupe */
    enum { D = 300 };
    br_future *fs[D];
    br_test_futures_new(fs, D);
    size_t n = 3 * D;
    br_future **in = malloc(n * sizeof *in);
    for (size_t i = 0; i < n; i++)
        in[i] = fs[(i * 7) % D];
    br_future **sets = malloc(n * sizeof *sets);
    int order[D];
    for (int i = 0; i < D; i++)
        order[i] = (i * 13) % D;
    completer_arg a = {fs, order, D, SYNC_FIRST, D, -1, false, false};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, completer, &a), 0);
    size_t nd, nn;
    BR_CHECK_OK(br_wait(in, n, BR_ALL_COMPLETED, br_test_hang_guard(), sets, &nd, &nn));
    join_completer(th, &a);
    BR_CHECK_EQ(nd, D);
    BR_CHECK_EQ(nn, 0);
    for (size_t i = 0; i < D; i++) /* first occurrences, in input order */
        BR_CHECK(sets[i] == fs[(i * 7) % D]);
    free(in);
    free(sets);
    br_test_futures_release(fs, D);
}

static void deadline_not_early(void **state) {
    (void)state;
    enum { N = 20 };
    br_future *fs[N], *sets[N];
    br_test_futures_new(fs, N);
    BR_CHECK_OK(br_future_set_result_i64(fs[3], 3));
    for (int w = BR_ALL_COMPLETED; w <= BR_FIRST_EXCEPTION; w++) {
        int64_t start = br_now();
        int64_t dl = start + 15 * BR_MSEC;
        size_t nd, nn;
        int rc = br_wait(fs, N, (br_return_when)w, dl, sets, &nd, &nn);
        if (w == BR_FIRST_COMPLETED) {
            BR_CHECK_OK(rc); /* fs[3] is done */
            continue;
        }
        BR_CHECK_ERR(rc, BR_ETIMEDOUT);
        BR_CHECK(br_now() >= dl);
        BR_CHECK_EQ(nd, 1);
        BR_CHECK_EQ(nn, N - 1);
        BR_CHECK(sets[0] == fs[3]);
    }
    /* the timed-out watchers are gone: completing now touches nothing stale (ASan) */
    for (int i = 0; i < N; i++) {
        BR_CHECK(fs[i]->u.lst == NULL);
        br_future_set_result_i64(fs[i], i);
    }
    br_test_futures_release(fs, N);
}

static void cancellation_counts_as_done(void **state) {
    (void)state;
    enum { N = 3 };
    br_future *fs[N];
    br_test_futures_new(fs, N);
    int order[] = {2, 0, 1};
    completer_arg a = {fs, order, N, SYNC_FIRST, N, -1, true, false};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, completer, &a), 0);
    size_t nd;
    BR_CHECK_OK(br_wait(fs, N, BR_ALL_COMPLETED, br_test_hang_guard(), NULL, &nd, NULL));
    BR_CHECK_EQ(nd, N);
    for (int i = 0; i < N; i++)
        BR_CHECK(br_future_cancelled(fs[i]));
    join_completer(th, &a);
    br_test_futures_release(fs, N);
}

/* Many rounds of wait racing completions: the answer always agrees with the sets. */
static void races_with_completion(void **state) {
    (void)state;
    int rounds = (int)br_test_scaled(3000, 100);
    enum { N = 4 };
    for (int r = 0; r < rounds; r++) {
        br_future *fs[N], *sets[N];
        br_test_futures_new(fs, N);
        int order[N] = {r % N, (r + 1) % N, (r + 2) % N, (r + 3) % N};
        completer_arg a = {fs, order, N, SYNC_NONE, 0, -1, false, false};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, completer, &a), 0);
        size_t nd, nn;
        int rc = br_wait(fs, N, BR_FIRST_COMPLETED, br_test_hang_guard(), sets, &nd, &nn);
        BR_CHECK_OK(rc);
        BR_CHECK(nd >= 1);
        BR_CHECK_EQ(nd + nn, N);
        for (size_t i = 0; i < nd; i++)
            BR_CHECK(br_future_done(sets[i]));
        BR_CHECK_OK(br_wait(fs, N, BR_ALL_COMPLETED, br_test_hang_guard(), NULL, &nd, &nn));
        BR_CHECK_EQ(nd, N);
        join_completer(th, &a);
        br_test_futures_release(fs, N);
    }
}

BR_TEST_MAIN(cmocka_unit_test(all_done_on_entry), cmocka_unit_test(empty_and_bad_input),
             cmocka_unit_test(sets_in_place),
             cmocka_unit_test(first_completed), cmocka_unit_test(all_completed_from_threads),
             cmocka_unit_test(first_exception), cmocka_unit_test(duplicates_count_once),
             cmocka_unit_test(many_with_duplicates), cmocka_unit_test(deadline_not_early),
             cmocka_unit_test(cancellation_counts_as_done),
             cmocka_unit_test(races_with_completion))
