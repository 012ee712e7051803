/* HTML extraction (braid/http.h, "HTML extraction"): libxml2's HTML parser and XPath,
 * URLs with libcurl's URL API.
 *
 * Design notes
 *
 * The charset rule (docs/html.md says it for users). libxml2 2.9's HTML parser, given no
 * encoding, reads a page without a <meta> charset as ISO-8859-1, and a page whose bytes
 * are not valid UTF-8 switches to ISO-8859-1 halfway; given "UTF-8" it keeps UTF-8 and
 * replaces bad bytes with U+FFFD, but then ignores the page's <meta>. So:
 *   1. a charset parameter in Content-Type that libxml2 knows is used as declared (a
 *      UTF-8 page declared iso-8859-1 is read as Latin-1: that is what the server said);
 *      one it doesn't know counts as absent;
 *   2. else a page that starts with a byte-order mark, or whose first 1024 bytes say
 *      "charset", is parsed with no encoding so that libxml2 reads the BOM or the <meta>
 *      itself; if that found no charset it knows, the page is parsed again as UTF-8;
 *   3. else UTF-8, bad bytes replaced.
 * The prescan is only a gate (a word search); the <meta> is libxml2's to read.
 *
 * Quiet parses. libxml2 reports errors through a context's SAX handlers or, without
 * them, through per-thread generic handlers that print to stderr. Each parse has its own
 * context whose structured handler (sax->serror) swallows everything, and the options
 * NOERROR|NOWARNING clear the others: broken HTML prints nothing and disturbs no other
 * thread's handlers.
 *
 * <template>. libxml2 2.9 treats it as an ordinary element; its children are unlinked
 * and freed right after parsing, so no string value or record ever sees them.
 *
 * The XPath cache. Compiled expressions are kept per thread (a compiled expression is not
 * shared between threads): a small table keyed by the expression's text, replaced round
 * robin when full, freed by a pthread key's destructor when the thread exits. A
 * br_html_records call never suspends, so a coroutine never sees another's table in the
 * middle of a call.
 *
 * URLs. br_url_resolve sets the base, then the reference, on one CURLU (libcurl resolves
 * a relative reference against the URL already set, RFC 3986 section 5, and removes dot
 * segments). With CURLU_URLENCODE, bytes a URL can't hold (spaces, non-ASCII) are
 * percent-encoded while escapes already written ("a%2Fb") stay as they are. Two cases
 * libcurl 7.88 gets wrong are done here: an empty reference is the base without its
 * fragment, and "#x" keeps the base's path and query. Leading and trailing spaces and
 * control characters, and tabs and newlines inside, are dropped first, as browsers do.
 */
#include "http/http.h"

#include <curl/curl.h>
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include <ctype.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

struct br_html_doc {
    htmlDocPtr doc;
    char *base;    /* br__malloc'd, or NULL */
    char *charset; /* br__malloc'd, lower case */
};

/* --- URLs ------------------------------------------------------------------------------ */

static bool url_space(unsigned char c) { return c <= 0x20; }

/* ref without leading/trailing spaces and controls, and without tabs and newlines. */
static char *clean_ref(const char *ref) {
    size_t n = strlen(ref);
    while (n > 0 && url_space((unsigned char)ref[n - 1]))
        n--;
    while (n > 0 && url_space((unsigned char)*ref)) {
        ref++;
        n--;
    }
    char *s = br__malloc(n + 1);
    if (s == NULL)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        if (ref[i] != '\t' && ref[i] != '\n' && ref[i] != '\r')
            s[j++] = ref[i];
    s[j] = '\0';
    return s;
}

static int curl_code(CURLUcode rc) { return rc == CURLUE_OUT_OF_MEMORY ? BR_ENOMEM : BR_EINVAL; }

/* *out = u's URL in a br__malloc'd copy. */
static int url_get(CURLU *u, char **out) {
    char *s = NULL;
    CURLUcode rc = curl_url_get(u, CURLUPART_URL, &s, 0);
    if (rc != CURLUE_OK)
        return curl_code(rc);
    *out = br__strdup(s);
    curl_free(s);
    return *out ? 0 : BR_ENOMEM;
}

static const unsigned url_flags = CURLU_URLENCODE;

int br_url_resolve(const char *base, const char *ref, char **out) {
    if (out == NULL || ref == NULL)
        return BR_EINVAL;
    *out = NULL;
    int rc = br__http_global_init();
    if (rc != 0)
        return rc;
    char *r = clean_ref(ref);
    if (r == NULL)
        return BR_ENOMEM;
    CURLU *u = curl_url();
    if (u == NULL) {
        br__free(r);
        return BR_ENOMEM;
    }
    CURLUcode uc = CURLUE_OK;
    if (base != NULL && *base != '\0')
        uc = curl_url_set(u, CURLUPART_URL, base, url_flags);
    if (uc == CURLUE_OK) {
        if (base == NULL || *base == '\0')
            uc = curl_url_set(u, CURLUPART_URL, r, url_flags);
        else if (r[0] == '\0')
            uc = curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
        else if (r[0] == '#')
            uc = curl_url_set(u, CURLUPART_FRAGMENT, r[1] ? r + 1 : NULL, url_flags);
        else
            uc = curl_url_set(u, CURLUPART_URL, r, url_flags);
    }
    rc = uc == CURLUE_OK ? url_get(u, out) : curl_code(uc);
    curl_url_cleanup(u);
    br__free(r);
    return rc;
}

/* Sets part to its value with ASCII letters lower-cased. */
static CURLUcode lower_part(CURLU *u, CURLUPart part) {
    char *s = NULL;
    CURLUcode rc = curl_url_get(u, part, &s, 0);
    if (rc != CURLUE_OK)
        return rc == CURLUE_NO_HOST ? CURLUE_OK : rc;
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    rc = curl_url_set(u, part, s, 0);
    curl_free(s);
    return rc;
}

/* Percent-escapes' hex digits upper case (RFC 3986 6.2.2.1), in place. */
static void upper_escapes(char *s) {
    for (; *s; s++)
        if (s[0] == '%' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
            s[1] = (char)toupper((unsigned char)s[1]);
            s[2] = (char)toupper((unsigned char)s[2]);
            s += 2;
        }
}

int br_url_canonical(const char *url, char **out) {
    if (out == NULL || url == NULL)
        return BR_EINVAL;
    *out = NULL;
    int rc = br__http_global_init();
    if (rc != 0)
        return rc;
    char *r = clean_ref(url);
    if (r == NULL)
        return BR_ENOMEM;
    CURLU *u = curl_url();
    if (u == NULL) {
        br__free(r);
        return BR_ENOMEM;
    }
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, r, url_flags);
    if (uc == CURLUE_OK)
        uc = curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
    if (uc == CURLUE_OK)
        uc = lower_part(u, CURLUPART_HOST);
    char *s = NULL;
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_URL, &s, CURLU_NO_DEFAULT_PORT);
    if (uc == CURLUE_OK) {
        upper_escapes(s);
        *out = br__strdup(s);
        rc = *out ? 0 : BR_ENOMEM;
    } else {
        rc = curl_code(uc);
    }
    curl_free(s);
    curl_url_cleanup(u);
    br__free(r);
    return rc;
}

/* --- parsing ----------------------------------------------------------------------------- */

static void quiet(void *ctx, xmlErrorPtr err) {
    (void)ctx;
    (void)err;
}

static const int parse_options = HTML_PARSE_RECOVER | HTML_PARSE_NOERROR |
                                 HTML_PARSE_NOWARNING | HTML_PARSE_NONET |
                                 HTML_PARSE_COMPACT;

/* The charset parameter of a Content-Type, lower case, into buf (cap bytes); false if
 * there is none. */
static bool ctype_charset(const char *ct, char *buf, size_t cap) {
    if (ct == NULL)
        return false;
    const char *p = strchr(ct, ';');
    while (p != NULL) {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncasecmp(p, "charset", 7) == 0) {
            const char *v = p + 7;
            while (*v == ' ' || *v == '\t')
                v++;
            if (*v == '=') {
                v++;
                while (*v == ' ' || *v == '\t')
                    v++;
                bool quoted = *v == '"';
                v += quoted;
                size_t n = 0;
                while (v[n] && v[n] != ';' && (quoted ? v[n] != '"' : v[n] != ' ' && v[n] != '\t'))
                    n++;
                if (n == 0 || n >= cap)
                    return false;
                for (size_t i = 0; i < n; i++)
                    buf[i] = (char)tolower((unsigned char)v[i]);
                buf[n] = '\0';
                return true;
            }
        }
        p = strchr(p, ';');
    }
    return false;
}

static bool known_charset(const char *name) {
    xmlCharEncodingHandlerPtr h = xmlFindCharEncodingHandler(name);
    if (h == NULL)
        return false;
    xmlCharEncCloseFunc(h);
    return true;
}

/* Whether the page may name its own charset: a byte-order mark, or "charset" in its
 * first 1024 bytes. */
static bool may_declare(const char *body, size_t len) {
    const unsigned char *b = (const unsigned char *)body;
    if (len >= 2 && ((b[0] == 0xFE && b[1] == 0xFF) || (b[0] == 0xFF && b[1] == 0xFE)))
        return true;
    if (len >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF)
        return true;
    size_t n = len < 1024 ? len : 1024;
    for (size_t i = 0; i + 7 <= n; i++)
        if ((b[i] | 0x20) == 'c' && strncasecmp(body + i, "charset", 7) == 0)
            return true;
    return false;
}

/* The length of the valid UTF-8 sequence at b[0..n), or 0 if it isn't one (overlong
 * forms, surrogates and code points past U+10FFFF are not). */
static size_t utf8_seq(const unsigned char *b, size_t n) {
    if (b[0] < 0x80)
        return 1;
    size_t len = b[0] >= 0xF0 ? 4 : b[0] >= 0xE0 ? 3 : b[0] >= 0xC2 ? 2 : 0;
    if (len == 0 || b[0] > 0xF4 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((b[i] & 0xC0) != 0x80)
            return 0;
    if ((b[0] == 0xE0 && b[1] < 0xA0) || (b[0] == 0xED && b[1] > 0x9F) ||
        (b[0] == 0xF0 && b[1] < 0x90) || (b[0] == 0xF4 && b[1] > 0x8F))
        return 0;
    return len;
}

/* body as valid UTF-8: NULL (*len unchanged) when it is already, else a br__malloc'd
 * copy with every byte that isn't part of a valid sequence replaced by U+FFFD.
 * *nomem is set when the copy can't be made. libxml2 2.9 given "UTF-8" passes such
 * bytes through as they are. */
static char *utf8_fixed(const char *body, size_t *len, bool *nomem) {
    const unsigned char *b = (const unsigned char *)body;
    size_t n = *len, bad = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(b + i, n - i);
        bad += k == 0;
        i += k ? k : 1;
    }
    if (bad == 0)
        return NULL;
    char *out = br__malloc(n + 2 * bad + 1);
    if (out == NULL) {
        *nomem = true;
        return NULL;
    }
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(b + i, n - i);
        if (k == 0) {
            memcpy(out + j, "\xEF\xBF\xBD", 3);
            j += 3;
            i++;
        } else {
            memcpy(out + j, b + i, k);
            j += k;
            i += k;
        }
    }
    out[j] = '\0';
    *len = j;
    return out;
}

static bool is_utf8_name(const char *name) {
    return name != NULL && (strcasecmp(name, "utf-8") == 0 || strcasecmp(name, "utf8") == 0);
}

static htmlDocPtr parse_as(const char *body, size_t len, const char *url, const char *enc) {
    htmlParserCtxtPtr ctxt = htmlNewParserCtxt();
    if (ctxt == NULL)
        return NULL;
    ctxt->sax->serror = quiet;
    ctxt->sax->error = NULL;
    ctxt->sax->warning = NULL;
    htmlDocPtr doc = htmlCtxtReadMemory(ctxt, len ? body : " ", len ? (int)len : 1, url, enc,
                                        parse_options);
    htmlFreeParserCtxt(ctxt);
    return doc;
}

/* The next node after n in document order, descending into n's children only if
 * `down`; NULL after the last one under root. Iterative: a page may nest deeply. */
static xmlNodePtr walk_next(xmlNodePtr root, xmlNodePtr n, bool down) {
    if (down && n->children != NULL)
        return n->children;
    while (n != root && n->next == NULL)
        n = n->parent;
    return n == root ? NULL : n->next;
}

static bool is_element(xmlNodePtr n, const char *name) {
    return n->type == XML_ELEMENT_NODE && xmlStrcasecmp(n->name, BAD_CAST name) == 0;
}

/* Frees every <template>'s children. */
static void drop_templates(xmlNodePtr root) {
    for (xmlNodePtr n = root; n != NULL; n = walk_next(root, n, true)) {
        if (!is_element(n, "template"))
            continue;
        xmlNodePtr c = n->children;
        while (c != NULL) {
            xmlNodePtr next = c->next;
            xmlUnlinkNode(c);
            xmlFreeNode(c);
            c = next;
        }
    }
}

/* The first <base href> of the document, or NULL (libxml2's string). */
static xmlChar *base_href(xmlNodePtr root) {
    for (xmlNodePtr n = root; n != NULL; n = walk_next(root, n, true))
        if (is_element(n, "base")) {
            xmlChar *h = xmlGetProp(n, BAD_CAST "href");
            if (h != NULL)
                return h;
        }
    return NULL;
}

int br_html_parse(const char *body, size_t len, const char *content_type, const char *url,
                  br_html_doc **out) {
    if (out == NULL)
        return BR_EINVAL;
    *out = NULL;
    if (body == NULL || len > (size_t)INT32_MAX)
        return BR_EINVAL;
    int rc = br__http_global_init();
    if (rc != 0)
        return rc;
    br_html_doc *d = br__calloc(1, sizeof *d);
    if (d == NULL)
        return BR_ENOMEM;

    char cs[64];
    const char *enc = "UTF-8";
    if (ctype_charset(content_type, cs, sizeof cs) && known_charset(cs))
        enc = cs;
    else if (may_declare(body, len))
        enc = NULL;
    bool nomem = false;
    size_t fixed_len = len;
    /* With no encoding yet, the copy is made only to learn whether body is valid UTF-8
     * and in case the page turns out to be UTF-8. */
    char *fixed = NULL;
    if (enc == NULL || is_utf8_name(enc))
        fixed = utf8_fixed(body, &fixed_len, &nomem);
    bool valid = fixed == NULL && !nomem;
    if (!nomem)
        d->doc = parse_as(enc == NULL || fixed == NULL ? body : fixed,
                          enc == NULL ? len : fixed_len, url, enc);
    if (d->doc != NULL && enc == NULL) {
        const char *got = (const char *)d->doc->encoding;
        if (got == NULL || !known_charset(got) || (is_utf8_name(got) && !valid)) {
            /* No charset it knows (libxml2 then reads Latin-1), or UTF-8 with bad bytes
             * (which libxml2 keeps): again as UTF-8, fixed. */
            xmlFreeDoc(d->doc);
            enc = "UTF-8";
            d->doc = parse_as(fixed ? fixed : body, fixed_len, url, enc);
        }
    }
    br__free(fixed);
    if (d->doc == NULL) {
        br_html_free(d);
        return BR_ENOMEM;
    }
    const char *read_as = d->doc->encoding ? (const char *)d->doc->encoding
                          : enc             ? enc
                                            : "UTF-8";
    d->charset = br__strdup(read_as);
    if (d->charset == NULL) {
        br_html_free(d);
        return BR_ENOMEM;
    }
    for (char *p = d->charset; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    drop_templates(xmlDocGetRootElement(d->doc));

    xmlChar *href = base_href(xmlDocGetRootElement(d->doc));
    if (href != NULL) {
        rc = br_url_resolve(url, (const char *)href, &d->base);
        xmlFree(href);
        if (rc == BR_ENOMEM) {
            br_html_free(d);
            return rc;
        }
    }
    if (d->base == NULL && url != NULL) {
        d->base = br__strdup(url);
        if (d->base == NULL) {
            br_html_free(d);
            return BR_ENOMEM;
        }
    }
    *out = d;
    return 0;
}

void br_html_free(br_html_doc *d) {
    if (d == NULL)
        return;
    if (d->doc != NULL)
        xmlFreeDoc(d->doc);
    br__free(d->base);
    br__free(d->charset);
    br__free(d);
}

const char *br_html_base(const br_html_doc *d) { return d ? d->base : NULL; }

const char *br_html_charset(const br_html_doc *d) { return d ? d->charset : NULL; }

/* --- the per-thread XPath cache ------------------------------------------------------------ */

#define XPATH_CACHE 64 /* a call uses at most this many expressions (its fields + 1) */

struct xpath_cache {
    char *expr[XPATH_CACHE];
    xmlXPathCompExprPtr comp[XPATH_CACHE];
    uint64_t pinned; /* slots the running call uses: never replaced during it */
    unsigned next;   /* where the round robin looks for a slot to replace */
};

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static int cache_key_rc;

static void cache_free(void *p) {
    struct xpath_cache *c = p;
    for (unsigned i = 0; i < XPATH_CACHE; i++) {
        br__free(c->expr[i]);
        if (c->comp[i] != NULL)
            xmlXPathFreeCompExpr(c->comp[i]);
    }
    br__free(c);
}

static void cache_key_make(void) { cache_key_rc = pthread_key_create(&cache_key, cache_free); }


/* This thread's cache, made at its first use. */
static struct xpath_cache *cache_get(void) {
    pthread_once(&cache_once, cache_key_make);
    if (cache_key_rc != 0)
        return NULL;
    struct xpath_cache *c = pthread_getspecific(cache_key);
    if (c == NULL) {
        c = br__calloc(1, sizeof *c);
        if (c == NULL)
            return NULL;
        if (pthread_setspecific(cache_key, c) != 0) {
            br__free(c);
            return NULL;
        }
    }
    return c;
}

/* The compiled form of expr: from the cache c, else compiled and cached; its slot is
 * pinned until the caller clears c->pinned. BR_EINVAL if it doesn't compile. */
static int xpath_get(struct xpath_cache *c, const char *expr, xmlXPathCompExprPtr *out) {
    for (unsigned i = 0; i < XPATH_CACHE; i++)
        if (c->expr[i] != NULL && strcmp(c->expr[i], expr) == 0) {
            c->pinned |= UINT64_C(1) << i;
            *out = c->comp[i];
            return 0;
        }
    /* xmlXPathCompile reports syntax errors through the thread's generic handler; a
     * context-based compile reports them through the context's (silent) one instead. */
    xmlXPathContextPtr ctx = xmlXPathNewContext(NULL);
    if (ctx == NULL)
        return BR_ENOMEM;
    ctx->error = quiet;
    xmlXPathCompExprPtr comp = xmlXPathCtxtCompile(ctx, BAD_CAST expr);
    xmlXPathFreeContext(ctx);
    if (comp == NULL)
        return BR_EINVAL;
    char *key = br__strdup(expr);
    if (key == NULL) {
        xmlXPathFreeCompExpr(comp);
        return BR_ENOMEM;
    }
    unsigned slot = XPATH_CACHE;
    for (unsigned i = 0; i < XPATH_CACHE && slot == XPATH_CACHE; i++)
        if (c->expr[i] == NULL)
            slot = i;
    for (unsigned k = 0; k < XPATH_CACHE && slot == XPATH_CACHE; k++) {
        unsigned i = (c->next + k) % XPATH_CACHE;
        if (!(c->pinned & (UINT64_C(1) << i)))
            slot = i;
    }
    if (slot == XPATH_CACHE) { /* can't happen: a call pins at most XPATH_CACHE slots */
        xmlXPathFreeCompExpr(comp);
        br__free(key);
        return BR_EINVAL;
    }
    c->next = (slot + 1) % XPATH_CACHE;
    if (c->expr[slot] != NULL) {
        br__free(c->expr[slot]);
        xmlXPathFreeCompExpr(c->comp[slot]);
    }
    c->expr[slot] = key;
    c->comp[slot] = comp;
    c->pinned |= UINT64_C(1) << slot;
    *out = comp;
    return 0;
}

/* --- records ------------------------------------------------------------------------------- */

static char *trim_in_place(char *s) {
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    s[n] = '\0';
    while (isspace((unsigned char)*s))
        s++;
    return s;
}

/* One field's value for the record node: its string value, trimmed, resolved. *owned is
 * what to free (libxml2's or braid's, by *is_xml). */
static int field_value(br_html_doc *d, xmlXPathContextPtr ctx, xmlXPathCompExprPtr comp,
                       const br_html_field *f, const char **value, void **owned,
                       bool *is_xml) {
    *value = "";
    *owned = NULL;
    *is_xml = false;
    xmlXPathObjectPtr obj = xmlXPathCompiledEval(comp, ctx);
    if (obj == NULL)
        return 0; /* an evaluation error (a type mismatch): the field matches nothing */
    /* An empty value that was there (href="") is still a link: to the page itself. */
    bool matched = obj->type != XPATH_NODESET ||
                   (obj->nodesetval != NULL && obj->nodesetval->nodeNr > 0);
    xmlChar *s = xmlXPathCastToString(obj);
    xmlXPathFreeObject(obj);
    if (s == NULL)
        return BR_ENOMEM;
    char *v = (char *)s;
    if (f->trim || f->url)
        v = trim_in_place(v);
    if (f->url && (*v != '\0' || matched)) {
        char *abs = NULL;
        int rc = br_url_resolve(d->base, v, &abs);
        xmlFree(s);
        if (rc == BR_ENOMEM)
            return rc;
        if (abs != NULL) {
            *value = abs;
            *owned = abs;
        }
        return 0;
    }
    *value = v;
    *owned = s;
    *is_xml = true;
    return 0;
}

int br_html_records(br_html_doc *d, const char *record_xpath, const br_html_field *fields,
                    size_t nfields, br_html_record_fn fn, void *arg) {
    if (d == NULL || record_xpath == NULL || fn == NULL || (nfields > 0 && fields == NULL))
        return BR_EINVAL;
    if (nfields >= XPATH_CACHE)
        return BR_EINVAL;
    for (size_t i = 0; i < nfields; i++)
        if (fields[i].xpath == NULL)
            return BR_EINVAL;
    struct xpath_cache *cache = cache_get();
    if (cache == NULL)
        return BR_ENOMEM;
    uint64_t outer = cache->pinned; /* a record fn may call br_html_records itself */
    xmlXPathCompExprPtr rec;
    int rc = xpath_get(cache, record_xpath, &rec);
    if (rc != 0) {
        cache->pinned = outer;
        return rc;
    }
    size_t arrays = nfields ? nfields : 1;
    xmlXPathCompExprPtr *comps = br__calloc(arrays, sizeof *comps);
    const char **values = br__calloc(arrays, sizeof *values);
    void **owned = br__calloc(arrays, sizeof *owned);
    bool *is_xml = br__calloc(arrays, sizeof *is_xml);
    xmlXPathContextPtr ctx = NULL;
    xmlXPathObjectPtr set = NULL;
    if (comps == NULL || values == NULL || owned == NULL || is_xml == NULL) {
        rc = BR_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < nfields && rc == 0; i++)
        rc = xpath_get(cache, fields[i].xpath, &comps[i]);
    if (rc != 0)
        goto out;
    ctx = xmlXPathNewContext(d->doc);
    if (ctx == NULL) {
        rc = BR_ENOMEM;
        goto out;
    }
    ctx->error = quiet;
    ctx->node = (xmlNodePtr)d->doc;
    set = xmlXPathCompiledEval(rec, ctx);
    if (set == NULL || set->type != XPATH_NODESET) {
        rc = set == NULL ? 0 : BR_EINVAL; /* a record XPath must select nodes */
        goto out;
    }
    int count = 0;
    int n = set->nodesetval ? set->nodesetval->nodeNr : 0;
    for (int k = 0; k < n && rc == 0; k++) {
        ctx->node = set->nodesetval->nodeTab[k];
        ctx->contextSize = -1;
        ctx->proximityPosition = -1;
        for (size_t i = 0; i < nfields && rc == 0; i++)
            rc = field_value(d, ctx, comps[i], &fields[i], &values[i], &owned[i], &is_xml[i]);
        if (rc == 0) {
            int frc = fn(values, arg);
            count++;
            if (frc != 0)
                rc = frc;
        }
        for (size_t i = 0; i < nfields; i++) {
            if (owned[i] != NULL) {
                if (is_xml[i])
                    xmlFree(owned[i]);
                else
                    br__free(owned[i]);
            }
            owned[i] = NULL;
        }
    }
    if (rc == 0)
        rc = count;
out:
    if (set != NULL)
        xmlXPathFreeObject(set);
    if (ctx != NULL)
        xmlXPathFreeContext(ctx);
    br__free(comps);
    br__free(values);
    br__free(owned);
    br__free(is_xml);
    cache->pinned = outer;
    return rc;
}
