/* The crawl fixture's pages: byte for byte the Python peer's generator's output
 * (bench/peers/fixture/gen_site.py, run into a temporary directory when python3 is
 * there), and the SHA256SUMS it writes checked against braid's own bytes.
 *
 * braid-test-timeout: 120
 */
#include "harness.h"

#include "fixture.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char gen_dir[256];  /* the Python generator's output */
static char own_dir[256];  /* braid's bytes, with the generator's SHA256SUMS */

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap);
    size_t got;
    while (p != NULL && (got = fread(p + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *q = realloc(p, cap *= 2);
            if (q == NULL)
                free(p);
            p = q;
        }
    }
    fclose(f);
    *len = n;
    return p;
}

static void spit(const char *path, const char *p, size_t len) {
    FILE *f = fopen(path, "wb");
    BR_CHECK(f != NULL);
    BR_CHECK_EQ(fwrite(p, 1, len, f), len);
    BR_CHECK_EQ(fclose(f), 0);
}

static const char *generator(void) {
    static char path[1024];
    const char *env = getenv("BRAID_FIXTURE_GEN");
    if (env != NULL)
        return env;
    char here[1024];
    snprintf(here, sizeof here, "%s", __FILE__);
    /* tests/apps/test_fixture.c -> <source>/bench/peers/fixture/gen_site.py */
    snprintf(path, sizeof path, "%s/../../bench/peers/fixture/gen_site.py", dirname(here));
    return path;
}

/* Runs the generator once per test process; false (the test skipped) without python3. */
static bool python_site(void) {
    if (gen_dir[0] != '\0')
        return true;
    if (access("/usr/bin/python3", X_OK) != 0) {
        print_message("skipped: no /usr/bin/python3 to run the Python generator\n");
        return false;
    }
    const char *gen = generator();
    if (access(gen, R_OK) != 0) {
        print_message("skipped: the Python generator %s is missing\n", gen);
        return false;
    }
    char tmpl[] = "/tmp/braid-fixture-XXXXXX";
    BR_CHECK(mkdtemp(tmpl) != NULL);
    snprintf(gen_dir, sizeof gen_dir, "%s/py", tmpl);
    snprintf(own_dir, sizeof own_dir, "%s/own", tmpl);
    BR_CHECK_EQ(mkdir(own_dir, 0700), 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' >/dev/null", gen, gen_dir);
    BR_CHECK_EQ(system(cmd), 0);
    return true;
}

static void cleanup(void) {
    if (gen_dir[0] == '\0')
        return;
    char cmd[600];
    char *top = strdup(gen_dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dirname(top));
    free(top);
    (void)!system(cmd);
}

static void check_same(const char *name, const char *mine, size_t len) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", gen_dir, name);
    size_t plen = 0;
    char *theirs = slurp(path, &plen);
    BR_CHECK(theirs != NULL);
    if (plen != len || memcmp(theirs, mine, len) != 0) {
        size_t i = 0;
        while (i < len && i < plen && theirs[i] == mine[i])
            i++;
        size_t from = i > 60 ? i - 60 : 0;
        fail_msg("%s differs at byte %zu (sizes %zu vs python's %zu)\n braid:  %.120s\n python: %.120s",
                 name, i, len, plen, mine + from, theirs + from);
    }
    free(theirs);
    snprintf(path, sizeof path, "%s/%s", own_dir, name);
    spit(path, mine, len);
}

static void pages_match_python(void **state) {
    (void)state;
    if (!python_site()) {
        skip();
        return;
    }
    for (int n = 1; n <= BRAID_FIXTURE_PAGES; n++) {
        char *body = NULL, name[32];
        size_t len = 0;
        BR_CHECK_OK(braid_fixture_page(n, &body, &len));
        BR_CHECK_EQ(strlen(body), len);
        snprintf(name, sizeof name, "page-%02d.html", n);
        check_same(name, body, len);
        free(body);
    }
    char *tsv = NULL;
    size_t len = 0;
    BR_CHECK_OK(braid_fixture_expected(&tsv, &len));
    check_same("expected.tsv", tsv, len);
    free(tsv);
    const char *hello = braid_fixture_hello(&len);
    check_same("hello.txt", hello, len);

    /* The generator's checksums, over braid's own bytes. */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp '%s/SHA256SUMS' '%s/' && cd '%s' && sha256sum --quiet -c SHA256SUMS",
             gen_dir, own_dir, own_dir);
    BR_CHECK_EQ(system(cmd), 0);
    cleanup();
}

/* Without python: what a crawler relies on, checked on braid's bytes alone. */
static void expected_matches_pages(void **state) {
    (void)state;
    char *tsv = NULL;
    size_t tlen = 0;
    BR_CHECK_OK(braid_fixture_expected(&tsv, &tlen));
    size_t lines = 0;
    for (size_t i = 0; i < tlen; i++)
        lines += tsv[i] == '\n';
    BR_CHECK_EQ(lines, BRAID_FIXTURE_PAGES * BRAID_FIXTURE_POSTS_PER_PAGE);
    BR_CHECK_EQ(tsv[tlen - 1], '\n');

    /* Every line's HREF appears in its page, as a post-item-title link, in order; the
     * pages hold exactly 20 such links. */
    char *line = tsv;
    for (int n = 1; n <= BRAID_FIXTURE_PAGES; n++) {
        char *body = NULL;
        size_t len = 0;
        BR_CHECK_OK(braid_fixture_page(n, &body, &len));
        BR_CHECK(len > 50000 && len < 100000);
        BR_CHECK(strstr(body, "<!DOCTYPE html>") == body);
        const char *at = body;
        int found = 0;
        while ((at = strstr(at, "<a class=\"post-item-title\" href=\"")) != NULL) {
            at += strlen("<a class=\"post-item-title\" href=\"");
            char *tab = strchr(line, '\t');
            BR_CHECK(tab != NULL);
            BR_CHECK(strncmp(at, line, (size_t)(tab - line)) == 0);
            BR_CHECK_EQ(at[tab - line], '"');
            line = strchr(tab, '\n') + 1;
            found++;
        }
        BR_CHECK_EQ(found, BRAID_FIXTURE_POSTS_PER_PAGE);
        free(body);
    }
    BR_CHECK(line == tsv + tlen);
    /* decoded entities: the titles hold & and < but never the references */
    BR_CHECK(strstr(tsv, "&amp;") == NULL && strstr(tsv, "&lt;") == NULL);
    BR_CHECK(strchr(tsv, '&') != NULL && strchr(tsv, '<') != NULL);
    free(tsv);

    /* deterministic: twice the same bytes */
    char *a = NULL, *b = NULL;
    size_t al = 0, bl = 0;
    BR_CHECK_OK(braid_fixture_page(7, &a, &al));
    BR_CHECK_OK(braid_fixture_page(7, &b, &bl));
    BR_CHECK_EQ(al, bl);
    BR_CHECK(memcmp(a, b, al) == 0);
    free(a);
    free(b);
}

static void bad_arguments(void **state) {
    (void)state;
    char *body = NULL;
    size_t len = 0;
    BR_CHECK_ERR(braid_fixture_page(0, &body, &len), BR_EINVAL);
    BR_CHECK_ERR(braid_fixture_page(BRAID_FIXTURE_PAGES + 1, &body, &len), BR_EINVAL);
    BR_CHECK_ERR(braid_fixture_page(-3, &body, &len), BR_EINVAL);
    BR_CHECK_ERR(braid_fixture_page(1, NULL, &len), BR_EINVAL);
    BR_CHECK_ERR(braid_fixture_page(1, &body, NULL), BR_EINVAL);
    BR_CHECK(body == NULL);
    BR_CHECK_ERR(braid_fixture_expected(NULL, &len), BR_EINVAL);
}

static void index_links_every_page(void **state) {
    (void)state;
    size_t len = 0;
    const char *idx = braid_fixture_index(&len);
    BR_CHECK_EQ(strlen(idx), len);
    const char *at = idx;
    for (int n = 1; n <= BRAID_FIXTURE_PAGES; n++) {
        char want[64];
        snprintf(want, sizeof want, "<a href=\"page-%02d.html\">", n);
        at = strstr(at, want);
        BR_CHECK(at != NULL);
    }
    int links = 0;
    for (at = idx; (at = strstr(at, "<a href=")) != NULL; at++)
        links++;
    BR_CHECK_EQ(links, BRAID_FIXTURE_PAGES);
    const char *hello = braid_fixture_hello(&len);
    BR_CHECK_EQ(len, 13);
    BR_CHECK(memcmp(hello, "Hello, World!", 13) == 0);
}

BR_TEST_MAIN(cmocka_unit_test(pages_match_python), cmocka_unit_test(expected_matches_pages),
             cmocka_unit_test(bad_arguments), cmocka_unit_test(index_links_every_page))
