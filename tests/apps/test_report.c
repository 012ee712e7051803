/* The report writer and the statistics of `braid compare` (apps/braid/report.c): the
 * median and spread, the physical check on a speed-up, escaping and UTF-8 repair, tables,
 * and charts whose bars are as long as their values, in a document that fetches nothing.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

/* A report built by fn into memory: the document as a NUL-terminated string (caller
 * frees). */
static char *render(void (*fn)(braid_report *r)) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    BR_CHECK(f != NULL);
    braid_report *r;
    BR_CHECK_EQ(braid_report_begin(&r, f, "braid compare"), 0);
    fn(r);
    BR_CHECK_EQ(braid_report_end(r), 0);
    BR_CHECK_EQ(fclose(f), 0);
    BR_CHECK_EQ(strlen(buf), len); /* no NUL inside */
    return buf;
}

static char *escaped(const char *s) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    BR_CHECK(f != NULL);
    braid_report_escape(f, s);
    BR_CHECK_EQ(fclose(f), 0);
    return buf;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* Nothing in the document may make a browser fetch anything. */
static void check_no_fetch(const char *doc) {
    static const char *const banned[] = {"http:", "https:", "src=", "href=", "url(",
                                         "@import", "xmlns", "//"};
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
        if (strstr(doc, banned[i]) != NULL)
            fail_msg("the report holds '%s'", banned[i]);
}

static void stats_median_and_spread(void **state) {
    (void)state;
    braid_stats s;
    BR_CHECK_EQ(braid_stats_of((double[]){3.0, 1.0, 2.0}, 3, &s), 0);
    BR_CHECK_EQ(s.n, 3);
    BR_CHECK(s.median == 2.0 && s.min == 1.0 && s.max == 3.0);
    BR_CHECK_EQ(braid_stats_of((double[]){4.0, 1.0, 3.0, 2.0}, 4, &s), 0);
    BR_CHECK(s.median == 2.5 && s.min == 1.0 && s.max == 4.0);
    double one = 0.25;
    BR_CHECK_EQ(braid_stats_of(&one, 1, &s), 0);
    BR_CHECK(s.median == 0.25 && s.min == 0.25 && s.max == 0.25);
    /* the input is left as it was */
    double xs[] = {5, 4, 3, 2, 1};
    BR_CHECK_EQ(braid_stats_of(xs, 5, &s), 0);
    BR_CHECK(xs[0] == 5 && xs[4] == 1 && s.median == 3);
    /* bad input: an error, never a crash */
    BR_CHECK_EQ(braid_stats_of(xs, 0, &s), -1);
    BR_CHECK_EQ(s.n, 0);
    BR_CHECK_EQ(braid_stats_of(NULL, 3, &s), -1);
    BR_CHECK_EQ(braid_stats_of((double[]){1, NAN}, 2, &s), -1);
    double many[65] = {0};
    BR_CHECK_EQ(braid_stats_of(many, 65, &s), -1);
}

static void speedup_noise_flagged(void **state) {
    (void)state;
    double e = 0;
    /* the run this check exists for: a thread pool of 6 on 2 CPUs at 2.42x */
    BR_CHECK(!braid_speedup_physical(2.42, 6, 2, &e));
    BR_CHECK(e > 1.2 && e < 1.22);
    /* more speed-up than workers, with CPUs to spare */
    BR_CHECK(!braid_speedup_physical(2.5, 2, 8, &e));
    BR_CHECK(e == 1.25);
    /* physical ones */
    BR_CHECK(braid_speedup_physical(1.9, 6, 2, &e));
    BR_CHECK(e == 0.95);
    BR_CHECK(braid_speedup_physical(1.0, 1, 2, &e));
    BR_CHECK(braid_speedup_physical(2.0, 2, 2, &e));
    BR_CHECK(braid_speedup_physical(0.3, 4, 2, NULL));
    /* the timer's margin: 1 % */
    BR_CHECK(braid_speedup_physical(2.01, 2, 2, NULL));
    BR_CHECK(!braid_speedup_physical(2.05, 2, 2, NULL));
    /* workers or CPUs of 0 count as one */
    BR_CHECK(!braid_speedup_physical(1.5, 0, 0, &e));
    BR_CHECK(e == 1.5);
}

static void escape_html_and_utf8(void **state) {
    (void)state;
    char *s = escaped("<a href=\"x\">&'</a>");
    BR_CHECK(strcmp(s, "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;") == 0);
    free(s);
    /* valid UTF-8 passes through: Chinese text, a 4-byte emoji */
    s = escaped("\xe7\xba\xbf\xe7\xa8\x8b \xf0\x9f\x98\x80");
    BR_CHECK(strcmp(s, "\xe7\xba\xbf\xe7\xa8\x8b \xf0\x9f\x98\x80") == 0);
    free(s);
    /* invalid bytes become U+FFFD, one each: a lone continuation, a truncated sequence,
     * an overlong '/', a surrogate, a byte never valid */
    s = escaped("a\x80" "b\xe7\xba" "c\xc0\xaf" "d\xed\xa0\x80" "e\xff");
    BR_CHECK(strcmp(s, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd"
                       "c\xef\xbf\xbd\xef\xbf\xbd"
                       "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "e\xef\xbf\xbd") == 0);
    free(s);
    /* control characters become spaces; tab and newline stay */
    s = escaped("x\x01y\x1b[0m\tz\n\x7f");
    BR_CHECK(strcmp(s, "x y [0m\tz\n ") == 0);
    free(s);
    s = escaped(NULL);
    BR_CHECK(s == NULL || s[0] == '\0');
    free(s);
}

static void build_table(braid_report *r) {
    braid_report_section(r, "W1 <primes> & more");
    braid_report_para(r, "machine", "CPU: Test CPU \"9000\" (2 CPUs)");
    const char *hdr[] = {"model", "seconds", "speed-up"};
    braid_report_table_begin(r, 3, hdr);
    braid_report_table_row(r, (const char *[]){"one thread", "1.000", "1.00x"}, NULL);
    braid_report_table_row(r, (const char *[]){"pool <6>", "0.413", "2.42x"},
                           "noise: efficiency 1.21 > 1");
    braid_report_table_row(r, (const char *[]){NULL, "bad \xff", NULL}, NULL);
    braid_report_table_end(r);
}

static void table_rows_and_escaping(void **state) {
    (void)state;
    char *doc = render(build_table);
    BR_CHECK(strncmp(doc, "<!DOCTYPE html>", 15) == 0);
    BR_CHECK(strstr(doc, "<meta charset=\"utf-8\">") != NULL);
    BR_CHECK(strstr(doc, "</html>\n") != NULL);
    BR_CHECK_EQ(count(doc, "<table>"), 1);
    BR_CHECK_EQ(count(doc, "</table>"), 1);
    BR_CHECK_EQ(count(doc, "<tr"), 4); /* the header and three rows */
    BR_CHECK_EQ(count(doc, "<tr class=\"noise\">"), 1);
    BR_CHECK(strstr(doc, "<h2>W1 &lt;primes&gt; &amp; more</h2>") != NULL);
    BR_CHECK(strstr(doc, "<p class=\"machine\">CPU: Test CPU &quot;9000&quot; (2 CPUs)</p>") !=
             NULL);
    BR_CHECK(strstr(doc, "<td>pool &lt;6&gt;</td><td class=\"num\">0.413</td>"
                         "<td class=\"num\">2.42x</td><td class=\"flag\">noise: efficiency "
                         "1.21 &gt; 1</td></tr>") != NULL);
    BR_CHECK(strstr(doc, "<td>bad \xef\xbf\xbd</td>") != NULL);
    BR_CHECK(strstr(doc, "<tr><td>one thread</td><td class=\"num\">1.000</td>") != NULL);
    check_no_fetch(doc);
    free(doc);
}

static const braid_report_bar chart_bars[] = {
    {.label = "one thread", .text = "4.000 s", .value = 4.0, .lo = 3.5, .hi = 5.0},
    {.label = "thread pool", .text = "2.000 s", .value = 2.0, .lo = 2.0, .hi = 2.0},
    {.label = "processes <&>", .text = "1.000 s", .value = 1.0, .lo = 0.5, .hi = 1.5,
     .flagged = true},
    {.label = "Python: one thread", .text = "10.000 s", .value = 10.0, .python = true},
};
enum { NBARS = sizeof chart_bars / sizeof chart_bars[0] };

static void build_chart(braid_report *r) {
    braid_report_chart(r, "seconds, median of 3 rounds", chart_bars, NBARS);
    braid_report_chart(r, "an empty chart", NULL, 0);
    braid_report_chart(r, "zeros", (braid_report_bar[]){{.label = "z", .text = "0"}}, 1);
}

/* The value of attribute `name` in the tag starting at tag (up to its '>'). */
static double attr(const char *tag, const char *name) {
    char key[32];
    snprintf(key, sizeof key, " %s=\"", name);
    const char *end = strchr(tag, '>');
    const char *p = strstr(tag, key);
    BR_CHECK(p != NULL && end != NULL && p < end);
    return strtod(p + strlen(key), NULL);
}

static void chart_bars_proportional(void **state) {
    (void)state;
    char *doc = render(build_chart);
    BR_CHECK_EQ(count(doc, "<svg "), 3);
    BR_CHECK_EQ(count(doc, "<rect "), NBARS + 1); /* one rect per bar, nothing else */
    /* the first chart's bars, in order: width / value the same for every bar, and the
     * longest reach (value or whisker end: 10.0) spanning the plot */
    const char *p = doc;
    double ratio = 0, widest = 0;
    for (int i = 0; i < NBARS; i++) {
        p = strstr(p, "<rect ");
        BR_CHECK(p != NULL);
        double w = attr(p, "width"), v = attr(p, "data-value");
        BR_CHECK(v == chart_bars[i].value);
        if (i == 0)
            ratio = w / v;
        BR_CHECK(fabs(w / v - ratio) < 1e-3 * ratio);
        if (w > widest)
            widest = w;
        p++;
    }
    BR_CHECK(fabs(widest - 420) < 0.01);
    /* labels and values as text, escaped; the flag and the Python colour */
    BR_CHECK(strstr(doc, ">processes &lt;&amp;&gt;</text>") != NULL);
    BR_CHECK(strstr(doc, ">1.000 s (noise)</text>") != NULL);
    BR_CHECK(strstr(doc, ">4.000 s</text>") != NULL);
    BR_CHECK_EQ(count(doc, "class=\"bar noise\""), 1);
    BR_CHECK_EQ(count(doc, "class=\"bar py\""), 1);
    /* whiskers (three lines each) for the bars with a spread only: bars 1 and 3 */
    BR_CHECK_EQ(count(doc, "class=\"whisker\""), 6);
    /* the whisker of bar 1 runs from 3.5 to 5.0 on the same scale */
    const char *wk = strstr(doc, "class=\"whisker\"");
    BR_CHECK(fabs(attr(wk, "x1") - (260 + 3.5 * ratio)) < 0.01);
    BR_CHECK(fabs(attr(wk, "x2") - (260 + 5.0 * ratio)) < 0.01);
    /* a zero bar is drawn with zero width, not a division by zero */
    const char *z = strstr(doc, "data-label=\"z\"");
    BR_CHECK(z != NULL);
    check_no_fetch(doc);
    free(doc);
}

/* A failed write is reported by end, not lost. */
static void write_error_reported(void **state) {
    (void)state;
    FILE *f = fopen("/dev/full", "we");
    if (f == NULL)
        skip();
    braid_report *r;
    BR_CHECK_EQ(braid_report_begin(&r, f, "full"), 0);
    for (int i = 0; i < 200; i++)
        braid_report_chart(r, "c", chart_bars, NBARS);
    BR_CHECK_EQ(braid_report_end(r), -1);
    fclose(f);
}

BR_TEST_MAIN(cmocka_unit_test(stats_median_and_spread), cmocka_unit_test(speedup_noise_flagged),
             cmocka_unit_test(escape_html_and_utf8), cmocka_unit_test(table_rows_and_escaping),
             cmocka_unit_test(chart_bars_proportional), cmocka_unit_test(write_error_reported))
