/* counter_unlocked.c: two threads add and subtract 1,000,000 times, with no lock.
 *
 * Ports 000_b9e24c88e52a00dc.txt, In [1] (add/sub on a global n, "n的值为: 65763") and
 * 002_777bae947f90e707.txt, "python 中的 GIL", first listing (the same with `total`).
 *
 * A demonstration, not a test: the value printed is whatever the race left, and a run
 * may well print 0. `n = n + 1` is a load, an add and a store; another thread that
 * stores in between is overwritten, and its update is lost.
 *
 * Porting note. In C, a plain `n = n + 1` on a shared variable from two threads is a
 * data race, which C11 makes undefined behaviour: the compiler may keep n in a register
 * for the whole loop, and ThreadSanitizer rightly fails the run. The port keeps the
 * tutorial's point (a separate load and store that the other thread can slip between)
 * with relaxed atomic loads and stores: defined behaviour, clean under TSan, and the
 * updates are still lost. A C loop of a million steps is over in about a millisecond,
 * less than it takes to start or wake a thread, so the two threads first meet at a
 * spinning start line (each counts itself in and spins until both are there); else
 * the first is often done before the second begins, and nothing is lost.
 */
#include <braid.h>

#include "example.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define LOOPS 1000000

static _Atomic long n = 0;
static atomic_int ready = 0;

/* The start line: returns once both threads are running. */
static void start_together(void) {
    atomic_fetch_add(&ready, 1);
    while (atomic_load(&ready) < 2)
        ;
}

/* n = n + 1, as two steps: the load and the store are atomic, the pair is not. */
static void add(void *arg) {
    (void)arg;
    start_together();
    for (int i = 0; i < LOOPS; i++)
        atomic_store_explicit(&n, atomic_load_explicit(&n, memory_order_relaxed) + 1,
                              memory_order_relaxed);
}

static void sub(void *arg) {
    (void)arg;
    start_together();
    for (int i = 0; i < LOOPS; i++)
        atomic_store_explicit(&n, atomic_load_explicit(&n, memory_order_relaxed) - 1,
                              memory_order_relaxed);
}

int main(void) {
    br_thread *t1, *t2;
    must(br_thread_start(&t1, add, NULL, NULL), "start t1");
    must(br_thread_start(&t2, sub, NULL, NULL), "start t2");

    must(br_thread_join(t1, BR_FOREVER), "join t1");
    must(br_thread_join(t2, BR_FOREVER), "join t2");
    br_thread_free(t1);
    br_thread_free(t2);

    long v = atomic_load(&n);
    printf("n的值为: %ld\n", v);
    printf("(%s)\n", v == 0 ? "this run lost no update, or lost as many of each"
                            : "updates were lost: see counter_lock for the fix");
    return 0;
}
