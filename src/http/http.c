/* The http layer's process-wide set-up: libcurl's and libxml2's global
 * initialisation, done once, from whichever entry point comes first. Neither is undone
 * at exit: other code in the process may still use either library then. */
#include "http/http.h"

#include <curl/curl.h>
#include <libxml/parser.h>
#include <pthread.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_rc;

static void init_once(void) {
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
        init_rc = BR_ENOMEM;
        return;
    }
    xmlInitParser();
}

int br__http_global_init(void) {
    pthread_once(&once, init_once);
    return init_rc;
}
