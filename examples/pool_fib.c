/* pool_fib.c: recursive fib(25..34) on a thread pool of 3, collected with as_completed.
 *
 * Ports 002_777bae947f90e707.txt, "1. 未来对象:Future对象", the fib listing's thread half:
 * `with ThreadPoolExecutor(3) as executor:` submit fib(num) for num in range(25, 35),
 * take every result through as_completed, print "多线程用时". (Its process half,
 * ProcessPoolExecutor(3), comes with braid's process layer.) This is BENCH.md's W2;
 * `braid compare` times it.
 *
 * In C the threads really run in parallel, so the pool finishes in about the time of
 * the longest task (fib(34)) on a 2-core machine, not the sum.
 *
 * Porting notes: Python keeps a dict future -> n when it needs n back. Here the task
 * returns both, (n, fib(n)), as 16 bytes, so the result says what it is a result of.
 * The tutorial's fib has `if n <= 2: return 1`: the same numbers for n >= 1. The sum
 * is checked: 14,808,959.
 */
#include <braid.h>

#include "example.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIRST 25
#define LAST 34 /* range(25, 35) */
#define N (LAST - FIRST + 1)

typedef struct fib_result {
    int64_t n, value;
} fib_result;

static int64_t fib(int64_t n) {
    if (n <= 2)
        return 1;
    return fib(n - 1) + fib(n - 2);
}

static int fib_task(br_task *t) {
    fib_result r = {br_task_arg_i64(t), 0};
    r.value = fib(r.n);
    return br_task_return(t, &r, sizeof r);
}

int main(void) {
    int64_t start_time = br_now();
    br_executor *executor;
    must(br_threadpool_new(&executor, &(br_threadpool_opts){.max_workers = 3}), "pool");
    br_future *all_task[N];
    for (int num = FIRST; num <= LAST; num++)
        must(br_submit_i64(executor, fib_task, num, &all_task[num - FIRST]), "submit");

    br_as_completed *it;
    must(br_as_completed_new(&it, all_task, N, BR_FOREVER), "as_completed");
    int64_t sum = 0;
    br_future *future;
    int rc;
    while ((rc = br_as_completed_next(it, &future)) == 0) {
        const void *data;
        size_t len;
        must(br_future_result(future, BR_FOREVER, &data, &len), "result");
        fib_result r;
        if (len != sizeof r)
            must(BR_EINVAL, "result size");
        memcpy(&r, data, sizeof r); /* the bytes need not be aligned for fib_result */
        printf("fib(%lld) = %lld\n", (long long)r.n, (long long)r.value);
        sum += r.value;
    }
    if (rc != BR_EOF)
        must(rc, "as_completed_next");
    must(br_as_completed_free(it), "free");
    for (int i = 0; i < N; i++)
        br_future_release(all_task[i]);
    must(br_executor_free(executor), "free");

    printf("sum = %lld\n", (long long)sum);
    printf("多线程用时:%.3f\n", (double)(br_now() - start_time) / BR_SEC);
    return sum == 14808959 ? 0 : 1;
}
