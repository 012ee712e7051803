/* counter_rlock.c: the shared counter under an RLock, taken twice by the same thread.
 *
 * Ports 002_777bae947f90e707.txt, "线程同步 - Lock、RLock", second listing: add() does
 * lock.acquire() twice and lock.release() twice around `total += 1`, desc() once. An
 * RLock lets its owner acquire again; each acquire needs its own release. Prints 0.
 */
#include <braid.h>

#include "example.h"

#include <stdio.h>
#include <stdlib.h>

#define LOOPS 1000000

static long total = 0;
static br_rlock lock = BR_RLOCK_INIT;
static unsigned deepest = 0; /* the recursion depth add() saw, written under the lock */

static void add(void *arg) {
    (void)arg;
    for (int i = 0; i < LOOPS; i++) {
        must(br_rlock_acquire(&lock, BR_FOREVER), "acquire");
        must(br_rlock_acquire(&lock, BR_FOREVER), "acquire again");
        total += 1;
        if (br_rlock_count(&lock) > deepest)
            deepest = br_rlock_count(&lock);
        must(br_rlock_release(&lock), "release");
        must(br_rlock_release(&lock), "release again");
    }
}

static void desc(void *arg) {
    (void)arg;
    for (int i = 0; i < LOOPS; i++) {
        must(br_rlock_acquire(&lock, BR_FOREVER), "acquire");
        total -= 1;
        must(br_rlock_release(&lock), "release");
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
    printf("deepest nesting seen: %u\n", deepest);
    /* One release too many is an error, not a crash. */
    printf("release without holding it: %s\n", br_err_name(br_rlock_release(&lock)));
    return 0;
}
