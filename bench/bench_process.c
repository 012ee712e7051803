/* bench_process: a process's start cost (N6's shape): start + join of a no-op task,
 * per start method, beside N6's fork+waitpid and posix_spawn("/bin/true")+waitpid.
 *
 *   bench_process [fork|spawn|forkserver] [N]   default: fork, 1000 starts after 20
 *                                               warm-up
 *
 * Prints {"workload": "N6", "variant": "<method>", "metric": "us_each"} and
 * "starts_per_s". Each start is br_process_start + br_process_join + exitcode check +
 * br_process_free: what a program pays per Process, the watcher's reap included. spawn
 * re-executes this binary (br_process_main below diverts the child); forkserver asks
 * the server (started during the warm-up, as Python's is at its first start) to fork
 * the child, and its exit status comes back through the server. */
#include "bench.h"

#include <braid/process.h>

static int noop(br_task *t) {
    (void)t;
    return 0;
}

static void one(br_process_opts *o) {
    br_process *p;
    BENCH_CHECK_OK(br_process_start(&p, noop, NULL, 0, o));
    BENCH_CHECK_OK(br_process_join(p, BR_FOREVER));
    int code = -1;
    BENCH_CHECK_OK(br_process_exitcode(p, &code));
    BENCH_CHECK_EQ(code, 0);
    BENCH_CHECK_OK(br_process_free(p));
}

int main(int argc, char **argv) {
    br_process_main(argc, argv);
    const char *method = argc > 1 ? argv[1] : "fork";
    long n = argc > 2 ? atol(argv[2]) : 1000;
    br_process_opts o = {0};
    if (strcmp(method, "fork") == 0)
        o.start_method = BR_START_FORK;
    else if (strcmp(method, "spawn") == 0)
        o.start_method = BR_START_SPAWN;
    else if (strcmp(method, "forkserver") == 0)
        o.start_method = BR_START_FORKSERVER;
    else {
        fprintf(stderr, "usage: bench_process [fork|spawn|forkserver] [N]\n");
        return 2;
    }
    if (n <= 0)
        n = 1000;
    for (int i = 0; i < 20; i++)
        one(&o);
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++)
        one(&o);
    double s = bench_secs(t0, bench_now());
    bench_emit("N6", method, "braid", "us_each", s * 1e6 / (double)n, "us");
    bench_emit("N6", method, "braid", "starts_per_s", (double)n / s, "starts/s");
    bench_note("%s: %ld starts in %.3f s, %.1f us each", method, n, s, s * 1e6 / (double)n);
    return 0;
}
