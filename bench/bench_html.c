/* HTML extraction on the crawl fixture's pages: parse each page and take its 20
 * (href, title) pairs, as `braid crawl` and the tutorials' parsers do.
 *
 *   bench_html SITE_DIR [ROUNDS]      SITE_DIR: the fixture's page-01..50.html and
 *                                     expected.tsv; ROUNDS: passes over the 50 pages (20)
 *
 * Checks every pair against expected.tsv, then reports pages_per_s (variant "xpath":
 * br_html_parse + br_html_records with the class-contains XPath, charset from a
 * Content-Type, links resolved). Peers: bench/py_html.py with lxml (the same XPath) and
 * BeautifulSoup (html.parser, find_all), as the tutorial's parser.
 */
#include "bench.h"

#include <braid/http.h>

#define TITLES                                                                        \
    "//a[contains(concat(\" \", normalize-space(@class), \" \"), \" post-item-title \")]"

typedef struct page {
    char *html;
    size_t len;
} page;

typedef struct check {
    char **want; /* 2 per record: href, title */
    size_t next, bad;
} check;

static int row(const char *const *v, void *arg) {
    check *c = arg;
    if (c->want != NULL) {
        c->bad += strcmp(v[0], c->want[c->next]) != 0;
        c->bad += strcmp(v[1], c->want[c->next + 1]) != 0;
    }
    c->next += 2;
    return 0;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    BENCH_CHECK(f != NULL);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    BENCH_CHECK(b != NULL && fread(b, 1, (size_t)n, f) == (size_t)n);
    b[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return b;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_html SITE_DIR [ROUNDS]\n");
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 20;
    page pages[50];
    char path[4096];
    for (int i = 0; i < 50; i++) {
        snprintf(path, sizeof path, "%s/page-%02d.html", argv[1], i + 1);
        pages[i].html = slurp(path, &pages[i].len);
    }
    snprintf(path, sizeof path, "%s/expected.tsv", argv[1]);
    size_t tlen;
    char *tsv = slurp(path, &tlen);
    char **want = malloc(2000 * sizeof *want);
    size_t nw = 0;
    for (char *line = tsv; *line && nw < 2000;) {
        char *nl = strchr(line, '\n'), *tab = strchr(line, '\t');
        BENCH_CHECK(nl != NULL && tab != NULL && tab < nl);
        *tab = *nl = 0;
        want[nw++] = line;
        want[nw++] = tab + 1;
        line = nl + 1;
    }
    BENCH_CHECK_EQ(nw, 2000);
    static const br_html_field fields[] = {{"href", "@href", false, false},
                                           {"title", ".", false, false}};
    /* One checked pass, untimed. */
    check c = {want, 0, 0};
    for (int i = 0; i < 50; i++) {
        br_html_doc *d;
        BENCH_CHECK_OK(br_html_parse(pages[i].html, pages[i].len, "text/html; charset=utf-8",
                                     "https://www.cnblogs.com/", &d));
        BENCH_CHECK_EQ(br_html_records(d, TITLES, fields, 2, row, &c), 20);
        br_html_free(d);
    }
    BENCH_CHECK_EQ(c.bad, 0);
    BENCH_CHECK_EQ(c.next, 2000);
    int64_t t0 = bench_now();
    size_t bytes = 0;
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < 50; i++) {
            check k = {NULL, 0, 0};
            br_html_doc *d;
            BENCH_CHECK_OK(br_html_parse(pages[i].html, pages[i].len,
                                         "text/html; charset=utf-8", "https://www.cnblogs.com/",
                                         &d));
            BENCH_CHECK_EQ(br_html_records(d, TITLES, fields, 2, row, &k), 20);
            br_html_free(d);
            bytes += pages[i].len;
        }
    double s = bench_secs(t0, bench_now());
    double pages_s = 50.0 * rounds / s;
    bench_note("html xpath: %d pages in %.3f s, %.2f ms/page, %.1f MB/s", 50 * rounds, s,
               1e3 / pages_s, (double)bytes / s / 1e6);
    bench_emit("html", "xpath", "braid", "pages_per_s", pages_s, "pages/s");
    for (int i = 0; i < 50; i++)
        free(pages[i].html);
    free(want);
    free(tsv);
    return 0;
}
