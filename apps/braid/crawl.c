/* crawl.c: `braid crawl`, the tutorials' blog crawler as a tool.
 *
 * Design note (the crawl's protocol between its parts):
 *
 *   frontier   One locked FIFO of jobs (url, depth) and a set of canonical URLs
 *              (br_url_canonical) already queued, so a page is fetched once however
 *              many pages link to it. frontier_take hands out a job and counts it in
 *              flight; frontier_done takes the links a page yielded (depth+1 <= --depth,
 *              same host unless --any-host) and uncounts it. The crawl is over when
 *              nothing is queued and nothing is in flight, or when it is stopped (the
 *              first SIGINT, or --deadline): then take says "no more" and what is in
 *              flight finishes. The frontier's lock and condition are braid's, so a
 *              coroutine waiting in take suspends only itself.
 *   a page     job_run: robots.txt (fetched once per host, RFC 9309 longest match,
 *              Crawl-delay), the host's slot (--per-host at once, --delay between
 *              starts, the larger of --delay and Crawl-delay), the fetch with retries
 *              (408/429/5xx and refused/reset/timed-out connections; exponential
 *              back-off with jitter, or the reply's Retry-After), then the extraction.
 *              Its outcome is a page_result: records (nfields strings each) and links,
 *              or one error. The same function runs on a thread, a pool worker, a
 *              coroutine or (fetch_parse only) in a process-pool worker, whose result
 *              crosses back as bytes (page_result_pack / _unpack).
 *   the writer One sink (a FILE, flushed after every line, or a memory buffer) behind
 *              one lock; a page's records are written together, each line whole, so
 *              lines never interleave and a crash or a second Ctrl-C loses no line that
 *              was reported.
 *   models     serial: one loop. threads: a thread per URL (at most --concurrency at
 *              once). pipeline: braid's pipeline, a fetch stage of --concurrency
 *              coroutines -> a parse stage of 2 threads (run_pipeline). pool: a thread
 *              pool, a task per URL. process: a process pool, a task per batch of URLs
 *              fetched concurrently by coroutines in the worker and parsed there, results
 *              written by the parent (run_process). async: --concurrency coroutines on
 *              one loop.
 */
#define _GNU_SOURCE 1

#include "crawl.h"

#include <braid.h>
#include <braid/http.h>
#include <braid/processpool.h>

#include "fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

const char *const braid_crawl_models[6] = {"serial", "threads", "pipeline",
                                           "pool",   "process", "async"};

enum model { M_SERIAL, M_THREADS, M_PIPELINE, M_POOL, M_PROCESS, M_ASYNC };
enum format { F_JSONL, F_CSV, F_TSV };
enum robots_mode { ROBOTS_AUTO, ROBOTS_ON, ROBOTS_OFF };

#define TITLES_RECORD "//a[contains(concat(' ', normalize-space(@class), ' '), ' post-item-title ')]"
#define ARTICLE_RECORD "//article[contains(concat(' ', normalize-space(@class), ' '), ' post-item ')]"
enum { MAX_FIELDS = 32 };

/* --- small buffers ---------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static int buf_add(buf *b, const void *data, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return BR_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}
static int buf_str0(buf *b, const char *s) { return buf_add(b, s, strlen(s) + 1); }

/* --- options ---------------------------------------------------------------------- */

typedef struct crawl_opts {
    enum model model;
    int concurrency;      /* 0: the model's default */
    int per_host;         /* 0: no cap beyond --concurrency */
    int64_t delay_ns;     /* between request starts to one host */
    int retries;
    int64_t timeout_ns;   /* per request */
    int64_t deadline_ns;  /* whole crawl; 0 none */
    int depth;
    bool any_host;
    enum robots_mode robots;
    enum format format;
    const char *output;   /* NULL or "-": stdout */
    const char *input;
    bool resume;
    bool quiet;
    bool progress;        /* set from isatty unless --no-progress */
    size_t max_bytes;
    int64_t backoff_ns;   /* the first retry's back-off */
    const char *user_agent;
    const char *record;   /* XPath of a record */
    int nfields;
    br_html_field fields[MAX_FIELDS];
    char **urls;
    int nurls;
    int64_t latency_ns;   /* the built-in fixture's latency */
} crawl_opts;

/* --- output ----------------------------------------------------------------------- */

typedef struct writer {
    br_lock lock;
    FILE *f;        /* or NULL: into mem */
    buf *mem;
    enum format format;
    const crawl_opts *o;
    size_t lines;
    bool failed;    /* a write failed (disk full, closed pipe) */
} writer;

/* Bytes that aren't valid UTF-8 become U+FFFD, so every line is valid UTF-8 whatever
 * a page held. */
static char *utf8_clean(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(n * 3 + 1), *w = out;
    if (out == NULL)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = len > 0;
        for (int i = 1; ok && i < len; i++)
            ok = (p[i] & 0xC0) == 0x80;
        if (ok && len == 2 && c < 0xC2)
            ok = false; /* overlong */
        if (ok && len == 3 && ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0)))
            ok = false; /* overlong, surrogate */
        if (ok && len == 4 && ((c == 0xF0 && p[1] < 0x90) || c > 0xF4 || (c == 0xF4 && p[1] >= 0x90)))
            ok = false;
        if (!ok) {
            memcpy(w, "\xEF\xBF\xBD", 3);
            w += 3;
            p++;
            continue;
        }
        memcpy(w, p, (size_t)len);
        w += len;
        p += len;
    }
    *w = '\0';
    return out;
}

static void csv_field(buf *b, const char *s) {
    bool quote = strpbrk(s, ",\"\r\n") != NULL;
    if (!quote) {
        buf_add(b, s, strlen(s));
        return;
    }
    buf_add(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            buf_add(b, "\"", 1);
        buf_add(b, p, 1);
    }
    buf_add(b, "\"", 1);
}

static void tsv_field(buf *b, const char *s) {
    for (const char *p = s; *p; p++)
        buf_add(b, (*p == '\t' || *p == '\n' || *p == '\r') ? " " : p, 1);
}

static int writer_emit(writer *w, const buf *line) {
    int rc = 0;
    br_lock_acquire(&w->lock, BR_FOREVER);
    if (w->f != NULL) {
        if (fwrite(line->p, 1, line->len, w->f) != line->len || fflush(w->f) != 0) {
            w->failed = true;
            rc = BR_EIO;
        }
    } else if (buf_add(w->mem, line->p, line->len) != 0) {
        rc = BR_ENOMEM;
    }
    if (rc == 0)
        w->lines++;
    br_lock_release(&w->lock);
    return rc;
}

static void writer_header(writer *w) {
    if (w->format != F_CSV)
        return;
    buf b = {0};
    buf_add(&b, "page", 4);
    for (int i = 0; i < w->o->nfields; i++) {
        buf_add(&b, ",", 1);
        csv_field(&b, w->o->fields[i].name);
    }
    buf_add(&b, ",error,message\r\n", 16);
    writer_emit(w, &b);
    free(b.p);
}

/* One record: values[i] for field i; or, with err set, the page's error record. */
static int writer_record(writer *w, const char *page, const char *const *values,
                         const char *err, const char *msg) {
    buf b = {0};
    const crawl_opts *o = w->o;
    int rc = 0;
    if (w->format == F_TSV) {
        if (err != NULL)
            return 0; /* the peer's line format has no room for errors: stderr only */
        for (int i = 0; i < o->nfields; i++) {
            if (i)
                buf_add(&b, "\t", 1);
            char *v = utf8_clean(values[i]);
            tsv_field(&b, v ? v : "");
            free(v);
        }
        buf_add(&b, "\n", 1);
    } else if (w->format == F_CSV) {
        char *v = utf8_clean(page);
        csv_field(&b, v ? v : "");
        free(v);
        for (int i = 0; i < o->nfields; i++) {
            buf_add(&b, ",", 1);
            v = utf8_clean(err ? "" : values[i]);
            csv_field(&b, v ? v : "");
            free(v);
        }
        buf_add(&b, ",", 1);
        csv_field(&b, err ? err : "");
        buf_add(&b, ",", 1);
        v = utf8_clean(err ? msg : "");
        csv_field(&b, v ? v : "");
        free(v);
        buf_add(&b, "\r\n", 2);
    } else {
        json_t *obj = json_object();
        char *v = utf8_clean(page);
        if (err != NULL)
            json_object_set_new(obj, "url", json_string(v ? v : ""));
        json_object_set_new(obj, "page", json_string(v ? v : ""));
        free(v);
        if (err != NULL) {
            json_object_set_new(obj, "error", json_string(err));
            v = utf8_clean(msg);
            json_object_set_new(obj, "message", json_string(v ? v : ""));
            free(v);
        } else {
            for (int i = 0; i < o->nfields; i++) {
                v = utf8_clean(values[i]);
                json_object_set_new(obj, o->fields[i].name, json_string(v ? v : ""));
                free(v);
            }
        }
        char *s = json_dumps(obj, JSON_COMPACT);
        json_decref(obj);
        if (s == NULL)
            return BR_ENOMEM;
        buf_add(&b, s, strlen(s));
        buf_add(&b, "\n", 1);
        free(s);
    }
    if (b.p != NULL)
        rc = writer_emit(w, &b);
    free(b.p);
    return rc;
}

/* --- a page's outcome ------------------------------------------------------------- */

typedef struct page_result {
    int code;          /* 0, a BR_E… code, or 1: an HTTP error status */
    int status;
    int retries;
    char msg[240];
    int nrec;
    buf recs;          /* nrec * nfields NUL-terminated strings */
    int nlinks;
    buf links;         /* nlinks NUL-terminated absolute URLs */
} page_result;

static void page_result_free(page_result *r) {
    free(r->recs.p);
    free(r->links.p);
    memset(r, 0, sizeof *r);
}

static void fail(page_result *r, int code, const char *fmt, ...) BR_PRINTF(3, 4);
static void fail(page_result *r, int code, const char *fmt, ...) {
    r->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
}

typedef struct pack_head {
    int32_t code, status, retries, nrec, nlinks;
    uint32_t recs_len, links_len;
    char msg[240];
} pack_head;

static int page_result_pack(const page_result *r, buf *out) {
    pack_head h = {r->code, r->status, r->retries, r->nrec, r->nlinks,
                   (uint32_t)r->recs.len, (uint32_t)r->links.len, {0}};
    memcpy(h.msg, r->msg, sizeof h.msg);
    if (buf_add(out, &h, sizeof h) || buf_add(out, r->recs.p ? r->recs.p : "", r->recs.len) ||
        buf_add(out, r->links.p ? r->links.p : "", r->links.len))
        return BR_ENOMEM;
    return 0;
}

static int page_result_unpack(const void *data, size_t len, page_result *r) {
    pack_head h;
    if (len < sizeof h)
        return BR_EPROTO;
    memcpy(&h, data, sizeof h);
    if (len != sizeof h + h.recs_len + h.links_len)
        return BR_EPROTO;
    memset(r, 0, sizeof *r);
    r->code = h.code;
    r->status = h.status;
    r->retries = h.retries;
    r->nrec = h.nrec;
    r->nlinks = h.nlinks;
    memcpy(r->msg, h.msg, sizeof r->msg);
    r->msg[sizeof r->msg - 1] = '\0';
    const char *p = (const char *)data + sizeof h;
    if (buf_add(&r->recs, p, h.recs_len) || buf_add(&r->links, p + h.recs_len, h.links_len))
        return BR_ENOMEM;
    return 0;
}

/* --- hosts: politeness and robots.txt --------------------------------------------- */

typedef struct rule {
    bool allow;
    char *path;
} rule;

typedef struct host {
    char *key;            /* scheme://host:port */
    int active;
    int64_t next_start;
    int robots;           /* 0 unknown, 1 fetching, 2 known */
    bool disallow_all;
    int robots_err;       /* robots.txt couldn't be fetched: the host's pages fail so */
    rule *rules;
    int nrules;
    int64_t crawl_delay_ns;
    struct host *next;
} host;

/* --- the crawl -------------------------------------------------------------------- */

typedef struct job {
    char *url;
    int depth;
} job;

typedef struct crawl {
    crawl_opts o;
    br_http_client *client;
    writer w;
    /* frontier */
    br_lock lock;
    br_cond cond;
    job *q;
    size_t qhead, qlen, qcap;
    char **seen;
    size_t nseen, seencap;
    int in_flight;
    bool stopping;
    host *hosts;
    br_lock hostlock;
    br_cond hostcond;
    /* stats */
    atomic_long pages_ok, pages_failed, retries, records, skipped;
    long errs_by_kind[16];
    char errs_name[16][24];
    int nkinds;
    int64_t started, deadline;
    atomic_int stop_reason; /* 0 none, 1 SIGINT, 2 deadline */
} crawl;

static uint64_t fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Adds s (taken) to the seen set; false if it was there (s freed). Under c->cond. */
static bool seen_add(crawl *c, char *s) {
    if ((c->nseen + 1) * 2 > c->seencap) {
        size_t cap = c->seencap ? c->seencap * 2 : 256;
        char **t = calloc(cap, sizeof *t);
        if (t == NULL) {
            free(s);
            return false;
        }
        for (size_t i = 0; i < c->seencap; i++)
            if (c->seen[i] != NULL) {
                size_t j = fnv(c->seen[i]) & (cap - 1);
                while (t[j] != NULL)
                    j = (j + 1) & (cap - 1);
                t[j] = c->seen[i];
            }
        free(c->seen);
        c->seen = t;
        c->seencap = cap;
    }
    size_t j = fnv(s) & (c->seencap - 1);
    while (c->seen[j] != NULL) {
        if (strcmp(c->seen[j], s) == 0) {
            free(s);
            return false;
        }
        j = (j + 1) & (c->seencap - 1);
    }
    c->seen[j] = s;
    c->nseen++;
    return true;
}

/* Queues url at depth unless its canonical form was seen. Under c->cond. */
static void frontier_push(crawl *c, const char *url, int depth) {
    char *canon = NULL;
    if (br_url_canonical(url, &canon) != 0 || canon == NULL)
        canon = strdup(url);
    if (canon == NULL || !seen_add(c, canon))
        return;
    if (c->qlen == c->qcap) {
        size_t cap = c->qcap ? c->qcap * 2 : 64;
        job *q = malloc(cap * sizeof *q);
        if (q == NULL)
            return;
        for (size_t i = 0; i < c->qlen; i++)
            q[i] = c->q[(c->qhead + i) % c->qcap];
        free(c->q);
        c->q = q;
        c->qhead = 0;
        c->qcap = cap;
    }
    char *u = strdup(url);
    if (u == NULL)
        return;
    c->q[(c->qhead + c->qlen) % c->qcap] = (job){u, depth};
    c->qlen++;
}

/* The next job (counted in flight), or BR_EOF: nothing left, or stopping. */
static int frontier_take(crawl *c, job *out) {
    br_cond_acquire(&c->cond, BR_FOREVER);
    for (;;) {
        if (!c->stopping && c->deadline && br_now() >= c->deadline) {
            c->stopping = true;
            atomic_store(&c->stop_reason, 2);
        }
        if (c->stopping || (c->qlen == 0 && c->in_flight == 0)) {
            br_cond_notify_all(&c->cond);
            br_cond_release(&c->cond);
            return BR_EOF;
        }
        if (c->qlen > 0)
            break;
        br_cond_wait(&c->cond, c->deadline ? c->deadline : BR_FOREVER);
    }
    *out = c->q[c->qhead];
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qlen--;
    c->in_flight++;
    br_cond_release(&c->cond);
    return 0;
}

static bool same_host(const char *a, const char *b) {
    const char *pa = strstr(a, "://"), *pb = strstr(b, "://");
    if (pa == NULL || pb == NULL)
        return false;
    pa += 3;
    pb += 3;
    size_t la = strcspn(pa, "/?#"), lb = strcspn(pb, "/?#");
    return la == lb && strncasecmp(pa, pb, la) == 0;
}

static void frontier_done(crawl *c, const job *j, const page_result *r) {
    br_cond_acquire(&c->cond, BR_FOREVER);
    if (r != NULL && r->code == 0 && j->depth < c->o.depth) {
        const char *p = r->links.p;
        for (int i = 0; i < r->nlinks; i++, p += strlen(p) + 1)
            if (c->o.any_host || same_host(p, j->url))
                frontier_push(c, p, j->depth + 1);
    }
    c->in_flight--;
    br_cond_notify_all(&c->cond);
    br_cond_release(&c->cond);
}

static void crawl_stop(crawl *c, int reason) {
    br_cond_acquire(&c->cond, BR_FOREVER);
    if (!c->stopping)
        atomic_store(&c->stop_reason, reason);
    c->stopping = true;
    br_cond_notify_all(&c->cond);
    br_cond_release(&c->cond);
}

/* --- sleeping on a thread or in a coroutine ----------------------------------------- */

static int sleep_until(int64_t when) {
    if (when <= br_now())
        return 0;
    if (br_aio_current_task() != NULL)
        return br_aio_sleep_until(when);
    return br_sleep_until(when);
}

/* --- fetch with retries ----------------------------------------------------------- */

static bool retryable_status(int s) { return s == 408 || s == 429 || (s >= 500 && s <= 599); }
static bool retryable_code(int e) {
    return e == BR_ECONNREFUSED || e == BR_ECONNRESET || e == BR_ETIMEDOUT;
}

static uint64_t jitter_state(void) {
    static _Thread_local uint64_t s;
    if (s == 0)
        s = (uint64_t)br_now() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&s;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

/* Fetches url with c's retry policy; *resp on success (any status < 400 or the last
 * failing one), else the transport code. */
static int fetch_retrying(const crawl_opts *o, br_http_client *client, int64_t crawl_deadline,
                          const char *url, br_http_response **resp, page_result *r) {
    for (int attempt = 0;; attempt++) {
        char err[200] = "";
        int64_t dl = br_now() + o->timeout_ns;
        if (crawl_deadline && crawl_deadline < dl)
            dl = crawl_deadline;
        br_http_request rq = {.url = url, .deadline = dl, .error = err, .error_cap = sizeof err};
        br_http_response *res = NULL;
        int rc = br_http_fetch(client, &rq, &res);
        int64_t wait = -1;
        if (rc == 0 && !retryable_status(res->status)) {
            *resp = res;
            return 0;
        }
        if (rc == 0)
            wait = res->retry_after_ns;
        else if (!retryable_code(rc)) {
            fail(r, rc, "%s", err[0] ? err : br_strerror(rc));
            return rc;
        }
        if (attempt >= o->retries || (crawl_deadline && br_now() >= crawl_deadline)) {
            if (rc == 0) {
                *resp = res;
                return 0;
            }
            fail(r, rc, "%s (after %d retries)", err[0] ? err : br_strerror(rc), attempt);
            return rc;
        }
        if (res != NULL)
            br_http_response_free(res);
        if (wait < 0) {
            int64_t base = o->backoff_ns << (attempt < 20 ? attempt : 20);
            if (base > 30 * (int64_t)1000000000)
                base = 30 * (int64_t)1000000000;
            wait = base / 2 + (int64_t)(jitter_state() % (uint64_t)(base / 2 + 1));
        } else if (wait > 120 * (int64_t)1000000000) {
            wait = 120 * (int64_t)1000000000;
        }
        int64_t when = br_now() + wait;
        if (crawl_deadline && when > crawl_deadline) {
            fail(r, BR_ETIMEDOUT, "the crawl's deadline comes before the retry");
            return BR_ETIMEDOUT;
        }
        r->retries++;
        if (sleep_until(when) != 0) {
            fail(r, BR_ECANCELED, "cancelled");
            return BR_ECANCELED;
        }
    }
}

/* --- extraction ------------------------------------------------------------------- */

typedef struct extract_ctx {
    page_result *r;
    int nfields;
} extract_ctx;

static int on_record(const char *const *values, void *arg) {
    extract_ctx *x = arg;
    for (int i = 0; i < x->nfields; i++)
        if (buf_str0(&x->r->recs, values[i] ? values[i] : ""))
            return BR_ENOMEM;
    x->r->nrec++;
    return 0;
}

static int on_link(const char *const *values, void *arg) {
    page_result *r = arg;
    const char *u = values[0];
    if (u == NULL || (strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0))
        return 0;
    if (buf_str0(&r->links, u))
        return BR_ENOMEM;
    r->nlinks++;
    return 0;
}

static bool is_html_type(const char *ct) {
    if (ct == NULL)
        return true;
    size_t n = strcspn(ct, "; ");
    return (n == 9 && strncasecmp(ct, "text/html", 9) == 0) ||
           (n == 21 && strncasecmp(ct, "application/xhtml+xml", 21) == 0);
}

/* Extracts the records (and, with want_links, the links) of a fetched page (its status,
 * Content-Type, final URL and body) into r, or r's error. */
static void parse_fetched(const crawl_opts *o, int status, const char *content_type,
                          const char *final_url, const char *body, size_t body_len,
                          bool want_links, page_result *r) {
    r->status = status;
    if (status >= 400) {
        fail(r, 1, "HTTP %d", status);
        return;
    }
    if (status >= 300) {
        fail(r, BR_EREDIRECT, "HTTP %d without a usable Location", status);
        return;
    }
    if (!is_html_type(content_type)) {
        fail(r, BR_EPROTO, "not an HTML page (Content-Type %s)", content_type);
        return;
    }
    size_t probe = body_len < 4096 ? body_len : 4096;
    if (body == NULL || memchr(body, '\0', probe) != NULL) {
        fail(r, BR_EPROTO, "binary content, not HTML");
        return;
    }
    br_html_doc *doc = NULL;
    int rc = br_html_parse(body, body_len, content_type, final_url, &doc);
    if (rc != 0) {
        fail(r, rc, "the page can't be parsed: %s", br_strerror(rc));
        return;
    }
    extract_ctx x = {r, o->nfields};
    rc = br_html_records(doc, o->record, o->fields, (size_t)o->nfields, on_record, &x);
    if (rc >= 0 && want_links) {
        static const br_html_field href = {"href", "@href", true, true};
        int lr = br_html_records(doc, "//a[@href]", &href, 1, on_link, r);
        if (lr < 0)
            rc = lr;
    }
    br_html_free(doc);
    if (rc < 0)
        fail(r, rc, "extraction failed: %s", br_strerror(rc));
}

/* parse_fetched on a response; frees res. */
static void parse_page(const crawl_opts *o, br_http_response *res, bool want_links,
                       page_result *r) {
    parse_fetched(o, res->status, res->content_type, res->url, res->body, res->body_len,
                  want_links, r);
    br_http_response_free(res);
}

/* At most one parse per CPU at once, whatever the number of fetching threads (the
 * threads and pool models run 64). With all 50 of W9's pages parsed at once, the parses
 * shared 2 cores with the replies still arriving, and those waited for a core: the last
 * fetch ended 220 ms after the first request instead of about 100 (AMD EPYC guest,
 * +100 ms latency); with the gate the crawl took 0.23-0.245 s instead of 0.25-0.255.
 * A thread waits here only with its page fetched. Gated in the process that made the
 * semaphore only (a forked child's copy may count parses of threads it doesn't have). */
static br_sem parse_slots;
static pthread_once_t parse_slots_once = PTHREAD_ONCE_INIT;
static pid_t parse_slots_pid;

static void parse_slots_init(void) {
    int n = br_cpu_count();
    br_sem_init(&parse_slots, (unsigned)(n > 0 ? n : 1));
    parse_slots_pid = getpid();
}

/* Fetch and extract one page (no robots, no politeness: the caller's). */
static void fetch_parse(const crawl_opts *o, br_http_client *client, int64_t crawl_deadline,
                        const char *url, bool want_links, page_result *r) {
    br_http_response *res = NULL;
    if (fetch_retrying(o, client, crawl_deadline, url, &res, r) != 0)
        return;
    pthread_once(&parse_slots_once, parse_slots_init);
    bool gated = parse_slots_pid == getpid() && br_sem_acquire(&parse_slots, BR_FOREVER) == 0;
    parse_page(o, res, want_links, r);
    if (gated)
        br_sem_release(&parse_slots, 1);
}

/* --- robots.txt (RFC 9309) -------------------------------------------------------- */

static bool is_loopback(const char *url) {
    const char *p = strstr(url, "://");
    if (p == NULL)
        return false;
    p += 3;
    return strncmp(p, "127.", 4) == 0 || strncasecmp(p, "localhost", 9) == 0 ||
           strncmp(p, "[::1]", 5) == 0;
}

static char *origin_of(const char *url) {
    const char *p = strstr(url, "://");
    if (p == NULL)
        return strdup(url);
    p += 3;
    size_t n = (size_t)(p - url) + strcspn(p, "/?#");
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, url, n);
        s[n] = '\0';
        for (char *q = s; *q; q++)
            if (*q >= 'A' && *q <= 'Z')
                *q = (char)(*q - 'A' + 'a');
    }
    return s;
}

/* Does robots pattern pat match path's start ('*' any run, '$' the end)? */
static bool robots_match(const char *pat, const char *path) {
    if (*pat == '\0')
        return true;
    if (*pat == '$' && pat[1] == '\0')
        return *path == '\0';
    if (*pat == '*') {
        for (const char *p = path;; p++) {
            if (robots_match(pat + 1, p))
                return true;
            if (*p == '\0')
                return false;
        }
    }
    return *pat == *path && robots_match(pat + 1, path + 1);
}

static void robots_parse(host *h, const char *txt, size_t len, const char *agent) {
    /* Groups: consecutive user-agent lines then rules. Ours is the group naming our
     * product token, else "*". */
    enum { NONE, MINE, STAR } which = NONE, best = NONE;
    bool in_agents = false, cur_mine = false, cur_star = false;
    rule *rules[3] = {NULL};
    int nrules[3] = {0};
    int64_t delay[3] = {0, 0, 0};
    const char *p = txt, *end = txt + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        char line[1024];
        size_t n = (size_t)(le - p) < sizeof line - 1 ? (size_t)(le - p) : sizeof line - 1;
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl ? nl + 1 : end;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        char *key = line, *val = colon + 1;
        while (*key == ' ' || *key == '\t')
            key++;
        for (char *e = key + strlen(key); e > key && (e[-1] == ' ' || e[-1] == '\t');)
            *--e = '\0';
        while (*val == ' ' || *val == '\t')
            val++;
        for (char *e = val + strlen(val); e > val && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r');)
            *--e = '\0';
        if (strcasecmp(key, "user-agent") == 0) {
            if (!in_agents)
                cur_mine = cur_star = false;
            in_agents = true;
            if (strcmp(val, "*") == 0)
                cur_star = true;
            else if (strncasecmp(agent, val, strlen(val)) == 0 && val[0])
                cur_mine = true;
            continue;
        }
        in_agents = false;
        which = cur_mine ? MINE : cur_star ? STAR : NONE;
        if (which == NONE)
            continue;
        if (which == MINE)
            best = MINE;
        else if (best == NONE)
            best = STAR;
        bool allow = strcasecmp(key, "allow") == 0;
        if (allow || strcasecmp(key, "disallow") == 0) {
            if (*val == '\0')
                continue; /* "Disallow:" allows everything */
            rule *t = realloc(rules[which], (size_t)(nrules[which] + 1) * sizeof *t);
            if (t == NULL)
                continue;
            rules[which] = t;
            t[nrules[which]++] = (rule){allow, strdup(val)};
        } else if (strcasecmp(key, "crawl-delay") == 0) {
            double d = strtod(val, NULL);
            if (d > 0 && d < 3600)
                delay[which] = (int64_t)(d * 1e9);
        }
    }
    int pick = best == MINE ? MINE : STAR;
    h->rules = rules[pick];
    h->nrules = nrules[pick];
    h->crawl_delay_ns = delay[pick];
    for (int i = 1; i < 3; i++)
        if (i != pick) {
            for (int k = 0; k < nrules[i]; k++)
                free(rules[i][k].path);
            free(rules[i]);
        }
}

static bool robots_allows(const host *h, const char *url) {
    if (h->disallow_all)
        return false;
    const char *p = strstr(url, "://");
    const char *path = p ? p + 3 + strcspn(p + 3, "/?#") : url;
    if (*path != '/')
        path = "/";
    size_t best = 0;
    bool allow = true;
    for (int i = 0; i < h->nrules; i++) {
        size_t n = strlen(h->rules[i].path);
        if (robots_match(h->rules[i].path, path) && (n > best || (n == best && h->rules[i].allow))) {
            best = n;
            allow = h->rules[i].allow;
        }
    }
    return allow;
}

/* The host record for url (made on first use). Under c->hostlock. */
static host *host_get(crawl *c, const char *url) {
    char *key = origin_of(url);
    if (key == NULL)
        return NULL;
    for (host *h = c->hosts; h; h = h->next)
        if (strcmp(h->key, key) == 0) {
            free(key);
            return h;
        }
    host *h = calloc(1, sizeof *h);
    if (h == NULL) {
        free(key);
        return NULL;
    }
    h->key = key;
    h->next = c->hosts;
    c->hosts = h;
    return h;
}

/* Robots and politeness before a page: 0 (a slot held: host_release after), 1 (robots
 * forbids it), or an error. */
static int host_admit(crawl *c, const char *url) {
    bool robots = c->o.robots == ROBOTS_ON || (c->o.robots == ROBOTS_AUTO && !is_loopback(url));
    if (!robots && c->o.per_host <= 0 && c->o.delay_ns <= 0)
        return 0;
    br_cond_acquire(&c->hostcond, BR_FOREVER);
    host *h = host_get(c, url);
    if (h == NULL) {
        br_cond_release(&c->hostcond);
        return BR_ENOMEM;
    }
    while (robots && h->robots == 1)
        br_cond_wait(&c->hostcond, BR_FOREVER);
    if (robots && h->robots == 0) {
        h->robots = 1;
        br_cond_release(&c->hostcond);
        char *ru = malloc(strlen(h->key) + 16);
        sprintf(ru, "%s/robots.txt", h->key);
        br_http_response *res = NULL;
        br_http_request rq = {.url = ru, .deadline = br_now() + c->o.timeout_ns};
        int rc = br_http_fetch(c->client, &rq, &res);
        br_cond_acquire(&c->hostcond, BR_FOREVER);
        if (rc == 0 && res->status >= 200 && res->status < 300)
            robots_parse(h, res->body, res->body_len, c->o.user_agent);
        else if (rc != 0)
            h->robots_err = rc; /* the host can't be reached: its pages fail with why */
        else if (res->status >= 500)
            h->disallow_all = true; /* RFC 9309: a server error means complete disallow */
        if (res)
            br_http_response_free(res);
        free(ru);
        h->robots = 2;
        br_cond_notify_all(&c->hostcond);
    }
    if (robots && h->robots_err != 0) {
        int err = h->robots_err;
        br_cond_release(&c->hostcond);
        return err;
    }
    if (robots && !robots_allows(h, url)) {
        br_cond_release(&c->hostcond);
        return 1;
    }
    int64_t delay = c->o.delay_ns;
    if (robots && h->crawl_delay_ns > delay)
        delay = h->crawl_delay_ns;
    while (c->o.per_host > 0 && h->active >= c->o.per_host)
        br_cond_wait(&c->hostcond, BR_FOREVER);
    h->active++;
    int64_t start = h->next_start > br_now() ? h->next_start : br_now();
    h->next_start = start + delay;
    br_cond_release(&c->hostcond);
    sleep_until(start);
    return 0;
}

static void host_release(crawl *c, const char *url) {
    bool robots = c->o.robots == ROBOTS_ON || (c->o.robots == ROBOTS_AUTO && !is_loopback(url));
    if (!robots && c->o.per_host <= 0 && c->o.delay_ns <= 0)
        return;
    br_cond_acquire(&c->hostcond, BR_FOREVER);
    host *h = host_get(c, url);
    if (h != NULL)
        h->active--;
    br_cond_notify_all(&c->hostcond);
    br_cond_release(&c->hostcond);
}

/* --- a page's outcome written ----------------------------------------------------- */

static const char *code_name(int code) { return code == 1 ? "HTTP" : br_err_name(code); }

static void count_error(crawl *c, const char *name) {
    br_lock_acquire(&c->lock, BR_FOREVER);
    int i = 0;
    while (i < c->nkinds && strcmp(c->errs_name[i], name) != 0)
        i++;
    if (i == c->nkinds && c->nkinds < 16) {
        snprintf(c->errs_name[i], sizeof c->errs_name[i], "%s", name);
        c->nkinds++;
    }
    if (i < 16)
        c->errs_by_kind[i]++;
    br_lock_release(&c->lock);
}

static void page_finish(crawl *c, const job *j, page_result *r) {
    atomic_fetch_add(&c->retries, r->retries);
    if (r->code != 0) {
        char name[24];
        if (r->code == 1)
            snprintf(name, sizeof name, "HTTP_%d", r->status);
        else
            snprintf(name, sizeof name, "%s", code_name(r->code));
        writer_record(&c->w, j->url, NULL, name, r->msg);
        if (!c->o.quiet)
            fprintf(stderr, "braid crawl: %s: %s: %s\n", j->url, name, r->msg);
        atomic_fetch_add(&c->pages_failed, 1);
        count_error(c, name);
    } else {
        const char *vals[MAX_FIELDS];
        const char *p = r->recs.p;
        for (int k = 0; k < r->nrec; k++) {
            for (int i = 0; i < c->o.nfields; i++, p += strlen(p) + 1)
                vals[i] = p;
            writer_record(&c->w, j->url, vals, NULL, NULL);
        }
        atomic_fetch_add(&c->records, r->nrec);
        atomic_fetch_add(&c->pages_ok, 1);
    }
}

/* In a coroutine, a page's parse runs on braid's to_thread pool (asyncio's
 * run_in_executor), so the loop goes on fetching while pages are parsed on the other
 * cores. */
typedef struct parse_call {
    const crawl_opts *o;
    br_http_response *res;
    bool want_links;
    page_result *r;
} parse_call;

static int parse_task(br_task *t) {
    const parse_call *pc = br_task_arg(t, NULL);
    parse_page(pc->o, pc->res, pc->want_links, pc->r);
    return 0;
}

static void fetch_parse_here(crawl *c, const char *url, bool want_links, page_result *r) {
    if (br_aio_current_task() == NULL) {
        fetch_parse(&c->o, c->client, c->deadline, url, want_links, r);
        return;
    }
    br_http_response *res = NULL;
    if (fetch_retrying(&c->o, c->client, c->deadline, url, &res, r) != 0)
        return;
    parse_call pc = {&c->o, res, want_links, r};
    br_future *f = NULL;
    if (br_to_thread(parse_task, &pc, sizeof pc, &f) != 0) {
        parse_page(&c->o, res, want_links, r);
        return;
    }
    /* Not cancellable half-way: the parse owns res until it is done. */
    while (br_future_wait(f, BR_FOREVER) != 0)
        ;
    br_future_release(f);
}

/* The whole of one page on the calling thread or coroutine. */
static void job_run(crawl *c, job *j) {
    page_result r = {0};
    int rc = host_admit(c, j->url);
    if (rc == 1) {
        atomic_fetch_add(&c->skipped, 1);
        if (!c->o.quiet)
            fprintf(stderr, "braid crawl: %s: skipped (robots.txt)\n", j->url);
        frontier_done(c, j, NULL);
        free(j->url);
        return;
    }
    if (rc != 0)
        fail(&r, rc, "robots.txt: %s", br_strerror(rc));
    else {
        fetch_parse_here(c, j->url, j->depth < c->o.depth, &r);
        host_release(c, j->url);
    }
    page_finish(c, j, &r);
    frontier_done(c, j, &r);
    page_result_free(&r);
    free(j->url);
}

/* --- the models ------------------------------------------------------------------- */

static void run_serial(crawl *c) {
    job j;
    while (frontier_take(c, &j) == 0)
        job_run(c, &j);
}

typedef struct tjob {
    crawl *c;
    job j;
    br_sem *slots;
} tjob;

static void thread_one(void *arg) {
    tjob *t = arg;
    job_run(t->c, &t->j);
    br_sem_release(t->slots, 1);
    free(t);
}

static int run_threads(crawl *c, int n) {
    br_sem slots;
    br_sem_init(&slots, (unsigned)n);
    br_thread **ts = NULL;
    size_t nts = 0;
    job j;
    int rc = 0;
    for (;;) {
        /* A slot first, then the job: a job taken counts as in flight (the progress
         * bar), so it is taken only once a thread is free to fetch it. */
        br_sem_acquire(&slots, BR_FOREVER);
        if (frontier_take(c, &j) != 0) {
            br_sem_release(&slots, 1);
            break;
        }
        tjob *t = malloc(sizeof *t);
        br_thread **nt = realloc(ts, (nts + 1) * sizeof *ts);
        if (t == NULL || nt == NULL) {
            free(t);
            rc = BR_ENOMEM;
            page_result r = {0};
            fail(&r, BR_ENOMEM, "out of memory");
            page_finish(c, &j, &r);
            frontier_done(c, &j, NULL);
            free(j.url);
            br_sem_release(&slots, 1);
            continue;
        }
        ts = nt;
        *t = (tjob){c, j, &slots};
        int src = br_thread_start(&ts[nts], thread_one, t, NULL);
        if (src != 0) {
            br_sem_release(&slots, 1);
            job_run(c, &t->j); /* no thread to be had: this one runs here */
            free(t);
            continue;
        }
        nts++;
    }
    for (size_t i = 0; i < nts; i++) {
        br_thread_join(ts[i], BR_FOREVER);
        br_thread_free(ts[i]);
    }
    free(ts);
    br_sem_destroy(&slots);
    return rc;
}

static int pool_task(br_task *t) {
    tjob *tj = *(tjob *const *)br_task_arg(t, NULL);
    job_run(tj->c, &tj->j);
    free(tj);
    return 0;
}

static int run_pool(crawl *c, int n) {
    br_executor *ex = NULL;
    int rc = br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = n,
                                                          .thread_name_prefix = "crawl"});
    if (rc != 0)
        return rc;
    job j;
    while (frontier_take(c, &j) == 0) {
        tjob *t = malloc(sizeof *t);
        if (t == NULL) {
            page_result r = {0};
            fail(&r, BR_ENOMEM, "out of memory");
            page_finish(c, &j, &r);
            frontier_done(c, &j, NULL);
            free(j.url);
            continue;
        }
        *t = (tjob){c, j, NULL};
        rc = br_submit_call(ex, &(br_call){.fn = pool_task, .arg = &t, .len = sizeof t,
                                           .flags = BR_CALL_COPY_ARG},
                            NULL);
        if (rc != 0) {
            job_run(c, &t->j);
            free(t);
        }
    }
    br_executor_shutdown(ex, true, false);
    br_executor_free(ex);
    return 0;
}

/* pipeline: the crawl on braid's pipeline (braid/pipeline.h). The caller's thread is
 * the feeder: it takes jobs from the frontier and puts them in as (depth, url). Stage 0,
 * "fetch": --concurrency coroutines on the stage's own loop, each the robots/politeness
 * admission and br_http_fetch with retries of one page, emitting the fetched page as one
 * item (pipe_page + url, final url, Content-Type, body). Stage 1, "parse": 2 threads,
 * the extraction, the page's records to the writer and its links to the frontier. A page
 * that fails before it has a body (robots, transport) is finished in the fetch stage. The
 * frontier's in-flight count covers a page from take to done wherever it is, so the
 * feeder's take says "no more" only once the pipeline is empty; then close drains it. */
typedef struct pipe_job {
    int32_t depth;
    /* then: url (not NUL-terminated; the item's len says) */
} pipe_job;

typedef struct pipe_page {
    int32_t depth, status, retries;
    uint32_t url_len, final_len, ct_len; /* each string followed by a NUL */
    uint64_t body_len;
    /* has_ct: 0 when the reply had no Content-Type */
    int32_t has_ct;
} pipe_page;

static int pipe_fetch(br_stage *st, const void *item, size_t len, void *arg) {
    crawl *c = arg;
    pipe_job pj;
    if (len < sizeof pj)
        return BR_EPROTO;
    memcpy(&pj, item, sizeof pj);
    job j = {strndup((const char *)item + sizeof pj, len - sizeof pj), pj.depth};
    if (j.url == NULL) {
        frontier_done(c, &j, NULL);
        return BR_ENOMEM;
    }
    page_result r = {0};
    int rc = host_admit(c, j.url);
    if (rc == 1) {
        atomic_fetch_add(&c->skipped, 1);
        if (!c->o.quiet)
            fprintf(stderr, "braid crawl: %s: skipped (robots.txt)\n", j.url);
        frontier_done(c, &j, NULL);
        free(j.url);
        return 0;
    }
    br_http_response *res = NULL;
    if (rc != 0)
        fail(&r, rc, "robots.txt: %s", br_strerror(rc));
    else {
        fetch_retrying(&c->o, c->client, c->deadline, j.url, &res, &r);
        host_release(c, j.url);
    }
    if (res == NULL) {
        page_finish(c, &j, &r);
        frontier_done(c, &j, &r);
        page_result_free(&r);
        free(j.url);
        return 0;
    }
    const char *fu = res->url ? res->url : j.url, *ct = res->content_type;
    pipe_page h = {j.depth, res->status, r.retries, (uint32_t)strlen(j.url),
                   (uint32_t)strlen(fu), ct ? (uint32_t)strlen(ct) : 0,
                   (uint64_t)res->body_len, ct != NULL};
    buf out = {0};
    rc = buf_add(&out, &h, sizeof h) || buf_str0(&out, j.url) || buf_str0(&out, fu) ||
                 buf_str0(&out, ct ? ct : "") || buf_add(&out, res->body ? res->body : "", res->body_len)
             ? BR_ENOMEM
             : 0;
    br_http_response_free(res);
    if (rc == 0)
        rc = br_stage_emit(st, out.p, out.len);
    free(out.p);
    if (rc != 0) { /* not handed on: the page ends here */
        fail(&r, rc, "the page can't reach the parse stage: %s", br_strerror(rc));
        page_finish(c, &j, &r);
        frontier_done(c, &j, &r);
    }
    page_result_free(&r);
    free(j.url);
    return rc;
}

static int pipe_parse(br_stage *st, const void *item, size_t len, void *arg) {
    (void)st;
    crawl *c = arg;
    pipe_page h;
    if (len < sizeof h)
        return BR_EPROTO;
    memcpy(&h, item, sizeof h);
    const char *url = (const char *)item + sizeof h;
    const char *fu = url + h.url_len + 1, *ct = fu + h.final_len + 1;
    const char *body = ct + h.ct_len + 1;
    if (len != sizeof h + h.url_len + h.final_len + h.ct_len + 3 + h.body_len)
        return BR_EPROTO;
    job j = {(char *)url, h.depth};
    page_result r = {0};
    r.retries = h.retries;
    parse_fetched(&c->o, h.status, h.has_ct ? ct : NULL, fu, body, (size_t)h.body_len,
                  j.depth < c->o.depth, &r);
    page_finish(c, &j, &r);
    frontier_done(c, &j, &r);
    page_result_free(&r);
    return 0;
}

static int run_pipeline(crawl *c, int nfetch) {
    enum { NPARSE = 2 };
    br_stage_opts st[2] = {
        {.fn = pipe_fetch, .arg = c, .name = "fetch", .model = BR_STAGE_COROUTINES,
         .workers = nfetch},
        {.fn = pipe_parse, .arg = c, .name = "parse", .model = BR_STAGE_THREADS,
         .workers = NPARSE},
    };
    br_pipeline *p = NULL;
    int rc = br_pipeline_new(&p, st, 2, &(br_pipeline_opts){0});
    if (rc != 0)
        return rc;
    job j;
    while (frontier_take(c, &j) == 0) {
        buf it = {0};
        pipe_job pj = {j.depth};
        rc = buf_add(&it, &pj, sizeof pj) || buf_add(&it, j.url, strlen(j.url)) ? BR_ENOMEM : 0;
        if (rc == 0)
            rc = br_pipeline_put(p, it.p, it.len, BR_FOREVER);
        free(it.p);
        if (rc != 0) {
            page_result r = {0};
            fail(&r, rc, "can't hand the page to the pipeline: %s", br_strerror(rc));
            page_finish(c, &j, &r);
            frontier_done(c, &j, NULL);
        }
        free(j.url);
    }
    br_pipeline_close(p);
    rc = br_pipeline_join(p, BR_FOREVER);
    br_pipeline_free(p);
    return rc;
}

/* process: a process pool whose tasks are batches of URLs. The parent takes jobs from
 * the frontier, admits each (robots, politeness) and hands a batch to a worker; the
 * worker fetches the batch's pages at once, a coroutine each on a loop of its own
 * (br_http_fetch suspends only the coroutine), extracts them there, and returns their
 * page_results packed one after another; the parent writes them and feeds the frontier.
 * So the pages are fetched concurrently whatever the number of processes, and parsed in
 * parallel across them. A batch is the frontier's queue shared out over the idle
 * workers (the one about to get it included: a worker that is busy gets nothing of it,
 * or the queue would go out in ever smaller batches, a round of fetching each), at
 * most ceil(--concurrency / workers) URLs; a page that --per-host, --delay or robots.txt
 * (a Crawl-delay) may have to pace goes alone, so the parent's admission paces it as in
 * the other models. The crawl's options travel with each task (the worker may be
 * spawned), followed by the URLs, each with its want_links flag. */
typedef struct proc_arg {
    int64_t timeout_ns, backoff_ns, deadline;
    int retries, nfields;
    size_t max_bytes;
    int32_t nurls;
    /* then: record\0 name\0 xpath\0 url(0/1) trim(0/1) ... user_agent\0
     *       and per URL: want_links(0/1) url\0 */
} proc_arg;

static br_http_client *worker_client(size_t max_bytes, const char *ua) {
    static br_http_client *cl;
    static pid_t owner;
    if (cl == NULL || owner != getpid()) {
        br_http_client_opts co = {.max_body = max_bytes, .user_agent = ua, .max_per_host = 64};
        cl = NULL;
        if (br_http_client_new(&cl, &co) != 0)
            return NULL;
        owner = getpid();
    }
    return cl;
}

/* The worker's loop, kept for its life (its connections stay in the client's cache). */
static br_loop *worker_loop(void) {
    static br_loop *loop;
    static pid_t owner;
    if (loop == NULL || owner != getpid()) {
        loop = NULL;
        if (br_loop_new(&loop) != 0)
            return NULL;
        owner = getpid();
    }
    return loop;
}

typedef struct proc_page {
    const crawl_opts *o;
    br_http_client *cl;
    int64_t deadline;
    const char *url;
    bool want_links;
    page_result r;
} proc_page;

static int proc_page_task(br_task *t) {
    proc_page *pp = *(proc_page *const *)br_task_arg(t, NULL);
    fetch_parse(pp->o, pp->cl, pp->deadline, pp->url, pp->want_links, &pp->r);
    return 0;
}

typedef struct proc_batch {
    proc_page *pages;
    int n;
} proc_batch;

static int proc_batch_main(br_task *t) {
    const proc_batch *b = br_task_arg(t, NULL);
    br_future **fs = calloc((size_t)b->n, sizeof *fs);
    if (fs == NULL)
        return BR_ENOMEM;
    int started = 0;
    for (int i = 0; i < b->n; i++) {
        proc_page *pp = &b->pages[i];
        if (br_create_task(NULL, proc_page_task, &pp, sizeof pp, &fs[started]) == 0)
            started++;
        else
            fail(&pp->r, BR_EAGAIN, "no coroutine for the page in the worker");
    }
    br_gather(fs, (size_t)started, true, BR_FOREVER);
    for (int i = 0; i < started; i++)
        br_future_release(fs[i]);
    free(fs);
    return 0;
}

static int proc_task(br_task *t) {
    size_t len;
    const char *a = br_task_arg(t, &len);
    proc_arg pa;
    memcpy(&pa, a, sizeof pa);
    const char *p = a + sizeof pa;
    crawl_opts o = {0};
    o.timeout_ns = pa.timeout_ns;
    o.backoff_ns = pa.backoff_ns;
    o.retries = pa.retries;
    o.nfields = pa.nfields;
    o.max_bytes = pa.max_bytes;
    o.record = p;
    p += strlen(p) + 1;
    for (int i = 0; i < pa.nfields && i < MAX_FIELDS; i++) {
        o.fields[i].name = p;
        p += strlen(p) + 1;
        o.fields[i].xpath = p;
        p += strlen(p) + 1;
        o.fields[i].url = *p++ == '1';
        o.fields[i].trim = *p++ == '1';
    }
    const char *ua = p;
    p += strlen(p) + 1;
    proc_batch b = {calloc((size_t)pa.nurls, sizeof *b.pages), pa.nurls};
    if (b.pages == NULL)
        return BR_ENOMEM;
    br_http_client *cl = worker_client(o.max_bytes, ua);
    for (int i = 0; i < b.n; i++) {
        b.pages[i] = (proc_page){&o, cl, pa.deadline, p + 1, *p == '1', {0}};
        p += strlen(p) + 1;
        if (cl == NULL)
            fail(&b.pages[i].r, BR_ENOMEM, "no HTTP client in the worker");
    }
    br_loop *loop = worker_loop();
    if (cl != NULL && loop == NULL) {
        for (int i = 0; i < b.n; i++)
            fail(&b.pages[i].r, BR_ENOMEM, "no event loop in the worker");
    } else if (cl != NULL) {
        br_future *main_task = NULL;
        int rc = br_create_task(loop, proc_batch_main, &b, sizeof b, &main_task);
        if (rc == 0) {
            rc = br_loop_run_until_complete(loop, main_task);
            br_future_release(main_task);
        }
        if (rc != 0)
            for (int i = 0; i < b.n; i++)
                if (b.pages[i].r.code == 0 && b.pages[i].r.nrec == 0)
                    fail(&b.pages[i].r, rc, "the worker's loop failed: %s", br_strerror(rc));
    }
    buf out = {0};
    int rc = 0;
    for (int i = 0; i < b.n; i++) {
        size_t at = out.len;
        uint64_t n = 0;
        if (rc == 0 && buf_add(&out, &n, sizeof n) != 0)
            rc = BR_ENOMEM;
        if (rc == 0)
            rc = page_result_pack(&b.pages[i].r, &out);
        if (rc == 0) {
            n = out.len - at - sizeof n;
            memcpy(out.p + at, &n, sizeof n);
        }
        page_result_free(&b.pages[i].r);
    }
    free(b.pages);
    if (rc == 0)
        rc = br_task_return(t, out.p, out.len);
    free(out.p);
    return rc;
}

typedef struct proc_job {
    crawl *c;
    job *jobs;
    int n;
    br_sem *slots;
} proc_job;

static void proc_done(br_future *f, void *arg) {
    proc_job *pj = arg;
    crawl *c = pj->c;
    const void *data = NULL;
    size_t len = 0;
    int rc = br_future_result(f, BR_NOWAIT, &data, &len);
    const char *m = NULL;
    if (rc != 0) {
        int code = rc;
        br_future_exception(f, BR_NOWAIT, &code, &m);
    }
    const char *p = data;
    size_t left = rc == 0 ? len : 0;
    for (int i = 0; i < pj->n; i++) {
        page_result r = {0};
        int prc = rc;
        uint64_t n = 0;
        if (prc == 0 && left < sizeof n)
            prc = BR_EPROTO;
        if (prc == 0) {
            memcpy(&n, p, sizeof n);
            if (n > left - sizeof n)
                prc = BR_EPROTO;
        }
        if (prc == 0) {
            prc = page_result_unpack(p + sizeof n, (size_t)n, &r);
            p += sizeof n + n;
            left -= sizeof n + n;
        }
        if (prc != 0) {
            page_result_free(&r);
            fail(&r, prc, "the worker failed: %s", m ? m : br_strerror(prc));
        }
        host_release(c, pj->jobs[i].url);
        page_finish(c, &pj->jobs[i], &r);
        frontier_done(c, &pj->jobs[i], &r);
        page_result_free(&r);
        free(pj->jobs[i].url);
    }
    br_sem_release(pj->slots, 1);
    free(pj->jobs);
    free(pj);
}

/* Whether a page may wait in the parent's admission for its host (then it goes alone). */
static bool proc_paced(const crawl *c, const char *url) {
    bool robots = c->o.robots == ROBOTS_ON || (c->o.robots == ROBOTS_AUTO && !is_loopback(url));
    return robots || c->o.per_host > 0 || c->o.delay_ns > 0;
}

/* After frontier_take: up to max - 1 more jobs already queued, not paced, without
 * waiting (counted in flight), to out[1..], taking the queue's share of one of nworkers
 * (the idle workers); how many jobs out holds. */
static int frontier_take_more(crawl *c, job *out, int max, int nworkers) {
    int n = 1;
    if (proc_paced(c, out[0].url))
        return n;
    br_cond_acquire(&c->cond, BR_FOREVER);
    int share = (int)((c->qlen + 1 + (size_t)nworkers - 1) / (size_t)nworkers);
    if (share < max)
        max = share;
    while (n < max && c->qlen > 0 && !c->stopping && !proc_paced(c, c->q[c->qhead].url)) {
        out[n++] = c->q[c->qhead];
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
        c->in_flight++;
    }
    br_cond_release(&c->cond);
    return n;
}

static int run_process(crawl *c, int n) {
    int nw = br_cpu_count();
    if (nw > n)
        nw = n;
    if (nw < 1)
        nw = 1;
    int per = (n + nw - 1) / nw; /* URLs in one task */
    br_executor *ex = NULL;
    /* Forkserver workers: the crawl runs threads (the HTTP client's, the fixture
     * server's), and a fork of a process with threads may copy a lock one of them held;
     * the forkserver forks from a single-threaded process. The task carries all it needs
     * (proc_arg), so nothing depends on the parent's memory. */
    int rc = br_processpool_new(&ex, &(br_processpool_opts){
                                         .max_workers = nw, .prefetch = 1,
                                         .start_method = BR_START_FORKSERVER});
    if (rc != 0)
        return rc;
    br_sem slots; /* a batch per worker at once, so the parent keeps the queue */
    br_sem_init(&slots, (unsigned)nw);
    job j;
    while (frontier_take(c, &j) == 0) {
        job *jobs = malloc((size_t)per * sizeof *jobs);
        if (jobs == NULL) {
            page_result r = {0};
            fail(&r, BR_ENOMEM, "out of memory");
            page_finish(c, &j, &r);
            frontier_done(c, &j, NULL);
            free(j.url);
            continue;
        }
        br_sem_acquire(&slots, BR_FOREVER); /* before the batch is taken: it's fuller */
        jobs[0] = j;
        int idle = (int)br_sem_value(&slots) + 1; /* the workers without a batch */
        int got = frontier_take_more(c, jobs, per, idle), nb = 0;
        for (int i = 0; i < got; i++) {
            int adm = host_admit(c, jobs[i].url);
            if (adm == 0) {
                jobs[nb++] = jobs[i];
                continue;
            }
            page_result r = {0};
            if (adm == 1)
                atomic_fetch_add(&c->skipped, 1);
            else {
                fail(&r, adm, "robots.txt: %s", br_strerror(adm));
                page_finish(c, &jobs[i], &r);
            }
            frontier_done(c, &jobs[i], NULL);
            free(jobs[i].url);
        }
        if (nb == 0) {
            free(jobs);
            br_sem_release(&slots, 1);
            continue;
        }
        buf a = {0};
        proc_arg pa = {c->o.timeout_ns, c->o.backoff_ns, c->deadline, c->o.retries,
                       c->o.nfields, c->o.max_bytes, nb};
        buf_add(&a, &pa, sizeof pa);
        buf_str0(&a, c->o.record);
        for (int i = 0; i < c->o.nfields; i++) {
            buf_str0(&a, c->o.fields[i].name);
            buf_str0(&a, c->o.fields[i].xpath);
            buf_add(&a, c->o.fields[i].url ? "1" : "0", 1);
            buf_add(&a, c->o.fields[i].trim ? "1" : "0", 1);
        }
        buf_str0(&a, c->o.user_agent);
        for (int i = 0; i < nb; i++) {
            buf_add(&a, jobs[i].depth < c->o.depth ? "1" : "0", 1);
            buf_str0(&a, jobs[i].url);
        }
        proc_job *pj = malloc(sizeof *pj);
        br_future *f = NULL;
        rc = pj && a.p ? br_submit(ex, proc_task, a.p, a.len, &f) : BR_ENOMEM;
        free(a.p);
        if (rc != 0) {
            for (int i = 0; i < nb; i++) {
                page_result r = {0};
                fail(&r, rc, "can't hand the page to a worker: %s", br_strerror(rc));
                host_release(c, jobs[i].url);
                page_finish(c, &jobs[i], &r);
                frontier_done(c, &jobs[i], NULL);
                free(jobs[i].url);
            }
            free(jobs);
            free(pj);
            br_sem_release(&slots, 1);
            continue;
        }
        *pj = (proc_job){c, jobs, nb, &slots};
        br_future_add_done_callback(f, proc_done, pj);
        br_future_release(f);
    }
    br_executor_shutdown(ex, true, false);
    br_executor_free(ex);
    br_sem_destroy(&slots);
    return 0;
}

static int async_worker(br_task *t) {
    crawl *c = *(crawl *const *)br_task_arg(t, NULL);
    job j;
    while (frontier_take(c, &j) == 0)
        job_run(c, &j);
    return 0;
}

typedef struct async_main_arg {
    crawl *c;
    int n;
} async_main_arg;

static int async_main(br_task *t) {
    const async_main_arg *a = br_task_arg(t, NULL);
    br_future **fs = calloc((size_t)a->n, sizeof *fs);
    if (fs == NULL)
        return BR_ENOMEM;
    int started = 0;
    for (int i = 0; i < a->n; i++)
        if (br_create_task(NULL, async_worker, &a->c, sizeof a->c, &fs[started]) == 0)
            started++;
    br_gather(fs, (size_t)started, true, BR_FOREVER);
    for (int i = 0; i < started; i++)
        br_future_release(fs[i]);
    free(fs);
    return started ? 0 : BR_EAGAIN;
}

static int run_async(crawl *c, int n) {
    br_loop *loop = NULL;
    int rc = br_loop_new(&loop);
    if (rc != 0)
        return rc;
    async_main_arg a = {c, n};
    br_future *main_task = NULL;
    rc = br_create_task(loop, async_main, &a, sizeof a, &main_task);
    if (rc == 0) {
        rc = br_loop_run_until_complete(loop, main_task);
        br_future_release(main_task);
    }
    br_loop_free(loop);
    return rc;
}

static int model_default_concurrency(enum model m) {
    switch (m) {
    case M_SERIAL: return 1;
    case M_THREADS: return 64;
    case M_PIPELINE: return 64;
    case M_POOL: return 64;
    case M_PROCESS: return 64;
    case M_ASYNC: return 64;
    }
    return 1;
}

/* --- signals ---------------------------------------------------------------------- */

/* Lock-free atomics are safe in a signal handler and between threads alike. */
static atomic_int g_sigints;

static void on_sigint(int sig) {
    (void)sig;
    if (atomic_fetch_add(&g_sigints, 1) + 1 >= 2) {
        static const char m[] = "braid crawl: interrupted again, exiting now\n";
        ssize_t w = write(2, m, sizeof m - 1);
        (void)w;
        _exit(130);
    }
    static const char m[] = "braid crawl: interrupted: finishing the pages in flight (Ctrl-C again to quit now)\n";
    ssize_t w = write(2, m, sizeof m - 1);
    (void)w;
}

/* The first SIGINT can't take braid's locks from the handler: a watcher thread polls
 * the flag and stops the frontier. */
typedef struct watcher {
    crawl *c;
    br_event done;
    bool tty;
} watcher;

static void progress_line(crawl *c, bool final) {
    double secs = (double)(br_now() - c->started) / 1e9;
    long ok = atomic_load(&c->pages_ok), bad = atomic_load(&c->pages_failed);
    br_cond_acquire(&c->cond, BR_FOREVER);
    int inflight = c->in_flight;
    size_t queued = c->qlen;
    br_cond_release(&c->cond);
    long done = ok + bad;
    if (!final) {
        long total = done + inflight + (long)queued;
        int width = 30, fill = total ? (int)(width * done / total) : 0;
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r[%s] %ld/%ld pages, %d in flight, %ld failed, %.1f pages/s ", bar,
                done, total, inflight, bad, secs > 0 ? (double)done / secs : 0.0);
        return;
    }
    fprintf(stderr,
            "braid crawl: %ld pages in %.2f s (%.1f pages/s), %ld records, %ld failed, "
            "%ld retries, %ld skipped by robots.txt, %d in flight",
            done, secs, secs > 0 ? (double)done / secs : 0.0, atomic_load(&c->records), bad,
            atomic_load(&c->retries), atomic_load(&c->skipped), inflight);
    for (int i = 0; i < c->nkinds; i++)
        fprintf(stderr, "%s %s %ld", i ? "," : "; errors:", c->errs_name[i], c->errs_by_kind[i]);
    fputc('\n', stderr);
}

static void watch(void *arg) {
    watcher *wt = arg;
    int seen = 0;
    int64_t next_bar = 0;
    while (br_event_wait(&wt->done, br_deadline_after(50 * 1000000)) == BR_ETIMEDOUT) {
        int now = atomic_load(&g_sigints);
        if (now > seen) {
            seen = now;
            crawl_stop(wt->c, 1);
        }
        if (wt->tty && br_now() >= next_bar) {
            progress_line(wt->c, false);
            next_bar = br_now() + 200 * 1000000;
        }
    }
}

/* --- resume ----------------------------------------------------------------------- */

/* Marks page as done (resume): its canonical form joins the seen set. */
static void resume_mark(crawl *c, const char *page, size_t *skipped) {
    char *canon = NULL;
    if (br_url_canonical(page, &canon) != 0 || canon == NULL)
        canon = strdup(page);
    br_cond_acquire(&c->cond, BR_FOREVER);
    if (canon && seen_add(c, canon))
        (*skipped)++;
    br_cond_release(&c->cond);
}

/* One CSV record (RFC 4180) from *pp: its fields into f (NUL-separated in b, offsets in
 * off), *pp past it. false at the end, or for a record the file ends inside (a torn
 * last line: that page is fetched again). */
static bool csv_record(const char **pp, buf *b, size_t *off, int *nf, int cap) {
    const char *p = *pp;
    if (*p == '\0')
        return false;
    b->len = 0;
    *nf = 0;
    for (;;) {
        if (*nf < cap)
            off[(*nf)++] = b->len;
        if (*p == '"') {
            for (p++;; p++) {
                if (*p == '\0')
                    return false;
                if (*p == '"' && p[1] == '"')
                    buf_add(b, p++, 1);
                else if (*p == '"') {
                    p++;
                    break;
                } else
                    buf_add(b, p, 1);
            }
        }
        size_t n = strcspn(p, ",\r\n");
        buf_add(b, p, n);
        buf_add(b, "", 1);
        p += n;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '\0')
            return false; /* no line end: torn */
        p += (*p == '\r' && p[1] == '\n') ? 2 : 1;
        *pp = p;
        return true;
    }
}

/* The pages already recorded (without an error) in the output, added to the seen set
 * so they are not fetched again. A page with an error record is tried again. */
static int resume_read(crawl *c, const char *path, size_t *skipped) {
    FILE *f = fopen(path, "r");
    *skipped = 0;
    if (f == NULL)
        return errno == ENOENT ? 0 : -errno;
    if (c->o.format == F_JSONL) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, f)) > 0) {
            if (line[n - 1] != '\n')
                break; /* a torn last line: that page is fetched again */
            json_t *j = json_loads(line, 0, NULL);
            if (j != NULL && json_object_get(j, "error") == NULL &&
                json_is_string(json_object_get(j, "page")))
                resume_mark(c, json_string_value(json_object_get(j, "page")), skipped);
            json_decref(j);
        }
        free(line);
        fclose(f);
        return 0;
    }
    buf text = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_add(&text, chunk, got);
    fclose(f);
    const char *p = text.p ? text.p : "";
    buf rec = {0};
    size_t off[MAX_FIELDS + 3];
    int nf;
    bool first = true;
    while (csv_record(&p, &rec, off, &nf, MAX_FIELDS + 3)) {
        bool header = first && nf > 0 && strcmp(rec.p + off[0], "page") == 0;
        first = false;
        /* page, the fields, error, message: an error row has its error column set */
        if (header || nf < 3 || rec.p[off[nf - 2]] != '\0')
            continue;
        resume_mark(c, rec.p + off[0], skipped);
    }
    free(rec.p);
    free(text.p);
    return 0;
}

/* --- the run ---------------------------------------------------------------------- */

typedef struct run_stats {
    double seconds;
    size_t lines;
    long ok, failed;
    bool interrupted;
    int first_error;
    char first_msg[256];
} run_stats;

static void set_extractor_titles(crawl_opts *o) {
    o->record = TITLES_RECORD;
    o->nfields = 2;
    o->fields[0] = (br_html_field){"url", "@href", false, true};
    o->fields[1] = (br_html_field){"title", ".", false, false};
}

static void set_extractor_article(crawl_opts *o) {
    o->record = ARTICLE_RECORD;
    o->nfields = 5;
    o->fields[0] = (br_html_field){"url", ".//a[contains(@class,'post-item-title')]/@href", true, true};
    o->fields[1] = (br_html_field){"title", ".//a[contains(@class,'post-item-title')]", false, true};
    o->fields[2] = (br_html_field){"summary", ".//p[contains(@class,'post-item-summary')]", false, true};
    o->fields[3] = (br_html_field){"avatar", ".//img[contains(@class,'avatar')]/@src", true, true};
    o->fields[4] = (br_html_field){"author", ".//a[contains(@class,'post-item-author')]", false, true};
}

/* Runs the crawl over urls with o, output to f or mem. */
static int crawl_run(const crawl_opts *o, char **urls, int nurls, FILE *f, buf *mem,
                     bool resume_from_output, run_stats *st) {
    crawl *c = calloc(1, sizeof *c);
    if (c == NULL)
        return BR_ENOMEM;
    c->o = *o;
    if (c->o.concurrency <= 0)
        c->o.concurrency = model_default_concurrency(o->model);
    br_http_client_opts co = {
        .max_per_host = c->o.per_host > 0 ? c->o.per_host : c->o.concurrency + 4,
        .max_total = c->o.concurrency + 16,
        .max_body = c->o.max_bytes,
        .timeout_ns = c->o.timeout_ns,
        .user_agent = c->o.user_agent,
    };
    int rc = br_http_client_new(&c->client, &co);
    if (rc != 0) {
        free(c);
        return rc;
    }
    c->w = (writer){.f = f, .mem = mem, .format = o->format, .o = &c->o};
    size_t resumed = 0;
    if (resume_from_output && o->output && strcmp(o->output, "-") != 0)
        resume_read(c, o->output, &resumed);
    if (resumed && !o->quiet)
        fprintf(stderr, "braid crawl: resuming: %zu pages already recorded\n", resumed);
    bool appending = false;
    if (resume_from_output && f != NULL && fseek(f, 0, SEEK_END) == 0)
        appending = ftell(f) > 0;
    if (!appending)
        writer_header(&c->w);
    br_cond_acquire(&c->cond, BR_FOREVER);
    for (int i = 0; i < nurls; i++)
        frontier_push(c, urls[i], 0);
    br_cond_release(&c->cond);

    /* Before the watcher starts: its progress bar reads them. */
    c->started = br_now();
    c->deadline = o->deadline_ns ? c->started + o->deadline_ns : 0;

    watcher wt = {.c = c, .tty = o->progress};
    br_thread *wth = NULL;
    br_event_init(&wt.done);
    bool watching = f != NULL && br_thread_start(&wth, watch, &wt, NULL) == 0;
    switch (o->model) {
    case M_SERIAL: run_serial(c); rc = 0; break;
    case M_THREADS: rc = run_threads(c, c->o.concurrency); break;
    case M_PIPELINE: rc = run_pipeline(c, c->o.concurrency); break;
    case M_POOL: rc = run_pool(c, c->o.concurrency); break;
    case M_PROCESS: rc = run_process(c, c->o.concurrency); break;
    case M_ASYNC: rc = run_async(c, c->o.concurrency); break;
    }
    int64_t end = br_now();
    if (watching) {
        br_event_set(&wt.done);
        br_thread_join(wth, BR_FOREVER);
        br_thread_free(wth);
        if (o->progress)
            fputc('\n', stderr);
    }
    br_event_destroy(&wt.done);

    /* What the frontier still held when the crawl stopped early. */
    int reason = atomic_load(&c->stop_reason);
    long left = (long)c->qlen;
    for (size_t i = 0; i < c->qlen; i++) {
        job *j = &c->q[(c->qhead + i) % c->qcap];
        if (reason == 2) {
            page_result r = {0};
            fail(&r, BR_ETIMEDOUT, "the crawl's deadline passed before this page was fetched");
            page_finish(c, j, &r);
        }
        free(j->url);
    }
    if (!o->quiet && f != NULL)
        progress_line(c, true);
    if (!o->quiet && reason == 1)
        fprintf(stderr, "braid crawl: interrupted; %ld pages not fetched (--resume picks them up)\n", left);

    st->seconds = (double)(end - c->started) / 1e9;
    st->lines = c->w.lines;
    st->ok = atomic_load(&c->pages_ok);
    st->failed = atomic_load(&c->pages_failed);
    st->interrupted = reason == 1;
    if (c->w.failed && rc == 0)
        rc = BR_EIO;

    free(c->q);
    for (size_t i = 0; i < c->seencap; i++)
        free(c->seen[i]);
    free(c->seen);
    while (c->hosts) {
        host *h = c->hosts;
        c->hosts = h->next;
        for (int i = 0; i < h->nrules; i++)
            free(h->rules[i].path);
        free(h->rules);
        free(h->key);
        free(h);
    }
    br_http_client_free(c->client);
    free(c);
    return rc;
}

/* --- the command line --------------------------------------------------------------- */

void braid_crawl_usage(void) {
    printf("usage: braid crawl [options] [URL ...]\n"
           "\n"
           "Fetches pages and writes one record per extracted item. With no URL and no\n"
           "--input, crawls the built-in fixture site (50 pages) served on loopback.\n"
           "\n"
           "input and output:\n"
           "  --input FILE        URLs, one a line ('-': stdin; # comments)\n"
           "  --output FILE|-     where records go (default: stdout)\n"
           "  --format F          jsonl (default), csv (RFC 4180), tsv (fields only)\n"
           "  --resume            skip the pages the output already records; append\n"
           "extraction:\n"
           "  --extract E         titles (default: url,title of each a.post-item-title)\n"
           "                      article (url,title,summary,avatar,author per article.post-item)\n"
           "  --record XPATH      a record per match (with --field)\n"
           "  --field NAME=XPATH  a field, relative to the record (repeatable)\n"
           "how:\n"
           "  --model M           serial|threads|pipeline|pool|process|async (default async)\n"
           "  --concurrency N     fetches at once (the model's default: serial 1, threads 64,\n"
           "                      pipeline/pool/async/process 64; process: over\n"
           "                      min(CPUs, N) worker processes)\n"
           "  --per-host N        at most N requests at once to one host\n"
           "  --delay MS          at least MS between requests to one host\n"
           "  --retries N         on 408/429/5xx and refused/reset/timed-out (default 2)\n"
           "  --backoff MS        the first retry's back-off, doubling (default 500)\n"
           "  --timeout S         per request (default 30)\n"
           "  --deadline S        for the whole crawl\n"
           "  --max-bytes N       a larger page fails (default 16 MiB)\n"
           "  --depth D           follow links D levels deep (default 0)\n"
           "  --any-host          follow links to other hosts too\n"
           "  --robots            obey robots.txt everywhere (default: all but loopback)\n"
           "  --no-robots         ignore robots.txt\n"
           "  --user-agent S      (default braid-crawl/<version>)\n"
           "  --latency MS        the built-in fixture's added latency\n"
           "  --quiet             no error lines or stats on stderr\n"
           "  --no-progress       no progress bar even on a terminal\n"
           "\n"
           "exit status: 0 every page done, 1 some page failed or the crawl was cut short,\n"
           "2 bad usage\n");
}

static int usage_error(const char *fmt, ...) BR_PRINTF(1, 2);
static int usage_error(const char *fmt, ...) {
    fprintf(stderr, "braid crawl: ");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(braid help crawl for the options)\n");
    return 2;
}

static bool parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_secs(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v > 0) || v > 1e7)
        return false;
    *out = v;
    return true;
}

static int model_by_name(const char *s) {
    for (int i = 0; i < 6; i++)
        if (strcmp(s, braid_crawl_models[i]) == 0)
            return i;
    return -1;
}

static char g_ua[64];

static void opts_default(crawl_opts *o) {
    memset(o, 0, sizeof *o);
    o->model = M_ASYNC;
    o->retries = 2;
    o->timeout_ns = 30 * (int64_t)1000000000;
    o->backoff_ns = 500 * (int64_t)1000000;
    o->max_bytes = 16u << 20;
    snprintf(g_ua, sizeof g_ua, "braid-crawl/%s", br_version());
    o->user_agent = g_ua;
    set_extractor_titles(o);
}

static int read_input(const char *path, char ***urls, int *n) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL)
        return -errno;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        s[strcspn(s, " \t\r\n")] = '\0';
        if (*s == '\0' || *s == '#')
            continue;
        char **t = realloc(*urls, (size_t)(*n + 1) * sizeof *t);
        if (t == NULL)
            break;
        *urls = t;
        (*urls)[(*n)++] = strdup(s);
    }
    free(line);
    if (f != stdin)
        fclose(f);
    return 0;
}

int braid_crawl_main(int argc, char **argv) {
    crawl_opts o;
    opts_default(&o);
    bool custom = false, no_progress = false;
    char *fieldbuf[MAX_FIELDS] = {0};
    char **urls = NULL;
    int nurls = 0, status = 2;
    const char *extract = NULL, *record = NULL;
    br_html_field customf[MAX_FIELDS];
    int ncustom = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        double d;
#define NEED()                                                    \
    do {                                                          \
        if (v == NULL) {                                          \
            status = usage_error("%s needs a value", a);          \
            goto out;                                             \
        }                                                         \
        i++;                                                      \
    } while (0)
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            braid_crawl_usage();
            status = 0;
            goto out;
        } else if (strcmp(a, "--input") == 0) {
            NEED();
            o.input = v;
        } else if (strcmp(a, "--output") == 0 || strcmp(a, "-o") == 0) {
            NEED();
            o.output = v;
        } else if (strcmp(a, "--format") == 0) {
            NEED();
            if (strcmp(v, "jsonl") == 0)
                o.format = F_JSONL;
            else if (strcmp(v, "csv") == 0)
                o.format = F_CSV;
            else if (strcmp(v, "tsv") == 0)
                o.format = F_TSV;
            else {
                status = usage_error("unknown format '%s' (jsonl, csv, tsv)", v);
                goto out;
            }
        } else if (strcmp(a, "--extract") == 0) {
            NEED();
            extract = v;
        } else if (strcmp(a, "--record") == 0) {
            NEED();
            record = v;
            custom = true;
        } else if (strcmp(a, "--field") == 0) {
            NEED();
            const char *eq = strchr(v, '=');
            if (eq == NULL || eq == v || eq[1] == '\0') {
                status = usage_error("--field wants NAME=XPATH, not '%s'", v);
                goto out;
            }
            if (ncustom >= MAX_FIELDS) {
                status = usage_error("more than %s fields", "32");
                goto out;
            }
            char *fs = strdup(v);
            if (fs == NULL)
                goto out;
            fs[eq - v] = '\0';
            fieldbuf[ncustom] = fs;
            customf[ncustom++] = (br_html_field){fs, fs + (eq - v) + 1, false, true};
            custom = true;
        } else if (strcmp(a, "--model") == 0) {
            NEED();
            int m = model_by_name(v);
            if (m < 0) {
                status = usage_error("unknown model '%s' (serial, threads, pipeline, pool, process, async)", v);
                goto out;
            }
            o.model = (enum model)m;
        } else if (strcmp(a, "--concurrency") == 0 || strcmp(a, "-j") == 0) {
            NEED();
            if (!parse_int(v, 1, 10000, &n)) {
                status = usage_error("--concurrency wants 1..10000, not '%s'", v);
                goto out;
            }
            o.concurrency = (int)n;
        } else if (strcmp(a, "--per-host") == 0) {
            NEED();
            if (!parse_int(v, 1, 10000, &n)) {
                status = usage_error("--per-host wants 1..10000, not '%s'", v);
                goto out;
            }
            o.per_host = (int)n;
        } else if (strcmp(a, "--delay") == 0) {
            NEED();
            if (!parse_int(v, 0, 3600000, &n)) {
                status = usage_error("--delay wants milliseconds, not '%s'", v);
                goto out;
            }
            o.delay_ns = n * 1000000;
        } else if (strcmp(a, "--backoff") == 0) {
            NEED();
            if (!parse_int(v, 1, 3600000, &n)) {
                status = usage_error("--backoff wants milliseconds, not '%s'", v);
                goto out;
            }
            o.backoff_ns = n * 1000000;
        } else if (strcmp(a, "--latency") == 0) {
            NEED();
            if (!parse_int(v, 0, 60000, &n)) {
                status = usage_error("--latency wants milliseconds, not '%s'", v);
                goto out;
            }
            o.latency_ns = n * 1000000;
        } else if (strcmp(a, "--retries") == 0) {
            NEED();
            if (!parse_int(v, 0, 100, &n)) {
                status = usage_error("--retries wants 0..100, not '%s'", v);
                goto out;
            }
            o.retries = (int)n;
        } else if (strcmp(a, "--timeout") == 0) {
            NEED();
            if (!parse_secs(v, &d)) {
                status = usage_error("--timeout wants seconds, not '%s'", v);
                goto out;
            }
            o.timeout_ns = (int64_t)(d * 1e9);
        } else if (strcmp(a, "--deadline") == 0) {
            NEED();
            if (!parse_secs(v, &d)) {
                status = usage_error("--deadline wants seconds, not '%s'", v);
                goto out;
            }
            o.deadline_ns = (int64_t)(d * 1e9);
        } else if (strcmp(a, "--max-bytes") == 0) {
            NEED();
            if (!parse_int(v, 1, 1L << 40, &n)) {
                status = usage_error("--max-bytes wants a byte count, not '%s'", v);
                goto out;
            }
            o.max_bytes = (size_t)n;
        } else if (strcmp(a, "--depth") == 0) {
            NEED();
            if (!parse_int(v, 0, 1000, &n)) {
                status = usage_error("--depth wants 0..1000, not '%s'", v);
                goto out;
            }
            o.depth = (int)n;
        } else if (strcmp(a, "--user-agent") == 0) {
            NEED();
            o.user_agent = v;
        } else if (strcmp(a, "--any-host") == 0) {
            o.any_host = true;
        } else if (strcmp(a, "--robots") == 0) {
            o.robots = ROBOTS_ON;
        } else if (strcmp(a, "--no-robots") == 0) {
            o.robots = ROBOTS_OFF;
        } else if (strcmp(a, "--resume") == 0) {
            o.resume = true;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o.quiet = true;
        } else if (strcmp(a, "--no-progress") == 0) {
            no_progress = true;
        } else if (a[0] == '-' && a[1] != '\0') {
            status = usage_error("unknown option '%s'", a);
            goto out;
        } else {
            char **t = realloc(urls, (size_t)(nurls + 1) * sizeof *t);
            if (t == NULL)
                goto out;
            urls = t;
            urls[nurls++] = strdup(a);
        }
#undef NEED
    }
    if (extract != NULL) {
        if (custom) {
            status = usage_error("--extract and --record/--field: %s", "choose one");
            goto out;
        }
        if (strcmp(extract, "titles") == 0)
            set_extractor_titles(&o);
        else if (strcmp(extract, "article") == 0)
            set_extractor_article(&o);
        else {
            status = usage_error("unknown extractor '%s' (titles, article)", extract);
            goto out;
        }
    }
    if (custom) {
        if (ncustom == 0) {
            status = usage_error("--record needs at least one --field%s", "");
            goto out;
        }
        if (record == NULL)
            record = "/";
        o.record = record;
        o.nfields = ncustom;
        memcpy(o.fields, customf, sizeof customf);
    }
    if (o.resume && (o.output == NULL || strcmp(o.output, "-") == 0)) {
        status = usage_error("--resume needs --output FILE%s", "");
        goto out;
    }
    if (o.resume && o.format == F_TSV) {
        status = usage_error("--resume needs a format that records the page (jsonl, csv)%s", "");
        goto out;
    }
    if (o.input != NULL) {
        int rc = read_input(o.input, &urls, &nurls);
        if (rc != 0) {
            fprintf(stderr, "braid crawl: %s: %s\n", o.input, br_strerror(rc));
            status = 2;
            goto out;
        }
        if (nurls == 0) {
            fprintf(stderr, "braid crawl: %s holds no URL\n", o.input);
            status = 2;
            goto out;
        }
    }
    for (int i = 0; i < nurls; i++)
        if (strncasecmp(urls[i], "http://", 7) != 0 && strncasecmp(urls[i], "https://", 8) != 0) {
            status = usage_error("not an http(s) URL: '%s'", urls[i]);
            goto out;
        }

    braid_fixture_server *fx = NULL;
    if (nurls == 0) {
        int rc = braid_fixture_server_start("127.0.0.1", 0, o.latency_ns, &fx);
        if (rc != 0) {
            fprintf(stderr, "braid crawl: can't start the fixture site: %s\n", br_strerror(rc));
            status = 1;
            goto out;
        }
        const char *base = braid_fixture_server_url(fx);
        urls = calloc(BRAID_FIXTURE_PAGES, sizeof *urls);
        for (int p = 1; p <= BRAID_FIXTURE_PAGES && urls; p++) {
            urls[nurls] = malloc(strlen(base) + 32);
            sprintf(urls[nurls++], "%spage-%02d.html", base, p);
        }
        if (!o.quiet)
            fprintf(stderr, "braid crawl: no URL given: crawling the fixture site at %s\n", base);
    }

    FILE *f = stdout;
    if (o.output != NULL && strcmp(o.output, "-") != 0) {
        f = fopen(o.output, o.resume ? "a" : "w");
        if (f == NULL) {
            fprintf(stderr, "braid crawl: %s: %s\n", o.output, strerror(errno));
            status = 1;
            if (fx)
                braid_fixture_server_stop(fx);
            goto out;
        }
    }
    o.progress = !no_progress && !o.quiet && isatty(2);

    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    atomic_store(&g_sigints, 0);
    sigaction(SIGINT, &sa, &old);
    run_stats st = {0};
    int rc = crawl_run(&o, urls, nurls, f, NULL, o.resume, &st);
    sigaction(SIGINT, &old, NULL);
    if (f != stdout)
        fclose(f);
    else
        fflush(f);
    if (fx)
        braid_fixture_server_stop(fx);
    if (rc != 0) {
        fprintf(stderr, "braid crawl: %s\n", br_strerror(rc));
        status = 1;
    } else {
        status = st.failed > 0 || st.interrupted || atomic_load(&g_sigints) > 0 ? 1 : 0;
    }
out:
    for (int i = 0; i < nurls; i++)
        free(urls[i]);
    free(urls);
    for (int i = 0; i < MAX_FIELDS; i++)
        free(fieldbuf[i]);
    return status;
}

/* --- the W9 entry for braid compare --------------------------------------------------- */

int braid_crawl_bench(const char *model, const char *base_url, int concurrency,
                      double *seconds, size_t *lines, char *err, size_t errcap) {
    if (err && errcap)
        err[0] = '\0';
    if (model == NULL || base_url == NULL || seconds == NULL || lines == NULL)
        return BR_EINVAL;
    int m = model_by_name(model);
    if (m < 0) {
        if (err)
            snprintf(err, errcap, "unknown model '%s'", model);
        return BR_EINVAL;
    }
    crawl_opts o;
    opts_default(&o);
    o.model = (enum model)m;
    o.concurrency = concurrency;
    o.format = F_TSV;
    o.quiet = true;
    o.robots = ROBOTS_OFF;
    o.retries = 0;
    size_t blen = strlen(base_url);
    bool slash = blen > 0 && base_url[blen - 1] == '/';
    char *urls[BRAID_FIXTURE_PAGES];
    for (int p = 0; p < BRAID_FIXTURE_PAGES; p++) {
        urls[p] = malloc(blen + 32);
        if (urls[p] == NULL) {
            for (int q = 0; q < p; q++)
                free(urls[q]);
            return BR_ENOMEM;
        }
        sprintf(urls[p], "%s%spage-%02d.html", base_url, slash ? "" : "/", p + 1);
    }
    buf mem = {0};
    run_stats st = {0};
    int rc = crawl_run(&o, urls, BRAID_FIXTURE_PAGES, NULL, &mem, false, &st);
    for (int p = 0; p < BRAID_FIXTURE_PAGES; p++)
        free(urls[p]);
    free(mem.p);
    *seconds = st.seconds;
    *lines = st.lines;
    if (rc == 0 && st.failed > 0)
        rc = BR_EIO;
    if (rc != 0 && err)
        snprintf(err, errcap, "%ld of %d pages failed (%s)", st.failed, BRAID_FIXTURE_PAGES,
                 br_strerror(rc));
    return rc;
}
