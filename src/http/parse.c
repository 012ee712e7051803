/* The server's request parser: llhttp (Debian's node-llhttp 8.1) in strict mode, with
 * braid's own checks for what that version lets through, and the server's caps.
 *
 * Design note: the rules a change must keep.
 *
 *  - Strict: no llhttp_set_lenient_* is ever called. llhttp then rejects a
 *    Content-Length together with Transfer-Encoding, a malformed or repeated
 *    Content-Length, a Transfer-Encoding not ending in chunked, bad chunk sizes and
 *    bad characters. braid checks the same again where cheap (a second
 *    Content-Length, even an equal one; CL with TE), and adds what llhttp 8.1.0 lacks
 *    (its 8.1.1/8.1.2 fixes, CVE-2023-30589 and CVE-2024-27982): the head scanner
 *    below rejects a bare CR, a bare LF and obs-fold (a header line starting with SP
 *    or HT) before llhttp sees the bytes. HTTP/1.1 without exactly one Host is 400.
 *
 *  - llhttp 8.1.0 also takes any two bytes after a chunk's data for its CRLF
 *    ("5\r\nhelloXX0\r\n\r\n" is one chunk and the end), so a chunked body's framing
 *    is checked again by a small scanner of braid's (chunk-size line, extensions,
 *    data, CRLF, trailers) over the bytes llhttp consumed; a fault there overrides
 *    whatever llhttp concluded.
 *
 *  - The head scanner runs over the head only: from the first byte of a request to its
 *    empty line (leading empty lines allowed, as RFC 9112 2.2 lets a server do). It
 *    counts the head's bytes for the 431 cap. When it finds a fault at offset k, llhttp
 *    still parses [0, k) first, so that a fault llhttp finds earlier (a target over
 *    max_url: 414) is the one reported.
 *
 *  - Caps: target > max_url: 414; head > max_head: 431; body > max_body: 413, from
 *    Content-Length at the end of the head, or as chunks arrive. Memory per
 *    connection is therefore bounded by the caps.
 *
 *  - Pipelining: on_message_complete pauses llhttp, so one call never reads past the
 *    end of a request; the caller gets how many bytes were that request's and feeds
 *    the rest after br__http_parser_next (which resumes llhttp).
 *
 *  - An error is sticky: after BR__HTTP_ERROR the connection answers p->status and
 *    closes; nothing more is parsed.
 */
#include "http/parse.h"

#include "core/lib.h"

#include <string.h>
#include <strings.h>

static int fail(br__http_parser *p, int status, const char *reason) {
    if (p->status == 0) {
        p->status = status;
        p->reason = reason;
    }
    return -1;
}

static br__http_parser *of(llhttp_t *ll) {
    return (br__http_parser *)((char *)ll - offsetof(br__http_parser, ll));
}

static int put(br__http_parser *p, const char *at, size_t len) {
    if (p->arena_len + len + 1 > p->arena_cap) {
        size_t cap = p->arena_cap ? p->arena_cap : 512;
        while (cap < p->arena_len + len + 1)
            cap *= 2;
        char *a = br__realloc(p->arena, cap);
        if (a == NULL)
            return fail(p, 500, "Internal Server Error");
        p->arena = a;
        p->arena_cap = cap;
    }
    memcpy(p->arena + p->arena_len, at, len);
    p->arena_len += len;
    return 0;
}

static int put_nul(br__http_parser *p) {
    if (put(p, "", 1) != 0)
        return -1;
    return 0;
}

static int on_message_begin(llhttp_t *ll) {
    br__http_parser *p = of(ll);
    p->arena_len = 0;
    p->url = 0;
    p->url_len = 0;
    p->nhdrs = 0;
    p->in_field = 0;
    p->body_len = 0;
    p->ncl = p->nhost = 0;
    p->expect_continue = false;
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t len) {
    br__http_parser *p = of(ll);
    if ((size_t)p->url_len + len > p->max_url)
        return fail(p, 414, "URI Too Long");
    p->url_len += (uint32_t)len;
    return put(p, at, len);
}

static int on_url_complete(llhttp_t *ll) {
    return put_nul(of(ll));
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len) {
    br__http_parser *p = of(ll);
    if (p->in_field != 1) {
        if (p->nhdrs == p->hdrs_cap) {
            size_t cap = p->hdrs_cap ? p->hdrs_cap * 2 : 16;
            br__http_hdr *h = br__realloc(p->hdrs, cap * sizeof *h);
            if (h == NULL)
                return fail(p, 500, "Internal Server Error");
            p->hdrs = h;
            p->hdrs_cap = cap;
        }
        br__http_hdr *h = &p->hdrs[p->nhdrs++];
        memset(h, 0, sizeof *h);
        h->name = (uint32_t)p->arena_len;
        p->in_field = 1;
    }
    p->hdrs[p->nhdrs - 1].name_len += (uint32_t)len;
    return put(p, at, len);
}

static int on_header_field_complete(llhttp_t *ll) {
    br__http_parser *p = of(ll);
    if (p->in_field != 1) /* an empty name: llhttp rejects it before this */
        return fail(p, 400, "Bad Request: empty header name");
    return put_nul(p);
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len) {
    br__http_parser *p = of(ll);
    br__http_hdr *h = &p->hdrs[p->nhdrs - 1];
    if (p->in_field != 2) {
        h->value = (uint32_t)p->arena_len;
        p->in_field = 2;
    }
    h->value_len += (uint32_t)len;
    return put(p, at, len);
}

static bool token_is(const char *s, size_t n, const char *want) {
    return n == strlen(want) && strncasecmp(s, want, n) == 0;
}

static int on_header_value_complete(llhttp_t *ll) {
    br__http_parser *p = of(ll);
    br__http_hdr *h = &p->hdrs[p->nhdrs - 1];
    if (p->in_field != 2) { /* an empty value: no on_header_value came */
        h->value = (uint32_t)p->arena_len;
        h->value_len = 0;
    }
    p->in_field = 0;
    if (put_nul(p) != 0)
        return -1;
    const char *name = p->arena + h->name, *value = p->arena + h->value;
    /* llhttp keeps the value's trailing blanks; the handler shouldn't see them */
    while (h->value_len > 0 &&
           (value[h->value_len - 1] == ' ' || value[h->value_len - 1] == '\t'))
        p->arena[h->value + --h->value_len] = '\0';
    if (token_is(name, h->name_len, "content-length")) {
        if (++p->ncl > 1)
            return fail(p, 400, "Bad Request: more than one Content-Length");
    } else if (token_is(name, h->name_len, "host")) {
        if (++p->nhost > 1)
            return fail(p, 400, "Bad Request: more than one Host");
    } else if (token_is(name, h->name_len, "expect")) {
        if (token_is(value, h->value_len, "100-continue"))
            p->expect_continue = true;
        else
            return fail(p, 417, "Expectation Failed");
    }
    return 0;
}

static int on_headers_complete(llhttp_t *ll) {
    br__http_parser *p = of(ll);
    p->head_done = true;
    p->in_head = false;
    p->chunked = (ll->flags & F_CHUNKED) != 0;
    if ((ll->flags & F_CONTENT_LENGTH) && (ll->flags & F_TRANSFER_ENCODING))
        return fail(p, 400, "Bad Request: Content-Length with Transfer-Encoding");
    if (ll->http_major == 1 && ll->http_minor >= 1 && p->nhost == 0)
        return fail(p, 400, "Bad Request: no Host");
    if ((ll->flags & F_CONTENT_LENGTH) && ll->content_length > p->max_body)
        return fail(p, 413, "Content Too Large");
    if (!(ll->flags & (F_CONTENT_LENGTH | F_CHUNKED)))
        p->expect_continue = false; /* no body to wait for */
    return 0;
}

static int on_body(llhttp_t *ll, const char *at, size_t len) {
    br__http_parser *p = of(ll);
    if (p->body_len + len > p->max_body)
        return fail(p, 413, "Content Too Large");
    if (p->body_len + len + 1 > p->body_cap) {
        size_t cap = p->body_cap ? p->body_cap : 1024;
        while (cap < p->body_len + len + 1)
            cap *= 2;
        char *b = br__realloc(p->body, cap);
        if (b == NULL)
            return fail(p, 500, "Internal Server Error");
        p->body = b;
        p->body_cap = cap;
    }
    memcpy(p->body + p->body_len, at, len);
    p->body_len += len;
    p->body[p->body_len] = '\0';
    return 0;
}

static int on_message_complete(llhttp_t *ll) {
    br__http_parser *p = of(ll);
    p->complete = true;
    p->keep_alive = llhttp_should_keep_alive(ll) != 0;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void br__http_parser_init(br__http_parser *p, size_t max_head, size_t max_url,
                          size_t max_body) {
    memset(p, 0, sizeof *p);
    llhttp_init(&p->ll, HTTP_REQUEST, &settings);
    p->max_head = max_head;
    p->max_url = max_url;
    p->max_body = max_body;
    p->in_head = true;
}

void br__http_parser_destroy(br__http_parser *p) {
    br__free(p->arena);
    br__free(p->hdrs);
    br__free(p->body);
    p->arena = NULL;
    p->hdrs = NULL;
    p->body = NULL;
}

void br__http_parser_next(br__http_parser *p) {
    llhttp_resume(&p->ll);
    p->in_head = true;
    p->prev_cr = false;
    p->head_bytes = p->line_len = p->lines = 0;
    p->head_done = p->complete = false;
    p->chunked = false;
    p->cs = 0;
    p->chunk_left = 0;
    p->size_digits = 0;
}

/* Scans data[0..len) while in the head; returns the offset of the first fault (its
 * status and reason set in *status, *reason), or len. */
static size_t scan_head(br__http_parser *p, const char *data, size_t len, int *status,
                        const char **reason, size_t *head_end) {
    for (size_t i = 0; i < len && p->in_head; i++) {
        unsigned char c = (unsigned char)data[i];
        if (++p->head_bytes > p->max_head) {
            *status = 431;
            *reason = "Request Header Fields Too Large";
            return i;
        }
        if (p->prev_cr) {
            p->prev_cr = false;
            if (c != '\n') {
                *status = 400;
                *reason = "Bad Request: bare CR";
                return i;
            }
            if (p->line_len == 0 && p->lines > 0) {
                p->in_head = false; /* the empty line: the head ends here */
                *head_end = i + 1;
            } else if (p->line_len > 0)
                p->lines++;
            p->line_len = 0;
            continue;
        }
        if (c == '\r') {
            p->prev_cr = true;
            continue;
        }
        if (c == '\n') {
            *status = 400;
            *reason = "Bad Request: bare LF";
            return i;
        }
        if (p->line_len == 0 && p->lines > 0 && (c == ' ' || c == '\t')) {
            *status = 400;
            *reason = "Bad Request: obs-fold";
            return i;
        }
        p->line_len++;
    }
    return len;
}

/* The chunk scanner's states. */
enum {
    CS_SIZE_START, /* a chunk-size's first hex digit */
    CS_SIZE,       /* more digits, ';' (extensions) or CR */
    CS_EXT,        /* an extension, up to CR */
    CS_SIZE_LF,
    CS_DATA,
    CS_DATA_CR,
    CS_DATA_LF,
    CS_TRAILER_START, /* a trailer line's first byte, or CR: the end */
    CS_TRAILER,
    CS_TRAILER_LF,
    CS_END_LF,
    CS_DONE
};

/* Scans a chunked body's bytes data[0..len); false at a fault (p->status set). */
static bool scan_chunks(br__http_parser *p, const char *data, size_t len) {
    for (size_t i = 0; i < len && p->cs != CS_DONE; i++) {
        unsigned char c = (unsigned char)data[i];
        int h = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        switch (p->cs) {
        case CS_SIZE_START:
        case CS_SIZE:
            if (h >= 0) {
                if (++p->size_digits > 15) {
                    fail(p, 400, "Bad Request: chunk size too long");
                    return false;
                }
                p->chunk_left = p->chunk_left * 16 + (uint64_t)h;
                p->cs = CS_SIZE;
            } else if (p->cs == CS_SIZE && c == ';') {
                p->cs = CS_EXT;
            } else if (p->cs == CS_SIZE && c == '\r') {
                p->cs = CS_SIZE_LF;
            } else {
                fail(p, 400, "Bad Request: bad chunk size");
                return false;
            }
            break;
        case CS_EXT:
            if (c == '\r')
                p->cs = CS_SIZE_LF;
            else if (c == '\n') {
                fail(p, 400, "Bad Request: bare LF in a chunk extension");
                return false;
            }
            break;
        case CS_SIZE_LF:
            if (c != '\n') {
                fail(p, 400, "Bad Request: bad chunk size line");
                return false;
            }
            p->size_digits = 0;
            p->cs = p->chunk_left == 0 ? CS_TRAILER_START : CS_DATA;
            break;
        case CS_DATA: {
            size_t n = len - i;
            if (n > p->chunk_left)
                n = (size_t)p->chunk_left;
            p->chunk_left -= n;
            i += n - 1;
            if (p->chunk_left == 0)
                p->cs = CS_DATA_CR;
            break;
        }
        case CS_DATA_CR:
        case CS_TRAILER_LF:
        case CS_END_LF:
        case CS_DATA_LF:
            if (c != (p->cs == CS_DATA_CR ? '\r' : '\n')) {
                fail(p, 400, "Bad Request: no CRLF after a chunk");
                return false;
            }
            p->cs = p->cs == CS_DATA_CR      ? CS_DATA_LF
                    : p->cs == CS_DATA_LF    ? CS_SIZE_START
                    : p->cs == CS_TRAILER_LF ? CS_TRAILER_START
                                             : CS_DONE;
            break;
        case CS_TRAILER_START:
        case CS_TRAILER:
            if (c == '\r') {
                p->cs = p->cs == CS_TRAILER_START ? CS_END_LF : CS_TRAILER_LF;
            } else if (c == '\n' ||
                       (p->cs == CS_TRAILER_START && (c == ' ' || c == '\t'))) {
                fail(p, 400, "Bad Request: bad trailer");
                return false;
            } else {
                p->cs = CS_TRAILER;
            }
            break;
        default:
            break;
        }
    }
    return true;
}

const char *br__http_method(const br__http_parser *p) {
    return llhttp_method_name((llhttp_method_t)p->ll.method);
}

static int status_of(llhttp_errno_t e) {
    switch (e) {
    case HPE_INVALID_VERSION:
        return 505;
    default:
        return 400;
    }
}

int br__http_parse(br__http_parser *p, const char *data, size_t len, size_t *used) {
    *used = 0;
    if (p->status != 0)
        return BR__HTTP_ERROR;
    int scan_status = 0;
    const char *scan_reason = NULL;
    size_t n = len, body_from = 0;
    if (p->in_head) {
        body_from = len; /* no body bytes unless the head ends in this call */
        n = scan_head(p, data, len, &scan_status, &scan_reason, &body_from);
    }
    llhttp_errno_t e = llhttp_execute(&p->ll, data, n);
    if (e == HPE_OK) {
        *used = n;
        if (scan_status != 0) {
            fail(p, scan_status, scan_reason);
            return BR__HTTP_ERROR;
        }
    } else if ((e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) && p->complete) {
        *used = (size_t)(llhttp_get_error_pos(&p->ll) - data);
        if (e == HPE_PAUSED_UPGRADE) /* an Upgrade the server doesn't do: answered as a
                                        plain request, then closed */
            p->keep_alive = false;
    } else {
        goto failed;
    }
    if (p->chunked) {
        if (body_from < *used && !scan_chunks(p, data + body_from, *used - body_from))
            return BR__HTTP_ERROR;
        if (p->complete && p->cs != CS_DONE) {
            fail(p, 400, "Bad Request: chunked body ended early");
            return BR__HTTP_ERROR;
        }
    }
    return p->complete ? BR__HTTP_DONE : BR__HTTP_MORE;
failed:
    if (e != HPE_USER || p->status == 0) {
        const char *why = llhttp_get_error_reason(&p->ll);
        fail(p, status_of(e), why != NULL ? why : "Bad Request");
    }
    return BR__HTTP_ERROR;
}
