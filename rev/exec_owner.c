/* Finding: a biased owner killed by an exec() in another thread of its process.
 * The process lives on (same pid, new image), so owner_gone()/br__pid_gone() say
 * "alive" forever: if the owner was inside its fast path, pb.inside stays 1 and every
 * later producer's revocation waits on it (BR_FOREVER: forever; with a deadline:
 * BR_ETIMEDOUT every time). The producer side of the ring is wedged for good.
 * Usage: exec_owner [trials]. Prints per-trial outcome; exit 1 if any trial wedged. */
#include "common.h"
#define CAP ((size_t)1 << 26)

static br__mpr *R;
static int g_kill; /* control: SIGKILL the process instead of exec (recovered) */
static int reaped;
static void *producer(void *a) {
    (void)a;
    br__mpr_side s = {.r = R, .fd = -1};
    for (uint64_t i = 0;; i++)
        if (br__mpr_put(&s, &i, sizeof i, BR_FOREVER) != 0)
            _exit(3);
    return NULL;
}
static void *execer(void *a) {
    long us = (long)(intptr_t)a;
    usleep((useconds_t)us);
    if (g_kill) kill(getpid(), SIGKILL);
    char *argv[] = {"sleep", "60", NULL};
    execv("/bin/sleep", argv);
    _exit(4);
}
static int is_sleep(pid_t p) {
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/exe", p);
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n <= 0) return 0;
    buf[n] = 0;
    return strstr(buf, "sleep") != NULL;
}

int main(int argc, char **argv) {
    g_kill = argc > 2 && strcmp(argv[2], "kill") == 0;
    int trials = argc > 1 ? atoi(argv[1]) : 20, wedged = 0, lockwedged = 0, bad = 0;
    srand((unsigned)getpid());
    for (int t = 0; t < trials; t++) {
        R = ring_new(CAP);
        long delay = 20000 + rand() % 60000;
        pid_t c = fork();
        if (c == 0) {
            pthread_t a, b;
            pthread_create(&a, NULL, producer, NULL);
            pthread_create(&b, NULL, execer, (void *)(intptr_t)delay);
            pause();
        }
        br__mpr_side s = {.r = R, .fd = -1};
        uint64_t want = 0, v;
        size_t len;
        int rc;
        reaped = 0;
        while (!is_sleep(c) && !(g_kill && waitpid(c, NULL, WNOHANG) == c && (reaped = 1))) {
            rc = br__mpr_get(&s, &v, sizeof v, NULL, &len, after_ms(20));
            if (rc == 0) { if (v != want) bad++; want = v + 1; }
        }
        while ((rc = br__mpr_get(&s, &v, sizeof v, NULL, &len, after_ms(100))) == 0) {
            if (v != want) bad++;
            want = v + 1;
        }
        br__mpr_debug d;
        br__mpr_debug_get(R, &d);
        uint64_t x = 42;
        int64_t t0 = br_now();
        int prc = br__mpr_put(&s, &x, sizeof x, after_ms(1500));
        printf("trial %d: got %llu in order, owner pid %u inside %u plock %u -> put from "
               "another process: rc %d after %lld ms\n", t, (unsigned long long)want,
               d.p_bias, d.p_inside, d.plock, prc, (long long)((br_now() - t0) / 1000000));
        if (prc != 0 && d.p_inside) {
            if (!wedged) { /* what br_mp_queue_shutdown(q, immediate) then does: drain */
                fflush(stdout);
                pid_t y = fork();
                if (y == 0) {
                    alarm(3);
                    uint64_t q = 1;
                    _exit(br__mpr_put(&s, &q, sizeof q, BR_NOWAIT) == 0 ? 0 : 1);
                }
                int ys;
                waitpid(y, &ys, 0);
                printf("  BR_NOWAIT put in another process: %s\n",
                       WIFSIGNALED(ys) && WTERMSIG(ys) == SIGALRM ? "still spinning after 3 s (killed by alarm)" : "returned");
                pid_t z = fork();
                if (z == 0) {
                    alarm(3);
                    br__mpr_set_state(R, BR__MPR_SHUTDOWN | BR__MPR_SHUTDOWN_NOW, -1);
                    br__mpr_drain(&s);
                    _exit(0);
                }
                int zs;
                waitpid(z, &zs, 0);
                printf("  shutdown-now drain in another process: %s\n",
                       WIFSIGNALED(zs) && WTERMSIG(zs) == SIGALRM ? "still spinning after 3 s (killed by alarm)" : "returned");
            }
            wedged++;
        }
        else if (prc != 0) lockwedged++;
        if (prc == 0 && (br__mpr_get(&s, &v, sizeof v, NULL, &len, after_ms(100)) != 0 || v != 42 ||
                         br__mpr_qsize(R) != 0))
            bad++;
        if (!reaped) {
            kill(c, SIGKILL);
            waitpid(c, NULL, 0);
        }
        munmap(R, br__mpr_bytes(CAP));
    }
    printf("SUMMARY exec_owner (%s): %d/%d trials wedged by inside==1 (bias), %d by plock held "
           "(lock), %d order/count errors\n", g_kill ? "SIGKILL control" : "exec", wedged, trials, lockwedged, bad);
    return wedged ? 1 : 0;
}
