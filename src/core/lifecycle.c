/* One lifecycle: the hooks every layer runs around fork() and at exit, in one declared
 * order (core/lib.h, "Lifecycle").
 *
 * Design notes.
 *
 * Each layer describes its hooks in one static br__hooks with its BR__ORDER_* and
 * registers it the first time it is used. Registration keeps the list sorted by order,
 * so when the hooks run does not depend on which layer happened to be used first, as
 * it did with one pthread_atfork and one atexit per layer (they run in registration
 * order, LIFO or FIFO).
 *
 *   prepare (in the parent, before fork)  higher layers first: a layer may call into
 *                                         the layers below it, so it takes its locks
 *                                         while theirs are still free
 *   parent, child (after fork)            lower layers first: the reverse
 *   at_exit (exit(), return from main)    higher layers first: pools shut down (and
 *                                         run their queued tasks) before the thread
 *                                         layer waits for non-daemon threads, as
 *                                         Python's concurrent.futures does
 *
 * The process-wide handlers are installed once. pthread_atfork when the library is
 * loaded (a constructor; the first registration does it if that didn't run): were it
 * installed by the first registration, a fork in another thread at that moment would
 * give the child a registry locked forever, with no handler to release it. atexit at
 * the first registration of hooks with an at_exit part, so that an application's
 * atexit handlers registered before braid was first used run after braid's, as atexit
 * promises.
 *
 * Locking: `lock` guards the list. prepare takes it and holds it across fork(), so a
 * registration can't interleave with a fork; parent and child release it (in the child
 * the forking thread, its one thread, holds it: re-initialising a locked mutex instead
 * is undefined, and ThreadSanitizer reports the next lock, from a thread the child
 * started, as a double lock). Exit runs the hooks from a snapshot taken under the
 * lock, without it, because an exit hook may run tasks that use a layer for the first
 * time (and register). Fork hooks must not register hooks (they run under the lock).
 */
#include "core/lib.h"

#include <pthread.h>
#include <stdlib.h>

enum { MAX_HOOKS = 32 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static br__hooks *head; /* sorted by order, ascending */
static size_t count;
static bool fork_installed, exit_installed;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void run_prepare(void);
static void run_parent(void);
static void run_child(void);
static void run_exit(void);

static void install_fork(void) {
    fork_installed = pthread_atfork(run_prepare, run_parent, run_child) == 0;
}

#if defined(__GNUC__)
__attribute__((constructor)) static void lifecycle_load(void) {
    pthread_once(&fork_once, install_fork);
}
#endif

int br__hooks_register(br__hooks *h) {
    pthread_once(&fork_once, install_fork); /* before the lock: see the notes */
    pthread_mutex_lock(&lock);
    if (h->registered_) {
        pthread_mutex_unlock(&lock);
        return 0;
    }
    bool forks = h->prepare || h->parent || h->child;
    if (count == MAX_HOOKS || (forks && !fork_installed)) {
        pthread_mutex_unlock(&lock);
        return BR_ENOMEM;
    }
    if (h->at_exit && !exit_installed) {
        if (atexit(run_exit) != 0) {
            pthread_mutex_unlock(&lock);
            return BR_ENOMEM;
        }
        exit_installed = true;
    }
    /* Sorted insert; equal orders keep registration order. */
    br__hooks **pp = &head;
    while (*pp && (*pp)->order <= h->order)
        pp = &(*pp)->next_;
    h->next_ = *pp;
    *pp = h;
    h->registered_ = true;
    count++;
    pthread_mutex_unlock(&lock);
    return 0;
}

/* The hooks, lowest order first, into out (room for MAX_HOOKS). Caller holds lock. */
static size_t snapshot(br__hooks **out) {
    size_t n = 0;
    for (br__hooks *h = head; h; h = h->next_)
        out[n++] = h;
    return n;
}

static void run_prepare(void) {
    pthread_mutex_lock(&lock); /* held across fork(): released in parent, reset in child */
    br__hooks *hs[MAX_HOOKS];
    size_t n = snapshot(hs);
    while (n-- > 0)
        if (hs[n]->prepare)
            hs[n]->prepare();
}

static void run_parent(void) {
    for (br__hooks *h = head; h; h = h->next_)
        if (h->parent)
            h->parent();
    pthread_mutex_unlock(&lock);
}

static void run_child(void) {
    for (br__hooks *h = head; h; h = h->next_)
        if (h->child)
            h->child();
    pthread_mutex_unlock(&lock); /* ours at the fork: the child's one thread */
}

static void run_exit(void) {
    br__hooks *hs[MAX_HOOKS];
    pthread_mutex_lock(&lock);
    size_t n = snapshot(hs);
    pthread_mutex_unlock(&lock);
    while (n-- > 0)
        if (hs[n]->at_exit)
            hs[n]->at_exit();
}
