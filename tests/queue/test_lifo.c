/* queue.LifoQueue: the conformance suite plus last-in, first-out order. */
#define QKIND BR_QUEUE_LIFO
#include "conformance_queue.h"

static void lifo_order(void **state) {
    (void)state;
    br_queue *q = mkq(0);
    for (uintptr_t i = 1; i <= 5; i++)
        BR_CHECK_OK(br_queue_put(q, (void *)i, BR_NOWAIT));
    uintptr_t v;
    BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
    BR_CHECK_EQ(v, 5);
    BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
    BR_CHECK_EQ(v, 4);
    BR_CHECK_OK(br_queue_put(q, (void *)9, BR_NOWAIT));
    void *x;
    int64_t pr = 77;
    BR_CHECK_OK(br_queue_get_prio(q, &x, &pr, BR_NOWAIT));
    BR_CHECK_EQ((uintptr_t)x, 9);
    BR_CHECK_EQ(pr, 0);
    for (uintptr_t i = 3; i >= 1; i--) {
        BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
        BR_CHECK_EQ(v, i);
    }
    BR_CHECK_ERR(qget(q, &v, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_OK(br_queue_free(q));
}

/* Grow far past the initial room, shrink back, and keep the order. */
static void lifo_grow_and_shrink(void **state) {
    (void)state;
    for (size_t maxsize = 0; maxsize <= 5000; maxsize += 5000) {
        br_queue *q = mkq(maxsize);
        for (int round = 0; round < 3; round++) {
            const uintptr_t n = 5000;
            for (uintptr_t i = 1; i <= n; i++)
                BR_CHECK_OK(br_queue_put(q, (void *)i, BR_NOWAIT));
            if (maxsize)
                BR_CHECK_ERR(br_queue_put(q, (void *)0, BR_NOWAIT), BR_ETIMEDOUT);
            for (uintptr_t i = n; i >= 1; i--) {
                uintptr_t v;
                BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
                BR_CHECK_EQ(v, i);
            }
        }
        BR_CHECK_OK(br_queue_free(q));
    }
}

BR_TEST_MAIN(CONFORMANCE_TESTS, cmocka_unit_test(lifo_order),
             cmocka_unit_test(lifo_grow_and_shrink))
