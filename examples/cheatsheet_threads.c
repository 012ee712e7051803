/* cheatsheet_threads.c: the tutorial's summary of multithreading, every line of it.
 *
 * Ports 004_3a0c11dfd5eebac6.txt, "总结" / "多线程":
 *   t = Thread(target=func, args=(100,)); t.start(); t.join()    新建、启动、等待结束
 *   q = queue.Queue(); q.put(item); item = q.get()                数据通信
 *   lock = Lock(); with lock: ...                                 线程安全加锁
 *   with ThreadPoolExecutor() as executor:                        池化技术
 *       results = executor.map(func, [1, 2, 3])                   方法1
 *       future = executor.submit(func, 1); result = future.result()  方法2
 * func is left undefined there; here it doubles its argument.
 */
#include <braid.h>

#include "example.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void func(void *arg) { /* a thread body */
    printf("thread: func(%d) = %d\n", (int)(intptr_t)arg, 2 * (int)(intptr_t)arg);
}

static int func_task(br_task *t) { /* the same as a task: bytes in, bytes out */
    return br_task_return_i64(t, 2 * br_task_arg_i64(t));
}

int main(void) {
    /* 新建、启动、等待结束 */
    br_thread *t;
    must(br_thread_start(&t, func, (void *)(intptr_t)100, NULL), "start");
    must(br_thread_join(t, BR_FOREVER), "join");
    br_thread_free(t);

    /* 数据通信 */
    br_queue *q;
    must(br_queue_new(&q, NULL), "queue");
    must(br_queue_put(q, "item", BR_FOREVER), "put");
    void *item;
    must(br_queue_get(q, &item, BR_FOREVER), "get");
    printf("queue: got %s\n", (const char *)item);
    must(br_queue_free(q), "queue free");

    /* 线程安全加锁 */
    br_lock lock = BR_LOCK_INIT;
    BR_WITH(&lock) {
        printf("lock: held inside with: %s\n", br_lock_owned(&lock) ? "yes" : "no");
    }

    /* 池化技术 */
    br_executor *executor;
    must(br_threadpool_new(&executor, NULL), "pool");
    static const int64_t args[] = {1, 2, 3};
    br_map *m; /* 方法1 */
    must(br_map_new(&m, executor, func_task, args, 3, sizeof args[0], NULL), "map");
    int64_t r;
    int rc;
    printf("map:");
    while ((rc = br_map_next_i64(m, &r)) == 0)
        printf(" %lld", (long long)r);
    printf("\n");
    if (rc != BR_EOF)
        must(rc, "map next");
    must(br_map_free(m), "map free");

    br_future *future; /* 方法2 */
    must(br_submit_i64(executor, func_task, 1, &future), "submit");
    must(br_future_result_i64(future, BR_FOREVER, &r), "result");
    printf("submit: result %lld\n", (long long)r);
    br_future_release(future);
    must(br_executor_free(executor), "free");
    return 0;
}
