/* N6's process start, through braid's subprocess layer: how many children a second.
 *
 *   bench_subprocess [VARIANT [N]]     no arguments: every variant, N = 1000
 *
 * VARIANT:
 *   run          N x br_run({"/bin/true"}): posix_spawn, pidfd, the watcher's reap, the
 *                future's wake-up (the peer n6_spawn does posix_spawn + waitpid, and
 *                Python's subprocess.run(["/bin/true"]), bench/py_subprocess_run.py).
 *   popen-wait   N x br_popen_start + br_popen_wait + br_popen_free, same child.
 *   run-capture  N x br_run({"/bin/echo", "x"}, capture_output): two pipes and the pump.
 * Each starts after 20 untimed runs; every child must end with returncode 0 (and
 * run-capture's stdout must be "x\n", its stderr empty), else the program exits 1.
 * Figures: us_each (lower is better: the peers' metric) and spawns_per_s.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <braid/subprocess.h>

#include <string.h>

static const char *const true_argv[] = {"/bin/true", NULL};
static const char *const echo_argv[] = {"/bin/echo", "x", NULL};

static void one(const char *variant) {
    br_completed r;
    if (strcmp(variant, "run") == 0) {
        BENCH_CHECK_OK(br_run(true_argv, NULL, &r));
        BENCH_CHECK_EQ(r.returncode, 0);
        br_completed_destroy(&r);
    } else if (strcmp(variant, "popen-wait") == 0) {
        br_popen *p;
        int rc = -1;
        BENCH_CHECK_OK(br_popen_start(&p, true_argv, NULL));
        BENCH_CHECK_OK(br_popen_wait(p, BR_FOREVER, &rc));
        BENCH_CHECK_EQ(rc, 0);
        BENCH_CHECK_OK(br_popen_free(p));
    } else {
        BENCH_CHECK_OK(br_run(echo_argv, &(br_subprocess_opts){.capture_output = true}, &r));
        BENCH_CHECK_EQ(r.returncode, 0);
        BENCH_CHECK(r.out_len == 2 && memcmp(r.out, "x\n", 2) == 0 && r.err_len == 0);
        br_completed_destroy(&r);
    }
}

static void run_variant(const char *variant, long n) {
    for (int i = 0; i < 20; i++)
        one(variant);
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++)
        one(variant);
    double s = bench_secs(t0, bench_now());
    bench_emit("N6", variant, "braid", "us_each", s * 1e6 / (double)n, "us");
    bench_emit("N6", variant, "braid", "spawns_per_s", (double)n / s, "spawns/s");
    bench_note("%s: %ld children in %.3f s, %.1f us each", variant, n, s, s * 1e6 / (double)n);
}

int main(int argc, char **argv) {
    static const char *const all[] = {"run", "popen-wait", "run-capture"};
    long n = bench_arg_count(argc, argv, 2, 1000);
    if (argc > 1) {
        bool known = false;
        for (size_t i = 0; i < 3; i++)
            known |= strcmp(argv[1], all[i]) == 0;
        if (!known) {
            fprintf(stderr, "usage: %s [run|popen-wait|run-capture [N]]\n", argv[0]);
            return 2;
        }
        run_variant(argv[1], n);
        return 0;
    }
    for (size_t i = 0; i < 3; i++)
        run_variant(all[i], n);
    return 0;
}
