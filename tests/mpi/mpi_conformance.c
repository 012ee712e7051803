/* The MPI executor (braid/mpi.h): the executor conformance suite over the worker ranks.
 * Each test runs as `braid-mpirun -n 3 mpi_conformance <name>` (tests/mpi/tests.cmake):
 * rank 0 runs the test, ranks 1 and 2 serve its tasks. Not named test_*.c: the generic
 * registration would run it without mpirun.
 *
 * The suite's channel (shared memory every task reaches) is found by a worker through
 * /proc/<pid>/fd of the test process; a spawned process pool worker uses its parent's
 * pid, an MPI rank uses rank 0's (br_mpi_root_pid): the ranks share this host.
 *
 * slots: the suite asks for up to 4 workers, which are 2 threads on each of the 2
 * worker ranks; prefetch 1, so that a task queued behind running ones stays queued on
 * rank 0, where br_future_cancel and shutdown(cancel_futures) reach it as the suite
 * requires. plain_messages: the suite compares failure messages byte for byte.
 *
 * braid-test-timeout: 180
 */
#include "harness.h"

#include <unistd.h>

#include <braid/mpi.h>

static int mpi_root_pid(void) { return br_mpi_root_pid(); }
#define getppid() mpi_root_pid()

static int conformance_make(br_executor **out, int max_workers) {
    return br_mpi_executor_new(out, &(br_mpi_executor_opts){.max_workers = max_workers,
                                                            .prefetch = 1,
                                                            .plain_messages = true});
}
#define CONFORMANCE_SHARED_MEMORY 0
#include "executor/conformance_executor.h"

int main(int argc, char **argv) {
    int rc = br_mpi_main(&argc, &argv); /* the worker ranks stay there */
    if (rc != 0) {
        fprintf(stderr, "br_mpi_main: %s\n", br_err_name(rc));
        return 2;
    }
    const struct CMUnitTest tests[] = {BR_CONFORMANCE_TESTS};
    return br_test_main(tests, sizeof tests / sizeof tests[0], __FILE__, argc, argv);
}
