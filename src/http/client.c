/* The HTTP client (braid/http.h, "the client"): a request's options, the reply, the
 * error codes, the thread path, and the public calls. The loop path (libcurl's multi
 * interface driven by braid's loop) is client_loop.c.
 *
 * Design notes.
 *
 * One option-setting function (br__hx_setup) and one reply builder (br__hx_finish)
 * serve both paths, so a fetch from a coroutine and one from a pool worker send the
 * same request and report the same codes.
 *
 * The thread path (br_http_fetch outside a coroutine): curl_easy_perform on an easy
 * handle kept per thread (a _Thread_local pointer; a pthread key frees it when the
 * thread ends). An easy handle keeps its own connection cache across curl_easy_reset,
 * so a thread's sequential fetches to one host reuse one connection (keep-alive) until
 * no_keepalive asks for a fresh one. The handle belongs to the thread, not the client:
 * every option is set anew per request, so two clients on one thread share its cache
 * (and per-host caps mean nothing on a thread: it has one transfer at a time). A forked
 * child finds its parent's handle (its sockets shared with the parent) and leaves it
 * untouched: it makes its own (the pid says whose it is).
 *
 * The reply. The header callback sees every response of a redirect chain (and any 1xx):
 * a status line starts the list over, so the reply's headers are the final response's.
 * The body is collected up to max_body; past it the write callback returns 0, libcurl
 * stops with CURLE_WRITE_ERROR and the fetch fails with BR_EMSGSIZE (a declared
 * Content-Length over the cap fails at once, through CURLOPT_MAXFILESIZE_LARGE).
 *
 * Errors: CURLcode to braid's codes in map_code (the table in braid/http.h). Only http
 * and https are fetched (CURLOPT_PROTOCOLS_STR) or followed (REDIR_PROTOCOLS_STR): a
 * url of another scheme is BR_EINVAL before anything is sent, a redirect to one is
 * BR_EREDIRECT.
 */
#include "http/client.h"

#include "aio/io.h"
#include "aio/loop.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* --- the client ----------------------------------------------------------------------- */

static br__hooks body_cache_hooks; /* below, with the cache */
static _Atomic bool hooks_ok;      /* registered: else a fork wouldn't refresh the pid */

int br_http_client_new(br_http_client **out, const br_http_client_opts *opts) {
    if (out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_http_client_new: out is NULL");
    *out = NULL;
    br_http_client_opts o = opts ? *opts : (br_http_client_opts){0};
    if (o.max_per_host < 0 || o.max_total < 0 || o.max_redirects < -1 ||
        o.timeout_ns < 0 || o.connect_timeout_ns < 0)
        return BR_EINVAL;
    int rc = br__http_global_init();
    if (rc != 0)
        return rc;
    if (br__hooks_register(&body_cache_hooks) == 0) /* else only fork is less safe */
        atomic_store_explicit(&hooks_ok, true, memory_order_release);
    if (o.max_per_host == 0)
        o.max_per_host = 6;
    if (o.max_total == 0)
        o.max_total = 256;
    if (o.max_redirects == 0)
        o.max_redirects = 10;
    if (o.max_body == 0)
        o.max_body = (size_t)64 << 20;
    if (o.timeout_ns == 0)
        o.timeout_ns = 30 * BR_SEC;
    if (o.connect_timeout_ns == 0)
        o.connect_timeout_ns = 10 * BR_SEC;
    char ua[64];
    snprintf(ua, sizeof ua, "braid/%d.%d.%d", BRAID_VERSION_MAJOR, BRAID_VERSION_MINOR,
             BRAID_VERSION_PATCH);
    br_http_client *c = br__calloc(1, sizeof *c);
    char *uas = br__strdup(o.user_agent ? o.user_agent : ua);
    if (c == NULL || uas == NULL) {
        br__free(c);
        br__free(uas);
        return BR_ENOMEM;
    }
    o.user_agent = uas;
    c->o = o;
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return 0;
}

void br_http_client_free(br_http_client *c) {
    if (c == NULL)
        return;
    br__hloop_free_all(c);
    pthread_mutex_destroy(&c->lock);
    br__free((char *)c->o.user_agent);
    br__free(c);
}

/* --- collecting the reply ------------------------------------------------------------ */

static bool grow(char **buf, size_t *cap, size_t need) {
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    if (*cap == 0 && need > 256)
        n = need; /* a first size that is known: exactly */
    char *p = br__realloc(*buf, n);
    if (p == NULL)
        return false;
    *buf = p;
    *cap = n;
    return true;
}

/* Bodies' buffers, kept for reuse when their reply is freed: a body taken fresh from
 * malloc at each reply costs page faults (glibc hands the top of its heap back to the
 * kernel when a large block there is freed, and takes it again for the next reply),
 * which on a busy crawl cost more than the copy itself. Up to BODY_CACHE_N buffers of at
 * most BODY_CACHE_MAX bytes, process-wide, under a mutex (one take and one put per
 * reply); a buffer is taken only for a body of a size close to its own. */
#define BODY_CACHE_N 64
#define BODY_CACHE_MAX ((size_t)1 << 20)
static pthread_mutex_t body_cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char *p;
    size_t cap;
} body_cache[BODY_CACHE_N];
static size_t body_ncache;

/* Around fork(): the cache's lock is taken before and released after, in both
 * processes, so a child never inherits it held by a thread it doesn't have. */
static void body_cache_lock(void) { pthread_mutex_lock(&body_cache_mu); }
static void body_cache_unlock(void) { pthread_mutex_unlock(&body_cache_mu); }

/* This process's pid, read once and again in a forked child (the same hooks), so that
 * a fetch doesn't make a system call to learn it. */
static _Atomic pid_t cur_pid;

pid_t br__http_pid(void) {
    if (!atomic_load_explicit(&hooks_ok, memory_order_acquire))
        return getpid();
    pid_t p = atomic_load_explicit(&cur_pid, memory_order_relaxed);
    if (p == 0) {
        p = getpid();
        atomic_store_explicit(&cur_pid, p, memory_order_relaxed);
    }
    return p;
}

static void child_after_fork(void) {
    atomic_store_explicit(&cur_pid, getpid(), memory_order_relaxed);
    body_cache_unlock();
}

static br__hooks body_cache_hooks = {.order = 70, .name = "http client",
                                     .prepare = body_cache_lock,
                                     .parent = body_cache_unlock,
                                     .child = child_after_fork};

static char *body_take(size_t need, size_t *cap) {
    char *p = NULL;
    pthread_mutex_lock(&body_cache_mu);
    for (size_t i = 0; i < body_ncache; i++)
        if (body_cache[i].cap >= need && body_cache[i].cap / 2 <= need) {
            p = body_cache[i].p;
            *cap = body_cache[i].cap;
            body_cache[i] = body_cache[--body_ncache];
            break;
        }
    pthread_mutex_unlock(&body_cache_mu);
    return p;
}

/* Keeps p (of cap bytes) for reuse, or frees it. */
static void body_put(char *p, size_t cap) {
    if (p == NULL)
        return;
    if (cap >= 4096 && cap <= BODY_CACHE_MAX) {
        pthread_mutex_lock(&body_cache_mu);
        if (body_ncache < BODY_CACHE_N) {
            body_cache[body_ncache].p = p;
            body_cache[body_ncache++].cap = cap;
            p = NULL;
        }
        pthread_mutex_unlock(&body_cache_mu);
    }
    br__free(p);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg) {
    br__hx *x = arg;
    size_t n = size * nmemb;
    if (n > x->max_body - x->rlen || x->rlen > x->max_body) {
        x->too_big = true;
        return 0;
    }
    if (x->rcap == 0) {
        /* The body's declared length, if any: one allocation of the right size instead
         * of growing through copies (and through fresh mmap'ed pages past 128 KiB). */
        curl_off_t cl = -1;
        curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        if (cl > 0 && (uint64_t)cl <= x->max_body) {
            size_t want = (size_t)cl + 1;
            if (want < n + 1)
                want = n + 1; /* decoded (gzip): the length was the wire's */
            if ((x->rbody = body_take(want, &x->rcap)) == NULL &&
                !grow(&x->rbody, &x->rcap, want)) {
                x->oom = true;
                return 0;
            }
        }
    }
    if (x->rlen + n + 1 > x->rcap && !grow(&x->rbody, &x->rcap, x->rlen + n + 1)) {
        x->oom = true;
        return 0;
    }
    memcpy(x->rbody + x->rlen, data, n);
    x->rlen += n;
    x->rbody[x->rlen] = '\0';
    return n;
}

static bool is_ows(char ch) { return ch == ' ' || ch == '\t'; }

/* Copies a header's name or value, each CR, LF or NUL inside it replaced by a space
 * (RFC 9110 5.5 allows that or rejecting the reply; libcurl lets a bare CR through, and
 * a NUL would cut the "name\0value\0" list short). */
static void copy_field(char *dst, const char *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] == '\r' || src[i] == '\n' || src[i] == '\0' ? ' ' : src[i];
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg) {
    br__hx *x = arg;
    size_t n = size * nmemb, len = n;
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        x->hlen = 0; /* a new response (a redirect's target, after a 1xx): start over */
        x->nhdr = 0;
        x->rlen = 0;
        x->too_big = false;
        return n;
    }
    if (len == 0)
        return n;
    if (is_ows(data[0])) { /* obs-fold: continues the previous value */
        if (x->nhdr == 0)
            return n;
        size_t s = 0;
        while (s < len && is_ows(data[s]))
            s++;
        if (!grow(&x->hbuf, &x->hcap, x->hlen + 1 + (len - s) + 1)) {
            x->oom = true;
            return 0;
        }
        x->hbuf[x->hlen - 1] = ' '; /* the value's NUL becomes the joining space */
        copy_field(x->hbuf + x->hlen, data + s, len - s);
        x->hlen += len - s;
        x->hbuf[x->hlen++] = '\0';
        return n;
    }
    const char *colon = memchr(data, ':', len);
    if (colon == NULL || colon == data)
        return n; /* not a header line: libcurl judged the reply; we skip it */
    size_t nl = (size_t)(colon - data);
    size_t vs = nl + 1;
    while (vs < len && is_ows(data[vs]))
        vs++;
    size_t ve = len;
    while (ve > vs && is_ows(data[ve - 1]))
        ve--;
    if (!grow(&x->hbuf, &x->hcap, x->hlen + nl + 1 + (ve - vs) + 1)) {
        x->oom = true;
        return 0;
    }
    copy_field(x->hbuf + x->hlen, data, nl);
    x->hlen += nl;
    x->hbuf[x->hlen++] = '\0';
    copy_field(x->hbuf + x->hlen, data + vs, ve - vs);
    x->hlen += ve - vs;
    x->hbuf[x->hlen++] = '\0';
    x->nhdr++;
    return n;
}

/* --- the request ------------------------------------------------------------------------ */

static bool is_tchar(unsigned char ch) {
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static bool is_token(const char *s) {
    if (s == NULL || *s == '\0')
        return false;
    for (; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return false;
    return true;
}

static bool has_ctl(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 && *s != '\t')
            return true;
    return false;
}

/* http:// or https://, and a URL libcurl can parse. */
static bool url_ok(const char *url) {
    if (url == NULL || (strncasecmp(url, "http://", 7) != 0 &&
                        strncasecmp(url, "https://", 8) != 0) || has_ctl(url))
        return false;
    CURLU *u = curl_url();
    if (u == NULL)
        return false;
    bool ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK;
    curl_url_cleanup(u);
    return ok;
}

static long ms_ceil(int64_t ns) {
    int64_t ms = (ns + BR_MSEC - 1) / BR_MSEC;
    if (ms < 1)
        ms = 1;
    return ms > 0x7fffffff ? 0x7fffffff : (long)ms;
}

void br__hx_clear(br__hx *x) {
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    br__free(x->body);
    x->body = NULL;
    body_put(x->rbody, x->rcap);
    x->rbody = NULL;
    br__free(x->hbuf);
    x->hbuf = NULL;
    x->rlen = x->rcap = x->hlen = x->hcap = x->nhdr = 0;
}

/* Every socket libcurl opens for a connection: close-on-exec, as every descriptor
 * braid opens, and forgotten by the loop running here (if any) before libcurl
 * announces it: the number may be one the loop still believes registered, from a
 * descriptor closed without its knowledge (client_loop.c, "Sockets"). */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose,
                                 struct curl_sockaddr *a) {
    (void)clientp;
    (void)purpose;
    int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    br__io_forget(fd);
    return fd;
}

static int add_header(br__hx *x, const char *line) {
    struct curl_slist *l = curl_slist_append(x->hdrs, line);
    if (l == NULL)
        return BR_ENOMEM;
    x->hdrs = l;
    return 0;
}

int br__hx_setup(br__hx *x, const br_http_client *c, const br_http_request *rq) {
    const br_http_client_opts *o = &c->o;
    if (!url_ok(rq->url))
        return BR_EINVAL;
    if (rq->body == NULL && rq->body_len > 0)
        return BR_EINVAL;
    if (rq->headers == NULL && rq->nheaders > 0)
        return BR_EINVAL;
    const char *method = rq->method ? rq->method : rq->body ? "POST" : "GET";
    if (!is_token(method))
        return BR_EINVAL;
    int64_t now = br_now();
    x->deadline = rq->deadline ? rq->deadline : now + o->timeout_ns;
    if (x->deadline <= now)
        return BR_ETIMEDOUT;
    x->max_body = o->max_body;
    x->errbuf[0] = '\0';
    for (size_t i = 0; i < rq->nheaders; i++) {
        const br_http_header *h = &rq->headers[i];
        if (!is_token(h->name) || h->value == NULL || has_ctl(h->value))
            return BR_EINVAL;
        size_t ln = strlen(h->name), lv = strlen(h->value);
        char *line = br__malloc(ln + lv + 3);
        if (line == NULL)
            return BR_ENOMEM;
        /* "Name;" is libcurl's spelling of a header sent with an empty value. */
        if (lv == 0)
            snprintf(line, ln + 3, "%s;", h->name);
        else
            snprintf(line, ln + lv + 3, "%s: %s", h->name, h->value);
        int rc = add_header(x, line);
        br__free(line);
        if (rc != 0)
            return rc;
    }
    if (rq->body && add_header(x, "Expect:") != 0) /* no 100-continue round trip */
        return BR_ENOMEM;
    if (rq->body) {
        x->body = br__malloc(rq->body_len ? rq->body_len : 1);
        if (x->body == NULL)
            return BR_ENOMEM;
        memcpy(x->body, rq->body, rq->body_len);
        x->body_len = rq->body_len;
    }
    CURL *e = x->easy;
    curl_easy_reset(e);
    bool ok = true;
#define SET(opt, val) ok = ok && curl_easy_setopt(e, opt, val) == CURLE_OK
    SET(CURLOPT_URL, rq->url);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    if (o->max_redirects > 0) {
        SET(CURLOPT_FOLLOWLOCATION, 1L);
        SET(CURLOPT_MAXREDIRS, (long)o->max_redirects);
    }
    int64_t left = x->deadline - now;
    SET(CURLOPT_TIMEOUT_MS, ms_ceil(left));
    SET(CURLOPT_CONNECTTIMEOUT_MS,
        ms_ceil(o->connect_timeout_ns < left ? o->connect_timeout_ns : left));
    if (!o->no_gzip)
        SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_USERAGENT, o->user_agent);
    if (o->no_keepalive) {
        SET(CURLOPT_FRESH_CONNECT, 1L);
        SET(CURLOPT_FORBID_REUSE, 1L);
    }
    if (o->insecure) {
        SET(CURLOPT_SSL_VERIFYPEER, 0L);
        SET(CURLOPT_SSL_VERIFYHOST, 0L);
    }
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)(o->max_body > INT64_MAX ? INT64_MAX
                                                                         : o->max_body));
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, x);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, x);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    SET(CURLOPT_OPENSOCKETFUNCTION, open_socket);
    /* Fewer reads (and loop wake-ups) per body. libcurl takes it only before the
     * handle's first transfer (its buffer is made then, and kept): a reused handle
     * keeps the size it has. */
    (void)curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 64L * 1024);
    if (x->hdrs)
        SET(CURLOPT_HTTPHEADER, x->hdrs);
    x->is_head = strcmp(method, "HEAD") == 0;
    if (strcmp(method, "GET") == 0 && rq->body == NULL) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (x->is_head) {
        SET(CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(method, "POST") != 0)
            SET(CURLOPT_CUSTOMREQUEST, method);
        if (rq->body || strcmp(method, "POST") == 0) {
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
            SET(CURLOPT_POSTFIELDS, x->body ? x->body : "");
        }
    }
#undef SET
    return ok ? 0 : BR_ENOMEM;
}

/* --- the reply ---------------------------------------------------------------------------- */

typedef struct resp {
    br_http_response pub;
    br_http_header *harr;
    char *hbuf;
    char *body;
    size_t body_cap;
    char *strs; /* url, content type, charset */
} resp;

void br_http_response_free(br_http_response *r) {
    if (r == NULL)
        return;
    resp *p = (resp *)r;
    br__free(p->harr);
    br__free(p->hbuf);
    body_put(p->body, p->body_cap);
    br__free(p->strs);
    br__free(p);
}

const char *br_http_response_header(const br_http_response *r, const char *name) {
    if (r == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

/* The charset parameter of a Content-Type, lower case, unquoted, into out. */
static bool ct_charset(const char *ct, char *out, size_t cap) {
    for (const char *p = strchr(ct, ';'); p; p = strchr(p + 1, ';')) {
        const char *q = p + 1;
        while (is_ows(*q))
            q++;
        if (strncasecmp(q, "charset", 7) != 0)
            continue;
        q += 7;
        while (is_ows(*q))
            q++;
        if (*q != '=')
            continue;
        q++;
        while (is_ows(*q))
            q++;
        bool quoted = *q == '"';
        if (quoted)
            q++;
        size_t n = 0;
        while (q[n] && q[n] != ';' && q[n] != '"' && !(!quoted && is_ows(q[n])))
            n++;
        if (n == 0 || n >= cap)
            return false;
        for (size_t i = 0; i < n; i++)
            out[i] = (char)tolower((unsigned char)q[i]);
        out[n] = '\0';
        return true;
    }
    return false;
}

/* Retry-After: delay-seconds or an HTTP date; as a duration from now, or -1 (also for
 * a delay too long to count in nanoseconds, some 292 years). */
static int64_t retry_after(const char *v) {
    if (v == NULL || *v == '\0')
        return -1;
    if (isdigit((unsigned char)*v)) {
        int64_t s = 0;
        const char *p = v;
        for (; isdigit((unsigned char)*p); p++) {
            s = s * 10 + (*p - '0');
            if (s > INT64_MAX / BR_SEC)
                return -1;
        }
        return *p == '\0' || is_ows(*p) ? s * BR_SEC : -1;
    }
    time_t t = curl_getdate(v, NULL);
    if (t == (time_t)-1)
        return -1;
    time_t now = time(NULL);
    if (t <= now)
        return 0;
    return (int64_t)(t - now) > INT64_MAX / BR_SEC ? -1 : (int64_t)(t - now) * BR_SEC;
}

static int connect_code(CURL *e) {
    long err = 0;
    curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &err);
    switch (err) {
    case ENETUNREACH:
        return BR_ENETUNREACH;
    case EHOSTUNREACH:
        return BR_EHOSTUNREACH;
    case ETIMEDOUT:
        return BR_ETIMEDOUT;
    default:
        return BR_ECONNREFUSED;
    }
}

static int map_code(br__hx *x, CURLcode cc) {
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return BR_ENAME;
    case CURLE_COULDNT_CONNECT:
        return connect_code(x->easy);
    case CURLE_OPERATION_TIMEDOUT:
        return BR_ETIMEDOUT;
    case CURLE_TOO_MANY_REDIRECTS:
        return BR_EREDIRECT;
    case CURLE_UNSUPPORTED_PROTOCOL: {
        /* After a 3xx: a redirect to a scheme we refuse (our urls are checked). Else
         * the reply's HTTP version is one libcurl doesn't speak ("HTTP/0.1 200"). */
        long status = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
        return status >= 300 && status < 400 ? BR_EREDIRECT : BR_EPROTO;
    }
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return BR_ETLS;
    case CURLE_FILESIZE_EXCEEDED:
        return BR_EMSGSIZE;
    case CURLE_WRITE_ERROR:
        return x->too_big ? BR_EMSGSIZE : x->oom ? BR_ENOMEM : BR_EIO;
    case CURLE_OUT_OF_MEMORY:
        return BR_ENOMEM;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
        return BR_ECONNRESET;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_RANGE_ERROR:
        return BR_EPROTO;
    case CURLE_URL_MALFORMAT:
    case CURLE_BAD_FUNCTION_ARGUMENT: {
        /* Ours (the request is checked first), or, once reply headers came, the reply's:
         * libcurl 7.88 says this of a folded line after a header it refused. */
        long head = 0;
        curl_easy_getinfo(x->easy, CURLINFO_HEADER_SIZE, &head);
        return head > 0 ? BR_EPROTO : BR_EINVAL;
    }
    case CURLE_ABORTED_BY_CALLBACK:
        return BR_ECANCELED;
    default:
        return BR_EIO;
    }
}

int br__hx_finish(br__hx *x, CURLcode cc, br_http_response **out) {
    *out = NULL;
    if (cc == CURLE_WRITE_ERROR && !x->too_big && !x->oom && x->rlen > x->max_body)
        x->too_big = true;
    if (cc != CURLE_OK) {
        int code = map_code(x, cc);
        if (x->errbuf[0] == '\0' || code == BR_EMSGSIZE)
            snprintf(x->errbuf, sizeof x->errbuf, "%s",
                     code == BR_EMSGSIZE ? "the reply's body is over max_body"
                                         : curl_easy_strerror(cc));
        return code;
    }
    if (x->oom)
        return BR_ENOMEM;
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code < 100 || code > 999) { /* libcurl took a status line that isn't 3 digits */
        snprintf(x->errbuf, sizeof x->errbuf, "a reply with status %ld", code);
        return BR_EPROTO;
    }
    resp *p = br__calloc(1, sizeof *p);
    if (p == NULL)
        return BR_ENOMEM;
    br_http_response *r = &p->pub;
    long status = 0, redirs = 0;
    char *url = NULL, *ct = NULL;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_COUNT, &redirs);
    curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url);
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
    char cs[64];
    bool has_cs = ct && ct_charset(ct, cs, sizeof cs);
    size_t lu = url ? strlen(url) + 1 : 1, lc = ct ? strlen(ct) + 1 : 0;
    size_t ls = has_cs ? strlen(cs) + 1 : 0;
    p->strs = br__malloc(lu + lc + ls);
    if (p->strs == NULL)
        goto oom;
    memcpy(p->strs, url ? url : "", lu);
    r->url = p->strs;
    if (ct) {
        memcpy(p->strs + lu, ct, lc);
        r->content_type = p->strs + lu;
    }
    if (has_cs) {
        memcpy(p->strs + lu + lc, cs, ls);
        r->charset = p->strs + lu + lc;
    }
    if (x->nhdr) {
        p->harr = br__malloc(x->nhdr * sizeof *p->harr);
        if (p->harr == NULL)
            goto oom;
        p->hbuf = x->hbuf; /* the names and values point into it */
        x->hbuf = NULL;
        x->hlen = x->hcap = 0;
        const char *s = p->hbuf;
        for (size_t i = 0; i < x->nhdr; i++) {
            p->harr[i].name = s;
            s += strlen(s) + 1;
            p->harr[i].value = s;
            s += strlen(s) + 1;
        }
        r->headers = p->harr;
        r->nheaders = x->nhdr;
    }
    if (x->rbody == NULL) {
        x->rbody = br__malloc(1);
        if (x->rbody == NULL)
            goto oom;
        x->rbody[0] = '\0';
    }
    p->body = x->rbody;
    p->body_cap = x->rcap ? x->rcap : 1;
    x->rbody = NULL;
    r->body = p->body;
    r->body_len = x->rlen;
    x->rlen = x->rcap = 0;
    r->status = (int)status;
    r->redirects = (int)redirs;
    r->retry_after_ns = retry_after(br_http_response_header(r, "Retry-After"));
    *out = r;
    return 0;
oom:
    br_http_response_free(r);
    return BR_ENOMEM;
}

/* --- the thread path ------------------------------------------------------------------------ */

static _Thread_local CURL *tl_easy;
static _Thread_local pid_t tl_pid;
static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;

static void tl_free(void *p) {
    if (p != NULL && p == tl_easy && tl_pid == br__http_pid())
        curl_easy_cleanup(p);
    tl_easy = NULL;
}

static void tl_init(void) { (void)pthread_key_create(&tl_key, tl_free); }

static CURL *thread_easy(void) {
    pid_t pid = br__http_pid();
    if (tl_easy != NULL && tl_pid == pid)
        return tl_easy;
    /* None yet, or the parent's (a forked child): its sockets are the parent's too, so
     * it is left as it is and this process gets its own. */
    pthread_once(&tl_once, tl_init);
    CURL *e = curl_easy_init();
    if (e == NULL)
        return NULL;
    tl_easy = e;
    tl_pid = pid;
    (void)pthread_setspecific(tl_key, e);
    return e;
}

static int fetch_thread(br_http_client *c, const br_http_request *rq,
                        br_http_response **out) {
    br__hx x = {0};
    x.easy = thread_easy();
    if (x.easy == NULL)
        return BR_ENOMEM;
    int rc = br__hx_setup(&x, c, rq);
    if (rc == 0) {
        CURLcode cc = curl_easy_perform(x.easy);
        rc = br__hx_finish(&x, cc, out);
        if (rc != 0 && rq->error && rq->error_cap)
            snprintf(rq->error, rq->error_cap, "%s", x.errbuf);
    }
    /* Pointers into our buffers must not outlive them (the handle stays for reuse). */
    curl_easy_setopt(x.easy, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(x.easy, CURLOPT_ERRORBUFFER, NULL);
    br__hx_clear(&x);
    return rc;
}

/* --- the public calls -------------------------------------------------------------------------- */

int br_http_fetch(br_http_client *c, const br_http_request *rq, br_http_response **out) {
    if (out)
        *out = NULL;
    if (c == NULL || rq == NULL || out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_http_fetch: client, request or out is NULL");
    if (br__atask_current() == NULL)
        return fetch_thread(c, rq, out);
    br_future *f;
    int rc = br__hloop_fetch_async(c, rq, &f);
    if (rc != 0)
        return rc;
    /* libcurl enforces the deadline (CURLOPT_TIMEOUT_MS); ours, a little later, only
     * guards against a transfer libcurl never ends. */
    int64_t dl = (rq->deadline ? rq->deadline : br_now() + c->o.timeout_ns) + BR_SEC;
    void *p = NULL;
    rc = br_future_take_ptr(f, dl, &p);
    if (rc == BR_ECANCELED && !br_future_done(f)) {
        (void)br_future_cancel(f); /* the caller was cancelled: abandon the transfer */
    } else if (rc == BR_ETIMEDOUT && !br_future_done(f)) {
        (void)br_future_cancel(f);
    } else if (rc == 0) {
        *out = p;
    } else if (rc != BR_ECANCELED) {
        const char *msg = NULL;
        if (rq->error && rq->error_cap &&
            br_future_exception(f, BR_NOWAIT, NULL, &msg) == 0)
            snprintf(rq->error, rq->error_cap, "%s", msg ? msg : br_strerror(rc));
    }
    br_future_release(f);
    return rc;
}

int br_http_fetch_async(br_http_client *c, const br_http_request *rq, br_future **out) {
    if (out)
        *out = NULL;
    if (c == NULL || rq == NULL || out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_http_fetch_async: client, request or out is NULL");
    return br__hloop_fetch_async(c, rq, out);
}
