/* pool_sleep.c: 30 sleeping tasks on a thread pool of 3.
 *
 * Ports 002_777bae947f90e707.txt, the random_sleep listing's thread half:
 * `with ThreadPoolExecutor(3) as executor:` submit random_sleep(1) 30 times, wait for
 * all through as_completed, print "多线程用时". Three workers sleep three tasks at a time:
 * ten rounds, so about 10 x the sleep, not 30 x. (The process half comes with braid's
 * process layer.)
 *
 * Porting note: the 1 s sleep is scaled to 40 ms: about 0.4 s in all, never less.
 */
#include <braid.h>

#include "example.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define TASKS 30
#define WORKERS 3
#define SLEEP_MS 40

/* How many tasks slept at the same moment, at most: never more than the workers. */
static _Atomic int running, most;

static int random_sleep(br_task *t) {
    int64_t n = br_task_arg_i64(t);
    int now = atomic_fetch_add(&running, 1) + 1;
    for (int m = atomic_load(&most); now > m && !atomic_compare_exchange_weak(&most, &m, now);)
        ;
    br_sleep(n * BR_MSEC);
    atomic_fetch_sub(&running, 1);
    return br_task_return_i64(t, n);
}

int main(void) {
    br_executor *executor;
    must(br_threadpool_new(&executor, &(br_threadpool_opts){.max_workers = WORKERS}),
         "pool");
    int64_t start_time = br_now();
    br_future *all_task[TASKS];
    for (int i = 0; i < TASKS; i++)
        must(br_submit_i64(executor, random_sleep, SLEEP_MS, &all_task[i]), "submit");

    br_as_completed *it;
    must(br_as_completed_new(&it, all_task, TASKS, BR_FOREVER), "as_completed");
    int got = 0;
    br_future *future;
    int rc;
    while ((rc = br_as_completed_next(it, &future)) == 0) {
        int64_t data;
        must(br_future_result_i64(future, BR_FOREVER, &data), "result");
        got += data == SLEEP_MS;
    }
    if (rc != BR_EOF)
        must(rc, "as_completed_next");
    double elapsed = (double)(br_now() - start_time) / BR_SEC;
    must(br_as_completed_free(it), "free");
    for (int i = 0; i < TASKS; i++)
        br_future_release(all_task[i]);
    must(br_executor_free(executor), "free");

    printf("results: %d of %d\n", got, TASKS);
    printf("多线程用时 :%.3f\n", elapsed);
    printf("tasks sleeping at once: at most %d\n", atomic_load(&most));
    printf("(one sleep is %.3f s; %d workers need at least %d rounds: %.3f s)\n",
           SLEEP_MS / 1000.0, WORKERS, TASKS / WORKERS, TASKS / WORKERS * SLEEP_MS / 1000.0);
    return got == TASKS ? 0 : 1;
}
