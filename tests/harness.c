#include "harness.h"
#include "braid/process.h"
#include "core/lib.h"
#include "aio/loop.h"
#include "future/private.h"
#include "process/watch.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

double br_test_scale(void) {
    const char *s = getenv("BRAID_TEST_SCALE");
    if (s && *s)
        return atof(s);
#ifdef BRAID_SANITIZE_BUILD
    return 0.1;
#else
    return 1.0;
#endif
}

long br_test_scaled(long n, long floor) {
    long v = (long)((double)n * br_test_scale());
    return v < floor ? floor : v;
}

double br_test_time_multiplier(void) {
    const char *s = getenv("BRAID_TEST_TIMEOUT_MULTIPLIER");
    double m = (s && *s) ? atof(s) : 1.0;
#ifdef BRAID_SANITIZE_BUILD
    if (m < 4.0)
        m = 4.0;
#endif
    return m > 0 ? m : 1.0;
}

int64_t br_test_hang_guard_ns(void) {
    return (int64_t)(30 * BR_SEC * br_test_time_multiplier());
}

int64_t br_test_hang_guard(void) {
    return br_deadline_after(br_test_hang_guard_ns());
}

void br_test_futures_new(br_future **fs, size_t n) {
    for (size_t i = 0; i < n; i++)
        BR_CHECK_OK(br_future_new(&fs[i]));
}

void br_test_futures_release(br_future **fs, size_t n) {
    for (size_t i = 0; i < n; i++)
        br_future_release(fs[i]);
}

bool br_test_until_listener(br_future *const *fs, size_t n) {
    int64_t give_up = br_test_hang_guard();
    for (;;) {
        for (size_t i = 0; i < n; i++)
            if (atomic_load(&fs[i]->st) & BR__FF_LISTENERS)
                return true;
        if (br_now() >= give_up)
            return false;
        sched_yield();
    }
}

int64_t br_test_checksum(const void *p, size_t len) {
    const unsigned char *b = p;
    uint64_t s = 0;
    for (size_t i = 0; i < len; i++)
        s = s * 31 + b[i];
    return (int64_t)s;
}

static int count_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

int br_test_count_fds(void) {
    int n = count_dir("/proc/self/fd");
    return n < 0 ? n : n - 1; /* the DIR's own descriptor */
}

int br_test_count_threads(void) { return count_dir("/proc/self/task"); }

static void wait_count(const char *file, int line, const char *what, int (*count)(void),
                       int want) {
    int64_t give_up = br_test_hang_guard();
    int n;
    while ((n = count()) != want) {
        if (br_now() > give_up)
            fail_msg("%s:%d: %d %s at the hang guard, want %d", file, line, n, what, want);
        br_sleep(200 * BR_USEC);
    }
}

void br_test_wait_threads_(const char *file, int line, int want) {
    wait_count(file, line, "threads", br_test_count_threads, want);
}

void br_test_wait_fds_(const char *file, int line, int want) {
    wait_count(file, line, "open descriptors", br_test_count_fds, want);
}

static int count_watched(void) { return (int)br__child_watch_count(); }

void br_test_wait_no_children_(const char *file, int line) {
    wait_count(file, line, "children still watched", count_watched, 0);
    errno = 0;
    if (waitpid(-1, NULL, WNOHANG) >= 0 || errno != ECHILD)
        fail_msg("%s:%d: a child is left unreaped (a zombie, or one still running)", file,
                 line);
}

static void *record_tid(void *arg) {
    *(pid_t *)arg = (pid_t)syscall(SYS_gettid);
    return NULL;
}

/* Waits until thread `tid` is no longer listed. */
static void wait_tid_gone(pid_t tid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d", (int)tid);
    int64_t give_up = br_test_hang_guard();
    while (access(path, F_OK) == 0) {
        if (br_now() > give_up)
            fail_msg("joined thread %d still listed at the hang guard", (int)tid);
        br_sleep(200 * BR_USEC);
    }
}

int br_test_thread_baseline(void) {
    pid_t tid = 0;
    pthread_t th;
    BR_CHECK_EQ(pthread_create(&th, NULL, record_tid, &tid), 0);
    BR_CHECK_EQ(pthread_join(th, NULL), 0);
    wait_tid_gone(tid);
    /* the calibration helper must never show up in a count taken later */
    br_test_settle_calibration();
    return br_test_count_threads();
}

void br_test_settle_calibration(void) {
    /* braid measures spinning costs once, with a short-lived helper thread
     * (core/calib.c), at the first wait: do it now and wait until the helper has ended
     * (gone from /proc/self/task, its exit path included). */
    (void)br__calib_spin_ns();
    int64_t give_up = br_test_hang_guard();
    int helper;
    while ((helper = br__calib_helper_gone()) < 0) {
        if (br_now() > give_up)
            fail_msg("braid's calibration helper still running at the hang guard");
        br_sleep(200 * BR_USEC);
    }
    if (helper > 0)
        wait_tid_gone(helper);
}

/* One line of /proc/<pid>/task/<tid>/<file>, trailing newline cut; "" if unreadable. */
static void proc_line(pid_t pid, pid_t tid, const char *file, char *buf, size_t cap) {
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task/%d/%s", (int)pid, (int)tid, file);
    buf[0] = 0;
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = 0;
}

/* The pids of pid's children (from every thread's children list), at most cap. */
static size_t children_of(pid_t pid, pid_t *out, size_t cap) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char cp[96];
        snprintf(cp, sizeof cp, "/proc/%d/task/%d/children", (int)pid, atoi(e->d_name));
        FILE *f = fopen(cp, "re");
        int kid;
        while (f && n < cap && fscanf(f, "%d", &kid) == 1)
            out[n++] = kid;
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return n;
}

static void dump_tree(pid_t pid, int depth) {
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    proc_line(pid, pid, "cmdline", buf, 200);
    for (char *c = buf; c < buf + 199 && (c[0] || c[1]); c++)
        if (!c[0])
            c[0] = ' ';
    fprintf(stderr, "%*s--- pid %d: %s\n", depth * 2, "", (int)pid, buf);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        pid_t tid = atoi(e->d_name);
        char comm[64], wchan[64], sys[128], stat[512];
        proc_line(pid, tid, "comm", comm, sizeof comm);
        proc_line(pid, tid, "wchan", wchan, sizeof wchan);
        proc_line(pid, tid, "syscall", sys, sizeof sys);
        proc_line(pid, tid, "stat", stat, sizeof stat);
        const char *st = strrchr(stat, ')');
        fprintf(stderr, "%*s  tid %d %-15s state %c wchan %s syscall %.40s\n", depth * 2, "",
                (int)tid, comm, st && st[1] ? st[2] : '?', wchan, sys);
        proc_line(pid, tid, "stack", buf, sizeof buf); /* root only */
        if (buf[0])
            fprintf(stderr, "%s\n", buf);
    }
    if (d)
        closedir(d);
    pid_t kids[64];
    size_t n = children_of(pid, kids, 64);
    for (size_t i = 0; i < n; i++)
        dump_tree(kids[i], depth + 1);
}

void br_test_dump_tree(pid_t pid) { dump_tree(pid, 0); }

void br_test_kill_tree(pid_t pid) {
    /* Stop the parent first, so that it starts no more children while they are listed. */
    kill(pid, SIGSTOP);
    pid_t kids[64];
    size_t n = children_of(pid, kids, 64);
    for (size_t i = 0; i < n; i++)
        br_test_kill_tree(kids[i]);
    kill(pid, SIGKILL);
}

int br_test_wait_child_until(pid_t pid, int64_t deadline) {
    int st = 0;
    pid_t r;
    while ((r = waitpid(pid, &st, WNOHANG)) == 0 || (r < 0 && errno == EINTR)) {
        if (br_now() > deadline) {
            fprintf(stderr, "child %d still running at the hang guard; its tree:\n", (int)pid);
            br_test_dump_tree(pid);
            br_test_kill_tree(pid);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            fail_msg("child %d still running at the hang guard: killed with its descendants",
                     (int)pid);
        }
        br_sleep(BR_MSEC);
    }
    if (r != pid)
        fail_msg("waitpid(%d): got %d (errno %d)", (int)pid, (int)r, r < 0 ? errno : 0);
    return st;
}

int br_test_wait_child(pid_t pid) { return br_test_wait_child_until(pid, br_test_hang_guard()); }

int br_test_main(const struct CMUnitTest *tests, size_t n, const char *group, int argc,
                 char **argv) {
    /* The spawn entry point: a child spawned by a test (BR_START_SPAWN) re-runs this
     * binary and is diverted here to run its task. */
    br_process_main(argc, argv);
    /* Every loop's tasks on shared stacks (aio/loop.h): a suite written for tasks with
     * stacks of their own runs again with its waits parked from shared-stack coroutines
     * (tests/aio/tests.cmake). */
    const char *shared = getenv("BRAID_TEST_SHARED_STACKS");
    if (shared != NULL && strcmp(shared, "1") == 0)
        br__loop_shared_default = true;
    if (argc > 1) {
        size_t i;
        for (i = 0; i < n; i++)
            if (strcmp(tests[i].name, argv[1]) == 0)
                break;
        if (i == n) {
            fprintf(stderr, "%s: no test named '%s'\n", argv[0], argv[1]);
            return 2;
        }
        return _cmocka_run_group_tests(group, &tests[i], 1, NULL, NULL);
    }
    return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
}
