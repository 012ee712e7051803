/* br_rlock: threading.RLock, counted per owner. */
#include "thread_util.h"

static void nested_levels_count(void **state) {
    (void)state;
    br_rlock r = BR_RLOCK_INIT;
    BR_CHECK_EQ(br_rlock_count(&r), 0);
    BR_CHECK(!br_rlock_owned(&r));
    for (unsigned i = 1; i <= 5; i++) {
        BR_CHECK_OK(br_rlock_acquire(&r, i % 2 ? BR_FOREVER : BR_NOWAIT));
        BR_CHECK_EQ(br_rlock_count(&r), i);
        BR_CHECK(br_rlock_owned(&r));
    }
    for (unsigned i = 5; i >= 1; i--) {
        BR_CHECK_OK(br_rlock_release(&r));
        BR_CHECK_EQ(br_rlock_count(&r), i - 1);
    }
    BR_CHECK(!br_rlock_owned(&r));
    BR_CHECK_ERR(br_rlock_release(&r), BR_EPERM);
    BR_CHECK_OK(br_rlock_destroy(&r));
}

typedef struct {
    br_rlock *r;
    br_event held, go;
    int rc;
    unsigned count_seen;
} rholder_ctx;

/* Takes r three levels deep, reports, waits for `go`, releases all three. */
static void rholder(void *arg) {
    rholder_ctx *h = arg;
    for (int i = 0; i < 3 && h->rc == 0; i++)
        h->rc = br_rlock_acquire(h->r, BR_FOREVER);
    h->count_seen = br_rlock_count(h->r);
    br_event_set(&h->held);
    br_event_wait(&h->go, BR_FOREVER);
    for (int i = 0; i < 3 && h->rc == 0; i++)
        h->rc = br_rlock_release(h->r);
}

static void other_threads_wait_for_the_last_release(void **state) {
    (void)state;
    br_rlock r = BR_RLOCK_INIT;
    rholder_ctx h = {.r = &r};
    br_thread *t = tu_spawn(rholder, &h);
    BR_CHECK_OK(br_event_wait(&h.held, br_test_hang_guard()));
    BR_CHECK_EQ(h.count_seen, 3);
    /* not ours: no count, no release, no acquire without waiting */
    BR_CHECK(!br_rlock_owned(&r));
    BR_CHECK_EQ(br_rlock_count(&r), 0);
    BR_CHECK_ERR(br_rlock_release(&r), BR_EPERM);
    int64_t t0 = br_now();
    BR_CHECK_ERR(br_rlock_acquire(&r, BR_NOWAIT), BR_ETIMEDOUT);
    TU_CHECK_QUICK(t0);
    t0 = br_now();
    BR_CHECK_ERR(br_rlock_acquire(&r, t0 + 20 * BR_MSEC), BR_ETIMEDOUT);
    TU_CHECK_NOT_EARLY(t0, 20 * BR_MSEC);
    BR_CHECK_ERR(br_rlock_destroy(&r), BR_EBUSY);
    BR_CHECK_OK(br_event_set(&h.go));
    BR_CHECK_OK(br_rlock_acquire(&r, br_test_hang_guard())); /* after all three releases */
    BR_CHECK_EQ(br_rlock_count(&r), 1);
    tu_join(t);
    BR_CHECK_OK(h.rc);
    BR_CHECK_OK(br_rlock_release(&r));
}

static void overflow_at_the_limit(void **state) {
    (void)state;
    br_rlock r = BR_RLOCK_INIT;
    BR_CHECK_OK(br_rlock_acquire(&r, BR_FOREVER));
    BR__RLOCK_IMPL(&r)->count = UINT32_MAX - 1; /* skip four billion acquires */
    BR_CHECK_OK(br_rlock_acquire(&r, BR_FOREVER));
    BR_CHECK_EQ(br_rlock_count(&r), UINT32_MAX);
    BR_CHECK_ERR(br_rlock_acquire(&r, BR_FOREVER), BR_EOVERFLOW);
    BR_CHECK_EQ(br_rlock_count(&r), UINT32_MAX);
    BR__RLOCK_IMPL(&r)->count = 1;
    BR_CHECK_OK(br_rlock_release(&r));
    BR_CHECK(!br_rlock_owned(&r));
}

static void misuse(void **state) {
    (void)state;
    BR_CHECK_ERR(br_rlock_init(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_rlock_destroy(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_rlock_acquire(NULL, BR_FOREVER), BR_EINVAL);
    BR_CHECK_ERR(br_rlock_release(NULL), BR_EINVAL);
    BR_CHECK(!br_rlock_owned(NULL));
    BR_CHECK_EQ(br_rlock_count(NULL), 0);

    br_rlock r;
    BR_CHECK_OK(br_rlock_init(&r));
    BR_CHECK_OK(br_rlock_acquire(&r, BR_FOREVER));
    BR_CHECK_OK(br_rlock_acquire(&r, BR_FOREVER));
    BR_CHECK_ERR(br_rlock_destroy(&r), BR_EBUSY);
    BR_CHECK_OK(br_rlock_release(&r));
    BR_CHECK_ERR(br_rlock_destroy(&r), BR_EBUSY); /* still one level */
    BR_CHECK_OK(br_rlock_release(&r));
    BR_CHECK_OK(br_rlock_destroy(&r));
    BR_CHECK_ERR(br_rlock_destroy(&r), BR_EINVAL);
    BR_CHECK_ERR(br_rlock_acquire(&r, BR_FOREVER), BR_EINVAL);
    BR_CHECK_ERR(br_rlock_release(&r), BR_EINVAL);
    BR_CHECK(!br_rlock_owned(&r));
}

enum { THREADS = 6 };

typedef struct {
    br_rlock *r;
    long iters, *counter;
    int rc;
} rcount_ctx;

static void rcount_worker(void *arg) {
    rcount_ctx *c = arg;
    for (long i = 0; i < c->iters && c->rc == 0; i++) {
        if ((c->rc = br_rlock_acquire(c->r, BR_FOREVER)) != 0)
            break;
        if ((c->rc = br_rlock_acquire(c->r, BR_FOREVER)) != 0)
            break;
        ++*c->counter;
        if (br_rlock_count(c->r) != 2)
            c->rc = -1;
        if (c->rc == 0)
            c->rc = br_rlock_release(c->r);
        if (c->rc == 0)
            c->rc = br_rlock_release(c->r);
    }
}

static void many_threads_count_exactly(void **state) {
    (void)state;
    br_rlock r = BR_RLOCK_INIT;
    long counter = 0, iters = br_test_scaled(100000, 1000);
    rcount_ctx c[THREADS];
    br_thread *t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        c[i] = (rcount_ctx){.r = &r, .iters = iters, .counter = &counter};
        t[i] = tu_spawn(rcount_worker, &c[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        tu_join(t[i]);
        BR_CHECK_OK(c[i].rc);
    }
    BR_CHECK_EQ(counter, THREADS * iters);
    BR_CHECK(!br_rlock_owned(&r));
    BR_CHECK_OK(br_rlock_acquire(&r, BR_NOWAIT));
    BR_CHECK_OK(br_rlock_release(&r));
}

BR_TEST_MAIN(cmocka_unit_test(nested_levels_count),
             cmocka_unit_test(other_threads_wait_for_the_last_release),
             cmocka_unit_test(overflow_at_the_limit), cmocka_unit_test(misuse),
             cmocka_unit_test(many_threads_count_exactly))
