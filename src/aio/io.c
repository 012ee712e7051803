/* br__io_wait (aio/io.h): the thread path, and the hook the loop installs for the
 * coroutine path. */
#include "aio/io.h"

#include <errno.h>
#include <poll.h>

_Atomic(br__io_wait_fn) br__io_wait_hook;
_Atomic(br__io_forget_fn) br__io_forget_hook;
_Atomic(br__io_forget_fn) br__io_wake_hook;

void br__io_wake(int fd) {
    br__io_forget_fn hook = atomic_load_explicit(&br__io_wake_hook, memory_order_acquire);
    if (hook != NULL && fd >= 0)
        hook(fd);
}

void br__io_forget(int fd) {
    br__io_forget_fn hook = atomic_load_explicit(&br__io_forget_hook, memory_order_acquire);
    if (hook != NULL && fd >= 0)
        hook(fd);
}

int br__io_wait(int fd, uint32_t events, int64_t deadline) {
    if (fd < 0)
        return BR_EBADF;
    br__io_wait_fn hook = atomic_load_explicit(&br__io_wait_hook, memory_order_acquire);
    if (hook != NULL) {
        int rc = hook(fd, events, deadline);
        if (rc != 1)
            return rc;
    }
    struct pollfd p = {.fd = fd, .events = 0};
    if (events & BR__IO_READ)
        p.events |= POLLIN;
    if (events & BR__IO_WRITE)
        p.events |= POLLOUT;
    for (;;) {
        int ms = -1;
        if (deadline != BR_FOREVER) {
            int64_t left = deadline - br_now();
            if (left <= 0)
                ms = 0;
            else
                ms = left / BR_MSEC + 1 > 1000000000 ? 1000000000 : (int)(left / BR_MSEC + 1);
        }
        int n = poll(&p, 1, ms);
        if (n > 0) {
            if (p.revents & POLLNVAL)
                return BR_EBADF;
            return 0; /* ready, or an error/hang-up the caller's next call reports */
        }
        if (n == 0) {
            if (br__deadline_passed(deadline))
                return BR_ETIMEDOUT;
            continue;
        }
        if (errno != EINTR)
            return -errno;
    }
}
