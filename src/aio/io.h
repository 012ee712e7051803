/* Waiting for a descriptor (internal): the one call the stream layer (aio/stream.c)
 * and anything else that does I/O blocks in.
 *
 * br__io_wait(fd, events, deadline) returns when fd is ready for `events`
 * (BR__IO_READ, BR__IO_WRITE, or both), the deadline passed (BR_ETIMEDOUT), or the
 * calling coroutine was cancelled (BR_ECANCELED). Called from a coroutine running on
 * a loop, it suspends only that coroutine: the loop registers fd with its poller and
 * resumes the coroutine when epoll reports it (the loop installs that path through
 * br__io_wait_hook when it is first created, so this file doesn't depend on the loop).
 * Called from a plain thread, it polls on the thread. Readiness may be spurious
 * (another reader took the data): callers retry their non-blocking call and wait
 * again. BR_EBADF for a negative fd.
 */
#ifndef BRAID_AIO_IO_H
#define BRAID_AIO_IO_H

#include "core/lib.h"

enum { BR__IO_READ = 1, BR__IO_WRITE = 2 };

int br__io_wait(int fd, uint32_t events, int64_t deadline);

/* Set once by the loop (aio/loop.c): the coroutine path of br__io_wait. It returns 1
 * when the caller is not a coroutine on a loop (so the thread path runs), else the
 * result. */
typedef int (*br__io_wait_fn)(int fd, uint32_t events, int64_t deadline);
extern _Atomic(br__io_wait_fn) br__io_wait_hook;

#endif
