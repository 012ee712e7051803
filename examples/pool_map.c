/* pool_map.c: results in input order, with Executor.map.
 *
 * Ports 002_777bae947f90e707.txt, the map listing: ThreadPoolExecutor(2) and
 * `for data in executor.map(get_html, urls): print(data)` with urls = [3, 4, 9, 7].
 * The tasks finish in the order 3, 4, 7, 9 (their "use ... to success" lines show it),
 * but map hands the results back in input order: 3, 4, 9, 7.
 *
 * Porting note: br_map takes an array of fixed-size inputs and gives each result's
 * bytes, valid until the next br_map_next. Sleeps scaled by 0.08.
 */
#include <braid.h>

#include "example.h"

#include <stdio.h>
#include <stdlib.h>

#define SCALE 0.08

static int get_html(br_task *t) {
    int64_t times = br_task_arg_i64(t);
    br_sleep_s((double)times * SCALE);
    printf("use %lld to success\n", (long long)times);
    char ret[64];
    snprintf(ret, sizeof ret, "我运行的时间是%lld秒", (long long)times);
    return br_task_return_str(t, ret);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    static const int64_t urls[] = {3, 4, 9, 7};
    enum { N = sizeof urls / sizeof urls[0] };

    br_executor *executor;
    must(br_threadpool_new(&executor, &(br_threadpool_opts){.max_workers = 2}), "pool");
    br_map *m; /* 和python中的map函数类似 */
    must(br_map_new(&m, executor, get_html, urls, N, sizeof urls[0], NULL), "map");
    const void *data;
    int rc;
    while ((rc = br_map_next(m, &data, NULL)) == 0)
        printf("%s\n", (const char *)data);
    if (rc != BR_EOF)
        must(rc, "map_next");
    must(br_map_free(m), "map_free");
    must(br_executor_free(executor), "free");
    return 0;
}
