/* mp_apply_async.c: multiprocessing.Pool with apply_async, close and join.
 *
 * Ports 002_777bae947f90e707.txt's Pool listing: pool = Pool(cpu_count()),
 * result = pool.apply_async(get_html, args=(3,)), pool.close(), pool.join(),
 * print(result.get()). The task runs in a worker process and its result (an int64)
 * comes back through shared memory; the callback runs once, when it is done. Sleep
 * scaled by 0.1 (0.3 s).
 */
#include <braid.h>
#include <braid/processpool.h>

#include "example.h"

#include <stdio.h>
#include <string.h>

#define SCALE 0.1

static int get_html(br_task *t) {
    int64_t n = br_task_arg_i64(t);
    br_sleep_s((double)n * SCALE);
    printf("sub_progress sucess\n");
    return br_task_return_i64(t, n);
}

static void on_result(const void *data, size_t len, void *ctx) {
    (void)ctx;
    int64_t n = 0;
    if (len == sizeof n)
        memcpy(&n, data, sizeof n);
    printf("callback: %lld\n", (long long)n);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    br_mp_pool *pool;
    must(br_mp_pool_new(&pool, &(br_mp_pool_opts){.processes = br_cpu_count()}), "Pool");
    int64_t arg = 3; /* 这里的3是给get_html的参数设置为3秒 */
    br_future *result;
    must(br_mp_pool_apply_async(pool, get_html, &arg, sizeof arg, on_result, NULL, NULL,
                                &result),
         "apply_async");
    /* 等待所有任务完成 */
    must(br_mp_pool_close(pool), "close"); /* 要先把进程池关闭 */
    must(br_mp_pool_join(pool), "join");
    int64_t n;
    must(br_future_result_i64(result, BR_FOREVER, &n), "get");
    printf("%lld\n", (long long)n);
    br_future_release(result);
    must(br_mp_pool_free(pool), "free");
    return 0;
}
