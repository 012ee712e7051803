#define _GNU_SOURCE
/* Finding: a stale entry (bias_enter by a thread whose bias was just revoked: it
 * stores inside = 1, then sees owner changed and stores inside = 0) killed between its
 * two stores leaves inside == 1 with no owner. stale_gone() then clears the stale note
 * (its process is gone) but not inside; the next owner is given the bias with inside
 * already 1, and the next revoker waits on that 1 as if the new (live, idle) owner
 * were inside: BR_ETIMEDOUT every time (BR_FOREVER: a yield loop for ever) until that
 * owner happens to run its fast path again.
 * The window is two instructions wide, so the kill at that point is INJECTED: the
 * stale thread's process performs bias_enter's first store and SIGKILLs itself. That
 * is exactly the state such a death leaves. (This file includes mp_ring.c to reach
 * the field.) Usage: stale_dead_inside [inject|control] */
#include "../src/process/mp_ring.c"
#include "common.h"

int main(int argc, char **argv) {
    int inject = !(argc > 1 && strcmp(argv[1], "control") == 0);
    br__mpr *r = ring_new(1 << 16);
    br__mpr_side s = {.r = r, .fd = -1};
    int go[2], ready[2];
    if (pipe(go) || pipe(ready)) return 2;
    pid_t pa = fork();
    if (pa == 0) { /* process A: its thread becomes the producers' owner */
        for (uint64_t i = 0; i < 40; i++) br__mpr_put(&s, &i, sizeof i, BR_FOREVER);
        write(ready[1], "x", 1);
        char c;
        read(go[0], &c, 1); /* its bias has been revoked meanwhile: a stale entry */
        if (inject) {
            atomic_store_explicit(&r->pb.inside, 1, memory_order_relaxed);
            kill(getpid(), SIGKILL); /* dies before bias_enter's second store */
        }
        _exit(0);
    }
    char c;
    read(ready[0], &c, 1);
    dbg(r, "A owns the producers' side");
    uint64_t x = 1000;
    br__mpr_put(&s, &x, sizeof x, BR_FOREVER); /* revokes A: stale = A */
    dbg(r, "main revoked A");
    write(go[1], "x", 1);
    waitpid(pa, NULL, 0);
    br__mpr_debug d;
    int n = 0;
    do { /* main takes the lock until the side is biased to it, then stops */
        br__mpr_put(&s, &x, sizeof x, BR_FOREVER);
        br__mpr_debug_get(r, &d);
    } while (d.p_bias == 0 && ++n < 1000);
    dbg(r, "A gone; main biased, idle");
    fflush(stdout);
    pid_t pb = fork();
    if (pb == 0) {
        int64_t t0 = br_now();
        int rc = br__mpr_put(&s, &x, sizeof x, after_ms(2000));
        printf("  put from process B: rc %d after %lld ms\n", rc,
               (long long)((br_now() - t0) / 1000000));
        fflush(stdout);
        _exit(rc == 0 ? 0 : 1);
    }
    int st;
    waitpid(pb, &st, 0);
    int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    printf("SUMMARY stale_dead_inside (%s): %s\n", inject ? "inject" : "control",
           ok ? "put succeeded" : "put FAILED: inside left up by a dead stale entry");
    return ok ? 0 : 1;
}
