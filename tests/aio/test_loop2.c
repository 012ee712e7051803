/* The loop's second round: owner identities never reused (coroutines and threads), a
 * loop freed with tasks cancelled before they ran, descriptor registrations kept across
 * waits, the loop's executor shut down from a coroutine of another loop, and the dump
 * naming what each coroutine waits on.
 *
 * No test depends on timing: where a coroutine must be parked before another acts, the
 * loop's order guarantees it (a coroutine that blocks is suspended by the time any
 * other coroutine of its loop runs again).
 *
 * braid-test-timeout: 120
 */
#include "harness.h"

#include "aio/io.h"
#include "aio/loop.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* --- identities -------------------------------------------------------------------------- */

/* A lock left held by a finished coroutine: none of the coroutines after it (their task
 * records reuse the finished one's memory) may release it, and each has its own
 * identity, odd (a thread's is even). */
enum { ID_N = 200 };
static br_lock id_lock;
static uintptr_t ids[ID_N + 1];

static int take_and_leave(br_task *t) {
    (void)t;
    ids[0] = br__self();
    return br_lock_acquire(&id_lock, BR_NOWAIT); /* returns holding it */
}

static int try_release(br_task *t) {
    int64_t i = br_task_arg_i64(t);
    ids[i] = br__self();
    if (br_lock_owned(&id_lock))
        return BR_EFAILED;
    return br_lock_release(&id_lock);
}

static int id_main(br_task *t) {
    (void)t;
    uintptr_t me = br__self();
    br_future *f;
    BR_CHECK_OK(br_create_task(NULL, take_and_leave, NULL, 0, &f));
    BR_CHECK_OK(br_future_result(f, BR_FOREVER, NULL, NULL));
    br_future_release(f);
    BR_CHECK(br_lock_locked(&id_lock));
    for (int64_t i = 1; i <= ID_N; i++) {
        BR_CHECK_OK(br_create_task(NULL, try_release, &i, sizeof i, &f));
        BR_CHECK_OK(br_future_wait(f, BR_FOREVER));
        int code = 0;
        BR_CHECK_OK(br_future_exception(f, BR_NOWAIT, &code, NULL));
        BR_CHECK_ERR(code, BR_EPERM);
        br_future_release(f);
    }
    BR_CHECK(br_lock_locked(&id_lock));
    BR_CHECK_EQ(br__self(), me); /* main's own, across all those switches */
    return 0;
}

static void coroutine_identity_not_reused(void **state) {
    (void)state;
    BR_CHECK_OK(br_lock_init(&id_lock));
    int code = -1;
    BR_CHECK_OK(br_aio_run(id_main, NULL, 0, &code));
    BR_CHECK_OK(code);
    for (int i = 0; i <= ID_N; i++) {
        BR_CHECK(ids[i] & 1);
        for (int j = 0; j < i; j++)
            BR_CHECK(ids[i] != ids[j]);
    }
    BR_CHECK((br__self() & 1) == 0); /* back on the plain thread */
    BR_CHECK(br_lock_locked(&id_lock)); /* nobody released it */
}

/* The same with threads: each thread is started after the previous one was joined, so
 * a later one may get the earlier one's thread-local block (and usually does). */
enum { TID_N = 20 };
static uintptr_t tids[TID_N + 1];
static br_lock tid_lock;

typedef struct tid_arg {
    int i;
    int rc;
} tid_arg;

static void *tid_take(void *p) {
    tid_arg *a = p;
    tids[a->i] = br__self();
    a->rc = br_lock_acquire(&tid_lock, BR_NOWAIT);
    return NULL;
}

static void *tid_try(void *p) {
    tid_arg *a = p;
    tids[a->i] = br__self();
    BR_CHECK_EQ(br__self(), tids[a->i]); /* stable */
    a->rc = br_lock_owned(&tid_lock) ? BR_EFAILED : br_lock_release(&tid_lock);
    return NULL;
}

static void thread_identity_not_reused(void **state) {
    (void)state;
    BR_CHECK_OK(br_lock_init(&tid_lock));
    for (int i = 0; i <= TID_N; i++) {
        tid_arg a = {.i = i, .rc = 1};
        pthread_t th;
        BR_CHECK_EQ(pthread_create(&th, NULL, i == 0 ? tid_take : tid_try, &a), 0);
        BR_CHECK_EQ(pthread_join(th, NULL), 0);
        BR_CHECK_ERR(a.rc, i == 0 ? 0 : BR_EPERM);
    }
    for (int i = 0; i <= TID_N; i++) {
        BR_CHECK(tids[i] != 0 && (tids[i] & 1) == 0);
        for (int j = 0; j < i; j++)
            BR_CHECK(tids[i] != tids[j]);
    }
    BR_CHECK(br_lock_locked(&tid_lock));
    BR_CHECK_ERR(br_lock_release(&tid_lock), BR_EPERM); /* not ours either */
}

/* --- freeing a loop whose tasks were cancelled before they ran ------------------------------ */

static _Atomic int ran;
static int mark_ran(br_task *t) {
    (void)t;
    atomic_fetch_add(&ran, 1);
    return 0;
}

static void free_after_cancel_pending(void **state) {
    (void)state;
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    br_future *f[3];
    for (int i = 0; i < 3; i++)
        BR_CHECK_OK(br_create_task(l, mark_ran, NULL, 0, &f[i]));
    BR_CHECK(br_future_cancel(f[0]));
    BR_CHECK(br_future_cancel(f[2]));
    BR_CHECK_ERR(br_loop_free(l), BR_EBUSY); /* f[1] is still to run */
    BR_CHECK(br_future_cancel(f[1]));
    BR_CHECK_OK(br_loop_free(l)); /* never run, all cancelled: nothing left */
    for (int i = 0; i < 3; i++) {
        BR_CHECK(br_future_cancelled(f[i]));
        br_future_release(f[i]);
    }
    BR_CHECK_EQ(atomic_load(&ran), 0);
}

/* Cancelled from another thread (through the inbox), and a loop that ran before. */
static void *cancel_it(void *p) {
    BR_CHECK(br_future_cancel(p));
    return NULL;
}

static void free_after_cancel_from_thread(void **state) {
    (void)state;
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    br_future *a, *b;
    BR_CHECK_OK(br_create_task(l, mark_ran, NULL, 0, &a));
    BR_CHECK_OK(br_loop_run_until_complete(l, a));
    BR_CHECK_OK(br_create_task(l, mark_ran, NULL, 0, &b));
    pthread_t th;
    BR_CHECK_EQ(pthread_create(&th, NULL, cancel_it, b), 0);
    BR_CHECK_EQ(pthread_join(th, NULL), 0);
    BR_CHECK_OK(br_loop_free(l));
    BR_CHECK(br_future_cancelled(b));
    BR_CHECK_EQ(atomic_load(&ran), 1);
    br_future_release(a);
    br_future_release(b);
}

BR_TEST_MAIN(cmocka_unit_test(coroutine_identity_not_reused),
             cmocka_unit_test(thread_identity_not_reused),
             cmocka_unit_test(free_after_cancel_pending),
             cmocka_unit_test(free_after_cancel_from_thread))
