/* mp_queue.c: processes talking through a multiprocessing Queue.
 *
 * Ports three listings:
 *   002 "进程间通信 - Queue、Pipe,Manager", 1st: a producer process puts "a" into a
 *       Queue(5), a consumer process sleeps 2 s, gets it and prints it;
 *   002, 2nd: the same two functions on Pool(2) with apply_async, close and join
 *       (Python needs Manager().Queue(5) there: a plain Queue can't be pickled into a
 *       pool's task; braid's queue needs nothing of the kind);
 *   003 "8. 进程通信队列": run1 puts 1, 2, 3 and says so; the main process gets them.
 * The 2 s sleeps are 100 ms here.
 *
 * Porting notes. A queue carries bytes. It lives in shared memory made before the
 * children fork, so a child (or a pool worker forked after it) uses the same handle,
 * here a global: Python passes it in args. A spawned child would rebuild it from its
 * descriptor (br_mp_queue_fd / br_mp_queue_attach).
 */
#include "example.h"

#include <braid/mp_queue.h>
#include <braid/process.h>
#include <braid/processpool.h>

#include <stdlib.h>

static br_mp_queue *queue;

static int producer(br_task *t) {
    (void)t;
    must(br_mp_queue_put(queue, "a", 1, BR_FOREVER), "queue.put");
    br_sleep(100 * BR_MSEC);
    return 0;
}

static int consumer(br_task *t) {
    (void)t;
    br_sleep(100 * BR_MSEC); /* 需等待producer执行完再拿数据 */
    char buf[16];
    size_t len;
    must(br_mp_queue_get_into(queue, buf, sizeof buf - 1, &len, BR_FOREVER), "queue.get");
    buf[len] = '\0';
    printf("%s\n", buf);
    fflush(stdout);
    return 0;
}

static int run1(br_task *t) {
    (void)t;
    for (int64_t i = 1; i <= 3; i++)
        must(br_mp_queue_put(queue, &i, sizeof i, BR_FOREVER), "que.put");
    printf("run1函数执行完成\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    br_process_main(argc, argv);

    /* 002, 1st: two processes and a Queue(5). */
    printf("processes:\n");
    fflush(stdout);
    must(br_mp_queue_new(&queue, &(br_mp_queue_opts){.maxsize = 5}), "Queue(5)");
    br_process *my_producer, *my_consumer;
    must(br_process_start(&my_producer, producer, NULL, 0, NULL), "my_producer.start");
    must(br_process_start(&my_consumer, consumer, NULL, 0, NULL), "my_consumer.start");
    must(br_process_join(my_producer, BR_FOREVER), "my_producer.join");
    must(br_process_join(my_consumer, BR_FOREVER), "my_consumer.join");
    br_process_free(my_producer);
    br_process_free(my_consumer);

    /* 002, 2nd: the same on a Pool(2); the queue exists before the workers. */
    printf("pool:\n");
    fflush(stdout);
    br_mp_pool *pool;
    must(br_mp_pool_new(&pool, &(br_mp_pool_opts){.processes = 2}), "Pool(2)");
    must(br_mp_pool_apply_async(pool, producer, NULL, 0, NULL, NULL, NULL, NULL),
         "apply_async(producer)");
    must(br_mp_pool_apply_async(pool, consumer, NULL, 0, NULL, NULL, NULL, NULL),
         "apply_async(consumer)");
    must(br_mp_pool_close(pool), "pool.close");
    must(br_mp_pool_join(pool), "pool.join");
    must(br_mp_pool_free(pool), "pool");
    must(br_mp_queue_free(queue), "queue");

    /* 003, 8: run1 fills the queue, the main process reads it. */
    printf("run1:\n");
    fflush(stdout);
    must(br_mp_queue_new(&queue, NULL), "Queue()");
    br_process *p1;
    must(br_process_start(&p1, run1, NULL, 0, NULL), "p1.start");
    must(br_process_join(p1, BR_FOREVER), "p1.join");
    br_process_free(p1);
    for (int k = 0; k < 3; k++) {
        int64_t v;
        size_t len;
        must(br_mp_queue_get_into(queue, &v, sizeof v, &len, BR_FOREVER), "que.get");
        printf("主进程获取数据 %lld\n", (long long)v);
    }
    must(br_mp_queue_free(queue), "queue");
    return 0;
}
