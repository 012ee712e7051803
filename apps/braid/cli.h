/* cli.h: what main.c needs from each subcommand file of the braid program. */
#ifndef BRAID_APP_CLI_H
#define BRAID_APP_CLI_H

/* A subcommand: argv[0] is its name; returns the process exit status (0 success, 1
 * failure, 2 bad usage). */
typedef int (*braid_cmd_fn)(int argc, char **argv);

/* compare.c: the tutorials' threads-vs-processes-vs-coroutines experiment. */
int braid_compare_main(int argc, char **argv);
void braid_compare_usage(void);

/* serve.c: the tutorials' Flask service, or the crawl fixture (needs the http layer). */
int braid_serve_main(int argc, char **argv);
void braid_serve_usage(void);
/* crawl.c: the tutorials' crawler (crawl.h; needs the http layer). */
int braid_crawl_main(int argc, char **argv);
void braid_crawl_usage(void);

#endif
