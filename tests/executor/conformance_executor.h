/* The executor conformance suite: what every braid executor must do, written only
 * against the public interface (braid/executor.h, braid/future.h).
 *
 * How to use it. In tests/executor/test_<yours>.c:
 *
 *     #include "harness.h"
 *     // Makes a fresh executor with max_workers workers (>= 1). 0 or an error code.
 *     static int conformance_make(br_executor **out, int max_workers) {
 *         return br_threadpool_new(out, &(br_threadpool_opts){.max_workers = max_workers});
 *     }
 *     // Optional, before the include: 0 if tasks run in other processes (a process
 *     // pool, under any start method). Every test runs either way; see below.
 *     // #define CONFORMANCE_SHARED_MEMORY 0
 *     #include "conformance_executor.h"
 *     ...
 *     BR_TEST_MAIN(BR_CONFORMANCE_TESTS, <your own table entries>)
 *
 * The build registers every cmocka_unit_test(...) entry of this header as a test of
 * the including file (tests/CMakeLists.txt), so each runs in its own process:
 * executor.<yours>.conformance_<name>. Every test makes its own executor and frees it.
 *
 * What it covers: submit / submit_i64 / submit_call and every result kind; failures
 * with messages; cancelling queued tasks; wait and as_completed over the executor's
 * futures; map ordering, chunking and failures; shutdown(wait, cancel_futures);
 * submitting after shutdown; per-task deadlines; request_cancel of a running task;
 * BR_CALL_COPY_ARG; fire-and-forget submits; done-callbacks; a stress of many
 * tasks from several threads with random cancellation, in which every future must
 * resolve exactly once and the results must add up; and br_submit_batch: values,
 * order, bad arguments, after shutdown, and batches from several threads at once.
 *
 * Blocking without sleeps: a "gate" is an event the test sets to let tasks go on, and
 * tasks report "I have started" by setting an event of their own. Gates, "started"
 * events and the counters tasks add to live in the channel (below), shared memory that
 * reaches a task in this process, in a forked worker and in a spawned one alike, so no
 * test depends on where its tasks run. Time limits only guard against hangs.
 *
 * Where tasks run in other processes (CONFORMANCE_SHARED_MEMORY 0), three tests assert
 * what is true there instead of what can't be:
 *   - submit_results: a pointer result can't cross (BR_ENOTSUP in the task, which then
 *     returns an int64 the test checks);
 *   - copy_arg: the argument is copied at submit with or without BR_CALL_COPY_ARG (it
 *     crosses to the worker), so the test also submits without the flag and checks the
 *     same bytes arrive;
 *   - shutdown_from_worker: a task can't reach its executor from another process; it
 *     asks through the channel, and the future's done-callback, on the executor's own
 *     thread in this process, does the shutdown(wait): BR_EDEADLK there (the test's
 *     comment says more).
 * Done-callbacks run in the submitting process under every executor, so done_callbacks
 * is the same test everywhere.
 */
#ifndef BRAID_TESTS_CONFORMANCE_EXECUTOR_H
#define BRAID_TESTS_CONFORMANCE_EXECUTOR_H

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CONFORMANCE_SHARED_MEMORY
#define CONFORMANCE_SHARED_MEMORY 1
#endif

static int conformance_make(br_executor **out, int max_workers);

/* --- the channel: what tasks and the test share, in every kind of executor ---------
 *
 * One block of shared memory (braid/mp_shared.h's br_shared_memory, a memfd) holds
 * everything a task and the test tell each other: gates (br_mp_event), the blocking
 * tasks' records (their "started" events, what they saw), counters, the batch-order log
 * and the per-task run counts of the batch stress. Tasks name what they use by index
 * (their argument bytes), never by pointer, so the same task works in any process:
 *   - in this process (thread pools, the inline executor) the mapping is simply there;
 *   - a forked worker inherits the mapping (cf_make makes it before the executor) and
 *     the pointer to it;
 *   - a spawned worker inherits nothing: it is a child of the test process, and its
 *     first task that needs the channel maps it from /proc/<getppid()>/fd/CF_CHANNEL_FD
 *     (the test keeps the memfd at that fixed number, so nothing has to cross).
 * cf_make (re)initialises the channel at the start of every test. */

enum {
    CF_CHANNEL_FD = 1000, /* where the test process keeps the channel's descriptor */
    CF_GATES = 32,
    CF_BLOCKS = 32,
    CF_LOG = 1024,
    CF_SUBMITTERS = 4, /* the stresses' submitting threads */
    CF_MAGIC = 0x6272636f6e66ll /* "brconf" */
};

/* What a blocking task gets (its index is its argument): it reports `started`, then
 * waits for its gate (or, without one, until it is asked to stop, then returns
 * BR_ECANCELED), then returns `value`. */
typedef struct cf_block {
    br_mp_event started;
    int gate; /* -1: none */
    int id;
    int64_t value;
    _Atomic int ran;
    _Atomic int saw_cancel;
    _Atomic int64_t seen_deadline;
} cf_block;

typedef struct cf_channel {
    int64_t magic;
    size_t size;       /* of the whole mapping */
    int ngates, nblocks; /* allocated so far (the test allocates) */
    br_mp_event gates[CF_GATES];
    cf_block blocks[CF_BLOCKS];
    _Atomic long counter; /* cf_count_task adds its argument */
    _Atomic long ran;     /* the stress's tasks */
    _Atomic int asked;    /* shutdown_from_worker's request (process executors) */
    _Atomic long nlog;    /* the batch-order log */
    int64_t log[CF_LOG];
    long nruns;           /* the batch stress's per-task run counts */
    _Atomic int runs[];
} cf_channel;

static br_shared_memory *cf_shm;       /* the test's handle (NULL in a spawned worker) */
static br_shared_memory *cf_shm_mapped; /* a spawned worker's, kept for its life */
static cf_channel *_Atomic cf_ch;      /* this process's view */

/* The channel's capacity for the batch stress: CF_SUBMITTERS * its per_thread. */
static long cf_runs_cap(void) { return CF_SUBMITTERS * br_test_scaled(20000, 1000); }

/* Made by the test process, once, before its first executor; reset for each test. */
static void cf_channel_reset(void) {
    if (cf_shm == NULL) {
        size_t size = sizeof(cf_channel) + (size_t)cf_runs_cap() * sizeof(_Atomic int);
        BR_CHECK_OK(br_shared_memory_new(&cf_shm, size));
        errno = 0;
        BR_CHECK(fcntl(CF_CHANNEL_FD, F_GETFD) < 0 && errno == EBADF); /* free */
        BR_CHECK(dup2(br_shared_memory_fd(cf_shm), CF_CHANNEL_FD) == CF_CHANNEL_FD);
        BR_CHECK(fcntl(CF_CHANNEL_FD, F_SETFD, FD_CLOEXEC) == 0);
        atomic_store(&cf_ch, (cf_channel *)br_shared_memory_buf(cf_shm));
    }
    cf_channel *ch = atomic_load(&cf_ch);
    size_t size = br_shared_memory_size(cf_shm);
    memset(ch, 0, size);
    ch->magic = CF_MAGIC;
    ch->size = size;
    ch->nruns = (long)((size - sizeof(cf_channel)) / sizeof(_Atomic int));
}

/* The test process's pid, seen from a worker: its parent, unless the including file
 * says otherwise (under forkserver the worker's parent is the server). */
#ifndef CF_TEST_PID
#define CF_TEST_PID() getppid()
#endif

/* The channel, from any process: a spawned worker maps it at its first call. NULL if it
 * can't (the task then fails; the test sees it). */
static cf_channel *cf_chan(void) {
    cf_channel *ch = atomic_load(&cf_ch);
    if (ch != NULL)
        return ch;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)CF_TEST_PID(), CF_CHANNEL_FD);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    br_shared_memory *s = NULL;
    int rc = br_shared_memory_attach(&s, fd); /* takes a duplicate */
    close(fd);
    if (rc != 0)
        return NULL;
    ch = br_shared_memory_buf(s);
    if (ch->magic != CF_MAGIC || ch->size != br_shared_memory_size(s)) {
        br_shared_memory_close(s);
        return NULL;
    }
    cf_channel *none = NULL;
    if (!atomic_compare_exchange_strong(&cf_ch, &none, ch)) {
        br_shared_memory_close(s); /* another thread of this worker was first */
        return none;
    }
    cf_shm_mapped = s; /* mapped for the worker's life */
    return ch;
}

/* A task's view of the channel; a task that can't reach it fails with this code. */
#define CF_NO_CHANNEL BR_ESRCH

/* --- helpers ----------------------------------------------------------------------- */

static br_executor *cf_make(int max_workers) {
    cf_channel_reset();
    br_executor *ex = NULL;
    BR_CHECK_OK(conformance_make(&ex, max_workers));
    BR_CHECK(ex != NULL);
    return ex;
}

/* A gate: an event in the channel the test sets to let tasks go on. */
static int cf_gate(void) {
    cf_channel *ch = atomic_load(&cf_ch);
    BR_CHECK(ch->ngates < CF_GATES);
    int g = ch->ngates++;
    BR_CHECK_OK(br_mp_event_init(&ch->gates[g]));
    return g;
}

static void cf_gate_open(int g) { BR_CHECK_OK(br_mp_event_set(&atomic_load(&cf_ch)->gates[g])); }

/* A future only this process completes (the done-callbacks' reports). */
static br_future *cf_future(void) {
    br_future *g;
    BR_CHECK_OK(br_future_new(&g));
    return g;
}

/* Completes a future of this process's (the including files' own tests use it). */
static inline void cf_open(br_future *g) { BR_CHECK_OK(br_future_set_result_i64(g, 1)); }

static int cf_block_task(br_task *t) {
    cf_channel *ch = cf_chan();
    int64_t id = br_task_arg_i64(t);
    if (ch == NULL || id < 0 || id >= CF_BLOCKS)
        return br_task_fail(t, CF_NO_CHANNEL, "no channel or block %lld", (long long)id);
    cf_block *b = &ch->blocks[id];
    atomic_fetch_add(&b->ran, 1);
    atomic_store(&b->seen_deadline, br_task_deadline(t));
    br_mp_event_set(&b->started);
    for (;;) {
        if (b->gate >= 0 &&
            br_mp_event_wait(&ch->gates[b->gate], br_deadline_after(BR_MSEC)) == 0)
            break;
        if (br_task_cancelled(t)) {
            atomic_store(&b->saw_cancel, 1);
            return BR_ECANCELED;
        }
        if (b->gate < 0) /* nothing to wait on: look again a little later */
            br_sleep(100 * 1000);
    }
    return br_task_return_i64(t, b->value);
}

/* A blocking task's record, in the channel; gate -1 for none. */
static cf_block *cf_block_new(int gate, int64_t value) {
    cf_channel *ch = atomic_load(&cf_ch);
    BR_CHECK(ch->nblocks < CF_BLOCKS);
    cf_block *b = &ch->blocks[ch->nblocks];
    b->id = ch->nblocks++;
    b->gate = gate;
    b->value = value;
    BR_CHECK_OK(br_mp_event_init(&b->started));
    return b;
}

/* Waits (within the hang guard) until b's task has started. */
static void cf_wait_started(cf_block *b) {
    BR_CHECK_OK(br_mp_event_wait(&b->started, br_test_hang_guard()));
}

/* Submits a blocking task; returns its future. */
static br_future *cf_submit_block(br_executor *ex, cf_block *b) {
    br_future *f = NULL;
    BR_CHECK_OK(br_submit_i64(ex, cf_block_task, b->id, &f));
    return f;
}

static int cf_square(br_task *t) {
    int64_t x = br_task_arg_i64(t);
    return br_task_return_i64(t, x * x);
}

static int cf_count_task(br_task *t) {
    cf_channel *ch = cf_chan();
    if (ch == NULL)
        return CF_NO_CHANNEL;
    atomic_fetch_add(&ch->counter, br_task_arg_i64(t));
    return 0;
}

/* What the tasks added to the counter. */
static long cf_counted(void) { return atomic_load(&atomic_load(&cf_ch)->counter); }

/* --- submit and results -------------------------------------------------------------- */

typedef struct cf_pair {
    int32_t a, b;
} cf_pair;

static int cf_pair_sum(br_task *t) {
    size_t len;
    const cf_pair *p = br_task_arg(t, &len);
    if (len != sizeof *p)
        return br_task_fail(t, BR_EINVAL, "len %zu", len);
    int64_t s = (int64_t)p->a + p->b;
    return br_task_return(t, &s, sizeof s);
}

static int cf_big_result(br_task *t) {
    int64_t n = br_task_arg_i64(t);
    unsigned char *buf = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 31 + 7);
    int rc = br_task_return(t, buf, (size_t)n);
    free(buf);
    return rc;
}

static int cf_no_result(br_task *t) {
    (void)t;
    return 0;
}

static void cf_free_int(void *p) { free(p); }

static int cf_ptr_result(br_task *t) {
    int *p = malloc(sizeof *p);
    *p = (int)br_task_arg_i64(t);
    int rc = br_task_return_ptr(t, p, cf_free_int);
    if (rc == BR_ENOTSUP) { /* an executor that crosses a process boundary */
        free(p);
        return br_task_return_i64(t, -1);
    }
    return rc;
}

static void conformance_submit_results(void **state) {
    (void)state;
    br_executor *ex = cf_make(2);
    BR_CHECK(br_executor_kind(ex) != NULL);
    BR_CHECK_EQ(br_executor_max_workers(ex), 2);

    /* bytes in, bytes out */
    cf_pair p = {40, 2};
    br_future *f1, *f2, *f3, *f4, *f5;
    BR_CHECK_OK(br_submit(ex, cf_pair_sum, &p, sizeof p, &f1));
    /* int64 in, int64 out */
    BR_CHECK_OK(br_submit_i64(ex, cf_square, -12, &f2));
    /* a result bigger than the inline room */
    BR_CHECK_OK(br_submit_i64(ex, cf_big_result, 5000, &f3));
    /* no result */
    BR_CHECK_OK(br_submit_call(ex, &(br_call){.fn = cf_no_result}, &f4));
    /* a pointer result, in-process executors only */
    BR_CHECK_OK(br_submit_i64(ex, cf_ptr_result, 77, &f5));

    int64_t v = 0;
    BR_CHECK_OK(br_future_result_i64(f1, br_test_hang_guard(), &v));
    BR_CHECK_EQ(v, 42);
    BR_CHECK_OK(br_future_result_i64(f2, br_test_hang_guard(), &v));
    BR_CHECK_EQ(v, 144);
    const void *d;
    size_t n;
    BR_CHECK_OK(br_future_result(f3, br_test_hang_guard(), &d, &n));
    BR_CHECK_EQ(n, 5000);
    for (size_t i = 0; i < n; i++)
        BR_CHECK_EQ(((const unsigned char *)d)[i], (unsigned char)(i * 31 + 7));
    BR_CHECK_OK(br_future_result(f4, br_test_hang_guard(), &d, &n));
    BR_CHECK_EQ(n, 0);
    void *ptr = NULL;
    int rc = br_future_result_ptr(f5, br_test_hang_guard(), &ptr);
    if (rc == 0) {
        BR_CHECK_EQ(*(int *)ptr, 77);
    } else {
        BR_CHECK_ERR(rc, BR_EINVAL); /* the ENOTSUP fallback returned an int64 */
        BR_CHECK_OK(br_future_result_i64(f5, BR_NOWAIT, &v));
        BR_CHECK_EQ(v, -1);
    }
    BR_CHECK_EQ(br_future_state_of(f1), BR_FUTURE_FINISHED);
    br_future_release(f1);
    br_future_release(f2);
    br_future_release(f3);
    br_future_release(f4);
    br_future_release(f5);
    BR_CHECK_OK(br_executor_free(ex));
}

static void conformance_bad_arguments(void **state) {
    (void)state;
    br_executor *ex = cf_make(1);
    br_future *f = (br_future *)1;
    BR_CHECK_ERR(br_submit(NULL, cf_square, NULL, 0, &f), BR_EINVAL);
    BR_CHECK(f == NULL);
    BR_CHECK_ERR(br_submit(ex, NULL, NULL, 0, &f), BR_EINVAL);
    BR_CHECK_ERR(br_submit(ex, cf_square, NULL, 8, &f), BR_EINVAL);
    BR_CHECK_ERR(br_submit_i64(ex, NULL, 1, &f), BR_EINVAL);
    BR_CHECK_ERR(br_submit_call(ex, NULL, &f), BR_EINVAL);
    BR_CHECK_ERR(br_submit_call(ex, &(br_call){.fn = NULL}, &f), BR_EINVAL);
    BR_CHECK_ERR(br_executor_shutdown(NULL, true, false), BR_EINVAL);
    BR_CHECK_EQ(br_executor_max_workers(NULL), BR_EINVAL);
    BR_CHECK(br_executor_kind(NULL) == NULL);
    BR_CHECK_OK(br_executor_free(ex));
}

/* --- failures ------------------------------------------------------------------------- */

static int cf_fail_task(br_task *t) {
    int64_t k = br_task_arg_i64(t);
    switch (k) {
    case 0:
        return br_task_fail(t, BR_EIO, "bad n: %d", 7);
    case 1: {
        char big[200];
        memset(big, 'm', sizeof big - 1);
        big[sizeof big - 1] = 0;
        return br_task_fail(t, BR_EFAILED, "%s!", big);
    }
    case 2:
        return BR_ENOENT; /* no message */
    case 3:
        br_task_return_i64(t, 5); /* a result, then a failure: the failure wins */
        return br_task_fail(t, BR_ERANGE, "late");
    default:
        return 3; /* positive: a task bug, reported as BR_EINVAL */
    }
}

static void conformance_failures(void **state) {
    (void)state;
    br_executor *ex = cf_make(2);
    br_future *f[5];
    for (int i = 0; i < 5; i++)
        BR_CHECK_OK(br_submit_i64(ex, cf_fail_task, i, &f[i]));
    int code;
    const char *msg;
    BR_CHECK_ERR(br_future_result(f[0], br_test_hang_guard(), NULL, NULL), BR_EIO);
    BR_CHECK_OK(br_future_exception(f[0], BR_NOWAIT, &code, &msg));
    BR_CHECK_EQ(code, BR_EIO);
    BR_CHECK(msg && strcmp(msg, "bad n: 7") == 0);
    BR_CHECK(br_future_failed(f[0]));

    BR_CHECK_OK(br_future_exception(f[1], br_test_hang_guard(), &code, &msg));
    BR_CHECK_EQ(code, BR_EFAILED);
    BR_CHECK(msg && strlen(msg) == 200 && msg[0] == 'm' && msg[199] == '!');

    BR_CHECK_OK(br_future_exception(f[2], br_test_hang_guard(), &code, &msg));
    BR_CHECK_EQ(code, BR_ENOENT);
    BR_CHECK(msg == NULL);

    int64_t v;
    BR_CHECK_ERR(br_future_result_i64(f[3], br_test_hang_guard(), &v), BR_ERANGE);
    BR_CHECK_ERR(br_future_result_i64(f[4], br_test_hang_guard(), &v), BR_EINVAL);
    BR_CHECK(br_future_failed(f[4]));
    for (int i = 0; i < 5; i++) {
        BR_CHECK_EQ(br_future_state_of(f[i]), BR_FUTURE_FINISHED);
        br_future_release(f[i]);
    }
    BR_CHECK_OK(br_executor_free(ex));
}

/* --- cancel ----------------------------------------------------------------------------- */

static void conformance_cancel_queued(void **state) {
    (void)state;
    br_executor *ex = cf_make(1);
    int gate = cf_gate();
    cf_block *b = cf_block_new(gate, 11);
    br_future *blocker = cf_submit_block(ex, b);
    cf_wait_started(b);
    BR_CHECK(br_future_running(blocker));
    BR_CHECK(!br_future_cancel(blocker)); /* running: Python says no */

    enum { N = 10 };
    br_future *q[N];
    for (int i = 0; i < N; i++)
        BR_CHECK_OK(br_submit_i64(ex, cf_count_task, 1, &q[i]));
    for (int i = 0; i < N; i += 2) {
        BR_CHECK(br_future_cancel(q[i]));
        BR_CHECK(br_future_cancelled(q[i]));
        BR_CHECK(br_future_done(q[i]));
        BR_CHECK_ERR(br_future_result(q[i], BR_NOWAIT, NULL, NULL), BR_ECANCELED);
    }
    cf_gate_open(gate);
    int64_t v;
    BR_CHECK_OK(br_future_result_i64(blocker, br_test_hang_guard(), &v));
    BR_CHECK_EQ(v, 11);
    for (int i = 0; i < N; i++) {
        int rc = br_future_result(q[i], br_test_hang_guard(), NULL, NULL);
        BR_CHECK_ERR(rc, i % 2 == 0 ? BR_ECANCELED : 0);
        BR_CHECK(!br_future_cancel(q[i]) == (i % 2 == 1));
    }
    BR_CHECK_OK(br_executor_shutdown(ex, true, false));
    BR_CHECK_EQ(cf_counted(), N / 2); /* the cancelled ones never ran */
    br_test_futures_release(q, N);
    br_future_release(blocker);
    BR_CHECK_OK(br_executor_free(ex));
}

static void conformance_request_cancel_running(void **state) {
    (void)state;
    br_executor *ex = cf_make(1);
    cf_block *b = cf_block_new(-1, 0); /* no gate: runs until asked to stop */
    br_future *f = cf_submit_block(ex, b);
    cf_wait_started(b);
    BR_CHECK(!br_future_cancel(f));
    BR_CHECK(br_future_request_cancel(f));
    BR_CHECK_ERR(br_future_result(f, br_test_hang_guard(), NULL, NULL), BR_ECANCELED);
    BR_CHECK(br_future_cancelled(f));
    BR_CHECK_EQ(atomic_load(&b->saw_cancel), 1);
    /* finished futures refuse */
    br_future *g;
    BR_CHECK_OK(br_submit_i64(ex, cf_square, 3, &g));
    BR_CHECK_OK(br_future_wait(g, br_test_hang_guard()));
    BR_CHECK(!br_future_request_cancel(g));
    br_future_release(g);
    br_future_release(f);
    BR_CHECK_OK(br_executor_free(ex));
}

/* --- deadlines ---------------------------------------------------------------------------- */

static void conformance_task_deadline(void **state) {
    (void)state;
    br_executor *ex = cf_make(1);
    int gate = cf_gate();
    cf_block *b = cf_block_new(gate, 1);
    br_future *blocker = cf_submit_block(ex, b);
    cf_wait_started(b);

    /* queued behind the blocker past its deadline: never runs, fails BR_ETIMEDOUT */
    int64_t dl = br_deadline_after(20 * BR_MSEC);
    int64_t one = 1;
    br_future *late;
    BR_CHECK_OK(br_submit_call(ex, &(br_call){.fn = cf_count_task, .arg = &one,
                                              .len = sizeof one, .deadline = dl,
                                              .flags = BR_CALL_COPY_ARG},
                               &late));
    br_sleep_until(dl); /* the condition under test, not a settle */
    cf_gate_open(gate);
    BR_CHECK_ERR(br_future_result(late, br_test_hang_guard(), NULL, NULL), BR_ETIMEDOUT);
    BR_CHECK(br_future_done(late));
    BR_CHECK(br_future_failed(late));
    BR_CHECK_EQ(cf_counted(), 0);

    /* a running task sees its deadline through br_task_cancelled; stopping then fails
     * the future with BR_ETIMEDOUT */
    cf_block *b2 = cf_block_new(-1, 0);
    /* long enough for an idle worker to start it even on a loaded machine */
    int64_t dl2 = br_deadline_after((int64_t)(100 * BR_MSEC * br_test_time_multiplier()));
    br_future *f2;
    int64_t id2 = b2->id;
    BR_CHECK_OK(br_submit_call(ex, &(br_call){.fn = cf_block_task, .arg = &id2,
                                              .len = sizeof id2, .deadline = dl2,
                                              .flags = BR_CALL_COPY_ARG},
                               &f2));
    BR_CHECK_ERR(br_future_result(f2, br_test_hang_guard(), NULL, NULL), BR_ETIMEDOUT);
    BR_CHECK(br_now() >= dl2);
    BR_CHECK_EQ(atomic_load(&b2->seen_deadline), dl2);
    BR_CHECK_EQ(atomic_load(&b2->saw_cancel), 1);

    /* a task without one sees BR_FOREVER */
    BR_CHECK_EQ(atomic_load(&b->seen_deadline), BR_FOREVER);

    /* result() with a deadline on a task that isn't done */
    int gate3 = cf_gate();
    cf_block *b3 = cf_block_new(gate3, 5);
    br_future *f3 = cf_submit_block(ex, b3);
    int64_t start = br_now();
    BR_CHECK_ERR(br_future_result(f3, start + 10 * BR_MSEC, NULL, NULL), BR_ETIMEDOUT);
    BR_CHECK(br_now() >= start + 10 * BR_MSEC);
    BR_CHECK(!br_future_done(f3));
    cf_gate_open(gate3);
    int64_t v;
    BR_CHECK_OK(br_future_result_i64(f3, br_test_hang_guard(), &v));
    BR_CHECK_EQ(v, 5);

    br_future_release(f3);
    br_future_release(f2);
    br_future_release(late);
    br_future_release(blocker);
    BR_CHECK_OK(br_executor_free(ex));
}

/* --- arguments ------------------------------------------------------------------------- */

static int cf_checksum(br_task *t) {
    size_t len;
    const void *p = br_task_arg(t, &len);
    return br_task_return_i64(t, br_test_checksum(p, len));
}

static void conformance_copy_arg(void **state) {
    (void)state;
    br_executor *ex = cf_make(1);
    int gate = cf_gate();
    cf_block *b = cf_block_new(gate, 0);
    br_future *blocker = cf_submit_block(ex, b); /* the copies run after we scribble */
    cf_wait_started(b);

    size_t sizes[] = {1, 8, 15, 16, 17, 32, 33, 1000}; /* inline up to 16, heap above */
    enum { NS = sizeof sizes / sizeof sizes[0] };
    /* Tasks in other processes get a copy whether asked or not (the bytes cross at
     * submit: braid/processpool.h): there the same holds without the flag. */
    int rounds = CONFORMANCE_SHARED_MEMORY ? 1 : 2;
    br_future *f[2][NS];
    int64_t want[NS];
    unsigned char buf[1000];
    for (int r = 0; r < rounds; r++)
        for (size_t k = 0; k < NS; k++) {
            for (size_t i = 0; i < sizes[k]; i++)
                buf[i] = (unsigned char)(i + k * 13);
            want[k] = br_test_checksum(buf, sizes[k]);
            BR_CHECK_OK(br_submit_call(ex, &(br_call){.fn = cf_checksum, .arg = buf,
                                                      .len = sizes[k],
                                                      .flags = r == 0 ? BR_CALL_COPY_ARG : 0},
                                       &f[r][k]));
            memset(buf, 0xEE, sizeof buf); /* the caller reuses its buffer at once */
        }
    cf_gate_open(gate);
    for (int r = 0; r < rounds; r++)
        for (size_t k = 0; k < NS; k++) {
            int64_t v;
            BR_CHECK_OK(br_future_result_i64(f[r][k], br_test_hang_guard(), &v));
            BR_CHECK_EQ(v, want[k]);
            br_future_release(f[r][k]);
        }
    br_future_release(blocker);
    BR_CHECK_OK(br_executor_free(ex));
}

static void conformance_fire_and_forget(void **state) {
    (void)state;
    br_executor *ex = cf_make(2);
    long n = br_test_scaled(2000, 100);
    for (long i = 1; i <= n; i++)
        BR_CHECK_OK(br_submit_i64(ex, cf_count_task, i, NULL));
    BR_CHECK_OK(br_executor_shutdown(ex, true, false)); /* runs everything queued */
    BR_CHECK_EQ(cf_counted(), n * (n + 1) / 2);
    BR_CHECK_OK(br_executor_free(ex));
}

/* --- callbacks ------------------------------------------------------------------------------ */

typedef struct cf_cb {
    _Atomic int calls;
    _Atomic int not_done; /* calls that found the future not done (checked by the test) */
    int seen_order[3];    /* the ids of the registrations, in the order they ran */
    br_future *two_done;  /* completed by the second call */
} cf_cb;

/* One registration: which record and which id it writes there. */
typedef struct cf_cb_reg {
    cf_cb *c;
    int id;
} cf_cb_reg;

/* Runs on whichever thread completes f (a worker): records, never checks. */
static void cf_cb_record(br_future *f, void *arg) {
    const cf_cb_reg *reg = arg;
    cf_cb *c = reg->c;
    if (!br_future_done(f))
        atomic_fetch_add(&c->not_done, 1);
    int k = atomic_fetch_add(&c->calls, 1);
    if (k < 3)
        c->seen_order[k] = reg->id;
    if (k == 1)
        br_future_set_result_i64(c->two_done, 1);
}

typedef struct cf_rel {
    _Atomic int calls;
    br_future *done;
} cf_rel;

static void cf_cb_release(br_future *f, void *arg) {
    cf_rel *r = arg;
    atomic_fetch_add(&r->calls, 1);
    br_future_release(f); /* the last reference, from inside the callback */
    br_future_set_result_i64(r->done, 1);
}

static void conformance_done_callbacks(void **state) {
    (void)state;
    br_executor *ex = cf_make(1);
    int gate = cf_gate();
    cf_block *b = cf_block_new(gate, 3);
    br_future *f = cf_submit_block(ex, b);
    cf_cb c = {.two_done = cf_future(), .seen_order = {-1, -1, -1}};
    cf_cb_reg regs[3] = {{&c, 0}, {&c, 1}, {&c, 2}};
    BR_CHECK_OK(br_future_add_done_callback(f, cf_cb_record, &regs[0]));
    BR_CHECK_OK(br_future_add_done_callback(f, cf_cb_record, &regs[1]));
    BR_CHECK_EQ(atomic_load(&c.calls), 0);
    cf_rel r = {.done = cf_future()};
    br_future *g;
    BR_CHECK_OK(br_submit_i64(ex, cf_square, 2, &g));
    BR_CHECK_OK(br_future_add_done_callback(g, cf_cb_release, &r)); /* may run at once */
    cf_gate_open(gate);
    /* callbacks run on the completing thread, maybe after waiters woke: wait for them */
    BR_CHECK_OK(br_future_wait(c.two_done, br_test_hang_guard()));
    BR_CHECK_OK(br_future_wait(r.done, br_test_hang_guard()));
    BR_CHECK_OK(br_future_add_done_callback(f, cf_cb_record, &regs[2])); /* runs at once */
    BR_CHECK_EQ(atomic_load(&c.calls), 3);
    BR_CHECK_EQ(atomic_load(&c.not_done), 0);
    BR_CHECK_EQ(c.seen_order[0], 0);
    BR_CHECK_EQ(c.seen_order[1], 1);
    BR_CHECK_EQ(c.seen_order[2], 2);
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_EQ(atomic_load(&c.calls), 3);
    BR_CHECK_EQ(atomic_load(&r.calls), 1);
    br_future_release(f);
    br_future_release(c.two_done);
    br_future_release(r.done);
}

/* --- wait and as_completed -------------------------------------------------------------------- */

static void conformance_wait(void **state) {
    (void)state;
    enum { N = 4 };
    br_executor *ex = cf_make(N);
    int gates[N];
    br_future *fs[N];
    cf_block *bs[N];
    for (int i = 0; i < N; i++) {
        gates[i] = cf_gate();
        bs[i] = cf_block_new(gates[i], i);
        fs[i] = cf_submit_block(ex, bs[i]);
    }
    for (int i = 0; i < N; i++)
        cf_wait_started(bs[i]);
    br_future *sets[N];
    size_t nd, nn;
    /* nothing done yet */
    BR_CHECK_ERR(br_wait(fs, N, BR_FIRST_COMPLETED, BR_NOWAIT, sets, &nd, &nn), BR_ETIMEDOUT);
    BR_CHECK_EQ(nd, 0);
    BR_CHECK_EQ(nn, N);
    /* one done */
    cf_gate_open(gates[2]);
    BR_CHECK_OK(br_wait(fs, N, BR_FIRST_COMPLETED, br_test_hang_guard(), sets, &nd, &nn));
    BR_CHECK(nd >= 1);
    BR_CHECK(sets[0] == fs[2]);
    BR_CHECK_ERR(br_wait(fs, N, BR_ALL_COMPLETED, br_deadline_after(5 * BR_MSEC), sets, &nd,
                         &nn),
                 BR_ETIMEDOUT);
    BR_CHECK_EQ(nd, 1);
    BR_CHECK_EQ(nn, N - 1);
    BR_CHECK(sets[1] == fs[0] && sets[2] == fs[1] && sets[3] == fs[3]);
    /* all done */
    cf_gate_open(gates[0]);
    cf_gate_open(gates[1]);
    cf_gate_open(gates[3]);
    BR_CHECK_OK(br_wait(fs, N, BR_ALL_COMPLETED, br_test_hang_guard(), sets, &nd, &nn));
    BR_CHECK_EQ(nd, N);
    BR_CHECK_EQ(nn, 0);
    for (int i = 0; i < N; i++) {
        BR_CHECK(sets[i] == fs[i]);
        br_future_release(fs[i]);
    }
    BR_CHECK_OK(br_executor_free(ex));
}

static void conformance_wait_first_exception(void **state) {
    (void)state;
    br_executor *ex = cf_make(2);
    enum { N = 50 };
    br_future *fs[N];
    for (int i = 0; i < N; i++)
        BR_CHECK_OK(br_submit_i64(ex, i == 37 ? cf_fail_task : cf_square, i == 37 ? 2 : i,
                                  &fs[i]));
    size_t nd, nn;
    BR_CHECK_OK(br_wait(fs, N, BR_FIRST_EXCEPTION, br_test_hang_guard(), NULL, &nd, &nn));
    BR_CHECK(br_future_failed(fs[37]));
    BR_CHECK_OK(br_wait(fs, N, BR_ALL_COMPLETED, br_test_hang_guard(), NULL, &nd, &nn));
    BR_CHECK_EQ(nd, N);
    br_test_futures_release(fs, N);
    BR_CHECK_OK(br_executor_free(ex));
}

static void conformance_as_completed(void **state) {
    (void)state;
    enum { N = 4 };
    br_executor *ex = cf_make(N);
    int gates[N];
    br_future *fs[N + 1];
    cf_block *bs[N];
    for (int i = 0; i < N; i++) {
        gates[i] = cf_gate();
        bs[i] = cf_block_new(gates[i], 100 + i);
        fs[i] = cf_submit_block(ex, bs[i]);
    }
    fs[N] = fs[1]; /* a duplicate is yielded once */
    for (int i = 0; i < N; i++)
        cf_wait_started(bs[i]);
    br_as_completed *it;
    BR_CHECK_OK(br_as_completed_new(&it, fs, N + 1, br_test_hang_guard()));
    int order[N] = {2, 0, 3, 1};
    for (int k = 0; k < N; k++) {
        cf_gate_open(gates[order[k]]);
        br_future *got;
        BR_CHECK_OK(br_as_completed_next(it, &got));
        BR_CHECK(got == fs[order[k]]);
        int64_t v;
        BR_CHECK_OK(br_future_result_i64(got, BR_NOWAIT, &v));
        BR_CHECK_EQ(v, 100 + order[k]);
    }
    br_future *got;
    BR_CHECK_ERR(br_as_completed_next(it, &got), BR_EOF);
    BR_CHECK_OK(br_as_completed_free(it));
    for (int i = 0; i < N; i++) {
        br_future_release(fs[i]);
    }
    BR_CHECK_OK(br_executor_free(ex));
}

/* --- map ------------------------------------------------------------------------------------- */

static int cf_map_fn(br_task *t) {
    int32_t x;
    memcpy(&x, br_task_arg(t, NULL), sizeof x);
    if (x % 13 == 5)
        return br_task_fail(t, BR_ERANGE, "no %d", (int)x);
    return br_task_return_i64(t, (int64_t)x * 3);
}

static void conformance_map(void **state) {
    (void)state;
    br_executor *ex = cf_make(3);
    enum { N = 200 };
    int32_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    size_t chunks[] = {0, 1, 7, 64, 1000};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        br_map *m;
        BR_CHECK_OK(br_map_new(&m, ex, cf_map_fn, in, N, sizeof in[0],
                               &(br_map_opts){.chunksize = chunks[c], .buffersize = c}));
        for (int i = 0; i < N; i++) {
            int64_t v = -1;
            int rc = br_map_next_i64(m, &v);
            if (i % 13 == 5) {
                BR_CHECK_ERR(rc, BR_ERANGE);
            } else {
                BR_CHECK_OK(rc);
                BR_CHECK_EQ(v, (int64_t)i * 3);
            }
        }
        int64_t v;
        BR_CHECK_ERR(br_map_next_i64(m, &v), BR_EOF);
        BR_CHECK_OK(br_map_free(m));
    }
    /* the failure's message comes back in *data */
    br_map *m;
    BR_CHECK_OK(br_map_new(&m, ex, cf_map_fn, in + 5, 1, sizeof in[0], NULL));
    const void *d;
    size_t len;
    BR_CHECK_ERR(br_map_next(m, &d, &len), BR_ERANGE);
    BR_CHECK(d != NULL && strcmp(d, "no 5") == 0);
    BR_CHECK_ERR(br_map_next(m, &d, &len), BR_EOF);
    BR_CHECK_OK(br_map_free(m));
    /* an empty map */
    BR_CHECK_OK(br_map_new(&m, ex, cf_map_fn, NULL, 0, sizeof in[0], NULL));
    BR_CHECK_ERR(br_map_next(m, &d, &len), BR_EOF);
    BR_CHECK_OK(br_map_free(m));
    BR_CHECK_OK(br_executor_free(ex));
}

static void conformance_map_free_early(void **state) {
    (void)state;
    br_executor *ex = cf_make(2);
    enum { N = 500 };
    int32_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i * 13 + 1; /* never fails */
    br_map *m;
    BR_CHECK_OK(br_map_new(&m, ex, cf_map_fn, in, N, sizeof in[0],
                           &(br_map_opts){.chunksize = 3}));
    for (int i = 0; i < 10; i++) {
        int64_t v;
        BR_CHECK_OK(br_map_next_i64(m, &v));
        BR_CHECK_EQ(v, (int64_t)in[i] * 3);
    }
    BR_CHECK_OK(br_map_free(m)); /* cancels the rest, waits for the running ones */
    BR_CHECK_OK(br_executor_free(ex));
}

/* --- shutdown --------------------------------------------------------------------------------- */

static void conformance_shutdown_wait(void **state) {
    (void)state;
    br_executor *ex = cf_make(2);
    enum { N = 100 };
    br_future *fs[N];
    for (int i = 0; i < N; i++)
        BR_CHECK_OK(br_submit_i64(ex, cf_square, i, &fs[i]));
    BR_CHECK_OK(br_executor_shutdown(ex, true, false));
    for (int i = 0; i < N; i++) {
        BR_CHECK(br_future_done(fs[i])); /* wait=true: everything finished */
        int64_t v;
        BR_CHECK_OK(br_future_result_i64(fs[i], BR_NOWAIT, &v));
        BR_CHECK_EQ(v, (int64_t)i * i);
        br_future_release(fs[i]);
    }
    BR_CHECK_OK(br_executor_shutdown(ex, true, false)); /* again: fine */
    BR_CHECK_OK(br_executor_shutdown(ex, false, true));
    BR_CHECK_OK(br_executor_free(ex));
}

static void conformance_submit_after_shutdown(void **state) {
    (void)state;
    br_executor *ex = cf_make(1);
    BR_CHECK_OK(br_executor_shutdown(ex, false, false));
    br_future *f = (br_future *)1;
    BR_CHECK_ERR(br_submit_i64(ex, cf_square, 1, &f), BR_ESHUTDOWN);
    BR_CHECK(f == NULL);
    BR_CHECK_ERR(br_submit_i64(ex, cf_square, 1, NULL), BR_ESHUTDOWN);
    int64_t x = 3;
    BR_CHECK_ERR(br_submit(ex, cf_square, &x, sizeof x, &f), BR_ESHUTDOWN);
    BR_CHECK_ERR(br_submit_call(ex, &(br_call){.fn = cf_square, .arg = &x, .len = sizeof x,
                                               .flags = BR_CALL_COPY_ARG},
                                &f),
                 BR_ESHUTDOWN);
    unsigned char big[100] = {0}; /* a heap copy, freed again when the submit fails */
    BR_CHECK_ERR(br_submit_call(ex, &(br_call){.fn = cf_square, .arg = big, .len = sizeof big,
                                               .flags = BR_CALL_COPY_ARG},
                                NULL),
                 BR_ESHUTDOWN);
    int32_t in[4] = {1, 2, 3, 4};
    br_future *fs[4] = {(br_future *)1, (br_future *)1, (br_future *)1, (br_future *)1};
    size_t q = 9;
    BR_CHECK_ERR(br_submit_batch(ex, cf_map_fn, in, 4, sizeof in[0], fs, &q), BR_ESHUTDOWN);
    BR_CHECK(fs[0] == NULL && fs[1] == NULL && fs[2] == NULL && fs[3] == NULL && q == 0);
    BR_CHECK_ERR(br_submit_batch(ex, cf_map_fn, in, 4, sizeof in[0], NULL, NULL),
                 BR_ESHUTDOWN);
    br_map *m = (br_map *)1;
    BR_CHECK_ERR(br_map_new(&m, ex, cf_map_fn, in, 4, sizeof in[0], NULL), BR_ESHUTDOWN);
    BR_CHECK(m == NULL);
    BR_CHECK_OK(br_executor_free(ex));
}

static void conformance_shutdown_cancel_futures(void **state) {
    (void)state;
    br_executor *ex = cf_make(1);
    cf_block *b = cf_block_new(-1, 0); /* runs until asked to stop */
    br_future *running = cf_submit_block(ex, b);
    cf_wait_started(b);
    enum { N = 20 };
    br_future *q[N];
    for (int i = 0; i < N; i++)
        BR_CHECK_OK(br_submit_i64(ex, cf_count_task, 1, &q[i]));
    BR_CHECK_OK(br_executor_shutdown(ex, false, true));
    /* queued: cancelled by the time shutdown returns */
    for (int i = 0; i < N; i++) {
        BR_CHECK(br_future_cancelled(q[i]));
        BR_CHECK_ERR(br_future_result(q[i], BR_NOWAIT, NULL, NULL), BR_ECANCELED);
    }
    /* running: asked to stop (br_task_cancelled), and it did */
    BR_CHECK_ERR(br_future_result(running, br_test_hang_guard(), NULL, NULL), BR_ECANCELED);
    BR_CHECK_EQ(atomic_load(&b->saw_cancel), 1);
    BR_CHECK_OK(br_executor_shutdown(ex, true, true));
    BR_CHECK_EQ(cf_counted(), 0);
    br_test_futures_release(q, N);
    br_future_release(running);
    BR_CHECK_OK(br_executor_free(ex));
}

/* A task asks its own executor to shut down and wait: it can't wait for itself, so the
 * call is BR_EDEADLK (and never hangs).
 *
 * In this process (CONFORMANCE_SHARED_MEMORY) the task calls br_executor_shutdown on its
 * executor itself. A task in a worker process can't: the executor is the submitting
 * process's (the handle means nothing in the worker; a forked worker's copy of it
 * shuts nothing down). So it asks: it raises the channel's `asked` flag, and the
 * request is carried out in the submitting process, on the executor's own thread (the
 * one that completes its futures, where its done-callbacks run): the future's
 * done-callback sees the flag and calls br_executor_shutdown(ex, true, false) there,
 * which must be BR_EDEADLK as from a thread pool's worker. The gate keeps the task from
 * finishing before the callback is registered, so the callback runs on that thread and
 * not at once on the test's. The shutdown itself takes effect: submits fail after it. */
static br_executor *cf_self_ex;

static int cf_shutdown_self(br_task *t) {
    if (CONFORMANCE_SHARED_MEMORY)
        return br_executor_shutdown(cf_self_ex, true, false); /* BR_EDEADLK */
    cf_channel *ch = cf_chan();
    if (ch == NULL)
        return CF_NO_CHANNEL;
    int64_t id = br_task_arg_i64(t);
    atomic_store(&ch->asked, 1);
    while (br_mp_event_wait(&ch->gates[ch->blocks[id].gate], br_deadline_after(BR_MSEC)) != 0)
        if (br_task_cancelled(t))
            return BR_ECANCELED;
    return 0;
}

typedef struct cf_shut {
    _Atomic int rc, calls;
    br_future *done;
} cf_shut;

static void cf_shutdown_cb(br_future *f, void *arg) {
    (void)f;
    cf_shut *s = arg;
    int rc = 1; /* not asked */
    if (atomic_load(&atomic_load(&cf_ch)->asked))
        rc = br_executor_shutdown(cf_self_ex, true, false);
    atomic_store(&s->rc, rc);
    atomic_fetch_add(&s->calls, 1);
    br_future_set_result_i64(s->done, 1);
}

static void conformance_shutdown_from_worker(void **state) {
    (void)state;
    br_executor *ex = cf_make(1);
    cf_self_ex = ex;
    br_future *f;
    if (CONFORMANCE_SHARED_MEMORY) {
        BR_CHECK_OK(br_submit_i64(ex, cf_shutdown_self, 0, &f));
        BR_CHECK_ERR(br_future_result(f, br_test_hang_guard(), NULL, NULL), BR_EDEADLK);
    } else {
        int gate = cf_gate();
        cf_block *b = cf_block_new(gate, 0); /* the gate's holder, for the task */
        cf_shut s = {.done = cf_future()};
        BR_CHECK_OK(br_submit_i64(ex, cf_shutdown_self, b->id, &f));
        BR_CHECK_OK(br_future_add_done_callback(f, cf_shutdown_cb, &s));
        cf_gate_open(gate);
        BR_CHECK_OK(br_future_result(f, br_test_hang_guard(), NULL, NULL));
        BR_CHECK_OK(br_future_wait(s.done, br_test_hang_guard()));
        BR_CHECK_EQ(atomic_load(&s.calls), 1);
        BR_CHECK_ERR(atomic_load(&s.rc), BR_EDEADLK);
        BR_CHECK_ERR(br_submit_i64(ex, cf_square, 1, NULL), BR_ESHUTDOWN);
        br_future_release(s.done);
    }
    br_future_release(f);
    BR_CHECK_OK(br_executor_free(ex));
}

/* --- parallel_for ------------------------------------------------------------------------------ */

static int cf_range_sum(int64_t begin, int64_t end, void *ctx) {
    int64_t s = 0;
    for (int64_t i = begin; i < end; i++)
        s += i;
    atomic_fetch_add((_Atomic int64_t *)ctx, s);
    return 0;
}

static void conformance_parallel_for(void **state) {
    (void)state;
    br_executor *ex = cf_make(2);
    _Atomic int64_t sum = 0;
    int rc = br_parallel_for(ex, 0, 100000, 0, cf_range_sum, (void *)&sum);
    if (rc != BR_ENOTSUP) {
        BR_CHECK_OK(rc);
        BR_CHECK_EQ(atomic_load(&sum), (int64_t)100000 * 99999 / 2);
    }
    BR_CHECK_ERR(br_parallel_for(ex, 5, 4, 0, cf_range_sum, (void *)&sum), BR_EINVAL);
    BR_CHECK_OK(br_executor_free(ex));
}

/* --- br_submit_batch ----------------------------------------------------------------- */

static int cf_arg_len(br_task *t) {
    size_t len = 99;
    (void)br_task_arg(t, &len);
    return br_task_return_i64(t, (int64_t)len + 7);
}

/* Values, failures and messages as count br_submit calls would give them; more than
 * one slice (the generic layer hands the backend 256 at a time); no futures; an empty
 * batch; no arguments; bad arguments. */
static void conformance_submit_batch(void **state) {
    (void)state;
    br_executor *ex = cf_make(2);
    enum { N = 600 };
    int32_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    br_future *f[N];
    size_t q = 12345;
    BR_CHECK_OK(br_submit_batch(ex, cf_map_fn, in, N, sizeof in[0], f, &q));
    BR_CHECK_EQ(q, N);
    for (int i = 0; i < N; i++) {
        int64_t v = -1;
        int rc = br_future_result_i64(f[i], br_test_hang_guard(), &v);
        if (i % 13 == 5) {
            BR_CHECK_ERR(rc, BR_ERANGE);
        } else {
            BR_CHECK_OK(rc);
            BR_CHECK_EQ(v, (int64_t)i * 3);
        }
        BR_CHECK(br_future_done(f[i]));
        br_future_release(f[i]);
    }
    const char *msg = NULL;
    int code = 0;
    BR_CHECK_OK(br_submit_batch(ex, cf_map_fn, in + 5, 1, sizeof in[0], f, NULL));
    BR_CHECK_OK(br_future_exception(f[0], br_test_hang_guard(), &code, &msg));
    BR_CHECK_EQ(code, BR_ERANGE);
    BR_CHECK(msg != NULL && strcmp(msg, "no 5") == 0);
    br_future_release(f[0]);

    /* size 0: no argument for any task; args may be NULL */
    BR_CHECK_OK(br_submit_batch(ex, cf_arg_len, NULL, 3, 0, f, &q));
    BR_CHECK_EQ(q, 3);
    for (int i = 0; i < 3; i++) {
        int64_t v = -1;
        BR_CHECK_OK(br_future_result_i64(f[i], br_test_hang_guard(), &v));
        BR_CHECK_EQ(v, 7);
        br_future_release(f[i]);
    }
    /* an empty batch */
    q = 1;
    BR_CHECK_OK(br_submit_batch(ex, cf_map_fn, NULL, 0, sizeof in[0], f, &q));
    BR_CHECK_EQ(q, 0);
    /* no futures: the tasks run all the same (counted once the executor is freed,
     * which waits for them) */
    static int64_t ones[N];
    for (int i = 0; i < N; i++)
        ones[i] = 1;
    BR_CHECK_OK(br_submit_batch(ex, cf_count_task, ones, N, sizeof ones[0], NULL, &q));
    BR_CHECK_EQ(q, N);

    /* bad arguments: BR_EINVAL, nothing queued, no futures */
    for (int i = 0; i < 3; i++)
        f[i] = (br_future *)1;
    q = 7;
    BR_CHECK_ERR(br_submit_batch(NULL, cf_map_fn, in, 3, sizeof in[0], f, &q), BR_EINVAL);
    BR_CHECK(f[0] == NULL && f[1] == NULL && f[2] == NULL && q == 0);
    BR_CHECK_ERR(br_submit_batch(ex, NULL, in, 3, sizeof in[0], f, &q), BR_EINVAL);
    BR_CHECK_ERR(br_submit_batch(ex, cf_map_fn, NULL, 3, sizeof in[0], f, &q), BR_EINVAL);
    BR_CHECK(f[0] == NULL && f[1] == NULL && f[2] == NULL && q == 0);
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_EQ(cf_counted(), N);
}

/* Appends its argument to the channel's log. */
static int cf_log_task(br_task *t) {
    cf_channel *ch = cf_chan();
    if (ch == NULL)
        return CF_NO_CHANNEL;
    long k = atomic_fetch_add(&ch->nlog, 1);
    if (k >= CF_LOG)
        return br_task_fail(t, BR_ERANGE, "log full");
    ch->log[k] = br_task_arg_i64(t);
    return 0;
}

/* With one worker, a batch runs in index order, between the submits before and after
 * it: a batch is queued as that many submits in a row would be. */
static void conformance_submit_batch_order(void **state) {
    (void)state;
    br_executor *ex = cf_make(1);
    enum { N = 700 };
    int64_t in[N + 2];
    for (int i = 0; i < N + 2; i++)
        in[i] = i;
    br_future *f[N + 2];
    BR_CHECK_OK(br_submit_i64(ex, cf_log_task, 0, &f[0]));
    size_t q;
    BR_CHECK_OK(br_submit_batch(ex, cf_log_task, in + 1, N, sizeof in[0], f + 1, &q));
    BR_CHECK_EQ(q, N);
    BR_CHECK_OK(br_submit_i64(ex, cf_log_task, N + 1, &f[N + 1]));
    BR_CHECK_OK(
        br_wait(f, N + 2, BR_ALL_COMPLETED, br_test_hang_guard(), NULL, NULL, NULL));
    for (int i = 0; i < N + 2; i++) {
        BR_CHECK_OK(br_future_result(f[i], BR_NOWAIT, NULL, NULL));
        br_future_release(f[i]);
    }
    cf_channel *ch = atomic_load(&cf_ch);
    BR_CHECK_EQ(atomic_load(&ch->nlog), N + 2);
    for (int i = 0; i < N + 2; i++)
        BR_CHECK_EQ(ch->log[i], i);
    BR_CHECK_OK(br_executor_free(ex));
}

/* --- stress ---------------------------------------------------------------------------------------- */

typedef struct cf_stress_slot {
    br_future *f;
    int64_t arg;
    _Atomic int callbacks;
} cf_stress_slot;

typedef struct cf_stress {
    br_executor *ex;
    long per_thread;
    cf_stress_slot *slots; /* CF_SUBMITTERS * per_thread */
} cf_stress;

static cf_stress *cf_st;

static int cf_stress_task(br_task *t) {
    cf_channel *ch = cf_chan();
    if (ch == NULL)
        return CF_NO_CHANNEL;
    atomic_fetch_add(&ch->ran, 1);
    return br_task_return_i64(t, br_task_arg_i64(t) * 2);
}

static void cf_stress_cb(br_future *f, void *arg) {
    (void)f;
    atomic_fetch_add(&((cf_stress_slot *)arg)->callbacks, 1);
}

typedef struct {
    int id;
} cf_submitter_arg;

static void *cf_submitter(void *p) {
    int id = ((cf_submitter_arg *)p)->id;
    unsigned seed = 12345u + (unsigned)id * 7919u;
    for (long i = 0; i < cf_st->per_thread; i++) {
        cf_stress_slot *s = &cf_st->slots[id * cf_st->per_thread + i];
        s->arg = (int64_t)(rand_r(&seed) % 1000);
        if (br_submit_i64(cf_st->ex, cf_stress_task, s->arg, &s->f) != 0)
            abort();
        br_future_add_done_callback(s->f, cf_stress_cb, s);
        unsigned r = (unsigned)rand_r(&seed) % 8;
        if (r == 0)
            br_future_cancel(s->f);
        else if (r == 1)
            br_future_request_cancel(s->f);
        else if (r == 2 && i > 0) /* cancel an older one, maybe already running */
            br_future_cancel(cf_st->slots[id * cf_st->per_thread + (long)(seed % (unsigned)i)].f);
    }
    return NULL;
}

static void conformance_stress(void **state) {
    (void)state;
    br_executor *ex = cf_make(2);
    cf_stress st = {.ex = ex, .per_thread = br_test_scaled(20000, 500)};
    long total = CF_SUBMITTERS * st.per_thread;
    st.slots = calloc((size_t)total, sizeof *st.slots);
    cf_st = &st;
    pthread_t th[CF_SUBMITTERS];
    cf_submitter_arg args[CF_SUBMITTERS];
    for (int i = 0; i < CF_SUBMITTERS; i++) {
        args[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, cf_submitter, &args[i]), 0);
    }
    for (int i = 0; i < CF_SUBMITTERS; i++)
        pthread_join(th[i], NULL);
    br_future **all = malloc((size_t)total * sizeof *all);
    for (long i = 0; i < total; i++)
        all[i] = st.slots[i].f;
    size_t nd, nn;
    BR_CHECK_OK(br_wait(all, (size_t)total, BR_ALL_COMPLETED, br_test_hang_guard(), NULL,
                        &nd, &nn));
    BR_CHECK_EQ(nd, total);
    /* Callbacks run on the completing thread, after waiters wake: once the workers
     * have exited (shutdown with wait), every one of them has returned. */
    BR_CHECK_OK(br_executor_shutdown(ex, true, false));
    long finished = 0, cancelled = 0;
    int64_t sum = 0, want = 0;
    for (long i = 0; i < total; i++) {
        cf_stress_slot *s = &st.slots[i];
        BR_CHECK_EQ(atomic_load(&s->callbacks), 1); /* resolved exactly once */
        br_future_state fs = br_future_state_of(s->f);
        if (fs == BR_FUTURE_CANCELLED) {
            cancelled++;
            BR_CHECK_ERR(br_future_result(s->f, BR_NOWAIT, NULL, NULL), BR_ECANCELED);
        } else {
            BR_CHECK_EQ(fs, BR_FUTURE_FINISHED);
            finished++;
            int64_t v;
            BR_CHECK_OK(br_future_result_i64(s->f, BR_NOWAIT, &v));
            sum += v;
            want += 2 * s->arg;
        }
        br_future_release(s->f);
    }
    BR_CHECK_EQ(finished + cancelled, total);
    BR_CHECK_EQ(sum, want);
    /* tasks that ran = futures that finished (a cancelled one never ran; a
     * request_cancel on a running task that doesn't poll finishes normally) */
    BR_CHECK_EQ(atomic_load(&atomic_load(&cf_ch)->ran), finished);
    free(all);
    free(st.slots);
    BR_CHECK_OK(br_executor_free(ex));
}

/* Batches from several threads at once, of every size from 1 to past a slice, with
 * futures or without: every task runs exactly once with its own argument, every
 * future is done with its own result, nothing is lost or run twice. */
typedef struct cf_bstress {
    br_executor *ex;
    long per_thread;
    int64_t *args;     /* CF_SUBMITTERS * per_thread */
    br_future **futs;  /* NULL where the batch kept no future */
} cf_bstress;

static cf_bstress *cf_bst;

static int cf_bstress_task(br_task *t) {
    int64_t a = br_task_arg_i64(t);
    cf_channel *ch = cf_chan();
    if (ch == NULL || a < 0 || a >= ch->nruns)
        return br_task_fail(t, CF_NO_CHANNEL, "no channel or room for %lld", (long long)a);
    atomic_fetch_add(&ch->runs[a], 1);
    return br_task_return_i64(t, a * 2 + 1);
}

static void *cf_batch_submitter(void *p) {
    int id = ((cf_submitter_arg *)p)->id;
    unsigned seed = 777u + (unsigned)id * 104729u;
    long base = id * cf_bst->per_thread, done = 0;
    while (done < cf_bst->per_thread) {
        long n = 1 + (long)(rand_r(&seed) % 300u);
        if (n > cf_bst->per_thread - done)
            n = cf_bst->per_thread - done;
        bool keep = rand_r(&seed) % 4u != 0;
        size_t q = 0;
        if (br_submit_batch(cf_bst->ex, cf_bstress_task, cf_bst->args + base + done,
                            (size_t)n, sizeof(int64_t),
                            keep ? cf_bst->futs + base + done : NULL, &q) != 0 ||
            q != (size_t)n)
            abort();
        done += n;
    }
    return NULL;
}

static void conformance_batch_stress(void **state) {
    (void)state;
    br_executor *ex = cf_make(2);
    cf_bstress st = {.ex = ex, .per_thread = br_test_scaled(20000, 1000)};
    long total = CF_SUBMITTERS * st.per_thread;
    st.args = calloc((size_t)total, sizeof *st.args);
    st.futs = calloc((size_t)total, sizeof *st.futs);
    cf_channel *ch = atomic_load(&cf_ch);
    BR_CHECK(total <= ch->nruns);
    for (long i = 0; i < total; i++)
        st.args[i] = i;
    cf_bst = &st;
    pthread_t th[CF_SUBMITTERS];
    cf_submitter_arg args[CF_SUBMITTERS];
    for (int i = 0; i < CF_SUBMITTERS; i++) {
        args[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, cf_batch_submitter, &args[i]), 0);
    }
    for (int i = 0; i < CF_SUBMITTERS; i++)
        pthread_join(th[i], NULL);
    /* shutdown(wait): every task has run, futures kept or not */
    BR_CHECK_OK(br_executor_shutdown(ex, true, false));
    long kept = 0;
    for (long i = 0; i < total; i++) {
        BR_CHECK_EQ(atomic_load(&ch->runs[i]), 1);
        if (st.futs[i] == NULL)
            continue;
        kept++;
        BR_CHECK_EQ(br_future_state_of(st.futs[i]), BR_FUTURE_FINISHED);
        int64_t v = -1;
        BR_CHECK_OK(br_future_result_i64(st.futs[i], BR_NOWAIT, &v));
        BR_CHECK_EQ(v, 2 * i + 1);
        br_future_release(st.futs[i]);
    }
    BR_CHECK(kept > 0);
    free(st.args);
    free(st.futs);
    BR_CHECK_OK(br_executor_free(ex));
}

#define BR_CONFORMANCE_TESTS                                                           \
    cmocka_unit_test(conformance_submit_results),                                      \
        cmocka_unit_test(conformance_bad_arguments),                                   \
        cmocka_unit_test(conformance_failures),                                        \
        cmocka_unit_test(conformance_cancel_queued),                                   \
        cmocka_unit_test(conformance_request_cancel_running),                          \
        cmocka_unit_test(conformance_task_deadline),                                   \
        cmocka_unit_test(conformance_copy_arg),                                        \
        cmocka_unit_test(conformance_fire_and_forget),                                 \
        cmocka_unit_test(conformance_done_callbacks),                                  \
        cmocka_unit_test(conformance_wait),                                            \
        cmocka_unit_test(conformance_wait_first_exception),                            \
        cmocka_unit_test(conformance_as_completed),                                    \
        cmocka_unit_test(conformance_map),                                             \
        cmocka_unit_test(conformance_map_free_early),                                  \
        cmocka_unit_test(conformance_shutdown_wait),                                   \
        cmocka_unit_test(conformance_submit_after_shutdown),                           \
        cmocka_unit_test(conformance_shutdown_cancel_futures),                         \
        cmocka_unit_test(conformance_shutdown_from_worker),                            \
        cmocka_unit_test(conformance_parallel_for),                                    \
        cmocka_unit_test(conformance_stress),                                          \
        cmocka_unit_test(conformance_submit_batch),                                    \
        cmocka_unit_test(conformance_submit_batch_order),                              \
        cmocka_unit_test(conformance_batch_stress)

#endif
