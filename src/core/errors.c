/* Error codes: br_strerror, br_err_name, br_strerror_r, and the misuse policy.
 * All generated from BR_ERRNO_MAP, so a code can't have a name without a message. */
#include "core/lib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *br_version(void) { return "0.1.0"; }

const char *br_strerror(int code) {
    switch (code) {
#define XX(name, value, msg)                                                         \
    case BR_##name:                                                                  \
        return msg;
        BR_ERRNO_MAP(XX)
#undef XX
    case 0:
        return "success";
    default:
        return "unknown error";
    }
}

const char *br_err_name(int code) {
    switch (code) {
#define XX(name, value, msg)                                                         \
    case BR_##name:                                                                  \
        return "BR_" #name;
        BR_ERRNO_MAP(XX)
#undef XX
    case 0:
        return "BR_OK";
    default:
        return "BR_UNKNOWN";
    }
}

char *br_strerror_r(int code, char *buf, size_t len) {
    if (buf == NULL || len == 0)
        return buf;
    if (strcmp(br_err_name(code), "BR_UNKNOWN") == 0)
        snprintf(buf, len, "unknown error %d", code);
    else
        snprintf(buf, len, "%s", br_strerror(code));
    return buf;
}

static atomic_bool panic_on_misuse;

void br_set_panic_on_misuse(bool on) {
    atomic_store_explicit(&panic_on_misuse, on, memory_order_relaxed);
}

/* The report names the API function (what starts with it) and where it was called
 * from: the library's own file and line would say where braid noticed, which the
 * caller can't act on. */
int br__misuse(int code, const char *what) {
    if ((code == BR_EINVAL || code == BR_EPERM) &&
        atomic_load_explicit(&panic_on_misuse, memory_order_relaxed)) {
        fprintf(stderr, "braid: misuse: %s (%s)\n", what, br_err_name(code));
        br__print_backtrace(1); /* from br__misuse's caller up */
        abort();
    }
    return code;
}
