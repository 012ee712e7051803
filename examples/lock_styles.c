/* lock_styles.c: the two ways to hold a Lock: acquire/try/finally/release, and `with`.
 *
 * Ports 001_0d5cedca80a60342.txt, "Lock的使用方式": 1. try-finally 模式
 * (lock.acquire(); try: ... finally: lock.release()) and 2. with 模式 (with lock: ...).
 *
 * Porting notes: C has neither try/finally nor with.
 *  1. The try-finally shape is acquire, then every way out of the block goes through
 *     one release (a `goto out` where Python would raise).
 *  2. BR_WITH(&lock) { ... } is `with lock:`: the block runs with the lock held and
 *     the lock is released however the block is left (end, break, return).
 * Two threads add to one counter, one in each style, and main checks that the lock is
 * free again after a BR_WITH block left by `return`.
 */
#include <braid.h>

#include "example.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define LOOPS 100000

static br_lock lock = BR_LOCK_INIT;
static long counter = 0;

/* 1. try-finally: one exit path that releases. */
static int add_one_try_finally(void) {
    int rc = br_lock_acquire(&lock, BR_FOREVER);
    if (rc != 0)
        return rc;
    /* try: do something */
    if (counter < 0) {
        rc = BR_ERANGE; /* "raise": leave through the finally */
        goto out;
    }
    counter += 1;
out: /* finally: */
    br_lock_release(&lock);
    return rc;
}

static void try_finally_style(void *arg) {
    (void)arg;
    for (int i = 0; i < LOOPS; i++)
        must(add_one_try_finally(), "add");
}

static void with_style(void *arg) {
    (void)arg;
    for (int i = 0; i < LOOPS; i++) {
        BR_WITH(&lock) { /* with lock: */
            counter += 1;
        }
    }
}

/* Leaves the with block by return: the lock is released on the way out. */
static bool counter_is_positive(void) {
    BR_WITH(&lock) {
        return counter > 0;
    }
    return false; /* not reached unless acquiring failed (misuse) */
}

int main(void) {
    br_thread *t1, *t2;
    must(br_thread_start(&t1, try_finally_style, NULL, NULL), "start");
    must(br_thread_start(&t2, with_style, NULL, NULL), "start");
    must(br_thread_join(t1, BR_FOREVER), "join");
    must(br_thread_join(t2, BR_FOREVER), "join");
    br_thread_free(t1);
    br_thread_free(t2);
    printf("counter = %ld\n", counter);
    printf("positive: %s\n", counter_is_positive() ? "yes" : "no");
    printf("lock held after return from a with block: %s\n",
           br_lock_locked(&lock) ? "yes" : "no");
    return 0;
}
