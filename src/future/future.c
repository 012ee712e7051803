/* The future: state machine, references, results, done-callbacks, watchers, blocking
 * waits, and the per-thread cache of future+task blocks.
 *
 * Design notes.
 *
 * State. One 32-bit word, f->st: the state in the low 3 bits and three flags above
 * (future/impl.h).
 *
 *     PENDING --cancel (CAS)------------------------------------> CANCELLED
 *        |  \--set_result/set_exception claim (CAS)--> COMPLETING --> FINISHED
 *        |                                                  ^     \-> CANCELLED (abandon)
 *        +--start (CAS) --> RUNNING --claim (CAS)-----------+
 *        |
 *        +--br__task_run (CAS) --> RUNNING|INTASK --task returns (RMW)--> FINISHED
 *                                                                    \--> CANCELLED
 *
 * Every change of the state bits is one CAS or one RMW, so the races Python resolves
 * with a lock resolve here by which CAS lands first: cancel against start (exactly one
 * of them moves PENDING on), two completers against each other (one claims
 * COMPLETING, the other gets BR_ESTATE). COMPLETING reads as RUNNING from outside; it
 * exists so that a completer can write the result before anyone may read it. While a
 * task runs (INTASK), only the task writes the result (br_task_return); the public
 * set_* calls are refused, so the task needs no claim: it finishes with a single
 * fetch_add that moves RUNNING|INTASK to FINISHED (or CANCELLED) and leaves the other
 * flags as they are.
 *
 * Publication. The completer writes the outcome (code, and the result or the message,
 * which share r) with plain stores and then publishes the done state with a release
 * RMW; readers load the state with acquire and read the outcome only after seeing
 * done. Nothing writes the outcome after that, until the block is freed.
 *
 * Listeners and the fast path. Waiters, watchers and callbacks are nodes (br__lnode)
 * on one doubly linked list, f->u.lst, newest first, guarded by f->lock (a br__ilock);
 * the first callback goes in the block itself (cb0) instead. A registrant takes the
 * lock, sets LISTENERS with an acq_rel RMW, and if the RMW shows the future already
 * done it backs off (and handles "done" itself); otherwise it links its node and drops
 * the lock. The completer publishes (RMW) and takes the lock only if the old value had
 * LISTENERS. No notification is lost: the two RMWs are ordered in the word's
 * modification order. If the registrant's came first, the completer sees LISTENERS,
 * and its lock acquisition comes after the registrant's unlock (had the completer held
 * the lock first, its publish would happen-before the registrant's RMW, contradicting
 * the order), so the node is there to find. If the publish came first, the registrant
 * sees done. So a future that nobody waits on completes with one CAS (start) and one
 * RMW (finish), plus its reference drop: no lock, no syscall. LISTENERS is never
 * cleared (a waiter that timed out leaves it set; the cost is one needless lock at
 * completion). A blocking thread registers only after watching the state for the
 * parker's spin time (br__future_wait_done), so a future that completes within it (a
 * round trip to an idle pool) stays on that path too.
 *
 * Notification: under the lock the completer detaches the list, runs the watchers and
 * sorts out the waiters and callbacks; after the lock it wakes the waiters (core rule
 * 1) and then runs the callbacks in the order they were added (cb0 first, then the
 * list from its oldest end), on the completing thread. A callback added after
 * completion runs at once on the adding thread. A callback may drop the last
 * reference: whoever notifies holds a reference of its own until the callbacks have
 * run (br__task_run holds the executor's; the public completers take a temporary one).
 *
 * References. refs starts at 1 (2 when a submit keeps one for its caller). The release
 * that takes it to 0 (acq_rel, so it sees every other holder's writes) frees the
 * result and returns the block to the cache.
 *
 * The block. A future and its task are one 128-byte block (impl.h has the layout):
 * every live future costs that much memory, and a fresh block costs the first touch of
 * its memory too (the kernel zeroes a page per 32 blocks), so the block holds only
 * what most futures use: a 32-byte result or message (they never coexist), a 16-byte
 * argument copy, one callback. Bigger ones go to the heap.
 *
 * The block cache. Each thread keeps two lists of free blocks: `fl`, the blocks it
 * freed (up to BATCH - 1, newest first, so a thread that allocates right after
 * freeing gets a block still in its cache), and `al`, a chain it took from the shared
 * layer for allocating (any length). Alloc pops fl, then al, then takes a chain from
 * the shared layer (blocks.c: slabs of many blocks, reused before fresh memory is
 * touched). Free pushes on fl; when fl reaches BATCH it becomes al if al is empty, and
 * otherwise goes back to the shared layer as one chain. So a thread that only frees (a
 * worker completing fire-and-forget tasks) and a thread that only allocates (the
 * submitter) trade whole chains through one short lock per chain, and the common path
 * takes no lock. A thread's lists go back to the shared layer when it exits. Under ASan
 * the cached blocks are poisoned except their first word (the link) and magic.
 */
#include "future/impl.h"

#include <pthread.h>
#include <string.h>

#if defined(BRAID_ASAN) || defined(__SANITIZE_ADDRESS__)
#  include <sanitizer/asan_interface.h>
#  define UNPOISON_BODY(f)                                                            \
      ASAN_UNPOISON_MEMORY_REGION((char *)(f) + offsetof(br_future, st),             \
                                  sizeof(br_future) - offsetof(br_future, st))
#  define POISON_BODY(f)                                                              \
      ASAN_POISON_MEMORY_REGION((char *)(f) + offsetof(br_future, st),               \
                                sizeof(br_future) - offsetof(br_future, st))
#else
#  define UNPOISON_BODY(f) ((void)(f))
#  define POISON_BODY(f) ((void)(f))
#endif

/* --- the per-thread block cache -------------------------------------------------------- */

enum { BATCH = BR__BLOCK_BATCH };

typedef struct fcache {
    br_future *fl;  /* blocks this thread freed, up to BATCH - 1 */
    br_future *al;  /* a chain from the shared layer, for allocating */
    uint32_t nfl, nal;
    uint8_t state;  /* 0 not registered for thread exit, 1 registered, 2 exiting */
} fcache;

static BR__TLS fcache tcache;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_thread_exit(void *arg) {
    fcache *c = arg;
    c->state = 2;
    if (c->fl)
        br__blocks_put(c->fl, c->nfl);
    if (c->al)
        br__blocks_put(c->al, c->nal);
    c->fl = c->al = NULL;
    c->nfl = c->nal = 0;
}

/* fork() while another thread holds the shared layer's lock would leave it held
 * forever in the child: hold it across the fork instead. */
static void cache_key_init(void) {
    if (pthread_key_create(&cache_key, cache_thread_exit) != 0)
        cache_key = (pthread_key_t)-1;
    pthread_atfork(br__blocks_lock, br__blocks_unlock, br__blocks_unlock);
}

static void cache_register(fcache *c) {
    pthread_once(&cache_once, cache_key_init);
    if (cache_key != (pthread_key_t)-1)
        pthread_setspecific(cache_key, c);
    c->state = 1;
}

static BR__NOINLINE br_future *block_get_slow(fcache *c) {
    if (c->state == 0)
        cache_register(c);
    uint32_t n = 0;
    br_future *chain = br__blocks_get(&n);
    if (chain == NULL)
        return NULL;
    br_future *f = chain;
    chain = f->u.cache_next;
    if (c->state == 1) {
        c->al = chain;
        c->nal = n - 1;
    } else if (chain) { /* this thread's cache is gone: keep one block only */
        br__blocks_put(chain, n - 1);
    }
    UNPOISON_BODY(f);
    return f;
}

static inline br_future *block_get(void) {
    fcache *c = &tcache;
    br_future *f = c->fl;
    if (BR__LIKELY(f != NULL)) {
        c->fl = f->u.cache_next;
        c->nfl--;
        UNPOISON_BODY(f);
        return f;
    }
    f = c->al;
    if (BR__LIKELY(f != NULL)) {
        c->al = f->u.cache_next;
        c->nal--;
        UNPOISON_BODY(f);
        return f;
    }
    return block_get_slow(c);
}

static BR__NOINLINE void block_put_slow(fcache *c, br_future *f) {
    if (c->state == 2) { /* this thread's cache is gone: straight to the shared layer */
        f->u.cache_next = NULL;
        br__blocks_put(f, 1);
        return;
    }
    cache_register(c);
    f->u.cache_next = c->fl;
    c->fl = f;
    c->nfl++;
}

static inline void block_put(br_future *f) {
    fcache *c = &tcache;
    POISON_BODY(f);
    if (BR__UNLIKELY(c->state != 1)) {
        block_put_slow(c, f);
        return;
    }
    f->u.cache_next = c->fl;
    c->fl = f;
    if (BR__UNLIKELY(++c->nfl == BATCH)) {
        if (c->al == NULL) {
            c->al = c->fl;
            c->nal = BATCH;
        } else {
            br__blocks_put(c->fl, BATCH);
        }
        c->fl = NULL;
        c->nfl = 0;
    }
}

/* --- allocation and freeing ---------------------------------------------------------- */

static inline br_future *future_alloc(uint32_t refs) {
    br_future *f = block_get();
    if (BR__UNLIKELY(f == NULL))
        return NULL;
    f->u.lst = NULL;
    f->magic = BR__FUTURE_MAGIC;
    atomic_init(&f->st, BR__FS_PENDING);
    atomic_init(&f->refs, refs);
    atomic_init(&f->lock.word, 0);
    f->code = 0;
    f->rkind = BR__R_NONE;
    f->rlen = 0;
    f->tflags = 0;
    f->task.next = NULL;
    f->task.fn = NULL;
    f->task.a.ref.ptr = NULL;
    f->task.a.ref.len = 0;
    f->task.deadline = BR_FOREVER;
    f->task.xdata = 0;
    f->cb0_fn = NULL;
    f->cb0_arg = NULL;
    return f;
}

br_future *br__future_alloc_task(void) { return future_alloc(1); }

br_task *br__future_task(br_future *f) { return &f->task; }

br_future *br__task_future(br_task *t) {
    return (br_future *)(void *)((char *)t - offsetof(br_future, task));
}

void br__task_set_arg(br_task *t, const void *arg, size_t len) {
    br_future *f = br__task_future(t);
    if (f->tflags & BR__TF_ARG_HEAP)
        br__free((void *)t->a.ref.ptr);
    f->tflags &= (uint16_t) ~(BR__TF_ARG_INLINE | BR__TF_ARG_HEAP |
                              (0xffu << BR__TF_ARG_LEN_SHIFT));
    t->a.ref.ptr = arg;
    t->a.ref.len = len;
}

int br__task_copy_arg(br_task *t, const void *arg, size_t len) {
    br_future *f = br__task_future(t);
    if (len <= BR__INLINE_ARG) {
        br__task_set_arg(t, NULL, 0);
        if (len)
            memcpy(t->a.bytes, arg, len);
        f->tflags |= (uint16_t)(BR__TF_ARG_INLINE | (len << BR__TF_ARG_LEN_SHIFT));
        return 0;
    }
    void *heap = br__malloc(len);
    if (heap == NULL)
        return BR_ENOMEM;
    memcpy(heap, arg, len);
    br__task_set_arg(t, heap, len);
    f->tflags |= BR__TF_ARG_HEAP;
    return 0;
}

void br__task_set_in_process(br_task *t, bool in_process) {
    br_future *f = br__task_future(t);
    if (in_process)
        f->tflags |= BR__TF_IN_PROCESS;
    else
        f->tflags &= (uint16_t)~BR__TF_IN_PROCESS;
}

void br__task_set_parent(br_task *t, br_task *parent) {
    t->xdata = (uintptr_t)parent;
    br__task_future(t)->tflags |= BR__TF_CHILD;
}

br_future *br__task_prepare(br_task_fn fn, const void *arg, size_t len, unsigned how,
                            int64_t deadline, unsigned refs) {
    br_future *f = future_alloc(refs);
    if (BR__UNLIKELY(f == NULL))
        return NULL;
    br_task *t = &f->task;
    t->fn = fn;
    t->deadline = deadline;
    uint16_t tf = (how & BR__ARG_IN_PROCESS) ? BR__TF_IN_PROCESS : 0;
    if (!(how & BR__ARG_COPY) || len == 0) {
        t->a.ref.ptr = arg;
        t->a.ref.len = len;
    } else if (len <= BR__INLINE_ARG) {
        memcpy(t->a.bytes, arg, len);
        tf |= (uint16_t)(BR__TF_ARG_INLINE | (len << BR__TF_ARG_LEN_SHIFT));
    } else {
        void *heap = br__malloc(len);
        if (heap == NULL) {
            f->magic = BR__FUTURE_DEAD;
            block_put(f);
            return NULL;
        }
        memcpy(heap, arg, len);
        t->a.ref.ptr = heap;
        t->a.ref.len = len;
        tf |= BR__TF_ARG_HEAP;
    }
    f->tflags = tf;
    return f;
}

void br__result_clear(br_future *f) {
    switch (f->rkind) {
    case BR__R_HEAP:
    case BR__R_MSGHEAP:
        br__free(f->r.heap.p);
        break;
    case BR__R_PTR:
        /* TAKEN: br_future_take_ptr gave the pointer to its caller. */
        if (f->r.ptr.dtor &&
            !(atomic_load_explicit(&f->st, memory_order_acquire) & BR__FF_TAKEN))
            f->r.ptr.dtor(f->r.ptr.p);
        break;
    default:
        break;
    }
    f->rkind = BR__R_NONE;
    f->rlen = 0;
}

void br__msg_set(br_future *f, const char *msg, size_t len) {
    br__result_clear(f);
    if (msg == NULL)
        return;
    if (len >= BR__INLINE_MSG) {
        char *heap = br__malloc(len + 1);
        if (heap) {
            memcpy(heap, msg, len);
            heap[len] = '\0';
            f->r.heap.p = heap;
            f->r.heap.len = len;
            f->rkind = BR__R_MSGHEAP;
            return;
        }
        len = BR__INLINE_MSG - 1; /* keep what fits */
    }
    memcpy(f->r.buf, msg, len);
    f->r.buf[len] = '\0';
    f->rkind = BR__R_MSG;
}

void br__future_free(br_future *f) {
    br__result_clear(f);
    /* A future released while still pending drops its callbacks unrun; nothing else
     * can be listening (a waiter or watcher holds, or borrows, a reference). */
    for (br__lnode *n = f->u.lst; n;) {
        br__lnode *next = n->next;
        if (n->kind == BR__LN_CB)
            br__free(n);
        n = next;
    }
    if (f->tflags & BR__TF_ARG_HEAP)
        br__free((void *)f->task.a.ref.ptr);
    f->magic = BR__FUTURE_DEAD;
    block_put(f);
}

/* --- references ---------------------------------------------------------------------- */

int br_future_new(br_future **out) {
    if (out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_future_new: out is NULL");
    br_future *f = future_alloc(1);
    if (f == NULL)
        return BR_ENOMEM;
    *out = f;
    return 0;
}

void br_future_retain(br_future *f) {
    if (!br__future_ok(f)) {
        BR__MISUSE(BR_EINVAL, "br_future_retain: not a live future");
        return;
    }
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

void br_future_release(br_future *f) {
    if (!br__future_ok(f)) {
        BR__MISUSE(BR_EINVAL, "br_future_release: not a live future");
        return;
    }
    br__future_unref(f);
}

/* --- listeners and notification --------------------------------------------------------- */

/* A thread (or coroutine) blocked in br__future_wait_done: its node, on its stack. */
typedef struct wait_node {
    br__lnode node;
    br__waiter *w;
    br_future *f;
} wait_node;

/* Caller holds f->lock. */
static void lst_link(br_future *f, br__lnode *n, uint32_t kind) {
    n->kind = kind;
    n->prev = NULL;
    n->next = f->u.lst;
    if (n->next)
        n->next->prev = n;
    f->u.lst = n;
    n->linked = 1;
}

/* Caller holds f->lock; n is linked. */
static void lst_unlink(br_future *f, br__lnode *n) {
    if (n->prev)
        n->prev->next = n->next;
    else
        f->u.lst = n->next;
    if (n->next)
        n->next->prev = n->prev;
    n->next = n->prev = NULL;
    n->linked = 0;
}

/* A waiter whose park timed out leaves the list (under f->lock). */
static void wait_unlink(br__waiter *w, void *arg) {
    wait_node *n = arg;
    lst_unlink(n->f, &n->node);
    w->linked = 0;
}

void br__future_notify(br_future *f, bool temp_ref) {
    if (temp_ref)
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    br__waiter *waiters = NULL; /* the blocked waiters, chained through their next */
    br__lnode *cbs = NULL;      /* relinked through next, oldest first */
    br__ilock_lock(&f->lock);
    br__lnode *n = f->u.lst;
    f->u.lst = NULL;
    br_done_fn c0 = f->cb0_fn;
    void *c0arg = f->cb0_arg;
    f->cb0_fn = NULL;
    while (n) {
        br__lnode *next = n->next; /* newest first */
        n->linked = 0;
        n->prev = NULL;
        if (n->kind == BR__LN_WATCH) {
            br__watcher *w = (br__watcher *)(void *)n;
            w->fn(w, f);
        } else if (n->kind == BR__LN_WAIT) {
            br__waiter *w = ((wait_node *)(void *)n)->w;
            w->linked = 0; /* popped: the wake is on its way (core rule 2) */
            w->next = waiters;
            waiters = w;
        } else {
            n->next = cbs; /* prepending reverses: oldest first */
            cbs = n;
        }
        n = next;
    }
    br__ilock_unlock(&f->lock);
    br__wake_chain(waiters);
    if (c0)
        c0(f, c0arg);
    while (cbs) {
        struct br__cb *cb = (struct br__cb *)(void *)cbs;
        cbs = cbs->next;
        br_done_fn fn = cb->fn;
        void *arg = cb->arg;
        br__free(cb);
        fn(f, arg);
    }
    if (temp_ref)
        br__future_unref(f);
}

/* Takes f's lock and announces a listener. Returns true with the lock held if f is not
 * done (link, then unlock); false, with the lock released, if it is done. */
static bool listen_lock(br_future *f) {
    br__ilock_lock(&f->lock);
    uint32_t old = atomic_fetch_or_explicit(&f->st, BR__FF_LISTENERS, memory_order_acq_rel);
    if (br__fs_done(old)) {
        br__ilock_unlock(&f->lock);
        return false;
    }
    return true;
}

bool br__future_watch(br_future *f, br__watcher *w) {
    if (br__fs_done(atomic_load_explicit(&f->st, memory_order_acquire)))
        return false;
    if (!listen_lock(f))
        return false;
    lst_link(f, &w->node, BR__LN_WATCH);
    br__ilock_unlock(&f->lock);
    return true;
}

bool br__future_unwatch(br_future *f, br__watcher *w) {
    br__ilock_lock(&f->lock);
    bool was = w->node.linked != 0;
    if (was)
        lst_unlink(f, &w->node);
    br__ilock_unlock(&f->lock);
    return was;
}

int br_future_add_done_callback(br_future *f, br_done_fn fn, void *arg) {
    if (!br__future_ok(f) || fn == NULL)
        return BR__MISUSE(BR_EINVAL, "br_future_add_done_callback: bad future or fn");
    if (br__fs_done(atomic_load_explicit(&f->st, memory_order_acquire))) {
        fn(f, arg);
        return 0;
    }
    struct br__cb *node = NULL;
    br__ilock_lock(&f->lock);
    if (f->cb0_fn != NULL) { /* cb0 is taken (until notify): a node, allocated unlocked */
        br__ilock_unlock(&f->lock);
        node = br__malloc(sizeof *node);
        if (node == NULL)
            return BR_ENOMEM;
        br__ilock_lock(&f->lock);
    }
    uint32_t old = atomic_fetch_or_explicit(&f->st, BR__FF_LISTENERS, memory_order_acq_rel);
    if (br__fs_done(old)) {
        br__ilock_unlock(&f->lock);
        br__free(node);
        fn(f, arg);
        return 0;
    }
    if (node == NULL) {
        f->cb0_fn = fn;
        f->cb0_arg = arg;
    } else {
        node->fn = fn;
        node->arg = arg;
        lst_link(f, &node->node, BR__LN_CB);
    }
    br__ilock_unlock(&f->lock);
    return 0;
}

/* --- state queries -------------------------------------------------------------------- */

static inline uint32_t load_st(const br_future *f) {
    return atomic_load_explicit(&((br_future *)f)->st, memory_order_acquire);
}

const char *br_future_state_name(br_future_state state) {
    switch (state) {
    case BR_FUTURE_PENDING:
        return "PENDING";
    case BR_FUTURE_RUNNING:
        return "RUNNING";
    case BR_FUTURE_FINISHED:
        return "FINISHED";
    case BR_FUTURE_CANCELLED:
        return "CANCELLED";
    }
    return "UNKNOWN";
}

br_future_state br_future_state_of(const br_future *f) {
    if (!br__future_ok(f)) {
        BR__MISUSE(BR_EINVAL, "br_future_state_of: not a live future");
        return BR_FUTURE_PENDING;
    }
    uint32_t s = load_st(f) & BR__FS_MASK;
    return s == BR__FS_COMPLETING ? BR_FUTURE_RUNNING : (br_future_state)s;
}

bool br_future_done(const br_future *f) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_done: not a live future"), false;
    return br__fs_done(load_st(f));
}

bool br_future_running(const br_future *f) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_running: not a live future"), false;
    uint32_t s = load_st(f) & BR__FS_MASK;
    return s == BR__FS_RUNNING || s == BR__FS_COMPLETING;
}

bool br_future_cancelled(const br_future *f) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_cancelled: not a live future"), false;
    return (load_st(f) & BR__FS_MASK) == BR__FS_CANCELLED;
}

bool br_future_failed(const br_future *f) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_failed: not a live future"), false;
    return (load_st(f) & BR__FS_MASK) == BR__FS_FINISHED && f->code < 0;
}

/* --- cancellation ----------------------------------------------------------------------- */

/* PENDING -> CANCELLED. Returns 1 if this call cancelled, 0 if it was already
 * cancelled, -1 if it is running or finished (*s holds the state seen). */
static int cancel_pending(br_future *f, uint32_t *sp) {
    uint32_t s = atomic_load_explicit(&f->st, memory_order_relaxed);
    for (;;) {
        uint32_t st = s & BR__FS_MASK;
        if (st == BR__FS_CANCELLED) {
            *sp = s;
            return 0;
        }
        if (st != BR__FS_PENDING) {
            *sp = s;
            return -1;
        }
        if (atomic_compare_exchange_weak_explicit(&f->st, &s,
                                                  (s & ~(uint32_t)BR__FS_MASK) |
                                                      BR__FS_CANCELLED,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            if (s & BR__FF_LISTENERS)
                br__future_notify(f, true);
            return 1;
        }
    }
}

bool br_future_cancel(br_future *f) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_cancel: not a live future"), false;
    uint32_t s;
    return cancel_pending(f, &s) >= 0;
}

bool br_future_request_cancel(br_future *f) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_request_cancel: not a live future"), false;
    uint32_t s;
    if (cancel_pending(f, &s) >= 0)
        return true;
    for (;;) {
        uint32_t st = s & BR__FS_MASK;
        if (st == BR__FS_FINISHED)
            return false;
        if (st == BR__FS_CANCELLED)
            return true;
        /* RUNNING or COMPLETING: raise the flag the task polls. */
        if (atomic_compare_exchange_weak_explicit(&f->st, &s, s | BR__FF_CANCEL_REQ,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
}

/* --- the executor side ---------------------------------------------------------------- */

bool br_future_set_running_or_notify_cancel(br_future *f) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_set_running_or_notify_cancel: not a live future"),
               false;
    uint32_t s = atomic_load_explicit(&f->st, memory_order_relaxed);
    for (;;) {
        uint32_t st = s & BR__FS_MASK;
        if (st == BR__FS_CANCELLED)
            return false;
        if (st != BR__FS_PENDING)
            return BR__MISUSE(BR_EINVAL,
                              "br_future_set_running_or_notify_cancel: already running or done"),
                   false;
        if (atomic_compare_exchange_weak_explicit(&f->st, &s, s | BR__FS_RUNNING,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
    }
}

/* Claims the completion: PENDING or RUNNING (not inside a task) -> COMPLETING. */
static int claim(br_future *f) {
    uint32_t s = atomic_load_explicit(&f->st, memory_order_relaxed);
    for (;;) {
        uint32_t st = s & BR__FS_MASK;
        if ((st != BR__FS_PENDING && st != BR__FS_RUNNING) || (s & BR__FF_INTASK))
            return BR_ESTATE;
        if (atomic_compare_exchange_weak_explicit(&f->st, &s,
                                                  (s & ~(uint32_t)BR__FS_MASK) |
                                                      BR__FS_COMPLETING,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return 0;
    }
}

/* COMPLETING -> `to`, publishing the outcome written since the claim. */
static void publish(br_future *f, uint32_t to) {
    uint32_t old = atomic_fetch_add_explicit(&f->st, to - (uint32_t)BR__FS_COMPLETING,
                                             memory_order_release);
    if (old & BR__FF_LISTENERS)
        br__future_notify(f, true);
}

int br_future_set_result(br_future *f, const void *data, size_t len) {
    if (!br__future_ok(f) || (data == NULL && len > 0))
        return BR__MISUSE(BR_EINVAL, "br_future_set_result: bad future or data");
    void *heap = NULL;
    if (len > BR__INLINE_RESULT) {
        heap = br__malloc(len);
        if (heap == NULL)
            return BR_ENOMEM;
        memcpy(heap, data, len);
    }
    int rc = claim(f);
    if (rc != 0) {
        br__free(heap);
        return rc;
    }
    br__result_clear(f);
    if (heap) {
        f->rkind = BR__R_HEAP;
        f->r.heap.p = heap;
        f->r.heap.len = len;
    } else {
        f->rkind = BR__R_INLINE;
        f->rlen = (uint8_t)len;
        if (len)
            memcpy(f->r.buf, data, len);
    }
    f->code = 0;
    publish(f, BR__FS_FINISHED);
    return 0;
}

int br_future_set_result_i64(br_future *f, int64_t value) {
    return br_future_set_result(f, &value, sizeof value);
}

int br_future_set_result_ptr(br_future *f, void *ptr, void (*dtor)(void *ptr)) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_set_result_ptr: not a live future");
    int rc = claim(f);
    if (rc != 0)
        return rc;
    br__result_clear(f);
    f->rkind = BR__R_PTR;
    f->r.ptr.p = ptr;
    f->r.ptr.dtor = dtor;
    f->code = 0;
    publish(f, BR__FS_FINISHED);
    return 0;
}

int br_future_set_exception(br_future *f, int code, const char *msg) {
    if (!br__future_ok(f) || code >= 0)
        return BR__MISUSE(BR_EINVAL, "br_future_set_exception: bad future or code >= 0");
    char *heap = NULL;
    size_t mlen = msg ? strlen(msg) : 0;
    if (msg && mlen >= BR__INLINE_MSG) {
        heap = br__malloc(mlen + 1);
        if (heap == NULL)
            return BR_ENOMEM;
        memcpy(heap, msg, mlen + 1);
    }
    int rc = claim(f);
    if (rc != 0) {
        br__free(heap);
        return rc;
    }
    br__result_clear(f);
    if (heap) {
        f->rkind = BR__R_MSGHEAP;
        f->r.heap.p = heap;
        f->r.heap.len = mlen;
    } else if (msg) {
        memcpy(f->r.buf, msg, mlen + 1);
        f->rkind = BR__R_MSG;
    }
    f->code = code;
    publish(f, BR__FS_FINISHED);
    return 0;
}

/* --- waiting and reading ------------------------------------------------------------------ */

/* A thread that is about to block on a future first watches its state for as long as
 * the thread parker would spin on the waiter's own word (br__park_spin_ns), without
 * registering: a future that completes meanwhile (a round trip to an idle pool takes a
 * few hundred ns) then never gets LISTENERS, so its completer stays on the lock-free
 * path, and nobody takes the lock or wakes anyone. Only then does it register, and it
 * sleeps at once (the spin is spent). Coroutines don't spin (their parker doesn't
 * either): they register and suspend. True if f is done. */
static bool spin_until_done(br_future *f, int64_t deadline) {
    if (!br__may_spin())
        return false;
    int64_t until = br__spin_until(deadline);
    for (unsigned i = 1;; i++) {
        br__cpu_relax();
        if (br__fs_done(load_st(f)))
            return true;
        if (br__spin_over(i, until))
            return false;
    }
}

/* Waits until done. The waiter's node is linked under f's lock and woken by
 * br__future_notify, which unlinks every node; a waiter that times out unlinks itself
 * (core rule 2). */
int br__future_wait_done(br_future *f, int64_t deadline) {
    if (BR__LIKELY(br__fs_done(load_st(f))))
        return 0;
    if (deadline <= 0) /* BR_NOWAIT, or a time before boot */
        return BR_ETIMEDOUT;
    if (spin_until_done(f, deadline))
        return 0;
    br__waiter w;
    br__waiter_init(&w);
    w.flags |= BR__WAITER_NOSPIN;
    wait_node n;
    n.w = &w;
    n.f = f;
    if (!listen_lock(f))
        return 0;
    lst_link(f, &n.node, BR__LN_WAIT);
    w.linked = 1; /* mirrors n.node.linked, for br__waiter_park_or_cancel_in */
    br__ilock_unlock(&f->lock);
    /* Woken only by notify, so 0 means done; a timeout unlinks us unless notify got
     * there first (core rule 2). */
    return br__waiter_park_or_cancel_in(&w, &f->lock, deadline, wait_unlink, &n);
}

int br_future_wait(br_future *f, int64_t deadline) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_wait: not a live future");
    return br__future_wait_done(f, deadline);
}

/* Waits, then returns 0 if f finished successfully, or its failure code, or
 * BR_ECANCELED. */
static int wait_outcome(br_future *f, int64_t deadline) {
    int rc = br__future_wait_done(f, deadline);
    if (rc != 0)
        return rc;
    if ((load_st(f) & BR__FS_MASK) == BR__FS_CANCELLED)
        return BR_ECANCELED;
    return f->code;
}

int br_future_result(br_future *f, int64_t deadline, const void **data, size_t *len) {
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_result: not a live future");
    int rc = wait_outcome(f, deadline);
    if (rc != 0)
        return rc;
    const void *d = NULL;
    size_t l = 0;
    switch (f->rkind) {
    case BR__R_INLINE:
        d = f->r.buf;
        l = f->rlen;
        break;
    case BR__R_HEAP:
        d = f->r.heap.p;
        l = f->r.heap.len;
        break;
    case BR__R_PTR:
        d = (load_st(f) & BR__FF_TAKEN) ? NULL : f->r.ptr.p;
        break;
    default:
        break;
    }
    if (data)
        *data = d;
    if (len)
        *len = l;
    return 0;
}

int br_future_result_i64(br_future *f, int64_t deadline, int64_t *out) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_result_i64: not a live future");
    int rc = wait_outcome(f, deadline);
    if (rc != 0)
        return rc;
    if (f->rkind != BR__R_INLINE || f->rlen != sizeof(int64_t))
        return BR_EINVAL; /* another kind of result: a probe, not misuse (no panic) */
    if (out)
        memcpy(out, f->r.buf, sizeof(int64_t));
    return 0;
}

/* Reads (or, with take, moves out) a pointer result. Taking is one fetch_or of
 * BR__FF_TAKEN on the state word, so of two racing takes exactly one wins; the result
 * fields were published by the completion (wait_outcome's acquire) and stay as they are. */
static int ptr_result(br_future *f, int64_t deadline, void **out, bool take,
                      const char *what) {
    if (out)
        *out = NULL;
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, what);
    int rc = wait_outcome(f, deadline);
    if (rc != 0)
        return rc;
    if (f->rkind != BR__R_PTR)
        return BR_EINVAL; /* another kind of result: a probe, not misuse (no panic) */
    uint32_t s = take ? atomic_fetch_or_explicit(&f->st, BR__FF_TAKEN, memory_order_acq_rel)
                      : load_st(f);
    if (s & BR__FF_TAKEN)
        return BR_ESTATE;
    if (out)
        *out = f->r.ptr.p;
    return 0;
}

int br_future_result_ptr(br_future *f, int64_t deadline, void **out) {
    return ptr_result(f, deadline, out, false, "br_future_result_ptr: not a live future");
}

int br_future_take_ptr(br_future *f, int64_t deadline, void **out) {
    return ptr_result(f, deadline, out, true, "br_future_take_ptr: not a live future");
}

int br_future_result_str(br_future *f, int64_t deadline, const char **out) {
    if (out)
        *out = NULL;
    const void *d;
    size_t len;
    int rc = br_future_result(f, deadline, &d, &len);
    if (rc != 0)
        return rc;
    if (len == 0 || ((const char *)d)[len - 1] != '\0')
        return BR_EINVAL; /* another kind of result: a probe, not misuse (no panic) */
    if (out)
        *out = d;
    return 0;
}

int br_future_exception(br_future *f, int64_t deadline, int *code, const char **msg) {
    if (code)
        *code = 0;
    if (msg)
        *msg = NULL;
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_exception: not a live future");
    int rc = br__future_wait_done(f, deadline);
    if (rc != 0)
        return rc;
    if ((load_st(f) & BR__FS_MASK) == BR__FS_CANCELLED)
        return BR_ECANCELED;
    if (code)
        *code = f->code;
    if (msg)
        *msg = f->code < 0 ? br__future_msg(f) : NULL;
    return 0;
}
