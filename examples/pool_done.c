/* pool_done.c: submit to a thread pool, then ask done() before and after, and result().
 *
 * Ports 002_777bae947f90e707.txt, the first ThreadPoolExecutor listing: get_html(times)
 * sleeps `times` s, prints "use {} to success" and returns "运行的时间是{}秒";
 * executor = ThreadPoolExecutor(max_workers=2); task1 = submit(get_html, 2), task2 =
 * submit(get_html, 1); print(task1.done()) gives False; after time.sleep(3) it gives
 * True, and task1.result() is the returned string.
 *
 * Porting notes: the task's argument and result are bytes (so the same task could run
 * on a process pool): `times` travels as an int64, the string comes back as a copy
 * that the future owns until it is released. Sleeps scaled by 0.05; main's sleep is
 * 0.5 s rather than 3 x 0.05, a wide margin over task1's 0.1 s (the tutorial itself
 * notes that a sleep of exactly 2 may show False).
 */
#include <braid.h>

#include "example.h"

#include <stdio.h>
#include <stdlib.h>

#define SCALE 0.05

static int get_html(br_task *t) {
    int64_t times = br_task_arg_i64(t);
    br_sleep_s((double)times * SCALE);
    printf("use %lld to success\n", (long long)times);
    char ret[64];
    snprintf(ret, sizeof ret, "运行的时间是%lld秒", (long long)times);
    return br_task_return_str(t, ret);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    br_executor *executor; /* 线程池里同时运行的数量 */
    must(br_threadpool_new(&executor, &(br_threadpool_opts){.max_workers = 2}), "pool");

    br_future *task1, *task2;
    must(br_submit_i64(executor, get_html, 2, &task1), "submit");
    must(br_submit_i64(executor, get_html, 1, &task2), "submit");

    printf("%s\n", br_future_done(task1) ? "True" : "False"); /* 立即执行 */
    br_sleep_s(0.5);
    printf("%s\n", br_future_done(task1) ? "True" : "False");

    const char *html;
    must(br_future_result_str(task1, BR_FOREVER, &html), "result");
    printf("%s\n", html); /* get_html 的返回值, owned by task1 */

    br_future_release(task1);
    br_future_release(task2);
    must(br_executor_free(executor), "free");
    return 0;
}
