/* The cross-process Queue, JoinableQueue and SimpleQueue (braid/mp_queue.h): many
 * producer and consumer processes with every message tagged and checked (nothing lost,
 * nothing duplicated, per-producer order), messages of every size byte-exact, bounds,
 * task_done/join, close and shutdown, deaths mid-operation, and no leaked descriptors
 * or children after each test.
 *
 * braid-test-timeout: 120
 */
#include "harness.h"

#include <braid/mp_queue.h>

#include "process/mp_ring.h"

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* --- helpers ------------------------------------------------------------------- */

static void *shared_alloc(size_t n) {
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    BR_CHECK(p != MAP_FAILED);
    return p;
}

/* A tagged message: (producer, seq) and a payload whose length and bytes follow from
 * them, so a consumer can check every byte. */
typedef struct tag {
    uint32_t producer, seq;
} tag;

/* Every 97th message (producer 0's: every 7th) is larger than half of the tests' 16 KiB
 * ring, so it streams in fragments while other producers wait for their lock. Producer 0
 * is producer_killed_among_producers' victim, which must be caught mid-message before
 * its last put: with one message in 97 streaming, a loaded machine's stops missed that
 * window in 1 run of 3 to 40. */
enum { TAGGED_MAX = 12000 };
static size_t tagged_len(uint32_t p, uint32_t s) {
    bool big = p == 0 ? s % 7u == 3u : s % 97u == 13u;
    return sizeof(tag) + (big ? 9000u + p : (s * 7u + p * 13u) % 200u);
}

static unsigned char tagged_byte(uint32_t p, uint32_t s, size_t i) {
    return (unsigned char)(p * 31u + s + i * 7u);
}

static size_t tagged_make(unsigned char *buf, uint32_t p, uint32_t s) {
    tag t = {p, s};
    memcpy(buf, &t, sizeof t);
    size_t n = tagged_len(p, s);
    for (size_t i = sizeof t; i < n; i++)
        buf[i] = tagged_byte(p, s, i);
    return n;
}

/* 0 if buf[0..n) is a well-formed tagged message (its tag in *t). */
static int tagged_check(const unsigned char *buf, size_t n, uint32_t np, tag *t) {
    if (n < sizeof *t)
        return 1;
    memcpy(t, buf, sizeof *t);
    if (t->producer >= np || n != tagged_len(t->producer, t->seq))
        return 2;
    for (size_t i = sizeof *t; i < n; i++)
        if (buf[i] != tagged_byte(t->producer, t->seq, i))
            return 3;
    return 0;
}

static unsigned char pattern(size_t size, size_t i) { return (unsigned char)(i * 131u + size + (i >> 12)); }

static void fill(unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        p[i] = pattern(n, i);
}

static bool check_fill(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != pattern(n, i))
            return false;
    return true;
}

static void wait_debug(br__mpr *r, bool (*cond)(const br__mpr_debug *, const void *),
                       const void *arg) {
    int64_t guard = br_test_hang_guard();
    br__mpr_debug d;
    for (;;) {
        br__mpr_debug_get(r, &d);
        if (cond(&d, arg))
            return;
        if (br_now() > guard)
            fail_msg("the ring never reached the state waited for (plock %u glock %u "
                     "data_wait %u room_wait %u p_stream %u tail %llu head %llu)",
                     d.plock, d.glock, d.data_wait, d.room_wait, d.p_stream,
                     (unsigned long long)d.tail, (unsigned long long)d.head);
        usleep(200);
    }
}

/* --- many producers, many consumers ---------------------------------------------- */

/* P producer processes put M tagged messages each; C consumer processes get until an
 * empty message; each consumer checks per-producer order (a consumer sees one
 * producer's messages in the order they were put) and counts what it got in shared
 * memory; the parent checks every (producer, seq) arrived exactly once. */
static void mpmc(int np, int nc, long m, size_t maxsize) {
    int fds = br_test_count_fds();
    br_mp_queue *q;
    BR_CHECK_OK(br_mp_queue_new(&q, &(br_mp_queue_opts){.maxsize = maxsize, .ring_bytes = 16384}));
    _Atomic uint32_t *seen = shared_alloc(sizeof *seen * (size_t)np * (size_t)m);
    pid_t pids[16];
    for (int k = 0; k < np + nc; k++) {
        pids[k] = fork();
        BR_CHECK(pids[k] >= 0);
        if (pids[k] != 0)
            continue;
        static unsigned char buf[TAGGED_MAX];
        if (k < np) {
            for (uint32_t s = 0; s < (uint32_t)m; s++) {
                size_t n = tagged_make(buf, (uint32_t)k, s);
                if (br_mp_queue_put(q, buf, n, BR_FOREVER) != 0)
                    _exit(10);
            }
            _exit(0);
        }
        long last[16];
        for (int p = 0; p < np; p++)
            last[p] = -1;
        for (;;) {
            size_t n;
            if (br_mp_queue_get_into(q, buf, sizeof buf, &n, BR_FOREVER) != 0)
                _exit(11);
            if (n == 0)
                break;
            tag t;
            if (tagged_check(buf, n, (uint32_t)np, &t) != 0 || t.seq >= (uint32_t)m)
                _exit(12);
            if ((long)t.seq <= last[t.producer])
                _exit(13); /* out of order for one producer */
            last[t.producer] = t.seq;
            atomic_fetch_add(&seen[(size_t)t.producer * (size_t)m + t.seq], 1);
        }
        _exit(0);
    }
    for (int k = 0; k < np; k++)
        BR_CHECK_CHILD_OK(br_test_wait_child(pids[k]));
    for (int k = 0; k < nc; k++)
        BR_CHECK_OK(br_mp_queue_put(q, NULL, 0, br_test_hang_guard()));
    for (int k = np; k < np + nc; k++)
        BR_CHECK_CHILD_OK(br_test_wait_child(pids[k]));
    for (long i = 0; i < np * m; i++)
        if (atomic_load(&seen[i]) != 1)
            fail_msg("producer %ld seq %ld arrived %u times", i / m, i % m,
                     (unsigned)atomic_load(&seen[i]));
    BR_CHECK_EQ(br_mp_queue_qsize(q), 0);
    BR_CHECK_EQ(br_mp_queue_lost(q), 0);
    munmap(seen, sizeof *seen * (size_t)np * (size_t)m);
    BR_CHECK_OK(br_mp_queue_free(q));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

static void mpmc_3x2(void **state) {
    (void)state;
    mpmc(3, 2, br_test_scaled(20000, 500), 0);
}

static void mpmc_4x4(void **state) {
    (void)state;
    mpmc(4, 4, br_test_scaled(20000, 500), 0);
}

static void mpmc_4x4_bounded(void **state) {
    (void)state;
    mpmc(4, 4, br_test_scaled(10000, 500), 7);
}

static void mpmc_3x1_order(void **state) {
    (void)state;
    mpmc(3, 1, br_test_scaled(20000, 500), 0); /* one consumer: per-producer FIFO */
}

/* --- sizes ---------------------------------------------------------------------- */

enum { SMALL_RING = 4096 };

/* Every size through a consumer process that checks the bytes, then back through
 * get_into with an exact buffer. */
static void sizes_byte_exact(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    const size_t sizes[] = {0, 1, 7, 8, 9, SMALL_RING / 2 - 9, SMALL_RING / 2 - 8,
                            SMALL_RING / 2 - 7, SMALL_RING - 1, SMALL_RING, SMALL_RING + 1,
                            1 << 20, 16 << 20};
    const size_t n = sizeof sizes / sizeof sizes[0];
    br_mp_queue *q, *back;
    BR_CHECK_OK(br_mp_queue_new(&q, &(br_mp_queue_opts){.ring_bytes = SMALL_RING}));
    BR_CHECK_OK(br_mp_queue_new(&back, &(br_mp_queue_opts){.ring_bytes = 65536}));
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        for (size_t i = 0; i < n; i++) {
            void *data;
            size_t len;
            if (br_mp_queue_get(q, &data, &len, BR_FOREVER) != 0)
                _exit(20);
            if (len != sizes[i] || (len == 0) != (data == NULL) || !check_fill(data, len))
                _exit(21);
            /* echo it back, whole */
            if (br_mp_queue_put(back, data, len, BR_FOREVER) != 0)
                _exit(22);
            free(data);
        }
        _exit(0);
    }
    unsigned char *buf = malloc(16 << 20), *in = malloc(16 << 20);
    BR_CHECK(buf && in);
    for (size_t i = 0; i < n; i++) {
        fill(buf, sizes[i]);
        BR_CHECK_OK(br_mp_queue_put(q, buf, sizes[i], br_test_hang_guard()));
        size_t len = 0;
        memset(in, 0xee, sizes[i] + (sizes[i] < (16 << 20)));
        BR_CHECK_OK(br_mp_queue_get_into(back, in, sizes[i], &len, br_test_hang_guard()));
        BR_CHECK_EQ(len, sizes[i]);
        BR_CHECK_EQ(br_test_checksum(in, len), br_test_checksum(buf, sizes[i]));
        BR_CHECK(check_fill(in, len));
    }
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    free(buf);
    free(in);
    BR_CHECK_OK(br_mp_queue_free(q));
    BR_CHECK_OK(br_mp_queue_free(back));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* Small messages (0..17 bytes: those up to 16 are copied inline, two overlapping
 * fixed-size copies) at every 8-aligned place of a 4 KiB ring, so that some payloads
 * wrap around its end: each arrives byte-exact, and get_into writes no byte of the
 * caller's buffer past the message. The payload starts with the message's number, so
 * a record read twice or skipped shows too. */
static void small_sizes_across_the_wrap(void **state) {
    (void)state;
    br_mp_queue *q;
    BR_CHECK_OK(br_mp_queue_new(&q, &(br_mp_queue_opts){.ring_bytes = SMALL_RING}));
    unsigned char src[32], in[32];
    for (unsigned i = 0; i < 6000; i++) {
        size_t n = i % 18;
        fill(src, n);
        if (n >= 2)
            memcpy(src, &(uint16_t){(uint16_t)i}, 2);
        BR_CHECK_OK(br_mp_queue_put(q, src, n, br_test_hang_guard()));
        size_t len = 99;
        if (i % 3 == 2) { /* the allocating get */
            void *data;
            BR_CHECK_OK(br_mp_queue_get(q, &data, &len, br_test_hang_guard()));
            BR_CHECK_EQ(len, n);
            BR_CHECK((n == 0) == (data == NULL));
            BR_CHECK(n == 0 || memcmp(data, src, n) == 0);
            free(data);
            continue;
        }
        memset(in, 0xee, sizeof in);
        BR_CHECK_OK(br_mp_queue_get_into(q, in, sizeof in, &len, br_test_hang_guard()));
        BR_CHECK_EQ(len, n);
        BR_CHECK(memcmp(in, src, n) == 0);
        for (size_t k = n; k < sizeof in; k++)
            BR_CHECK_EQ(in[k], 0xee);
    }
    BR_CHECK_EQ(br_mp_queue_qsize(q), 0);
    BR_CHECK_OK(br_mp_queue_free(q));
}

/* get_into with a buffer too small loses nothing: BR_ERANGE and the length, for a
 * whole message and for a streamed one. */
static void get_into_too_small(void **state) {
    (void)state;
    br_mp_queue *q;
    BR_CHECK_OK(br_mp_queue_new(&q, &(br_mp_queue_opts){.ring_bytes = SMALL_RING}));
    unsigned char msg[100], out[100];
    fill(msg, sizeof msg);
    BR_CHECK_OK(br_mp_queue_put(q, msg, sizeof msg, BR_NOWAIT));
    size_t len = 0;
    BR_CHECK_ERR(br_mp_queue_get_into(q, out, 99, &len, BR_NOWAIT), BR_ERANGE);
    BR_CHECK_EQ(len, 100);
    BR_CHECK_ERR(br_mp_queue_get_into(q, NULL, 0, &len, BR_NOWAIT), BR_ERANGE);
    BR_CHECK_EQ(len, 100);
    BR_CHECK_EQ(br_mp_queue_qsize(q), 1);
    BR_CHECK_OK(br_mp_queue_get_into(q, out, sizeof out, &len, BR_NOWAIT));
    BR_CHECK_EQ(len, 100);
    BR_CHECK(check_fill(out, len));

    /* streamed (larger than half the ring): the producer is a child */
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        unsigned char *big = malloc(50000);
        fill(big, 50000);
        _exit(br_mp_queue_put(q, big, 50000, BR_FOREVER) == 0 ? 0 : 30);
    }
    unsigned char *big = malloc(50000);
    BR_CHECK_ERR(br_mp_queue_get_into(q, big, 49999, &len, br_test_hang_guard()), BR_ERANGE);
    BR_CHECK_EQ(len, 50000);
    BR_CHECK_OK(br_mp_queue_get_into(q, big, 50000, &len, br_test_hang_guard()));
    BR_CHECK_EQ(len, 50000);
    BR_CHECK(check_fill(big, len));
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    free(big);
    BR_CHECK_OK(br_mp_queue_free(q));
}

/* --- bounds and deadlines -------------------------------------------------------- */

static bool producer_sleeps(const br__mpr_debug *d, const void *pid) {
    return d->plock == (uint32_t)*(const pid_t *)pid && d->room_wait;
}

static void bounded_blocks_at_maxsize(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_mp_queue *q;
    BR_CHECK_OK(br_mp_queue_new(&q, &(br_mp_queue_opts){.maxsize = 3}));
    BR_CHECK_EQ(br_mp_queue_maxsize(q), 3);
    for (uint32_t i = 0; i < 3; i++)
        BR_CHECK_OK(br_mp_queue_put(q, &i, sizeof i, BR_NOWAIT));
    BR_CHECK(br_mp_queue_full(q));
    BR_CHECK_EQ(br_mp_queue_qsize(q), 3);
    uint32_t x = 3;
    BR_CHECK_ERR(br_mp_queue_put(q, &x, sizeof x, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_mp_queue_put(q, &x, sizeof x, br_deadline_after(5 * BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK_EQ(br_mp_queue_qsize(q), 3);
    /* a child blocks on the full queue until the parent takes one */
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0)
        _exit(br_mp_queue_put(q, &x, sizeof x, BR_FOREVER) == 0 ? 0 : 40);
    /* wait until the child sleeps for room, holding the producers' lock */
    wait_debug(br__mp_queue_ring(q), producer_sleeps, &pid);
    BR_CHECK_EQ(br_mp_queue_qsize(q), 3);
    for (uint32_t i = 0; i < 4; i++) {
        uint32_t v;
        size_t len;
        BR_CHECK_OK(br_mp_queue_get_into(q, &v, sizeof v, &len, br_test_hang_guard()));
        BR_CHECK_EQ(len, sizeof v);
        BR_CHECK_EQ(v, i);
    }
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    BR_CHECK(br_mp_queue_empty(q));
    uint32_t v;
    size_t len;
    BR_CHECK_ERR(br_mp_queue_get_into(q, &v, sizeof v, &len, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_mp_queue_get_into(q, &v, sizeof v, &len, br_deadline_after(5 * BR_MSEC)),
                 BR_ETIMEDOUT);
    BR_CHECK_OK(br_mp_queue_free(q));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

static void bad_input(void **state) {
    (void)state;
    br_mp_queue *q;
    BR_CHECK_ERR(br_mp_queue_new(NULL, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_mp_queue_new(&q, &(br_mp_queue_opts){.kind = BR_MP_SIMPLE, .maxsize = 2}),
                 BR_EINVAL);
    BR_CHECK_ERR(br_mp_queue_new(&q, &(br_mp_queue_opts){.kind = (br_mp_queue_kind)7}), BR_EINVAL);
    BR_CHECK_ERR(br_mp_queue_new(&q, &(br_mp_queue_opts){.ring_bytes = (size_t)1 << 40}), BR_EINVAL);
    BR_CHECK_ERR(br_mp_queue_put(NULL, "x", 1, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_OK(br_mp_queue_new(&q, NULL));
    BR_CHECK_ERR(br_mp_queue_put(q, NULL, 1, BR_NOWAIT), BR_EINVAL);
    void *d;
    size_t len;
    BR_CHECK_ERR(br_mp_queue_get(q, NULL, &len, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_mp_queue_get(q, &d, NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_mp_queue_get_into(q, NULL, 5, &len, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_mp_queue_task_done(q), BR_ENOTSUP);
    BR_CHECK_ERR(br_mp_queue_join(q, BR_NOWAIT), BR_ENOTSUP);
    br_mp_queue *q2;
    BR_CHECK_ERR(br_mp_queue_attach(&q2, -1), BR_EINVAL);
    BR_CHECK_ERR(br_mp_queue_attach(&q2, 0), BR_EINVAL); /* not a queue */
    BR_CHECK_ERR(br_mp_queue_free(NULL), BR_EINVAL);
    BR_CHECK_OK(br_mp_queue_free(q));
    BR_CHECK_EQ(br_mp_queue_fd(NULL), -1);
    BR_CHECK_EQ(br_mp_queue_qsize(NULL), 0);
}

/* --- JoinableQueue ---------------------------------------------------------------- */

static void joinable_across_processes(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_mp_queue *q;
    BR_CHECK_OK(br_mp_queue_new(&q, &(br_mp_queue_opts){.kind = BR_MP_JOINABLE}));
    long n = br_test_scaled(2000, 100);
    _Atomic long *done = shared_alloc(sizeof *done);
    BR_CHECK_OK(br_mp_queue_join(q, BR_NOWAIT)); /* nothing put yet */
    pid_t pids[2];
    for (int k = 0; k < 2; k++) {
        pids[k] = fork();
        BR_CHECK(pids[k] >= 0);
        if (pids[k] == 0) {
            for (;;) {
                uint64_t v;
                size_t len;
                if (br_mp_queue_get_into(q, &v, sizeof v, &len, BR_FOREVER) != 0)
                    _exit(50);
                if (len == 0) {
                    _exit(br_mp_queue_task_done(q) == 0 ? 0 : 51);
                }
                atomic_fetch_add(done, 1);
                if (br_mp_queue_task_done(q) != 0)
                    _exit(52);
            }
        }
    }
    for (uint64_t i = 0; i < (uint64_t)n; i++)
        BR_CHECK_OK(br_mp_queue_put(q, &i, sizeof i, br_test_hang_guard()));
    BR_CHECK_OK(br_mp_queue_join(q, br_test_hang_guard()));
    /* every message was processed before join returned */
    BR_CHECK_EQ(atomic_load(done), n);
    for (int k = 0; k < 2; k++)
        BR_CHECK_OK(br_mp_queue_put(q, NULL, 0, br_test_hang_guard()));
    for (int k = 0; k < 2; k++)
        BR_CHECK_CHILD_OK(br_test_wait_child(pids[k]));
    BR_CHECK_OK(br_mp_queue_join(q, BR_NOWAIT));
    BR_CHECK_ERR(br_mp_queue_task_done(q), BR_EOVERFLOW); /* once too many */
    /* a message got but not done holds join back */
    BR_CHECK_OK(br_mp_queue_put(q, "x", 1, BR_NOWAIT));
    BR_CHECK_ERR(br_mp_queue_join(q, BR_NOWAIT), BR_ETIMEDOUT);
    char c;
    size_t len;
    BR_CHECK_OK(br_mp_queue_get_into(q, &c, 1, &len, BR_NOWAIT));
    BR_CHECK_ERR(br_mp_queue_join(q, br_deadline_after(2 * BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK_OK(br_mp_queue_task_done(q));
    BR_CHECK_OK(br_mp_queue_join(q, BR_NOWAIT));
    BR_CHECK_ERR(br_mp_queue_task_done(q), BR_EOVERFLOW);
    munmap(done, sizeof *done);
    BR_CHECK_OK(br_mp_queue_free(q));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

static void simple_queue(void **state) {
    (void)state;
    br_mp_queue *q;
    BR_CHECK_OK(br_mp_queue_new(&q, &(br_mp_queue_opts){.kind = BR_MP_SIMPLE}));
    BR_CHECK_EQ(br_mp_queue_maxsize(q), 0);
    BR_CHECK_OK(br_mp_queue_put(q, "ab", 2, BR_NOWAIT));
    BR_CHECK(!br_mp_queue_empty(q));
    BR_CHECK(!br_mp_queue_full(q));
    char buf[4];
    size_t len;
    BR_CHECK_OK(br_mp_queue_get_into(q, buf, sizeof buf, &len, BR_NOWAIT));
    BR_CHECK_EQ(len, 2);
    BR_CHECK_EQ(memcmp(buf, "ab", 2), 0);
    BR_CHECK_ERR(br_mp_queue_task_done(q), BR_ENOTSUP);
    BR_CHECK_ERR(br_mp_queue_join(q, BR_NOWAIT), BR_ENOTSUP);
    BR_CHECK_OK(br_mp_queue_free(q));
}

/* --- close, shutdown ---------------------------------------------------------------- */

static void close_is_per_handle(void **state) {
    (void)state;
    br_mp_queue *q;
    BR_CHECK_OK(br_mp_queue_new(&q, NULL));
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        /* the child's handle closed; the parent's still works */
        if (br_mp_queue_close(q) != 0 || br_mp_queue_put(q, "c", 1, BR_NOWAIT) != BR_ESTATE)
            _exit(60);
        size_t len;
        char c;
        if (br_mp_queue_get_into(q, &c, 1, &len, BR_NOWAIT) != BR_ESTATE)
            _exit(61);
        br_mp_queue_free(q);
        _exit(0);
    }
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    BR_CHECK_OK(br_mp_queue_put(q, "p", 1, BR_NOWAIT));
    char c;
    size_t len;
    BR_CHECK_OK(br_mp_queue_get_into(q, &c, 1, &len, BR_NOWAIT));
    BR_CHECK_EQ(c, 'p');
    BR_CHECK_OK(br_mp_queue_free(q));
}

static void shutdown_drains_then_refuses(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_mp_queue *q;
    BR_CHECK_OK(br_mp_queue_new(&q, NULL));
    /* a getter blocked on the empty queue in another process wakes with BR_ESHUTDOWN
     * once the two messages are gone */
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        br_mp_queue *q2 = q;
        char c;
        size_t len;
        int got = 0, rc;
        while ((rc = br_mp_queue_get_into(q2, &c, 1, &len, BR_FOREVER)) == 0)
            got++;
        _exit(rc == BR_ESHUTDOWN && got == 2 ? 0 : 70);
    }
    BR_CHECK_OK(br_mp_queue_put(q, "a", 1, BR_NOWAIT));
    BR_CHECK_OK(br_mp_queue_put(q, "b", 1, BR_NOWAIT));
    BR_CHECK(!br_mp_queue_is_shutdown(q));
    /* wait until the child took both and sleeps for more */
    while (!br_mp_queue_empty(q))
        usleep(100);
    BR_CHECK_OK(br_mp_queue_shutdown(q, false));
    BR_CHECK(br_mp_queue_is_shutdown(q));
    BR_CHECK_ERR(br_mp_queue_put(q, "c", 1, BR_NOWAIT), BR_ESHUTDOWN);
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    char c;
    size_t len;
    BR_CHECK_ERR(br_mp_queue_get_into(q, &c, 1, &len, BR_FOREVER), BR_ESHUTDOWN);
    BR_CHECK_OK(br_mp_queue_free(q));

    /* draining shutdown with messages queued: get takes them, then BR_ESHUTDOWN */
    BR_CHECK_OK(br_mp_queue_new(&q, NULL));
    BR_CHECK_OK(br_mp_queue_put(q, "x", 1, BR_NOWAIT));
    BR_CHECK_OK(br_mp_queue_shutdown(q, false));
    BR_CHECK_OK(br_mp_queue_get_into(q, &c, 1, &len, BR_NOWAIT));
    BR_CHECK_EQ(c, 'x');
    BR_CHECK_ERR(br_mp_queue_get_into(q, &c, 1, &len, BR_NOWAIT), BR_ESHUTDOWN);
    BR_CHECK_OK(br_mp_queue_free(q));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

static void shutdown_immediate_counts_as_done(void **state) {
    (void)state;
    br_mp_queue *q;
    BR_CHECK_OK(br_mp_queue_new(&q, &(br_mp_queue_opts){.kind = BR_MP_JOINABLE, .maxsize = 2}));
    BR_CHECK_OK(br_mp_queue_put(q, "a", 1, BR_NOWAIT));
    BR_CHECK_OK(br_mp_queue_put(q, "b", 1, BR_NOWAIT));
    /* a putter blocked on the full queue, and a joiner, in other processes */
    pid_t putter = fork();
    BR_CHECK(putter >= 0);
    if (putter == 0)
        _exit(br_mp_queue_put(q, "c", 1, BR_FOREVER) == BR_ESHUTDOWN ? 0 : 80);
    pid_t joiner = fork();
    BR_CHECK(joiner >= 0);
    if (joiner == 0)
        _exit(br_mp_queue_join(q, BR_FOREVER) == 0 ? 0 : 81);
    BR_CHECK_OK(br_mp_queue_shutdown(q, true));
    BR_CHECK_CHILD_OK(br_test_wait_child(putter));
    BR_CHECK_CHILD_OK(br_test_wait_child(joiner));
    char c;
    size_t len;
    BR_CHECK_ERR(br_mp_queue_get_into(q, &c, 1, &len, BR_NOWAIT), BR_ESHUTDOWN);
    BR_CHECK_EQ(br_mp_queue_qsize(q), 0);
    BR_CHECK_OK(br_mp_queue_join(q, BR_NOWAIT));
    BR_CHECK_OK(br_mp_queue_shutdown(q, true)); /* again: harmless */
    BR_CHECK_OK(br_mp_queue_free(q));
}

/* --- attach by descriptor (what a spawned child does) ----------------------------- */

static void attach_by_fd(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_mp_queue *q, *q2;
    BR_CHECK_OK(br_mp_queue_new(&q, &(br_mp_queue_opts){.kind = BR_MP_JOINABLE, .maxsize = 5}));
    BR_CHECK(br_mp_queue_fd(q) >= 0);
    BR_CHECK_OK(br_mp_queue_attach(&q2, br_mp_queue_fd(q)));
    BR_CHECK_EQ(br_mp_queue_maxsize(q2), 5);
    BR_CHECK_OK(br_mp_queue_put(q, "hi", 2, BR_NOWAIT));
    BR_CHECK_OK(br_mp_queue_free(q)); /* the memory lives on through q2 */
    char buf[2];
    size_t len;
    BR_CHECK_OK(br_mp_queue_get_into(q2, buf, 2, &len, BR_NOWAIT));
    BR_CHECK_EQ(memcmp(buf, "hi", 2), 0);
    BR_CHECK_OK(br_mp_queue_task_done(q2)); /* the kind came along */
    BR_CHECK_OK(br_mp_queue_free(q2));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* --- deaths ------------------------------------------------------------------------- */

static bool consumer_sleeps(const br__mpr_debug *d, const void *pid) {
    return d->glock == (uint32_t)*(const pid_t *)pid && d->data_wait;
}

/* A consumer killed while it sleeps in get, holding the consumers' lock: the next
 * consumer takes the lock over and gets the message. */
static void consumer_killed_in_get(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_mp_queue *q;
    BR_CHECK_OK(br_mp_queue_new(&q, NULL));
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        char c;
        size_t len;
        br_mp_queue_get_into(q, &c, 1, &len, BR_FOREVER);
        _exit(90); /* never reached: nothing is put before the kill */
    }
    wait_debug(br__mp_queue_ring(q), consumer_sleeps, &pid);
    BR_CHECK_EQ(kill(pid, SIGKILL), 0);
    int st = br_test_wait_child(pid);
    BR_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    BR_CHECK_OK(br_mp_queue_put(q, "m", 1, br_test_hang_guard()));
    char c = 0;
    size_t len;
    BR_CHECK_OK(br_mp_queue_get_into(q, &c, 1, &len, br_test_hang_guard()));
    BR_CHECK_EQ(c, 'm');
    BR_CHECK_EQ(br_mp_queue_lost(q), 0);
    BR_CHECK_OK(br_mp_queue_free(q));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

static bool producer_streams_blocked(const br__mpr_debug *d, const void *pid) {
    return d->plock == (uint32_t)*(const pid_t *)pid && d->p_stream && d->room_wait;
}

/* A producer killed in the middle of streaming a large message: the next producer
 * takes its lock over and withdraws the half-sent message; a consumer gets only
 * whole messages. */
static void producer_killed_mid_message(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_mp_queue *q;
    BR_CHECK_OK(br_mp_queue_new(&q, &(br_mp_queue_opts){.ring_bytes = SMALL_RING}));
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        unsigned char *big = malloc(1 << 20);
        fill(big, 1 << 20);
        br_mp_queue_put(q, big, 1 << 20, BR_FOREVER); /* blocks: nobody gets */
        _exit(91);
    }
    wait_debug(br__mp_queue_ring(q), producer_streams_blocked, &pid);
    BR_CHECK_EQ(kill(pid, SIGKILL), 0);
    int st = br_test_wait_child(pid);
    BR_CHECK(WIFSIGNALED(st));
    BR_CHECK_OK(br_mp_queue_put(q, "after", 5, br_test_hang_guard()));
    char buf[8];
    size_t len;
    BR_CHECK_OK(br_mp_queue_get_into(q, buf, sizeof buf, &len, br_test_hang_guard()));
    BR_CHECK_EQ(len, 5);
    BR_CHECK_EQ(memcmp(buf, "after", 5), 0);
    BR_CHECK_ERR(br_mp_queue_get_into(q, buf, sizeof buf, &len, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_EQ(br_mp_queue_qsize(q), 0);
    BR_CHECK_OK(br_mp_queue_free(q));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

static bool consumer_mid_message(const br__mpr_debug *d, const void *pid) {
    return d->glock == (uint32_t)*(const pid_t *)pid && d->head > 0;
}

/* A consumer receiving a streamed message waits for its producer past its deadline
 * while the producer lives, and gives the message up when the producer dies: its get
 * then returns the next whole message. */
static void consumer_outlives_streaming_producer(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_mp_queue *q;
    BR_CHECK_OK(br_mp_queue_new(&q, &(br_mp_queue_opts){.ring_bytes = SMALL_RING}));
    pid_t prod = fork();
    BR_CHECK(prod >= 0);
    if (prod == 0) {
        unsigned char *big = malloc(1 << 20);
        fill(big, 1 << 20);
        br_mp_queue_put(q, big, 1 << 20, BR_FOREVER);
        _exit(92);
    }
    /* freeze the producer mid-message, holding its lock */
    for (;;) {
        wait_debug(br__mp_queue_ring(q), producer_streams_blocked, &prod);
        BR_CHECK_EQ(kill(prod, SIGSTOP), 0);
        int st;
        BR_CHECK_EQ(waitpid(prod, &st, WUNTRACED), prod);
        BR_CHECK(WIFSTOPPED(st));
        br__mpr_debug d;
        br__mpr_debug_get(br__mp_queue_ring(q), &d);
        if (d.plock == (uint32_t)prod && d.p_stream)
            break;
        BR_CHECK_EQ(kill(prod, SIGCONT), 0); /* it had just finished: can't be */
    }
    pid_t cons = fork();
    BR_CHECK(cons >= 0);
    if (cons == 0) {
        void *m;
        size_t len;
        int rc = br_mp_queue_get(q, &m, &len, BR_FOREVER);
        _exit(rc == 0 && len == 5 && memcmp(m, "after", 5) == 0 ? 0 : 93);
    }
    /* wait until the consumer got the first fragments and sleeps for more */
    wait_debug(br__mp_queue_ring(q), consumer_mid_message, &cons);
    wait_debug(br__mp_queue_ring(q), consumer_sleeps, &cons);
    BR_CHECK_EQ(kill(prod, SIGKILL), 0);
    int st = br_test_wait_child(prod);
    BR_CHECK(WIFSIGNALED(st));
    BR_CHECK_OK(br_mp_queue_put(q, "after", 5, br_test_hang_guard()));
    BR_CHECK_CHILD_OK(br_test_wait_child(cons));
    BR_CHECK_EQ(br_mp_queue_qsize(q), 0);
    BR_CHECK_OK(br_mp_queue_free(q));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* A consumer killed mid-message: the next consumer drops the rest of that message
 * and counts it lost; the producer's put completes; the next message arrives whole. */
static void consumer_killed_mid_message(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_mp_queue *q;
    BR_CHECK_OK(br_mp_queue_new(&q, &(br_mp_queue_opts){.ring_bytes = SMALL_RING}));
    pid_t prod = fork();
    BR_CHECK(prod >= 0);
    if (prod == 0) {
        unsigned char *big = malloc(1 << 20);
        fill(big, 1 << 20);
        if (br_mp_queue_put(q, big, 1 << 20, BR_FOREVER) != 0)
            _exit(94);
        _exit(br_mp_queue_put(q, "next", 4, BR_FOREVER) == 0 ? 0 : 95);
    }
    /* freeze the producer mid-message (blocked on the full ring, holding its lock) */
    wait_debug(br__mp_queue_ring(q), producer_streams_blocked, &prod);
    BR_CHECK_EQ(kill(prod, SIGSTOP), 0);
    int st;
    BR_CHECK_EQ(waitpid(prod, &st, WUNTRACED), prod);
    BR_CHECK(WIFSTOPPED(st));
    /* a consumer takes what is there and sleeps for the rest: kill it then */
    pid_t cons = fork();
    BR_CHECK(cons >= 0);
    if (cons == 0) {
        void *d;
        size_t len;
        br_mp_queue_get(q, &d, &len, BR_FOREVER);
        _exit(0);
    }
    wait_debug(br__mp_queue_ring(q), consumer_mid_message, &cons);
    wait_debug(br__mp_queue_ring(q), consumer_sleeps, &cons);
    BR_CHECK_EQ(kill(cons, SIGKILL), 0);
    st = br_test_wait_child(cons);
    BR_CHECK(WIFSIGNALED(st));
    BR_CHECK_EQ(kill(prod, SIGCONT), 0);
    char buf[8];
    size_t len;
    BR_CHECK_OK(br_mp_queue_get_into(q, buf, sizeof buf, &len, br_test_hang_guard()));
    BR_CHECK_EQ(len, 4);
    BR_CHECK_EQ(memcmp(buf, "next", 4), 0);
    BR_CHECK_CHILD_OK(br_test_wait_child(prod));
    BR_CHECK_EQ(br_mp_queue_lost(q), 1);
    BR_CHECK_EQ(br_mp_queue_qsize(q), 0);
    BR_CHECK_OK(br_mp_queue_free(q));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* --- a producer killed while others put ----------------------------------------------- */

/* One round of producer_killed_among_producers: what the processes share. */
enum { KP_SURVIVORS = 2, KP_PRODUCERS = 1 + KP_SURVIVORS, KP_VICTIM_MAX = 1 << 16 };
typedef struct kp_shared {
    _Atomic uint32_t done[KP_PRODUCERS]; /* puts returned 0, per producer */
    _Atomic uint32_t seen[];             /* [p * stride + seq]: times it arrived */
} kp_shared;

static uint64_t kp_rand(uint64_t *s) { /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

static bool kp_victim_holds(br__mpr *r, pid_t victim, bool streaming) {
    br__mpr_debug d;
    br__mpr_debug_get(r, &d);
    return d.plock == (uint32_t)victim && (!streaming || d.p_stream);
}

/* Stops the victim at random moments until one finds it holding the producers' lock
 * (and, if `streaming`, in the middle of a streamed message): the kill lands there. */
static void kp_stop_holding(br__mpr *r, pid_t victim, bool streaming, kp_shared *sh) {
    int64_t guard = br_test_hang_guard();
    for (;;) {
        BR_CHECK_EQ(kill(victim, SIGSTOP), 0);
        int st;
        BR_CHECK_EQ(waitpid(victim, &st, WUNTRACED), victim);
        BR_CHECK(WIFSTOPPED(st));
        if (kp_victim_holds(r, victim, streaming))
            return;
        BR_CHECK_EQ(kill(victim, SIGCONT), 0);
        if (br_now() > guard || atomic_load(&sh->done[0]) >= KP_VICTIM_MAX)
            fail_msg("the victim never held the producers' lock%s (%u puts done)",
                     streaming ? " mid-message" : "", (unsigned)atomic_load(&sh->done[0]));
        sched_yield();
    }
}

/* The round's children, killed and reaped at exit if a check fails (cmocka runs no
 * teardown after a failure; a child left behind would hold ctest's output open). */
static pid_t kp_pids[KP_PRODUCERS + 1];

static void kp_cleanup(void) {
    for (int k = 0; k <= KP_PRODUCERS; k++)
        if (kp_pids[k] > 0) {
            kill(kp_pids[k], SIGKILL);
            waitpid(kp_pids[k], NULL, 0);
            kp_pids[k] = 0;
        }
}

/* Three producers put tagged messages (every 97th one streams) to one consumer; one of
 * them is SIGKILLed, at a random moment or while it holds the producers' lock (and
 * mid-message); the others go on. Every message of the survivors arrives exactly once
 * and in order; the victim's arrive whole, in order, each once: all those whose put
 * returned and perhaps the one it was putting, nothing after. The survivors' exit and
 * the consumer's drain are waited for under the hang guard. */
static void producer_killed_among_producers(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    const char *env = getenv("BRAID_TEST_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 0) : (uint64_t)br_now() ^ (uint64_t)getpid();
    uint64_t rng = seed | 1;
    long rounds = br_test_scaled(50, 8);
    uint32_t m = (uint32_t)br_test_scaled(2000, 300); /* per survivor */
    size_t stride = KP_VICTIM_MAX;
    size_t bytes = sizeof(kp_shared) + sizeof(_Atomic uint32_t) * stride * KP_PRODUCERS;
    kp_shared *sh = shared_alloc(bytes);
    atexit(kp_cleanup);
    int held = 0, streaming = 0, zombie = 0;
    for (long round = 0; round < rounds; round++) {
        memset(sh, 0, bytes);
        br_mp_queue *q;
        BR_CHECK_OK(br_mp_queue_new(&q, &(br_mp_queue_opts){.ring_bytes = 16384}));
        br__mpr *r = br__mp_queue_ring(q);
        pid_t *pids = kp_pids; /* [0] the victim, [1..] survivors, last the consumer */
        for (int k = 0; k <= KP_PRODUCERS; k++) {
            pids[k] = fork();
            BR_CHECK(pids[k] >= 0);
            if (pids[k] != 0)
                continue;
            static unsigned char buf[TAGGED_MAX];
            if (k < KP_PRODUCERS) {
                uint32_t n = k == 0 ? KP_VICTIM_MAX : m;
                for (uint32_t s = 0; s < n; s++) {
                    size_t len = tagged_make(buf, (uint32_t)k, s);
                    if (br_mp_queue_put(q, buf, len, BR_FOREVER) != 0)
                        _exit(10);
                    atomic_store(&sh->done[k], s + 1);
                }
                if (k == 0)
                    for (;;)
                        pause(); /* the victim waits for its kill */
                _exit(0);
            }
            long last[KP_PRODUCERS] = {-1, -1, -1};
            for (;;) {
                size_t n;
                if (br_mp_queue_get_into(q, buf, sizeof buf, &n, BR_FOREVER) != 0)
                    _exit(11);
                if (n == 0)
                    _exit(0);
                tag t;
                if (tagged_check(buf, n, KP_PRODUCERS, &t) != 0 || t.seq >= stride)
                    _exit(12);
                if ((long)t.seq <= last[t.producer])
                    _exit(13);
                last[t.producer] = t.seq;
                atomic_fetch_add(&sh->seen[t.producer * stride + t.seq], 1);
            }
        }
        /* The kill: a third of the rounds while the victim holds the lock, one in six
         * of them mid-message; the others once the survivors have put a random share
         * of their messages, after a random spin. */
        uint64_t how = kp_rand(&rng) % 6;
        if (how < 2) {
            kp_stop_holding(r, pids[0], how == 0, sh);
        } else {
            uint32_t at = (uint32_t)(kp_rand(&rng) % (m / 2));
            int64_t guard = br_test_hang_guard();
            while (atomic_load(&sh->done[1]) + atomic_load(&sh->done[2]) < at) {
                BR_CHECK(br_now() < guard);
                sched_yield();
            }
            for (uint64_t i = kp_rand(&rng) % 100000; i > 0; i--)
                br__cpu_relax();
        }
        BR_CHECK_EQ(kill(pids[0], SIGKILL), 0);
        bool reap_late = kp_rand(&rng) % 2; /* the survivors see a zombie, or no process */
        if (!reap_late) {
            int st = br_test_wait_child(pids[0]);
            pids[0] = 0;
            BR_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        }
        for (int k = 1; k < KP_PRODUCERS; k++) {
            int st = br_test_wait_child(pids[k]);
            pids[k] = 0;
            BR_CHECK_CHILD_OK(st);
        }
        if (reap_late) {
            int st = br_test_wait_child(pids[0]);
            pids[0] = 0;
            BR_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
            zombie++;
        }
        held += how < 2;
        streaming += how == 0;
        uint32_t k = atomic_load(&sh->done[0]);
        BR_CHECK_OK(br_mp_queue_put(q, NULL, 0, br_test_hang_guard())); /* the end */
        int st = br_test_wait_child(pids[KP_PRODUCERS]);
        pids[KP_PRODUCERS] = 0;
        BR_CHECK_CHILD_OK(st);
        for (int p = 1; p < KP_PRODUCERS; p++)
            for (uint32_t s = 0; s < m; s++)
                if (atomic_load(&sh->seen[p * stride + s]) != 1)
                    fail_msg("seed %llu round %ld (kill %d): survivor %d's message %u arrived "
                             "%u times (it put %u)", (unsigned long long)seed, round, (int)how, p,
                             s, (unsigned)atomic_load(&sh->seen[p * stride + s]), m);
        for (uint32_t s = 0; s < stride; s++) {
            uint32_t c = atomic_load(&sh->seen[s]);
            if (s < k ? c != 1 : s == k ? c > 1 : c != 0)
                fail_msg("seed %llu round %ld (kill %d): the victim's message %u arrived %u "
                         "times (%u puts had returned)", (unsigned long long)seed, round,
                         (int)how, s, c, k);
        }
        BR_CHECK_EQ(br_mp_queue_lost(q), 0);
        BR_CHECK_EQ(br_mp_queue_qsize(q), 0);
        BR_CHECK_OK(br_mp_queue_free(q));
    }
    munmap(sh, bytes);
    BR_CHECK_EQ(br_test_count_fds(), fds);
    fprintf(stderr, "seed %llu: %ld rounds, %d killed holding the lock (%d mid-message), %d "
            "found as zombies\n", (unsigned long long)seed, rounds, held, streaming, zombie);
}

/* A put whose deadline passes mid-message withdraws it: a consumer that comes later
 * gets the next message whole and never a piece of the withdrawn one. */
static void put_deadline_withdraws_message(void **state) {
    (void)state;
    br_mp_queue *q;
    BR_CHECK_OK(br_mp_queue_new(&q, &(br_mp_queue_opts){.ring_bytes = SMALL_RING}));
    unsigned char *big = malloc(1 << 20);
    fill(big, 1 << 20);
    BR_CHECK_ERR(br_mp_queue_put(q, big, 1 << 20, br_deadline_after(10 * BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_mp_queue_put(q, big, 1 << 20, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_EQ(br_mp_queue_qsize(q), 0);
    /* the ring still holds the withdrawn fragments; the next put waits for room */
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0)
        _exit(br_mp_queue_put(q, "whole", 5, BR_FOREVER) == 0 ? 0 : 96);
    void *m;
    size_t len;
    BR_CHECK_OK(br_mp_queue_get(q, &m, &len, br_test_hang_guard()));
    BR_CHECK_EQ(len, 5);
    BR_CHECK_EQ(memcmp(m, "whole", 5), 0);
    free(m);
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    BR_CHECK_ERR(br_mp_queue_get(q, &m, &len, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_EQ(br_mp_queue_lost(q), 0);
    free(big);
    BR_CHECK_OK(br_mp_queue_free(q));
}

/* Out of memory: new fails cleanly at every allocation; a get that can't allocate the
 * message leaves it queued. */
static void out_of_memory(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_mp_queue *q = NULL;
    for (long n = 0;; n++) {
        br__alloc_fail_after(n);
        int rc = br_mp_queue_new(&q, NULL);
        br__alloc_fail_after(-1);
        if (rc == 0)
            break;
        BR_CHECK_ERR(rc, BR_ENOMEM);
        BR_CHECK(q == NULL);
        BR_CHECK_EQ(br_test_count_fds(), fds);
        BR_CHECK(n < 100);
    }
    BR_CHECK_OK(br_mp_queue_put(q, "abc", 3, BR_NOWAIT));
    void *m = NULL;
    size_t len;
    br__alloc_fail_after(0);
    int rc = br_mp_queue_get(q, &m, &len, BR_NOWAIT);
    br__alloc_fail_after(-1);
    BR_CHECK_ERR(rc, BR_ENOMEM);
    BR_CHECK_EQ(br_mp_queue_qsize(q), 1);
    BR_CHECK_OK(br_mp_queue_get(q, &m, &len, BR_NOWAIT));
    BR_CHECK_EQ(len, 3);
    BR_CHECK_EQ(memcmp(m, "abc", 3), 0);
    free(m);
    BR_CHECK_OK(br_mp_queue_free(q));
    BR_CHECK_EQ(br_test_count_fds(), fds);

    br_pipe *a = NULL, *b = NULL;
    for (long n = 0;; n++) {
        br__alloc_fail_after(n);
        int prc = br_pipe_new(&a, &b, true);
        br__alloc_fail_after(-1);
        if (prc == 0)
            break;
        BR_CHECK_ERR(prc, BR_ENOMEM);
        BR_CHECK(a == NULL && b == NULL);
        BR_CHECK_EQ(br_test_count_fds(), fds);
        BR_CHECK(n < 100);
    }
    BR_CHECK_OK(br_pipe_close(a));
    BR_CHECK_OK(br_pipe_close(b));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* --- the tutorials' shape ----------------------------------------------------------- */

/* A producer process and a consumer process through a Queue(5), as the tutorial's
 * producer/consumer: the producer puts page URLs, the consumer "parses" each (takes
 * the page number) and reports the sum through a result queue. */
static void tutorial_producer_consumer(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_mp_queue *q, *results;
    BR_CHECK_OK(br_mp_queue_new(&q, &(br_mp_queue_opts){.maxsize = 5}));
    BR_CHECK_OK(br_mp_queue_new(&results, NULL));
    const int pages = 200;
    pid_t producer = fork();
    BR_CHECK(producer >= 0);
    if (producer == 0) {
        char url[64];
        for (int i = 1; i <= pages; i++) {
            int n = snprintf(url, sizeof url, "https://example.org/page/%d", i);
            if (br_mp_queue_put(q, url, (size_t)n, BR_FOREVER) != 0)
                _exit(100);
        }
        _exit(br_mp_queue_put(q, NULL, 0, BR_FOREVER) == 0 ? 0 : 101);
    }
    pid_t consumer = fork();
    BR_CHECK(consumer >= 0);
    if (consumer == 0) {
        long sum = 0, count = 0;
        for (;;) {
            void *url;
            size_t len;
            if (br_mp_queue_get(q, &url, &len, BR_FOREVER) != 0)
                _exit(102);
            if (len == 0)
                break;
            char s[64];
            memcpy(s, url, len);
            s[len] = '\0';
            free(url);
            const char *num = strrchr(s, '/');
            sum += atol(num + 1);
            count++;
        }
        long r[2] = {count, sum};
        _exit(br_mp_queue_put(results, r, sizeof r, BR_FOREVER) == 0 ? 0 : 103);
    }
    BR_CHECK_CHILD_OK(br_test_wait_child(producer));
    BR_CHECK_CHILD_OK(br_test_wait_child(consumer));
    long r[2];
    size_t len;
    BR_CHECK_OK(br_mp_queue_get_into(results, r, sizeof r, &len, BR_NOWAIT));
    BR_CHECK_EQ(r[0], pages);
    BR_CHECK_EQ(r[1], pages * (pages + 1) / 2);
    BR_CHECK_OK(br_mp_queue_free(q));
    BR_CHECK_OK(br_mp_queue_free(results));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

BR_TEST_MAIN(cmocka_unit_test(mpmc_3x2), cmocka_unit_test(mpmc_4x4),
             cmocka_unit_test(mpmc_4x4_bounded), cmocka_unit_test(mpmc_3x1_order),
             cmocka_unit_test(sizes_byte_exact),
             cmocka_unit_test(small_sizes_across_the_wrap),
             cmocka_unit_test(get_into_too_small),
             cmocka_unit_test(bounded_blocks_at_maxsize), cmocka_unit_test(bad_input),
             cmocka_unit_test(joinable_across_processes), cmocka_unit_test(simple_queue),
             cmocka_unit_test(close_is_per_handle),
             cmocka_unit_test(shutdown_drains_then_refuses),
             cmocka_unit_test(shutdown_immediate_counts_as_done),
             cmocka_unit_test(attach_by_fd), cmocka_unit_test(consumer_killed_in_get),
             cmocka_unit_test(producer_killed_mid_message),
             cmocka_unit_test(consumer_outlives_streaming_producer),
             cmocka_unit_test(consumer_killed_mid_message),
             cmocka_unit_test(producer_killed_among_producers),
             cmocka_unit_test(put_deadline_withdraws_message),
             cmocka_unit_test(out_of_memory), cmocka_unit_test(tutorial_producer_consumer))
