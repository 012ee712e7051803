/* Stress (no finding so far): threads of one process that come and go (each producer
 * thread puts K tagged messages and exits; each consumer thread gets K and exits), with
 * the bias given after 2 takes, so that biases, revocations, stale notes and their
 * clearing by tgkill ESRCH (exited threads) churn. Checks every message arrives once
 * and each producer's messages in order within a consumer. Run under TSan/ASan:
 *   B=build-tsan rev/build.sh && rev/churn_threads.build-tsan [gens] */
#include "common.h"

enum { NP = 3, NC = 3, K = 300 };
static br__mpr *R;
static int G;
static _Atomic uint32_t *seen;
static _Atomic int bad;
static _Atomic long got_total;

static void *prod(void *a) {
    uintptr_t id = (uintptr_t)a; /* slot * G + gen */
    br__mpr_side s = {.r = R, .fd = -1};
    for (uint32_t i = 0; i < K; i++) {
        uint64_t v[2] = {id, i};
        if (br__mpr_put(&s, v, sizeof v, BR_FOREVER)) atomic_store(&bad, 1);
        if ((i & 63) == 0) sched_yield();
    }
    return NULL;
}
static void *cons(void *a) {
    (void)a;
    br__mpr_side s = {.r = R, .fd = -1};
    static _Thread_local int64_t last[NP * 64];
    for (int i = 0; i < NP * 64; i++) last[i] = -1;
    for (int n = 0; n < K; n++) {
        if (atomic_fetch_add(&got_total, 1) >= (long)NP * G * K) break;
        uint64_t v[2];
        size_t len;
        if (br__mpr_get(&s, v, sizeof v, NULL, &len, BR_FOREVER) || len != sizeof v ||
            v[0] >= (uint64_t)NP * G || v[1] >= K) {
            atomic_store(&bad, 2);
            break;
        }
        if ((int64_t)v[1] <= last[v[0] % (NP * 64)] && v[0] < NP * 64) atomic_store(&bad, 3);
        last[v[0] % (NP * 64)] = (int64_t)v[1];
        atomic_fetch_add(&seen[v[0] * K + v[1]], 1);
        if ((n & 63) == 0) sched_yield();
    }
    return NULL;
}
static void *pslot(void *a) {
    uintptr_t slot = (uintptr_t)a;
    for (int g = 0; g < G; g++) {
        pthread_t t;
        pthread_create(&t, NULL, prod, (void *)(slot * (uintptr_t)G + (uintptr_t)g));
        pthread_join(t, NULL);
    }
    return NULL;
}
static void *cslot(void *a) {
    (void)a;
    while (atomic_load(&got_total) < (long)NP * G * K) {
        pthread_t t;
        pthread_create(&t, NULL, cons, NULL);
        pthread_join(t, NULL);
    }
    return NULL;
}
int main(int argc, char **argv) {
    G = argc > 1 ? atoi(argv[1]) : 20;
    if (NP * G > NP * 64) G = 64;
    R = ring_new(1 << 14);
    br__mpr_debug_bias_after(R, 2);
    seen = calloc((size_t)NP * G * K, sizeof *seen);
    pthread_t ps[NP], cs[NC];
    for (uintptr_t i = 0; i < NP; i++) pthread_create(&ps[i], NULL, pslot, (void *)i);
    for (uintptr_t i = 0; i < NC; i++) pthread_create(&cs[i], NULL, cslot, NULL);
    for (int i = 0; i < NP; i++) pthread_join(ps[i], NULL);
    for (int i = 0; i < NC; i++) pthread_join(cs[i], NULL);
    long miss = 0, dup = 0;
    for (long i = 0; i < (long)NP * G * K; i++) {
        uint32_t c = atomic_load(&seen[i]);
        if (c == 0) miss++;
        if (c > 1) dup++;
    }
    dbg(R, "end");
    printf("SUMMARY churn_threads: %ld missing, %ld repeated, bad=%d\n", miss, dup, atomic_load(&bad));
    return miss || dup || atomic_load(&bad) ? 1 : 0;
}
