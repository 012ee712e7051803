/* W6 thread-queue and N3: one producer thread -> one consumer thread through a braid
 * queue (br_queue, Python's queue.Queue).
 *
 *   bench_queue [VARIANT [N]]        no arguments: every variant
 *
 * VARIANT:
 *   thread-queue   W6, as Python's w6_queues.py thread-queue: an unbounded FIFO queue;
 *                  the producer puts N items (N = 1,000,000) then a sentinel, the
 *                  consumer gets until the sentinel, summing. (Items are the integers
 *                  1..N carried as pointers, the sentinel NULL: Python puts 0..N-1 then
 *                  None.) Timed from starting both threads to joining both.
 *   1p1c           N3, as the native peers n3_glib / n3_chan_go / n3_ring: the producer
 *                  puts 1..N (N = 10,000,000), the consumer gets exactly N and checks
 *                  the sum; an unbounded FIFO queue (GAsyncQueue is unbounded too).
 *   1p1c-bounded   (extra) the same through Queue(maxsize=1024), the capacity of the Go
 *                  channel and the C ring.
 *   1p1c-simple    (extra) the same through a SimpleQueue.
 * Figure: items/s (W6: items_per_s, as Python names it). Threads are br_threads.
 */
#include "bench.h"

typedef struct run {
    br_queue *q;
    long n;
    bool sentinel;
    uint64_t sum;
    long got;
} run;

static void producer(void *arg) {
    run *r = arg;
    for (long i = 1; i <= r->n; i++)
        BENCH_CHECK_OK(br_queue_put(r->q, (void *)(uintptr_t)i, BR_FOREVER));
    if (r->sentinel)
        BENCH_CHECK_OK(br_queue_put(r->q, NULL, BR_FOREVER));
}

static void consumer(void *arg) {
    run *r = arg;
    uint64_t s = 0;
    long got = 0;
    void *x;
    if (r->sentinel) {
        for (;;) {
            BENCH_CHECK_OK(br_queue_get(r->q, &x, BR_FOREVER));
            if (x == NULL)
                break;
            s += (uintptr_t)x;
            got++;
        }
    } else {
        for (long i = 0; i < r->n; i++) {
            BENCH_CHECK_OK(br_queue_get(r->q, &x, BR_FOREVER));
            s += (uintptr_t)x;
        }
        got = r->n;
    }
    r->sum = s;
    r->got = got;
}

static void one(const char *workload, const char *variant, const char *metric, long n,
                bool sentinel, const br_queue_opts *opts) {
    run r = {.n = n, .sentinel = sentinel};
    int64_t s0 = bench_now();
    BENCH_CHECK_OK(br_queue_new(&r.q, opts));
    int64_t t0 = bench_now();
    br_thread *c, *p;
    BENCH_CHECK_OK(
        br_thread_start(&c, consumer, &r, &(br_thread_opts){.name = "consumer"}));
    BENCH_CHECK_OK(
        br_thread_start(&p, producer, &r, &(br_thread_opts){.name = "producer"}));
    BENCH_CHECK_OK(br_thread_join(p, BR_FOREVER));
    BENCH_CHECK_OK(br_thread_join(c, BR_FOREVER));
    int64_t t1 = bench_now();
    BENCH_CHECK_OK(br_thread_free(p));
    BENCH_CHECK_OK(br_thread_free(c));
    BENCH_CHECK_EQ(r.got, n);
    BENCH_CHECK_EQ(r.sum, (uint64_t)n * (uint64_t)(n + 1) / 2);
    BENCH_CHECK(br_queue_empty(r.q));
    BENCH_CHECK_OK(br_queue_free(r.q));
    int64_t t2 = bench_now();
    double s = bench_secs(t0, t1), rate = (double)n / s;
    char buf[32];
    bench_note(
        "%s %s braid: setup %.3f ms, run %ld items in %.4f s (%.1f ns/item, %sitems/s), "
        "teardown %.3f ms, sum checked",
        workload, variant, bench_secs(s0, t0) * 1e3, n, s, s * 1e9 / (double)n,
        bench_si(rate, buf, sizeof buf), bench_secs(t1, t2) * 1e3);
    bench_emit(workload, variant, "braid", metric, rate, "items/s");
}

int main(int argc, char **argv) {
    const char *v = argc > 1 ? argv[1] : NULL;
    bool all = v == NULL;
    bool matched = false;
    if (all || strcmp(v, "thread-queue") == 0) {
        one("W6", "thread-queue", "items_per_s", bench_arg_count(argc, argv, 2, 1000000),
            true, NULL);
        matched = true;
    }
    if (all || strcmp(v, "1p1c") == 0) {
        one("N3", "1p1c", "items_per_s", bench_arg_count(argc, argv, 2, 10000000), false,
            NULL);
        matched = true;
    }
    if (all || strcmp(v, "1p1c-bounded") == 0) {
        one("N3", "1p1c-bounded", "items_per_s", bench_arg_count(argc, argv, 2, 10000000),
            false, &(br_queue_opts){.maxsize = 1024});
        matched = true;
    }
    if (all || strcmp(v, "1p1c-simple") == 0) {
        one("N3", "1p1c-simple", "items_per_s", bench_arg_count(argc, argv, 2, 10000000),
            false, &(br_queue_opts){.kind = BR_QUEUE_SIMPLE});
        matched = true;
    }
    if (!matched) {
        fprintf(stderr, "usage: %s [thread-queue|1p1c|1p1c-bounded|1p1c-simple [N]]\n",
                argv[0]);
        return 2;
    }
    return 0;
}
