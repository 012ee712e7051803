/* pool_get_data.c: submit and map on ThreadPoolExecutor(max_workers=2).
 *
 * Ports 001_0d5cedca80a60342.txt, "多线程线程池ThreadPoolExecutor": get_data(times)
 * sleeps and prints "get data {} success"; task1 = submit(get_data, 3), task2 =
 * submit(get_data, 2); all_tasks = [submit(get_data, d) for d in [1, 2, 3]] ("submit后
 * 直接返回"); then `for data in thread_pool.map(get_data, datas): print("get {} data")`.
 * get_data returns nothing, so Python prints "get None data" three times.
 *
 * Porting notes: a task that sets no result finishes with an empty one (0 bytes): the
 * C spelling of None. The futures are kept and released (Python drops them), and the
 * pool is freed at the end: shutdown(wait=True) as the interpreter does at exit. Sleeps
 * scaled by 0.05.
 */
#include <braid.h>

#include "example.h"

#include <stdio.h>
#include <stdlib.h>

#define SCALE 0.05

static int get_data(br_task *t) {
    int64_t times = br_task_arg_i64(t);
    br_sleep_s((double)times * SCALE);
    printf("get data %lld success\n", (long long)times);
    return 0; /* no result: Python's None */
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    br_executor *thread_pool;
    must(br_threadpool_new(&thread_pool, &(br_threadpool_opts){.max_workers = 2}), "pool");
    br_future *task1, *task2;
    must(br_submit_i64(thread_pool, get_data, 3, &task1), "submit");
    must(br_submit_i64(thread_pool, get_data, 2, &task2), "submit");

    static const int64_t datas[] = {1, 2, 3};
    br_future *all_tasks[3];
    for (int i = 0; i < 3; i++) /* submit后直接返回 */
        must(br_submit_i64(thread_pool, get_data, datas[i], &all_tasks[i]), "submit");

    br_map *m;
    must(br_map_new(&m, thread_pool, get_data, datas, 3, sizeof datas[0], NULL), "map");
    const void *data;
    size_t len;
    int rc;
    while ((rc = br_map_next(m, &data, &len)) == 0)
        printf("get %s data\n", len == 0 ? "None" : "some");
    if (rc != BR_EOF)
        must(rc, "map_next");
    must(br_map_free(m), "map_free");

    br_future_release(task1);
    br_future_release(task2);
    for (int i = 0; i < 3; i++)
        br_future_release(all_tasks[i]);
    must(br_executor_free(thread_pool), "free");
    return 0;
}
