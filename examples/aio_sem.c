/* aio_sem.c: a Semaphore(10) capping 50 coroutines.
 *
 * Ports 004_3a0c11dfd5eebac6.txt, "asyncio": semaphore = asyncio.Semaphore(10); 50
 * tasks of async_post(data), each `async with semaphore:` posting one page request
 * (print "post data:{data}"), awaiting asyncio.sleep(5) and printing
 * "post data:{data},{len}". At most 10 requests are in flight.
 *
 * Porting notes: the semaphore is braid's ordinary br_sem (no asyncio.Semaphore beside
 * threading.Semaphore): called in a coroutine, br_sem_acquire suspends the coroutine,
 * not the thread. The HTTP post is left out (the http layer isn't here): each task
 * "posts" by sleeping 50 ms, and its "length" is the page number's. The program counts
 * the coroutines inside the semaphore and prints the most ever seen: exactly 10 (never
 * more: the semaphore; never fewer: the first ten are all in before the first sleep
 * ends, since ready coroutines run before the loop's timers).
 */
#include <braid.h>
#include <braid/aio.h>

#include "example.h"

#include <stdio.h>

#define TASKS 50

static br_sem semaphore; /* 信号量，控制最大并发数 */
static int inside, most_inside; /* one loop thread */

static int async_post(br_task *t) {
    int num = (int)br_task_arg_i64(t);
    char data[160];
    snprintf(data, sizeof data,
             "{\"CategoryType\":\"SiteHome\",\"ParentCategoryId\":0,\"CategoryId\":808,"
             "\"PageIndex\":%d,\"TotalPostCount\":4000,"
             "\"ItemListActionName\":\"AggSitePostList\"}", num);
    must(br_sem_acquire(&semaphore, BR_FOREVER), "acquire"); /* async with semaphore: */
    if (++inside > most_inside)
        most_inside = inside;
    printf("post data:%s\n", data);
    must(br_aio_sleep(50 * 1000 * 1000), "sleep");
    printf("post data:%s,%d\n", data, 1000 + num);
    inside--;
    must(br_sem_release(&semaphore, 1), "release");
    return 0;
}

static int main_task(br_task *t) {
    (void)t;
    br_future *tasks[TASKS];
    for (int64_t num = 1; num <= TASKS; num++)
        must(br_create_task(NULL, async_post, &num, sizeof num, &tasks[num - 1]),
             "create_task");
    must(br_wait(tasks, TASKS, BR_ALL_COMPLETED, BR_FOREVER, NULL, NULL, NULL), "wait");
    for (int i = 0; i < TASKS; i++) {
        must(br_future_result(tasks[i], BR_NOWAIT, NULL, NULL), "async_post");
        br_future_release(tasks[i]);
    }
    return 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    must(br_sem_init(&semaphore, 10), "sem");
    int64_t start = br_now();
    int code;
    must(br_aio_run(main_task, NULL, 0, &code), "run");
    must(code, "main");
    printf("most posts at once: %d\n", most_inside);
    printf("一共花费 %.3f 秒\n", (double)(br_now() - start) / 1e9);
    must(br_sem_destroy(&semaphore), "sem_destroy");
    return 0;
}
