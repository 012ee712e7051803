/* fixture.c: the W9 crawl fixture's pages, generated in memory.
 *
 * Design note. The fixture is a format shared with the Python peer: its generator
 * (peers/python/fixture/gen_site.py) and this file must produce the same bytes, so that
 * braid's crawler and the Python crawlers read the same site and a single expected.tsv
 * judges both. What makes the bytes:
 *
 *   - one splitmix64 stream per page, seeded 0xB2A1D000 + page; below(n) is next() % n,
 *     choice(pool) is pool[below(len)];
 *   - the draws in the order the Python program makes them: the category counts, the 20
 *     articles (each: id, user, title, summary length then words, day/hour/minute,
 *     digg/comments/views), then the page template's left-to-right draws (the CSS link's
 *     version, the CSS block, the JS block, the three SVG paths, the headline, the
 *     sidebar, the JS link's version);
 *   - the templates' text, whitespace included, and Python's formatting (%d, %02d,
 *     %016x) of non-negative integers;
 *   - expected.tsv's titles with the three entity references the titles can hold
 *     (&amp; &lt; &gt;) decoded, as html.unescape does for them.
 *
 * tests/apps/test_fixture.c runs the Python generator and compares every file byte for
 * byte, and against the SHA256SUMS it writes. Anything changed here must change there.
 */
#include "fixture.h"

#include <braid/core.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- splitmix64 --- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r) {
    r->s += 0x9E3779B97F4A7C15ull;
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static unsigned below(rng *r, unsigned n) { return (unsigned)(rng_next(r) % n); }

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define CHOICE(r, pool) ((pool)[below((r), (unsigned)NELEM(pool))])

/* --- a growing buffer; a failed allocation sticks and is reported at the end --- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static bool sb_reserve(sbuf *b, size_t more) {
    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void sb_put(sbuf *b, const char *s) {
    size_t n = strlen(s);
    if (!sb_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !sb_reserve(b, (size_t)n)) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* words(rng, pool, n, sep): n choices joined by sep */
static void sb_words(sbuf *b, rng *r, const char *const *pool, unsigned npool, unsigned n,
                     const char *sep) {
    for (unsigned i = 0; i < n; i++) {
        if (i > 0)
            sb_put(b, sep);
        sb_put(b, pool[below(r, npool)]);
    }
}
#define WORDS(b, r, pool, n, sep) sb_words((b), (r), (pool), (unsigned)NELEM(pool), (n), (sep))

/* --- the vocabularies (gen_site.py's lists, in its order) --- */

static const char *const TECH[] = {
    "Python", "Go", "Rust", "C", "C++", "Java", "Kotlin", "JavaScript",
    "TypeScript", "Vue3", "React", "Linux", "Docker", "Kubernetes", "Redis",
    "MySQL", "PostgreSQL", "Nginx", "Spring Boot", "Django", "Flask",
    "asyncio", "epoll", "gRPC", "WebAssembly", "LLVM", "GCC", "CMake",
    "Git", "Kafka", "Elasticsearch", "TCP/IP", "HTTP/2", "SQLite", "Lua",
    ".NET 8", "C#", "Unity", "OpenCV", "PyTorch", "NumPy", "pandas"};
static const char *const ZH[] = {
    "并发", "多线程", "多进程", "协程", "线程池", "进程池", "消息队列",
    "源码分析", "性能优化", "入门教程", "实战", "踩坑记录", "原理详解",
    "面试题", "最佳实践", "内存模型", "垃圾回收", "锁机制", "读写分离",
    "分布式", "微服务", "高可用", "负载均衡", "缓存穿透", "数据结构",
    "算法", "设计模式", "网络编程", "异步IO", "事件循环", "调度器",
    "系统调用", "零拷贝", "序列化", "部署", "监控", "日志", "测试"};
static const char *const SUFFIX[] = {"（一）", "（二）", "（三）", "：从零开始", "全解析", "笔记",
                                     " 学习总结", " 一文读懂", "", "", "", ""};
static const char *const SPECIAL[] = {"C &amp; C++", "List&lt;T&gt;", "Map&lt;K, V&gt;", "R&amp;D",
                                      "&lt;script&gt; 标签", "Q&amp;A"};
static const char *const USERS[] = {
    "zhangsan", "lisi-dev", "wangwu2019", "codingfan", "pythonista",
    "gopher-cn", "rustacean", "kernel-hacker", "dba-notes", "frontend-li",
    "cloud-native", "algo-daily", "javaer", "dotnet-lab", "ops-chen"};
static const char *const AUTHORS[] = {
    "张三", "李四", "王五", "码农小陈", "Python 之禅", "Gopher",
    "锈儿", "内核笔记", "DBA 老王", "前端小李", "云原生实验室",
    "每日算法", "Javaer", "dotNET 实验室", "运维老陈"};
static const char *const SUMMARY_WORDS[] = {
    "本文", "介绍", "如何", "使用", "实现", "一个", "简单的",
    "高性能", "线程安全", "队列", "并且", "分析", "其中", "关键",
    "代码", "示例", "我们", "可以", "通过", "调用", "接口",
    "返回", "结果", "需要", "注意", "的是", "在", "中", "，",
    "。", "GIL", "ThreadPoolExecutor", "asyncio", "future",
    "callback", "benchmark", "latency", "throughput", "。"};
static const char *const CATES[] = {
    "Python", "Java", ".NET", "C++", "Go", "Rust", "前端", "数据库",
    "算法", "人工智能", "大数据", "云计算", "运维", "移动开发", "嵌入式",
    "操作系统", "网络", "安全", "测试", "架构", "游戏开发", "区块链",
    "物联网", "软件工程", "程序人生", "读书", "招聘", "开源", "工具",
    "其他"};
static const char *const CSS_PROPS[] = {"margin", "padding", "color", "background", "font-size",
                                        "line-height", "border", "display", "width", "max-width"};
static const char *const CSS_WORDS[] = {"post", "item", "card", "nav", "side", "foot",
                                        "head", "list", "meta", "btn", "icon"};

/* --- the page's parts --- */

/* A title, as HTML text (entity references kept). Python strips it; none of the pools
 * can put whitespace at either end, so there is nothing to strip. */
static void title(sbuf *b, rng *r) {
    unsigned k = below(r, 10);
    if (k == 0) {
        sb_put(b, CHOICE(r, SPECIAL));
        sb_put(b, " ");
        sb_put(b, CHOICE(r, ZH));
        sb_put(b, CHOICE(r, SUFFIX));
    } else if (k < 5) {
        sb_put(b, CHOICE(r, TECH));
        sb_put(b, " ");
        sb_put(b, CHOICE(r, ZH));
        sb_put(b, CHOICE(r, ZH));
        sb_put(b, CHOICE(r, SUFFIX));
    } else if (k < 8) {
        sb_put(b, "[");
        sb_put(b, CHOICE(r, TECH));
        sb_put(b, "] ");
        sb_put(b, CHOICE(r, ZH));
        sb_put(b, "与");
        sb_put(b, CHOICE(r, ZH));
    } else {
        sb_put(b, CHOICE(r, TECH));
        sb_put(b, " vs ");
        sb_put(b, CHOICE(r, TECH));
        sb_put(b, "：");
        sb_put(b, CHOICE(r, ZH));
    }
}

/* Appends "HREF\tTITLE\n" with &amp; &lt; &gt; decoded in TITLE. */
static void expected_line(sbuf *e, const char *href, const char *t, size_t tlen) {
    sb_put(e, href);
    sb_put(e, "\t");
    if (!sb_reserve(e, tlen + 1))
        return;
    for (size_t i = 0; i < tlen;) {
        if (strncmp(t + i, "&amp;", 5) == 0) {
            e->p[e->len++] = '&';
            i += 5;
        } else if (strncmp(t + i, "&lt;", 4) == 0) {
            e->p[e->len++] = '<';
            i += 4;
        } else if (strncmp(t + i, "&gt;", 4) == 0) {
            e->p[e->len++] = '>';
            i += 4;
        } else {
            e->p[e->len++] = t[i++];
        }
    }
    e->p[e->len++] = '\n';
    e->p[e->len] = '\0';
}

static void css_block(sbuf *b, rng *r, int n) {
    for (int i = 0; i < n; i++) {
        if (i > 0)
            sb_put(b, "\n");
        sb_put(b, "        .");
        WORDS(b, r, CSS_WORDS, 2, "-");
        sb_printf(b, "-%d { ", i);
        unsigned nprops = 3 + below(r, 4);
        for (unsigned j = 0; j < nprops; j++) {
            if (j > 0)
                sb_put(b, "; ");
            const char *prop = CHOICE(r, CSS_PROPS);
            sb_printf(b, "%s: %upx", prop, below(r, 40));
        }
        sb_put(b, "; }");
    }
}

static void js_block(sbuf *b, rng *r, int page) {
    sb_printf(b, "        var currentPage = %d, pageSize = %d;\n", page,
              (int)BRAID_FIXTURE_POSTS_PER_PAGE);
    sb_put(b, "        var aggSite = { siteHome: true, categoryId: 808, parentCategoryId: 0 };\n");
    for (int i = 0; i < 25; i++) {
        unsigned a = below(r, 1000), c = below(r, 1000);
        unsigned m = below(r, 97) + 1;
        unsigned d = below(r, 100);
        sb_printf(b,
                  "        function f%d(x) { if (x < %u && x > %u) { return x * %u; } return "
                  "%u; }\n",
                  i, a, c, m, d);
    }
    sb_put(b, "        for (var i = 0; i < pageSize; i++) { window.__posts = (window.__posts "
              "|| 0) + 1; }");
}

static void article(sbuf *b, sbuf *e, rng *r, int page, int idx) {
    unsigned post_id = 17000000u + (unsigned)page * 1000u + (unsigned)idx * 37u + below(r, 30);
    unsigned u = below(r, (unsigned)NELEM(USERS));
    const char *user = USERS[u], *author = AUTHORS[u];
    char href[128];
    snprintf(href, sizeof href, "https://www.cnblogs.com/%s/p/%u.html", user, post_id);

    sbuf t = {0};
    title(&t, r);
    if (t.oom) {
        b->oom = true;
        free(t.p);
        return;
    }
    expected_line(e, href, t.p, t.len);

    sbuf summary = {0};
    unsigned nwords = 30 + below(r, 30);
    WORDS(&summary, r, SUMMARY_WORDS, nwords, "");
    unsigned day = 1 + below(r, 28), hh = below(r, 24), mm = below(r, 60);
    unsigned digg = below(r, 50), comm = below(r, 30), view = 50 + below(r, 5000);
    if (summary.oom) {
        b->oom = true;
        free(t.p);
        free(summary.p);
        return;
    }

    sb_printf(b,
              "        <article class=\"post-item\" data-post-id=\"%u\">\n"
              "            <section class=\"post-item-body\">\n"
              "                <div class=\"post-item-text\">\n"
              "                    <a class=\"post-item-title\" href=\"%s\" target=\"_blank\">%s</a>\n"
              "                    <p class=\"post-item-summary\">\n"
              "                        <a href=\"https://www.cnblogs.com/%s/\" target=\"_blank\"><img width=\"48\" height=\"48\" class=\"avatar\" src=\"https://pic.cnblogs.com/face/%u/20240%u%02u.png\" alt=\"\" /></a>\n"
              "                        %s...\n"
              "                    </p>\n"
              "                </div>\n",
              post_id, href, t.p, user, post_id % 99991u, 1 + day % 9, day, summary.p);
    sb_printf(b,
              "                <footer class=\"post-item-foot\">\n"
              "                    <a href=\"https://www.cnblogs.com/%s/\" class=\"post-item-author\"><span>%s</span></a>\n"
              "                    <span class=\"post-meta-item\">\n"
              "                        <span>2024-05-%02u %02u:%02u</span>\n"
              "                    </span>\n"
              "                    <a id=\"digg_control_%u\" title=\"推荐\" class=\"post-meta-item btn\" href=\"javascript:void(0)\" onclick=\"DiggPost('%s', %u, %u, 1);return false;\">\n"
              "                        <svg width=\"16\" height=\"16\" xmlns=\"http://www.w3.org/2000/svg\"><use xlink:href=\"#icon_digg\"></use></svg>\n"
              "                        <span id=\"digg_count_%u\">%u</span>\n"
              "                    </a>\n",
              user, author, day, hh, mm, post_id, user, post_id, post_id % 777u, post_id, digg);
    sb_printf(b,
              "                    <a title=\"评论\" class=\"post-meta-item btn\" href=\"%s#commentform\" target=\"_blank\">\n"
              "                        <svg width=\"16\" height=\"16\" xmlns=\"http://www.w3.org/2000/svg\"><use xlink:href=\"#icon_comment\"></use></svg>\n"
              "                        <span>%u</span>\n"
              "                    </a>\n"
              "                    <a title=\"阅读\" class=\"post-meta-item btn\" href=\"%s\" target=\"_blank\">\n"
              "                        <svg width=\"16\" height=\"16\" xmlns=\"http://www.w3.org/2000/svg\"><use xlink:href=\"#icon_views\"></use></svg>\n"
              "                        <span>%u</span>\n"
              "                    </a>\n"
              "                </footer>\n"
              "            </section>\n"
              "        </article>\n",
              href, comm, href, view);
    free(t.p);
    free(summary.p);
}

static void sidebar(sbuf *b, rng *r) {
    static const char *const boxes[] = {"推荐博客", "最新新闻", "阅读排行", "评论排行", "推荐排行"};
    sb_put(b, "        <div id=\"sidebar\" class=\"sidebar\">\n");
    for (size_t k = 0; k < NELEM(boxes); k++) {
        sb_put(b, "            <div class=\"card sidebar-card\">\n");
        sb_printf(b, "                <h4 class=\"card-title\">%s</h4>\n", boxes[k]);
        sb_put(b, "                <ul class=\"item-list\">\n");
        for (int i = 0; i < 8; i++) {
            unsigned u = below(r, (unsigned)NELEM(USERS));
            unsigned id = 16000000u + below(r, 999999);
            sb_printf(b,
                      "                    <li class=\"item\"><a href=\"https://www.cnblogs.com/%s/p/%u.html\" class=\"item-link\" title=\"%s\">",
                      USERS[u], id, AUTHORS[u]);
            unsigned n = 2 + below(r, 3);
            WORDS(b, r, ZH, n, "");
            sb_printf(b, "</a> <span class=\"item-count\">(%u)</span></li>\n", below(r, 9999));
        }
        sb_put(b, "                </ul>\n");
        sb_put(b, "            </div>\n");
    }
    sb_put(b, "            <!-- sidebar ad slot: ");
    WORDS(b, r, SUMMARY_WORDS, 20, "");
    sb_put(b, " -->\n");
    sb_put(b, "        </div>");
}

/* Page `page`'s HTML into b and its 20 expected lines into e. */
static void page_html(sbuf *b, sbuf *e, int page) {
    rng r = {0xB2A1D000ull + (uint64_t)page};
    static const char *const nav[][2] = {
        {"", "首页"}, {"news", "新闻"}, {"q", "博问"}, {"zone", "会员"}, {"ing", "闪存"},
        {"edu", "班级"}, {"pick", "精华"}, {"candidate", "候选"}, {"subscription", "订阅"},
        {"following", "关注"}};

    /* Drawn before the template, as the Python program does: the categories, the posts. */
    sbuf cates = {0}, posts = {0};
    for (size_t i = 0; i < NELEM(CATES); i++) {
        if (i > 0)
            sb_put(&cates, "\n");
        sb_printf(&cates,
                  "                <li class=\"cate-item\" data-id=\"%d\"><a href=\"/cate/%d/\" class=\"cate-link\">%s</a> <span class=\"cate-count\">(%u)</span></li>",
                  100 + (int)i, 100 + (int)i, CATES[i], below(&r, 20000));
    }
    for (int i = 0; i < BRAID_FIXTURE_POSTS_PER_PAGE; i++)
        article(&posts, e, &r, page, i);
    if (cates.oom || posts.oom) {
        b->oom = true;
        goto out;
    }

    sb_printf(b,
              "<!DOCTYPE html>\n"
              "<html lang=\"zh-cn\">\n"
              "<head>\n"
              "    <meta charset=\"utf-8\" />\n"
              "    <meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0\" />\n"
              "    <meta name=\"referrer\" content=\"always\" />\n"
              "    <title>博客园 - 开发者的网上家园 - 第 %d 页</title>\n"
              "    <meta name=\"keywords\" content=\"开发者,博客园,开发者,程序猿,程序媛,极客,编程,代码,开源,IT网站,Developer,Programmer,Coder,Geek,技术社区\" />\n"
              "    <meta name=\"description\" content=\"博客园是一个面向开发者的知识分享社区。自创建以来，博客园一直致力并专注于为开发者打造一个纯净的技术交流社区。\" />\n"
              "    <link rel=\"shortcut icon\" href=\"/favicon.ico\" type=\"image/x-icon\" />\n",
              page);
    sb_printf(b, "    <link rel=\"stylesheet\" href=\"/css/aggsite.min.css?v=%016llx\" />\n",
              (unsigned long long)rng_next(&r));
    sb_put(b, "    <style>\n");
    css_block(b, &r, 30);
    sb_put(b, "\n    </style>\n    <script>\n");
    js_block(b, &r, page);
    sb_put(b, "\n    </script>\n</head>\n<body>\n"
              "    <svg style=\"display:none\" xmlns=\"http://www.w3.org/2000/svg\">\n");
    static const char *const icons[] = {"icon_digg", "icon_comment", "icon_views"};
    for (int i = 0; i < 3; i++) {
        unsigned p1 = below(&r, 999), p2 = below(&r, 999), p3 = below(&r, 999),
                 p4 = below(&r, 999);
        sb_printf(b,
                  "        <symbol id=\"%s\" viewBox=\"0 0 1024 1024\"><path d=\"M%u %uL%u %uz\"></path></symbol>\n",
                  icons[i], p1, p2, p3, p4);
    }
    sb_put(b, "    </svg>\n"
              "    <div id=\"top_nav\" class=\"navbar\">\n"
              "        <nav id=\"nav_main\" class=\"navbar-main\">\n"
              "            <a href=\"https://www.cnblogs.com/\" class=\"navbar-brand\" title=\"开发者的网上家园\"><img src=\"/images/logo.svg\" alt=\"博客园Logo\" /></a>\n"
              "            <ul id=\"nav_left\" class=\"navbar-list navbar-left\">\n");
    for (size_t i = 0; i < NELEM(nav); i++)
        sb_printf(b,
                  "                <li><a href=\"https://www.cnblogs.com/%s\" class=\"navbar-item\">%s</a></li>\n",
                  nav[i][0], nav[i][1]);
    sb_put(b, "            </ul>\n"
              "            <form id=\"zzk_search\" class=\"navbar-search\" action=\"https://zzk.cnblogs.com/s\" method=\"get\"><input name=\"w\" id=\"zzk_search_input\" placeholder=\"代码改变世界\" type=\"search\" /></form>\n"
              "        </nav>\n"
              "    </div>\n"
              "    <!-- end top_nav -->\n"
              "    <div id=\"wrapper\">\n"
              "        <div id=\"side_nav\" class=\"side-left\">\n"
              "            <ul class=\"sidenav\">\n");
    sb_put(b, cates.p);
    sb_put(b, "\n            </ul>\n"
              "        </div>\n"
              "        <div id=\"main_flow\">\n");
    sb_printf(b,
              "            <div class=\"card headline\"><ul><li><a href=\"https://www.cnblogs.com/cmt/p/%u.html\" class=\"headline-link\" target=\"_blank\">【推荐】",
              below(&r, 99999999));
    WORDS(b, &r, ZH, 4, "");
    sb_put(b, "</a></li></ul></div>\n"
              "            <div id=\"post_list\" class=\"post-list\">\n");
    sb_put(b, posts.p);
    sb_put(b, "            </div>\n"
              "            <div id=\"pager_bottom\"><div id=\"paging_block\"><div class=\"pager\">");
    int lo = page - 4 > 1 ? page - 4 : 1, hi = page + 5 < 200 ? page + 5 : 200;
    for (int p = lo; p < hi; p++)
        sb_printf(b, "%s<a href=\"/sitehome/p/%d\" class=\"p_%d%s\">%d</a>", p > lo ? " " : "", p,
                  p, p == page ? " current" : "", p);
    sb_put(b, "</div></div></div>\n"
              "        </div>\n");
    sidebar(b, &r);
    sb_put(b, "\n    </div>\n"
              "    <div id=\"footer\" class=\"footer\">\n"
              "        <a href=\"https://www.cnblogs.com/about\" class=\"footer-link\">关于博客园</a> <a href=\"https://www.cnblogs.com/contact\" class=\"footer-link\">联系我们</a> <a href=\"https://www.cnblogs.com/ad\" class=\"footer-link\">广告服务</a>\n"
              "        &copy;2004-2024 <a href=\"https://www.cnblogs.com/\" class=\"footer-link\">博客园</a> Powered by .NET 8.0 on Kubernetes\n"
              "    </div>\n"
              "    <script src=\"https://common.cnblogs.com/scripts/jquery-2.2.0.min.js\"></script>\n");
    sb_printf(b, "    <script src=\"/js/aggsite.min.js?v=%016llx\"></script>\n",
              (unsigned long long)rng_next(&r));
    sb_put(b, "</body>\n</html>\n");
out:
    free(cates.p);
    free(posts.p);
}

int braid_fixture_page(int n, char **body, size_t *len) {
    if (n < 1 || n > BRAID_FIXTURE_PAGES || body == NULL || len == NULL)
        return BR_EINVAL;
    sbuf b = {0}, e = {0};
    page_html(&b, &e, n);
    free(e.p);
    if (b.oom || b.p == NULL) {
        free(b.p);
        return BR_ENOMEM;
    }
    *body = b.p;
    *len = b.len;
    return 0;
}

int braid_fixture_expected(char **tsv, size_t *len) {
    if (tsv == NULL || len == NULL)
        return BR_EINVAL;
    sbuf e = {0};
    for (int n = 1; n <= BRAID_FIXTURE_PAGES && !e.oom; n++) {
        sbuf b = {0};
        page_html(&b, &e, n);
        bool oom = b.oom;
        free(b.p);
        if (oom)
            e.oom = true;
    }
    if (e.oom || e.p == NULL) {
        free(e.p);
        return BR_ENOMEM;
    }
    *tsv = e.p;
    *len = e.len;
    return 0;
}

const char *braid_fixture_hello(size_t *len) {
    static const char hello[] = "Hello, World!";
    if (len != NULL)
        *len = sizeof hello - 1;
    return hello;
}

#define IDX_LINK(n) "<li><a href=\"page-" #n ".html\">page " #n "</a></li>\n"
#define IDX_TEN(d)                                                                              \
    IDX_LINK(d##0) IDX_LINK(d##1) IDX_LINK(d##2) IDX_LINK(d##3) IDX_LINK(d##4) IDX_LINK(d##5) \
    IDX_LINK(d##6) IDX_LINK(d##7) IDX_LINK(d##8) IDX_LINK(d##9)

const char *braid_fixture_index(size_t *len) {
    static const char index[] =
        "<!DOCTYPE html>\n<html lang=\"zh-cn\">\n<head>\n<meta charset=\"utf-8\" />\n"
        "<title>fixture index</title>\n</head>\n<body>\n<ul>\n"
        IDX_LINK(01) IDX_LINK(02) IDX_LINK(03) IDX_LINK(04) IDX_LINK(05) IDX_LINK(06)
        IDX_LINK(07) IDX_LINK(08) IDX_LINK(09)
        IDX_TEN(1) IDX_TEN(2) IDX_TEN(3) IDX_TEN(4) IDX_LINK(50)
        "</ul>\n</body>\n</html>\n";
    if (len != NULL)
        *len = sizeof index - 1;
    return index;
}
