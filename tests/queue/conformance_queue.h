/* The queue conformance suite: what every queue kind must do. Each test_<kind>.c sets
 * QKIND and includes this file, then lists CONFORMANCE_TESTS in its table next to its
 * own kind-specific tests.
 *
 * SimpleQueue has no maxsize and no task_done/join: where a test needs them, it checks
 * that SimpleQueue refuses them with the documented code instead.
 *
 * braid-test-timeout: 120
 */
#ifndef BRAID_TESTS_CONFORMANCE_QUEUE_H
#define BRAID_TESTS_CONFORMANCE_QUEUE_H

#ifndef QKIND
#  error "define QKIND (a br_queue_kind) before including conformance_queue.h"
#endif

#include "harness.h"
#include "cancel_util.h"
#include "core/lib.h"
#include "queue/private.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#ifdef CONF_CORO /* every blocking side a coroutine on a loop of its own (coro_host.h) */
#  include "coro_host.h"
#  define pthread_create conf_coro_pthread_create
#endif

/* Rounds of the free-versus-finishing races. With threads a round is cheap; the coroutine
 * re-run starts a loop and a coroutine per side and round, about 4 ms a round under a
 * sanitizer, and the threaded suites already run the full count there. */
#if defined(CONF_CORO) && defined(BRAID_SANITIZE_BUILD)
#  define RACE_ROUNDS(n) ((n) / 5)
#else
#  define RACE_ROUNDS(n) (n)
#endif

#define IS_SIMPLE (QKIND == BR_QUEUE_SIMPLE)
#define IS_LIFO (QKIND == BR_QUEUE_LIFO)
#define IS_PRIO (QKIND == BR_QUEUE_PRIORITY)

/* --- helpers ------------------------------------------------------------------------ */

typedef struct disposed_log {
    pthread_mutex_t mu;
    long n;
    uintptr_t *order; /* may be NULL; else room for `cap` entries */
    long cap;
    unsigned char *seen; /* optional: per-id marks shared with the consumers */
    long nseen;
    _Atomic long dup;
} disposed_log;

static void log_dispose(void *item, void *ctx) {
    disposed_log *d = ctx;
    uintptr_t v = (uintptr_t)item;
    pthread_mutex_lock(&d->mu);
    if (d->order && d->n < d->cap)
        d->order[d->n] = v;
    d->n++;
    pthread_mutex_unlock(&d->mu);
    if (d->seen && v < (uintptr_t)d->nseen &&
        atomic_fetch_add((_Atomic unsigned char *)&d->seen[v], 1) != 0)
        atomic_fetch_add(&d->dup, 1);
}

static br_queue *mkq_with(size_t maxsize, disposed_log *log) {
    br_queue *q = NULL;
    br_queue_opts o = {.kind = QKIND, .maxsize = maxsize};
    if (log) {
        o.dispose = log_dispose;
        o.dispose_ctx = log;
    }
    BR_CHECK_OK(br_queue_new(&q, &o));
    BR_CHECK(q != NULL);
    return q;
}
static br_queue *mkq(size_t maxsize) { return mkq_with(maxsize, NULL); }

/* SimpleQueue has no maxsize and no task_done/join. A test of those features checks,
 * for it, that they are refused as documented, so it never passes without a check. */
static void simple_refuses_maxsize(void) {
    br_queue *q = (br_queue *)1;
    br_queue_opts o = {.kind = QKIND, .maxsize = 2};
    BR_CHECK_ERR(br_queue_new(&q, &o), BR_EINVAL);
    BR_CHECK(q == NULL);
}

static void simple_refuses_join(void) {
    br_queue *q = mkq(0);
    BR_CHECK_OK(br_queue_put(q, (void *)1, BR_NOWAIT));
    BR_CHECK_ERR(br_queue_task_done(q), BR_ENOTSUP);
    BR_CHECK_ERR(br_queue_join(q, BR_NOWAIT), BR_ENOTSUP);
    BR_CHECK_OK(br_queue_free(q));
}

/* Priority queues get a spread of priorities where order doesn't matter. */
static int qput_any(br_queue *q, uintptr_t v, int64_t deadline) {
    if (IS_PRIO)
        return br_queue_put_prio(q, (void *)v, (int64_t)(v % 7) - 3, deadline);
    return br_queue_put(q, (void *)v, deadline);
}

static int qget(br_queue *q, uintptr_t *v, int64_t deadline) {
    void *x = (void *)(uintptr_t)0xdead;
    int rc = br_queue_get(q, &x, deadline);
    *v = rc == 0 ? (uintptr_t)x : 0;
    return rc;
}

/* Waits (polling state, no settling sleeps) until exactly these many getters, putters
 * and joiners are linked: the blocked threads are then really parked on the queue. */
#define wait_waiters(q, g, p, j) br_test_wait_queue_waiters((q), (g), (p), (j))

static void wait_busy_zero(br_queue *q) {
    int64_t give_up = br_test_hang_guard();
    while (br__queue_busy(q) != 0) {
        BR_CHECK(br_now() < give_up);
        br_sleep(100 * BR_USEC);
    }
}

/* A thread doing one blocking call. */
enum { OP_GET, OP_PUT, OP_JOIN };
typedef struct op_thread {
    pthread_t th;
    br_queue *q;
    int op;
    uintptr_t v; /* OP_PUT: the item; OP_GET: what came out */
    int64_t deadline;
    int rc;
    _Atomic bool returned; /* set once the call has returned */
} op_thread;

static void *op_main(void *arg) {
    op_thread *t = arg;
    switch (t->op) {
    case OP_GET:
        t->rc = qget(t->q, &t->v, t->deadline);
        break;
    case OP_PUT:
        t->rc = br_queue_put(t->q, (void *)t->v, t->deadline);
        break;
    default:
        t->rc = br_queue_join(t->q, t->deadline);
        break;
    }
    atomic_store(&t->returned, true);
    return NULL;
}

static void op_start(op_thread *t, br_queue *q, int op, uintptr_t v, int64_t deadline) {
    t->q = q;
    t->op = op;
    t->v = v;
    t->deadline = deadline;
    t->rc = 12345;
    atomic_init(&t->returned, false);
    assert_int_equal(pthread_create(&t->th, NULL, op_main, t), 0);
}

static void op_join(op_thread *t) { assert_int_equal(pthread_join(t->th, NULL), 0); }

/* --- basics ------------------------------------------------------------------------- */

static void conf_new_and_sizes(void **state) {
    (void)state;
    br_queue *q = mkq(0);
    BR_CHECK_EQ(br_queue_qsize(q), 0);
    BR_CHECK(br_queue_empty(q));
    BR_CHECK(!br_queue_full(q));
    BR_CHECK_EQ(br_queue_maxsize(q), 0);
    BR_CHECK(!br_queue_is_shutdown(q));
    for (uintptr_t i = 1; i <= 5; i++) {
        BR_CHECK_OK(qput_any(q, i, BR_NOWAIT));
        BR_CHECK_EQ(br_queue_qsize(q), i);
    }
    BR_CHECK(!br_queue_empty(q));
    BR_CHECK(!br_queue_full(q)); /* unbounded: never full */
    uintptr_t v;
    for (long i = 4; i >= 0; i--) {
        BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
        BR_CHECK_EQ(br_queue_qsize(q), i);
    }
    BR_CHECK(br_queue_empty(q));
    BR_CHECK_OK(br_queue_free(q));
}

static void conf_nowait_on_empty(void **state) {
    (void)state;
    br_queue *q = mkq(0);
    void *x = &x;
    BR_CHECK_ERR(br_queue_get(q, &x, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_queue_get(q, &x, br_now() - BR_SEC), BR_ETIMEDOUT); /* any past one */
    BR_CHECK_ERR(br_queue_get(q, &x, -5), BR_ETIMEDOUT);
    BR_CHECK(x == &x); /* untouched on failure */
    uintptr_t v;
    BR_CHECK_OK(qput_any(q, 3, BR_NOWAIT));
    BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
    BR_CHECK_EQ(v, 3);
    BR_CHECK_ERR(qget(q, &v, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_OK(br_queue_free(q));
}

static void conf_nowait_on_full(void **state) {
    (void)state;
    if (IS_SIMPLE) {
        br_queue *q = NULL;
        br_queue_opts o = {.kind = QKIND, .maxsize = 3};
        BR_CHECK_ERR(br_queue_new(&q, &o), BR_EINVAL);
        BR_CHECK(q == NULL);
        return;
    }
    br_queue *q = mkq(3);
    BR_CHECK_EQ(br_queue_maxsize(q), 3);
    for (uintptr_t i = 1; i <= 3; i++)
        BR_CHECK_OK(qput_any(q, i, BR_NOWAIT));
    BR_CHECK(br_queue_full(q));
    BR_CHECK_EQ(br_queue_qsize(q), 3);
    BR_CHECK_ERR(qput_any(q, 4, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_ERR(qput_any(q, 4, br_now() - 1), BR_ETIMEDOUT);
    BR_CHECK_EQ(br_queue_qsize(q), 3);
    uintptr_t v;
    BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
    BR_CHECK(!br_queue_full(q));
    BR_CHECK_OK(qput_any(q, 4, BR_NOWAIT));
    BR_CHECK(br_queue_full(q));
    uintptr_t sum = v;
    while (qget(q, &v, BR_NOWAIT) == 0)
        sum += v;
    BR_CHECK_EQ(sum, 1 + 2 + 3 + 4);
    BR_CHECK_OK(br_queue_free(q));
}

static void conf_null_item(void **state) {
    (void)state;
    br_queue *q = mkq(0);
    BR_CHECK_OK(br_queue_put(q, NULL, BR_NOWAIT));
    void *x = &x;
    BR_CHECK_OK(br_queue_get(q, &x, BR_NOWAIT));
    BR_CHECK(x == NULL);
    BR_CHECK_OK(br_queue_free(q));
}

/* Many items through, across every internal boundary (chunks, growth, shrinking),
 * each exactly once. */
static void conf_round_trip_many(void **state) {
    (void)state;
    const long n = br_test_scaled(100000, 5000);
    unsigned char *seen = calloc((size_t)n + 1, 1);
    BR_CHECK(seen != NULL);
    br_queue *q = mkq(0);
    for (int round = 0; round < 2; round++) { /* second round reuses the storage */
        memset(seen, 0, (size_t)n + 1);
        for (long i = 1; i <= n; i++)
            BR_CHECK_OK(qput_any(q, (uintptr_t)i, BR_NOWAIT));
        BR_CHECK_EQ(br_queue_qsize(q), n);
        for (long i = 0; i < n; i++) {
            uintptr_t v;
            BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
            BR_CHECK(v >= 1 && v <= (uintptr_t)n);
            BR_CHECK_EQ(seen[v]++, 0);
        }
        BR_CHECK(br_queue_empty(q));
    }
    BR_CHECK_OK(br_queue_free(q));
    free(seen);
}

/* A bounded queue reserves its room at creation: a large bound is cheap until used
 * (the pages come from the kernel on first touch), and an impossible one is BR_ENOMEM. */
static void conf_large_maxsize(void **state) {
    (void)state;
    if (IS_SIMPLE) {
        simple_refuses_maxsize();
        return;
    }
    const size_t big = (size_t)1 << 22;
    br_queue *q = mkq(big);
    BR_CHECK_EQ(br_queue_maxsize(q), big);
    for (uintptr_t i = 1; i <= 1000; i++)
        BR_CHECK_OK(qput_any(q, i, BR_NOWAIT));
    uintptr_t v, sum = 0;
    while (qget(q, &v, BR_NOWAIT) == 0)
        sum += v;
    BR_CHECK_EQ(sum, 1000 * 1001 / 2);
    BR_CHECK_OK(br_queue_free(q));

    br_queue_opts o = {.kind = QKIND, .maxsize = SIZE_MAX / 2};
    q = (br_queue *)&o;
    BR_CHECK_ERR(br_queue_new(&q, &o), BR_ENOMEM);
    BR_CHECK(q == NULL);
}

/* --- out of memory ------------------------------------------------------------------ */

/* br_queue_new under an out-of-memory loop: fail the Nth allocation for N = 0, 1, ...
 * until it succeeds. Every failure is BR_ENOMEM with nothing made (LeakSanitizer checks
 * that nothing leaked in the ASan build), and the queue finally made works. */
static void conf_oom_new(void **state) {
    (void)state;
    const size_t sizes[] = {0, 1, 100, 5000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        if (IS_SIMPLE && sizes[k] != 0)
            continue;
        br_queue_opts o = {.kind = QKIND, .maxsize = sizes[k]};
        for (long n = 0;; n++) {
            BR_CHECK(n < 100);
            br_queue *q = (br_queue *)&o;
            br__alloc_fail_after(n);
            int rc = br_queue_new(&q, &o);
            br__alloc_fail_after(-1);
            if (rc != 0) {
                BR_CHECK_ERR(rc, BR_ENOMEM);
                BR_CHECK(q == NULL);
                continue;
            }
            BR_CHECK(n > 0); /* it allocates, so failing the first allocation must show */
            BR_CHECK_OK(qput_any(q, 5, BR_NOWAIT));
            uintptr_t v;
            BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
            BR_CHECK_EQ(v, 5);
            BR_CHECK_OK(br_queue_free(q));
            break;
        }
    }
}

/* An unbounded queue grows on put (a FIFO chunk, the LIFO/priority array). A growth
 * that fails is BR_ENOMEM and changes nothing: the item stays the caller's, the counts
 * are unchanged, and the queue goes on working (order, task_done and join included).
 * A get never needs memory (a failed shrink keeps the larger array), nor does a put on
 * a bounded queue. */
static void conf_oom_grow(void **state) {
    (void)state;
    const long n = 3000; /* a dozen FIFO chunks; the array doubles 8 times */
    br_queue *q = mkq(0);
    long enomem = 0;
    for (int round = 0; round < 2; round++) { /* the second reuses spare storage */
        for (long i = 1; i <= n; i++) {
            br__alloc_fail_after(0);
            int rc = qput_any(q, (uintptr_t)i, BR_NOWAIT);
            br__alloc_fail_after(-1);
            if (rc == BR_ENOMEM) {
                enomem++;
                BR_CHECK_EQ(br_queue_qsize(q), i - 1); /* nothing went in */
                rc = qput_any(q, (uintptr_t)i, BR_NOWAIT);
            }
            BR_CHECK_OK(rc);
            BR_CHECK_EQ(br_queue_qsize(q), i);
        }
        BR_CHECK(enomem > 0);    /* the first round had to grow */
        br__alloc_fail_after(0); /* getting never allocates: every get succeeds */
        int64_t last_prio = INT64_MIN;
        uintptr_t last = 0;
        for (long k = 0; k < n; k++) {
            void *x;
            int64_t pr;
            int rc = br_queue_get_prio(q, &x, &pr, BR_NOWAIT);
            if (rc != 0) {
                br__alloc_fail_after(-1);
                BR_CHECK_OK(rc);
            }
            uintptr_t v = (uintptr_t)x;
            bool in_order = IS_LIFO   ? v == (uintptr_t)(n - k)
                            : IS_PRIO ? pr > last_prio || (pr == last_prio && v > last)
                                      : v == (uintptr_t)(k + 1);
            if (!in_order) {
                br__alloc_fail_after(-1);
                fail_msg("get #%ld: item %lu (priority %lld) out of order", k,
                         (unsigned long)v, (long long)pr);
            }
            last_prio = pr;
            last = v;
        }
        br__alloc_fail_after(-1);
        BR_CHECK(br_queue_empty(q));
        if (!IS_SIMPLE) { /* exactly n items went in: n task_done calls, not one more */
            for (long k = 0; k < n; k++)
                BR_CHECK_OK(br_queue_task_done(q));
            BR_CHECK_ERR(br_queue_task_done(q), BR_EOVERFLOW);
            BR_CHECK_OK(br_queue_join(q, BR_NOWAIT));
        }
    }
    BR_CHECK_OK(br_queue_free(q));

    if (IS_SIMPLE)
        return;
    q = mkq(700);
    br__alloc_fail_after(0);
    int bad = 0;
    for (int round = 0; round < 3; round++) {
        for (uintptr_t i = 1; i <= 700; i++)
            bad += qput_any(q, i, BR_NOWAIT) != 0;
        uintptr_t v;
        for (uintptr_t i = 1; i <= 700; i++)
            bad += qget(q, &v, BR_NOWAIT) != 0;
    }
    br__alloc_fail_after(-1);
    BR_CHECK_EQ(bad, 0);
    BR_CHECK_OK(br_queue_free(q));
}

/* --- deadlines ------------------------------------------------------------------------ */

static void conf_get_deadline_not_early(void **state) {
    (void)state;
    br_queue *q = mkq(0);
    uintptr_t v;
    for (int i = 0; i < 3; i++) {
        int64_t wait = (i + 1) * 20 * BR_MSEC;
        int64_t t0 = br_now(), dl = t0 + wait;
        BR_CHECK_ERR(qget(q, &v, dl), BR_ETIMEDOUT);
        BR_CHECK(br_now() >= dl);
    }
    BR_CHECK_EQ(br__queue_busy(q), 0);
    size_t g, p, j;
    br__queue_waiters(q, &g, &p, &j);
    BR_CHECK_EQ(g + p + j, 0);
    BR_CHECK_OK(br_queue_free(q));
}

static void conf_put_deadline_not_early(void **state) {
    (void)state;
    if (IS_SIMPLE) {
        simple_refuses_maxsize(); /* never full */
        return;
    }
    br_queue *q = mkq(1);
    BR_CHECK_OK(qput_any(q, 1, BR_NOWAIT));
    for (int i = 0; i < 3; i++) {
        int64_t dl = br_now() + (i + 1) * 20 * BR_MSEC;
        BR_CHECK_ERR(qput_any(q, 2, dl), BR_ETIMEDOUT);
        BR_CHECK(br_now() >= dl);
    }
    BR_CHECK_EQ(br_queue_qsize(q), 1);
    uintptr_t v;
    BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
    BR_CHECK_EQ(v, 1);
    BR_CHECK_ERR(qget(q, &v, BR_NOWAIT), BR_ETIMEDOUT); /* the timed-out item isn't in */
    BR_CHECK_OK(br_queue_free(q));
}

/* A getter that timed out leaves no trace: the next item goes to the next get. */
static void conf_timed_out_getter_loses_nothing(void **state) {
    (void)state;
    br_queue *q = mkq(0);
    op_thread t;
    op_start(&t, q, OP_GET, 0, br_deadline_after(30 * BR_MSEC));
    op_join(&t);
    BR_CHECK_ERR(t.rc, BR_ETIMEDOUT);
    BR_CHECK_OK(qput_any(q, 42, BR_NOWAIT));
    uintptr_t v;
    BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
    BR_CHECK_EQ(v, 42);
    BR_CHECK_OK(br_queue_free(q));
}

/* --- blocking and waking ---------------------------------------------------------------- */

static void conf_blocked_get_released_by_put(void **state) {
    (void)state;
    br_queue *q = mkq(0);
    op_thread t;
    op_start(&t, q, OP_GET, 0, BR_FOREVER);
    wait_waiters(q, 1, 0, 0);
    BR_CHECK_EQ(br__queue_busy(q), 1);
    BR_CHECK_OK(qput_any(q, 99, BR_NOWAIT));
    op_join(&t);
    BR_CHECK_OK(t.rc);
    BR_CHECK_EQ(t.v, 99);
    BR_CHECK_EQ(br__queue_busy(q), 0);
    BR_CHECK_OK(br_queue_free(q));
}

static void conf_blocked_get_with_deadline_released(void **state) {
    (void)state;
    br_queue *q = mkq(0);
    op_thread t;
    op_start(&t, q, OP_GET, 0, br_deadline_after(60 * BR_SEC));
    wait_waiters(q, 1, 0, 0);
    BR_CHECK_OK(qput_any(q, 5, BR_NOWAIT));
    op_join(&t);
    BR_CHECK_OK(t.rc);
    BR_CHECK_EQ(t.v, 5);
    BR_CHECK_OK(br_queue_free(q));
}

static void conf_blocked_put_released_by_get(void **state) {
    (void)state;
    if (IS_SIMPLE) {
        simple_refuses_maxsize();
        return;
    }
    br_queue *q = mkq(1);
    BR_CHECK_OK(qput_any(q, 1, BR_NOWAIT));
    op_thread t;
    op_start(&t, q, OP_PUT, 2, BR_FOREVER);
    wait_waiters(q, 0, 1, 0);
    BR_CHECK_EQ(br_queue_qsize(q), 1);
    uintptr_t v;
    BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
    BR_CHECK_EQ(v, 1);
    op_join(&t);
    BR_CHECK_OK(t.rc);
    BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
    BR_CHECK_EQ(v, 2);
    BR_CHECK_OK(br_queue_free(q));
}

/* Many getters parked, as many puts: each getter gets exactly one distinct item. */
static void conf_many_getters_each_get_one(void **state) {
    (void)state;
    enum { N = 6 };
    br_queue *q = mkq(0);
    op_thread t[N];
    for (int i = 0; i < N; i++)
        op_start(&t[i], q, OP_GET, 0, BR_FOREVER);
    wait_waiters(q, N, 0, 0);
    for (uintptr_t i = 1; i <= N; i++)
        BR_CHECK_OK(qput_any(q, i, BR_NOWAIT));
    unsigned seen = 0;
    for (int i = 0; i < N; i++) {
        op_join(&t[i]);
        BR_CHECK_OK(t[i].rc);
        BR_CHECK(t[i].v >= 1 && t[i].v <= N);
        BR_CHECK((seen & (1u << t[i].v)) == 0);
        seen |= 1u << t[i].v;
    }
    BR_CHECK(br_queue_empty(q));
    BR_CHECK_OK(br_queue_free(q));
}

static void conf_many_putters_each_put_one(void **state) {
    (void)state;
    if (IS_SIMPLE) {
        simple_refuses_maxsize();
        return;
    }
    enum { N = 6 };
    br_queue *q = mkq(2);
    BR_CHECK_OK(qput_any(q, 100, BR_NOWAIT));
    BR_CHECK_OK(qput_any(q, 101, BR_NOWAIT));
    op_thread t[N];
    for (int i = 0; i < N; i++)
        op_start(&t[i], q, OP_PUT, (uintptr_t)i + 1, BR_FOREVER);
    wait_waiters(q, 0, N, 0);
    unsigned seen = 0;
    for (int i = 0; i < N + 2; i++) {
        uintptr_t v;
        BR_CHECK_OK(qget(q, &v, br_test_hang_guard()));
        BR_CHECK(br_queue_qsize(q) <= 2);
        unsigned bit = v >= 100 ? 1u << (v - 100 + 16) : 1u << v;
        BR_CHECK((seen & bit) == 0);
        seen |= bit;
    }
    for (int i = 0; i < N; i++) {
        op_join(&t[i]);
        BR_CHECK_OK(t[i].rc);
    }
    BR_CHECK_EQ(seen, 0x7eu | (3u << 16));
    BR_CHECK_OK(br_queue_free(q));
}

/* --- stress: every item consumed exactly once -------------------------------------------- */

typedef struct stress {
    br_queue *q;
    long per;   /* items per producer */
    int nprod;
    unsigned char *seen; /* [1 .. nprod*per] */
    _Atomic long got, dup;
    _Atomic uint64_t sum;
    _Atomic long *put_ok; /* per producer: how many puts succeeded */
    _Atomic long refused; /* puts refused by the shutdown (the caller kept the item) */
    _Atomic int next_id;
    _Atomic long errors; /* unexpected codes in the threads (checked by the test) */
} stress;

static void *stress_producer(void *arg) {
    stress *s = arg;
    int id = atomic_fetch_add(&s->next_id, 1);
    for (long i = 0; i < s->per; i++) {
        uintptr_t v = (uintptr_t)id * (uintptr_t)s->per + (uintptr_t)i + 1;
        int rc = qput_any(s->q, v, BR_FOREVER);
        if (rc == BR_ESHUTDOWN) {
            atomic_fetch_add(&s->refused, 1);
            break;
        }
        if (rc != 0) {
            atomic_fetch_add(&s->errors, 1);
            break;
        }
        atomic_fetch_add(&s->put_ok[id], 1);
    }
    return NULL;
}

static void *stress_consumer(void *arg) {
    stress *s = arg;
    for (;;) {
        uintptr_t v;
        int rc = qget(s->q, &v, BR_FOREVER);
        if (rc == BR_ESHUTDOWN)
            break;
        if (rc != 0) {
            atomic_fetch_add(&s->errors, 1);
            break;
        }
        if (v < 1 || v > (uintptr_t)(s->per * s->nprod) ||
            atomic_fetch_add((_Atomic unsigned char *)&s->seen[v], 1) != 0)
            atomic_fetch_add(&s->dup, 1);
        atomic_fetch_add(&s->sum, v);
        atomic_fetch_add(&s->got, 1);
        if (!IS_SIMPLE && br_queue_task_done(s->q) != 0)
            atomic_fetch_add(&s->errors, 1);
    }
    return NULL;
}

enum { SHUT_AFTER_PRODUCERS, SHUT_DRAIN_MIDWAY, SHUT_IMMEDIATE_MIDWAY };

static void run_stress(size_t maxsize, int nprod, int ncons, long per, int how) {
    stress s;
    memset(&s, 0, sizeof s);
    disposed_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    s.per = per;
    s.nprod = nprod;
    long total = per * nprod;
    s.seen = calloc((size_t)total + 1, 1);
    s.put_ok = calloc((size_t)nprod, sizeof *s.put_ok);
    BR_CHECK(s.seen != NULL && s.put_ok != NULL);
    log.seen = s.seen;
    log.nseen = total + 1;
    s.q = mkq_with(maxsize, &log);

    pthread_t pt[16], ct[16];
    for (int i = 0; i < ncons; i++)
        assert_int_equal(pthread_create(&ct[i], NULL, stress_consumer, &s), 0);
    for (int i = 0; i < nprod; i++)
        assert_int_equal(pthread_create(&pt[i], NULL, stress_producer, &s), 0);
    if (how == SHUT_AFTER_PRODUCERS) {
        for (int i = 0; i < nprod; i++)
            pthread_join(pt[i], NULL);
        BR_CHECK_OK(br_queue_shutdown(s.q, false));
    } else {
        /* Let some traffic through, then shut down in the middle of it. */
        int64_t give_up = br_test_hang_guard();
        while (atomic_load(&s.got) < total / 4) {
            BR_CHECK(br_now() < give_up);
            br_sleep(50 * BR_USEC);
        }
        BR_CHECK_OK(br_queue_shutdown(s.q, how == SHUT_IMMEDIATE_MIDWAY));
        for (int i = 0; i < nprod; i++)
            pthread_join(pt[i], NULL);
    }
    for (int i = 0; i < ncons; i++)
        pthread_join(ct[i], NULL);

    long ok = 0;
    for (int i = 0; i < nprod; i++)
        ok += atomic_load(&s.put_ok[i]);
    BR_CHECK_EQ(atomic_load(&s.errors), 0);
    BR_CHECK_EQ(atomic_load(&s.dup), 0);
    BR_CHECK_EQ(atomic_load(&log.dup), 0);
    /* No item lost, none delivered twice: got + disposed == put. */
    BR_CHECK_EQ(atomic_load(&s.got) + log.n, ok);
    if (how != SHUT_IMMEDIATE_MIDWAY)
        BR_CHECK_EQ(log.n, 0);
    if (how == SHUT_AFTER_PRODUCERS) {
        BR_CHECK_EQ(ok, total);
        BR_CHECK_EQ(atomic_load(&s.sum), (uint64_t)total * (uint64_t)(total + 1) / 2);
    }
    /* Exactly the items whose put succeeded were seen (got or disposed). */
    for (int id = 0; id < nprod; id++) {
        long n = atomic_load(&s.put_ok[id]);
        for (long i = 0; i < per; i++) {
            uintptr_t v = (uintptr_t)id * (uintptr_t)per + (uintptr_t)i + 1;
            if (s.seen[v] != (i < n ? 1 : 0))
                fail_msg("item %lu (producer %d, #%ld, %ld put): seen %d times",
                         (unsigned long)v, id, i, n, s.seen[v]);
        }
    }
    BR_CHECK(br_queue_is_shutdown(s.q));
    BR_CHECK(br_queue_empty(s.q));
    if (maxsize != 0) /* a bounded queue never allocates after creation */
        BR_CHECK_EQ(br__queue_chunk_mallocs(s.q), 0);
    if (!IS_SIMPLE) /* every item got was task_done, every drained one counted */
        BR_CHECK_OK(br_queue_join(s.q, BR_NOWAIT));
    BR_CHECK_EQ(br__queue_busy(s.q), 0);
    BR_CHECK_OK(br_queue_free(s.q));
    free(s.seen);
    free(s.put_ok);
}

static void conf_stress_unbounded(void **state) {
    (void)state;
    run_stress(0, 4, 4, br_test_scaled(50000, 2000), SHUT_AFTER_PRODUCERS);
}

static void conf_stress_unbounded_1p1c(void **state) {
    (void)state;
    run_stress(0, 1, 1, br_test_scaled(300000, 10000), SHUT_AFTER_PRODUCERS);
}

static void conf_stress_bounded(void **state) {
    (void)state;
    if (IS_SIMPLE) {
        simple_refuses_maxsize();
        return;
    }
    run_stress(8, 4, 4, br_test_scaled(30000, 1500), SHUT_AFTER_PRODUCERS);
}

static void conf_stress_bounded_tiny(void **state) {
    (void)state;
    if (IS_SIMPLE) {
        simple_refuses_maxsize();
        return;
    }
    run_stress(1, 3, 3, br_test_scaled(20000, 1000), SHUT_AFTER_PRODUCERS);
}

static void conf_stress_shutdown_draining(void **state) {
    (void)state;
    run_stress(IS_SIMPLE ? 0 : 4, 4, 3, br_test_scaled(200000, 4000), SHUT_DRAIN_MIDWAY);
}

static void conf_stress_shutdown_immediate(void **state) {
    (void)state;
    for (int round = 0; round < 3; round++)
        run_stress(IS_SIMPLE ? 0 : 16, 4, 2, br_test_scaled(200000, 4000),
                   SHUT_IMMEDIATE_MIDWAY);
}

/* --- deadlines racing wake-ups ------------------------------------------------------------- */

/* Consumers wait with tiny deadlines while producers put: a wake-up and a deadline often
 * land together (core/lib.h rule 2). Every item still arrives exactly once. */
typedef struct race {
    br_queue *q;
    long per;
    unsigned char *seen;
    _Atomic long got, dup, errors, timeouts;
    _Atomic int next_id;
} race;

static void *race_producer(void *arg) {
    race *r = arg;
    uintptr_t id = (uintptr_t)atomic_fetch_add(&r->next_id, 1);
    uint64_t rng = 88172645463325252u + id;
    for (long i = 0; i < r->per;) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        uintptr_t v = id * (uintptr_t)r->per + (uintptr_t)i + 1;
        int rc = qput_any(r->q, v, br_deadline_after((int64_t)(rng % 50) * BR_USEC));
        if (rc == 0)
            i++;
        else if (rc == BR_ETIMEDOUT)
            atomic_fetch_add(&r->timeouts, 1);
        else
            atomic_fetch_add(&r->errors, 1);
    }
    return NULL;
}

static void *race_consumer(void *arg) {
    race *r = arg;
    uint64_t rng = 0x2545F4914F6CDD1Du ^ (uintptr_t)&rng;
    for (;;) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        uintptr_t v;
        int rc = qget(r->q, &v, br_deadline_after((int64_t)(rng % 50) * BR_USEC));
        if (rc == BR_ESHUTDOWN)
            break;
        if (rc == BR_ETIMEDOUT) {
            atomic_fetch_add(&r->timeouts, 1);
            continue;
        }
        if (rc != 0) {
            atomic_fetch_add(&r->errors, 1);
            break;
        }
        if (atomic_fetch_add((_Atomic unsigned char *)&r->seen[v], 1) != 0)
            atomic_fetch_add(&r->dup, 1);
        atomic_fetch_add(&r->got, 1);
    }
    return NULL;
}

static void conf_stress_deadlines(void **state) {
    (void)state;
    for (size_t maxsize = 0; maxsize <= (IS_SIMPLE ? 0u : 2u); maxsize += 2) {
        race r;
        memset(&r, 0, sizeof r);
        r.per = br_test_scaled(20000, 1000);
        long total = r.per * 3;
        r.seen = calloc((size_t)total + 1, 1);
        BR_CHECK(r.seen != NULL);
        r.q = mkq(maxsize);
        pthread_t pt[3], ct[3];
        for (int i = 0; i < 3; i++)
            assert_int_equal(pthread_create(&ct[i], NULL, race_consumer, &r), 0);
        for (int i = 0; i < 3; i++)
            assert_int_equal(pthread_create(&pt[i], NULL, race_producer, &r), 0);
        for (int i = 0; i < 3; i++)
            pthread_join(pt[i], NULL);
        BR_CHECK_OK(br_queue_shutdown(r.q, false));
        for (int i = 0; i < 3; i++)
            pthread_join(ct[i], NULL);
        BR_CHECK_EQ(atomic_load(&r.errors), 0);
        BR_CHECK_EQ(atomic_load(&r.dup), 0);
        BR_CHECK_EQ(atomic_load(&r.got), total);
        for (long v = 1; v <= total; v++)
            BR_CHECK_EQ(r.seen[v], 1);
        size_t g, p, j;
        br__queue_waiters(r.q, &g, &p, &j);
        BR_CHECK_EQ(g + p + j, 0);
        BR_CHECK_EQ(br__queue_busy(r.q), 0);
        BR_CHECK_OK(br_queue_free(r.q));
        free(r.seen);
    }
}

/* --- blocking goes through the context's parker ------------------------------------------- */

/* A stand-in for the aio layer: a parker that counts its calls (and sleeps on the futex
 * itself). A queue call made in its context must park and be woken through it. */
static _Atomic int ctx_parks, ctx_unparks;

static int ctx_park(br__waiter *w, int64_t deadline) {
    atomic_fetch_add(&ctx_parks, 1);
    for (;;) {
        if (atomic_load(&w->signalled) == 1)
            return 0;
        int rc = br__futex_wait(&w->signalled, 0, deadline, false);
        if (atomic_load(&w->signalled) == 1)
            return 0;
        if (rc == BR_ETIMEDOUT)
            return BR_ETIMEDOUT;
    }
}

static void ctx_unpark(_Atomic uint32_t *signalled, void *ctx, uint32_t old) {
    (void)ctx;
    (void)old;
    atomic_fetch_add(&ctx_unparks, 1);
    br__futex_wake(signalled, 1, false);
}

static const br__parker ctx_parker = {ctx_park, ctx_unpark, NULL};

/* ctx_parks once the getter's timed get has parked and timed out (0 until then), and
 * whether the getter gave up on the way there */
static _Atomic int ctx_timed_parks;
static _Atomic bool ctx_getter_failed;

static void *ctx_getter(void *arg) {
    op_thread *t = arg;
    br__set_context(0x5eed, &ctx_parker, t);
    uintptr_t v;
    int64_t give_up = br_test_hang_guard();
    int before;
    do { /* nothing there: times out through ctx_park. On a loaded machine the 20 ms can
          * pass before the get parks (it then times out without parking): again. */
        before = atomic_load(&ctx_parks);
        int64_t dl = br_deadline_after(20 * BR_MSEC);
        int rc = qget(t->q, &v, dl);
        if (rc != BR_ETIMEDOUT || br_now() < dl || br_now() >= give_up) {
            t->rc = -1;
            atomic_store(&ctx_getter_failed, true);
            br__set_context(0, NULL, NULL);
            return NULL;
        }
    } while (atomic_load(&ctx_parks) == before);
    atomic_store(&ctx_timed_parks, atomic_load(&ctx_parks));
    t->rc = qget(t->q, &t->v, BR_FOREVER);
    br__set_context(0, NULL, NULL);
    return NULL;
}

static void conf_blocks_through_context_parker(void **state) {
    (void)state;
    br_queue *q = mkq(0);
    op_thread t = {.q = q, .rc = 12345};
    assert_int_equal(pthread_create(&t.th, NULL, ctx_getter, &t), 0);
    int64_t give_up = br_test_hang_guard();
    for (;;) { /* the timed-out park, then the blocking one */
        int timed = atomic_load(&ctx_timed_parks);
        if (timed > 0 && atomic_load(&ctx_parks) > timed)
            break;
        BR_CHECK(!atomic_load(&ctx_getter_failed));
        BR_CHECK(br_now() < give_up);
        br_sleep(100 * BR_USEC);
    }
    wait_waiters(q, 1, 0, 0);
    BR_CHECK_OK(qput_any(q, 31, BR_NOWAIT));
    op_join(&t);
    BR_CHECK_OK(t.rc);
    BR_CHECK_EQ(t.v, 31);
    BR_CHECK(atomic_load(&ctx_unparks) >= 1);
    BR_CHECK_OK(br_queue_free(q));
}

/* --- task_done and join ------------------------------------------------------------------- */

static void conf_task_done_and_join(void **state) {
    (void)state;
    br_queue *q = mkq(0);
    if (IS_SIMPLE) {
        BR_CHECK_ERR(br_queue_task_done(q), BR_ENOTSUP);
        BR_CHECK_ERR(br_queue_join(q, BR_NOWAIT), BR_ENOTSUP);
        BR_CHECK_OK(br_queue_free(q));
        return;
    }
    BR_CHECK_OK(br_queue_join(q, BR_NOWAIT)); /* nothing ever put */
    BR_CHECK_ERR(br_queue_task_done(q), BR_EOVERFLOW);
    for (uintptr_t i = 1; i <= 3; i++)
        BR_CHECK_OK(qput_any(q, i, BR_NOWAIT));
    BR_CHECK_ERR(br_queue_join(q, BR_NOWAIT), BR_ETIMEDOUT);
    int64_t dl = br_deadline_after(20 * BR_MSEC);
    BR_CHECK_ERR(br_queue_join(q, dl), BR_ETIMEDOUT);
    BR_CHECK(br_now() >= dl);
    uintptr_t v;
    for (int i = 0; i < 3; i++) {
        BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
        BR_CHECK_ERR(br_queue_join(q, BR_NOWAIT), BR_ETIMEDOUT);
    }
    BR_CHECK_OK(br_queue_task_done(q));
    BR_CHECK_OK(br_queue_task_done(q));
    BR_CHECK_ERR(br_queue_join(q, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_OK(br_queue_task_done(q));
    BR_CHECK_OK(br_queue_join(q, BR_NOWAIT));
    BR_CHECK_ERR(br_queue_task_done(q), BR_EOVERFLOW); /* Python's ValueError */
    BR_CHECK_OK(br_queue_join(q, BR_NOWAIT));
    /* As in Python, task_done counts against puts, not gets: it may run ahead. */
    BR_CHECK_OK(qput_any(q, 4, BR_NOWAIT));
    BR_CHECK_OK(br_queue_task_done(q));
    BR_CHECK_ERR(br_queue_task_done(q), BR_EOVERFLOW);
    BR_CHECK_OK(br_queue_join(q, BR_NOWAIT));
    BR_CHECK_OK(br_queue_free(q));
}

static void conf_join_blocks_until_done(void **state) {
    (void)state;
    if (IS_SIMPLE) {
        simple_refuses_join();
        return;
    }
    enum { J = 3 };
    br_queue *q = mkq(0);
    BR_CHECK_OK(qput_any(q, 1, BR_NOWAIT));
    BR_CHECK_OK(qput_any(q, 2, BR_NOWAIT));
    op_thread t[J];
    for (int i = 0; i < J; i++)
        op_start(&t[i], q, OP_JOIN, 0, BR_FOREVER);
    wait_waiters(q, 0, 0, J);
    uintptr_t v;
    BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
    BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
    BR_CHECK_OK(br_queue_task_done(q));
    /* one task still open: a join can't succeed, and the joiners stay */
    BR_CHECK_ERR(br_queue_join(q, BR_NOWAIT), BR_ETIMEDOUT);
    wait_waiters(q, 0, 0, J);
    for (int i = 0; i < J; i++)
        BR_CHECK(!atomic_load(&t[i].returned));
    BR_CHECK_OK(br_queue_task_done(q));
    for (int i = 0; i < J; i++) {
        op_join(&t[i]);
        BR_CHECK_OK(t[i].rc);
    }
    BR_CHECK_OK(br_queue_free(q));
}

/* Producers, workers that task_done, and a joiner: join returns only when all done. */
typedef struct join_work {
    br_queue *q;
    long n;
    _Atomic long processed, errors;
} join_work;

static void *join_worker(void *arg) {
    join_work *w = arg;
    uintptr_t v;
    while (qget(w->q, &v, BR_FOREVER) == 0) {
        atomic_fetch_add(&w->processed, 1);
        if (br_queue_task_done(w->q) != 0)
            atomic_fetch_add(&w->errors, 1);
    }
    return NULL;
}

static void conf_join_with_workers(void **state) {
    (void)state;
    if (IS_SIMPLE) {
        simple_refuses_join();
        return;
    }
    join_work w = {.q = mkq(16), .n = br_test_scaled(50000, 2000)};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, join_worker, &w), 0);
    for (long i = 1; i <= w.n; i++)
        BR_CHECK_OK(qput_any(w.q, (uintptr_t)i, BR_FOREVER));
    BR_CHECK_OK(br_queue_join(w.q, BR_FOREVER));
    BR_CHECK_EQ(atomic_load(&w.processed), w.n);
    BR_CHECK_OK(br_queue_shutdown(w.q, false));
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    BR_CHECK_EQ(atomic_load(&w.errors), 0);
    BR_CHECK_OK(br_queue_free(w.q));
}

/* --- shutdown ---------------------------------------------------------------------------------- */

static void conf_shutdown_draining(void **state) {
    (void)state;
    disposed_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    br_queue *q = mkq_with(0, &log);
    for (uintptr_t i = 1; i <= 3; i++)
        BR_CHECK_OK(qput_any(q, i, BR_NOWAIT));
    BR_CHECK_OK(br_queue_shutdown(q, false));
    BR_CHECK(br_queue_is_shutdown(q));
    BR_CHECK_ERR(qput_any(q, 4, BR_NOWAIT), BR_ESHUTDOWN);
    BR_CHECK_ERR(qput_any(q, 4, BR_FOREVER), BR_ESHUTDOWN);
    BR_CHECK_EQ(br_queue_qsize(q), 3);
    uintptr_t v, sum = 0;
    for (int i = 0; i < 3; i++) {
        BR_CHECK_OK(qget(q, &v, BR_FOREVER));
        sum += v;
    }
    BR_CHECK_EQ(sum, 6);
    BR_CHECK_ERR(qget(q, &v, BR_NOWAIT), BR_ESHUTDOWN); /* not ETIMEDOUT */
    BR_CHECK_ERR(qget(q, &v, BR_FOREVER), BR_ESHUTDOWN);
    BR_CHECK_OK(br_queue_shutdown(q, false)); /* again: fine */
    BR_CHECK_EQ(log.n, 0);
    if (!IS_SIMPLE) {
        BR_CHECK_ERR(br_queue_join(q, BR_NOWAIT), BR_ETIMEDOUT); /* 3 not done */
        for (int i = 0; i < 3; i++)
            BR_CHECK_OK(br_queue_task_done(q));
        BR_CHECK_OK(br_queue_join(q, BR_NOWAIT));
    }
    BR_CHECK_OK(br_queue_free(q));
}

static void conf_shutdown_wakes_getters(void **state) {
    (void)state;
    enum { N = 4 };
    for (int immediate = 0; immediate < 2; immediate++) {
        br_queue *q = mkq(0);
        op_thread t[N];
        for (int i = 0; i < N; i++)
            op_start(&t[i], q, OP_GET, 0, i % 2 ? BR_FOREVER : br_deadline_after(60 * BR_SEC));
        wait_waiters(q, N, 0, 0);
        BR_CHECK_OK(br_queue_shutdown(q, immediate));
        for (int i = 0; i < N; i++) {
            op_join(&t[i]);
            BR_CHECK_ERR(t[i].rc, BR_ESHUTDOWN);
        }
        BR_CHECK_OK(br_queue_free(q));
    }
}

static void conf_shutdown_wakes_putters(void **state) {
    (void)state;
    if (IS_SIMPLE) {
        simple_refuses_maxsize();
        return;
    }
    enum { N = 4 };
    for (int immediate = 0; immediate < 2; immediate++) {
        disposed_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
        br_queue *q = mkq_with(2, &log);
        BR_CHECK_OK(qput_any(q, 1, BR_NOWAIT));
        BR_CHECK_OK(qput_any(q, 2, BR_NOWAIT));
        op_thread t[N];
        for (int i = 0; i < N; i++)
            op_start(&t[i], q, OP_PUT, 10 + (uintptr_t)i, BR_FOREVER);
        wait_waiters(q, 0, N, 0);
        BR_CHECK_OK(br_queue_shutdown(q, immediate));
        for (int i = 0; i < N; i++) {
            op_join(&t[i]);
            BR_CHECK_ERR(t[i].rc, BR_ESHUTDOWN); /* and the item stays the caller's */
        }
        uintptr_t v;
        if (immediate) {
            BR_CHECK_EQ(log.n, 2); /* the two queued items; none of the refused ones */
            BR_CHECK_ERR(qget(q, &v, BR_NOWAIT), BR_ESHUTDOWN);
        } else {
            BR_CHECK_EQ(log.n, 0);
            BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
            BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
            BR_CHECK_ERR(qget(q, &v, BR_NOWAIT), BR_ESHUTDOWN);
        }
        BR_CHECK_OK(br_queue_free(q));
        BR_CHECK_EQ(log.n, immediate ? 2 : 0);
    }
}

/* Immediate: the queued items go to dispose in queue order, count as done, and get
 * fails at once; join then waits only for the item taken before the shutdown. */
static void conf_shutdown_immediate_disposes(void **state) {
    (void)state;
    enum { N = 10 };
    uintptr_t order[N];
    disposed_log log = {.mu = PTHREAD_MUTEX_INITIALIZER, .order = order, .cap = N};
    br_queue *q = mkq_with(0, &log);
    for (uintptr_t i = 1; i <= N; i++)
        BR_CHECK_OK(br_queue_put(q, (void *)i, BR_NOWAIT)); /* priority 0 for all */
    uintptr_t first;
    BR_CHECK_OK(qget(q, &first, BR_NOWAIT));
    BR_CHECK_EQ(first, IS_LIFO ? N : 1);
    op_thread j;
    if (!IS_SIMPLE) {
        op_start(&j, q, OP_JOIN, 0, BR_FOREVER);
        wait_waiters(q, 0, 0, 1);
    }
    BR_CHECK_OK(br_queue_shutdown(q, true));
    BR_CHECK_EQ(log.n, N - 1);
    for (long i = 0; i < N - 1; i++) /* the order get would have used */
        BR_CHECK_EQ(order[i], IS_LIFO ? (uintptr_t)(N - 1 - i) : (uintptr_t)(i + 2));
    BR_CHECK_EQ(br_queue_qsize(q), 0);
    BR_CHECK(br_queue_empty(q));
    uintptr_t v;
    BR_CHECK_ERR(qget(q, &v, BR_NOWAIT), BR_ESHUTDOWN);
    BR_CHECK_ERR(qget(q, &v, BR_FOREVER), BR_ESHUTDOWN);
    BR_CHECK_ERR(qput_any(q, 1, BR_NOWAIT), BR_ESHUTDOWN);
    BR_CHECK_OK(br_queue_shutdown(q, true)); /* again: nothing more to drain */
    BR_CHECK_EQ(log.n, N - 1);
    if (!IS_SIMPLE) {
        wait_waiters(q, 0, 0, 1); /* the one taken before is still unfinished */
        BR_CHECK_OK(br_queue_task_done(q));
        op_join(&j);
        BR_CHECK_OK(j.rc);
        BR_CHECK_ERR(br_queue_task_done(q), BR_EOVERFLOW);
    }
    BR_CHECK_OK(br_queue_free(q));
    BR_CHECK_EQ(log.n, N - 1); /* free had nothing left to dispose */
}

/* Immediate shutdown releases join when nothing was taken. */
static void conf_shutdown_immediate_releases_join(void **state) {
    (void)state;
    if (IS_SIMPLE) {
        simple_refuses_join();
        return;
    }
    br_queue *q = mkq(0);
    for (uintptr_t i = 1; i <= 5; i++)
        BR_CHECK_OK(qput_any(q, i, BR_NOWAIT));
    op_thread j;
    op_start(&j, q, OP_JOIN, 0, BR_FOREVER);
    wait_waiters(q, 0, 0, 1);
    BR_CHECK_OK(br_queue_shutdown(q, true));
    op_join(&j);
    BR_CHECK_OK(j.rc);
    BR_CHECK_OK(br_queue_join(q, BR_NOWAIT));
    BR_CHECK_OK(br_queue_free(q));
}

static void conf_shutdown_upgrade(void **state) {
    (void)state;
    disposed_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    br_queue *q = mkq_with(0, &log);
    for (uintptr_t i = 1; i <= 4; i++)
        BR_CHECK_OK(qput_any(q, i, BR_NOWAIT));
    BR_CHECK_OK(br_queue_shutdown(q, false));
    uintptr_t v;
    BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
    BR_CHECK_OK(br_queue_shutdown(q, true)); /* draining -> immediate */
    BR_CHECK_EQ(log.n, 3);
    BR_CHECK_ERR(qget(q, &v, BR_NOWAIT), BR_ESHUTDOWN);
    BR_CHECK_OK(br_queue_shutdown(q, false)); /* can't go back */
    BR_CHECK_ERR(qget(q, &v, BR_NOWAIT), BR_ESHUTDOWN);
    BR_CHECK_OK(br_queue_free(q));
    BR_CHECK_EQ(log.n, 3);
}

/* Dispose may call back into the queue: it runs with no lock held. */
static br_queue *reentrant_q;
static _Atomic int reentrant_calls;
static void reentrant_dispose(void *item, void *ctx) {
    (void)item;
    (void)ctx;
    uintptr_t v;
    if (qget(reentrant_q, &v, BR_NOWAIT) != BR_ESHUTDOWN ||
        qput_any(reentrant_q, 1, BR_NOWAIT) != BR_ESHUTDOWN)
        atomic_store(&reentrant_calls, -1000);
    (void)br_queue_qsize(reentrant_q);
    atomic_fetch_add(&reentrant_calls, 1);
}

static void conf_dispose_may_reenter(void **state) {
    (void)state;
    br_queue_opts o = {.kind = QKIND, .dispose = reentrant_dispose};
    BR_CHECK_OK(br_queue_new(&reentrant_q, &o));
    for (uintptr_t i = 1; i <= 3; i++)
        BR_CHECK_OK(qput_any(reentrant_q, i, BR_NOWAIT));
    BR_CHECK_OK(br_queue_shutdown(reentrant_q, true));
    BR_CHECK_EQ(atomic_load(&reentrant_calls), 3);
    BR_CHECK_OK(br_queue_free(reentrant_q));
}

/* --- free ------------------------------------------------------------------------------------- */

static void conf_free_disposes_leftovers(void **state) {
    (void)state;
    const long n = 1000;
    disposed_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    br_queue *q = mkq_with(0, &log);
    for (long i = 1; i <= n; i++)
        BR_CHECK_OK(qput_any(q, (uintptr_t)i, BR_NOWAIT));
    uintptr_t v;
    BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
    BR_CHECK_OK(br_queue_free(q));
    BR_CHECK_EQ(log.n, n - 1);
}

/* br_queue_free shuts the queue down before the first dispose: a dispose that puts its
 * item back is refused (else the item would be drained and disposed again, and a
 * dispose that always re-queues would keep free looping), get is refused, shutdown has
 * nothing left to do, and a free from inside dispose is BR_EBUSY, not a double free. */
static br_queue *freeing_q;
static _Atomic long freeing_disposed, freeing_bad;
static void requeue_dispose(void *item, void *ctx) {
    long limit = *(const long *)ctx;
    /* Re-queue at most `limit` times, so a queue that accepts them still terminates. */
    if (atomic_fetch_add(&freeing_disposed, 1) >= limit)
        return;
    uintptr_t v;
    int put = qput_any(freeing_q, (uintptr_t)item, BR_NOWAIT);
    int get = qget(freeing_q, &v, BR_NOWAIT);
    if (put != BR_ESHUTDOWN || get != BR_ESHUTDOWN || !br_queue_is_shutdown(freeing_q) ||
        br_queue_shutdown(freeing_q, true) != 0 || br_queue_free(freeing_q) != BR_EBUSY)
        atomic_fetch_add(&freeing_bad, 1);
}

static void conf_free_shuts_down_before_dispose(void **state) {
    (void)state;
    for (size_t maxsize = 0; maxsize <= (IS_SIMPLE ? 0u : 400u); maxsize += 400) {
        for (int shut = 0; shut < 2; shut++) { /* open, or shut down (draining) first */
            const long n = 300;                /* more than one FIFO chunk */
            br_queue_opts o = {.kind = QKIND,
                               .maxsize = maxsize,
                               .dispose = requeue_dispose,
                               .dispose_ctx = (void *)&n};
            BR_CHECK_OK(br_queue_new(&freeing_q, &o));
            for (long i = 1; i <= n; i++)
                BR_CHECK_OK(qput_any(freeing_q, (uintptr_t)i, BR_NOWAIT));
            if (shut)
                BR_CHECK_OK(br_queue_shutdown(freeing_q, false));
            atomic_store(&freeing_disposed, 0);
            atomic_store(&freeing_bad, 0);
            BR_CHECK_OK(br_queue_free(freeing_q));
            BR_CHECK_EQ(atomic_load(&freeing_disposed), n); /* each item exactly once */
            BR_CHECK_EQ(atomic_load(&freeing_bad), 0);
        }
    }
}

static void conf_free_busy_while_blocked(void **state) {
    (void)state;
    /* a getter */
    br_queue *q = mkq(0);
    op_thread t;
    op_start(&t, q, OP_GET, 0, BR_FOREVER);
    wait_waiters(q, 1, 0, 0);
    BR_CHECK_ERR(br_queue_free(q), BR_EBUSY);
    BR_CHECK_OK(qput_any(q, 8, BR_NOWAIT)); /* the queue still works */
    op_join(&t);
    BR_CHECK_OK(t.rc);
    BR_CHECK_EQ(t.v, 8);
    BR_CHECK_OK(br_queue_free(q));

    if (IS_SIMPLE)
        return; /* the getter half ran; no putter blocks on an unbounded queue */
    /* a putter */
    q = mkq(1);
    BR_CHECK_OK(qput_any(q, 1, BR_NOWAIT));
    op_start(&t, q, OP_PUT, 2, BR_FOREVER);
    wait_waiters(q, 0, 1, 0);
    BR_CHECK_ERR(br_queue_free(q), BR_EBUSY);
    BR_CHECK_OK(br_queue_shutdown(q, false));
    op_join(&t);
    BR_CHECK_ERR(t.rc, BR_ESHUTDOWN);
    wait_busy_zero(q);
    BR_CHECK_OK(br_queue_free(q));

    /* a joiner */
    q = mkq(0);
    BR_CHECK_OK(qput_any(q, 1, BR_NOWAIT));
    op_start(&t, q, OP_JOIN, 0, BR_FOREVER);
    wait_waiters(q, 0, 0, 1);
    BR_CHECK_ERR(br_queue_free(q), BR_EBUSY);
    uintptr_t v;
    BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
    BR_CHECK_OK(br_queue_task_done(q));
    op_join(&t);
    BR_CHECK_OK(t.rc);
    BR_CHECK_OK(br_queue_free(q));
}

/* br_queue_free racing calls that are still finishing after their effect was seen: a
 * put whose item was already got (it may still be waking a getter), the task_done that
 * let join return (it may still be waking joiners), a shutdown whose BR_ESHUTDOWN a
 * getter already saw (it may still be draining). free must answer BR_EBUSY (retried
 * here) until they are out, never free under them. ASan and TSan catch a free that
 * doesn't wait; the plain build checks the counts. */
static void free_retrying(br_queue *q) {
    int64_t give_up = br_test_hang_guard();
    int rc;
    while ((rc = br_queue_free(q)) == BR_EBUSY) {
        BR_CHECK(br_now() < give_up);
        sched_yield();
    }
    BR_CHECK_OK(rc);
}

typedef struct finishing {
    br_queue *q;
    long per;
    uintptr_t base;
    _Atomic long errors;
} finishing;

/* Puts `per` items and leaves: after its last put it never touches the queue again. */
static void *finishing_producer(void *arg) {
    finishing *f = arg;
    br_queue *q = f->q;
    for (long i = 1; i <= f->per; i++)
        if (qput_any(q, f->base + (uintptr_t)i, BR_FOREVER) != 0)
            atomic_fetch_add(&f->errors, 1);
    return NULL;
}

static void conf_free_races_finishing_puts(void **state) {
    (void)state;
    enum { P = 2 };
    const long rounds = RACE_ROUNDS(3000), per = 3; /* cheap rounds, rare races */
    for (long round = 0; round < rounds; round++) {
        /* unbounded, or bounded so that producers also block and get wakes them */
        br_queue *q = mkq(IS_SIMPLE || round % 2 == 0 ? 0 : 2);
        finishing f[P];
        pthread_t th[P];
        for (int i = 0; i < P; i++) {
            f[i] = (finishing){.q = q, .per = per, .base = (uintptr_t)i * 100};
            assert_int_equal(pthread_create(&th[i], NULL, finishing_producer, &f[i]), 0);
        }
        uintptr_t sum = 0, v;
        int64_t give_up = br_test_hang_guard();
        for (long k = 0; k < P * per; k++) {
            if (round % 3 == 2) { /* poll: never registers, so no put has to wake us */
                int rc;
                while ((rc = qget(q, &v, BR_NOWAIT)) == BR_ETIMEDOUT) {
                    BR_CHECK(br_now() < give_up);
                    sched_yield();
                }
                BR_CHECK_OK(rc);
            } else {
                BR_CHECK_OK(qget(q, &v, BR_FOREVER));
            }
            sum += v;
        }
        BR_CHECK_EQ(sum, 100 * per + P * per * (per + 1) / 2);
        free_retrying(q); /* every item arrived; its producer may still be inside put */
        for (int i = 0; i < P; i++) {
            pthread_join(th[i], NULL);
            BR_CHECK_EQ(atomic_load(&f[i].errors), 0);
        }
    }
}

/* Gets one item, marks it done and leaves. */
static void *finishing_worker(void *arg) {
    finishing *f = arg;
    br_queue *q = f->q;
    uintptr_t v;
    if (qget(q, &v, BR_FOREVER) != 0 || br_queue_task_done(q) != 0)
        atomic_fetch_add(&f->errors, 1);
    return NULL;
}

static void conf_free_races_finishing_task_done(void **state) {
    (void)state;
    if (IS_SIMPLE) {
        simple_refuses_join(); /* no task_done */
        return;
    }
    enum { W = 3 };
    const long rounds = RACE_ROUNDS(3000); /* cheap rounds, rare races */
    for (long round = 0; round < rounds; round++) {
        br_queue *q = mkq(0);
        finishing f = {.q = q};
        pthread_t th[W];
        for (int i = 0; i < W; i++)
            assert_int_equal(pthread_create(&th[i], NULL, finishing_worker, &f), 0);
        for (uintptr_t i = 1; i <= W; i++)
            BR_CHECK_OK(qput_any(q, i, BR_NOWAIT));
        if (round % 2 == 0) {
            BR_CHECK_OK(br_queue_join(q, BR_FOREVER));
        } else { /* never linked: join's answer comes straight from the counts */
            int64_t give_up = br_test_hang_guard();
            while (br_queue_join(q, BR_NOWAIT) != 0) {
                BR_CHECK(br_now() < give_up);
                sched_yield();
            }
        }
        free_retrying(q); /* every task done; the last task_done may still be inside */
        for (int i = 0; i < W; i++)
            pthread_join(th[i], NULL);
        BR_CHECK_EQ(atomic_load(&f.errors), 0);
    }
}

static void *finishing_shutdown(void *arg) {
    finishing *f = arg;
    if (br_queue_shutdown(f->q, true) != 0)
        atomic_fetch_add(&f->errors, 1);
    return NULL;
}

static void conf_free_races_finishing_shutdown(void **state) {
    (void)state;
    const long rounds = RACE_ROUNDS(2000), n = 40;
    for (long round = 0; round < rounds; round++) {
        disposed_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
        br_queue *q = mkq_with(0, &log);
        for (long i = 1; i <= n; i++)
            BR_CHECK_OK(qput_any(q, (uintptr_t)i, BR_NOWAIT));
        finishing f = {.q = q};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, finishing_shutdown, &f), 0);
        long got = 0;
        uintptr_t v;
        int rc;
        while ((rc = qget(q, &v, BR_FOREVER)) == 0)
            got++;
        BR_CHECK_ERR(rc, BR_ESHUTDOWN);
        free_retrying(q); /* the shutdown may still be draining */
        pthread_join(th, NULL);
        BR_CHECK_EQ(atomic_load(&f.errors), 0);
        BR_CHECK_EQ(got + log.n, n);
    }
}

/* --- misuse ---------------------------------------------------------------------------------- */

static void conf_misuse(void **state) {
    (void)state;
    void *x;
    int64_t pr;
    BR_CHECK_ERR(br_queue_new(NULL, NULL), BR_EINVAL);
    br_queue *q = (br_queue *)&x;
    br_queue_opts bad = {.kind = (br_queue_kind)42};
    BR_CHECK_ERR(br_queue_new(&q, &bad), BR_EINVAL);
    BR_CHECK(q == NULL);
    BR_CHECK_ERR(br_queue_free(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_queue_put(NULL, NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_queue_put_prio(NULL, NULL, 1, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_queue_get(NULL, &x, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_queue_get_prio(NULL, &x, &pr, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_queue_task_done(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_queue_join(NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_queue_shutdown(NULL, false), BR_EINVAL);
    BR_CHECK_EQ(br_queue_qsize(NULL), 0);
    BR_CHECK(br_queue_empty(NULL));
    BR_CHECK(!br_queue_full(NULL));
    BR_CHECK_EQ(br_queue_maxsize(NULL), 0);
    BR_CHECK(!br_queue_is_shutdown(NULL));

    q = mkq(0);
    BR_CHECK_ERR(br_queue_get(q, NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_queue_get_prio(q, NULL, &pr, BR_NOWAIT), BR_EINVAL);
    if (IS_PRIO) {
        BR_CHECK_OK(br_queue_put_prio(q, (void *)1, 5, BR_NOWAIT));
    } else {
        BR_CHECK_ERR(br_queue_put_prio(q, (void *)1, 5, BR_NOWAIT), BR_EINVAL);
        BR_CHECK_EQ(br_queue_qsize(q), 0); /* refused: nothing went in */
    }
    if (IS_SIMPLE) {
        BR_CHECK_ERR(br_queue_task_done(q), BR_ENOTSUP);
        BR_CHECK_ERR(br_queue_join(q, BR_FOREVER), BR_ENOTSUP);
    }
    BR_CHECK_OK(br_queue_free(q));
}

#define CONFORMANCE_TESTS                                                            \
    cmocka_unit_test(conf_new_and_sizes), cmocka_unit_test(conf_nowait_on_empty),    \
        cmocka_unit_test(conf_nowait_on_full), cmocka_unit_test(conf_null_item),     \
        cmocka_unit_test(conf_round_trip_many), cmocka_unit_test(conf_large_maxsize),  \
        cmocka_unit_test(conf_oom_new), cmocka_unit_test(conf_oom_grow),              \
        cmocka_unit_test(conf_get_deadline_not_early),                               \
        cmocka_unit_test(conf_put_deadline_not_early),                               \
        cmocka_unit_test(conf_timed_out_getter_loses_nothing),                       \
        cmocka_unit_test(conf_blocked_get_released_by_put),                          \
        cmocka_unit_test(conf_blocked_get_with_deadline_released),                   \
        cmocka_unit_test(conf_blocked_put_released_by_get),                          \
        cmocka_unit_test(conf_many_getters_each_get_one),                            \
        cmocka_unit_test(conf_many_putters_each_put_one),                            \
        cmocka_unit_test(conf_stress_unbounded),                                     \
        cmocka_unit_test(conf_stress_unbounded_1p1c),                                \
        cmocka_unit_test(conf_stress_bounded),                                       \
        cmocka_unit_test(conf_stress_bounded_tiny),                                  \
        cmocka_unit_test(conf_stress_shutdown_draining),                             \
        cmocka_unit_test(conf_stress_shutdown_immediate),                            \
        cmocka_unit_test(conf_stress_deadlines),                                     \
        cmocka_unit_test(conf_blocks_through_context_parker),                        \
        cmocka_unit_test(conf_task_done_and_join),                                   \
        cmocka_unit_test(conf_join_blocks_until_done),                               \
        cmocka_unit_test(conf_join_with_workers),                                    \
        cmocka_unit_test(conf_shutdown_draining),                                    \
        cmocka_unit_test(conf_shutdown_wakes_getters),                               \
        cmocka_unit_test(conf_shutdown_wakes_putters),                               \
        cmocka_unit_test(conf_shutdown_immediate_disposes),                          \
        cmocka_unit_test(conf_shutdown_immediate_releases_join),                     \
        cmocka_unit_test(conf_shutdown_upgrade),                                     \
        cmocka_unit_test(conf_dispose_may_reenter),                                  \
        cmocka_unit_test(conf_free_disposes_leftovers),                              \
        cmocka_unit_test(conf_free_shuts_down_before_dispose),                       \
        cmocka_unit_test(conf_free_busy_while_blocked),                              \
        cmocka_unit_test(conf_free_races_finishing_puts),                            \
        cmocka_unit_test(conf_free_races_finishing_task_done),                       \
        cmocka_unit_test(conf_free_races_finishing_shutdown), cmocka_unit_test(conf_misuse)

#endif
