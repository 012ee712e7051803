/* A libFuzzer target over the client's reading of a reply: libcurl's HTTP/1.x parsing
 * (status line, headers, Content-Length, chunked transfer coding, gzip and deflate)
 * feeding braid's callbacks and the reply braid builds from them (src/http/client.c:
 * on_header, on_body, the Content-Type charset, Retry-After, br__hx_finish). Built
 * with clang -fsanitize=fuzzer,address,undefined by tests/http/tests.cmake, with
 * client.c and stubs for the few braid calls it makes off this path; CTest runs it
 * for a bounded time (http.fuzz_response) over the seeds in fuzz_response_corpus/.
 *
 * Each input is a server's whole reply: a thread accepts the transfer's connection on
 * a loopback listener, writes the reply and shuts its write side, while br_http_fetch
 * runs on the fuzzing thread, the thread path of the real code (curl_easy_perform on
 * the thread's handle, set up by br__hx_setup, read by on_header and on_body, built by
 * br__hx_finish). The client doesn't keep connections alive, so each run has its own.
 * The input's first byte picks the request's variations: bit 0 HEAD, bit 1 no gzip,
 * bit 2 a 64-byte body cap. For every reply, what a caller relies on is checked: a
 * status of three digits, 100 to 999, the body NUL-terminated after body_len and within the
 * cap, every header a NUL-terminated name and value without CR or LF (the same for
 * Content-Type), the charset non-empty and lower case, Retry-After a duration or -1;
 * and for every failure, no reply and one of the documented codes.
 */
#include "http/client.h"

#include "aio/io.h"
#include "aio/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* --- what client.c needs of libbraid, off the path fuzzed -------------------------- */

void *br__malloc(size_t n) {
    return malloc(n);
}
void *br__calloc(size_t count, size_t n) {
    return calloc(count, n);
}
void *br__realloc(void *p, size_t n) {
    return realloc(p, n);
}
char *br__strdup(const char *s) {
    return strdup(s);
}
void br__free(void *p) {
    free(p);
}
int br__misuse(int code, const char *what) {
    (void)what;
    return code;
}
int br__hooks_register(br__hooks *h) {
    (void)h;
    return 0;
}
int64_t br_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
void br__io_forget(int fd) {
    (void)fd;
}
br__atask *br__atask_current(void) {
    return NULL;
}
int br__http_global_init(void) {
    static int rc = -1;
    if (rc < 0)
        rc = curl_global_init(CURL_GLOBAL_ALL) == CURLE_OK ? 0 : BR_ENOMEM;
    return rc;
}
/* The loop's side and the futures are never reached: br_http_fetch isn't called. */
int br__hloop_fetch_async(br_http_client *c, const br_http_request *rq, br_future **out) {
    (void)c, (void)rq, (void)out;
    abort();
}
void br__hloop_free_all(br_http_client *c) {
    (void)c;
}
#define NEVER(name, ...)                                                                   \
    __VA_ARGS__ {                                                                          \
        abort();                                                                           \
    }
NEVER(br_strerror, const char *br_strerror(int code))
NEVER(br_future_cancel, bool br_future_cancel(br_future *f))
NEVER(br_future_done, bool br_future_done(const br_future *f))
NEVER(br_future_exception,
      int br_future_exception(br_future *f, int64_t d, int *code, const char **msg))
NEVER(br_future_release, void br_future_release(br_future *f))
NEVER(br_future_take_ptr, int br_future_take_ptr(br_future *f, int64_t d, void **out))

/* --- the server's side ------------------------------------------------------------ */

static int listen_fd = -1;
static int listen_port;

static void listen_once(void) {
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(listen_fd, 16) != 0 || getsockname(listen_fd, (struct sockaddr *)&a, &al) != 0)
        abort();
    listen_port = ntohs(a.sin_port);
}

typedef struct reply {
    const unsigned char *data;
    size_t len;
    int fd; /* the accepted connection, closed by the fuzz function */
} reply;

/* Accepts the transfer's connection, writes the reply, shuts the write side. */
static void *serve_reply(void *arg) {
    reply *rp = arg;
    rp->fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (rp->fd < 0)
        abort();
    for (size_t off = 0; off < rp->len;) {
        ssize_t n = write(rp->fd, rp->data + off, rp->len - off);
        if (n <= 0)
            break; /* the client gave up (a cap): the rest isn't wanted */
        off += (size_t)n;
    }
    shutdown(rp->fd, SHUT_WR);
    return NULL;
}

static bool has_crlf(const char *s) {
    return strchr(s, '\r') != NULL || strchr(s, '\n') != NULL;
}

static void check_reply(const br_http_response *r, size_t cap) {
    if (r->status < 100 || r->status > 999 || r->url == NULL || r->body == NULL)
        abort();
    if (r->body_len > cap || r->body[r->body_len] != '\0')
        abort();
    for (size_t i = 0; i < r->nheaders; i++) {
        const br_http_header *h = &r->headers[i];
        if (h->name == NULL || h->value == NULL || has_crlf(h->name) || has_crlf(h->value))
            abort();
    }
    if (r->content_type != NULL && has_crlf(r->content_type))
        abort();
    if (r->charset != NULL) {
        if (r->charset[0] == '\0')
            abort();
        for (const char *p = r->charset; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                abort();
    }
    if (r->retry_after_ns < -1 || r->redirects != 0)
        abort();
}

static bool code_expected(int rc) {
    switch (rc) {
    case BR_EPROTO: case BR_ECONNRESET: case BR_EMSGSIZE: case BR_ETIMEDOUT:
    case BR_ENOMEM: case BR_ECONNREFUSED: case BR_EIO:
        return true;
    default:
        return false;
    }
}

/* A line of the reply that starts with a space or a tab: an obs-fold line. */
static bool has_fold(const unsigned char *p, size_t n) {
    for (size_t i = 0; i + 1 < n; i++)
        if (p[i] == '\n' && (p[i + 1] == ' ' || p[i + 1] == '\t'))
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    /* Folded lines are left out: the libcurl under test (Debian 12's 7.88.1) reads and
     * frees memory it already freed on them when its handle is reused, which braid's
     * handles are (curl issue 11101, fixed in 8.1.0; this target found it: a status
     * line, then a folded line). docs/http-client.md says more. */
    if (size == 0 || has_fold(data + 1, size - 1))
        return 0;
    unsigned flags = data[0];
    bool small = flags & 4;
    static br_http_client *clients[2][2]; /* [small][no_gzip] */
    br_http_client **cp = &clients[small][(flags & 2) != 0];
    if (*cp == NULL &&
        br_http_client_new(cp, &(br_http_client_opts){.max_redirects = -1,
                                                      .max_body = small ? 64 : 0,
                                                      .no_gzip = flags & 2,
                                                      .no_keepalive = true}) != 0)
        abort();
    if (listen_fd < 0)
        listen_once();
    reply rp = {.data = data + 1, .len = size - 1, .fd = -1};
    pthread_t th;
    if (pthread_create(&th, NULL, serve_reply, &rp) != 0)
        abort();
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/page", listen_port);
    br_http_request rq = {.url = url,
                          .method = (flags & 1) ? "HEAD" : "GET",
                          .deadline = br_now() + 5 * BR_SEC};
    br_http_response *r = NULL;
    int rc = br_http_fetch(*cp, &rq, &r); /* on this thread: curl_easy_perform */
    if (rc == 0) {
        check_reply(r, small ? 64 : 64u << 20);
        br_http_response_free(r);
    } else if (r != NULL || !code_expected(rc)) {
        abort();
    }
    pthread_join(th, NULL);
    /* A reset rather than a close: no TIME_WAIT left for each of many thousand runs */
    struct linger lg = {1, 0};
    setsockopt(rp.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(rp.fd);
    return 0;
}
