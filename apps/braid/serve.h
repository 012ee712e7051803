/* serve.h: `braid serve`, the tutorials' Flask service on braid's http server, as
 * functions tests can call in-process.
 *
 *   GET /is_prime/<n1,n2,...>  {"2": true, "4": false, ...} computed on a process pool
 *                              (decimal int64s, at most BRAID_SERVE_MAX_NUMBERS; else 400)
 *   GET /                      three backend reads on a thread pool (0.1/0.2/0.3 s),
 *                              {"result_file": ..., "result_db": ..., "result_api": ...}
 *   GET /hello                 "Hello, World!"
 *   --fixture                  the crawl fixture site instead (fixture.h)
 */
#ifndef BRAID_APP_SERVE_H
#define BRAID_APP_SERVE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum { BRAID_SERVE_MAX_NUMBERS = 1000 };

typedef struct braid_serve_opts {
    const char *host;          /* NULL: "127.0.0.1" */
    int port;                  /* 0: any (the default of the command is 8000) */
    int workers;               /* process-pool workers (0: 2) */
    int threads;               /* thread-pool workers for / (0: 6) */
    FILE *access_log;          /* one line per request, or NULL */
    bool fixture;              /* serve the crawl fixture instead */
    int64_t latency_ns;        /* the fixture's latency */
    int64_t request_timeout_ns; /* a request's work is cancelled after it (0: 30 s): 504 */
} braid_serve_opts;

typedef struct braid_serve braid_serve;

/* Starts the pools (none for the fixture) and the server on its own thread. 0 or a code
 * (BR_EADDRINUSE, ...). */
int braid_serve_start(const braid_serve_opts *opts, braid_serve **out);
/* "http://HOST:PORT/" */
const char *braid_serve_url(const braid_serve *s);
/* The process pool's live worker pids (tests): how many, up to cap into pids. */
int braid_serve_worker_pids(braid_serve *s, int *pids, int cap);
/* How many /is_prime and / handlers are running now (tests: a request is in progress). */
int braid_serve_in_flight(const braid_serve *s);
/* Graceful shutdown: requests in progress get until `deadline` (absolute), then
 * their work is cancelled; the pools are shut down and their workers reaped. */
int braid_serve_stop(braid_serve *s, int64_t deadline);

/* The is_prime of the tutorial (trial division by odd numbers up to the square root). */
bool braid_serve_is_prime(int64_t n);

#endif
