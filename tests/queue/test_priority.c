/* queue.PriorityQueue: the conformance suite plus lowest-priority-first order, stable
 * (first in, first out) among equal priorities. */
#define QKIND BR_QUEUE_PRIORITY
#include "conformance_queue.h"

static void prio_basic_order(void **state) {
    (void)state;
    br_queue *q = mkq(0);
    BR_CHECK_OK(br_queue_put_prio(q, (void *)1, 5, BR_NOWAIT));
    BR_CHECK_OK(br_queue_put_prio(q, (void *)2, -3, BR_NOWAIT));
    BR_CHECK_OK(br_queue_put(q, (void *)3, BR_NOWAIT)); /* priority 0 */
    BR_CHECK_OK(br_queue_put_prio(q, (void *)4, INT64_MAX, BR_NOWAIT));
    BR_CHECK_OK(br_queue_put_prio(q, (void *)5, INT64_MIN, BR_NOWAIT));
    BR_CHECK_OK(br_queue_put_prio(q, (void *)6, 0, BR_NOWAIT));
    const uintptr_t want[] = {5, 2, 3, 6, 1, 4};
    const int64_t want_pr[] = {INT64_MIN, -3, 0, 0, 5, INT64_MAX};
    for (int i = 0; i < 6; i++) {
        void *x;
        int64_t pr;
        BR_CHECK_OK(br_queue_get_prio(q, &x, &pr, BR_NOWAIT));
        BR_CHECK_EQ((uintptr_t)x, want[i]);
        BR_CHECK(pr == want_pr[i]);
    }
    void *x;
    BR_CHECK_ERR(br_queue_get_prio(q, &x, NULL, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_OK(br_queue_free(q));
}

/* Random priorities with many ties, puts and gets interleaved: every get returns the
 * smallest priority present, and among equals the earliest put. */
static void prio_random_stable(void **state) {
    (void)state;
    for (size_t maxsize = 0; maxsize <= 400; maxsize += 400) {
        br_queue *q = mkq(maxsize);
        uint64_t rng = 0x9e3779b97f4a7c15u;
        const long n = br_test_scaled(200000, 10000);
        /* reference: counts per priority, and each priority's next expected seq */
        enum { NP = 16 };
        long next_seq[NP] = {0}, put_seq[NP] = {0}, count[NP] = {0};
        long puts = 0, gets = 0;
        while (gets < n) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            bool do_put = puts < n && (rng % 3 != 0 || gets == puts);
            if (do_put) {
                int64_t p = (int64_t)(rng >> 8) % NP;
                uintptr_t item = ((uintptr_t)p << 40) | (uintptr_t)put_seq[p];
                int rc = br_queue_put_prio(q, (void *)item, p, BR_NOWAIT);
                if (rc == BR_ETIMEDOUT) {
                    BR_CHECK(maxsize != 0 && gets + (long)maxsize == puts);
                    do_put = false;
                } else {
                    BR_CHECK_OK(rc);
                    put_seq[p]++;
                    count[p]++;
                    puts++;
                }
            }
            if (!do_put) {
                void *x;
                int64_t pr;
                BR_CHECK_OK(br_queue_get_prio(q, &x, &pr, BR_NOWAIT));
                int64_t lowest = 0;
                while (count[lowest] == 0)
                    lowest++;
                BR_CHECK_EQ(pr, lowest);
                BR_CHECK_EQ((uintptr_t)x >> 40, (uintptr_t)lowest);
                BR_CHECK_EQ((long)((uintptr_t)x & 0xffffffffffu), next_seq[lowest]);
                next_seq[lowest]++;
                count[lowest]--;
                gets++;
            }
        }
        BR_CHECK(br_queue_empty(q));
        BR_CHECK_OK(br_queue_free(q));
    }
}

/* A getter parked on an empty priority queue gets the item put while it waits. */
static void prio_blocked_getter_gets_priority(void **state) {
    (void)state;
    br_queue *q = mkq(0);
    op_thread t;
    op_start(&t, q, OP_GET, 0, BR_FOREVER);
    wait_waiters(q, 1, 0, 0);
    BR_CHECK_OK(br_queue_put_prio(q, (void *)7, -1, BR_NOWAIT));
    op_join(&t);
    BR_CHECK_OK(t.rc);
    BR_CHECK_EQ(t.v, 7);
    BR_CHECK_OK(br_queue_free(q));
}

BR_TEST_MAIN(CONFORMANCE_TESTS, cmocka_unit_test(prio_basic_order),
             cmocka_unit_test(prio_random_stable),
             cmocka_unit_test(prio_blocked_getter_gets_priority))
