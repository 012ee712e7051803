/* bench/bench.h: what every braid benchmark shares. Timing, checks, output.
 *
 * A benchmark is real code (STYLE.md §19): it checks that the work was done right
 * before it reports anything, and a failed check exits with status 1, so a wrong
 * result never turns into a figure. Output:
 *
 *   stdout  one JSON object per figure, the peers' format plus "impl" (BENCH.md):
 *           {"workload": "W3", "variant": "submit-2", "impl": "braid",
 *            "metric": "tasks_per_s", "value": 1234567, "unit": "tasks/s"}
 *   stderr  one human-readable line per figure or phase (setup, run, teardown, cost
 *           per operation).
 *
 * scripts/bench.sh runs the programs through ../shared/tools/side-by-side, which reads
 * the JSON lines and picks a figure by "variant/metric".
 *
 *   BENCH_CHECK_OK(br_queue_put(q, x, BR_FOREVER));  exits: "... got BR_ESHUTDOWN (-3001)"
 *   BENCH_CHECK_EQ(sum, expected);                   exits printing both sides
 *   int64_t t0 = bench_now(); ...; double s = bench_secs(t0, bench_now());
 *   bench_emit("W3", "submit-2", "braid", "tasks_per_s", n / s, "tasks/s");
 *   bench_percentile(samples, n, 99.0)               nearest rank, sorts in place
 */
#ifndef BRAID_BENCH_H
#define BRAID_BENCH_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <braid.h>

/* --- checks (never compiled out; print both sides, braid statuses by name) -------- */

#define BENCH_CHECK_OK(expr)                                                               \
    do {                                                                                   \
        int bench_rc_ = (expr);                                                            \
        if (bench_rc_ != 0) {                                                              \
            fprintf(stderr, "%s:%d: %s: got %s (%d)\n", __FILE__, __LINE__, #expr,         \
                    br_err_name(bench_rc_), bench_rc_);                                    \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

#define BENCH_CHECK_EQ(a, b)                                                               \
    do {                                                                                   \
        long long bench_a_ = (long long)(a), bench_b_ = (long long)(b);                    \
        if (bench_a_ != bench_b_) {                                                        \
            fprintf(stderr, "%s:%d: %s == %s: %lld != %lld\n", __FILE__, __LINE__, #a, #b, \
                    bench_a_, bench_b_);                                                   \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

#define BENCH_CHECK(cond)                                                                  \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);       \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

/* A non-braid call (pthread_*) that returns 0 or an errno value. */
#define BENCH_CHECK_ERRNO(expr)                                                            \
    do {                                                                                   \
        int bench_rc_ = (expr);                                                            \
        if (bench_rc_ != 0) {                                                              \
            fprintf(stderr, "%s:%d: %s: error %d (%s)\n", __FILE__, __LINE__, #expr,       \
                    bench_rc_, strerror(bench_rc_));                                       \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

/* --- time ---------------------------------------------------------------------- */

/* The monotonic clock in ns (br_now: CLOCK_MONOTONIC, like the peers' clock_gettime). */
static inline int64_t bench_now(void) {
    return br_now();
}
static inline double bench_secs(int64_t t0, int64_t t1) {
    return (double)(t1 - t0) / 1e9;
}

/* --- output -------------------------------------------------------------------- */

/* One figure as one JSON line on stdout. Names are plain identifiers (no escaping). */
static inline void bench_emit(const char *workload, const char *variant, const char *impl,
                              const char *metric, double value, const char *unit) {
    printf("{\"workload\": \"%s\", \"variant\": \"%s\", \"impl\": \"%s\", "
           "\"metric\": \"%s\", \"value\": %.6g, \"unit\": \"%s\"}\n",
           workload, variant, impl, metric, value, unit);
    fflush(stdout);
}

/* One human-readable line on stderr. */
static inline void bench_note(const char *fmt, ...) BR_PRINTF(1, 2);
static inline void bench_note(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* --- statistics ------------------------------------------------------------------ */

static inline int bench_cmp_i64_(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static inline void bench_sort_i64(int64_t *v, size_t n) {
    qsort(v, n, sizeof *v, bench_cmp_i64_);
}

/* Nearest-rank percentile (p in (0, 100]) of n > 0 samples: the smallest sample with
 * at least p % of the samples at or below it (rank = ceil(p/100 * n)). Sorts v. The
 * same rule as the peers (native bench.h, Python bench_common.percentile). */
static inline int64_t bench_percentile(int64_t *v, size_t n, double p) {
    bench_sort_i64(v, n);
    double r = p / 100.0 * (double)n;
    size_t rank = (size_t)r;
    if ((double)rank < r)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

/* The median as Python's statistics.median computes it (the mean of the two middle
 * samples when n is even). Sorts v. */
static inline double bench_median(int64_t *v, size_t n) {
    bench_sort_i64(v, n);
    if (n % 2)
        return (double)v[n / 2];
    return ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2.0;
}

/* --- arguments -------------------------------------------------------------------- */

/* argv[i] as a positive count, or dflt if absent; exits on garbage. */
static inline long bench_arg_count(int argc, char **argv, int i, long dflt) {
    if (argc <= i)
        return dflt;
    char *end = NULL;
    long v = strtol(argv[i], &end, 10);
    if (!end || *end || v <= 0) {
        fprintf(stderr, "%s: bad count '%s'\n", argv[0], argv[i]);
        exit(2);
    }
    return v;
}

/* Human-readable rate: "3.52 M", "41.4 k". Returns buf. */
static inline const char *bench_si(double v, char *buf, size_t len) {
    if (v >= 1e9)
        snprintf(buf, len, "%.3g G", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, len, "%.3g M", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, len, "%.3g k", v / 1e3);
    else
        snprintf(buf, len, "%.3g ", v);
    return buf;
}

#endif
