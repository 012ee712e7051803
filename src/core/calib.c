/* Spin budgets from this machine's own costs: the calibration, measured once.
 *
 * Design notes.
 *
 * Why. Whether spinning pays depends on what the alternative costs, and that differs by
 * an order of magnitude between machines: on an Intel Xeon 2-vCPU guest a futex wake
 * reaches the woken thread in a few us and a cache line crosses between CPUs in ~0.15 us;
 * on an AMD EPYC 2-vCPU guest the waker alone spends ~10 us in the wake (an IPI is a VM
 * exit there), the woken thread runs ~20 us later, and a line's round trip is ~0.6-0.9
 * us. A `pause` is ~3 ns on one and ~35 ns on the other. Constants tuned on one machine
 * (in iterations or in ns) are wrong on the other, so braid measures the two costs that
 * decide it and derives every spin budget from them, in time.
 *
 * What is measured, with one helper thread (signals blocked, 64 KiB stack, kept off
 * the CPU we run on) that lives only for the measurement:
 *   rtt_ns        a cache line's round trip between two threads: the helper echoes a
 *                 counter from one line into another; the fastest of 8 batches of 8
 *                 round trips, divided by 8 (the clock is read once per batch; a
 *                 disturbance only adds time).
 *   wake_ns       a futex wake until the woken thread runs: the helper sleeps on a
 *                 word, we change it, wake it and read the clock; it reads the clock as
 *                 soon as it runs. The median of 5 samples. A sample whose wake found
 *                 nobody asleep (the helper had not reached the kernel yet) is dropped.
 *   wake_call_ns  the waker's own cost of that wake (the system call), same samples.
 * Derived:
 *   spin_ns       how long a thread spins before it sleeps: wake_ns, the cost of the
 *                 sleep it avoids (spinning as long as a block-and-wake costs is within
 *                 2x of the best choice whatever the wait turns out to be).
 *
 * When. Lazily, by the first caller that needs a value (the first park, a contended
 * lock): a program that never waits never pays. It costs ~0.6-1.0 ms here (the
 * thread's creation and first run are half of it). The caller naps (never spins:
 * that could keep the helper off a busy machine's CPUs) until the helper runs, at
 * most 5 ms; each phase of the measurement then has 3 ms. The helper is detached: a
 * successful measurement waits for its last store; a disturbed one leaves it to exit
 * as soon as it runs, so that the caller never waits longer. On a machine so busy
 * that a new thread waits milliseconds for a CPU (seen at a load of 9 on 2 CPUs) the
 * measurement fails and the defaults stay.
 * One caller measures; others that ask meanwhile get the defaults below without
 * waiting. Values are published one word each (readers load them relaxed: each is
 * meaningful alone).
 *
 * Safety. On one CPU (br__cpu_parallel() == 1) nothing is measured and spin_ns is 0:
 * spinning can only delay the thread it waits for. A disturbed measurement (the
 * helper not scheduled, the deadline hit, a failed thread creation) falls back to the
 * defaults, a value beyond its bound (rtt 2 us, wake 50 us: not what was meant to be
 * measured) too, and every value is clamped to sane bounds, so that a descheduled
 * helper or a sanitizer's slowdown can't make braid spin for milliseconds or not at
 * all.
 *
 * Override. BRAID_SPIN_NS (a decimal count of ns, 0..1000000) replaces spin_ns; 0
 * turns spinning off. The other values are still measured. Read once, at calibration.
 */
#include "core/lib.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>

/* Defaults (used until measured, and when a measurement fails) and bounds. */
#define RTT_DEFAULT 300
#define RTT_MIN 20
#define RTT_MAX 2000
#define WAKE_DEFAULT 10000
#define WAKE_MIN 1000
#define WAKE_MAX 50000
#define WAKE_CALL_DEFAULT 3000
#define WAKE_CALL_MIN 200
#define WAKE_CALL_MAX 50000
#define SPIN_MIN 250
#define SPIN_MAX 30000
#define SPIN_ENV_MAX 1000000

/* The helper must run within START_BUDGET_NS of its creation, and the measurement
 * then ends within CALIB_BUDGET_NS. */
#define START_BUDGET_NS 5000000
#define CALIB_BUDGET_NS 3000000

enum { RTT_BATCHES = 8, RTT_PER_BATCH = 8, WAKE_SAMPLES = 5 };

_Atomic int64_t br__calib_v[BR__CALIB_N] = {-1, -1, -1, -1};

static const int64_t defaults[BR__CALIB_N] = {RTT_DEFAULT, WAKE_DEFAULT, WAKE_CALL_DEFAULT,
                                              WAKE_DEFAULT};

/* 0 not measured, 1 being measured, 2 published. */
static _Atomic int state;

static int64_t clamp(int64_t v, int64_t lo, int64_t hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t median(int64_t *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    return v[n / 2];
}

/* --- the helper ---------------------------------------------------------------------- */

#define STOP UINT32_MAX
#define STARTED (UINT32_MAX - 1) /* the first ping */

struct probe {
    _Alignas(BR__CACHELINE) _Atomic uint32_t ping; /* ours: the round-trip counter */
    _Alignas(BR__CACHELINE) _Atomic uint32_t pong; /* the helper's echo */
    _Alignas(BR__CACHELINE) _Atomic uint32_t word; /* the futex the helper sleeps on */
    _Atomic uint32_t asleep;                       /* the helper: "I sleep on word == v" */
    _Atomic uint32_t woke;                         /* the helper woke to word == v */
    _Atomic int64_t woke_at;                       /* ... at this time */
    _Atomic int64_t deadline;                      /* both sides give up then */
};

/* The helper's kernel id (0 before it runs) and whether it has returned: for tests
 * that count threads (br__calib_helper_gone). */
static _Atomic int helper_tid;
static _Atomic bool helper_made, helper_done;

static int64_t deadline_of(struct probe *p) {
    return atomic_load_explicit(&p->deadline, memory_order_relaxed);
}

static void *helper_run(struct probe *p);

static void *helper(void *arg) {
    atomic_store_explicit(&helper_tid, br__thread_native_id(), memory_order_relaxed);
    helper_run(arg);
    atomic_store_explicit(&helper_done, true, memory_order_release);
    return NULL;
}

static void *helper_run(struct probe *p) {
    /* Round trips: echo ping into pong until ping says STOP. Yields after 20 us
     * without a ping: we may be holding the CPU the other side needs. */
    int64_t idle_since = 0;
    for (unsigned i = 1;; i++) {
        uint32_t v = atomic_load_explicit(&p->ping, memory_order_acquire);
        if (v == STOP)
            break;
        if (v != atomic_load_explicit(&p->pong, memory_order_relaxed)) {
            atomic_store_explicit(&p->pong, v, memory_order_release);
            idle_since = 0;
            continue;
        }
        br__cpu_relax();
        if ((i & 63) == 0) {
            int64_t now = br_now();
            if (now >= deadline_of(p))
                return NULL;
            if (idle_since == 0)
                idle_since = now;
            else if (now - idle_since >= 20000)
                sched_yield();
        }
    }
    /* Wakes: sleep on word == v until it changes; say when we run again. */
    for (;;) {
        uint32_t v = atomic_load_explicit(&p->word, memory_order_acquire);
        if (v == STOP)
            break;
        atomic_store_explicit(&p->asleep, v, memory_order_release);
        while (atomic_load_explicit(&p->word, memory_order_acquire) == v) {
            if (br__futex_wait(&p->word, v, deadline_of(p), false) == BR_ETIMEDOUT)
                return NULL;
        }
        atomic_store_explicit(&p->woke_at, br_now(), memory_order_relaxed);
        /* the value it woke for: what we changed the word to */
        atomic_store_explicit(&p->woke,
                              atomic_load_explicit(&p->word, memory_order_relaxed),
                              memory_order_release);
    }
    return NULL;
}

/* Waits until *w == v; false if the deadline passed first. Spins for 20 us, then
 * yields between polls: the helper may be waiting for our CPU. */
static bool await_word(_Atomic uint32_t *w, uint32_t v, int64_t deadline) {
    int64_t yield_at = 0;
    for (unsigned i = 1; atomic_load_explicit(w, memory_order_acquire) != v; i++) {
        br__cpu_relax();
        if ((i & 63) == 0) {
            int64_t now = br_now();
            if (now >= deadline)
                return false;
            if (yield_at == 0)
                yield_at = now + 20000;
            else if (now >= yield_at)
                sched_yield();
        }
    }
    return true;
}

/* A disturbed measurement keeps what it got if that is enough for a median. */
enum { RTT_ENOUGH = 3, WAKE_ENOUGH = 3 };

static bool measure_rtt(struct probe *p, int64_t *rtt) {
    int64_t batch[RTT_BATCHES];
    int got = 0;
    uint32_t n = 0;                          /* counts up from 1, far from STARTED */
    for (int b = -1; b < RTT_BATCHES; b++) { /* batch -1 warms both lines up */
        int64_t t0 = br_now();
        for (int i = 0; i < RTT_PER_BATCH; i++) {
            atomic_store_explicit(&p->ping, ++n, memory_order_release);
            if (!await_word(&p->pong, n, deadline_of(p)))
                goto out;
        }
        if (b >= 0)
            batch[got++] = br_now() - t0;
    }
out:
    if (got < RTT_ENOUGH)
        return false;
    /* The fastest batch: disturbances (a preemption, a yield) only add time. */
    int64_t best = batch[0];
    for (int i = 1; i < got; i++)
        if (batch[i] < best)
            best = batch[i];
    *rtt = best / RTT_PER_BATCH;
    return true;
}

static bool measure_wake(struct probe *p, int64_t *wake, int64_t *call) {
    int64_t lat[WAKE_SAMPLES], cost[WAKE_SAMPLES];
    int got = 0;
    uint32_t v = 0;
    int64_t settle = 10000;
    while (got < WAKE_SAMPLES) {
        if (!await_word(&p->asleep, v, deadline_of(p)))
            break;
        /* Give the helper time to reach the kernel (a wake that finds nobody asleep
         * is dropped below, and the next settle is longer), yielding meanwhile in
         * case it needs our CPU to get there. */
        int64_t settled = br_now() + settle;
        while (br_now() < settled)
            sched_yield();
        int64_t t0 = br_now();
        atomic_store_explicit(&p->word, ++v, memory_order_release);
        int woken = br__futex_wake(&p->word, 1, false);
        int64_t t1 = br_now();
        if (!await_word(&p->woke, v, deadline_of(p)))
            break;
        if (woken > 0) {
            lat[got] = atomic_load_explicit(&p->woke_at, memory_order_relaxed) - t0;
            cost[got] = t1 - t0;
            got++;
        } else if (settle < 200000) {
            settle *= 2;
        }
    }
    if (got < WAKE_ENOUGH)
        return false;
    *wake = median(lat, got);
    *call = median(cost, got);
    return true;
}

/* Measures into v[] (each phase that succeeded); false if either was disturbed. */
static bool measure(int64_t v[BR__CALIB_N]) {
    static struct probe p; /* static: no large frame; one measurement per process */
    atomic_store(&p.ping, 0);
    atomic_store(&p.pong, 0);
    atomic_store(&p.word, 0);
    atomic_store(&p.asleep, STOP);
    atomic_store(&p.woke, STOP);
    int64_t start_by = br_now() + START_BUDGET_NS;
    atomic_store(&p.deadline, start_by + CALIB_BUDGET_NS);

    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return false;
    pthread_attr_setstacksize(&attr, 64 * 1024);
    /* Detached: we wait for its last store instead of joining, so that a process that
     * exits while a measurement is under way leaves no joinable thread behind. */
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    br__attr_other_cpu(&attr); /* a round trip between CPUs, not within one */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the helper inherits it: no handlers */
    pthread_t t;
    int rc = pthread_create(&t, &attr, helper, &p);
    (void)t;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return false;
    atomic_store_explicit(&helper_made, true, memory_order_relaxed);

    /* Until the helper echoes a first ping, poll in naps of 20 us (the kernel's timer
     * slack makes them ~70 us): spinning, or yielding, here could keep the helper on
     * our CPU, and a round trip measured there is two context switches. The
     * measurement's budget starts then. */
    bool ok = true;
    atomic_store_explicit(&p.ping, STARTED, memory_order_release);
    for (;;) {
        if (atomic_load_explicit(&p.pong, memory_order_acquire) == STARTED)
            break;
        int64_t now = br_now();
        if (now >= start_by) {
            ok = false;
            break;
        }
        _Atomic uint32_t nap = 0;
        br__futex_wait(&nap, 0, br_deadline_min(now + 20000, start_by), false);
    }
    int64_t rtt = 0, wake = 0, call = 0;
    atomic_store(&p.deadline, br_now() + CALIB_BUDGET_NS);
    bool rtt_ok = ok && measure_rtt(&p, &rtt);
    if (rtt_ok && rtt > RTT_MAX) {
        /* Context switches, not a cache line: both threads share one CPU. Nap once so
         * that the scheduler can spread them, and measure again. */
        _Atomic uint32_t nap = 0;
        br__futex_wait(&nap, 0, br_now() + 200000, false);
        atomic_store(&p.deadline, br_now() + CALIB_BUDGET_NS);
        rtt_ok = measure_rtt(&p, &rtt);
    }
    atomic_store_explicit(&p.ping, STOP, memory_order_release);
    atomic_store(&p.deadline, br_now() + CALIB_BUDGET_NS);
    bool wake_ok = ok && measure_wake(&p, &wake, &call);
    atomic_store_explicit(&p.word, STOP, memory_order_release);
    br__futex_wake(&p.word, 1, false);
    if (rtt_ok && wake_ok) {
        /* Running and told to stop: it returns at once. Wait for that (its last
         * store), so that it is gone (or going) when the values are published. */
        while (!atomic_load_explicit(&helper_done, memory_order_acquire) &&
               br_now() < deadline_of(&p))
            sched_yield();
    }
    /* Else disturbed: the helper may not even be running. Don't wait for it; it exits
     * as soon as it runs (it sees STOP, or its deadline has passed). */
    if (rtt_ok)
        v[BR__CALIB_RTT] = rtt;
    if (wake_ok) {
        v[BR__CALIB_WAKE] = wake;
        v[BR__CALIB_WAKE_CALL] = call;
    }
    return rtt_ok && wake_ok;
}

int64_t br__calib_parse_spin_ns(const char *s) {
    if (!s || *s < '0' || *s > '9') /* digits only: no sign, no blanks */
        return -1;
    char *end;
    long long n = strtoll(s, &end, 10);
    if (*end != 0 || n < 0 || n > SPIN_ENV_MAX)
        return -1;
    return (int64_t)n;
}

int64_t br__calib_slow(int which) {
    int z = 0;
    if (!atomic_compare_exchange_strong_explicit(&state, &z, 1, memory_order_acquire,
                                                 memory_order_relaxed)) {
        /* Being measured by another thread (or published just now). */
        int64_t got = atomic_load_explicit(&br__calib_v[which], memory_order_relaxed);
        return got >= 0 ? got : defaults[which];
    }
    int64_t v[BR__CALIB_N];
    for (int i = 0; i < BR__CALIB_N; i++)
        v[i] = defaults[i];
    bool one_cpu = br__cpu_parallel() == 1;
    if (!one_cpu)
        measure(v);
    /* Beyond the maximum it is not what we meant to measure (a round trip through
     * context switches on one CPU, a wake behind other work): keep the default. */
    if (v[BR__CALIB_RTT] > RTT_MAX)
        v[BR__CALIB_RTT] = RTT_DEFAULT;
    if (v[BR__CALIB_WAKE] > WAKE_MAX) {
        v[BR__CALIB_WAKE] = WAKE_DEFAULT;
        v[BR__CALIB_WAKE_CALL] = WAKE_CALL_DEFAULT;
    }
    v[BR__CALIB_RTT] = clamp(v[BR__CALIB_RTT], RTT_MIN, RTT_MAX);
    v[BR__CALIB_WAKE] = clamp(v[BR__CALIB_WAKE], WAKE_MIN, WAKE_MAX);
    v[BR__CALIB_WAKE_CALL] = clamp(v[BR__CALIB_WAKE_CALL], WAKE_CALL_MIN, WAKE_CALL_MAX);
    v[BR__CALIB_SPIN] = one_cpu ? 0 : clamp(v[BR__CALIB_WAKE], SPIN_MIN, SPIN_MAX);
    int64_t env = br__calib_parse_spin_ns(getenv("BRAID_SPIN_NS"));
    if (env >= 0)
        v[BR__CALIB_SPIN] = env;
    for (int i = 0; i < BR__CALIB_N; i++)
        atomic_store_explicit(&br__calib_v[i], v[i], memory_order_relaxed);
    atomic_store_explicit(&state, 2, memory_order_release);
    return v[which];
}

int br__calib_helper_gone(void) {
    if (atomic_load_explicit(&state, memory_order_acquire) != 2)
        return -1;
    if (!atomic_load_explicit(&helper_made, memory_order_relaxed))
        return 0; /* one CPU, or the creation failed */
    if (!atomic_load_explicit(&helper_done, memory_order_acquire))
        return -1; /* running, or detached and not yet run */
    return atomic_load_explicit(&helper_tid, memory_order_relaxed);
}

int64_t br__calib_peek(int which) {
    int64_t v = atomic_load_explicit(&br__calib_v[which], memory_order_relaxed);
    return v >= 0 ? v : defaults[which];
}

void br__calib_set_spin_ns(int64_t ns) {
    br__calib_rtt_ns(); /* measure first, so that it can't overwrite ns later */
    atomic_store_explicit(&br__calib_v[BR__CALIB_SPIN], ns, memory_order_relaxed);
}
