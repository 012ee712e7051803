/* Futex wait and wake on Linux (platform/platform.h): the parking primitive of the
 * thread parker, br__ilock and the queue's side locks. */
#include "platform/platform.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int br__futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t deadline, bool shared) {
    struct timespec ts, *tp = NULL;
    if (deadline != BR_FOREVER) {
        if (deadline <= 0) /* BR_NOWAIT and other times before boot */
            return BR_ETIMEDOUT;
        ts.tv_sec = deadline / BR_SEC;
        ts.tv_nsec = deadline % BR_SEC;
        tp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute timeout on CLOCK_MONOTONIC (without
     * FUTEX_CLOCK_REALTIME), which is exactly a braid deadline. */
    int op = FUTEX_WAIT_BITSET | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    long r = syscall(SYS_futex, (uint32_t *)addr, op, val, tp, NULL, FUTEX_BITSET_MATCH_ANY);
    if (r == 0)
        return 0;
    switch (errno) {
    case ETIMEDOUT:
        return BR_ETIMEDOUT;
    case EINTR:
        return BR_EINTR;
    default: /* EAGAIN: *addr != val already */
        return 0;
    }
}

int br__futex_wake(_Atomic uint32_t *addr, int n, bool shared) {
    int op = FUTEX_WAKE | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    long r = syscall(SYS_futex, (uint32_t *)addr, op, n, NULL, NULL, 0);
    return r > 0 ? (int)r : 0;
}
