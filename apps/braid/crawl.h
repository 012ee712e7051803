/* crawl.h: `braid crawl`, the tutorials' blog crawler as a tool (crawl.c; docs/apps-crawl.md, docs/apps.md).
 *
 * What other parts of the braid program and the tests call: the command itself, its
 * usage text, and the W9 benchmark entry `braid compare` uses.
 */
#ifndef BRAID_APP_CRAWL_H
#define BRAID_APP_CRAWL_H

#include <stddef.h>

/* The command: argv[0] is "crawl". Returns the exit status: 0 every URL done, 1 some
 * URL failed (or the crawl was interrupted or ran out of time), 2 bad usage. */
int braid_crawl_main(int argc, char **argv);
void braid_crawl_usage(void);

/* The six models by name, in the tutorial's order: "serial", "threads", "pipeline",
 * "pool", "process", "async". */
extern const char *const braid_crawl_models[6];

/* Crawls the fixture's 50 pages at base_url (titles extractor) with `model`,
 * concurrency as the model's default when 0; lines go to a memory sink; *seconds =
 * wall time from first fetch to last line; *lines = lines produced; on error a message
 * in err. Returns 0, BR_EINVAL (an unknown model, a NULL argument), or the first
 * failure's code (a page that failed: *lines counts what was produced). The "process"
 * model starts forkserver workers: the program must call br_process_main at the top of
 * main (BR_ESTATE otherwise). */
int braid_crawl_bench(const char *model, const char *base_url, int concurrency,
                      double *seconds, size_t *lines, char *err, size_t errcap);

#endif
