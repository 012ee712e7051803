/* compare.c: `braid compare`, the tutorials' threads-vs-processes experiment, run for
 * real on this machine.
 *
 * The tutorials time is_prime(112272535095293) x 100 in one thread, in a thread pool and
 * in a process pool, and find that CPython's threads don't help (26.07 s vs 25.58 s in
 * 000_b9e24c88e52a00dc.txt, because of the GIL). This runs the same work, BENCH.md W1,
 * exactly as ../shared/peers/native/README.md N1 defines it (the number read from a
 * volatile, uint64_t, odd divisors 3..floor(sqrt(n)) with sqrt in double), and W2 (fib
 * 25..34 on a pool of 3, collected with as_completed, sum 14,808,959), under each model
 * braid has, checks every result, and prints a table and a verdict.
 *
 * Design notes. The table is a list of models: each row runs one workload one way
 * (`models[]`: workload, the peer's variant name, a label, a run function), times it
 * and counts its correct results. Speed-up is against the workload's first row (one
 * thread); parallel efficiency is speed-up / min(workers, CPUs). Later layers add rows
 * (process pool, coroutines) and workloads (the I/O-bound crawl) to the two tables
 * below, and nothing else changes. --json prints one object per row in BENCH.md's format
 * (workload, variant, impl, metric, value, unit, plus the table's columns), so
 * ../shared/tools/side-by-side can pair the rows with the Python and native peers.
 *
 * The I/O-bound rows ("IO": N tasks that each wait 100 ms, the tutorials' point that
 * waiting costs threads memory and costs a pool rounds) run each in a forked child, so
 * that each row's memory is its own: the child's peak RSS (wait4's ru_maxrss) minus that
 * of an idle child forked from the same parent just before (what fork itself brings:
 * the parent's resident pages). A VmHWM difference inside this process would be
 * dominated by whichever row ran first, since a high-water mark never comes down. The
 * child sends its cmp_run back through a pipe and _exits (no atexit work in a fork).
 */
#define _GNU_SOURCE /* isatty, wait4, pipe2 */
#include <braid.h>
#include <braid/aio.h>

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "cli.h"
#include "workloads.h"

/* --- configuration ------------------------------------------------------------------ */

typedef struct cmp_config {
    bool quick;
    bool json;
    int cpus;       /* br_cpu_count() */
    double loadavg; /* the 1-minute load average at start; < 0 if unknown */
    int threads;  /* the "threads" row's N: cpus, or --threads */
    int w1_calls; /* 100; 8 with --quick */
    int w2_first; /* fib(first..last): 25..34; 20..29 with --quick */
    int w2_last;
    int io_tasks;     /* the I/O rows' tasks: 10,000; 1,000 with --quick */
    int io_pool;      /* the I/O pool row's size: 500 (20 rounds); 100 with --quick */
    int64_t io_wait;  /* what each I/O task waits: 100 ms */
} cmp_config;

/* What one row measured. */
typedef struct cmp_run {
    int workers;
    double seconds;
    long correct, total;
    int rc; /* 0, or the braid error that stopped the run */
    double mem_mib; /* I/O rows: peak RSS above an idle child's (MiB); < 0 unknown */
} cmp_run;

typedef struct cmp_model {
    const char *workload; /* "W1": a key of workloads[] */
    const char *variant;  /* the peers' variant name where one exists ("single", "thread") */
    const char *label;    /* the table's model column */
    int (*run)(const cmp_config *cfg, cmp_run *out);
} cmp_model;

/* Linux's 1-minute load average, so that a reader can tell a busy machine from a
 * model that doesn't scale; -1 where /proc/loadavg doesn't exist. */
static double read_loadavg(void) {
    FILE *f = fopen("/proc/loadavg", "re");
    double v = -1;
    if (f != NULL) {
        if (fscanf(f, "%lf", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

/* --- W1: primes ----------------------------------------------------------------------- */

/* is_prime, w1_number and fib: workloads.h, shared with the benchmarks. */

static int w1_single(const cmp_config *cfg, cmp_run *out) {
    int64_t t0 = br_now();
    long found = 0;
    for (int k = 0; k < cfg->w1_calls; k++)
        found += is_prime(w1_number);
    out->seconds = (double)(br_now() - t0) / BR_SEC;
    out->workers = 1;
    out->correct = found;
    out->total = cfg->w1_calls;
    return 0;
}

typedef struct w1_slice {
    int count;
    long found;
    br_thread *thread;
} w1_slice;

static void w1_worker(void *arg) {
    w1_slice *s = arg;
    for (int k = 0; k < s->count; k++)
        s->found += is_prime(w1_number);
}

/* N braid threads split the calls, as N1's pthreads figure does; creation and join
 * are inside the timed region. */
static int w1_threads(const cmp_config *cfg, cmp_run *out) {
    int n = cfg->threads;
    w1_slice *slices = calloc((size_t)n, sizeof *slices);
    if (slices == NULL)
        return BR_ENOMEM;
    int rc = 0, started = 0;
    int64_t t0 = br_now();
    for (; started < n; started++) {
        w1_slice *s = &slices[started];
        s->count = (started + 1) * cfg->w1_calls / n - started * cfg->w1_calls / n;
        char name[24];
        snprintf(name, sizeof name, "primes-%d", started);
        rc = br_thread_start(&s->thread, w1_worker, s, &(br_thread_opts){.name = name});
        if (rc != 0)
            break;
    }
    long found = 0;
    for (int i = 0; i < started; i++) {
        int jrc = br_thread_join(slices[i].thread, BR_FOREVER);
        if (rc == 0)
            rc = jrc;
        br_thread_free(slices[i].thread);
        found += slices[i].found;
    }
    out->seconds = (double)(br_now() - t0) / BR_SEC;
    out->workers = n;
    out->correct = found;
    out->total = cfg->w1_calls;
    free(slices);
    return rc;
}

static int is_prime_task(br_task *t) {
    return br_task_return_i64(t, is_prime((uint64_t)br_task_arg_i64(t)));
}

/* An executor with its default size (max_workers 0) or with max_workers. */
typedef int (*make_executor_fn)(br_executor **out, int max_workers);

static int make_threadpool(br_executor **out, int max_workers) {
    return br_threadpool_new(out, &(br_threadpool_opts){.max_workers = max_workers});
}

static int make_processpool(br_executor **out, int max_workers) {
    return br_processpool_new(out, &(br_processpool_opts){.max_workers = max_workers});
}

/* pool.map(fn, xs) over n int64 inputs: *count gets how many results were nonzero
 * (both fn here return 0 or 1); then the pool is freed (shutdown, wait). The first
 * error of the map or the free, else 0. */
static int map_count_and_free(br_executor *pool, br_task_fn fn, const int64_t *xs, int n,
                              long *count) {
    br_map *m;
    int rc = br_map_new(&m, pool, fn, xs, (size_t)n, sizeof xs[0], NULL);
    if (rc == 0) {
        int64_t r;
        int next;
        while ((next = br_map_next_i64(m, &r)) == 0)
            *count += r != 0;
        if (next != BR_EOF)
            rc = next;
        int frc = br_map_free(m);
        if (rc == 0)
            rc = frc;
    }
    int frc = br_executor_free(pool);
    return rc != 0 ? rc : frc;
}

/* The tutorial's multi_thread() and multi_process(): `with ThreadPoolExecutor() as
 * pool:` (or ProcessPoolExecutor) `pool.map(is_prime, PRIMES)`, timed as the whole
 * with block (pool start-up and shutdown included), default max_workers as in Python.
 * One function for both rows: the README's first program's task, is_prime_task, runs on
 * either executor with the same code, only the constructor differs. */
static int w1_map_on(const cmp_config *cfg, cmp_run *out, make_executor_fn make) {
    int n = cfg->w1_calls;
    int64_t *primes = malloc((size_t)n * sizeof *primes);
    if (primes == NULL)
        return BR_ENOMEM;
    for (int i = 0; i < n; i++)
        primes[i] = (int64_t)w1_number;

    long found = 0;
    int64_t t0 = br_now();
    br_executor *pool;
    int rc = make(&pool, 0);
    if (rc == 0) {
        out->workers = br_executor_max_workers(pool);
        rc = map_count_and_free(pool, is_prime_task, primes, n, &found);
    }
    out->seconds = (double)(br_now() - t0) / BR_SEC;
    out->correct = found;
    out->total = n;
    free(primes);
    return rc;
}

static int w1_pool(const cmp_config *cfg, cmp_run *out) {
    return w1_map_on(cfg, out, make_threadpool);
}

static int w1_processpool(const cmp_config *cfg, cmp_run *out) {
    return w1_map_on(cfg, out, make_processpool);
}

/* N Process children split the calls, as the "braid threads" row's threads do: each
 * child counts its primes into one shared Value (multiprocessing.Value), and the parent
 * joins them; starting and joining are inside the timed region. The same task function
 * shape as the pools' (a br_task_fn on argument bytes: here the count of calls). */
static br_mp_value *w1_found; /* made before the children: a forked child has it too */

static int w1_process_task(br_task *t) {
    int64_t count = br_task_arg_i64(t), found = 0;
    for (int64_t k = 0; k < count; k++)
        found += is_prime(w1_number);
    return br_mp_value_add_i64(w1_found, found, NULL);
}

static int w1_processes(const cmp_config *cfg, cmp_run *out) {
    int n = cfg->threads;
    br_process **ps = calloc((size_t)n, sizeof *ps);
    if (ps == NULL)
        return BR_ENOMEM;
    int64_t t0 = br_now();
    int rc = br_mp_value_new(&w1_found, BR_MP_I64);
    int started = 0;
    for (; rc == 0 && started < n; started++) {
        int64_t count = (started + 1) * cfg->w1_calls / n - started * cfg->w1_calls / n;
        char name[24];
        snprintf(name, sizeof name, "primes-%d", started);
        rc = br_process_start(&ps[started], w1_process_task, &count, sizeof count,
                              &(br_process_opts){.name = name});
        if (rc != 0)
            break;
    }
    for (int i = 0; i < started; i++) {
        int code = 0;
        int jrc = br_process_join(ps[i], BR_FOREVER);
        if (jrc == 0)
            jrc = br_process_exitcode(ps[i], &code);
        if (rc == 0)
            rc = jrc != 0 ? jrc : code != 0 ? BR_EFAILED : 0;
        br_process_free(ps[i]);
    }
    int64_t found = 0;
    if (w1_found != NULL) {
        if (br_mp_value_get_i64(w1_found, &found) != 0)
            found = 0;
        br_mp_value_free(w1_found);
        w1_found = NULL;
    }
    out->seconds = (double)(br_now() - t0) / BR_SEC;
    out->workers = n;
    out->correct = found;
    out->total = cfg->w1_calls;
    free(ps);
    return rc;
}

/* --- W2: fib -------------------------------------------------------------------------- */

static int64_t fib_iter(int64_t n) {
    int64_t a = 0, b = 1;
    for (int64_t i = 0; i < n; i++) {
        int64_t c = a + b;
        a = b;
        b = c;
    }
    return a;
}

static int w2_serial(const cmp_config *cfg, cmp_run *out) {
    int64_t t0 = br_now();
    long correct = 0;
    for (int n = cfg->w2_first; n <= cfg->w2_last; n++)
        correct += fib(n) == fib_iter(n);
    out->seconds = (double)(br_now() - t0) / BR_SEC;
    out->workers = 1;
    out->correct = correct;
    out->total = cfg->w2_last - cfg->w2_first + 1;
    return 0;
}

typedef struct fib_result {
    int64_t n, value;
} fib_result;

static int fib_task(br_task *t) {
    fib_result r = {br_task_arg_i64(t), 0};
    r.value = fib(r.n);
    return br_task_return(t, &r, sizeof r);
}

/* The tutorial's `with ThreadPoolExecutor(3) as executor:` submit fib(25..34), read
 * them with as_completed. Timed as the whole with block. The results must sum to
 * fib(last + 2) - fib(first + 1) (14,808,959 for 25..34). */
static int w2_pool_on(const cmp_config *cfg, cmp_run *out, make_executor_fn make) {
    int count = cfg->w2_last - cfg->w2_first + 1;
    br_future **fs = calloc((size_t)count, sizeof *fs);
    if (fs == NULL)
        return BR_ENOMEM;
    long correct = 0;
    int64_t sum = 0;
    int submitted = 0;
    int64_t t0 = br_now();
    br_executor *pool;
    int rc = make(&pool, 3);
    if (rc == 0) {
        out->workers = br_executor_max_workers(pool);
        for (; submitted < count && rc == 0; submitted++)
            rc = br_submit_i64(pool, fib_task, cfg->w2_first + submitted, &fs[submitted]);
        if (rc != 0)
            submitted--; /* the failed submit made no future */
        br_as_completed *it;
        if (rc == 0)
            rc = br_as_completed_new(&it, fs, (size_t)submitted, BR_FOREVER);
        if (rc == 0) {
            br_future *f;
            int next;
            while ((next = br_as_completed_next(it, &f)) == 0) {
                const void *data;
                size_t len;
                fib_result r;
                if (br_future_result(f, BR_FOREVER, &data, &len) == 0 && len == sizeof r) {
                    memcpy(&r, data, sizeof r);
                    correct += r.value == fib_iter(r.n);
                    sum += r.value;
                }
            }
            if (next != BR_EOF)
                rc = next;
            br_as_completed_free(it);
        }
        for (int i = 0; i < submitted; i++)
            br_future_release(fs[i]);
        int frc = br_executor_free(pool);
        if (rc == 0)
            rc = frc;
    }
    out->seconds = (double)(br_now() - t0) / BR_SEC;
    int64_t want = fib_iter(cfg->w2_last + 2) - fib_iter(cfg->w2_first + 1);
    out->correct = sum == want ? correct : 0; /* a wrong sum fails the whole row */
    out->total = count;
    free(fs);
    return rc;
}

static int w2_pool(const cmp_config *cfg, cmp_run *out) {
    return w2_pool_on(cfg, out, make_threadpool);
}

static int w2_processpool(const cmp_config *cfg, cmp_run *out) {
    return w2_pool_on(cfg, out, make_processpool);
}

/* --- IO: waiting, the I/O-bound case ------------------------------------------------- */

/* Every model runs io_tasks tasks that each wait io_wait (br_sleep in a thread,
 * br_aio_sleep in a coroutine) and count themselves once the wait ended normally. */
static atomic_long io_done;

static void io_thread_fn(void *arg) {
    const int64_t *wait = arg;
    if (br_sleep(*wait) == 0)
        atomic_fetch_add(&io_done, 1);
}

/* One braid thread per task, default stacks; all started, then all joined. */
static int io_threads(const cmp_config *cfg, cmp_run *out) {
    int n = cfg->io_tasks;
    br_thread **ts = calloc((size_t)n, sizeof *ts);
    if (ts == NULL)
        return BR_ENOMEM;
    int64_t wait = cfg->io_wait;
    int rc = 0, started = 0;
    int64_t t0 = br_now();
    for (; started < n; started++) {
        rc = br_thread_start(&ts[started], io_thread_fn, &wait, NULL);
        if (rc != 0)
            break;
    }
    for (int i = 0; i < started; i++) {
        int jrc = br_thread_join(ts[i], BR_FOREVER);
        if (rc == 0)
            rc = jrc;
        br_thread_free(ts[i]);
    }
    out->seconds = (double)(br_now() - t0) / BR_SEC;
    out->workers = started;
    out->correct = atomic_load(&io_done);
    out->total = n;
    free(ts);
    return rc;
}

static int io_pool_task(br_task *t) {
    int rc = br_sleep(br_task_arg_i64(t));
    return rc != 0 ? rc : br_task_return_i64(t, 1);
}

/* A thread pool of io_pool workers maps the waits: io_tasks / io_pool rounds. */
static int io_pool(const cmp_config *cfg, cmp_run *out) {
    int n = cfg->io_tasks;
    int64_t *waits = malloc((size_t)n * sizeof *waits);
    if (waits == NULL)
        return BR_ENOMEM;
    for (int i = 0; i < n; i++)
        waits[i] = cfg->io_wait;
    long done = 0;
    int64_t t0 = br_now();
    br_executor *pool;
    int rc = make_threadpool(&pool, cfg->io_pool);
    if (rc == 0) {
        out->workers = br_executor_max_workers(pool);
        rc = map_count_and_free(pool, io_pool_task, waits, n, &done);
    }
    out->seconds = (double)(br_now() - t0) / BR_SEC;
    out->correct = done;
    out->total = n;
    free(waits);
    return rc;
}

static int io_coro(br_task *t) {
    int rc = br_aio_sleep(br_task_arg_i64(t));
    return rc != 0 ? rc : br_task_return_i64(t, 1);
}

/* asyncio.run(main()): main creates every task (default stacks), then awaits each. */
static int io_coro_main(br_task *t) {
    const cmp_config *cfg = br_task_arg(t, NULL);
    int n = cfg->io_tasks;
    br_future **fs = calloc((size_t)n, sizeof *fs);
    if (fs == NULL)
        return BR_ENOMEM;
    int rc = 0, created = 0;
    for (; created < n; created++) {
        rc = br_create_task(NULL, io_coro, &cfg->io_wait, sizeof cfg->io_wait, &fs[created]);
        if (rc != 0)
            break;
    }
    for (int i = 0; i < created; i++) {
        int64_t v = 0;
        int frc = br_future_result_i64(fs[i], BR_FOREVER, &v);
        if (frc == 0 && v == 1)
            atomic_fetch_add(&io_done, 1);
        else if (rc == 0)
            rc = frc;
        br_future_release(fs[i]);
    }
    free(fs);
    return rc;
}

static int io_coroutines(const cmp_config *cfg, cmp_run *out) {
    int code = 0;
    int64_t t0 = br_now();
    int rc = br_aio_run(io_coro_main, cfg, 0, &code); /* len 0: borrows cfg */
    out->seconds = (double)(br_now() - t0) / BR_SEC;
    out->workers = 1; /* one loop, one thread */
    out->correct = atomic_load(&io_done);
    out->total = cfg->io_tasks;
    return rc != 0 ? rc : code;
}

typedef int (*io_row_fn)(const cmp_config *cfg, cmp_run *out);

/* Runs fn in a forked child; *out gets its cmp_run and its peak RSS in KiB (< 0 if the
 * child died). */
static int io_fork(const cmp_config *cfg, io_row_fn fn, cmp_run *out, long *maxrss_kib) {
    *maxrss_kib = -1;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return BR_EFAILED;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return BR_EFAILED;
    }
    if (pid == 0) {
        close(fds[0]);
        cmp_run r = {.mem_mib = -1};
        if (fn != NULL)
            r.rc = fn(cfg, &r);
        ssize_t w = write(fds[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fds[1]);
    cmp_run r;
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t k = read(fds[0], (char *)&r + got, sizeof r - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fds[0]);
    int st = 0;
    struct rusage ru;
    pid_t w;
    while ((w = wait4(pid, &st, 0, &ru)) < 0 && errno == EINTR) {
    }
    if (w != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || got != sizeof r)
        return BR_EFAILED; /* the child died: the row failed, say so */
    *out = r;
    *maxrss_kib = ru.ru_maxrss;
    return 0;
}

/* An I/O row: fn in a child, and an idle child right before it as the memory baseline. */
static int io_row(const cmp_config *cfg, cmp_run *out, io_row_fn fn) {
    cmp_run idle;
    long base_kib, kib;
    int rc = io_fork(cfg, NULL, &idle, &base_kib);
    if (rc == 0)
        rc = io_fork(cfg, fn, out, &kib);
    if (rc != 0)
        return rc;
    out->mem_mib = (double)(kib - base_kib) / 1024.0;
    return out->rc;
}

static int io_row_threads(const cmp_config *cfg, cmp_run *out) {
    return io_row(cfg, out, io_threads);
}

static int io_row_pool(const cmp_config *cfg, cmp_run *out) {
    return io_row(cfg, out, io_pool);
}

static int io_row_coroutines(const cmp_config *cfg, cmp_run *out) {
    return io_row(cfg, out, io_coroutines);
}

/* --- the tables ----------------------------------------------------------------------- */

static void w1_title(const cmp_config *cfg, char *buf, size_t cap) {
    snprintf(buf, cap, "W1 is_prime x%d", cfg->w1_calls);
}

static void w2_title(const cmp_config *cfg, char *buf, size_t cap) {
    snprintf(buf, cap, "W2 fib %d..%d", cfg->w2_first, cfg->w2_last);
}

static void io_title(const cmp_config *cfg, char *buf, size_t cap) {
    snprintf(buf, cap, "IO %d x %d ms", cfg->io_tasks, (int)(cfg->io_wait / BR_MSEC));
}

typedef struct cmp_workload {
    const char *id;
    void (*title)(const cmp_config *cfg, char *buf, size_t cap); /* sizes included */
} cmp_workload;

static const cmp_workload workloads[] = {
    {"W1", w1_title},
    {"W2", w2_title},
    {"IO", io_title},
};

static const cmp_model models[] = {
    /* W1: the first row of a workload is its baseline. */
    {"W1", "single", "one thread", w1_single},
    {"W1", "threads", "braid threads", w1_threads},
    {"W1", "thread", "thread pool, map", w1_pool},
    {"W1", "processes", "braid processes", w1_processes},
    {"W1", "process", "process pool, map", w1_processpool},
    /* W2 */
    {"W2", "serial", "one thread", w2_serial},
    {"W2", "thread", "thread pool(3)", w2_pool},
    {"W2", "process", "process pool(3)", w2_processpool},
    /* IO: waiting, not computing; each row in a child of its own (its own memory) */
    {"IO", "threads", "thread per task", io_row_threads},
    {"IO", "thread", "thread pool", io_row_pool},
    {"IO", "coroutines", "coroutines", io_row_coroutines},
};
enum { NMODELS = sizeof models / sizeof models[0] };

static void workload_title(const cmp_config *cfg, const char *id, char *buf, size_t cap) {
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++) {
        if (strcmp(workloads[i].id, id) == 0) {
            workloads[i].title(cfg, buf, cap);
            return;
        }
    }
    snprintf(buf, cap, "%s", id);
}

/* --- output ----------------------------------------------------------------------------- */

typedef struct cmp_row {
    const cmp_model *model;
    cmp_run run;
    double speedup, efficiency;
    bool ok; /* ran, and every result correct */
} cmp_row;

static bool is_io(const cmp_row *r) { return strcmp(r->model->workload, "IO") == 0; }

/* The I/O-bound table: seconds and memory, no speed-up (nothing computes). */
static void print_io_table(const cmp_config *cfg, const cmp_row *rows, int n) {
    printf("\nI/O-bound work: %d tasks that each wait %d ms (a thread pool of %d: %d rounds)\n\n",
           cfg->io_tasks, (int)(cfg->io_wait / BR_MSEC), cfg->io_pool,
           (cfg->io_tasks + cfg->io_pool - 1) / cfg->io_pool);
    printf("%-20s %-18s %7s %9s %10s  %s\n", "workload", "model", "workers", "seconds",
           "memory", "results");
    for (int i = 0; i < n; i++) {
        const cmp_row *r = &rows[i];
        if (!is_io(r))
            continue;
        char title[64];
        workload_title(cfg, r->model->workload, title, sizeof title);
        if (r->run.rc != 0) {
            printf("%-20s %-18s %7d %9s %10s  error %s\n", title, r->model->label,
                   r->run.workers, "-", "-", br_err_name(r->run.rc));
            continue;
        }
        char results[32];
        snprintf(results, sizeof results, "%ld/%ld %s", r->run.correct, r->run.total,
                 r->ok ? "ok" : "WRONG");
        printf("%-20s %-18s %7d %9.3f %6.1f MiB  %s\n", title, r->model->label,
               r->run.workers, r->run.seconds, r->run.mem_mib, results);
    }
    printf("\nmemory: peak RSS of a child process running the row (wait4's ru_maxrss), "
           "minus an idle child's\n");
}

static void print_table(const cmp_config *cfg, const cmp_row *rows, int n) {
    char load[48] = "";
    if (cfg->loadavg >= 0)
        snprintf(load, sizeof load, ", load average %.2f at start", cfg->loadavg);
    printf("braid compare: CPU-bound work under each model, on this machine (%d CPU%s%s%s)\n\n",
           cfg->cpus, cfg->cpus == 1 ? "" : "s", load,
           cfg->quick ? "; --quick: small sizes" : "");
    printf("%-20s %-18s %7s %9s %9s %10s  %s\n", "workload", "model", "workers", "seconds",
           "speed-up", "efficiency", "results");
    for (int i = 0; i < n; i++) {
        const cmp_row *r = &rows[i];
        if (is_io(r))
            continue;
        char title[64];
        workload_title(cfg, r->model->workload, title, sizeof title);
        if (r->run.rc != 0) {
            printf("%-20s %-18s %7d %9s %9s %10s  error %s\n", title, r->model->label,
                   r->run.workers, "-", "-", "-", br_err_name(r->run.rc));
            continue;
        }
        char results[32];
        snprintf(results, sizeof results, "%ld/%ld %s", r->run.correct, r->run.total,
                 r->ok ? "ok" : "WRONG");
        printf("%-20s %-18s %7d %9.3f %8.2fx %10.2f  %s\n", title, r->model->label,
               r->run.workers, r->run.seconds, r->speedup, r->efficiency, results);
    }
    printf("\nspeed-up: against the workload's one-thread row; "
           "efficiency: speed-up / min(workers, %d CPU%s)\n",
           cfg->cpus, cfg->cpus == 1 ? "" : "s");
}

static void print_json(const cmp_config *cfg, const cmp_row *rows, int n) {
    for (int i = 0; i < n; i++) {
        const cmp_row *r = &rows[i];
        printf("{\"workload\": \"%s\", \"variant\": \"%s\", \"impl\": \"braid\", "
               "\"model\": \"%s\", \"metric\": \"seconds\", \"value\": %.4f, \"unit\": \"s\", "
               "\"workers\": %d, \"speedup\": %.3f, \"efficiency\": %.3f, "
               "\"correct\": %ld, \"total\": %ld, \"ok\": %s, \"error\": %s%s%s, "
               "\"cpus\": %d, \"quick\": %s",
               r->model->workload, r->model->variant, r->model->label, r->run.seconds,
               r->run.workers, r->speedup, r->efficiency, r->run.correct, r->run.total,
               r->ok ? "true" : "false", r->run.rc ? "\"" : "",
               r->run.rc ? br_err_name(r->run.rc) : "null", r->run.rc ? "\"" : "", cfg->cpus,
               cfg->quick ? "true" : "false");
        if (is_io(r))
            printf(", \"memory_mib\": %.1f, \"wait_ms\": %d", r->run.rc == 0 ? r->run.mem_mib : -1.0,
                   (int)(cfg->io_wait / BR_MSEC));
        printf("}\n");
    }
}

/* How a threaded W1 row ran, for the verdict: "on 2 braid threads". */
static void row_phrase(const cmp_row *r, char *buf, size_t cap) {
    if (strcmp(r->model->variant, "threads") == 0)
        snprintf(buf, cap, "on %d braid thread%s", r->run.workers,
                 r->run.workers == 1 ? "" : "s");
    else
        snprintf(buf, cap, "in the thread pool (%d workers)", r->run.workers);
}

static const cmp_row *find_row(const cmp_row *rows, int n, const char *workload,
                              const char *variant) {
    for (int i = 0; i < n; i++)
        if (strcmp(rows[i].model->workload, workload) == 0 &&
            strcmp(rows[i].model->variant, variant) == 0)
            return &rows[i];
    return NULL;
}

/* The verdict's second half: what the process rows show. Processes scale CPU-bound
 * work as threads do in C (no GIL either way); what they add is the cost of starting a
 * process and copying arguments and results, which W2's short tasks show against the
 * thread pool. */
static void process_verdict(const cmp_row *rows, int n, char *buf, size_t cap) {
    const cmp_row *procs = find_row(rows, n, "W1", "processes");
    const cmp_row *ppool = find_row(rows, n, "W1", "process");
    const cmp_row *t2 = find_row(rows, n, "W2", "thread");
    const cmp_row *p2 = find_row(rows, n, "W2", "process");
    size_t len = strlen(buf);
    if (len >= cap)
        return;
    if (!procs || !ppool || !procs->ok || !ppool->ok) {
        snprintf(buf + len, cap - len, "; a process row failed, see the table");
        return;
    }
    double best = procs->speedup > ppool->speedup ? procs->speedup : ppool->speedup;
    len += (size_t)snprintf(buf + len, cap - len,
                            "; %s: %.2fx in %d braid processes, %.2fx in the process pool",
                            best >= 1.2 ? "processes scale it too"
                                        : "processes gave no more here (the same CPUs)",
                            procs->speedup, procs->run.workers, ppool->speedup);
    if (len < cap && t2 && p2 && t2->ok && p2->ok)
        snprintf(buf + len, cap - len,
                 ", and pay for starting processes and copying arguments and results "
                 "(W2: %.3f s in the process pool against %.3f s in the thread pool)",
                 p2->run.seconds, t2->run.seconds);
}

/* The headline: what the W1 rows show about threads and CPU-bound work. The rows that
 * count are W1's in-process threaded ones (variants "threads" and "thread"); the best
 * of them leads, the others follow. */
static void verdict(const cmp_config *cfg, const cmp_row *rows, int n, char *buf,
                    size_t cap) {
    const cmp_row *threaded[8];
    int nt = 0, best = -1;
    for (int i = 0; i < n && nt < 8; i++) {
        const cmp_row *r = &rows[i];
        if (strcmp(r->model->workload, "W1") != 0 || !r->ok ||
            (strcmp(r->model->variant, "threads") != 0 &&
             strcmp(r->model->variant, "thread") != 0))
            continue;
        if (best < 0 || r->speedup > threaded[best]->speedup)
            best = nt;
        threaded[nt++] = r;
    }
    static const char cpython[] = "the tutorial's CPython threads gained nothing on the "
                                  "same work (26.07 s alone, 25.58 s in a thread pool: "
                                  "1.02x) because of the GIL";
    if (best < 0) {
        snprintf(buf, cap, "no threaded W1 row ran correctly, so this run shows nothing "
                           "about threads; see the table");
        return;
    }
    const cmp_row *top = threaded[best];
    char how[64];
    row_phrase(top, how, sizeof how);
    if (cfg->cpus == 1) {
        snprintf(buf, cap, "this process may use only 1 CPU, so no model can run "
                           "CPU-bound work in parallel here (%.2fx %s); %s",
                 top->speedup, how, cpython);
    } else if (top->speedup >= 1.2) {
        size_t len = (size_t)snprintf(buf, cap,
                                      "in C, threads do speed up CPU-bound work: W1 ran "
                                      "%.2fx faster %s than on one thread (parallel "
                                      "efficiency %.2f)",
                                      top->speedup, how, top->efficiency);
        for (int k = 0; k < nt && len < cap; k++) {
            if (k == best)
                continue;
            row_phrase(threaded[k], how, sizeof how);
            len += (size_t)snprintf(buf + len, cap - len, ", %.2fx %s", threaded[k]->speedup,
                                    how);
        }
        if (len < cap)
            snprintf(buf + len, cap - len, "; %s", cpython);
    } else {
        char load[64] = "";
        if (cfg->loadavg >= 0)
            snprintf(load, sizeof load, " (load average %.2f at start)", cfg->loadavg);
        snprintf(buf, cap, "threads gave only %.2fx on %d CPUs in this run: other programs "
                           "had the CPUs%s, so run it again on a quiet machine; %s",
                 top->speedup, cfg->cpus, load, cpython);
    }
}

/* The I/O-bound verdict, in the tutorials' terms: waiting needs no CPU, so what decides
 * is what a waiter costs. A thread per task waits all at once but pays a stack and a
 * kernel task each; a pool of N serialises the waits into tasks / N rounds (its default
 * size, CPUs + 4 as Python's, would take tasks / (CPUs + 4) rounds); a coroutine waits
 * all at once for the price of a small stack. The winner is read from the rows: the
 * fastest, and the smaller memory between rows within 20 % of each other's time. */
static void io_verdict(const cmp_config *cfg, const cmp_row *rows, int n, char *buf,
                       size_t cap) {
    const cmp_row *th = find_row(rows, n, "IO", "threads");
    const cmp_row *pool = find_row(rows, n, "IO", "thread");
    const cmp_row *co = find_row(rows, n, "IO", "coroutines");
    if (!th || !pool || !co || !th->ok || !pool->ok || !co->ok) {
        snprintf(buf, cap, "an I/O-bound row failed, see the table");
        return;
    }
    int dflt = cfg->cpus + 4 < 32 ? cfg->cpus + 4 : 32;
    int rounds = (cfg->io_tasks + cfg->io_pool - 1) / cfg->io_pool;
    int drounds = (cfg->io_tasks + dflt - 1) / dflt;
    double wait_s = (double)cfg->io_wait / BR_SEC;
    bool co_wins = co->run.seconds <= th->run.seconds * 1.2 &&
                   co->run.seconds <= pool->run.seconds * 1.2 &&
                   co->run.mem_mib <= th->run.mem_mib;
    snprintf(buf, cap,
             "%s: %d coroutines waited together in %.3f s and %.1f MiB on one thread; "
             "%d threads also waited together (%.3f s) but cost %.1f MiB (a stack and a "
             "kernel task each); a pool of %d serialises the waits into %d rounds of "
             "%.0f ms (%.3f s), and at the default size (%d workers: CPUs + 4) it would "
             "take %d rounds, about %.0f s",
             co_wins ? "for I/O-bound work coroutines win" :
                       "coroutines did not come out ahead in this run (see the table)",
             cfg->io_tasks, co->run.seconds, co->run.mem_mib, th->run.workers,
             th->run.seconds, th->run.mem_mib, pool->run.workers, rounds, wait_s * 1000,
             pool->run.seconds, dflt, drounds, drounds * wait_s);
}

/* --- main ------------------------------------------------------------------------------- */

void braid_compare_usage(void) {
    printf("usage: braid compare [--quick] [--json] [--threads N]\n"
           "\n"
           "Runs the tutorials' CPU-bound experiment under every model braid has and\n"
           "prints a table (model, workers, seconds, speed-up, parallel efficiency,\n"
           "correct results) and a one-line verdict.\n"
           "  W1  is_prime(112272535095293) x 100: one thread, N braid threads, thread pool\n"
           "  W2  fib(25..34) on a thread pool of 3, with as_completed\n"
           "and the I/O-bound case, each row in a child process of its own (seconds and\n"
           "peak memory above an idle child's):\n"
           "  IO  10,000 tasks that each wait 100 ms: a thread per task, a thread pool of\n"
           "      500 (20 rounds; the default size would take minutes), coroutines\n"
           "\n"
           "  --quick      small sizes (W1 x 8, fib 20..29, IO 1,000 tasks and a pool of\n"
           "               100), for tests\n"
           "  --json       one JSON object per row (BENCH.md's format), then the verdict\n"
           "  --threads N  N for the braid-threads row (default: the CPUs this process\n"
           "               may use, %d here)\n"
           "Exit status: 0 if every row ran and every result was correct, 1 if not.\n",
           br_cpu_count());
}

int braid_compare_main(int argc, char **argv) {
    cmp_config cfg = {.cpus = br_cpu_count(), .loadavg = read_loadavg()};
    cfg.threads = cfg.cpus;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            cfg.quick = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            cfg.json = true;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            char *end;
            long t = strtol(argv[++i], &end, 10);
            if (*end != '\0' || t < 1 || t > 1024) {
                fprintf(stderr, "braid compare: --threads wants 1..1024\n");
                return 2;
            }
            cfg.threads = (int)t;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            braid_compare_usage();
            return 0;
        } else {
            fprintf(stderr, "braid compare: unknown option '%s'\n", argv[i]);
            braid_compare_usage();
            return 2;
        }
    }
    cfg.w1_calls = cfg.quick ? 8 : 100;
    cfg.w2_first = cfg.quick ? 20 : 25;
    cfg.w2_last = cfg.quick ? 29 : 34;
    cfg.io_tasks = cfg.quick ? 1000 : 10000;
    cfg.io_pool = cfg.quick ? 100 : 500;
    cfg.io_wait = 100 * BR_MSEC;

    cmp_row rows[NMODELS];
    const cmp_row *base = NULL;
    bool all_ok = true;
    bool progress = !cfg.json && isatty(STDERR_FILENO);
    for (int i = 0; i < NMODELS; i++) {
        cmp_row *r = &rows[i];
        *r = (cmp_row){.model = &models[i]};
        if (progress) {
            fprintf(stderr, "running %s %s...\r", models[i].workload, models[i].label);
            fflush(stderr);
        }
        r->run.rc = models[i].run(&cfg, &r->run);
        r->ok = r->run.rc == 0 && r->run.correct == r->run.total;
        if (i == 0 || strcmp(models[i].workload, models[i - 1].workload) != 0)
            base = r; /* the first row of each workload */
        if (r->run.rc == 0 && base->run.rc == 0 && r->run.seconds > 0) {
            r->speedup = base->run.seconds / r->run.seconds;
            int used = r->run.workers < cfg.cpus ? r->run.workers : cfg.cpus;
            /* waiting uses no CPU: no parallel efficiency for the I/O rows */
            r->efficiency = is_io(r) ? 0 : r->speedup / (used > 0 ? used : 1);
        }
        all_ok = all_ok && r->ok;
    }
    if (progress)
        fprintf(stderr, "%60s\r", "");

    char v[1024];
    verdict(&cfg, rows, NMODELS, v, sizeof v);
    process_verdict(rows, NMODELS, v, sizeof v);
    char vio[1024];
    io_verdict(&cfg, rows, NMODELS, vio, sizeof vio);
    if (cfg.json) {
        print_json(&cfg, rows, NMODELS);
        printf("{\"verdict\": \"%s\", \"verdict_io\": \"%s\", \"cpus\": %d, "
               "\"loadavg\": %.2f, \"ok\": %s}\n",
               v, vio, cfg.cpus, cfg.loadavg, all_ok ? "true" : "false");
    } else {
        print_table(&cfg, rows, NMODELS);
        printf("verdict: %s.\n", v);
        print_io_table(&cfg, rows, NMODELS);
        printf("verdict, I/O-bound: %s.\n", vio);
    }
    return all_ok ? 0 : 1;
}
