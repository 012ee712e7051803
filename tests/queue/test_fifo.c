/* queue.Queue: the conformance suite plus first-in, first-out order. */
#define QKIND BR_QUEUE_FIFO
#include "conformance_queue.h"

static void fifo_null_opts_is_unbounded_fifo(void **state) {
    (void)state;
    br_queue *q;
    BR_CHECK_OK(br_queue_new(&q, NULL));
    BR_CHECK_EQ(br_queue_maxsize(q), 0);
    for (uintptr_t i = 1; i <= 3; i++)
        BR_CHECK_OK(br_queue_put(q, (void *)i, BR_NOWAIT));
    uintptr_t v;
    BR_CHECK_OK(qget(q, &v, BR_NOWAIT));
    BR_CHECK_EQ(v, 1);
    BR_CHECK_OK(br_queue_free(q));
}

/* Order holds across chunk boundaries, with puts and gets interleaved. */
static void fifo_order(void **state) {
    (void)state;
    for (size_t maxsize = 0; maxsize <= 300; maxsize += 150) {
        br_queue *q = mkq(maxsize);
        uintptr_t next_put = 1, next_get = 1;
        for (int round = 0; round < 40; round++) {
            int burst = (round * 37) % 113 + 1;
            for (int i = 0; i < burst; i++)
                if (br_queue_put(q, (void *)next_put, BR_NOWAIT) == 0)
                    next_put++;
            int take = (round * 53) % 97 + 1;
            for (int i = 0; i < take; i++) {
                void *x;
                int64_t pr = 77;
                if (br_queue_get_prio(q, &x, &pr, BR_NOWAIT) != 0)
                    break;
                BR_CHECK_EQ((uintptr_t)x, next_get);
                BR_CHECK_EQ(pr, 0);
                next_get++;
            }
            BR_CHECK_EQ(br_queue_qsize(q), next_put - next_get);
        }
        BR_CHECK_OK(br_queue_free(q));
    }
}

/* Items from one producer reach the consumers in the order they were put. */
typedef struct order_run {
    br_queue *q;
    long per;
    int nprod;
    _Atomic int next_id;
    _Atomic long bad;
} order_run;

static void *order_producer(void *arg) {
    order_run *r = arg;
    uintptr_t id = (uintptr_t)atomic_fetch_add(&r->next_id, 1);
    for (long i = 0; i < r->per; i++)
        if (br_queue_put(r->q, (void *)((id << 32) | (uintptr_t)i), BR_FOREVER) != 0)
            atomic_fetch_add(&r->bad, 1);
    return NULL;
}

static void fifo_order_per_producer(void **state) {
    (void)state;
    for (size_t maxsize = 0; maxsize <= 64; maxsize += 64) {
        order_run r = {.q = mkq(maxsize), .per = br_test_scaled(100000, 5000), .nprod = 3};
        pthread_t th[3];
        for (int i = 0; i < r.nprod; i++)
            assert_int_equal(pthread_create(&th[i], NULL, order_producer, &r), 0);
        long next[3] = {0, 0, 0};
        for (long n = 0; n < r.per * r.nprod; n++) {
            uintptr_t v;
            BR_CHECK_OK(qget(r.q, &v, BR_FOREVER));
            uintptr_t id = v >> 32;
            BR_CHECK(id < 3);
            BR_CHECK_EQ((long)(v & 0xffffffffu), next[id]);
            next[id]++;
        }
        for (int i = 0; i < r.nprod; i++)
            pthread_join(th[i], NULL);
        BR_CHECK_EQ(atomic_load(&r.bad), 0);
        BR_CHECK(br_queue_empty(r.q));
        BR_CHECK_OK(br_queue_free(r.q));
    }
}

BR_TEST_MAIN(CONFORMANCE_TESTS, cmocka_unit_test(fifo_null_opts_is_unbounded_fifo),
             cmocka_unit_test(fifo_order), cmocka_unit_test(fifo_order_per_producer))
