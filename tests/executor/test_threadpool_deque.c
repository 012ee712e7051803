/* The thread pool's Chase-Lev deque (src/executor/pool/deque.c): single-threaded order,
 * growth, chains, and the races that matter: an owner pushing and taking while
 * thieves steal, where every task must come out exactly once.
 *
 * The deque only moves pointers, so the tests use fake br_task blocks (never run). */
#include "harness.h"

#include "executor/pool/deque.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static br_task *tasks_new(size_t n) {
    br_task *t = calloc(n, sizeof *t);
    BR_CHECK(t != NULL);
    for (size_t i = 0; i < n; i++)
        t[i].deadline = (int64_t)i; /* an id; the deque never looks */
    return t;
}

static void deque_lifo_owner_fifo_thief(void **state) {
    (void)state;
    br__deque d;
    BR_CHECK_OK(br__deque_init(&d, 4));
    br_task *t = tasks_new(100);
    BR_CHECK(br__deque_take(&d) == NULL);
    br_task *x = NULL;
    BR_CHECK_EQ(br__deque_steal(&d, &x), BR__STEAL_EMPTY);
    for (int i = 0; i < 100; i++) /* grows from 16 slots several times */
        BR_CHECK_OK(br__deque_push(&d, &t[i]));
    BR_CHECK_EQ(br__deque_size(&d), 100);
    BR_CHECK_EQ(br__deque_steal(&d, &x), BR__STEAL_OK);
    BR_CHECK(x == &t[0]); /* thieves take the oldest */
    BR_CHECK(br__deque_take(&d) == &t[99]); /* the owner the newest */
    for (int i = 98; i >= 1; i--)
        BR_CHECK(br__deque_take(&d) == &t[i]);
    BR_CHECK(br__deque_take(&d) == NULL);
    BR_CHECK_EQ(br__deque_size(&d), 0);
    br__deque_destroy(&d);
    free(t);
}

static void deque_push_chain(void **state) {
    (void)state;
    br__deque d;
    BR_CHECK_OK(br__deque_init(&d, 16));
    enum { N = 1000 };
    br_task *t = tasks_new(N);
    for (int i = 0; i < N - 1; i++)
        t[i].next = &t[i + 1];
    t[N - 1].next = NULL;
    BR_CHECK(br__deque_push_chain(&d, &t[0]) == NULL);
    BR_CHECK_EQ(br__deque_size(&d), N);
    /* The chain's last task is at the bottom: the owner takes it first. */
    BR_CHECK(br__deque_take(&d) == &t[N - 1]);
    br_task *x;
    BR_CHECK_EQ(br__deque_steal(&d, &x), BR__STEAL_OK);
    BR_CHECK(x == &t[0]);
    for (int i = N - 2; i >= 1; i--)
        BR_CHECK(br__deque_take(&d) == &t[i]);
    BR_CHECK(br__deque_take(&d) == NULL);
    BR_CHECK(br__deque_push_chain(&d, NULL) == NULL);
    br__deque_destroy(&d);
    free(t);
}

/* The owner pushes N tasks in bursts and takes some back; thieves steal. Every task
 * is seen exactly once, and nothing is lost. */
enum { THIEVES = 3 };

typedef struct race {
    br__deque d;
    br_task *t;
    long n;
    _Atomic unsigned char *seen;
    _Atomic long got;
    _Atomic int done;
} race;

static void see(race *r, br_task *x) {
    BR_CHECK(x >= r->t && x < r->t + r->n);
    unsigned char was = atomic_fetch_add(&r->seen[x - r->t], 1);
    if (was != 0)
        fail_msg("task %ld taken twice", (long)(x - r->t));
    atomic_fetch_add(&r->got, 1);
}

static void *thief(void *arg) {
    race *r = arg;
    for (;;) {
        br_task *x;
        int rc = br__deque_steal(&r->d, &x);
        if (rc == BR__STEAL_OK)
            see(r, x);
        else if (rc == BR__STEAL_EMPTY && atomic_load(&r->done))
            break;
    }
    return NULL;
}

/* Makes n tasks and a deque of 16 slots (small: it grows while thieves read), and
 * starts the thieves. */
static void race_start(race *r, long n, pthread_t th[THIEVES]) {
    memset(r, 0, sizeof *r);
    r->n = n;
    r->t = tasks_new((size_t)n);
    r->seen = calloc((size_t)n, 1);
    BR_CHECK(r->seen != NULL);
    BR_CHECK_OK(br__deque_init(&r->d, 16));
    for (int i = 0; i < THIEVES; i++)
        BR_CHECK_EQ(pthread_create(&th[i], NULL, thief, r), 0);
}

/* The owner is done: the thieves empty the deque and stop. Every task was seen
 * exactly once. */
static void race_finish(race *r, pthread_t th[THIEVES]) {
    atomic_store(&r->done, 1);
    for (int k = 0; k < THIEVES; k++)
        BR_CHECK_EQ(pthread_join(th[k], NULL), 0);
    BR_CHECK_EQ(atomic_load(&r->got), r->n);
    for (long k = 0; k < r->n; k++)
        BR_CHECK_EQ(atomic_load(&r->seen[k]), 1);
    br__deque_destroy(&r->d);
    free(r->seen);
    free(r->t);
}

static void deque_owner_vs_thieves(void **state) {
    (void)state;
    race r;
    pthread_t th[THIEVES];
    race_start(&r, br_test_scaled(2000000, 100000), th);
    unsigned seed = 7;
    long i = 0;
    while (i < r.n) {
        long burst = 1 + rand_r(&seed) % 64;
        for (long k = 0; k < burst && i < r.n; k++)
            BR_CHECK_OK(br__deque_push(&r.d, &r.t[i++]));
        long takes = rand_r(&seed) % 48;
        for (long k = 0; k < takes; k++) {
            br_task *x = br__deque_take(&r.d);
            if (x == NULL)
                break;
            see(&r, x);
        }
    }
    br_task *x;
    while ((x = br__deque_take(&r.d)) != NULL)
        see(&r, x);
    race_finish(&r, th);
}

/* The hardest case: one task at a time, owner and thieves racing for the last one. */
static void deque_last_task_race(void **state) {
    (void)state;
    race r;
    pthread_t th[THIEVES];
    race_start(&r, br_test_scaled(500000, 20000), th);
    for (long i = 0; i < r.n; i++) {
        BR_CHECK_OK(br__deque_push(&r.d, &r.t[i]));
        br_task *x = br__deque_take(&r.d);
        if (x)
            see(&r, x);
    }
    race_finish(&r, th);
}

BR_TEST_MAIN(cmocka_unit_test(deque_lifo_owner_fifo_thief),
             cmocka_unit_test(deque_push_chain),
             cmocka_unit_test(deque_owner_vs_thieves),
             cmocka_unit_test(deque_last_task_race))
