/* braid/http.h: the http layer (libbraid_http; pkg-config braid-http): Python's
 * `requests`/`aiohttp` client, a Flask-like HTTP/1.1 server, and lxml-style HTML
 * extraction, for C, on braid's loop, threads and pools.
 *
 * libbraid_http holds the layer only and links libbraid (pkg-config braid-http brings
 * both); a program may link libbraid_mpi beside it (docs/http.md says how).
 *
 *   client   br_http_fetch: in a coroutine on a loop, the transfer runs on that loop's
 *            libcurl multi handle (one per loop thread) and only the coroutine waits; on
 *            any other thread (a pool worker, a process-pool worker, main) the same call
 *            blocks that thread, with the same options and the same code paths.
 *   server   br_http_server: HTTP/1.1 on a loop, one coroutine per connection, llhttp in
 *            strict mode plus braid's own checks, caps and timeouts on by default, routes
 *            with path parameters; a handler runs inline or awaits pool work
 *            (br_http_await), which is cancelled when the client goes away.
 *   html     br_html_parse / br_html_records: libxml2's HTML parser and XPath, the
 *            charset from Content-Type (else the page's own meta), links resolved with
 *            libcurl's URL API against the final URL and any <base href>.
 *
 * Conventions as everywhere in braid: 0 or a negative BR_E… code; deadlines absolute
 * (br_now() ns). Ownership is stated per call.
 */
#ifndef BRAID_HTTP_H
#define BRAID_HTTP_H

#include <braid/aio.h>
#include <braid/core.h>
#include <braid/future.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* === the client ================================================================== */

typedef struct br_http_header {
    const char *name;
    const char *value;
} br_http_header;

typedef struct br_http_client br_http_client;

typedef struct br_http_client_opts {
    int max_per_host;         /* connections at once to one host:port (0: 6) */
    int max_total;            /* connections at once in all (0: 256) */
    int max_redirects;        /* redirects followed (0: 10; -1: none, a 3xx is returned) */
    size_t max_body;          /* a larger body fails with BR_EMSGSIZE (0: 64 MiB) */
    int64_t timeout_ns;       /* a request's deadline when it gives none (0: 30 s) */
    int64_t connect_timeout_ns; /* (0: 10 s) */
    const char *user_agent;   /* NULL: "braid/<version>" */
    bool no_keepalive;        /* a new connection per request (as `requests.get` does) */
    bool no_gzip;             /* don't ask for gzip/deflate */
    bool insecure;            /* don't verify TLS certificates (tests only) */
} br_http_client_opts;

/* A client: options, and per loop thread a libcurl multi handle (its connection cache,
 * per-host caps). Safe to share between threads and loops. opts may be NULL. */
BR_API int br_http_client_new(br_http_client **out, const br_http_client_opts *opts);
/* No fetch may be running on it. */
BR_API void br_http_client_free(br_http_client *c);

typedef struct br_http_request {
    const char *method;              /* NULL: "GET", or "POST" when body is set */
    const char *url;                 /* http:// or https:// only (else BR_EINVAL) */
    const br_http_header *headers;   /* extra request headers, or NULL */
    size_t nheaders;
    const void *body;                /* copied before the call returns; may be NULL */
    size_t body_len;
    int64_t deadline;                /* absolute; 0: now + the client's timeout_ns */
    char *error;                     /* optional: on failure, a message (libcurl's) */
    size_t error_cap;
} br_http_request;

/* The reply. Every string and the body live as long as the response. */
typedef struct br_http_response {
    int status;                      /* 200, 404, … (every status is a reply, not an error) */
    const char *url;                 /* the final URL, after redirects */
    const char *content_type;        /* the Content-Type header, or NULL */
    const char *charset;             /* its charset parameter, lower case, or NULL */
    const char *body;                /* decoded (gzip), NUL-terminated after body_len */
    size_t body_len;
    const br_http_header *headers;   /* the final response's headers, in order */
    size_t nheaders;
    int redirects;                   /* how many were followed */
    int64_t retry_after_ns;          /* Retry-After as a duration, or -1 */
} br_http_response;

/* Fetches rq->url. Returns 0 and *out (free with br_http_response_free) for any HTTP
 * status; a transport failure is a code: BR_ENAME (DNS), BR_ECONNREFUSED,
 * BR_ECONNRESET (reset, or closed mid-body), BR_ETIMEDOUT (the deadline),
 * BR_EREDIRECT (over max_redirects, or to a scheme other than http/https), BR_ETLS,
 * BR_EMSGSIZE (over max_body), BR_EPROTO (a malformed reply), BR_ECANCELED (the calling
 * coroutine was cancelled: the transfer is abandoned), BR_EINVAL (bad url or method).
 * In a coroutine on a loop only the coroutine waits; elsewhere the thread blocks. */
BR_API int br_http_fetch(br_http_client *c, const br_http_request *rq,
                         br_http_response **out);
/* The same transfer started on the calling thread's loop (BR_EPERM without one); *out
 * completes with the response as its pointer result (br_future_take_ptr; the taker
 * frees it with br_http_response_free) or fails with the code above. Cancelling the
 * future abandons the transfer. */
BR_API int br_http_fetch_async(br_http_client *c, const br_http_request *rq,
                               br_future **out);
/* The value of the first header named `name` (case-insensitive), or NULL. */
BR_API const char *br_http_response_header(const br_http_response *r, const char *name);
BR_API void br_http_response_free(br_http_response *r);

/* === the server ================================================================== */

typedef struct br_http_server br_http_server;
typedef struct br_http_req br_http_req; /* a request: valid until its handler returns */
typedef struct br_http_res br_http_res; /* its response, being built */

/* A route's handler, run in the connection's coroutine on the server's loop. It fills
 * res (br_http_res_send or the calls below) and returns 0; a negative code with nothing
 * sent gives a 500 with the code's message as JSON. It may block (it's a coroutine):
 * br_http_await a pool's future, br_aio_sleep, br_http_fetch. */
typedef int (*br_http_handler)(br_http_req *req, br_http_res *res, void *arg);

typedef struct br_http_server_opts {
    size_t max_header_bytes;   /* request line + headers (0: 16 KiB): else 431 */
    size_t max_url_bytes;      /* the request target (0: 8 KiB): else 414 */
    size_t max_body_bytes;     /* (0: 1 MiB): else 413 */
    int64_t header_timeout_ns; /* a request's head must arrive within it (0: 10 s) */
    int64_t body_timeout_ns;   /* its body within it, once the head is in (0: 30 s) */
    int64_t idle_timeout_ns;   /* a keep-alive connection idle this long is closed (0: 60 s) */
    int max_connections;       /* beyond it, accepting waits (0: 10,000) */
    void *access_log;          /* a FILE * to write one line per request to, or NULL */
    /* A handler's time to answer, once the request is in (0: 30 s; BR_FOREVER:
     * none). Past it the handler is cancelled (its blocking calls return BR_ECANCELED,
     * pool work it awaits is cancelled) and the client gets 503; a handler that had
     * sent its response already has it delivered, and the connection then closes. */
    int64_t handler_timeout_ns;
} br_http_server_opts;

/* opts may be NULL (the defaults above). */
BR_API int br_http_server_new(br_http_server **out, const br_http_server_opts *opts);
/* Adds a route, before br_http_server_listen. method: "GET", "POST", … or NULL for any.
 * pattern: a path whose segments may be parameters, "/is_prime/{numbers}", and whose
 * last segment may be "{name*}" for the rest of the path. Routes match in the order
 * added; no route: 404; a path that matches with another method: 405. BR_EINVAL for a
 * malformed pattern; BR_ESTATE once listening. docs/http-server.md has the rules. */
BR_API int br_http_route(br_http_server *s, const char *method, const char *pattern,
                         br_http_handler fn, void *arg);
/* Listens on host:port (port 0: any; br_http_server_port says which) and serves on
 * `loop` (the calling thread's own when NULL), from its thread. */
BR_API int br_http_server_listen(br_http_server *s, br_loop *loop, const char *host,
                                 int port);
BR_API int br_http_server_port(const br_http_server *s);
/* Graceful shutdown: stop accepting, let requests in progress finish and close idle
 * connections; at the deadline, cancel what is left (their pool work included).
 * Callable from any thread; returns when every connection is gone. The server's loop
 * must be running meanwhile (its own coroutines do the closing). */
BR_API int br_http_server_shutdown(br_http_server *s, int64_t deadline);
/* Frees; a server still serving is shut down first with an immediate deadline (as
 * above: its loop must be running). NULL is a no-op. */
BR_API void br_http_server_free(br_http_server *s);

/* The request. Strings are NUL-terminated and live until the handler returns. */
BR_API const char *br_http_req_method(const br_http_req *req);
BR_API const char *br_http_req_path(const br_http_req *req);  /* decoded, without query */
BR_API const char *br_http_req_query(const br_http_req *req); /* raw, "" when none */
BR_API const char *br_http_req_header(const br_http_req *req, const char *name);
BR_API const char *br_http_req_param(const br_http_req *req, const char *name);
BR_API const void *br_http_req_body(const br_http_req *req, size_t *len);

/* The response. A header set twice is sent twice; Content-Length, Date, Connection
 * are the server's. */
BR_API int br_http_res_header(br_http_res *res, const char *name, const char *value);
/* Sends status, Content-Type and body (copied) as the response; once per request
 * (BR_ESTATE after). */
BR_API int br_http_res_send(br_http_res *res, int status, const char *content_type,
                            const void *body, size_t len);
/* br_http_res_send of a JSON error body {"error": msg} with the status. */
BR_API int br_http_res_error(br_http_res *res, int status, const char *msg);

/* Waits in the handler for f (a pool's or any future) until it is done, the deadline,
 * or the client going away: 0 when done (read its result as usual); BR_ETIMEDOUT or
 * BR_ECONNRESET after cancelling f (pool work not yet started never runs; see
 * br_future_cancel). Does not release f. */
BR_API int br_http_await(br_http_req *req, br_future *f, int64_t deadline);

/* === HTML extraction ============================================================= */

typedef struct br_html_doc br_html_doc;

/* Parses an HTML page. content_type: the response's Content-Type (its charset is used;
 * NULL or none: the page's own <meta charset>, else UTF-8 with bad bytes replaced).
 * url: the page's final URL, the base links resolve against (a <base href> in the page
 * takes over). Broken HTML is parsed as a browser would recover it, not an error;
 * BR_EINVAL for a NULL body, BR_ENOMEM. */
BR_API int br_html_parse(const char *body, size_t len, const char *content_type,
                         const char *url, br_html_doc **out);
BR_API void br_html_free(br_html_doc *d);

/* A field of a record: an XPath relative to the record's node ("." is the node itself,
 * "@href" an attribute, ".//p[@class='summary']"), its string value (text content with
 * entities decoded; <template> content excluded), trimmed when `trim`; resolved to an
 * absolute URL when `url`. A field matching nothing is "". */
typedef struct br_html_field {
    const char *name;
    const char *xpath;
    bool url;
    bool trim;
} br_html_field;

/* For each node matching record_xpath, in document order, calls fn with the values of
 * the fields (values[i] for fields[i]; valid during the call). Expressions are
 * compiled once per thread and cached. Returns the number of records (>= 0), or
 * BR_EINVAL for an XPath that doesn't compile, or fn's nonzero return (which stops). */
typedef int (*br_html_record_fn)(const char *const *values, void *arg);
BR_API int br_html_records(br_html_doc *d, const char *record_xpath,
                           const br_html_field *fields, size_t nfields,
                           br_html_record_fn fn, void *arg);

/* The document's base URL (after any <base href>), and the charset it was read as. */
BR_API const char *br_html_base(const br_html_doc *d);
BR_API const char *br_html_charset(const br_html_doc *d);

/* URLs, with libcurl's URL API. Both allocate *out (malloc; the caller frees it). */
/* ref resolved against base (RFC 3986; percent-escapes kept as written). BR_EINVAL
 * when it can't be. */
BR_API int br_url_resolve(const char *base, const char *ref, char **out);
/* The form URLs are deduplicated by: scheme and host lower case, default port and
 * fragment dropped, dot segments removed, an empty path as "/". */
BR_API int br_url_canonical(const char *url, char **out);

#ifdef __cplusplus
}
#endif
#endif
