/* The event loop's internals (aio/loop.c, task.c, timer.c), for the aio layer's own
 * files. Never installed. The protocol (the coroutine parker, wake-ups, cancellation,
 * lifetimes) is in loop.c's design notes.
 */
#ifndef BRAID_AIO_LOOP_H
#define BRAID_AIO_LOOP_H

#include "aio/coro.h"
#include "braid/aio.h"
#include "braid/executor_impl.h"
#include "core/lib.h"
#include "platform/platform.h"

/* --- the timer heap (timer.c) ----------------------------------------------------------
 *
 * A binary min-heap of nodes ordered by (when, seq): timers due at the same time fire
 * in the order they were armed. Each node knows its index, so removal is O(log n).
 * The loop's thread only. */
typedef struct br__tnode br__tnode;
struct br__tnode {
    int64_t when;
    uint64_t seq;
    size_t idx; /* in the heap, or BR__TNODE_OFF */
    void (*fire)(br__tnode *n);
};
#define BR__TNODE_OFF ((size_t)-1)

typedef struct br__theap {
    br__tnode **a;
    size_t n, cap;
    uint64_t seq;
} br__theap;

static inline void br__tnode_init(br__tnode *n, void (*fire)(br__tnode *n)) {
    n->when = 0;
    n->seq = 0;
    n->idx = BR__TNODE_OFF;
    n->fire = fire;
}
static inline bool br__tnode_armed(const br__tnode *n) { return n->idx != BR__TNODE_OFF; }
/* Room for at least n nodes: 0 or BR_ENOMEM. */
int br__theap_reserve(br__theap *h, size_t n);
/* Arms t (not armed) for `when`. 0 or BR_ENOMEM. */
int br__theap_push(br__theap *h, br__tnode *t, int64_t when);
/* Disarms t if armed. */
void br__theap_remove(br__theap *h, br__tnode *t);
static inline br__tnode *br__theap_top(const br__theap *h) { return h->n ? h->a[0] : NULL; }
/* Disarms and returns the earliest node, or NULL. */
br__tnode *br__theap_pop(br__theap *h);
void br__theap_free(br__theap *h);

/* --- the loop's runnables ------------------------------------------------------------- */

/* What the ready queue holds: a callback or a task's coroutine, in one FIFO, so that
 * the order between them is the order they became ready (as asyncio's _ready). */
typedef struct br__runnable br__runnable;
struct br__runnable {
    br__runnable *next;
    uint32_t kind; /* BR__RUN_CB, BR__RUN_TASK */
};
enum { BR__RUN_CB = 1, BR__RUN_TASK = 2 };

typedef struct br__rq {
    br__runnable *head, *tail;
} br__rq;

static inline void br__rq_push(br__rq *q, br__runnable *r) {
    r->next = NULL;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
}
static inline br__runnable *br__rq_pop(br__rq *q) {
    br__runnable *r = q->head;
    if (r) {
        q->head = r->next;
        if (q->head == NULL)
            q->tail = NULL;
    }
    return r;
}
static inline void br__rq_append(br__rq *q, br__rq *more) {
    if (more->head == NULL)
        return;
    if (q->tail)
        q->tail->next = more->head;
    else
        q->head = more->head;
    q->tail = more->tail;
    more->head = more->tail = NULL;
}

/* --- task cells (cells.c) ---------------------------------------------------------------
 *
 * One block per task for its record and its coroutine (br__coro_new_in) and, on a
 * shared stack, the first bytes of its copied-out frames; from 2 MiB slabs of the
 * loop's own, loop thread only (cells.c's notes). Five sizes, smallest first: a 448-byte
 * cell holds a task of either stack mode (a shared-stack one with room for 144 bytes of
 * frames, what a task suspended in a yield copies out, and a park block); frames that
 * outgrow that room go to the smallest cell that holds them (384 bytes: a sleep's 352;
 * 448; 512: a semaphore's 480; 768; 1024), beyond to the heap (task.c, the frames of
 * shared-stack tasks). */
enum { BR__CELL_384, BR__CELL_448, BR__CELL_512, BR__CELL_768, BR__CELL_1024, BR__CELL_CLASSES };
enum { BR__CELL_SMALL_CLASS = BR__CELL_448, BR__CELL_BIG_CLASS = BR__CELL_1024 };
#define BR__CELL_SMALL ((size_t)448)
/* The room a small cell keeps after a task's record and coroutine (without sanitizers):
 * the frames a shared-stack task suspended in a yield copies out (144 bytes, x86-64 gcc
 * 12 -O2; tests/aio/test_shared_stacks.c's a_yield_fits_a_small_cell checks it), and at
 * least a park block (BR__PARK_BLOCK). task.c asserts at compile time that record,
 * coroutine and room fit BR__CELL_SMALL. */
#define BR__CELL_ROOM ((size_t)144)
/* The bytes of a cell of each class. */
extern const size_t br__cell_size[BR__CELL_CLASSES];
typedef struct br__cells {
    br__slab_class cls[BR__CELL_CLASSES]; /* core/slab.c's */
} br__cells;
/* A cell of class cls (16-byte aligned, uninitialised), or NULL (out of memory). */
void *br__cells_get(br__cells *cs, int cls);
/* Gives a cell back. */
void br__cells_put(br__cells *cs, int cls, void *p);
/* Gives a cell back from a thread that isn't the loop's (no lock is taken): it stays
 * in use until br__cells_fini unmaps its slab (heap cells are freed at once). */
void br__cells_put_foreign(br__cells *cs, int cls, void *p);
/* Unmaps every slab (the loop's end: no cell is in use). */
void br__cells_fini(br__cells *cs);
/* For tests: the slabs of class cls mapped now, and the cells a slab holds (both 0 in
 * builds that take cells from the heap: AddressSanitizer's). */
size_t br__cells_slabs(const br__cells *cs, int cls);
size_t br__cells_per_slab(int cls);

/* --- tasks (task.c) --------------------------------------------------------------------- */

typedef struct br__atask br__atask;
typedef struct br__scope br__scope;

/* A timeout scope (br_timeout_scope's real layout). */
struct br__scope {
    br__tnode node;   /* its deadline's timer */
    br__atask *a;
    br__scope *prev;  /* the next scope out */
    uint32_t base;    /* the task's request count at enter */
    uint32_t flags;   /* BR__SCOPE_* */
};
enum { BR__SCOPE_ENTERED = 1, BR__SCOPE_FIRED = 2 };
_Static_assert(sizeof(br__scope) <= sizeof(br_timeout_scope), "br_timeout_scope holds a scope");

/* A coroutine task: the coroutine context the parker works with (loop.c's notes).
 * 176 bytes: with its coroutine (128) a small cell (448) keeps 144 bytes for frames. */
struct br__atask {
    br__runnable run;        /* first: the ready queue's link */
    br_loop *loop;
    br_future *f;            /* our own reference on the task's future (its br_task in it) */
    struct br__coro *co;     /* NULL until the loop first runs it */
    br__atask *cnext;        /* the inbox's cancel notices (inbox lock) */
    br__atask *hnext;        /* the notices a drain took (loop thread) */
    br__atask *anext, *aprev; /* the loop's started tasks (loop thread) */
    br__waiter *park_w;      /* the waiter of the park it is suspended in, or NULL */
    void *park_site;         /* who parked (for br_aio_dump) */
    br__scope *scopes;       /* the innermost timeout scope */
    char *uname;             /* the name it was given (a heap copy, lent to its coroutine),
                              * or NULL: Task-<id>, made when asked for */
    uint64_t id;             /* never reused: its identity is br__coro_identity(id) */
    br__tnode park_timer;
    _Atomic uint32_t requests;    /* cancel requests counted (asyncio's cancelling()) */
    _Atomic uint32_t must_report; /* a request not yet reported by a park */
    int park_fd;             /* the descriptor it waits on, when park_io != 0 */
    uint32_t park_io;        /* BR__IO_* it waits for, or 0 (for br_aio_dump) */
    int rc;                  /* the function's return value */
    uint32_t stack_kib;      /* its stack size in KiB, 0: the default */
    bool cnoticed;           /* on the notice list (inbox lock) */
    bool dead;               /* finished while noticed: the drain frees it (inbox lock) */
    bool from_ex;            /* submitted through br_loop_executor */
    bool ex_slot;            /* holds one of ex_limit's slots */
    bool shared_stack;
    bool park_canc;          /* that park may end in BR_ECANCELED */
    int8_t cell;             /* its block: a BR__CELL_*_CLASS of the loop's cells, or -1
                              * (made off the loop's thread: a heap block of that size) */
};

/* The task's name: the one it was given, or "Task-<id>" written into buf. */
const char *br__atask_name(const br__atask *a, char buf[32]);

/* The loop (loop.c's notes say who touches what). */
struct br_loop {
    br__poller *poller;
    _Atomic uintptr_t thread;  /* the br__tls of the thread running it, 0 if none */
    _Atomic bool stop;
    br__rq ready;              /* loop thread */
    br__rq batch;              /* the run step's runnables not run yet (loop thread): a
                                * suspending task hands off to its head (task.c) */
    const struct run_state *rs; /* what the running br_loop_run_* waits for (loop.c) */
    br__theap timers;          /* loop thread */
    size_t tneed;              /* heap slots promised to armed-or-armable nodes */
    br__ilock inbox_lock;      /* guards the next four */
    br__rq inbox;
    br__atask *cancels;
    bool sleeping;
    _Atomic size_t live;       /* tasks created and not finished */
    br__atask *all;            /* tasks started and not finished (loop thread) */
    struct br__fdent *fds;     /* the descriptors coroutines wait on (loop thread) */
    size_t fdcap, nio;         /* nio: coroutines parked in a descriptor wait */
    uint64_t nctl;             /* poller registrations changed (add/mod/del), for tests */
    struct {
        br_executor base;
        br_loop *loop;
    } ex;
    /* An optional limit on executor tasks running at once (0: none; tests set it, so
     * that the executor conformance suite's max_workers means something): beyond it,
     * submitted tasks wait, not begun, on ex_pending (inbox lock). */
    uint32_t ex_limit;
    uint32_t ex_running;       /* loop thread */
    br__rq ex_pending;         /* inbox lock */
    _Atomic bool ex_shut;
    _Atomic bool ex_cancel;
    _Atomic uint32_t ex_live;  /* executor tasks not finished */
    br__wq ex_idle;            /* shutdown(wait) callers, woken when ex_live reaches 0 */
    /* The defaults of tasks made without a stack choice (br_loop_set_task_defaults).
     * Read by br__atask_start on any thread:
     * set them before tasks are made. */
    size_t task_stack_size;
    bool task_shared;
    br__cells cells;           /* its tasks' cells (loop thread) */
    br__frames_ops frames;     /* its shared-stack tasks' frames spill to cells (task.c) */
};

/* The stack choice of every new loop's tasks: false (their own stacks) unless the tests
 * set it, to run a suite on shared stacks (tests/harness.c, BRAID_TEST_SHARED_STACKS). */
extern bool br__loop_shared_default;

/* The frames ops of a new loop (task.c). */
extern const br__frames_ops br__loop_frames_ops;

/* Loop side (loop.c), for task.c. */
extern BR__TLS br_loop *br__loop_tl;      /* the loop running on this thread */
extern BR__TLS br__atask *br__atask_tl;   /* the coroutine task running on this thread */
/* Makes r runnable on l: its ready queue on l's thread, else the inbox (any thread). */
void br__loop_schedule(br_loop *l, br__runnable *r);
/* From a task suspending when the run step's batch is over (loop thread): if the next
 * iteration would only take the ready queue as its next batch (nothing handed over, no
 * notice, no descriptor to poll, no timer due, not finished), takes it: true (loop.c,
 * "Hand-offs"). */
bool br__loop_next_batch(br_loop *l);
/* Runs a task runnable (loop thread). */
void br__loop_run_task(br_loop *l, br__atask *a);
/* A task over (finished, or never begun: br__task_begin said false): its home cleared,
 * its counts dropped, its record freed now or by the drain that holds its notice (loop
 * thread, or br_loop_free with no thread running the loop). */
void br__atask_gone(br_loop *l, br__atask *a);
/* Frees a task's record once nothing can reach it (loop thread). */
void br__atask_free(br__atask *a);
/* Wakes a's current park if it may end by a cancel (loop thread). */
void br__atask_poke(br__atask *a);
/* Posts a cancel request to a from any thread (the future layer's home hook). */
void br__atask_home_cancel(void *home);
/* A task for t on l (t's future has the executor's reference); 0 or BR_ENOMEM. */
int br__atask_start(br_loop *l, br_task *t, const br_task_opts *opts, bool from_ex);
extern const br__parker br__coro_parker;
/* Promises the timer heap room for one more node (loop thread). 0 or BR_ENOMEM; the
 * promise is given back with l->tneed--. */
int br__loop_reserve_timer(br_loop *l);

/* The interest l's poller holds for fd (BR__POLL_*, 0: none), for tests (loop
 * thread, or no thread running l). */
uint32_t br__loop_fd_registered(const br_loop *l, int fd);

/* The coroutine task running on this thread, or NULL. */
BR__EXT br__atask *br__atask_current(void);
/* The loop a task runs on, and its future (borrowed). */
br_loop *br__atask_loop(const br__atask *a);
br_future *br__atask_future(const br__atask *a);

#endif
