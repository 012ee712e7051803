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
 * Publication. The completer writes the outcome (code, result, message) with plain
 * stores and then publishes the done state with a release RMW; readers load the state
 * with acquire and read the outcome only after seeing done. Nothing writes the outcome
 * after that, until the block is freed.
 *
 * Listeners and the fast path. Waiters, watchers and callbacks live on lists guarded by
 * f->wq.lock (a br__ilock). A registrant takes the lock, sets LISTENERS with an acq_rel
 * RMW, and if the RMW shows the future already done it backs off (and handles "done"
 * itself); otherwise it links its node and drops the lock. The completer publishes
 * (RMW) and takes the lock only if the old value had LISTENERS. No notification is
 * lost: the two RMWs are ordered in the word's modification order. If the
 * registrant's came first, the completer sees LISTENERS, and its lock acquisition comes
 * after the registrant's unlock (had the completer held the lock first, its publish
 * would happen-before the registrant's RMW, contradicting the order), so the node is
 * there to find. If the publish came first, the registrant sees done. So a future that
 * nobody waits on completes with one CAS (start) and one RMW (finish), plus its
 * reference drop: no lock, no syscall. LISTENERS is never cleared (a waiter that
 * timed out leaves it set; the cost is one needless lock at completion).
 *
 * Notification order: watchers (under the lock), then blocked waiters (popped under the
 * lock, woken after it, core rule 1), then callbacks, in the order they were added, on
 * the completing thread, outside the lock. A callback added after completion runs at
 * once on the adding thread. A callback may drop the last reference: whoever notifies
 * holds a reference of its own until the callbacks have run (br__task_run holds the
 * executor's; the public completers take a temporary one).
 *
 * References. refs starts at 1. The release that takes it to 0 (acq_rel, so it sees
 * every other holder's writes) frees the result and returns the block to the cache.
 *
 * The block cache. A future and its task are one block. Each thread keeps up to two
 * chains of BATCH free blocks (cur, being filled or emptied; full, a complete chain).
 * Alloc pops cur; when cur is empty it takes `full`, then a chain from the global pool,
 * then malloc. Free pushes on cur; when cur reaches BATCH it becomes `full`, and a
 * previous full chain moves to the global pool as one unit. So a thread that only
 * frees (a worker completing fire-and-forget tasks) and a thread that only allocates
 * (the submitter) trade whole chains through one short lock per BATCH blocks, and the
 * common path takes no lock. A thread's chains go to the global pool when it exits;
 * the global pool is bounded (beyond it, blocks go back to malloc). Under ASan the
 * cached blocks are poisoned except their header (magic and links).
 */
#include "future/impl.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(BRAID_ASAN) || defined(__SANITIZE_ADDRESS__)
#  include <sanitizer/asan_interface.h>
#  define POISON_BODY(f)                                                              \
      ASAN_POISON_MEMORY_REGION((char *)(f) + offsetof(br_future, st),               \
                                sizeof(br_future) - offsetof(br_future, st))
#  define UNPOISON_BODY(f)                                                            \
      ASAN_UNPOISON_MEMORY_REGION((char *)(f) + offsetof(br_future, st),             \
                                  sizeof(br_future) - offsetof(br_future, st))
#else
#  define POISON_BODY(f) ((void)(f))
#  define UNPOISON_BODY(f) ((void)(f))
#endif

/* --- the block cache ---------------------------------------------------------------- */

enum {
    BATCH = 64,          /* blocks per chain moved to or from the global pool */
    GLOBAL_CHAINS = 64   /* at most this many chains (4096 blocks) kept globally */
};

typedef struct fcache {
    br_future *cur;  /* up to BATCH - 1 blocks */
    br_future *full; /* NULL or a chain of BATCH blocks */
    uint32_t ncur;
    uint8_t state;   /* 0 not registered for thread exit, 1 registered, 2 exiting */
} fcache;

static BR__TLS fcache tcache;

static struct {
    br__ilock lock;
    br_future *chains;
    uint32_t n;
} global;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void free_chain(br_future *f) {
    while (f) {
        br_future *next = f->cache_next;
        UNPOISON_BODY(f);
        free(f);
        f = next;
    }
}

/* Gives a chain (len blocks) to the global pool, or back to malloc if the pool is
 * full. */
static void global_put(br_future *chain, uint32_t len) {
    if (chain == NULL)
        return;
    chain->batch_len = len;
    br__ilock_lock(&global.lock);
    if (global.n < GLOBAL_CHAINS) {
        chain->batch_next = global.chains;
        global.chains = chain;
        global.n++;
        chain = NULL;
    }
    br__ilock_unlock(&global.lock);
    free_chain(chain);
}

static br_future *global_get(uint32_t *len) {
    br__ilock_lock(&global.lock);
    br_future *c = global.chains;
    if (c) {
        global.chains = c->batch_next;
        global.n--;
    }
    br__ilock_unlock(&global.lock);
    if (c)
        *len = c->batch_len;
    return c;
}

static void cache_thread_exit(void *arg) {
    fcache *c = arg;
    c->state = 2;
    global_put(c->cur, c->ncur);
    global_put(c->full, BATCH);
    c->cur = c->full = NULL;
    c->ncur = 0;
}

/* fork() while another thread holds the global pool's lock would leave it held forever
 * in the child: hold it across the fork instead. */
static void fork_prepare(void) { br__ilock_lock(&global.lock); }
static void fork_after(void) { br__ilock_unlock(&global.lock); }

static void cache_key_init(void) {
    if (pthread_key_create(&cache_key, cache_thread_exit) != 0)
        cache_key = (pthread_key_t)-1;
    pthread_atfork(fork_prepare, fork_after, fork_after);
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
    if (c->full) {
        c->cur = c->full;
        c->ncur = BATCH;
        c->full = NULL;
    } else {
        uint32_t len = 0;
        br_future *chain = c->state == 1 ? global_get(&len) : NULL;
        if (chain == NULL)
            return malloc(sizeof(br_future));
        c->cur = chain;
        c->ncur = len;
    }
    br_future *f = c->cur;
    c->cur = f->cache_next;
    c->ncur--;
    UNPOISON_BODY(f);
    return f;
}

static inline br_future *block_get(void) {
    fcache *c = &tcache;
    br_future *f = c->cur;
    if (BR__LIKELY(f != NULL)) {
        c->cur = f->cache_next;
        c->ncur--;
        UNPOISON_BODY(f);
        return f;
    }
    return block_get_slow(c);
}

static BR__NOINLINE void block_put_slow(fcache *c, br_future *f) {
    if (c->state == 2) { /* this thread's cache is gone: straight back to malloc */
        UNPOISON_BODY(f);
        free(f);
        return;
    }
    cache_register(c);
    f->cache_next = c->cur;
    c->cur = f;
    c->ncur++;
}

static inline void block_put(br_future *f) {
    fcache *c = &tcache;
    POISON_BODY(f);
    if (BR__UNLIKELY(c->state != 1)) {
        block_put_slow(c, f);
        return;
    }
    f->cache_next = c->cur;
    c->cur = f;
    if (BR__UNLIKELY(++c->ncur == BATCH)) {
        br_future *old = c->full;
        c->full = c->cur;
        c->cur = NULL;
        c->ncur = 0;
        global_put(old, BATCH);
    }
}

/* --- allocation and freeing ---------------------------------------------------------- */

static br_future *future_alloc(void) {
    br_future *f = block_get();
    if (BR__UNLIKELY(f == NULL))
        return NULL;
    f->magic = BR__FUTURE_MAGIC;
    atomic_init(&f->st, BR__FS_PENDING);
    atomic_init(&f->refs, 1);
    memset(&f->wq, 0, sizeof f->wq);
    f->wat_head = f->wat_tail = NULL;
    f->cb_head = f->cb_tail = NULL;
    f->cb0_used = false;
    f->rkind = BR__R_NONE;
    f->code = 0;
    f->rlen = 0;
    f->msg = NULL;
    memset(&f->task, 0, offsetof(br_task, argbuf));
    f->task.deadline = BR_FOREVER;
    return f;
}

br_future *br__future_alloc_task(void) { return future_alloc(); }

br_task *br__future_task(br_future *f) { return &f->task; }

br_future *br__task_future(br_task *t) {
    return (br_future *)(void *)((char *)t - offsetof(br_future, task));
}

void br__result_clear(br_future *f) {
    switch (f->rkind) {
    case BR__R_HEAP:
        free(f->r.heap);
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

void br__msg_clear(br_future *f) {
    if (f->msg && f->msg != f->mbuf)
        free(f->msg);
    f->msg = NULL;
}

void br__future_free(br_future *f) {
    br__result_clear(f);
    br__msg_clear(f);
    /* A future released while still pending drops its callbacks unrun. */
    for (struct br__cb *cb = f->cb_head; cb;) {
        struct br__cb *next = cb->next;
        if (cb != &f->cb0)
            free(cb);
        cb = next;
    }
    if (f->task.argheap)
        free(f->task.argheap);
    f->magic = BR__FUTURE_DEAD;
    block_put(f);
}

/* --- references ---------------------------------------------------------------------- */

int br_future_new(br_future **out) {
    if (out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_future_new: out is NULL");
    br_future *f = future_alloc();
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

/* --- notification --------------------------------------------------------------------- */

void br__future_notify(br_future *f, bool temp_ref) {
    if (temp_ref)
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    br__ilock_lock(&f->wq.lock);
    for (br__watcher *w = f->wat_head; w;) {
        br__watcher *next = w->next;
        w->next = w->prev = NULL;
        w->linked = 0;
        w->fn(w, f);
        w = next;
    }
    f->wat_head = f->wat_tail = NULL;
    struct br__cb *cbs = f->cb_head;
    f->cb_head = f->cb_tail = NULL;
    br__waiter *chain = NULL, **tail = &chain;
    while (f->wq.head) {
        br__waiter *w = br__wq_pop(&f->wq);
        *tail = w;
        tail = &w->next;
    }
    br__ilock_unlock(&f->wq.lock);
    while (chain) {
        br__waiter *next = chain->next; /* before the wake: core rule 1 */
        br__waiter_wake(chain);
        chain = next;
    }
    while (cbs) {
        struct br__cb *next = cbs->next;
        br_done_fn fn = cbs->fn;
        void *arg = cbs->arg;
        if (cbs != &f->cb0)
            free(cbs);
        fn(f, arg);
        cbs = next;
    }
    if (temp_ref)
        br__future_unref(f);
}

/* Takes f's lock and announces a listener. Returns true with the lock held if f is not
 * done (link, then unlock); false, with the lock released, if it is done. */
static bool listen_lock(br_future *f) {
    br__ilock_lock(&f->wq.lock);
    uint32_t old = atomic_fetch_or_explicit(&f->st, BR__FF_LISTENERS, memory_order_acq_rel);
    if (br__fs_done(old)) {
        br__ilock_unlock(&f->wq.lock);
        return false;
    }
    return true;
}

bool br__future_watch(br_future *f, br__watcher *w) {
    if (br__fs_done(atomic_load_explicit(&f->st, memory_order_acquire)))
        return false;
    if (!listen_lock(f))
        return false;
    w->next = NULL;
    w->prev = f->wat_tail;
    if (f->wat_tail)
        f->wat_tail->next = w;
    else
        f->wat_head = w;
    f->wat_tail = w;
    w->linked = 1;
    br__ilock_unlock(&f->wq.lock);
    return true;
}

bool br__future_unwatch(br_future *f, br__watcher *w) {
    br__ilock_lock(&f->wq.lock);
    bool was = w->linked != 0;
    if (was) {
        if (w->prev)
            w->prev->next = w->next;
        else
            f->wat_head = w->next;
        if (w->next)
            w->next->prev = w->prev;
        else
            f->wat_tail = w->prev;
        w->next = w->prev = NULL;
        w->linked = 0;
    }
    br__ilock_unlock(&f->wq.lock);
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
    br__ilock_lock(&f->wq.lock);
    if (!f->cb0_used) {
        f->cb0_used = true;
        node = &f->cb0;
    } else {
        br__ilock_unlock(&f->wq.lock);
        node = malloc(sizeof *node);
        if (node == NULL)
            return BR_ENOMEM;
        br__ilock_lock(&f->wq.lock);
    }
    uint32_t old = atomic_fetch_or_explicit(&f->st, BR__FF_LISTENERS, memory_order_acq_rel);
    if (br__fs_done(old)) {
        br__ilock_unlock(&f->wq.lock);
        if (node != &f->cb0)
            free(node);
        fn(f, arg);
        return 0;
    }
    node->fn = fn;
    node->arg = arg;
    node->next = NULL;
    if (f->cb_tail)
        f->cb_tail->next = node;
    else
        f->cb_head = node;
    f->cb_tail = node;
    br__ilock_unlock(&f->wq.lock);
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
        heap = malloc(len);
        if (heap == NULL)
            return BR_ENOMEM;
        memcpy(heap, data, len);
    }
    int rc = claim(f);
    if (rc != 0) {
        free(heap);
        return rc;
    }
    br__result_clear(f);
    br__msg_clear(f);
    if (heap) {
        f->rkind = BR__R_HEAP;
        f->r.heap = heap;
    } else {
        f->rkind = BR__R_INLINE;
        if (len)
            memcpy(f->r.buf, data, len);
    }
    f->rlen = len;
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
    br__msg_clear(f);
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
        heap = malloc(mlen + 1);
        if (heap == NULL)
            return BR_ENOMEM;
        memcpy(heap, msg, mlen + 1);
    }
    int rc = claim(f);
    if (rc != 0) {
        free(heap);
        return rc;
    }
    br__result_clear(f);
    br__msg_clear(f);
    if (heap) {
        f->msg = heap;
    } else if (msg) {
        memcpy(f->mbuf, msg, mlen + 1);
        f->msg = f->mbuf;
    }
    f->code = code;
    publish(f, BR__FS_FINISHED);
    return 0;
}

/* --- waiting and reading ------------------------------------------------------------------ */

/* Waits until done. The waiter is linked under f's lock and woken by
 * br__future_notify, which pops every waiter; a waiter that times out unlinks itself
 * (core rule 2). */
static int wait_done(br_future *f, int64_t deadline) {
    if (BR__LIKELY(br__fs_done(load_st(f))))
        return 0;
    if (deadline <= 0) /* BR_NOWAIT, or a time before boot */
        return BR_ETIMEDOUT;
    br__waiter w;
    br__waiter_init(&w);
    if (!listen_lock(f))
        return 0;
    br__wq_push(&f->wq, &w);
    br__ilock_unlock(&f->wq.lock);
    /* Woken only by notify, so 0 means done. */
    return br__waiter_park_or_cancel(&w, &f->wq, deadline, NULL, NULL);
}

int br_future_wait(br_future *f, int64_t deadline) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_wait: not a live future");
    return wait_done(f, deadline);
}

/* Waits, then returns 0 if f finished successfully, or its failure code, or
 * BR_ECANCELED. */
static int wait_outcome(br_future *f, int64_t deadline) {
    int rc = wait_done(f, deadline);
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
        d = f->r.heap;
        l = f->rlen;
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
        return BR__MISUSE(BR_EINVAL, "br_future_result_i64: the result isn't 8 bytes");
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
        return BR__MISUSE(BR_EINVAL, "the future's result isn't a pointer");
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
        return BR__MISUSE(BR_EINVAL, "br_future_result_str: the result isn't a string");
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
    int rc = wait_done(f, deadline);
    if (rc != 0)
        return rc;
    if ((load_st(f) & BR__FS_MASK) == BR__FS_CANCELLED)
        return BR_ECANCELED;
    if (code)
        *code = f->code;
    if (msg)
        *msg = f->code < 0 ? f->msg : NULL;
    return 0;
}
