/* The HTTP client's internals shared by client.c (options, replies, errors, the thread
 * path, the public calls) and client_loop.c (libcurl's multi interface on braid's
 * loop). Never installed. */
#ifndef BRAID_HTTP_CLIENT_H
#define BRAID_HTTP_CLIENT_H

#include "http/http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sys/types.h>

typedef struct br__hmulti br__hmulti;

struct br_http_client {
    br_http_client_opts o;   /* defaults filled in; user_agent our own copy */
    pthread_mutex_t lock;    /* guards multis */
    br__hmulti *multis;      /* one per loop the client fetched on (client_loop.c) */
};

/* One transfer's state: the easy handle, what it sends, what came back. */
typedef struct br__hx {
    CURL *easy;
    struct curl_slist *hdrs;  /* request headers */
    char *body;               /* the request body (our copy) */
    size_t body_len;
    char *rbody;              /* the reply body so far (NUL kept after rlen) */
    size_t rlen, rcap;
    char *hbuf;               /* the current reply's headers: "name\0value\0"... */
    size_t hlen, hcap, nhdr;
    size_t max_body;
    bool too_big;             /* the body passed max_body: the write callback said stop */
    bool oom;                 /* a buffer couldn't grow */
    bool is_head;
    int64_t deadline;
    char errbuf[CURL_ERROR_SIZE];
} br__hx;

/* Checks rq and sets every option of x->easy (reset first) for it: the same code for
 * the loop and the thread. 0, BR_EINVAL (url, method, header), BR_ETIMEDOUT (the
 * deadline has passed), BR_ENOMEM. */
int br__hx_setup(br__hx *x, const br_http_client *c, const br_http_request *rq);
/* After the transfer ended with cc: 0 and *out (a reply), or the code for cc (and
 * x->errbuf says why). Frees nothing of x but what it moves into the reply. */
int br__hx_finish(br__hx *x, CURLcode cc, br_http_response **out);
/* Frees x's buffers (not the easy handle). */
void br__hx_clear(br__hx *x);

/* The loop side (client_loop.c). */
int br__hloop_fetch_async(br_http_client *c, const br_http_request *rq, br_future **out);
/* Frees every multi of c (no transfer may be running). */
void br__hloop_free_all(br_http_client *c);

#endif
