/* example.h: the one helper every example shares.
 *
 * braid returns errors as negative codes (docs/conventions.md); an example has nothing
 * sensible to do with one but say what failed and stop, which is what Python does with
 * an exception nobody catches. A real program would handle the codes it expects.
 */
#ifndef BRAID_EXAMPLE_H
#define BRAID_EXAMPLE_H

#include <braid.h>

#include <stdio.h>
#include <stdlib.h>

/* Exits with status 1 and a message naming `what` and the code, unless rc is 0. */
static inline void must(int rc, const char *what) {
    if (rc != 0) {
        fprintf(stderr, "%s: %s (%s)\n", what, br_strerror(rc), br_err_name(rc));
        exit(1);
    }
}

#endif
