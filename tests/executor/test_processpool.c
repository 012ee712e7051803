/* The process pool (braid/processpool.h): the executor conformance suite, and what
 * only a process pool has: worker death (SIGKILL, segfault, abort) fails only the task
 * that was running, with BR_EWORKERDIED, and the pool goes on; big arguments and
 * results byte-exact; pointer results refused; futures mixed with the thread pool's;
 * cancel, deadlines, shutdown and terminate; the initializer; max_tasks_per_child; the
 * Pool face (apply_async callbacks, imap order, imap_unordered completion order). Every
 * test checks that nothing is left behind: no child, no descriptor, no memfd mapping.
 *
 * The cases are in processpool_cases.h (shared with test_processpool_spawn.c).
 *
 * braid-test-timeout: 180
 */
#define PP_METHOD BR_START_FORK

#include "harness.h"

#include <braid/processpool.h>

#include <stdatomic.h>

/* --- the conformance suite ------------------------------------------------------------- */

/* prefetch 1: a task queued behind a running one stays queued in this process, where
 * br_future_cancel and shutdown(cancel_futures) cancel it as the suite requires (with a
 * deeper prefetch a task handed to a worker ahead of time counts as running:
 * braid/processpool.h). pp_conformance_prefetch lets the cases of processpool_cases.h
 * run the suite's stresses at the default prefetch too. */
static int pp_conformance_prefetch = 1;

static int pp_wait_forked(br_executor *ex, int want); /* processpool_cases.h */

/* Returns once every worker has forked, before the tests start threads of their own
 * (pp_wait_forked says why). */
static int conformance_make(br_executor **out, int max_workers) {
    int rc = br_processpool_new(out, &(br_processpool_opts){.max_workers = max_workers,
                                                            .start_method = PP_METHOD,
                                                            .prefetch = pp_conformance_prefetch});
    if (rc == 0)
        rc = pp_wait_forked(*out, max_workers);
    return rc;
}
/* Tasks run in other processes: the suite reaches them through its channel (shared
 * memory that a forked worker inherits and a spawned one maps from this process). */
#define CONFORMANCE_SHARED_MEMORY 0
#include "conformance_executor.h"

#include "processpool_cases.h"

/* Under fork, br_processpool_new returns with its workers forked (listed), not still
 * being forked by the manager while the caller goes on allocating: the sanitizers'
 * allocators take no locks around fork(), and a child forked while another thread holds
 * one is stuck in its first malloc. */
static void fork_workers_forked_when_new_returns(void **state) {
    (void)state;
    for (int n = 1; n <= 3; n++) {
        br_executor *ex;
        BR_CHECK_OK(br_processpool_new(&ex, &(br_processpool_opts){.max_workers = n,
                                                                   .start_method = BR_START_FORK}));
        BR_CHECK_EQ(br_processpool_pids(ex, NULL, 0), n);
        br_future *f;
        BR_CHECK_OK(br_submit_i64(ex, square_task, 7, &f));
        int64_t v = 0;
        BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &v));
        BR_CHECK_EQ(v, 49);
        br_future_release(f);
        BR_CHECK_OK(br_executor_free(ex));
    }
    br_test_wait_no_children();
}

BR_TEST_MAIN(BR_CONFORMANCE_TESTS, PP_CASES,
             cmocka_unit_test(fork_workers_forked_when_new_returns))
