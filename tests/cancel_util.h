/* Scaffolding for the cancellation tests (tests/<layer>/test_cancel.c), on top of the
 * cancellable parker (parker.h), so that each test says only what it blocks in, what
 * races, and what must hold:
 *
 *  - a call: one blocking call on a thread of its own, run as a test context (or as a
 *    plain thread), started with or without a cancel posted first, and joined under the
 *    hang guard; what it returned, whether a cancel was still pending then, and the parks
 *    its context entered and had cancelled while it ran;
 *  - the outcomes every cancel test checks: cancelled (BR_ECANCELED, the cancel
 *    consumed), cancelled at once (by its only park), the cancel kept (it never parked,
 *    the cancel still pending) or ignored (its waits can't be cancelled), and the two
 *    ends of a wake racing a cancel;
 *  - a canceller: another thread that posts a cancel the moment it is let go, at a
 *    moment that varies with the round, while this thread does the racing wake; and a
 *    cancel storm, which cancels contexts at random while a stress test runs;
 *  - waiting for a queue's waiters to be linked (also the queue conformance suite's).
 *
 *   br_test_ctx ctx = BR_TEST_CTX_INIT;
 *   br_test_call c;
 *   br_test_call_start(&c, &ctx, get_one, q, false);
 *   br_test_call_wait_parked(&c);
 *   br_test_call_cancel(&c);            -> joined; BR_ECANCELED from one cancelled park
 *
 *   BR_TEST_RACE_CANCEL(&ctx, round, BR_CHECK_OK(br_queue_put(q, x, BR_NOWAIT)));
 *   br_test_call_join(&c);
 *   if (br_test_wake_won(&c)) ... else ...
 *
 * The checks fail the test at the line that names them. A context must outlive every
 * wake sent to it (parker.h). Times here are hang guards, or spins that vary a race; no
 * check depends on them.
 */
#ifndef BRAID_TESTS_CANCEL_UTIL_H
#define BRAID_TESTS_CANCEL_UTIL_H

#include "harness.h"
#include "parker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* --- a call on a thread of its own ----------------------------------------------- */

typedef struct br_test_call {
    br_test_ctx *ctx; /* the context it runs as; NULL: a plain thread, never cancelled */
    int (*fn)(void *arg);
    void *arg;
    int parks0, cancelled0, nocancel0; /* the context's counts when the call started */
    /* Written by the call's thread, read once it has returned. */
    int rc;       /* what fn returned */
    bool pending; /* a cancel was pending on ctx when fn returned */
    atomic_int finished;
    pthread_t th;
} br_test_call;

/* Runs fn(arg) on a new thread as ctx (plain if ctx is NULL); with cancel_first, a
 * cancel is posted to ctx before the thread starts. c is overwritten. */
void br_test_call_start(br_test_call *c, br_test_ctx *ctx, int (*fn)(void *), void *arg,
                        bool cancel_first);
/* True once fn has returned. */
bool br_test_call_returned(br_test_call *c);
/* Waits for fn to return (failing the test at the hang guard) and joins the thread. */
#define br_test_call_join(c) br_test_call_join_(__FILE__, __LINE__, (c))
/* Waits (hang guard) until the call sleeps in a park of its own: its context has
 * entered one more park than when the call started, and is asleep. */
void br_test_call_wait_parked(br_test_call *c);
/* The same for an uncancellable park (BR__WAITER_NOCANCEL) of its own. */
void br_test_call_wait_nocancel_park(br_test_call *c);
/* The parks the call's context entered, and returned BR_ECANCELED from, since the call
 * started. */
int br_test_call_parks(br_test_call *c);
int br_test_call_cancelled(br_test_call *c);

/* --- how a call ended ------------------------------------------------------------ */

/* BR_ECANCELED, and the cancel consumed: not pending when it returned, nor now. */
#define br_test_check_cancelled(c) br_test_check_cancelled_(__FILE__, __LINE__, (c))
/* Cancelled as above, by exactly one of its parks. */
#define br_test_check_cancelled_once(c)                                                    \
    br_test_check_cancelled_once_(__FILE__, __LINE__, (c))
/* Cancelled at once: its only park, which found the cancel posted before the call. */
#define br_test_check_cancelled_at_once(c)                                                 \
    br_test_check_cancelled_at_once_(__FILE__, __LINE__, (c))
/* The cancel kept: the call never parked, so it never looked at the cancel posted
 * before it, which is still pending. (What the call returned is the test's to check.) */
#define br_test_check_cancel_kept(c) br_test_check_cancel_kept_(__FILE__, __LINE__, (c))
/* The cancel ignored: the call returned 0 through uncancellable parks only (at least
 * one, none cancelled), and the cancel is still pending. */
#define br_test_check_cancel_ignored(c)                                                    \
    br_test_check_cancel_ignored_(__FILE__, __LINE__, (c))
/* Cancels a call that sleeps in a park, joins it, and checks that it was cancelled
 * by that one park (br_test_check_cancelled_once). */
#define br_test_call_cancel(c) br_test_call_cancel_(__FILE__, __LINE__, (c))
/* After a wake and a cancel raced for a parked call (the call joined, the canceller
 * done): true if the wake won (the call returned 0 and the cancel is pending now: never
 * seen, or posted again), false if the cancel won (br_test_check_cancelled holds);
 * anything else fails the test. */
#define br_test_wake_won(c) br_test_wake_won_(__FILE__, __LINE__, (c))

/* --- a canceller: a cancel from another thread, racing this thread's wake ---------- */

typedef struct br_test_canceller {
    pthread_t th;
    br_test_ctx *ctx;
    int cancelled0; /* ctx's cancelled parks when it started */
    _Atomic bool go;
} br_test_canceller;

/* Starts a thread that posts a cancel to ctx the moment it is let go. */
void br_test_canceller_start(br_test_canceller *k, br_test_ctx *ctx);
/* Lets the canceller go and returns when the caller should do the racing wake, at a
 * moment that varies with the round: at once; after a short spin (up to ~50 us); right
 * after the cancelled park has returned (the waiter is on its way out, where a wake
 * that pops it first still wins: core rule 2); or a little after that. */
void br_test_canceller_go(br_test_canceller *k, long round);
/* Joins the canceller (its cancel is posted). */
void br_test_canceller_join(br_test_canceller *k);

/* Runs the statement `wake` on this thread while a canceller posts a cancel to ctx, at
 * the moment br_test_canceller_go picks for `round`; returns with the cancel posted. */
#define BR_TEST_RACE_CANCEL(ctx, round, ...)                                               \
    do {                                                                                   \
        br_test_canceller br_race_k_;                                                      \
        br_test_canceller_start(&br_race_k_, (ctx));                                       \
        br_test_canceller_go(&br_race_k_, (round));                                        \
        __VA_ARGS__;                                                                       \
        br_test_canceller_join(&br_race_k_);                                               \
    } while (0)

/* --- a cancel storm: cancels at random, for as long as it runs ---------------------- */

typedef struct br_test_cancel_storm {
    pthread_t th;
    br_test_ctx *ctxs;
    size_t n;
    unsigned seed;
    _Atomic bool stop;
} br_test_cancel_storm;

/* Starts a thread that posts cancels to ctxs[0..n), picked by a pseudo-random sequence
 * from seed, each followed by a yield or a short sleep, until stopped. */
void br_test_cancel_storm_start(br_test_cancel_storm *s, br_test_ctx *ctxs, size_t n,
                                unsigned seed);
/* Stops the storm and joins its thread. */
void br_test_cancel_storm_stop(br_test_cancel_storm *s);

/* --- queues ---------------------------------------------------------------------- */

/* Waits (hang guard) until exactly these many getters, putters and joiners are linked
 * on q: the calls blocked in it are then really parked on the queue. */
#define br_test_wait_queue_waiters(q, getters, putters, joiners)                           \
    br_test_wait_queue_waiters_(__FILE__, __LINE__, (q), (getters), (putters), (joiners))

/* --- behind the macros ----------------------------------------------------------- */

void br_test_call_join_(const char *file, int line, br_test_call *c);
void br_test_check_cancelled_(const char *file, int line, br_test_call *c);
void br_test_check_cancelled_once_(const char *file, int line, br_test_call *c);
void br_test_check_cancelled_at_once_(const char *file, int line, br_test_call *c);
void br_test_check_cancel_kept_(const char *file, int line, br_test_call *c);
void br_test_check_cancel_ignored_(const char *file, int line, br_test_call *c);
void br_test_call_cancel_(const char *file, int line, br_test_call *c);
bool br_test_wake_won_(const char *file, int line, br_test_call *c);
void br_test_wait_queue_waiters_(const char *file, int line, br_queue *q, size_t getters,
                                 size_t putters, size_t joiners);

#endif
