/* Running a conformance suite's blocking sides as coroutines.
 *
 * A suite written for threads starts each blocking side with pthread_create. A test
 * file that defines CONF_CORO before including the suite gets conf_coro_pthread_create
 * in its place: the new thread makes a loop and runs the function as that loop's main
 * coroutine (br_aio_run), so every braid call it makes blocks through the coroutine
 * parker, and every wake comes from another thread, a coroutine of another loop, or the
 * test's own thread. pthread_join still joins it (and gets the function's value).
 * With BRAID_TEST_SHARED_STACKS=1 the coroutines run on their loops' shared stacks.
 */
#ifndef BRAID_TESTS_CORO_HOST_H
#define BRAID_TESTS_CORO_HOST_H

#include "harness.h"

#include <braid/aio.h>

#include <pthread.h>
#include <stdlib.h>

struct conf_coro_start {
    void *(*fn)(void *);
    void *arg;
    void *ret;
};

static int conf_coro_main(br_task *t) {
    struct conf_coro_start *c = *(struct conf_coro_start *const *)br_task_arg(t, NULL);
    c->ret = c->fn(c->arg);
    return 0;
}

static void *conf_coro_thread(void *p) {
    struct conf_coro_start *c = p;
    int code = -1;
    BR_CHECK_OK(br_aio_run(conf_coro_main, &c, sizeof c, &code));
    BR_CHECK_EQ(code, 0);
    void *ret = c->ret;
    free(c);
    return ret;
}

static inline int conf_coro_pthread_create(pthread_t *th, const pthread_attr_t *attr,
                                           void *(*fn)(void *), void *arg) {
    struct conf_coro_start *c = malloc(sizeof *c);
    if (c == NULL)
        return ENOMEM;
    c->fn = fn;
    c->arg = arg;
    c->ret = NULL;
    int rc = pthread_create(th, attr, conf_coro_thread, c);
    if (rc != 0)
        free(c);
    return rc;
}

#endif
