/* Shared dict (braid/mp_shared.h) beside Python's Manager().dict(): set + get ops/s.
 *
 *   bench_mp_shared [VARIANT [N]]      no arguments: every variant
 *
 * VARIANT (bench/peer_manager_dict.py has the same names, so the figures pair up):
 *   dict-1p   one process: N rounds of d[key] = value; d[key] over K = 1000 keys
 *             ("key-<i % K>", an 8-byte int value that changes every round), every
 *             get checked. N = 1,000,000 rounds (2 M ops); one untimed pass first.
 *   dict-2p   two forked processes at once on one dict, each N/2 rounds over its own
 *             K keys (all 2 K keys share the table and the lock), from a common start
 *             (a pipe closed by the parent) to the last one's exit; every get
 *             checked in the child, whose exit status says so.
 * Metric: ops_per_s, one op = one set or one get (a round is 2 ops).
 *
 * Side by side (the Python peer needs no build):
 *   ../shared/tools/side-by-side -n 5 --higher \
 *     braid 'build/bench/bench_mp_shared dict-1p' dict-1p/ops_per_s \
 *     python '/usr/bin/python3 bench/peer_manager_dict.py dict-1p' dict-1p/ops_per_s
 */
#include "bench.h"

#include <braid/mp_shared.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEYS 1000
#define DEFAULT_N 1000000L

/* N rounds over the keys "key-<base + i % KEYS>". 0 or a failed check's number. */
static int rounds(br_mp_dict *d, long n, int base) {
    char keys[KEYS][24];
    size_t klen[KEYS];
    for (int i = 0; i < KEYS; i++)
        klen[i] = (size_t)snprintf(keys[i], sizeof keys[i], "key-%d", base + i);
    for (long r = 0; r < n; r++) {
        int i = (int)(r % KEYS);
        int64_t v = r, got = -1;
        size_t len;
        if (br_mp_dict_set(d, keys[i], klen[i], &v, sizeof v) != 0)
            return 1;
        if (br_mp_dict_get_into(d, keys[i], klen[i], &got, sizeof got, &len) != 0)
            return 2;
        if (len != sizeof got || got != v)
            return 3;
    }
    return 0;
}

static void one_process(long n) {
    br_mp_dict *d;
    BENCH_CHECK_OK(br_mp_dict_new(&d, NULL));
    BENCH_CHECK_EQ(rounds(d, n / 10 + 1, 0), 0); /* warm-up: the table and blocks exist */
    int64_t t0 = bench_now();
    BENCH_CHECK_EQ(rounds(d, n, 0), 0);
    double s = bench_secs(t0, bench_now());
    size_t len;
    BENCH_CHECK_OK(br_mp_dict_len(d, &len));
    BENCH_CHECK_EQ(len, KEYS);
    br_mp_dict_free(d);
    bench_note("dict-1p: %ld rounds in %.3f s, %.0f ns per op", n, s, s * 1e9 / (2.0 * n));
    bench_emit("MPDICT", "dict-1p", "braid", "ops_per_s", 2.0 * n / s, "ops/s");
}

static void two_processes(long n) {
    br_mp_dict *d;
    BENCH_CHECK_OK(br_mp_dict_new(&d, NULL));
    BENCH_CHECK_EQ(rounds(d, KEYS, 0), 0); /* warm-up: both key sets exist */
    BENCH_CHECK_EQ(rounds(d, KEYS, KEYS), 0);
    int gate[2];
    BENCH_CHECK(pipe(gate) == 0);
    pid_t pids[2];
    for (int c = 0; c < 2; c++) {
        pids[c] = fork();
        BENCH_CHECK(pids[c] >= 0);
        if (pids[c] == 0) {
            close(gate[1]);
            char x;
            if (read(gate[0], &x, 1) != 0)
                _exit(10);
            _exit(rounds(d, n / 2, c * KEYS));
        }
    }
    close(gate[0]);
    int64_t t0 = bench_now();
    close(gate[1]); /* both start */
    for (int c = 0; c < 2; c++) {
        int st;
        BENCH_CHECK(waitpid(pids[c], &st, 0) == pids[c]);
        BENCH_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    double s = bench_secs(t0, bench_now());
    size_t len;
    BENCH_CHECK_OK(br_mp_dict_len(d, &len));
    BENCH_CHECK_EQ(len, 2 * KEYS);
    br_mp_dict_free(d);
    bench_note("dict-2p: 2 x %ld rounds in %.3f s, %.0f ns per op (both processes)", n / 2,
               s, s * 1e9 / (2.0 * n));
    bench_emit("MPDICT", "dict-2p", "braid", "ops_per_s", 2.0 * n / s, "ops/s");
}

int main(int argc, char **argv) {
    const char *v = argc > 1 ? argv[1] : "all";
    long n = bench_arg_count(argc, argv, 2, DEFAULT_N);
    bool all = strcmp(v, "all") == 0;
    if (all || strcmp(v, "dict-1p") == 0)
        one_process(n);
    if (all || strcmp(v, "dict-2p") == 0)
        two_processes(n);
    if (!all && strcmp(v, "dict-1p") != 0 && strcmp(v, "dict-2p") != 0) {
        fprintf(stderr, "usage: bench_mp_shared [dict-1p|dict-2p|all] [N]\n");
        return 2;
    }
    return 0;
}
