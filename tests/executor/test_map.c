/* br_map over the test-only executor of mini_executor.h: ordering, chunking, the
 * buffersize bound, the deadline, failures mid-stream, freeing early, executors that
 * aren't in-process, the executor shutting down underneath, and an executor's own
 * default chunksize (vt->map_chunksize). */
#include "harness.h"
#include "mini_executor.h"
#include "future/private.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

static long submits(br_executor *ex) { return atomic_load(&((mini_ex *)ex)->submits); }

static _Atomic long ran;

static int square_i32(br_task *t) {
    atomic_fetch_add(&ran, 1);
    size_t len;
    const int32_t *x = br_task_arg(t, &len);
    if (len != sizeof *x)
        return br_task_fail(t, BR_EINVAL, "len %zu", len);
    if (*x < 0)
        return br_task_fail(t, BR_ERANGE, "negative: %d", (int)*x);
    return br_task_return_i64(t, (int64_t)*x * *x);
}

static void order_and_chunking(void **state) {
    (void)state;
    br_executor *ex;
    BR_CHECK_OK(mini_new(&ex, 3));
    enum { N = 100 };
    int32_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    size_t chunks[] = {1, 7, 10, 100, 500};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        long before = submits(ex);
        br_map *m;
        BR_CHECK_OK(br_map_new(&m, ex, square_i32, in, N, sizeof in[0],
                               &(br_map_opts){.chunksize = chunks[c], .buffersize = 4}));
        for (int i = 0; i < N; i++) {
            int64_t v;
            BR_CHECK_OK(br_map_next_i64(m, &v));
            BR_CHECK_EQ(v, (int64_t)i * i);
        }
        int64_t v;
        BR_CHECK_ERR(br_map_next_i64(m, &v), BR_EOF);
        BR_CHECK_OK(br_map_free(m));
        size_t cs = chunks[c] > N ? N : chunks[c];
        /* one runner task per chunk */
        BR_CHECK_EQ(submits(ex) - before, (N + (long)cs - 1) / (long)cs);
    }
    BR_CHECK_OK(br_executor_free(ex));
}

static void buffersize_bound(void **state) {
    (void)state;
    br_executor *ex;
    BR_CHECK_OK(mini_new(&ex, 2));
    enum { N = 60 };
    int32_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    size_t bufs[] = {1, 3, 8};
    size_t chunk_sizes[] = {1, 4};
    for (size_t b = 0; b < 3; b++) {
        for (size_t c = 0; c < 2; c++) {
            long base = submits(ex);
            long buf = (long)bufs[b], cs = (long)chunk_sizes[c];
            long nchunks = (N + cs - 1) / cs;
            br_map *m;
            BR_CHECK_OK(br_map_new(&m, ex, square_i32, in, N, sizeof in[0],
                                   &(br_map_opts){.chunksize = (size_t)cs,
                                                  .buffersize = (size_t)buf}));
            /* lazy: exactly buffersize chunks before the first read */
            BR_CHECK_EQ(submits(ex) - base, buf < nchunks ? buf : nchunks);
            for (long i = 0; i < N; i++) {
                int64_t v;
                BR_CHECK_OK(br_map_next_i64(m, &v));
                BR_CHECK_EQ(v, i * i);
                long read_chunks = (i + 1) / cs; /* chunks fully read */
                long sub = submits(ex) - base;
                /* never more than buffersize ahead of the chunk being read ... */
                BR_CHECK(sub <= read_chunks + buf + 1);
                /* ... and kept that full while there are inputs left */
                long want = (i / cs) + buf + 1; /* head chunk + buffersize */
                BR_CHECK(sub >= (want < nchunks ? want : nchunks));
            }
            BR_CHECK_OK(br_map_free(m));
            BR_CHECK_EQ(submits(ex) - base, nchunks);
        }
    }
    /* the default is 2 x max_workers */
    long base = submits(ex);
    br_map *m;
    BR_CHECK_OK(br_map_new(&m, ex, square_i32, in, N, sizeof in[0], NULL));
    BR_CHECK_EQ(submits(ex) - base, 4);
    BR_CHECK_OK(br_map_free(m));
    BR_CHECK_OK(br_executor_free(ex));
}

/* cs 1: each input is its own task; cs > 1: inputs go through runner tasks. */
static void failures_mid_stream_with(size_t cs) {
    br_executor *ex;
    BR_CHECK_OK(mini_new(&ex, 2));
    enum { N = 30 };
    int32_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = (i % 7 == 3) ? -i : i;
    br_map *m;
    BR_CHECK_OK(br_map_new(&m, ex, square_i32, in, N, sizeof in[0],
                           &(br_map_opts){.chunksize = cs}));
    for (int i = 0; i < N; i++) {
        const void *d;
        size_t len;
        int rc = br_map_next(m, &d, &len);
        if (i % 7 == 3) {
            BR_CHECK_ERR(rc, BR_ERANGE);
            char want[32];
            snprintf(want, sizeof want, "negative: %d", -i);
            BR_CHECK(d != NULL && strcmp(d, want) == 0);
            BR_CHECK_EQ(len, strlen(want));
        } else {
            BR_CHECK_OK(rc);
            BR_CHECK_EQ(len, 8);
            int64_t v;
            memcpy(&v, d, sizeof v);
            BR_CHECK_EQ(v, (int64_t)i * i);
        }
    }
    const void *d;
    BR_CHECK_ERR(br_map_next(m, &d, NULL), BR_EOF);
    BR_CHECK(d == NULL);
    BR_CHECK_OK(br_map_free(m));
    BR_CHECK_OK(br_executor_free(ex));
}

static void failures_mid_stream(void **state) {
    (void)state;
    failures_mid_stream_with(4);
    failures_mid_stream_with(1);
}

/* A task that blocks (index 2 of its input) until a gate opens or it is cancelled. */
static br_future *gate;
static br_future *started;
static br_future *_Atomic input2; /* input 2's own future, once it runs */

static int gated(br_task *t) {
    atomic_fetch_add(&ran, 1);
    int32_t x;
    memcpy(&x, br_task_arg(t, NULL), sizeof x);
    if (x == 2) {
        atomic_store(&input2, br__task_future(t));
        br_future_set_result_i64(started, 1);
        while (br_future_wait(gate, br_deadline_after(BR_MSEC)) != 0)
            if (br_task_cancelled(t))
                return BR_ECANCELED;
    }
    return br_task_return_i64(t, x);
}

static void deadline_cancels_the_rest_with(size_t cs) {
    br_executor *ex;
    BR_CHECK_OK(mini_new(&ex, 1));
    BR_CHECK_OK(br_future_new(&gate));
    BR_CHECK_OK(br_future_new(&started));
    atomic_store(&ran, 0);
    enum { N = 40 };
    int32_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    /* long enough for inputs 0 and 1 to run first even on a loaded machine */
    int64_t dl = br_deadline_after((int64_t)(100 * BR_MSEC * br_test_time_multiplier()));
    br_map *m;
    BR_CHECK_OK(br_map_new(&m, ex, gated, in, N, sizeof in[0],
                           &(br_map_opts){.chunksize = cs, .buffersize = 3, .deadline = dl}));
    int64_t v;
    BR_CHECK_OK(br_map_next_i64(m, &v));
    BR_CHECK_EQ(v, 0);
    BR_CHECK_OK(br_map_next_i64(m, &v));
    BR_CHECK_EQ(v, 1);
    /* input 2 never finishes by itself */
    BR_CHECK_ERR(br_map_next_i64(m, &v), BR_ETIMEDOUT);
    BR_CHECK(br_now() >= dl);
    BR_CHECK_ERR(br_map_next_i64(m, &v), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_map_next_i64(m, &v), BR_ETIMEDOUT);
    /* the running input saw its deadline through br_task_cancelled, and nothing
     * queued behind it ran: free doesn't hang and the count stays small */
    BR_CHECK_OK(br_map_free(m));
    BR_CHECK(atomic_load(&ran) <= 4); /* 0, 1, 2 and at most input 3 of its chunk */
    BR_CHECK_OK(br_executor_free(ex));
    br_future_release(gate);
    br_future_release(started);
}

static void deadline_cancels_the_rest(void **state) {
    (void)state;
    deadline_cancels_the_rest_with(2);
    deadline_cancels_the_rest_with(1);
}

typedef struct {
    _Atomic bool saw_waiter;
} opener_arg;

/* Opens the gate once br_map_free is blocked waiting for the running input 2 (it has
 * registered on that input's future): no sleep. */
static void *opener(void *p) {
    opener_arg *a = p;
    br_future_wait(started, BR_FOREVER);
    br_future *in2 = atomic_load(&input2);
    atomic_store(&a->saw_waiter, br_test_until_listener(&in2, 1));
    br_future_set_result_i64(gate, 1);
    return NULL;
}

static void free_waits_for_running_and_cancels_rest(void **state) {
    (void)state;
    br_executor *ex;
    BR_CHECK_OK(mini_new(&ex, 1));
    BR_CHECK_OK(br_future_new(&gate));
    BR_CHECK_OK(br_future_new(&started));
    atomic_store(&ran, 0);
    enum { N = 50 };
    int32_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    br_map *m;
    BR_CHECK_OK(br_map_new(&m, ex, gated, in, N, sizeof in[0],
                           &(br_map_opts){.chunksize = 1, .buffersize = 10}));
    int64_t v;
    BR_CHECK_OK(br_map_next_i64(m, &v));
    BR_CHECK_OK(br_map_next_i64(m, &v));
    BR_CHECK_OK(br_future_wait(started, br_test_hang_guard())); /* input 2 is running */
    opener_arg oa = {false};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, opener, &oa), 0);
    BR_CHECK_OK(br_map_free(m)); /* waits for input 2, cancels 3.. */
    BR_CHECK(br_future_done(gate)); /* so it returned after the gate opened */
    pthread_join(th, NULL);
    BR_CHECK(atomic_load(&oa.saw_waiter)); /* and it had blocked before */
    BR_CHECK_EQ(atomic_load(&ran), 3);
    BR_CHECK_OK(br_executor_shutdown(ex, true, false));
    BR_CHECK_EQ(atomic_load(&ran), 3); /* the cancelled runners never ran */
    BR_CHECK_OK(br_executor_free(ex));
    br_future_release(gate);
    br_future_release(started);
}

static void not_in_process_goes_per_input(void **state) {
    (void)state;
    br_executor *ex;
    BR_CHECK_OK(mini_new_vt(&ex, 2, &mini_vt_remote));
    enum { N = 25 };
    int32_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    br_map *m;
    BR_CHECK_OK(br_map_new(&m, ex, square_i32, in, N, sizeof in[0],
                           &(br_map_opts){.chunksize = 10, .buffersize = 5}));
    for (int i = 0; i < N; i++) {
        int64_t v;
        BR_CHECK_OK(br_map_next_i64(m, &v));
        BR_CHECK_EQ(v, (int64_t)i * i);
    }
    BR_CHECK_OK(br_map_free(m));
    BR_CHECK_EQ(submits(ex), N); /* one task per input: no pointers to a runner */
    BR_CHECK_OK(br_executor_free(ex));
}

static void executor_shutdown_underneath_with(size_t cs) {
    br_executor *ex;
    BR_CHECK_OK(mini_new(&ex, 1));
    BR_CHECK_OK(br_future_new(&gate)); /* never opened */
    BR_CHECK_OK(br_future_new(&started));
    atomic_store(&ran, 0);
    enum { N = 20 };
    int32_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    br_map *m;
    /* 3 chunks submitted ({0..3} {4..7} {8..11} with cs 4; {0} {1} {2} with cs 1);
     * the rest not yet */
    BR_CHECK_OK(br_map_new(&m, ex, gated, in, N, sizeof in[0],
                           &(br_map_opts){.chunksize = cs, .buffersize = 3}));
    int queued = 3 * (int)cs;
    BR_CHECK_OK(br_future_wait(started, br_test_hang_guard()));
    /* cancel_futures: the queued runners are dropped, the running one is asked to
     * stop, and its input 2 (blocked) sees it through br_task_cancelled */
    BR_CHECK_OK(br_executor_shutdown(ex, false, true));
    int64_t v;
    for (int i = 0; i < N; i++) {
        int rc = br_map_next_i64(m, &v);
        if (i < 2) {
            BR_CHECK_OK(rc);
            BR_CHECK_EQ(v, i);
        } else if (i == 2 || i < queued) {
            BR_CHECK_ERR(rc, BR_ECANCELED); /* 2 stopped, 3 never started, 4.. dropped */
        } else {
            BR_CHECK_ERR(rc, BR_ESHUTDOWN); /* submitted after the shutdown */
        }
    }
    BR_CHECK_ERR(br_map_next_i64(m, &v), BR_EOF);
    BR_CHECK_OK(br_map_free(m));
    BR_CHECK_EQ(atomic_load(&ran), 3);
    BR_CHECK_OK(br_executor_free(ex));
    br_future_release(gate);
    br_future_release(started);
}

static void executor_shutdown_underneath(void **state) {
    (void)state;
    executor_shutdown_underneath_with(4);
    executor_shutdown_underneath_with(1);
}

static int echo_len(br_task *t) {
    size_t len;
    br_task_arg(t, &len);
    return br_task_return(t, "abc", 3);
}

static void odd_inputs_and_results(void **state) {
    (void)state;
    br_executor *ex;
    BR_CHECK_OK(mini_new(&ex, 1));
    /* zero-size inputs */
    br_map *m;
    BR_CHECK_OK(br_map_new(&m, ex, echo_len, NULL, 5, 0, NULL));
    for (int i = 0; i < 5; i++) {
        const void *d;
        size_t len;
        BR_CHECK_OK(br_map_next(m, &d, &len));
        BR_CHECK_EQ(len, 3);
        BR_CHECK(memcmp(d, "abc", 3) == 0);
    }
    BR_CHECK_OK(br_map_free(m));
    /* a 3-byte result read as an int64 */
    int32_t x = 1;
    BR_CHECK_OK(br_map_new(&m, ex, echo_len, &x, 1, sizeof x, NULL));
    int64_t v;
    BR_CHECK_ERR(br_map_next_i64(m, &v), BR_EINVAL);
    BR_CHECK_ERR(br_map_next_i64(m, &v), BR_EOF);
    BR_CHECK_OK(br_map_free(m));
    /* bad arguments */
    BR_CHECK_ERR(br_map_new(NULL, ex, echo_len, &x, 1, sizeof x, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_map_new(&m, NULL, echo_len, &x, 1, sizeof x, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_map_new(&m, ex, NULL, &x, 1, sizeof x, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_map_new(&m, ex, echo_len, NULL, 1, sizeof x, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_map_next(NULL, NULL, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_map_next_i64(NULL, &v), BR_EINVAL);
    BR_CHECK_ERR(br_map_free(NULL), BR_EINVAL);
    BR_CHECK_OK(br_executor_free(ex));
}

/* Many maps freed at random points while workers run: every input future is released
 * exactly once (ASan) and nothing hangs. */
/* With size 0 there are no args to read, so any count is allowed; a chunk ring whose
 * size would wrap is refused instead of allocated short. */
static void huge_count_and_chunksize(void **state) {
    (void)state;
    br_executor *ex;
    BR_CHECK_OK(mini_new(&ex, 2));
    br_map *m = (br_map *)1;
    BR_CHECK_ERR(br_map_new(&m, ex, echo_len, NULL, SIZE_MAX, 0,
                            &(br_map_opts){.chunksize = SIZE_MAX / 2 + 1}),
                 BR_ENOMEM);
    BR_CHECK(m == NULL);
    BR_CHECK_OK(br_executor_free(ex));
}

static void free_at_random_points(void **state) {
    (void)state;
    br_executor *ex;
    BR_CHECK_OK(mini_new(&ex, 2));
    enum { N = 64 };
    int32_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    int rounds = (int)br_test_scaled(300, 20);
    unsigned seed = 7;
    for (int r = 0; r < rounds; r++) {
        br_map *m;
        size_t cs = 1 + rand_r(&seed) % 5, buf = 1 + rand_r(&seed) % 6;
        BR_CHECK_OK(br_map_new(&m, ex, square_i32, in, N, sizeof in[0],
                               &(br_map_opts){.chunksize = cs, .buffersize = buf}));
        int stop = rand_r(&seed) % N;
        for (int i = 0; i < stop; i++) {
            int64_t v;
            BR_CHECK_OK(br_map_next_i64(m, &v));
            BR_CHECK_EQ(v, (int64_t)i * i);
        }
        BR_CHECK_OK(br_map_free(m));
    }
    BR_CHECK_OK(br_executor_free(ex));
}

/* vt->map_chunksize (version 3): br_map with chunksize 0 asks the executor for the
 * chunksize, with the count and size of the inputs; an explicit chunksize, or a
 * version-2 executor, never asks. Chunks seen by submit_chunk show what was used. */
static size_t mc_calls, mc_count, mc_size, mc_chunks[16], mc_nchunks;

static size_t mc_chunksize(const br_executor *ex, size_t count, size_t size) {
    (void)ex;
    mc_calls++;
    mc_count = count;
    mc_size = size;
    return 3;
}

static int mc_submit_chunk(br_executor *ex, br_task *const tasks[], size_t n,
                           const br_call *call) {
    if (mc_nchunks < 16)
        mc_chunks[mc_nchunks++] = n;
    return br_executor_chunk_runner(ex, tasks, n, call);
}

static int mc_square(br_task *t) {
    int64_t x;
    memcpy(&x, br_task_arg(t, NULL), sizeof x);
    return br_task_return_i64(t, x * x);
}

static void map_run(br_executor *ex, size_t chunksize) {
    int64_t in[10];
    for (int i = 0; i < 10; i++)
        in[i] = i;
    mc_calls = mc_nchunks = 0;
    br_map *m;
    BR_CHECK_OK(br_map_new(&m, ex, mc_square, in, 10, sizeof in[0],
                           &(br_map_opts){.chunksize = chunksize, .buffersize = 16}));
    int64_t v;
    for (int i = 0; i < 10; i++) {
        BR_CHECK_OK(br_map_next_i64(m, &v));
        BR_CHECK_EQ(v, (int64_t)i * i);
    }
    BR_CHECK_ERR(br_map_next_i64(m, &v), BR_EOF);
    BR_CHECK_OK(br_map_free(m));
}

static void map_chunksize_through_the_vtable(void **state) {
    (void)state;
    br_executor_vt vt = mini_vt;
    vt.submit_chunk = mc_submit_chunk;
    vt.map_chunksize = mc_chunksize;
    br_executor *ex;
    BR_CHECK_OK(mini_new_vt(&ex, 2, &vt));
    map_run(ex, 0);
    BR_CHECK_EQ(mc_calls, 1);
    BR_CHECK_EQ(mc_count, 10);
    BR_CHECK_EQ(mc_size, sizeof(int64_t));
    /* 3 + 3 + 3 through submit_chunk; the last input, a chunk of one, is its own task */
    BR_CHECK_EQ(mc_nchunks, 3);
    BR_CHECK(mc_chunks[0] == 3 && mc_chunks[1] == 3 && mc_chunks[2] == 3);
    map_run(ex, 5); /* the caller's chunksize wins */
    BR_CHECK_EQ(mc_calls, 0);
    BR_CHECK(mc_nchunks == 2 && mc_chunks[0] == 5 && mc_chunks[1] == 5);
    /* a version-2 vtable ends before map_chunksize: never read, chunksize 1 */
    BR_CHECK_OK(br_executor_init_version(ex, &vt, 2));
    map_run(ex, 0);
    BR_CHECK_EQ(mc_calls, 0);
    BR_CHECK_EQ(mc_nchunks, 0);
    BR_CHECK_OK(br_executor_free(ex));
}

BR_TEST_MAIN(cmocka_unit_test(order_and_chunking), cmocka_unit_test(buffersize_bound),
             cmocka_unit_test(map_chunksize_through_the_vtable),
             cmocka_unit_test(failures_mid_stream),
             cmocka_unit_test(deadline_cancels_the_rest),
             cmocka_unit_test(free_waits_for_running_and_cancels_rest),
             cmocka_unit_test(not_in_process_goes_per_input),
             cmocka_unit_test(huge_count_and_chunksize),
             cmocka_unit_test(executor_shutdown_underneath),
             cmocka_unit_test(odd_inputs_and_results), cmocka_unit_test(free_at_random_points))
