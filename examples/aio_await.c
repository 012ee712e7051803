/* aio_await.c: a coroutine awaiting another's return value.
 *
 * Ports 001_0d5cedca80a60342.txt, "await关键字", 示例: others() prints "start", awaits
 * asyncio.sleep(2), prints "end" and returns '返回值'; func() prints "执行协程函数内部代码",
 * then `response = await others()` and prints "IO的结果是:返回值 ". Then the same with
 * others() as a task of its own (asyncio.create_task(others()); await task).
 *
 * Porting notes: `await others()` on a coroutine object runs it inside the awaiting
 * coroutine, so in C it is a plain call: others() suspends func's coroutine while it
 * sleeps (braid's coroutines are stackful: any function may suspend). As a task, the
 * value comes back through the task's future (br_future_result_str suspends func
 * until it is there). The sleep is scaled to 50 ms.
 */
#include <braid.h>
#include <braid/aio.h>

#include "example.h"

#include <stdio.h>

static const char *others(void) {
    printf("start\n");
    must(br_aio_sleep(50 * 1000 * 1000), "sleep");
    printf("end\n");
    return "返回值";
}

static int others_task(br_task *t) { return br_task_return_str(t, others()); }

static int func(br_task *t) {
    (void)t;
    printf("执行协程函数内部代码\n");
    /* 遇到IO操作挂起当前协程,等到IO完成后继续运行,当前协程挂起时,事件循环可以执行其他协程 */
    const char *response = others();
    printf("IO的结果是:%s \n", response);

    br_future *task;
    must(br_create_task(NULL, others_task, NULL, 0, &task), "create_task");
    must(br_future_result_str(task, BR_FOREVER, &response), "await task");
    printf("IO的结果是:%s \n", response);
    br_future_release(task);
    return 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int code;
    must(br_aio_run(func, NULL, 0, &code), "run");
    must(code, "func");
    return 0;
}
