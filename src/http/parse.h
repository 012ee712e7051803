/* The server's request parser (internal): llhttp in strict mode plus braid's own
 * checks, incremental, loop-free and allocation-bounded, so that the fuzz target
 * (tests/http/fuzz_request.c) links it alone. server.c feeds it what a connection
 * reads; parse.c's opening note says what is checked and why.
 *
 * Use: br__http_parser_init; then br__http_parse(p, data, len, &used) as bytes
 * arrive: BR__HTTP_MORE (all of it used, give more), BR__HTTP_DONE (one request is
 * complete: `used` bytes were its; the rest belongs to the next, pipelined one),
 * BR__HTTP_ERROR (p->status is the 4xx/5xx to answer, p->reason a phrase; the
 * connection must close). After DONE, read the request from the fields below, then
 * br__http_parser_next before feeding the leftover. */
#ifndef BRAID_HTTP_PARSE_H
#define BRAID_HTTP_PARSE_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { BR__HTTP_MORE = 0, BR__HTTP_DONE = 1, BR__HTTP_ERROR = -1 };

/* A header: offsets into the parser's arena; both strings NUL-terminated there. */
typedef struct br__http_hdr {
    uint32_t name, value;
    uint32_t name_len, value_len;
} br__http_hdr;

typedef struct br__http_parser {
    llhttp_t ll;
    size_t max_head, max_url, max_body;
    /* the head scanner (bare CR/LF, obs-fold, the head's size) */
    bool in_head, prev_cr;
    size_t head_bytes, line_len, lines;
    /* the chunk scanner (the framing of a chunked body, again after llhttp) */
    bool chunked;
    int cs;
    uint64_t chunk_left;
    int size_digits;
    /* the request being read */
    bool head_done, complete, keep_alive, expect_continue;
    char *arena; /* url, then each header's name and value, NUL-terminated */
    size_t arena_len, arena_cap;
    uint32_t url, url_len;
    br__http_hdr *hdrs;
    size_t nhdrs, hdrs_cap;
    int in_field; /* 0: neither, 1: a header's name, 2: its value */
    char *body;
    size_t body_len, body_cap;
    int ncl, nhost;
    /* the error, once one is found (sticky) */
    int status;
    const char *reason;
} br__http_parser;

/* The caps: head (request line + headers), target, body; 0 takes none of the
 * server's defaults here: pass them. */
void br__http_parser_init(br__http_parser *p, size_t max_head, size_t max_url,
                          size_t max_body);
void br__http_parser_destroy(br__http_parser *p);
int br__http_parse(br__http_parser *p, const char *data, size_t len, size_t *used);
void br__http_parser_next(br__http_parser *p);

/* The request's parts, after DONE. */
static inline const char *br__http_url(const br__http_parser *p) {
    return p->arena + p->url;
}
static inline const char *br__http_hdr_name(const br__http_parser *p, size_t i) {
    return p->arena + p->hdrs[i].name;
}
static inline const char *br__http_hdr_value(const br__http_parser *p, size_t i) {
    return p->arena + p->hdrs[i].value;
}
/* "GET", "POST", … */
const char *br__http_method(const br__http_parser *p);
/* Whether any byte of the next request has been seen (the header timeout runs). */
static inline bool br__http_started(const br__http_parser *p) {
    return p->head_bytes > 0;
}

#endif
