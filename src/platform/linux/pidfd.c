/* Process descriptors on Linux (platform/platform.h, "pidfd"): pidfd_open (5.3) and
 * pidfd_send_signal (5.1), called through syscall() so that an older C library still
 * builds; an older kernel answers BR_ENOSYS and callers fall back. */
#include "platform/platform.h"

#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#  define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#  define SYS_pidfd_send_signal 424
#endif
#ifndef PIDFD_NONBLOCK
#  define PIDFD_NONBLOCK 04000 /* O_NONBLOCK */
#endif

int br__pidfd_open(pid_t pid) {
    if (pid <= 0)
        return BR_EINVAL;
    long fd = syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return -errno;
    return (int)fd;
}

int br__pidfd_signal(int pidfd, int sig) {
    if (pidfd < 0)
        return BR_EINVAL;
    if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) != 0)
        return -errno;
    return 0;
}
