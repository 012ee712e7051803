/* The http layer's internals shared by its parts (client.c, server.c, html.c). */
#ifndef BRAID_HTTP_INTERNAL_H
#define BRAID_HTTP_INTERNAL_H
#include "core/lib.h"
#include <braid/http.h>

/* Initialises libcurl and libxml2 once per process (curl_global_init is not safe to
 * race with other threads' libcurl use; xmlInitParser likewise). Every entry point of
 * the layer that reaches either calls it first; it is cheap after the first call.
 * 0 or BR_ENOMEM. */
int br__http_global_init(void);

#endif
