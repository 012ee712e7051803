/* aio_queue_lock.c: a coroutine and a thread sharing one Queue and one Lock.
 *
 * Not a tutorial listing: the tutorials' producer-consumer crawler (000, 001: a
 * queue.Queue between threads, a Lock around shared state) with the consumer turned
 * into a coroutine, which is what asyncio code does with asyncio.Queue. braid has one
 * queue and one lock for both: br_queue_get and br_lock_acquire, called in a
 * coroutine, suspend the coroutine and leave the loop's thread free.
 *
 * A plain thread puts 1..100 into a bounded queue (maxsize 4: it blocks too, until the
 * coroutine takes) and adds each number to `produced` under the lock; a consumer
 * coroutine takes them and adds each to `consumed` under the same lock. The producer
 * starts only when a second coroutine, the ticker, says so, and the ticker can only run
 * while the consumer is suspended in its first get: so it is shown that the get
 * suspended the coroutine, not the thread (had it blocked the thread, the program would
 * hang). The end: nothing lost, nothing twice, both sums 5050.
 */
#include <braid.h>
#include <braid/aio.h>

#include "example.h"

#include <stdint.h>
#include <stdio.h>

#define N 100

static br_queue *q;
static br_lock lock;
static br_event go;
static long produced, consumed;
static int taken;

static void producer(void *arg) { /* a plain thread */
    (void)arg;
    must(br_event_wait(&go, BR_FOREVER), "wait for go");
    for (intptr_t i = 1; i <= N; i++) {
        must(br_queue_put(q, (void *)i, BR_FOREVER), "put");
        must(br_lock_acquire(&lock, BR_FOREVER), "acquire");
        produced += i;
        must(br_lock_release(&lock), "release");
    }
    must(br_queue_put(q, NULL, BR_FOREVER), "put end"); /* no more */
}

static int consumer(br_task *t) { /* a coroutine */
    (void)t;
    printf("consumer: waiting for the first item\n");
    for (;;) {
        void *item;
        must(br_queue_get(q, &item, BR_FOREVER), "get");
        if (item == NULL)
            break;
        must(br_lock_acquire(&lock, BR_FOREVER), "acquire");
        consumed += (intptr_t)item;
        taken++;
        must(br_lock_release(&lock), "release");
    }
    printf("consumer: took %d items\n", taken);
    return 0;
}

static int ticker(br_task *t) { /* a coroutine, run while the consumer waits */
    (void)t;
    printf("ticker: the loop runs while the consumer waits\n");
    return br_event_set(&go);
}

static int main_task(br_task *t) {
    (void)t;
    br_future *c, *k;
    must(br_create_task(NULL, consumer, NULL, 0, &c), "create consumer");
    must(br_create_task(NULL, ticker, NULL, 0, &k), "create ticker");
    must(br_future_result(c, BR_FOREVER, NULL, NULL), "consumer");
    must(br_future_result(k, BR_FOREVER, NULL, NULL), "ticker");
    br_future_release(c);
    br_future_release(k);
    return 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    must(br_queue_new(&q, &(br_queue_opts){.maxsize = 4}), "queue");
    must(br_lock_init(&lock), "lock");
    must(br_event_init(&go), "event");
    br_thread *th;
    must(br_thread_start(&th, producer, NULL, NULL), "start producer");
    int code;
    must(br_aio_run(main_task, NULL, 0, &code), "run");
    must(code, "main");
    must(br_thread_join(th, BR_FOREVER), "join");
    must(br_thread_free(th), "free");
    printf("produced %ld, consumed %ld\n", produced, consumed);
    must(br_queue_free(q), "queue_free");
    must(br_lock_destroy(&lock), "lock_destroy");
    must(br_event_destroy(&go), "event_destroy");
    return 0;
}
