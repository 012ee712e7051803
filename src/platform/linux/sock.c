/* Sockets for the stream layer on Linux (platform/platform.h, "sock"): SOCK_NONBLOCK
 * and SOCK_CLOEXEC at socket() and accept4(), MSG_NOSIGNAL on every send (SIGPIPE
 * blocked around a pipe's write). */
#include "platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

int br__sock_stream(int family) {
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

int br__sock_accept(int fd) {
    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0)
            return c;
        /* A connection that died in the queue, or a signal: try the next one. */
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

/* write() to a pipe whose reader is gone raises SIGPIPE and has no MSG_NOSIGNAL: the
 * signal is blocked in this thread around the write, and one it raised is taken
 * from the thread's pending set before the old mask returns (a SIGPIPE that was
 * already pending stays pending). */
static ssize_t write_nosignal(int fd, const void *buf, size_t len) {
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t n = write(fd, buf, len);
    int e = errno;
    if (n < 0 && e == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return n;
}

long br__sock_send(int fd, const void *buf, size_t len, bool is_sock) {
    for (;;) {
        ssize_t n = is_sock ? send(fd, buf, len, MSG_NOSIGNAL) : write_nosignal(fd, buf, len);
        if (n >= 0)
            return (long)n;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

int br__sock_adopt(int fd, bool *is_sock) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return -errno;
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) != 0)
        return -errno;
    int type;
    socklen_t tl = sizeof type;
    *is_sock = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0;
    return 0;
}
