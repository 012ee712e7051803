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

static int conformance_make(br_executor **out, int max_workers) {
    return br_processpool_new(
        out, &(br_processpool_opts){.max_workers = max_workers, .start_method = PP_METHOD});
}
/* Tasks run in other processes: the suite's gates (futures in this process) and
 * counters can't reach them. */
#define CONFORMANCE_SHARED_MEMORY 0
#include "conformance_executor.h"

#include "processpool_cases.h"

BR_TEST_MAIN(BR_CONFORMANCE_TESTS, PP_CASES)
