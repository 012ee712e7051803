/* Helpers shared by the thread layer's tests: hang guards, polling for a state, and
 * starting helper threads. Sleeps here never make a test pass: they only give other
 * threads time to reach a state that is then checked. */
#ifndef BRAID_TESTS_THREAD_UTIL_H
#define BRAID_TESTS_THREAD_UTIL_H

#include "harness.h"
#include "thread/private.h"

#include <stdatomic.h>
#include <stdlib.h>

/* Polls `cond` every 100 us until it holds; fails the test at the hang guard. */
#define TU_WAIT_FOR(cond)                                                                  \
    do {                                                                                   \
        int64_t tu_give_up_ = br_test_hang_guard();                                        \
        while (!(cond)) {                                                                  \
            if (br_now() > tu_give_up_)                                                    \
                fail_msg("%s:%d: still waiting for %s", __FILE__, __LINE__, #cond);        \
            br_sleep(100 * BR_USEC);                                                       \
        }                                                                                  \
    } while (0)

/* The parker state of the first waiter queued on q (0 spinning or about to park, 2
 * asleep in the futex, 1 signalled), or -1 if q is empty; read under q's ilock, which
 * keeps the waiter linked (and its frame alive) while we look. */
static inline int tu_first_waiter_state(br__wq *q) {
    br__ilock_lock(&q->lock);
    int s = q->head ? (int)atomic_load(&q->head->signalled) : -1;
    br__ilock_unlock(&q->lock);
    return s;
}

#ifdef CONF_CORO
/* A test file that defines CONF_CORO runs every spawned side as a coroutine: the braid
 * thread makes a loop and runs fn(arg) as its main coroutine (br_aio_run), so the
 * primitives block through the coroutine parker and are woken from other threads and
 * loops. tu_join joins the thread as before. */
#  include <braid/aio.h>
struct tu_coro {
    br_thread_fn fn;
    void *arg;
};
static int tu_coro_main(br_task *t) {
    const struct tu_coro *c = (const struct tu_coro *)br_task_arg(t, NULL);
    c->fn(c->arg);
    return 0;
}
static void tu_coro_thread(void *p) {
    struct tu_coro c = *(struct tu_coro *)p;
    free(p);
    int code = -1;
    BR_CHECK_OK(br_aio_run(tu_coro_main, &c, sizeof c, &code));
    BR_CHECK_EQ(code, 0);
}
#endif

/* Starts fn(arg) on a braid thread (as a coroutine with CONF_CORO); fails the test if it
 * can't. */
static inline br_thread *tu_spawn(br_thread_fn fn, void *arg) {
    br_thread *t = NULL;
#ifdef CONF_CORO
    struct tu_coro *c = malloc(sizeof *c);
    BR_CHECK(c != NULL);
    c->fn = fn;
    c->arg = arg;
    BR_CHECK_OK(br_thread_start(&t, tu_coro_thread, c, NULL));
#else
    BR_CHECK_OK(br_thread_start(&t, fn, arg, NULL));
#endif
    return t;
}

/* Joins (with the hang guard) and frees. */
static inline void tu_join(br_thread *t) {
    BR_CHECK_OK(br_thread_join(t, br_test_hang_guard()));
    BR_CHECK_OK(br_thread_free(t));
}

/* Starts n braid threads running fn(arg), into t[0..n). */
static inline void tu_spawn_n(br_thread **t, int n, br_thread_fn fn, void *arg) {
    for (int i = 0; i < n; i++)
        t[i] = tu_spawn(fn, arg);
}

/* Joins (with the hang guard) and frees t[0..n). */
static inline void tu_join_n(br_thread **t, int n) {
    for (int i = 0; i < n; i++)
        tu_join(t[i]);
}

/* Elapsed-time checks: a deadline never fires early. */
#define TU_CHECK_NOT_EARLY(t0, ns) BR_CHECK(br_now() - (t0) >= (ns))

/* A BR_NOWAIT call returned (it didn't block until something else woke it): only a
 * hang guard, the harness's, so that a loaded machine never fails it; that
 * the call didn't queue at all is checked through each primitive's state where the
 * test can see it. */
#define TU_CHECK_QUICK(t0) BR_CHECK(br_now() - (t0) < br_test_hang_guard_ns())

#endif
