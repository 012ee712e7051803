/* The HTTP/1.1 server (braid/http.h, br_http_server_*), over loopback with raw
 * sockets from the test's thread while the server's loop runs on its own thread:
 * routes and parameters, 404/405, keep-alive, pipelining, every malformed or
 * smuggling-shaped request of the hardening list answered with its status and the
 * connection closed, the header/body/idle timeouts (short ones in the options), POST
 * bodies (Content-Length and chunked), handlers awaiting thread-pool and process-pool
 * work (a killed worker is a 500 for that request only), a client leaving while its
 * handler awaits (the pool work is cancelled), graceful shutdown with a request in
 * flight, and no descriptor leaked.
 *
 * braid-test-timeout: 120
 */
#include "harness.h"

#include <braid/aio.h>
#include <braid/executor.h>
#include <braid/http.h>
#include <braid/processpool.h>
#include <braid/thread.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* --- the server on a loop thread ---------------------------------------------------- */

struct fx {
    br_loop *loop;
    br_thread *t;
    br_http_server *s;
    int port;
    int fds_before;
};

static void loop_main(void *arg) {
    struct fx *fx = arg;
    BR_CHECK_OK(br_loop_run_forever(fx->loop));
}

static void fx_new(struct fx *fx, const br_http_server_opts *o) {
    memset(fx, 0, sizeof *fx);
    fx->fds_before = br_test_count_fds();
    BR_CHECK_OK(br_loop_new(&fx->loop));
    BR_CHECK_OK(br_http_server_new(&fx->s, o));
}

static void fx_listen(struct fx *fx) {
    BR_CHECK_OK(br_http_server_listen(fx->s, fx->loop, "127.0.0.1", 0));
    fx->port = br_http_server_port(fx->s);
    BR_CHECK(fx->port > 0);
    BR_CHECK_OK(br_thread_start(&fx->t, loop_main, fx, NULL));
}

/* Shuts down, stops the loop, frees; then every descriptor is back (unless the test
 * checks that itself, after its pool: fds_before -1). */
static void fx_free(struct fx *fx) {
    BR_CHECK_OK(br_http_server_shutdown(fx->s, br_test_hang_guard()));
    BR_CHECK_OK(br_loop_stop(fx->loop));
    BR_CHECK_OK(br_thread_join(fx->t, br_test_hang_guard()));
    br_http_server_free(fx->s);
    BR_CHECK_OK(br_loop_free(fx->loop));
    if (fx->fds_before >= 0)
        br_test_wait_fds(fx->fds_before);
}

/* --- a raw client -------------------------------------------------------------------- */

struct cl {
    int fd;
    char buf[1 << 16];
    size_t len;
};

static void cl_open(struct cl *c, int port) {
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BR_CHECK(c->fd >= 0);
    struct timeval tv = {.tv_sec = br_test_hang_guard_ns() / BR_SEC};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BR_CHECK_EQ(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
}

static void cl_close(struct cl *c) {
    close(c->fd);
    c->fd = -1;
}

static void cl_send(struct cl *c, const char *data, size_t n) {
    while (n > 0) {
        ssize_t k = send(c->fd, data, n, MSG_NOSIGNAL);
        BR_CHECK(k > 0);
        data += k;
        n -= (size_t)k;
    }
}

static void cl_sends(struct cl *c, const char *s) {
    cl_send(c, s, strlen(s));
}

/* Reads more; false at EOF or an error (a reset). */
static bool cl_more(struct cl *c) {
    BR_CHECK(c->len < sizeof c->buf);
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    return true;
}

struct resp {
    int status;
    char head[4096];
    char body[1 << 15];
    size_t body_len;
};

/* Reads one response (Content-Length framed). false if the connection ended first. */
static bool cl_resp(struct cl *c, struct resp *r) {
    char *end;
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL)
        if (!cl_more(c))
            return false;
    size_t hl = (size_t)(end - c->buf) + 4;
    BR_CHECK(hl < sizeof r->head);
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    BR_CHECK_EQ(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
    size_t cl = 0;
    const char *h = strcasestr(r->head, "\r\nContent-Length: ");
    if (h != NULL)
        cl = strtoul(h + 18, NULL, 10);
    if (strncmp(r->head, "HTTP/1.1 100", 12) == 0)
        cl = 0;
    while (c->len < hl + cl)
        if (!cl_more(c))
            return false;
    BR_CHECK(cl < sizeof r->body);
    memcpy(r->body, c->buf + hl, cl);
    r->body[cl] = '\0';
    r->body_len = cl;
    memmove(c->buf, c->buf + hl + cl, c->len - hl - cl);
    c->len -= hl + cl;
    return true;
}

/* True once the server has closed the connection (EOF or reset), nothing left unread. */
static bool cl_closed(struct cl *c) {
    char b[256];
    for (;;) {
        ssize_t n = recv(c->fd, b, sizeof b, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return c->len == 0;
        if (n < 0)
            return false; /* the hang guard's receive timeout */
        c->len += (size_t)n;
    }
}

static bool has_header(const struct resp *r, const char *line) {
    return strcasestr(r->head, line) != NULL;
}

/* --- handlers --------------------------------------------------------------------------
 */

static int h_hello(br_http_req *req, br_http_res *res, void *arg) {
    (void)req;
    (void)arg;
    return br_http_res_send(res, 200, "text/plain", "Hello, World!", 13);
}

static int h_echo_params(br_http_req *req, br_http_res *res, void *arg) {
    (void)arg;
    char b[512];
    const char *a = br_http_req_param(req, "a"), *rest = br_http_req_param(req, "rest");
    int n = snprintf(b, sizeof b, "%s|%s|%s|%s|%s", br_http_req_method(req),
                     br_http_req_path(req), br_http_req_query(req), a ? a : "-",
                     rest ? rest : "-");
    BR_CHECK_OK(br_http_res_header(res, "X-Test", "yes"));
    return br_http_res_send(res, 200, "text/plain", b, (size_t)n);
}

static int h_echo_body(br_http_req *req, br_http_res *res, void *arg) {
    (void)arg;
    size_t n;
    const void *b = br_http_req_body(req, &n);
    return br_http_res_send(res, 200, "application/octet-stream", b, n);
}

static int h_fail(br_http_req *req, br_http_res *res, void *arg) {
    (void)req;
    (void)res;
    (void)arg;
    return BR_EINVAL;
}

static int h_count(br_http_req *req, br_http_res *res, void *arg) {
    (void)req;
    atomic_int *n = arg;
    char b[32];
    int k = snprintf(b, sizeof b, "%d", atomic_fetch_add(n, 1));
    return br_http_res_send(res, 200, "text/plain", b, (size_t)k);
}

static void add_basic_routes(struct fx *fx) {
    BR_CHECK_OK(br_http_route(fx->s, "GET", "/hello", h_hello, NULL));
    BR_CHECK_OK(br_http_route(fx->s, "GET", "/p/{a}/x/{rest*}", h_echo_params, NULL));
    BR_CHECK_OK(br_http_route(fx->s, "GET", "/p/{a}", h_echo_params, NULL));
    BR_CHECK_OK(br_http_route(fx->s, "POST", "/echo", h_echo_body, NULL));
    BR_CHECK_OK(br_http_route(fx->s, NULL, "/fail", h_fail, NULL));
}

/* --- routes -------------------------------------------------------------------------- */

static void routes_and_params(void **state) {
    (void)state;
    struct fx fx;
    fx_new(&fx, NULL);
    add_basic_routes(&fx);
    fx_listen(&fx);
    struct cl c;
    struct resp r;
    cl_open(&c, fx.port);
    cl_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 200);
    BR_CHECK(strcmp(r.body, "Hello, World!") == 0);
    BR_CHECK(has_header(&r, "\r\nContent-Type: text/plain\r\n"));
    BR_CHECK(has_header(&r, "\r\nDate: "));

    cl_sends(&c, "GET /p/7%2Fb?q=1&z HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 404); /* %2F decodes to '/': two segments, no route */
    cl_sends(&c, "GET /p/h%C3%A9llo?q=1&z HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 200);
    BR_CHECK(strcmp(r.body, "GET|/p/h\xc3\xa9llo|q=1&z|h\xc3\xa9llo|-") == 0);
    BR_CHECK(has_header(&r, "\r\nX-Test: yes\r\n"));
    cl_sends(&c, "GET /p/1/x/deep/er/path HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK(strcmp(r.body, "GET|/p/1/x/deep/er/path||1|deep/er/path") == 0);
    cl_sends(&c, "GET http://x/p/abs HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK(strcmp(r.body, "GET|/p/abs||abs|-") == 0);

    cl_sends(&c, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 404);
    BR_CHECK(has_header(&r, "application/json"));
    BR_CHECK(strcmp(r.body, "{\"error\":\"not found\"}") == 0);
    cl_sends(&c, "GET /p/ HTTP/1.1\r\nHost: x\r\n\r\n"); /* a parameter is never empty */
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 404);
    cl_sends(&c, "DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 405);
    cl_sends(&c, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    char *end;
    while ((end = memmem(c.buf, c.len, "\r\n\r\n", 4)) == NULL)
        BR_CHECK(cl_more(&c));
    BR_CHECK(memmem(c.buf, c.len, "Content-Length: 13\r\n", 20) != NULL);
    BR_CHECK_EQ((size_t)(end + 4 - c.buf), c.len); /* no body after HEAD's head */
    c.len = 0;
    cl_sends(&c, "PUT /fail HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 500);
    BR_CHECK(strstr(r.body, "\"error\"") != NULL);
    /* still the same connection after all of it */
    cl_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 200);
    cl_close(&c);
    fx_free(&fx);
}

static void bad_patterns(void **state) {
    (void)state;
    br_http_server *s;
    BR_CHECK_OK(br_http_server_new(&s, NULL));
    BR_CHECK_ERR(br_http_route(s, "GET", "nope", h_hello, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_http_route(s, "GET", "/a/{b", h_hello, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_http_route(s, "GET", "/a/x{b}", h_hello, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_http_route(s, "GET", "/a/{}", h_hello, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_http_route(s, "GET", "/a/{r*}/b", h_hello, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_http_route(s, "GET", "/a/{b-c}", h_hello, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_http_route(s, "GET", "/a", NULL, NULL), BR_EINVAL);
    BR_CHECK_OK(br_http_route(s, "GET", "/", h_hello, NULL));
    BR_CHECK_OK(br_http_route(s, "GET", "/{a}/{b}/{c*}", h_hello, NULL));
    br_http_server_free(s);
}

/* --- keep-alive and pipelining ------------------------------------------------------- */

static void keepalive_many(void **state) {
    (void)state;
    struct fx fx;
    atomic_int n = 0;
    fx_new(&fx, NULL);
    BR_CHECK_OK(br_http_route(fx.s, "GET", "/n", h_count, &n));
    fx_listen(&fx);
    struct cl c;
    struct resp r;
    cl_open(&c, fx.port);
    for (int i = 0; i < 500; i++) {
        cl_sends(&c, "GET /n HTTP/1.1\r\nHost: x\r\n\r\n");
        BR_CHECK(cl_resp(&c, &r));
        BR_CHECK_EQ(r.status, 200);
        BR_CHECK_EQ(atoi(r.body), i);
        BR_CHECK(!has_header(&r, "Connection: close"));
    }
    /* Connection: close honoured: the answer says so and the connection ends */
    cl_sends(&c, "GET /n HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(atoi(r.body), 500);
    BR_CHECK(has_header(&r, "\r\nConnection: close\r\n"));
    BR_CHECK(cl_closed(&c));
    cl_close(&c);
    /* HTTP/1.0: closes unless it asked for keep-alive */
    cl_open(&c, fx.port);
    cl_sends(&c, "GET /n HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK(has_header(&r, "\r\nConnection: keep-alive\r\n"));
    cl_sends(&c, "GET /n HTTP/1.0\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(atoi(r.body), 502);
    BR_CHECK(cl_closed(&c));
    cl_close(&c);
    fx_free(&fx);
}

static void pipelining(void **state) {
    (void)state;
    struct fx fx;
    atomic_int n = 0;
    fx_new(&fx, NULL);
    BR_CHECK_OK(br_http_route(fx.s, "GET", "/n", h_count, &n));
    add_basic_routes(&fx);
    fx_listen(&fx);
    struct cl c;
    struct resp r;
    cl_open(&c, fx.port);
    cl_sends(&c, "GET /n HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde"
                 "GET /p/third HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK(strcmp(r.body, "0") == 0);
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK(strcmp(r.body, "abcde") == 0);
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK(strcmp(r.body, "GET|/p/third||third|-") == 0);
    /* 1,000 requests in one write (beyond the server's 16 KiB read buffer), answered
     * in order, none lost or repeated */
    enum { MANY = 1000 };
    static char many[MANY * 40];
    size_t len = 0;
    for (int i = 0; i < MANY; i++)
        len += (size_t)sprintf(many + len, "GET /n HTTP/1.1\r\nHost: x\r\n\r\n");
    cl_send(&c, many, len);
    for (int i = 0; i < MANY; i++) {
        BR_CHECK(cl_resp(&c, &r));
        BR_CHECK_EQ(atoi(r.body), i + 1);
    }
    BR_CHECK_EQ(atomic_load(&n), MANY + 1);
    cl_close(&c);
    fx_free(&fx);
}

/* --- bodies -------------------------------------------------------------------------- */

static void post_bodies(void **state) {
    (void)state;
    struct fx fx;
    fx_new(&fx, NULL);
    add_basic_routes(&fx);
    fx_listen(&fx);
    struct cl c;
    struct resp r;
    cl_open(&c, fx.port);
    cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 200);
    BR_CHECK(strcmp(r.body, "hello world") == 0);
    cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n1;ext=1\r\n,\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK(strcmp(r.body, "hello, world") == 0);
    /* a body arriving in pieces, with Expect: 100-continue */
    cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n"
                 "Expect: 100-continue\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 100);
    static char big[20000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    for (size_t off = 0; off < sizeof big; off += 5000)
        cl_send(&c, big + off, 5000);
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.body_len, sizeof big);
    BR_CHECK(memcmp(r.body, big, sizeof big) == 0);
    /* an empty body */
    cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.body_len, 0);
    cl_close(&c);
    fx_free(&fx);
}

/* --- malformed and smuggling-shaped requests ---------------------------------------- */

struct bad {
    const char *name;
    const char *req;
    int status;
};

static void expect_rejected(int port, const char *req, size_t len, int status,
                            const char *name) {
    struct cl c;
    struct resp r;
    cl_open(&c, port);
    cl_send(&c, req, len);
    if (!cl_resp(&c, &r))
        fail_msg("%s: no response", name);
    if (r.status != status)
        fail_msg("%s: status %d, want %d", name, r.status, status);
    BR_CHECK(has_header(&r, "\r\nConnection: close\r\n"));
    BR_CHECK(strstr(r.body, "\"error\"") != NULL);
    if (!cl_closed(&c))
        fail_msg("%s: the connection stayed open", name);
    cl_close(&c);
}

static void malformed_rejected(void **state) {
    (void)state;
    br_http_server_opts o = {
        .max_header_bytes = 2048, .max_url_bytes = 512, .max_body_bytes = 1000};
    struct fx fx;
    fx_new(&fx, &o);
    add_basic_routes(&fx);
    fx_listen(&fx);
    static const struct bad bads[] = {
        {"CL+TE",
         "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         400},
        {"TE+CL",
         "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
         "Content-Length: 5\r\n\r\n0\r\n\r\n",
         400},
        {"double CL",
         "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
         "Content-Length: 6\r\n\r\nhello!",
         400},
        {"double equal CL",
         "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
         "Content-Length: 5\r\n\r\nhello",
         400},
        {"CL list", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello",
         400},
        {"CL sign", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
         400},
        {"CL blank inside", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n",
         400},
        {"bare LF in head", "GET /hello HTTP/1.1\nHost: x\r\n\r\n", 400},
        {"bare LF ending", "GET /hello HTTP/1.1\r\nHost: x\n\n", 400},
        {"bare CR", "GET /hello HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400},
        {"obs-fold", "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400},
        {"obs-fold tab", "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n", 400},
        {"space before colon", "GET /hello HTTP/1.1\r\nHost : x\r\n\r\n", 400},
        {"bad chunk size",
         "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "zz\r\nhello\r\n0\r\n\r\n",
         400},
        {"chunk size overflow",
         "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
         "\r\n\r\nffffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
         400},
        {"chunk without CRLF",
         "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
         "\r\n\r\n5\r\nhelloXX0\r\n\r\n",
         400},
        {"TE not chunked",
         "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
        {"TE chunked twice",
         "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, "
         "chunked\r\n\r\n0\r\n\r\n",
         400},
        {"missing Host", "GET /hello HTTP/1.1\r\n\r\n", 400},
        {"two Hosts", "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"bad method", "G@T /hello HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"bad version", "GET /hello HTTP/9.1\r\nHost: x\r\n\r\n", 505},
        {"bad escape", "GET /p/%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"NUL escape", "GET /p/a%00b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"relative target", "GET hello HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"big body by CL", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n",
         413},
        {"bad expect",
         "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n"
         "Content-Length: 1\r\n\r\nx",
         417},
    };
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++)
        expect_rejected(fx.port, bads[i].req, strlen(bads[i].req), bads[i].status,
                        bads[i].name);

    /* caps: target 414, head 431, chunked body 413 as chunks accumulate */
    static char buf[8192];
    int n = snprintf(buf, sizeof buf, "GET /p/%0600d HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    expect_rejected(fx.port, buf, (size_t)n, 414, "long URL");
    n = snprintf(buf, sizeof buf, "GET /p/%04000d HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    expect_rejected(fx.port, buf, (size_t)n, 414, "URL longer than the head cap");
    n = snprintf(buf, sizeof buf,
                 "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: %03000d\r\n\r\n", 0);
    expect_rejected(fx.port, buf, (size_t)n, 431, "huge header");
    size_t len = (size_t)snprintf(buf, sizeof buf, "GET /hello HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 200; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "X-H%d: v\r\n", i);
    len += (size_t)snprintf(buf + len, sizeof buf - len, "\r\n");
    expect_rejected(fx.port, buf, len, 431, "many headers");
    len = (size_t)snprintf(
        buf, sizeof buf,
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "190\r\n%0400d\r\n", 0);
    len += (size_t)snprintf(buf + len, sizeof buf - len, "0\r\n\r\n");
    expect_rejected(fx.port, buf, len, 413, "big chunked body");

    /* and the server still serves */
    struct cl c;
    struct resp r;
    cl_open(&c, fx.port);
    cl_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 200);
    cl_close(&c);
    fx_free(&fx);
}

/* --- timeouts ------------------------------------------------------------------------- */

static void slowloris_header_timeout(void **state) {
    (void)state;
    br_http_server_opts o = {.header_timeout_ns = 200 * BR_MSEC,
                             .idle_timeout_ns = 60 * BR_SEC};
    struct fx fx;
    fx_new(&fx, &o);
    add_basic_routes(&fx);
    fx_listen(&fx);
    struct cl c;
    struct resp r;
    cl_open(&c, fx.port);
    /* a head trickling in, a byte at a time, never finishing: closed with 408 */
    const char *head = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    cl_sends(&c, head);
    bool closed = false;
    for (int i = 0; i < 1000 && !closed; i++) {
        if (send(c.fd, "a", 1, MSG_NOSIGNAL) != 1)
            closed = true;
        usleep(20 * 1000);
        char b;
        ssize_t k = recv(c.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (k >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            closed = true;
    }
    BR_CHECK(closed);
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 408);
    BR_CHECK(cl_closed(&c));
    cl_close(&c);
    /* a connection that never sends a byte: closed, silently or with a 408 */
    cl_open(&c, fx.port);
    char b[256];
    ssize_t k;
    while ((k = recv(c.fd, b, sizeof b, 0)) > 0) {
    }
    BR_CHECK(k == 0 || errno == ECONNRESET);
    cl_close(&c);
    fx_free(&fx);
}

static void body_and_idle_timeouts(void **state) {
    (void)state;
    br_http_server_opts o = {.body_timeout_ns = 200 * BR_MSEC,
                             .idle_timeout_ns = 200 * BR_MSEC};
    struct fx fx;
    fx_new(&fx, &o);
    add_basic_routes(&fx);
    fx_listen(&fx);
    struct cl c;
    struct resp r;
    /* a body that never comes: 408 */
    cl_open(&c, fx.port);
    cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 408);
    BR_CHECK(cl_closed(&c));
    cl_close(&c);
    /* idle after a response: closed without a word */
    cl_open(&c, fx.port);
    cl_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 200);
    BR_CHECK(cl_closed(&c));
    cl_close(&c);
    fx_free(&fx);
}

/* --- handlers awaiting pool work ----------------------------------------------------- */

static atomic_int task_runs, task_cancels, submitted, awaits_reset;

static int t_square(br_task *t) {
    int64_t x = *(const int64_t *)br_task_arg(t, NULL);
    atomic_fetch_add(&task_runs, 1);
    return br_task_return_i64(t, x * x);
}

/* Blocks until cancelled (or the hang guard): what a client leaving must stop. */
static int t_block(br_task *t) {
    atomic_fetch_add(&task_runs, 1);
    int64_t until = br_test_hang_guard();
    while (!br_task_cancelled(t) && br_now() < until)
        usleep(1000);
    if (br_task_cancelled(t)) {
        atomic_fetch_add(&task_cancels, 1);
        return BR_ECANCELED;
    }
    return 0;
}

static int t_die_or_square(br_task *t) {
    int64_t x = *(const int64_t *)br_task_arg(t, NULL);
    if (x < 0)
        _exit(9);
    return br_task_return_i64(t, x * x);
}

struct pool_route {
    br_executor *ex;
    br_task_fn fn;
};

static int h_pool(br_http_req *req, br_http_res *res, void *arg) {
    struct pool_route *pr = arg;
    const char *xs = br_http_req_param(req, "x");
    int64_t x = strtoll(xs, NULL, 10);
    br_future *f;
    int rc = br_submit(pr->ex, pr->fn, &x, sizeof x, &f);
    if (rc != 0)
        return rc;
    atomic_fetch_add(&submitted, 1);
    rc = br_http_await(req, f, br_test_hang_guard());
    if (rc == BR_ECONNRESET)
        atomic_fetch_add(&awaits_reset, 1);
    int64_t v = 0;
    if (rc == 0)
        rc = br_future_result_i64(f, BR_NOWAIT, &v);
    br_future_release(f);
    if (rc != 0)
        return rc;
    char b[32];
    int n = snprintf(b, sizeof b, "%lld", (long long)v);
    return br_http_res_send(res, 200, "text/plain", b, (size_t)n);
}

static void await_threadpool(void **state) {
    (void)state;
    struct fx fx;
    fx_new(&fx, NULL);
    int fds = fx.fds_before;
    fx.fds_before = -1;
    br_executor *ex;
    BR_CHECK_OK(br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = 2}));
    struct pool_route pr = {ex, t_square};
    BR_CHECK_OK(br_http_route(fx.s, "GET", "/sq/{x}", h_pool, &pr));
    fx_listen(&fx);
    /* several connections at once, each with a few requests */
    enum { NC = 8 };
    struct cl *cs = calloc(NC, sizeof *cs);
    struct resp r;
    for (int i = 0; i < NC; i++)
        cl_open(&cs[i], fx.port);
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < NC; i++) {
            char q[64];
            snprintf(q, sizeof q, "GET /sq/%d HTTP/1.1\r\nHost: x\r\n\r\n", i * 10 + round);
            cl_sends(&cs[i], q);
        }
        for (int i = 0; i < NC; i++) {
            BR_CHECK(cl_resp(&cs[i], &r));
            BR_CHECK_EQ(r.status, 200);
            long long v = (long long)(i * 10 + round);
            BR_CHECK_EQ(atoll(r.body), v * v);
        }
    }
    for (int i = 0; i < NC; i++)
        cl_close(&cs[i]);
    free(cs);
    fx_free(&fx);
    BR_CHECK_OK(br_executor_free(ex));
    br_test_wait_fds(fds);
}

static void await_processpool_worker_dies(void **state) {
    (void)state;
    /* the process layer's watcher keeps its descriptors once a worker has died:
     * have that happen once before counting */
    {
        br_executor *warm;
        BR_CHECK_OK(br_processpool_new(
            &warm,
            &(br_processpool_opts){.max_workers = 1, .start_method = BR_START_FORK}));
        int64_t x = -1;
        br_future *f;
        BR_CHECK_OK(br_submit(warm, t_die_or_square, &x, sizeof x, &f));
        BR_CHECK_ERR(br_future_wait(f, br_test_hang_guard()), 0);
        br_future_release(f);
        BR_CHECK_OK(br_executor_free(warm));
        br_test_wait_no_children();
    }
    struct fx fx;
    fx_new(&fx, NULL);
    int fds = fx.fds_before;
    fx.fds_before = -1;
    br_executor *ex;
    BR_CHECK_OK(br_processpool_new(
        &ex, &(br_processpool_opts){.max_workers = 1, .start_method = BR_START_FORK}));
    struct pool_route pr = {ex, t_die_or_square};
    BR_CHECK_OK(br_http_route(fx.s, "GET", "/sq/{x}", h_pool, &pr));
    fx_listen(&fx);
    struct cl c;
    struct resp r;
    cl_open(&c, fx.port);
    cl_sends(&c, "GET /sq/12 HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK(strcmp(r.body, "144") == 0);
    cl_sends(&c, "GET /sq/-1 HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 500);
    BR_CHECK(strstr(r.body, "error") != NULL);
    /* the next request on the same connection is fine (a fresh worker) */
    cl_sends(&c, "GET /sq/5 HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 200);
    BR_CHECK(strcmp(r.body, "25") == 0);
    cl_close(&c);
    fx_free(&fx);
    BR_CHECK_OK(br_executor_free(ex));
    br_test_wait_fds(fds);
    br_test_wait_no_children();
}

static void client_leaves_cancels_work(void **state) {
    (void)state;
    atomic_store(&submitted, 0);
    atomic_store(&awaits_reset, 0);
    atomic_store(&task_runs, 0);
    atomic_store(&task_cancels, 0);
    struct fx fx;
    fx_new(&fx, NULL);
    int fds = fx.fds_before;
    fx.fds_before = -1;
    br_executor *ex;
    BR_CHECK_OK(br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = 1}));
    /* the worker is kept busy by a blocker, so a second submit stays pending */
    struct pool_route blocker = {ex, t_block};
    BR_CHECK_OK(br_http_route(fx.s, "GET", "/block/{x}", h_pool, &blocker));
    fx_listen(&fx);
    struct cl a, b;
    cl_open(&a, fx.port);
    cl_sends(&a, "GET /block/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    while (atomic_load(&task_runs) == 0)
        usleep(1000);
    cl_open(&b, fx.port);
    cl_sends(&b, "GET /block/2 HTTP/1.1\r\nHost: x\r\n\r\n");
    /* b's task is queued behind a's; b leaves: its task is cancelled before it runs */
    while (atomic_load(&submitted) < 2)
        usleep(1000);
    cl_close(&b);
    while (atomic_load(&awaits_reset) < 1)
        usleep(1000);
    /* a leaves: its running task sees the cancel request */
    cl_close(&a);
    while (atomic_load(&task_cancels) == 0)
        usleep(1000);
    while (atomic_load(&awaits_reset) < 2)
        usleep(1000);
    BR_CHECK_EQ(atomic_load(&task_cancels), 1);
    BR_CHECK_OK(br_executor_shutdown(ex, true, false));
    BR_CHECK_EQ(atomic_load(&task_runs), 1); /* b's never ran */
    fx_free(&fx);
    BR_CHECK_OK(br_executor_free(ex));
    br_test_wait_fds(fds);
}

static int h_deadline(br_http_req *req, br_http_res *res, void *arg) {
    br_executor *ex = arg;
    int64_t x = 0;
    br_future *f;
    int rc = br_submit(ex, t_block, &x, sizeof x, &f);
    if (rc != 0)
        return rc;
    rc = br_http_await(req, f, br_deadline_after(100 * BR_MSEC));
    br_future_release(f);
    if (rc == BR_ETIMEDOUT)
        return br_http_res_error(res, 504, "the work took too long");
    return rc;
}

static void await_deadline(void **state) {
    (void)state;
    atomic_store(&task_runs, 0);
    atomic_store(&task_cancels, 0);
    struct fx fx;
    fx_new(&fx, NULL);
    int fds = fx.fds_before;
    fx.fds_before = -1;
    br_executor *ex;
    BR_CHECK_OK(br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = 1}));
    BR_CHECK_OK(br_http_route(fx.s, "GET", "/deadline", h_deadline, ex));
    add_basic_routes(&fx);
    fx_listen(&fx);
    struct cl c;
    struct resp r;
    cl_open(&c, fx.port);
    cl_sends(&c, "GET /deadline HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 504);
    /* the connection goes on */
    cl_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 200);
    cl_close(&c);
    BR_CHECK_OK(br_executor_shutdown(ex, true, false));
    /* the work was cancelled: pending (never ran) or running (saw the request) */
    BR_CHECK_EQ(atomic_load(&task_runs), atomic_load(&task_cancels));
    fx_free(&fx);
    BR_CHECK_OK(br_executor_free(ex));
    br_test_wait_fds(fds);
}

static _Atomic(br_future *) pending_f;

static int h_await_plain(br_http_req *req, br_http_res *res, void *arg) {
    (void)arg;
    br_future *f;
    BR_CHECK_OK(br_future_new(&f));
    br_future_retain(f);
    atomic_store(&pending_f, f);
    int rc = br_http_await(req, f, br_test_hang_guard());
    char b[64];
    int n = snprintf(b, sizeof b, "rc=%d cancelled=%d", rc, br_future_cancelled(f));
    br_future_release(f);
    return br_http_res_send(res, 200, "text/plain", b, (size_t)n);
}

/* A future cancelled by someone else (not the server) is simply done: 0, and its own
 * outcome says cancelled. */
static void await_future_cancelled_elsewhere(void **state) {
    (void)state;
    struct fx fx;
    fx_new(&fx, NULL);
    BR_CHECK_OK(br_http_route(fx.s, "GET", "/plain", h_await_plain, NULL));
    fx_listen(&fx);
    struct cl c;
    struct resp r;
    cl_open(&c, fx.port);
    cl_sends(&c, "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    br_future *f;
    while ((f = atomic_load(&pending_f)) == NULL)
        usleep(1000);
    BR_CHECK(br_future_cancel(f));
    br_future_release(f);
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 200);
    BR_CHECK(strcmp(r.body, "rc=0 cancelled=1") == 0);
    cl_close(&c);
    fx_free(&fx);
}

/* --- shutdown ------------------------------------------------------------------------- */

static int h_slow(br_http_req *req, br_http_res *res, void *arg) {
    (void)req;
    atomic_int *started = arg;
    atomic_store(started, 1);
    BR_CHECK_OK(br_aio_sleep(100 * BR_MSEC));
    return br_http_res_send(res, 200, "text/plain", "slow", 4);
}

struct shut_arg {
    br_http_server *s;
    int64_t deadline;
    int rc;
};

static void shut_main(void *p) {
    struct shut_arg *a = p;
    a->rc = br_http_server_shutdown(a->s, a->deadline);
}

static void graceful_shutdown(void **state) {
    (void)state;
    atomic_int started = 0;
    struct fx fx;
    fx_new(&fx, NULL);
    add_basic_routes(&fx);
    BR_CHECK_OK(br_http_route(fx.s, "GET", "/slow", h_slow, &started));
    fx_listen(&fx);
    struct cl idle, busy;
    struct resp r;
    cl_open(&idle, fx.port);
    cl_sends(&idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&idle, &r));
    cl_open(&busy, fx.port);
    cl_sends(&busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    while (!atomic_load(&started))
        usleep(1000);
    struct shut_arg sa = {fx.s, br_test_hang_guard(), 1};
    br_thread *t;
    BR_CHECK_OK(br_thread_start(&t, shut_main, &sa, NULL));
    /* the in-flight request finishes, told the connection closes */
    BR_CHECK(cl_resp(&busy, &r));
    BR_CHECK_EQ(r.status, 200);
    BR_CHECK(strcmp(r.body, "slow") == 0);
    BR_CHECK(has_header(&r, "\r\nConnection: close\r\n"));
    BR_CHECK(cl_closed(&busy));
    BR_CHECK(cl_closed(&idle)); /* the idle one is closed */
    BR_CHECK_OK(br_thread_join(t, br_test_hang_guard()));
    BR_CHECK_OK(sa.rc);
    /* no longer accepting */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BR_CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) != 0);
    close(fd);
    cl_close(&idle);
    cl_close(&busy);
    fx_free(&fx);
}

static void shutdown_deadline_cancels(void **state) {
    (void)state;
    atomic_store(&task_runs, 0);
    atomic_store(&task_cancels, 0);
    struct fx fx;
    fx_new(&fx, NULL);
    int fds = fx.fds_before;
    fx.fds_before = -1;
    br_executor *ex;
    BR_CHECK_OK(br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = 1}));
    struct pool_route blocker = {ex, t_block};
    BR_CHECK_OK(br_http_route(fx.s, "GET", "/block/{x}", h_pool, &blocker));
    fx_listen(&fx);
    struct cl c;
    cl_open(&c, fx.port);
    cl_sends(&c, "GET /block/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    while (atomic_load(&task_runs) == 0)
        usleep(1000);
    /* the request can't finish: at the deadline it is cancelled, and so is its work */
    BR_CHECK_OK(br_http_server_shutdown(fx.s, br_deadline_after(100 * BR_MSEC)));
    struct resp r;
    if (cl_resp(&c, &r))
        BR_CHECK_EQ(r.status, 500);
    BR_CHECK(cl_closed(&c));
    cl_close(&c);
    BR_CHECK_OK(br_executor_shutdown(ex, true, false));
    BR_CHECK_EQ(atomic_load(&task_cancels), 1);
    fx_free(&fx);
    BR_CHECK_OK(br_executor_free(ex));
    br_test_wait_fds(fds);
}

/* --- the handler timeout ----------------------------------------------------------- */

static br_event never; /* set by no one: a handler waiting on it blocks for good */
static _Atomic int overran_rc[5];

/* Each blocks past the server's handler timeout and records what its wait returned. */
static int h_on_event(br_http_req *req, br_http_res *res, void *arg) {
    (void)req, (void)res, (void)arg;
    int rc = br_event_wait(&never, br_test_hang_guard());
    atomic_store(&overran_rc[0], rc);
    return rc;
}

static int h_aio_sleep(br_http_req *req, br_http_res *res, void *arg) {
    (void)req, (void)res, (void)arg;
    int rc = br_aio_sleep_until(br_test_hang_guard());
    atomic_store(&overran_rc[1], rc);
    return rc;
}

static int h_br_sleep(br_http_req *req, br_http_res *res, void *arg) {
    (void)req, (void)res, (void)arg;
    int rc = br_sleep_until(br_test_hang_guard()); /* in a coroutine: suspends it */
    atomic_store(&overran_rc[4], rc);
    return rc;
}

static int h_sent_then_sleep(br_http_req *req, br_http_res *res, void *arg) {
    (void)req, (void)arg;
    BR_CHECK_OK(br_http_res_send(res, 200, "text/plain", "early", 5));
    int rc = br_aio_sleep_until(br_test_hang_guard());
    atomic_store(&overran_rc[2], rc);
    return 0;
}

static int h_await_blocker(br_http_req *req, br_http_res *res, void *arg) {
    (void)res;
    int64_t x = 0;
    br_future *f;
    BR_CHECK_OK(br_submit(arg, t_block, &x, sizeof x, &f));
    int rc = br_http_await(req, f, br_test_hang_guard());
    atomic_store(&overran_rc[3], rc);
    br_future_release(f);
    return rc;
}

/* A handler past handler_timeout_ns is cancelled: blocked on a braid primitive, asleep
 * (br_aio_sleep, br_sleep), or awaiting pool work (which is cancelled with it); the client gets 503 on the same
 * connection, which goes on serving; a handler that had sent its response has it
 * delivered and the connection closed. Every descriptor comes back. */
static void handler_timeout(void **state) {
    (void)state;
    atomic_store(&task_runs, 0);
    atomic_store(&task_cancels, 0);
    for (int i = 0; i < 5; i++)
        atomic_store(&overran_rc[i], 1);
    BR_CHECK_OK(br_event_init(&never));
    br_http_server_opts o = {.handler_timeout_ns = 50 * BR_MSEC};
    struct fx fx;
    fx_new(&fx, &o);
    int fds = fx.fds_before;
    fx.fds_before = -1;
    br_executor *ex;
    BR_CHECK_OK(br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = 1}));
    BR_CHECK_OK(br_http_route(fx.s, "GET", "/event", h_on_event, NULL));
    BR_CHECK_OK(br_http_route(fx.s, "GET", "/sleep", h_aio_sleep, NULL));
    BR_CHECK_OK(br_http_route(fx.s, "GET", "/br-sleep", h_br_sleep, NULL));
    BR_CHECK_OK(br_http_route(fx.s, "GET", "/sent", h_sent_then_sleep, NULL));
    BR_CHECK_OK(br_http_route(fx.s, "GET", "/pool", h_await_blocker, ex));
    add_basic_routes(&fx);
    fx_listen(&fx);

    struct cl c;
    struct resp r;
    cl_open(&c, fx.port);
    const char *paths[] = {"/event", "/sleep", "/br-sleep", "/pool"};
    const int slot[] = {0, 1, 4, 3};
    for (int i = 0; i < 4; i++) {
        char rq[128];
        snprintf(rq, sizeof rq, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", paths[i]);
        cl_sends(&c, rq);
        BR_CHECK(cl_resp(&c, &r));
        BR_CHECK_EQ(r.status, 503);
        BR_CHECK(strcmp(r.body, "{\"error\":\"the handler took too long\"}") == 0);
        BR_CHECK(!has_header(&r, "Connection: close"));
        BR_CHECK_EQ(atomic_load(&overran_rc[slot[i]]), BR_ECANCELED);
        /* the connection goes on */
        cl_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        BR_CHECK(cl_resp(&c, &r));
        BR_CHECK_EQ(r.status, 200);
        BR_CHECK(strcmp(r.body, "Hello, World!") == 0);
    }
    /* the pool task saw the cancel request (it ran: the one worker was free) */
    BR_CHECK_OK(br_executor_shutdown(ex, true, false));
    BR_CHECK_EQ(atomic_load(&task_runs), 1);
    BR_CHECK_EQ(atomic_load(&task_cancels), 1);

    cl_sends(&c, "GET /sent HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK_EQ(r.status, 200);
    BR_CHECK(strcmp(r.body, "early") == 0);
    BR_CHECK(cl_closed(&c));
    BR_CHECK_EQ(atomic_load(&overran_rc[2]), BR_ECANCELED);
    cl_close(&c);

    fx_free(&fx);
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_OK(br_event_destroy(&never));
    br_test_wait_fds(fds);
}

static void max_connections_waits(void **state) {
    (void)state;
    br_http_server_opts o = {.max_connections = 2};
    struct fx fx;
    fx_new(&fx, &o);
    add_basic_routes(&fx);
    fx_listen(&fx);
    struct cl c[3];
    struct resp r;
    for (int i = 0; i < 3; i++)
        cl_open(&c[i], fx.port); /* the third stays in the backlog */
    for (int i = 0; i < 3; i++)
        cl_sends(&c[i], "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c[0], &r));
    BR_CHECK(cl_resp(&c[1], &r));
    char b;
    BR_CHECK(recv(c[2].fd, &b, 1, MSG_DONTWAIT) < 0); /* not served yet */
    cl_close(&c[0]);
    BR_CHECK(cl_resp(&c[2], &r)); /* a slot freed: now it is */
    BR_CHECK_EQ(r.status, 200);
    cl_close(&c[1]);
    cl_close(&c[2]);
    fx_free(&fx);
}

static void access_log_lines(void **state) {
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    br_http_server_opts o = {.access_log = f};
    struct fx fx;
    fx_new(&fx, &o);
    add_basic_routes(&fx);
    fx_listen(&fx);
    struct cl c;
    struct resp r;
    cl_open(&c, fx.port);
    cl_sends(
        &c,
        "GET /hello?x=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /none HTTP/1.1\r\nHost: x\r\n\r\n");
    BR_CHECK(cl_resp(&c, &r));
    BR_CHECK(cl_resp(&c, &r));
    cl_close(&c);
    fx_free(&fx);
    fclose(f);
    BR_CHECK(strstr(text, "127.0.0.1 - - [") == text);
    BR_CHECK(strstr(text, "\"GET /hello?x=1 HTTP/1.1\" 200 13 ") != NULL);
    BR_CHECK(strstr(text, "\"GET /none HTTP/1.1\" 404 ") != NULL);
    int lines = 0;
    for (char *p = text; *p; p++)
        lines += *p == '\n';
    BR_CHECK_EQ(lines, 2);
    free(text);
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes_and_params),
        cmocka_unit_test(bad_patterns),
        cmocka_unit_test(keepalive_many),
        cmocka_unit_test(pipelining),
        cmocka_unit_test(post_bodies),
        cmocka_unit_test(malformed_rejected),
        cmocka_unit_test(slowloris_header_timeout),
        cmocka_unit_test(body_and_idle_timeouts),
        cmocka_unit_test(await_threadpool),
        cmocka_unit_test(await_processpool_worker_dies),
        cmocka_unit_test(client_leaves_cancels_work),
        cmocka_unit_test(await_deadline),
        cmocka_unit_test(await_future_cancelled_elsewhere),
        cmocka_unit_test(graceful_shutdown),
        cmocka_unit_test(shutdown_deadline_cancels),
        cmocka_unit_test(handler_timeout),
        cmocka_unit_test(max_connections_waits),
        cmocka_unit_test(access_log_lines),
    };
    return br_test_main(tests, sizeof tests / sizeof tests[0], "http.server", argc, argv);
}
