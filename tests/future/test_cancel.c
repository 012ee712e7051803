/* Cancellation at every blocking point of the future layer: br_future_wait, the result
 * and exception calls (through br__future_wait_done), br_wait (ALL_COMPLETED future by
 * future; FIRST_* on watchers) and br_as_completed_next(_index).
 *
 * The calls run in a cancellable test context (tests/parker.h), a stand-in for a
 * coroutine. For each: a cancel while parked returns BR_ECANCELED and leaves every
 * future as it was, with no waiter or watcher linked (f->u.lst empty), the iterator's
 * blocked count back to zero and every future still to be yielded; a cancel posted
 * before the call ends it at once only if it would park; a completion racing the
 * cancel wins or loses cleanly (as_completed: every future yielded exactly once across
 * cancelled and successful nexts). Time limits are hang guards only.
 *
 * braid-test-timeout: 120
 */
#include "cancel_util.h"

#include "future/private.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

static br_future *mk(void) {
    br_future *f = NULL;
    BR_CHECK_OK(br_future_new(&f));
    return f;
}

/* Nothing listens to f: no waiter or watcher linked, no callback. */
static void check_unlinked(br_future *f) {
    br__ilock_lock(&f->lock);
    bool empty = f->u.lst == NULL && f->cb0_fn == NULL;
    br__ilock_unlock(&f->lock);
    BR_CHECK(empty);
}

/* --- one call in a cancellable context, on its own thread ------------------------- */

typedef struct fcall fcall;
struct fcall {
    br_test_ctx ctx;
    br_test_call call; /* rc, and whether a cancel was pending when it returned */
    int (*fn)(fcall *c);
    br_future *f;
    br_future **fs;
    size_t n;
    br_return_when when;
    br_as_completed *it;
    bool nowait;      /* deadline BR_NOWAIT; else the hang guard */
    int64_t deadline; /* set by fcall_start */
    /* what came out */
    int64_t i64;
    void *ptr;
    const void *data;
    size_t len, index;
    int code;
    const char *msg;
    br_future *got;
    br_future **sets;
    size_t nd, nn;
};

static int fcall_run(void *arg) {
    fcall *c = arg;
    return c->fn(c);
}

/* Starts fn in a fresh context; with cancel_first, a cancel is posted before. */
static void fcall_start(fcall *c, int (*fn)(fcall *), bool cancel_first) {
    c->ctx = (br_test_ctx)BR_TEST_CTX_INIT;
    c->fn = fn;
    c->deadline = c->nowait ? BR_NOWAIT : br_test_hang_guard();
    br_test_call_start(&c->call, &c->ctx, fcall_run, c, cancel_first);
}

/* Starts fn and returns once it sleeps in its park. */
static void fcall_park(fcall *c, int (*fn)(fcall *)) {
    fcall_start(c, fn, false);
    br_test_call_wait_parked(&c->call);
}

/* Runs fn to its return: as is, or with a cancel posted before the call. */
static void fcall_run_to_end(fcall *c, int (*fn)(fcall *), bool cancel_first) {
    fcall_start(c, fn, cancel_first);
    br_test_call_join(&c->call);
}

/* The blocking reads of one future. */
static int do_wait(fcall *c) {
    return br_future_wait(c->f, c->deadline);
}
static int do_result(fcall *c) {
    return br_future_result(c->f, c->deadline, &c->data, &c->len);
}
static int do_result_i64(fcall *c) {
    return br_future_result_i64(c->f, c->deadline, &c->i64);
}
static int do_result_ptr(fcall *c) {
    return br_future_result_ptr(c->f, c->deadline, &c->ptr);
}
static int do_take_ptr(fcall *c) {
    return br_future_take_ptr(c->f, c->deadline, &c->ptr);
}
static int do_result_str(fcall *c) {
    const char *s = NULL;
    int rc = br_future_result_str(c->f, c->deadline, &s);
    c->data = s;
    return rc;
}
static int do_exception(fcall *c) {
    return br_future_exception(c->f, c->deadline, &c->code, &c->msg);
}

typedef struct reader {
    const char *name;
    int (*fn)(fcall *c);
    int kind; /* how to complete the future: 0 i64, 1 pointer, 2 string, 3 failure */
} reader;

static const reader readers[] = {
    {"wait", do_wait, 0},
    {"result", do_result, 0},
    {"result_i64", do_result_i64, 0},
    {"result_ptr", do_result_ptr, 1},
    {"take_ptr", do_take_ptr, 1},
    {"result_str", do_result_str, 2},
    {"exception", do_exception, 3},
};
enum { NREADERS = sizeof readers / sizeof readers[0] };

static int ptr_target;
static _Atomic int dtor_calls;
static void count_dtor(void *p) {
    (void)p;
    atomic_fetch_add(&dtor_calls, 1);
}

static void complete(br_future *f, int kind) {
    switch (kind) {
    case 0:
        BR_CHECK_OK(br_future_set_result_i64(f, 77));
        break;
    case 1:
        BR_CHECK_OK(br_future_set_result_ptr(f, &ptr_target, count_dtor));
        break;
    case 2:
        BR_CHECK_OK(br_future_set_result(f, "done", 5));
        break;
    default:
        BR_CHECK_OK(br_future_set_exception(f, BR_EIO, "broken"));
        break;
    }
}

/* What a reader of kind `kind` must have got from a future completed by complete(). */
static void check_read(const reader *r, fcall *c) {
    switch (r->kind) {
    case 0:
        BR_CHECK_OK(c->call.rc);
        if (r->fn == do_result_i64)
            BR_CHECK_EQ(c->i64, 77);
        if (r->fn == do_result)
            BR_CHECK_EQ(c->len, 8);
        break;
    case 1:
        BR_CHECK_OK(c->call.rc);
        BR_CHECK(c->ptr == &ptr_target);
        break;
    case 2:
        BR_CHECK_OK(c->call.rc);
        BR_CHECK(c->data != NULL && strcmp(c->data, "done") == 0);
        break;
    default:
        BR_CHECK_OK(c->call.rc);
        BR_CHECK_EQ(c->code, BR_EIO);
        BR_CHECK(c->msg != NULL && strcmp(c->msg, "broken") == 0);
        break;
    }
}

/* --- one future ------------------------------------------------------------------- */

/* Every reader, cancelled while parked: BR_ECANCELED, the future still pending with
 * nothing linked; it completes later as usual, and what the cancelled call would have
 * read is all there (a cancelled take took nothing: the pointer is still the future's). */
static void reader_cancelled_while_parked(void **state) {
    (void)state;
    for (int i = 0; i < NREADERS; i++) {
        const reader *r = &readers[i];
        br_future *f = mk();
        fcall c = {.f = f};
        fcall_park(&c, r->fn);
        br_test_call_cancel(&c.call);
        BR_CHECK_EQ(br_future_state_of(f), BR_FUTURE_PENDING);
        check_unlinked(f);
        /* A second call parks, and the completion wakes it. */
        fcall d = {.f = f};
        fcall_park(&d, r->fn);
        atomic_store(&dtor_calls, 0);
        complete(f, r->kind);
        br_test_call_join(&d.call);
        check_read(r, &d);
        BR_CHECK(!br_test_ctx_cancel_pending(&d.ctx));
        check_unlinked(f);
        if (r->fn == do_take_ptr) {
            void *p = NULL;
            BR_CHECK_ERR(br_future_take_ptr(f, BR_NOWAIT, &p), BR_ESTATE);
            br_future_release(f);
            BR_CHECK_EQ(atomic_load(&dtor_calls), 0); /* the take owns it */
        } else {
            br_future_release(f);
            if (r->kind == 1)
                BR_CHECK_EQ(atomic_load(&dtor_calls), 1);
        }
    }
}

/* A cancel posted before the call: on a done future the call reads it and the cancel
 * stays pending; on a pending one the call is cancelled at its first park; with
 * BR_NOWAIT it doesn't park, so it times out and the cancel stays pending. */
static void reader_pending_cancel(void **state) {
    (void)state;
    for (int i = 0; i < NREADERS; i++) {
        const reader *r = &readers[i];
        br_future *f = mk();
        fcall c = {.f = f, .nowait = true};
        fcall_run_to_end(&c, r->fn, true);
        BR_CHECK_ERR(c.call.rc, BR_ETIMEDOUT);
        br_test_check_cancel_kept(&c.call);
        c = (fcall){.f = f};
        fcall_run_to_end(&c, r->fn, true);
        br_test_check_cancelled_at_once(&c.call);
        check_unlinked(f);
        BR_CHECK_EQ(br_future_state_of(f), BR_FUTURE_PENDING);
        complete(f, r->kind);
        c = (fcall){.f = f};
        fcall_run_to_end(&c, r->fn, true);
        check_read(r, &c);
        br_test_check_cancel_kept(&c.call);
        br_future_release(f);
    }
}

/* A cancelled future still reads BR_ECANCELED, in any context. */
static void cancelled_future_reads_ecanceled(void **state) {
    (void)state;
    br_future *f = mk();
    BR_CHECK(br_future_cancel(f));
    fcall c = {.f = f};
    fcall_run_to_end(&c, do_result, false);
    BR_CHECK_ERR(c.call.rc, BR_ECANCELED);
    BR_CHECK(br_future_cancelled(f));
    BR_CHECK_EQ(atomic_load(&c.ctx.parks), 0);
    br_future_release(f);
}

/* A parked reader cancelled as the future completes: it reads the outcome with the
 * cancel pending, or is cancelled with nothing linked; never both, never neither. */
static void reader_wake_races_cancel(void **state) {
    (void)state;
    long rounds = br_test_scaled(200, 20);
    for (long r = 0; r < rounds; r++) {
        const reader *rd = &readers[r % NREADERS];
        br_future *f = mk();
        fcall c = {.f = f};
        fcall_park(&c, rd->fn);
        BR_TEST_RACE_CANCEL(&c.ctx, r / NREADERS, complete(f, rd->kind));
        br_test_call_join(&c.call);
        bool was_read = br_test_wake_won(&c.call);
        if (was_read)
            check_read(rd, &c);
        else
            br_test_check_cancelled_once(&c.call);
        check_unlinked(f);
        if (rd->fn == do_take_ptr && !was_read) { /* the take took nothing */
            void *p = NULL;
            BR_CHECK_OK(br_future_take_ptr(f, BR_NOWAIT, &p));
            BR_CHECK(p == &ptr_target);
        }
        br_future_release(f);
    }
}

/* The library's uncancellable wait keeps waiting through a cancel, which stays
 * pending. */
static int do_wait_nocancel(fcall *c) {
    br__future_wait_done_nocancel(c->f);
    return br_future_done(c->f) ? 0 : -1;
}

static void nocancel_wait_outlives_a_cancel(void **state) {
    (void)state;
    br_future *f = mk();
    fcall c = {.f = f};
    fcall_start(&c, do_wait_nocancel, true);
    br_test_call_wait_parked(&c.call);
    br_test_ctx_cancel(&c.ctx); /* and another one, while it sleeps */
    BR_CHECK_OK(br_future_set_result_i64(f, 1));
    br_test_call_join(&c.call);
    br_test_check_cancel_ignored(&c.call);
    check_unlinked(f);
    br_future_release(f);
}

/* --- br_wait ---------------------------------------------------------------------- */

static int do_br_wait(fcall *c) {
    return br_wait(c->fs, c->n, c->when, c->deadline, c->sets, &c->nd, &c->nn);
}

static br_future *const SENTINEL = (br_future *)(uintptr_t)0x5e71;

/* n futures, the first `done` of them finished. */
static br_future **mkmany(size_t n, size_t done) {
    br_future **fs = calloc(n, sizeof *fs);
    for (size_t i = 0; i < n; i++) {
        fs[i] = mk();
        if (i < done)
            BR_CHECK_OK(br_future_set_result_i64(fs[i], (int64_t)i));
    }
    return fs;
}

static void dropmany(br_future **fs, size_t n) {
    for (size_t i = 0; i < n; i++)
        br_future_release(fs[i]);
    free(fs);
}

/* Cancelled while parked, for each return_when and for few futures (watchers on the
 * stack) and many (allocated): BR_ECANCELED, the sets and counts untouched, nothing
 * linked anywhere; then a completion meets the goal and a new call answers 0. */
static void br_wait_cancelled_while_parked(void **state) {
    (void)state;
    static const br_return_when whens[] = {BR_ALL_COMPLETED, BR_FIRST_COMPLETED,
                                           BR_FIRST_EXCEPTION};
    static const size_t sizes[] = {3, 40};
    for (int w = 0; w < 3; w++) {
        for (int s = 0; s < 2; s++) {
            size_t n = sizes[s];
            size_t done0 = whens[w] == BR_FIRST_COMPLETED ? 0 : 1; /* goal not met */
            br_future **fs = mkmany(n, done0);
            br_future **sets = calloc(n, sizeof *sets);
            for (size_t i = 0; i < n; i++)
                sets[i] = SENTINEL;
            fcall c = {
                .fs = fs, .n = n, .when = whens[w], .sets = sets, .nd = 99, .nn = 99};
            fcall_park(&c, do_br_wait);
            br_test_call_cancel(&c.call);
            BR_CHECK_EQ(c.nd, 0);
            BR_CHECK_EQ(c.nn, 0);
            for (size_t i = 0; i < n; i++) {
                BR_CHECK(sets[i] == SENTINEL);
                check_unlinked(fs[i]);
            }
            /* The goal, met: FIRST_* by one more completion (a failure, for
             * FIRST_EXCEPTION), ALL_COMPLETED by all of them. */
            for (size_t i = done0; i < n; i++) {
                if (whens[w] == BR_ALL_COMPLETED || i == n - 1)
                    BR_CHECK_OK(br_future_set_exception(fs[i], BR_EIO, NULL));
            }
            c = (fcall){.fs = fs, .n = n, .when = whens[w], .sets = sets};
            fcall_run_to_end(&c, do_br_wait, false);
            BR_CHECK_OK(c.call.rc);
            BR_CHECK_EQ(c.nd + c.nn, n);
            BR_CHECK(c.nd >= done0 + 1);
            free(sets);
            dropmany(fs, n);
        }
    }
}

/* A cancel posted before: a goal met on entry answers 0 and the cancel stays pending;
 * BR_NOWAIT answers BR_ETIMEDOUT with the sets filled, cancel pending; a wait that has
 * to park is cancelled at once. */
static void br_wait_pending_cancel(void **state) {
    (void)state;
    for (int w = 0; w < 2; w++) {
        br_return_when when = w ? BR_FIRST_COMPLETED : BR_ALL_COMPLETED;
        br_future **fs = mkmany(4, when == BR_ALL_COMPLETED ? 4 : 1);
        fcall c = {.fs = fs, .n = 4, .when = when};
        fcall_run_to_end(&c, do_br_wait, true);
        BR_CHECK_OK(c.call.rc);
        br_test_check_cancel_kept(&c.call);
        dropmany(fs, 4);

        fs = mkmany(4, 0);
        c = (fcall){.fs = fs, .n = 4, .when = when, .nowait = true};
        fcall_run_to_end(&c, do_br_wait, true);
        BR_CHECK_ERR(c.call.rc, BR_ETIMEDOUT);
        BR_CHECK_EQ(c.nn, 4);
        br_test_check_cancel_kept(&c.call);
        c = (fcall){.fs = fs, .n = 4, .when = when};
        fcall_run_to_end(&c, do_br_wait, true);
        br_test_check_cancelled_at_once(&c.call);
        for (size_t i = 0; i < 4; i++)
            check_unlinked(fs[i]);
        dropmany(fs, 4);
    }
}

/* A parked br_wait cancelled as the completion that meets its goal lands: 0 with the
 * goal met and the cancel pending, or BR_ECANCELED with nothing filled in. Nothing
 * stays linked either way. */
static void br_wait_wake_races_cancel(void **state) {
    (void)state;
    long rounds = br_test_scaled(300, 30);
    for (long r = 0; r < rounds; r++) {
        br_return_when when = (br_return_when)(r % 3);
        size_t n = (r & 4) ? 20 : 3;
        br_future **fs = mkmany(n, when == BR_ALL_COMPLETED ? n - 1 : 0);
        fcall c = {.fs = fs, .n = n, .when = when};
        fcall_park(&c, do_br_wait);
        BR_TEST_RACE_CANCEL(&c.ctx, r / 3,
                            BR_CHECK_OK(br_future_set_exception(fs[n - 1], BR_EIO, NULL)));
        br_test_call_join(&c.call);
        if (br_test_wake_won(&c.call)) {
            BR_CHECK(c.nd >= 1);
            BR_CHECK_EQ(c.nd + c.nn, n);
        } else {
            br_test_check_cancelled_once(&c.call);
            BR_CHECK_EQ(c.nd, 0);
            BR_CHECK_EQ(c.nn, 0);
        }
        for (size_t i = 0; i < n; i++)
            check_unlinked(fs[i]);
        dropmany(fs, n);
    }
}

/* --- as_completed ----------------------------------------------------------------- */

static int do_next(fcall *c) {
    c->index = 999;
    return br_as_completed_next_index(c->it, &c->got, &c->index);
}

static void wait_blocked(br_as_completed *it, size_t n) {
    int64_t give_up = br_test_hang_guard();
    while (br__as_completed_blocked(it) != n) {
        BR_CHECK(br_now() < give_up);
        br_sleep(50 * BR_USEC);
    }
}

/* A consumer cancelled while parked: BR_ECANCELED, not blocked any more, and every
 * future is still to come, each once, to later nexts. */
static void next_cancelled_while_parked(void **state) {
    (void)state;
    enum { N = 4 };
    br_future **fs = mkmany(N, 1);
    br_as_completed *it;
    BR_CHECK_OK(br_as_completed_new(&it, fs, N, BR_FOREVER));
    fcall c = {.it = it};
    fcall_run_to_end(&c, do_next, false); /* fs[0] is ready: no park */
    BR_CHECK_OK(c.call.rc);
    BR_CHECK(c.got == fs[0]);
    BR_CHECK_EQ(c.index, 0);
    c = (fcall){.it = it};
    fcall_park(&c, do_next);
    wait_blocked(it, 1);
    br_test_call_cancel(&c.call);
    BR_CHECK(c.got == NULL);
    BR_CHECK_EQ(br__as_completed_blocked(it), 0);
    /* A completion now goes to the next next(), and so on to the end. */
    for (size_t i = N; i-- > 1;) {
        fcall d = {.it = it};
        fcall_park(&d, do_next);
        BR_CHECK_OK(br_future_set_result_i64(fs[i], 1));
        br_test_call_join(&d.call);
        BR_CHECK_OK(d.call.rc);
        BR_CHECK(d.got == fs[i]);
        BR_CHECK_EQ(d.index, i);
    }
    br_future *got;
    BR_CHECK_ERR(br_as_completed_next(it, &got), BR_EOF);
    BR_CHECK_EQ(br__as_completed_blocked(it), 0);
    BR_CHECK_OK(br_as_completed_free(it));
    dropmany(fs, N);
}

/* A cancel posted before next(): a ready future is yielded (cancel pending), BR_EOF
 * likewise; with nothing ready the call is cancelled at its first park. */
static void next_pending_cancel(void **state) {
    (void)state;
    br_future **fs = mkmany(2, 1);
    br_as_completed *it;
    BR_CHECK_OK(br_as_completed_new(&it, fs, 2, BR_FOREVER));
    fcall c = {.it = it};
    fcall_run_to_end(&c, do_next, true);
    BR_CHECK_OK(c.call.rc);
    BR_CHECK(c.got == fs[0]);
    br_test_check_cancel_kept(&c.call);
    c = (fcall){.it = it};
    fcall_run_to_end(&c, do_next, true);
    br_test_check_cancelled_at_once(&c.call);
    BR_CHECK_EQ(br__as_completed_blocked(it), 0);
    BR_CHECK_OK(br_future_set_result_i64(fs[1], 1));
    c = (fcall){.it = it};
    fcall_run_to_end(&c, do_next, true);
    BR_CHECK_OK(c.call.rc);
    BR_CHECK(c.got == fs[1]);
    br_test_check_cancel_kept(&c.call);
    c = (fcall){.it = it};
    fcall_run_to_end(&c, do_next, true);
    BR_CHECK_ERR(c.call.rc, BR_EOF);
    br_test_check_cancel_kept(&c.call);
    BR_CHECK_OK(br_as_completed_free(it));
    dropmany(fs, 2);
}

/* Two consumers parked, the first at the head; the first is cancelled as a future
 * completes. Either it gets the future (cancel pending), or it is cancelled having
 * consumed no wake and the second gets the future with no other completion. */
static void next_wake_races_cancel(void **state) {
    (void)state;
    long rounds = br_test_scaled(300, 30);
    for (long r = 0; r < rounds; r++) {
        br_future **fs = mkmany(2, 0);
        br_as_completed *it;
        BR_CHECK_OK(br_as_completed_new(&it, fs, 2, BR_FOREVER));
        fcall a = {.it = it}, b = {.it = it};
        fcall_park(&a, do_next);
        wait_blocked(it, 1);
        fcall_park(&b, do_next);
        wait_blocked(it, 2);
        BR_TEST_RACE_CANCEL(&a.ctx, r, BR_CHECK_OK(br_future_set_result_i64(fs[0], 0)));
        br_test_call_join(&a.call);
        if (br_test_wake_won(&a.call)) {
            BR_CHECK(a.got == fs[0]);
            BR_CHECK_OK(br_future_set_result_i64(fs[1], 1));
            br_test_call_join(&b.call);
            BR_CHECK_OK(b.call.rc);
            BR_CHECK(b.got == fs[1]);
        } else {
            br_test_check_cancelled_once(&a.call);
            br_test_call_join(&b.call); /* the completion's wake reached b */
            BR_CHECK_OK(b.call.rc);
            BR_CHECK(b.got == fs[0]);
            br_future *got;
            BR_CHECK_OK(br_future_set_result_i64(fs[1], 1));
            BR_CHECK_OK(br_as_completed_next(it, &got));
            BR_CHECK(got == fs[1]);
        }
        br_future *got;
        BR_CHECK_ERR(br_as_completed_next(it, &got), BR_EOF);
        BR_CHECK_EQ(br__as_completed_blocked(it), 0);
        BR_CHECK_OK(br_as_completed_free(it));
        dropmany(fs, 2);
    }
}

/* Consumers in cancellable contexts take futures as a completer finishes them, while a
 * canceller cancels them at random; a cancelled next() is simply called again. Every
 * future is yielded exactly once, every consumer ends at BR_EOF, nobody stays
 * blocked, and the iterator frees. */
enum { AC_CONSUMERS = 3 };

typedef struct acstorm {
    br_as_completed *it;
    br_future **fs;
    size_t n;
    br_test_ctx ctx[AC_CONSUMERS];
    _Atomic unsigned char *seen; /* by index */
    _Atomic long got, dup, bad, cancelled;
} acstorm;

typedef struct acarg {
    acstorm *s;
    int id;
} acarg;

static void *ac_consumer(void *arg) {
    acstorm *s = ((acarg *)arg)->s;
    br_test_ctx_enter(&s->ctx[((acarg *)arg)->id]);
    for (;;) {
        br_future *f = NULL;
        size_t idx = 0;
        int rc = br_as_completed_next_index(s->it, &f, &idx);
        if (rc == BR_EOF)
            break;
        if (rc == BR_ECANCELED) {
            atomic_fetch_add(&s->cancelled, 1);
            continue;
        }
        if (rc != 0 || idx >= s->n || f != s->fs[idx] || !br_future_done(f)) {
            atomic_fetch_add(&s->bad, 1);
            break;
        }
        if (atomic_fetch_add(&s->seen[idx], 1) != 0)
            atomic_fetch_add(&s->dup, 1);
        atomic_fetch_add(&s->got, 1);
    }
    br_test_ctx_leave();
    return NULL;
}

static void *ac_completer(void *arg) {
    acstorm *s = arg;
    for (size_t i = 0; i < s->n; i++) {
        size_t j = (i * 7919) % s->n; /* a permutation: n is not a multiple of 7919 */
        if (br_future_set_result_i64(s->fs[j], (int64_t)j) != 0)
            atomic_fetch_add(&s->bad, 1);
        if (i % 3 == 0)
            sched_yield();
    }
    return NULL;
}

static void as_completed_storm(void **state) {
    (void)state;
    acstorm *s = calloc(1, sizeof *s);
    s->n = (size_t)br_test_scaled(20000, 2000);
    if (s->n % 7919 == 0)
        s->n++; /* the completer's order is a permutation */
    s->fs = mkmany(s->n, 0);
    s->seen = calloc(s->n, 1);
    BR_CHECK_OK(br_as_completed_new(&s->it, s->fs, s->n, BR_FOREVER));
    pthread_t c[AC_CONSUMERS], done;
    br_test_cancel_storm k;
    acarg args[AC_CONSUMERS];
    for (int i = 0; i < AC_CONSUMERS; i++) {
        args[i] = (acarg){s, i};
        assert_int_equal(pthread_create(&c[i], NULL, ac_consumer, &args[i]), 0);
    }
    br_test_cancel_storm_start(&k, s->ctx, AC_CONSUMERS, 777);
    assert_int_equal(pthread_create(&done, NULL, ac_completer, s), 0);
    pthread_join(done, NULL);
    for (int i = 0; i < AC_CONSUMERS; i++)
        pthread_join(c[i], NULL);
    br_test_cancel_storm_stop(&k);
    BR_CHECK_EQ(atomic_load(&s->bad), 0);
    BR_CHECK_EQ(atomic_load(&s->dup), 0);
    BR_CHECK_EQ(atomic_load(&s->got), s->n);
    for (size_t i = 0; i < s->n; i++)
        BR_CHECK_EQ(atomic_load(&s->seen[i]), 1);
    BR_CHECK_EQ(br__as_completed_blocked(s->it), 0);
    BR_CHECK_OK(br_as_completed_free(s->it));
    dropmany(s->fs, s->n);
    free((void *)s->seen);
    free(s);
}

BR_TEST_MAIN(cmocka_unit_test(reader_cancelled_while_parked),
             cmocka_unit_test(reader_pending_cancel),
             cmocka_unit_test(cancelled_future_reads_ecanceled),
             cmocka_unit_test(reader_wake_races_cancel),
             cmocka_unit_test(nocancel_wait_outlives_a_cancel),
             cmocka_unit_test(br_wait_cancelled_while_parked),
             cmocka_unit_test(br_wait_pending_cancel),
             cmocka_unit_test(br_wait_wake_races_cancel),
             cmocka_unit_test(next_cancelled_while_parked),
             cmocka_unit_test(next_pending_cancel),
             cmocka_unit_test(next_wake_races_cancel), cmocka_unit_test(as_completed_storm))
