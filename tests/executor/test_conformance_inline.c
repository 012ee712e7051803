/* The executor conformance suite (conformance_executor.h) against the test-only
 * executor of mini_executor.h: proves the suite and the executor-generic layer
 * (submit, map, wait, as_completed) before any real executor exists. */
#include "harness.h"
#include "mini_executor.h"

static int conformance_make(br_executor **out, int max_workers) {
    return mini_new(out, max_workers);
}

#include "conformance_executor.h"

BR_TEST_MAIN(BR_CONFORMANCE_TESTS)
