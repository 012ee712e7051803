/* W6 cross-process and N6: messages between forked processes through braid's
 * cross-process Queue and Pipe (braid/mp_queue.h).
 *
 *   bench_mp_queue [VARIANT [N]]        no arguments: every variant
 *
 * VARIANT:
 *   mp-queue   W6, as Python's w6_queues.py mp-queue: an unbounded Queue; a producer
 *              process puts 0..N-1 (8-byte integers) then an empty message (Python's
 *              None), a consumer process gets until the empty message and checks count
 *              and sum. Timed in the parent from before the two fork()s to after both
 *              are reaped (as Python's, from start() to join()). N = 10,000,000.
 *   mp-pipe    W6, as w6_queues.py mp-pipe: r, w = Pipe(duplex=False); a child sends
 *              0..N-1 then the empty message and closes; the parent receives until
 *              the empty message. Timed from before fork() to after the last recv and
 *              the reap. N = 10,000,000.
 *   1p1c       N6, as the native peer n6_shm_ring: the parent puts 1..N, a child gets
 *              exactly N and writes the sum into shared memory; timed from "child
 *              ready" to waitpid returning. N = 10,000,000.
 *   4p4c       (extra) 4 producer processes put N/4 each (tagged producer, seq), 4
 *              consumer processes get until each has seen a stop message; every
 *              consumer checks per-producer order and the parent checks the totals.
 *              Timed from the forks to the last reap. N = 4,000,000.
 * Figures: items/s (mp-queue, 1p1c, 4p4c: items_per_s; mp-pipe: msgs_per_s).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <braid/mp_queue.h>

#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct shared {
    _Atomic int ready;
    _Atomic uint64_t sum;
    _Atomic uint64_t count;
} shared;

static shared *shared_new(void) {
    shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    BENCH_CHECK(s != MAP_FAILED);
    memset(s, 0, sizeof *s);
    return s;
}

static void reap(pid_t pid) {
    int st;
    BENCH_CHECK(waitpid(pid, &st, 0) == pid);
    BENCH_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void run_mp_queue(long n) {
    br_mp_queue *q;
    BENCH_CHECK_OK(br_mp_queue_new(&q, NULL));
    int64_t t0 = bench_now();
    pid_t prod = fork();
    BENCH_CHECK(prod >= 0);
    if (prod == 0) {
        for (uint64_t i = 0; i < (uint64_t)n; i++)
            BENCH_CHECK_OK(br_mp_queue_put(q, &i, sizeof i, BR_FOREVER));
        BENCH_CHECK_OK(br_mp_queue_put(q, NULL, 0, BR_FOREVER));
        _exit(0);
    }
    pid_t cons = fork();
    BENCH_CHECK(cons >= 0);
    if (cons == 0) {
        uint64_t s = 0, c = 0, v;
        size_t len;
        for (;;) {
            BENCH_CHECK_OK(br_mp_queue_get_into(q, &v, sizeof v, &len, BR_FOREVER));
            if (len == 0)
                break;
            s += v;
            c++;
        }
        _exit(c == (uint64_t)n && s == (uint64_t)n * (uint64_t)(n - 1) / 2 ? 0 : 1);
    }
    reap(prod);
    reap(cons);
    double secs = bench_secs(t0, bench_now());
    BENCH_CHECK_OK(br_mp_queue_free(q));
    bench_note("mp-queue: %ld items in %.3f s, %.1f ns/item", n, secs, secs * 1e9 / (double)n);
    bench_emit("W6", "mp-queue", "braid", "items_per_s", (double)n / secs, "items/s");
}

static void run_mp_pipe(long n) {
    br_pipe *r, *w;
    BENCH_CHECK_OK(br_pipe_new(&r, &w, false));
    int64_t t0 = bench_now();
    pid_t pid = fork();
    BENCH_CHECK(pid >= 0);
    if (pid == 0) {
        br_pipe_close(r);
        for (uint64_t i = 0; i < (uint64_t)n; i++)
            BENCH_CHECK_OK(br_pipe_send(w, &i, sizeof i, BR_FOREVER));
        BENCH_CHECK_OK(br_pipe_send(w, NULL, 0, BR_FOREVER));
        br_pipe_close(w);
        _exit(0);
    }
    BENCH_CHECK_OK(br_pipe_close(w));
    uint64_t s = 0, c = 0, v;
    size_t len;
    for (;;) {
        BENCH_CHECK_OK(br_pipe_recv_into(r, &v, sizeof v, &len, BR_FOREVER));
        if (len == 0)
            break;
        s += v;
        c++;
    }
    reap(pid);
    double secs = bench_secs(t0, bench_now());
    BENCH_CHECK_EQ(c, n);
    BENCH_CHECK_EQ(s, (uint64_t)n * (uint64_t)(n - 1) / 2);
    BENCH_CHECK_OK(br_pipe_close(r));
    bench_note("mp-pipe: %ld msgs in %.3f s, %.1f ns/msg", n, secs, secs * 1e9 / (double)n);
    bench_emit("W6", "mp-pipe", "braid", "msgs_per_s", (double)n / secs, "msgs/s");
}

static void run_1p1c(long n) {
    br_mp_queue *q;
    BENCH_CHECK_OK(br_mp_queue_new(&q, NULL));
    shared *sh = shared_new();
    pid_t pid = fork();
    BENCH_CHECK(pid >= 0);
    if (pid == 0) {
        atomic_store(&sh->ready, 1);
        uint64_t s = 0, v;
        size_t len;
        for (long i = 0; i < n; i++) {
            BENCH_CHECK_OK(br_mp_queue_get_into(q, &v, sizeof v, &len, BR_FOREVER));
            s += v;
        }
        atomic_store(&sh->sum, s);
        _exit(0);
    }
    while (!atomic_load(&sh->ready))
        ;
    int64_t t0 = bench_now();
    for (uint64_t i = 1; i <= (uint64_t)n; i++)
        BENCH_CHECK_OK(br_mp_queue_put(q, &i, sizeof i, BR_FOREVER));
    reap(pid);
    double secs = bench_secs(t0, bench_now());
    BENCH_CHECK_EQ(atomic_load(&sh->sum), (uint64_t)n * (uint64_t)(n + 1) / 2);
    munmap(sh, sizeof *sh);
    BENCH_CHECK_OK(br_mp_queue_free(q));
    bench_note("1p1c: %ld items in %.3f s, %.1f ns/item", n, secs, secs * 1e9 / (double)n);
    bench_emit("N6", "1p1c", "braid", "items_per_s", (double)n / secs, "items/s");
}

enum { NP = 4, NC = 4 };

static void run_4p4c(long n) {
    br_mp_queue *q;
    BENCH_CHECK_OK(br_mp_queue_new(&q, NULL));
    shared *sh = shared_new();
    long per = n / NP;
    pid_t pids[NP + NC];
    int64_t t0 = bench_now();
    for (int k = 0; k < NP + NC; k++) {
        pids[k] = fork();
        BENCH_CHECK(pids[k] >= 0);
        if (pids[k] != 0)
            continue;
        if (k < NP) {
            for (uint64_t i = 0; i < (uint64_t)per; i++) {
                uint64_t m[2] = {(uint64_t)k, i};
                BENCH_CHECK_OK(br_mp_queue_put(q, m, sizeof m, BR_FOREVER));
            }
            _exit(0);
        }
        uint64_t last[NP], s = 0, c = 0, m[2];
        for (int p = 0; p < NP; p++)
            last[p] = UINT64_MAX;
        size_t len;
        for (;;) {
            BENCH_CHECK_OK(br_mp_queue_get_into(q, m, sizeof m, &len, BR_FOREVER));
            if (len == 0)
                break;
            if (len != sizeof m || m[0] >= NP || (last[m[0]] != UINT64_MAX && m[1] <= last[m[0]]))
                _exit(1);
            last[m[0]] = m[1];
            s += m[1];
            c++;
        }
        atomic_fetch_add(&sh->sum, s);
        atomic_fetch_add(&sh->count, c);
        _exit(0);
    }
    for (int k = 0; k < NP; k++)
        reap(pids[k]);
    for (int k = 0; k < NC; k++)
        BENCH_CHECK_OK(br_mp_queue_put(q, NULL, 0, BR_FOREVER));
    for (int k = NP; k < NP + NC; k++)
        reap(pids[k]);
    double secs = bench_secs(t0, bench_now());
    BENCH_CHECK_EQ(atomic_load(&sh->count), per * NP);
    BENCH_CHECK_EQ(atomic_load(&sh->sum), (uint64_t)NP * (uint64_t)per * (uint64_t)(per - 1) / 2);
    munmap(sh, sizeof *sh);
    BENCH_CHECK_OK(br_mp_queue_free(q));
    bench_note("4p4c: %ld items in %.3f s, %.1f ns/item", per * NP, secs,
               secs * 1e9 / (double)(per * NP));
    bench_emit("W6", "4p4c", "braid", "items_per_s", (double)(per * NP) / secs, "items/s");
}

int main(int argc, char **argv) {
    const char *v = argc > 1 ? argv[1] : NULL;
    long n = argc > 2 ? atol(argv[2]) : 0;
    bool any = false;
    if (!v || !strcmp(v, "mp-queue"))
        run_mp_queue(n ? n : 10000000), any = true;
    if (!v || !strcmp(v, "mp-pipe"))
        run_mp_pipe(n ? n : 10000000), any = true;
    if (!v || !strcmp(v, "1p1c"))
        run_1p1c(n ? n : 10000000), any = true;
    if (!v || !strcmp(v, "4p4c"))
        run_4p4c(n ? n : 4000000), any = true;
    if (!any) {
        fprintf(stderr, "usage: bench_mp_queue [mp-queue|mp-pipe|1p1c|4p4c [N]]\n");
        return 2;
    }
    return 0;
}
