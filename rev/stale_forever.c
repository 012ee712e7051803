/* Finding (speed only): a revoked owner that lives on but never touches the side again
 * keeps it stale, so the side is never biased again. Pattern: the main thread puts a
 * few dozen items (the producer side biases to it), then a worker thread produces the
 * stream while main waits. Compared with the same run without main's first puts.
 * Usage: stale_forever [n] */
#include "common.h"

static br__mpr *R;
static long N;
static void *worker(void *a) {
    (void)a;
    br__mpr_side s = {.r = R, .fd = -1};
    for (uint64_t i = 0; i < (uint64_t)N; i++)
        if (br__mpr_put(&s, &i, sizeof i, BR_FOREVER)) _exit(3);
    return NULL;
}
static void *consumer(void *a) {
    (void)a;
    br__mpr_side s = {.r = R, .fd = -1};
    uint64_t v; size_t len;
    for (long i = 0; i < N + (long)(intptr_t)0; i++)
        if (br__mpr_get(&s, &v, sizeof v, NULL, &len, BR_FOREVER)) _exit(4);
    return NULL;
}
static double run(int preamble) {
    R = ring_new(1 << 16);
    br__mpr_side s = {.r = R, .fd = -1};
    uint64_t v; size_t len;
    if (preamble) {
        for (uint64_t i = 0; i < 40; i++) br__mpr_put(&s, &i, sizeof i, BR_FOREVER);
        for (int i = 0; i < 40; i++) br__mpr_get(&s, &v, sizeof v, NULL, &len, BR_FOREVER);
    }
    pthread_t w, c;
    int64_t t0 = br_now();
    pthread_create(&c, NULL, consumer, NULL);
    pthread_create(&w, NULL, worker, NULL);
    pthread_join(w, NULL);
    pthread_join(c, NULL); /* main lives on meanwhile, as a waiting main thread does */
    double secs = (double)(br_now() - t0) / 1e9;
    br__mpr_debug d;
    br__mpr_debug_get(R, &d);
    printf("  %-22s nbias=%u nrevoke=%u p_bias=%u  %.2f M msgs/s\n",
           preamble ? "main put 40 first:" : "no preamble:", d.nbias, d.nrevoke, d.p_bias,
           N / secs / 1e6);
    munmap(R, br__mpr_bytes(1 << 16));
    return N / secs;
}
int main(int argc, char **argv) {
    N = argc > 1 ? atol(argv[1]) : 2000000;
    double a = 0, b = 0;
    for (int k = 0; k < 3; k++) { a += run(0); b += run(1); }
    printf("SUMMARY stale_forever: with main's preamble %.2fx the rate without\n", b / a);
    return 0;
}
