/* aio_gather_wait.c: asyncio.gather and asyncio.wait, side by side.
 *
 * Ports 001_0d5cedca80a60342.txt, "python3.7后的新语法" and "asyncio.wait和asyncio.gather
 * 异同": async_craw(url) prints "开始爬取：url", awaits asyncio.sleep(0), prints
 * "爬取完成：url"; main gathers one per URL. The tutorial then explains the difference:
 * gather gives every result, wait gives two sets, done and pending (those not done when
 * its timeout passed), and the results are read from the done tasks.
 *
 * Porting notes: the URLs are the fake site's first three list pages. gather is
 * br_gather (it waits; each result is read from its task afterwards, in input order);
 * wait is the ordinary br_wait, which fills done/pending. To have a pending task that
 * is pending for sure (not by timing), the last crawl waits for an event that main sets
 * only after the wait returned; the wait's timeout is 0.1 s. Coroutines that are ready
 * run before the loop looks at its timers, so the three quick crawls are done by then.
 */
#include <braid.h>
#include <braid/aio.h>

#include "example.h"

#include <stdio.h>

#define N 3

static const char *urls[N + 1] = {
    "https://www.cnblogs.com/sitehome/p/1", "https://www.cnblogs.com/sitehome/p/2",
    "https://www.cnblogs.com/sitehome/p/3", "https://www.cnblogs.com/sitehome/p/4"};

static br_event slow_page;

static int async_craw(br_task *t) {
    const char *url = urls[br_task_arg_i64(t)];
    printf("开始爬取：%s\n", url);
    must(br_aio_yield(), "sleep(0)"); /* 触发io操作，调用其他协程 */
    if (br_task_arg_i64(t) == N)
        must(br_event_wait(&slow_page, BR_FOREVER), "slow page");
    printf("爬取完成：%s\n", url);
    return br_task_return_str(t, url);
}

static int main_task(br_task *t) {
    (void)t;
    br_future *tasks[N + 1];
    /* gather */
    for (int64_t i = 0; i < N; i++)
        must(br_create_task(NULL, async_craw, &i, sizeof i, &tasks[i]), "create_task");
    must(br_gather(tasks, N, false, BR_FOREVER), "gather");
    printf("gather:");
    for (int i = 0; i < N; i++) {
        const char *r;
        must(br_future_result_str(tasks[i], BR_NOWAIT, &r), "result");
        printf(" %s", r + sizeof "https://www.cnblogs.com/" - 1);
        br_future_release(tasks[i]);
    }
    printf("\n");

    /* wait, with a timeout */
    for (int64_t i = 0; i <= N; i++)
        must(br_create_task(NULL, async_craw, &i, sizeof i, &tasks[i]), "create_task");
    br_future *sets[N + 1];
    size_t ndone, npending;
    int rc = br_wait(tasks, N + 1, BR_ALL_COMPLETED, br_deadline_after_s(0.1), sets, &ndone,
                     &npending);
    printf("wait: %s, done %zu, pending %zu\n", rc == BR_ETIMEDOUT ? "timed out" : "all done",
           ndone, npending);
    for (size_t i = 0; i < ndone; i++) {
        const char *r;
        must(br_future_result_str(sets[i], BR_NOWAIT, &r), "result");
        printf("done: %s\n", r + sizeof "https://www.cnblogs.com/" - 1);
    }
    for (size_t i = ndone; i < ndone + npending; i++)
        printf("pending: %s\n", br_future_state_name(br_future_state_of(sets[i])));
    must(br_event_set(&slow_page), "set");
    must(br_future_result(tasks[N], BR_FOREVER, NULL, NULL), "slow crawl");
    for (int i = 0; i <= N; i++)
        br_future_release(tasks[i]);
    return 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    must(br_event_init(&slow_page), "event");
    int code;
    must(br_aio_run(main_task, NULL, 0, &code), "run");
    must(code, "main");
    must(br_event_destroy(&slow_page), "event_destroy");
    return 0;
}
