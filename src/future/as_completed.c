/* br_as_completed: concurrent.futures.as_completed as an iterator.
 *
 * Design notes: the watcher protocol, for a whole iteration.
 *
 * The iterator holds one node per distinct future (one allocation, made by
 * br_as_completed_new) and a reference on each future. Futures already done at
 * creation go straight onto the ready list, in input order; each of the others gets
 * the node's watcher (future/for_executors.h) once, for the iterator's whole life, never
 * once per next() call (the cost Python's as_completed and wait pay again and again:
 * cpython#64496). A registration that finds its future done meanwhile appends the node
 * itself.
 *
 * The ready list, the count yielded, the deadline and the consumers blocked in next()
 * are guarded by it->wq.lock. A watcher's fn runs on the completing thread under the
 * future's lock and takes it->wq.lock inside it (lock order: future, then iterator;
 * the iterator never takes a future's lock while holding its own). It appends its node
 * and pops one blocked consumer, which it wakes after dropping the lock. A consumer
 * whose park times out follows core rule 2 and then looks at the list once more. The
 * consumer that takes the last future wakes every other blocked one, since they are
 * at BR_EOF now and no completion is left to wake them.
 *
 * Cancellation (a coroutine's, core/lib.h). A consumer whose park is cancelled while
 * it is still linked unlinks itself (core rule 2) and returns BR_ECANCELED without
 * looking at the list again: it has consumed no wake-up (each on_done pops one
 * consumer, and it wasn't popped), so every ready node stays on the list for a later
 * next() and whichever consumer on_done did pop. A consumer that was popped first
 * keeps the wake (the cancel is posted again) and loops back as after any wake: it
 * takes a ready node if there is one, and otherwise parks again, and that park reports
 * the cancel at once. Either way nblocked drops on the way out as on every return. A
 * next() that finds a node ready, or the iteration over, doesn't park and leaves a
 * pending cancel pending.
 *
 * br_as_completed_free unwatches every node first. An unwatch waits for a running fn
 * (it takes the future's lock), so once they are all done no fn can touch the
 * iterator, and it can release the references and free itself.
 *
 * Consumers blocked in next() can't be made to leave (who would tell them their
 * iterator is gone?), so free refuses while there are any, as br_queue_free does:
 * nblocked counts the consumers past next()'s fast path, from before their first park
 * until after their last unlock, and its (release) decrement is each one's last access
 * to the iterator; free reads it (acquire) and answers BR_EBUSY unless it is 0. A call
 * that begins after free has begun is a use after free, as with any object.
 */
#include "future/private.h"

#include <string.h>

#define AC_MAGIC 0x61636d70u /* "acmp" */
#define AC_DEAD 0xdeadac00u

typedef struct acnode {
    br__watcher w; /* w.arg: the iterator */
    br_future *f;
    size_t index; /* where f first appears in the caller's array */
    struct acnode *next; /* on the ready list */
    bool watched; /* the watcher was linked (it may have fired since) */
} acnode;

struct br_as_completed {
    uint32_t magic;
    size_t n;       /* distinct futures */
    size_t yielded; /* under wq.lock */
    int64_t deadline; /* under wq.lock */
    br__wq wq;      /* consumers blocked in next(); the lock guards the fields here */
    _Atomic size_t nblocked; /* consumers in next() past the fast path (free: BR_EBUSY) */
    acnode *ready_head, *ready_tail;
    acnode nodes[];
};

/* Caller holds it->wq.lock. */
static void push_ready(br_as_completed *it, acnode *nd) {
    nd->next = NULL;
    if (it->ready_tail)
        it->ready_tail->next = nd;
    else
        it->ready_head = nd;
    it->ready_tail = nd;
}

static void on_done(br__watcher *w, br_future *f) {
    (void)f;
    acnode *nd = (acnode *)(void *)w; /* w is the first member */
    br_as_completed *it = w->arg;
    br__ilock_lock(&it->wq.lock);
    push_ready(it, nd);
    br__waiter *consumer = br__wq_pop(&it->wq);
    br__ilock_unlock(&it->wq.lock);
    if (consumer)
        br__waiter_wake(consumer);
}

int br_as_completed_new(br_as_completed **out, br_future *const fs[], size_t n,
                        int64_t deadline) {
    if (out == NULL || (fs == NULL && n > 0))
        return BR__MISUSE(BR_EINVAL, "br_as_completed_new: bad arguments");
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (!br__future_ok(fs[i]))
            return BR__MISUSE(BR_EINVAL, "br_as_completed_new: not a live future");
    unsigned char *dup = br__malloc(n ? n : 1);
    if (dup == NULL)
        return BR_ENOMEM;
    if (br__future_dedupe(fs, n, dup) != 0) {
        br__free(dup);
        return BR_ENOMEM;
    }
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++)
        distinct += !dup[i];
    br_as_completed *it = br__calloc(1, sizeof *it + distinct * sizeof(acnode));
    if (it == NULL) {
        br__free(dup);
        return BR_ENOMEM;
    }
    it->magic = AC_MAGIC;
    it->n = distinct;
    it->deadline = deadline;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (dup[i])
            continue;
        acnode *nd = &it->nodes[k++];
        nd->f = fs[i];
        nd->index = i;
        nd->w.fn = on_done;
        nd->w.arg = it;
        br_future_retain(fs[i]);
    }
    br__free(dup);
    /* Already done first, in input order; then watch the rest. */
    for (size_t i = 0; i < distinct; i++) {
        acnode *nd = &it->nodes[i];
        if (br__fs_done(atomic_load_explicit(&nd->f->st, memory_order_acquire))) {
            br__ilock_lock(&it->wq.lock);
            push_ready(it, nd);
            br__ilock_unlock(&it->wq.lock);
            nd->w.data = 1; /* done at creation: not watched */
        }
    }
    for (size_t i = 0; i < distinct; i++) {
        acnode *nd = &it->nodes[i];
        if (nd->w.data == 1)
            continue;
        nd->watched = br__future_watch(nd->f, &nd->w);
        if (!nd->watched) {
            br__ilock_lock(&it->wq.lock);
            push_ready(it, nd);
            br__ilock_unlock(&it->wq.lock);
        }
    }
    *out = it;
    return 0;
}

int br_as_completed_next(br_as_completed *it, br_future **f) {
    return br_as_completed_next_index(it, f, NULL);
}

int br_as_completed_next_index(br_as_completed *it, br_future **f, size_t *index) {
    if (f)
        *f = NULL;
    if (it == NULL || it->magic != AC_MAGIC || f == NULL)
        return BR__MISUSE(BR_EINVAL, "br_as_completed_next: bad iterator or f");
    bool blocked = false; /* counted in it->nblocked: its decrement is our last access */
    int rc;
    br__ilock_lock(&it->wq.lock);
    for (;;) {
        acnode *nd = it->ready_head;
        if (nd) {
            it->ready_head = nd->next;
            if (it->ready_head == NULL)
                it->ready_tail = NULL;
            br__waiter *rest = NULL;
            if (++it->yielded == it->n) /* the last one: the others are at EOF now */
                rest = br__wq_pop_all(&it->wq, 0);
            br__ilock_unlock(&it->wq.lock);
            br__wake_chain(rest);
            *f = nd->f;
            if (index)
                *index = nd->index;
            rc = 0;
            break;
        }
        if (it->yielded == it->n) {
            br__ilock_unlock(&it->wq.lock);
            rc = BR_EOF;
            break;
        }
        int64_t dl = it->deadline;
        if (br__deadline_passed(dl)) {
            br__ilock_unlock(&it->wq.lock);
            rc = BR_ETIMEDOUT;
            break;
        }
        if (!blocked) {
            atomic_fetch_add_explicit(&it->nblocked, 1, memory_order_relaxed);
            blocked = true;
        }
        BR__PARKED(br__waiter, w);
        br__waiter_init(w);
        br__wq_push(&it->wq, w);
        br__ilock_unlock(&it->wq.lock);
        /* Woken by on_done (one per ready node) or by set_deadline; a timeout loops
         * back to look at the list and the (maybe moved) deadline once more. A cancel
         * leaves (the notes); a wake that won over one loops back the same way, with
         * the cancel pending for the next park. */
        if (br__waiter_park_or_leave(w, &it->wq, dl, NULL, NULL) == BR_ECANCELED) {
            rc = BR_ECANCELED;
            break;
        }
        br__ilock_lock(&it->wq.lock);
    }
    if (blocked) /* release: everything above happens before a free that reads 0 */
        atomic_fetch_sub_explicit(&it->nblocked, 1, memory_order_release);
    return rc;
}

int br_as_completed_set_deadline(br_as_completed *it, int64_t deadline) {
    if (it == NULL || it->magic != AC_MAGIC)
        return BR__MISUSE(BR_EINVAL, "br_as_completed_set_deadline: bad iterator");
    br__ilock_lock(&it->wq.lock);
    it->deadline = deadline;
    br__ilock_unlock(&it->wq.lock);
    br__wq_wake(&it->wq, -1, 0); /* blocked consumers re-read it */
    return 0;
}

int br_as_completed_free(br_as_completed *it) {
    if (it == NULL || it->magic != AC_MAGIC)
        return BR__MISUSE(BR_EINVAL, "br_as_completed_free: bad iterator");
    /* Acquire: pairs with the release decrement that is each blocked consumer's last
     * access, so when it reads 0 they are all gone. */
    if (atomic_load_explicit(&it->nblocked, memory_order_acquire) != 0)
        return BR_EBUSY;
    for (size_t i = 0; i < it->n; i++)
        if (it->nodes[i].watched)
            br__future_unwatch(it->nodes[i].f, &it->nodes[i].w);
    for (size_t i = 0; i < it->n; i++)
        br_future_release(it->nodes[i].f);
    it->magic = AC_DEAD;
    br__free_poisoned(it, sizeof *it + it->n * sizeof it->nodes[0]);
    return 0;
}

size_t br__as_completed_blocked(br_as_completed *it) {
    return atomic_load_explicit(&it->nblocked, memory_order_acquire);
}
