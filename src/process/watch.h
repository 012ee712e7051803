/* process/watch.h: the child watcher, for the process layer's files (never installed).
 *
 * Every child braid starts (a br_process, a subprocess, a pool's worker) is waited for
 * here, in one place, and its end becomes a br_future: joining a process is waiting on
 * that future, so it goes through the waiter like every other blocking call (a thread
 * parks; later a coroutine suspends), takes a deadline, can be mixed with other
 * futures in br_wait, and a done-callback learns of a death at once (the process pool
 * watches its workers that way).
 *
 * The rules:
 *   - The watcher reaps the children it watches. Nobody else may wait for them:
 *     waitpid(-1, ...) or SIGCHLD set to SIG_IGN elsewhere in the program would steal
 *     the status (the future then fails with BR_ECHILD).
 *   - A child's future finishes with an int64 result, its returncode as Python spells
 *     it: the exit status (0..255), or -N when signal N ended it.
 *   - Done-callbacks on that future run on the watcher's thread: keep them short, never
 *     block in them (submit, signal, set a flag).
 *   - Signals go through the child's pidfd (br__pidfd_signal), never kill(pid): once
 *     the child is reaped its pid may name another process, its pidfd never does.
 */
#ifndef BRAID_PROCESS_WATCH_H
#define BRAID_PROCESS_WATCH_H

#include "braid/future.h"
#include "core/lib.h"

#include <sys/types.h>

/* Starts watching pid, a child of this process not yet reaped. pidfd: the caller's
 * pidfd for it (br__pidfd_open, or -1 where the kernel has none: the watcher then polls
 * the child every 10 ms); the watcher takes a duplicate, the caller keeps its own.
 * *out: the child's future (one reference, the caller's). 0, BR_EINVAL (pid <= 0, out
 * NULL), BR_ENOMEM, BR_EMFILE, or BR_EAGAIN (the watcher's thread couldn't start). On
 * error nothing watches pid: the caller must reap it. */
int br__child_watch(pid_t pid, int pidfd, br_future **out);

/* Starts watching pid, a child of the forkserver (process/forkserver.c), which reaps it
 * and writes its wait status (int32) on sock. On success the watcher owns sock (it
 * closes it when done); on error the caller keeps it. The watcher takes a duplicate of
 * pidfd (-1: none). The future finishes with the returncode, or fails with BR_EBROKEN
 * if sock ends without a status (the server died; with a pidfd, once the child ended
 * too). 0 or the errors of br__child_watch (sock < 0: BR_EINVAL). */
int br__child_watch_remote(pid_t pid, int sock, int pidfd, br_future **out);

/* Waits until one of fds[0..n) (n <= BR__FDS_WAIT_MAX) is ready for its events[i]
 * (EPOLLIN, EPOLLOUT; a hang-up or an error counts as ready), the deadline passes, or
 * the calling coroutine is cancelled, through the watcher: it adds the descriptors to
 * its epoll set (one-shot) and finishes a future when one is ready, and the caller
 * waits on that future, so a coroutine suspends where a thread would park. For callers
 * that may run in a coroutine (a thread can poll for itself). Readiness may be
 * spurious: callers retry their non-blocking calls. When it returns the descriptors
 * are out of the watcher's set (the caller may close them). 0, BR_ETIMEDOUT,
 * BR_ECANCELED, BR_ENOMEM, BR_EAGAIN (no watcher thread), or -errno from epoll_ctl. */
enum { BR__FDS_WAIT_MAX = 3 };
int br__fds_wait(const int *fds, const uint32_t *events, int n, int64_t deadline);

/* The watcher thread's kernel id (0: no watcher; -1: started, about to run): the process layer leaves it out
 * when it counts the threads that make fork risky. */
int br__child_watch_tid(void);

/* The number of children being watched (tests). */
size_t br__child_watch_count(void);

#endif
