/* br_process (braid/process.h): Python's multiprocessing.Process on br__child_start.
 *
 * Design notes (the protocol a change must keep):
 *
 *   - A handle holds the child (process/start.h: pid, pidfd, a reference on the exit
 *     future the watcher finishes). Every question about the child is a question about
 *     that future: alive = not done; exitcode = its int64 result; join = br_future_wait.
 *     Nothing here waits for a child any other way, so a join is an ordinary waiter park
 *     (a coroutine will suspend in it) and br_wait mixes process exits with any future.
 *   - Signals go through the pidfd (br__child_signal), never kill(pid).
 *   - The registry: every handle not yet freed is linked in `live` (under `reg_lock`),
 *     so that at exit (the lifecycle's at_exit, BR__ORDER_PROCESS) braid terminates the
 *     daemon children still running and then waits for every child still running, as
 *     Python's exit handler does. br_process_free refuses (BR_EBUSY) while the child
 *     runs, so a running child always has a linked handle. The at_exit walk copies the
 *     futures (retained) under the lock and waits outside it.
 *   - In a forked child the registry is the parent's: the child hook forgets it (the
 *     handles are plain memory there, leaked on purpose: the parent owns them). The same
 *     at_exit routine is the child's exit hook (br__child_set_exit_hook), so a child ends
 *     its own children before it exits, under every start method.
 *   - A handle records the pid of the process that started it: joins, signals and
 *     is_alive in another process (a forked child holding a copy) get BR_ECHILD/false
 *     instead of waiting for a future nobody will finish there.
 */
#include "braid/process.h"

#include "process/start.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PROCESS_MAGIC 0x50524f43u /* "PROC" */

struct br_process {
    uint32_t magic;
    bool daemon;
    bool linked;             /* in the registry */
    pid_t owner;             /* getpid() of the starter */
    br__child child;
    struct br_process *next, *prev; /* the registry, under reg_lock */
    char name[256];
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static br_process *live;
static _Atomic unsigned long counter;

static void at_exit_hook(void);
static void prepare_hook(void);
static void parent_hook(void);
static void child_hook(void);
static br__hooks hooks = {.order = BR__ORDER_PROCESS, .name = "process.process",
                          .prepare = prepare_hook, .parent = parent_hook,
                          .child = child_hook, .at_exit = at_exit_hook};

static void link_live(br_process *p) {
    pthread_mutex_lock(&reg_lock);
    p->prev = NULL;
    p->next = live;
    if (live)
        live->prev = p;
    live = p;
    p->linked = true;
    pthread_mutex_unlock(&reg_lock);
}

static void unlink_live(br_process *p) {
    pthread_mutex_lock(&reg_lock);
    if (!p->linked) {
        pthread_mutex_unlock(&reg_lock);
        return;
    }
    p->linked = false;
    if (p->prev)
        p->prev->next = p->next;
    else
        live = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->next = p->prev = NULL;
    pthread_mutex_unlock(&reg_lock);
}

/* Terminates the daemon children still running, then waits for every child still
 * running: at exit, and in a child before it exits. */
static void end_children(void) {
    enum { BATCH = 64 };
    for (;;) {
        br_future *fs[BATCH];
        size_t n = 0;
        pthread_mutex_lock(&reg_lock);
        for (br_process *p = live; p && n < BATCH; p = p->next) {
            if (p->owner != getpid() || !p->child.exit || br_future_done(p->child.exit))
                continue;
            if (p->daemon)
                br__child_signal(&p->child, SIGTERM);
            br_future_retain(p->child.exit);
            fs[n++] = p->child.exit;
        }
        pthread_mutex_unlock(&reg_lock);
        if (n == 0)
            return;
        for (size_t i = 0; i < n; i++) {
            br_future_wait(fs[i], BR_FOREVER);
            br_future_release(fs[i]);
        }
    }
}

static void at_exit_hook(void) { end_children(); }

/* The registry is locked across fork, so the child's copy of the list is whole. */
static void prepare_hook(void) { pthread_mutex_lock(&reg_lock); }
static void parent_hook(void) { pthread_mutex_unlock(&reg_lock); }

static void child_hook(void) {
    for (br_process *p = live, *next; p; p = next) {
        next = p->next;
        p->next = p->prev = NULL;
        p->linked = false;
    }
    live = NULL;
    pthread_mutex_unlock(&reg_lock); /* taken by prepare_hook on this thread */
}

static bool valid(const br_process *p) { return p && p->magic == PROCESS_MAGIC; }

int br_process_start(br_process **out, br_task_fn fn, const void *arg, size_t len,
                     const br_process_opts *opts) {
    if (!out || !fn || (len > 0 && !arg))
        return BR__MISUSE(BR_EINVAL, "br_process_start: out or fn NULL, or len > 0 with "
                                     "arg NULL");
    br_process_opts o = opts ? *opts : (br_process_opts){0};
    if (br__hooks_register(&hooks) != 0)
        return BR_ENOMEM;
    br__child_set_exit_hook(end_children);
    br_process *p = br__calloc(1, sizeof *p);
    if (!p)
        return BR_ENOMEM;
    p->magic = PROCESS_MAGIC;
    p->daemon = o.daemon;
    p->owner = getpid();
    if (o.name)
        snprintf(p->name, sizeof p->name, "%s", o.name);
    else
        snprintf(p->name, sizeof p->name, "Process-%lu", atomic_fetch_add(&counter, 1) + 1);
    br__child_spec spec = {.fn = fn, .arg = arg, .len = len, .name = p->name,
                           .daemon = o.daemon, .method = (int)o.start_method,
                           .fds = o.fds, .nfds = o.nfds};
    char why[256] = "";
    int rc = br__child_start(&spec, &p->child, why, sizeof why);
    if (rc != 0) {
        br__free(p);
        if (rc == BR_EINVAL) {
            char msg[320];
            snprintf(msg, sizeof msg, "br_process_start: %s", why);
            return BR__MISUSE(BR_EINVAL, msg);
        }
        return rc;
    }
    link_live(p);
    *out = p;
    return 0;
}

int br_process_join(br_process *p, int64_t deadline) {
    if (!valid(p))
        return BR__MISUSE(BR_EINVAL, "br_process_join: not a process");
    if (p->owner != getpid())
        return BR_ECHILD;
    return br_future_wait(p->child.exit, deadline);
}

br_future *br_process_future(br_process *p) { return valid(p) ? p->child.exit : NULL; }

bool br_process_is_alive(const br_process *p) {
    if (!valid(p) || p->owner != getpid())
        return false;
    return !br_future_done(p->child.exit);
}

int br_process_exitcode(const br_process *p, int *code) {
    if (!valid(p) || !code)
        return BR__MISUSE(BR_EINVAL, "br_process_exitcode: not a process, or code NULL");
    if (!br_future_done(p->child.exit))
        return BR_ESTATE;
    int64_t rc = 0;
    int r = br_future_result_i64(p->child.exit, BR_NOWAIT, &rc);
    if (r != 0)
        return r; /* BR_ECHILD: reaped outside braid (process/watch.h) */
    *code = (int)rc;
    return 0;
}

int br_process_pid(const br_process *p) { return valid(p) ? (int)p->child.pid : -1; }
const char *br_process_name(const br_process *p) { return valid(p) ? p->name : NULL; }
bool br_process_is_daemon(const br_process *p) { return valid(p) && p->daemon; }

static int send(br_process *p, int sig, const char *what) {
    if (!valid(p))
        return BR__MISUSE(BR_EINVAL, what);
    if (p->owner != getpid())
        return BR_ECHILD;
    if (br_future_done(p->child.exit))
        return 0;
    int rc = br__child_signal(&p->child, sig);
    return rc == BR_ESRCH ? 0 : rc;
}

int br_process_terminate(br_process *p) {
    return send(p, SIGTERM, "br_process_terminate: not a process");
}

int br_process_kill(br_process *p) {
    return send(p, SIGKILL, "br_process_kill: not a process");
}

int br_process_free(br_process *p) {
    if (!valid(p))
        return BR__MISUSE(BR_EINVAL, "br_process_free: not a process");
    if (p->owner == getpid() && !br_future_done(p->child.exit))
        return BR_EBUSY;
    unlink_live(p);
    br__child_close(&p->child);
    br__free_poisoned(p, sizeof *p);
    return 0;
}
