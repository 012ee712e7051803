/* aio_work.c: two coroutines taking turns, one thread.
 *
 * Ports 003_1126844284e665b9.txt, "asycio实现协程": work1 prints "work1:听音乐..." and
 * work2 "work2:打游戏...", five times each, each time awaiting asyncio.sleep(1); main
 * creates both tasks and awaits them; the program prints the time it took
 * ("共花费时间5.01秒", not 10: the sleeps overlap).
 *
 * Porting notes: asyncio.run(main()) is br_aio_run(main, ...); `await task` is the
 * ordinary br_future_result, which suspends the calling coroutine. The sleep is scaled
 * to 50 ms. The lines alternate: both tasks sleep equally long and work1 always goes to
 * sleep first, and the loop wakes sleepers in deadline order.
 */
#include <braid.h>
#include <braid/aio.h>

#include "example.h"

#include <stdio.h>

#define SLEEP_NS (50 * 1000 * 1000)

static int work1(br_task *t) {
    (void)t;
    for (int i = 0; i < 5; i++) {
        printf("work1:听音乐...\n");
        must(br_aio_sleep(SLEEP_NS), "sleep");
    }
    return 0;
}

static int work2(br_task *t) {
    (void)t;
    for (int i = 0; i < 5; i++) {
        printf("work2:打游戏...\n");
        must(br_aio_sleep(SLEEP_NS), "sleep");
    }
    return 0;
}

static int main_task(br_task *t) {
    (void)t;
    br_future *task1, *task2;
    must(br_create_task(NULL, work1, NULL, 0, &task1), "create_task"); /* 任务一 */
    must(br_create_task(NULL, work2, NULL, 0, &task2), "create_task"); /* 任务二 */
    must(br_future_result(task1, BR_FOREVER, NULL, NULL), "await task1");
    must(br_future_result(task2, BR_FOREVER, NULL, NULL), "await task2");
    br_future_release(task1);
    br_future_release(task2);
    return 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int64_t start = br_now();
    int code;
    must(br_aio_run(main_task, NULL, 0, &code), "run");
    must(code, "main");
    printf("共花费时间%.2f秒\n", (double)(br_now() - start) / 1e9);
    return 0;
}
