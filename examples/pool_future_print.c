/* pool_future_print.c: what submit() hands back: a Future, pending or running.
 *
 * Ports 001_0d5cedca80a60342.txt, "concurrent.futures.Future对象": func(value) sleeps 1 s,
 * prints value and returns 123; pool = ThreadPoolExecutor(max_workers=5); five times
 * `fut = pool.submit(func, 1); print(fut)`, which shows
 * <Future at 0x... state=running> (or pending, if no worker has taken it yet).
 *
 * Porting notes: the listing never reads the results; this one waits for them and
 * prints them (123 each), and frees the pool. The sleep is scaled to 50 ms.
 */
#include <braid.h>

#include "example.h"

#include <stdio.h>
#include <stdlib.h>

/* Python's repr spells the state in lower case (<Future at ... state=running>);
 * br_future_state_name gives the upper-case enum names, so the port keeps its own. */
static const char *state_name(br_future_state s) {
    switch (s) {
    case BR_FUTURE_PENDING: return "pending";
    case BR_FUTURE_RUNNING: return "running";
    case BR_FUTURE_FINISHED: return "finished";
    case BR_FUTURE_CANCELLED: return "cancelled";
    }
    return "?";
}

static int func(br_task *t) {
    int64_t value = br_task_arg_i64(t);
    br_sleep_s(0.05);
    printf("%lld\n", (long long)value);
    return br_task_return_i64(t, 123);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    br_executor *pool;
    must(br_threadpool_new(&pool, &(br_threadpool_opts){.max_workers = 5}), "pool");
    br_future *futs[5];
    for (int i = 0; i < 5; i++) {
        must(br_submit_i64(pool, func, 1, &futs[i]), "submit");
        printf("<Future at %p state=%s>\n", (void *)futs[i],
               state_name(br_future_state_of(futs[i])));
    }
    for (int i = 0; i < 5; i++) {
        int64_t r;
        must(br_future_result_i64(futs[i], BR_FOREVER, &r), "result");
        printf("result %lld\n", (long long)r);
        br_future_release(futs[i]);
    }
    must(br_executor_free(pool), "free");
    return 0;
}
