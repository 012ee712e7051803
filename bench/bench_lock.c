/* W7 locks: braid's Lock and RLock beside pthread_mutex, in one program.
 *
 *   bench_lock [VARIANT [IMPL [N]]]     no arguments: every variant, every impl
 *
 * VARIANT (Python's w7_locks.py names, so the figures pair up):
 *   uncontended        N acquire+release pairs on one thread (N = 1,000,000; one
 *                      untimed pass first). ns/op, one op = acquire + release. Another
 *                      thread exists (parked in read()), as in any program that has a
 *                      reason to lock: glibc's pthread_mutex skips its atomic
 *                      instructions while a process has only one thread.
 *   uncontended-1thread (extra) the same in a process that never had a second thread:
 *                      glibc's single-thread fast path. Run first when running all.
 *   uncontended-with   the same through BR_WITH(&lock) {} (Python's `with lock: pass`);
 *                      the pthread impl is the plain pair again.
 *   uncontended-rlock  br_rlock; the pthread impl is a PTHREAD_MUTEX_RECURSIVE mutex.
 *   counter-locked     2 threads x N increments of a shared counter under the lock,
 *                      timed from starting both threads to joining both (they start
 *                      counting together, through a gate); the final value must be
 *                      2 N. seconds; and min_share, the smaller of the two threads'
 *                      shares of the acquisitions made while both were running (0.5
 *                      is perfectly fair, 0 is a starved thread). stderr also gives
 *                      the hand-overs between threads and the longest run of one
 *                      thread's consecutive acquisitions.
 * IMPL: braid (br_lock / br_rlock, threads from br_thread_start) or pthread
 * (pthread_mutex_t, threads from pthread_create). Both print the same variant and
 * metric with "impl" telling them apart; scripts/bench.sh runs them as separate
 * processes so side-by-side can alternate them.
 */
#define _GNU_SOURCE /* PTHREAD_MUTEX_RECURSIVE, pipe2 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#define W7_N 1000000L

static long n_ops = W7_N;

/* --- uncontended ------------------------------------------------------------------- */

static double run_braid_lock(long n) {
    br_lock l = BR_LOCK_INIT;
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        if (br_lock_acquire(&l, BR_FOREVER) != 0 || br_lock_release(&l) != 0)
            BENCH_CHECK(!"br_lock acquire/release failed");
    }
    int64_t t1 = bench_now();
    BENCH_CHECK(!br_lock_locked(&l));
    BENCH_CHECK_OK(br_lock_destroy(&l));
    return (double)(t1 - t0);
}

static double run_braid_with(long n) {
    br_lock l = BR_LOCK_INIT;
    long inside = 0;
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        BR_WITH(&l) {
            inside++;
        }
    }
    int64_t t1 = bench_now();
    BENCH_CHECK_EQ(inside, n);
    BENCH_CHECK(!br_lock_locked(&l));
    BENCH_CHECK_OK(br_lock_destroy(&l));
    return (double)(t1 - t0);
}

static double run_braid_rlock(long n) {
    br_rlock r = BR_RLOCK_INIT;
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        if (br_rlock_acquire(&r, BR_FOREVER) != 0 || br_rlock_release(&r) != 0)
            BENCH_CHECK(!"br_rlock acquire/release failed");
    }
    int64_t t1 = bench_now();
    BENCH_CHECK_EQ(br_rlock_count(&r), 0);
    BENCH_CHECK_OK(br_rlock_destroy(&r));
    return (double)(t1 - t0);
}

static double run_pthread_mutex(long n, bool recursive) {
    pthread_mutex_t m;
    pthread_mutexattr_t a;
    BENCH_CHECK_ERRNO(pthread_mutexattr_init(&a));
    if (recursive)
        BENCH_CHECK_ERRNO(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE));
    BENCH_CHECK_ERRNO(pthread_mutex_init(&m, &a));
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        if (pthread_mutex_lock(&m) != 0 || pthread_mutex_unlock(&m) != 0)
            BENCH_CHECK(!"pthread_mutex lock/unlock failed");
    }
    int64_t t1 = bench_now();
    BENCH_CHECK_ERRNO(pthread_mutex_trylock(&m)); /* proves it was left unlocked */
    BENCH_CHECK_ERRNO(pthread_mutex_unlock(&m));
    BENCH_CHECK_ERRNO(pthread_mutex_destroy(&m));
    BENCH_CHECK_ERRNO(pthread_mutexattr_destroy(&a));
    return (double)(t1 - t0);
}

/* The parked second thread of the multi-threaded variants. */
static int park_pipe[2] = {-1, -1};
static pthread_t park_thread;

static void *park(void *arg) {
    (void)arg;
    char c;
    while (read(park_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    return NULL;
}

static void start_parked_thread(void) {
    if (park_pipe[0] >= 0)
        return;
    BENCH_CHECK(pipe2(park_pipe, O_CLOEXEC) == 0);
    BENCH_CHECK_ERRNO(pthread_create(&park_thread, NULL, park, NULL));
}

static void stop_parked_thread(void) {
    if (park_pipe[0] < 0)
        return;
    BENCH_CHECK(write(park_pipe[1], "x", 1) == 1);
    BENCH_CHECK_ERRNO(pthread_join(park_thread, NULL));
    close(park_pipe[0]);
    close(park_pipe[1]);
    park_pipe[0] = park_pipe[1] = -1;
}

static void uncontended(const char *variant, const char *impl) {
    bool braid = strcmp(impl, "braid") == 0;
    double (*braid_fn)(long) = strcmp(variant, "uncontended-with") == 0    ? run_braid_with
                               : strcmp(variant, "uncontended-rlock") == 0 ? run_braid_rlock
                                                                           : run_braid_lock;
    bool recursive = strcmp(variant, "uncontended-rlock") == 0;
    /* one untimed pass: page faults, caches, the CPU's clock */
    double ns = braid ? braid_fn(n_ops) : run_pthread_mutex(n_ops, recursive);
    ns = braid ? braid_fn(n_ops) : run_pthread_mutex(n_ops, recursive);
    double per = ns / (double)n_ops;
    bench_note("W7 %s %s: %ld acquire+release pairs in %.2f ms: %.2f ns/op", variant, impl,
               n_ops, ns / 1e6, per);
    bench_emit("W7", variant, impl, "ns_per_op", per, "ns/op");
}

/* --- counter-locked --------------------------------------------------------------------
 */

static br_lock counter_lock = BR_LOCK_INIT;
static pthread_mutex_t counter_mutex = PTHREAD_MUTEX_INITIALIZER;

/* What the critical section touches: the counter and, on the same cache line, who took
 * the lock last, so that each increment also counts hand-overs (the lock passing from
 * one thread to the other) and the longest run of consecutive acquisitions by one
 * thread. `at_end[k]` is the counter when thread k made its last increment: the thread
 * that finishes first sees n of its own plus the other's so far, which gives each
 * thread's share of the acquisitions made while both were running. */
static struct {
    long counter;
    long handoffs;
    long run, max_run;
    int last;
    long at_end[2];
} cs;
static atomic_int started;

static inline void counted(int k, long i) {
    cs.counter++;
    if (cs.last != k) {
        cs.handoffs++;
        cs.last = k;
        cs.run = 0;
    }
    if (++cs.run > cs.max_run)
        cs.max_run = cs.run;
    if (i == n_ops - 1)
        cs.at_end[k] = cs.counter;
}

/* Both threads start counting together (a thread that starts first would otherwise
 * run alone for the other's creation time, and its share would mean nothing). */
static void start_gate(void) {
    atomic_fetch_add(&started, 1);
    while (atomic_load_explicit(&started, memory_order_acquire) < 2) {
    }
}

static void inc_braid(void *arg) {
    int k = (int)(intptr_t)arg;
    start_gate();
    for (long i = 0; i < n_ops; i++) {
        BENCH_CHECK_OK(br_lock_acquire(&counter_lock, BR_FOREVER));
        counted(k, i);
        BENCH_CHECK_OK(br_lock_release(&counter_lock));
    }
}

static void *inc_pthread(void *arg) {
    int k = (int)(intptr_t)arg;
    start_gate();
    for (long i = 0; i < n_ops; i++) {
        BENCH_CHECK_ERRNO(pthread_mutex_lock(&counter_mutex));
        counted(k, i);
        BENCH_CHECK_ERRNO(pthread_mutex_unlock(&counter_mutex));
    }
    return NULL;
}

static void counter_locked(const char *impl) {
    memset(&cs, 0, sizeof cs);
    cs.last = -1;
    atomic_store(&started, 0);
    int64_t t0, t1;
    if (strcmp(impl, "braid") == 0) {
        br_thread *t[2];
        t0 = bench_now();
        for (int k = 0; k < 2; k++)
            BENCH_CHECK_OK(br_thread_start(&t[k], inc_braid, (void *)(intptr_t)k, NULL));
        for (int k = 0; k < 2; k++)
            BENCH_CHECK_OK(br_thread_join(t[k], BR_FOREVER));
        t1 = bench_now();
        for (int k = 0; k < 2; k++)
            BENCH_CHECK_OK(br_thread_free(t[k]));
    } else {
        pthread_t t[2];
        t0 = bench_now();
        for (int k = 0; k < 2; k++)
            BENCH_CHECK_ERRNO(
                pthread_create(&t[k], NULL, inc_pthread, (void *)(intptr_t)k));
        for (int k = 0; k < 2; k++)
            BENCH_CHECK_ERRNO(pthread_join(t[k], NULL));
        t1 = bench_now();
    }
    BENCH_CHECK_EQ(cs.counter, 2 * n_ops);
    /* The first to finish made n_ops of the at_end[first] acquisitions of the overlap. */
    long both = cs.at_end[0] < cs.at_end[1] ? cs.at_end[0] : cs.at_end[1];
    long other = both - n_ops;
    double min_share = (double)(other < n_ops ? other : n_ops) / (double)both;
    double s = bench_secs(t0, t1);
    bench_note("W7 counter-locked %s: 2 threads x %ld locked increments in %.4f s "
               "(%.1f ns per increment), final %ld; while both ran the slower thread "
               "took %.3f of the acquisitions; %ld hand-overs (mean run %.1f "
               "acquisitions, longest %ld)",
               impl, n_ops, s, s * 1e9 / (2.0 * (double)n_ops), cs.counter, min_share,
               cs.handoffs, (double)(2 * n_ops) / (double)(cs.handoffs ? cs.handoffs : 1),
               cs.max_run);
    bench_emit("W7", "counter-locked", impl, "seconds", s, "s");
    bench_emit("W7", "counter-locked", impl, "min_share", min_share, "share");
}

/* --- main ---------------------------------------------------------------------------- */

static const char *const variants[] = {"uncontended-1thread", "uncontended",
                                       "uncontended-with", "uncontended-rlock",
                                       "counter-locked"};
static const char *const impls[] = {"braid", "pthread"};

static void run(const char *variant, const char *impl) {
    if (strcmp(variant, "uncontended-1thread") != 0)
        start_parked_thread();
    if (strcmp(variant, "counter-locked") == 0)
        counter_locked(impl);
    else
        uncontended(variant, impl);
}

static bool known(const char *s, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

int main(int argc, char **argv) {
    n_ops = bench_arg_count(argc, argv, 3, W7_N);
    if (argc > 1 && !known(argv[1], variants, sizeof variants / sizeof *variants)) {
        fprintf(
            stderr,
            "usage: %s [uncontended|uncontended-1thread|uncontended-with|uncontended-rlock|"
            "counter-locked"
            " [braid|pthread [N]]]\n",
            argv[0]);
        return 2;
    }
    if (argc > 2 && !known(argv[2], impls, 2)) {
        fprintf(stderr, "%s: impl is braid or pthread\n", argv[0]);
        return 2;
    }
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        if (argc > 1 && strcmp(argv[1], variants[v]) != 0)
            continue;
        for (size_t i = 0; i < 2; i++)
            if (argc <= 2 || strcmp(argv[2], impls[i]) == 0)
                run(variants[v], impls[i]);
    }
    stop_parked_thread();
    return 0;
}
