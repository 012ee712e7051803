/* Finding: a taker in a process where membarrier is refused (a seccomp filter) meets a
 * bias whose owner THREAD has exited (its process lives on). bias_revoke returns
 * OWNER_BUSY (owner_gone() looks at the process only), owner_wait() waits for the owner
 * to drop the bias, which an exited thread never does: every put from that process
 * times out (BR_FOREVER: hangs), although stale_gone() already knows how to see that
 * thread is gone (tgkill ESRCH). Usage: nobarrier_exited_owner [filter|nofilter] */
#include "common.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static br__mpr *R;
static void *owner(void *a) {
    (void)a;
    br__mpr_side s = {.r = R, .fd = -1};
    for (uint64_t i = 0; i < 40; i++)
        br__mpr_put(&s, &i, sizeof i, BR_FOREVER);
    return NULL; /* the thread exits holding the bias */
}
static void deny_membarrier(void) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = 4, .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
        perror("seccomp");
        _exit(2);
    }
}

int main(int argc, char **argv) {
    int filter = !(argc > 1 && strcmp(argv[1], "nofilter") == 0);
    R = ring_new(1 << 16);
    int pfd[2];
    if (pipe(pfd)) return 2;
    pid_t p1 = fork();
    if (p1 == 0) {
        pthread_t a;
        pthread_create(&a, NULL, owner, NULL);
        pthread_join(a, NULL);
        write(pfd[1], "x", 1);
        pause();
    }
    char c;
    read(pfd[0], &c, 1);
    dbg(R, "owner thread exited, its process lives");
    fflush(stdout);
    pid_t p2 = fork();
    if (p2 == 0) {
        if (filter) deny_membarrier();
        br__mpr_side s = {.r = R, .fd = -1};
        uint64_t x = 7;
        int64_t t0 = br_now();
        int rc = br__mpr_put(&s, &x, sizeof x, after_ms(3000));
        printf("  put from a process %s membarrier: rc %d after %lld ms\n",
               filter ? "denied" : "allowed", rc, (long long)((br_now() - t0) / 1000000));
        fflush(stdout);
        _exit(rc == 0 ? 0 : 1);
    }
    int st;
    waitpid(p2, &st, 0);
    dbg(R, "after");
    kill(p1, SIGKILL);
    waitpid(p1, NULL, 0);
    int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    printf("SUMMARY nobarrier_exited_owner (%s): %s\n", filter ? "filter" : "nofilter",
           ok ? "put succeeded" : "put FAILED (owner thread gone, never dropped)");
    return ok ? 0 : 1;
}
