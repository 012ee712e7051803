/* A libFuzzer target over the server's request parser (src/http/parse.c, llhttp and
 * braid's checks), linked alone: no loop, no sockets. Built with clang
 * -fsanitize=fuzzer,address,undefined by tests/http/tests.cmake; CTest runs it for a
 * bounded time (http.fuzz_request) over the seed corpus in fuzz_corpus/.
 *
 * The input's first byte chooses how the rest is cut into reads (1 to 256 bytes at a
 * time, or all at once), so that pieces ending mid-token, mid-CRLF and mid-chunk are
 * tried. For every request the parser completes, what the server relies on is checked:
 * the bytes it says it used are within what it was given, the target and headers are
 * NUL-terminated within the arena, the caps hold; every error is one of the statuses
 * the server answers with.
 */
#include "http/parse.h"

#include <stdlib.h>
#include <string.h>

/* parse.c allocates through braid's allocator; this target links without libbraid */
void *br__malloc(size_t n) {
    return malloc(n);
}
void *br__realloc(void *p, size_t n) {
    return realloc(p, n);
}
void br__free(void *p) {
    free(p);
}

enum { MAX_HEAD = 2048, MAX_URL = 512, MAX_BODY = 4096 };

static void check_request(const br__http_parser *p) {
    if (p->url_len > MAX_URL || p->body_len > MAX_BODY || p->arena_len > p->arena_cap)
        abort();
    if (p->url + p->url_len >= p->arena_len || br__http_url(p)[p->url_len] != '\0')
        abort();
    for (size_t i = 0; i < p->nhdrs; i++) {
        const br__http_hdr *h = &p->hdrs[i];
        if (h->name + h->name_len >= p->arena_len || h->value + h->value_len >= p->arena_len)
            abort();
        if (br__http_hdr_name(p, i)[h->name_len] != '\0' ||
            br__http_hdr_value(p, i)[h->value_len] != '\0')
            abort();
        if (memchr(br__http_hdr_value(p, i), '\n', h->value_len) != NULL ||
            memchr(br__http_hdr_value(p, i), '\r', h->value_len) != NULL)
            abort(); /* a CR or LF inside a value would be a smuggled line */
    }
    if (br__http_method(p) == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size == 0)
        return 0;
    size_t step = data[0] == 0 ? (size_t)-1 : data[0];
    const char *in = (const char *)data + 1;
    size_t len = size - 1, fed = 0;
    br__http_parser p;
    br__http_parser_init(&p, MAX_HEAD, MAX_URL, MAX_BODY);
    /* the buffer the server keeps: unparsed bytes, then a read's worth more */
    char *buf = malloc(len + 1);
    size_t have = 0, done = 0;
    int requests = 0;
    for (;;) {
        if (have == 0) {
            if (fed == len)
                break;
            size_t n = len - fed < step ? len - fed : step;
            memcpy(buf, in + fed, n);
            fed += n;
            have = n;
            done = 0;
        }
        size_t used = 0;
        int r = br__http_parse(&p, buf + done, have, &used);
        if (used > have)
            abort();
        done += used;
        have -= used;
        if (r == BR__HTTP_ERROR) {
            int s = p.status;
            if (s != 400 && s != 413 && s != 414 && s != 417 && s != 431 && s != 500 &&
                s != 505)
                abort();
            if (p.reason == NULL)
                abort();
            break;
        }
        if (r == BR__HTTP_DONE) {
            check_request(&p);
            if (!p.keep_alive || ++requests > 10000)
                break;
            br__http_parser_next(&p);
        } else if (have != 0) {
            abort(); /* MORE must have used everything */
        }
    }
    free(buf);
    br__http_parser_destroy(&p);
    return 0;
}
