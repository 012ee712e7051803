/* W5 (BENCH.md): the process pool, the same work as peers/python/w5_process_pools.py.
 *
 *   ppe-submit        ProcessPool(2), warmed with a map of 10 no-ops; timed: 10,000
 *                     br_submit of a no-op task, then br_wait(ALL_COMPLETED)
 *   ppe-map           timed: br_map of the no-op over 10,000 inputs (chunksize 1)
 *   pool-map-default  br_mp_pool (2), warmed; timed: br_mp_pool_map over 10,000 inputs,
 *                     Python's default chunksize (ceil(10000 / (2*4)) = 1250)
 *   pool-map-chunk1   the same with chunksize 1
 *   payload-seq       ProcessPool(2), warmed; timed: 200 sequential submit + result of
 *                     an echo of a 1 MiB argument (checked byte for byte at the end)
 *   payload-map       timed: br_map of the echo over 200 copies of the 1 MiB argument
 *
 * Figures: tasks_per_s, or MiB_per_s = 200 MiB / seconds (as the peer counts it: each
 * MiB goes to the worker and back).
 */
#include "bench.h"

#include <braid/processpool.h>

enum { N = 10000, PAYLOAD_N = 200, PAYLOAD = 1 << 20 };

static int noop(br_task *t) {
    (void)t;
    return 0;
}

static int echo(br_task *t) {
    size_t len;
    const void *a = br_task_arg(t, &len);
    return br_task_return(t, a, len);
}

static br_executor *pool2(void) {
    br_executor *ex;
    BENCH_CHECK_OK(br_processpool_new(&ex, &(br_processpool_opts){.max_workers = 2}));
    int32_t xs[10] = {0};
    br_map *m;
    BENCH_CHECK_OK(br_map_new(&m, ex, noop, xs, 10, sizeof xs[0], NULL));
    const void *d;
    size_t len;
    int rc, k = 0;
    while ((rc = br_map_next(m, &d, &len)) == 0)
        k++;
    BENCH_CHECK_EQ(rc, BR_EOF);
    BENCH_CHECK_EQ(k, 10);
    br_map_free(m);
    return ex;
}

static void ppe(const char *v) {
    br_executor *ex = pool2();
    int64_t t0, t1;
    if (strcmp(v, "ppe-submit") == 0) {
        br_future **fs = malloc(N * sizeof *fs);
        t0 = bench_now();
        for (int i = 0; i < N; i++)
            BENCH_CHECK_OK(br_submit(ex, noop, NULL, 0, &fs[i]));
        size_t nd, nn;
        BENCH_CHECK_OK(br_wait(fs, N, BR_ALL_COMPLETED, BR_FOREVER, NULL, &nd, &nn));
        t1 = bench_now();
        BENCH_CHECK_EQ(nd, N);
        for (int i = 0; i < N; i++) {
            BENCH_CHECK_OK(br_future_result(fs[i], BR_NOWAIT, NULL, NULL));
            br_future_release(fs[i]);
        }
        free(fs);
    } else {
        int32_t *xs = calloc(N, sizeof *xs);
        br_map *m;
        t0 = bench_now();
        BENCH_CHECK_OK(br_map_new(&m, ex, noop, xs, N, sizeof xs[0],
                                  &(br_map_opts){.chunksize = 1, .buffersize = N}));
        const void *d;
        size_t len;
        int rc, k = 0;
        while ((rc = br_map_next(m, &d, &len)) == 0)
            k++;
        t1 = bench_now();
        BENCH_CHECK_EQ(rc, BR_EOF);
        BENCH_CHECK_EQ(k, N);
        br_map_free(m);
        free(xs);
    }
    BENCH_CHECK_OK(br_executor_free(ex));
    double s = bench_secs(t0, t1);
    fprintf(stderr, "W5 %s: %d tasks in %.4f s\n", v, N, s);
    bench_emit("W5", v, "braid", "tasks_per_s", N / s, "tasks/s");
}

static void pool(const char *v) {
    br_mp_pool *p;
    BENCH_CHECK_OK(br_mp_pool_new(&p, &(br_mp_pool_opts){.processes = 2}));
    int32_t *xs = calloc(N, sizeof *xs);
    br_mp_result *r;
    BENCH_CHECK_OK(br_mp_pool_map(&r, p, noop, xs, 10, sizeof xs[0], 0));
    br_mp_result_free(r);
    size_t chunk = strcmp(v, "pool-map-chunk1") == 0 ? 1 : 0;
    int64_t t0 = bench_now();
    BENCH_CHECK_OK(br_mp_pool_map(&r, p, noop, xs, N, sizeof xs[0], chunk));
    int64_t t1 = bench_now();
    BENCH_CHECK_EQ(br_mp_result_count(r), N);
    br_mp_result_free(r);
    free(xs);
    BENCH_CHECK_OK(br_mp_pool_close(p));
    BENCH_CHECK_OK(br_mp_pool_join(p));
    BENCH_CHECK_OK(br_mp_pool_free(p));
    double s = bench_secs(t0, t1);
    fprintf(stderr, "W5 %s: %d tasks in %.4f s\n", v, N, s);
    bench_emit("W5", v, "braid", "tasks_per_s", N / s, "tasks/s");
}

static void payload(const char *v) {
    br_executor *ex = pool2();
    unsigned char *buf = malloc(PAYLOAD);
    for (int i = 0; i < PAYLOAD; i++)
        buf[i] = (unsigned char)i; /* bytes(range(256)) * 4096 */
    int64_t t0, t1;
    if (strcmp(v, "payload-seq") == 0) {
        br_future *f = NULL;
        t0 = bench_now();
        for (int i = 0; i < PAYLOAD_N; i++) {
            if (f)
                br_future_release(f);
            BENCH_CHECK_OK(br_submit(ex, echo, buf, PAYLOAD, &f));
            BENCH_CHECK_OK(br_future_result(f, BR_FOREVER, NULL, NULL));
        }
        t1 = bench_now();
        const void *d;
        size_t len;
        BENCH_CHECK_OK(br_future_result(f, BR_NOWAIT, &d, &len));
        BENCH_CHECK_EQ(len, PAYLOAD);
        BENCH_CHECK(memcmp(d, buf, PAYLOAD) == 0);
        br_future_release(f);
    } else {
        unsigned char *args = malloc((size_t)PAYLOAD * 4);
        for (int k = 0; k < 4; k++)
            memcpy(args + (size_t)k * PAYLOAD, buf, PAYLOAD);
        /* 200 inputs of 1 MiB: the same four buffers over and over would need a strided
         * input; 200 distinct copies cost 200 MiB here as in the peer's list */
        unsigned char *all = malloc((size_t)PAYLOAD * PAYLOAD_N);
        for (int k = 0; k < PAYLOAD_N; k++)
            memcpy(all + (size_t)k * PAYLOAD, buf, PAYLOAD);
        free(args);
        br_map *m;
        t0 = bench_now();
        BENCH_CHECK_OK(br_map_new(&m, ex, echo, all, PAYLOAD_N, PAYLOAD, NULL));
        const void *d = NULL;
        size_t len = 0;
        int rc, k = 0;
        while ((rc = br_map_next(m, &d, &len)) == 0) {
            k++;
            if (k == PAYLOAD_N) {
                BENCH_CHECK_EQ(len, PAYLOAD);
                BENCH_CHECK(memcmp(d, buf, PAYLOAD) == 0);
            }
        }
        t1 = bench_now();
        BENCH_CHECK_EQ(rc, BR_EOF);
        BENCH_CHECK_EQ(k, PAYLOAD_N);
        br_map_free(m);
        free(all);
    }
    free(buf);
    BENCH_CHECK_OK(br_executor_free(ex));
    double s = bench_secs(t0, t1);
    fprintf(stderr, "W5 %s: %d x 1 MiB in %.4f s\n", v, PAYLOAD_N, s);
    bench_emit("W5", v, "braid", "MiB_per_s", PAYLOAD_N / s, "MiB/s");
}

int main(int argc, char **argv) {
    const char *v = argc == 2 ? argv[1] : "";
    if (strncmp(v, "ppe-", 4) == 0 && (!strcmp(v, "ppe-submit") || !strcmp(v, "ppe-map")))
        ppe(v);
    else if (!strcmp(v, "pool-map-default") || !strcmp(v, "pool-map-chunk1"))
        pool(v);
    else if (!strcmp(v, "payload-seq") || !strcmp(v, "payload-map"))
        payload(v);
    else {
        fprintf(stderr, "usage: %s [ppe-submit|ppe-map|pool-map-default|pool-map-chunk1|"
                        "payload-seq|payload-map]\n", argv[0]);
        return 2;
    }
    return 0;
}
