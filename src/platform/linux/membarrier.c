/* The asymmetric fence on Linux: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), since
 * 4.14 (platform/platform.h). It interrupts only the CPUs running one of our threads,
 * and costs the caller a few microseconds. */
#include "platform/platform.h"

#include <linux/membarrier.h>
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
