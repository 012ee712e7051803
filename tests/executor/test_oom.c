/* Out of memory in the executor layer: the thread pool's constructor, the submit that
 * starts its first worker, submits that copy a big argument, and br_map, each under an
 * out-of-memory loop (the Nth allocation fails, for N = 0, 1, 2, ... until the call
 * succeeds; tests/core/test_alloc.c). A failure must be BR_ENOMEM with nothing
 * half-made: no future, nothing run, no thread started. LeakSanitizer checks the
 * "nothing leaked" half in the ASan build.
 *
 * The failure counter is process-wide, so the pool's own threads can meet an injected
 * failure too while a loop step runs; every allocation they make has a fallback (a
 * deque that can't grow sends a task to the injection stack, a fifo that can't grow
 * leaves a batch in its spill list), so results stay exact. Future blocks come from
 * per-thread caches and slabs and mostly don't go through br__malloc (see
 * tests/future/test_oom.c): the loops only require clean failures and an end. */
#include "harness.h"

#include "executor/pool/for_tests.h"

#include <string.h>

enum { OOM_MAX = 1000 };

static void fail_after(long n) { br__alloc_fail_after(n); }
static void fail_never(void) { br__alloc_fail_after(-1); }

static int echo(br_task *t) { return br_task_return_i64(t, br_task_arg_i64(t)); }

static void threadpool_new_oom(void **state) {
    (void)state;
    for (long n = 0;; n++) {
        BR_CHECK(n < OOM_MAX);
        br_executor *ex = (br_executor *)1;
        fail_after(n);
        int rc = br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = 2,
                                                             .thread_name_prefix = "oom"});
        fail_never();
        if (rc == 0) {
            br_future *f;
            BR_CHECK_OK(br_submit_i64(ex, echo, 3, &f));
            int64_t v = 0;
            BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &v));
            BR_CHECK_EQ(v, 3);
            br_future_release(f);
            BR_CHECK_OK(br_executor_free(ex));
            BR_CHECK(n >= 1); /* at least the pool itself is an allocation */
            break;
        }
        BR_CHECK_ERR(rc, BR_ENOMEM);
        BR_CHECK(ex == NULL);
    }
}

/* The first submit starts the first worker (its struct and its deque's ring): if that
 * fails, the submit fails, no thread exists and nothing runs. */
static _Atomic int ran;

static int count_run(br_task *t) {
    atomic_fetch_add(&ran, 1);
    return br_task_return_i64(t, br_task_arg_i64(t));
}

static void first_submit_starts_worker_oom(void **state) {
    (void)state;
    atomic_store(&ran, 0);
    int failures = 0;
    for (long n = 0;; n++) {
        BR_CHECK(n < OOM_MAX);
        br_executor *ex;
        BR_CHECK_OK(br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = 2}));
        br_future *f = (br_future *)1;
        fail_after(n);
        int rc = br_submit_i64(ex, count_run, 11, &f);
        fail_never();
        struct br__threadpool_stats st;
        br__threadpool_stats(ex, &st);
        if (rc == 0) {
            int64_t v = 0;
            BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &v));
            BR_CHECK_EQ(v, 11);
            br_future_release(f);
            BR_CHECK_OK(br_executor_free(ex));
            break;
        }
        BR_CHECK_ERR(rc, BR_ENOMEM);
        BR_CHECK(f == NULL);
        BR_CHECK_EQ(st.threads, 0);
        failures++;
        BR_CHECK_OK(br_executor_free(ex));
    }
    BR_CHECK(failures >= 1); /* the worker's struct is a br__ allocation */
    BR_CHECK_EQ(atomic_load(&ran), 1);
}

/* BR_CALL_COPY_ARG of an argument too big for the task block: a heap copy. */
enum { BIG = 4096 };

static int checksum(br_task *t) {
    size_t len;
    const void *p = br_task_arg(t, &len);
    return br_task_return_i64(t, br_test_checksum(p, len));
}

static void submit_copy_arg_oom(void **state) {
    (void)state;
    br_executor *ex;
    BR_CHECK_OK(br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = 2}));
    br_future *f;
    BR_CHECK_OK(br_submit_i64(ex, echo, 1, &f)); /* the worker exists from here on */
    BR_CHECK_OK(br_future_wait(f, br_test_hang_guard()));
    br_future_release(f);
    static unsigned char big[BIG];
    for (size_t i = 0; i < BIG; i++)
        big[i] = (unsigned char)(i * 7 + 1);
    int64_t want = br_test_checksum(big, BIG);
    for (int kind = 0; kind < 2; kind++) {
        int failures = 0;
        for (long n = 0;; n++) {
            BR_CHECK(n < OOM_MAX);
            f = (br_future *)1;
            fail_after(n);
            int rc = kind == 0
                         ? br_submit_call(ex, &(br_call){.fn = checksum, .arg = big,
                                                         .len = BIG,
                                                         .flags = BR_CALL_COPY_ARG},
                                          &f)
                         : br_submit(ex, checksum, big, BIG, &f); /* borrowed: no copy */
            fail_never();
            if (rc == 0) {
                int64_t v = 0;
                BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &v));
                BR_CHECK_EQ(v, want);
                br_future_release(f);
                break;
            }
            BR_CHECK_ERR(rc, BR_ENOMEM);
            BR_CHECK(f == NULL);
            failures++;
        }
        if (kind == 0)
            BR_CHECK(failures >= 1); /* the copy is a br__malloc */
    }
    /* fire and forget too: a failure leaves nothing behind to run */
    for (long n = 0;; n++) {
        BR_CHECK(n < OOM_MAX);
        fail_after(n);
        int rc = br_submit_call(
            ex, &(br_call){.fn = checksum, .arg = big, .len = BIG, .flags = BR_CALL_COPY_ARG},
            NULL);
        fail_never();
        if (rc == 0)
            break;
        BR_CHECK_ERR(rc, BR_ENOMEM);
    }
    BR_CHECK_OK(br_executor_free(ex));
}

/* br_map_new allocates the map, its ring of chunks and the slab of input slots; each
 * chunk takes futures from the cache. A failed br_map_new has run nothing; once it
 * succeeds, an input whose chunk couldn't be submitted later reads as BR_ENOMEM, and
 * the others as their results. */
typedef struct map_in {
    int32_t x;
} map_in;

static _Atomic int map_ran;

static int triple(br_task *t) {
    map_in in;
    memcpy(&in, br_task_arg(t, NULL), sizeof in);
    atomic_fetch_add(&map_ran, 1);
    return br_task_return_i64(t, 3 * (int64_t)in.x);
}

/* chunksize 1 submits each input's own task; chunksize 3 goes through runner tasks. */
static void map_oom_with(size_t chunksize) {
    enum { N = 50 };
    map_in in[N];
    for (int i = 0; i < N; i++)
        in[i].x = i;
    br_executor *ex;
    BR_CHECK_OK(br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = 2}));
    int failures = 0;
    for (long n = 0;; n++) {
        BR_CHECK(n < OOM_MAX);
        br_map *m = (br_map *)1;
        atomic_store(&map_ran, 0);
        fail_after(n);
        int rc = br_map_new(&m, ex, triple, in, N, sizeof in[0],
                            &(br_map_opts){.chunksize = chunksize, .buffersize = 4});
        if (rc != 0) {
            fail_never();
            BR_CHECK_ERR(rc, BR_ENOMEM);
            BR_CHECK(m == NULL);
            BR_CHECK_EQ(atomic_load(&map_ran), 0);
            failures++;
            continue;
        }
        /* iterate with the failures still on: later chunks may fail */
        int nomem = 0;
        for (int i = 0; i < N; i++) {
            int64_t v = -1;
            rc = br_map_next_i64(m, &v);
            if (rc == BR_ENOMEM) {
                nomem++;
                continue;
            }
            BR_CHECK_OK(rc);
            BR_CHECK_EQ(v, 3 * i);
        }
        int64_t v;
        rc = br_map_next_i64(m, &v);
        fail_never();
        BR_CHECK_ERR(rc, BR_EOF);
        BR_CHECK_OK(br_map_free(m));
        BR_CHECK_EQ(atomic_load(&map_ran), N - nomem);
        if (nomem == 0)
            break;
    }
    BR_CHECK(failures >= 1); /* the map itself is a br__ allocation */
    BR_CHECK_OK(br_executor_free(ex));
}

static void map_oom(void **state) {
    (void)state;
    map_oom_with(3);
}

static void map_oom_unchunked(void **state) {
    (void)state;
    map_oom_with(1);
}

/* br_submit_batch makes each slice's futures just before it queues the slice, and the
 * first slice starts the first worker: a failure is BR_ENOMEM with the slices before
 * it queued (a prefix, whole slices of BR__BATCH_SLICE), their futures in f, which
 * finish with their results, and nothing else made, queued or run (LeakSanitizer:
 * every future made for the failing slice was released). Here the failures all come
 * before the first slice is queued (the future blocks come from slabs that don't
 * fail part-way through 600), so k is 0; the prefix rule is what the checks allow. */
static void submit_batch_oom(void **state) {
    (void)state;
    enum { N = 600 }; /* three slices, the last one partial */
    static map_in in[N];
    for (int i = 0; i < N; i++)
        in[i].x = i;
    static br_future *f[N];
    int failures = 0;
    for (long n = 0;; n++) {
        BR_CHECK(n < OOM_MAX);
        br_executor *ex;
        BR_CHECK_OK(br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = 2}));
        atomic_store(&map_ran, 0);
        for (int i = 0; i < N; i++)
            f[i] = (br_future *)1;
        size_t queued = 99;
        fail_after(n);
        int rc = br_submit_batch(ex, triple, in, N, sizeof in[0], f, &queued);
        fail_never();
        size_t k = rc == 0 ? N : queued;
        if (rc != 0) {
            BR_CHECK_ERR(rc, BR_ENOMEM);
            BR_CHECK(k < N && k % BR__BATCH_SLICE == 0);
            for (size_t i = k; i < N; i++)
                BR_CHECK(f[i] == NULL);
            failures++;
        } else {
            BR_CHECK_EQ(queued, N);
        }
        for (size_t i = 0; i < k; i++) {
            int64_t v = -1;
            BR_CHECK_OK(br_future_result_i64(f[i], br_test_hang_guard(), &v));
            BR_CHECK_EQ(v, 3 * (int64_t)i);
            br_future_release(f[i]);
        }
        BR_CHECK_OK(br_executor_free(ex));
        BR_CHECK_EQ(atomic_load(&map_ran), (int)k);
        if (rc == 0)
            break;
    }
    BR_CHECK(failures >= 1); /* the first worker's struct is a br__ allocation */
}

BR_TEST_MAIN(cmocka_unit_test(threadpool_new_oom), cmocka_unit_test(submit_batch_oom),
             cmocka_unit_test(first_submit_starts_worker_oom),
             cmocka_unit_test(submit_copy_arg_oom), cmocka_unit_test(map_oom),
             cmocka_unit_test(map_oom_unchunked))
