/* A cancellable parker for tests: a stand-in for the aio layer's coroutine parker,
 * so that the BR_ECANCELED outcome of every blocking call can be tested before
 * coroutines exist (core/lib.h, "The parker contract").
 *
 * A br_test_ctx is an execution context. br_test_ctx_enter(&c) makes the calling
 * thread run as c: from then on braid's blocking calls on this thread park through c's
 * parker, and c is their owner (a lock taken here belongs to c). Its parks sleep on a
 * futex like a thread's, but br_test_ctx_cancel(&c), from any thread, ends the current
 * cancellable park with BR_ECANCELED (or the next one, if c isn't parked). A request is
 * reported once.
 *
 *   br_test_ctx c = BR_TEST_CTX_INIT;      (in a thread)
 *   br_test_ctx_enter(&c);
 *   int rc = br_queue_get(q, &item, BR_FOREVER);   -> BR_ECANCELED once cancelled
 *   br_test_ctx_leave();
 *
 *   br_test_ctx_wait_parks(&c, 1);          (elsewhere: until c sleeps in a park)
 *   br_test_ctx_cancel(&c);
 *
 * A context must outlive every wake sent to it: a waker on another thread (a pool's
 * worker completing a future) may still be in unpark, touching c, after the woken call
 * has returned. A context on a thread's stack is fine when every waker is joined before
 * that thread returns; otherwise make it static or allocate it for the whole test.
 */
#ifndef BRAID_TESTS_PARKER_H
#define BRAID_TESTS_PARKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct br_test_ctx {
    _Atomic uint32_t seq;     /* the futex word: bumped by every unpark and cancel */
    _Atomic uint32_t cancel;  /* a request is pending */
    _Atomic int parks;        /* parks entered so far */
    _Atomic int asleep;       /* parks asleep right now (0 or 1) */
    _Atomic int cancelled;    /* parks that returned BR_ECANCELED */
    _Atomic int nocancel;     /* parks entered with BR__WAITER_NOCANCEL */
} br_test_ctx;

#define BR_TEST_CTX_INIT {0, 0, 0, 0, 0, 0}

/* Runs the calling thread as c until br_test_ctx_leave. */
void br_test_ctx_enter(br_test_ctx *c);
void br_test_ctx_leave(void);
/* Posts a cancel request to c (any thread). */
void br_test_ctx_cancel(br_test_ctx *c);
/* Waits (with the harness's hang guard) until c has entered at least n parks and is
 * asleep in the last one, so that a cancel or a wake reaches a parked context. */
void br_test_ctx_wait_parks(br_test_ctx *c, int n);
/* True if a posted request hasn't been reported yet. */
bool br_test_ctx_cancel_pending(br_test_ctx *c);

#endif
