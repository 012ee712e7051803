/* Coroutine tasks: creating them, running them on the loop, the coroutine parker,
 * cancellation's home hook, sleep and yield, timeout scopes. The protocol these keep
 * (who schedules a suspended coroutine, lifetimes, counted cancellation) is in
 * aio/loop.c's design notes; every rule there binds this file.
 */
#include "aio/coro.h"
#include "aio/loop.h"
#include "future/for_executors.h"

#include <stdio.h>
#include <string.h>

BR__TLS br__atask *br__atask_tl;

br__atask *br__atask_current(void) { return br__atask_tl; }
br_loop *br__atask_loop(const br__atask *a) { return a->loop; }
br_future *br__atask_future(const br__atask *a) { return a->f; }

br_future *br_aio_current_task(void) {
    br__atask *a = br__atask_tl;
    return a ? a->f : NULL;
}

/* --- switching tasks --------------------------------------------------------------------- */

/* a's context on the loop's thread: before it is resumed or handed off to. */
static inline void enter_task(br__atask *a) {
    br__atask_tl = a;
    br__set_context(br__coro_identity(a->id), &br__coro_parker, a);
}

#if BR__CORO_HAND_OFF
/* Suspends the running own-stack task a (a park or a yield). When the next runnable the
 * loop would run is a task that has started on its own stack too, a runs it itself
 * (br__coro_hand_off) instead of switching to the loop, which would pop that same
 * runnable and resume it with the same context. The next runnable is the run step's
 * next one, or when the step is over, the head of the ready queue, if the loop's next
 * iteration would do nothing but take the ready queue as its batch
 * (br__loop_next_batch; loop.c, "Hand-offs"). Then it may be a itself (a yield): it
 * goes on. Out of line: a shared-stack task's suspend keeps its frames as they were
 * (a yield's must fit a small cell's room, aio/loop.h). */
__attribute__((noinline)) static void own_suspend(br__atask *a) {
    br_loop *l = a->loop;
    br__runnable *r = l->batch.head;
    bool next = r == NULL;
    if (next)
        r = l->ready.head;
    br__atask *b = r != NULL && r->kind == BR__RUN_TASK ? (br__atask *)(void *)r : NULL;
    if (b != NULL && (b == a || (b->co != NULL && !b->shared_stack)) &&
        (!next || br__loop_next_batch(l))) {
        (void)br__rq_pop(&l->batch);
        if (b == a)
            return;
        enter_task(b);
        br__coro_hand_off(b->co);
        return;
    }
    br__coro_suspend();
}
#endif

/* Suspends the running task a: a shared-stack one straight back to the loop. */
static inline void task_suspend(br__atask *a) {
#if BR__CORO_HAND_OFF
    if (!a->shared_stack) {
        own_suspend(a);
        return;
    }
#endif
    br__coro_suspend();
}

/* --- the coroutine parker ----------------------------------------------------------------- */

/* The loop takes a suspended coroutine's wake-up back (CAS 2 -> 0) and schedules it;
 * if a waker stored 1 first, its unpark schedules it instead (loop.c, the parker). */
static void steal(br__atask *a) {
    br__waiter *w = a->park_w;
    if (w == NULL)
        return;
    uint32_t two = 2;
    if (atomic_compare_exchange_strong_explicit(&w->signalled, &two, 0, memory_order_acq_rel,
                                                memory_order_acquire)) {
        a->park_w = NULL; /* scheduled: no second steal before it runs */
        br__rq_push(&a->loop->ready, &a->run);
    }
}

void br__atask_poke(br__atask *a) {
    if (a->park_w && a->park_canc &&
        atomic_load_explicit(&a->must_report, memory_order_acquire))
        steal(a);
}

static void park_timer_fire(br__tnode *n) {
    br__atask *a = (br__atask *)(void *)((char *)n - offsetof(br__atask, park_timer));
    steal(a);
}

static int coro_park(br__waiter *w, int64_t deadline) {
    br__atask *a = w->ctx;
    br_loop *l = a->loop;
    bool canc = !(w->flags & BR__WAITER_NOCANCEL);
    void *site = __builtin_return_address(0);
    for (;;) {
        if (atomic_load_explicit(&w->signalled, memory_order_acquire) == 1)
            return 0;
        if (canc && atomic_exchange_explicit(&a->must_report, 0, memory_order_acq_rel))
            return BR_ECANCELED;
        if (br__deadline_passed(deadline))
            return BR_ETIMEDOUT;
        if (deadline != BR_FOREVER)
            (void)br__theap_push(&l->timers, &a->park_timer, deadline); /* room reserved */
        a->park_w = w;
        a->park_canc = canc;
        a->park_site = site;
        uint32_t z = 0;
        if (!atomic_compare_exchange_strong_explicit(&w->signalled, &z, 2,
                                                     memory_order_acq_rel,
                                                     memory_order_acquire)) {
            a->park_w = NULL; /* signalled meanwhile: nobody scheduled us */
            br__theap_remove(&l->timers, &a->park_timer);
            return 0;
        }
        task_suspend(a);
        a->park_w = NULL;
        br__theap_remove(&l->timers, &a->park_timer);
    }
}

static void coro_unpark(_Atomic uint32_t *word, void *ctx, uint32_t old) {
    (void)word;
    if (old != 2)
        return; /* never suspended on it: it sees signalled == 1 itself */
    br__atask *a = ctx;
    br__loop_schedule(a->loop, &a->run);
}

/* The parker's cancel: a request not counted by the future layer (a waiter reposting
 * one it consumed but couldn't report, rule 2 of core/lib.h). */
static void coro_cancel(void *ctx) {
    br__atask *a = ctx;
    atomic_store_explicit(&a->must_report, 1, memory_order_release);
    if (br__loop_tl == a->loop && br__atask_tl != a)
        br__atask_poke(a);
}

const br__parker br__coro_parker = {coro_park, coro_unpark, coro_cancel};

/* The future layer's home hook (for_executors.h): under the future's lock. */
void br__atask_home_cancel(void *home) {
    br__atask *a = home;
    atomic_fetch_add_explicit(&a->requests, 1, memory_order_relaxed);
    atomic_store_explicit(&a->must_report, 1, memory_order_release);
    br_loop *l = a->loop;
    if (br__loop_tl == l) {
        if (br__atask_tl != a)
            br__atask_poke(a);
        return;
    }
    br__ilock_lock(&l->inbox_lock);
    if (!a->cnoticed) {
        a->cnoticed = true;
        a->cnext = l->cancels;
        l->cancels = a;
        if (l->sleeping) {
            l->sleeping = false;
            br__poller_wake(l->poller);
        }
    }
    br__ilock_unlock(&l->inbox_lock);
}

/* --- creating --------------------------------------------------------------------------------- */

static _Atomic uint64_t task_ids; /* identities and names: never reused, unlike records */

/* The record's offset of the coroutine in its cell. */
#define CORO_AT (((sizeof(br__atask) + 15) & ~(size_t)15))
/* A small cell holds the record, the coroutine and the room (aio/loop.h): checked here,
 * at compile time, because the sizes depend on the compiler and the ABI. Sanitizer
 * builds' coroutines are bigger: cell_get gives them bigger heap blocks. */
_Static_assert(CORO_AT + BR__CORO_BYTES + BR__CELL_ROOM <= BR__CELL_SMALL,
               "a small cell holds a task's record, its coroutine and the room for frames");
_Static_assert(BR__CELL_ROOM >= BR__PARK_BLOCK, "the room holds a park block");

const char *br__atask_name(const br__atask *a, char buf[32]) {
    if (a->uname)
        return a->uname;
    memcpy(buf, "Task-", 5);
    buf[5 + br__fmt_u(buf + 5, a->id, 10)] = '\0';
    return buf;
}

/* --- the frames of shared-stack tasks ----------------------------------------------------
 *
 * A shared-stack task's cell keeps the room after its record and coroutine for the
 * frames it copies out (a small cell: 144 bytes; a task suspended in a yield copies
 * out 144, one asleep 352, one parked on a semaphore 480). Frames that outgrow it go to
 * a cell of the smallest class that holds them (aio/loop.h), beyond 1 KiB to the heap: the
 * coroutine layer asks these ops (coro.h) at the copy-out, which happens on the loop's
 * thread (a shared-stack coroutine is resumed only on the thread of its shared stack,
 * and that thread runs its loop). From another thread (a thread whose shared stack
 * holds a suspended task of a loop it no longer runs, while it runs another loop) get
 * says NULL and the heap serves, and a put from there leaves the block to the loop's
 * end (br__cells_put_foreign): another thread may be running that loop and taking
 * cells meanwhile. */

static void *frames_get(const br__frames_ops *ops, size_t len, size_t *cap, uint8_t *tag) {
    br_loop *l = (br_loop *)(void *)((char *)ops - offsetof(br_loop, frames));
    if (br__loop_tl != l)
        return NULL;
    int cls = 0;
    while (cls < BR__CELL_CLASSES && br__cell_size[cls] < len)
        cls++;
    if (cls == BR__CELL_CLASSES)
        return NULL;
    void *p = br__cells_get(&l->cells, cls);
    if (p != NULL) {
        *cap = br__cell_size[cls];
        *tag = (uint8_t)(2 + cls);
    }
    return p;
}

static void frames_put(const br__frames_ops *ops, void *p, uint8_t tag) {
    br_loop *l = (br_loop *)(void *)((char *)ops - offsetof(br_loop, frames));
    if (br__loop_tl == l)
        br__cells_put(&l->cells, tag - 2, p);
    else
        br__cells_put_foreign(&l->cells, tag - 2, p);
}

const br__frames_ops br__loop_frames_ops = {frames_get, frames_put};

/* The bytes a task's block needs: its record, its coroutine and room for a park block
 * (its park memory: core/lib.h). A small cell without sanitizers (asserted above);
 * sanitizer builds' coroutines are bigger (AddressSanitizer's by 32 bytes, which would
 * leave 112 of a small cell): there a block of this size from the heap. */
static size_t cell_need(void) { return CORO_AT + br__coro_sizeof() + BR__PARK_BLOCK; }

/* A task's block (aio/cells.c): a small cell of l's on l's thread, else from the heap. */
static br__atask *cell_get(br_loop *l) {
    int cls = BR__CELL_SMALL_CLASS;
    size_t size = BR__CELL_SMALL;
    br__atask *a;
    if (br__loop_tl == l && cell_need() <= size) {
        a = br__cells_get(&l->cells, cls);
    } else {
        a = br__aligned_alloc(16, cell_need() > size ? cell_need() : size);
        cls = -1;
    }
    if (a != NULL) {
        memset(a, 0, sizeof *a);
        a->cell = (int8_t)cls;
    }
    return a;
}

static size_t cell_size(void) { return cell_need() > BR__CELL_SMALL ? cell_need() : BR__CELL_SMALL; }

int br__atask_start(br_loop *l, br_task *t, const br_task_opts *opts, bool from_ex) {
    size_t stack_size = opts ? opts->stack_size : 0;
    bool shared;
    if (opts && (opts->shared_stack || opts->own_stack))
        shared = opts->shared_stack;
    else if (stack_size > BR__CORO_SHARED_STACK)
        shared = false; /* too big for the shared stack: its own */
    else
        shared = l->task_shared;
    char *uname = NULL;
    if (opts && opts->name) {
        size_t n = strnlen(opts->name, 31); /* cut to 31 bytes, as it always was */
        uname = br__malloc(n + 1);
        if (uname == NULL)
            return BR_ENOMEM;
        memcpy(uname, opts->name, n);
        uname[n] = '\0';
    }
    br__atask *a = cell_get(l);
    if (a == NULL) {
        br__free(uname);
        return BR_ENOMEM;
    }
    a->uname = uname;
    a->run.kind = BR__RUN_TASK;
    a->loop = l;
    a->f = br_task_future(t);
    a->from_ex = from_ex;
    atomic_init(&a->requests, 0);
    atomic_init(&a->must_report, 0);
    br__tnode_init(&a->park_timer, park_timer_fire);
    a->id = atomic_fetch_add_explicit(&task_ids, 1, memory_order_relaxed) + 1;
    a->shared_stack = shared;
    if (stack_size == 0)
        stack_size = l->task_stack_size;
    if (shared && stack_size > BR__CORO_SHARED_STACK)
        stack_size = 0; /* the loop's size doesn't fit: the shared stack's */
    /* In KiB (the coroutine rounds up to pages anyway); a size past what fits stays one
     * that br__coro_new_in refuses (BR_EINVAL when the task first runs). */
    a->stack_kib = stack_size >= ((size_t)UINT32_MAX << 10) ? UINT32_MAX
                                                             : (uint32_t)((stack_size + 1023) >> 10);
    br_future_retain(a->f);
    /* Before anyone else has the future (lifetime rule 2): the flag, then the home. */
    br__task_mark_home(t, !from_ex);
    t->next = (br_task *)(void *)a;
    atomic_fetch_add_explicit(&l->live, 1, memory_order_relaxed);
    if (from_ex)
        atomic_fetch_add_explicit(&l->ex_live, 1, memory_order_relaxed);
    if (from_ex && l->ex_limit) {
        br__ilock_lock(&l->inbox_lock);
        br__rq_push(&l->ex_pending, &a->run);
        if (l->sleeping) {
            l->sleeping = false;
            br__poller_wake(l->poller);
        }
        br__ilock_unlock(&l->inbox_lock);
        return 0;
    }
    br__loop_schedule(l, &a->run);
    return 0;
}

int br_create_task_opts(br_loop *loop, br_task_fn fn, const void *arg, size_t len,
                        const br_task_opts *opts, br_future **out) {
    if (fn == NULL || out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_create_task: fn or out is NULL");
    if (opts && opts->stack_size != 0 && opts->stack_size < BR__CORO_MIN_STACK)
        return BR_EINVAL;
    if (opts && opts->shared_stack && (opts->own_stack || opts->stack_size > BR__CORO_SHARED_STACK))
        return BR__MISUSE(BR_EINVAL, "br_create_task_opts: shared_stack with own_stack "
                                     "or a stack over 1 MiB");
    if (loop == NULL)
        loop = br__loop_tl;
    if (loop == NULL)
        return BR_EPERM; /* no loop given and none runs here */
    unsigned how = BR__ARG_IN_PROCESS | (len ? BR__ARG_COPY : BR__ARG_BORROW);
    br_future *f = br__task_prepare(fn, arg, len, how, BR_FOREVER, 2);
    if (f == NULL)
        return BR_ENOMEM;
    int rc = br__atask_start(loop, br__future_task(f), opts, false);
    if (rc != 0) {
        br__task_abandon(br__future_task(f), BR_ECANCELED);
        br_future_release(f);
        return rc;
    }
    *out = f;
    return 0;
}

int br_create_task(br_loop *loop, br_task_fn fn, const void *arg, size_t len,
                   br_future **out) {
    return br_create_task_opts(loop, fn, arg, len, NULL, out);
}

/* --- running -------------------------------------------------------------------------------------- */

static void task_main(void *p) {
    br__atask *a = p;
    a->rc = br__task_call(br__future_task(a->f));
}

void br__atask_free(br__atask *a) {
    br_future_release(a->f);
    br__free(a->uname);
    if (a->cell < 0)
        br__free(a);
    else
        br__cells_put(&a->loop->cells, a->cell, a);
}

/* The task is over (finished, or never begun): nothing reaches the record after this. */
void br__atask_gone(br_loop *l, br__atask *a) {
    /* Lifetime rule (2): no home hook runs or will run once this returns. */
    br__task_set_home(br__future_task(a->f), NULL);
    bool noticed;
    br__ilock_lock(&l->inbox_lock);
    noticed = a->cnoticed;
    if (noticed)
        a->dead = true;
    br__ilock_unlock(&l->inbox_lock);
    bool from_ex = a->from_ex;
    if (a->ex_slot)
        l->ex_running--;
    if (!noticed)
        br__atask_free(a);
    atomic_fetch_sub_explicit(&l->live, 1, memory_order_release);
    if (from_ex && atomic_fetch_sub_explicit(&l->ex_live, 1, memory_order_acq_rel) == 1) {
        /* shutdown(wait) checks ex_live under this lock after linking its waiter, so
         * either it sees 0 or we find it here (loop.c, ex_shutdown). */
        br__ilock_lock(&l->ex_idle.lock);
        for (br__waiter *w; (w = br__wq_pop(&l->ex_idle)) != NULL;)
            br__waiter_wake(w);
        br__ilock_unlock(&l->ex_idle.lock);
    }
}

void br__loop_run_task(br_loop *l, br__atask *a) {
    if (a->co == NULL) {
        if (!br__task_begin(br__future_task(a->f))) {
            br__atask_gone(l, a); /* cancelled before it ran (or expired) */
            return;
        }
        /* Its name is lent (uname outlives the coroutine: br__atask_free) or made on
         * demand from its number, as br__atask_name makes it: nothing formatted here. */
        br__coro_opts o = {.stack_size = (size_t)a->stack_kib << 10,
                           .shared_stack = a->shared_stack,
                           .name = a->uname,
                           .name_prefix = "Task-",
                           .id = a->id,
                           .frames = &l->frames};
        int rc = br__loop_reserve_timer(l); /* the park's timer always has room */
        if (rc == 0 && a->shared_stack) {
            const char *lo, *hi; /* the thread's shared stack exists from here on */
            rc = br__coro_shared_range(&lo, &hi);
            if (rc != 0)
                l->tneed--;
        }
        if (rc == 0) {
            rc = br__coro_new_in(&a->co, (char *)a + CORO_AT, cell_size() - CORO_AT,
                                 task_main, a, &o);
            if (rc != 0)
                l->tneed--;
        }
        if (rc != 0) {
            a->co = NULL;
            (void)br__task_finish(br__future_task(a->f), rc);
            br__atask_gone(l, a);
            return;
        }
        br__coro_set_user(a->co, a);
        a->anext = l->all;
        a->aprev = NULL;
        if (l->all)
            l->all->aprev = a;
        l->all = a;
    }
    enter_task(a);
    if (a->shared_stack) {
        /* Its park memory comes from its cell's room, else the thread's park blocks
         * (core/lib.h, park memory). */
        const char *lo, *hi;
        (void)br__coro_shared_range(&lo, &hi); /* made before the coroutine was */
        br__set_context_stack(lo, hi);
        bool *busy;
        void *room = br__coro_park_room(a->co, &busy);
        if (room != NULL)
            br__set_context_room(room, busy);
    }
    br__coro_state st = br__coro_resume(a->co);
    a = br__atask_tl; /* the task that came back: a's, or one handed off to */
    br__set_context(0, NULL, NULL);
    br__atask_tl = NULL;
    if (st != BR__CORO_DONE)
        return;
    /* Scopes left entered by a task that returned inside them. */
    for (br__scope *s = a->scopes, *prev; s; s = prev) {
        prev = s->prev;
        if (br__tnode_armed(&s->node))
            br__theap_remove(&l->timers, &s->node);
        l->tneed--;
        if (a->shared_stack)
            br__free(s); /* the heap record of a shared-stack task's scope */
    }
    a->scopes = NULL;
    l->tneed--; /* the park's timer */
    if (a->aprev)
        a->aprev->anext = a->anext;
    else
        l->all = a->anext;
    if (a->anext)
        a->anext->aprev = a->aprev;
    br__coro_free(a->co);
    a->co = NULL;
    br_task *t = br__future_task(a->f);
    int rc = a->rc;
    /* The executor's reference goes with finish; ours (a->f) keeps the block. */
    (void)br__task_finish(t, rc);
    br__atask_gone(l, a);
}

/* --- sleep, yield ----------------------------------------------------------------------------------- */

int br_aio_sleep_until(int64_t deadline) {
    br__atask *a = br__atask_tl;
    if (a == NULL)
        return BR_EPERM;
    BR__PARKED(br__waiter, w);
    br__waiter_init(w);
    w->flags |= BR__WAITER_NOSPIN;
    int rc = br__waiter_park(w, deadline);
    return rc == BR_ETIMEDOUT ? 0 : rc;
}

int br_aio_yield(void) {
    br__atask *a = br__atask_tl;
    if (a == NULL)
        return BR_EPERM;
    /* A load before the exchange: the exchange (a locked instruction) only when a
     * request waits to be reported. One stored meanwhile is seen by the next call,
     * as it would be had it arrived just after this one. */
    if (atomic_load_explicit(&a->must_report, memory_order_relaxed) &&
        atomic_exchange_explicit(&a->must_report, 0, memory_order_acq_rel))
        return BR_ECANCELED;
    br__rq_push(&a->loop->ready, &a->run);
    task_suspend(a);
    return 0;
}

int br_aio_sleep(int64_t ns) {
    if (br__atask_tl == NULL)
        return BR_EPERM;
    if (ns <= 0)
        return br_aio_yield();
    return br_aio_sleep_until(br_deadline_after(ns));
}

/* --- timeout scopes ------------------------------------------------------------------------------- */

static void scope_fire(br__tnode *n) {
    br__scope *s = (br__scope *)n;
    br__atask *a = s->a;
    s->flags |= BR__SCOPE_FIRED;
    atomic_fetch_add_explicit(&a->requests, 1, memory_order_relaxed);
    atomic_store_explicit(&a->must_report, 1, memory_order_release);
    br__atask_poke(a);
}

/* The scope record of `scope`: the handle itself, or for a shared-stack task a record
 * on the heap that the handle points to (the loop's timers and a->scopes reach it while
 * the task is suspended, when a handle among its locals is not at its address: core/lib.h,
 * park memory). Such a record is freed when the scope is left or the task ends. NULL if
 * the handle names no scope entered by a (so never read through a stale pointer). */
static br__scope *scope_of(br__atask *a, br_timeout_scope *scope) {
    if (scope == NULL)
        return NULL;
    if (!a->shared_stack)
        return (br__scope *)(void *)scope;
    br__scope *p = *(br__scope **)(void *)scope;
    for (br__scope *s = a->scopes; s; s = s->prev)
        if (s == p)
            return p;
    return NULL;
}

int br_timeout_enter(br_timeout_scope *scope, int64_t deadline) {
    br__atask *a = br__atask_tl;
    if (a == NULL)
        return BR_EPERM;
    if (scope == NULL)
        return BR__MISUSE(BR_EINVAL, "br_timeout_enter: NULL scope");
    br__scope *s = (br__scope *)(void *)scope;
    if (a->shared_stack) {
        s = br__malloc(sizeof *s);
        if (s == NULL)
            return BR_ENOMEM;
    }
    if (br__loop_reserve_timer(a->loop) != 0) {
        if (a->shared_stack)
            br__free(s);
        return BR_ENOMEM;
    }
    if (a->shared_stack)
        *(br__scope **)(void *)scope = s;
    br__tnode_init(&s->node, scope_fire);
    s->a = a;
    s->prev = a->scopes;
    s->base = atomic_load_explicit(&a->requests, memory_order_relaxed);
    s->flags = BR__SCOPE_ENTERED;
    a->scopes = s;
    if (deadline != BR_FOREVER)
        (void)br__theap_push(&a->loop->timers, &s->node, deadline);
    return 0;
}

int br_timeout_reschedule(br_timeout_scope *scope, int64_t deadline) {
    br__atask *a = br__atask_tl;
    if (a == NULL)
        return BR_EPERM;
    br__scope *s = scope_of(a, scope);
    if (s == NULL || !(s->flags & BR__SCOPE_ENTERED) || s->a != a)
        return BR__MISUSE(BR_EINVAL, "br_timeout_reschedule: not an entered scope");
    if (s->flags & BR__SCOPE_FIRED)
        return BR_ESTATE; /* its timeout already fired */
    br__theap_remove(&a->loop->timers, &s->node);
    if (deadline != BR_FOREVER)
        (void)br__theap_push(&a->loop->timers, &s->node, deadline);
    return 0;
}

int br_timeout_leave(br_timeout_scope *scope) {
    br__atask *a = br__atask_tl;
    if (a == NULL)
        return BR_EPERM;
    br__scope *s = scope_of(a, scope);
    if (s == NULL || s != a->scopes)
        return BR__MISUSE(BR_EINVAL, "br_timeout_leave: not the innermost entered scope");
    br_loop *l = a->loop;
    br__theap_remove(&l->timers, &s->node);
    l->tneed--;
    a->scopes = s->prev;
    s->flags &= ~(uint32_t)BR__SCOPE_ENTERED;
    uint32_t flags = s->flags;
    uint32_t base = s->base;
    if (a->shared_stack)
        br__free(s);
    if (flags & BR__SCOPE_FIRED) {
        /* uncancel(): our own request goes. */
        uint32_t left = atomic_fetch_sub_explicit(&a->requests, 1, memory_order_acq_rel) - 1;
        if (left <= base) {
            if (left == 0)
                atomic_store_explicit(&a->must_report, 0, memory_order_release);
            return BR_ETIMEDOUT;
        }
        return BR_ECANCELED; /* another request came meanwhile: it stays */
    }
    return atomic_load_explicit(&a->requests, memory_order_acquire) > base ? BR_ECANCELED
                                                                               : 0;
}
