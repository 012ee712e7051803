/* Streams (braid/stream.h): buffered non-blocking sockets whose every wait is
 * br__io_wait (aio/io.h), so that one code path serves threads (poll) and coroutines
 * on a loop (suspend).
 *
 * Design note: the rules a change must keep.
 *
 *  - The pattern of every call: try the non-blocking system call; on EAGAIN wait in
 *    br__io_wait for the descriptor and the caller's deadline, then try again.
 *    Readiness may be spurious (a coroutine's wait can be woken for another reason,
 *    or another reader took the data), so the retry loop must not assume the next
 *    call succeeds. Nothing here waits anywhere else (no blocking descriptor, no
 *    lock): that is what lets a coroutine run this code without stalling its loop.
 *
 *  - The read buffer holds rbuf[rpos..rlen). Calls that can fail part-way leave the
 *    stream consistent and lose nothing: readuntil consumes only when it returns 0 or
 *    BR_EOF; read and readexactly say in *got what they consumed. A wait that ends in
 *    BR_ETIMEDOUT or BR_ECANCELED therefore leaves the stream usable.
 *
 *  - eof is set when recv returned 0; it is final. werr is the first fatal send error
 *    (EPIPE, ECONNRESET...): once set, writes and drains return it. fd is -1 once
 *    closed, and every call then returns BR_EBADF (the handle lives until free).
 *
 *  - A read that got less than it asked for (short) leaves the socket drained, most
 *    likely: the next one waits for readiness first instead of trying a read that
 *    would say EAGAIN (a request/response peer's next message is not there yet). That
 *    is one system call less per round trip (four were read, read EAGAIN, epoll_wait,
 *    send; libuv stops reading at a short read the same way). A wait that times out
 *    still tries the read once, so data that was there is never reported as a
 *    timeout; a cancelled wait returns BR_ECANCELED having read nothing, as any wait.
 *
 *  - The write buffer holds wbuf[wpos..wlen). write sends at once when nothing is
 *    queued (the common request/response case costs one send and no copy), and
 *    queues the rest; only drain waits.
 *
 *  - Name resolution blocks in getaddrinfo, so a name (not a numeric address) is
 *    resolved on a daemon thread of its own that the caller joins through
 *    br_thread_join (a coroutine suspends in it). The job is reference-counted
 *    between the two: a caller that gives up (deadline, cancel) drops its reference
 *    and the thread frees the job when it ends.
 */
#include "aio/io.h"
#include "braid/stream.h"
#include "braid/subprocess.h"
#include "braid/thread.h"
#include "platform/platform.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

enum { RBUF_MIN = 16384 };

struct br_stream {
    int fd;
    int werr;       /* first fatal send error, 0 */
    bool eof;       /* the peer's end was read */
    bool wclosed;   /* write_eof done */
    bool is_sock;
    bool waited;    /* waited on once: later waits drop BR__IO_NEW (aio/io.h) */
    bool rshort;    /* the last read was short: the next one waits first */
    char *rbuf;
    size_t rcap, rpos, rlen;
    char *wbuf;
    size_t wcap, wpos, wlen;
};

struct br_listener {
    int fd;
    bool waited;     /* as a stream's */
    int port;
    char *unix_path; /* removed at free */
};

static int stream_new(int fd, bool is_sock, br_stream **out) {
    br_stream *s = br__calloc(1, sizeof *s);
    if (s == NULL)
        return BR_ENOMEM;
    s->fd = fd;
    s->is_sock = is_sock;
    *out = s;
    return 0;
}

/* The flag of a first wait on a descriptor (*waited false), which it then sets. */
static uint32_t first_wait(bool *waited) {
    bool first = !*waited;
    *waited = true;
    return first ? BR__IO_NEW : 0;
}

static int err_of_errno(int e) {
    /* A reset can also show up as EPIPE on send or as ECONNABORTED; keep the
     * kernel's word for it. */
    return -e;
}

/* --- resolving --------------------------------------------------------------------- */

struct resolve_job {
    _Atomic int refs;
    char *host;
    char service[8];
    int socktype;
    int rc; /* getaddrinfo's */
    struct addrinfo *res;
};

static void job_unref(struct resolve_job *j) {
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (j->res != NULL)
        freeaddrinfo(j->res);
    br__free(j->host);
    br__free(j);
}

static void resolve_thread(void *arg) {
    struct resolve_job *j = arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    j->rc = getaddrinfo(j->host, j->service, &hints, &j->res);
    job_unref(j);
}

static int gai_code(int rc) {
    switch (rc) {
    case 0:
        return 0;
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return BR_ENOENT;
    case EAI_AGAIN:
        return BR_EAGAIN;
    case EAI_MEMORY:
        return BR_ENOMEM;
    case EAI_SYSTEM:
        return errno != 0 ? -errno : BR_EIO;
    default:
        return BR_EINVAL;
    }
}

/* getaddrinfo for host:port; numeric hosts here, names on a helper thread. *res is
 * the caller's (freeaddrinfo). */
static int resolve(const char *host, int port, bool passive, int64_t deadline,
                   struct addrinfo **res) {
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = passive ? AF_INET : AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV |
                                         (passive ? AI_PASSIVE : 0)};
    if (host == NULL || host[0] == '\0') {
        if (!passive)
            return BR_EINVAL;
        host = NULL;
        hints.ai_flags &= ~AI_NUMERICHOST;
    }
    if (host != NULL && passive)
        hints.ai_family = AF_UNSPEC;
    int rc = getaddrinfo(host, service, &hints, res);
    if (rc != EAI_NONAME || host == NULL)
        return gai_code(rc);

    /* A name: resolve it on a thread of its own. */
    struct resolve_job *j = br__calloc(1, sizeof *j);
    if (j == NULL)
        return BR_ENOMEM;
    j->host = br__strdup(host);
    if (j->host == NULL) {
        br__free(j);
        return BR_ENOMEM;
    }
    memcpy(j->service, service, sizeof service);
    atomic_store_explicit(&j->refs, 2, memory_order_relaxed);
    br_thread *t;
    br_thread_opts topts = {.name = "braid-resolve", .daemon = true};
    rc = br_thread_start(&t, resolve_thread, j, &topts);
    if (rc != 0) {
        br__free(j->host);
        br__free(j);
        return rc;
    }
    rc = br_thread_join(t, deadline);
    br_thread_free(t);
    if (rc == 0) {
        rc = gai_code(j->rc);
        if (rc == 0) {
            *res = j->res;
            j->res = NULL;
        }
    }
    job_unref(j);
    return rc;
}

/* --- connecting -------------------------------------------------------------------- */

/* A non-blocking connect of a new socket to addr. The descriptor, or a code. */
static int connect_one(int family, const struct sockaddr *addr, socklen_t alen,
                       int64_t deadline) {
    int fd = br__sock_stream(family);
    if (fd < 0)
        return fd;
    int rc = 0;
    if (connect(fd, addr, alen) != 0) {
        if (errno != EINPROGRESS && errno != EINTR) {
            rc = err_of_errno(errno);
        } else {
            bool waited = false;
            for (;;) {
                rc = br__io_wait(fd, BR__IO_WRITE | first_wait(&waited), deadline);
                if (rc != 0)
                    break;
                int soerr = 0;
                socklen_t sl = sizeof soerr;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
                    soerr = errno;
                if (soerr == EINPROGRESS || soerr == EALREADY)
                    continue;
                if (soerr != 0) {
                    rc = err_of_errno(soerr);
                    break;
                }
                /* Writable with no error: connected, unless the wake was spurious. */
                struct sockaddr_storage peer;
                socklen_t pl = sizeof peer;
                if (getpeername(fd, (struct sockaddr *)&peer, &pl) == 0)
                    break;
                if (errno != ENOTCONN) {
                    rc = err_of_errno(errno);
                    break;
                }
            }
        }
    }
    if (rc != 0) {
        br__io_close(fd);
        return rc;
    }
    if (family != AF_UNIX) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

int br_open_connection(const char *host, int port, int64_t deadline, br_stream **out) {
    if (host == NULL || out == NULL || port < 0 || port > 65535)
        return BR__MISUSE(BR_EINVAL, "br_open_connection: host or out NULL, or a bad port");
    struct addrinfo *res = NULL;
    int rc = resolve(host, port, false, deadline, &res);
    if (rc != 0)
        return rc;
    int fd = BR_ENOENT;
    for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
        fd = connect_one(a->ai_family, a->ai_addr, a->ai_addrlen, deadline);
        if (fd >= 0 || fd == BR_ETIMEDOUT || fd == BR_ECANCELED)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return fd;
    rc = stream_new(fd, true, out);
    if (rc != 0)
        br__io_close(fd);
    return rc;
}

static int unix_addr(const char *path, struct sockaddr_un *sa, socklen_t *len) {
    size_t n = strlen(path);
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (n == 0)
        return BR_EINVAL;
    if (n >= sizeof sa->sun_path)
        return BR_ENAMETOOLONG;
    memcpy(sa->sun_path, path, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

int br_open_unix_connection(const char *path, int64_t deadline, br_stream **out) {
    if (path == NULL || out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_open_unix_connection: path or out NULL");
    struct sockaddr_un sa;
    socklen_t len;
    int rc = unix_addr(path, &sa, &len);
    if (rc != 0)
        return rc;
    int fd = connect_one(AF_UNIX, (struct sockaddr *)&sa, len, deadline);
    if (fd < 0)
        return fd;
    rc = stream_new(fd, true, out);
    if (rc != 0)
        br__io_close(fd);
    return rc;
}

int br_stream_from_fd(int fd, br_stream **out) {
    if (fd < 0 || out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_stream_from_fd: fd < 0 or out NULL");
    bool is_sock;
    int rc = br__sock_adopt(fd, &is_sock);
    if (rc != 0)
        return rc;
    return stream_new(fd, is_sock, out);
}

int br_popen_stream(br_popen *p, int which, br_stream **out) {
    if (p == NULL || which < 0 || which > 2 || out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_popen_stream: p or out NULL, or which not 0..2");
    int fd = br_popen_fd(p, which);
    if (fd < 0)
        return BR_EBADF;
    /* A descriptor of our own (the popen's is closed once we have it), so that the
     * stream and the handle can be freed in either order. */
    int mine = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (mine < 0)
        return -errno;
    int rc = br_stream_from_fd(mine, out);
    if (rc != 0) {
        br__io_close(mine);
        return rc;
    }
    (void)br_popen_close_fd(p, which);
    return 0;
}

/* --- reading ----------------------------------------------------------------------- */

/* One non-blocking read into p[0..n), waiting for data as needed. The count (> 0),
 * 0 at the end of the stream, or a code. */
static long recv_some(br_stream *s, void *p, size_t n, int64_t deadline) {
    if (s->eof)
        return 0;
    if (s->rshort && !br__deadline_passed(deadline)) {
        s->rshort = false;
        int rc = br__io_wait(s->fd, BR__IO_READ | first_wait(&s->waited), deadline);
        if (rc != 0 && rc != BR_ETIMEDOUT)
            return rc; /* the read below, after a timeout, says what was there */
    }
    for (;;) {
        ssize_t r = read(s->fd, p, n);
        if (r > 0) {
            s->rshort = (size_t)r < n;
            return (long)r;
        }
        if (r == 0) {
            s->eof = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return err_of_errno(errno);
        int rc = br__io_wait(s->fd, BR__IO_READ | first_wait(&s->waited), deadline);
        if (rc != 0)
            return rc;
    }
}

static size_t avail(const br_stream *s) {
    return s->rlen - s->rpos;
}

/* Makes room for at least `want` bytes in the buffer (data moved to the front). */
static int reserve(br_stream *s, size_t want) {
    if (s->rpos > 0 && (s->rpos == s->rlen || s->rcap - s->rlen < want - avail(s))) {
        memmove(s->rbuf, s->rbuf + s->rpos, avail(s));
        s->rlen -= s->rpos;
        s->rpos = 0;
    }
    if (s->rcap >= want && s->rcap > s->rlen)
        return 0;
    size_t cap = s->rcap < RBUF_MIN ? RBUF_MIN : s->rcap;
    while (cap < want || cap <= s->rlen)
        cap *= 2;
    char *nb = br__realloc(s->rbuf, cap);
    if (nb == NULL)
        return BR_ENOMEM;
    s->rbuf = nb;
    s->rcap = cap;
    return 0;
}

/* Reads more into the buffer (wanting room for `want` bytes in all). 1 if data came,
 * 0 at the end of the stream, or a code. */
static int fill(br_stream *s, size_t want, int64_t deadline) {
    int rc = reserve(s, want);
    if (rc != 0)
        return rc;
    long r = recv_some(s, s->rbuf + s->rlen, s->rcap - s->rlen, deadline);
    if (r < 0)
        return (int)r;
    s->rlen += (size_t)r;
    return r > 0;
}

static void take(br_stream *s, void *dst, size_t n) {
    if (n == 0)
        return;
    memcpy(dst, s->rbuf + s->rpos, n);
    s->rpos += n;
    if (s->rpos == s->rlen)
        s->rpos = s->rlen = 0;
}

int br_stream_read(br_stream *s, void *buf, size_t n, int64_t deadline, size_t *got) {
    if (s == NULL || got == NULL || (buf == NULL && n > 0))
        return BR__MISUSE(BR_EINVAL, "br_stream_read: a NULL argument");
    *got = 0;
    if (s->fd < 0)
        return BR_EBADF;
    if (n == 0)
        return 0;
    size_t a = avail(s);
    if (a > 0) {
        *got = a < n ? a : n;
        take(s, buf, *got);
        return 0;
    }
    /* Nothing buffered: straight into the caller's buffer, no copy. */
    long r = recv_some(s, buf, n, deadline);
    if (r < 0)
        return (int)r;
    if (r == 0)
        return BR_EOF;
    *got = (size_t)r;
    return 0;
}

int br_stream_readexactly(br_stream *s, void *buf, size_t n, int64_t deadline,
                          size_t *got) {
    if (s == NULL || got == NULL || (buf == NULL && n > 0))
        return BR__MISUSE(BR_EINVAL, "br_stream_readexactly: a NULL argument");
    *got = 0;
    if (s->fd < 0)
        return BR_EBADF;
    char *p = buf;
    size_t a = avail(s);
    if (a > 0) {
        size_t k = a < n ? a : n;
        take(s, p, k);
        *got = k;
    }
    while (*got < n) {
        long r = recv_some(s, p + *got, n - *got, deadline);
        if (r < 0)
            return (int)r;
        if (r == 0)
            return BR_EOF;
        *got += (size_t)r;
    }
    return 0;
}

static const char *find(const char *hay, size_t hlen, const char *sep, size_t slen) {
    if (slen == 1)
        return memchr(hay, sep[0], hlen);
    return memmem(hay, hlen, sep, slen);
}

int br_stream_readuntil(br_stream *s, const void *sep, size_t seplen, void *buf,
                        size_t cap, int64_t deadline, size_t *got) {
    if (s == NULL || sep == NULL || seplen == 0 || buf == NULL || cap == 0 || got == NULL)
        return BR__MISUSE(BR_EINVAL, "br_stream_readuntil: a NULL argument, seplen or cap 0");
    *got = 0;
    if (s->fd < 0)
        return BR_EBADF;
    size_t scanned = 0; /* bytes of the buffer known to hold no separator start */
    for (;;) {
        size_t a = avail(s);
        const char *base = s->rbuf + s->rpos;
        const char *hit = a > scanned ? find(base + scanned, a - scanned, sep, seplen) : NULL;
        if (hit != NULL) {
            size_t end = (size_t)(hit - base) + seplen;
            if (end > cap)
                return BR_ERANGE;
            take(s, buf, end);
            *got = end;
            return 0;
        }
        if (a >= cap)
            return BR_ERANGE;
        scanned = a >= seplen ? a - seplen + 1 : 0;
        if (s->eof) {
            take(s, buf, a);
            *got = a;
            return BR_EOF;
        }
        /* The buffer grows by steps as the data comes, up to cap bytes plus one (so
         * that "no separator within the limit" can be told from "not read yet"): a
         * large limit costs memory only when a long line arrives. */
        size_t want = a + RBUF_MIN;
        if (want > cap + 1 || want < a)
            want = cap + 1;
        int rc = fill(s, want, deadline);
        if (rc < 0)
            return rc;
    }
}

int br_stream_readline(br_stream *s, void *buf, size_t cap, int64_t deadline,
                       size_t *got) {
    return br_stream_readuntil(s, "\n", 1, buf, cap, deadline, got);
}

bool br_stream_at_eof(const br_stream *s) {
    return s != NULL && s->eof && avail(s) == 0;
}

/* --- writing ----------------------------------------------------------------------- */

static int send_fail(br_stream *s, long r) {
    if (r == BR_EPIPE || r == BR_ECONNRESET || r == BR_ENOTCONN || r == -ECONNABORTED)
        s->werr = (int)r;
    return (int)r;
}

int br_stream_write(br_stream *s, const void *data, size_t len) {
    if (s == NULL || (data == NULL && len > 0))
        return BR__MISUSE(BR_EINVAL, "br_stream_write: a NULL argument");
    if (s->fd < 0 || s->wclosed)
        return BR_EBADF;
    if (s->werr != 0)
        return s->werr;
    const char *p = data;
    if (s->wpos == s->wlen && len > 0) {
        long r = br__sock_send(s->fd, p, len, s->is_sock);
        if (r < 0 && r != BR_EAGAIN)
            return send_fail(s, r);
        if (r > 0) {
            p += r;
            len -= (size_t)r;
        }
    }
    if (len == 0)
        return 0;
    if (s->wpos > 0 && s->wpos == s->wlen)
        s->wpos = s->wlen = 0;
    if (s->wcap - s->wlen < len) {
        if (s->wpos > 0) {
            memmove(s->wbuf, s->wbuf + s->wpos, s->wlen - s->wpos);
            s->wlen -= s->wpos;
            s->wpos = 0;
        }
        if (s->wcap - s->wlen < len) {
            size_t cap = s->wcap < 4096 ? 4096 : s->wcap;
            while (cap - s->wlen < len)
                cap *= 2;
            char *nb = br__realloc(s->wbuf, cap);
            if (nb == NULL)
                return BR_ENOMEM;
            s->wbuf = nb;
            s->wcap = cap;
        }
    }
    memcpy(s->wbuf + s->wlen, p, len);
    s->wlen += len;
    return 0;
}

int br_stream_drain(br_stream *s, int64_t deadline) {
    if (s == NULL)
        return BR__MISUSE(BR_EINVAL, "br_stream_drain: s NULL");
    if (s->fd < 0)
        return BR_EBADF;
    if (s->werr != 0)
        return s->werr;
    while (s->wpos < s->wlen) {
        long r = br__sock_send(s->fd, s->wbuf + s->wpos, s->wlen - s->wpos, s->is_sock);
        if (r > 0) {
            s->wpos += (size_t)r;
            continue;
        }
        if (r != BR_EAGAIN && r != 0)
            return send_fail(s, r);
        int rc = br__io_wait(s->fd, BR__IO_WRITE | first_wait(&s->waited), deadline);
        if (rc != 0)
            return rc;
    }
    s->wpos = s->wlen = 0;
    return 0;
}

int br_stream_write_eof(br_stream *s, int64_t deadline) {
    int rc = br_stream_drain(s, deadline);
    if (rc != 0)
        return rc;
    if (s->wclosed)
        return 0;
    if (s->is_sock) {
        if (shutdown(s->fd, SHUT_WR) != 0)
            return -errno;
    } else {
        /* A pipe's write end has no half-close: closing it is the end of the data. */
        br__io_close(s->fd);
        s->fd = -1;
    }
    s->wclosed = true;
    return 0;
}

size_t br_stream_pending(const br_stream *s) {
    return s == NULL ? 0 : s->wlen - s->wpos;
}

/* --- the end ----------------------------------------------------------------------- */

int br_stream_close(br_stream *s) {
    if (s == NULL)
        return BR__MISUSE(BR_EINVAL, "br_stream_close: s NULL");
    if (s->fd >= 0) {
        br__io_close(s->fd);
        s->fd = -1;
    }
    s->rpos = s->rlen = 0;
    s->wpos = s->wlen = 0;
    return 0;
}

void br_stream_free(br_stream *s) {
    if (s == NULL)
        return;
    if (s->fd >= 0)
        br__io_close(s->fd);
    br__free(s->rbuf);
    br__free(s->wbuf);
    br__free(s);
}

int br_stream_fd(const br_stream *s) {
    return s == NULL ? -1 : s->fd;
}

static int format_addr(const struct sockaddr_storage *ss, socklen_t len, char *host,
                       size_t cap, int *port) {
    int p = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)ss;
        char tmp[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &in->sin_addr, tmp, sizeof tmp);
        if (strlen(tmp) >= cap)
            return BR_ERANGE;
        strcpy(host, tmp);
        p = ntohs(in->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)ss;
        char tmp[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &in6->sin6_addr, tmp, sizeof tmp);
        if (strlen(tmp) >= cap)
            return BR_ERANGE;
        strcpy(host, tmp);
        p = ntohs(in6->sin6_port);
    } else if (ss->ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const void *)ss;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t n = len > off ? strnlen(un->sun_path, len - off) : 0;
        if (n >= cap)
            return BR_ERANGE;
        memcpy(host, un->sun_path, n);
        host[n] = '\0';
    } else {
        return BR_ENOTSUP;
    }
    if (port != NULL)
        *port = p;
    return 0;
}

static int name_of(const br_stream *s, char *host, size_t cap, int *port, bool peer) {
    if (s == NULL || host == NULL || cap == 0)
        return BR__MISUSE(BR_EINVAL, "br_stream_sockname/peername: a NULL argument");
    host[0] = '\0';
    if (s->fd < 0)
        return BR_EBADF;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(&ss, 0, sizeof ss);
    int r = peer ? getpeername(s->fd, (struct sockaddr *)&ss, &len)
                 : getsockname(s->fd, (struct sockaddr *)&ss, &len);
    if (r != 0)
        return -errno;
    return format_addr(&ss, len, host, cap, port);
}

int br_stream_sockname(const br_stream *s, char *host, size_t cap, int *port) {
    return name_of(s, host, cap, port, false);
}

int br_stream_peername(const br_stream *s, char *host, size_t cap, int *port) {
    return name_of(s, host, cap, port, true);
}

/* --- listening --------------------------------------------------------------------- */

static int listener_new(int fd, int port, char *unix_path, br_listener **out) {
    br_listener *l = br__calloc(1, sizeof *l);
    if (l == NULL)
        return BR_ENOMEM;
    l->fd = fd;
    l->port = port;
    l->unix_path = unix_path;
    *out = l;
    return 0;
}

int br_listen_tcp(const char *host, int port, int backlog, br_listener **out) {
    if (out == NULL || port < 0 || port > 65535 || backlog < 0)
        return BR__MISUSE(BR_EINVAL, "br_listen_tcp: out NULL, or a bad port or backlog");
    struct addrinfo *res = NULL;
    int rc = resolve(host, port, true, BR_FOREVER, &res);
    if (rc != 0)
        return rc;
    int fd = br__sock_stream(res->ai_family);
    if (fd < 0) {
        freeaddrinfo(res);
        return fd;
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
        listen(fd, backlog == 0 ? 128 : backlog) != 0) {
        rc = -errno;
        freeaddrinfo(res);
        br__io_close(fd);
        return rc;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int bound = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    rc = listener_new(fd, bound, NULL, out);
    if (rc != 0)
        br__io_close(fd);
    return rc;
}

int br_listen_unix(const char *path, int backlog, br_listener **out) {
    if (path == NULL || out == NULL || backlog < 0)
        return BR__MISUSE(BR_EINVAL, "br_listen_unix: path or out NULL, or a bad backlog");
    struct sockaddr_un sa;
    socklen_t len;
    int rc = unix_addr(path, &sa, &len);
    if (rc != 0)
        return rc;
    char *copy = br__strdup(path);
    if (copy == NULL)
        return BR_ENOMEM;
    int fd = br__sock_stream(AF_UNIX);
    if (fd < 0) {
        br__free(copy);
        return fd;
    }
    if (bind(fd, (struct sockaddr *)&sa, len) != 0) {
        rc = -errno;
        br__io_close(fd);
        br__free(copy);
        return rc;
    }
    if (listen(fd, backlog == 0 ? 128 : backlog) != 0) {
        rc = -errno;
        br__io_close(fd);
        unlink(copy);
        br__free(copy);
        return rc;
    }
    rc = listener_new(fd, 0, copy, out);
    if (rc != 0) {
        br__io_close(fd);
        unlink(copy);
        br__free(copy);
    }
    return rc;
}

int br_listener_accept(br_listener *l, int64_t deadline, br_stream **out) {
    if (l == NULL || out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_listener_accept: l or out NULL");
    for (;;) {
        if (l->fd < 0)
            return BR_EBADF;
        int fd = br__sock_accept(l->fd);
        if (fd >= 0) {
            if (l->unix_path == NULL) {
                int one = 1;
                (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            }
            int rc = stream_new(fd, true, out);
            if (rc != 0)
                br__io_close(fd);
            return rc;
        }
        if (fd != BR_EAGAIN)
            return fd;
        int rc = br__io_wait(l->fd, BR__IO_READ | first_wait(&l->waited), deadline);
        if (rc != 0)
            return rc;
    }
}

int br_listener_port(const br_listener *l) {
    return l == NULL || l->fd < 0 ? -1 : l->port;
}

int br_listener_fd(const br_listener *l) {
    return l == NULL ? -1 : l->fd;
}

void br_listener_free(br_listener *l) {
    if (l == NULL)
        return;
    if (l->fd >= 0)
        br__io_close(l->fd);
    if (l->unix_path != NULL) {
        unlink(l->unix_path);
        br__free(l->unix_path);
    }
    br__free(l);
}
