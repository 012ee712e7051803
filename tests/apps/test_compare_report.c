/* `braid compare --quick --report R.html`, with R.html opened in headless chromium: the
 * browser's DOM holds one chart per table (seconds for every workload, memory for the
 * waiting ones), one bar per row of the text output, and every bar shows the figure the
 * text output printed for that row (its label, its text, its data-value), at a length
 * proportional to it. Skipped, with the reason, when no chromium is installed.
 *
 * braid-test-timeout: 600 (compare runs every row three times; the checks don't time it)
 */
#include "harness.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char *find_chromium(void) {
    static const char *const names[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser",
                                        "/usr/bin/google-chrome"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (access(names[i], X_OK) == 0)
            return names[i];
    return NULL;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "re");
    BR_CHECK(f != NULL);
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (cap - len < 4096) {
            cap = cap * 2 + 8192;
            buf = realloc(buf, cap);
            BR_CHECK(buf != NULL);
        }
        size_t k = fread(buf + len, 1, cap - len - 1, f);
        len += k;
        if (k == 0)
            break;
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

/* Runs braid compare in a child with stdout to out_path and, when err_path isn't NULL,
 * stderr to err_path (the child's own: this process's stderr stays where the test's
 * failures are reported); its exit status. Waits within four hang guards (compare runs
 * many rows; only a hang reaches that); a hang prints the child's process tree and
 * kills all of it, so no stuck grandchild holds the test's output open. */
static int run_compare(char **argv, int argc, const char *out_path, const char *err_path) {
    fflush(NULL);
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        if (freopen(out_path, "w", stdout) == NULL)
            _exit(99);
        if (err_path != NULL && freopen(err_path, "w", stderr) == NULL)
            _exit(98);
        int rc = braid_compare_main(argc, argv);
        fflush(NULL);
        _exit(rc);
    }
    int st = br_test_wait_child_until(pid, br_now() + 4 * br_test_hang_guard_ns());
    BR_CHECK(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* The text between `key="` and the next quote, in [tag, end). */
static bool attr_text(const char *tag, const char *end, const char *key, char *buf,
                      size_t cap) {
    char k[48];
    snprintf(k, sizeof k, " %s=\"", key);
    const char *p = strstr(tag, k);
    if (p == NULL || p >= end)
        return false;
    p += strlen(k);
    const char *q = strchr(p, '"');
    if (q == NULL || q > end)
        return false;
    snprintf(buf, cap, "%.*s", (int)(q - p), p);
    return true;
}

/* The text output's row for (title, label): the line that starts with title, then
 * spaces, then label followed by two spaces. NULL if none. */
static const char *find_line(const char *out, const char *title, const char *label,
                             char *line, size_t cap) {
    for (const char *p = out; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
        size_t n = strcspn(p, "\n");
        snprintf(line, cap, "%.*s", (int)n, p);
        size_t tl = strlen(title);
        if (strncmp(line, title, tl) != 0 || line[tl] != ' ')
            continue;
        const char *q = line + tl;
        while (*q == ' ')
            q++;
        size_t ll = strlen(label);
        if (strncmp(q, label, ll) == 0 && q[ll] == ' ' && q[ll + 1] == ' ')
            return q + ll;
    }
    return NULL;
}

static int count_text_rows(const char *out) {
    int n = 0;
    for (const char *p = out; *p;) {
        if ((p[0] == 'W' || p[0] == 'I') && ((p[1] >= '0' && p[1] <= '9') || p[1] == 'O') &&
            p[2] == ' ')
            n++;
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return n;
}

static void report_in_chromium(void **state) {
    (void)state;
    const char *chromium = find_chromium();
    if (chromium == NULL) {
        fprintf(stderr, "skipped: no chromium (/usr/bin/chromium) to open the report in\n");
        skip();
    }
    char dir[] = "/tmp/braid-report-test-XXXXXX";
    BR_CHECK(mkdtemp(dir) != NULL);
    char out_path[256], html_path[256], profile[256];
    snprintf(out_path, sizeof out_path, "%s/out.txt", dir);
    snprintf(html_path, sizeof html_path, "%s/R.html", dir);
    snprintf(profile, sizeof profile, "%s/profile", dir);
    /* one round: the report's shape doesn't depend on the count, and the crawl's six models
     * make each round cost ~15 s under a sanitizer */
    char *argv[] = {"compare", "--quick", "--rounds", "1", "--report", html_path, NULL};
    int crc = run_compare(argv, 6, out_path, NULL);
    char *out = slurp(out_path);
    if (crc != 0) /* a row that failed says why in its table line */
        fail_msg("braid compare exited %d:\n%s", crc, out);
    char *html = slurp(html_path);
    BR_CHECK(strstr(out, "\nreport: ") != NULL);

    /* the file as written fetches nothing */
    static const char *const banned[] = {"http:", "https:", "src=", "href=", "url(",
                                         "@import"};
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
        if (strstr(html, banned[i]) != NULL)
            fail_msg("the report holds '%s'", banned[i]);

    /* the browser's DOM */
    char url[300], udd[300];
    snprintf(url, sizeof url, "file://%s", html_path);
    snprintf(udd, sizeof udd, "--user-data-dir=%s", profile);
    const char *cargv[] = {chromium, "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", "--disable-dev-shm-usage", udd, "--dump-dom",
                           url, NULL};
    br_completed res;
    BR_CHECK_OK(br_run(cargv, &(br_subprocess_opts){.capture_output = true,
                                                     .deadline = br_test_hang_guard()},
                       &res));
    if (res.returncode != 0 || res.out == NULL || res.out_len == 0)
        fail_msg("chromium exited %d: %.500s", res.returncode, res.err ? res.err : "");
    const char *dom = res.out;
    BR_CHECK(strstr(dom, "<svg") != NULL);

    /* every chart, every bar: the text output's figure for the same row */
    int rows = count_text_rows(out), svgs = 0, bars = 0, seconds_bars = 0, mem_bars = 0;
    BR_CHECK(rows >= 11); /* W1 5, W2 3, IO 3 (+ W9 6 with the http layer) */
    for (const char *s = strstr(dom, "<svg"); s != NULL; s = strstr(s + 1, "<svg")) {
        const char *send = strstr(s, "</svg>");
        BR_CHECK(send != NULL);
        const char *tag_end = strchr(s, '>');
        char aria[300], title[64];
        BR_CHECK(attr_text(s, tag_end, "aria-label", aria, sizeof aria));
        const char *colon = strchr(aria, ':');
        BR_CHECK(colon != NULL);
        snprintf(title, sizeof title, "%.*s", (int)(colon - aria), aria);
        bool mem = strstr(aria, "memory") != NULL;
        svgs++;
        double ratio = -1;
        for (const char *r = strstr(s, "<rect"); r != NULL && r < send;
             r = strstr(r + 1, "<rect")) {
            const char *rend = strchr(r, '>');
            char label[128], dv[64], width[64];
            BR_CHECK(attr_text(r, rend, "data-label", label, sizeof label));
            BR_CHECK(attr_text(r, rend, "data-value", dv, sizeof dv));
            BR_CHECK(attr_text(r, rend, "width", width, sizeof width));
            /* the bar's text, as the browser shows it: its <title> "label: TEXT" */
            const char *t = strstr(rend, "<title>");
            BR_CHECK(t != NULL && t < send);
            t += 7;
            char text[160];
            snprintf(text, sizeof text, "%.*s", (int)strcspn(t, "<"), t);
            size_t ll = strlen(label);
            BR_CHECK(strncmp(text, label, ll) == 0 && text[ll] == ':');
            const char *fig = text + ll + 2; /* "0.075 s" or "7.6 MiB" */
            char line[512];
            const char *rest = find_line(out, title, label, line, sizeof line);
            if (rest == NULL)
                fail_msg("no text row for '%s' '%s'", title, label);
            char want[64];
            if (mem) {
                /* the row's memory column: the number before " MiB" */
                const char *m = strstr(rest, " MiB");
                BR_CHECK(m != NULL);
                const char *b = m;
                while (b > rest && b[-1] != ' ')
                    b--;
                snprintf(want, sizeof want, "%.*s MiB", (int)(m - b), b);
                mem_bars++;
            } else {
                /* the seconds column: the token after the workers */
                char *end;
                strtol(rest, &end, 10);
                while (*end == ' ')
                    end++;
                snprintf(want, sizeof want, "%.*s s", (int)strcspn(end, " "), end);
                seconds_bars++;
            }
            if (strcmp(fig, want) != 0 && !(strncmp(fig, want, strlen(want)) == 0 &&
                                            strcmp(fig + strlen(want), " (noise)") == 0))
                fail_msg("%s / %s: the chart shows '%s', the table printed '%s'", title,
                         label, fig, want);
            double v = strtod(dv, NULL), printed = strtod(want, NULL);
            BR_CHECK(fabs(v - printed) <= (mem ? 0.051 : 0.00051));
            double w = strtod(width, NULL);
            if (v > 0.01) {
                if (ratio < 0)
                    ratio = w / v;
                else if (fabs(w / v - ratio) > 0.01 * ratio)
                    fail_msg("%s / %s: width %.2f for %g, not proportional (%.2f per unit)",
                             title, label, w, v, ratio);
            }
            bars++;
        }
    }
    int io_rows = 0;
    for (const char *p = strstr(out, " MiB  "); p != NULL; p = strstr(p + 1, " MiB  "))
        io_rows++;
    BR_CHECK_EQ(seconds_bars, rows);
    BR_CHECK_EQ(mem_bars, io_rows);
    BR_CHECK_EQ(bars, rows + io_rows);
    /* W1, W2: one chart each; IO (and W9): two each */
    BR_CHECK_EQ(svgs, rows > 11 ? 6 : 4);
    br_completed_destroy(&res);
    free(out);
    free(html);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    BR_CHECK_EQ(system(cmd), 0);
}

/* Runs compare with argv in a child, stdout and stderr into *out and *err (caller frees);
 * its exit status. */
static int run_capture(char **argv, int argc, char **out, char **err) {
    char dir[] = "/tmp/braid-compare-test-XXXXXX";
    BR_CHECK(mkdtemp(dir) != NULL);
    char out_path[256], err_path[256];
    snprintf(out_path, sizeof out_path, "%s/out.txt", dir);
    snprintf(err_path, sizeof err_path, "%s/err.txt", dir);
    int rc = run_compare(argv, argc, out_path, err_path);
    *out = slurp(out_path);
    *err = slurp(err_path);
    unlink(out_path);
    unlink(err_path);
    rmdir(dir);
    return rc;
}

/* --with-python without an interpreter: a clear message, the braid rows, exit 0. */
static void with_python_absent(void **state) {
    (void)state;
    char *argv[] = {"compare", "--quick", "--rounds", "1", "--no-report", "--with-python",
                    "--python", "/nonexistent/python3", "--only", "cpu", NULL};
    char *out, *err;
    BR_CHECK_EQ(run_capture(argv, 10, &out, &err), 0);
    if (strstr(err, "--with-python: /nonexistent/python3 isn't there, so the Python rows "
                    "are left out") == NULL)
        fail_msg("stderr: %s", err);
    BR_CHECK(strstr(out, "Python:") == NULL);
    BR_CHECK(strstr(out, "one thread") != NULL);
    BR_CHECK(strstr(out, "\nreport: ") == NULL); /* --no-report */
    free(out);
    free(err);
}

/* --with-python with the peers (BRAID_PYTHON_PEERS, else ../shared/peers/python from the
 * source tree's parent): the Python W1 rows, all correct, in the same table and the
 * report, their bars marked. Skipped where the peers aren't. */
static void with_python_rows(void **state) {
    (void)state;
    const char *peers = getenv("BRAID_PYTHON_PEERS");
    char buf[512];
    if (peers == NULL || peers[0] == '\0') {
        /* this file is SRC/tests/apps/test_compare_report.c: SRC/../shared/peers/python */
        snprintf(buf, sizeof buf, "%s", __FILE__);
        char *slash = strrchr(buf, '/');
        if (slash == NULL)
            skip();
        snprintf(slash, sizeof buf - (size_t)(slash - buf), "/../../../shared/peers/python");
        peers = buf;
    }
    char probe[600];
    snprintf(probe, sizeof probe, "%s/w1_primes.py", peers);
    if (access("/usr/bin/python3", X_OK) != 0 || access(probe, R_OK) != 0) {
        fprintf(stderr, "skipped: no /usr/bin/python3 or no %s\n", probe);
        skip();
    }
    char html[] = "/tmp/braid-compare-py-XXXXXX";
    int fd = mkostemp(html, O_CLOEXEC);
    BR_CHECK(fd >= 0);
    close(fd);
    char *argv[] = {"compare", "--quick", "--rounds", "1", "--report", html,
                    "--with-python", "--peers", (char *)peers, "--only", "cpu", NULL};
    char *out, *err;
    BR_CHECK_EQ(run_capture(argv, 11, &out, &err), 0);
    static const char *const labels[] = {"Python: one thread", "Python: thread pool",
                                         "Python: process pool"};
    for (int i = 0; i < 3; i++) {
        char line[512];
        const char *rest = find_line(out, "W1 is_prime x8", labels[i], line, sizeof line);
        if (rest == NULL)
            fail_msg("no row '%s' in:\n%s", labels[i], out);
        BR_CHECK(strstr(rest, " 8/8 ok") != NULL);
    }
    BR_CHECK(strstr(out, "Python rows: the peer's w1_primes.py with 8 of its 100 calls") != NULL);
    char *doc = slurp(html);
    int py = 0;
    for (const char *p = strstr(doc, "class=\"bar py"); p != NULL;
         p = strstr(p + 1, "class=\"bar py"))
        py++;
    BR_CHECK(py >= 3); /* W1's three (W9's six are left out by --only cpu) */
    free(doc);
    unlink(html);
    free(out);
    free(err);
}

/* --only: bad lists are refused (exit 2, saying what it wants); `--only cpu` runs W1 and
 * W2 alone, every row correct, with their verdict: no IO or W9 row, no I/O-bound verdict,
 * no crawl section. (`--only cpu --only io` is the sanitizer trees' JSON run,
 * apps.braid.compare_quick_json.) */
static void only_parts(void **state) {
    (void)state;
    static const char *const bad[] = {"", "cpu,", ",cpu", "cpu,cpu", "gpu", "cpu;io", "CPU"};
    char *out, *err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[] = {"compare", "--quick", "--no-report", "--only", (char *)bad[i], NULL};
        BR_CHECK_EQ(run_capture(argv, 5, &out, &err), 2);
        if (strstr(err, "--only wants a comma-separated list of cpu, io and crawl") == NULL)
            fail_msg("--only '%s': stderr: %s", bad[i], err);
        free(out);
        free(err);
    }
    char *twice[] = {"compare", "--quick", "--no-report", "--only", "io", "--only", "io", NULL};
    BR_CHECK_EQ(run_capture(twice, 7, &out, &err), 2); /* repeated, but each once */
    BR_CHECK(strstr(err, "--only wants") != NULL);
    free(out);
    free(err);
    char *argv[] = {"compare", "--quick", "--rounds", "1", "--no-report", "--only", "cpu",
                    NULL};
    BR_CHECK_EQ(run_capture(argv, 7, &out, &err), 0);
    static const char *const rows[][2] = {
        {"W1 is_prime x8", "one thread"},   {"W1 is_prime x8", "braid threads"},
        {"W1 is_prime x8", "braid processes"}, {"W2 fib 20..29", "one thread"},
        {"W2 fib 20..29", "process pool(3)"}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char line[512];
        const char *rest = find_line(out, rows[i][0], rows[i][1], line, sizeof line);
        if (rest == NULL)
            fail_msg("no row '%s %s' in:\n%s", rows[i][0], rows[i][1], out);
        BR_CHECK(strstr(rest, " ok") != NULL);
    }
    BR_CHECK(strstr(out, "\nverdict: ") != NULL);
    BR_CHECK(strstr(out, "IO 1000") == NULL);
    BR_CHECK(strstr(out, "I/O-bound") == NULL);
    BR_CHECK(strstr(out, "W9 ") == NULL);
    BR_CHECK(strstr(out, "The crawl") == NULL);
    free(out);
    free(err);
}

/* --mpi 2: with the MPI executor built (braid-compare-mpi under braid-mpirun, which CI
 * has wherever MPI is built: scripts/deps.sh installs openmpi-bin with libopenmpi-dev),
 * W1 gains the row "MPI ranks, map" on 2 worker ranks, all 8 results correct, in the
 * table and in the report. Built without MPI, --mpi is refused: exit 2, saying why. Bad
 * counts are refused either way. Under ThreadSanitizer only the refusal is checked (the
 * MPI tests' rule, tests/mpi/tests.cmake). */
static void mpi_row(void **state) {
    (void)state;
    char *out, *err;
    char *bad[] = {"compare", "--quick", "--no-report", "--mpi", "0", NULL};
    BR_CHECK_EQ(run_capture(bad, 5, &out, &err), 2);
    BR_CHECK(strstr(err, "--mpi wants 1..64") != NULL);
    free(out);
    free(err);
#if defined(BRAID_APP_MPI) && defined(__SANITIZE_THREAD__)
    /* as every MPI test under ThreadSanitizer (tests/mpi/tests.cmake): Open MPI's own
     * reports stop MPI_Init in every rank, so the row can't run here */
    fprintf(stderr, "mpi_row: the MPI row isn't run under ThreadSanitizer (Open MPI's own "
                    "reports stop MPI_Init); ASan+UBSan and the plain build run it\n");
    out = err = NULL;
#elif defined(BRAID_APP_MPI)
#ifdef __SANITIZE_ADDRESS__
    /* braid-compare-mpi is built with ASan too: Open MPI's own leaks at init and finalize
     * are suppressed as for the MPI tests (tests/mpi/tests.cmake), through the
     * environment mpirun's ranks inherit. SRC/tests/apps/this file: SRC/scripts/. */
    char supp[1024];
    snprintf(supp, sizeof supp, "%s", __FILE__);
    char *cut = strstr(supp, "/tests/apps/");
    BR_CHECK(cut != NULL);
    snprintf(cut, sizeof supp - (size_t)(cut - supp),
             "/scripts/lsan-mpi.supp:print_suppressions=0:fast_unwind_on_malloc=0");
    char lsan[1100];
    snprintf(lsan, sizeof lsan, "suppressions=%s", supp);
    setenv("LSAN_OPTIONS", lsan, 1);
    setenv("OMPI_MCA_mca_base_component_disable_dlclose", "1", 1);
#endif
    char html[] = "/tmp/braid-compare-mpi-XXXXXX";
    int fd = mkostemp(html, O_CLOEXEC);
    BR_CHECK(fd >= 0);
    close(fd);
    char *argv[] = {"compare", "--quick", "--rounds", "1", "--report", html, "--mpi", "2",
                    "--only", "cpu", NULL};
    BR_CHECK_EQ(run_capture(argv, 10, &out, &err), 0);
    char line[512];
    const char *rest = find_line(out, "W1 is_prime x8", "MPI ranks, map", line, sizeof line);
    if (rest == NULL)
        fail_msg("no MPI row in:\n%s\nstderr:\n%s", out, err);
    int workers = 0;
    BR_CHECK_EQ(sscanf(rest, "%d", &workers), 1);
    BR_CHECK_EQ(workers, 2);
    BR_CHECK(strstr(rest, " 8/8 ok") != NULL);
    char *doc = slurp(html);
    BR_CHECK(strstr(doc, "MPI ranks, map") != NULL);
    free(doc);
    unlink(html);
#else
    char *argv[] = {"compare", "--quick", "--no-report", "--mpi", "2", NULL};
    BR_CHECK_EQ(run_capture(argv, 5, &out, &err), 2);
    if (strstr(err, "--mpi: this braid was built without MPI") == NULL)
        fail_msg("stderr: %s", err);
    BR_CHECK(strstr(out, "MPI ranks") == NULL);
#endif
    free(out);
    free(err);
}

BR_TEST_MAIN(cmocka_unit_test(report_in_chromium), cmocka_unit_test(only_parts),
             cmocka_unit_test(with_python_absent),
             cmocka_unit_test(with_python_rows), cmocka_unit_test(mpi_row))
