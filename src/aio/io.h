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

#include <unistd.h>

/* BR__IO_NEW, with READ or WRITE: the first wait on a descriptor braid has just made or
 * been handed (a stream's, a listener's, a connecting socket's). Its number may be one
 * that was closed behind the loop's back (a plain close() while registered), and what
 * the loop's table says about that number then belongs to the old file: with NEW the
 * loop forgets it (as br__io_forget) before it registers the new one, so the wait
 * can't sleep on a registration epoll dropped with the old file (aio/loop.c,
 * "Descriptors"). Costs nothing when the table knows nothing of the number. */
enum { BR__IO_READ = 1, BR__IO_WRITE = 2, BR__IO_NEW = 4 };

BR__EXT int br__io_wait(int fd, uint32_t events, int64_t deadline);

/* Before closing a descriptor a coroutine may have waited on, call br__io_forget(fd)
 * (or close it with br__io_close): a loop keeps a descriptor registered with its
 * poller between waits, so that a steady read/write cycle makes no epoll_ctl, and the
 * registration must go before the number can be reused. It acts on the loop running
 * on the calling thread (a no-op elsewhere): close a coroutine's descriptors on its
 * loop's thread (a coroutine, a callback, or with no thread running the loop). A
 * number closed without it is mended by the first wait on the next descriptor to get
 * that number, when that wait says BR__IO_NEW (every descriptor the stream layer makes
 * or adopts does: aio/loop.c, "Descriptors"). A coroutine still waiting on fd there is
 * woken (its retry then meets the closed descriptor). */
BR__EXT void br__io_forget(int fd);
static inline int br__io_close(int fd) {
    br__io_forget(fd);
    return close(fd);
}

/* Wakes the coroutines waiting on fd on the loop running on this thread (a no-op
 * elsewhere): their br__io_wait returns 0, as a spurious readiness would, and the
 * registration stays. For a waiter that must wait again for something else (the http
 * client's socket watchers, when libcurl changes its interest). */
BR__EXT void br__io_wake(int fd);

/* Set once by the loop (aio/loop.c): the coroutine path of br__io_wait. It returns 1
 * when the caller is not a coroutine on a loop (so the thread path runs), else the
 * result. The forget hook is br__io_forget's loop side. */
typedef int (*br__io_wait_fn)(int fd, uint32_t events, int64_t deadline);
extern _Atomic(br__io_wait_fn) br__io_wait_hook;
typedef void (*br__io_forget_fn)(int fd);
extern _Atomic(br__io_forget_fn) br__io_forget_hook;
extern _Atomic(br__io_forget_fn) br__io_wake_hook;

#endif
