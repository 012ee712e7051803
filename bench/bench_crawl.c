/* bench_crawl: BENCH.md's W9, the tutorial's crawl of the fixture's 50 pages, under each of
 * braid crawl's six models (apps/braid/crawl.c through braid_crawl_bench).
 *
 *   bench_crawl [--base URL] [--latency MS] [--model M] [--concurrency N]
 *
 * Without --base it serves the fixture itself on loopback (apps/braid/fixture_server.c)
 * with --latency (default 100 ms, W9's latency-bound case) added to every response;
 * with --base it crawls that server (nginx, or the Python peer's w9_slow_server.py).
 * Each model's run must produce the fixture's 1000 lines, else the program exits 1.
 * Figure: seconds from the first fetch to the last line, variant = the model's name.
 */
#include "bench.h"

#include "crawl.h"
#include "fixture.h"

int main(int argc, char **argv) {
    /* The process model's workers come from the forkserver, which re-runs this program
     * and is diverted here. */
    br_process_main(argc, argv);
    const char *base = NULL, *only = NULL;
    long latency_ms = 100, conc = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--base") == 0 && i + 1 < argc)
            base = argv[++i];
        else if (strcmp(argv[i], "--latency") == 0 && i + 1 < argc)
            latency_ms = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--concurrency") == 0 && i + 1 < argc)
            conc = strtol(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_crawl [--base URL] [--latency MS] [--model M] "
                            "[--concurrency N]\n");
            return 2;
        }
    }
    braid_fixture_server *fx = NULL;
    if (base == NULL) {
        BENCH_CHECK_OK(braid_fixture_server_start("127.0.0.1", 0,
                                                  (int64_t)latency_ms * 1000000, &fx));
        base = braid_fixture_server_url(fx);
    }
    for (int m = 0; m < 6; m++) {
        const char *model = braid_crawl_models[m];
        if (only != NULL && strcmp(only, model) != 0)
            continue;
        double secs = 0;
        size_t lines = 0;
        char err[256];
        int rc = braid_crawl_bench(model, base, (int)conc, &secs, &lines, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "bench_crawl: %s: %s\n", model, err);
            return 1;
        }
        BENCH_CHECK_EQ(lines, 1000);
        fprintf(stderr, "W9 %-8s %.4f s, %zu lines\n", model, secs, lines);
        bench_emit("W9", model, "braid", "seconds", secs, "s");
    }
    if (fx != NULL)
        braid_fixture_server_stop(fx);
    return 0;
}
