/* The MPI executor (braid/mpi.h): what only it has. Each test runs as
 * `braid-mpirun -n 3 mpi_cases <name>` (tests/mpi/tests.cmake): rank 0 runs the test,
 * ranks 1 and 2 serve.
 *
 *   map_100k         br_map of 100,000 tiny tasks in chunks: every result at its index,
 *                    the count and the sum exact; with the default chunksize (0), with
 *                    1000 and 4096, and with single-task messages (chunksize 1) over
 *                    fewer inputs
 *   map_default_chunks
 *                    chunksize 0 is Pool.map's ceil(n / (4 x workers)): each such run
 *                    of inputs ran on one rank (a chunk is one message to one rank)
 *   failure_rank     a task's failure comes back with its code and "rank R: message",
 *                    R a worker rank; the task ran in another process
 *   mixed_wait       br_wait and br_as_completed over MPI and thread-pool futures
 *   bad_function     a function no other rank can find (a heap address): BR_EINVAL at
 *                    submit, nothing sent
 *   one_at_a_time    a second live MPI executor is BR_EBUSY; one after another works
 *   big_args         a 1 MiB argument and result cross byte-exact
 *   big_payloads     arguments and results of several MiB (each its own message, sent
 *                    from the task's copy and received into the future: mpi.c's design
 *                    notes), many in flight on both ranks at once and mixed with small
 *                    ones and with a big argument whose task fails: every result
 *                    byte-exact at its future, every failure its own
 *   spawn_ignored    opts.spawn with worker ranks already there (SPMD) starts nothing:
 *                    the job keeps its 3 ranks and the executor runs on them; spawn
 *                    out of range is BR_EINVAL
 *   initializer      runs once on each worker rank, with its argument, before the
 *                    rank's first task, and again for the next executor; one that
 *                    can't cross, or a NULL argument with a length: BR_EINVAL
 *   initializer_breaks
 *                    an initializer failing on every rank: each future fails with
 *                    BR_EBROKEN and the initializer's message, then submit and
 *                    br_map_new return BR_EBROKEN; shutdown and free end cleanly and
 *                    the ranks serve the next executor. Failing on rank 2 only: results
 *                    before the break are right, every later one is BR_EBROKEN
 *   initializer_late_report
 *                    an executor whose initializer fails on every rank, freed before
 *                    the ranks' reports come, then one with an initializer that works:
 *                    the late reports name the first's session and are dropped, every
 *                    task of the second runs (three rounds)
 *   rank_killed      a worker rank SIGKILLs itself mid-task: Open MPI ends the whole job
 *                    (rank 0 included) before the future resolves. Run by
 *                    expect_abort.cmake, which checks exactly that (docs/mpi.md, "When a
 *                    rank dies"); run directly it would fail.
 *
 * braid-test-timeout: 180
 */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <braid/mpi.h>

static br_executor *make(int max_workers) {
    br_executor *ex = NULL;
    BR_CHECK_OK(br_mpi_executor_new(&ex, &(br_mpi_executor_opts){.max_workers = max_workers}));
    return ex;
}

#include "mpi_util.h"

static void map_100k(void **state) {
    (void)state;
    br_executor *ex = make(0);
    BR_CHECK_EQ(br_executor_max_workers(ex), br_mpi_size() - 1);
    BR_CHECK_EQ(strcmp(br_executor_kind(ex), "mpi"), 0);
    check_map(ex, 100000, 0);
    check_map(ex, 100000, 1000);
    check_map(ex, 100000, 4096);
    check_map(ex, (int32_t)br_test_scaled(5000, 500), 1);
    BR_CHECK_OK(br_executor_free(ex));
}

static int pid_task(br_task *t) { return br_task_return_i64(t, br_getpid()); }

static int rank_task(br_task *t) { return br_task_return_i64(t, br_mpi_rank()); }

static void map_default_chunks(void **state) {
    (void)state;
    br_executor *ex = make(0);
    size_t w = (size_t)br_executor_max_workers(ex);
    for (size_t n = 1; n <= 1001; n += 125) {
        size_t per = 4 * w, cs = (n + per - 1) / per;
        br_map *m;
        BR_CHECK_OK(br_map_new(&m, ex, rank_task, NULL, n, 0, NULL));
        int64_t first = 0, v = 0;
        for (size_t i = 0; i < n; i++) {
            BR_CHECK_OK(br_map_next_i64(m, &v));
            BR_CHECK(v >= 1 && v < br_mpi_size());
            if (i % cs == 0)
                first = v;
            else if (v != first)
                fail_msg("n %zu: input %zu ran on rank %d, its chunk's first on %d", n, i,
                         (int)v, (int)first);
        }
        BR_CHECK_ERR(br_map_next_i64(m, &v), BR_EOF);
        BR_CHECK_OK(br_map_free(m));
    }
    BR_CHECK_OK(br_executor_free(ex));
}

static int failing_task(br_task *t) {
    int32_t x;
    memcpy(&x, br_task_arg(t, NULL), sizeof x);
    return br_task_fail(t, BR_ERANGE, "bad %d", (int)x);
}

static void failure_rank(void **state) {
    (void)state;
    br_executor *ex = make(0);
    br_future *f;
    int32_t x = 7;
    BR_CHECK_OK(br_submit(ex, failing_task, &x, sizeof x, &f));
    int code = 0;
    const char *msg = NULL;
    BR_CHECK_OK(br_future_exception(f, br_test_hang_guard(), &code, &msg));
    BR_CHECK_EQ(code, BR_ERANGE);
    BR_CHECK(msg != NULL);
    int rank = -1;
    char tail[32] = "";
    BR_CHECK_EQ(sscanf(msg, "rank %d: %31[^\n]", &rank, tail), 2);
    BR_CHECK(rank >= 1 && rank < br_mpi_size());
    BR_CHECK_EQ(strcmp(tail, "bad 7"), 0);
    br_future_release(f);

    BR_CHECK_OK(br_submit(ex, pid_task, NULL, 0, &f));
    int64_t pid = 0;
    BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &pid));
    BR_CHECK(pid > 0 && pid != getpid());
    br_future_release(f);
    BR_CHECK_OK(br_executor_free(ex));
}

static int square_task(br_task *t) {
    int64_t x = br_task_arg_i64(t);
    return br_task_return_i64(t, x * x);
}

static void mixed_wait(void **state) {
    (void)state;
    enum { N = 16 };
    br_executor *ex = make(0), *tp = NULL;
    BR_CHECK_OK(br_threadpool_new(&tp, &(br_threadpool_opts){.max_workers = 2}));
    br_future *fs[2 * N];
    for (int i = 0; i < N; i++) {
        BR_CHECK_OK(br_submit_i64(ex, square_task, i, &fs[i]));
        BR_CHECK_OK(br_submit_i64(tp, square_task, 100 + i, &fs[N + i]));
    }
    BR_CHECK_OK(br_wait(fs, 2 * N, BR_ALL_COMPLETED, br_test_hang_guard(), NULL, NULL, NULL));
    for (int i = 0; i < 2 * N; i++) {
        int64_t v;
        BR_CHECK_OK(br_future_result_i64(fs[i], BR_NOWAIT, &v));
        int64_t x = i < N ? i : 100 + (i - N);
        BR_CHECK_EQ(v, x * x);
    }
    for (int i = 0; i < 2 * N; i++)
        br_future_release(fs[i]);

    /* as_completed: every future exactly once */
    for (int i = 0; i < N; i++) {
        BR_CHECK_OK(br_submit_i64(ex, square_task, i, &fs[i]));
        BR_CHECK_OK(br_submit_i64(tp, square_task, i, &fs[N + i]));
    }
    br_as_completed *it;
    BR_CHECK_OK(br_as_completed_new(&it, fs, 2 * N, br_test_hang_guard()));
    int seen[2 * N] = {0};
    for (int k = 0; k < 2 * N; k++) {
        br_future *f;
        size_t ix;
        BR_CHECK_OK(br_as_completed_next_index(it, &f, &ix));
        BR_CHECK(ix < 2 * N);
        seen[ix]++;
    }
    br_future *f;
    BR_CHECK_ERR(br_as_completed_next(it, &f), BR_EOF);
    BR_CHECK_OK(br_as_completed_free(it));
    for (int i = 0; i < 2 * N; i++) {
        BR_CHECK_EQ(seen[i], 1);
        br_future_release(fs[i]);
    }
    BR_CHECK_OK(br_executor_free(tp));
    BR_CHECK_OK(br_executor_free(ex));
}

static void bad_function(void **state) {
    (void)state;
    br_executor *ex = make(0);
    /* bytes on the heap are no function any rank can find */
    void *heap = malloc(64);
    BR_CHECK(heap != NULL);
    br_task_fn fn;
    memcpy(&fn, &heap, sizeof fn);
    br_future *f = NULL;
    BR_CHECK_ERR(br_submit(ex, fn, NULL, 0, &f), BR_EINVAL);
    BR_CHECK(f == NULL);
    free(heap);
    /* the executor goes on */
    BR_CHECK_OK(br_submit_i64(ex, square_task, 9, &f));
    int64_t v;
    BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &v));
    BR_CHECK_EQ(v, 81);
    br_future_release(f);
    BR_CHECK_OK(br_executor_free(ex));
}

static void one_at_a_time(void **state) {
    (void)state;
    for (int round = 0; round < 3; round++) {
        br_executor *ex = make(round + 1), *second = NULL;
        BR_CHECK_EQ(br_executor_max_workers(ex), round + 1);
        BR_CHECK_ERR(br_mpi_executor_new(&second, NULL), BR_EBUSY);
        BR_CHECK(second == NULL);
        br_future *f;
        BR_CHECK_OK(br_submit_i64(ex, square_task, round + 2, &f));
        int64_t v;
        BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &v));
        BR_CHECK_EQ(v, (int64_t)(round + 2) * (round + 2));
        br_future_release(f);
        BR_CHECK_OK(br_executor_free(ex));
    }
    br_executor *ex = NULL;
    BR_CHECK_ERR(br_mpi_executor_new(&ex, &(br_mpi_executor_opts){.prefetch = -1}), BR_EINVAL);
    BR_CHECK_ERR(br_mpi_executor_new(NULL, NULL), BR_EINVAL);
}

/* Returns its argument reversed. */
static int reverse_task(br_task *t) {
    size_t len = 0;
    const unsigned char *a = br_task_arg(t, &len);
    unsigned char *r = malloc(len ? len : 1);
    if (r == NULL)
        return BR_ENOMEM;
    for (size_t i = 0; i < len; i++)
        r[i] = a[len - 1 - i];
    int rc = br_task_return(t, r, len);
    free(r);
    return rc;
}

static void big_args(void **state) {
    (void)state;
    br_executor *ex = make(0);
    size_t len = 1u << 20;
    unsigned char *a = malloc(len);
    BR_CHECK(a != NULL);
    for (size_t i = 0; i < len; i++)
        a[i] = (unsigned char)(i * 131 + (i >> 9));
    br_future *f;
    BR_CHECK_OK(br_submit(ex, reverse_task, a, len, &f));
    const void *data = NULL;
    size_t rlen = 0;
    BR_CHECK_OK(br_future_result(f, br_test_hang_guard(), &data, &rlen));
    BR_CHECK_EQ(rlen, len);
    const unsigned char *r = data;
    for (size_t i = 0; i < len; i++)
        if (r[i] != a[len - 1 - i])
            fail_msg("byte %zu differs", i);
    br_future_release(f);
    free(a);
    BR_CHECK_OK(br_executor_free(ex));
}

/* A payload's byte i, for seed s: no two payloads (nor their reversals) alike. */
static unsigned char pat(size_t i, uint32_t s) {
    return (unsigned char)(i * 131 + (i >> 9) + s * 7 + (i >> 17) * s);
}

/* The argument's first 4 bytes are its seed: the result is the argument reversed, each
 * byte xor'ed with the seed's low byte, and 17 bytes longer (a result's length is its
 * own); a seed over 1000 fails the task, after reading its argument. */
static int transform_task(br_task *t) {
    size_t len = 0;
    const unsigned char *a = br_task_arg(t, &len);
    uint32_t seed;
    memcpy(&seed, a, sizeof seed);
    uint64_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += a[i];
    if (seed > 1000)
        return br_task_fail(t, BR_ERANGE, "seed %u, sum %llu", (unsigned)seed,
                            (unsigned long long)sum);
    size_t rlen = len + 17;
    unsigned char *r = malloc(rlen);
    if (r == NULL)
        return BR_ENOMEM;
    for (size_t i = 0; i < len; i++)
        r[i] = (unsigned char)(a[len - 1 - i] ^ (seed & 0xff));
    memset(r + len, 0x5a, 17);
    int rc = br_task_return(t, r, rlen);
    free(r);
    return rc;
}

static void big_payloads(void **state) {
    (void)state;
    br_executor *ex = make(4); /* 2 slots on each worker rank */
    enum { N = 12 };
    /* several MiB, around the out-of-line size (64 KiB) and small ones between */
    size_t lens[N] = {3u << 20, 5u << 20, 100, (64u << 10) - 1, 64u << 10, 4u << 20,
                      (2u << 20) + 3, 8, 6u << 20, 70000, 3u << 20, 1u << 20};
    if (br_test_scale() < 1.0) /* smaller under the sanitizers */
        for (int i = 0; i < N; i++)
            lens[i] = lens[i] > (1u << 20) ? lens[i] / 4 : lens[i];
    unsigned char *in[N];
    br_future *f[N];
    uint64_t want_sum[N];
    for (int k = 0; k < N; k++) {
        uint32_t seed = (uint32_t)k + 1 + (k == 9 ? 5000u : 0u); /* task 9 fails */
        in[k] = malloc(lens[k]);
        BR_CHECK(in[k] != NULL);
        want_sum[k] = 0;
        for (size_t i = 0; i < lens[k]; i++)
            in[k][i] = pat(i, seed);
        memcpy(in[k], &seed, sizeof seed);
        for (size_t i = 0; i < lens[k]; i++)
            want_sum[k] += in[k][i];
        BR_CHECK_OK(br_submit(ex, transform_task, in[k], lens[k], &f[k]));
    }
    /* the caller's buffers may go at once: the executor owns its copies */
    unsigned char seen[N][4];
    for (int k = 0; k < N; k++) {
        memcpy(seen[k], in[k], 4);
        memset(in[k], 0xee, lens[k]);
    }
    for (int k = N - 1; k >= 0; k--) { /* results read in the opposite order */
        uint32_t seed;
        memcpy(&seed, seen[k], sizeof seed);
        if (seed > 1000) {
            int code = 0;
            const char *msg = NULL;
            BR_CHECK_OK(br_future_exception(f[k], br_test_hang_guard(), &code, &msg));
            BR_CHECK_EQ(code, BR_ERANGE);
            char want[96];
            snprintf(want, sizeof want, "seed %u, sum %llu", (unsigned)seed,
                     (unsigned long long)want_sum[k]);
            BR_CHECK(msg != NULL && strstr(msg, want) != NULL);
        } else {
            const void *data = NULL;
            size_t rlen = 0;
            BR_CHECK_OK(br_future_result(f[k], br_test_hang_guard(), &data, &rlen));
            BR_CHECK_EQ(rlen, lens[k] + 17);
            const unsigned char *r = data;
            for (size_t i = 0; i < lens[k]; i++) {
                size_t j = lens[k] - 1 - i; /* r[i] came from in[j] */
                unsigned char a = j < 4 ? seen[k][j] : pat(j, seed);
                if (r[i] != (unsigned char)(a ^ (seed & 0xff)))
                    fail_msg("payload %d (%zu bytes): byte %zu differs", k, lens[k], i);
            }
            for (size_t i = lens[k]; i < rlen; i++)
                BR_CHECK_EQ(r[i], 0x5a);
        }
        br_future_release(f[k]);
        free(in[k]);
    }
    BR_CHECK_OK(br_executor_free(ex));
}

static void spawn_ignored(void **state) {
    (void)state;
    br_executor *ex = NULL;
    BR_CHECK_ERR(br_mpi_executor_new(&ex, &(br_mpi_executor_opts){.spawn = -1}), BR_EINVAL);
    BR_CHECK_ERR(br_mpi_executor_new(&ex, &(br_mpi_executor_opts){.spawn = 1025}),
                 BR_EINVAL);
    BR_CHECK(ex == NULL);
    BR_CHECK_OK(br_mpi_executor_new(&ex, &(br_mpi_executor_opts){.spawn = 5}));
    BR_CHECK_EQ(br_mpi_size(), 3);
    BR_CHECK_EQ(br_executor_max_workers(ex), 2);
    for (int i = 0; i < 16; i++) {
        br_future *f;
        BR_CHECK_OK(br_submit(ex, rank_task, NULL, 0, &f));
        int64_t v = 0;
        BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &v));
        BR_CHECK(v == 1 || v == 2);
        br_future_release(f);
    }
    BR_CHECK_OK(br_executor_free(ex));
}

/* The worker ranks' initializer state (each rank has its own copy). */
static int64_t init_runs, init_value, init_runs_at_first_task = -1;

static int count_init(br_task *t) {
    init_runs++;
    init_value = br_task_arg_i64(t);
    init_runs_at_first_task = -1;
    return 0;
}

/* (runs of the initializer on this rank) * 1000 + its argument, and the runs seen by
 * this rank's first task of the executor: the same if it ran before that task. */
static int init_state_task(br_task *t) {
    (void)t;
    if (init_runs_at_first_task < 0)
        init_runs_at_first_task = init_runs;
    return br_task_return_i64(t, init_runs_at_first_task * 1000000 + init_runs * 1000 +
                                     init_value);
}

static void initializer(void **state) {
    (void)state;
    enum { N = 64 };
    for (int64_t round = 1; round <= 2; round++) {
        int64_t arg = 40 + round;
        br_executor *ex = NULL;
        BR_CHECK_OK(br_mpi_executor_new(
            &ex, &(br_mpi_executor_opts){.initializer = count_init, .initarg = &arg,
                                         .initarg_len = sizeof arg}));
        arg = 0; /* copied at new */
        br_future *fs[N];
        for (int i = 0; i < N; i++)
            BR_CHECK_OK(br_submit(ex, init_state_task, NULL, 0, &fs[i]));
        for (int i = 0; i < N; i++) {
            int64_t v = 0;
            BR_CHECK_OK(br_future_result_i64(fs[i], br_test_hang_guard(), &v));
            /* every rank's initializer ran once per executor, before its first task */
            BR_CHECK_EQ(v, round * 1000000 + round * 1000 + 40 + round);
            br_future_release(fs[i]);
        }
        BR_CHECK_OK(br_executor_free(ex));
    }
    br_executor *ex = NULL;
    void *heap = malloc(64);
    BR_CHECK(heap != NULL);
    br_task_fn fn;
    memcpy(&fn, &heap, sizeof fn);
    BR_CHECK_ERR(br_mpi_executor_new(&ex, &(br_mpi_executor_opts){.initializer = fn}),
                 BR_EINVAL);
    free(heap);
    BR_CHECK_ERR(br_mpi_executor_new(&ex, &(br_mpi_executor_opts){.initializer = count_init,
                                                                 .initarg_len = 8}),
                 BR_EINVAL);
    BR_CHECK(ex == NULL);
}

/* Fails on the rank given as its argument (0: on every rank). */
static int failing_init(br_task *t) {
    int64_t on = br_task_arg_i64(t);
    if (on != 0 && on != br_mpi_rank())
        return 0;
    return br_task_fail(t, BR_EPERM, "no licence on rank %d", br_mpi_rank());
}

static void check_broken(br_future *f) {
    int code = 0;
    const char *msg = NULL;
    BR_CHECK_OK(br_future_exception(f, br_test_hang_guard(), &code, &msg));
    BR_CHECK_EQ(code, BR_EBROKEN);
    BR_CHECK(msg != NULL);
    int rank = -1, on = -1;
    BR_CHECK_EQ(sscanf(msg, "rank %d: the initializer failed: no licence on rank %d", &rank,
                       &on),
                2);
    BR_CHECK(rank >= 1 && rank < br_mpi_size());
    BR_CHECK_EQ(rank, on);
}

static br_executor *make_failing(int64_t on) {
    br_executor *ex = NULL;
    BR_CHECK_OK(br_mpi_executor_new(
        &ex, &(br_mpi_executor_opts){.initializer = failing_init, .initarg = &on,
                                     .initarg_len = sizeof on}));
    return ex;
}

static void initializer_breaks(void **state) {
    (void)state;
    /* Every rank fails: no task can run anywhere. */
    br_executor *ex = make_failing(0);
    br_future *f = NULL;
    int rc = br_submit_i64(ex, square_task, 3, &f);
    if (rc == 0) { /* the break may come before or after this submit */
        check_broken(f);
        br_future_release(f);
        f = NULL;
    } else {
        BR_CHECK_EQ(rc, BR_EBROKEN);
    }
    /* A future failed with BR_EBROKEN only after the executor broke. */
    BR_CHECK_ERR(br_submit_i64(ex, square_task, 4, &f), BR_EBROKEN);
    BR_CHECK(f == NULL);
    int32_t in[8] = {0};
    br_map *m = NULL;
    BR_CHECK_ERR(br_map_new(&m, ex, tiny_task, in, 8, sizeof in[0],
                            &(br_map_opts){.chunksize = 4}),
                 BR_EBROKEN);
    BR_CHECK_OK(br_executor_shutdown(ex, true, false));
    BR_CHECK_OK(br_executor_free(ex));

    /* Rank 2 fails, rank 1 doesn't: tasks one at a time until the break is seen. */
    ex = make_failing(2);
    int ok = 0, broken = 0;
    for (int i = 0; i < 64 && broken == 0; i++) {
        rc = br_submit_i64(ex, square_task, i, &f);
        if (rc == BR_EBROKEN) {
            broken++;
            break;
        }
        BR_CHECK_OK(rc);
        int64_t v = 0;
        rc = br_future_result_i64(f, br_test_hang_guard(), &v);
        if (rc == 0) {
            BR_CHECK_EQ(v, (int64_t)i * i); /* rank 1 ran it */
            ok++;
        } else {
            check_broken(f);
            broken++;
        }
        br_future_release(f);
    }
    BR_CHECK_EQ(broken, 1); /* tasks alternate between the ranks: rank 2 got one */
    BR_CHECK(ok < 64);
    BR_CHECK_ERR(br_submit_i64(ex, square_task, 5, &f), BR_EBROKEN);
    BR_CHECK_OK(br_executor_free(ex));

    /* The ranks serve the next executor. */
    ex = make(0);
    for (int i = 0; i < 8; i++) {
        BR_CHECK_OK(br_submit_i64(ex, square_task, i, &f));
        int64_t v = 0;
        BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &v));
        BR_CHECK_EQ(v, (int64_t)i * i);
        br_future_release(f);
    }
    BR_CHECK_OK(br_executor_free(ex));
}

/* Two executors with initializers in a row: the first's initializer fails on every
 * rank, and it is freed before it can have read the ranks' reports (it sends its
 * SESSION and, with nothing submitted, ends once the sends are done); the reports then
 * reach the second, whose initializer works on every rank. They name the first's
 * session, so the second drops them: every task of it runs. (Without the session
 * number in the report, the second broke on them: its tasks failed with BR_EBROKEN.)
 * Three rounds, the last with a task submitted to the failing executor first. */
static void initializer_late_report(void **state) {
    (void)state;
    for (int round = 0; round < 3; round++) {
        br_executor *bad = make_failing(0);
        br_future *f = NULL;
        if (round == 2) { /* a task: it fails with the break, or submit is refused */
            int rc = br_submit_i64(bad, square_task, 3, &f);
            if (rc == 0) {
                check_broken(f);
                br_future_release(f);
            } else {
                BR_CHECK_EQ(rc, BR_EBROKEN);
            }
        }
        BR_CHECK_OK(br_executor_free(bad));
        br_executor *ex = make_failing(-1); /* never fails: no rank is -1 */
        enum { N = 32 };
        br_future *fs[N];
        for (int i = 0; i < N; i++)
            BR_CHECK_OK(br_submit_i64(ex, square_task, i, &fs[i]));
        for (int i = 0; i < N; i++) {
            int64_t v = 0;
            int rc = br_future_result_i64(fs[i], br_test_hang_guard(), &v);
            if (rc != 0) {
                int code = 0;
                const char *msg = NULL;
                (void)br_future_exception(fs[i], BR_NOWAIT, &code, &msg);
                fail_msg("round %d, task %d: %s (%s)", round, i, br_err_name(rc),
                         msg ? msg : "");
            }
            BR_CHECK_EQ(v, (int64_t)i * i);
            br_future_release(fs[i]);
        }
        BR_CHECK_OK(br_executor_free(ex));
    }
}

static void rank_killed(void **state) {
    (void)state;
    br_executor *ex = make(0);
    br_future *f;
    BR_CHECK_OK(br_submit(ex, kill_self_task, NULL, 0, &f));
    printf("MARK: submitted\n");
    fflush(stdout);
    (void)br_future_wait(f, br_test_hang_guard());
    printf("MARK: survived\n");
    fflush(stdout);
    br_future_release(f);
    BR_CHECK_OK(br_executor_free(ex));
}

int main(int argc, char **argv) {
    int rc = br_mpi_main(&argc, &argv); /* the worker ranks stay there */
    if (rc != 0) {
        fprintf(stderr, "br_mpi_main: %s\n", br_err_name(rc));
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(map_100k),      cmocka_unit_test(map_default_chunks),
        cmocka_unit_test(failure_rank),
        cmocka_unit_test(mixed_wait),    cmocka_unit_test(bad_function),
        cmocka_unit_test(one_at_a_time), cmocka_unit_test(big_args),
        cmocka_unit_test(big_payloads),  cmocka_unit_test(spawn_ignored),
        cmocka_unit_test(initializer),   cmocka_unit_test(initializer_breaks),
        cmocka_unit_test(initializer_late_report),
        cmocka_unit_test(rank_killed),
    };
    return br_test_main(tests, sizeof tests / sizeof tests[0], __FILE__, argc, argv);
}
