/* The program tests/packaging/install_check.cmake builds against an installed braid,
 * three ways (pkg-config shared, pkg-config --static, CMake's find_package), using only
 * what the install provides. One call into each layer: a thread, a lock, a queue, a
 * thread pool with map and a future. Prints one line, "braid <version> ok <sum>", and
 * exits 0; any failure prints what failed and exits 1. */
#include <braid.h>

#include <stdint.h>
#include <stdio.h>

#define CHECK(expr)                                                                  \
    do {                                                                             \
        int rc_ = (expr);                                                            \
        if (rc_ != 0) {                                                              \
            fprintf(stderr, "app: %s: %s\n", #expr, br_err_name(rc_));               \
            return 1;                                                                \
        }                                                                            \
    } while (0)

static br_lock lock = BR_LOCK_INIT;
static int64_t total;

static void add_ten(void *arg) {
    br_queue *q = arg;
    for (int i = 0; i < 10; i++) {
        void *item;
        if (br_queue_get(q, &item, BR_FOREVER) != 0)
            return;
        BR_WITH(&lock) { total += (int64_t)(intptr_t)item; }
    }
}

static int square(br_task *t) {
    int64_t x = br_task_arg_i64(t);
    return br_task_return_i64(t, x * x);
}

int main(void) {
    /* a thread summing what a queue brings it: 0 + 1 + ... + 9 = 45 */
    br_queue *q;
    CHECK(br_queue_new(&q, &(br_queue_opts){.maxsize = 4}));
    br_thread *t;
    CHECK(br_thread_start(&t, add_ten, q, NULL));
    for (intptr_t i = 0; i < 10; i++)
        CHECK(br_queue_put(q, (void *)i, BR_FOREVER));
    CHECK(br_thread_join(t, BR_FOREVER));
    CHECK(br_thread_free(t));
    CHECK(br_queue_free(q));

    /* a pool: squares of 0..9 by map (285), and one more by submit (10 * 10) */
    br_executor *pool;
    CHECK(br_threadpool_new(&pool, &(br_threadpool_opts){.max_workers = 2}));
    int64_t xs[10];
    for (int i = 0; i < 10; i++)
        xs[i] = i;
    br_map *m;
    CHECK(br_map_new(&m, pool, square, xs, 10, sizeof xs[0], NULL));
    int64_t v;
    int rc;
    while ((rc = br_map_next_i64(m, &v)) == 0)
        total += v;
    if (rc != BR_EOF) {
        fprintf(stderr, "app: br_map_next_i64: %s\n", br_err_name(rc));
        return 1;
    }
    CHECK(br_map_free(m));
    br_future *f;
    CHECK(br_submit_i64(pool, square, 10, &f));
    CHECK(br_future_result_i64(f, BR_FOREVER, &v));
    br_future_release(f);
    total += v;
    CHECK(br_executor_free(pool));

    printf("braid %s ok %lld\n", br_version(), (long long)total); /* 45 + 285 + 100 */
    return 0;
}
