/* pool_as_completed.c: results in the order the tasks finish, with as_completed.
 *
 * Ports 002_777bae947f90e707.txt, the as_completed listing: ThreadPoolExecutor(2),
 * urls = [3, 4, 9, 7], all_task = [submit(get_html, url) ...], and
 * `for future in as_completed(all_task): print(future.result())`.
 *
 * With 2 workers, Python starts 3 and 4, then 9 in 3's place and 7 in 4's, so they
 * finish 3, 4, 7, 9. braid's pool starts tasks submitted from outside it in submission
 * order too (executor.h), so the output is the same, and as_completed yields each
 * result as soon as its task is done. Sleeps scaled by 0.08 (0.24, 0.32, 0.72,
 * 0.56 s).
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
    static const int64_t urls[] = {3, 4, 9, 7}; /* 模拟各线程爬取时间 */
    enum { N = sizeof urls / sizeof urls[0] };

    br_executor *executor;
    must(br_threadpool_new(&executor, &(br_threadpool_opts){.max_workers = 2}), "pool");
    br_future *all_task[N];
    for (int i = 0; i < N; i++)
        must(br_submit_i64(executor, get_html, urls[i], &all_task[i]), "submit");

    br_as_completed *it;
    must(br_as_completed_new(&it, all_task, N, BR_FOREVER), "as_completed");
    br_future *future;
    int rc;
    while ((rc = br_as_completed_next(it, &future)) == 0) {
        const char *html;
        must(br_future_result_str(future, BR_FOREVER, &html), "result");
        printf("%s\n", html);
    }
    if (rc != BR_EOF)
        must(rc, "as_completed_next");
    must(br_as_completed_free(it), "free");

    for (int i = 0; i < N; i++)
        br_future_release(all_task[i]);
    must(br_executor_free(executor), "free");
    return 0;
}
