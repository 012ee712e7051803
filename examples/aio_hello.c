/* aio_hello.c: ten coroutines on one event loop, each printing and sleeping.
 *
 * Ports 001_0d5cedca80a60342.txt, "异步IO": hello(count) prints "Hello World! {count}"
 * and awaits asyncio.sleep(1); ten tasks are made with loop.create_task and run with
 * loop.run_until_complete(asyncio.wait(tasks)).
 *
 * Porting notes: the coroutine is a br_task_fn run by the loop on its own stack;
 * br_aio_sleep suspends only it. loop.create_task becomes br_create_task on a loop
 * made with br_loop_new (the tasks start once the loop runs), and asyncio.wait(tasks)
 * a coroutine that calls the ordinary br_wait. The sleep is scaled to 0.1 s. The
 * program counts the coroutines asleep at once and prints the most: all ten sleep
 * together, which is the point of the snippet (ten sleeps cost one).
 */
#include <braid.h>
#include <braid/aio.h>

#include "example.h"

#include <stdio.h>

#define N 10

static int asleep, most_asleep; /* one loop thread: no lock needed */

static int hello(br_task *t) {
    int64_t count = br_task_arg_i64(t);
    printf("Hello World! %lld\n", (long long)count);
    if (++asleep > most_asleep)
        most_asleep = asleep;
    int rc = br_aio_sleep(100 * 1000 * 1000);
    asleep--;
    return rc;
}

static int wait_all(br_task *t) { /* asyncio.wait(tasks) */
    br_future **tasks = *(br_future **const *)br_task_arg(t, NULL);
    return br_wait(tasks, N, BR_ALL_COMPLETED, BR_FOREVER, NULL, NULL, NULL);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    br_loop *loop;
    must(br_loop_new(&loop), "loop");
    br_future *tasks[N];
    for (int64_t count = 0; count < N; count++)
        must(br_create_task(loop, hello, &count, sizeof count, &tasks[count]), "create_task");
    br_future **arg = tasks;
    br_future *all;
    must(br_create_task(loop, wait_all, &arg, sizeof arg, &all), "create_task");
    int64_t start = br_now();
    must(br_loop_run_until_complete(loop, all), "run_until_complete");
    double took = (double)(br_now() - start) / 1e9;
    must(br_future_result(all, BR_NOWAIT, NULL, NULL), "wait");
    for (int i = 0; i < N; i++) {
        must(br_future_result(tasks[i], BR_NOWAIT, NULL, NULL), "hello");
        br_future_release(tasks[i]);
    }
    br_future_release(all);
    must(br_loop_free(loop), "loop_free");
    printf("asleep at once: %d\n", most_asleep);
    printf("took %.3f s\n", took);
    return 0;
}
