/* A small HTTP/1.1 server for the client's tests: raw sockets, a thread per
 * connection, keep-alive, and paths that misbehave on purpose. It counts accepted
 * connections and the most open at once.
 *
 *   /echo            200, text/plain: "METHOD PATH\n", the request's header lines, a
 *                    blank line, the body
 *   /redirect/N      302 to /redirect/N-1; /redirect/0: 200 "done"
 *   /to-ftp          302 to ftp://127.0.0.1/file
 *   /gzip            200, Content-Encoding: gzip (GZIP_PLAIN once decoded)
 *   /status/N        N with a short body
 *   /reset           headers promising 1000 bytes, 10 of them, then a reset (RST)
 *   /stall           reads the request and never answers
 *   /trickle         200 "trickle-trickle" sent a byte at a time
 *   /big/N           200 with N bytes of 'x' (Content-Length)
 *   /bigclose/N      200 with N bytes of 'x', no length, ended by closing
 *   /retry/N         429 with Retry-After: N
 *   /retrydate       503 with Retry-After an HTTP date in the past
 *   /hdr             200 with a charset in Content-Type and a repeated header
 *   /slow/MS         200 "slow" after MS milliseconds
 *   /n/K             200 "page K"
 */
#ifndef BRAID_TESTS_HTTP_CLIENT_SERVER_H
#define BRAID_TESTS_HTTP_CLIENT_SERVER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct tsrv tsrv;

tsrv *tsrv_start(void);
int tsrv_port(const tsrv *s);
/* Connections accepted so far, and the most open at once. */
int tsrv_accepted(const tsrv *s);
int tsrv_max_open(const tsrv *s);
void tsrv_reset_counts(tsrv *s);
/* Stops accepting, cuts every connection, waits for their threads, frees. */
void tsrv_stop(tsrv *s);

#define GZIP_PLAIN_REPEAT "hello, gzip body\n"

#endif
