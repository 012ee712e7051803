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
#define _GNU_SOURCE /* isatty, wait4, pipe2, mkostemp */
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
#include "report.h"
#include "workloads.h"

/* --- configuration ------------------------------------------------------------------ */

enum { CMP_MAX_ROUNDS = 64 };

typedef struct cmp_config {
    bool quick;
    bool json;
    int rounds;     /* every row runs this often, rows interleaved (A B C A B C ...) */
    int cpus;       /* br_cpu_count() */
    double loadavg; /* the 1-minute load average at start; < 0 if unknown */
    double loadavg_end; /* ... and at the end */
    char cpu_model[128]; /* /proc/cpuinfo's model name, or "unknown CPU" */
    const char *report;  /* the HTML report's path; NULL: none (--no-report) */
    bool with_python;    /* --with-python: the Python peers' rows too */
    bool python_ok;      /* ... and python3 and the peers' directory exist */
    const char *python;  /* the interpreter: /usr/bin/python3 */
    const char *python_peers; /* the peers' directory (w1_primes.py) */
    int python_calls;    /* W1's calls for the Python rows (the scale printed) */
    int64_t w9_latency;  /* W9: the fixture's added latency, 100 ms (10 ms with --quick) */
    int w9_concurrency;  /* W9: the crawl's concurrency: 50, every page at once (--concurrency) */
    char w9_expected[64]; /* W9's expected.tsv for the Python peer ("" when none) */
    int threads;  /* the "threads" row's N: cpus, or --threads */
    int w1_calls; /* 100; 8 with --quick */
    int mpi;      /* --mpi N: the MPI row's worker ranks; 0: no MPI row */
    int w2_first; /* fib(first..last): 25..34; 20..29 with --quick */
    int w2_last;
    int io_tasks;     /* the I/O rows' tasks: 10,000; 1,000 with --quick */
    int io_pool;      /* the I/O pool row's size: 500 (20 rounds); 100 with --quick */
    int64_t io_wait;  /* what each I/O task waits: 100 ms */
    unsigned parts;   /* CMP_CPU | CMP_IO | CMP_CRAWL: the experiments to run (--only) */
} cmp_config;

/* The three experiments, as --only names them: W1 and W2 (with their Python and MPI
 * rows), the I/O-bound rows, and W9's crawl. */
enum { CMP_CPU = 1u, CMP_IO = 2u, CMP_CRAWL = 4u, CMP_ALL = 7u };

/* What one row measured. */
typedef struct cmp_run {
    int workers;
    double seconds;
    long correct, total;
    int rc; /* 0, or the braid error that stopped the run */
    double mem_mib; /* I/O rows: peak RSS above an idle child's (MiB); < 0 unknown */
    char err[160];  /* what failed, when the failure has more to say than rc */
} cmp_run;

typedef struct cmp_model {
    const char *workload; /* "W1": a key of workloads[] */
    const char *variant;  /* the peers' variant name where one exists ("single", "thread") */
    const char *label;    /* the table's model column */
    int (*run)(const cmp_config *cfg, cmp_run *out);
    bool python;          /* a Python peer's row: only with --with-python */
} cmp_model;

/* The CPU's model name (/proc/cpuinfo's first "model name", as lscpu prints it). */
static void read_cpu_model(char *buf, size_t cap) {
    snprintf(buf, cap, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "re");
    if (f == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        char *v = strchr(line, ':');
        if (v == NULL)
            continue;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t n = strcspn(v, "\n");
        while (n > 0 && v[n - 1] == ' ')
            n--;
        if (n > 0)
            snprintf(buf, cap, "%.*s", (int)n, v);
        break;
    }
    fclose(f);
}

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

/* Forkserver workers, as Python 3.14's default on Linux: the workers fork from a
 * single-threaded server, whatever threads compare's earlier rows left behind (braid's
 * child watcher; a sanitizer's own). */
static int make_processpool(br_executor **out, int max_workers) {
    return br_processpool_new(out, &(br_processpool_opts){
                                       .max_workers = max_workers,
                                       .start_method = BR_START_FORKSERVER});
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
 * shape as the pools' (a br_task_fn on argument bytes: here the count of calls and the
 * Value's descriptor). */
static br_mp_value *w1_found;

/* What a "braid processes" child gets: its share of the calls, and the shared Value's
 * descriptor (passed in br_process_opts.fds: the children are forkserver children, they
 * inherit nothing else). */
typedef struct w1_proc_arg {
    int64_t count;
    int found_fd;
} w1_proc_arg;

static int w1_process_task(br_task *t) {
    size_t len = 0;
    const w1_proc_arg *a = br_task_arg(t, &len);
    if (len != sizeof *a)
        return br_task_fail(t, BR_EINVAL, "argument of %zu bytes", len);
    int64_t found = 0;
    for (int64_t k = 0; k < a->count; k++)
        found += is_prime(w1_number);
    br_mp_value *v;
    int rc = br_mp_value_attach(&v, a->found_fd);
    if (rc != 0)
        return br_task_fail(t, rc, "the shared Value: %s", br_strerror(rc));
    rc = br_mp_value_add_i64(v, found, NULL);
    br_mp_value_free(v);
    return rc;
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
        w1_proc_arg a = {(started + 1) * cfg->w1_calls / n - started * cfg->w1_calls / n,
                         br_mp_value_fd(w1_found)};
        char name[24];
        snprintf(name, sizeof name, "primes-%d", started);
        rc = br_process_start(&ps[started], w1_process_task, &a, sizeof a,
                              &(br_process_opts){.name = name,
                                                 .start_method = BR_START_FORKSERVER,
                                                 .fds = &a.found_fd, .nfds = 1});
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

/* --- Python: the tutorials' own programs, as rows of the same table ------------------- */

/* The peer's w1_primes module, imported and run unchanged but for PRIMES, shortened to
 * `calls` copies of the number (the peer has 100; the scale is printed). Prints
 * "SECONDS CORRECT WORKERS": the timed call (the whole with block, as the peer times
 * it), how many results were True, and the pool's size as Python chooses it. */
static const char py_w1_script[] =
    "import os, sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "import w1_primes\n"
    "from bench_common import perf\n"
    "v, n = sys.argv[2], int(sys.argv[3])\n"
    "w1_primes.PRIMES = [112272535095293] * n\n"
    "t0 = perf()\n"
    "res = w1_primes.VARIANTS[v]()\n"
    "t1 = perf()\n"
    "cpus = os.cpu_count() or 1\n"
    "workers = {'single': 1, 'thread': min(32, cpus + 4), 'process': cpus}[v]\n"
    "print('%.6f %d %d' % (t1 - t0, sum(1 for x in res if x is True), workers))\n";

/* Runs a W1 row's child (argv, with cwd; NULL: ours), which prints
 * "SECONDS CORRECT WORKERS", into *out (total calls). `what` names it in a failure. */
static int run_w1_child(const char *const *argv, const char *cwd, const char *what,
                        int total, cmp_run *out) {
    br_completed res;
    int rc = br_run(argv, &(br_subprocess_opts){.capture_output = true, .cwd = cwd}, &res);
    out->total = total;
    double secs = 0;
    long correct = 0;
    int workers = 0;
    if (rc == 0 && (res.returncode != 0 || res.out == NULL ||
                    sscanf(res.out, "%lf %ld %d", &secs, &correct, &workers) != 3)) {
        snprintf(out->err, sizeof out->err, "%s exited %d: %.100s", what, res.returncode,
                 res.err != NULL ? res.err : "");
        rc = BR_EFAILED;
    } else if (rc != 0) {
        snprintf(out->err, sizeof out->err, "%s can't run: %s", what, br_strerror(rc));
    }
    br_completed_destroy(&res);
    out->seconds = secs;
    out->correct = correct;
    out->workers = workers;
    return rc;
}

static int py_w1(const cmp_config *cfg, cmp_run *out, const char *variant) {
    char calls[16];
    snprintf(calls, sizeof calls, "%d", cfg->python_calls);
    const char *argv[] = {cfg->python, "-c", py_w1_script, cfg->python_peers, variant, calls,
                          NULL};
    return run_w1_child(argv, cfg->python_peers, "python", cfg->python_calls, out);
}

static int py_w1_single(const cmp_config *cfg, cmp_run *out) {
    return py_w1(cfg, out, "single");
}

static int py_w1_thread(const cmp_config *cfg, cmp_run *out) {
    return py_w1(cfg, out, "thread");
}

static int py_w1_process(const cmp_config *cfg, cmp_run *out) {
    return py_w1(cfg, out, "process");
}

/* --- MPI: W1 over MPI ranks (--mpi N) ------------------------------------------------ */

#ifdef BRAID_APP_MPI
/* path: NAME next to this program (an install puts braid-mpirun and braid-compare-mpi
 * in bin/ beside braid), else the build tree's `fallback`. */
static void beside_me(char *path, size_t cap, const char *name, const char *fallback) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(path, cap, "%s/%s", self, name);
            if (access(path, X_OK) == 0)
                return;
        }
    }
    snprintf(path, cap, "%s", fallback);
}

/* braid-mpirun -n N+1 braid-compare-mpi CALLS: rank 0 times W1 through br_map on the MPI
 * executor over the N worker ranks and prints "SECONDS CORRECT WORKERS" (compare_mpi.c).
 * Its start-up (mpirun, MPI_Init on every rank) is outside the time, as the pools'
 * start-up is outside theirs. */
static int w1_mpi(const cmp_config *cfg, cmp_run *out) {
    char launcher[4200], helper[4200], ranks[16], calls[16];
    beside_me(launcher, sizeof launcher, "braid-mpirun", BRAID_APP_MPIRUN);
    beside_me(helper, sizeof helper, "braid-compare-mpi", BRAID_APP_MPI_HELPER);
    snprintf(ranks, sizeof ranks, "%d", cfg->mpi + 1);
    snprintf(calls, sizeof calls, "%d", cfg->w1_calls);
    const char *argv[] = {launcher, "-n", ranks, helper, calls, NULL};
    return run_w1_child(argv, NULL, "braid-mpirun", cfg->w1_calls, out);
}
#endif

/* --- W9: the I/O-bound crawl -------------------------------------------------------- */

/* BENCH.md W9: the fixture's 50 pages (20 titled links each) behind the embedded fixture
 * server with an added latency, crawled by every model `braid crawl` has; each round of
 * each model in a forked child, as the IO rows, so that its peak RSS is its own. The
 * server runs in this process (its own loop thread) for the whole experiment; the
 * children connect to it over loopback. */
#if defined(BRAID_APP_HTTP) && defined(__has_include)
#if __has_include("crawl.h") && __has_include("fixture.h")
#define CMP_HAVE_W9 1
#include "crawl.h"
#include "fixture.h"
#endif
#endif
#ifndef CMP_HAVE_W9
#define CMP_HAVE_W9 0
#endif

enum { W9_PAGES = 50, W9_LINES = 50 * 20 };

#if CMP_HAVE_W9
/* The fixture server runs in a child process of its own, forked before any row runs:
 * this process then has no thread of the server's when it forks the rows' children
 * (a fork copies only the forking thread, and a loop thread's state half-copied is
 * what a child must not meet), and a row's memory never includes the server's pages.
 * The child starts the server, writes its URL (or "!" and the error) on a pipe, and
 * serves until its control pipe reaches end of file; then it stops the server and
 * exits. w9_url is "" when no server runs. */
static char w9_url[128];
static pid_t w9_pid = -1;
static int w9_ctl = -1;

static int w9_server_start(int64_t latency) {
    int up[2], ctl[2];
    w9_url[0] = '\0';
    if (pipe2(up, O_CLOEXEC) != 0)
        return BR_EFAILED;
    if (pipe2(ctl, O_CLOEXEC) != 0) {
        close(up[0]);
        close(up[1]);
        return BR_EFAILED;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(up[0]);
        close(up[1]);
        close(ctl[0]);
        close(ctl[1]);
        return BR_EFAILED;
    }
    if (pid == 0) {
        close(up[0]);
        close(ctl[1]);
        braid_fixture_server *srv;
        char msg[160];
        int rc = braid_fixture_server_start("127.0.0.1", 0, latency, &srv);
        if (rc == 0)
            snprintf(msg, sizeof msg, "%s\n", braid_fixture_server_url(srv));
        else
            snprintf(msg, sizeof msg, "!%d\n", rc);
        ssize_t w = write(up[1], msg, strlen(msg));
        close(up[1]);
        char c;
        while (read(ctl[0], &c, 1) < 0 && errno == EINTR) {
        }
        if (rc == 0)
            braid_fixture_server_stop(srv);
        _exit(w > 0 && rc == 0 ? 0 : 1);
    }
    close(up[1]);
    close(ctl[0]);
    char buf[160];
    size_t got = 0;
    while (got + 1 < sizeof buf) {
        ssize_t k = read(up[0], buf + got, sizeof buf - 1 - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
        if (memchr(buf, '\n', got) != NULL)
            break;
    }
    close(up[0]);
    buf[got] = '\0';
    w9_pid = pid;
    w9_ctl = ctl[1];
    if (got == 0 || buf[0] == '!' || buf[got - 1] != '\n' || got > sizeof w9_url) {
        int rc = got > 1 && buf[0] == '!' ? (int)strtol(buf + 1, NULL, 10) : BR_EFAILED;
        return rc != 0 ? rc : BR_EFAILED;
    }
    buf[got - 1] = '\0';
    memcpy(w9_url, buf, got); /* got <= sizeof w9_url, checked above */
    return 0;
}

static void w9_server_stop(void) {
    if (w9_ctl >= 0)
        close(w9_ctl); /* the child's read ends: it stops the server and exits */
    w9_ctl = -1;
    if (w9_pid > 0) {
        int st;
        while (waitpid(w9_pid, &st, 0) < 0 && errno == EINTR) {
        }
    }
    w9_pid = -1;
    w9_url[0] = '\0';
}

static int w9_crawl(const cmp_config *cfg, cmp_run *out, const char *model) {
    size_t lines = 0;
    double secs = 0;
    int rc = braid_crawl_bench(model, w9_url,
                               cfg->w9_concurrency, &secs, &lines, out->err,
                               sizeof out->err);
    out->seconds = secs;
    out->correct = (long)lines;
    out->total = W9_LINES;
    out->workers = strcmp(model, "serial") == 0 ? 1 : cfg->w9_concurrency;
    return rc;
}

#define W9_MODEL(m)                                                                        \
    static int w9_##m(const cmp_config *cfg, cmp_run *out) { return w9_crawl(cfg, out, #m); } \
    static int w9_row_##m(const cmp_config *cfg, cmp_run *out) {                           \
        return io_row(cfg, out, w9_##m);                                                   \
    }
W9_MODEL(serial)
W9_MODEL(threads)
W9_MODEL(pipeline)
W9_MODEL(pool)
W9_MODEL(process)
W9_MODEL(async)

/* The tutorial's own crawler, the peer's w9_crawl.py, against the same server: a
 * variant with the tutorial's parser (bs4), its output checked by the peer against the
 * fixture's expected.tsv (written once per run, cfg->w9_expected). The peer prints one
 * JSON object with "value" (seconds) and "lines"; it exits 1 when the lines differ. */
static int py_w9(const cmp_config *cfg, cmp_run *out, const char *variant) {
    char base[256];
    snprintf(base, sizeof base, "%s", w9_url);
    size_t bl = strlen(base);
    if (bl > 0 && base[bl - 1] == '/')
        base[bl - 1] = '\0'; /* the peer appends "/page-NN.html" */
    if (cfg->w9_expected[0] == '\0') {
        snprintf(out->err, sizeof out->err, "no expected.tsv for the peer");
        return BR_EFAILED;
    }
    char outfile[] = "/tmp/braid-compare-w9-XXXXXX"; /* the peer's output, then checked */
    int fd = mkostemp(outfile, O_CLOEXEC);
    if (fd < 0) {
        snprintf(out->err, sizeof out->err, "no temporary file: %s", strerror(errno));
        return BR_EFAILED;
    }
    close(fd);
    const char *argv[] = {cfg->python, "w9_crawl.py", "--base", base, "--variant", variant,
                          "--parser", "bs4", "--out", outfile, "--expected", cfg->w9_expected,
                          NULL};
    br_completed res;
    int rc = br_run(argv, &(br_subprocess_opts){.capture_output = true,
                                                .cwd = cfg->python_peers},
                    &res);
    unlink(outfile);
    out->total = W9_LINES;
    out->workers = strcmp(variant, "serial") == 0        ? 1
                   : strcmp(variant, "thread-per-url") == 0 ? W9_PAGES
                   : strcmp(variant, "threadpool") == 0     ? (cfg->cpus + 4 < 32 ? cfg->cpus + 4 : 32)
                   : strcmp(variant, "pipeline") == 0       ? 5
                   : strcmp(variant, "mp-pool4") == 0       ? 4
                                                            : 10;
    const char *v = res.out != NULL ? strstr(res.out, "\"value\": ") : NULL;
    const char *l = res.out != NULL ? strstr(res.out, "\"lines\": ") : NULL;
    if (rc == 0 && (res.returncode != 0 || v == NULL || l == NULL)) {
        snprintf(out->err, sizeof out->err, "w9_crawl.py exited %d: %.100s", res.returncode,
                 res.err != NULL && res.err_len > 0 ? res.err
                 : res.out != NULL                  ? res.out
                                                    : "");
        rc = BR_EFAILED;
    }
    if (rc == 0) {
        out->seconds = strtod(v + 9, NULL);
        out->correct = strtol(l + 9, NULL, 10);
    }
    br_completed_destroy(&res);
    return rc;
}

#define PY_W9(name, variant)                                                               \
    static int py_w9_##name(const cmp_config *cfg, cmp_run *out) {                          \
        return py_w9(cfg, out, variant);                                                   \
    }                                                                                      \
    static int py_w9_row_##name(const cmp_config *cfg, cmp_run *out) {                      \
        return io_row(cfg, out, py_w9_##name);                                             \
    }
PY_W9(serial, "serial")
PY_W9(threads, "thread-per-url")
PY_W9(pool, "threadpool")
PY_W9(pipeline, "pipeline")
PY_W9(process, "mp-pool4")
PY_W9(async, "aiohttp-sem10")

/* expected.tsv for the peer, into a file of this run's own; "" when it can't be made. */
static void write_expected(cmp_config *cfg) {
    cfg->w9_expected[0] = '\0';
    char *tsv;
    size_t len;
    if (braid_fixture_expected(&tsv, &len) != 0)
        return;
    char path[] = "/tmp/braid-compare-expected-XXXXXX";
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0) {
        if (write(fd, tsv, len) == (ssize_t)len)
            snprintf(cfg->w9_expected, sizeof cfg->w9_expected, "%s", path);
        else
            unlink(path);
        close(fd);
    }
    free(tsv);
}
#endif

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

static void w9_title(const cmp_config *cfg, char *buf, size_t cap) {
    snprintf(buf, cap, "W9 %d pages +%dms", W9_PAGES, (int)(cfg->w9_latency / BR_MSEC));
}

typedef struct cmp_workload {
    const char *id;
    void (*title)(const cmp_config *cfg, char *buf, size_t cap); /* sizes included */
} cmp_workload;

static const cmp_workload workloads[] = {
    {"W1", w1_title},
    {"W2", w2_title},
    {"IO", io_title},
    {"W9", w9_title},
};

static const cmp_model models[] = {
    /* W1: the first row of a workload (of braid's, of Python's) is its baseline. */
    {"W1", "single", "one thread", w1_single, false},
    {"W1", "threads", "braid threads", w1_threads, false},
    {"W1", "thread", "thread pool, map", w1_pool, false},
    {"W1", "processes", "braid processes", w1_processes, false},
    {"W1", "process", "process pool, map", w1_processpool, false},
#ifdef BRAID_APP_MPI
    {"W1", "mpi", "MPI ranks, map", w1_mpi, false}, /* only with --mpi N */
#endif
    {"W1", "single", "Python: one thread", py_w1_single, true},
    {"W1", "thread", "Python: thread pool", py_w1_thread, true},
    {"W1", "process", "Python: process pool", py_w1_process, true},
    /* W2 */
    {"W2", "serial", "one thread", w2_serial, false},
    {"W2", "thread", "thread pool(3)", w2_pool, false},
    {"W2", "process", "process pool(3)", w2_processpool, false},
    /* IO: waiting, not computing; each row in a child of its own (its own memory) */
    {"IO", "threads", "thread per task", io_row_threads, false},
    {"IO", "thread", "thread pool", io_row_pool, false},
    {"IO", "coroutines", "coroutines", io_row_coroutines, false},
#if CMP_HAVE_W9
    /* W9: the crawl, `braid crawl --model M` against the fixture; children as IO's */
    {"W9", "serial", "serial", w9_row_serial, false},
    {"W9", "threads", "threads", w9_row_threads, false},
    {"W9", "pipeline", "pipeline", w9_row_pipeline, false},
    {"W9", "pool", "thread pool", w9_row_pool, false},
    {"W9", "process", "process pool", w9_row_process, false},
    {"W9", "async", "coroutines", w9_row_async, false},
    {"W9", "serial", "Python: serial", py_w9_row_serial, true},
    {"W9", "thread-per-url", "Python: thread per URL", py_w9_row_threads, true},
    {"W9", "pipeline", "Python: pipeline", py_w9_row_pipeline, true},
    {"W9", "threadpool", "Python: thread pool", py_w9_row_pool, true},
    {"W9", "mp-pool4", "Python: process pool(4)", py_w9_row_process, true},
    {"W9", "aiohttp-sem10", "Python: asyncio(10)", py_w9_row_async, true},
#endif
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

/* --- rounds and statistics --------------------------------------------------------------- */

typedef struct cmp_row {
    const cmp_model *model;
    cmp_run run;        /* the row's summary: seconds and mem_mib are the medians, rc the
                         * first round's error, correct the worst round's */
    braid_stats secs;   /* over the rounds that ran */
    braid_stats mem;
    double speedup, efficiency;
    bool ok;            /* every round ran, and every result of each was correct */
    bool noise;         /* not physical: left out of the verdicts */
    char flag[96];      /* why, for the tables */
} cmp_row;

static bool is_io(const cmp_row *r) {
    return strcmp(r->model->workload, "IO") == 0 || strcmp(r->model->workload, "W9") == 0;
}

/* The experiment a row belongs to (--only). */
static unsigned part_of(const char *workload) {
    if (strcmp(workload, "IO") == 0)
        return CMP_IO;
    if (strcmp(workload, "W9") == 0)
        return CMP_CRAWL;
    return CMP_CPU;
}

/* --only's list: "cpu", "io", "crawl", comma-separated, each at most once; 0 if bad. */
static unsigned parse_parts(const char *s) {
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"cpu", CMP_CPU}, {"io", CMP_IO}, {"crawl", CMP_CRAWL}};
    unsigned parts = 0;
    while (*s != '\0') {
        size_t len = strcspn(s, ",");
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strlen(names[i].name) == len && strncmp(s, names[i].name, len) == 0)
                bit = names[i].bit;
        if (bit == 0 || (parts & bit) != 0)
            return 0;
        parts |= bit;
        s += len;
        if (*s == ',' && *++s == '\0')
            return 0;
    }
    return parts;
}

static bool is_wl(const cmp_row *r, const char *wl) {
    return strcmp(r->model->workload, wl) == 0;
}

/* The least time a waiting row can take: a wait can't end before it began. IO: one wait
 * (a pool: one per round); W9: one latency (serial: one per page). Below that is a
 * clock or a measuring fault, flagged like an efficiency above 1. */
static double io_floor(const cmp_config *cfg, const cmp_row *r) {
    const char *v = r->model->variant;
    if (is_wl(r, "IO")) {
        double w = (double)cfg->io_wait / BR_SEC;
        return strcmp(v, "thread") == 0 && r->run.workers > 0
                   ? w * ((cfg->io_tasks + r->run.workers - 1) / r->run.workers)
                   : w;
    }
    double l = (double)cfg->w9_latency / BR_SEC;
    return strcmp(v, "serial") == 0 ? l * W9_PAGES : l;
}

/* Folds a row's rounds into its summary (see cmp_row). */
static void summarize(cmp_row *r, const cmp_run *runs, int n) {
    double secs[CMP_MAX_ROUNDS], mem[CMP_MAX_ROUNDS];
    int ran = 0, rc = 0;
    long worst = -1;
    r->run = runs[0];
    for (int k = 0; k < n; k++) {
        if (runs[k].rc != 0) {
            if (rc == 0) {
                rc = runs[k].rc;
                memcpy(r->run.err, runs[k].err, sizeof r->run.err);
            }
            continue;
        }
        secs[ran] = runs[k].seconds;
        mem[ran] = runs[k].mem_mib;
        ran++;
        if (worst < 0 || runs[k].correct < worst)
            worst = runs[k].correct;
        r->run.workers = runs[k].workers;
        r->run.total = runs[k].total;
    }
    r->run.rc = rc;
    r->run.correct = worst < 0 ? 0 : worst;
    if (ran > 0) {
        braid_stats_of(secs, ran, &r->secs);
        braid_stats_of(mem, ran, &r->mem);
    }
    r->run.seconds = r->secs.median;
    r->run.mem_mib = ran > 0 ? r->mem.median : -1;
    r->ok = rc == 0 && ran == n && r->run.correct == r->run.total;
}

/* Speed-up against the workload's first row of the same kind (braid's or Python's),
 * median against median; then the physical checks. */
static void judge(const cmp_config *cfg, cmp_row *rows, int n) {
    for (int i = 0; i < n; i++) {
        cmp_row *r = &rows[i];
        const cmp_row *base = NULL;
        for (int j = 0; j <= i && base == NULL; j++)
            if (is_wl(&rows[j], r->model->workload) &&
                rows[j].model->python == r->model->python)
                base = &rows[j];
        if (r->secs.n == 0 || base->secs.n == 0 || r->run.seconds <= 0)
            continue;
        r->speedup = base->run.seconds / r->run.seconds;
        if (is_io(r)) {
            double floor_s = io_floor(cfg, r);
            if (r->secs.median < floor_s * 0.99) {
                r->noise = true;
                snprintf(r->flag, sizeof r->flag, "noise: %.3f s is below the %.3f s of waiting",
                         r->secs.median, floor_s);
            }
            continue; /* waiting uses no CPU: no parallel efficiency */
        }
        if (!braid_speedup_physical(r->speedup, r->run.workers, cfg->cpus, &r->efficiency)) {
            r->noise = true;
            snprintf(r->flag, sizeof r->flag, "noise: efficiency %.2f > 1 on %d CPU%s",
                     r->efficiency, cfg->cpus, cfg->cpus == 1 ? "" : "s");
        }
    }
}

/* --- output ----------------------------------------------------------------------------- */

static void spread_text(const cmp_row *r, char *buf, size_t cap) {
    if (r->secs.n == 0)
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.3f..%.3f", r->secs.min, r->secs.max);
}

static void machine_line(const cmp_config *cfg, char *buf, size_t cap) {
    char load[96] = "load average unknown";
    if (cfg->loadavg >= 0)
        snprintf(load, sizeof load, "load average %.2f at start, %.2f at end", cfg->loadavg,
                 cfg->loadavg_end);
    snprintf(buf, cap, "%s, %d CPU%s, %s; %d round%s, rows interleaved; "
                       "figures are medians, spread min..max",
             cfg->cpu_model, cfg->cpus, cfg->cpus == 1 ? "" : "s", load, cfg->rounds,
             cfg->rounds == 1 ? "" : "s");
}

/* The I/O-bound tables: seconds and memory, no speed-up (nothing computes). */
static void print_io_rows(const cmp_config *cfg, const cmp_row *rows, int n, const char *wl) {
    printf("%-20s %-24s %7s %9s %13s %10s  %s\n", "workload", "model", "workers", "seconds",
           "spread", "memory", "results");
    for (int i = 0; i < n; i++) {
        const cmp_row *r = &rows[i];
        if (!is_wl(r, wl))
            continue;
        char title[64], spread[48];
        workload_title(cfg, r->model->workload, title, sizeof title);
        spread_text(r, spread, sizeof spread);
        if (r->run.rc != 0) {
            printf("%-20s %-24s %7d %9s %13s %10s  error %s%s%s\n", title, r->model->label,
                   r->run.workers, "-", "-", "-", br_err_name(r->run.rc),
                   r->run.err[0] ? ": " : "", r->run.err);
            continue;
        }
        printf("%-20s %-24s %7d %9.3f %13s %6.1f MiB  %ld/%ld %s%s%s\n", title, r->model->label,
               r->run.workers, r->run.seconds, spread, r->run.mem_mib, r->run.correct,
               r->run.total, r->ok ? "ok" : "WRONG", r->noise ? "  " : "", r->noise ? r->flag : "");
    }
}

static void print_table(const cmp_config *cfg, const cmp_row *rows, int n) {
    char machine[384];
    machine_line(cfg, machine, sizeof machine);
    printf("braid compare: CPU-bound work under each model, on this machine%s\n",
           cfg->quick ? " (--quick: small sizes)" : "");
    printf("machine: %s\n\n", machine);
    printf("%-20s %-24s %7s %9s %13s %9s %10s  %s\n", "workload", "model", "workers",
           "seconds", "spread", "speed-up", "efficiency", "results");
    for (int i = 0; i < n; i++) {
        const cmp_row *r = &rows[i];
        if (is_io(r))
            continue;
        char title[64], spread[48];
        workload_title(cfg, r->model->workload, title, sizeof title);
        spread_text(r, spread, sizeof spread);
        if (r->run.rc != 0) {
            printf("%-20s %-24s %7d %9s %13s %9s %10s  error %s%s%s\n", title, r->model->label,
                   r->run.workers, "-", "-", "-", "-", br_err_name(r->run.rc),
                   r->run.err[0] ? ": " : "", r->run.err);
            continue;
        }
        printf("%-20s %-24s %7d %9.3f %13s %8.2fx %10.2f  %ld/%ld %s%s%s\n", title,
               r->model->label, r->run.workers, r->run.seconds, spread, r->speedup,
               r->efficiency, r->run.correct, r->run.total, r->ok ? "ok" : "WRONG",
               r->noise ? "  " : "", r->noise ? r->flag : "");
    }
    printf("\nspeed-up: median against the median of the workload's one-thread row (Python's "
           "against Python's); efficiency: speed-up / min(workers, %d CPU%s); above 1 is "
           "not physical and is flagged as noise, left out of the verdict\n",
           cfg->cpus, cfg->cpus == 1 ? "" : "s");
    if (cfg->with_python && cfg->python_ok)
        printf("Python rows: the peer's w1_primes.py with %d of its 100 calls\n",
               cfg->python_calls);
}

static void print_json(const cmp_config *cfg, const cmp_row *rows, int n) {
    for (int i = 0; i < n; i++) {
        const cmp_row *r = &rows[i];
        printf("{\"workload\": \"%s\", \"variant\": \"%s\", \"impl\": \"%s\", "
               "\"model\": \"%s\", \"metric\": \"seconds\", \"value\": %.4f, \"unit\": \"s\", "
               "\"min\": %.4f, \"max\": %.4f, \"rounds\": %d, "
               "\"workers\": %d, \"speedup\": %.3f, \"efficiency\": %.3f, \"noise\": %s, "
               "\"correct\": %ld, \"total\": %ld, \"ok\": %s, \"error\": %s%s%s, "
               "\"cpus\": %d, \"quick\": %s",
               r->model->workload, r->model->variant, r->model->python ? "python" : "braid",
               r->model->label, r->run.seconds, r->secs.min, r->secs.max, r->secs.n,
               r->run.workers, r->speedup, r->efficiency, r->noise ? "true" : "false",
               r->run.correct, r->run.total, r->ok ? "true" : "false", r->run.rc ? "\"" : "",
               r->run.rc ? br_err_name(r->run.rc) : "null", r->run.rc ? "\"" : "", cfg->cpus,
               cfg->quick ? "true" : "false");
        if (is_wl(r, "IO"))
            printf(", \"memory_mib\": %.1f, \"wait_ms\": %d", r->run.rc == 0 ? r->run.mem_mib : -1.0,
                   (int)(cfg->io_wait / BR_MSEC));
        if (is_wl(r, "W9"))
            printf(", \"memory_mib\": %.1f, \"latency_ms\": %d, \"pages\": %d",
                   r->run.rc == 0 ? r->run.mem_mib : -1.0, (int)(cfg->w9_latency / BR_MSEC),
                   W9_PAGES);
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
        if (!rows[i].model->python && strcmp(rows[i].model->workload, workload) == 0 &&
            strcmp(rows[i].model->variant, variant) == 0)
            return &rows[i];
    return NULL;
}

/* The verdict's second half: what the process rows show. Processes scale CPU-bound
 * work as threads do in C (no GIL either way); what they add is the cost of starting a
 * process and copying arguments and results, which W2's short tasks show against the
 * thread pool. A row flagged as noise says nothing either way. */
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
    if (procs->noise && ppool->noise) {
        snprintf(buf + len, cap - len, "; both process rows were noise this run (see the "
                                       "table), so nothing is said about processes");
        return;
    }
    const cmp_row *top = procs->noise ? ppool : ppool->noise ? procs
                       : procs->speedup > ppool->speedup ? procs : ppool;
    len += (size_t)snprintf(buf + len, cap - len, "; %s: %.2fx %s",
                            top->speedup >= 1.2 ? "processes scale it too"
                                                : "processes gave no more here (the same CPUs)",
                            top->speedup,
                            top == procs ? "in braid processes" : "in the process pool");
    const cmp_row *other = top == procs ? ppool : procs;
    if (len < cap && !other->noise)
        len += (size_t)snprintf(buf + len, cap - len, ", %.2fx %s", other->speedup,
                                other == procs ? "in braid processes" : "in the process pool");
    if (len < cap && t2 && p2 && t2->ok && p2->ok)
        snprintf(buf + len, cap - len,
                 ", and pay for starting processes and copying arguments and results "
                 "(W2: %.3f s in the process pool against %.3f s in the thread pool)",
                 p2->run.seconds, t2->run.seconds);
}

/* The headline: what the W1 rows show about threads and CPU-bound work. The rows that
 * count are W1's in-process threaded ones (variants "threads" and "thread") that are
 * physical; the best of them leads, the others follow. */
static void verdict(const cmp_config *cfg, const cmp_row *rows, int n, char *buf,
                    size_t cap) {
    const cmp_row *threaded[8];
    int nt = 0, best = -1, noisy = 0;
    for (int i = 0; i < n && nt < 8; i++) {
        const cmp_row *r = &rows[i];
        if (r->model->python || strcmp(r->model->workload, "W1") != 0 || !r->ok ||
            (strcmp(r->model->variant, "threads") != 0 &&
             strcmp(r->model->variant, "thread") != 0))
            continue;
        if (r->noise) {
            noisy++;
            continue;
        }
        if (best < 0 || r->speedup > threaded[best]->speedup)
            best = nt;
        threaded[nt++] = r;
    }
    static const char cpython[] = "the tutorial's CPython threads gained nothing on the "
                                  "same work (26.07 s alone, 25.58 s in a thread pool: "
                                  "1.02x) because of the GIL";
    const cmp_row *pys = NULL, *pyt = NULL;
    for (int i = 0; i < n; i++) {
        if (rows[i].model->python && is_wl(&rows[i], "W1") && rows[i].ok && !rows[i].noise) {
            if (strcmp(rows[i].model->variant, "single") == 0)
                pys = &rows[i];
            else if (strcmp(rows[i].model->variant, "thread") == 0)
                pyt = &rows[i];
        }
    }
    char py[400];
    if (pys != NULL && pyt != NULL)
        snprintf(py, sizeof py, "%s, and in this run Python's thread pool gave %.2fx (%.3f s "
                                "against %.3f s)",
                 cpython, pyt->speedup, pyt->run.seconds, pys->run.seconds);
    else
        snprintf(py, sizeof py, "%s", cpython);
    if (best < 0) {
        snprintf(buf, cap, "no threaded W1 row ran correctly%s, so this run shows nothing "
                           "about threads; see the table",
                 noisy ? " and physically (the others were noise)" : "");
        return;
    }
    const cmp_row *top = threaded[best];
    char how[64];
    row_phrase(top, how, sizeof how);
    if (cfg->cpus == 1) {
        snprintf(buf, cap, "this process may use only 1 CPU, so no model can run "
                           "CPU-bound work in parallel here (%.2fx %s); %s",
                 top->speedup, how, py);
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
        if (len < cap && noisy)
            len += (size_t)snprintf(buf + len, cap - len, " (%d row%s left out as noise)",
                                    noisy, noisy == 1 ? "" : "s");
        if (len < cap)
            snprintf(buf + len, cap - len, "; %s", py);
    } else {
        char load[64] = "";
        if (cfg->loadavg >= 0)
            snprintf(load, sizeof load, " (load average %.2f at start)", cfg->loadavg);
        snprintf(buf, cap, "threads gave only %.2fx on %d CPUs in this run: other programs "
                           "had the CPUs%s, so run it again on a quiet machine; %s",
                 top->speedup, cfg->cpus, load, py);
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
    if (th->noise || pool->noise || co->noise) {
        snprintf(buf, cap, "an I/O-bound row was noise this run (see the table), so no "
                           "verdict");
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

/* The crawl's verdict: the fastest physical model, the serial row's cost (one latency
 * per page, in sequence), and the memory of the fastest against the rest. Every
 * concurrent model overlaps the waits; what separates them is what a waiter costs. */
static void w9_verdict(const cmp_config *cfg, const cmp_row *rows, int n, char *buf,
                       size_t cap) {
    const cmp_row *best = NULL, *serial = find_row(rows, n, "W9", "serial"), *lean = NULL;
    const cmp_row *pybest = NULL;
    int ran = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        const cmp_row *r = &rows[i];
        if (!is_wl(r, "W9"))
            continue;
        ran++;
        if (!r->ok || r->noise) {
            bad++;
            continue;
        }
        if (strcmp(r->model->variant, "serial") == 0)
            continue;
        if (r->model->python) {
            if (pybest == NULL || r->run.seconds < pybest->run.seconds)
                pybest = r;
            continue;
        }
        if (best == NULL || r->run.seconds < best->run.seconds)
            best = r;
        if (lean == NULL || r->run.mem_mib < lean->run.mem_mib)
            lean = r;
    }
    if (ran == 0) {
        snprintf(buf, cap, "no crawl rows (the http layer isn't built)");
        return;
    }
    if (best == NULL) {
        snprintf(buf, cap, "no concurrent crawl model ran correctly and physically; see the "
                           "table");
        return;
    }
    double lat = (double)cfg->w9_latency / BR_SEC;
    size_t len = (size_t)snprintf(
        buf, cap, "the %s model crawled %d pages at +%.0f ms each fastest, %.3f s (%.1f MiB): "
                  "a concurrent model overlaps the waits, %d at a time (%d x %.0f ms of "
                  "waiting at the least), and what it takes beyond that is fetching and "
                  "parsing",
        best->model->label, W9_PAGES, lat * 1000, best->run.seconds, best->run.mem_mib,
        cfg->w9_concurrency, (W9_PAGES + cfg->w9_concurrency - 1) / cfg->w9_concurrency,
        lat * 1000);
    if (len < cap && serial != NULL && serial->ok && !serial->noise)
        len += (size_t)snprintf(buf + len, cap - len,
                                "; serial waits for each page in turn (%.3f s, %d x %.0f ms "
                                "of it waiting)",
                                serial->run.seconds, W9_PAGES, lat * 1000);
    if (len < cap && lean != NULL && lean != best)
        len += (size_t)snprintf(buf + len, cap - len, "; the leanest was %s (%.1f MiB, %.3f s)",
                                lean->model->label, lean->run.mem_mib, lean->run.seconds);
    if (len < cap && pybest != NULL)
        len += (size_t)snprintf(buf + len, cap - len,
                                "; the tutorial's fastest Python version was %s, %.3f s "
                                "(%.1f MiB): %.2fx braid's best",
                                pybest->model->label + (strncmp(pybest->model->label,
                                                                "Python: ", 8) == 0 ? 8 : 0),
                                pybest->run.seconds,
                                pybest->run.mem_mib, pybest->run.seconds / best->run.seconds);
    if (len < cap && bad > 0)
        snprintf(buf + len, cap - len, "; %d row%s failed or were noise, see the table", bad,
                 bad == 1 ? "" : "s");
}

/* --- the HTML report -------------------------------------------------------------------- */

/* One workload's section: its table (the text output's columns) and its charts: seconds
 * (median, whiskers min..max) and, for the waiting rows, memory. */
static void report_workload(braid_report *rep, const cmp_config *cfg, const cmp_row *rows,
                            int n, const char *wl, const char *heading, const char *verdict_text) {
    int count = 0;
    for (int i = 0; i < n; i++)
        count += is_wl(&rows[i], wl);
    if (count == 0)
        return;
    bool io = strcmp(wl, "IO") == 0 || strcmp(wl, "W9") == 0;
    char title[64];
    workload_title(cfg, wl, title, sizeof title);
    char h[160];
    snprintf(h, sizeof h, "%s: %s", title, heading);
    braid_report_section(rep, h);
    static const char *const cpu_cols[] = {"model", "workers", "seconds", "spread",
                                           "speed-up", "efficiency", "results"};
    static const char *const io_cols[] = {"model", "workers", "seconds", "spread",
                                          "memory (MiB)", "results"};
    braid_report_table_begin(rep, io ? 6 : 7, io ? io_cols : cpu_cols);
    braid_report_bar *bars = calloc((size_t)count, sizeof *bars);
    braid_report_bar *mbars = calloc((size_t)count, sizeof *mbars);
    char (*texts)[48] = calloc((size_t)count * 2, sizeof *texts);
    int nb = 0, nm = 0;
    for (int i = 0; i < n; i++) {
        const cmp_row *r = &rows[i];
        if (!is_wl(r, wl))
            continue;
        char workers[16], secs[32], spread[48], speed[32], eff[32], mem[32], res[200];
        snprintf(workers, sizeof workers, "%d", r->run.workers);
        if (r->run.rc != 0) {
            snprintf(res, sizeof res, "error %s%s%s", br_err_name(r->run.rc),
                     r->run.err[0] ? ": " : "", r->run.err);
            const char *cells[] = {r->model->label, workers, "-", "-", "-", "-", res};
            const char *icells[] = {r->model->label, workers, "-", "-", "-", res};
            braid_report_table_row(rep, io ? icells : cells, NULL);
            continue;
        }
        snprintf(secs, sizeof secs, "%.3f", r->run.seconds);
        spread_text(r, spread, sizeof spread);
        snprintf(speed, sizeof speed, "%.2fx", r->speedup);
        snprintf(eff, sizeof eff, "%.2f", r->efficiency);
        snprintf(mem, sizeof mem, "%.1f", r->run.mem_mib);
        snprintf(res, sizeof res, "%ld/%ld %s", r->run.correct, r->run.total,
                 r->ok ? "ok" : "WRONG");
        const char *cells[] = {r->model->label, workers, secs, spread, speed, eff, res};
        const char *icells[] = {r->model->label, workers, secs, spread, mem, res};
        braid_report_table_row(rep, io ? icells : cells, r->noise ? r->flag : NULL);
        if (bars == NULL || mbars == NULL || texts == NULL)
            continue;
        snprintf(texts[nb * 2], sizeof texts[0], "%.3f s", r->run.seconds);
        bars[nb] = (braid_report_bar){.label = r->model->label, .text = texts[nb * 2],
                                      .value = r->run.seconds, .lo = r->secs.min,
                                      .hi = r->secs.max, .flagged = r->noise,
                                      .python = r->model->python};
        if (io) {
            snprintf(texts[nb * 2 + 1], sizeof texts[0], "%.1f MiB", r->run.mem_mib);
            mbars[nm++] = (braid_report_bar){.label = r->model->label,
                                             .text = texts[nb * 2 + 1],
                                             .value = r->run.mem_mib, .lo = r->mem.min,
                                             .hi = r->mem.max, .flagged = r->noise};
        }
        nb++;
    }
    braid_report_table_end(rep);
    char cap[160];
    snprintf(cap, sizeof cap, "%s: seconds (median of %d round%s; whiskers min..max; "
                              "shorter is faster)",
             title, cfg->rounds, cfg->rounds == 1 ? "" : "s");
    braid_report_chart(rep, cap, bars, nb);
    if (io) {
        snprintf(cap, sizeof cap, "%s: peak memory above an idle child, MiB (median; "
                                  "whiskers min..max)", title);
        braid_report_chart(rep, cap, mbars, nm);
    }
    if (verdict_text != NULL)
        braid_report_para(rep, "verdict", verdict_text);
    free(bars);
    free(mbars);
    free(texts);
}

static int write_report(const cmp_config *cfg, const cmp_row *rows, int n, const char *v,
                        const char *vio, const char *v9) {
    FILE *f = fopen(cfg->report, "we");
    if (f == NULL) {
        fprintf(stderr, "braid compare: can't write the report %s: %s\n", cfg->report,
                strerror(errno));
        return -1;
    }
    braid_report *rep;
    if (braid_report_begin(&rep, f, "braid compare") != 0) {
        fclose(f);
        return -1;
    }
    char machine[384];
    machine_line(cfg, machine, sizeof machine);
    braid_report_para(rep, "machine", machine);
    int noisy = 0;
    for (int i = 0; i < n; i++)
        noisy += rows[i].noise;
    char note[512];
    snprintf(note, sizeof note,
             "Each row ran %d time%s, the rows taking turns (A B C A B C ...), so that a slow "
             "phase of the machine falls on every row alike. A result that can't be "
             "physical (a parallel efficiency above 1, or less time than the waiting it "
             "contains) is flagged as noise, greyed out, and left out of the verdicts: %d "
             "row%s flagged in this run.%s",
             cfg->rounds, cfg->rounds == 1 ? "" : "s", noisy, noisy == 1 ? "" : "s",
             cfg->with_python && cfg->python_ok ? " Python rows (orange) run the tutorials' "
                                                  "own programs, in the same rounds." : "");
    braid_report_para(rep, "note", note);
    char verdict_all[2300];
    snprintf(verdict_all, sizeof verdict_all, "Verdict: %s.", v);
    report_workload(rep, cfg, rows, n, "W1", "CPU-bound, the tutorials' primes", verdict_all);
    report_workload(rep, cfg, rows, n, "W2", "CPU-bound, short tasks", NULL);
    snprintf(verdict_all, sizeof verdict_all, "Verdict, I/O-bound: %s.", vio);
    report_workload(rep, cfg, rows, n, "IO", "waiting, each row in a child of its own",
                    verdict_all);
    snprintf(verdict_all, sizeof verdict_all, "Verdict, crawl: %s.", v9);
    report_workload(rep, cfg, rows, n, "W9", "the crawl against the fixture server",
                    verdict_all);
    int rc = braid_report_end(rep);
    if (fclose(f) != 0)
        rc = -1;
    if (rc != 0)
        fprintf(stderr, "braid compare: writing the report %s failed\n", cfg->report);
    return rc;
}

/* --- main ------------------------------------------------------------------------------- */

void braid_compare_usage(void) {
    printf("usage: braid compare [--quick] [--json] [--threads N] [--rounds N]\n"
           "                     [--report FILE | --no-report]\n"
           "                     [--with-python [--peers DIR] [--python PATH]] [--mpi N]\n"
           "\n"
           "Runs the tutorials' experiments under every model braid has and prints a table\n"
           "(model, workers, seconds as the median of the rounds with their spread, speed-up,\n"
           "parallel efficiency, correct results) and a verdict per experiment.\n"
           "  W1  is_prime(112272535095293) x 100: one thread, N braid threads, thread pool,\n"
           "      braid processes, process pool\n"
           "  W2  fib(25..34) on a pool of 3, with as_completed\n"
           "and the I/O-bound cases, each row in a child process of its own (seconds and\n"
           "peak memory above an idle child's):\n"
           "  IO  10,000 tasks that each wait 100 ms: a thread per task, a thread pool of\n"
           "      500 (20 rounds; the default size would take minutes), coroutines\n"
           "  W9  the crawl fixture's 50 pages at +100 ms each from the embedded server,\n"
           "      under every `braid crawl` model (when built with the http layer)\n"
           "Rows are interleaved over the rounds; a result that can't be physical\n"
           "(efficiency above 1) is flagged as noise and left out of the verdicts.\n"
           "\n"
           "  --quick        small sizes (W1 x 8, fib 20..29, IO 1,000 tasks and a pool of\n"
           "                 100, W9 at +10 ms), for tests\n"
           "  --json         one JSON object per row (BENCH.md's format), then the verdicts\n"
           "  --threads N    N for the braid-threads row (default: the CPUs this process\n"
           "                 may use, %d here)\n"
           "  --rounds N     rounds per row, 1..%d (default 3)\n"
           "  --report FILE  the HTML report (default braid-report.html); --no-report: none\n"
           "  --only LIST    run only these experiments: cpu (W1, W2), io (IO), crawl (W9),\n"
           "                 comma-separated or repeated (default: all three)\n"
           "  --with-python  also run the tutorials' Python programs (the peers' w1_primes.py,\n"
           "                 with W1's calls) in the same rounds, as rows marked Python\n"
           "  --peers DIR    the Python peers' directory (default $BRAID_PYTHON_PEERS, else\n"
           "                 ../shared/peers/python)\n"
           "  --python PATH  the interpreter (default /usr/bin/python3)\n"
           "  --mpi N        a W1 row on the MPI executor over N worker ranks (N + 1\n"
           "                 processes under braid-mpirun); needs braid built with MPI\n"
           "  --concurrency N  W9's crawl concurrency (default 50: every page at once)\n"
           "Exit status: 0 if every row ran and every result was correct, 1 if not, 2 on\n"
           "a bad option (also --mpi in a braid built without MPI).\n",
           br_cpu_count(), CMP_MAX_ROUNDS);
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* --with-python: is there an interpreter and the peer's module? Says why not. */
static bool python_ready(const cmp_config *cfg) {
    if (access(cfg->python, X_OK) != 0) {
        fprintf(stderr, "braid compare: --with-python: %s isn't there, so the Python rows "
                        "are left out\n", cfg->python);
        return false;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/w1_primes.py", cfg->python_peers);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "braid compare: --with-python: no %s (give the peers' directory "
                        "with --peers DIR), so the Python rows are left out\n", path);
        return false;
    }
    return true;
}

static bool is_mpi_row(const cmp_model *m) {
#ifdef BRAID_APP_MPI
    return m->run == w1_mpi;
#else
    (void)m;
    return false;
#endif
}

int braid_compare_main(int argc, char **argv) {
    cmp_config cfg = {.cpus = br_cpu_count(), .loadavg = read_loadavg(), .rounds = 3,
                      .report = "braid-report.html", .python = "/usr/bin/python3",
                      .w9_concurrency = 50, .parts = CMP_ALL};
    read_cpu_model(cfg.cpu_model, sizeof cfg.cpu_model);
    cfg.python_peers = getenv("BRAID_PYTHON_PEERS");
    if (cfg.python_peers == NULL || cfg.python_peers[0] == '\0')
        cfg.python_peers = "../shared/peers/python";
    cfg.threads = cfg.cpus;
    unsigned only = 0; /* --only's experiments; none given: all */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            cfg.quick = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            cfg.json = true;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            if (parse_int(argv[++i], 1, 1024, &cfg.threads) != 0) {
                fprintf(stderr, "braid compare: --threads wants 1..1024\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            if (parse_int(argv[++i], 1, CMP_MAX_ROUNDS, &cfg.rounds) != 0) {
                fprintf(stderr, "braid compare: --rounds wants 1..%d\n", CMP_MAX_ROUNDS);
                return 2;
            }
        } else if (strcmp(argv[i], "--report") == 0 && i + 1 < argc) {
            cfg.report = argv[++i];
            if (cfg.report[0] == '\0') {
                fprintf(stderr, "braid compare: --report wants a file name\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--no-report") == 0) {
            cfg.report = NULL;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            /* repeatable: --only cpu --only io is --only cpu,io */
            unsigned p = parse_parts(argv[++i]);
            if (p == 0 || (only & p) != 0) {
                fprintf(stderr, "braid compare: --only wants a comma-separated list of "
                                "cpu, io and crawl (each once)\n");
                return 2;
            }
            only |= p;
        } else if (strcmp(argv[i], "--with-python") == 0) {
            cfg.with_python = true;
        } else if (strcmp(argv[i], "--peers") == 0 && i + 1 < argc) {
            cfg.python_peers = argv[++i];
        } else if (strcmp(argv[i], "--concurrency") == 0 && i + 1 < argc) {
            if (parse_int(argv[++i], 1, 1000, &cfg.w9_concurrency) != 0) {
                fprintf(stderr, "braid compare: --concurrency wants 1..1000\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--mpi") == 0 && i + 1 < argc) {
            if (parse_int(argv[++i], 1, 64, &cfg.mpi) != 0) {
                fprintf(stderr, "braid compare: --mpi wants 1..64 (worker ranks)\n");
                return 2;
            }
#ifndef BRAID_APP_MPI
            fprintf(stderr, "braid compare: --mpi: this braid was built without MPI "
                            "(apt-get install openmpi-bin libopenmpi-dev, then build again: "
                            "CMake then finds MPI and builds the MPI executor)\n");
            return 2;
#endif
        } else if (strcmp(argv[i], "--python") == 0 && i + 1 < argc) {
            cfg.python = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            braid_compare_usage();
            return 0;
        } else {
            fprintf(stderr, "braid compare: unknown option '%s'\n", argv[i]);
            braid_compare_usage();
            return 2;
        }
    }
    if (only != 0)
        cfg.parts = only;
    cfg.w1_calls = cfg.quick ? 8 : 100;
    cfg.w2_first = cfg.quick ? 20 : 25;
    cfg.w2_last = cfg.quick ? 29 : 34;
    cfg.io_tasks = cfg.quick ? 1000 : 10000;
    cfg.io_pool = cfg.quick ? 100 : 500;
    cfg.io_wait = 100 * BR_MSEC;
    cfg.w9_latency = (cfg.quick ? 10 : 100) * BR_MSEC;
    cfg.python_calls = cfg.w1_calls;
    cfg.python_ok = cfg.with_python && python_ready(&cfg);

    /* the rows this run has: Python's only with --with-python and a Python to run */
    const cmp_model *active[NMODELS];
    int n = 0;
    for (int i = 0; i < NMODELS; i++)
        if ((!models[i].python || cfg.python_ok) && (!is_mpi_row(&models[i]) || cfg.mpi > 0) &&
            (part_of(models[i].workload) & cfg.parts) != 0)
            active[n++] = &models[i];

    int exit_rc = 0;
#if CMP_HAVE_W9
    int src = (cfg.parts & CMP_CRAWL) != 0 ? w9_server_start(cfg.w9_latency) : 0;
    if (src != 0) {
        w9_server_stop();
        fprintf(stderr, "braid compare: the fixture server didn't start (%s): the W9 rows "
                        "fail\n", br_err_name(src));
    }
    if (cfg.python_ok && (cfg.parts & CMP_CRAWL) != 0)
        write_expected(&cfg);
#endif

    cmp_row rows[NMODELS];
    cmp_run(*runs)[CMP_MAX_ROUNDS] = calloc((size_t)n, sizeof *runs);
    if (runs == NULL) {
        fprintf(stderr, "braid compare: out of memory\n");
        return 1;
    }
    bool progress = !cfg.json && isatty(STDERR_FILENO);
    for (int k = 0; k < cfg.rounds; k++) {
        for (int i = 0; i < n; i++) {
            if (progress) {
                fprintf(stderr, "round %d/%d: %s %s...%20s\r", k + 1, cfg.rounds,
                        active[i]->workload, active[i]->label, "");
                fflush(stderr);
            }
            cmp_run *r = &runs[i][k];
            *r = (cmp_run){.mem_mib = -1};
#if CMP_HAVE_W9
            if (strcmp(active[i]->workload, "W9") == 0 && w9_url[0] == '\0') {
                r->rc = BR_EFAILED;
                snprintf(r->err, sizeof r->err, "no fixture server");
                continue;
            }
#endif
            r->rc = active[i]->run(&cfg, r);
        }
    }
    if (progress)
        fprintf(stderr, "%70s\r", "");
#if CMP_HAVE_W9
    w9_server_stop();
    if (cfg.w9_expected[0] != '\0')
        unlink(cfg.w9_expected);
#endif
    cfg.loadavg_end = read_loadavg();

    bool all_ok = true;
    for (int i = 0; i < n; i++) {
        rows[i] = (cmp_row){.model = active[i]};
        summarize(&rows[i], runs[i], cfg.rounds);
        all_ok = all_ok && rows[i].ok;
    }
    free(runs);
    judge(&cfg, rows, n);

    char v[1024];
    verdict(&cfg, rows, n, v, sizeof v);
    process_verdict(rows, n, v, sizeof v);
    char vio[1024];
    io_verdict(&cfg, rows, n, vio, sizeof vio);
    char v9[1024];
    w9_verdict(&cfg, rows, n, v9, sizeof v9);
    if (cfg.json) {
        print_json(&cfg, rows, n);
        /* an experiment left out by --only has no verdict key */
        printf("{");
        if (cfg.parts & CMP_CPU)
            printf("\"verdict\": \"%s\", ", v);
        if (cfg.parts & CMP_IO)
            printf("\"verdict_io\": \"%s\", ", vio);
        if (cfg.parts & CMP_CRAWL)
            printf("\"verdict_w9\": \"%s\", ", v9);
        printf("\"cpus\": %d, \"cpu_model\": \"", cfg.cpus);
        for (const char *c = cfg.cpu_model; *c; c++)
            if (*c != '"' && *c != '\\' && (unsigned char)*c >= 0x20)
                putchar(*c);
        printf("\", \"loadavg\": %.2f, \"loadavg_end\": %.2f, \"rounds\": %d, \"ok\": %s}\n",
               cfg.loadavg, cfg.loadavg_end, cfg.rounds, all_ok ? "true" : "false");
    } else {
        if (cfg.parts & CMP_CPU) {
            print_table(&cfg, rows, n);
            printf("verdict: %s.\n", v);
        } else {
            char machine[384];
            machine_line(&cfg, machine, sizeof machine);
            printf("braid compare: the CPU-bound experiment left out (--only)\n");
            printf("machine: %s\n", machine);
        }
        if (cfg.parts & CMP_IO) {
            printf("\nI/O-bound work: %d tasks that each wait %d ms (a thread pool of %d: "
                   "%d rounds)\n\n",
                   cfg.io_tasks, (int)(cfg.io_wait / BR_MSEC), cfg.io_pool,
                   (cfg.io_tasks + cfg.io_pool - 1) / cfg.io_pool);
            print_io_rows(&cfg, rows, n, "IO");
            printf("\nmemory: peak RSS of a child process running the row (wait4's "
                   "ru_maxrss), minus an idle child's\n");
            printf("verdict, I/O-bound: %s.\n", vio);
        }
        if ((cfg.parts & CMP_CRAWL) == 0) {
            /* left out by --only: nothing to say */
        } else if (CMP_HAVE_W9) {
            printf("\nThe crawl (W9): the fixture's %d pages at +%d ms each from the "
                   "embedded server, concurrency %d\n\n",
                   W9_PAGES, (int)(cfg.w9_latency / BR_MSEC), cfg.w9_concurrency);
            print_io_rows(&cfg, rows, n, "W9");
            if ((cfg.parts & CMP_IO) == 0)
                printf("\nmemory: peak RSS of a child process running the row (wait4's "
                       "ru_maxrss), minus an idle child's\n");
            printf("verdict, crawl: %s.\n", v9);
        } else {
            printf("\nThe crawl (W9): not in this build (it needs the http layer)\n");
        }
    }
    if (cfg.report != NULL) {
        if (write_report(&cfg, rows, n, v, vio, v9) != 0)
            exit_rc = 1;
        else if (!cfg.json)
            printf("\nreport: %s\n", cfg.report);
    }
    return all_ok && exit_rc == 0 ? 0 : 1;
}
