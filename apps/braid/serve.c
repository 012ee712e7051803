/* serve.c: `braid serve`, the tutorials' Flask service on braid's http server.
 *
 * Design note.
 *   /is_prime/<numbers>  The numbers (decimal int64s: an optional sign and digits, at
 *       most BRAID_SERVE_MAX_NUMBERS; anything else is a 400 with a JSON error) are cut
 *       into chunks, each one task (the map of the tutorial, with Python's chunksize
 *       chosen by the work: one chunk per worker for costly numbers, one chunk in all
 *       for a request of small ones, whose cost is the message, not the division).
 *       The handler awaits each chunk with br_http_await, so a request that times out or whose client leaves cancels its chunks; a chunk
 *       polls br_task_cancelled between stretches of trial division. The reply is
 *       Python's json.dumps of dict(zip(numbers, results)): keys in first-seen order,
 *       a repeated number keeps its first place. A worker killed under a request fails
 *       that request (500, "worker died"); the pool replaces the worker and the next
 *       request is served. The workers come from the forkserver, not fork: a forked
 *       worker (and a replacement, forked while connections are open) would hold
 *       copies of the server's sockets and keep closed connections open.
 *   /    Three backend reads (sleeps of 0.1, 0.2, 0.3 s standing for a file, a
 *       database and an API) submitted to a thread pool and awaited in order: the
 *       request takes the longest, 0.3 s, while the pool has three free threads.
 *       With T threads, at most T/3 such requests are in their reads at once: the
 *       throughput bound is T / 0.6 requests/s (the reads hold 0.6 thread-seconds),
 *       which is what 6 threads (Python's default on 2 CPUs) give 10 connections.
 *   /hello  "Hello, World!", for the hello-route benchmark.
 *   Shutdown: SIGINT/SIGTERM are blocked in every thread and taken by sigwait in main;
 *       the server drains (requests in progress finish, within 10 s, then are
 *       cancelled), the pools shut down, their workers are reaped, exit 0.
 */
#define _GNU_SOURCE /* sigwait, pthread_sigmask */
#include "serve.h"
#include "cli.h"
#include "fixture.h"
#include "httpd.h"

#include <braid.h>
#include <braid/http.h>
#include <braid/processpool.h>

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct braid_serve {
    braid_serve_opts opts;
    br_executor *procs;   /* is_prime */
    br_executor *threads; /* the backend reads */
    braid_httpd *httpd;
    braid_fixture_server *fixture;
    atomic_int in_flight; /* handlers of / and /is_prime running (tests) */
};

/* --- is_prime on the process pool --- */

bool braid_serve_is_prime(int64_t n) {
    if (n < 2)
        return false;
    if (n == 2)
        return true;
    if (n % 2 == 0)
        return false;
    for (int64_t i = 3; i <= n / i; i += 2)
        if (n % i == 0)
            return false;
    return true;
}

/* One chunk: the argument is int64s, the result one byte (0/1) per number. */
static int is_prime_chunk(br_task *t) {
    size_t len = 0;
    const int64_t *ns = br_task_arg(t, &len);
    size_t count = len / sizeof(int64_t);
    unsigned char out[BRAID_SERVE_MAX_NUMBERS];
    if (count > BRAID_SERVE_MAX_NUMBERS)
        return br_task_fail(t, BR_EINVAL, "too many numbers");
    for (size_t k = 0; k < count; k++) {
        int64_t n = 0;
        memcpy(&n, ns + k, sizeof n);
        bool prime = n >= 2 && (n == 2 || n % 2 != 0);
        /* the tutorial's loop, checking for a cancel every 2^16 divisions */
        if (prime && n > 2) {
            int64_t steps = 0;
            for (int64_t i = 3; i <= n / i; i += 2) {
                if (n % i == 0) {
                    prime = false;
                    break;
                }
                if ((++steps & 0xffff) == 0 && br_task_cancelled(t))
                    return BR_ECANCELED;
            }
        }
        out[k] = prime;
    }
    return br_task_return(t, out, count);
}

/* Parses "2,3,5": 0, or a message for the 400. */
static const char *parse_numbers(const char *s, int64_t *ns, size_t *count) {
    size_t n = 0;
    const char *p = s;
    if (*p == '\0')
        return "no numbers";
    for (;;) {
        const char *start = p;
        if (*p == '+' || *p == '-')
            p++;
        if (*p < '0' || *p > '9')
            return "not a number (want comma-separated integers)";
        while (*p >= '0' && *p <= '9')
            p++;
        if (*p != ',' && *p != '\0')
            return "not a number (want comma-separated integers)";
        if (n == BRAID_SERVE_MAX_NUMBERS)
            return "too many numbers (at most 1000)";
        char buf[32];
        size_t len = (size_t)(p - start);
        if (len >= sizeof buf)
            return "number out of range (a 64-bit signed integer)";
        memcpy(buf, start, len);
        buf[len] = '\0';
        errno = 0;
        char *end = NULL;
        long long v = strtoll(buf, &end, 10);
        if (errno == ERANGE || end != buf + len)
            return "number out of range (a 64-bit signed integer)";
        ns[n++] = v;
        if (*p == '\0')
            break;
        p++;
    }
    *count = n;
    return NULL;
}

/* The reply to /is_prime, written directly (no JSON objects to build): what Python's
 * json.dumps(dict(zip(numbers, results))) prints. Keys in first-seen order, a repeated
 * number once (its first result: the same number has the same one); `seen` is an
 * open-addressing table of SEEN_SLOTS entries (index + 1 into ns, 0 empty). */
enum { SEEN_SLOTS = 2048 }; /* a power of two, over twice BRAID_SERVE_MAX_NUMBERS */

static bool first_seen(const int64_t *ns, size_t k, uint16_t *seen) {
    size_t h = (size_t)(((uint64_t)ns[k] * 0x9e3779b97f4a7c15ull) >> 53);
    for (;; h = (h + 1) & (SEEN_SLOTS - 1)) {
        if (seen[h] == 0) {
            seen[h] = (uint16_t)(k + 1);
            return true;
        }
        if (ns[seen[h] - 1] == ns[k])
            return false;
    }
}

static int send_primes(br_http_res *res, const int64_t *ns, const unsigned char *prime,
                       size_t count, uint16_t *seen) {
    /* per number at most: ", " + "\"" + 20 digits and a sign + "\": " + "false" */
    size_t cap = 2 + count * 32;
    char small[512], *out = cap <= sizeof small ? small : malloc(cap);
    if (out == NULL)
        return BR_ENOMEM;
    memset(seen, 0, SEEN_SLOTS * sizeof *seen);
    size_t len = 0;
    out[len++] = '{';
    for (size_t k = 0; k < count; k++) {
        if (!first_seen(ns, k, seen))
            continue;
        if (len > 1) {
            out[len++] = ',';
            out[len++] = ' ';
        }
        out[len++] = '"';
        char digits[24];
        size_t d = 0;
        uint64_t v = ns[k] < 0 ? 0 - (uint64_t)ns[k] : (uint64_t)ns[k];
        do
            digits[d++] = (char)('0' + v % 10);
        while ((v /= 10) != 0);
        if (ns[k] < 0)
            out[len++] = '-';
        while (d > 0)
            out[len++] = digits[--d];
        memcpy(out + len, "\": ", 3);
        len += 3;
        const char *b = prime[k] ? "true" : "false";
        memcpy(out + len, b, prime[k] ? 4 : 5);
        len += prime[k] ? 4 : 5;
    }
    out[len++] = '}';
    int rc = br_http_res_send(res, 200, "application/json", out, len);
    if (out != small)
        free(out);
    return rc;
}

static int send_json(br_http_res *res, int status, json_t *j) {
    char *text = j != NULL ? json_dumps(j, 0) : NULL;
    json_decref(j);
    if (text == NULL)
        return BR_ENOMEM;
    int rc = br_http_res_send(res, status, "application/json", text, strlen(text));
    free(text);
    return rc;
}

/* The status and message for a failed await or chunk. */
static int fail_request(br_http_res *res, int code, const char *what) {
    char msg[160];
    switch (code) {
    case BR_ETIMEDOUT:
        snprintf(msg, sizeof msg, "%s: timed out", what);
        return br_http_res_error(res, 504, msg);
    case BR_EWORKERDIED:
        snprintf(msg, sizeof msg, "%s: worker died", what);
        return br_http_res_error(res, 500, msg);
    case BR_ESHUTDOWN:
    case BR_EBROKEN:
        snprintf(msg, sizeof msg, "%s: shutting down", what);
        return br_http_res_error(res, 503, msg);
    default:
        snprintf(msg, sizeof msg, "%s: %s", what, br_strerror(code));
        return br_http_res_error(res, 500, msg);
    }
}

static int64_t request_deadline(const braid_serve *s) {
    return br_deadline_after(s->opts.request_timeout_ns > 0 ? s->opts.request_timeout_ns
                                                            : 30 * 1000000000LL);
}

static int is_prime_route(br_http_req *req, br_http_res *res, void *arg) {
    braid_serve *s = arg;
    const char *param = br_http_req_param(req, "numbers");
    /* the numbers, their results, and first_seen's table, in one block (the table's
     * uint16_t entries start right after MAX_NUMBERS bytes of results: an even count) */
    _Static_assert(BRAID_SERVE_MAX_NUMBERS % 2 == 0, "the seen table must stay aligned");
    int64_t *ns =
        malloc(BRAID_SERVE_MAX_NUMBERS * (sizeof *ns + 1) + SEEN_SLOTS * sizeof(uint16_t));
    if (ns == NULL)
        return BR_ENOMEM;
    unsigned char *prime = (unsigned char *)(ns + BRAID_SERVE_MAX_NUMBERS);
    uint16_t *seen = (uint16_t *)(prime + BRAID_SERVE_MAX_NUMBERS);
    size_t count = 0;
    const char *bad = param != NULL ? parse_numbers(param, ns, &count) : "no numbers";
    if (bad != NULL) {
        free(ns);
        return br_http_res_error(res, 400, bad);
    }
    int64_t deadline = request_deadline(s);
    /* As many chunks as the work is worth, up to one per worker: trial division of n
     * costs up to sqrt(n)/2 divisions, and a chunk under ~1M of them (a millisecond)
     * costs less than the message that carries it, so small requests go as one. */
    size_t workers = (size_t)br_executor_max_workers(s->procs);
    double divisions = 0;
    for (size_t k = 0; k < count; k++)
        divisions += ns[k] > 3 ? sqrt((double)ns[k]) / 2 : 0;
    size_t want = (size_t)(divisions / 1e6) + 1;
    if (want > workers)
        want = workers;
    if (want > 64)
        want = 64;
    size_t chunk = (count + want - 1) / want, nchunks = (count + chunk - 1) / chunk;
    br_future *fs[64];
    int rc = 0;
    size_t submitted = 0;
    for (; submitted < nchunks; submitted++) {
        size_t from = submitted * chunk, n = count - from < chunk ? count - from : chunk;
        br_call call = {.fn = is_prime_chunk, .arg = ns + from, .len = n * sizeof *ns,
                        .deadline = deadline};
        rc = br_submit_call(s->procs, &call, &fs[submitted]);
        if (rc != 0)
            break;
    }
    size_t awaited = 0;
    for (; rc == 0 && awaited < submitted; awaited++) {
        rc = br_http_await(req, fs[awaited], deadline);
        if (rc == 0) /* done: its own failure, if any */
            rc = br_future_result(fs[awaited], BR_NOWAIT, NULL, NULL);
    }
    for (size_t c = 0; rc == 0 && c < submitted; c++) {
        const void *data = NULL;
        size_t len = 0, from = c * chunk;
        rc = br_future_result(fs[c], BR_NOWAIT, &data, &len);
        if (rc == 0 && len != (count - from < chunk ? count - from : chunk))
            rc = BR_EPROTO; /* a chunk answers each of its numbers */
        if (rc == 0)
            memcpy(prime + from, data, len);
    }
    for (size_t c = 0; c < submitted; c++) {
        if (!br_future_done(fs[c]))
            br_future_request_cancel(fs[c]);
        br_future_release(fs[c]);
    }
    if (rc == 0)
        rc = send_primes(res, ns, prime, count, seen);
    else if (rc != BR_ECONNRESET) /* the client left: nobody to answer */
        rc = fail_request(res, rc, "is_prime");
    free(ns);
    return rc;
}

/* --- the backend reads on the thread pool --- */

static const struct {
    const char *key, *value;
    int64_t ns;
} READS[3] = {{"result_file", "file result", 100000000},
              {"result_db", "db result", 200000000},
              {"result_api", "api result", 300000000}};

/* time.sleep(d) that a cancel stops: slices of at most 5 ms. */
static int backend_read(br_task *t) {
    int64_t i = br_task_arg_i64(t);
    int64_t deadline = br_deadline_after(READS[i].ns);
    while (br_now() < deadline) {
        if (br_task_cancelled(t))
            return BR_ECANCELED;
        int64_t left = br_deadline_left(deadline);
        br_sleep(left < 5000000 ? left : 5000000);
    }
    return br_task_return_str(t, READS[i].value);
}

static int index_route(br_http_req *req, br_http_res *res, void *arg) {
    braid_serve *s = arg;
    int64_t deadline = request_deadline(s);
    br_future *fs[3] = {0};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = br_submit_i64(s->threads, backend_read, i, &fs[i]);
    for (int i = 0; i < 3 && rc == 0; i++) {
        rc = br_http_await(req, fs[i], deadline);
        if (rc == 0)
            rc = br_future_result(fs[i], BR_NOWAIT, NULL, NULL);
    }
    json_t *out = NULL;
    if (rc == 0) {
        out = json_object();
        for (int i = 0; i < 3 && out != NULL; i++) {
            const char *v = NULL;
            if (br_future_result_str(fs[i], BR_NOWAIT, &v) == 0)
                json_object_set_new(out, READS[i].key, json_string(v));
        }
    }
    for (int i = 0; i < 3; i++) {
        if (fs[i] == NULL)
            continue;
        if (!br_future_done(fs[i]))
            br_future_request_cancel(fs[i]);
        br_future_release(fs[i]);
    }
    if (rc == BR_ECONNRESET)
        return rc;
    if (rc != 0)
        return fail_request(res, rc, "backend");
    return send_json(res, 200, out);
}

static int counted(int (*fn)(br_http_req *, br_http_res *, void *), br_http_req *req,
                   br_http_res *res, braid_serve *s) {
    atomic_fetch_add(&s->in_flight, 1);
    int rc = fn(req, res, s);
    atomic_fetch_sub(&s->in_flight, 1);
    return rc;
}

static int on_is_prime(br_http_req *req, br_http_res *res, void *arg) {
    return counted(is_prime_route, req, res, arg);
}

static int on_index(br_http_req *req, br_http_res *res, void *arg) {
    return counted(index_route, req, res, arg);
}

static int on_hello(br_http_req *req, br_http_res *res, void *arg) {
    (void)req;
    (void)arg;
    return br_http_res_send(res, 200, "text/plain; charset=utf-8", "Hello, World!", 13);
}

static int setup(br_http_server *srv, void *arg) {
    int rc = br_http_route(srv, "GET", "/is_prime/{numbers}", on_is_prime, arg);
    if (rc == 0)
        rc = br_http_route(srv, "GET", "/", on_index, arg);
    if (rc == 0)
        rc = br_http_route(srv, "GET", "/hello", on_hello, arg);
    return rc;
}

/* --- the service's life --- */

static void serve_free(braid_serve *s) {
    if (s->procs != NULL) {
        br_executor_shutdown(s->procs, true, true);
        br_executor_free(s->procs);
    }
    if (s->threads != NULL) {
        br_executor_shutdown(s->threads, true, true);
        br_executor_free(s->threads);
    }
    free(s);
}

int braid_serve_start(const braid_serve_opts *opts, braid_serve **out) {
    if (opts == NULL || out == NULL || opts->workers < 0 || opts->threads < 0 ||
        opts->latency_ns < 0)
        return BR_EINVAL;
    braid_serve *s = calloc(1, sizeof *s);
    if (s == NULL)
        return BR_ENOMEM;
    s->opts = *opts;
    int rc = 0;
    if (opts->fixture) {
        rc = braid_fixture_server_start(opts->host, opts->port, opts->latency_ns, &s->fixture);
    } else {
        /* forkserver: a worker (a replacement too) is forked from a server started
         * before any socket exists, so it holds none of the connections or the
         * listening socket; a forked copy of this process would keep a connection open
         * after the server closed it. */
        rc = br_processpool_new(&s->procs, &(br_processpool_opts){
                                               .max_workers = opts->workers ? opts->workers : 2,
                                               .start_method = BR_START_FORKSERVER});
        if (rc == 0)
            rc = br_threadpool_new(&s->threads, &(br_threadpool_opts){
                                                    .max_workers = opts->threads ? opts->threads : 6});
        /* The routes answer 504 at their own request timeout; the server's handler
         * timeout only backs it up, a little later, so it never cuts them short. */
        int64_t req_timeout = opts->request_timeout_ns > 0 ? opts->request_timeout_ns
                                                           : 30 * 1000000000LL;
        br_http_server_opts sopts = {.access_log = opts->access_log,
                                     .handler_timeout_ns = req_timeout + 5 * BR_SEC};
        if (rc == 0)
            rc = braid_httpd_start(opts->host, opts->port, &sopts, setup, s, &s->httpd);
    }
    if (rc != 0) {
        serve_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

const char *braid_serve_url(const braid_serve *s) {
    if (s == NULL)
        return NULL;
    return s->fixture != NULL ? braid_fixture_server_url(s->fixture) : braid_httpd_url(s->httpd);
}

int braid_serve_worker_pids(braid_serve *s, int *pids, int cap) {
    if (s == NULL || s->procs == NULL)
        return BR_EINVAL;
    return br_processpool_pids(s->procs, pids, cap);
}

int braid_serve_in_flight(const braid_serve *s) {
    return s == NULL ? BR_EINVAL : atomic_load(&((braid_serve *)s)->in_flight);
}

int braid_serve_stop(braid_serve *s, int64_t deadline) {
    if (s == NULL)
        return BR_EINVAL;
    int rc = 0;
    if (s->fixture != NULL)
        rc = braid_fixture_server_stop(s->fixture);
    if (s->httpd != NULL)
        rc = braid_httpd_stop(s->httpd, deadline);
    serve_free(s);
    return rc;
}

/* --- the command --- */

void braid_serve_usage(void) {
    printf("usage: braid serve [--host HOST] [--port PORT] [--workers N] [--threads N]\n"
           "                   [--access-log FILE|-] [--fixture [--latency MS]]\n"
           "\n"
           "The tutorials' Flask service on braid's HTTP/1.1 server:\n"
           "  GET /is_prime/N1,N2,...  {\"N1\": true, ...} computed on a process pool\n"
           "                           (--workers, default 2); at most %d numbers, each a\n"
           "                           64-bit integer; anything else is a 400\n"
           "  GET /                    three backend reads (0.1, 0.2, 0.3 s) on a thread pool\n"
           "                           (--threads, default 6), answered in ~0.3 s\n"
           "  GET /hello               Hello, World!\n"
           "--fixture serves the crawl fixture site instead (/, /page-NN.html, /hello.txt,\n"
           "/robots.txt), each response after --latency MS (default 0).\n"
           "Listens on 127.0.0.1:8000 by default (--port 0: any free port) and prints the\n"
           "URL. SIGINT or SIGTERM: requests in progress finish (within 10 s), exit 0.\n",
           (int)BRAID_SERVE_MAX_NUMBERS);
}

static bool parse_int(const char *s, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

int braid_serve_main(int argc, char **argv) {
    braid_serve_opts o = {.host = "127.0.0.1", .port = 8000};
    const char *log_path = NULL;
    bool latency_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            braid_serve_usage();
            return 0;
        } else if (strcmp(a, "--fixture") == 0) {
            o.fixture = true;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "braid serve: %s: %s\n", a,
                    strncmp(a, "--", 2) == 0 ? "needs a value" : "unknown argument");
            return 2;
        }
        i++;
        if (strcmp(a, "--host") == 0) {
            o.host = v;
        } else if (strcmp(a, "--port") == 0) {
            if (!parse_int(v, 0, 65535, &n)) {
                fprintf(stderr, "braid serve: --port %s: want 0..65535\n", v);
                return 2;
            }
            o.port = (int)n;
        } else if (strcmp(a, "--workers") == 0 || strcmp(a, "--threads") == 0) {
            if (!parse_int(v, 1, 1024, &n)) {
                fprintf(stderr, "braid serve: %s %s: want 1..1024\n", a, v);
                return 2;
            }
            *(a[2] == 'w' ? &o.workers : &o.threads) = (int)n;
        } else if (strcmp(a, "--latency") == 0) {
            if (!parse_int(v, 0, 600000, &n)) {
                fprintf(stderr, "braid serve: --latency %s: want milliseconds, 0..600000\n", v);
                return 2;
            }
            o.latency_ns = (int64_t)n * 1000000;
            latency_given = true;
        } else if (strcmp(a, "--access-log") == 0) {
            log_path = v;
        } else {
            fprintf(stderr, "braid serve: unknown option %s (braid help serve)\n", a);
            return 2;
        }
    }
    if (latency_given && !o.fixture) {
        fprintf(stderr, "braid serve: --latency goes with --fixture\n");
        return 2;
    }
    FILE *log = NULL;
    if (log_path != NULL) {
        log = strcmp(log_path, "-") == 0 ? stdout : fopen(log_path, "a");
        if (log == NULL) {
            fprintf(stderr, "braid serve: --access-log %s: %s\n", log_path, strerror(errno));
            return 1;
        }
        if (o.fixture)
            fprintf(stderr, "braid serve: --access-log is not kept with --fixture\n");
        o.access_log = log;
    }

    /* Every thread started from here on inherits the mask: the signals come to sigwait. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    braid_serve *s = NULL;
    int rc = braid_serve_start(&o, &s);
    if (rc != 0) {
        fprintf(stderr, "braid serve: can't serve on %s:%d: %s\n", o.host, o.port,
                br_strerror(rc));
        if (log != NULL && log != stdout)
            fclose(log);
        return 1;
    }
    printf("%s\n", braid_serve_url(s));
    fflush(stdout);
    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    fprintf(stderr, "braid serve: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = braid_serve_stop(s, br_deadline_after_s(10));
    if (log != NULL) {
        fflush(log);
        if (log != stdout)
            fclose(log);
    }
    if (rc != 0 && rc != BR_ETIMEDOUT) {
        fprintf(stderr, "braid serve: shutdown: %s\n", br_strerror(rc));
        return 1;
    }
    return 0;
}
