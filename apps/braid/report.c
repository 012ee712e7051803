/* report.c: the HTML report writer and the statistics `braid compare` reports.
 *
 * Design notes. The document is written as it goes (no tree in memory): begin writes
 * the head with its inline style, the calls in between append body elements, end closes
 * the body. The one format decision that matters is the chart: horizontal bars, one row
 * per bar, drawn in an <svg> sized from the bar count, with every length computed here
 * from the values, so the picture shows the measured numbers and nothing else:
 *   scale = (plot width) / max(value, hi over the bars)   (1 if that is 0)
 *   bar   = <rect x=LABEL_W width=value*scale>, whisker = <line> from lo*scale to hi*scale
 * A chart holds no other <rect> (the tests count them). The escape function is the only
 * way text reaches the file, and it repairs UTF-8 as it goes (see report.h).
 */
#include "report.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* --- statistics ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

int braid_stats_of(const double *xs, int n, braid_stats *out) {
    *out = (braid_stats){0};
    double v[64];
    if (xs == NULL || n < 1 || n > 64)
        return -1;
    for (int i = 0; i < n; i++) {
        if (isnan(xs[i]))
            return -1;
        v[i] = xs[i];
    }
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    out->n = n;
    out->min = v[0];
    out->max = v[n - 1];
    out->median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return 0;
}

bool braid_speedup_physical(double speedup, int workers, int cpus, double *efficiency) {
    int used = workers < cpus ? workers : cpus;
    if (used < 1)
        used = 1;
    double e = speedup / used;
    if (efficiency != NULL)
        *efficiency = e;
    return !(e > 1.01);
}

/* --- escaping -------------------------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at s (1..4), or 0 if it isn't one (overlong
 * forms, surrogates and values above U+10FFFF are invalid, as RFC 3629 says). */
static int utf8_len(const unsigned char *s) {
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    int n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0; /* also stops at the terminating NUL */
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

void braid_report_escape(FILE *f, const char *s) {
    if (s == NULL)
        return;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        switch (*p) {
        case '&': fputs("&amp;", f); p++; continue;
        case '<': fputs("&lt;", f); p++; continue;
        case '>': fputs("&gt;", f); p++; continue;
        case '"': fputs("&quot;", f); p++; continue;
        case '\'': fputs("&#39;", f); p++; continue;
        default: break;
        }
        if (*p < 0x20 && *p != '\t' && *p != '\n') {
            fputc(' ', f);
            p++;
            continue;
        }
        if (*p == 0x7F) {
            fputc(' ', f);
            p++;
            continue;
        }
        int n = utf8_len(p);
        if (n == 0) {
            fputs("\xEF\xBF\xBD", f); /* U+FFFD for the one bad byte */
            p++;
            continue;
        }
        fwrite(p, 1, (size_t)n, f);
        p += n;
    }
}

/* --- the writer -------------------------------------------------------------------------- */

struct braid_report {
    FILE *f;
    int ncols;  /* of the open table */
    int charts; /* numbered, for the ids */
};

static const char style[] =
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:72em;color:#222}"
    "h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}"
    "table{border-collapse:collapse;margin:1em 0}"
    "th,td{padding:.2em .7em;border-bottom:1px solid #ddd;text-align:left}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "tr.noise td{color:#888;background:#f6f6f6}td.flag{color:#a40;font-size:.9em}"
    "p.machine{font-family:monospace}p.verdict{font-weight:bold}p.note{color:#555}"
    "svg{display:block;margin:.5em 0 1.5em 0}svg text{font-size:12px;fill:#222}"
    ".bar{fill:#3a7bd5}.bar.py{fill:#e0a030}.bar.noise{fill:#bbb}"
    ".whisker{stroke:#222;stroke-width:1.5}.axis{stroke:#999}";

int braid_report_begin(braid_report **out, FILE *f, const char *title) {
    braid_report *r = calloc(1, sizeof *r);
    *out = r;
    if (r == NULL)
        return -1;
    r->f = f;
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>",
          f);
    braid_report_escape(f, title);
    fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>", style);
    braid_report_escape(f, title);
    fputs("</h1>\n", f);
    return 0;
}

void braid_report_section(braid_report *r, const char *title) {
    fputs("<h2>", r->f);
    braid_report_escape(r->f, title);
    fputs("</h2>\n", r->f);
}

void braid_report_para(braid_report *r, const char *cls, const char *text) {
    if (cls != NULL) {
        fputs("<p class=\"", r->f);
        braid_report_escape(r->f, cls);
        fputs("\">", r->f);
    } else {
        fputs("<p>", r->f);
    }
    braid_report_escape(r->f, text);
    fputs("</p>\n", r->f);
}

void braid_report_table_begin(braid_report *r, int ncols, const char *const *headers) {
    r->ncols = ncols;
    fputs("<table>\n<tr>", r->f);
    for (int i = 0; i < ncols; i++) {
        fputs("<th>", r->f);
        braid_report_escape(r->f, headers[i]);
        fputs("</th>", r->f);
    }
    fputs("<th></th></tr>\n", r->f); /* the flag column */
}

/* A cell reads as a number when it starts with a digit, a sign or a dot. */
static bool numeric(const char *s) {
    return s != NULL && (s[0] == '-' || s[0] == '.' || (s[0] >= '0' && s[0] <= '9'));
}

void braid_report_table_row(braid_report *r, const char *const *cells, const char *flag) {
    fputs(flag != NULL ? "<tr class=\"noise\">" : "<tr>", r->f);
    for (int i = 0; i < r->ncols; i++) {
        fputs(numeric(cells[i]) ? "<td class=\"num\">" : "<td>", r->f);
        braid_report_escape(r->f, cells[i]);
        fputs("</td>", r->f);
    }
    fputs("<td class=\"flag\">", r->f);
    braid_report_escape(r->f, flag);
    fputs("</td></tr>\n", r->f);
}

void braid_report_table_end(braid_report *r) {
    fputs("</table>\n", r->f);
    r->ncols = 0;
}

enum { LABEL_W = 260, PLOT_W = 420, TEXT_W = 200, ROW_H = 24, BAR_H = 16, TOP = 6 };

void braid_report_chart(braid_report *r, const char *caption, const braid_report_bar *bars,
                        int n) {
    FILE *f = r->f;
    double top = 0;
    for (int i = 0; i < n; i++) {
        double v = isfinite(bars[i].value) && bars[i].value > 0 ? bars[i].value : 0;
        double h = isfinite(bars[i].hi) ? bars[i].hi : 0;
        if (v > top)
            top = v;
        if (h > top)
            top = h;
    }
    double scale = top > 0 ? PLOT_W / top : 1;
    int width = LABEL_W + PLOT_W + TEXT_W, height = TOP * 2 + n * ROW_H;
    r->charts++;
    fprintf(f, "<figure>\n<svg class=\"chart\" id=\"chart-%d\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"",
            r->charts, width, height, width, height);
    braid_report_escape(f, caption);
    fputs("\">\n", f);
    fprintf(f, "<line class=\"axis\" x1=\"%d\" y1=\"0\" x2=\"%d\" y2=\"%d\"/>\n", LABEL_W,
            LABEL_W, height);
    for (int i = 0; i < n; i++) {
        const braid_report_bar *b = &bars[i];
        double v = isfinite(b->value) && b->value > 0 ? b->value : 0;
        double w = v * scale;
        int y = TOP + i * ROW_H;
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", LABEL_W - 6,
                y + BAR_H - 3);
        braid_report_escape(f, b->label);
        fputs("</text>\n", f);
        fprintf(f, "<rect class=\"bar%s%s\" x=\"%d\" y=\"%d\" width=\"%.2f\" height=\"%d\" "
                   "data-label=\"",
                b->python ? " py" : "", b->flagged ? " noise" : "", LABEL_W, y, w, BAR_H);
        braid_report_escape(f, b->label);
        fprintf(f, "\" data-value=\"%.6g\"><title>", v);
        braid_report_escape(f, b->label);
        fputs(": ", f);
        braid_report_escape(f, b->text);
        fputs("</title></rect>\n", f);
        double end = w;
        if (isfinite(b->lo) && isfinite(b->hi) && b->hi > b->lo) {
            double x1 = LABEL_W + b->lo * scale, x2 = LABEL_W + b->hi * scale;
            int ym = y + BAR_H / 2;
            fprintf(f, "<line class=\"whisker\" x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\"/>"
                       "<line class=\"whisker\" x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\"/>"
                       "<line class=\"whisker\" x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\"/>\n",
                    x1, ym, x2, ym, x1, ym - 4, x1, ym + 4, x2, ym - 4, x2, ym + 4);
            if (b->hi * scale > end)
                end = b->hi * scale;
        }
        fprintf(f, "<text class=\"value\" x=\"%.2f\" y=\"%d\">", LABEL_W + end + 6,
                y + BAR_H - 3);
        braid_report_escape(f, b->text);
        if (b->flagged)
            fputs(" (noise)", f);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n<figcaption>", f);
    braid_report_escape(f, caption);
    fputs("</figcaption>\n</figure>\n", f);
}

int braid_report_end(braid_report *r) {
    if (r == NULL)
        return -1;
    fputs("</body>\n</html>\n", r->f);
    int rc = fflush(r->f) != 0 || ferror(r->f) ? -1 : 0;
    free(r);
    return rc;
}
