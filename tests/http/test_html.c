/* HTML extraction (braid/http.h): the crawl fixture's shape, charsets, entities,
 * <template>, <base href>, URL resolution and canonical form, bad XPath, broken input,
 * and two threads extracting at once (each with its own XPath cache).
 *
 * The fixture site itself (50 generated pages and expected.tsv) is checked when
 * BRAID_FIXTURE_SITE names its directory; without it that test is skipped and the
 * hand-built page of the same shape below stands in. */
#include "harness.h"

#include <braid/http.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TITLE_XPATH                                                                   \
    "//a[contains(concat(\" \", normalize-space(@class), \" \"), \" post-item-title \")]"

static const br_html_field title_fields[] = {
    {.name = "href", .xpath = "@href"},
    {.name = "title", .xpath = "."},
};

/* --- collecting records ---------------------------------------------------------------- */

typedef struct rows {
    char **v; /* nfields per row */
    size_t nfields, n, cap;
} rows;

static int collect(const char *const *values, void *arg) {
    rows *r = arg;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 32;
        r->v = realloc(r->v, r->cap * r->nfields * sizeof *r->v);
        BR_CHECK(r->v != NULL);
    }
    for (size_t i = 0; i < r->nfields; i++)
        r->v[r->n * r->nfields + i] = strdup(values[i]);
    r->n++;
    return 0;
}

static const char *cell(const rows *r, size_t row, size_t field) {
    return r->v[row * r->nfields + field];
}

static void rows_free(rows *r) {
    for (size_t i = 0; i < r->n * r->nfields; i++)
        free(r->v[i]);
    free(r->v);
    memset(r, 0, sizeof *r);
}

/* Parses body and extracts record_xpath's records with fields into *r. */
static int extract(const char *body, const char *ctype, const char *url, const char *rec,
                   const br_html_field *fields, size_t nfields, rows *r) {
    br_html_doc *d;
    BR_CHECK_OK(br_html_parse(body, strlen(body), ctype, url, &d));
    memset(r, 0, sizeof *r);
    r->nfields = nfields;
    int n = br_html_records(d, rec, fields, nfields, collect, r);
    br_html_free(d);
    return n;
}

/* The string value of the first node matching xpath in body. */
static char *value_of(const char *body, const char *ctype, const char *xpath) {
    br_html_field f = {.name = "v", .xpath = "."};
    rows r;
    int n = extract(body, ctype, "http://example.com/", xpath, &f, 1, &r);
    BR_CHECK(n >= 1);
    char *v = strdup(cell(&r, 0, 0));
    rows_free(&r);
    return v;
}

/* --- a page of the fixture's shape ----------------------------------------------------- */

typedef struct page {
    char *html;
    char *href[20], *title[20];
} page;

static void append(char **buf, size_t *len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s;
    BR_CHECK(vasprintf(&s, fmt, ap) >= 0);
    va_end(ap);
    size_t n = strlen(s);
    *buf = realloc(*buf, *len + n + 1);
    memcpy(*buf + *len, s, n + 1);
    *len += n;
    free(s);
}

/* 20 posts in the fixture's markup with noise around them: other anchors with classes
 * that contain "post-item" but not "post-item-title", scripts with '<', comments, SVG. */
static void page_make(page *p) {
    static const char *raw[] = {"[Rust] 所有权 &amp; 借用", "C &lt;threads&gt; 入门",
                                "Go 调度器", "plain ascii title"};
    static const char *dec[] = {"[Rust] 所有权 & 借用", "C <threads> 入门", "Go 调度器",
                                "plain ascii title"};
    char *h = NULL;
    size_t len = 0;
    append(&h, &len,
           "<!DOCTYPE html>\n<html lang=\"zh-cn\">\n<head>\n    <meta charset=\"utf-8\" />\n"
           "    <title>博客园 - 第 1 页</title>\n"
           "    <script>if (a < b && c > d) { x = '<a class=\"post-item-title\">'; }</script>\n"
           "    <style>.post-item-title{color:red}</style>\n</head>\n<body>\n"
           "<div id=\"nav\"><a class=\"nav-item\" href=\"/\">首页</a></div>\n"
           "<!-- <a class=\"post-item-title\" href=\"/commented\">not me</a> -->\n");
    for (int i = 0; i < 20; i++) {
        asprintf(&p->href[i], "https://www.cnblogs.com/user%d/p/%d.html", i % 7, 17000000 + i);
        p->title[i] = strdup(dec[i % 4]);
        append(&h, &len,
               "<article class=\"post-item\">\n<section class=\"post-item-body\">\n"
               "<div class=\"post-item-text\">\n"
               "    <a class=\"post-item-title\" href=\"%s\" target=\"_blank\">%s</a>\n"
               "    <p class=\"post-item-summary\">摘要 %d &hellip;</p>\n</div>\n"
               "<footer class=\"post-item-foot\">"
               "<a href=\"https://www.cnblogs.com/user%d/\" class=\"post-item-author\">"
               "<span>作者</span></a>"
               "<a class=\"post-meta-item btn\" href=\"#\"><svg width=\"16\"><use "
               "xlink:href=\"#icon_digg\"></use></svg><span>%d</span></a></footer>\n"
               "</section>\n</article>\n",
               p->href[i], raw[i % 4], i, i % 7, i);
    }
    append(&h, &len,
           "<div class=\"pager\"><a href=\"/sitehome/p/2\">2</a></div>\n"
           "<a class=\"post-item-titles\" href=\"/near-miss\">near miss</a>\n"
           "</body>\n</html>\n");
    p->html = h;
}

static void page_free(page *p) {
    free(p->html);
    for (int i = 0; i < 20; i++) {
        free(p->href[i]);
        free(p->title[i]);
    }
}

static void fixture_shape_page(void **state) {
    (void)state;
    page p;
    page_make(&p);
    rows r;
    int n = extract(p.html, "text/html; charset=utf-8", "https://www.cnblogs.com/", TITLE_XPATH,
                    title_fields, 2, &r);
    BR_CHECK_EQ(n, 20);
    BR_CHECK_EQ(r.n, 20);
    for (int i = 0; i < 20; i++) {
        assert_string_equal(cell(&r, (size_t)i, 0), p.href[i]);
        assert_string_equal(cell(&r, (size_t)i, 1), p.title[i]);
    }
    rows_free(&r);
    /* The same without a Content-Type: the page's <meta charset> is read. */
    n = extract(p.html, NULL, "https://www.cnblogs.com/", TITLE_XPATH, title_fields, 2, &r);
    BR_CHECK_EQ(n, 20);
    assert_string_equal(cell(&r, 1, 1), "C <threads> 入门");
    rows_free(&r);
    page_free(&p);
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    BR_CHECK(b != NULL && fread(b, 1, (size_t)n, f) == (size_t)n);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Every page of the generated fixture gives exactly its 20 lines of expected.tsv. */
static void fixture_site_pages(void **state) {
    (void)state;
    const char *dir = getenv("BRAID_FIXTURE_SITE");
    if (dir == NULL || *dir == '\0')
        skip();
    char path[4096];
    snprintf(path, sizeof path, "%s/expected.tsv", dir);
    size_t tsv_len;
    char *tsv = read_file(path, &tsv_len);
    BR_CHECK(tsv != NULL);
    char *line = tsv;
    for (int pg = 1; pg <= 50; pg++) {
        snprintf(path, sizeof path, "%s/page-%02d.html", dir, pg);
        size_t len;
        char *html = read_file(path, &len);
        BR_CHECK(html != NULL);
        br_html_doc *d;
        BR_CHECK_OK(br_html_parse(html, len, "text/html; charset=utf-8", path, &d));
        rows r = {.nfields = 2};
        BR_CHECK_EQ(br_html_records(d, TITLE_XPATH, title_fields, 2, collect, &r), 20);
        for (size_t i = 0; i < 20; i++) {
            char *nl = strchr(line, '\n');
            BR_CHECK(nl != NULL);
            *nl = '\0';
            char *tab = strchr(line, '\t');
            BR_CHECK(tab != NULL);
            *tab = '\0';
            assert_string_equal(cell(&r, i, 0), line);
            assert_string_equal(cell(&r, i, 1), tab + 1);
            line = nl + 1;
        }
        rows_free(&r);
        br_html_free(d);
        free(html);
    }
    BR_CHECK_EQ(*line, '\0'); /* 1000 lines, no more */
    free(tsv);
}

/* --- values ---------------------------------------------------------------------------- */

static void entities_decoded(void **state) {
    (void)state;
    char *v = value_of("<p id=x>a &amp; b &lt;c&gt; &quot;d&quot; &#20013;&#x6587; &eacute;</p>",
                       NULL, "//p");
    assert_string_equal(v, "a & b <c> \"d\" 中文 é");
    free(v);
    /* In attributes too. */
    br_html_field f = {.name = "t", .xpath = "@title"};
    rows r;
    BR_CHECK_EQ(extract("<a title=\"x &amp; y &lt; z\">t</a>", NULL, NULL, "//a", &f, 1, &r), 1);
    assert_string_equal(cell(&r, 0, 0), "x & y < z");
    rows_free(&r);
}

static void chinese_text_intact(void **state) {
    (void)state;
    char *v = value_of("<div><span>垃圾回收与锁机制</span> — 一文读懂</div>", NULL, "//div");
    assert_string_equal(v, "垃圾回收与锁机制 — 一文读懂");
    free(v);
}

static void charset_rules(void **state) {
    (void)state;
    const char *utf8 = "<p>caf\xc3\xa9</p>";
    br_html_doc *d;
    /* No Content-Type, no meta: UTF-8. */
    char *v = value_of(utf8, NULL, "//p");
    assert_string_equal(v, "café");
    free(v);
    BR_CHECK_OK(br_html_parse(utf8, strlen(utf8), NULL, NULL, &d));
    assert_string_equal(br_html_charset(d), "utf-8");
    br_html_free(d);
    /* Declared iso-8859-1 by the server: read as Latin-1, as declared (mojibake). */
    v = value_of(utf8, "text/html; charset=ISO-8859-1", "//p");
    assert_string_equal(v, "caf\xc3\x83\xc2\xa9");
    free(v);
    BR_CHECK_OK(br_html_parse(utf8, strlen(utf8), "text/html;charset=\"iso-8859-1\"", NULL, &d));
    assert_string_equal(br_html_charset(d), "iso-8859-1");
    br_html_free(d);
    /* A charset libxml2 doesn't know counts as absent: UTF-8. */
    v = value_of(utf8, "text/html; charset=x-no-such-charset", "//p");
    assert_string_equal(v, "café");
    free(v);
    /* The page's meta when the server says nothing: GBK and Latin-1. */
    v = value_of("<html><head><meta http-equiv=\"Content-Type\" "
                 "content=\"text/html; charset=gbk\"></head><body><p>\xd6\xd0\xce\xc4</p>"
                 "</body></html>",
                 "text/html", "//p");
    assert_string_equal(v, "中文");
    free(v);
    v = value_of("<html><head><meta charset=iso-8859-1></head><body><p>caf\xe9</p></body></html>",
                 NULL, "//p");
    assert_string_equal(v, "café");
    free(v);
    /* The server's charset wins over the page's meta. */
    v = value_of("<html><head><meta charset=iso-8859-1></head><body><p>caf\xc3\xa9</p></body>"
                 "</html>",
                 "text/html; charset=utf-8", "//p");
    assert_string_equal(v, "café");
    free(v);
    /* A meta naming an unknown charset: UTF-8. */
    v = value_of("<html><head><meta charset=x-bogus></head><body><p>caf\xc3\xa9</p></body></html>",
                 NULL, "//p");
    assert_string_equal(v, "café");
    free(v);
    /* Bad bytes in UTF-8 are replaced (U+FFFD), the rest stays UTF-8. */
    v = value_of("<p>a\xff b caf\xc3\xa9 中文</p>", NULL, "//p");
    assert_string_equal(v, "a\xef\xbf\xbd b café 中文");
    free(v);
}

static void template_excluded(void **state) {
    (void)state;
    const char *html = "<div id=d>before<template><p>hidden</p><a class=\"post-item-title\" "
                       "href=\"/t\">in template</a></template>after</div>"
                       "<a class=\"post-item-title\" href=\"/real\">real</a>";
    char *v = value_of(html, NULL, "//div");
    assert_string_equal(v, "beforeafter");
    free(v);
    rows r;
    BR_CHECK_EQ(extract(html, NULL, "http://h/", TITLE_XPATH, title_fields, 2, &r), 1);
    assert_string_equal(cell(&r, 0, 1), "real");
    rows_free(&r);
}

static void trim_and_no_match(void **state) {
    (void)state;
    br_html_field f[] = {
        {.name = "raw", .xpath = "."},
        {.name = "trimmed", .xpath = ".", .trim = true},
        {.name = "none", .xpath = "@nope"},
        {.name = "count", .xpath = "count(.//b)"},
    };
    rows r;
    BR_CHECK_EQ(extract("<p>\n  x <b>y</b>  \n</p>", NULL, NULL, "//p", f, 4, &r), 1);
    assert_string_equal(cell(&r, 0, 0), "\n  x y  \n");
    assert_string_equal(cell(&r, 0, 1), "x y");
    assert_string_equal(cell(&r, 0, 2), "");
    assert_string_equal(cell(&r, 0, 3), "1");
    rows_free(&r);
}

/* --- links ----------------------------------------------------------------------------- */

static void links_resolved(void **state) {
    (void)state;
    br_html_field f[] = {{.name = "u", .xpath = "@href", .url = true}};
    const char *html = "<a href=\"b/c.html\">1</a><a href=\"../up\">2</a><a href=\"/root?q=1\">3</a>"
                       "<a href=\"//cdn.example.org/x\">4</a><a href=\" a%2Fb \">5</a>"
                       "<a href=\"#top\">6</a><a href=\"\">7</a><a href=\"mailto:x@y\">8</a>"
                       "<a href=\"https://other.org\">9</a><a>10</a>";
    rows r;
    BR_CHECK_EQ(extract(html, NULL, "http://example.com/dir/page.html?p=2#f", "//a", f, 1, &r), 10);
    const char *want[] = {"http://example.com/dir/b/c.html",
                          "http://example.com/up",
                          "http://example.com/root?q=1",
                          "http://cdn.example.org/x",
                          "http://example.com/dir/a%2Fb",
                          "http://example.com/dir/page.html?p=2#top",
                          "http://example.com/dir/page.html?p=2",
                          "",
                          "https://other.org/",
                          ""};
    for (size_t i = 0; i < 10; i++)
        assert_string_equal(cell(&r, i, 0), want[i]);
    rows_free(&r);
}

static void base_href_honoured(void **state) {
    (void)state;
    br_html_field f[] = {{.name = "u", .xpath = "@href", .url = true}};
    const char *html = "<html><head><base href=\"/blog/2026/\"><base href=\"/ignored/\"></head>"
                       "<body><a href=\"post.html\">p</a><a href=\"../index\">i</a></body></html>";
    br_html_doc *d;
    BR_CHECK_OK(br_html_parse(html, strlen(html), NULL, "https://Example.com/a/b", &d));
    assert_string_equal(br_html_base(d), "https://Example.com/blog/2026/");
    rows r = {.nfields = 1};
    BR_CHECK_EQ(br_html_records(d, "//a", f, 1, collect, &r), 2);
    assert_string_equal(cell(&r, 0, 0), "https://Example.com/blog/2026/post.html");
    assert_string_equal(cell(&r, 1, 0), "https://Example.com/blog/index");
    rows_free(&r);
    br_html_free(d);
    /* Without <base>, the page's URL is the base. */
    BR_CHECK_OK(br_html_parse("<p>x</p>", 8, NULL, "http://h/x", &d));
    assert_string_equal(br_html_base(d), "http://h/x");
    br_html_free(d);
}

static void check_resolve(const char *base, const char *ref, const char *want) {
    char *out = (char *)"unset";
    int rc = br_url_resolve(base, ref, &out);
    if (want == NULL) {
        BR_CHECK_ERR(rc, BR_EINVAL);
        BR_CHECK(out == NULL);
        return;
    }
    BR_CHECK_OK(rc);
    assert_string_equal(out, want);
    free(out);
}

static void url_resolve_cases(void **state) {
    (void)state;
    const char *b = "http://a/b/c/d;p?q";
    /* RFC 3986 5.4.1's normal examples. */
    check_resolve(b, "g", "http://a/b/c/g");
    check_resolve(b, "./g", "http://a/b/c/g");
    check_resolve(b, "g/", "http://a/b/c/g/");
    check_resolve(b, "/g", "http://a/g");
    check_resolve(b, "//g", "http://g/");
    check_resolve(b, "?y", "http://a/b/c/d;p?y");
    check_resolve(b, "g?y", "http://a/b/c/g?y");
    check_resolve(b, "#s", "http://a/b/c/d;p?q#s");
    check_resolve(b, "g#s", "http://a/b/c/g#s");
    check_resolve(b, "", "http://a/b/c/d;p?q");
    check_resolve(b, ".", "http://a/b/c/");
    check_resolve(b, "..", "http://a/b/");
    check_resolve(b, "../g", "http://a/b/g");
    check_resolve(b, "../../g", "http://a/g");
    check_resolve(b, "../../../g", "http://a/g");
    /* Percent-escapes stay as written; what a URL can't hold is encoded. */
    check_resolve(b, "a%2Fb", "http://a/b/c/a%2Fb");
    check_resolve(b, "x y", "http://a/b/c/x%20y");
    check_resolve(b, "/中", "http://a/%e4%b8%ad");
    check_resolve(b, "\t /g\n ", "http://a/g");
    /* An absolute reference; no base. */
    check_resolve(b, "https://x.org:8443/p", "https://x.org:8443/p");
    check_resolve(NULL, "http://x.org", "http://x.org/");
    check_resolve(NULL, "relative/only", NULL);
    check_resolve(b, "mailto:a@b", NULL);
    check_resolve(b, "javascript:void(0)", NULL);
    check_resolve("not a url", "g", NULL);
    BR_CHECK_ERR(br_url_resolve(b, NULL, &(char *){NULL}), BR_EINVAL);
    BR_CHECK_ERR(br_url_resolve(b, "g", NULL), BR_EINVAL);
}

static void check_canon(const char *url, const char *want) {
    char *out = NULL;
    int rc = br_url_canonical(url, &out);
    if (want == NULL) {
        BR_CHECK_ERR(rc, BR_EINVAL);
        return;
    }
    BR_CHECK_OK(rc);
    assert_string_equal(out, want);
    free(out);
}

static void url_canonical_cases(void **state) {
    (void)state;
    check_canon("HTTP://Example.COM:80/a/./b/../c?x=1#frag", "http://example.com/a/c?x=1");
    check_canon("https://EXAMPLE.com:443", "https://example.com/");
    check_canon("https://example.com:8443/", "https://example.com:8443/");
    check_canon("http://example.com", "http://example.com/");
    check_canon("http://example.com/a%2fb%c3%a9", "http://example.com/a%2Fb%C3%A9");
    check_canon("http://example.com/Path/Case", "http://example.com/Path/Case");
    check_canon("http://[::1]:80/x", "http://[::1]/x");
    check_canon("  http://h/x#", "http://h/x");
    check_canon("not a url", NULL);
    check_canon("", NULL);
    /* Two spellings of one page dedup to one string. */
    char *a, *c;
    BR_CHECK_OK(br_url_canonical("http://H.org:80/a/../p#x", &a));
    BR_CHECK_OK(br_url_canonical("http://h.org/p", &c));
    assert_string_equal(a, c);
    free(a);
    free(c);
}

/* --- errors and broken input ----------------------------------------------------------- */

static int count_only(const char *const *values, void *arg) {
    (void)values;
    (*(int *)arg)++;
    return 0;
}

static int stop_at_two(const char *const *values, void *arg) {
    (void)values;
    return ++*(int *)arg == 2 ? 42 : 0;
}

static void bad_xpath_and_args(void **state) {
    (void)state;
    br_html_doc *d;
    BR_CHECK_OK(br_html_parse("<p>1</p><p>2</p><p>3</p>", 24, NULL, NULL, &d));
    int n = 0;
    BR_CHECK_ERR(br_html_records(d, "//p[", title_fields, 2, count_only, &n), BR_EINVAL);
    br_html_field bad = {.name = "b", .xpath = "@@x"};
    BR_CHECK_ERR(br_html_records(d, "//p", &bad, 1, count_only, &n), BR_EINVAL);
    BR_CHECK_ERR(br_html_records(d, "count(//p)", NULL, 0, count_only, &n), BR_EINVAL);
    BR_CHECK_EQ(n, 0); /* fn never ran */
    BR_CHECK_ERR(br_html_records(NULL, "//p", NULL, 0, count_only, &n), BR_EINVAL);
    BR_CHECK_ERR(br_html_records(d, NULL, NULL, 0, count_only, &n), BR_EINVAL);
    BR_CHECK_ERR(br_html_records(d, "//p", NULL, 0, NULL, &n), BR_EINVAL);
    /* No fields; fn's nonzero return stops and is returned. */
    BR_CHECK_EQ(br_html_records(d, "//p", NULL, 0, count_only, &n), 3);
    BR_CHECK_EQ(n, 3);
    n = 0;
    BR_CHECK_EQ(br_html_records(d, "//p", NULL, 0, stop_at_two, &n), 42);
    BR_CHECK_EQ(n, 2);
    BR_CHECK_EQ(br_html_records(d, "//table", NULL, 0, count_only, &n), 0);
    br_html_free(d);
    BR_CHECK_ERR(br_html_parse(NULL, 0, NULL, NULL, &d), BR_EINVAL);
    BR_CHECK_ERR(br_html_parse("x", 1, NULL, NULL, NULL), BR_EINVAL);
    br_html_free(NULL);
}

/* The XPath cache holds 64 expressions; more than that are compiled again, not lost. */
static void xpath_cache_turns_over(void **state) {
    (void)state;
    br_html_doc *d;
    BR_CHECK_OK(br_html_parse("<p class=a>1</p><p>2</p>", 24, NULL, NULL, &d));
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 150; i++) {
            char xp[64];
            snprintf(xp, sizeof xp, "//p[position() <= %d]", i + 1);
            br_html_field f = {.name = "c", .xpath = i % 2 ? "@class" : "."};
            int n = 0;
            BR_CHECK_EQ(br_html_records(d, xp, &f, 1, count_only, &n), i == 0 ? 1 : 2);
        }
    br_html_field many[64];
    for (int i = 0; i < 64; i++)
        many[i] = (br_html_field){.name = "x", .xpath = "."};
    int n = 0;
    BR_CHECK_ERR(br_html_records(d, "//p", many, 64, count_only, &n), BR_EINVAL);
    BR_CHECK_EQ(br_html_records(d, "//p", many, 63, count_only, &n), 2);
    br_html_free(d);
}

static void parse_quietly(const char *body, size_t len) {
    br_html_doc *d;
    BR_CHECK_OK(br_html_parse(body, len, NULL, "http://h/", &d));
    int n = 0;
    BR_CHECK(br_html_records(d, "//*", title_fields, 2, count_only, &n) >= 0);
    br_html_free(d);
}

static void broken_html_parses(void **state) {
    (void)state;
    parse_quietly("", 0);
    parse_quietly("<", 1);
    parse_quietly("<html><body><div><p>unclosed <b>bold <i>it", 42);
    parse_quietly("</p></div></html><a href=x>", 27);
    parse_quietly("<a href=\"never closed>text", 26);
    parse_quietly("<!-- never closed", 17);
    char garbage[4096];
    uint64_t s = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < sizeof garbage; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        garbage[i] = (char)(s >> 56);
    }
    parse_quietly(garbage, sizeof garbage);
    /* Deep nesting. */
    size_t depth = 20000, len = 0;
    char *deep = malloc(depth * 11 + 1);
    for (size_t i = 0; i < depth; i++)
        len += (size_t)sprintf(deep + len, "<div><span>");
    parse_quietly(deep, len);
    free(deep);
    /* A 5 MB page: the last of its records is found. */
    size_t cap = 5u << 20;
    char *big = malloc(cap + 64);
    len = 0;
    int posts = 0;
    while (len + 100 < cap)
        len += (size_t)sprintf(big + len, "<div><a class=\"post-item-title\" href=\"/p/%d\">t%d</a></div>\n",
                               posts, posts), posts++;
    br_html_doc *d;
    BR_CHECK_OK(br_html_parse(big, len, "text/html", "http://h/", &d));
    rows r = {.nfields = 2};
    BR_CHECK_EQ(br_html_records(d, TITLE_XPATH, title_fields, 2, collect, &r), posts);
    char want[32];
    snprintf(want, sizeof want, "t%d", posts - 1);
    assert_string_equal(cell(&r, (size_t)posts - 1, 1), want);
    rows_free(&r);
    br_html_free(d);
    free(big);
}

/* --- two threads at once --------------------------------------------------------------- */

typedef struct worker_arg {
    const page *p;
    int rounds;
    int bad; /* rows that differed */
} worker_arg;

static void extract_worker(void *arg) {
    worker_arg *w = arg;
    for (int k = 0; k < w->rounds; k++) {
        br_html_doc *d;
        if (br_html_parse(w->p->html, strlen(w->p->html), NULL, "https://www.cnblogs.com/", &d) != 0) {
            w->bad++;
            continue;
        }
        rows r = {.nfields = 2};
        if (br_html_records(d, TITLE_XPATH, title_fields, 2, collect, &r) != 20)
            w->bad++;
        for (size_t i = 0; i < r.n; i++)
            if (strcmp(cell(&r, i, 0), w->p->href[i]) != 0 ||
                strcmp(cell(&r, i, 1), w->p->title[i]) != 0)
                w->bad++;
        rows_free(&r);
        br_html_free(d);
        char *u = NULL;
        if (br_url_canonical("HTTP://Example.COM:80/a/../b#f", &u) != 0 ||
            strcmp(u, "http://example.com/b") != 0)
            w->bad++;
        free(u);
    }
}

static void records_from_two_threads(void **state) {
    (void)state;
    page p;
    page_make(&p);
    int rounds = (int)br_test_scaled(200, 10);
    worker_arg w[2] = {{&p, rounds, 0}, {&p, rounds, 0}};
    br_thread *t[2];
    for (int i = 0; i < 2; i++)
        BR_CHECK_OK(br_thread_start(&t[i], extract_worker, &w[i], NULL));
    for (int i = 0; i < 2; i++)
        BR_CHECK_OK(br_thread_join(t[i], br_test_hang_guard()));
    for (int i = 0; i < 2; i++)
        BR_CHECK_OK(br_thread_free(t[i]));
    BR_CHECK_EQ(w[0].bad, 0);
    BR_CHECK_EQ(w[1].bad, 0);
    page_free(&p);
}

BR_TEST_MAIN(cmocka_unit_test(fixture_shape_page), cmocka_unit_test(fixture_site_pages),
             cmocka_unit_test(entities_decoded), cmocka_unit_test(chinese_text_intact),
             cmocka_unit_test(charset_rules), cmocka_unit_test(template_excluded),
             cmocka_unit_test(trim_and_no_match), cmocka_unit_test(links_resolved),
             cmocka_unit_test(base_href_honoured), cmocka_unit_test(url_resolve_cases),
             cmocka_unit_test(url_canonical_cases), cmocka_unit_test(bad_xpath_and_args),
             cmocka_unit_test(xpath_cache_turns_over), cmocka_unit_test(broken_html_parses),
             cmocka_unit_test(records_from_two_threads))
