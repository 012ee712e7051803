/* Shared dict, list, Value, Array and SharedMemory (braid/mp_shared.h), from many
 * processes at once: contents checked exactly (nothing lost, duplicated or torn), growth
 * seen across processes, recovery after a process dies holding the lock or is SIGKILLed
 * mid-update, bad input, out of memory; no fd or mapping left behind.
 *
 * Children are forked and report through their exit status (a distinct code per check).
 *
 * braid-test-timeout: 180
 */
#include "harness.h"
#include "core/lib.h"
#include "process/mp_region.h"

#include <braid/mp_shared.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* In a child: exit with `code` unless expr is 0. */
#define CHILD_OK(expr, code)                                                               \
    do {                                                                                   \
        if ((expr) != 0)                                                                   \
            _exit(code);                                                                   \
    } while (0)

static pid_t fork_or_fail(void) {
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    return pid;
}

/* Mappings of braid's shared objects in this process (/proc/self/maps). */
static int count_braid_maps(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    BR_CHECK(f != NULL);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "braid-"))
            n++;
    fclose(f);
    return n;
}

/* What a test holds at its start, checked again at its end. */
typedef struct baseline {
    int fds, maps;
} baseline;

static baseline take_baseline(void) {
    return (baseline){br_test_count_fds(), count_braid_maps()};
}

static void check_baseline(baseline b) {
    BR_CHECK_EQ(br_test_count_fds(), b.fds);
    BR_CHECK_EQ(count_braid_maps(), b.maps);
}

static void wait_children(const pid_t *pids, int n) {
    for (int i = 0; i < n; i++)
        BR_CHECK_CHILD_OK(br_test_wait_child(pids[i]));
}

/* --- the tutorials' examples ---------------------------------------------------- */

static void tutorial_dict_and_list(void **state) {
    (void)state;
    baseline b = take_baseline();
    br_mp_dict *d;
    br_mp_list *l;
    BR_CHECK_OK(br_mp_dict_new(&d, NULL));
    BR_CHECK_OK(br_mp_list_new(&l, NULL));

    /* progress_dict = Manager().dict(); two processes add ("jack", 22), ("hong", 34). */
    const char *names[2] = {"jack", "hong"};
    const int64_t ages[2] = {22, 34};
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        pids[i] = fork_or_fail();
        if (pids[i] == 0) {
            CHILD_OK(br_mp_dict_set_i64(d, names[i], ages[i]), 1);
            _exit(0);
        }
    }
    wait_children(pids, 2);
    br_mp_items *it;
    BR_CHECK_OK(br_mp_dict_items(d, &it));
    BR_CHECK_EQ(it->count, 2);
    for (size_t i = 0; i < it->count; i++) {
        int k = strcmp(it->keys[i].data, "jack") == 0 ? 0 : 1;
        BR_CHECK_EQ(strcmp(it->keys[i].data, names[k]), 0);
        int64_t v;
        BR_CHECK_EQ(it->values[i].len, 8);
        memcpy(&v, it->values[i].data, 8);
        BR_CHECK_EQ(v, ages[k]);
    }
    br_mp_items_free(it);

    /* The other tutorial: a child writes dic["name"], dic["phone"]; li.append(1, 2). */
    pid_t pid = fork_or_fail();
    if (pid == 0) {
        CHILD_OK(br_mp_dict_set_str(d, "name", "九问"), 1);
        CHILD_OK(br_mp_dict_set_i64(d, "phone", 193), 2);
        CHILD_OK(br_mp_list_append_i64(l, 1), 3);
        CHILD_OK(br_mp_list_append_i64(l, 2), 4);
        _exit(0);
    }
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    char *name;
    int64_t phone, x;
    BR_CHECK_OK(br_mp_dict_get_str(d, "name", &name));
    BR_CHECK_EQ(strcmp(name, "九问"), 0);
    br_mp_bytes_free(name);
    BR_CHECK_OK(br_mp_dict_get_i64(d, "phone", &phone));
    BR_CHECK_EQ(phone, 193);
    size_t n;
    BR_CHECK_OK(br_mp_dict_len(d, &n));
    BR_CHECK_EQ(n, 4);
    BR_CHECK_OK(br_mp_list_len(l, &n));
    BR_CHECK_EQ(n, 2);
    BR_CHECK_OK(br_mp_list_get_i64(l, 0, &x));
    BR_CHECK_EQ(x, 1);
    BR_CHECK_OK(br_mp_list_get_i64(l, -1, &x));
    BR_CHECK_EQ(x, 2);
    br_mp_list_free(l);
    br_mp_dict_free(d);
    check_baseline(b);
}

/* --- many processes, distinct keys ------------------------------------------------ */

static void dict_many_processes(void **state) {
    (void)state;
    baseline b = take_baseline();
    enum { N = 4 };
    long m = br_test_scaled(5000, 300);
    br_mp_dict *d;
    br_mp_shared_opts o = {.initial_bytes = 1}; /* the smallest: everything is growth */
    BR_CHECK_OK(br_mp_dict_new(&d, &o));
    pid_t pids[N];
    for (int p = 0; p < N; p++) {
        pids[p] = fork_or_fail();
        if (pids[p] == 0) {
            char k[32], v[48];
            for (long j = 0; j < m; j++) {
                snprintf(k, sizeof k, "p%d-k%ld", p, j);
                snprintf(v, sizeof v, "value of %d/%ld", p, j);
                CHILD_OK(br_mp_dict_set_str(d, k, v), 1);
            }
            _exit(0);
        }
    }
    wait_children(pids, N);
    size_t n;
    BR_CHECK_OK(br_mp_dict_len(d, &n));
    BR_CHECK_EQ(n, N * m);
    char k[32], want[48];
    for (int p = 0; p < N; p++)
        for (long j = 0; j < m; j++) {
            snprintf(k, sizeof k, "p%d-k%ld", p, j);
            snprintf(want, sizeof want, "value of %d/%ld", p, j);
            char *v;
            BR_CHECK_OK(br_mp_dict_get_str(d, k, &v));
            BR_CHECK_EQ(strcmp(v, want), 0);
            br_mp_bytes_free(v);
        }
    /* Each key exactly once in the snapshot. */
    br_mp_items *it;
    BR_CHECK_OK(br_mp_dict_keys(d, &it));
    BR_CHECK_EQ(it->count, N * m);
    BR_CHECK(it->values == NULL);
    unsigned char *seen = calloc((size_t)(N * m), 1);
    BR_CHECK(seen != NULL);
    for (size_t i = 0; i < it->count; i++) {
        int p;
        long j;
        BR_CHECK_EQ(sscanf(it->keys[i].data, "p%d-k%ld", &p, &j), 2);
        BR_CHECK(p >= 0 && p < N && j >= 0 && j < m);
        BR_CHECK_EQ(seen[p * m + j], 0);
        seen[p * m + j] = 1;
    }
    free(seen);
    br_mp_items_free(it);
    br_mp_dict_free(d);
    check_baseline(b);
}

static void list_concurrent_appends(void **state) {
    (void)state;
    baseline b = take_baseline();
    enum { N = 4 };
    long m = br_test_scaled(5000, 300);
    br_mp_list *l;
    br_mp_shared_opts o = {.initial_bytes = 1};
    BR_CHECK_OK(br_mp_list_new(&l, &o));
    pid_t pids[N];
    for (int p = 0; p < N; p++) {
        pids[p] = fork_or_fail();
        if (pids[p] == 0) {
            for (long j = 0; j < m; j++)
                CHILD_OK(br_mp_list_append_i64(l, p * m + j), 1);
            _exit(0);
        }
    }
    wait_children(pids, N);
    size_t n;
    BR_CHECK_OK(br_mp_list_len(l, &n));
    BR_CHECK_EQ(n, N * m);
    br_mp_items *it;
    BR_CHECK_OK(br_mp_list_snapshot(l, &it));
    BR_CHECK_EQ(it->count, N * m);
    unsigned char *seen = calloc((size_t)(N * m), 1);
    long last[N];
    for (int p = 0; p < N; p++)
        last[p] = -1;
    for (size_t i = 0; i < it->count; i++) {
        int64_t x;
        BR_CHECK_EQ(it->keys[i].len, 8);
        memcpy(&x, it->keys[i].data, 8);
        BR_CHECK(x >= 0 && x < N * m);
        BR_CHECK_EQ(seen[x], 0);
        seen[x] = 1;
        int p = (int)(x / m);
        BR_CHECK(x % m > last[p]); /* one process's appends stay in its order */
        last[p] = (long)(x % m);
        int64_t y;
        BR_CHECK_OK(br_mp_list_get_i64(l, (int64_t)i, &y));
        BR_CHECK_EQ(y, x);
    }
    free(seen);
    br_mp_items_free(it);
    br_mp_list_free(l);
    check_baseline(b);
}

/* Threads of one process share one handle while another process writes too: the
 * handle's own mapping is remapped under the lock as the region grows. */
typedef struct thread_arg {
    br_mp_dict *d;
    int id;
    long m;
    int rc;
} thread_arg;

static void *thread_sets(void *p) {
    thread_arg *a = p;
    char k[32];
    for (long j = 0; j < a->m && !a->rc; j++) {
        snprintf(k, sizeof k, "t%d-%ld", a->id, j);
        a->rc = br_mp_dict_set_i64(a->d, k, j);
    }
    return NULL;
}

static void threads_and_processes(void **state) {
    (void)state;
    baseline b = take_baseline();
    long m = br_test_scaled(5000, 300);
    br_mp_dict *d;
    br_mp_shared_opts o = {.initial_bytes = 1};
    BR_CHECK_OK(br_mp_dict_new(&d, &o));
    pid_t pid = fork_or_fail();
    if (pid == 0) {
        thread_arg a = {d, 2, m, 0};
        thread_sets(&a);
        _exit(a.rc ? 1 : 0);
    }
    pthread_t t[2];
    thread_arg a[2] = {{d, 0, m, 0}, {d, 1, m, 0}};
    for (int i = 0; i < 2; i++)
        BR_CHECK_EQ(pthread_create(&t[i], NULL, thread_sets, &a[i]), 0);
    for (int i = 0; i < 2; i++) {
        BR_CHECK_EQ(pthread_join(t[i], NULL), 0);
        BR_CHECK_OK(a[i].rc);
    }
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    size_t n;
    BR_CHECK_OK(br_mp_dict_len(d, &n));
    BR_CHECK_EQ(n, 3 * m);
    char k[32];
    for (int id = 0; id < 3; id++)
        for (long j = 0; j < m; j++) {
            int64_t x;
            snprintf(k, sizeof k, "t%d-%ld", id, j);
            BR_CHECK_OK(br_mp_dict_get_i64(d, k, &x));
            BR_CHECK_EQ(x, j);
        }
    br_mp_dict_free(d);
    check_baseline(b);
}

/* --- growth across processes ------------------------------------------------------ */

static void fill(unsigned char *p, size_t n, long seed) {
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed * 131 + (long)i * 7 + (long)(i >> 8));
}

static void growth_seen_by_reader(void **state) {
    (void)state;
    baseline b = take_baseline();
    enum { VAL = 64 << 10 };
    long count = br_test_scaled(1040, 64); /* 1040 * 64 KiB = 65 MiB of values */
    br_mp_dict *d;
    br_mp_shared_opts o = {.initial_bytes = 8192};
    BR_CHECK_OK(br_mp_dict_new(&d, &o));
    pid_t pid = fork_or_fail();
    if (pid == 0) {
        unsigned char *v = malloc(VAL);
        char k[32];
        for (long i = 0; i < count; i++) {
            fill(v, VAL, i);
            snprintf(k, sizeof k, "blob-%ld", i);
            CHILD_OK(br_mp_dict_set(d, k, strlen(k), v, VAL), 1);
        }
        free(v);
        _exit(0);
    }
    /* The parent reads each entry as soon as it appears, while the child grows it. */
    unsigned char *want = malloc(VAL), *got = malloc(VAL);
    char k[32];
    int64_t guard = br_test_hang_guard();
    for (long i = 0; i < count; i++) {
        snprintf(k, sizeof k, "blob-%ld", i);
        size_t n;
        int rc;
        while ((rc = br_mp_dict_get_into(d, k, strlen(k), got, VAL, &n)) == BR_ENOENT) {
            BR_CHECK(br_now() < guard);
            sched_yield();
        }
        BR_CHECK_OK(rc);
        BR_CHECK_EQ(n, VAL);
        fill(want, VAL, i);
        BR_CHECK(memcmp(got, want, VAL) == 0);
    }
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    size_t n;
    BR_CHECK_OK(br_mp_dict_len(d, &n));
    BR_CHECK_EQ(n, count);
    free(want);
    free(got);
    br_mp_dict_free(d);
    check_baseline(b);
}

/* --- delete, contains, len ------------------------------------------------------- */

static void delete_contains_len(void **state) {
    (void)state;
    baseline b = take_baseline();
    br_mp_dict *d;
    BR_CHECK_OK(br_mp_dict_new(&d, NULL));
    bool found;
    size_t n;
    BR_CHECK_ERR(br_mp_dict_delete(d, "a", 1), BR_ENOENT);
    BR_CHECK_OK(br_mp_dict_contains(d, "a", 1, &found));
    BR_CHECK(!found);
    BR_CHECK_OK(br_mp_dict_set(d, "a", 1, "1", 1));
    BR_CHECK_OK(br_mp_dict_set(d, "", 0, NULL, 0)); /* empty key and value are fine */
    BR_CHECK_OK(br_mp_dict_len(d, &n));
    BR_CHECK_EQ(n, 2);
    BR_CHECK_OK(br_mp_dict_contains(d, "", 0, &found));
    BR_CHECK(found);
    BR_CHECK_OK(br_mp_dict_set(d, "a", 1, "22", 2)); /* replace: len stays */
    BR_CHECK_OK(br_mp_dict_len(d, &n));
    BR_CHECK_EQ(n, 2);
    char *s;
    BR_CHECK_OK(br_mp_dict_get_str(d, "a", &s));
    BR_CHECK_EQ(strcmp(s, "22"), 0);
    br_mp_bytes_free(s);
    BR_CHECK_OK(br_mp_dict_delete(d, "a", 1));
    BR_CHECK_ERR(br_mp_dict_delete(d, "a", 1), BR_ENOENT);
    void *v = (void *)1;
    BR_CHECK_ERR(br_mp_dict_get(d, "a", 1, &v, NULL), BR_ENOENT);
    BR_CHECK(v == NULL);
    BR_CHECK_OK(br_mp_dict_delete(d, "", 0));
    BR_CHECK_OK(br_mp_dict_len(d, &n));
    BR_CHECK_EQ(n, 0);

    /* Churn: a child deletes the even keys of 0..K while the parent inserts K..2K; then
     * each key is present exactly when it should be (tombstones, rehashes). */
    long K = br_test_scaled(20000, 2000);
    char k[32];
    for (long i = 0; i < K; i++) {
        snprintf(k, sizeof k, "%ld", i);
        BR_CHECK_OK(br_mp_dict_set_i64(d, k, i));
    }
    pid_t pid = fork_or_fail();
    if (pid == 0) {
        for (long i = 0; i < K; i += 2) {
            snprintf(k, sizeof k, "%ld", i);
            CHILD_OK(br_mp_dict_delete(d, k, strlen(k)), 1);
        }
        _exit(0);
    }
    for (long i = K; i < 2 * K; i++) {
        snprintf(k, sizeof k, "%ld", i);
        BR_CHECK_OK(br_mp_dict_set_i64(d, k, i));
    }
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    BR_CHECK_OK(br_mp_dict_len(d, &n));
    BR_CHECK_EQ(n, K / 2 + K);
    for (long i = 0; i < 2 * K; i++) {
        snprintf(k, sizeof k, "%ld", i);
        BR_CHECK_OK(br_mp_dict_contains(d, k, strlen(k), &found));
        bool want = i >= K || i % 2 == 1;
        BR_CHECK_EQ(found, want);
        int64_t x = -1;
        if (want) {
            BR_CHECK_OK(br_mp_dict_get_i64(d, k, &x));
            BR_CHECK_EQ(x, i);
        } else {
            BR_CHECK_ERR(br_mp_dict_get_i64(d, k, &x), BR_ENOENT);
        }
    }
    /* add_i64: absent counts as 0, then in place. */
    int64_t r;
    BR_CHECK_OK(br_mp_dict_add_i64(d, "counter", 5, &r));
    BR_CHECK_EQ(r, 5);
    BR_CHECK_OK(br_mp_dict_add_i64(d, "counter", -7, &r));
    BR_CHECK_EQ(r, -2);
    BR_CHECK_OK(br_mp_dict_set_str(d, "text", "not eight"));
    BR_CHECK_ERR(br_mp_dict_add_i64(d, "text", 1, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_mp_dict_get_i64(d, "text", &r), BR_EINVAL);
    br_mp_dict_free(d);
    check_baseline(b);
}

/* --- snapshots are taken at one instant ---------------------------------------------- */

/* A value that names its key: "<key>|<len>|<seed>|" then len bytes of a pattern. */
static size_t make_value(char *buf, const char *key, long seed, size_t len) {
    int h = snprintf(buf, 96, "%s|%zu|%ld|", key, len, seed);
    fill((unsigned char *)buf + h, len, seed);
    return (size_t)h + len;
}

/* True if v (n bytes) is a whole value made for key. */
static bool value_ok(const char *key, const void *v, size_t n) {
    char head[96];
    size_t len;
    long seed;
    int used = 0;
    const char *s = v;
    int h = snprintf(head, sizeof head, "%s|", key);
    if (n < (size_t)h + 4 || memcmp(s, head, (size_t)h) != 0)
        return false;
    char num[64];
    size_t nn = n - (size_t)h < sizeof num - 1 ? n - (size_t)h : sizeof num - 1;
    memcpy(num, s + h, nn);
    num[nn] = 0;
    if (sscanf(num, "%zu|%ld|%n", &len, &seed, &used) != 2 || used == 0)
        return false;
    size_t off = (size_t)h + (size_t)used;
    if (off + len != n || len > 8192)
        return false;
    unsigned char want[8192];
    fill(want, len, seed);
    return memcmp(s + off, want, len) == 0;
}

static void snapshot_is_one_instant(void **state) {
    (void)state;
    baseline b = take_baseline();
    br_mp_dict *d;
    BR_CHECK_OK(br_mp_dict_new(&d, NULL));
    long rounds = br_test_scaled(3000, 300);
    enum { KEYS = 64 };
    /* Child 0 inserts seq-0, seq-1, ... in order; child 1 rewrites KEYS keys with values
     * of changing length. A snapshot holding seq-n must hold every seq below n, and every
     * value must be whole. */
    pid_t pids[2];
    for (int c = 0; c < 2; c++) {
        pids[c] = fork_or_fail();
        if (pids[c] == 0) {
            char k[32], v[4096 + 128];
            for (long i = 0; i < rounds; i++) {
                if (c == 0) {
                    snprintf(k, sizeof k, "seq-%ld", i);
                    CHILD_OK(br_mp_dict_set_i64(d, k, i), 1);
                } else {
                    snprintf(k, sizeof k, "key-%ld", i % KEYS);
                    size_t n = make_value(v, k, i, (size_t)(i * 37 % 4096));
                    CHILD_OK(br_mp_dict_set(d, k, strlen(k), v, n), 2);
                }
            }
            _exit(0);
        }
    }
    int done = 0;
    while (done < 2) {
        br_mp_items *it;
        BR_CHECK_OK(br_mp_dict_items(d, &it));
        long max_seq = -1, seqs = 0;
        for (size_t i = 0; i < it->count; i++) {
            const char *k = it->keys[i].data;
            if (strncmp(k, "seq-", 4) == 0) {
                long s = atol(k + 4);
                int64_t x;
                BR_CHECK_EQ(it->values[i].len, 8);
                memcpy(&x, it->values[i].data, 8);
                BR_CHECK_EQ(x, s);
                seqs++;
                if (s > max_seq)
                    max_seq = s;
            } else {
                BR_CHECK(value_ok(k, it->values[i].data, it->values[i].len));
            }
        }
        BR_CHECK_EQ(seqs, max_seq + 1);
        br_mp_items_free(it);
        done = 0;
        for (int c = 0; c < 2; c++) {
            int st;
            if (pids[c] == 0) {
                done++;
            } else if (waitpid(pids[c], &st, WNOHANG) == pids[c]) {
                BR_CHECK_CHILD_OK(st);
                pids[c] = 0;
                done++;
            }
        }
    }
    size_t n;
    BR_CHECK_OK(br_mp_dict_len(d, &n));
    BR_CHECK_EQ(n, rounds + KEYS);
    br_mp_dict_free(d);
    check_baseline(b);
}

/* --- crashes ------------------------------------------------------------------------ */

/* Children set, delete and append with self-checking values while the parent SIGKILLs
 * them at random moments; what remains must be whole and consistent. */
static void sigkill_mid_update(void **state) {
    (void)state;
    baseline b = take_baseline();
    br_mp_dict *d;
    br_mp_list *l;
    br_mp_shared_opts o = {.initial_bytes = 1};
    BR_CHECK_OK(br_mp_dict_new(&d, &o));
    BR_CHECK_OK(br_mp_list_new(&l, &o));
    enum { KEYS = 300, KIDS = 2 };
    long rounds = br_test_scaled(60, 8);
    srand(12345);
    for (long round = 0; round < rounds; round++) {
        pid_t pids[KIDS];
        int ready[2];
        BR_CHECK_OK(pipe(ready));
        for (int c = 0; c < KIDS; c++) {
            unsigned seed = (unsigned)rand();
            pids[c] = fork_or_fail();
            if (pids[c] == 0) {
                close(ready[0]);
                /* Never outlive the test, even one that failed half way. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() == 1)
                    _exit(5);
                int64_t guard = br_test_hang_guard();
                char k[32], v[4096 + 128];
                CHILD_OK(write(ready[1], "x", 1) != 1, 1);
                for (unsigned i = seed;; i++) {
                    if (i % 1024 == 0 && br_now() > guard)
                        _exit(6);
                    unsigned r = i * 2654435761u;
                    snprintf(k, sizeof k, "key-%u", r % KEYS);
                    if (r % 10 == 0) {
                        int rc = br_mp_dict_delete(d, k, strlen(k));
                        CHILD_OK(rc != 0 && rc != BR_ENOENT, 2);
                    } else if (r % 10 == 1) {
                        size_t n = make_value(v, "elem", i, r % 700);
                        CHILD_OK(br_mp_list_append(l, v, n), 3);
                    } else {
                        size_t n = make_value(v, k, i, (r >> 8) % 4096);
                        CHILD_OK(br_mp_dict_set(d, k, strlen(k), v, n), 4);
                    }
                }
            }
        }
        close(ready[1]);
        char buf[KIDS];
        for (int got = 0; got < KIDS;) {
            ssize_t r = read(ready[0], buf, (size_t)(KIDS - got));
            if (r <= 0) { /* a child died before starting: stop the others, fail */
                for (int c = 0; c < KIDS; c++) {
                    kill(pids[c], SIGKILL);
                    (void)br_test_wait_child(pids[c]);
                }
                BR_CHECK(r > 0);
            }
            got += (int)r;
        }
        close(ready[0]);
        for (int c = 0; c < KIDS; c++) {
            br_sleep((int64_t)(rand() % 3000) * BR_USEC);
            kill(pids[c], SIGKILL);
            int st = br_test_wait_child(pids[c]);
            /* Killed, or (never expected) a failed check: that's a failure. */
            BR_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        }
        /* Survivors' view after each round. */
        br_mp_items *it;
        BR_CHECK_OK(br_mp_dict_items(d, &it));
        size_t n;
        BR_CHECK_OK(br_mp_dict_len(d, &n));
        BR_CHECK_EQ(n, it->count);
        for (size_t i = 0; i < it->count; i++) {
            const char *k = it->keys[i].data;
            BR_CHECK(value_ok(k, it->values[i].data, it->values[i].len));
            void *v;
            size_t vn;
            BR_CHECK_OK(br_mp_dict_get(d, k, it->keys[i].len, &v, &vn));
            BR_CHECK_EQ(vn, it->values[i].len);
            BR_CHECK(memcmp(v, it->values[i].data, vn) == 0);
            br_mp_bytes_free(v);
        }
        br_mp_items_free(it);
        BR_CHECK_OK(br_mp_list_snapshot(l, &it));
        BR_CHECK_OK(br_mp_list_len(l, &n));
        BR_CHECK_EQ(n, it->count);
        for (size_t i = 0; i < it->count; i++)
            BR_CHECK(value_ok("elem", it->keys[i].data, it->keys[i].len));
        br_mp_items_free(it);
    }
    /* Still fully usable. */
    size_t n0, n1;
    BR_CHECK_OK(br_mp_dict_len(d, &n0));
    BR_CHECK_OK(br_mp_dict_set_str(d, "after", "the storm"));
    BR_CHECK_OK(br_mp_dict_len(d, &n1));
    BR_CHECK_EQ(n1, n0 + 1);
    BR_CHECK_OK(br_mp_dict_delete(d, "after", 5));
    BR_CHECK_OK(br_mp_list_append_str(l, "last"));
    br_mp_list_free(l);
    br_mp_dict_free(d);
    check_baseline(b);
}

/* A child that dies holding the lock, after leaving the kinds of half-done state a
 * crash can leave: the next user repairs it. */
static void owner_dies_holding_lock(void **state) {
    (void)state;
    baseline b = take_baseline();
    br_mp_dict *d;
    br_mp_list *l;
    BR_CHECK_OK(br_mp_dict_new(&d, NULL));
    BR_CHECK_OK(br_mp_list_new(&l, NULL));
    for (int i = 0; i < 10; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        BR_CHECK_OK(br_mp_dict_set_i64(d, k, i));
        BR_CHECK_OK(br_mp_list_append_i64(l, i));
    }
    br__mpr *dr = br__mp_dict_region(d), *lr = br__mp_list_region(l);
    pid_t pid = fork_or_fail();
    if (pid == 0) {
        /* Dict: a slot published but the count not yet updated (as after a crash between
         * the two stores); a bogus block pushed on a free list. */
        CHILD_OK(br__mpr_lock(dr, NULL), 1);
        dr->h->user[1] = 999;
        dr->h->user[2] = 0;
        dr->h->free[3] = dr->h->size + 4096; /* past the end */
        /* List: an element stored at [len] but len not bumped. */
        CHILD_OK(br__mpr_lock(lr, NULL), 2);
        uint64_t off;
        CHILD_OK(br__mpr_alloc(lr, 16, &off), 3);
        *(uint64_t *)br__mpr_at(lr, off) = 8;
        int64_t junk = 777;
        memcpy((char *)br__mpr_at(lr, off) + 8, &junk, 8);
        uint64_t arr = lr->h->user[0];
        ((uint64_t *)br__mpr_at(lr, arr + 8))[lr->h->user[1]] = off;
        _exit(0); /* both locks held: the kernel marks them owner-died */
    }
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    size_t n;
    BR_CHECK_OK(br_mp_dict_len(d, &n));
    BR_CHECK_EQ(n, 10);
    for (int i = 0; i < 40; i++) { /* would take the bogus free block if it were kept */
        char k[8];
        snprintf(k, sizeof k, "n%d", i);
        BR_CHECK_OK(br_mp_dict_set_i64(d, k, i));
    }
    BR_CHECK_OK(br_mp_dict_len(d, &n));
    BR_CHECK_EQ(n, 50);
    int64_t x;
    BR_CHECK_OK(br_mp_dict_get_i64(d, "k7", &x));
    BR_CHECK_EQ(x, 7);
    BR_CHECK_OK(br_mp_list_len(l, &n));
    BR_CHECK_EQ(n, 10);
    BR_CHECK_OK(br_mp_list_append_i64(l, 10));
    for (int i = 0; i <= 10; i++) {
        BR_CHECK_OK(br_mp_list_get_i64(l, i, &x));
        BR_CHECK_EQ(x, i);
    }
    br_mp_list_free(l);
    br_mp_dict_free(d);
    check_baseline(b);
}

/* --- Value ------------------------------------------------------------------------ */

static int incr_plain(void *value, void *arg) {
    (void)arg;
    int64_t *p = value;
    int64_t x = *p; /* a read-modify-write that is only safe under the lock */
    sched_yield();
    *p = x + 1;
    return 0;
}

static int block_on_pipe(void *value, void *arg) {
    (void)value;
    int *fds = arg;
    char c;
    if (write(fds[1], "h", 1) != 1 || read(fds[2], &c, 1) != 1)
        return BR_EIO;
    return 0;
}

static int die_inside(void *value, void *arg) {
    (void)arg;
    *(int64_t *)value = 42;
    _exit(0);
}

static int call_back_in(void *value, void *arg) {
    (void)value;
    int64_t x;
    return br_mp_value_get_i64(arg, &x);
}

static void value_from_many_processes(void **state) {
    (void)state;
    baseline b = take_baseline();
    enum { N = 4 };
    long m = br_test_scaled(20000, 1000);
    br_mp_value *vi, *vf;
    BR_CHECK_OK(br_mp_value_new(&vi, BR_MP_I64));
    BR_CHECK_OK(br_mp_value_new(&vf, BR_MP_F64));
    pid_t pids[N];
    for (int p = 0; p < N; p++) {
        pids[p] = fork_or_fail();
        if (pids[p] == 0) {
            for (long j = 0; j < m; j++) {
                CHILD_OK(br_mp_value_add_i64(vi, 3, NULL), 1);
                CHILD_OK(br_mp_value_add_f64(vf, 0.5, NULL), 2);
                if (j % 16 == 0)
                    CHILD_OK(br_mp_value_update(vi, incr_plain, NULL, BR_FOREVER), 3);
            }
            _exit(0);
        }
    }
    wait_children(pids, N);
    int64_t x;
    double f;
    BR_CHECK_OK(br_mp_value_get_i64(vi, &x));
    BR_CHECK_EQ(x, N * (3 * m + (m + 15) / 16));
    BR_CHECK_OK(br_mp_value_get_f64(vf, &f));
    BR_CHECK(f == 0.5 * (double)(N * m));
    BR_CHECK_ERR(br_mp_value_get_f64(vi, &f), BR_EINVAL); /* wrong type */
    BR_CHECK_ERR(br_mp_value_add_i64(vf, 1, NULL), BR_EINVAL);
    BR_CHECK_OK(br_mp_value_set_i64(vi, -5));
    BR_CHECK_OK(br_mp_value_add_i64(vi, 2, &x));
    BR_CHECK_EQ(x, -3);

    /* update's deadline: a child holds the lock inside its callback. */
    int fds[4];
    BR_CHECK_OK(pipe(fds));
    BR_CHECK_OK(pipe(fds + 2));
    pid_t pid = fork_or_fail();
    if (pid == 0) {
        int io[3] = {-1, fds[1], fds[2]};
        CHILD_OK(br_mp_value_update(vi, block_on_pipe, io, BR_FOREVER), 1);
        _exit(0);
    }
    char c;
    BR_CHECK_EQ(read(fds[0], &c, 1), 1);
    BR_CHECK_ERR(br_mp_value_update(vi, incr_plain, NULL, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_mp_value_update(vi, incr_plain, NULL, br_deadline_after(BR_MSEC)),
                 BR_ETIMEDOUT);
    BR_CHECK_EQ(write(fds[3], "g", 1), 1);
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    BR_CHECK_OK(br_mp_value_get_i64(vi, &x));
    BR_CHECK_EQ(x, -3);

    /* A process that dies inside update: the lock is recovered, the value is what it
     * stored. */
    pid = fork_or_fail();
    if (pid == 0) {
        (void)br_mp_value_update(vi, die_inside, NULL, BR_FOREVER);
        _exit(9);
    }
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    BR_CHECK_OK(br_mp_value_get_i64(vi, &x));
    BR_CHECK_EQ(x, 42);
    BR_CHECK_OK(br_mp_value_update(vi, incr_plain, NULL, BR_NOWAIT));
    BR_CHECK_OK(br_mp_value_get_i64(vi, &x));
    BR_CHECK_EQ(x, 43);
    /* A callback that calls back in gets an error, not a hang. */
    BR_CHECK_ERR(br_mp_value_update(vi, call_back_in, vi, BR_FOREVER), BR_EDEADLK);
    br_mp_value_free(vi);
    br_mp_value_free(vf);
    check_baseline(b);
}

/* --- Array ------------------------------------------------------------------------ */

static int sum_all(void *data, size_t len, void *arg) {
    int64_t *p = data, s = 0;
    for (size_t i = 0; i < len; i++)
        s += p[i];
    *(int64_t *)arg = s;
    return 0;
}

static void array_bounds_and_slices(void **state) {
    (void)state;
    baseline b = take_baseline();
    enum { LEN = 100 };
    br_mp_array *a, *f, *s;
    BR_CHECK_OK(br_mp_array_new(&a, BR_MP_I64, LEN, 0));
    BR_CHECK_OK(br_mp_array_new(&f, BR_MP_F64, 3, 99));
    BR_CHECK_OK(br_mp_array_new(&s, BR_MP_BYTES, 4, 5));
    BR_CHECK_EQ(br_mp_array_len(a), LEN);
    BR_CHECK_EQ(br_mp_array_elem_size(a), 8);
    BR_CHECK_EQ(br_mp_array_elem_size(f), 8);
    BR_CHECK_EQ(br_mp_array_elem_size(s), 5);
    BR_CHECK_EQ(br_mp_array_type(s), BR_MP_BYTES);
    int64_t x;
    BR_CHECK_OK(br_mp_array_get_i64(a, LEN - 1, &x));
    BR_CHECK_EQ(x, 0);
    /* Children fill disjoint halves. */
    pid_t pids[2];
    for (int c = 0; c < 2; c++) {
        pids[c] = fork_or_fail();
        if (pids[c] == 0) {
            for (size_t i = (size_t)c * LEN / 2; i < (size_t)(c + 1) * LEN / 2; i++)
                CHILD_OK(br_mp_array_set_i64(a, i, (int64_t)i * 10), 1);
            _exit(0);
        }
    }
    wait_children(pids, 2);
    int64_t slice[10];
    BR_CHECK_OK(br_mp_array_read(a, 45, 10, slice));
    for (int i = 0; i < 10; i++)
        BR_CHECK_EQ(slice[i], (45 + i) * 10);
    int64_t sum;
    BR_CHECK_OK(br_mp_array_update(a, sum_all, &sum, BR_FOREVER));
    BR_CHECK_EQ(sum, 10 * (LEN - 1) * LEN / 2);
    int64_t ones[3] = {1, 1, 1};
    BR_CHECK_OK(br_mp_array_write(a, LEN - 3, 3, ones));
    BR_CHECK_OK(br_mp_array_get_i64(a, LEN - 2, &x));
    BR_CHECK_EQ(x, 1);
    /* Bounds. */
    BR_CHECK_ERR(br_mp_array_get_i64(a, LEN, &x), BR_ERANGE);
    BR_CHECK_ERR(br_mp_array_set_i64(a, (size_t)-1, 0), BR_ERANGE);
    BR_CHECK_ERR(br_mp_array_read(a, LEN - 2, 3, slice), BR_ERANGE);
    BR_CHECK_ERR(br_mp_array_read(a, LEN + 1, 0, slice), BR_ERANGE);
    BR_CHECK_ERR(br_mp_array_write(a, (size_t)-1, 2, ones), BR_ERANGE);
    BR_CHECK_ERR(br_mp_array_read(a, 1, (size_t)-1, slice), BR_ERANGE);
    BR_CHECK_OK(br_mp_array_read(a, LEN, 0, slice)); /* the empty slice at the end */
    /* Types. */
    double d;
    BR_CHECK_ERR(br_mp_array_get_f64(a, 0, &d), BR_EINVAL);
    BR_CHECK_ERR(br_mp_array_set_i64(f, 0, 1), BR_EINVAL);
    BR_CHECK_OK(br_mp_array_set_f64(f, 2, 2.5));
    BR_CHECK_OK(br_mp_array_get_f64(f, 2, &d));
    BR_CHECK(d == 2.5);
    /* Bytes elements. */
    BR_CHECK_OK(br_mp_array_write(s, 1, 2, "helloworld"));
    char out[21] = {0};
    BR_CHECK_OK(br_mp_array_read(s, 0, 4, out));
    BR_CHECK(memcmp(out, "\0\0\0\0\0helloworld\0\0\0\0\0", 20) == 0);
    BR_CHECK_ERR(br_mp_array_get_i64(s, 0, &x), BR_EINVAL);
    br_mp_array_free(a);
    br_mp_array_free(f);
    br_mp_array_free(s);
    check_baseline(b);
}

/* --- SharedMemory and attaching by descriptor ------------------------------------------
 */

static int count_dev_shm(void) {
    FILE *p = popen("ls -A /dev/shm 2>/dev/null | wc -l", "r");
    if (!p)
        return -1;
    int n = -1;
    if (fscanf(p, "%d", &n) != 1)
        n = -1;
    pclose(p);
    return n;
}

static void shared_memory_fork_attach(void **state) {
    (void)state;
    int shm_entries = count_dev_shm();
    baseline b = take_baseline();
    br_shared_memory *m, *m2;
    BR_CHECK_OK(br_shared_memory_new(&m, 1 << 20));
    BR_CHECK_EQ(br_shared_memory_size(m), 1 << 20);
    unsigned char *p = br_shared_memory_buf(m);
    BR_CHECK(p != NULL);
    BR_CHECK_EQ(p[12345], 0);
    pid_t pid = fork_or_fail();
    if (pid == 0) {
        memcpy(p + 1000, "written by the child", 21);
        _exit(0);
    }
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    BR_CHECK_EQ(strcmp((char *)p + 1000, "written by the child"), 0);
    BR_CHECK_OK(br_shared_memory_attach(&m2, br_shared_memory_fd(m)));
    BR_CHECK_EQ(br_shared_memory_size(m2), 1 << 20);
    unsigned char *q = br_shared_memory_buf(m2);
    BR_CHECK(q != p);
    BR_CHECK_EQ(strcmp((char *)q + 1000, "written by the child"), 0);
    br_shared_memory_close(m); /* the other handle keeps the memory */
    q[5] = 7;
    BR_CHECK_EQ(q[5], 7);
    br_shared_memory_close(m2);
    br_shared_memory_close(NULL);
    BR_CHECK_EQ(count_dev_shm(), shm_entries);
    check_baseline(b);
}

static void attach_by_descriptor(void **state) {
    (void)state;
    baseline b = take_baseline();
    br_mp_dict *d, *d2;
    br_mp_list *l, *l2;
    br_mp_value *v, *v2;
    br_mp_array *a, *a2;
    BR_CHECK_OK(br_mp_dict_new(&d, NULL));
    BR_CHECK_OK(br_mp_list_new(&l, NULL));
    BR_CHECK_OK(br_mp_value_new(&v, BR_MP_I64));
    BR_CHECK_OK(br_mp_array_new(&a, BR_MP_I64, 4, 0));
    BR_CHECK_OK(br_mp_dict_attach(&d2, br_mp_dict_fd(d)));
    BR_CHECK_OK(br_mp_list_attach(&l2, br_mp_list_fd(l)));
    BR_CHECK_OK(br_mp_value_attach(&v2, br_mp_value_fd(v)));
    BR_CHECK_OK(br_mp_array_attach(&a2, br_mp_array_fd(a)));
    /* Growth through one handle is seen through the other (it remaps). */
    static char big[1 << 20];
    memset(big, 'z', sizeof big);
    for (int i = 0; i < 8; i++) {
        char k[8];
        snprintf(k, sizeof k, "b%d", i);
        BR_CHECK_OK(br_mp_dict_set(d, k, strlen(k), big, sizeof big));
        BR_CHECK_OK(br_mp_list_append(l, big, sizeof big));
    }
    size_t n;
    BR_CHECK_OK(br_mp_dict_len(d2, &n));
    BR_CHECK_EQ(n, 8);
    void *got;
    BR_CHECK_OK(br_mp_dict_get(d2, "b7", 2, &got, &n));
    BR_CHECK_EQ(n, sizeof big);
    BR_CHECK(memcmp(got, big, n) == 0);
    br_mp_bytes_free(got);
    BR_CHECK_OK(br_mp_list_get(l2, 7, &got, &n));
    BR_CHECK_EQ(n, sizeof big);
    br_mp_bytes_free(got);
    BR_CHECK_OK(br_mp_value_add_i64(v2, 9, NULL));
    int64_t x;
    BR_CHECK_OK(br_mp_value_get_i64(v, &x));
    BR_CHECK_EQ(x, 9);
    BR_CHECK_OK(br_mp_array_set_i64(a2, 3, 4));
    BR_CHECK_OK(br_mp_array_get_i64(a, 3, &x));
    BR_CHECK_EQ(x, 4);
    /* A child that finds the objects by descriptor only, as a spawned one would. */
    int dfd = br_mp_dict_fd(d), lfd = br_mp_list_fd(l), vfd = br_mp_value_fd(v);
    pid_t pid = fork_or_fail();
    if (pid == 0) {
        br_mp_dict *cd;
        br_mp_list *cl;
        br_mp_value *cv;
        CHILD_OK(br_mp_dict_attach(&cd, dfd), 1);
        CHILD_OK(br_mp_list_attach(&cl, lfd), 2);
        CHILD_OK(br_mp_value_attach(&cv, vfd), 3);
        CHILD_OK(br_mp_dict_set_str(cd, "from", "the child"), 4);
        CHILD_OK(br_mp_list_append(cl, big, sizeof big), 5); /* grows it */
        CHILD_OK(br_mp_value_add_i64(cv, 1, NULL), 6);
        br_mp_dict_free(cd);
        br_mp_list_free(cl);
        br_mp_value_free(cv);
        _exit(0);
    }
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    char *s;
    BR_CHECK_OK(br_mp_dict_get_str(d2, "from", &s));
    BR_CHECK_EQ(strcmp(s, "the child"), 0);
    br_mp_bytes_free(s);
    BR_CHECK_OK(br_mp_list_len(l, &n));
    BR_CHECK_EQ(n, 9);
    BR_CHECK_OK(br_mp_value_get_i64(v2, &x));
    BR_CHECK_EQ(x, 10);
    /* The wrong kind, or no shared object at all. */
    br_mp_dict *bad;
    br_mp_list *badl;
    br_mp_value *badv;
    br_mp_array *bada;
    BR_CHECK_ERR(br_mp_dict_attach(&bad, br_mp_list_fd(l)), BR_EINVAL);
    BR_CHECK(bad == NULL);
    BR_CHECK_ERR(br_mp_list_attach(&badl, br_mp_dict_fd(d)), BR_EINVAL);
    BR_CHECK_ERR(br_mp_value_attach(&badv, br_mp_array_fd(a)), BR_EINVAL);
    BR_CHECK_ERR(br_mp_array_attach(&bada, br_mp_value_fd(v)), BR_EINVAL);
    int fds[2];
    BR_CHECK_OK(pipe(fds));
    BR_CHECK_ERR(br_mp_dict_attach(&bad, fds[0]), BR_EINVAL);
    BR_CHECK_ERR(br_mp_value_attach(&badv, fds[0]), BR_EINVAL);
    br_shared_memory *sm;
    BR_CHECK_ERR(br_shared_memory_attach(&sm, fds[0]), BR_EINVAL);
    close(fds[0]);
    close(fds[1]);
    BR_CHECK_ERR(br_mp_dict_attach(&bad, -1), BR_EINVAL);
    BR_CHECK_ERR(br_mp_dict_attach(&bad, 1000000), -EBADF);
    br_mp_dict_free(d);
    br_mp_dict_free(d2);
    br_mp_list_free(l);
    br_mp_list_free(l2);
    br_mp_value_free(v);
    br_mp_value_free(v2);
    br_mp_array_free(a);
    br_mp_array_free(a2);
    check_baseline(b);
}

/* --- bad input ------------------------------------------------------------------------ */

static void bad_input(void **state) {
    (void)state;
    baseline b = take_baseline();
    br_mp_dict *d;
    br_mp_list *l;
    BR_CHECK_ERR(br_mp_dict_new(NULL, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_mp_list_new(NULL, NULL), BR_EINVAL);
    BR_CHECK_OK(br_mp_dict_new(&d, NULL));
    BR_CHECK_OK(br_mp_list_new(&l, NULL));
    size_t n;
    bool found;
    void *v;
    br_mp_items *it;
    /* NULL handles. */
    BR_CHECK_ERR(br_mp_dict_set(NULL, "a", 1, "b", 1), BR_EINVAL);
    BR_CHECK_ERR(br_mp_dict_get(NULL, "a", 1, &v, &n), BR_EINVAL);
    BR_CHECK_ERR(br_mp_dict_len(NULL, &n), BR_EINVAL);
    BR_CHECK_ERR(br_mp_dict_keys(NULL, &it), BR_EINVAL);
    BR_CHECK_ERR(br_mp_dict_fd(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_mp_list_append(NULL, "a", 1), BR_EINVAL);
    BR_CHECK_ERR(br_mp_list_len(NULL, &n), BR_EINVAL);
    BR_CHECK_ERR(br_mp_value_add_i64(NULL, 1, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_mp_array_set_i64(NULL, 0, 1), BR_EINVAL);
    BR_CHECK_EQ(br_mp_array_len(NULL), 0);
    BR_CHECK(br_shared_memory_buf(NULL) == NULL);
    BR_CHECK_ERR(br_shared_memory_fd(NULL), BR_EINVAL);
    br_mp_dict_free(NULL);
    br_mp_list_free(NULL);
    br_mp_value_free(NULL);
    br_mp_array_free(NULL);
    br_mp_items_free(NULL);
    br_mp_bytes_free(NULL);
    /* NULL pointers with lengths, NULL results. */
    BR_CHECK_ERR(br_mp_dict_set(d, NULL, 3, "b", 1), BR_EINVAL);
    BR_CHECK_ERR(br_mp_dict_set(d, "a", 1, NULL, 3), BR_EINVAL);
    BR_CHECK_ERR(br_mp_dict_get(d, "a", 1, NULL, &n), BR_EINVAL);
    BR_CHECK_ERR(br_mp_dict_contains(d, "a", 1, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_mp_dict_len(d, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_mp_dict_items(d, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_mp_dict_set_str(d, NULL, "x"), BR_EINVAL);
    BR_CHECK_ERR(br_mp_dict_get_into(d, "a", 1, NULL, 4, &n), BR_EINVAL);
    BR_CHECK_ERR(br_mp_list_append(l, NULL, 1), BR_EINVAL);
    BR_CHECK_ERR(br_mp_list_get(l, 0, NULL, &n), BR_EINVAL);
    /* Huge sizes: refused before anything is read. */
    BR_CHECK_ERR(br_mp_dict_set(d, "a", 1, "b", SIZE_MAX / 2), BR_ENOMEM);
    BR_CHECK_ERR(br_mp_dict_set(d, "a", SIZE_MAX, "b", 1), BR_ENOMEM);
    BR_CHECK_ERR(br_mp_list_append(l, "a", SIZE_MAX - 4), BR_ENOMEM);
    BR_CHECK_ERR(br_mp_dict_contains(d, "a", 1, &found), 0);
    BR_CHECK(!found);
    BR_CHECK_OK(br_mp_dict_len(d, &n));
    BR_CHECK_EQ(n, 0);
    br_mp_shared_opts huge = {.initial_bytes = SIZE_MAX};
    br_mp_dict *d2;
    BR_CHECK_ERR(br_mp_dict_new(&d2, &huge), BR_ENOMEM);
    BR_CHECK(d2 == NULL);
    /* Lists: indexes. */
    BR_CHECK_ERR(br_mp_list_get(l, 0, &v, &n), BR_ERANGE);
    BR_CHECK_ERR(br_mp_list_set(l, 0, "x", 1), BR_ERANGE);
    BR_CHECK_OK(br_mp_list_append_str(l, "abc"));
    BR_CHECK_ERR(br_mp_list_get(l, 1, &v, &n), BR_ERANGE);
    BR_CHECK_ERR(br_mp_list_get(l, -2, &v, &n), BR_ERANGE);
    BR_CHECK_ERR(br_mp_list_get(l, INT64_MIN, &v, &n), BR_ERANGE);
    BR_CHECK_OK(br_mp_list_set(l, -1, "defg", 4));
    char small[2];
    BR_CHECK_ERR(br_mp_list_get_into(l, 0, small, sizeof small, &n), BR_ERANGE);
    BR_CHECK_EQ(n, 4);
    BR_CHECK_ERR(br_mp_dict_get_into(d, "zz", 2, small, sizeof small, &n), BR_ENOENT);
    BR_CHECK_OK(br_mp_dict_set_str(d, "zz", "long value"));
    BR_CHECK_ERR(br_mp_dict_get_into(d, "zz", 2, small, sizeof small, &n), BR_ERANGE);
    BR_CHECK_EQ(n, 10);
    int64_t x;
    BR_CHECK_ERR(br_mp_list_get_i64(l, 0, &x), BR_EINVAL); /* 4 bytes, not 8 */
    /* Value, Array, SharedMemory. */
    br_mp_value *val;
    br_mp_array *arr;
    br_shared_memory *m;
    BR_CHECK_ERR(br_mp_value_new(&val, BR_MP_BYTES), BR_EINVAL);
    BR_CHECK_ERR(br_mp_value_new(&val, (br_mp_type)77), BR_EINVAL);
    BR_CHECK_ERR(br_mp_value_new(NULL, BR_MP_I64), BR_EINVAL);
    BR_CHECK_ERR(br_mp_array_new(&arr, BR_MP_I64, 0, 0), BR_EINVAL);
    BR_CHECK_ERR(br_mp_array_new(&arr, BR_MP_BYTES, 4, 0), BR_EINVAL);
    BR_CHECK_ERR(br_mp_array_new(&arr, (br_mp_type)0, 4, 8), BR_EINVAL);
    BR_CHECK_ERR(br_mp_array_new(&arr, BR_MP_I64, SIZE_MAX / 4, 0), BR_ENOMEM);
    BR_CHECK_ERR(br_mp_array_new(&arr, BR_MP_BYTES, SIZE_MAX / 2, 3), BR_ENOMEM);
    BR_CHECK(arr == NULL);
    BR_CHECK_ERR(br_shared_memory_new(&m, 0), BR_EINVAL);
    BR_CHECK_ERR(br_shared_memory_new(&m, SIZE_MAX), BR_EINVAL);
    BR_CHECK_ERR(br_shared_memory_new(&m, (size_t)1 << 60), BR_ENOMEM);
    BR_CHECK(m == NULL);
    BR_CHECK_ERR(br_shared_memory_new(NULL, 10), BR_EINVAL);
    br_mp_list_free(l);
    br_mp_dict_free(d);
    check_baseline(b);
}

/* --- out of memory
 * ------------------------------------------------------------------------ */

static void out_of_memory(void **state) {
    (void)state;
    baseline b = take_baseline();
    /* Constructors: every failure is BR_ENOMEM and leaves nothing. */
    for (long i = 0;; i++) {
        br_mp_dict *d = NULL;
        br__alloc_fail_after(i);
        int rc = br_mp_dict_new(&d, NULL);
        br__alloc_fail_after(-1);
        if (rc == 0) {
            br_mp_dict_free(d);
            break;
        }
        BR_CHECK_ERR(rc, BR_ENOMEM);
        BR_CHECK(d == NULL);
        check_baseline(b);
    }
    for (long i = 0;; i++) {
        br_mp_list *l = NULL;
        br_mp_value *v = NULL;
        br_mp_array *a = NULL;
        br_shared_memory *m = NULL;
        br__alloc_fail_after(i);
        int r1 = br_mp_list_new(&l, NULL);
        int r2 = br_mp_value_new(&v, BR_MP_I64);
        int r3 = br_mp_array_new(&a, BR_MP_F64, 10, 0);
        int r4 = br_shared_memory_new(&m, 100);
        br__alloc_fail_after(-1);
        BR_CHECK(r1 == 0 || r1 == BR_ENOMEM);
        BR_CHECK(r2 == 0 || r2 == BR_ENOMEM);
        BR_CHECK(r3 == 0 || r3 == BR_ENOMEM);
        BR_CHECK(r4 == 0 || r4 == BR_ENOMEM);
        br_mp_list_free(l);
        br_mp_value_free(v);
        br_mp_array_free(a);
        br_shared_memory_close(m);
        check_baseline(b);
        if (!r1 && !r2 && !r3 && !r4)
            break;
    }
    /* Operations: a set that needs the region to grow, a get, a snapshot, an append.
     * Each fails whole (nothing changed) until it succeeds. */
    br_mp_dict *d;
    br_mp_list *l;
    br_mp_shared_opts o = {.initial_bytes = 1};
    BR_CHECK_OK(br_mp_dict_new(&d, &o));
    BR_CHECK_OK(br_mp_list_new(&l, &o));
    BR_CHECK_OK(br_mp_dict_set_str(d, "small", "x"));
    static char big[100000];
    memset(big, 'q', sizeof big);
    for (long i = 0;; i++) {
        br__alloc_fail_after(i);
        int rc = br_mp_dict_set(d, "big", 3, big, sizeof big);
        br__alloc_fail_after(-1);
        size_t n;
        BR_CHECK_OK(br_mp_dict_len(d, &n));
        if (rc == 0) {
            BR_CHECK_EQ(n, 2);
            break;
        }
        BR_CHECK_ERR(rc, BR_ENOMEM);
        BR_CHECK_EQ(n, 1);
    }
    for (long i = 0;; i++) {
        void *v = NULL;
        br_mp_items *it = NULL;
        size_t n = 0;
        br__alloc_fail_after(i);
        int r1 = br_mp_dict_get(d, "big", 3, &v, &n);
        int r2 = br_mp_dict_items(d, &it);
        br__alloc_fail_after(-1);
        BR_CHECK(r1 == 0 || r1 == BR_ENOMEM);
        BR_CHECK(r2 == 0 || r2 == BR_ENOMEM);
        if (r1 == 0)
            BR_CHECK(n == sizeof big && memcmp(v, big, n) == 0);
        if (r2 == 0)
            BR_CHECK_EQ(it->count, 2);
        br_mp_bytes_free(v);
        br_mp_items_free(it);
        if (!r1 && !r2)
            break;
    }
    for (long i = 0;; i++) {
        br__alloc_fail_after(i);
        int rc = br_mp_list_append(l, big, sizeof big);
        br__alloc_fail_after(-1);
        size_t n;
        BR_CHECK_OK(br_mp_list_len(l, &n));
        if (rc == 0) {
            BR_CHECK_EQ(n, 1);
            break;
        }
        BR_CHECK_ERR(rc, BR_ENOMEM);
        BR_CHECK_EQ(n, 0);
    }
    br_mp_list_free(l);
    br_mp_dict_free(d);
    check_baseline(b);
}

BR_TEST_MAIN(
    cmocka_unit_test(tutorial_dict_and_list), cmocka_unit_test(dict_many_processes),
    cmocka_unit_test(list_concurrent_appends), cmocka_unit_test(threads_and_processes),
    cmocka_unit_test(growth_seen_by_reader), cmocka_unit_test(delete_contains_len),
    cmocka_unit_test(snapshot_is_one_instant), cmocka_unit_test(sigkill_mid_update),
    cmocka_unit_test(owner_dies_holding_lock), cmocka_unit_test(value_from_many_processes),
    cmocka_unit_test(array_bounds_and_slices), cmocka_unit_test(shared_memory_fork_attach),
    cmocka_unit_test(attach_by_descriptor), cmocka_unit_test(bad_input),
    cmocka_unit_test(out_of_memory))
