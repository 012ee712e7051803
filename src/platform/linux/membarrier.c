/* The asymmetric fence on Linux: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), since
 * 4.14 (platform/platform.h). It interrupts only the CPUs running one of our threads,
 * and costs the caller a few microseconds. The global flavour (GLOBAL_EXPEDITED, since
 * 4.16) interrupts the CPUs running a thread of any registered process. */
#include "platform/platform.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

bool br__membarrier_init(void) {
#if defined(SYS_membarrier)
    long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    return q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
           syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
    return false;
#endif
}

int br__membarrier(void) {
#if defined(SYS_membarrier)
    return syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0 ? 0 : -1;
#else
    return -1;
#endif
}

bool br__membarrier_global_init(void) {
#if defined(SYS_membarrier)
    long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    return q > 0 && (q & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
           syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0 &&
           syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0;
#else
    return false;
#endif
}

int br__membarrier_global(void) {
#if defined(SYS_membarrier)
    /* EINTR and ENOMEM (the kernel's cpumask allocation) are transient: retried, with
     * a yield, up to 64 times before the barrier counts as failed. */
    for (int i = 0;; i++) {
        if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0)
            return 0;
        if ((errno != EINTR && errno != ENOMEM) || i == 64)
            return -1;
        sched_yield();
    }
#else
    return -1;
#endif
}
