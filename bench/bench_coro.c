/* bench_coro: N4 for braid's coroutine core (aio/coro.h): the switch, a coroutine's
 * whole life, and 1,000,000 coroutines alive at once.
 *
 *   bench_coro switch [N]        one coroutine suspends forever; N resumes after 100k
 *                                of warm-up; ns_per_switch = time / (2 N) (a resume and
 *                                its suspend are two switches, as the peers count)
 *   bench_coro switch-raw [N]    the same ping-pong on the bare br__ctx_switch, as the
 *                                peers' n4_fcontext does with jump_fcontext: what the
 *                                switch costs without resume/suspend's bookkeeping and
 *                                the return from br__coro_resume (whose ret the CPU
 *                                mispredicts: the switch leaves its return stack out of
 *                                step)
 *   bench_coro spawn [N]         N x (new, resume to its end, free): ns_per_coroutine
 *   bench_coro alive [N]         N coroutines (default 256 KiB stacks) each resumed once
 *                                to where it suspends ("started and parked", as Go's
 *                                n4_spawn), then all finished and checked: spawn_s (the
 *                                first new until the last has parked) and
 *                                kib_per_coroutine = ru_maxrss / N (the whole process, as
 *                                Go's figure), mappings (the stack allocator's)
 *   bench_coro alive-shared [N]  the same in shared-stack mode
 * No argument: every mode, each of the alive ones in a child of its own (its own
 * ru_maxrss). Every mode checks that each coroutine ran to its end.
 */
#include "bench.h"

#include "aio/coro.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void spin_fn(void *arg) {
    long *count = arg;
    for (;;) {
        (*count)++;
        br__coro_suspend();
    }
}

static void mode_switch(long n) {
    long count = 0;
    br__coro *co;
    BENCH_CHECK_OK(br__coro_new(&co, spin_fn, &count, NULL));
    for (long i = 0; i < 100000; i++)
        br__coro_resume(co);
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++)
        br__coro_resume(co);
    int64_t t1 = bench_now();
    BENCH_CHECK_EQ(count, n + 100000);
    double ns = (double)(t1 - t0) / (2.0 * (double)n);
    bench_note("switch: %.2f ns (%ld round trips)", ns, n);
    bench_emit("N4", "switch", "braid", "ns_per_switch", ns, "ns");
    /* never finishes: not freed (the process ends) */
}

static void *raw_main, *raw_co;

static void raw_fn(void *arg) {
    long *count = arg;
    for (;;) {
        (*count)++;
        br__ctx_switch(&raw_co, raw_main);
    }
}

static void mode_switch_raw(long n) {
    long count = 0;
    size_t sz = 64 << 10;
    char *stack = malloc(sz);
    BENCH_CHECK(stack != NULL);
    memset(stack, 0, sz); /* pretouched, as the peers' */
    raw_co = br__ctx_make(stack + sz, raw_fn, &count);
    for (long i = 0; i < 100000; i++)
        br__ctx_switch(&raw_main, raw_co);
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++)
        br__ctx_switch(&raw_main, raw_co);
    int64_t t1 = bench_now();
    BENCH_CHECK_EQ(count, n + 100000);
    double ns = (double)(t1 - t0) / (2.0 * (double)n);
    bench_note("switch-raw: %.2f ns (%ld round trips)", ns, n);
    bench_emit("N4", "switch-raw", "braid", "ns_per_switch", ns, "ns");
}

static void once_fn(void *arg) { (*(long *)arg)++; }

static void mode_spawn(long n) {
    long count = 0;
    br__coro *co;
    for (long i = 0; i < 1000; i++) { /* warm-up: the first stack is carved */
        BENCH_CHECK_OK(br__coro_new(&co, once_fn, &count, NULL));
        BENCH_CHECK_EQ(br__coro_resume(co), BR__CORO_DONE);
        br__coro_free(co);
    }
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        BENCH_CHECK_OK(br__coro_new(&co, once_fn, &count, NULL));
        br__coro_resume(co);
        br__coro_free(co);
    }
    int64_t t1 = bench_now();
    BENCH_CHECK_EQ(count, n + 1000);
    double ns = (double)(t1 - t0) / (double)n;
    bench_note("spawn: new+run+free %.1f ns (%ld)", ns, n);
    bench_emit("N4", "spawn", "braid", "ns_per_coroutine", ns, "ns");
}

static void park_fn(void *arg) {
    long *count = arg;
    br__coro_suspend(); /* "started and parked" */
    (*count)++;
}

static void mode_alive(long n, bool shared) {
    const char *variant = shared ? "alive-shared" : "alive";
    br__coro **co = malloc((size_t)n * sizeof *co);
    BENCH_CHECK(co != NULL);
    long count = 0;
    br__coro_opts o = {.shared_stack = shared};
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        BENCH_CHECK_OK(br__coro_new(&co[i], park_fn, &count, &o));
        BENCH_CHECK_EQ(br__coro_resume(co[i]), BR__CORO_SUSPENDED);
    }
    int64_t t1 = bench_now();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    br__stack_stats st;
    br__stack_get_stats(&st);
    for (long i = 0; i < n; i++)
        BENCH_CHECK_EQ(br__coro_resume(co[i]), BR__CORO_DONE);
    BENCH_CHECK_EQ(count, n);
    /* Not freed one by one: releasing a million stacks' pages is the kernel's work at
     * exit, and not what is measured. */
    double kib = (double)ru.ru_maxrss / (double)n;
    bench_note("%s: %ld coroutines: spawn %.3f s, peak RSS %.1f MiB, %.2f KiB each, "
               "%zu mappings",
               variant, n, bench_secs(t0, t1), (double)ru.ru_maxrss / 1024.0, kib,
               st.mappings);
    bench_emit("N4", variant, "braid", "spawn_s", bench_secs(t0, t1), "s");
    bench_emit("N4", variant, "braid", "kib_per_coroutine", kib, "KiB");
    bench_emit("N4", variant, "braid", "mappings", (double)st.mappings, "mappings");
}

static void in_child(long n, bool shared) {
    fflush(NULL);
    pid_t pid = fork();
    BENCH_CHECK(pid >= 0);
    if (pid == 0) {
        mode_alive(n, shared);
        fflush(NULL);
        _exit(0);
    }
    int st;
    BENCH_CHECK(waitpid(pid, &st, 0) == pid);
    BENCH_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    bool all = strcmp(mode, "all") == 0;
    if (all || strcmp(mode, "switch") == 0)
        mode_switch(bench_arg_count(argc, argv, 2, 20000000));
    if (all || strcmp(mode, "switch-raw") == 0)
        mode_switch_raw(bench_arg_count(argc, argv, 2, 20000000));
    if (all || strcmp(mode, "spawn") == 0)
        mode_spawn(bench_arg_count(argc, argv, 2, 1000000));
    if (strcmp(mode, "alive") == 0)
        mode_alive(bench_arg_count(argc, argv, 2, 1000000), false);
    if (strcmp(mode, "alive-shared") == 0)
        mode_alive(bench_arg_count(argc, argv, 2, 1000000), true);
    if (all) {
        in_child(1000000, false);
        in_child(1000000, true);
    }
    return 0;
}
