/* The executor conformance suite (tests/executor/conformance_executor.h) on
 * br_loop_executor: every submitted task runs as a coroutine on a loop that runs
 * forever on its own thread. The suite's max_workers becomes the loop's limit on
 * executor tasks running at once (an internal knob: beyond it, tasks wait unstarted,
 * as on a pool, so that cancelling queued tasks means what the suite says).
 *
 * The loop's executor belongs to the loop (br_executor_free must not free it), so the
 * factory hands out a small wrapper executor that forwards to it and, when the suite
 * frees it, stops the loop, joins its thread and frees the loop.
 *
 * braid-test-timeout: 120
 */
#include "harness.h"

#include "aio/loop.h"

#include <stdlib.h>

typedef struct wrap {
    br_executor base;
    br_loop *loop;
    br_thread *th;
} wrap;

static br_executor *inner(br_executor *ex) { return br_loop_executor(((wrap *)ex)->loop); }

static int w_submit(br_executor *ex, br_task *t, const br_call *call) {
    br_executor *in = inner(ex);
    return in->vt->submit(in, t, call);
}

static int w_shutdown(br_executor *ex, bool wait, bool cancel_futures) {
    br_executor *in = inner(ex);
    return in->vt->shutdown(in, wait, cancel_futures);
}

static void w_destroy(br_executor *ex) {
    wrap *w = (wrap *)ex;
    BR_CHECK_OK(br_loop_stop(w->loop));
    BR_CHECK_OK(br_thread_join(w->th, br_test_hang_guard()));
    br_thread_free(w->th);
    BR_CHECK_OK(br_loop_free(w->loop));
    free(w);
}

static int w_max_workers(const br_executor *ex) {
    br_executor *in = br_loop_executor(((const wrap *)ex)->loop);
    return in->vt->max_workers(in);
}

static const br_executor_vt wrap_vt = {
    .kind = "loop",
    .in_process = true,
    .submit = w_submit,
    .shutdown = w_shutdown,
    .destroy = w_destroy,
    .max_workers = w_max_workers,
};

static void run_loop(void *arg) { BR_CHECK_OK(br_loop_run_forever(arg)); }

static int conformance_make(br_executor **out, int max_workers) {
    wrap *w = calloc(1, sizeof *w);
    if (w == NULL)
        return BR_ENOMEM;
    int rc = br_loop_new(&w->loop);
    if (rc != 0) {
        free(w);
        return rc;
    }
    w->loop->ex_limit = (uint32_t)max_workers;
    BR_CHECK_OK(br_executor_init(&w->base, &wrap_vt));
    BR_CHECK_OK(br_thread_start(&w->th, run_loop, w->loop, NULL));
    *out = &w->base;
    return 0;
}

#include "executor/conformance_executor.h"

BR_TEST_MAIN(BR_CONFORMANCE_TESTS)
