/* The forkserver start method (process/start.h, br__forkserver_start): a server process
 * that forks every child on request, as Python's multiprocessing forkserver does.
 *
 * Design notes (the protocol a change must keep):
 *
 * The server. Started lazily, at the first forkserver start, by spawn
 * (br__spawn_helper: /proc/self/exe re-executed and diverted by br_process_main), so it
 * has no threads and none of the parent's state. The re-executed process forks once
 * and its first half _exits at once (the parent reaps it): the server proper is not the
 * parent's child. It so never shows up in the program's own waitpid(-1), nothing has to
 * reap it at the parent's exit, and a program that counts its children sees only the
 * ones it started. The server ignores SIGINT (a terminal's Ctrl-C reaches the parent
 * and the children, which have it back at its default), blocks SIGCHLD and reads it
 * from a signalfd.
 *
 * The control socket. A SOCK_SEQPACKET socketpair: the parent keeps one end
 * (close-on-exec, and closed in a fork child of the parent by the fork hook), the server
 * the other. The server's first message is a hello {FS_MAGIC, its pid}. Then, one at a
 * time (start.c's start lock serializes starts):
 *     request  {FS_MAGIC, daemon, nfds, targets[nfds]} with SCM_RIGHTS
 *              [status socket, spec memfd, fd_0 .. fd_{nfds-1}]
 *     reply    {pid or 0, err (a positive errno) or 0} with SCM_RIGHTS [pidfd] when the
 *              server could open one
 * The spec memfd is spawn's (start.c: write_spec): the child reads it as a spawned child
 * does (br__child_run_spec), resolving the task function by reference (process/fnref.c).
 * The fds are the ones the spec keeps: the child moves them to the parent's numbers
 * (targets), since a pool worker's spec names them by number.
 *
 * The exit status. The server is the child's parent, so only it can reap the child: it
 * keeps the status socket's other end per child and, when SIGCHLD says the child
 * ended, writes the raw wait status (an int32) on it and closes it. The parent's
 * watcher (process/watch.c, br__child_watch_remote) waits on its end of that socket
 * and finishes the child's exit future with Python's returncode. (The alternative, the
 * parent as PR_SET_CHILD_SUBREAPER with a double fork in the server, was not taken:
 * it is process-wide, so every orphan below the program, a daemonizing subprocess's
 * grandchild included, would become the parent's zombie, which braid's watcher never
 * waits for.) The pidfd in the reply is opened by the server before it can have reaped
 * the child, so it names that child even if the pid is reused later: signals
 * (terminate, kill) go through it as for any other child.
 *
 * The server's end. EOF on the control socket (the parent exited, or
 * br__forkserver_stop) ends the server: it exits at once. Its children don't wait for
 * it: a daemon child has PR_SET_PDEATHSIG(SIGKILL) on the server (a single-threaded
 * process, so the signal is tied to the server process, not to a thread of the
 * parent's) and dies with it, so with the parent; a non-daemon child runs on, orphaned,
 * as a forkserver child does in Python. A server that dies while the parent lives (it
 * was killed) is noticed at the next start (the request or the reply fails): the start
 * starts a new server and sends the request again, once; if that fails too the start
 * fails with BR_EBROKEN. The children the dead server had forked lose their exit
 * status: their futures fail with BR_EBROKEN once they end (watch.c).
 *
 * What the child inherits from the server, not from the parent: its stdin, stdout and
 * stderr (the parent's at the server's start), working directory, environment and
 * resource limits; an empty signal mask and default handlers.
 */
#include "process/start.h"

#include "process/watch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define FS_MAGIC 0x62726673u /* "brfs" */

typedef struct hello {
    uint32_t magic;
    int32_t pid;
} hello;

typedef struct request {
    uint32_t magic;
    uint32_t daemon;
    uint32_t nfds;
    int32_t targets[BR__CHILD_MAX_FDS];
} request;

typedef struct reply {
    int32_t pid;
    int32_t err;
} reply;

enum { REQ_FDS_MAX = BR__CHILD_MAX_FDS + 2 };

/* --- descriptors over the socket ----------------------------------------------------- */

/* Sends len bytes and nfds descriptors in one message. 0 or -errno. */
static int send_msg(int sock, const void *buf, size_t len, const int *fds, size_t nfds) {
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int) * REQ_FDS_MAX)];
        struct cmsghdr align;
    } u;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        memset(&u, 0, sizeof u);
        m.msg_control = u.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t w;
    do
        w = sendmsg(sock, &m, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        return -errno;
    return (size_t)w == len ? 0 : -EIO;
}

/* Receives one message: its length (0: EOF) or -errno; the descriptors it carried
 * (close-on-exec) in fds[0..*nfds). A truncated message is -EBADMSG (its descriptors
 * closed). */
static ssize_t recv_msg(int sock, void *buf, size_t len, int *fds, size_t maxfds,
                        size_t *nfds) {
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int) * REQ_FDS_MAX)];
        struct cmsghdr align;
    } u;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                       .msg_controllen = sizeof u.buf};
    *nfds = 0;
    ssize_t r;
    do
        r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (*nfds < maxfds)
                fds[(*nfds)++] = fd;
            else
                close(fd);
        }
    }
    if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        for (size_t i = 0; i < *nfds; i++)
            close(fds[i]);
        *nfds = 0;
        return -EBADMSG;
    }
    return r;
}

/* --- the server ----------------------------------------------------------------------- */

typedef struct kid {
    pid_t pid;
    int sock; /* the status socket's server end */
} kid;

static kid *kids;
static size_t nkids, capkids;

static _Noreturn void server_exit(void) { _exit(0); }

/* The forked child's setup: drop the server's descriptors, put the inherited ones at
 * the parent's numbers, and run the spec. */
static _Noreturn void child_main(int ctl, int sigfd, const request *rq, int *fds,
                                 size_t nfds, pid_t server) {
    close(ctl);
    close(sigfd);
    for (size_t i = 0; i < nkids; i++)
        close(kids[i].sock);
    close(fds[0]); /* the status socket: the server's to write */
    signal(SIGINT, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (rq->daemon)
        br__set_parent_death_signal(SIGKILL, server);
    /* Move every received descriptor above every number in play, then down to its
     * target: a received one may sit on another's target. */
    int hi = 3;
    for (size_t i = 1; i < nfds; i++)
        if (fds[i] >= hi)
            hi = fds[i] + 1;
    for (uint32_t i = 0; i < rq->nfds; i++)
        if (rq->targets[i] >= hi)
            hi = rq->targets[i] + 1;
    for (size_t i = 1; i < nfds; i++) {
        int up = fcntl(fds[i], F_DUPFD_CLOEXEC, hi);
        if (up < 0)
            _exit(126);
        close(fds[i]);
        fds[i] = up;
    }
    for (uint32_t i = 0; i < rq->nfds; i++) {
        if (dup2(fds[i + 2], rq->targets[i]) < 0)
            _exit(126);
        close(fds[i + 2]);
    }
    br__child_run_spec(fds[1]);
}

/* Reaps every ended child and sends its status. */
static void reap_kids(void) {
    for (;;) {
        int st = 0;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p < 0 && errno == EINTR)
            continue;
        if (p <= 0)
            return;
        for (size_t i = 0; i < nkids; i++) {
            if (kids[i].pid != p)
                continue;
            int32_t s = st;
            ssize_t w;
            do
                w = send(kids[i].sock, &s, sizeof s, MSG_NOSIGNAL | MSG_DONTWAIT);
            while (w < 0 && errno == EINTR);
            close(kids[i].sock);
            kids[i] = kids[--nkids];
            break;
        }
    }
}

/* One request from the control socket. false: the parent is gone. */
static bool serve(int ctl, int sigfd, pid_t self) {
    request rq;
    int fds[REQ_FDS_MAX];
    size_t nfds = 0;
    ssize_t r = recv_msg(ctl, &rq, sizeof rq, fds, REQ_FDS_MAX, &nfds);
    if (r == 0 || (r < 0 && r != -EBADMSG && r != -EAGAIN))
        return false;
    reply rp = {0, 0};
    size_t need = offsetof(request, targets);
    if (r < (ssize_t)need || rq.magic != FS_MAGIC || rq.nfds > BR__CHILD_MAX_FDS ||
        (size_t)r != need + rq.nfds * sizeof(int32_t) || nfds != rq.nfds + 2) {
        rp.err = EINVAL;
    } else if (nkids == capkids) {
        size_t cap = capkids ? capkids * 2 : 16;
        kid *k = br__realloc(kids, cap * sizeof *k);
        if (k) {
            kids = k;
            capkids = cap;
        } else {
            rp.err = ENOMEM;
        }
    }
    pid_t pid = -1;
    if (rp.err == 0) {
        fflush(NULL);
        pid = fork();
        if (pid == 0)
            child_main(ctl, sigfd, &rq, fds, nfds, self);
        if (pid < 0)
            rp.err = errno;
    }
    int pidfd = -1;
    if (pid > 0) {
        kids[nkids++] = (kid){pid, fds[0]};
        rp.pid = pid;
        pidfd = br__pidfd_open(pid);
    }
    for (size_t i = pid > 0 ? 1 : 0; i < nfds; i++)
        close(fds[i]);
    int rc = send_msg(ctl, &rp, sizeof rp, &pidfd, pidfd >= 0 ? 1 : 0);
    if (pidfd >= 0)
        close(pidfd);
    return rc == 0;
}

void br__forkserver_main(const char *fdarg) {
    char *end = NULL;
    long v = strtol(fdarg, &end, 10);
    if (!end || *end || v < 3 || v > 1 << 20)
        _exit(2);
    int ctl = (int)v;
    fcntl(ctl, F_SETFD, FD_CLOEXEC);
    /* The first half exits, so the server proper is nobody's child in the parent. */
    pid_t p = fork();
    if (p < 0)
        _exit(3);
    if (p > 0)
        _exit(0);
    signal(SIGINT, SIG_IGN);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd < 0)
        _exit(4);
    pid_t self = getpid();
    hello h = {FS_MAGIC, (int32_t)self};
    if (send_msg(ctl, &h, sizeof h, NULL, 0) != 0)
        server_exit();
    for (;;) {
        struct pollfd pf[2] = {{.fd = ctl, .events = POLLIN}, {.fd = sigfd, .events = POLLIN}};
        int n = poll(pf, 2, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            server_exit();
        }
        if (pf[1].revents) {
            struct signalfd_siginfo si;
            while (read(sigfd, &si, sizeof si) > 0) {
            }
            reap_kids();
        }
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (!serve(ctl, sigfd, self))
                server_exit();
            reap_kids(); /* a child that ended before it was listed */
        }
    }
}

/* --- the parent's side ------------------------------------------------------------------ */

static int ctl = -1;       /* the control socket, or -1: no server */
static pid_t server_pid;

static void fork_child_hook(void) {
    /* The server is the parent's: a fork child starts its own if it needs one. */
    if (ctl >= 0)
        close(ctl);
    ctl = -1;
    server_pid = 0;
}
static br__hooks fs_hooks = {.order = BR__ORDER_PROCESS, .name = "process.forkserver",
                             .child = fork_child_hook};

static void drop_server(void) {
    if (ctl >= 0)
        close(ctl);
    ctl = -1;
    server_pid = 0;
}

static int start_server(char *why, size_t whylen) {
    if (br__hooks_register(&fs_hooks) != 0)
        return BR_ENOMEM;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        int e = -errno;
        snprintf(why, whylen, "can't make the forkserver's socket");
        return e == -EMFILE || e == -ENFILE ? BR_EMFILE : e;
    }
    pid_t first = 0;
    int rc = br__spawn_helper(BR__FORKSERVER_MARKER, sv[1], &first);
    close(sv[1]);
    if (first > 0) { /* its first half exits at once (or the exec failed: 127) */
        int st;
        while (waitpid(first, &st, 0) < 0 && errno == EINTR) {
        }
    }
    hello h = {0, 0};
    size_t n = 0;
    ssize_t r = rc == 0 ? recv_msg(sv[0], &h, sizeof h, NULL, 0, &n) : 0;
    if (rc != 0 || r != (ssize_t)sizeof h || h.magic != FS_MAGIC || h.pid <= 0) {
        close(sv[0]);
        snprintf(why, whylen, "can't start the forkserver");
        return rc == BR_EAGAIN || rc == BR_ESTATE ? rc : BR_EBROKEN;
    }
    ctl = sv[0];
    server_pid = h.pid;
    return 0;
}

/* One request and its reply. 0 (out filled), a negative code, or 1: the server is gone
 * (send again to a new one). */
static int ask(const br__child_spec *spec, int specfd, br__child *out, char *why,
               size_t whylen) {
    int st[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, st) != 0) {
        snprintf(why, whylen, "can't make the child's status socket");
        return errno == EMFILE || errno == ENFILE ? BR_EMFILE : -errno;
    }
    request rq;
    memset(&rq, 0, sizeof rq);
    rq.magic = FS_MAGIC;
    rq.daemon = spec->daemon;
    rq.nfds = (uint32_t)spec->nfds;
    int fds[REQ_FDS_MAX];
    fds[0] = st[1];
    fds[1] = specfd;
    for (size_t i = 0; i < spec->nfds; i++) {
        rq.targets[i] = spec->fds[i];
        fds[i + 2] = spec->fds[i];
    }
    int rc = send_msg(ctl, &rq, offsetof(request, targets) + spec->nfds * sizeof(int32_t),
                      fds, spec->nfds + 2);
    close(st[1]);
    if (rc != 0) {
        close(st[0]);
        if (rc == -EPIPE || rc == -ECONNRESET || rc == -ENOTCONN)
            return 1;
        snprintf(why, whylen, "can't send the request to the forkserver");
        return rc;
    }
    reply rp = {0, 0};
    int pidfd = -1;
    size_t n = 0;
    ssize_t r = recv_msg(ctl, &rp, sizeof rp, &pidfd, 1, &n);
    if (n == 0)
        pidfd = -1;
    if (r != (ssize_t)sizeof rp) {
        close(st[0]);
        if (pidfd >= 0)
            close(pidfd);
        return 1; /* EOF: it died with our request */
    }
    if (rp.err != 0 || rp.pid <= 0) {
        close(st[0]);
        if (pidfd >= 0)
            close(pidfd);
        snprintf(why, whylen, "the forkserver couldn't fork");
        return rp.err == EAGAIN ? BR_EAGAIN : rp.err > 0 ? -rp.err : BR_EIO;
    }
    br_future *fut = NULL;
    rc = br__child_watch_remote(rp.pid, st[0], pidfd, &fut);
    if (rc != 0) {
        /* Nobody would learn its end: end it (the server reaps it). */
        if (pidfd >= 0) {
            br__pidfd_signal(pidfd, SIGKILL);
            close(pidfd);
        }
        close(st[0]);
        snprintf(why, whylen, "can't watch the child");
        return rc;
    }
    out->pid = rp.pid;
    out->pidfd = pidfd;
    out->exit = fut;
    return 0;
}

int br__forkserver_start(const br__child_spec *spec, int specfd, br__child *out,
                         char *why, size_t whylen) {
    char dummy[1];
    if (!why || !whylen) {
        why = dummy;
        whylen = sizeof dummy;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (ctl < 0) {
            int rc = start_server(why, whylen);
            if (rc != 0)
                return rc;
        }
        int rc = ask(spec, specfd, out, why, whylen);
        if (rc <= 0)
            return rc;
        drop_server(); /* it died: start a new one, once */
    }
    snprintf(why, whylen, "the forkserver died twice in a row");
    return BR_EBROKEN;
}

int br__forkserver_pid(void) { return ctl >= 0 ? (int)server_pid : 0; }

int br__forkserver_stop(int64_t deadline) {
    if (ctl < 0)
        return 0;
    pid_t pid = server_pid;
    int pidfd = br__pidfd_open(pid);
    drop_server();
    if (pidfd < 0)
        return 0; /* gone already (or no pidfds: it exits on its own) */
    int rc = 0;
    for (;;) {
        int64_t left = deadline - br_now();
        if (deadline != BR_FOREVER && left <= 0) {
            rc = BR_ETIMEDOUT;
            break;
        }
        int ms = deadline == BR_FOREVER ? -1 : (int)(left / BR_MSEC) + 1;
        struct pollfd pf = {.fd = pidfd, .events = POLLIN};
        int n = poll(&pf, 1, ms);
        if (n > 0)
            break;
        if (n < 0 && errno != EINTR) {
            rc = -errno;
            break;
        }
    }
    close(pidfd);
    return rc;
}
