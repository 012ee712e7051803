/* queue.SimpleQueue: the conformance suite plus FIFO order; no maxsize, no join. */
#define QKIND BR_QUEUE_SIMPLE
#include "conformance_queue.h"

static void simple_order(void **state) {
    (void)state;
    br_queue *q = mkq(0);
    const uintptr_t n = 1000;
    for (uintptr_t i = 1; i <= n; i++)
        BR_CHECK_OK(br_queue_put(q, (void *)i, BR_NOWAIT));
    for (uintptr_t i = 1; i <= n; i++) {
        uintptr_t v;
        BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
        BR_CHECK_EQ(v, i);
    }
    BR_CHECK_OK(br_queue_free(q));
}

typedef struct spsc {
    br_queue *q;
    long n;
} spsc;

static void *spsc_producer(void *arg) {
    spsc *s = arg;
    for (long i = 1; i <= s->n; i++)
        if (br_queue_put(s->q, (void *)(uintptr_t)i, BR_FOREVER) != 0)
            break;
    return NULL;
}

/* One producer, one consumer: the benchmark's shape, with the order checked. */
static void simple_order_1p1c(void **state) {
    (void)state;
    spsc s = {.q = mkq(0), .n = br_test_scaled(1000000, 20000)};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, spsc_producer, &s), 0);
    for (long i = 1; i <= s.n; i++) {
        uintptr_t v;
        BR_CHECK_OK(qget(s.q, &v, BR_FOREVER));
        BR_CHECK_EQ(v, i);
    }
    pthread_join(th, NULL);
    BR_CHECK_OK(br_queue_free(s.q));
}

static void simple_has_no_maxsize(void **state) {
    (void)state;
    br_queue *q = NULL;
    br_queue_opts o = {.kind = BR_QUEUE_SIMPLE, .maxsize = 1};
    BR_CHECK_ERR(br_queue_new(&q, &o), BR_EINVAL);
    BR_CHECK(q == NULL);
}

BR_TEST_MAIN(CONFORMANCE_TESTS, cmocka_unit_test(simple_order),
             cmocka_unit_test(simple_order_1p1c), cmocka_unit_test(simple_has_no_maxsize))
