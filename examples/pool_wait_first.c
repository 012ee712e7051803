/* pool_wait_first.c: wait(return_when=FIRST_COMPLETED), then as_completed.
 *
 * Ports 002_777bae947f90e707.txt, the wait listing: four get_html tasks on
 * ThreadPoolExecutor(2), `wait(all_task, return_when=FIRST_COMPLETED)`, print("main"),
 * then the results with as_completed. "main" comes right after the first task finishes
 * ("这里是第一个任务执行完打印 main"): exactly one "use ... to success" line before it.
 *
 * Porting note: br_wait can also hand back Python's (done, not_done) sets; this prints
 * how many were done when it returned. Sleeps scaled by 0.1: the first task ends at
 * 0.3 s, the next one at 0.4 s at the earliest. (The order of the rest: see
 * pool_as_completed.c.)
 */
#include <braid.h>

#include "example.h"

#include <stdio.h>
#include <stdlib.h>

#define SCALE 0.1

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
    br_future *all_task[N];
    for (int i = 0; i < N; i++)
        must(br_submit_i64(executor, get_html, urls[i], &all_task[i]), "submit");

    /* return_when: 第一个线程完成时执行下一行代码 */
    br_future *sets[N];
    size_t ndone, nnot_done;
    must(br_wait(all_task, N, BR_FIRST_COMPLETED, BR_FOREVER, sets, &ndone, &nnot_done),
         "wait");
    printf("main\n");
    printf("(done: %zu, not done: %zu)\n", ndone, nnot_done);

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
