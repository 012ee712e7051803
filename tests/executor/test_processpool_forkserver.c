/* The process pool under the forkserver start method: workers are forked by the
 * forkserver (a spawned copy of this test binary, diverted in br_process_main: the
 * harness's main calls it), and task functions cross as references (module + offset),
 * as under spawn. The same cases as the fork file,
 * test_processpool.c: the process pool (braid/processpool.h): the executor conformance suite, and what
 * only a process pool has: worker death (SIGKILL, segfault, abort) fails only the task
 * that was running, with BR_EWORKERDIED, and the pool goes on; big arguments and
 * results byte-exact; pointer results refused; futures mixed with the thread pool's;
 * cancel, deadlines, shutdown and terminate; the initializer; max_tasks_per_child; the
 * Pool face (apply_async callbacks, imap order, imap_unordered completion order). Every
 * test checks that nothing is left behind: no child, no descriptor, no memfd mapping.
 *
 * The cases are in processpool_cases.h (shared with test_processpool_spawn.c and this file).
 *
 * braid-test-timeout: 180
 */
#define PP_METHOD BR_START_FORKSERVER

#include "harness.h"

#include <stdio.h>
#include <stdlib.h>

/* A worker's parent is the forkserver, not this test: the test's pid reaches it in the
 * environment (the server's, so this process's when the server started), set before
 * main in the test process only (a spawned copy finds it set). */
#define CF_TEST_PID_ENV "BRAID_TEST_CONFORMANCE_PID"
__attribute__((constructor)) static void note_test_pid(void) {
    if (getenv(CF_TEST_PID_ENV) == NULL) {
        char v[24];
        snprintf(v, sizeof v, "%d", (int)getpid());
        setenv(CF_TEST_PID_ENV, v, 1);
    }
}
static int cf_test_pid(void) {
    const char *v = getenv(CF_TEST_PID_ENV);
    return v ? atoi(v) : (int)getppid();
}
#define CF_TEST_PID() cf_test_pid()

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

BR_TEST_MAIN(BR_CONFORMANCE_TESTS, PP_CASES)
