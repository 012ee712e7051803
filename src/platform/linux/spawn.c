/* The platform's spawn helpers on Linux (platform/platform.h, "spawn"): the parent-death
 * signal (prctl) and marking descriptors close-on-exec in bulk (close_range). Both run
 * in a freshly forked child, so both are raw system calls: no allocation, no lock. */
#include "platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_close_range
#  define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#  define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

int br__set_parent_death_signal(int sig, pid_t parent_pid) {
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0) != 0)
        return -errno;
    /* The parent may have ended before the request was in place: the kernel would never
     * send the signal then, and we would have been handed to a subreaper or init. */
    if (getppid() != parent_pid)
        raise(sig);
    return 0;
}

void br__cloexec_from(int lowfd) {
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
        return;
    struct rlimit rl;
    long max = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (long)rl.rlim_cur < max)
        max = (long)rl.rlim_cur;
    for (long fd = lowfd; fd < max; fd++) {
        int fl = fcntl((int)fd, F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC))
            fcntl((int)fd, F_SETFD, fl | FD_CLOEXEC);
    }
}
