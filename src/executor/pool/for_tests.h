/* executor/pool/for_tests.h: the thread pool's counters and knobs that the tests may
 * look at and turn. Never installed. */
#ifndef BRAID_EXECUTOR_POOL_FOR_TESTS_H
#define BRAID_EXECUTOR_POOL_FOR_TESTS_H

#include "executor/private.h"

#include <stdbool.h>

/* A snapshot of a thread pool's scheduler counters (each read atomically, not all at
 * one instant). */
struct br__threadpool_stats {
    int threads;     /* workers started so far */
    int spinning;    /* searching for work */
    int sleeping;    /* parked */
    int64_t pending; /* queued and not yet dequeued (only counted with max_pending) */
    int bp_waiters;  /* submitters parked waiting for room (max_pending) */
    int bp_inside;   /* submitters past the fast path of a bounded submit (bounded.c) */
    bool closed;     /* the injection stack is closed: shutdown has begun */
};

/* ex must be a live thread pool. */
void br__threadpool_stats(br_executor *ex, struct br__threadpool_stats *st);

/* Tests: pools made while this is true use the CAS protocol for cancel requests on
 * running tasks even where membarrier works (cancel.c's design notes). */
extern bool br__pool_no_membarrier;

/* How long an idle worker searches before it parks, in ns, at most (default 50 us;
 * each worker adapts its own budget below this, sched.c). */
extern int64_t br__pool_spin_ns;

/* Tests: called by a submitter waiting for room (max_pending) each time it comes back
 * from its park, before it looks at the pool again; NULL (the default) for none. */
extern void (*br__pool_bp_woken_hook)(void);
/* Tests set the two hooks below while workers run: store them with
 * atomic_store_explicit(..., memory_order_release) (workers load them with acquire). */
/* Tests: called by a worker between its claim of a run of tasks from the fifo and
 * the fill of its run (sched.c, "Runs"), where it holds tasks no queue shows; NULL
 * (the default) for none. */
extern void (*_Atomic br__pool_claim_hook)(void);
/* Tests: called by a worker that found the fifo empty and the injection stack not,
 * before it tries to become the mover (BR__POOL_MOVE_LOOKED), and by the mover once it
 * has taken the stack, before it publishes a task of it (BR__POOL_MOVE_TAKEN: the
 * tasks are in no queue then); NULL (the default) for none. */
enum { BR__POOL_MOVE_LOOKED, BR__POOL_MOVE_TAKEN };
extern void (*_Atomic br__pool_move_hook)(int where);
/* Tests: called by a worker that found no work and is about to park (sched.c, park):
 * before it links itself on the idle queue (BR__POOL_PARK_LINKING), and after it has
 * linked itself and counted itself in nsleeping, before its last look at the queues
 * (BR__POOL_PARK_LINKED); NULL (the default) for none. Stored as the hooks above. */
enum { BR__POOL_PARK_LINKING, BR__POOL_PARK_LINKED };
extern void (*_Atomic br__pool_park_hook)(int where);
/* Tests: how many times shutdown(wait) has parked waiting for submitters to leave the
 * pool (every pool, since the process started). */
extern _Atomic long br__pool_drain_parks;

#endif
