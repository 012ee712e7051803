/* The thread pool's scheduler: where workers find work, how they spin and park, and
 * the worker loop.
 *
 * Design notes.
 *
 * Queues. A task submitted from any thread that isn't one of the pool's workers goes
 * to the injection stack, `inject` (pool.c): a Treiber stack linked through
 * br_task.next whose push is one CAS; a batch (br_submit_batch, br_map) goes on it in
 * one CAS, its links tagged BR__DEQUE_CONT (the older task is of the same batch).
 * From there it goes to `fifo`, the one queue that workers take outside submissions
 * from: a Chase-Lev deque (deque.h) used as a FIFO queue, whose "owner" only pushes and
 * whose takers take at the top, oldest first (deque.c rules 5 and 6). The owner's role
 * belongs to whoever holds fifo_lock (a try-lock): a worker that finds the fifo empty
 * and the stack not empty takes it and moves the stack over (Moving, below). A task
 * submitted by one of the pool's own workers goes to the bottom of that worker's own
 * deque (LIFO for the owner, cache-hot; the others steal from the top, batch-stealing
 * up to half, at most 32). A pool with max_workers == 1 sends every submit through the
 * injection stack, so that even nested submits run in submission order there.
 *
 * Moving. The mover empties the stack with one CAS ("take all"), walks the links once
 * (reading them only: writing them would take every task's line from the submitter's
 * cache) to count the tasks, find the oldest and mark every stride-th task (at most
 * MOVE_MARKS marks, the stride doubling from MOVE_PIECE when they run out), reserves
 * room on the ring for all of them, then writes the slots piece by piece from the
 * oldest piece, publishing each piece with one store of bottom as soon as it is
 * written: the other workers take from the first piece while the mover writes the
 * next. Each slot carries its task's link tag, so the fifo knows where one batch ends.
 * If the fifo was empty and no run holds a task (`runs == 0`, read after the fifo: see
 * Runs) the mover keeps the oldest task for itself instead (taking it would only hand
 * it back); with a task of an older batch waiting in a run, keeping a later one would
 * start it first. From its take all until its first publish the moved tasks are in no
 * queue: a spinner that looks then finds nothing and may park. So a mover that leaves
 * tasks on the fifo then does what a submitter does after a push (a fence, then
 * br__pool_signal_work): the submitter's one signal may have counted on that spinner.
 * (Before 2026-12-07 a busy worker moving the stack skipped this, and a batch whose
 * oldest task waited for the others could sleep forever: docs/internals/threadpool.md.)
 *
 * Runs. Taking outside submissions one CAS each, two workers share the fifo's top line
 * per task, and two workers drained it slower than one. So a worker takes a run: the
 * task at the top and the ones after it in the same batch (tagged slots), up to RUN_MAX,
 * with one CAS of top (br__deque_peek_run, br__deque_claim). It starts the first and
 * keeps the rest in its own `run` (private.h: a ring only its owner fills, and only when
 * empty, taken from at the oldest end by a CAS of one word). A worker looks for outside
 * work in this order: its own run; another worker's run, taking the older half of it
 * (so a long task can't hold the rest of a run hostage: the others take it); a run
 * from the fifo; the stack, moved over. Single submits are runs of one: their take is
 * exactly the one CAS it was, plus a load of a line (`runs`) that nobody writes then.
 *
 * `runs` counts the runs that hold tasks (+1 by whoever fills one, after the fill; -1
 * by whoever's CAS empties one, after it) plus RUNS_CLAIM per take of a run in flight
 * (added before the CAS of fifo.top or of the victim's run word, removed in the same
 * add that counts the filled run, or after a failed CAS). So `runs == 0` means that no
 * run holds a task and no take of one is between its CAS and its fill. A worker reads
 * fifo.top, then `runs`, and takes from the fifo only if `runs` was 0 and its CAS of
 * top from the value it read succeeds; otherwise it takes from the runs (or, with
 * only a claim in flight, waits a few PAUSEs for it, then yields and looks again,
 * as with a mover). Why that keeps the order: a claim that moved top before our read
 * of it added RUNS_CLAIM before its CAS, so our later read of `runs` (seq_cst) sees
 * that or what followed (a counted run, or every one of its tasks taken out again); a
 * claim after our read moves top and our CAS fails. A steal needs a run that holds
 * tasks, which `runs == 0` excludes. So when a worker takes a task from the fifo, every
 * older outside task has been started or is in the hands of a worker about to start it,
 * as before runs.
 *
 * Start order (the guarantee in braid/executor.h). Tasks reach the fifo only through a
 * take all, which takes everything on the stack at one instant and appends it oldest
 * first under the lock, so every task on the fifo is older than every task on the
 * stack and the fifo is in submission order (the order of the submits' CASes on the
 * stack; for one submitting thread, program order). Nobody takes from the stack but
 * the mover, and workers take from the fifo at the oldest end, and only after every
 * run is empty (Runs). So a worker that looks for work starts the oldest outside
 * submission not yet taken, as with Python's single SimpleQueue, except within one
 * batch: the tasks of one run are taken together, and a run's tasks, and its halves
 * taken by others, start in whatever order the workers get to them. That is allowed
 * because no task of a batch was submitted after another's submit returned (one call
 * submits them all); braid/executor.h says so.
 *
 * Lost or twice-run tasks. Every task is in exactly one place: on the stack, in a
 * mover's hands (under fifo_lock), in spill, in a fifo slot in [top, bottom), in the
 * hands of a worker between a successful CAS and its fill or start, or in a run's
 * [lo, hi). Each move between places is one CAS that only one thread can win (take
 * all; fifo top t -> t+k; a run's word lo -> lo+m, for which lo and hi only grow, so
 * a stale word never matches again before 2^32 takes), and the winner alone writes the
 * next place. A run is refilled only by its owner, after it saw it empty with an
 * acquire load (so every taker's slot reads happened before the new writes), and a run
 * taken whole by its CAS is empty, so no two runs ever share a task.
 *
 * Workers look for work in this order: own deque (nested submits), outside submissions
 * (own run, others' runs, the fifo, moving the stack over when the fifo is empty), the
 * other deques (random start); every 61st task they look at outside submissions first,
 * so that tasks which keep feeding their own deque can't starve outside submitters (Go's
 * schedtick % 61). If the fifo's ring can't grow (out of memory), the batch waits in
 * `spill`, oldest first (untagged: runs of one), which the next move pushes before it
 * takes the stack again; a drain empties it too.
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
 * Lines. What crosses between the submitter S and a spinning worker W in one round
 * trip on an idle pool (submit, run, result; W4), a cache line each, in the order W
 * meets them. The floor is two: the submit's line over and the result's line back.
 *   1. `inject`: S's CAS takes it; W's spin load brings it over (the floor's first).
 *   2. `inject` again: W's take all (a CAS) must invalidate S's copy.
 *   3. the task's line (block line 2): the walk reads its link; S wrote it.
 *   4. `nspinning`'s line: stop_spinning's decrement; S read it in signal_work.
 *   5. the future's state line (block line 1): br__task_begin's CAS; S wrote it at
 *      prepare and polls it while it waits.
 *   6. the state line again for br__task_finish's RMW, when S polled between begin
 *      and finish (it saw RUNNING); then S's poll brings it back (the floor's second).
 * Off that path: S's next submit reads nthreads (the `nspinning` line, which W wrote
 * when it spun again) before its CAS; W's unref and S's release share the state line.
 * Until 2026-12-08 (session 21) misses 2 to 5 came one after the other, each waiting
 * for the one before (the link's address comes from inject, the state word's from the
 * walk, and each is behind a locked instruction). Now the worker that sees a task on
 * the stack (pop_external) prefetches the newest task's two lines, the state line for
 * writing, before it takes fifo_lock: 3 and 5 overlap with 2. Left above the floor:
 * 2, 4 and, sometimes, 6. Prefetching 4 as well (the `nspinning` line, for writing,
 * by a spinner) lost most of the gain, and prefetching 2 (`inject`, for writing) all
 * of it: the submitter touches both lines right after its push, and taking them away
 * then delays it more than it saves the worker. (A prefetch is a hint: the task may be
 * taken or freed by then, and a prefetch never faults.) docs/benchmarks.md has the
 * figures (session 21).
 *
 * Exit. A worker exits once the injection stack is CLOSED and empty, no mover holds
 * tasks (`moving` is 0), the fifo and spill are empty, its own deque is empty and
 * `runs` is 0 (read after the fifo, as everywhere): no run holds a task and no claim
 * is between its CAS and its fill. `moving` is set (seq_cst) before the take all,
 * itself seq_cst, and cleared (seq_cst) after the last publish or the spill; can_exit
 * reads it right after inject and before the fifo. So a worker whose read of inject
 * sees the stack taken sees `moving` set or, once cleared, every moved task on the
 * fifo or in spill. Without it (main before 2026-12-07 too, not only the runs) a
 * worker saw the stack closed and empty, the fifo empty, and exited while the mover
 * held a batch between its take all and its first publish (or between pieces): the
 * rest ran serially on the mover, and tasks of the batch that wait for each other
 * deadlocked (test threadpool_shutdown_wait_mover_holds). It is not folded into
 * `runs`: that would stop takes from the fifo during a move. Runs
 * are shared work (a long task must not hold the rest of its run), so a worker stays
 * while another still has tasks of a run to hand out. A task can still be in another
 * worker's deque, or in the hands of a mover; that worker runs it before it exits.
 * br__pool_work_visible counts `runs` after the fifo, so a claim that emptied the fifo
 * is seen there (as a claim in flight or a filled run) by a worker about to park: runs
 * are part of the Dekker pair above. Shutdown with cancel_futures drains the runs
 * and waits until `runs` is 0 (cancel.c), so a claim in flight is cancelled too.
 * Once the pool is closed a worker never parks for good: it parks CLOSED_PARK_NS at
 * most and looks again. can_exit can fail for a moment with no work behind it (a
 * steal_run whose relaxed look at a run was stale, or a claim on a stale fifo top,
 * adds RUNS_CLAIM and takes it back; nobody wakes anyone after that), and shutdown
 * wakes the sleepers once, which a worker linking itself just after missed: such a
 * worker parked forever and shutdown(wait), br_executor_free and the exit hook hung in
 * join_all (found by review of the runs' first commit, fcf3751, 2026-12-07; before the
 * runs can_exit failed only with work visible).
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

/* Set by tests while workers run: atomic (stored with release, loaded with acquire). */
void (*_Atomic br__pool_claim_hook)(void);
void (*_Atomic br__pool_move_hook)(int where);
void (*_Atomic br__pool_park_hook)(int where);

static inline void move_hook(int where) {
    void (*h)(int) = atomic_load_explicit(&br__pool_move_hook, memory_order_acquire);
    if (BR__UNLIKELY(h != NULL))
        h(where);
}

static inline void park_hook(int where) {
    void (*h)(int) = atomic_load_explicit(&br__pool_park_hook, memory_order_acquire);
    if (BR__UNLIKELY(h != NULL))
        h(where);
}

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
    /* After the fifo: a claim that emptied it is counted here by then ("Runs"). */
    if (atomic_load_explicit(&p->runs, memory_order_seq_cst) != 0)
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

/* Marks kept by a move's walk: at most this many, every `stride` tasks from the newest,
 * the stride doubling whenever they run out; so a move publishes its tasks in at most
 * MOVE_MARKS pieces of at least MOVE_PIECE tasks. */
enum { MOVE_MARKS = 64, MOVE_PIECE = 32 };

/* The mover's job: everything on the injection stack goes to the fifo, oldest first,
 * behind what the fifo holds (every task there is older than every task still on the
 * stack), in pieces, oldest piece first, each published as soon as it is written
 * (design notes, "Moving"). Returns the oldest task if the fifo was empty (it is ours
 * to run: nothing older is queued), else NULL with the tasks on the fifo. Caller holds
 * fifo_lock. If the fifo's ring can't grow, the tasks wait in `spill` (oldest first,
 * untagged links), which the next move pushes first. */
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
    /* seq_cst: can_exit's seq_cst load of inject that sees the stack emptied by this
     * CAS then sees `moving` set, stored before it ("Exit"). */
    } while (!atomic_compare_exchange_weak_explicit(&p->inject, &h, h & INJ_FLAGS,
                                                    memory_order_seq_cst,
                                                    memory_order_relaxed));
    move_hook(BR__POOL_MOVE_TAKEN);
    /* Newest first. Count it, find the oldest and mark the pieces, reading the links
     * only: writing them would take every task's line away from the submitter's cache.
     * Task number i (from the newest) goes to slot b + n-1-i. */
    br_task *list = br__inj_ptr(h), *oldest = NULL;
    br_task *marks[MOVE_MARKS];
    size_t n = 0, nm = 0, stride = MOVE_PIECE;
    for (br_task *t = list; t != NULL; t = br__pool_link(t)) {
        if (n % stride == 0) {
            if (nm == MOVE_MARKS) {
                for (size_t i = 0; i < MOVE_MARKS / 2; i++)
                    marks[i] = marks[2 * i];
                nm = MOVE_MARKS / 2;
                stride *= 2;
            }
            if (n % stride == 0)
                marks[nm++] = t;
        }
        oldest = t;
        n++;
    }
    /* Ours to run only if nothing older waits anywhere: not on the fifo, and not in a
     * run (a claim that emptied the fifo counted itself in `runs` before its CAS, so
     * reading `runs` after the fifo sees it; "Runs"). */
    br_task *first = NULL;
    if (br__deque_size(&p->fifo) == 0 &&
        atomic_load_explicit(&p->runs, memory_order_seq_cst) == 0) {
        first = oldest; /* pops would only hand it back: skip the ring */
        if (--n == 0)
            return first;
    }
    if (BR__UNLIKELY(br__deque_reserve(&p->fifo, n) != 0)) {
        br_task *rev = NULL; /* out of memory: reverse the links, into spill */
        for (br_task *t = list; n-- > 0;) {
            br_task *next = br__pool_link(t);
            t->next = rev;
            rev = t;
            t = next;
        }
        spill_append(p, rev);
        return first;
    }
    /* Oldest piece first; a slot is tagged when the task's link (to the next older
     * task) is, that is, when the slot before it holds a task of the same batch. */
    int64_t b = br__deque_bottom(&p->fifo);
    for (size_t j = nm; j-- > 0;) {
        size_t i0 = j * stride, i1 = i0 + stride < n ? i0 + stride : n;
        if (i0 >= n)
            continue; /* only `first`, kept above */
        br_task *t = marks[j];
        for (size_t i = i0; i < i1; i++) {
            uintptr_t link = (uintptr_t)t->next;
            br__deque_stage(&p->fifo, b + (int64_t)(n - 1 - i),
                            (br_task *)((uintptr_t)t | (link & BR__DEQUE_CONT)));
            t = br__deque_untag((br_task *)link);
        }
        br__deque_publish(&p->fifo, b + (int64_t)(n - i0));
    }
    return first;
}

/* --- runs ----------------------------------------------------------------------------- */

/* Fills w's run, which is empty, with ts[0..n) (n < RUN_MAX). Owner only. */
static void run_fill(struct worker *w, br_task *const *ts, int n) {
    struct run *r = &w->run;
    /* Empty (the caller saw it so, with acquire): nobody else writes it now. */
    uint32_t lo = br__run_lo(atomic_load_explicit(&r->word, memory_order_relaxed));
    for (int i = 0; i < n; i++)
        atomic_store_explicit(&r->slot[(lo + (uint32_t)i) & (RUN_MAX - 1)], ts[i],
                              memory_order_relaxed);
    atomic_store_explicit(&r->word, ((uint64_t)(uint32_t)(lo + (uint32_t)n) << 32) | lo,
                          memory_order_release);
}

/* The oldest task of w's own run, or NULL. */
static br_task *run_take(struct worker *w) {
    for (;;) {
        br_task *t;
        bool emptied;
        int n = br__run_grab(&w->run, &t, 1, false, &emptied);
        if (n == 0)
            return NULL;
        if (n > 0) {
            if (emptied)
                atomic_fetch_sub_explicit(&w->pool->runs, 1, memory_order_seq_cst);
            return t;
        }
    }
}

enum { RUNS_NONE, RUNS_GOT, RUNS_RETRY };

/* Takes the older half of another worker's run (w's own is empty): the first task into
 * *out, the rest into w's run. RUNS_RETRY: lost a race, try again. */
static int steal_run(struct worker *w, br_task **out) {
    struct pool *p = w->pool;
    int n;
    struct worker *const *ws = br__pool_workers(p, &n);
    bool retry = false;
    for (int k = 1; k <= n; k++) {
        struct worker *v = ws[(w->index + k) % n];
        if (v == w ||
            br__run_size(atomic_load_explicit(&v->run.word, memory_order_relaxed)) == 0)
            continue;
        br_task *buf[RUN_MAX];
        bool emptied;
        atomic_fetch_add_explicit(&p->runs, RUNS_CLAIM, memory_order_seq_cst);
        int m = br__run_grab(&v->run, buf, RUN_MAX, true, &emptied);
        if (m <= 0) {
            atomic_fetch_sub_explicit(&p->runs, RUNS_CLAIM, memory_order_seq_cst);
            retry |= m < 0;
            continue;
        }
        uint64_t delta = -RUNS_CLAIM;
        if (m > 1) {
            run_fill(w, buf + 1, m - 1);
            delta += 1;
        }
        if (emptied)
            delta -= 1;
        atomic_fetch_add_explicit(&p->runs, delta, memory_order_seq_cst);
        *out = buf[0];
        return RUNS_GOT;
    }
    return retry ? RUNS_RETRY : RUNS_NONE;
}

/* The oldest task submitted from outside the pool that w may take, or NULL (none
 * queued; or another worker is in the middle of moving the stack or of taking a run:
 * what it holds shows up when it is done, and work_visible sees it meanwhile). In
 * order: w's own run, another worker's run, a run from the fifo, the stack moved over
 * (design notes, "Runs"). */
static br_task *pop_external(struct worker *w) {
    struct pool *p = w->pool;
    br_task *t = run_take(w);
    if (t != NULL)
        return t;
    for (;;) {
        /* top first: a claim that moved it before this load is counted in `runs` now */
        int64_t top = br__deque_top(&p->fifo);
        if (BR__UNLIKELY(atomic_load_explicit(&p->runs, memory_order_seq_cst) != 0)) {
            int r = steal_run(w, &t);
            if (r == RUNS_GOT)
                return t;
            if (r == RUNS_RETRY)
                continue;
            /* A claim in flight (a few instructions, unless its worker was preempted,
             * and then yielding is what lets it finish), or a run just emptied. */
            for (int i = 0; i < 64 && atomic_load_explicit(&p->runs, memory_order_relaxed);
                 i++)
                br__cpu_relax();
            if (atomic_load_explicit(&p->runs, memory_order_relaxed) != 0) {
                sched_yield();
                return NULL;
            }
            continue;
        }
        br_task *buf[RUN_MAX];
        int k = br__deque_peek_run(&p->fifo, top, buf, RUN_MAX);
        if (k == 1) {
            if (br__deque_claim(&p->fifo, top, 1))
                return buf[0];
            continue; /* another worker took that one: the next is ours to try */
        }
        if (k > 1) {
            atomic_fetch_add_explicit(&p->runs, RUNS_CLAIM, memory_order_seq_cst);
            if (!br__deque_claim(&p->fifo, top, k)) {
                atomic_fetch_sub_explicit(&p->runs, RUNS_CLAIM, memory_order_seq_cst);
                continue;
            }
            void (*ch)(void) = atomic_load_explicit(&br__pool_claim_hook,
                                                    memory_order_acquire);
            if (BR__UNLIKELY(ch != NULL))
                ch();
            run_fill(w, buf + 1, k - 1);
            atomic_fetch_add_explicit(&p->runs, 1 - RUNS_CLAIM, memory_order_seq_cst);
            return buf[0];
        }
        br_task *newest =
            br__inj_ptr(atomic_load_explicit(&p->inject, memory_order_relaxed));
        if (newest == NULL) {
            if (atomic_load_explicit(&p->spill, memory_order_relaxed) == NULL)
                return NULL;
        } else {
            /* The newest task's lines, written by its submitter, are the next misses
             * on this path (the walk reads its link; a lone task is begun at once: a
             * CAS of its future's state word). Fetch them now, alongside the take
             * all's own miss on `inject`, not one after the other (design notes,
             * "Lines"). A hint only: the task may be taken or freed meanwhile, and a
             * prefetch never faults. */
            __builtin_prefetch(br__task_future(newest), 1);
            __builtin_prefetch(newest, 0);
        }
        move_hook(BR__POOL_MOVE_LOOKED);
        if (!br__pool_fifo_trylock(p)) {
            /* Another worker is moving the stack over: its first piece shows up after
             * a walk of the stack's links, unless it was preempted, and then yielding
             * is what lets it finish. */
            for (int i = 0; i < 64 && atomic_load_explicit(&p->fifo_lock,
                                                           memory_order_relaxed); i++)
                br__cpu_relax();
            if (atomic_load_explicit(&p->fifo_lock, memory_order_relaxed) &&
                br__deque_size(&p->fifo) == 0) {
                sched_yield();
                return NULL;
            }
            continue;
        }
        /* From before the take all until the tasks are on the fifo or in spill (or
         * the one we keep is in our hands, to run before we look at exiting). */
        atomic_store_explicit(&p->moving, 1, memory_order_seq_cst);
        t = move_inject(p);
        atomic_store_explicit(&p->moving, 0, memory_order_seq_cst);
        br__pool_fifo_unlock(p);
        if (br__deque_size(&p->fifo) > 0 ||
            atomic_load_explicit(&p->spill, memory_order_relaxed) != NULL) {
            /* While we moved them the tasks were in no queue: a spinner that looked
             * then found nothing and may have parked, and the submitter's one signal
             * counted on it. Be the submitter of what we moved (design notes, "Lost
             * wake-ups"). */
            br__fence_sc();
            br__pool_signal_work(p, true);
        } else if (t == NULL) {
            return NULL;
        }
        if (t != NULL)
            return t;
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
    if (BR__UNLIKELY(++w->tick % 61 == 0) && (t = pop_external(w)) != NULL)
        return t;
    if (!br__deque_owner_empty(&w->dq) && (t = br__deque_take(&w->dq)) != NULL)
        return t;
    if ((t = pop_external(w)) != NULL)
        return t;
    return steal_work(w);
}

/* After a task: the cheap places only (own deque, outside submissions). If both are
 * empty the worker goes idle at once, so that it is counted as spinning before a
 * submit-and-wait caller can come back with its next task. */
static br_task *next_task(struct worker *w) {
    br_task *t;
    if (BR__UNLIKELY(++w->tick % 61 == 0) && (t = pop_external(w)) != NULL)
        return t;
    if (!br__deque_owner_empty(&w->dq) && (t = br__deque_take(&w->dq)) != NULL)
        return t;
    return pop_external(w);
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
 * and empty, no mover holds tasks it took from it, w's own deque is empty (only w
 * pushes there), and no run holds a task or a claim in flight (design notes, "Exit"). Other deques may still
 * hold tasks; their owners run them before they exit. Reading the CLOSED bit and the
 * emptiness in one load is what makes this exact: a flag word read separately could
 * miss a push that landed just before the close. */
static inline bool can_exit(struct worker *w) {
    struct pool *p = w->pool;
    uintptr_t h = atomic_load_explicit(&p->inject, memory_order_seq_cst);
    /* `moving` right after inject and before the fifo ("Exit"). */
    return (h & INJ_CLOSED) && br__inj_ptr(h) == NULL &&
           atomic_load_explicit(&p->moving, memory_order_seq_cst) == 0 &&
           br__deque_size(&w->dq) == 0 &&
           br__run_size(atomic_load_explicit(&w->run.word, memory_order_acquire)) == 0 &&
           br__deque_size(&p->fifo) == 0 &&
           atomic_load_explicit(&p->runs, memory_order_seq_cst) == 0 &&
           atomic_load_explicit(&p->spill, memory_order_relaxed) == NULL;
}

enum { PARK_WOKEN, PARK_RECHECK };

/* How long a worker of a closed pool parks before it looks again (see park). */
enum { CLOSED_PARK_NS = 200000 };

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
    park_hook(BR__POOL_PARK_LINKING);
    br__ilock_lock(&p->idle.lock);
    br__wq_push_front(&p->idle, wt);
    atomic_fetch_add_explicit(&p->nsleeping, 1, memory_order_seq_cst);
    br__ilock_unlock(&p->idle.lock);
    park_hook(BR__POOL_PARK_LINKED);
    /* Work appeared or the pool closed: leave the queue at once, unless a waker popped
     * us already, in which case its wake is ours (core rule 2). Once the pool is
     * closed, never park for good: can_exit can fail for a moment with no work behind
     * it (a steal_run's stale look, or a claim on a stale top, adds and removes
     * RUNS_CLAIM; a mover holds the stack) and nobody wakes us after that, while
     * shutdown's one wake-up may have come before we linked ourselves ("Exit"). */
    int64_t dl = BR_FOREVER;
    if (br__pool_work_visible(p) || can_exit(w))
        dl = BR_NOWAIT;
    else if (atomic_load_explicit(&p->inject, memory_order_seq_cst) & INJ_CLOSED)
        dl = br_deadline_after(CLOSED_PARK_NS);
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
