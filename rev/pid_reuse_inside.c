/* Finding: a biased owner killed inside its fast path whose pid is reused before the
 * next taker looks. owner_gone() asks br__pid_gone(pid) (kill/pidfd_open at the time of
 * asking), which names the new process: "alive". The token's random serial only helps
 * when the asker is itself the process that reused the pid. inside stays 1 for good:
 * every later put times out (BR_FOREVER: spins for ever). The pid is reused on purpose
 * through ns_last_pid, so run it in a new pid namespace (root):
 *   unshare -p -f --mount-proc rev/pid_reuse_inside.build [reuse|control] */
#include "common.h"

#define CAP ((size_t)1 << 24)

int main(int argc, char **argv) {
    int reuse = !(argc > 1 && strcmp(argv[1], "control") == 0);
    br__mpr *r = ring_new(CAP);
    br__mpr_side s = {.r = r, .fd = -1};
    fflush(stdout);
    pid_t v = fork();
    if (v == 0) {
        for (uint64_t i = 0;; i++)
            if (br__mpr_put(&s, &i, sizeof i, BR_FOREVER)) _exit(3);
    }
    br__mpr_debug d;
    int tries = 0;
    for (;;) { /* stop the victim at random moments until it is inside its fast path */
        usleep((useconds_t)(200 + rand() % 300));
        kill(v, SIGSTOP);
        int st;
        waitpid(v, &st, WUNTRACED);
        br__mpr_debug_get(r, &d);
        tries++;
        if (d.p_bias == (uint32_t)v && d.p_inside) break;
        kill(v, SIGCONT);
        if (tries > 5000) { printf("never inside\n"); return 2; }
    }
    kill(v, SIGKILL);
    waitpid(v, NULL, 0);
    printf("  victim %d killed inside its fast path (after %d stops)\n", v, tries);
    pid_t z = 0;
    if (reuse) {
        FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "w");
        if (!f) { perror("ns_last_pid (run under unshare -p -f --mount-proc)"); return 2; }
        fprintf(f, "%d", v - 1);
        fclose(f);
        fflush(stdout);
        z = fork();
        if (z == 0) { pause(); _exit(0); }
        printf("  an unrelated process now has pid %d\n", z);
    }
    uint64_t want = 0, x;
    size_t len;
    int rc, bad = 0;
    while ((rc = br__mpr_get(&s, &x, sizeof x, NULL, &len, after_ms(100))) == 0) {
        if (x != want) bad++;
        want = x + 1;
    }
    dbg(r, "drained");
    x = ~0ull;
    int64_t t0 = br_now();
    rc = br__mpr_put(&s, &x, sizeof x, after_ms(2000));
    printf("  put: rc %d after %lld ms; %llu victim messages in order, %d order errors\n", rc,
           (long long)((br_now() - t0) / 1000000), (unsigned long long)want, bad);
    if (z) { kill(z, SIGKILL); waitpid(z, NULL, 0); }
    printf("SUMMARY pid_reuse_inside (%s): %s\n", reuse ? "reuse" : "control",
           rc == 0 ? "put succeeded" : "put FAILED: dead owner's inside taken for a live one");
    return rc == 0 ? 0 : 1;
}
