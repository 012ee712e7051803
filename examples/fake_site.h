/* fake_site.h: a stand-in for the tutorials' cnblogs.com list pages.
 *
 * The tutorials fetch https://www.cnblogs.com/#p1 .. #p50 with requests and pick the
 * <a class="post-item-title"> links out with BeautifulSoup. Until braid's http layer
 * lands (then these examples fetch the fixture site of ../shared/peers/python/fixture
 * over loopback, as `braid crawl` will), the examples that need pages use these:
 *
 *   fake_url(page)      "https://www.cnblogs.com/#p<page>", as the tutorials build them
 *   fake_page(page)     the page's HTML (malloc'd; free it): a list page with exactly
 *                       FAKE_LINKS post-item-title links among other anchors
 *   fake_parse(html)    parse(html): the (href, title) pairs of the post-item-title links
 *   fake_page_of(html)  which page an HTML string is (from its <title>)
 *
 * The network's latency is each example's own scaled sleep. Pure functions, safe from
 * any thread.
 */
#ifndef BRAID_EXAMPLES_FAKE_SITE_H
#define BRAID_EXAMPLES_FAKE_SITE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAKE_PAGES 50
#define FAKE_LINKS 20

typedef struct fake_link {
    char href[64];
    char title[64];
} fake_link;

static inline const char *fake_url(int page) {
    static const char *const urls[FAKE_PAGES + 1] = {
        "",
#define U(n) "https://www.cnblogs.com/#p" #n
        U(1),  U(2),  U(3),  U(4),  U(5),  U(6),  U(7),  U(8),  U(9),  U(10),
        U(11), U(12), U(13), U(14), U(15), U(16), U(17), U(18), U(19), U(20),
        U(21), U(22), U(23), U(24), U(25), U(26), U(27), U(28), U(29), U(30),
        U(31), U(32), U(33), U(34), U(35), U(36), U(37), U(38), U(39), U(40),
        U(41), U(42), U(43), U(44), U(45), U(46), U(47), U(48), U(49), U(50),
#undef U
    };
    return page >= 1 && page <= FAKE_PAGES ? urls[page] : "";
}

static inline char *fake_page(int page) {
    size_t cap = 8192, len = 0;
    char *html = malloc(cap);
    if (html == NULL)
        return NULL;
    len += (size_t)snprintf(html + len, cap - len,
                            "<html><head><title>page-%02d</title></head><body>\n"
                            "<a class=\"navbar-item\" href=\"/\">首页</a>\n",
                            page);
    for (int k = 1; k <= FAKE_LINKS; k++)
        len += (size_t)snprintf(html + len, cap - len,
                                "<article class=\"post-item\">"
                                "<a class=\"post-item-title\" href=\"https://www.cnblogs.com/"
                                "p/%02d-%02d\" target=\"_blank\">第%d页 第%d篇</a>"
                                "<a class=\"post-item-author\" href=\"/u%d\">作者%d</a>"
                                "</article>\n",
                                page, k, page, k, k, k);
    snprintf(html + len, cap - len, "<a class=\"pager-item\" href=\"/#p%d\">next</a>"
                                    "</body></html>\n", page + 1);
    return html;
}

/* Copies up to `cap - 1` bytes of [s, end) into dst. */
static inline void fake_copy_(char *dst, size_t cap, const char *s, const char *end) {
    size_t n = (size_t)(end - s);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Fills out[0..FAKE_LINKS) and returns how many links it found. */
static inline int fake_parse(const char *html, fake_link out[FAKE_LINKS]) {
    static const char mark[] = "<a class=\"post-item-title\" href=\"";
    int n = 0;
    for (const char *p = strstr(html, mark); p != NULL && n < FAKE_LINKS;
         p = strstr(p, mark)) {
        p += sizeof mark - 1;
        const char *q = strchr(p, '"');
        const char *t = q ? strchr(q, '>') : NULL;
        const char *e = t ? strstr(t, "</a>") : NULL;
        if (e == NULL)
            break;
        fake_copy_(out[n].href, sizeof out[n].href, p, q);
        fake_copy_(out[n].title, sizeof out[n].title, t + 1, e);
        n++;
        p = e;
    }
    return n;
}

static inline int fake_page_of(const char *html) {
    const char *p = strstr(html, "<title>page-");
    return p ? atoi(p + strlen("<title>page-")) : 0;
}

#endif
