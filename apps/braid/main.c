/* braid: the program beside the library. One file per subcommand; this one dispatches.
 *
 *   braid compare [--quick] [--json] [--threads N]   the tutorials' experiment (compare.c)
 *   braid --help | help [command]                    usage
 *   braid --version
 *
 * `braid crawl` and `braid serve` join the table below when their layers land.
 */
#include <braid.h>

#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct command {
    const char *name;
    const char *summary;
    braid_cmd_fn run;
    void (*usage)(void);
} command;

static const command commands[] = {
    {"compare", "run the tutorials' CPU-bound experiment under each model, print a table",
     braid_compare_main, braid_compare_usage},
#ifdef BRAID_APP_HTTP
    {"serve", "the tutorials' Flask service (/is_prime, /, /hello) or the crawl fixture",
     braid_serve_main, braid_serve_usage},
    {"crawl", "fetch pages and extract records (the tutorials' crawler, six models)",
     braid_crawl_main, braid_crawl_usage},
#endif
};
enum { NCOMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *out) {
    fprintf(out,
            "braid %s: Python's concurrency toolkit for C\n"
            "\n"
            "usage: braid <command> [options]\n"
            "       braid help <command>\n"
            "       braid --version\n"
            "\n"
            "commands:\n",
            br_version());
    for (int i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

static const command *find(const char *name) {
    for (int i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv) {
    /* A child braid started with the spawn method runs its task here and never
     * returns; in every other run this returns at once. */
    br_process_main(argc, argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *arg = argv[1];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "help") == 0) {
        if (argc > 2 && strcmp(arg, "help") == 0) {
            const command *c = find(argv[2]);
            if (c == NULL) {
                fprintf(stderr, "braid: no command '%s'\n", argv[2]);
                return 2;
            }
            c->usage();
            return 0;
        }
        usage(stdout);
        return 0;
    }
    if (strcmp(arg, "--version") == 0) {
        printf("braid %s\n", br_version());
        return 0;
    }
    const command *c = find(arg);
    if (c == NULL) {
        fprintf(stderr, "braid: no command '%s'\n\n", arg);
        usage(stderr);
        return 2;
    }
    return c->run(argc - 1, argv + 1);
}
