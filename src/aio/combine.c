/* Combinators: gather, wait_for, shield, TaskGroup, to_thread (asyncio's, for C).
 *
 * Design notes.
 *
 * Built on the future layer only. Every combinator here is a few calls of the public
 * future API (br_wait, br_future_wait, done-callbacks, br_future_request_cancel), so it
 * works on any future (a loop's task, a thread pool's future, a br_future_new one) and
 * from any caller: a thread waits as a thread, a coroutine suspends, because the waits
 * below go through the waiter (core/lib.h), which the loop binds to the coroutine.
 * Nothing here knows the loop's internals; the only loop calls are br_create_task and
 * br_loop_current, for TaskGroup.
 *
 * gather. With return_errors, it is br_wait(ALL_COMPLETED). Without, it must end at
 * the first failure OR cancellation of a child (asyncio raises CancelledError for a
 * cancelled child), which br_wait's FIRST_EXCEPTION doesn't count, so it uses a
 * shared "join" record: a br_future_new aggregate plus a counter of children not yet
 * done, and one done-callback per position. A callback that sees a failure (or a
 * cancelled child) fails the aggregate with that code; the one that brings the
 * counter to zero sets its result (a BR_ESTATE after a failure is expected and
 * ignored). The caller waits on the aggregate. Callbacks can't be removed, so the
 * record is reference-counted: one reference per callback plus the caller's; the last
 * release frees it (the aggregate future included). A child's failure code is read
 * with br_future_exception(BR_NOWAIT) in the callback: the child is done then.
 *
 * Cancelling the caller. Every wait here may return BR_ECANCELED in a coroutine that
 * is cancelled (never in a thread). gather then requests cancellation of every child
 * not done (asyncio's gather cancels its children when it is cancelled) and returns
 * BR_ECANCELED at once; wait_for and TaskGroup cancel their children too, but also
 * wait for them to end first (as asyncio's wait_for and TaskGroup do). Those second
 * waits loop on BR_ECANCELED: the first cancel was consumed by the wait that
 * reported it, and the call returns BR_ECANCELED in the end, so no cancel is lost; a
 * second cancel arriving then is folded into the same BR_ECANCELED.
 *
 * shield. The outer future is a br_future_new; a done-callback on inner (holding a
 * reference on outer, dropped by the callback) copies inner's outcome into it. Bytes
 * are copied; a pointer result is passed on borrowed (no dtor on outer: inner still
 * owns it, so it is valid while inner is). A cancelled inner cancels outer. Cancelling
 * outer (pending, as br_future_new's are) cancels outer only; the callback's later
 * set_* then answers BR_ESTATE, ignored.
 *
 * TaskGroup. A group owns one reference on each of its tasks, kept in an append-only
 * list of nodes that never move (so that the first failure can walk the list without
 * holding the group's lock while it cancels: a cancel may run callbacks inline,
 * including this group's own, which take the lock). The lock is a br__ilock: it
 * guards a few stores, never a wait. Rules:
 *   - a node is linked (under the lock) before the task's done-callback is added, so
 *     a failure's walk sees every task whose callback could run;
 *   - the count read under the lock bounds a walk; the nodes below it are immutable;
 *   - the first failure sets `aborting` under the lock and then, unlocked, requests
 *     cancellation of every task in the list; a task linked after `aborting` was set
 *     is cancelled by its creator (create_task checks the flag after linking);
 *   - errors[] has room for one code per task, reserved in create_task, so a callback
 *     never allocates;
 *   - the group is reference-counted: the owner's reference plus one per task callback
 *     not yet run; the last drop frees nodes, futures' references and the group.
 * wait walks the list in order, waiting for each task (and re-reading the count, since
 * tasks may add tasks), so it returns only when every task ever created is done.
 *
 * to_thread. A process-wide thread pool made on first use (a CAS publishes it; a loser
 * frees its own), shut down with wait at exit through the lifecycle hooks (aio order).
 */
#include "core/lib.h"

#include <braid/aio.h>
#include <braid/executor.h>
#include <braid/future.h>

#include <stdatomic.h>
#include <string.h>

/* --- gather ----------------------------------------------------------------------- */

typedef struct join {
    _Atomic size_t refs;
    _Atomic size_t left;   /* positions not done yet */
    br_future *agg;
} join;

static void join_drop(join *j) {
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) == 1) {
        br_future_release(j->agg);
        br__free(j);
    }
}

/* The failure code of a done future: 0 if it succeeded, BR_ECANCELED if cancelled. */
static int outcome_code(br_future *f) {
    int code = 0;
    int rc = br_future_exception(f, BR_NOWAIT, &code, NULL);
    if (rc == BR_ECANCELED)
        return BR_ECANCELED;
    if (rc != 0)
        return rc;
    return code;
}

static void join_done(br_future *f, void *arg) {
    join *j = arg;
    int code = outcome_code(f);
    if (code != 0)
        (void)br_future_set_exception(j->agg, code, NULL);
    if (atomic_fetch_sub_explicit(&j->left, 1, memory_order_acq_rel) == 1)
        (void)br_future_set_result(j->agg, NULL, 0);
    join_drop(j);
}

static void cancel_pending(br_future *const fs[], size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!br_future_done(fs[i]))
            (void)br_future_request_cancel(fs[i]);
}

int br_gather(br_future *const fs[], size_t n, bool return_errors, int64_t deadline) {
    if (n == 0)
        return 0;
    if (fs == NULL)
        return br__misuse(BR_EINVAL, "br_gather: fs is NULL");
    for (size_t i = 0; i < n; i++)
        if (fs[i] == NULL)
            return br__misuse(BR_EINVAL, "br_gather: a NULL future");

    if (return_errors) {
        int rc = br_wait(fs, n, BR_ALL_COMPLETED, deadline, NULL, NULL, NULL);
        if (rc == BR_ECANCELED)
            cancel_pending(fs, n);
        return rc;
    }

    join *j = br__malloc(sizeof *j);
    if (j == NULL)
        return BR_ENOMEM;
    int rc = br_future_new(&j->agg);
    if (rc != 0) {
        br__free(j);
        return rc;
    }
    /* One reference per callback, added up front (a callback may run at once), plus
     * the caller's. */
    atomic_init(&j->refs, n + 1);
    atomic_init(&j->left, n);
    for (size_t i = 0; i < n; i++) {
        rc = br_future_add_done_callback(fs[i], join_done, j);
        if (rc != 0) {
            /* This callback and the ones after it never run: settle their shares. A
             * failure here is BR_ENOMEM or a dead future (misuse): the aggregate
             * fails with it, so the wait below returns at once. */
            (void)br_future_set_exception(j->agg, rc, NULL);
            for (size_t k = i; k < n; k++) {
                if (atomic_fetch_sub_explicit(&j->left, 1, memory_order_acq_rel) == 1)
                    (void)br_future_set_result(j->agg, NULL, 0);
                join_drop(j);
            }
            break;
        }
    }
    rc = br_future_wait(j->agg, deadline);
    if (rc == 0)
        rc = outcome_code(j->agg);
    else if (rc == BR_ECANCELED)
        cancel_pending(fs, n);
    join_drop(j);
    return rc;
}

/* --- wait_for ----------------------------------------------------------------------- */

/* Waits for f to be done whatever it takes; true if the caller's own cancel was
 * consumed meanwhile. */
static bool wait_landed(br_future *f) {
    bool cancelled = false;
    for (;;) {
        int rc = br_future_wait(f, BR_FOREVER);
        if (rc == 0 || rc == BR_EINVAL)
            return cancelled;
        if (rc == BR_ECANCELED)
            cancelled = true;
    }
}

int br_wait_for(br_future *f, int64_t deadline) {
    if (f == NULL)
        return br__misuse(BR_EINVAL, "br_wait_for: f is NULL");
    int rc = br_future_wait(f, deadline);
    if (rc == 0)
        return outcome_code(f);
    if (rc == BR_EINVAL)
        return rc;
    /* BR_ETIMEDOUT or BR_ECANCELED (the caller's): cancel f and wait until it ends. */
    (void)br_future_request_cancel(f);
    bool cancelled = wait_landed(f) || rc == BR_ECANCELED;
    if (cancelled)
        return BR_ECANCELED;
    /* The timeout's cancel landed: f ended CANCELLED (or failed with BR_ECANCELED).
     * If f finished anyway (its result came before the cancel could stop it), its
     * outcome is reported: nothing is lost. */
    int code = outcome_code(f);
    return code == BR_ECANCELED ? BR_ETIMEDOUT : code;
}

/* --- shield --------------------------------------------------------------------------- */

static void shield_done(br_future *inner, void *arg) {
    br_future *outer = arg;
    const void *data = NULL;
    size_t len = 0;
    int rc = br_future_result(inner, BR_NOWAIT, &data, &len);
    if (rc == 0) {
        void *p = NULL;
        if (len == 0 && br_future_result_ptr(inner, BR_NOWAIT, &p) == 0)
            rc = br_future_set_result_ptr(outer, p, NULL);
        else
            rc = br_future_set_result(outer, data, len);
        if (rc == BR_ENOMEM)
            (void)br_future_set_exception(outer, BR_ENOMEM, NULL);
    } else if (br_future_cancelled(inner)) {
        (void)br_future_cancel(outer);
    } else {
        int code = 0;
        const char *msg = NULL;
        if (br_future_exception(inner, BR_NOWAIT, &code, &msg) != 0 || code >= 0)
            code = rc;
        if (br_future_set_exception(outer, code, msg) == BR_ENOMEM)
            (void)br_future_set_exception(outer, code, NULL);
    }
    br_future_release(outer);
}

int br_shield(br_future *inner, br_future **outer) {
    if (inner == NULL || outer == NULL)
        return br__misuse(BR_EINVAL, "br_shield: inner or outer is NULL");
    br_future *o;
    int rc = br_future_new(&o);
    if (rc != 0)
        return rc;
    br_future_retain(o); /* the callback's */
    rc = br_future_add_done_callback(inner, shield_done, o);
    if (rc != 0) {
        br_future_release(o);
        br_future_release(o);
        return rc;
    }
    *outer = o;
    return 0;
}

/* --- TaskGroup ------------------------------------------------------------------------ */

typedef struct tg_node {
    br_future *f;
    struct tg_node *next;
} tg_node;

struct br_taskgroup {
    br__ilock lock;
    _Atomic size_t refs;
    br_loop *loop;      /* tasks go to this loop, or */
    br_executor *ex;    /* to this executor */
    tg_node *head, *tail;
    size_t count;       /* nodes linked */
    bool aborting;      /* the first failure happened, or the owner was cancelled */
    bool closed;        /* wait returned */
    int first;          /* the first failure's code, 0 */
    int *errors;        /* room for `count` codes (reserved by create_task) */
    size_t nerrors, errcap;
};

static void tg_drop(br_taskgroup *g) {
    if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (tg_node *n = g->head, *next; n != NULL; n = next) {
        next = n->next;
        br_future_release(n->f);
        br__free(n);
    }
    br__free(g->errors);
    br__free(g);
}

/* Requests cancellation of every task linked so far (the lock not held). */
static void tg_cancel_all(br_taskgroup *g) {
    br__ilock_lock(&g->lock);
    size_t count = g->count;
    tg_node *n = g->head;
    br__ilock_unlock(&g->lock);
    for (size_t i = 0; i < count; i++) {
        if (!br_future_done(n->f))
            (void)br_future_request_cancel(n->f);
        if (i + 1 < count) /* the last node's next may be being linked right now */
            n = n->next;
    }
}

static void tg_done(br_future *f, void *arg) {
    br_taskgroup *g = arg;
    int code = outcome_code(f);
    bool first = false;
    if (code != 0 && code != BR_ECANCELED) {
        br__ilock_lock(&g->lock);
        if (g->nerrors < g->errcap)
            g->errors[g->nerrors++] = code;
        if (g->first == 0) {
            g->first = code;
            first = !g->aborting;
        }
        g->aborting = true;
        br__ilock_unlock(&g->lock);
    }
    if (first)
        tg_cancel_all(g);
    tg_drop(g);
}

static int tg_new(br_taskgroup **out, br_loop *loop, br_executor *ex) {
    br_taskgroup *g = br__calloc(1, sizeof *g);
    if (g == NULL)
        return BR_ENOMEM;
    atomic_init(&g->refs, 1);
    g->loop = loop;
    g->ex = ex;
    *out = g;
    return 0;
}

int br_taskgroup_new(br_taskgroup **out) {
    if (out == NULL)
        return br__misuse(BR_EINVAL, "br_taskgroup_new: out is NULL");
    br_loop *loop = br_loop_current();
    if (loop == NULL)
        return br__misuse(BR_EPERM, "br_taskgroup_new: no loop runs on this thread");
    return tg_new(out, loop, NULL);
}

int br_taskgroup_new_executor(br_taskgroup **out, br_executor *ex) {
    if (out == NULL || ex == NULL)
        return br__misuse(BR_EINVAL, "br_taskgroup_new_executor: out or ex is NULL");
    return tg_new(out, NULL, ex);
}

int br_taskgroup_create_task(br_taskgroup *g, br_task_fn fn, const void *arg, size_t len,
                             br_future **out) {
    if (g == NULL || fn == NULL)
        return br__misuse(BR_EINVAL, "br_taskgroup_create_task: g or fn is NULL");
    tg_node *node = br__malloc(sizeof *node);
    if (node == NULL)
        return BR_ENOMEM;
    br__ilock_lock(&g->lock);
    bool refused = g->aborting || g->closed;
    int rc = 0;
    if (!refused && g->errcap <= g->count) {
        size_t cap = g->errcap ? g->errcap * 2 : 8;
        int *e = br__realloc(g->errors, cap * sizeof *e);
        if (e == NULL) {
            rc = BR_ENOMEM;
        } else {
            g->errors = e;
            g->errcap = cap;
        }
    }
    br__ilock_unlock(&g->lock);
    if (refused || rc != 0) {
        br__free(node);
        return refused ? BR_ESHUTDOWN : rc;
    }

    br_future *f = NULL;
    if (g->ex != NULL) {
        br_call call = {.fn = fn, .arg = arg, .len = len,
                        .flags = len > 0 ? BR_CALL_COPY_ARG : 0};
        rc = br_submit_call(g->ex, &call, &f);
    } else {
        rc = br_create_task(g->loop, fn, arg, len, &f);
    }
    if (rc != 0) {
        br__free(node);
        return rc;
    }

    node->f = f;
    node->next = NULL;
    br__ilock_lock(&g->lock);
    if (g->tail != NULL)
        g->tail->next = node;
    else
        g->head = node;
    g->tail = node;
    g->count++;
    bool cancel = g->aborting;
    br__ilock_unlock(&g->lock);

    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    if (br_future_add_done_callback(f, tg_done, g) != 0) {
        /* Out of memory for the callback: the task is linked (wait waits for it), but
         * its failure can't be seen as it happens; wait reads it instead. */
        tg_drop(g);
    }
    if (cancel)
        (void)br_future_request_cancel(f);
    if (out != NULL) {
        br_future_retain(f);
        *out = f;
    }
    return 0;
}

int br_taskgroup_wait(br_taskgroup *g) {
    if (g == NULL)
        return br__misuse(BR_EINVAL, "br_taskgroup_wait: g is NULL");
    bool cancelled = false;
    tg_node *prev = NULL;
    for (size_t i = 0;; i++) {
        br__ilock_lock(&g->lock);
        if (i == g->count) {
            g->closed = true;
            br__ilock_unlock(&g->lock);
            break;
        }
        tg_node *n = prev != NULL ? prev->next : g->head;
        br__ilock_unlock(&g->lock);
        for (;;) {
            int rc = br_future_wait(n->f, BR_FOREVER);
            if (rc != BR_ECANCELED)
                break;
            /* The owner was cancelled: cancel the group, then keep waiting. */
            cancelled = true;
            br__ilock_lock(&g->lock);
            g->aborting = true;
            br__ilock_unlock(&g->lock);
            tg_cancel_all(g);
        }
        prev = n;
    }
    br__ilock_lock(&g->lock);
    int first = g->first;
    br__ilock_unlock(&g->lock);
    if (cancelled)
        return BR_ECANCELED;
    return first;
}

size_t br_taskgroup_errors(const br_taskgroup *g, int *codes, size_t cap) {
    if (g == NULL)
        return 0;
    br_taskgroup *m = (br_taskgroup *)g;
    br__ilock_lock(&m->lock);
    size_t n = m->nerrors;
    for (size_t i = 0; i < n && i < cap && codes != NULL; i++)
        codes[i] = m->errors[i];
    br__ilock_unlock(&m->lock);
    return n;
}

void br_taskgroup_free(br_taskgroup *g) {
    if (g == NULL)
        return;
    br__ilock_lock(&g->lock);
    bool waited = g->closed;
    g->aborting = true;
    br__ilock_unlock(&g->lock);
    if (!waited)
        tg_cancel_all(g);
    tg_drop(g);
}

/* --- to_thread ------------------------------------------------------------------------ */

static _Atomic(br_executor *) default_pool;

static void pool_at_exit(void) {
    br_executor *ex = atomic_exchange_explicit(&default_pool, NULL, memory_order_acq_rel);
    if (ex != NULL)
        (void)br_executor_free(ex);
}

static br__hooks pool_hooks = {
    .order = BR__ORDER_AIO, .name = "aio.to_thread", .at_exit = pool_at_exit};

static int get_pool(br_executor **out) {
    br_executor *ex = atomic_load_explicit(&default_pool, memory_order_acquire);
    if (BR__LIKELY(ex != NULL)) {
        *out = ex;
        return 0;
    }
    int rc = br__hooks_register(&pool_hooks);
    if (rc != 0)
        return rc;
    br_executor *mine;
    rc = br_threadpool_new(&mine, &(br_threadpool_opts){.thread_name_prefix = "to_thread"});
    if (rc != 0)
        return rc;
    br_executor *none = NULL;
    if (!atomic_compare_exchange_strong_explicit(&default_pool, &none, mine,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire)) {
        (void)br_executor_free(mine);
        *out = none;
        return 0;
    }
    *out = mine;
    return 0;
}

int br_to_thread(br_task_fn fn, const void *arg, size_t len, br_future **out) {
    if (fn == NULL || out == NULL)
        return br__misuse(BR_EINVAL, "br_to_thread: fn or out is NULL");
    br_executor *ex;
    int rc = get_pool(&ex);
    if (rc != 0)
        return rc;
    br_call call = {.fn = fn, .arg = arg, .len = len,
                    .flags = len > 0 ? BR_CALL_COPY_ARG : 0};
    return br_submit_call(ex, &call, out);
}
