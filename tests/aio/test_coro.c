/* The coroutine core (aio/coro.h): the switch keeps what the ABI says a callee keeps,
 * coroutines interleave in the order their scheduler says, stacks are pooled (few
 * mappings, reused), shared-stack coroutines keep their frames, and overflows are
 * reported naming the coroutine.
 * braid-test-timeout: 180
 */
#include "harness.h"

#include "aio/coro.h"

#include <errno.h>
#include <fenv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- basics ------------------------------------------------------------------------- */

typedef struct counter {
    int steps;
    int seen[8];
    br__coro *self;
} counter;

static void count_fn(void *arg) {
    counter *c = arg;
    for (int i = 0; i < 3; i++) {
        c->seen[i] = c->steps++;
        c->self = br__coro_current();
        br__coro_suspend();
    }
    c->steps += 100;
}

static void resume_suspend_finish(void **state) {
    (void)state;
    counter c = {0};
    br__coro *co;
    br__coro_opts o = {.name = "counter"};
    BR_CHECK_OK(br__coro_new(&co, count_fn, &c, &o));
    BR_CHECK_EQ(br__coro_state_of(co), BR__CORO_NEW);
    char nb[BR__CORO_NAME_MAX];
    BR_CHECK(strcmp(br__coro_name(co, nb), "counter") == 0);
    BR_CHECK(br__coro_current() == NULL);
    br__coro_set_user(co, &c);
    BR_CHECK(br__coro_user(co) == &c);
    BR_CHECK_EQ(br__coro_stack_size(co), BR__CORO_DEFAULT_STACK);
    for (int i = 0; i < 3; i++) {
        BR_CHECK_EQ(br__coro_resume(co), BR__CORO_SUSPENDED);
        BR_CHECK_EQ(c.steps, i + 1);
        BR_CHECK(c.self == co);
        BR_CHECK(br__coro_current() == NULL);
    }
    BR_CHECK_EQ(br__coro_resume(co), BR__CORO_DONE);
    BR_CHECK_EQ(c.steps, 103);
    BR_CHECK_EQ(br__coro_state_of(co), BR__CORO_DONE);
    br__coro_free(co);

    /* Unnamed ones are called coro-<id>; ids grow. */
    br__coro *a, *b;
    BR_CHECK_OK(br__coro_new(&a, count_fn, &c, NULL));
    BR_CHECK_OK(br__coro_new(&b, count_fn, &c, NULL));
    char want[40];
    snprintf(want, sizeof want, "coro-%llu", (unsigned long long)br__coro_id(a));
    BR_CHECK(strcmp(br__coro_name(a, nb), want) == 0);
    BR_CHECK(br__coro_id(b) > br__coro_id(a));
    br__coro_free(a); /* NEW coroutines may be freed */
    br__coro_free(b);
}

static void bad_stack_size(void **state) {
    (void)state;
    br__coro *co = NULL;
    counter c = {0};
    br__coro_opts o = {.stack_size = BR__CORO_MIN_STACK - 1};
    BR_CHECK_ERR(br__coro_new(&co, count_fn, &c, &o), BR_EINVAL);
    o.stack_size = 4096;
    BR_CHECK_ERR(br__coro_new(&co, count_fn, &c, &o), BR_EINVAL);
    o.stack_size = (size_t)1 << 50;
    BR_CHECK_ERR(br__coro_new(&co, count_fn, &c, &o), BR_EINVAL);
    o = (br__coro_opts){.shared_stack = true, .stack_size = (size_t)64 << 20};
    BR_CHECK_ERR(br__coro_new(&co, count_fn, &c, &o), BR_EINVAL);
    BR_CHECK(co == NULL);
    /* The smallest allowed works, rounded up to pages. */
    o = (br__coro_opts){.stack_size = BR__CORO_MIN_STACK + 1};
    BR_CHECK_OK(br__coro_new(&co, count_fn, &c, &o));
    BR_CHECK(br__coro_stack_size(co) > BR__CORO_MIN_STACK);
    BR_CHECK_EQ(br__coro_stack_size(co) % (size_t)sysconf(_SC_PAGESIZE), 0);
    while (br__coro_resume(co) != BR__CORO_DONE)
        ;
    br__coro_free(co);
}

/* --- callee-saved registers and FP control state --------------------------------------- */

#if defined(__x86_64__)
#  define REGS_DECL(v)                                                                  \
      register uint64_t r_a __asm__("rbx") = (v) + 1;                                   \
      register uint64_t r_b __asm__("r12") = (v) + 2;                                   \
      register uint64_t r_c __asm__("r13") = (v) + 3;                                   \
      register uint64_t r_d __asm__("r14") = (v) + 4;                                   \
      register uint64_t r_e __asm__("r15") = (v) + 5
#  define REGS_PIN() __asm__ __volatile__("" : "+r"(r_a), "+r"(r_b), "+r"(r_c), "+r"(r_d), "+r"(r_e))
#  define REGS_SUM() (r_a + r_b + r_c + r_d + r_e)
#  define REGS_OK(v)                                                                    \
      (r_a == (v) + 1 && r_b == (v) + 2 && r_c == (v) + 3 && r_d == (v) + 4 && r_e == (v) + 5)
/* Overwrites every callee-saved register the compiler would otherwise keep for us. */
#  define REGS_TRASH()                                                                  \
      __asm__ __volatile__("movq $-1, %%rbx\n\tmovq $-1, %%r12\n\tmovq $-1, %%r13\n\t"  \
                           "movq $-1, %%r14\n\tmovq $-1, %%r15" ::                       \
                               : "rbx", "r12", "r13", "r14", "r15")
#elif defined(__aarch64__)
#  define REGS_DECL(v)                                                                  \
      register uint64_t r_a __asm__("x19") = (v) + 1;                                   \
      register uint64_t r_b __asm__("x21") = (v) + 2;                                   \
      register uint64_t r_c __asm__("x24") = (v) + 3;                                   \
      register uint64_t r_d __asm__("x27") = (v) + 4;                                   \
      register uint64_t r_e __asm__("x28") = (v) + 5
#  define REGS_PIN() __asm__ __volatile__("" : "+r"(r_a), "+r"(r_b), "+r"(r_c), "+r"(r_d), "+r"(r_e))
#  define REGS_OK(v)                                                                    \
      (r_a == (v) + 1 && r_b == (v) + 2 && r_c == (v) + 3 && r_d == (v) + 4 && r_e == (v) + 5)
#  define REGS_TRASH()                                                                  \
      __asm__ __volatile__("mov x19, #-1\n\tmov x20, #-1\n\tmov x21, #-1\n\t"           \
                           "mov x22, #-1\n\tmov x23, #-1\n\tmov x24, #-1\n\t"           \
                           "mov x25, #-1\n\tmov x26, #-1\n\tmov x27, #-1\n\t"           \
                           "mov x28, #-1\n\tfmov d8, xzr\n\tfmov d9, xzr\n\t"           \
                           "fmov d14, xzr\n\tfmov d15, xzr" ::                          \
                               : "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", \
                                 "x27", "x28", "d8", "d9", "d14", "d15")
#endif

typedef struct regs_box {
    int ok_rounds;
    int bad;
} regs_box;

BR__NOINLINE static void regs_fn(void *arg) {
    regs_box *b = arg;
    for (int i = 0; i < 4; i++) {
        REGS_DECL(0x5a5a000000000000ull + (uint64_t)i * 16);
        REGS_PIN();
        br__coro_suspend();
        REGS_PIN();
        if (REGS_OK(0x5a5a000000000000ull + (uint64_t)i * 16))
            b->ok_rounds++;
        else
            b->bad++;
        REGS_TRASH(); /* the resumer's values must come back from the switch, not us */
    }
}

BR__NOINLINE static int regs_resume(br__coro *co, uint64_t v) {
    REGS_DECL(v);
    REGS_PIN();
    br__coro_resume(co);
    REGS_PIN();
    return REGS_OK(v);
}

static void callee_saved_registers_survive(void **state) {
    (void)state;
    regs_box b = {0};
    br__coro *co;
    BR_CHECK_OK(br__coro_new(&co, regs_fn, &b, NULL));
    int resumer_ok = 0;
    for (uint64_t r = 0; r < 5; r++)
        resumer_ok += regs_resume(co, 0x1234000000000000ull + r * 32);
    BR_CHECK_EQ(resumer_ok, 5);
    BR_CHECK_EQ(b.ok_rounds, 4);
    BR_CHECK_EQ(b.bad, 0);
    BR_CHECK_EQ(br__coro_state_of(co), BR__CORO_DONE);
    br__coro_free(co);
}

static unsigned fp_env(void) {
#if defined(__x86_64__)
    uint32_t mxcsr;
    uint16_t cw;
    __asm__ __volatile__("stmxcsr %0\n\tfnstcw %1" : "=m"(mxcsr), "=m"(cw));
    /* MXCSR's rounding (bits 13-14) and flush-to-zero (15), x87 rounding (10-11) and
     * precision (8-9). */
    return ((mxcsr >> 13) & 7u) | (((unsigned)cw >> 8 & 15u) << 4);
#elif defined(__aarch64__)
    uint64_t fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    return (unsigned)(fpcr >> 22) & 7u; /* RMode, FZ */
#endif
}

static void fp_set(int round, bool x87_single) {
    fesetround(round);
#if defined(__x86_64__)
    if (x87_single) {
        uint16_t cw;
        __asm__ __volatile__("fnstcw %0" : "=m"(cw));
        cw = (uint16_t)(cw & ~0x300u); /* precision control: single */
        __asm__ __volatile__("fldcw %0" ::"m"(cw));
    }
#else
    (void)x87_single;
#endif
}

typedef struct fp_box {
    int round;
    bool single;
    unsigned want, bad;
    volatile double x;
    double third;
} fp_box;

static void fp_fn(void *arg) {
    fp_box *b = arg;
    fp_set(b->round, b->single);
    b->want = fp_env();
    for (int i = 0; i < 5; i++) {
        br__coro_suspend();
        if (fp_env() != b->want || fegetround() != b->round)
            b->bad++;
    }
    b->third = 1.0 / b->x; /* rounded by this coroutine's mode */
}

static void fp_control_state_is_per_coroutine(void **state) {
    (void)state;
    fp_box bx[3] = {{.round = FE_DOWNWARD, .single = true, .x = 3.0},
                    {.round = FE_UPWARD, .x = 3.0},
                    {.round = FE_TOWARDZERO, .single = true, .x = 3.0}};
    br__coro *co[3];
    unsigned mine = fp_env();
    BR_CHECK_EQ(fegetround(), FE_TONEAREST);
    for (int i = 0; i < 3; i++)
        BR_CHECK_OK(br__coro_new(&co[i], fp_fn, &bx[i], NULL));
    for (int round = 0; round < 6; round++)
        for (int i = 0; i < 3; i++) {
            br__coro_resume(co[i]);
            BR_CHECK_EQ(fp_env(), mine); /* the resumer keeps its own */
            BR_CHECK_EQ(fegetround(), FE_TONEAREST);
        }
    for (int i = 0; i < 3; i++) {
        BR_CHECK_EQ(br__coro_state_of(co[i]), BR__CORO_DONE);
        BR_CHECK_EQ(bx[i].bad, 0);
        br__coro_free(co[i]);
    }
    BR_CHECK(bx[0].want != bx[1].want && bx[1].want != bx[2].want);
    BR_CHECK(bx[0].third < bx[1].third);  /* down < up */
    BR_CHECK(bx[2].third == bx[0].third); /* toward zero == down for a positive */
}

/* --- deep recursion ---------------------------------------------------------------------- */

static uintptr_t deepest;

/* Not instrumented by ASan: its fake stack would put the frames' arrays elsewhere, and
 * this measures and fills the real stack. */
#if defined(__SANITIZE_ADDRESS__)
#  define NO_ASAN __attribute__((no_sanitize_address))
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define NO_ASAN __attribute__((no_sanitize_address))
#  endif
#endif
#ifndef NO_ASAN
#  define NO_ASAN
#endif

NO_ASAN BR__NOINLINE static uint64_t recurse(int depth, volatile char *prev) {
    volatile char frame[480];
    frame[0] = (char)depth;
    frame[479] = prev ? prev[0] : 0;
    if (depth == 0) {
        deepest = (uintptr_t)frame;
        return 1;
    }
    uint64_t r = recurse(depth - 1, frame) + (uint64_t)(unsigned char)frame[0];
    if ((depth & 63) == 0)
        br__coro_suspend(); /* suspends with the whole depth live */
    return r;
}

typedef struct deep_box {
    int depth;
    uint64_t result;
} deep_box;


static void deep_fn(void *arg) {
    deep_box *b = arg;
    b->result = recurse(b->depth, NULL);
}

NO_ASAN static void probe_fn(void *arg) {
    uintptr_t *p = arg;
    volatile char top = 0;
    *p = (uintptr_t)&top;
    recurse(64, NULL);
}

static uint64_t recurse_want(int depth) {
    uint64_t r = 1;
    for (int d = 1; d <= depth; d++)
        r += (uint64_t)(unsigned char)(char)d;
    return r;
}

static void deep_recursion_uses_most_of_the_stack(void **state) {
    (void)state;
    /* Measure a frame (sanitizers make them bigger), then recurse to 85% of the stack. */
    br__coro_opts o = {.stack_size = (size_t)256 << 10};
    uintptr_t top = 0;
    br__coro *co;
    BR_CHECK_OK(br__coro_new(&co, probe_fn, &top, &o));
    while (br__coro_resume(co) != BR__CORO_DONE)
        ;
    br__coro_free(co);
    size_t per = (size_t)(top - deepest) / 64;
    BR_CHECK(per >= 480 && per < 8192);
    int depth = (int)(o.stack_size * 85 / 100 / per);
    deep_box b = {.depth = depth};
    BR_CHECK_OK(br__coro_new(&co, deep_fn, &b, &o));
    int suspends = 0;
    while (br__coro_resume(co) == BR__CORO_SUSPENDED)
        suspends++;
    BR_CHECK_EQ(suspends, depth / 64);
    BR_CHECK_EQ(b.result, recurse_want(depth));
    br__coro_free(co);
}

/* --- many, interleaved -------------------------------------------------------------------- */

enum { LOG_CAP = 200000 };
typedef struct ilog {
    int n;
    int *who, *step;
} ilog;
typedef struct iarg {
    ilog *log;
    int me, steps;
    int local_sum;
} iarg;

static void inter_fn(void *arg) {
    iarg *a = arg;
    int sum = 0; /* a local that must survive every suspend */
    for (int i = 0; i < a->steps; i++) {
        a->log->who[a->log->n] = a->me;
        a->log->step[a->log->n] = i;
        a->log->n++;
        sum += i * a->me;
        br__coro_suspend();
    }
    a->local_sum = sum;
}

static void run_interleaved(bool shared, int n, int steps) {
    ilog log = {0, calloc(LOG_CAP, sizeof(int)), calloc(LOG_CAP, sizeof(int))};
    br__coro **co = calloc((size_t)n, sizeof *co);
    iarg *args = calloc((size_t)n, sizeof *args);
    BR_CHECK(log.who && log.step && co && args && n * steps <= LOG_CAP);
    br__coro_opts o = {.shared_stack = shared};
    for (int i = 0; i < n; i++) {
        args[i] = (iarg){&log, i, steps, -1};
        BR_CHECK_OK(br__coro_new(&co[i], inter_fn, &args[i], &o));
    }
    for (int round = 0; round <= steps; round++)
        for (int i = 0; i < n; i++)
            BR_CHECK_EQ(br__coro_resume(co[i]),
                        round == steps ? BR__CORO_DONE : BR__CORO_SUSPENDED);
    BR_CHECK_EQ(log.n, n * steps);
    for (int k = 0; k < log.n; k++) {
        BR_CHECK_EQ(log.who[k], k % n);
        BR_CHECK_EQ(log.step[k], k / n);
    }
    for (int i = 0; i < n; i++) {
        BR_CHECK_EQ(args[i].local_sum, i * (steps * (steps - 1) / 2));
        br__coro_free(co[i]);
    }
    free(log.who);
    free(log.step);
    free(co);
    free(args);
}

static void many_interleave_in_order(void **state) {
    (void)state;
    run_interleaved(false, 100, 100);
}

/* --- shared stacks --------------------------------------------------------------------------- */

static void shared_interleave_in_order(void **state) {
    (void)state;
    run_interleaved(true, 100, 100);
}

typedef struct frame_box {
    int id;
    int bad;
    uint64_t sum;
} frame_box;

BR__NOINLINE static uint64_t frame_work(frame_box *b, int depth) {
    /* An array in this frame, and a pointer into it, both live across suspends while
     * other coroutines run on the same stack. */
    volatile uint64_t arr[64];
    volatile uint64_t *p = &arr[depth % 64];
    for (int i = 0; i < 64; i++)
        arr[i] = (uint64_t)b->id * 1000003u + (uint64_t)i + (uint64_t)depth * 7u;
    if (depth > 0) {
        uint64_t below = frame_work(b, depth - 1);
        br__coro_suspend();
        for (int i = 0; i < 64; i++)
            if (arr[i] != (uint64_t)b->id * 1000003u + (uint64_t)i + (uint64_t)depth * 7u)
                b->bad++;
        if (*p != arr[depth % 64] || p != &arr[depth % 64])
            b->bad++;
        return below + arr[63];
    }
    br__coro_suspend();
    return arr[0];
}

static void shared_fn(void *arg) {
    frame_box *b = arg;
    b->sum = frame_work(b, 6);
}

static void shared_stack_keeps_frames(void **state) {
    (void)state;
    enum { N = 50 };
    frame_box bx[N];
    br__coro *co[N];
    br__coro_opts o = {.shared_stack = true, .name = "shared"};
    for (int i = 0; i < N; i++) {
        bx[i] = (frame_box){.id = i};
        BR_CHECK_OK(br__coro_new(&co[i], shared_fn, &bx[i], &o));
    }
    /* Resume in a scrambled order each round so that every occupant changes hands. */
    int live = N, rounds = 0;
    while (live > 0) {
        live = 0;
        for (int k = 0; k < N; k++) {
            int i = (k * 17 + rounds * 5) % N;
            if (br__coro_state_of(co[i]) != BR__CORO_DONE &&
                br__coro_resume(co[i]) == BR__CORO_SUSPENDED)
                live++;
        }
        rounds++;
        BR_CHECK(rounds < 100);
    }
    for (int i = 0; i < N; i++) {
        uint64_t want = (uint64_t)i * 1000003u; /* depth 0: arr[0] */
        for (int d = 1; d <= 6; d++)
            want += (uint64_t)i * 1000003u + 63u + (uint64_t)d * 7u;
        BR_CHECK_EQ(bx[i].bad, 0);
        BR_CHECK_EQ(bx[i].sum, want);
        br__coro_free(co[i]);
    }
}

/* --- pooled stacks ------------------------------------------------------------------------------ */

static void hold_fn(void *arg) {
    int *done = arg;
    br__coro_suspend();
    __atomic_fetch_add(done, 1, __ATOMIC_RELAXED);
}

static void hundred_thousand_alive(void **state) {
    (void)state;
    long n = br_test_scaled(100000, 5000);
#if defined(__SANITIZE_THREAD__)
    /* ThreadSanitizer counts each coroutine alive as a thread (8128 at most), and makes
     * each slowly. */
    n = 2000;
#endif
    br__coro **co = calloc((size_t)n, sizeof *co);
    BR_CHECK(co != NULL);
    br__stack_stats before, during, after;
    br__stack_get_stats(&before);
    br__coro_opts o = {.stack_size = BR__CORO_MIN_STACK};
    int done = 0;
    for (long i = 0; i < n; i++) {
        BR_CHECK_OK(br__coro_new(&co[i], hold_fn, &done, &o));
        BR_CHECK_EQ(br__coro_resume(co[i]), BR__CORO_SUSPENDED);
    }
    br__stack_get_stats(&during);
    BR_CHECK_EQ(during.live, before.live + (size_t)n);
    /* 64 MiB batches of 32 KiB slots: 2048 stacks a mapping. */
    BR_CHECK(during.mappings - before.mappings <= (size_t)n / 1000 + 2);
    for (long i = 0; i < n; i++) {
        BR_CHECK_EQ(br__coro_resume(co[i]), BR__CORO_DONE);
        br__coro_free(co[i]);
    }
    BR_CHECK_EQ(done, n);
    br__stack_get_stats(&after);
    BR_CHECK_EQ(after.live, before.live);
    BR_CHECK_EQ(after.free_cached, before.free_cached + (size_t)n);
    /* All of them again: every stack comes from the free list. */
    for (long i = 0; i < n; i++)
        BR_CHECK_OK(br__coro_new(&co[i], hold_fn, &done, &o));
    br__stack_stats again;
    br__stack_get_stats(&again);
    BR_CHECK_EQ(again.mappings, after.mappings);
    for (long i = 0; i < n; i++)
        br__coro_free(co[i]);
    free(co);
}

static void once_fn(void *arg) { (*(int *)arg)++; }

static void steady_cycle_maps_nothing(void **state) {
    (void)state;
    int runs = 0;
    br__coro *co;
    /* Warm up: the first may carve a batch. */
    BR_CHECK_OK(br__coro_new(&co, once_fn, &runs, NULL));
    BR_CHECK_EQ(br__coro_resume(co), BR__CORO_DONE);
    br__coro_free(co);
    br__stack_stats a, b;
    br__stack_get_stats(&a);
    long n = br_test_scaled(10000, 1000);
    for (long i = 0; i < n; i++) {
        BR_CHECK_OK(br__coro_new(&co, once_fn, &runs, NULL));
        BR_CHECK_EQ(br__coro_resume(co), BR__CORO_DONE);
        br__coro_free(co);
    }
    br__stack_get_stats(&b);
    BR_CHECK_EQ(runs, n + 1);
    BR_CHECK_EQ(b.mappings, a.mappings);
    BR_CHECK_EQ(b.live, a.live);
    BR_CHECK_EQ(b.free_cached, a.free_cached);
}

/* A burst of free stacks past the warm bound is released in a few calls over adjacent
 * slots, not one call per stack: the most recently freed stay warm (their bytes kept),
 * the older ones read zero again, every guard still faults, and every stack is handed
 * out again with nothing lost. */
static bool faults_at(const void *addr) {
    int p[2];
    BR_CHECK(pipe(p) == 0);
    ssize_t r = write(p[1], addr, 1);
    bool faults = r < 0 && errno == EFAULT;
    close(p[0]);
    close(p[1]);
    return faults;
}

static void burst_released_in_few_calls(void **state) {
    (void)state;
    enum { SIZE = 20 << 10, N = 8000 }; /* a pool of its own; keep = 64 MiB / 20 KiB */
    const size_t keep = ((size_t)64 << 20) / SIZE;
    br__stack *s = calloc(N, sizeof *s);
    BR_CHECK(s != NULL);
    br__stack_stats a, b, c;
    br__stack_get_stats(&a);
    for (size_t i = 0; i < N; i++) {
        BR_CHECK_OK(br__stack_get(&s[i], SIZE));
        s[i].base[SIZE - 1] = (char)(1 + i % 127); /* the top page, as a first frame */
    }
    char **base = calloc(N, sizeof *base);
    BR_CHECK(base != NULL);
    for (size_t i = 0; i < N; i++) {
        base[i] = s[i].base;
        br__stack_put(&s[i]);
        BR_CHECK(s[i].base == NULL);
    }
    br__stack_get_stats(&b);
    size_t released = b.released - a.released, calls = b.release_calls - a.release_calls;
    /* Released once TRIM_BATCH (1024) past keep are warm: down to keep warm each time. */
    BR_CHECK(released >= N - keep - 1024 && released <= N - keep);
    BR_CHECK(calls >= 1 && calls * 64 <= released);
    BR_CHECK_EQ(b.free_cached - a.free_cached, (size_t)N);
    /* Taken back in LIFO order: the last put first. */
    for (size_t i = N; i-- > 0;) {
        br__stack t;
        BR_CHECK_OK(br__stack_get(&t, SIZE));
        BR_CHECK(t.base == base[i]);
        char v = t.base[SIZE - 1];
        if (i >= N - keep)
            BR_CHECK_EQ(v, (char)(1 + i % 127)); /* warm: kept */
        else if (i < N - keep - 1024)
            BR_CHECK_EQ(v, 0); /* released */
        if (t.guard != BR__GUARD_NONE)
            BR_CHECK(faults_at(t.base - 1));
        s[i] = t;
    }
    br__stack_get_stats(&c);
    BR_CHECK_EQ(c.mappings, b.mappings);
    BR_CHECK_EQ(c.free_cached, a.free_cached);
    for (size_t i = 0; i < N; i++)
        br__stack_put(&s[i]);
    free(base);
    free(s);
}

/* --- listing -------------------------------------------------------------------------------------- */

typedef struct seen_box {
    br__coro *want[3];
    int found[3];
    int states[3];
} seen_box;

static void visit(br__coro *co, void *arg) {
    seen_box *s = arg;
    for (int i = 0; i < 3; i++)
        if (s->want[i] == co) {
            s->found[i]++;
            s->states[i] = br__coro_state_of(co);
        }
}

static void foreach_lists_live_coroutines(void **state) {
    (void)state;
    int c = 0;
    seen_box s = {0};
    for (int i = 0; i < 3; i++)
        BR_CHECK_OK(br__coro_new(&s.want[i], hold_fn, &c, NULL));
    br__coro_resume(s.want[1]);
    br__coro_resume(s.want[2]);
    br__coro_resume(s.want[2]);
    br__coro_foreach(visit, &s);
    BR_CHECK_EQ(s.found[0], 1);
    BR_CHECK_EQ(s.found[1], 1);
    BR_CHECK_EQ(s.found[2], 1);
    BR_CHECK_EQ(s.states[0], BR__CORO_NEW);
    BR_CHECK_EQ(s.states[1], BR__CORO_SUSPENDED);
    BR_CHECK_EQ(s.states[2], BR__CORO_DONE);
    br__coro_free(s.want[2]);
    memset(s.found, 0, sizeof s.found);
    br__coro_foreach(visit, &s);
    BR_CHECK_EQ(s.found[2], 0);
    BR_CHECK_EQ(s.found[0], 1);
    br__coro_resume(s.want[1]);
    br__coro_free(s.want[0]);
    br__coro_free(s.want[1]);
}

/* --- overflow ------------------------------------------------------------------------------------ */

static volatile int forever = 1;

BR__NOINLINE static int overflow(volatile char *prev, int depth) {
    volatile char frame[1024];
    frame[0] = (char)depth;
    frame[1023] = prev ? prev[0] : 0;
    if (!forever)
        return 0;
    return overflow(frame, depth + 1) + frame[1023];
}

static void overflow_fn(void *arg) {
    (void)arg;
    overflow(NULL, 0);
}

static void smash_canary_fn(void *arg) {
    /* What a frame that jumped over the guard would do: write the stack's low end. */
    char *low = arg;
    memset(low, 0x41, 8);
    br__coro_suspend();
}

/* Runs fn in a coroutine named `name` in a forked child with stderr to a pipe; checks
 * that it dies of SIGABRT having printed a report that names it. */
static void expect_overflow_report(br__coro_fn fn, bool canary, int guard_mode) {
    int pfd[2];
    BR_CHECK(pipe(pfd) == 0);
    fflush(NULL);
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 2);
        close(pfd[0]);
        if (guard_mode >= 0) /* a canary only where there is no guard */
            br__stack_test_guard(guard_mode, canary ? 0 : 1000);
        br__coro *co;
        br__coro_opts o = {.stack_size = (size_t)64 << 10, .name = "deep-diver"};
        if (br__coro_new(&co, fn, NULL, &o) != 0)
            _exit(2);
        if (canary) {
            /* the stack's low end: the stack's top minus its size */
            br__coro_free(co);
            static br__stack s;
            if (br__stack_get(&s, (size_t)64 << 10) != 0)
                _exit(3);
            char *low = s.base;
            br__stack_put(&s);
            /* the pool is LIFO: the next coroutine of that size gets that stack */
            if (br__coro_new(&co, fn, low, &o) != 0)
                _exit(4);
        }
        br__coro_resume(co);
        _exit(5); /* not reached: the resume reports and aborts */
    }
    close(pfd[1]);
    char buf[1024];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(pfd[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = 0;
    close(pfd[0]);
    int st = br_test_wait_child(pid);
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT)
        fail_msg("child: status %#x, stderr: %s", st, buf);
    if (!strstr(buf, "braid: coroutine 'deep-diver' overflowed its stack (64 KiB)"))
        fail_msg("no report naming the coroutine in: %s", buf);
    BR_CHECK((strstr(buf, "(canary)") != NULL) == canary);
}

static void overflow_reported_naming_the_coroutine(void **state) {
    (void)state;
    expect_overflow_report(overflow_fn, false, -1);
}

static void overflow_reported_with_mprotect_guards(void **state) {
    (void)state;
    expect_overflow_report(overflow_fn, false, BR__GUARD_MPROTECT);
}

static void overwritten_canary_reported(void **state) {
    (void)state;
    expect_overflow_report(smash_canary_fn, true, BR__GUARD_MPROTECT);
}

/* Misuse the scheduler can't recover from aborts with a message naming the coroutine:
 * resuming a finished one, suspending outside any. Each in a child of its own. */
static void expect_abort(int what, const char *want) {
    int pfd[2];
    BR_CHECK(pipe(pfd) == 0);
    fflush(NULL);
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 2);
        close(pfd[0]);
        int runs = 0;
        br__coro *co;
        br__coro_opts o = {.name = "finished-one"};
        if (what == 0) {
            if (br__coro_new(&co, once_fn, &runs, &o) != 0 ||
                br__coro_resume(co) != BR__CORO_DONE)
                _exit(2);
            br__coro_resume(co);
        } else {
            br__coro_suspend();
        }
        _exit(5);
    }
    close(pfd[1]);
    char buf[1024];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(pfd[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = 0;
    close(pfd[0]);
    int st = br_test_wait_child(pid);
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT)
        fail_msg("child: status %#x, stderr: %s", st, buf);
    if (!strstr(buf, want))
        fail_msg("want '%s' in: %s", want, buf);
}

static void misuse_aborts_with_a_message(void **state) {
    (void)state;
    expect_abort(0, "braid: coroutine 'finished-one': resumed after it finished");
    expect_abort(1, "br__coro_suspend called outside a coroutine");
}

/* True if reading p faults (the kernel says EFAULT copying from it). */
static bool faults(const void *p) {
    int pfd[2];
    BR_CHECK(pipe(pfd) == 0);
    ssize_t r = write(pfd[1], p, 1);
    bool f = r < 0;
    close(pfd[0]);
    close(pfd[1]);
    return f;
}

/* VMAs of this process that overlap [lo, hi). */
static int count_maps_in(uintptr_t lo, uintptr_t hi) {
    FILE *f = fopen("/proc/self/maps", "r");
    BR_CHECK(f != NULL);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx", &a, &b) == 2 && a < hi && b > lo)
            n++;
    }
    fclose(f);
    return n;
}

static void guards_fault_and_respect_the_mapping_limit(void **state) {
    (void)state;
    enum { N = 200 };
    static br__stack s[N];
    /* The kernel's own way first: a size no other test uses, so every slot is fresh. */
    for (int i = 0; i < N; i++) {
        BR_CHECK_OK(br__stack_get(&s[i], (size_t)20 << 10));
        BR_CHECK(s[i].guard != BR__GUARD_NONE);
        BR_CHECK(faults(s[i].base - 1));
        BR_CHECK(faults(s[i].base - BR__STACK_GUARD));
        BR_CHECK(!faults(s[i].base));
        BR_CHECK(br__stack_canary_ok(&s[i]));
    }
    uintptr_t lo = (uintptr_t)s[0].base, hi = lo;
    for (int i = 0; i < N; i++) {
        lo = (uintptr_t)s[i].base < lo ? (uintptr_t)s[i].base : lo;
        hi = (uintptr_t)s[i].base > hi ? (uintptr_t)s[i].base : hi;
    }
    /* 200 slots of 36 KiB fit in one 64 MiB batch: with MADV_GUARD_INSTALL their guards
     * split nothing (one VMA); with mprotect each splits it (~2 VMAs a stack). */
    int vmas = count_maps_in(lo - BR__STACK_GUARD, hi + ((size_t)20 << 10));
    if (s[0].guard == BR__GUARD_MADVISE)
        BR_CHECK_EQ(vmas, 1);
    else
        BR_CHECK(vmas >= N);
    for (int i = 0; i < N; i++)
        br__stack_put(&s[i]);

    /* mprotect guards within a budget, then canary-only stacks. */
    br__stack_test_guard(BR__GUARD_MPROTECT, 3);
    for (int i = 0; i < 5; i++) {
        BR_CHECK_OK(br__stack_get(&s[i], (size_t)24 << 10));
        BR_CHECK_EQ(s[i].guard, i < 3 ? BR__GUARD_MPROTECT : BR__GUARD_NONE);
        BR_CHECK_EQ(faults(s[i].base - 1), i < 3);
        BR_CHECK(!faults(s[i].base));
    }
    /* A canary-only stack's overrun is still seen, after the fact. */
    s[4].base[0] ^= 1;
    BR_CHECK(!br__stack_canary_ok(&s[4]));
    s[4].base[0] ^= 1;
    BR_CHECK(br__stack_canary_ok(&s[4]));
    for (int i = 0; i < 5; i++)
        br__stack_put(&s[i]);
    /* A stack taken again from the free list keeps its guard. */
    BR_CHECK_OK(br__stack_get(&s[0], (size_t)24 << 10));
    BR_CHECK(s[0].guard == BR__GUARD_MPROTECT || s[0].guard == BR__GUARD_NONE);
    BR_CHECK_EQ(faults(s[0].base - 1), s[0].guard == BR__GUARD_MPROTECT);
    br__stack_put(&s[0]);
}

BR_TEST_MAIN(cmocka_unit_test(resume_suspend_finish), cmocka_unit_test(bad_stack_size),
             cmocka_unit_test(callee_saved_registers_survive),
             cmocka_unit_test(fp_control_state_is_per_coroutine),
             cmocka_unit_test(deep_recursion_uses_most_of_the_stack),
             cmocka_unit_test(many_interleave_in_order),
             cmocka_unit_test(shared_interleave_in_order),
             cmocka_unit_test(shared_stack_keeps_frames),
             cmocka_unit_test(hundred_thousand_alive),
             cmocka_unit_test(steady_cycle_maps_nothing),
             cmocka_unit_test(burst_released_in_few_calls),
             cmocka_unit_test(foreach_lists_live_coroutines),
             cmocka_unit_test(overflow_reported_naming_the_coroutine),
             cmocka_unit_test(overflow_reported_with_mprotect_guards),
             cmocka_unit_test(overwritten_canary_reported),
             cmocka_unit_test(guards_fault_and_respect_the_mapping_limit),
             cmocka_unit_test(misuse_aborts_with_a_message))
