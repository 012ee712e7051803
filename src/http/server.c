/* The HTTP/1.1 server (braid/http.h, br_http_server_*): an acceptor coroutine and one
 * coroutine per connection on one loop, requests parsed by parse.c, routed by
 * route.c.
 *
 * Design note: the rules a change must keep.
 *
 *  - A connection is one coroutine that reads, parses, runs the handler and writes,
 *    in that order, so responses leave in the order requests came (pipelining): a
 *    read may bring several requests; each is answered before the next is parsed, and
 *    the answers are sent together once no whole request is left in the buffer (one
 *    send for a pipelined batch, one per request otherwise). The socket is used raw
 *    (read/send on the non-blocking descriptor, br__io_wait when it would block);
 *    the br_stream the listener gives is only its owner.
 *
 *  - The input buffer is fixed (16 KiB): the parser copies what it keeps (target,
 *    headers, body) into its own arena, so the buffer only holds bytes not yet parsed,
 *    which is at most one read's worth.
 *
 *  - Timeouts, each a deadline on the read wait: the head must arrive within
 *    header_timeout of its first byte (of the connection's start for the first
 *    request), the body within body_timeout of the head's end, the next request's
 *    first byte within idle_timeout of the last response. A head or body timeout
 *    answers 408 and closes; an idle one closes silently. Writes get body_timeout.
 *
 *  - The handler runs inside a timeout scope (br_timeout_enter) on the connection's
 *    own coroutine, for handler_timeout from the request's last byte: past it, the
 *    scope's cancel request makes the handler's blocking calls return BR_ECANCELED
 *    (br_http_await then cancels its future). Once the handler returns, leaving the
 *    scope withdraws the request: the connection goes on with a 503, or, when the
 *    handler had sent its response, with that response and a close. A cancel from
 *    shutdown that came meanwhile stays posted and ends the connection as before.
 *    No scope (nothing per request) with handler_timeout BR_FOREVER.
 *
 *  - After an error response (a 4xx from the parser, 408) the connection closes:
 *    shutdown(SHUT_WR), then what the client still sends is read and dropped for up
 *    to a second (a lingering close, so that the client reads the answer instead of
 *    a reset).
 *
 *  - br_http_await first waits for f alone, for at most WATCH_AFTER_NS (1 ms): most
 *    pool work is done by then, and a client that left is seen that much later. Then
 *    it waits on a private future `done` that f's done-callback cancels
 *    (a cancel is a signal that may come any number of times from any thread); a
 *    watcher coroutine meanwhile waits for the client's socket to turn readable: EOF
 *    or a reset means the client left (f is cancelled, `done` too); data is a
 *    pipelined request, read ahead into the connection's buffer. The deadline is the
 *    wait's own. The watcher lives only inside the await.
 *
 *  - Lifetime: `refs` (the owner's, one per coroutine, one per scheduled callback)
 *    keeps the struct; `live` (the acceptor and each connection) reaching 0 after a
 *    shutdown sets `idle`, what br_http_server_shutdown waits for. Each coroutine's
 *    end is a done-callback on its task, so a task cancelled before it ran is cleaned
 *    up the same way. The connection list and the connections are touched on the
 *    loop's thread only.
 *
 *  - Shutdown: from any thread, a callback on the loop cancels the acceptor (the
 *    listener closes) and every connection waiting for the first byte of a request;
 *    connections with a request in progress finish it (answering with Connection:
 *    close) and end. At the deadline a second callback cancels every connection:
 *    a handler in br_http_await gets BR_ECANCELED and its future is cancelled.
 */
#include "http/http.h"
#include "http/parse.h"
#include "http/route.h"

#include "aio/io.h"
#include <braid/stream.h>
#include <braid/thread.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define IN_CAP 16384

struct conn;

struct br_http_req {
    struct conn *c;
    const char *method;
    const char *path;
    const char *query;
    br__http_match m;
};

struct br_http_res {
    struct conn *c;
    char *hdrs; /* extra header lines, "Name: value\r\n"… */
    size_t hlen, hcap;
    bool sent;
    int status;
    size_t body_len;
};

struct conn {
    br_http_server *srv;
    struct conn *prev, *next;
    br_stream *s;
    int fd;
    br_future *task;
    bool waiting_idle; /* suspended before a request's first byte */
    bool gone;         /* the client left (seen by br_http_await) */
    bool keep;         /* the response being sent keeps the connection */
    bool sent_continue;
    bool drained; /* the last read emptied the socket */
    int64_t head_deadline, body_deadline;
    int64_t started_ns;
    br__http_parser p;
    size_t in_pos, in_len;
    char *out;
    size_t out_len, out_cap;
    char *path, *scratch;
    size_t path_cap;
    char peer[64];
    br_http_req req;
    br_http_res res;
    char in[IN_CAP];
};

struct br_http_server {
    br_http_server_opts o;
    br__http_routes routes;
    br_loop *loop;
    br_listener *l;
    int port;
    br_future *acceptor;
    atomic_bool closing;
    atomic_bool listening;
    struct conn *conns;
    br_sem slots;
    atomic_int live;
    atomic_int refs;
    br_event idle;
};

/* --- the server's life ------------------------------------------------------------ */

static void unref(br_http_server *s) {
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    br__http_routes_free(&s->routes);
    br_future_release(s->acceptor);
    (void)br_sem_destroy(&s->slots);
    (void)br_event_destroy(&s->idle);
    br__free(s);
}

static void leave(br_http_server *s) {
    if (atomic_fetch_sub_explicit(&s->live, 1, memory_order_acq_rel) == 1)
        (void)br_event_set(&s->idle);
    unref(s);
}

int br_http_server_new(br_http_server **out, const br_http_server_opts *opts) {
    if (out == NULL)
        return BR_EINVAL;
    *out = NULL;
    int rc = br__http_global_init();
    if (rc != 0)
        return rc;
    br_http_server *s = br__calloc(1, sizeof *s);
    if (s == NULL)
        return BR_ENOMEM;
    if (opts != NULL)
        s->o = *opts;
    br_http_server_opts *o = &s->o;
    if (o->max_header_bytes == 0)
        o->max_header_bytes = 16 * 1024;
    if (o->max_url_bytes == 0)
        o->max_url_bytes = 8 * 1024;
    if (o->max_body_bytes == 0)
        o->max_body_bytes = 1024 * 1024;
    if (o->header_timeout_ns <= 0)
        o->header_timeout_ns = 10 * BR_SEC;
    if (o->body_timeout_ns <= 0)
        o->body_timeout_ns = 30 * BR_SEC;
    if (o->idle_timeout_ns <= 0)
        o->idle_timeout_ns = 60 * BR_SEC;
    if (o->max_connections <= 0)
        o->max_connections = 10000;
    if (o->handler_timeout_ns <= 0)
        o->handler_timeout_ns = 30 * BR_SEC;
    if ((rc = br_sem_init(&s->slots, (unsigned)o->max_connections)) != 0) {
        br__free(s);
        return rc;
    }
    if ((rc = br_event_init(&s->idle)) != 0) {
        (void)br_sem_destroy(&s->slots);
        br__free(s);
        return rc;
    }
    atomic_init(&s->refs, 1);
    s->port = -1;
    *out = s;
    return 0;
}

int br_http_route(br_http_server *s, const char *method, const char *pattern,
                  br_http_handler fn, void *arg) {
    if (s == NULL)
        return BR_EINVAL;
    if (atomic_load(&s->listening))
        return BR_ESTATE;
    return br__http_routes_add(&s->routes, method, pattern, fn, arg);
}

int br_http_server_port(const br_http_server *s) {
    return s == NULL ? BR_EINVAL : s->port;
}

/* --- the date, once a second per thread ------------------------------------------ */

struct clock_text {
    time_t sec;
    char date[64]; /* "Date: Mon, 07 Dec 2026 05:55:46 GMT\r\n" */
    size_t date_len;
    char clf[40]; /* "07/Dec/2026:05:55:46 +0000" */
};
static _Thread_local struct clock_text clock_text;

static const struct clock_text *clock_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    struct clock_text *t = &clock_text;
    if (ts.tv_sec != t->sec || t->date_len == 0) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        t->date_len =
            strftime(t->date, sizeof t->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        strftime(t->clf, sizeof t->clf, "%d/%b/%Y:%H:%M:%S +0000", &tm);
        t->sec = ts.tv_sec;
    }
    return t;
}

/* --- output ----------------------------------------------------------------------- */

static int out_reserve(struct conn *c, size_t more) {
    if (c->out_len + more <= c->out_cap)
        return 0;
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + more)
        cap *= 2;
    char *o = br__realloc(c->out, cap);
    if (o == NULL)
        return BR_ENOMEM;
    c->out = o;
    c->out_cap = cap;
    return 0;
}

static void out_put(struct conn *c, const void *p, size_t n) {
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

static void out_str(struct conn *c, const char *s) {
    out_put(c, s, strlen(s));
}

static void out_num(struct conn *c, size_t v) {
    char b[24];
    int i = (int)sizeof b;
    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    out_put(c, b + i, sizeof b - (size_t)i);
}

/* Sends what is queued by the deadline. 0, BR_ETIMEDOUT, BR_ECANCELED, -errno. */
static int flush(struct conn *c, int64_t deadline) {
    size_t off = 0;
    int rc = 0;
    while (off < c->out_len) {
        ssize_t n = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if ((rc = br__io_wait(c->fd, BR__IO_WRITE, deadline)) != 0)
                break;
            continue;
        }
        rc = n < 0 ? -errno : BR_EPIPE;
        break;
    }
    c->out_len = 0;
    return rc;
}

static const char *reason_of(int status) {
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

static bool text_ok(const char *s) {
    for (; *s; s++)
        if (*s == '\r' || *s == '\n')
            return false;
    return true;
}

/* --- the response API ------------------------------------------------------------- */

int br_http_res_header(br_http_res *res, const char *name, const char *value) {
    if (res == NULL || name == NULL || value == NULL || name[0] == '\0' ||
        strchr(name, ':') != NULL || !text_ok(name) || !text_ok(value))
        return BR_EINVAL;
    if (res->sent)
        return BR_ESTATE;
    size_t nl = strlen(name), vl = strlen(value), need = nl + vl + 4;
    if (res->hlen + need > res->hcap) {
        size_t cap = res->hcap ? res->hcap : 256;
        while (cap < res->hlen + need)
            cap *= 2;
        char *h = br__realloc(res->hdrs, cap);
        if (h == NULL)
            return BR_ENOMEM;
        res->hdrs = h;
        res->hcap = cap;
    }
    memcpy(res->hdrs + res->hlen, name, nl);
    memcpy(res->hdrs + res->hlen + nl, ": ", 2);
    memcpy(res->hdrs + res->hlen + nl + 2, value, vl);
    memcpy(res->hdrs + res->hlen + nl + 2 + vl, "\r\n", 2);
    res->hlen += need;
    return 0;
}

int br_http_res_send(br_http_res *res, int status, const char *content_type,
                     const void *body, size_t len) {
    if (res == NULL || status < 100 || status > 999 || (body == NULL && len > 0) ||
        (content_type != NULL && !text_ok(content_type)))
        return BR_EINVAL;
    if (res->sent)
        return BR_ESTATE;
    struct conn *c = res->c;
    bool head = strcmp(br__http_method(&c->p), "HEAD") == 0 && c->p.complete;
    bool nobody = status < 200 || status == 204 || status == 304;
    c->keep = c->keep && c->p.keep_alive && !atomic_load(&c->srv->closing);
    const char *reason = reason_of(status);
    const struct clock_text *t = clock_now();
    size_t need = 64 + strlen(reason) + t->date_len +
                  (content_type ? strlen(content_type) + 20 : 0) + res->hlen +
                  (head || nobody ? 0 : len);
    if (out_reserve(c, need) != 0)
        return BR_ENOMEM;
    out_str(c, "HTTP/1.1 ");
    out_num(c, (size_t)status);
    out_put(c, " ", 1);
    out_str(c, reason);
    out_put(c, "\r\n", 2);
    out_put(c, t->date, t->date_len);
    if (content_type != NULL) {
        out_str(c, "Content-Type: ");
        out_str(c, content_type);
        out_put(c, "\r\n", 2);
    }
    if (!nobody) {
        out_str(c, "Content-Length: ");
        out_num(c, len);
        out_put(c, "\r\n", 2);
    }
    if (!c->keep)
        out_str(c, "Connection: close\r\n");
    else if (c->p.ll.http_major == 1 && c->p.ll.http_minor == 0)
        out_str(c, "Connection: keep-alive\r\n");
    if (res->hlen > 0)
        out_put(c, res->hdrs, res->hlen);
    out_put(c, "\r\n", 2);
    if (!head && !nobody && len > 0)
        out_put(c, body, len);
    res->sent = true;
    res->status = status;
    res->body_len = len;
    return 0;
}

int br_http_res_error(br_http_res *res, int status, const char *msg) {
    if (res == NULL || msg == NULL)
        return BR_EINVAL;
    json_t *o = json_pack("{s:s}", "error", msg);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc;
    if (text == NULL) /* msg wasn't UTF-8, or no memory */
        rc = br_http_res_send(res, status, "application/json", "{\"error\":\"error\"}", 17);
    else
        rc = br_http_res_send(res, status, "application/json", text, strlen(text));
    free(text);
    return rc;
}

/* --- the request API -------------------------------------------------------------- */

const char *br_http_req_method(const br_http_req *req) {
    return req ? req->method : NULL;
}
const char *br_http_req_path(const br_http_req *req) {
    return req ? req->path : NULL;
}
const char *br_http_req_query(const br_http_req *req) {
    return req ? req->query : NULL;
}

const char *br_http_req_header(const br_http_req *req, const char *name) {
    if (req == NULL || name == NULL)
        return NULL;
    const br__http_parser *p = &req->c->p;
    for (size_t i = 0; i < p->nhdrs; i++)
        if (strcasecmp(br__http_hdr_name(p, i), name) == 0)
            return br__http_hdr_value(p, i);
    return NULL;
}

const char *br_http_req_param(const br_http_req *req, const char *name) {
    if (req == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < req->m.nparams; i++)
        if (strcmp(req->m.names[i], name) == 0)
            return req->m.values[i];
    return NULL;
}

const void *br_http_req_body(const br_http_req *req, size_t *len) {
    if (req == NULL) {
        if (len)
            *len = 0;
        return NULL;
    }
    const br__http_parser *p = &req->c->p;
    if (len)
        *len = p->body_len;
    return p->body_len > 0 ? p->body : "";
}

/* --- awaiting pool work ----------------------------------------------------------- */

/* br_http_await watches the client's socket only for waits longer than this. */
#define WATCH_AFTER_NS (1000 * 1000)

struct watch {
    struct conn *c;
    br_future *f, *done;
    int why; /* 0, or BR_ECONNRESET once the client left */
};

/* The client's socket while the handler waits: EOF or an error is the client
 * leaving; data is read ahead into the connection's buffer. */
static int watch_main(br_task *t) {
    struct watch *w = *(struct watch *const *)br_task_arg(t, NULL);
    struct conn *c = w->c;
    for (;;) {
        if (c->in_pos > 0) {
            memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
            c->in_len -= c->in_pos;
            c->in_pos = 0;
        }
        if (c->in_len == IN_CAP) /* nothing more can be read ahead: stop watching */
            return 0;
        ssize_t n = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (br__io_wait(c->fd, BR__IO_READ, BR_FOREVER) != 0)
                return 0; /* cancelled: the await is over */
            continue;
        }
        if (!br_future_done(w->f)) {
            w->why = BR_ECONNRESET;
            c->gone = true;
            (void)br_future_request_cancel(w->f);
            (void)br_future_cancel(w->done);
        }
        return 0;
    }
}

static void signal_done(br_future *f, void *arg) {
    (void)f;
    br_future *done = arg;
    (void)br_future_cancel(done);
    br_future_release(done);
}

/* Waits for `done` while a watcher task reads the client's socket. The watch record is
 * park memory (core/lib.h): the watcher uses it while this coroutine is suspended, and
 * on a shared stack this coroutine's frame isn't at its address then. */
static int await_watched(br_http_req *req, br_future *f, br_future *done, int64_t deadline,
                         int *why) {
    BR__PARKED(struct watch, w);
    *w = (struct watch){.c = req->c, .f = f, .done = done};
    br_future *watcher = NULL;
    if (br_create_task(NULL, watch_main, &w, sizeof w, &watcher) != 0)
        watcher = NULL; /* no watching: the deadline still holds */
    int rc = br_future_wait(done, deadline);
    if (watcher != NULL) {
        (void)br_future_request_cancel(watcher);
        (void)br_future_wait(watcher, BR_FOREVER);
        br_future_release(watcher);
    }
    *why = w->why;
    return rc;
}

int br_http_await(br_http_req *req, br_future *f, int64_t deadline) {
    if (req == NULL || f == NULL)
        return BR_EINVAL;
    if (br_future_done(f))
        return 0;
    if (req->c->gone)
        goto gone;
    /* Most pool work is done long before a client could be seen leaving: wait for f
     * alone first, and watch the socket only once that takes longer (WATCH_AFTER_NS). */
    int64_t first = br_deadline_min(deadline, br_deadline_after(WATCH_AFTER_NS));
    int rc = br_future_wait(f, first);
    if (rc == 0 || br_future_done(f))
        return 0;
    if (rc != BR_ETIMEDOUT || first == deadline) {
        (void)br_future_request_cancel(f);
        return rc; /* BR_ETIMEDOUT, BR_ECANCELED */
    }
    br_future *done;
    rc = br_future_new(&done);
    if (rc != 0)
        return rc;
    br_future_retain(done);
    if ((rc = br_future_add_done_callback(f, signal_done, done)) != 0) {
        br_future_release(done);
        br_future_release(done);
        return rc;
    }
    int why = 0;
    rc = await_watched(req, f, done, deadline, &why);
    br_future_release(done);
    /* done: 0 (also when it finished just as the client left: nothing is lost; and
     * when someone else cancelled it, which its own outcome says) */
    if (br_future_done(f) && (why == 0 || !br_future_cancelled(f)))
        return 0;
    if (why != 0)
        goto gone;
    (void)br_future_request_cancel(f);
    return rc; /* BR_ETIMEDOUT, BR_ECANCELED */
gone:
    (void)br_future_request_cancel(f);
    return BR_ECONNRESET;
}

/* --- a connection ----------------------------------------------------------------- */

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The target split into path (decoded, into c->path and a copy in c->scratch) and
 * query. 0 or a status (400). */
static int split_target(struct conn *c) {
    const char *u = br__http_url(&c->p);
    const char *path = u;
    if (u[0] != '/') {
        const char *auth = NULL;
        if (strncasecmp(u, "http://", 7) == 0)
            auth = u + 7;
        else if (strncasecmp(u, "https://", 8) == 0)
            auth = u + 8;
        if (auth != NULL) {
            path = auth + strcspn(auth, "/?#");
        } else if (strcmp(u, "*") != 0) {
            return 400;
        }
    }
    size_t plen = strcspn(path, "?#");
    c->req.query = path[plen] == '?' ? path + plen + 1 : "";
    if (path[plen] == '#') /* a fragment has no business in a request: ignore it */
        c->req.query = "";
    if (plen + 2 > c->path_cap) {
        size_t cap = plen + 64;
        char *a = br__realloc(c->path, cap), *b;
        if (a == NULL)
            return 500;
        c->path = a;
        if ((b = br__realloc(c->scratch, cap)) == NULL)
            return 500;
        c->scratch = b;
        c->path_cap = cap;
    }
    size_t n = 0;
    if (plen == 0 || (path[0] != '/' && path[0] != '*'))
        c->path[n++] = '/'; /* "http://host" or "http://host?q": the root */
    for (size_t i = 0; i < plen; i++) {
        char ch = path[i];
        if (ch == '%') {
            int hi = i + 2 < plen ? hexval(path[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(path[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return 400;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        c->path[n++] = ch;
    }
    c->path[n] = '\0';
    memcpy(c->scratch, c->path, n + 1);
    c->req.path = c->path;
    return 0;
}

static void access_log(struct conn *c, int64_t t0) {
    FILE *f = c->srv->o.access_log;
    if (f == NULL)
        return;
    const br__http_parser *p = &c->p;
    double secs = (double)(br_now() - t0) / 1e9;
    fprintf(f, "%s - - [%s] \"%s %s HTTP/%d.%d\" %d %zu %.6f\n", c->peer, clock_now()->clf,
            br__http_method(p), br__http_url(p), p->ll.http_major, p->ll.http_minor,
            c->res.status, c->res.body_len, secs);
}

static void res_reset(struct conn *c) {
    c->res.hlen = 0;
    c->res.sent = false;
    c->res.status = 0;
    c->res.body_len = 0;
    c->keep = true;
}

/* One complete request: route, run, answer. Returns whether the connection goes on. */
static bool serve(struct conn *c) {
    int64_t t0 = br_now();
    res_reset(c);
    c->req.method = br__http_method(&c->p);
    c->req.m.nparams = 0;
    int st = split_target(c);
    if (st == 0) {
        if (c->path[0] != '/')
            st = 404;
        else
            st = br__http_routes_match(&c->srv->routes, c->req.method, c->scratch,
                                       &c->req.m);
    }
    if (st == 0) {
        const br__http_route *r = c->req.m.route;
        int64_t limit = c->srv->o.handler_timeout_ns;
        bool overran = false;
        int rc;
        if (limit == BR_FOREVER) {
            rc = r->fn(&c->req, &c->res, r->arg);
        } else {
            br_timeout_scope scope;
            int64_t until = limit > BR_FOREVER - t0 ? BR_FOREVER : t0 + limit;
            rc = br_timeout_enter(&scope, until);
            if (rc == 0) {
                rc = r->fn(&c->req, &c->res, r->arg);
                overran = br_timeout_leave(&scope) == BR_ETIMEDOUT;
            }
        }
        if (c->gone)
            return false;
        if (overran) {
            if (c->res.sent)
                c->keep = false;
            else
                (void)br_http_res_error(&c->res, 503, "the handler took too long");
        }
        if (!c->res.sent) {
            if (rc < 0)
                (void)br_http_res_error(&c->res, 500, br_strerror(rc));
            else
                (void)br_http_res_error(&c->res, 500, "the handler sent no response");
        }
    } else {
        if (st == 400)
            c->keep = false;
        (void)br_http_res_error(&c->res, st,
                                st == 404   ? "not found"
                                : st == 405 ? "method not allowed"
                                : st == 400 ? "bad request target"
                                            : "internal error");
    }
    if (!c->res.sent) /* out of memory even for the 500 */
        return false;
    access_log(c, t0);
    return c->keep;
}

static void send_error(struct conn *c, int status, const char *msg) {
    res_reset(c);
    c->keep = false;
    (void)br_http_res_error(&c->res, status, msg);
    if (c->res.sent && c->srv->o.access_log != NULL && c->p.url_len > 0)
        access_log(c, br_now());
}

/* Reads into the (empty) input buffer. 0, BR_EOF, BR_ETIMEDOUT, BR_ECANCELED, -errno. */
static int read_some(struct conn *c, int64_t deadline, bool idle) {
    /* The last read took less than it could: the socket was drained then, so wait
     * before reading (the poller is level-triggered: data already there is reported
     * at once) instead of a read that would say EAGAIN. */
    bool wait_first = c->drained;
    for (;;) {
        if (!wait_first) {
            size_t room = IN_CAP - c->in_len;
            ssize_t n = read(c->fd, c->in + c->in_len, room);
            if (n > 0) {
                c->in_len += (size_t)n;
                c->drained = (size_t)n < room;
                return 0;
            }
            if (n == 0)
                return BR_EOF;
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return -errno;
        }
        wait_first = false;
        if (idle && atomic_load(&c->srv->closing))
            return BR_ECANCELED;
        c->waiting_idle = idle;
        int rc = br__io_wait(c->fd, BR__IO_READ, deadline);
        c->waiting_idle = false;
        if (rc != 0)
            return rc;
    }
}

/* The end after an error response: the answer out, the write side shut, and what
 * the client still sends read and dropped for a while. */
static void linger(struct conn *c) {
    int64_t until = br_deadline_after(BR_SEC);
    if (flush(c, until) != 0)
        return;
    (void)shutdown(c->fd, SHUT_WR);
    size_t dropped = 0;
    while (dropped < 1024 * 1024) {
        c->in_pos = c->in_len = 0;
        if (read_some(c, until, false) != 0)
            break;
        dropped += c->in_len;
    }
}

static int conn_main(br_task *t) {
    struct conn *c = *(struct conn *const *)br_task_arg(t, NULL);
    br_http_server *s = c->srv;
    const br_http_server_opts *o = &s->o;
    bool first = true;
    for (;;) {
        if (c->in_pos < c->in_len) {
            size_t used;
            int r = br__http_parse(&c->p, c->in + c->in_pos, c->in_len - c->in_pos, &used);
            c->in_pos += used;
            if (r == BR__HTTP_DONE) {
                bool keep = serve(c);
                br__http_parser_next(&c->p);
                c->head_deadline = c->body_deadline = 0;
                c->sent_continue = false;
                first = false;
                if (!keep) {
                    if (!c->gone)
                        (void)flush(c, br_deadline_after(o->body_timeout_ns));
                    break;
                }
                continue;
            }
            if (r == BR__HTTP_ERROR) {
                send_error(c, c->p.status, c->p.reason);
                linger(c);
                break;
            }
            if (c->p.head_done && c->p.expect_continue && !c->sent_continue &&
                out_reserve(c, 32) == 0) {
                out_str(c, "HTTP/1.1 100 Continue\r\n\r\n");
                c->sent_continue = true;
            }
        }
        c->in_pos = c->in_len = 0;
        if (c->out_len > 0 && flush(c, br_deadline_after(o->body_timeout_ns)) != 0)
            break;
        bool started = br__http_started(&c->p);
        if (!started && atomic_load(&s->closing))
            break;
        int64_t now = br_now(), deadline;
        if (!started) {
            deadline = now + (first ? o->header_timeout_ns : o->idle_timeout_ns);
        } else if (!c->p.head_done) {
            if (c->head_deadline == 0)
                c->head_deadline = now + o->header_timeout_ns;
            deadline = c->head_deadline;
        } else {
            if (c->body_deadline == 0)
                c->body_deadline = now + o->body_timeout_ns;
            deadline = c->body_deadline;
        }
        int rc = read_some(c, deadline, !started);
        if (rc == 0 && !started) /* a request's first bytes */
            c->head_deadline = br_now() + o->header_timeout_ns;
        if (rc == BR_ETIMEDOUT && started) {
            send_error(c, 408,
                       c->p.head_done ? "the body took too long"
                                      : "the request head took too long");
            linger(c);
        }
        if (rc != 0)
            break;
    }
    return 0;
}

/* The connection's end (its task finished, or was cancelled before it ran): on the
 * loop's thread. */
static void conn_done(br_future *f, void *arg) {
    (void)f;
    struct conn *c = arg;
    br_http_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    br_stream_free(c->s);
    br__http_parser_destroy(&c->p);
    br__free(c->out);
    br__free(c->path);
    br__free(c->scratch);
    br__free(c->res.hdrs);
    if (c->task != NULL)
        br_future_release(c->task);
    br__free(c);
    (void)br_sem_release(&s->slots, 1);
    leave(s);
}

static struct conn *conn_new(br_http_server *s, br_stream *st) {
    struct conn *c = br__malloc(sizeof *c);
    if (c == NULL)
        return NULL;
    memset(c, 0, offsetof(struct conn, in));
    c->srv = s;
    c->s = st;
    c->fd = br_stream_fd(st);
    c->req.c = c;
    c->res.c = c;
    br__http_parser_init(&c->p, s->o.max_header_bytes, s->o.max_url_bytes,
                         s->o.max_body_bytes);
    if (s->o.access_log != NULL &&
        br_stream_peername(st, c->peer, sizeof c->peer, NULL) != 0)
        strcpy(c->peer, "-");
    return c;
}

static int acceptor_main(br_task *t) {
    br_http_server *s = *(br_http_server *const *)br_task_arg(t, NULL);
    while (!atomic_load(&s->closing)) {
        if (br_sem_acquire(&s->slots, BR_FOREVER) != 0)
            break;
        br_stream *st;
        int rc = br_listener_accept(s->l, BR_FOREVER, &st);
        if (rc == BR_ECANCELED || rc == BR_EBADF) {
            (void)br_sem_release(&s->slots, 1);
            break;
        }
        struct conn *c = rc == 0 ? conn_new(s, st) : NULL;
        if (c == NULL) {
            /* out of descriptors or memory: let connections end, then try again */
            if (rc == 0)
                br_stream_free(st);
            (void)br_sem_release(&s->slots, 1);
            if (br_aio_sleep(10 * BR_MSEC) == BR_ECANCELED)
                break;
            continue;
        }
        atomic_fetch_add(&s->live, 1);
        atomic_fetch_add(&s->refs, 1);
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        c->task = NULL;
        if (br_create_task(s->loop, conn_main, &c, sizeof c, &c->task) != 0 ||
            br_future_add_done_callback(c->task, conn_done, c) != 0) {
            /* not started (this is the loop's thread): it never will be */
            if (c->task != NULL)
                (void)br_future_cancel(c->task);
            conn_done(NULL, c);
        }
    }
    return 0;
}

static void acceptor_done(br_future *f, void *arg) {
    (void)f;
    br_http_server *s = arg;
    br_listener_free(s->l);
    s->l = NULL;
    leave(s);
}

int br_http_server_listen(br_http_server *s, br_loop *loop, const char *host, int port) {
    if (s == NULL)
        return BR_EINVAL;
    if (loop == NULL && (loop = br_loop_current()) == NULL)
        return BR_EPERM;
    bool was = false;
    if (!atomic_compare_exchange_strong(&s->listening, &was, true))
        return BR_ESTATE;
    int rc = br_listen_tcp(host, port, 1024, &s->l);
    if (rc != 0) {
        atomic_store(&s->listening, false);
        return rc;
    }
    s->port = br_listener_port(s->l);
    s->loop = loop;
    atomic_store(&s->live, 1);
    atomic_fetch_add(&s->refs, 1);
    rc = br_create_task(loop, acceptor_main, &s, sizeof s, &s->acceptor);
    if (rc == 0)
        rc = br_future_add_done_callback(s->acceptor, acceptor_done, s);
    if (rc != 0) {
        if (s->acceptor != NULL) { /* the callback couldn't be added: nothing started */
            (void)br_future_cancel(s->acceptor);
        }
        br_listener_free(s->l);
        s->l = NULL;
        atomic_store(&s->live, 0);
        atomic_store(&s->closing, true);
        unref(s);
        return rc;
    }
    return 0;
}

/* --- shutdown --------------------------------------------------------------------- */

static void begin_shutdown(void *arg) {
    br_http_server *s = arg;
    (void)br_future_request_cancel(s->acceptor);
    for (struct conn *c = s->conns; c != NULL; c = c->next)
        if (c->waiting_idle)
            (void)br_future_request_cancel(c->task);
    unref(s);
}

static void cancel_all(void *arg) {
    br_http_server *s = arg;
    for (struct conn *c = s->conns; c != NULL; c = c->next)
        (void)br_future_request_cancel(c->task);
    unref(s);
}

static int on_loop(br_http_server *s, void (*fn)(void *)) {
    atomic_fetch_add(&s->refs, 1);
    int rc = br_call_soon_threadsafe(s->loop, fn, s);
    if (rc != 0)
        unref(s);
    return rc;
}

int br_http_server_shutdown(br_http_server *s, int64_t deadline) {
    if (s == NULL)
        return BR_EINVAL;
    if (!atomic_load(&s->listening))
        return 0;
    if (!atomic_exchange(&s->closing, true)) {
        int rc = on_loop(s, begin_shutdown);
        if (rc != 0)
            return rc;
    }
    int rc = br_event_wait(&s->idle, deadline);
    if (rc == BR_ETIMEDOUT) {
        if ((rc = on_loop(s, cancel_all)) != 0)
            return rc;
        rc = br_event_wait(&s->idle, BR_FOREVER);
    }
    if (rc == 0 && s->o.access_log != NULL)
        fflush(s->o.access_log);
    return rc;
}

void br_http_server_free(br_http_server *s) {
    if (s == NULL)
        return;
    if (atomic_load(&s->listening))
        (void)br_http_server_shutdown(s, br_now());
    unref(s);
}
