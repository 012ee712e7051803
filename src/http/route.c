/* The server's routes: Flask's @app.route("/is_prime/<numbers>") as
 * br_http_route(s, "GET", "/is_prime/{numbers}", fn, arg).
 *
 * Design note: the rules a change must keep.
 *
 *  - A pattern is '/' and segments separated by '/'. A segment is a literal (no '{'
 *    or '}' in it) or a whole parameter "{name}" (name: letters, digits, '_'), which
 *    matches one non-empty segment; the last segment may be "{name*}", which matches
 *    the rest of the path, slashes and all (possibly empty). Anything else is
 *    BR_EINVAL when the route is added, never a surprise when a request comes.
 *
 *  - Matching is on the decoded path (percent-escapes undone, as Flask's PATH_INFO),
 *    segment by segment, exactly: "/a/" is not "/a". Routes are tried in the order
 *    added; the first whose path and method match wins. A path that some route
 *    matches with another method is 405, none is 404.
 *
 *  - Parameter values are cut out of a copy of the path the caller owns (NULs
 *    written in place only once a route has matched), so a match allocates nothing.
 */
#include "http/route.h"

#include "core/lib.h"

#include <string.h>

static void route_free(br__http_route *r) {
    for (size_t i = 0; i < r->nsegs; i++)
        br__free(r->segs[i].text);
    br__free(r->segs);
    br__free(r->method);
}

static bool name_ok(const char *s, size_t n) {
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* Parses pattern into r's segments. 0, BR_EINVAL, BR_ENOMEM. */
static int parse_pattern(br__http_route *r, const char *pattern) {
    if (pattern[0] != '/')
        return BR_EINVAL;
    size_t nsegs = 1, nparams = 0;
    for (const char *c = pattern + 1; *c; c++)
        nsegs += *c == '/';
    r->segs = br__calloc(nsegs, sizeof *r->segs);
    if (r->segs == NULL)
        return BR_ENOMEM;
    const char *s = pattern + 1;
    for (size_t i = 0; i < nsegs; i++) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        br__http_seg *g = &r->segs[r->nsegs];
        if (n > 0 && s[0] == '{') {
            bool rest = n >= 3 && s[n - 2] == '*' && s[n - 1] == '}';
            size_t name_len = n - 2 - (rest ? 1 : 0);
            if (s[n - 1] != '}' || !name_ok(s + 1, name_len) || (rest && i != nsegs - 1) ||
                ++nparams > BR__HTTP_MAX_PARAMS)
                return BR_EINVAL;
            g->param = true;
            r->rest = rest;
            s++;
            n = name_len;
        } else if (memchr(s, '{', n) || memchr(s, '}', n)) {
            return BR_EINVAL;
        }
        g->text = br__malloc(n + 1);
        if (g->text == NULL)
            return BR_ENOMEM;
        memcpy(g->text, s, n);
        g->text[n] = '\0';
        g->len = n;
        r->nsegs++;
        s = e ? e + 1 : s + n;
    }
    return 0;
}

int br__http_routes_add(br__http_routes *rs, const char *method, const char *pattern,
                        br_http_handler fn, void *arg) {
    if (pattern == NULL || fn == NULL || (method != NULL && method[0] == '\0'))
        return BR_EINVAL;
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 8;
        br__http_route *v = br__realloc(rs->v, cap * sizeof *v);
        if (v == NULL)
            return BR_ENOMEM;
        rs->v = v;
        rs->cap = cap;
    }
    br__http_route r = {.fn = fn, .arg = arg};
    int rc = parse_pattern(&r, pattern);
    if (rc == 0 && method != NULL && (r.method = br__strdup(method)) == NULL)
        rc = BR_ENOMEM;
    if (rc != 0) {
        route_free(&r);
        return rc;
    }
    rs->v[rs->n++] = r;
    return 0;
}

void br__http_routes_free(br__http_routes *rs) {
    for (size_t i = 0; i < rs->n; i++)
        route_free(&rs->v[i]);
    br__free(rs->v);
    rs->v = NULL;
    rs->n = rs->cap = 0;
}

/* Whether the path matches r's segments; the parameters' (offset, length) in path. */
static bool path_matches(const br__http_route *r, const char *path, size_t *off,
                         size_t *len) {
    const char *s = path + 1;
    size_t np = 0;
    for (size_t i = 0; i < r->nsegs; i++) {
        const br__http_seg *g = &r->segs[i];
        if (g->param && r->rest && i == r->nsegs - 1) {
            off[np] = (size_t)(s - path);
            len[np++] = strlen(s);
            return true;
        }
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (g->param) {
            if (n == 0)
                return false;
            off[np] = (size_t)(s - path);
            len[np++] = n;
        } else if (n != g->len || memcmp(s, g->text, n) != 0) {
            return false;
        }
        if (i == r->nsegs - 1)
            return e == NULL;
        if (e == NULL)
            return false;
        s = e + 1;
    }
    return false;
}

static bool method_is(const br__http_route *r, const char *method) {
    return r->method == NULL || strcmp(r->method, method) == 0;
}

int br__http_routes_match(const br__http_routes *rs, const char *method, char *scratch,
                          br__http_match *m) {
    size_t off[BR__HTTP_MAX_PARAMS], len[BR__HTTP_MAX_PARAMS];
    const br__http_route *found = NULL, *head_as_get = NULL;
    bool path_seen = false;
    bool head = strcmp(method, "HEAD") == 0;
    for (size_t i = 0; i < rs->n && found == NULL; i++) {
        const br__http_route *r = &rs->v[i];
        if (!path_matches(r, scratch, off, len))
            continue;
        path_seen = true;
        if (method_is(r, method))
            found = r;
        else if (head && head_as_get == NULL && strcmp(r->method, "GET") == 0)
            head_as_get = r;
    }
    if (found == NULL)
        found = head_as_get;
    if (found == NULL)
        return path_seen ? 405 : 404;
    /* once more, for the winner's parameters (the loop's last try may have been
     * another route's) */
    path_matches(found, scratch, off, len);
    m->route = found;
    m->nparams = 0;
    for (size_t i = 0; i < found->nsegs; i++)
        if (found->segs[i].param)
            m->names[m->nparams++] = found->segs[i].text;
    for (size_t i = 0; i < m->nparams; i++) {
        m->values[i] = scratch + off[i];
        scratch[off[i] + len[i]] = '\0';
    }
    return 0;
}
