/* The server's routes (internal): patterns with path parameters, matched in the order
 * added. route.c's opening note has the rules. */
#ifndef BRAID_HTTP_ROUTE_H
#define BRAID_HTTP_ROUTE_H

#include <braid/http.h>

#define BR__HTTP_MAX_PARAMS 16

typedef struct br__http_seg {
    char *text; /* a literal, or a parameter's name */
    size_t len;
    bool param;
} br__http_seg;

typedef struct br__http_route {
    char *method; /* NULL: any */
    br__http_seg *segs;
    size_t nsegs;
    bool rest; /* the last segment is "{name*}": the rest of the path */
    br_http_handler fn;
    void *arg;
} br__http_route;

typedef struct br__http_routes {
    br__http_route *v;
    size_t n, cap;
} br__http_routes;

/* 0, BR_EINVAL (a malformed pattern, NULL fn), BR_ENOMEM. */
int br__http_routes_add(br__http_routes *rs, const char *method, const char *pattern,
                        br_http_handler fn, void *arg);
void br__http_routes_free(br__http_routes *rs);

typedef struct br__http_match {
    const br__http_route *route;
    size_t nparams;
    const char *names[BR__HTTP_MAX_PARAMS];
    const char *values[BR__HTTP_MAX_PARAMS];
} br__http_match;

/* Matches the decoded path (starting with '/') for the method. scratch: a copy of the
 * path that the parameters' values end up in (NUL-terminated in place); it must live
 * as long as the match. 0 with m filled, or 404 (no route's path matches) or 405 (a
 * route's path matches but not with this method). A HEAD request matches a GET route
 * when no route takes HEAD itself. */
int br__http_routes_match(const br__http_routes *rs, const char *method, char *scratch,
                          br__http_match *m);

#endif
