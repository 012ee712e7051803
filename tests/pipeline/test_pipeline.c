/* Pipelines (braid/pipeline.h): the tutorial's crawler shape (3 fetchers -> 2 parsers),
 * every model for each stage, 100k items with nothing lost or duplicated, backpressure,
 * draining on close, cancel, errors, items crossing into processes, and nothing leaked.
 * braid-test-timeout: 240 */
#include "harness.h"

#include <braid/pipeline.h>

#include "core/lib.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- stage functions ------------------------------------------------------------------ */

/* Items are "<n>" (decimal); a stage emits "<n>" again after some fake work, so the
 * last stage's output names every input exactly once. */
static uint64_t parse_n(const void *item, size_t len) {
    char buf[32];
    if (len >= sizeof buf)
        return UINT64_MAX;
    memcpy(buf, item, len);
    buf[len] = 0;
    return strtoull(buf, NULL, 10);
}

static uint64_t fake_work(uint64_t n) {
    uint64_t h = n * 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 50; i++)
        h ^= h >> 13, h *= 0xff51afd7ed558ccdu;
    return h;
}

static _Atomic uint64_t work_sink;

static int pass_on(br_stage *st, const void *item, size_t len, void *arg) {
    (void)arg;
    uint64_t n = parse_n(item, len);
    atomic_fetch_add_explicit(&work_sink, fake_work(n), memory_order_relaxed);
    return br_stage_emit(st, item, len);
}

/* Fails every tenth item (after nothing emitted). */
static int fail_tenth(br_stage *st, const void *item, size_t len, void *arg) {
    (void)arg;
    if (parse_n(item, len) % 10 == 0)
        return BR_EFAILED;
    return br_stage_emit(st, item, len);
}

/* --- feeding and collecting ------------------------------------------------------------ */

typedef struct feed {
    br_pipeline *p;
    uint64_t n;
    int put_errors;
} feed;

static void feeder_thread(void *arg) {
    feed *f = arg;
    for (uint64_t i = 0; i < f->n; i++) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%llu", (unsigned long long)i);
        if (br_pipeline_put(f->p, buf, (size_t)len, br_test_hang_guard()) != 0)
            f->put_errors++;
    }
    if (br_pipeline_close(f->p) != 0)
        f->put_errors++;
}

/* After the output was taken to the end: the feeding thread is done, every put went in,
 * and the pipeline has stopped. */
static void feed_done(br_thread *t, const feed *f) {
    BR_CHECK_OK(br_thread_join(t, br_test_hang_guard()));
    BR_CHECK_OK(br_thread_free(t));
    BR_CHECK_EQ(f->put_errors, 0);
    BR_CHECK_OK(br_pipeline_join(f->p, br_test_hang_guard()));
}

/* Puts 0..n-1 from a thread, closes, and takes the output to the end: every number
 * must come out exactly once. Returns how many came out of order. */
static uint64_t run_numbers(br_pipeline *p, uint64_t n) {
    feed f = {p, n, 0};
    br_thread *t;
    BR_CHECK_OK(br_thread_start(&t, feeder_thread, &f, NULL));
    unsigned char *seen = calloc(n ? n : 1, 1);
    uint64_t got = 0, disorder = 0, last = 0;
    for (;;) {
        void *item;
        size_t len;
        int rc = br_pipeline_get(p, &item, &len, br_test_hang_guard());
        if (rc == BR_EOF)
            break;
        BR_CHECK_OK(rc);
        BR_CHECK_EQ(((char *)item)[len], 0);
        uint64_t v = parse_n(item, len);
        free(item);
        BR_CHECK(v < n);
        BR_CHECK_EQ(seen[v], 0);
        seen[v] = 1;
        disorder += got > 0 && v < last;
        last = v;
        got++;
    }
    BR_CHECK_EQ(got, n);
    feed_done(t, &f);
    free(seen);
    return disorder;
}

/* After a clean run of n items through stages that pass every item on (and out, when
 * the pipeline has an output). */
static void check_counts_(br_pipeline *p, size_t nstages, uint64_t n, bool output) {
    for (size_t i = 0; i < nstages; i++) {
        br_stage_stats s;
        BR_CHECK_OK(br_pipeline_stats(p, i, &s));
        BR_CHECK_EQ(s.in, n);
        BR_CHECK_EQ(s.out, n);
        BR_CHECK_EQ(s.errors, 0);
        BR_CHECK_EQ(s.dropped, 0);
    }
    br_stage_stats o;
    BR_CHECK_OK(br_pipeline_stats(p, nstages, &o));
    BR_CHECK_EQ(o.in, output ? n : 0);
    BR_CHECK_EQ(o.dropped, 0);
}
#define check_counts(p, nstages, n) check_counts_((p), (nstages), (n), true)

/* --- the tutorial's shape ---------------------------------------------------------------- */

static void crawler_shape_3_fetch_2_parse(void **state) {
    (void)state;
    br_stage_opts st[2] = {
        {.fn = pass_on, .name = "fetch", .workers = 3, .capacity = 16},
        {.fn = pass_on, .name = "parse", .workers = 2, .capacity = 16},
    };
    br_pipeline *p;
    BR_CHECK_OK(br_pipeline_new(&p, st, 2, &(br_pipeline_opts){.output_capacity = 16}));
    uint64_t n = 5000;
    uint64_t disorder = run_numbers(p, n);
    print_message("3 -> 2 threads: %llu items, %llu out of order\n", (unsigned long long)n,
                  (unsigned long long)disorder);
    check_counts(p, 2, n);
    BR_CHECK_OK(br_pipeline_free(p));
}

static void hundred_k_items_no_loss(void **state) {
    (void)state;
    br_stage_opts st[2] = {
        {.fn = pass_on, .workers = 3, .capacity = 64},
        {.fn = pass_on, .workers = 2, .capacity = 64},
    };
    br_pipeline *p;
    BR_CHECK_OK(br_pipeline_new(&p, st, 2, &(br_pipeline_opts){.output_capacity = 64}));
    uint64_t n = (uint64_t)br_test_scaled(100000, 10000);
    run_numbers(p, n);
    check_counts(p, 2, n);
    BR_CHECK_OK(br_pipeline_free(p));
}

/* --- every model ---------------------------------------------------------------------------- */

static void models_pair(br_stage_model a, br_stage_model b, uint64_t n) {
    br_stage_opts st[2] = {
        {.fn = pass_on, .model = a, .workers = 3},
        {.fn = pass_on, .model = b, .workers = 2},
    };
    br_pipeline *p;
    BR_CHECK_OK(br_pipeline_new(&p, st, 2, &(br_pipeline_opts){.output_capacity = 8}));
    run_numbers(p, n);
    check_counts(p, 2, n);
    BR_CHECK_OK(br_pipeline_free(p));
}

static void every_model_threads_coroutines(void **state) {
    (void)state;
    uint64_t n = (uint64_t)br_test_scaled(20000, 2000);
    br_stage_model m[] = {BR_STAGE_THREADS, BR_STAGE_COROUTINES};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            models_pair(m[i], m[j], n);
}

static void every_model_with_processes(void **state) {
    (void)state;
    uint64_t n = (uint64_t)br_test_scaled(1000, 200);
    models_pair(BR_STAGE_PROCESSES, BR_STAGE_PROCESSES, n);
    models_pair(BR_STAGE_THREADS, BR_STAGE_PROCESSES, n);
    models_pair(BR_STAGE_PROCESSES, BR_STAGE_COROUTINES, n);
    models_pair(BR_STAGE_COROUTINES, BR_STAGE_PROCESSES, n);
    br_test_wait_no_children();
}

/* In a process worker: emits "<n + offset>:<pid>", the offset from the stage's arg bytes. */
static int add_offset(br_stage *st, const void *item, size_t len, void *arg) {
    uint64_t off;
    memcpy(&off, arg, sizeof off);
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%llu:%d", (unsigned long long)(parse_n(item, len) + off),
                     (int)br_getpid());
    return br_stage_emit(st, buf, (size_t)n);
}

/* A process stage under each start method: fn found in the worker (a pointer under
 * fork, a reference under spawn and forkserver), arg as bytes, every item once, each
 * run in a worker process; a pointer arg can't cross into a spawned worker. */
static void process_stage_every_start_method(void **state) {
    (void)state;
    uint64_t n = (uint64_t)br_test_scaled(300, 60), off = 1000000;
    const br_start_method methods[] = {BR_START_FORK, BR_START_SPAWN, BR_START_FORKSERVER};
    for (size_t m = 0; m < 3; m++) {
        br_stage_opts st[1] = {{.fn = add_offset, .arg = &off, .arg_len = sizeof off,
                                .model = BR_STAGE_PROCESSES, .workers = 2,
                                .start_method = methods[m]}};
        br_pipeline *p;
        BR_CHECK_OK(br_pipeline_new(&p, st, 1, &(br_pipeline_opts){.output_capacity = 8}));
        off = 0; /* the stage has its own copy */
        feed f = {p, n, 0};
        br_thread *t;
        BR_CHECK_OK(br_thread_start(&t, feeder_thread, &f, NULL));
        unsigned char *seen = calloc(n, 1);
        uint64_t got = 0;
        void *item;
        size_t len;
        while (br_pipeline_get(p, &item, &len, br_test_hang_guard()) == 0) {
            unsigned long long v = 0;
            int pid = 0;
            BR_CHECK_EQ(sscanf(item, "%llu:%d", &v, &pid), 2);
            free(item);
            BR_CHECK(v >= 1000000 && v - 1000000 < n);
            BR_CHECK_EQ(seen[v - 1000000], 0);
            seen[v - 1000000] = 1;
            BR_CHECK(pid > 0 && pid != br_getpid());
            got++;
        }
        BR_CHECK_EQ(got, n);
        feed_done(t, &f);
        br_stage_stats s;
        BR_CHECK_OK(br_pipeline_stats(p, 0, &s));
        BR_CHECK_EQ(s.in, n);
        BR_CHECK_EQ(s.out, n);
        BR_CHECK_EQ(s.errors, 0);
        BR_CHECK_OK(br_pipeline_free(p));
        free(seen);
        off = 1000000;
        if (methods[m] != BR_START_FORK) {
            /* a pointer arg means nothing in a spawned worker */
            st[0].arg_len = 0;
            BR_CHECK_ERR(br_pipeline_new(&p, st, 1, NULL), BR_EINVAL);
        }
    }
    br_test_wait_no_children();
}

/* Coroutines on a loop the caller runs (on a thread of the test). */
static void run_loop(void *arg) { br_loop_run_forever(arg); }

static void coroutines_on_a_given_loop(void **state) {
    (void)state;
    br_loop *loop;
    BR_CHECK_OK(br_loop_new(&loop));
    br_thread *lt;
    BR_CHECK_OK(br_thread_start(&lt, run_loop, loop, NULL));
    br_stage_opts st[2] = {
        {.fn = pass_on, .model = BR_STAGE_COROUTINES, .workers = 4, .loop = loop},
        {.fn = pass_on, .model = BR_STAGE_COROUTINES, .workers = 3, .loop = loop},
    };
    br_pipeline *p;
    BR_CHECK_OK(br_pipeline_new(&p, st, 2, &(br_pipeline_opts){.output_capacity = 8}));
    uint64_t n = (uint64_t)br_test_scaled(20000, 2000);
    run_numbers(p, n);
    check_counts(p, 2, n);
    BR_CHECK_OK(br_pipeline_free(p));
    BR_CHECK_OK(br_loop_stop(loop));
    BR_CHECK_OK(br_thread_join(lt, br_test_hang_guard()));
    BR_CHECK_OK(br_thread_free(lt));
    BR_CHECK_OK(br_loop_free(loop));
}

/* --- backpressure, close, cancel ---------------------------------------------------------- */

typedef struct gate {
    br_event open;
    _Atomic int entered;      /* fn calls that started */
    _Atomic int after_cancel; /* fn calls that started after cancel returned */
    _Atomic int cancelled;
} gate;

static int gated(br_stage *st, const void *item, size_t len, void *arg) {
    gate *g = arg;
    atomic_fetch_add(&g->entered, 1);
    if (atomic_load(&g->cancelled))
        atomic_fetch_add(&g->after_cancel, 1);
    BR_CHECK_OK(br_event_wait(&g->open, br_test_hang_guard()));
    return br_stage_emit(st, item, len);
}

/* Puts items with no wait until the pipeline refuses one: how many it took. */
static int fill(br_pipeline *p) {
    int taken = 0;
    for (;;) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%d", taken);
        int rc = br_pipeline_put(p, buf, (size_t)len, BR_NOWAIT);
        if (rc == BR_ETIMEDOUT)
            return taken;
        BR_CHECK_OK(rc);
        taken++;
    }
}

/* Waits until n fn calls have started on the gate. */
static void until_entered(gate *g, int n) {
    int64_t end = br_test_hang_guard();
    while (atomic_load(&g->entered) < n) {
        BR_CHECK(br_now() < end);
        usleep(1000);
    }
}

static void backpressure_bounds_everything(void **state) {
    (void)state;
    gate g = {0};
    br_event_init(&g.open);
    /* A fast first stage (2 workers, queue 4) feeding a blocked last one (1 worker,
     * queue 3). */
    br_stage_opts st[2] = {
        {.fn = pass_on, .workers = 2, .capacity = 4},
        {.fn = gated, .arg = &g, .workers = 1, .capacity = 3},
    };
    br_pipeline *p;
    BR_CHECK_OK(br_pipeline_new(&p, st, 2, NULL));
    /* Fill until put would block; with the last stage stuck, what the pipeline holds is
     * bounded: queue 0 (4) + stage 0's workers each holding one blocked in emit (2) +
     * queue 1 (3) + the one the gated worker holds (1). Items trickle in while stage 0
     * moves them on, so fill again until nothing more is taken. */
    int taken = fill(p);
    until_entered(&g, 1);
    for (int round = 0; round < 1000; round++) {
        taken += fill(p);
        br_stage_stats s0;
        BR_CHECK_OK(br_pipeline_stats(p, 0, &s0));
        if (s0.out == 3 + 1 && taken == 4 + 2 + 3 + 1)
            break;
        usleep(1000);
    }
    BR_CHECK_EQ(taken, 4 + 2 + 3 + 1);
    /* A put blocks until its deadline. */
    BR_CHECK_ERR(br_pipeline_put(p, "x", 1, br_deadline_after_s(0.02)), BR_ETIMEDOUT);
    br_stage_stats s0, s1;
    BR_CHECK_OK(br_pipeline_stats(p, 0, &s0));
    BR_CHECK_OK(br_pipeline_stats(p, 1, &s1));
    BR_CHECK_EQ(s0.in, 2 + 3 + 1); /* 2 blocked in emit, 3 queued after, 1 in the gate */
    BR_CHECK_EQ(s1.in, 1);         /* the one in the gate (in counts at the call) */
    /* Open: everything drains. */
    BR_CHECK_OK(br_event_set(&g.open));
    BR_CHECK_OK(br_pipeline_close(p));
    BR_CHECK_OK(br_pipeline_join(p, br_test_hang_guard()));
    check_counts_(p, 2, (uint64_t)taken, false);
    BR_CHECK_OK(br_pipeline_free(p));
    BR_CHECK_OK(br_event_destroy(&g.open));
}

static void close_drains_everything(void **state) {
    (void)state;
    gate g = {0};
    br_event_init(&g.open);
    br_stage_opts st[3] = {
        {.fn = gated, .arg = &g, .workers = 2, .capacity = 50},
        {.fn = pass_on, .model = BR_STAGE_COROUTINES, .workers = 2, .capacity = 10},
        {.fn = pass_on, .workers = 3, .capacity = 10},
    };
    br_pipeline *p;
    BR_CHECK_OK(br_pipeline_new(&p, st, 3, NULL));
    int taken = fill(p);
    BR_CHECK(taken >= 50);
    BR_CHECK_OK(br_pipeline_close(p));
    BR_CHECK_ERR(br_pipeline_put(p, "late", 4, BR_NOWAIT), BR_ESHUTDOWN);
    BR_CHECK_OK(br_pipeline_close(p)); /* again: fine */
    BR_CHECK_OK(br_event_set(&g.open));
    BR_CHECK_OK(br_pipeline_join(p, br_test_hang_guard()));
    for (size_t i = 0; i < 3; i++) {
        br_stage_stats s;
        BR_CHECK_OK(br_pipeline_stats(p, i, &s));
        BR_CHECK_EQ(s.in, taken);
        BR_CHECK_EQ(s.out, taken); /* the last stage's emits: counted, discarded */
        BR_CHECK_EQ(s.dropped, 0);
    }
    void *item;
    size_t len;
    BR_CHECK_ERR(br_pipeline_get(p, &item, &len, BR_NOWAIT), BR_EINVAL); /* no output */
    BR_CHECK_OK(br_pipeline_free(p));
    BR_CHECK_OK(br_event_destroy(&g.open));
}

static void cancel_stops_and_counts(br_stage_model model) {
    gate g = {0};
    br_event_init(&g.open);
    br_stage_opts st[2] = {
        {.fn = pass_on, .model = model, .workers = 2, .capacity = 20},
        {.fn = gated, .arg = &g, .workers = 2, .capacity = 20},
    };
    br_pipeline *p;
    BR_CHECK_OK(br_pipeline_new(&p, st, 2, &(br_pipeline_opts){.output_capacity = 5}));
    int taken = fill(p);
    until_entered(&g, 2);
    BR_CHECK_OK(br_pipeline_cancel(p));
    atomic_store(&g.cancelled, 1);
    BR_CHECK_ERR(br_pipeline_put(p, "x", 1, BR_NOWAIT), BR_ESHUTDOWN);
    void *item;
    size_t len;
    BR_CHECK_ERR(br_pipeline_get(p, &item, &len, BR_NOWAIT), BR_EOF);
    BR_CHECK_OK(br_event_set(&g.open)); /* the two calls in the gate finish */
    BR_CHECK_OK(br_pipeline_join(p, br_test_hang_guard()));
    /* Nothing new started after the cancel, but for a worker that had its item in hand. */
    BR_CHECK(atomic_load(&g.after_cancel) <= 2);
    br_stage_stats s0, s1, so;
    BR_CHECK_OK(br_pipeline_stats(p, 0, &s0));
    BR_CHECK_OK(br_pipeline_stats(p, 1, &s1));
    BR_CHECK_OK(br_pipeline_stats(p, 2, &so));
    BR_CHECK_EQ(s0.in + s0.dropped, taken);    /* every item put: run or dropped */
    BR_CHECK_EQ(s1.in + s1.dropped, s0.out);   /* every item emitted: run or dropped */
    BR_CHECK_EQ(so.in + so.dropped, s1.out);
    BR_CHECK(s0.dropped + s1.dropped > 0);
    BR_CHECK_OK(br_pipeline_free(p));
    BR_CHECK_OK(br_event_destroy(&g.open));
}

static void cancel_threads(void **state) {
    (void)state;
    cancel_stops_and_counts(BR_STAGE_THREADS);
}

static void cancel_coroutines(void **state) {
    (void)state;
    cancel_stops_and_counts(BR_STAGE_COROUTINES);
}

static void cancel_processes(void **state) {
    (void)state;
    cancel_stops_and_counts(BR_STAGE_PROCESSES);
    br_test_wait_no_children();
}

/* Freeing a running pipeline cancels it. */
static void free_cancels(void **state) {
    (void)state;
    br_stage_opts st[1] = {{.fn = pass_on, .workers = 2}};
    br_pipeline *p;
    BR_CHECK_OK(br_pipeline_new(&p, st, 1, &(br_pipeline_opts){.output_capacity = 2}));
    fill(p);
    BR_CHECK_OK(br_pipeline_free(p));
}

/* --- errors, processes, arguments, leaks -------------------------------------------------- */

static void errors_counted(void **state) {
    (void)state;
    for (int m = 0; m < 3; m++) {
        br_stage_opts st[2] = {
            {.fn = fail_tenth, .model = (br_stage_model)m, .workers = 2},
            {.fn = pass_on, .workers = 1},
        };
        br_pipeline *p;
        BR_CHECK_OK(br_pipeline_new(&p, st, 2, &(br_pipeline_opts){.output_capacity = 4}));
        feed f = {p, 500, 0};
        br_thread *t;
        BR_CHECK_OK(br_thread_start(&t, feeder_thread, &f, NULL));
        int got = 0;
        void *item;
        size_t len;
        while (br_pipeline_get(p, &item, &len, br_test_hang_guard()) == 0) {
            BR_CHECK(parse_n(item, len) % 10 != 0);
            free(item);
            got++;
        }
        BR_CHECK_OK(br_thread_join(t, br_test_hang_guard()));
        BR_CHECK_OK(br_thread_free(t));
        BR_CHECK_OK(br_pipeline_join(p, br_test_hang_guard()));
        BR_CHECK_EQ(got, 450);
        br_stage_stats s;
        BR_CHECK_OK(br_pipeline_stats(p, 0, &s));
        BR_CHECK_EQ(s.in, 500);
        BR_CHECK_EQ(s.errors, 50);
        BR_CHECK_EQ(s.out, 450);
        BR_CHECK_OK(br_pipeline_free(p));
    }
    br_test_wait_no_children();
}

/* In a process: emits the item, then its checksum, then the worker's pid. */
static int checksum_in_child(br_stage *st, const void *item, size_t len, void *arg) {
    (void)arg;
    int rc = br_stage_emit(st, item, len);
    int64_t sum = br_test_checksum(item, len);
    if (rc == 0)
        rc = br_stage_emit(st, &sum, sizeof sum);
    int pid = br_getpid();
    if (rc == 0)
        rc = br_stage_emit(st, &pid, sizeof pid);
    return rc;
}

typedef struct blob_check {
    int phase; /* 0: an item, 1: its checksum, 2: the pid */
    int64_t sum;
    int items, bad, parent_pid_seen;
} blob_check;

static int check_blob(br_stage *st, const void *item, size_t len, void *arg) {
    (void)st;
    blob_check *c = arg;
    if (c->phase == 0) {
        c->sum = br_test_checksum(item, len);
        c->items++;
    } else if (c->phase == 1) {
        int64_t want;
        memcpy(&want, item, sizeof want);
        c->bad += len != sizeof want || want != c->sum;
    } else {
        int pid;
        memcpy(&pid, item, sizeof pid);
        c->parent_pid_seen += pid == br_getpid();
    }
    c->phase = (c->phase + 1) % 3;
    return 0;
}

static void process_stage_items_intact(void **state) {
    (void)state;
    blob_check c = {0};
    /* One process worker and one checking thread, so the three emits of an item arrive
     * together and in order. */
    br_stage_opts st[2] = {
        {.fn = checksum_in_child, .model = BR_STAGE_PROCESSES, .workers = 1},
        {.fn = check_blob, .arg = &c, .workers = 1},
    };
    br_pipeline *p;
    BR_CHECK_OK(br_pipeline_new(&p, st, 2, NULL));
    size_t sizes[] = {0, 1, 7, 4096, 65536, 1 << 20};
    int n = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        for (int rep = 0; rep < 3; rep++) {
            unsigned char *b = malloc(sizes[k] + 1);
            for (size_t i = 0; i < sizes[k]; i++)
                b[i] = (unsigned char)(i * 131 + k * 7 + (size_t)rep);
            BR_CHECK_OK(br_pipeline_put(p, b, sizes[k], br_test_hang_guard()));
            free(b);
            n++;
        }
    BR_CHECK_OK(br_pipeline_close(p));
    BR_CHECK_OK(br_pipeline_join(p, br_test_hang_guard()));
    BR_CHECK_EQ(c.items, n);
    BR_CHECK_EQ(c.bad, 0);
    BR_CHECK_EQ(c.parent_pid_seen, 0);
    br_stage_stats s;
    BR_CHECK_OK(br_pipeline_stats(p, 0, &s));
    BR_CHECK_EQ(s.in, n);
    BR_CHECK_EQ(s.out, 3 * n);
    BR_CHECK_OK(br_pipeline_free(p));
    br_test_wait_no_children();
}

/* Every allocation of br_pipeline_new failing in turn: a clear code, nothing started
 * left behind (ASan sees leaks; the thread count is checked), and then a pipeline that
 * works. */
static void out_of_memory_paths(void **state) {
    (void)state;
    int threads = br_test_thread_baseline();
    br_stage_opts st[3] = {
        {.fn = pass_on, .model = BR_STAGE_THREADS, .workers = 2},
        {.fn = pass_on, .model = BR_STAGE_COROUTINES, .workers = 2},
        {.fn = pass_on, .model = BR_STAGE_THREADS, .workers = 1},
    };
    for (long k = 0;; k++) {
        BR_CHECK(k < 10000);
        br_pipeline *p;
        br__alloc_fail_after(k);
        int rc = br_pipeline_new(&p, st, 3, &(br_pipeline_opts){.output_capacity = 4});
        br__alloc_fail_after(-1);
        if (rc == 0) {
            run_numbers(p, 100);
            check_counts(p, 3, 100);
            BR_CHECK_OK(br_pipeline_free(p));
            break;
        }
        if (rc != BR_ENOMEM && rc != BR_EAGAIN)
            fail_msg("k=%ld: %s", k, br_err_name(rc));
        br_test_wait_threads(threads);
    }
}

/* In a process: item "13" kills its worker. */
static int die_on_13(br_stage *st, const void *item, size_t len, void *arg) {
    (void)arg;
    if (parse_n(item, len) == 13)
        _exit(3);
    return br_stage_emit(st, item, len);
}

static void worker_death_is_an_error(br_start_method method) {
    br_stage_opts st[1] = {
        {.fn = die_on_13, .model = BR_STAGE_PROCESSES, .workers = 2, .start_method = method}};
    br_pipeline *p;
    BR_CHECK_OK(br_pipeline_new(&p, st, 1, &(br_pipeline_opts){.output_capacity = 4}));
    feed f = {p, 40, 0};
    br_thread *t;
    BR_CHECK_OK(br_thread_start(&t, feeder_thread, &f, NULL));
    int got = 0;
    void *item;
    size_t len;
    while (br_pipeline_get(p, &item, &len, br_test_hang_guard()) == 0) {
        BR_CHECK(parse_n(item, len) != 13);
        free(item);
        got++;
    }
    BR_CHECK_OK(br_thread_join(t, br_test_hang_guard()));
    BR_CHECK_OK(br_thread_free(t));
    BR_CHECK_OK(br_pipeline_join(p, br_test_hang_guard()));
    BR_CHECK_EQ(got, 39);
    br_stage_stats s;
    BR_CHECK_OK(br_pipeline_stats(p, 0, &s));
    BR_CHECK_EQ(s.in, 40);
    BR_CHECK_EQ(s.errors, 1);
    BR_CHECK_OK(br_pipeline_free(p));
    br_test_wait_no_children();
}

static void process_worker_death_is_an_error(void **state) {
    (void)state;
    worker_death_is_an_error(BR_START_FORK);
    worker_death_is_an_error(BR_START_FORKSERVER);
}

static void bad_arguments(void **state) {
    (void)state;
    br_pipeline *p;
    br_stage_opts ok = {.fn = pass_on};
    BR_CHECK_ERR(br_pipeline_new(NULL, &ok, 1, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_pipeline_new(&p, NULL, 1, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_pipeline_new(&p, &ok, 0, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_pipeline_new(&p, &(br_stage_opts){.fn = NULL}, 1, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_pipeline_new(&p, &(br_stage_opts){.fn = pass_on, .workers = -1}, 1, NULL),
                 BR_EINVAL);
    BR_CHECK_ERR(br_pipeline_new(&p, &(br_stage_opts){.fn = pass_on, .model = 7}, 1, NULL),
                 BR_EINVAL);
    BR_CHECK_ERR(br_pipeline_new(&p,
                                 &(br_stage_opts){.fn = pass_on, .model = BR_STAGE_PROCESSES,
                                                  .start_method = 9},
                                 1, NULL),
                 BR_EINVAL);
    BR_CHECK_ERR(br_pipeline_new(&p, &(br_stage_opts){.fn = pass_on, .arg_len = 4}, 1, NULL),
                 BR_EINVAL);
    BR_CHECK_ERR(br_pipeline_put(NULL, "x", 1, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_pipeline_close(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_pipeline_cancel(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_pipeline_join(NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_pipeline_free(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_stage_emit(NULL, "x", 1), BR_EINVAL);
    BR_CHECK_OK(br_pipeline_new(&p, &ok, 1, NULL));
    BR_CHECK_ERR(br_pipeline_put(p, NULL, 1, BR_NOWAIT), BR_EINVAL);
    br_stage_stats s;
    BR_CHECK_ERR(br_pipeline_stats(p, 2, &s), BR_EINVAL);
    BR_CHECK_ERR(br_pipeline_join(p, BR_NOWAIT), BR_ETIMEDOUT); /* not closed */
    BR_CHECK_OK(br_pipeline_put(p, "", 0, BR_NOWAIT));            /* an empty item is one */
    BR_CHECK_OK(br_pipeline_close(p));
    BR_CHECK_OK(br_pipeline_join(p, br_test_hang_guard()));
    BR_CHECK_OK(br_pipeline_stats(p, 0, &s));
    BR_CHECK_EQ(s.in, 1);
    BR_CHECK_OK(br_pipeline_free(p));
}

static int noop_task(br_task *t) {
    (void)t;
    return 0;
}

static void nothing_leaked(void **state) {
    (void)state;
    /* The process layer's child watcher, a thread that lives as long as the process,
     * starts with the first child watched (a pool's workers may or may not have been by
     * the time it is freed): start it before counting. */
    br_process *child;
    BR_CHECK_OK(br_process_start(&child, noop_task, NULL, 0, NULL));
    BR_CHECK_OK(br_process_join(child, br_test_hang_guard()));
    BR_CHECK_OK(br_process_free(child));
    br_pipeline *p;
    int threads = br_test_thread_baseline();
    int fds = br_test_count_fds();
    for (int m = 0; m < 3; m++) {
        br_stage_opts st[2] = {
            {.fn = pass_on, .model = (br_stage_model)m, .workers = 2},
            {.fn = pass_on, .model = (br_stage_model)((m + 1) % 3), .workers = 2},
        };
        BR_CHECK_OK(br_pipeline_new(&p, st, 2, &(br_pipeline_opts){.output_capacity = 4}));
        run_numbers(p, 300);
        BR_CHECK_OK(br_pipeline_free(p));
        /* And one cancelled half way. */
        BR_CHECK_OK(br_pipeline_new(&p, st, 2, &(br_pipeline_opts){.output_capacity = 4}));
        fill(p);
        BR_CHECK_OK(br_pipeline_cancel(p));
        BR_CHECK_OK(br_pipeline_free(p));
    }
    br_test_wait_no_children();
    br_test_wait_threads(threads);
    br_test_wait_fds(fds);
}

BR_TEST_MAIN(cmocka_unit_test(crawler_shape_3_fetch_2_parse),
             cmocka_unit_test(hundred_k_items_no_loss),
             cmocka_unit_test(every_model_threads_coroutines),
             cmocka_unit_test(every_model_with_processes),
             cmocka_unit_test(process_stage_every_start_method),
             cmocka_unit_test(coroutines_on_a_given_loop),
             cmocka_unit_test(backpressure_bounds_everything),
             cmocka_unit_test(close_drains_everything), cmocka_unit_test(cancel_threads),
             cmocka_unit_test(cancel_coroutines), cmocka_unit_test(cancel_processes),
             cmocka_unit_test(free_cancels), cmocka_unit_test(errors_counted),
             cmocka_unit_test(process_stage_items_intact),
             cmocka_unit_test(process_worker_death_is_an_error),
             cmocka_unit_test(out_of_memory_paths), cmocka_unit_test(bad_arguments),
             cmocka_unit_test(nothing_leaked))
