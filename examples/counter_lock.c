/* counter_lock.c: the shared counter, each step under a Lock. Always 0.
 *
 * Ports 002_777bae947f90e707.txt, "线程同步 - Lock、RLock", first listing: add() and
 * desc() each run 1,000,000 times `lock.acquire(); total += 1; lock.release()`, and
 * the program prints total. It also shows the listing's comment "死锁情况1": a second
 * lock.acquire() by the thread that holds the lock. Python hangs there forever; braid
 * answers BR_EDEADLK at once (a Lock is owner-checked).
 */
#include <braid.h>

#include "example.h"

#include <stdio.h>
#include <stdlib.h>

#define LOOPS 1000000

static long total = 0;
static br_lock lock = BR_LOCK_INIT;

static void add(void *arg) {
    (void)arg;
    for (int i = 0; i < LOOPS; i++) {
        must(br_lock_acquire(&lock, BR_FOREVER), "acquire"); /* 获取锁 */
        total += 1;
        must(br_lock_release(&lock), "release"); /* 释放锁 */
    }
}

static void desc(void *arg) {
    (void)arg;
    for (int i = 0; i < LOOPS; i++) {
        must(br_lock_acquire(&lock, BR_FOREVER), "acquire");
        total -= 1;
        must(br_lock_release(&lock), "release");
    }
}

int main(void) {
    br_thread *thread1, *thread2;
    must(br_thread_start(&thread1, add, NULL, NULL), "start thread1");
    must(br_thread_start(&thread2, desc, NULL, NULL), "start thread2");
    must(br_thread_join(thread1, BR_FOREVER), "join thread1");
    must(br_thread_join(thread2, BR_FOREVER), "join thread2");
    br_thread_free(thread1);
    br_thread_free(thread2);
    printf("%ld\n", total);

    /* 死锁情况1: acquiring twice. */
    must(br_lock_acquire(&lock, BR_FOREVER), "acquire");
    int rc = br_lock_acquire(&lock, BR_FOREVER);
    printf("second acquire by the owner: %s (Python would hang here)\n", br_err_name(rc));
    must(br_lock_release(&lock), "release");
    return 0;
}
