/* aio_create_task.c: tasks start when the creating coroutine lets go, not at creation.
 *
 * Ports 001_0d5cedca80a60342.txt, "Task对象", 示例1: main prints "main函数开始", creates two
 * tasks of func (print 1, await asyncio.sleep(2), print 2, return '返回值'), prints
 * "main函数结束", then awaits both and prints the two results. Output, in this order:
 * main函数开始 / main函数结束 / 1 / 1 / 2 / 2 / 返回值 返回值. Then 示例2: the same two
 * tasks awaited with asyncio.wait(task_list, timeout=None), which gives the done set.
 *
 * Porting notes: the tasks' results are strings (br_task_return_str, read back with
 * br_future_result_str). "main函数结束" comes before "1" because a created task only
 * runs once the creator suspends (here, in its first br_future_result). The sleep is
 * scaled to 50 ms. Python prints the done set as {<Task finished ... result='返回值'>,
 * ...}; the port prints how many are done and their results.
 */
#include <braid.h>
#include <braid/aio.h>

#include "example.h"

#include <stdio.h>

static int func(br_task *t) {
    printf("1\n");
    must(br_aio_sleep(50 * 1000 * 1000), "sleep");
    printf("2\n");
    return br_task_return_str(t, "返回值");
}

static int example1(br_task *t) {
    (void)t;
    printf("main函数开始\n");
    br_future *task1, *task2;
    must(br_create_task(NULL, func, NULL, 0, &task1), "create_task");
    must(br_create_task(NULL, func, NULL, 0, &task2), "create_task");
    printf("main函数结束\n");
    const char *res1, *res2;
    must(br_future_result_str(task1, BR_FOREVER, &res1), "await task1");
    must(br_future_result_str(task2, BR_FOREVER, &res2), "await task2");
    printf("%s %s\n", res1, res2);
    br_future_release(task1);
    br_future_release(task2);
    return 0;
}

static int example2(br_task *t) {
    (void)t;
    printf("main函数开始\n");
    br_future *task_list[2];
    must(br_create_task(NULL, func, NULL, 0, &task_list[0]), "create_task");
    must(br_create_task(NULL, func, NULL, 0, &task_list[1]), "create_task");
    printf("main函数结束\n");
    br_future *sets[2];
    size_t ndone, npending;
    must(br_wait(task_list, 2, BR_ALL_COMPLETED, BR_FOREVER, sets, &ndone, &npending),
         "wait");
    printf("done: %zu, pending: %zu\n", ndone, npending);
    for (size_t i = 0; i < ndone; i++) {
        const char *res;
        must(br_future_result_str(sets[i], BR_NOWAIT, &res), "result");
        printf("finished result='%s'\n", res);
    }
    br_future_release(task_list[0]);
    br_future_release(task_list[1]);
    return 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int code;
    printf("示例1\n");
    must(br_aio_run(example1, NULL, 0, &code), "run");
    must(code, "example1");
    printf("示例2\n");
    must(br_aio_run(example2, NULL, 0, &code), "run");
    must(code, "example2");
    return 0;
}
