/* The future blocks' shared layer (src/future/blocks.c): memory given back only after
 * the decay, kept across rounds and pools in steady state, out-of-memory paths, and a
 * recycling stress through the thread pool (nothing leaked after 10M tasks, memory
 * flat).
 *
 * Each test runs in a process of its own, so the stats start from nothing. ASan builds
 * take blocks from malloc (no slabs: slab_blocks is 0); there the slab tests skip and
 * the others check what holds for both.
 *
 * braid-test-timeout: 240
 */
#include "harness.h"
#include "future/private.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { BURST_SLABS = 6, HOUR_NS_SHIFT = 42 /* 2^42 ns: over an hour */ };

/* A burst on a thread of its own (its cache goes back to the shared layer as it
 * exits): n futures made, each set and read back, released in an order that mixes the
 * slabs. Failures are counted, not checked here: a check can't fail off the test's
 * thread. */
typedef struct {
    size_t n;
    size_t bad;
} burst_arg;

static void *burst(void *p) {
    burst_arg *a = p;
    size_t n = a->n;
    a->bad = 0;
    br_future **f = malloc(n * sizeof *f);
    if (f == NULL) {
        a->bad = n;
        return NULL;
    }
    size_t made = 0;
    for (; made < n; made++)
        if (br_future_new(&f[made]) != 0)
            break;
    a->bad += n - made;
    for (size_t i = 0; i < made; i++)
        a->bad += br_future_set_result_i64(f[i], (int64_t)i) != 0;
    for (size_t i = 0; i < made; i++) {
        int64_t v = -1;
        a->bad += br_future_result_i64(f[i], BR_NOWAIT, &v) != 0 || v != (int64_t)i;
    }
    for (size_t k = 0; k < 7; k++)
        for (size_t i = k; i < made; i += 7)
            br_future_release(f[i]);
    free(f);
    return NULL;
}

static void run_burst(size_t n) {
    burst_arg a = {n, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, burst, &a), 0);
    pthread_join(th, NULL);
    BR_CHECK_EQ(a.bad, 0);
}

static struct br__blocks_stats stats(void) {
    struct br__blocks_stats st;
    br__blocks_stats(&st);
    return st;
}

/* Every block ever carved is back: every slab with memory is empty but the one being
 * carved, whose carved blocks are all free. Nothing leaked. */
static void check_all_back(void) {
    struct br__blocks_stats st = stats();
    BR_CHECK_EQ(st.slabs, st.empty + st.carving);
    BR_CHECK_EQ(st.free_blocks + st.uncarved, st.slabs * st.slab_blocks);
}

/* The process's resident anonymous memory, in KiB (RssAnon in /proc/self/status). */
static long rss_anon_kib(void) {
    FILE *fp = fopen("/proc/self/status", "re");
    BR_CHECK(fp != NULL);
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, fp))
        if (sscanf(line, "RssAnon: %ld kB", &kib) == 1)
            break;
    fclose(fp);
    BR_CHECK(kib >= 0);
    return kib;
}

/* Decay 0: beyond the floor, an empty slab's memory goes back at once (the process's
 * resident memory says so: a bare slab keeps one small page, for its header); the next
 * burst carves that address space again before mapping any more. */
static void given_back_at_once(void **state) {
    (void)state;
    if (stats().slab_blocks == 0)
        skip(); /* ASan: a malloc per block */
    br__blocks_set_decay(0);
    long rss0 = rss_anon_kib();
    run_burst(BURST_SLABS * stats().slab_blocks);
    struct br__blocks_stats st = stats();
    BR_CHECK(st.empty <= 1);
    check_all_back();
    BR_CHECK(st.bare >= BURST_SLABS - 1);
    /* What stays: the empty floor and the carving slab (2 MiB each), the burst
     * thread's cached chains, a page per bare slab, and malloc's slack: well under the
     * 2 MiB per bare slab that a header faulting in a whole huge page again would hold. */
    long grown = rss_anon_kib() - rss0;
    fprintf(stderr, "RssAnon grew %ld KiB over the burst, %zu bare slabs\n", grown,
            st.bare);
#if !defined(BRAID_TSAN) /* TSan's shadow of the touched memory is resident too */
    BR_CHECK(grown < (long)(st.empty + st.carving) * 2048 + (long)st.bare * 1024 + 1024);
#endif
    size_t mapped = st.mapped;
    BR_CHECK_EQ(st.slabs + st.bare, mapped);
    run_burst(BURST_SLABS * st.slab_blocks);
    st = stats();
    BR_CHECK_EQ(st.mapped, mapped);
    BR_CHECK_EQ(st.slabs + st.bare, mapped);
    check_all_back();
}

/* Steady state: rounds of make, release. After the first round no slab is mapped and
 * none gives its memory back (so no page is faulted in afresh), and every round ends
 * with every block back. */
static void kept_in_steady_state(void **state) {
    (void)state;
    if (stats().slab_blocks == 0)
        skip();
    br__blocks_set_decay((int64_t)1 << HOUR_NS_SHIFT);
    size_t n = BURST_SLABS * stats().slab_blocks;
    run_burst(n);
    struct br__blocks_stats first = stats();
    BR_CHECK(first.mapped >= BURST_SLABS);
    BR_CHECK_EQ(first.bare, 0);
    check_all_back();
    for (int round = 0; round < 4; round++) {
        run_burst(n);
        struct br__blocks_stats st = stats();
        BR_CHECK_EQ(st.mapped, first.mapped);
        BR_CHECK_EQ(st.bare, 0);
        BR_CHECK_EQ(st.slabs, first.slabs);
        check_all_back();
    }
}

/* A thread that makes and releases a few chains' worth of futures: its cache goes
 * back to the shared layer as it exits, which is a put. */
static void *small_churn(void *p) {
    size_t *bad = p;
    br_future *f[3 * BR__BLOCK_BATCH];
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        *bad += br_future_new(&f[i]) != 0;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        br_future_release(f[i]);
    return NULL;
}

/* Decay 50 ms: the empty slabs keep their memory until a put finds them older than
 * that; then all but the floor go back. */
static void given_back_after_decay(void **state) {
    (void)state;
    if (stats().slab_blocks == 0)
        skip();
    br__blocks_set_decay(50 * 1000000);
    run_burst(BURST_SLABS * stats().slab_blocks);
    check_all_back();
    size_t mapped = stats().mapped;
    struct timespec ts = {0, 150 * 1000000};
    nanosleep(&ts, NULL);
    size_t bad = 0;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, small_churn, &bad), 0);
    pthread_join(th, NULL);
    BR_CHECK_EQ(bad, 0);
    struct br__blocks_stats st = stats();
    BR_CHECK_EQ(st.empty, 1); /* the floor: the slab the churn just gave back */
    BR_CHECK_EQ(st.slabs + st.bare, mapped);
    BR_CHECK(st.bare >= BURST_SLABS - 1);
    check_all_back();
}

/* Out of memory: a block that needs a new slab (or a malloc) fails with BR_ENOMEM,
 * futures already made are intact, blocks freed meanwhile are reused without new
 * memory, and once memory is back everything works. */
static void out_of_memory(void **state) {
    (void)state;
    br_future *f;
    br__alloc_fail_after(0);
    BR_CHECK_ERR(br_future_new(&f), BR_ENOMEM);
    br__alloc_fail_after(-1);

    size_t n0 = stats().slab_blocks ? stats().slab_blocks : 1000;
    size_t cap = n0 + 2 * BR__BLOCK_BATCH;
    br_future **fs = malloc(cap * sizeof *fs);
    BR_CHECK(fs != NULL);
    size_t made = 0;
    for (; made < n0; made++) {
        BR_CHECK_OK(br_future_new(&fs[made]));
        BR_CHECK_OK(br_future_set_result_i64(fs[made], (int64_t)made));
    }
    /* the first slab is carved out (or every block so far was a malloc): within one
     * chain's worth of blocks already cached, a new one needs new memory */
    br__alloc_fail_after(0);
    int rc = 0;
    while (made < cap && (rc = br_future_new(&fs[made])) == 0) {
        BR_CHECK_OK(br_future_set_result_i64(fs[made], (int64_t)made));
        made++;
    }
    BR_CHECK_EQ(rc, BR_ENOMEM);
    BR_CHECK(made <= n0 + BR__BLOCK_BATCH);
    /* freed blocks are reused while memory is still short */
    for (size_t i = 0; i < 10; i++)
        br_future_release(fs[--made]);
    for (size_t i = 0; i < 10; i++) {
        BR_CHECK_OK(br_future_new(&fs[made]));
        BR_CHECK_OK(br_future_set_result_i64(fs[made], (int64_t)made));
        made++;
    }
    br__alloc_fail_after(-1);
    BR_CHECK_OK(br_future_new(&fs[made]));
    BR_CHECK_OK(br_future_set_result_i64(fs[made], (int64_t)made));
    made++;
    for (size_t i = 0; i < made; i++) {
        int64_t v = -1;
        BR_CHECK_OK(br_future_result_i64(fs[i], BR_NOWAIT, &v));
        BR_CHECK_EQ(v, (int64_t)i);
        br_future_release(fs[i]);
    }
    free(fs);
}

/* Growing ahead: nothing is grown until a slab is started; then a call (as an idle
 * worker makes) faults in a spare, the next slab needed is that spare (no new
 * mapping), and no more than two are ever grown ahead. */
static void grows_ahead(void **state) {
    (void)state;
    size_t cap = stats().slab_blocks;
    if (cap == 0) {
        BR_CHECK(!br__blocks_grow_ahead()); /* ASan: nothing to grow */
        skip();
    }
    BR_CHECK(!br__blocks_grow_ahead()); /* nothing started yet */
    br_future **fs = malloc(3 * cap * sizeof *fs);
    BR_CHECK(fs != NULL);
    size_t made = 0;
    for (; made < cap; made++) /* the first slab, carved out */
        BR_CHECK_OK(br_future_new(&fs[made]));
    BR_CHECK(br__blocks_grow_ahead()); /* the first slab's start wanted one */
    BR_CHECK(!br__blocks_grow_ahead());
    struct br__blocks_stats st = stats();
    BR_CHECK_EQ(st.spares, 1);
    BR_CHECK_EQ(st.mapped, 2);
    BR_CHECK_EQ(st.slabs, 1);
    BR_CHECK_OK(br_future_new(&fs[made++])); /* the second slab is the spare */
    st = stats();
    BR_CHECK_EQ(st.spares, 0);
    BR_CHECK_EQ(st.mapped, 2);
    BR_CHECK_EQ(st.slabs, 2);
    for (; made < 3 * cap; made++) /* a third slab, mapped by the get itself */
        BR_CHECK_OK(br_future_new(&fs[made]));
    st = stats();
    BR_CHECK_EQ(st.mapped, 3);
    int grown = 0;
    while (br__blocks_grow_ahead())
        grown++;
    BR_CHECK_EQ(grown, 2); /* two slabs started since: two wanted, at most two */
    BR_CHECK_EQ(stats().spares, 2);
    for (size_t i = 0; i < made; i++)
        br_future_release(fs[i]);
    free(fs);
}

/* A few recycled blocks don't put the next slab off: with a slab started and a chain of
 * free blocks in the shared layer (a thread cache's, as a program that releases some
 * futures while it still grows gives back), an idle worker's call still grows a spare.
 * (It declined whenever any slab had a free block, and the wanted growth was lost.) */
static void grows_ahead_past_a_few_free_blocks(void **state) {
    (void)state;
    size_t cap = stats().slab_blocks;
    if (cap == 0)
        skip(); /* ASan: no slabs */
    enum { N = 4 * BR__BLOCK_BATCH };
    br_future *fs[N];
    br_test_futures_new(fs, N); /* the first slab started: one growth wanted */
    br_test_futures_release(fs, N); /* some chains reach the shared layer */
    struct br__blocks_stats st = stats();
    BR_CHECK(st.free_blocks > 0);
    BR_CHECK(st.free_blocks < cap);
    BR_CHECK_EQ(st.grown, 0);
    BR_CHECK(br__blocks_grow_ahead());
    st = stats();
    BR_CHECK_EQ(st.grown, 1);
    BR_CHECK_EQ(st.spares, 1);
    BR_CHECK_EQ(st.grow_declined, 0);
    /* A slab's worth of free blocks does put it off: the growth is declined. */
    size_t nmore = cap + 2 * N; /* more than the first slab holds */
    br_future **more = malloc(nmore * sizeof *more);
    BR_CHECK(more != NULL);
    br_test_futures_new(more, nmore); /* through the spare: a second slab started */
    st = stats();
    BR_CHECK_EQ(st.spares_taken, 1);
    BR_CHECK_EQ(st.get_started, 1);
    br_test_futures_release(more, nmore);
    BR_CHECK(stats().free_blocks >= cap);
    BR_CHECK(!br__blocks_grow_ahead());
    st = stats();
    BR_CHECK_EQ(st.grow_declined, 1);
    BR_CHECK_EQ(st.grown, 1);
    free(more);
}

/* --- recycling stress through the thread pool --------------------------------------- */

static int count_task(br_task *t) {
    _Atomic long *n;
    memcpy(&n, br_task_arg(t, NULL), sizeof n);
    atomic_fetch_add_explicit(n, 1, memory_order_relaxed);
    return br_task_return_i64(t, 7);
}

/* Resident set size in bytes (/proc/self/statm), 0 if unreadable. */
static size_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    unsigned long size = 0, rss = 0;
    int got = fscanf(f, "%lu %lu", &size, &rss);
    fclose(f);
    return got == 2 ? (size_t)rss * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

typedef struct {
    long rounds, per_round;
    long ran, results_ok, submit_errors;
    size_t rss_after_second, rss_at_end, mapped_after_second;
} stress_arg;

/* Rounds of: per_round submits keeping their futures, wait for all, check and release
 * them; every other round also per_round fire-and-forget tasks. On a thread of its
 * own, so that its cache is back in the shared layer when it exits. */
static void *stress(void *p) {
    stress_arg *a = p;
    br_executor *ex;
    if (br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = 2}) != 0) {
        a->submit_errors++;
        return NULL;
    }
    _Atomic long ran = 0;
    br_future **f = malloc((size_t)a->per_round * sizeof *f);
    if (f == NULL) {
        a->submit_errors++;
        br_executor_free(ex);
        return NULL;
    }
    _Atomic long *arg = &ran;
    for (long r = 0; r < a->rounds; r++) {
        for (long i = 0; i < a->per_round; i++)
            a->submit_errors += br_submit(ex, count_task, &arg, sizeof arg, &f[i]) != 0;
        if (r % 2)
            for (long i = 0; i < a->per_round; i++)
                a->submit_errors += br_submit(ex, count_task, &arg, sizeof arg, NULL) != 0;
        a->submit_errors += br_wait(f, (size_t)a->per_round, BR_ALL_COMPLETED, BR_FOREVER,
                                    NULL, NULL, NULL) != 0;
        for (long i = 0; i < a->per_round; i++) {
            int64_t v = 0;
            a->results_ok += br_future_result_i64(f[i], BR_NOWAIT, &v) == 0 && v == 7;
            br_future_release(f[i]);
        }
        if (r == 1) { /* the first round with fire-and-forget tasks too */
            struct br__blocks_stats st;
            br__blocks_stats(&st);
            a->mapped_after_second = st.mapped;
            a->rss_after_second = rss_bytes();
        }
    }
    a->submit_errors += br_executor_shutdown(ex, true, false) != 0;
    a->ran = atomic_load(&ran);
    a->rss_at_end = rss_bytes();
    free(f);
    a->submit_errors += br_executor_free(ex) != 0;
    return NULL;
}

/* 10M tasks (1M under the sanitizers, whose runtimes make each task ~10x dearer):
 * every task ran once, every result read, nothing leaked, no more slabs mapped than
 * the peak of live blocks needs and none gave its memory back: the memory is flat. */
static void recycling_stress(void **state) {
    (void)state;
    br__blocks_set_decay((int64_t)1 << HOUR_NS_SHIFT);
#if defined(BRAID_ASAN) || defined(BRAID_TSAN)
    stress_arg a = {.rounds = 4, .per_round = 166667};
#else
    stress_arg a = {.rounds = 40, .per_round = 166667};
#endif
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stress, &a), 0);
    pthread_join(th, NULL);
    long with_futures = a.rounds * a.per_round;
    long without = (a.rounds / 2) * a.per_round;
    BR_CHECK_EQ(a.submit_errors, 0);
    BR_CHECK_EQ(a.ran, with_futures + without);
    BR_CHECK_EQ(a.results_ok, with_futures);
    struct br__blocks_stats st = stats();
    if (st.slab_blocks != 0) {
        /* at most 2 * per_round blocks are ever alive at once (a round's futures and
         * its fire-and-forget tasks), and each of the 3 threads' caches can hold up to
         * a slab's worth more */
        size_t peak = (size_t)(2 * a.per_round) / st.slab_blocks + 1 + 3;
        BR_CHECK(st.spares <= 2);
        BR_CHECK(st.mapped <= peak + st.spares);
        BR_CHECK_EQ(st.bare, 0);
        check_all_back();
    }
    /* RSS flat: what 10M blocks would take if any leaked is 1.28 GB; allow the slabs
     * mapped since the second round (a later round's backlog may peak higher, within
     * the bound above) and 16 MiB of drift for everything else (stacks, the pool's
     * rings, the C library). Not under the sanitizers, whose runtimes keep memory of
     * their own by design (ASan's quarantine of freed blocks, TSan's metadata for
     * every address used as a sync object); the slab counts above hold there too. */
#if !defined(BRAID_ASAN) && !defined(BRAID_TSAN)
    if (a.rss_after_second != 0 && a.rss_at_end != 0)
        BR_CHECK(a.rss_at_end <= a.rss_after_second + (16u << 20) +
                                      (st.mapped - a.mapped_after_second) * (2u << 20));
#endif
}

BR_TEST_MAIN(cmocka_unit_test(given_back_at_once), cmocka_unit_test(kept_in_steady_state),
             cmocka_unit_test(given_back_after_decay), cmocka_unit_test(out_of_memory),
             cmocka_unit_test(grows_ahead), cmocka_unit_test(grows_ahead_past_a_few_free_blocks),
             cmocka_unit_test(recycling_stress))
