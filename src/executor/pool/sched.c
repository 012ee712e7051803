/* The thread pool's scheduler: where workers find work, how they spin and park, and
 * the worker loop.
 *
 * Design notes.
 *
 * Queues. A task submitted from any thread that isn't one of the pool's workers goes
 * to the injection stack, `inject` (pool.c): a Treiber stack linked through
 * br_task.next whose push is one CAS. From there it goes to `fifo`, the one queue that
 * workers take outside submissions from: a Chase-Lev deque (deque.h) used as a FIFO
 * queue, whose "owner" only pushes and whose every taker pops at the top, oldest first,
 * one task per CAS (br__deque_pop_fifo, deque.c rule 5). The owner's role belongs to
 * whoever holds fifo_lock (a try-lock): a worker that finds the fifo empty and the
 * stack not empty takes it, empties the stack with one CAS ("take all"), and pushes
 * the batch on the fifo reversed (oldest nearest the top), without writing the tasks'
 * links (move_inject). If the fifo was empty it keeps the oldest task for itself
 * instead (the pops would only hand it back). A task submitted by one of the pool's
 * own workers goes to the bottom of that worker's own deque (LIFO for the owner,
 * cache-hot; the others steal from the top, batch-stealing up to half, at most 32). A
 * pool with max_workers == 1 sends every submit through the injection stack, so that
 * even nested submits run in submission order there.
 *
 * Start order (the guarantee in braid/executor.h). Tasks reach the fifo only through a
 * take all, which takes everything on the stack at one instant and appends it oldest
 * first under the lock, so every task on the fifo is older than every task on the
 * stack and the fifo is in submission order (the order of the submits' CASes on the
 * stack; for one submitting thread, program order). Nobody takes from the stack but
 * the mover, and workers take outside submissions from the fifo one at a time, at the
 * oldest end. So a worker that looks for work starts the oldest outside submission not
 * yet taken: dequeue order is submission order, whatever the number of workers, as
 * with Python's single SimpleQueue.
 *
 * Workers look for work in this order: own deque (nested submits), the fifo (moving
 * the stack over when the fifo is empty), the other deques (random start); every 61st
 * task they look at the fifo first, so that tasks which keep feeding their own deque
 * can't starve outside submitters (Go's schedtick % 61). If the fifo's ring can't grow
 * (out of memory), the batch waits in `spill`, oldest first, which the next move
 * pushes before it takes the stack again; a drain empties it too.
 *
 * Spinning and parking. A worker is busy (running a task), spinning (searching for
 * work, counted in nspinning) or sleeping (parked on a br__waiter in the `idle`
 * wait-queue, counted in nsleeping). A worker that runs out of work becomes a spinner
 * if fewer than spin_cap are spinning (half the CPUs, at least one: Go's limit),
 * searches for its spin budget calling sched_yield() about every microsecond, then
 * stops spinning and parks. The budget adapts per worker between SPIN_MIN_NS and
 * br__pool_spin_ns: a spin that finds work doubles it (work arrives at a pace spinning
 * catches), a spin that ends in a park halves it (sparse work), and a spin right after
 * a wake-up doesn't count (it finds the task it was woken for). The yield matters when
 * threads outnumber CPUs: after a futex wake Linux likes to run the woken thread on the
 * waker's CPU, where a pure PAUSE loop would keep it off the CPU for the whole spin.
 * A spinner that finds work stops spinning; if it was the last spinner and more work
 * is visible, it wakes a sleeper (or starts a thread), because submitters may have
 * skipped their wake-up on its account (pool.c, br__pool_signal_work). The worker so
 * woken counts as a spinner; one so started, or any idle worker that finds work
 * without spinning, does the same check when it finds its task, so the duty passes
 * along until the visible work is covered or the pool is full. (Busy workers taking
 * their next task skip the check: it costs loads of lines that submitters write.)
 *
 * Lost wake-ups. The two sides are a Dekker pair on seq_cst operations: the submitter
 * publishes the task and then reads the counters; the worker changes a counter
 * (nspinning-- when it stops spinning, nsleeping++ after it links its waiter) and then
 * looks at every queue. In the single total order of seq_cst operations one of the
 * two comes first, so either the worker sees the task or the submitter sees the
 * worker leave the spinning state (and wakes a sleeper, or sees the sleeper and wakes
 * it). A spinner that stops because it found work re-checks after its decrement, as
 * above. A sleeper whose re-check finds work unlinks itself; if a waker popped it
 * first, it waits for that wake (core rule 2), so no signal is ever left pending.
 *
 * Exit. A worker exits once the injection stack is CLOSED and empty, the fifo and
 * spill are empty and its own deque is empty (a task can still be in another worker's
 * deque, or in the hands of a mover; that worker runs it before it exits).
 */
#include "executor/pool/private.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* How long an idle worker searches before it parks (ns), at most (see the notes). */
int64_t br__pool_spin_ns = 50000;

BR__TLS struct worker *br__pool_self;

static inline uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

bool br__pool_work_visible(struct pool *p) {
    if (br__inj_ptr(atomic_load_explicit(&p->inject, memory_order_seq_cst)))
        return true;
    if (br__deque_size(&p->fifo) > 0 || atomic_load_explicit(&p->spill, memory_order_relaxed))
        return true;
    int n;
    struct worker *const *ws = br__pool_workers(p, &n);
    for (int i = 0; i < n; i++)
        if (br__deque_size(&ws[i]->dq) > 0)
            return true;
    return false;
}

/* --- finding work ------------------------------------------------------------------- */

/* Appends the chain `list` (oldest first) to spill. Caller holds fifo_lock. */
static void spill_append(struct pool *p, br_task *list) {
    br_task *sp = atomic_load_explicit(&p->spill, memory_order_relaxed);
    if (sp == NULL) {
        atomic_store_explicit(&p->spill, list, memory_order_relaxed);
        return;
    }
    while (sp->next)
        sp = sp->next;
    sp->next = list;
}

/* The mover's job: everything on the injection stack goes to the fifo, oldest first,
 * behind what the fifo holds (every task there is older than every task still on the
 * stack). Returns the oldest task if the fifo was empty (it is ours to run: nothing
 * older is queued), else NULL with the tasks on the fifo. Caller holds fifo_lock. If
 * the fifo's ring can't grow, the tasks wait in `spill` (oldest first), which the next
 * move pushes first. */
static br_task *move_inject(struct pool *p) {
    br_task *sp = atomic_load_explicit(&p->spill, memory_order_relaxed);
    if (BR__UNLIKELY(sp != NULL)) {
        atomic_store_explicit(&p->spill, NULL, memory_order_relaxed);
        br_task *rest = br__deque_push_chain(&p->fifo, sp);
        if (rest != NULL) {
            atomic_store_explicit(&p->spill, rest, memory_order_relaxed);
            return NULL; /* the stack waits behind the spill */
        }
    }
    uintptr_t h = atomic_load_explicit(&p->inject, memory_order_relaxed);
    do {
        if (br__inj_ptr(h) == NULL)
            return NULL;
    } while (!atomic_compare_exchange_weak_explicit(&p->inject, &h, h & INJ_FLAGS,
                                                    memory_order_acquire,
                                                    memory_order_relaxed));
    /* Newest first. Count it and find the oldest, reading the links only: writing
     * them would take every task's line away from the submitter's cache. */
    br_task *list = br__inj_ptr(h), *oldest = list;
    size_t n = 1;
    while (oldest->next != NULL) {
        oldest = oldest->next;
        n++;
    }
    br_task *first = NULL;
    if (br__deque_size(&p->fifo) == 0) {
        first = oldest; /* pops would only hand it back: skip the ring */
        if (--n == 0)
            return first;
    }
    if (BR__UNLIKELY(br__deque_push_reversed(&p->fifo, list, n) != 0)) {
        br_task *rev = NULL; /* out of memory: reverse the links, into spill */
        for (br_task *t = list; n-- > 0;) {
            br_task *next = t->next;
            t->next = rev;
            rev = t;
            t = next;
        }
        spill_append(p, rev);
    }
    return first;
}

/* The oldest task submitted from outside the pool, or NULL (none queued, or another
 * worker has been moving them onto the fifo for a while: they show up when it is
 * done, and work_visible sees them from then on). */
static br_task *pop_external(struct pool *p) {
    for (;;) {
        br_task *t;
        int r = br__deque_pop_fifo(&p->fifo, &t);
        if (r == BR__STEAL_OK)
            return t;
        if (r == BR__STEAL_RETRY)
            continue; /* another worker took that one: the next is ours to try */
        if (br__inj_ptr(atomic_load_explicit(&p->inject, memory_order_relaxed)) == NULL &&
            atomic_load_explicit(&p->spill, memory_order_relaxed) == NULL)
            return NULL;
        if (!br__pool_fifo_trylock(p)) {
            /* Another worker is moving the stack over: a few instructions, unless it
             * was preempted, and then yielding is what lets it finish. */
            for (int i = 0; i < 64 && atomic_load_explicit(&p->fifo_lock,
                                                           memory_order_relaxed); i++)
                br__cpu_relax();
            if (atomic_load_explicit(&p->fifo_lock, memory_order_relaxed)) {
                sched_yield();
                return NULL;
            }
            continue;
        }
        t = move_inject(p);
        br__pool_fifo_unlock(p);
        if (t != NULL)
            return t;
        if (br__deque_size(&p->fifo) == 0)
            return NULL;
    }
}

/* Steals from the other workers, starting at a random one. Takes one task, and when
 * the victim had more, up to half of them (at most 32) into w's own deque. */
static br_task *steal_work(struct worker *w) {
    struct pool *p = w->pool;
    int n;
    struct worker *const *ws = br__pool_workers(p, &n);
    if (n <= 1)
        return NULL;
    int start = (int)(xorshift(&w->rng) % (uint64_t)n);
    for (int round = 0; round < 2; round++) {
        bool retry = false;
        for (int k = 0; k < n; k++) {
            struct worker *v = ws[(start + k) % n];
            if (v == w)
                continue;
            int64_t size = br__deque_size(&v->dq);
            if (size <= 0)
                continue;
            br_task *t;
            int r = br__deque_steal(&v->dq, &t);
            if (r == BR__STEAL_RETRY) {
                retry = true;
                continue;
            }
            if (r != BR__STEAL_OK)
                continue;
            int64_t more = size / 2;
            if (more > 32)
                more = 32;
            while (more-- > 0) {
                br_task *x;
                if (br__deque_steal(&v->dq, &x) != BR__STEAL_OK)
                    break;
                if (br__deque_push(&w->dq, x) != 0) {
                    br__pool_run(w, x); /* no room to keep it: run it now */
                    break;
                }
            }
            return t;
        }
        if (!retry)
            break;
    }
    return NULL;
}

static br_task *find_work(struct worker *w) {
    br_task *t;
    if (BR__UNLIKELY(++w->tick % 61 == 0) && (t = pop_external(w->pool)) != NULL)
        return t;
    if (!br__deque_owner_empty(&w->dq) && (t = br__deque_take(&w->dq)) != NULL)
        return t;
    if ((t = pop_external(w->pool)) != NULL)
        return t;
    return steal_work(w);
}

/* After a task: the cheap places only (own deque, outside submissions). If both are
 * empty the worker goes idle at once, so that it is counted as spinning before a
 * submit-and-wait caller can come back with its next task. */
static br_task *next_task(struct worker *w) {
    br_task *t;
    if (BR__UNLIKELY(++w->tick % 61 == 0) && (t = pop_external(w->pool)) != NULL)
        return t;
    if (!br__deque_owner_empty(&w->dq) && (t = br__deque_take(&w->dq)) != NULL)
        return t;
    return pop_external(w->pool);
}

/* --- the worker -------------------------------------------------------------------- */

static bool try_start_spinning(struct pool *p) {
    int32_t n = atomic_load_explicit(&p->nspinning, memory_order_relaxed);
    while (n < p->spin_cap)
        if (atomic_compare_exchange_weak_explicit(&p->nspinning, &n, n + 1,
                                                  memory_order_seq_cst,
                                                  memory_order_relaxed))
            return true;
    return false;
}

/* A spinner stops. found: it is about to run a task; if it was the last spinner and
 * more work is visible, somebody else must look at it (design notes). */
static void stop_spinning(struct pool *p, bool found) {
    int32_t prev = atomic_fetch_sub_explicit(&p->nspinning, 1, memory_order_seq_cst);
    if (found && prev == 1 && br__pool_work_visible(p))
        br__pool_signal_work(p, true);
}

/* True once w may exit: the injection stack is closed (nothing can be pushed any more)
 * and empty, and w's own deque is empty (only w pushes there). Other deques may still
 * hold tasks; their owners run them before they exit. Reading the CLOSED bit and the
 * emptiness in one load is what makes this exact: a flag word read separately could
 * miss a push that landed just before the close. */
static inline bool can_exit(struct worker *w) {
    struct pool *p = w->pool;
    uintptr_t h = atomic_load_explicit(&p->inject, memory_order_seq_cst);
    return (h & INJ_CLOSED) && br__inj_ptr(h) == NULL && br__deque_size(&w->dq) == 0 &&
           br__deque_size(&p->fifo) == 0 &&
           atomic_load_explicit(&p->spill, memory_order_relaxed) == NULL;
}

enum { PARK_WOKEN, PARK_RECHECK };

/* Unlinks a parked worker that leaves the idle queue by itself (under idle.lock). */
static void idle_unlink(br__waiter *w, void *arg, int why) {
    (void)why;
    struct pool *p = arg;
    br__wq_remove(&p->idle, w);
    atomic_fetch_sub_explicit(&p->nsleeping, 1, memory_order_relaxed);
}

/* Parks w until a submitter (or shutdown) wakes it. PARK_WOKEN: the waker counted us
 * as spinning. PARK_RECHECK: we unlinked ourselves because work appeared or the pool
 * closed. */
static int park(struct worker *w) {
    struct pool *p = w->pool;
    BR__PARKED(br__waiter, wt);
    br__waiter_init(wt);
    br__ilock_lock(&p->idle.lock);
    br__wq_push_front(&p->idle, wt);
    atomic_fetch_add_explicit(&p->nsleeping, 1, memory_order_seq_cst);
    br__ilock_unlock(&p->idle.lock);
    /* Work appeared or the pool closed: leave the queue at once, unless a waker popped
     * us already, in which case its wake is ours (core rule 2). */
    int64_t dl = (br__pool_work_visible(p) || can_exit(w)) ? BR_NOWAIT : BR_FOREVER;
    if (br__waiter_park_or_leave_in(wt, &p->idle.lock, dl, idle_unlink, p) != 0)
        return PARK_RECHECK;
    return PARK_WOKEN;
}

/* A worker that was idle (or new) found work by a path other than spinning: it passes
 * on the duty a spinner would (design notes), since a submit or a spinner may have
 * counted on it. */
static void propagate(struct pool *p) {
    br__fence_sc();
    if (br__pool_work_visible(p))
        br__pool_signal_work(p, true);
}

/* No work found: spin, then park. Returns a task, or NULL when the worker should exit
 * (the pool closed and nothing is left for it). */
static br_task *idle_wait(struct worker *w) {
    struct pool *p = w->pool;
    /* Not counted as spinning meanwhile: to submitters this is a busy worker. */
    if (br__blocks_grow_ahead()) {
        br_task *t = find_work(w);
        if (t) {
            propagate(p);
            return t;
        }
    }
    bool spinning = try_start_spinning(p);
    bool woken = false; /* a spin after a wake-up finds the task it was woken for */
    for (;;) {
        if (spinning) {
            if (w->spin_ns > br__pool_spin_ns)
                w->spin_ns = br__pool_spin_ns;
            int64_t until = br_now() + w->spin_ns;
            for (unsigned i = 1;; i++) {
                br_task *t = find_work(w);
                if (t) {
                    stop_spinning(p, true);
                    if (!woken)
                        w->spin_ns = w->spin_ns * 2 < br__pool_spin_ns ? w->spin_ns * 2
                                                                       : br__pool_spin_ns;
                    return t;
                }
                if (can_exit(w)) {
                    stop_spinning(p, false);
                    return NULL;
                }
                for (int k = 0; k < 4; k++)
                    br__cpu_relax();
                if ((i & 7) == 0) {
                    if (br_now() >= until)
                        break;
                    /* On a machine with more runnable threads than CPUs (2 cores: the
                     * submitter, its waiter, this spinner) a pure PAUSE loop keeps the
                     * CPU from the thread that would give us work; after the futex wake
                     * of a waiter the scheduler likes to put that waiter on the waker's
                     * CPU. Yielding costs ~0.3 us when nobody else wants the CPU. */
                    sched_yield();
                }
            }
            stop_spinning(p, false);
            w->spin_ns = w->spin_ns / 2 > SPIN_MIN_NS ? w->spin_ns / 2 : SPIN_MIN_NS;
        }
        br_task *t = find_work(w);
        if (t) {
            propagate(p);
            return t;
        }
        if (can_exit(w))
            return NULL;
        if (park(w) == PARK_WOKEN) {
            spinning = true;
            woken = true;
        } else {
            t = find_work(w);
            if (t) {
                propagate(p);
                return t;
            }
            if (can_exit(w))
                return NULL;
            spinning = try_start_spinning(p);
        }
    }
}

void *br__pool_worker_main(void *arg) {
    struct worker *w = arg;
    struct pool *p = w->pool;
    br__pool_self = w;
    br__tls_v.name = w->name;
    br__set_thread_name(w->name);

    if (p->initializer != NULL && p->initializer(p->initarg) != 0) {
        br__pool_break(p);
        /* Python's worker exits here; ours stays until shutdown so that the idle
         * accounting stays simple, abandoning whatever reaches it. */
    }
    for (;;) {
        br_task *t = BR__UNLIKELY(w->fresh) ? find_work(w) : next_task(w);
        if (t == NULL) {
            w->fresh = false; /* idle_wait hands on what it finds itself */
            t = idle_wait(w);
            if (t == NULL)
                break;
        } else if (BR__UNLIKELY(w->fresh)) {
            /* A new worker was started for work that a spinner (or a submit) saw. */
            w->fresh = false;
            propagate(p);
        }
        br__pool_run(w, t);
    }
    br__pool_self = NULL;
    br__tls_v.name = NULL;
    return NULL;
}

/* Makes room for worker i in the table (caller holds spawn_lock). 0 or BR_ENOMEM. */
static int table_reserve(struct pool *p, int i) {
    struct wtable *t = atomic_load_explicit(&p->workers, memory_order_relaxed);
    if ((size_t)i < t->cap)
        return 0;
    size_t cap = t->cap * 2;
    if (cap > (size_t)p->max_workers)
        cap = (size_t)p->max_workers;
    struct wtable *n = br__malloc(sizeof *n + cap * sizeof n->w[0]);
    if (n == NULL)
        return BR_ENOMEM;
    n->cap = cap;
    memcpy(n->w, t->w, t->cap * sizeof t->w[0]);
    memset(n->w + t->cap, 0, (cap - t->cap) * sizeof n->w[0]);
    n->retired = t; /* a reader may still be in t: freed with the pool */
    /* release: a reader that sees the count raised below sees this table. */
    atomic_store_explicit(&p->workers, n, memory_order_release);
    return 0;
}

int br__pool_spawn_locked(struct pool *p) {
    int i = atomic_load_explicit(&p->nthreads, memory_order_relaxed);
    if (i >= p->max_workers)
        return 0;
    if (table_reserve(p, i) != 0)
        return BR_ENOMEM;
    struct wtable *tab = atomic_load_explicit(&p->workers, memory_order_relaxed);
    struct worker *w = tab->w[i];
    if (w == NULL) {
        w = br__aligned_alloc(BR__CACHELINE, sizeof *w);
        if (w == NULL)
            return BR_ENOMEM;
        memset(w, 0, sizeof *w);
        if (br__deque_init(&w->dq, 256) != 0) {
            br__free(w);
            return BR_ENOMEM;
        }
        w->pool = p;
        w->index = i;
        w->fresh = true;
        w->spin_ns = br__pool_spin_ns;
        w->rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1) | 1;
        snprintf(w->name, sizeof w->name, "%s_%d", p->prefix, i);
        tab->w[i] = w;
        p->nalloc = i + 1;
    }
    /* Counted before it exists: the new thread may steal into its deque at once, and
     * every scan of the deques (br__pool_work_visible) must include it. On failure the
     * slot holds an empty deque, which scans skip, until the count drops back (under
     * spawn_lock, so join_all never sees a thread that wasn't created). */
    atomic_store_explicit(&p->nthreads, i + 1, memory_order_seq_cst);
    /* Workers take no signals: they belong to the application's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->tid, NULL, br__pool_worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        atomic_store_explicit(&p->nthreads, i, memory_order_seq_cst);
        return rc == ENOMEM ? BR_ENOMEM : BR_EAGAIN;
    }
    return 0;
}
