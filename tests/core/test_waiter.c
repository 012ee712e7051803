/* The waiter, the wait-queue and the internal lock (core/lib.h). */
#include "harness.h"
#include "core/lib.h"

#include <pthread.h>

/* --- br__ilock: mutual exclusion under contention ------------------------------- */

enum { ILOCK_THREADS = 4 };
static br__ilock ilock;
static long ilock_counter;
static long ilock_iters;

static void *ilock_worker(void *arg) {
    (void)arg;
    for (long i = 0; i < ilock_iters; i++) {
        br__ilock_lock(&ilock);
        ilock_counter++; /* plain: only the lock protects it (TSan checks that) */
        br__ilock_unlock(&ilock);
    }
    return NULL;
}

static void ilock_excludes(void **state) {
    (void)state;
    ilock_iters = br_test_scaled(200000, 2000);
    pthread_t t[ILOCK_THREADS];
    for (int i = 0; i < ILOCK_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, ilock_worker, NULL), 0);
    for (int i = 0; i < ILOCK_THREADS; i++)
        pthread_join(t[i], NULL);
    BR_CHECK_EQ(ilock_counter, ILOCK_THREADS * ilock_iters);
    BR_CHECK_EQ(atomic_load(&ilock.word), 0);
}

/* --- park and wake ---------------------------------------------------------------- */

static br__wq wq;

typedef struct {
    int rc;
    uintptr_t data;
    int64_t deadline;
} park_result;

static void *parker(void *arg) {
    park_result *r = arg;
    br__waiter w;
    br__waiter_init(&w);
    br__ilock_lock(&wq.lock);
    br__wq_push(&wq, &w);
    br__ilock_unlock(&wq.lock);
    r->rc = br__waiter_park_or_leave(&w, &wq, r->deadline, NULL, NULL);
    r->data = w.data;
    return NULL;
}

static int wq_len(void) {
    int n = 0;
    br__ilock_lock(&wq.lock);
    for (br__waiter *w = wq.head; w; w = w->next)
        n++;
    br__ilock_unlock(&wq.lock);
    return n;
}

static void wait_for_len(int n) {
    int64_t give_up = br_test_hang_guard();
    while (wq_len() != n) {
        BR_CHECK(br_now() < give_up);
        br_sleep(100 * BR_USEC);
    }
}

static void wake_hands_over_data(void **state) {
    (void)state;
    enum { N = 8 };
    pthread_t t[N];
    park_result r[N];
    for (int i = 0; i < N; i++) {
        r[i] = (park_result){.rc = 99, .deadline = BR_FOREVER};
        assert_int_equal(pthread_create(&t[i], NULL, parker, &r[i]), 0);
    }
    wait_for_len(N);
    BR_CHECK_EQ(br__wq_wake(&wq, 3, 7), 3);
    wait_for_len(N - 3);
    BR_CHECK_EQ(br__wq_wake(&wq, -1, 9), N - 3);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    int sevens = 0, nines = 0;
    for (int i = 0; i < N; i++) {
        BR_CHECK_EQ(r[i].rc, 0);
        sevens += r[i].data == 7;
        nines += r[i].data == 9;
    }
    BR_CHECK_EQ(sevens, 3);
    BR_CHECK_EQ(nines, N - 3);
    BR_CHECK(br__wq_empty(&wq));
    BR_CHECK_EQ(br__wq_wake(&wq, 1, 0), 0);
}

static void park_times_out_and_unlinks(void **state) {
    (void)state;
    park_result r = {.rc = 99, .deadline = br_deadline_after(20 * BR_MSEC)};
    int64_t t0 = br_now();
    parker(&r);
    BR_CHECK_EQ(r.rc, BR_ETIMEDOUT);
    BR_CHECK(br_now() - t0 >= 20 * BR_MSEC);
    BR_CHECK(br__wq_empty(&wq));
    /* NOWAIT: at once */
    r = (park_result){.rc = 99, .deadline = BR_NOWAIT};
    parker(&r);
    BR_CHECK_EQ(r.rc, BR_ETIMEDOUT);
    BR_CHECK(br__wq_empty(&wq));
}

/* Timeouts racing with wakes: every wake is either received (rc 0, data set) or the
 * waiter timed out while still linked (rc BR_ETIMEDOUT): a wake is never lost. */
static void *racer(void *arg) {
    park_result *r = arg;
    parker(r);
    return NULL;
}

static void timeout_races_with_wake(void **state) {
    (void)state;
    long rounds = br_test_scaled(2000, 100);
    long received = 0, woken = 0;
    for (long i = 0; i < rounds; i++) {
        park_result r = {.rc = 99, .deadline = br_deadline_after((i % 50) * BR_USEC)};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, racer, &r), 0);
        /* wake whatever is there, repeatedly, until the thread is gone */
        for (int k = 0; k < 3; k++) {
            woken += br__wq_wake(&wq, 1, 1);
            br__cpu_relax();
        }
        pthread_join(t, NULL);
        BR_CHECK(r.rc == 0 || r.rc == BR_ETIMEDOUT);
        if (r.rc == 0) {
            BR_CHECK_EQ(r.data, 1);
            received++;
        }
        BR_CHECK(br__wq_empty(&wq));
    }
    /* every wake that popped a waiter was received by it */
    BR_CHECK_EQ(received, woken);
}

/* The parker's spin and sleep paths both deliver the wake. */
static void wake_after_sleep(void **state) {
    (void)state;
    park_result r = {.rc = 99, .deadline = BR_FOREVER};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, parker, &r), 0);
    wait_for_len(1);
    /* Past the spin: the thread parker sets signalled to 2 when it sleeps in the futex.
     * Read under the queue's ilock, which keeps the waiter linked while we look. */
    int64_t give_up = br_test_hang_guard();
    for (;;) {
        br__ilock_lock(&wq.lock);
        uint32_t s = wq.head ? atomic_load(&wq.head->signalled) : 0;
        br__ilock_unlock(&wq.lock);
        if (s == 2)
            break;
        BR_CHECK(br_now() < give_up);
        br_sleep(100 * BR_USEC);
    }
    BR_CHECK_EQ(br__wq_wake(&wq, 1, 42), 1);
    pthread_join(t, NULL);
    BR_CHECK_EQ(r.rc, 0);
    BR_CHECK_EQ(r.data, 42);
}

static void self_identity(void **state) {
    (void)state;
    uintptr_t me = br__self();
    BR_CHECK(me != 0);
    BR_CHECK_EQ(br__self(), me);
}

static void *other_self(void *arg) {
    *(uintptr_t *)arg = br__self();
    return NULL;
}

static void identities_differ_between_threads(void **state) {
    (void)state;
    uintptr_t other = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, other_self, &other), 0);
    pthread_join(t, NULL);
    BR_CHECK(other != 0);
    BR_CHECK(other != br__self());
}

BR_TEST_MAIN(cmocka_unit_test(ilock_excludes), cmocka_unit_test(wake_hands_over_data),
             cmocka_unit_test(park_times_out_and_unlinks),
             cmocka_unit_test(timeout_races_with_wake), cmocka_unit_test(wake_after_sleep),
             cmocka_unit_test(self_identity),
             cmocka_unit_test(identities_differ_between_threads))
