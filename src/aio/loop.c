/* The event loop: its thread, its ready queue, its inbox, its timers and its poller;
 * callbacks; run/stop/free; waiting for descriptors from coroutines; the loop as an
 * executor; br_aio_run and br_aio_dump. Tasks and the coroutine parker are in task.c,
 * the timer heap in timer.c, the poller in platform/linux/poller.c.
 *
 * Design notes: the protocol. Read all of it before changing task.c or this file.
 *
 * Threads. A loop runs on one thread at a time (l->thread, claimed by a CAS in run).
 * Everything in struct br_loop is that thread's alone except the inbox (inbox_lock
 * guards inbox, cancels, sleeping), l->stop, l->live and the executor's counters.
 * Coroutines run on the loop's thread, one at a time, between two iterations' steps;
 * while one runs, the loop's own code is suspended in br__coro_resume, so loop-thread
 * data needs no lock even when a coroutine touches it (a coroutine waking another on
 * the same loop pushes it on the ready queue directly).
 *
 * One iteration: drain the inbox into the ready queue (and handle cancel notices);
 * decide whether to sleep (nothing ready, no notice, no stop); poll (blocking only when
 * sleeping, until the earliest timer; skipped when busy and no coroutine waits for a
 * descriptor);
 * dispatch readiness; fire the timers due; run the runnables that were ready at the
 * start of the run step (those they make ready wait for the next iteration, as
 * asyncio's _run_once, so a yielding coroutine can't starve the poller). A suspending
 * task may run the next one, or take the next batch, itself (Hand-offs, below).
 *
 * Hand-offs (task.c, own_suspend; not in sanitizer builds, coro.h). A task on its own
 * stack that suspends (a park or a yield) doesn't switch to the loop when the loop's
 * next step would only be to resume a started own-stack task: it resumes that task
 * itself (br__coro_hand_off), having taken it off the batch and set its context
 * (br__atask_tl, br__set_context) exactly as br__loop_run_task would. The batch is
 * l->batch for this: the runnables the run step took, not run yet. When the step is
 * over, br__loop_next_batch decides whether the next iteration would do anything but
 * take the ready queue as its batch: it would not when the ready queue holds
 * something (no sleep), no coroutine waits for a descriptor (no poll), no timer is
 * due (none to fire: the clock is read when one is armed, as iterate reads it), the
 * inbox, the notices and the
 * executor's pending list are empty (checked under the inbox lock, as the drain does),
 * no SIGINT or executor cancel is pending, and the run is not finished (stop, the
 * awaited future, idleness). Then it takes that batch itself. So the order is the
 * loop's (FIFO, callbacks included: a callback at the head means no hand-off, and the
 * loop runs it), a timer, an I/O readiness, a threadsafe callback or a cancel notice
 * stop the hand-offs until the loop's own iteration has handled them, and a yield
 * still checks for a cancel request on entry. A yield whose task heads the next batch
 * just goes on (the loop would resume it next). br__loop_run_task learns which task
 * came back from br__atask_tl, not from its argument.
 *
 * The coroutine parker (task.c). A task's coroutine parks a waiter w like this:
 *   signalled == 1 -> 0; a pending cancel (cancellable park) -> BR_ECANCELED, consumed;
 *   deadline passed -> BR_ETIMEDOUT; else arm the park's timer (finite deadline), set
 *   a->park_w = w, CAS w->signalled 0 -> 2 (failing only because a waker stored 1:
 *   return 0) and suspend. On resume disarm the timer and check again from the top.
 * Exactly one party moves a suspended coroutine back to the ready queue, per park:
 *   - a waker (any thread) whose exchange found old == 2 calls unpark, which schedules
 *     the task (its loop's ready queue on that loop's thread, else the inbox);
 *   - the loop (its own thread: the park's timer, a cancel notice, a timeout scope)
 *     "steals" the wake-up with CAS w->signalled 2 -> 0; if the CAS fails a waker got
 *     there first and its unpark will schedule the task, so the loop does nothing.
 * The two are exclusive (each needs the word at 2 and moves it away from 2), so a
 * suspended coroutine is scheduled once per suspension: never twice (a double resume),
 * never zero times (a lost wake-up). That is lifetime rule (1) of the brief in this
 * form: a park ended by a timeout or a cancel is one whose word the loop took back to
 * 0 BEFORE resuming the coroutine, so no unpark is in flight for it when it leaves;
 * if a waker saw 2 first, the coroutine stays suspended until that unpark arrives and
 * then returns 0 (the cancel stays pending). br_aio_yield schedules its own task while
 * running (park_w is NULL then, so no steal can add a second entry).
 *
 * Lifetimes.
 *  (1) The waiter: above. The waiter lives on the coroutine's stack; only the loop's
 *      thread reads a->park_w, and only while the coroutine is suspended.
 *  (2) The task record (br__atask, the parker's ctx) outlives every unpark and every
 *      cancel: unpark comes only for old == 2, after which the coroutine stays
 *      suspended until it is scheduled, so the record is alive until the unpark has
 *      pushed it (the push is the unpark's last touch, made under the inbox lock or on
 *      the loop's thread). Cancel requests reach the record through the future layer's
 *      home hook (future/for_executors.h), called under the future's lock; the loop
 *      clears the home under that lock before it frees the record, and the record
 *      holds its own reference on the future, so that lock is alive for that. A
 *      record on the inbox's notice list when its task ends is marked dead and freed by
 *      the drain that takes it off.
 *  (3) The loop outlives every push from another thread: the pusher does its whole
 *      push, the poller wake included, under the inbox lock, and br_loop_free takes and
 *      releases that lock before it frees anything. Every such push is for a task of
 *      this loop that is not finished (so br_loop_free would say BR_EBUSY), except
 *      call_soon_threadsafe, whose caller must not free the loop concurrently.
 *
 * Sleeping. The loop sets l->sleeping under the inbox lock after finding the inbox,
 * the notices and the ready queue empty; a pusher that finds it set clears it and
 * wakes the poller (eventfd), under the same lock. So a push either is seen by the
 * drain or wakes the sleep: never lost, and at most one eventfd write per sleep.
 *
 * Cancellation (task.c). br_future_request_cancel (or br_future_cancel) on a running
 * coroutine task raises the future's flag and calls the home hook: requests += 1 and
 * must_report = 1; then, on the loop's thread, a steal of the current park if it is
 * cancellable; from elsewhere, a notice through the inbox, which the loop turns into
 * the same steal. A park reports a request once (must_report back to 0); the count
 * stays for timeout scopes (asyncio's cancelling()/uncancel()): a scope whose timer
 * fired adds its own request and removes it at leave, which reports BR_ETIMEDOUT only
 * if no other request arrived since enter, else BR_ECANCELED (both requests arriving
 * together: the outer one stays counted, so neither is lost: cpython#86296, #116720).
 */
#include "aio/coro.h"
#include "aio/io.h"
#include "aio/loop.h"
#include "future/private.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

BR__TLS br_loop *br__loop_tl;

/* --- the inbox and the ready queue ------------------------------------------------------ */

void br__loop_schedule(br_loop *l, br__runnable *r) {
    if (br__loop_tl == l) {
        br__rq_push(&l->ready, r);
        return;
    }
    br__ilock_lock(&l->inbox_lock);
    br__rq_push(&l->inbox, r);
    if (l->sleeping) {
        l->sleeping = false;
        br__poller_wake(l->poller);
    }
    br__ilock_unlock(&l->inbox_lock);
}

/* Pokes the loop (from any thread) so that it re-checks what it waits for. */
static void loop_nudge(br_loop *l) {
    br__ilock_lock(&l->inbox_lock);
    if (l->sleeping) {
        l->sleeping = false;
        br__poller_wake(l->poller);
    }
    br__ilock_unlock(&l->inbox_lock);
}

/* Moves the inbox to the ready queue; returns the notices taken (under the lock). */
static br__atask *drain_locked(br_loop *l) {
    br__rq_append(&l->ready, &l->inbox);
    while (l->ex_pending.head && l->ex_running < l->ex_limit) {
        br__atask *a = (br__atask *)br__rq_pop(&l->ex_pending);
        a->ex_slot = true;
        l->ex_running++;
        br__rq_push(&l->ready, &a->run);
    }
    /* Relinked through hnext: once cnoticed is false a hook on another thread may put
     * a record on the list again, rewriting its cnext while we walk. */
    br__atask *c = NULL;
    for (br__atask *a = l->cancels; a; a = a->cnext) {
        a->cnoticed = false;
        a->hnext = c;
        c = a;
    }
    l->cancels = NULL;
    return c;
}

static void handle_notices(br__atask *c) {
    while (c) {
        br__atask *next = c->hnext;
        if (c->dead)
            br__atask_free(c);
        else
            br__atask_poke(c);
        c = next;
    }
}

/* --- callbacks and timers ----------------------------------------------------------------- */

typedef struct cbnode {
    br__runnable run;
    void (*fn)(void *arg);
    void *arg;
} cbnode;

static int call_soon(br_loop *loop, void (*fn)(void *arg), void *arg) {
    if (loop == NULL || fn == NULL)
        return BR__MISUSE(BR_EINVAL, "br_call_soon: loop or fn is NULL");
    cbnode *n = br__malloc(sizeof *n);
    if (n == NULL)
        return BR_ENOMEM;
    n->run.kind = BR__RUN_CB;
    n->fn = fn;
    n->arg = arg;
    br__loop_schedule(loop, &n->run);
    return 0;
}

int br_call_soon(br_loop *loop, void (*fn)(void *arg), void *arg) {
    return call_soon(loop, fn, arg);
}

int br_call_soon_threadsafe(br_loop *loop, void (*fn)(void *arg), void *arg) {
    return call_soon(loop, fn, arg);
}

struct br_timer {
    br__tnode node;
    void (*fn)(void *arg);
    void *arg;
    br_loop *loop;
    bool keep; /* the caller has the handle: br_timer_cancel frees it */
};

static void timer_fire(br__tnode *n) {
    br_timer *t = (br_timer *)n;
    br_loop *l = t->loop;
    l->tneed--;
    void (*fn)(void *) = t->fn;
    void *arg = t->arg;
    if (!t->keep)
        br__free(t);
    fn(arg);
}

/* The loop's own thread, or no thread runs it. */
static bool on_loop_thread(br_loop *l) {
    uintptr_t th = atomic_load_explicit(&l->thread, memory_order_acquire);
    return th == 0 || th == (uintptr_t)br__tls_now();
}

int br__loop_reserve_timer(br_loop *l) {
    if (br__theap_reserve(&l->timers, l->tneed + 1) != 0)
        return BR_ENOMEM;
    l->tneed++;
    return 0;
}

int br_call_at(br_loop *loop, int64_t deadline, void (*fn)(void *arg), void *arg,
               br_timer **out) {
    if (loop == NULL || fn == NULL)
        return BR__MISUSE(BR_EINVAL, "br_call_at: loop or fn is NULL");
    if (!on_loop_thread(loop))
        return BR__MISUSE(BR_EPERM, "br_call_at: not on the loop's thread");
    br_timer *t = br__malloc(sizeof *t);
    if (t == NULL)
        return BR_ENOMEM;
    if (br__loop_reserve_timer(loop) != 0) {
        br__free(t);
        return BR_ENOMEM;
    }
    br__tnode_init(&t->node, timer_fire);
    t->fn = fn;
    t->arg = arg;
    t->loop = loop;
    t->keep = out != NULL;
    (void)br__theap_push(&loop->timers, &t->node, deadline); /* room reserved */
    if (out)
        *out = t;
    return 0;
}

int br_timer_cancel(br_timer *t) {
    if (t == NULL)
        return BR__MISUSE(BR_EINVAL, "br_timer_cancel: NULL");
    if (!br__tnode_armed(&t->node)) {
        br__free(t); /* it ran (or its loop was freed): the handle goes */
        return BR_ESTATE;
    }
    br_loop *l = t->loop;
    if (!on_loop_thread(l))
        return BR__MISUSE(BR_EPERM, "br_timer_cancel: not on the loop's thread");
    br__theap_remove(&l->timers, &t->node);
    l->tneed--;
    br__free(t);
    return 0;
}

/* --- descriptors (br__io_wait's coroutine path) -----------------------------------------
 *
 * Descriptors. A descriptor stays registered with the poller (level-triggered) between
 * waits: `registered` is the interest epoll holds for it. A wait adds its direction if
 * missing (one epoll_ctl) and leaves it there when it ends; a steady read/write cycle
 * thus makes no epoll_ctl at all. The interest is dropped lazily: readiness reported
 * for a direction nobody waits on takes that direction out (MOD, or DEL when none is
 * left), so an idle readable socket costs one report, not one per iteration.
 * br__io_forget (before close) deletes the registration and forgets the entry: the
 * number may come back as another file, and the table must not believe the new one
 * registered. A descriptor closed without it (epoll drops a closed file's registration
 * by itself when the last reference goes) leaves a stale `registered`; the table
 * corrects it when a MOD answers ENOENT or an ADD EEXIST, but a wait for a direction
 * the stale entry already has makes no call and would sleep until its deadline. So the
 * first wait on a descriptor braid has just made or been handed (a stream's, a
 * listener's, a connecting socket's) says BR__IO_NEW, and an entry that knows anything
 * of that number is forgotten first (its waiters woken, a DEL that answers ENOENT for
 * the new file, which is then ADDed); an entry that knows nothing costs nothing. Waits
 * after the first trust the table: closing a stream's descriptor behind its back while
 * the stream lives stays the caller's bug (aio/io.h). One case epoll itself can't
 * mend: a closed number whose file lives on in a dup() keeps its registration inside
 * epoll, out of reach by number (epoll(7)); it shows as spurious readiness, which
 * every caller retries. nio counts the coroutines parked in a descriptor wait: a busy
 * loop polls (without blocking) only when some coroutine waits for a descriptor. */

typedef struct iorec {
    br__waiter w;
} iorec;

struct br__fdent {
    iorec *rd, *wr;      /* the coroutines waiting to read / write */
    uint32_t registered; /* BR__POLL_* the poller watches */
};

/* Makes the poller watch `want` on fd (loop thread). */
static int fd_set_interest(br_loop *l, int fd, uint32_t want) {
    struct br__fdent *e = &l->fds[fd];
    if (want == e->registered)
        return 0;
    void *data = (void *)(uintptr_t)((size_t)fd + 1);
    int rc = 0;
    if (want == 0) {
        (void)br__poller_del(l->poller, fd); /* closed already: epoll forgot it */
    } else if (e->registered == 0) {
        rc = br__poller_add(l->poller, fd, want, data);
        if (rc == BR_EEXIST)
            rc = br__poller_mod(l->poller, fd, want, data);
    } else {
        rc = br__poller_mod(l->poller, fd, want, data);
        if (rc == BR_ENOENT) /* closed and reopened under the same number */
            rc = br__poller_add(l->poller, fd, want, data);
    }
    if (rc == 0)
        e->registered = want;
    l->nctl++;
    return rc;
}

static void io_forget(int fd);

static int io_wait_coro(int fd, uint32_t events, int64_t deadline) {
    br__atask *a = br__atask_tl;
    if (a == NULL)
        return 1; /* not a coroutine: the thread path */
    br_loop *l = a->loop;
    if ((size_t)fd >= l->fdcap) {
        size_t cap = l->fdcap ? l->fdcap : 64;
        while (cap <= (size_t)fd)
            cap *= 2;
        struct br__fdent *n = br__malloc(cap * sizeof *n);
        if (n == NULL)
            return BR_ENOMEM;
        memset(n, 0, cap * sizeof *n);
        if (l->fdcap)
            memcpy(n, l->fds, l->fdcap * sizeof *n);
        br__free(l->fds);
        l->fds = n;
        l->fdcap = cap;
    }
    struct br__fdent *e = &l->fds[fd];
    if ((events & BR__IO_NEW) && (e->registered || e->rd || e->wr))
        io_forget(fd); /* the old file's: the number was closed behind our back */
    events &= BR__IO_READ | BR__IO_WRITE;
    if (((events & BR__IO_READ) && e->rd) || ((events & BR__IO_WRITE) && e->wr))
        return BR_EBUSY; /* another coroutine waits for the same thing on fd */
    uint32_t need = ((events & BR__IO_READ) ? BR__POLL_IN : 0) |
                    ((events & BR__IO_WRITE) ? BR__POLL_OUT : 0);
    if (need & ~e->registered) {
        int rc = fd_set_interest(l, fd, e->registered | need);
        if (rc != 0)
            return rc;
    }
    BR__PARKED(iorec, r);
    br__waiter_init(&r->w);
    if (events & BR__IO_READ)
        e->rd = r;
    if (events & BR__IO_WRITE)
        e->wr = r;
    a->park_fd = fd;
    a->park_io = events;
    l->nio++;
    int rc = br__waiter_park(&r->w, deadline);
    l->nio--;
    a->park_io = 0;
    /* The table may have grown while we were parked: look the entry up again. Only
     * this thread dispatches, so nothing can signal r once we run. The registration
     * stays (the notes above). */
    e = &l->fds[fd];
    if (e->rd == r)
        e->rd = NULL;
    if (e->wr == r)
        e->wr = NULL;
    return rc;
}

uint32_t br__loop_fd_registered(const br_loop *l, int fd) {
    return fd >= 0 && (size_t)fd < l->fdcap ? l->fds[fd].registered : 0;
}

/* br__io_forget's loop side: on the loop running on this thread, if any. */
static void io_forget(int fd) {
    br_loop *l = br__loop_tl;
    if (l == NULL || (size_t)fd >= l->fdcap)
        return;
    struct br__fdent *e = &l->fds[fd];
    iorec *rd = e->rd, *wr = e->wr;
    e->rd = e->wr = NULL;
    (void)fd_set_interest(l, fd, 0);
    e->registered = 0;
    if (rd)
        br__waiter_wake(&rd->w);
    if (wr && wr != rd)
        br__waiter_wake(&wr->w);
}

/* br__io_wake's loop side: io_forget without touching the registration. */
static void io_wake(int fd) {
    br_loop *l = br__loop_tl;
    if (l == NULL || (size_t)fd >= l->fdcap)
        return;
    struct br__fdent *e = &l->fds[fd];
    iorec *rd = e->rd, *wr = e->wr;
    e->rd = e->wr = NULL;
    if (rd)
        br__waiter_wake(&rd->w);
    if (wr && wr != rd)
        br__waiter_wake(&wr->w);
}

static void io_dispatch(br_loop *l, const br__poll_event *ev, int n) {
    for (int i = 0; i < n; i++) {
        size_t fd = (size_t)(uintptr_t)ev[i].data - 1;
        if (fd >= l->fdcap)
            continue;
        struct br__fdent *e = &l->fds[fd];
        iorec *rd = (ev[i].events & BR__POLL_IN) ? e->rd : NULL;
        iorec *wr = (ev[i].events & BR__POLL_OUT) ? e->wr : NULL;
        /* Readiness nobody waits for: that interest goes (lazy removal). */
        uint32_t idle = ev[i].events & e->registered & ~((e->rd ? BR__POLL_IN : 0u) |
                                                         (e->wr ? BR__POLL_OUT : 0u));
        /* Taken off the entry, so a level-triggered repeat doesn't wake them twice;
         * a woken waiter that waits again finds its interest still registered. */
        if (rd)
            e->rd = NULL;
        if (wr)
            e->wr = NULL;
        if (idle)
            (void)fd_set_interest(l, (int)fd, e->registered & ~idle);
        if (rd)
            br__waiter_wake(&rd->w);
        if (wr && wr != rd)
            br__waiter_wake(&wr->w);
    }
}

/* --- the executor --------------------------------------------------------------------------- */

static br_loop *ex_loop(br_executor *ex) {
    return (br_loop *)(void *)((char *)ex - offsetof(br_loop, ex));
}

static int ex_submit(br_executor *ex, br_task *t, const br_call *call) {
    (void)call;
    br_loop *l = ex_loop(ex);
    if (atomic_load_explicit(&l->ex_shut, memory_order_acquire))
        return BR_ESHUTDOWN;
    return br__atask_start(l, t, NULL, true);
}

/* Cancels the executor tasks waiting for a slot, before returning (any thread). They
 * stay queued: the loop drops them when their begin fails. */
static void cancel_ex_pending(br_loop *l) {
    br__ilock_lock(&l->inbox_lock);
    br__rq taken = l->ex_pending;
    l->ex_pending.head = l->ex_pending.tail = NULL;
    br__ilock_unlock(&l->inbox_lock);
    for (br__runnable *r = taken.head; r; r = r->next)
        (void)br_future_cancel(((br__atask *)r)->f);
    br__ilock_lock(&l->inbox_lock);
    br__rq_append(&taken, &l->ex_pending);
    l->ex_pending = taken;
    br__ilock_unlock(&l->inbox_lock);
}

static int ex_shutdown(br_executor *ex, bool wait, bool cancel_futures) {
    br_loop *l = ex_loop(ex);
    atomic_store(&l->ex_shut, true);
    if (cancel_futures) {
        atomic_store(&l->ex_cancel, true);
        cancel_ex_pending(l);
        loop_nudge(l);
    }
    if (!wait)
        return 0;
    if (br__loop_tl == l)
        return BR_EDEADLK; /* a task or callback of this loop waiting for itself */
    /* Through a waiter, so a coroutine of another loop suspends (its loop runs on) and
     * a thread parks. Without a deadline or a cancel, as every call that ends an
     * object's life: it returns once the executor's tasks are over, which takes a
     * thread running l (a loop nobody runs: the wait lasts until one does). The
     * last task's end pops and wakes every waiter under ex_idle's lock (task.c,
     * br__atask_gone); checking ex_live and linking under that lock loses no wake-up. */
    BR__PARKED(br__waiter, w);
    br__waiter_init(w);
    w->flags |= BR__WAITER_NOCANCEL | BR__WAITER_NOSPIN;
    br__ilock_lock(&l->ex_idle.lock);
    if (atomic_load_explicit(&l->ex_live, memory_order_acquire) == 0) {
        br__ilock_unlock(&l->ex_idle.lock);
        return 0;
    }
    br__wq_push(&l->ex_idle, w);
    br__ilock_unlock(&l->ex_idle.lock);
    br__waiter_park_until_signalled(w);
    return 0;
}

static void ex_destroy(br_executor *ex) { (void)ex; /* owned by the loop */ }

static int ex_max_workers(const br_executor *ex) {
    const br_loop *l = (const br_loop *)(const void *)((const char *)ex - offsetof(br_loop, ex));
    return l->ex_limit ? (int)l->ex_limit : 1;
}

static const br_executor_vt loop_vt = {
    .kind = "loop",
    .in_process = true,
    .submit = ex_submit,
    .shutdown = ex_shutdown,
    .destroy = ex_destroy,
    .max_workers = ex_max_workers,
};

br_executor *br_loop_executor(br_loop *loop) {
    if (loop == NULL)
        return BR__MISUSE(BR_EINVAL, "br_loop_executor: NULL"), NULL;
    return &loop->ex.base;
}

/* --- new, free ----------------------------------------------------------------------------- */

static _Atomic bool hooks_set;

int br_loop_new(br_loop **out) {
    if (out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_loop_new: out is NULL");
    if (br__alloc_should_fail())
        return BR_ENOMEM;
    br_loop *l = br__malloc(sizeof *l);
    if (l == NULL)
        return BR_ENOMEM;
    memset(l, 0, sizeof *l);
    int rc = br__poller_new(&l->poller);
    if (rc != 0) {
        br__free(l);
        return rc;
    }
    atomic_init(&l->thread, 0);
    atomic_init(&l->stop, false);
    atomic_init(&l->live, 0);
    atomic_init(&l->ex_shut, false);
    atomic_init(&l->ex_cancel, false);
    atomic_init(&l->ex_live, 0);
    l->ex.loop = l;
    (void)br_executor_init(&l->ex.base, &loop_vt);
    l->task_shared = br__loop_shared_default;
    l->frames = br__loop_frames_ops;
    if (!atomic_load_explicit(&hooks_set, memory_order_acquire)) {
        atomic_store_explicit(&br__task_home_cancel, br__atask_home_cancel,
                              memory_order_release);
        atomic_store_explicit(&br__io_forget_hook, io_forget, memory_order_release);
        atomic_store_explicit(&br__io_wake_hook, io_wake, memory_order_release);
        atomic_store_explicit(&br__io_wait_hook, io_wait_coro, memory_order_release);
        atomic_store_explicit(&hooks_set, true, memory_order_release);
    }
    *out = l;
    return 0;
}

bool br__loop_shared_default;

int br_loop_set_task_defaults(br_loop *loop, const br_task_opts *opts) {
    if (loop == NULL || opts == NULL)
        return BR__MISUSE(BR_EINVAL, "br_loop_set_task_defaults: NULL loop or opts");
    if (opts->shared_stack && opts->own_stack)
        return BR__MISUSE(BR_EINVAL, "br_loop_set_task_defaults: shared_stack and own_stack");
    if (opts->stack_size != 0 &&
        (opts->stack_size < BR__CORO_MIN_STACK ||
         (opts->shared_stack && opts->stack_size > BR__CORO_SHARED_STACK)))
        return BR_EINVAL;
    loop->task_stack_size = opts->stack_size;
    loop->task_shared = opts->shared_stack;
    return 0;
}

/* br_loop_free with tasks counted live: those never begun whose future is done already
 * (cancelled while pending) are over, so they go now, as the loop's next run would drop
 * them (br__loop_run_task: begin fails, br__atask_gone). The others stay queued. Returns
 * how many tasks are left. No thread runs the loop, so its ready queue is ours; the
 * inbox and the executor's pending list are taken under their lock. */
static size_t drop_unbegun(br_loop *l) {
    br__ilock_lock(&l->inbox_lock);
    br__atask *c = drain_locked(l);
    br__rq pend = l->ex_pending;
    l->ex_pending.head = l->ex_pending.tail = NULL;
    br__ilock_unlock(&l->inbox_lock);
    handle_notices(c);
    br__rq keep = {0}, keep_pend = {0};
    for (int list = 0; list < 2; list++) {
        br__rq from = list == 0 ? l->ready : pend;
        br__rq *to = list == 0 ? &keep : &keep_pend;
        for (br__runnable *r; (r = br__rq_pop(&from)) != NULL;) {
            br__atask *a = (br__atask *)r;
            if (r->kind == BR__RUN_TASK && a->co == NULL && br_future_done(a->f) &&
                !br__task_begin(br__future_task(a->f)))
                br__atask_gone(l, a);
            else
                br__rq_push(to, r);
        }
    }
    l->ready = keep;
    br__ilock_lock(&l->inbox_lock);
    br__rq_append(&keep_pend, &l->ex_pending);
    l->ex_pending = keep_pend;
    br__ilock_unlock(&l->inbox_lock);
    return atomic_load_explicit(&l->live, memory_order_acquire);
}

int br_loop_free(br_loop *loop) {
    if (loop == NULL)
        return BR__MISUSE(BR_EINVAL, "br_loop_free: NULL");
    if (br__loop_tl == loop)
        return BR__MISUSE(BR_EPERM, "br_loop_free: from inside the loop");
    if (atomic_load_explicit(&loop->thread, memory_order_acquire) != 0)
        return BR_EBUSY;
    if (atomic_load_explicit(&loop->live, memory_order_acquire) != 0 && drop_unbegun(loop) != 0)
        return BR_EBUSY;
    /* Rule (3): every push from another thread has finished with the loop. */
    br__ilock_lock(&loop->inbox_lock);
    br__atask *c = drain_locked(loop);
    br__ilock_unlock(&loop->inbox_lock);
    for (br__atask *next; c; c = next) {
        next = c->hnext;
        if (c->dead)
            br__atask_free(c);
    }
    for (br__runnable *r; (r = br__rq_pop(&loop->ready)) != NULL;)
        if (r->kind == BR__RUN_CB)
            br__free(r);
    for (br__tnode *t; (t = br__theap_pop(&loop->timers)) != NULL;)
        if (t->fire == timer_fire && !((br_timer *)t)->keep)
            br__free(t); /* a kept handle stays the caller's: br_timer_cancel frees it */
    br__theap_free(&loop->timers);
    br__free(loop->fds);
    br__poller_close(loop->poller);
    br__cells_fini(&loop->cells);
    br__free(loop);
    return 0;
}

br_loop *br_loop_current(void) { return br__loop_tl; }

int br_loop_stop(br_loop *loop) {
    if (loop == NULL)
        return BR__MISUSE(BR_EINVAL, "br_loop_stop: NULL");
    atomic_store_explicit(&loop->stop, true, memory_order_release);
    loop_nudge(loop);
    return 0;
}

/* --- running --------------------------------------------------------------------------------- */

/* SIGINT during br_aio_run: the handler only raises a flag and writes the eventfd
 * (both async-signal-safe); the loop cancels the main task at its next iteration. */
static _Atomic(br_loop *) sigint_loop;
static volatile sig_atomic_t sigint_hit;

static void on_sigint(int sig) {
    (void)sig;
    sigint_hit = 1;
    br_loop *l = atomic_load_explicit(&sigint_loop, memory_order_relaxed);
    if (l)
        br__poller_wake(l->poller);
}

typedef struct run_state {
    br_future *until;  /* stop once it is done */
    bool until_idle;   /* stop once no task is left */
    br_future *main;   /* cancelled by SIGINT */
} run_state;

static void until_watch(br__watcher *w, br_future *f) {
    (void)f;
    loop_nudge(w->arg);
}

static bool finished(br_loop *l, const run_state *rs) {
    if (atomic_load_explicit(&l->stop, memory_order_acquire))
        return true;
    if (rs->until && br_future_done(rs->until))
        return true;
    if (rs->until_idle && atomic_load_explicit(&l->live, memory_order_acquire) == 0)
        return true;
    return false;
}

bool br__loop_next_batch(br_loop *l) {
    const run_state *rs = l->rs;
    if (l->ready.head == NULL || l->nio > 0 || rs == NULL || sigint_hit ||
        atomic_load_explicit(&l->ex_cancel, memory_order_relaxed) || finished(l, rs))
        return false; /* iterate sleeps, polls, cancels or stops */
    if (l->timers.n && br__theap_top(&l->timers)->when <= br_now())
        return false; /* iterate fires it (it reads the clock as often) */
    br__ilock_lock(&l->inbox_lock);
    bool quiet = l->inbox.head == NULL && l->cancels == NULL && l->ex_pending.head == NULL;
    br__ilock_unlock(&l->inbox_lock);
    if (!quiet)
        return false; /* iterate drains */
    l->batch = l->ready;
    l->ready.head = l->ready.tail = NULL;
    return true;
}

/* shutdown(cancel_futures), on the loop's thread: executor tasks not yet begun are
 * cancelled, running ones asked to stop (br_task_cancelled, and their parks). */
static void cancel_ex_tasks(br_loop *l) {
    for (br__runnable *r = l->ready.head; r; r = r->next) {
        br__atask *a = (br__atask *)r;
        if (r->kind == BR__RUN_TASK && a->from_ex && a->co == NULL)
            (void)br_future_cancel(a->f);
    }
    for (br__atask *a = l->all; a; a = a->anext)
        if (a->from_ex)
            (void)br_future_request_cancel(a->f);
}

/* A Ctrl-C for this loop's main task. Only the br_aio_run that installed the handler
 * (sigint_loop) reads the flag: another thread's br_aio_run at the same time must
 * neither race on it nor take its Ctrl-C. */
static bool sigint_for(const br_loop *l, const run_state *rs) {
    return rs->main && atomic_load_explicit(&sigint_loop, memory_order_acquire) == l &&
           sigint_hit;
}

static void iterate(br_loop *l, const run_state *rs) {
    br__ilock_lock(&l->inbox_lock);
    br__atask *c = drain_locked(l);
    bool sleep = l->ready.head == NULL && c == NULL && !finished(l, rs) && !sigint_for(l, rs);
    l->sleeping = sleep;
    br__ilock_unlock(&l->inbox_lock);
    handle_notices(c);

    if (sleep || l->nio > 0) {
        br__tnode *top = br__theap_top(&l->timers);
        int64_t until = !sleep ? BR_NOWAIT : top ? top->when : BR_FOREVER;
        br__poll_event ev[64];
        int n = br__poller_wait(l->poller, ev, 64, until);
        if (sleep) {
            br__ilock_lock(&l->inbox_lock);
            l->sleeping = false;
            c = drain_locked(l);
            br__ilock_unlock(&l->inbox_lock);
            handle_notices(c);
        }
        if (n > 0)
            io_dispatch(l, ev, n);
    }
    if (sigint_for(l, rs)) {
        sigint_hit = 0;
        (void)br_future_cancel(rs->main);
    }
    if (BR__UNLIKELY(atomic_load_explicit(&l->ex_cancel, memory_order_relaxed)) &&
        atomic_exchange_explicit(&l->ex_cancel, false, memory_order_acq_rel))
        cancel_ex_tasks(l);

    if (l->timers.n) {
        int64_t now = br_now();
        br__tnode *t;
        while ((t = br__theap_top(&l->timers)) != NULL && t->when <= now) {
            br__theap_remove(&l->timers, t);
            t->fire(t);
        }
    }

    /* In the loop, not a local: a task that suspends may run the next one itself
     * (task.c, task_suspend), which takes it off here. */
    l->batch = l->ready;
    l->ready.head = l->ready.tail = NULL;
    for (br__runnable *r; (r = br__rq_pop(&l->batch)) != NULL;) {
        if (r->kind == BR__RUN_CB) {
            cbnode *n = (cbnode *)r;
            void (*fn)(void *) = n->fn;
            void *arg = n->arg;
            br__free(n);
            fn(arg);
        } else {
            br__loop_run_task(l, (br__atask *)r);
        }
    }
}

static int run(br_loop *l, run_state *rs) {
    if (l == NULL)
        return BR__MISUSE(BR_EINVAL, "br_loop_run: NULL loop");
    if (br__loop_tl != NULL)
        return BR__MISUSE(BR_EPERM, "br_loop_run: inside a running loop");
    uintptr_t none = 0;
    if (!atomic_compare_exchange_strong_explicit(&l->thread, &none, (uintptr_t)br__tls_now(),
                                                 memory_order_acq_rel, memory_order_acquire))
        return BR_EBUSY;
    br__loop_tl = l;
    br__watcher w = {.fn = until_watch, .arg = l};
    bool watching = rs->until && br__future_watch(rs->until, &w);
    l->rs = rs;
    while (!finished(l, rs))
        iterate(l, rs);
    l->rs = NULL;
    if (watching)
        (void)br__future_unwatch(rs->until, &w);
    atomic_store_explicit(&l->stop, false, memory_order_relaxed);
    br__loop_tl = NULL;
    atomic_store_explicit(&l->thread, 0, memory_order_release);
    return 0;
}

int br_loop_run_until_complete(br_loop *loop, br_future *f) {
    if (f == NULL)
        return BR__MISUSE(BR_EINVAL, "br_loop_run_until_complete: NULL future");
    run_state rs = {.until = f};
    return run(loop, &rs);
}

int br_loop_run_forever(br_loop *loop) {
    run_state rs = {0};
    return run(loop, &rs);
}

/* Cancels every task of l (running or not yet started) and runs until none is left. */
static void cancel_all(br_loop *l) {
    for (br__atask *a = l->all; a; a = a->anext)
        (void)br_future_cancel(a->f);
    br__ilock_lock(&l->inbox_lock);
    br__atask *c = drain_locked(l);
    br__ilock_unlock(&l->inbox_lock);
    handle_notices(c);
    for (br__runnable *r = l->ready.head; r; r = r->next)
        if (r->kind == BR__RUN_TASK)
            (void)br_future_cancel(((br__atask *)r)->f);
    run_state rs = {.until_idle = true};
    (void)run(l, &rs);
}

int br_aio_run(br_task_fn fn, const void *arg, size_t len, int *code) {
    if (fn == NULL)
        return BR__MISUSE(BR_EINVAL, "br_aio_run: fn is NULL");
    if (br__loop_tl != NULL)
        return BR__MISUSE(BR_EPERM, "br_aio_run: inside a running loop");
    br_loop *l;
    int rc = br_loop_new(&l);
    if (rc != 0)
        return rc;
    br_future *main;
    rc = br_create_task(l, fn, arg, len, &main);
    if (rc != 0) {
        br_loop_free(l);
        return rc;
    }
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    br_loop *none = NULL;
    bool own_sigint = atomic_compare_exchange_strong(&sigint_loop, &none, l);
    if (own_sigint) {
        sigint_hit = 0;
        sigaction(SIGINT, &sa, &old);
    }
    run_state rs = {.until = main, .main = main};
    rc = run(l, &rs);
    if (own_sigint) {
        sigaction(SIGINT, &old, NULL);
        sigint_hit = 0; /* before the release: the next owner's CAS orders after it */
        atomic_store(&sigint_loop, NULL);
    }
    cancel_all(l);
    if (code) {
        int c = 0;
        int erc = br_future_exception(main, BR_NOWAIT, &c, NULL);
        *code = erc == BR_ECANCELED ? BR_ECANCELED : c; /* cancelled: no code of its own */
    }
    br_future_release(main);
    int frc = br_loop_free(l);
    return rc != 0 ? rc : frc;
}

/* --- introspection ------------------------------------------------------------------------------- */

typedef struct dump_state {
    FILE *f;
    size_t n;
} dump_state;

/* What a park made in `file` (a waiter's site, core/lib.h) waits on: the primitive's
 * kind, by the source file that made the waiter. NULL: not one we know by name. */
static const char *kind_of(const char *file, const char *func) {
    static const struct {
        const char *file, *func, *kind;
    } kinds[] = {
        {"thread/lock.c", NULL, "lock"},
        {"thread/rlock.c", NULL, "rlock"},
        {"thread/cond.c", NULL, "condition"}, /* its wait, and taking its lock back */
        {"thread/sem.c", NULL, "semaphore"},
        {"thread/event.c", NULL, "event"},
        {"thread/barrier.c", NULL, "barrier"},
        {"thread/thread.c", NULL, "thread join"},
        {"queue/queue.c", "br_queue_join", "queue join"},
        {"queue/queue.c", NULL, "queue"},
        {"future/listen.c", NULL, "future"},
        {"future/wait.c", NULL, "futures (br_wait)"},
        {"future/as_completed.c", NULL, "as_completed"},
        {"executor/map.c", NULL, "map"},
        {"executor/pool/bounded.c", "br__pool_bp_drain", "pool shutdown"},
        {"executor/pool/bounded.c", NULL, "pool submit"},
        {"process/pool.c", "wait_cancel_seen", "process pool shutdown"},
        {"process/mp_sync.c", NULL, "process-shared primitive"},
        {"core/time.c", NULL, "sleep"},
        {"aio/task.c", "br_aio_sleep_until", "sleep"},
        {"aio/loop.c", "ex_shutdown", "executor shutdown"},
    };
    if (file == NULL)
        return NULL;
    size_t fl = strlen(file);
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t kl = strlen(kinds[i].file);
        if (fl >= kl && strcmp(file + fl - kl, kinds[i].file) == 0 &&
            (kinds[i].func == NULL || (func && strcmp(func, kinds[i].func) == 0)))
            return kinds[i].kind;
    }
    return NULL;
}

/* One line per coroutine: "NAME STATE", and for a suspended one what it waits on:
 *   NAME suspended on KIND [(cancellable)]     a primitive (lock, queue, future, sleep...)
 *   NAME suspended on fd N read|write|read+write
 *   NAME suspended in FUNC (FILE)              a park we have no name for
 *   NAME ready                                 suspended and scheduled (woken, yielded) */
static void dump_one(br__coro *co, void *arg) {
    dump_state *d = arg;
    br__atask *a = br__coro_user(co);
    if (a == NULL)
        return;
    char nb[32];
    const char *name = br__atask_name(a, nb);
    br__coro_state st = br__coro_state_of(co);
    const char *what = st == BR__CORO_RUNNING ? "running"
                       : st == BR__CORO_NEW   ? "new"
                       : st == BR__CORO_DONE  ? "done"
                                              : "suspended";
    const char *canc = a->park_canc ? "" : " (not cancellable)";
    br__waiter *w = a->park_w;
    if (st == BR__CORO_SUSPENDED && w && a->park_io) {
        const char *dir = a->park_io == (BR__IO_READ | BR__IO_WRITE) ? "read+write"
                          : a->park_io == BR__IO_READ                ? "read"
                                                                     : "write";
        fprintf(d->f, "%s %s on fd %d %s%s\n", name, what, a->park_fd, dir, canc);
    } else if (st == BR__CORO_SUSPENDED && w) {
        const char *kind = kind_of(w->site_file, w->site_func);
        if (kind)
            fprintf(d->f, "%s %s on %s%s\n", name, what, kind, canc);
        else
            fprintf(d->f, "%s %s in %s (%s)%s\n", name, what,
                    w->site_func ? w->site_func : "?", w->site_file ? w->site_file : "?",
                    canc);
    } else if (st == BR__CORO_SUSPENDED) {
        fprintf(d->f, "%s ready\n", name);
    } else {
        fprintf(d->f, "%s %s\n", name, what);
    }
    d->n++;
}

size_t br_aio_dump(void *file) {
    dump_state d = {file ? file : stderr, 0};
    br__coro_foreach(dump_one, &d);
    return d.n;
}
