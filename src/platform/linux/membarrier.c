/* The asymmetric fence on Linux: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), since
 * 4.14 (platform/platform.h). It interrupts only the CPUs running one of our threads,
 * and costs the caller a few microseconds. The global form (GLOBAL_EXPEDITED, since
 * 4.16) reaches the threads of every process registered for it: the process layer's
 * shared-memory rings, whose two sides are different processes. */
#include "platform/platform.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Registers for `cmd` if the kernel has it (`reg`: its registration command). */
static bool mb_register(int cmd, int reg) {
#if defined(SYS_membarrier)
    long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    return q > 0 && (q & cmd) && syscall(SYS_membarrier, reg, 0, 0) == 0;
#else
    (void)cmd;
    (void)reg;
    return false;
#endif
}

static int mb(int cmd) {
#if defined(SYS_membarrier)
    return syscall(SYS_membarrier, cmd, 0, 0) == 0 ? 0 : -1;
#else
    (void)cmd;
    return -1;
#endif
}

bool br__membarrier_init(void) {
    return mb_register(MEMBARRIER_CMD_PRIVATE_EXPEDITED,
                       MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED);
}

int br__membarrier(void) { return mb(MEMBARRIER_CMD_PRIVATE_EXPEDITED); }

bool br__membarrier_global_init(void) {
    return mb_register(MEMBARRIER_CMD_GLOBAL_EXPEDITED,
                       MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
}

int br__membarrier_global(void) { return mb(MEMBARRIER_CMD_GLOBAL_EXPEDITED); }
