/* report.h: the HTML report `braid compare` writes, and the statistics it reports.
 *
 * The writer streams one self-contained HTML document onto a FILE: sections, tables and
 * horizontal SVG bar charts, with the style inline and nothing fetched (no URL anywhere
 * in the markup it makes: no src, href, url(), @import or xmlns). Every string passed in
 * is escaped (& < > " ') and made valid UTF-8 (an invalid byte becomes U+FFFD, a control
 * character other than tab and newline becomes a space), so the caller may pass any
 * bytes. A chart draws exactly one <rect> per bar, its width proportional to the bar's
 * value (the longest bar, or whisker end, spans the chart), a whisker line from the bar's
 * low to its high value, and the value's text as the caller formatted it; each rect
 * carries data-label and data-value, so a test can read the chart back out of a browser's
 * DOM.
 *
 * The statistics: the median and range of a row's rounds, and the physical check on a
 * parallel speed-up (BENCH.md's "impossible results are noise").
 */
#ifndef BRAID_APP_REPORT_H
#define BRAID_APP_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* --- statistics ------------------------------------------------------------------------ */

typedef struct braid_stats {
    int n;             /* how many values */
    double median;     /* the middle value; the mean of the two middle ones for even n */
    double min, max;   /* the spread */
} braid_stats;

/* The median and range of xs[0..n). Returns 0, or -1 (and *out zeroed) if n < 1 or a
 * value is NaN. xs is not modified (the sort works on a copy, at most 64 values; more is
 * -1). */
int braid_stats_of(const double *xs, int n, braid_stats *out);

/* Parallel efficiency: speedup / min(workers, cpus) (workers or cpus below 1 count as 1).
 * A CPU-bound run on `cpus` CPUs can't exceed 1: a result above 1 (with a 1 % margin
 * for timer granularity) is noise, the baseline's round having been slowed by something
 * else. Returns true when the result is physical; *efficiency (if not NULL) gets the
 * value either way. */
bool braid_speedup_physical(double speedup, int workers, int cpus, double *efficiency);

/* --- the writer -------------------------------------------------------------------------- */

typedef struct braid_report braid_report;

/* Starts a document titled `title` on f (which the caller keeps owning and closes after
 * braid_report_end). Returns 0, or -1 when out of memory. */
int braid_report_begin(braid_report **out, FILE *f, const char *title);

/* A <h2> section heading, and a paragraph (class "machine", "verdict", "note" or NULL
 * for plain). */
void braid_report_section(braid_report *r, const char *title);
void braid_report_para(braid_report *r, const char *cls, const char *text);

/* A table: begin with its column headers, one call per row (flag: NULL, or the text of a
 * flag shown in the row's last cell and marking the row, as "noise: efficiency 1.21 > 1"),
 * then end. Cells may be NULL (empty). */
void braid_report_table_begin(braid_report *r, int ncols, const char *const *headers);
void braid_report_table_row(braid_report *r, const char *const *cells, const char *flag);
void braid_report_table_end(braid_report *r);

/* One bar of a chart. */
typedef struct braid_report_bar {
    const char *label; /* the bar's name, left of it */
    const char *text;  /* the value as printed (the table's figure), right of the bar */
    double value;      /* >= 0: the bar's length */
    double lo, hi;     /* the whisker; lo == hi (or both 0) for none */
    bool flagged;      /* drawn hatched grey, "noise" appended to the text */
    bool python;       /* a Python peer's bar: its own colour */
} braid_report_bar;

/* A chart of n bars with a caption ("seconds, median of 3 rounds; whiskers: min..max"). */
void braid_report_chart(braid_report *r, const char *caption, const braid_report_bar *bars,
                        int n);

/* Ends the document and frees r. Returns 0, or -1 if any write to f failed. */
int braid_report_end(braid_report *r);

/* Writes s escaped for HTML text and attributes (see the top); exposed for the tests. */
void braid_report_escape(FILE *f, const char *s);

#endif
