/* counter_work.c: two threads both add to one counter, without and with a Lock.
 *
 * Ports 003_1126844284e665b9.txt, "多线程" 3. 缺点, 案例 "多个线程同时对全局变量进行减操作":
 * n = 200000000, two threads run work() (n += 1, ten million times), once as written
 * ("未上锁可能出现n与预期值不符合的情况") and once with the commented-out lock put back.
 * Scaled: 1,000,000 steps per thread instead of 10,000,000 (C is fast; the locked run
 * must stay quick under the sanitizers), so the locked total is exactly 202000000.
 *
 * The unlocked run is a demonstration (printed, not checked); its increments are
 * relaxed atomic loads and stores, not a C data race: see counter_unlocked.c.
 */
#include <braid.h>

#include "example.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define START 200000000L
#define LOOPS 1000000

static _Atomic long n_unlocked = START;
static long n = START;
static br_lock lock = BR_LOCK_INIT;
static atomic_int ready = 0;

/* Both threads spin at a start line until both run (see counter_unlocked.c). */
static void start_together(void) {
    atomic_fetch_add(&ready, 1);
    while (atomic_load(&ready) < 2)
        ;
}

static void work_unlocked(void *arg) {
    (void)arg;
    start_together();
    for (int i = 0; i < LOOPS; i++) /* n += 1, a load and a store */
        atomic_store_explicit(&n_unlocked,
                              atomic_load_explicit(&n_unlocked, memory_order_relaxed) + 1,
                              memory_order_relaxed);
}

static void work_locked(void *arg) {
    (void)arg;
    start_together();
    for (int i = 0; i < LOOPS; i++) {
        BR_WITH(&lock) { /* with lock: */
            n += 1;
        }
    }
}

static void run_two(br_thread_fn fn) {
    br_thread *t1, *t2;
    atomic_store(&ready, 0);
    must(br_thread_start(&t1, fn, NULL, NULL), "start t1");
    must(br_thread_start(&t2, fn, NULL, NULL), "start t2");
    must(br_thread_join(t1, BR_FOREVER), "join t1");
    must(br_thread_join(t2, BR_FOREVER), "join t2");
    br_thread_free(t1);
    br_thread_free(t2);
}

int main(void) {
    run_two(work_unlocked);
    printf("without lock: %ld (expected %ld)\n", atomic_load(&n_unlocked),
           START + 2L * LOOPS);
    run_two(work_locked);
    printf("with lock: %ld (expected %ld)\n", n, START + 2L * LOOPS);
    return 0;
}
