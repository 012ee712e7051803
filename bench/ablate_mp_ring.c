/* Ablation of the cross-process Queue's per-item costs (issue 9, N6.1p1c).
 *
 * Standalone: no braid. Starts from the native peer's SPSC ring (peers/native spsc.h:
 * 8-byte slots, 1024 of them, one published index per side, the other side's index
 * cached, busy spin with PAUSE then sched_yield) across fork(), and adds, one compile
 * flag each, what braid's ring (src/process/mp_ring.c) does per item:
 *
 *   CAPB=N     data bytes (default 8192, the peer's 1024 x 8; braid's default 256 KiB)
 *   REC16      16-byte records: an 8-byte header (len | flags | serial) + payload; the
 *              consumer decodes the header and steps by 8 + round8(len)
 *   VARCOPY    the payload copied with memcpy of a run-time length, out of line, with
 *              the wrap-around split (braid's ring_write / ring_read)
 *   NWORD      a second published word per side (nput after tail, nget after head)
 *   COMMIT     the commit notes in the side's private shared line (two stores each)
 *   FENCE      the waker's half of the sleeper protocol: a seq_cst fence and a load of
 *              the read-mostly flag line, per put and per get
 *   STATE      put's load of state and abort_serial (read-mostly line) and serial bump
 *   LOCK       a lock word CAS'd 0 -> pid and pid -> 0 per op (own line, uncontended),
 *              the pid read from a process-global
 *   LOCKST     with LOCK: given back by a plain release store before the bell's fence
 *              (a waiters flag beside it would be checked after that one fence)
 *   BIAS       the biased owner's entry instead (store inside = 1, load revoke and
 *              owner on the read-mostly line, compare, store inside = 0 release)
 *   SLEEP      braid's waiting: spin 256 PAUSEs, 2 yields, then raise the flag, fence,
 *              re-check and futex-wait; the waker (FENCE implied) exchanges and wakes
 *   CALL       put and get are out-of-line calls (noinline), as through libbraid
 *   POLLGAP=K  (not braid's) K PAUSEs between two polls of the other side's position
 *   PACK       (not braid's) one 8-byte header per 64-byte line, rewritten with the
 *              line's item count at each put, then up to 7 payloads: ~9 bytes per item
 *
 * Usage: ablate_mp_ring [N]   (default 10,000,000). The parent puts 1..N, the child
 * gets N and stores the sum; timed from "child ready" to waitpid, as n6_shm_ring.
 * Prints "METRIC items_per_s <v> items/s" and the futex sleeps/wakes counted.
 * bench/ablate_mp_ring.sh builds every variant and runs them in interleaved rounds.
 * `ablate_mp_ring N solo`: one process, 256 puts then 256 gets, no timing: for
 * instruction counts (valgrind --tool=callgrind), which the spinning of the two-process
 * run would swamp. Figures and what they say: docs/benchmarks.md, session 21 (issue 9).
 * Not built by CMake (bench/CMakeLists.txt builds bench_*.c). */
#define _GNU_SOURCE
#include <immintrin.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CAPB
#define CAPB 8192u
#endif
#if defined(SLEEP) && !defined(FENCE)
#define FENCE 1
#endif
#ifdef CALL
#define OPFN __attribute__((noinline)) static
#else
#define OPFN static inline
#endif

struct shm {
    /* producer's private line */
    _Alignas(64) _Atomic uint32_t plock;
    uint32_t p_serial;
    _Atomic uint32_t p_inside;
    uint64_t p_commit_tail, p_commit_nput;
    /* producer's published line */
    _Alignas(64) _Atomic uint64_t tail;
    _Atomic uint64_t nput;
    /* consumer's private line */
    _Alignas(64) _Atomic uint32_t glock;
    _Atomic uint32_t c_inside;
    uint64_t c_commit_head, c_commit_nget;
    /* consumer's published line */
    _Alignas(64) _Atomic uint64_t head;
    _Atomic uint64_t nget;
    /* read-mostly */
    _Alignas(64) _Atomic uint32_t data_wait, room_wait, state, abort_serial;
    _Atomic uint32_t p_revoke, c_revoke;
    _Atomic uint64_t p_owner, c_owner;
    /* futex words, bench bookkeeping */
    _Alignas(64) _Atomic uint32_t data_seq, room_seq;
    _Atomic uint64_t sleeps, wakes;
    _Alignas(64) _Atomic int ready;
    uint64_t sum;
    _Alignas(64) unsigned char data[CAPB];
};

static _Atomic int g_pid;
static uint64_t g_token;
static volatile size_t g_len = 8; /* VARCOPY: the length isn't a constant */

__attribute__((unused)) static long futex(_Atomic uint32_t *w, int op, uint32_t v) {
    return syscall(SYS_futex, (uint32_t *)w, op, v, NULL, NULL, 0);
}

/* the side's cached view of the other side's position */
typedef struct {
    struct shm *s;
    uint64_t mine, theirs, count;
} end;

#ifndef POLLGAP
#define POLLGAP 1
#endif
static inline void gap(void) {
    for (int k = 0; k < POLLGAP; k++)
        _mm_pause();
}

static inline void backoff(unsigned *spins) {
    if (++*spins < 1024)
        gap();
    else {
        *spins = 0;
        sched_yield();
    }
}

static inline void bell(struct shm *s, _Atomic uint32_t *flag, _Atomic uint32_t *seq) {
#ifdef FENCE
    atomic_thread_fence(memory_order_seq_cst);
    if (__builtin_expect(atomic_load_explicit(flag, memory_order_relaxed) == 0, 1))
        return;
#ifdef SLEEP
    if (atomic_exchange_explicit(flag, 0, memory_order_relaxed) == 0)
        return;
    atomic_fetch_add_explicit(seq, 1, memory_order_release);
    atomic_fetch_add_explicit(&s->wakes, 1, memory_order_relaxed);
    futex(seq, FUTEX_WAKE, INT_MAX);
#endif
#endif
    (void)s, (void)flag, (void)seq;
}

#ifdef SLEEP
/* spin 256, yield 2, then flag + fence + re-check + futex wait, until ok() */
#define WAIT_UNTIL(ok, flag, seq)                                                          \
    do {                                                                                   \
        int i_;                                                                            \
        for (i_ = 0; i_ < 258 && !(ok); i_++) {                                            \
            if (i_ < 256)                                                                  \
                gap();                                                                     \
            else                                                                           \
                sched_yield();                                                             \
        }                                                                                  \
        while (!(ok)) {                                                                    \
            uint32_t seen_ = atomic_load_explicit(seq, memory_order_acquire);              \
            atomic_store_explicit(flag, 1, memory_order_relaxed);                          \
            atomic_thread_fence(memory_order_seq_cst);                                     \
            if (ok) {                                                                      \
                atomic_store_explicit(flag, 0, memory_order_relaxed);                      \
                break;                                                                     \
            }                                                                              \
            atomic_fetch_add_explicit(&e->s->sleeps, 1, memory_order_relaxed);             \
            futex(seq, FUTEX_WAIT, seen_);                                                 \
        }                                                                                  \
    } while (0)
#else
#define WAIT_UNTIL(ok, flag, seq)                                                          \
    do {                                                                                   \
        unsigned sp_ = 0;                                                                  \
        while (!(ok))                                                                      \
            backoff(&sp_);                                                                 \
    } while (0)
#endif

static inline int lk_take(_Atomic uint32_t *w) {
    uint32_t me = (uint32_t)atomic_load_explicit(&g_pid, memory_order_relaxed), v = 0;
    while (!atomic_compare_exchange_strong_explicit(w, &v, me, memory_order_acquire,
                                                    memory_order_relaxed))
        v = 0, _mm_pause();
    return 0;
}
static inline void lk_give(_Atomic uint32_t *w) {
#ifdef LOCKST
    atomic_store_explicit(w, 0, memory_order_release);
    return;
#endif
    uint32_t me = (uint32_t)atomic_load_explicit(&g_pid, memory_order_relaxed), v = me;
    if (!atomic_compare_exchange_strong_explicit(w, &v, 0, memory_order_release,
                                                 memory_order_relaxed))
        abort();
}

/* the biased owner's entry and exit (branch s20-queue's fast path) */
static inline void bias_enter(_Atomic uint32_t *inside, _Atomic uint32_t *revoke,
                              _Atomic uint64_t *owner) {
    atomic_store_explicit(inside, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    if (atomic_load_explicit(revoke, memory_order_acquire) ||
        atomic_load_explicit(owner, memory_order_relaxed) != g_token)
        abort();
}
static inline void bias_exit(_Atomic uint32_t *inside) {
    atomic_store_explicit(inside, 0, memory_order_release);
}

#ifdef VARCOPY
__attribute__((noinline)) static void ring_write(struct shm *s, uint64_t pos,
                                                 const void *src, size_t n) {
    size_t off = (size_t)(pos & (CAPB - 1));
    size_t first = CAPB - off < n ? CAPB - off : n;
    memcpy(s->data + off, src, first);
    if (n > first)
        memcpy(s->data, (const unsigned char *)src + first, n - first);
}
__attribute__((noinline)) static void ring_read(struct shm *s, uint64_t pos, void *dst,
                                                size_t n) {
    size_t off = (size_t)(pos & (CAPB - 1));
    size_t first = CAPB - off < n ? CAPB - off : n;
    memcpy(dst, s->data + off, first);
    if (n > first)
        memcpy((unsigned char *)dst + first, s->data, n - first);
}
#endif

static inline uint64_t *word_at(struct shm *s, uint64_t pos) {
    return (uint64_t *)(void *)(s->data + (pos & (CAPB - 1)));
}

OPFN void put(end *e, uint64_t v) {
    struct shm *s = e->s;
#ifdef STATE
    if (atomic_load_explicit(&s->state, memory_order_relaxed))
        abort();
#endif
#ifdef LOCK
    lk_take(&s->plock);
#endif
#ifdef BIAS
    bias_enter(&s->p_inside, &s->p_revoke, &s->p_owner);
#endif
#ifdef STATE
    uint32_t ser = (s->p_serial + 1) & 0xffffff;
    s->p_serial = ser;
    if (atomic_load_explicit(&s->abort_serial, memory_order_relaxed) == ser)
        atomic_store_explicit(&s->abort_serial, ~0u, memory_order_relaxed);
#else
    uint32_t ser = 0;
#endif
#if defined(REC16) || defined(PACK)
    const uint64_t rec = 16;
#else
    const uint64_t rec = 8;
#endif
    if (CAPB - (e->mine - e->theirs) < rec) {
        e->theirs = atomic_load_explicit(&s->head, memory_order_acquire);
        WAIT_UNTIL(CAPB - (e->mine - (e->theirs = atomic_load_explicit(
                                          &s->head, memory_order_acquire))) >=
                       rec,
                   &s->room_wait, &s->room_seq);
    }
#if defined(PACK)
    (void)ser;
    if ((e->mine & 63) == 0)
        e->mine += 8;
    *word_at(s, e->mine) = v;
    *word_at(s, e->mine & ~(uint64_t)63) = (uint64_t)8 | (uint64_t)((e->mine & 63) >> 3)
                                                             << 32;
#elif defined(REC16)
    *word_at(s, e->mine) = (uint64_t)8 | (uint64_t)3 << 32 | (uint64_t)ser << 40;
#ifdef VARCOPY
    ring_write(s, e->mine + 8, &v, g_len);
#else
    *word_at(s, e->mine + 8) = v;
#endif
#else
    (void)ser;
#ifdef VARCOPY
    ring_write(s, e->mine, &v, g_len);
#else
    *word_at(s, e->mine) = v;
#endif
#endif
#ifdef PACK
    e->mine += 8;
#else
    e->mine += rec;
#endif
    e->count++;
#ifdef COMMIT
    s->p_commit_tail = e->mine;
    s->p_commit_nput = e->count;
#endif
    atomic_store_explicit(&s->tail, e->mine, memory_order_release);
#ifdef NWORD
    atomic_store_explicit(&s->nput, e->count, memory_order_release);
#endif
#if defined(LOCK) && defined(LOCKST)
    lk_give(&s->plock);
#endif
    bell(s, &s->data_wait, &s->data_seq);
#if defined(LOCK) && defined(LOCKST)
    (void)atomic_load_explicit(&s->state,
                               memory_order_relaxed); /* the lock's waiters flag */
#endif
#ifdef BIAS
    bias_exit(&s->p_inside);
#endif
#if defined(LOCK) && !defined(LOCKST)
    lk_give(&s->plock);
#endif
}

OPFN uint64_t get(end *e) {
    struct shm *s = e->s;
    uint64_t v;
#ifdef LOCK
    lk_take(&s->glock);
#endif
#ifdef BIAS
    bias_enter(&s->c_inside, &s->c_revoke, &s->c_owner);
#endif
    if (e->mine == e->theirs) {
        e->theirs = atomic_load_explicit(&s->tail, memory_order_acquire);
        WAIT_UNTIL(e->mine !=
                       (e->theirs = atomic_load_explicit(&s->tail, memory_order_acquire)),
                   &s->data_wait, &s->data_seq);
    }
#if defined(PACK)
    if ((e->mine & 63) == 0) {
        if ((uint32_t)*word_at(s, e->mine) != 8)
            abort();
        e->mine += 8;
    }
    v = *word_at(s, e->mine);
    e->mine += 8;
#elif defined(REC16)
    uint64_t h = *word_at(s, e->mine);
    size_t len = (uint32_t)h;
    if (((h >> 32) & 0xff) != 3)
        abort();
#ifdef VARCOPY
    ring_read(s, e->mine + 8, &v, len);
#else
    v = *word_at(s, e->mine + 8);
#endif
    e->mine += 8 + ((len + 7) & ~(size_t)7);
#else
#ifdef VARCOPY
    ring_read(s, e->mine, &v, g_len);
#else
    v = *word_at(s, e->mine);
#endif
    e->mine += 8;
#endif
    e->count++;
#ifdef COMMIT
    s->c_commit_head = e->mine;
    s->c_commit_nget = e->count;
#endif
    atomic_store_explicit(&s->head, e->mine, memory_order_release);
#ifdef NWORD
    atomic_store_explicit(&s->nget, e->count, memory_order_release);
#endif
#if defined(LOCK) && defined(LOCKST)
    lk_give(&s->glock);
#endif
    bell(s, &s->room_wait, &s->room_seq);
#if defined(LOCK) && defined(LOCKST)
    (void)atomic_load_explicit(&s->state,
                               memory_order_relaxed); /* the lock's waiters flag */
#endif
#ifdef BIAS
    bias_exit(&s->c_inside);
#endif
#if defined(LOCK) && !defined(LOCKST)
    lk_give(&s->glock);
#endif
    return v;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 10000000;
    struct shm *s =
        mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED)
        return 2;
    memset(s, 0, sizeof *s);
    g_token = (uint64_t)getpid() << 32 | 1;
    atomic_store(&s->p_owner, g_token);
    if (argc > 2 && !strcmp(argv[2], "solo")) { /* one process, 256 puts then 256 gets: for
                                                 * instruction counts (callgrind) */
        atomic_store(&g_pid, (int)getpid());
        atomic_store(&s->c_owner, g_token);
        end pe = {s, 0, 0, 0}, ce = {s, 0, 0, 0};
        uint64_t sum = 0;
        for (long i = 0; i < n; i += 256) {
            for (long k = 1; k <= 256; k++)
                put(&pe, (uint64_t)(i + k));
            for (long k = 0; k < 256; k++)
                sum += get(&ce);
        }
        printf("METRIC solo_sum %llu\n", (unsigned long long)sum);
        return 0;
    }
    pid_t p = fork();
    if (p < 0)
        return 2;
    if (p == 0) {
        atomic_store(&g_pid, (int)getpid());
        g_token = (uint64_t)getpid() << 32 | 1;
        atomic_store(&s->c_owner, g_token);
        end c = {s, 0, 0, 0};
        atomic_store(&s->ready, 1);
        uint64_t sum = 0;
        for (long i = 0; i < n; i++)
            sum += get(&c);
        s->sum = sum;
        _exit(0);
    }
    atomic_store(&g_pid, (int)getpid());
    while (!atomic_load(&s->ready))
        _mm_pause();
    end pr = {s, 0, 0, 0};
    uint64_t t0 = now_ns();
    for (long i = 1; i <= n; i++)
        put(&pr, (uint64_t)i);
    waitpid(p, NULL, 0);
    uint64_t t1 = now_ns();
    if (s->sum != (uint64_t)n * (uint64_t)(n + 1) / 2) {
        fprintf(stderr, "bad checksum\n");
        return 1;
    }
    printf("METRIC items_per_s %.6g items/s\n", (double)n / ((double)(t1 - t0) / 1e9));
    printf("METRIC sleeps %llu\nMETRIC wakes %llu\n",
           (unsigned long long)atomic_load(&s->sleeps),
           (unsigned long long)atomic_load(&s->wakes));
    return 0;
}
