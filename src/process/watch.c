/* The child watcher (process/watch.h): one thread that waits for every child braid
 * started and turns each one's end into a finished br_future.
 *
 * Design notes.
 *
 * One thread, started at the first br__child_watch, blocked in epoll_wait over the
 * pidfds of the children it watches. A pidfd becomes readable when its child ends; the
 * thread then reaps the child (waitpid on that pid, WNOHANG: it is known to have
 * ended), drops it from the epoll set, and finishes the child's future with its
 * returncode. The future is the only thing a joiner waits on, so a join is an ordinary
 * waiter park with a deadline, and a coroutine will await a process the same way.
 *
 * Registration needs no wake-up: epoll_ctl from any thread adds to the set the watcher
 * is blocked on, and a child that ended before it was added is reported at once (a
 * pidfd stays readable). Where the kernel has no pidfds (Linux < 5.3) an entry is
 * polled: the watcher's epoll_wait then times out every POLL_MS and tries waitpid on
 * each polled entry; an eventfd in the set wakes it when the first such entry arrives.
 *
 * Ownership: an entry holds the watcher's reference on the future and its duplicate of
 * the pidfd; both go when the child is reaped. `lock` guards the entry list (the
 * watcher walks it only for polled entries and for the count; pidfd entries are found
 * through epoll's data pointer).
 *
 * fork: the child has no watcher thread and none of these children are its own. The
 * child hook forgets the list and the epoll descriptor (freeing the entries and
 * releasing their futures, which are plain memory in the child) so that a child that
 * starts children of its own gets a fresh watcher.
 *
 * Forkserver children (br__child_watch_remote) are another kind of entry: the server
 * forked them, so it reaps them and writes each one's wait status (an int32) on a
 * socket whose other end this entry holds; the watcher waits on that socket instead of
 * a pidfd. EOF without a status means the server died: the entry then waits on the
 * child's pidfd (readable once the child ends, child of ours or not) and fails the
 * future with BR_EBROKEN; without a pidfd it fails at once.
 *
 * Descriptor waits (br__fds_wait, for a caller that may be a coroutine: subprocess
 * pipes). A wait is an `fdw` record on its own list, its descriptors added one-shot
 * with the record's id (tagged with FDW_TAG, which no entry pointer has) as epoll data,
 * never a pointer: a waiter that gives up (deadline, cancel) unlinks and frees its
 * record under `lock`, and an event the watcher already took from epoll_wait then finds
 * no record by that id and is dropped. Whichever of the two unlinks the record removes
 * its descriptors from the set; the watcher then finishes the record's future.
 *
 * The thread runs until the process ends; it holds no lock while it waits, so exit()
 * and _exit() never wait for it.
 */
#include "process/watch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum { POLL_MS = 10, MAX_EVENTS = 32 };

typedef struct entry {
    struct entry *next, *prev;
    pid_t pid;
    int pidfd;      /* the watcher's duplicate, or -1: polled */
    br_future *fut; /* the watcher's reference */
    /* A forkserver child (br__child_watch_remote): not ours to reap. The status
     * socket (the watcher's), or -1 once it gave EOF without a status (the server
     * died): the entry then waits on pidfd and fails the future with BR_EBROKEN. */
    bool remote;
    int sock;
} entry;

static int start_locked(void);

/* A descriptor wait (br__fds_wait), under `lock`. */
typedef struct fdw {
    struct fdw *next, *prev;
    uint64_t id; /* FDW_TAG | a sequence number: the epoll data of its descriptors */
    int fds[BR__FDS_WAIT_MAX];
    int n;
    br_future *fut; /* the record's reference */
} fdw;
#define FDW_TAG (UINT64_C(1) << 63)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static fdw *fdws;
static uint64_t fdw_seq;
static entry *head;
static size_t count, npolled;
static int epfd = -1, evfd = -1;
static bool started;
/* The watcher thread's kernel id: 0 before it starts, -1 from its start until it runs. */
static _Atomic int watcher_tid;
static uint64_t generation; /* bumped at fork in the child: a stale watcher stops */

static void child_hook(void);
static br__hooks hooks = {.order = BR__ORDER_PROCESS, .name = "process.watch",
                          .child = child_hook};

static void unlink_entry(entry *e) {
    if (e->prev)
        e->prev->next = e->next;
    else
        head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    count--;
    if (e->pidfd < 0 && !e->remote)
        npolled--;
}

/* The child's returncode from a wait status, as Python's Popen.returncode. */
static int64_t returncode(int status) {
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return -(int64_t)WTERMSIG(status);
    return 0;
}

/* Reaps e's child if it has ended. true if it was (e is then unlinked and freed). */
static bool try_reap(entry *e) {
    int status = 0;
    pid_t r;
    do
        r = waitpid(e->pid, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return false;
    pthread_mutex_lock(&lock);
    unlink_entry(e);
    pthread_mutex_unlock(&lock);
    if (e->pidfd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, e->pidfd, NULL);
        close(e->pidfd);
    }
    if (r == e->pid)
        br_future_set_result_i64(e->fut, returncode(status));
    else /* somebody else reaped it (waitpid(-1), SIGCHLD ignored): see watch.h */
        br_future_set_exception(e->fut, BR_ECHILD,
                                "the child was reaped outside braid (waitpid(-1) or "
                                "SIGCHLD ignored?)");
    br_future_release(e->fut);
    br__free(e);
    return true;
}

/* Unlinks and frees a remote entry, finishing its future: with the returncode from a
 * wait status (lost false), or with BR_EBROKEN (lost true). */
static void remote_finish(entry *e, int status, bool lost) {
    pthread_mutex_lock(&lock);
    unlink_entry(e);
    pthread_mutex_unlock(&lock);
    if (e->sock >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, e->sock, NULL);
        close(e->sock);
    }
    if (e->pidfd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, e->pidfd, NULL);
        close(e->pidfd);
    }
    if (lost)
        br_future_set_exception(e->fut, BR_EBROKEN,
                                "the forkserver ended before it reported the child's "
                                "exit status");
    else
        br_future_set_result_i64(e->fut, returncode(status));
    br_future_release(e->fut);
    br__free(e);
}

/* An event on a remote entry: its status arrived, its server died, or (after that) the
 * child itself ended. */
static void remote_event(entry *e) {
    if (e->sock < 0) { /* the pidfd: the child has ended, its status is lost */
        remote_finish(e, 0, true);
        return;
    }
    int32_t status;
    ssize_t r;
    do
        r = recv(e->sock, &status, sizeof status, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (r == (ssize_t)sizeof status) {
        remote_finish(e, (int)status, false);
        return;
    }
    /* EOF (or garbage): the server is gone. Wait for the child's own end, if a pidfd
     * can tell it, so that a joiner never sees a live child as ended. */
    epoll_ctl(epfd, EPOLL_CTL_DEL, e->sock, NULL);
    close(e->sock);
    e->sock = -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = e};
    if (e->pidfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, e->pidfd, &ev) != 0)
        remote_finish(e, 0, true);
}

/* Under `lock`: unlinks w and takes its descriptors out of the set. */
static void fdw_unlink(fdw *w) {
    if (w->prev)
        w->prev->next = w->next;
    else
        fdws = w->next;
    if (w->next)
        w->next->prev = w->prev;
    for (int i = 0; i < w->n; i++)
        epoll_ctl(epfd, EPOLL_CTL_DEL, w->fds[i], NULL);
}

/* A descriptor of wait `id` is ready: finish its future, unless the waiter gave up. */
static void fdw_event(uint64_t id) {
    pthread_mutex_lock(&lock);
    fdw *w = fdws;
    while (w && w->id != id)
        w = w->next;
    if (w)
        fdw_unlink(w);
    pthread_mutex_unlock(&lock);
    if (!w)
        return;
    br_future_set_result_i64(w->fut, 0);
    br_future_release(w->fut);
    br__free(w);
}

int br__fds_wait(const int *fds, const uint32_t *events, int n, int64_t deadline) {
    if (!fds || !events || n <= 0 || n > BR__FDS_WAIT_MAX)
        return BR_EINVAL;
    if (br__hooks_register(&hooks) != 0)
        return BR_ENOMEM;
    fdw *w = br__malloc(sizeof *w);
    if (!w)
        return BR_ENOMEM;
    int rc = br_future_new(&w->fut);
    if (rc != 0) {
        br__free(w);
        return rc;
    }
    w->n = 0;
    w->prev = NULL;
    pthread_mutex_lock(&lock);
    rc = start_locked();
    w->id = FDW_TAG | ++fdw_seq;
    for (int i = 0; rc == 0 && i < n; i++) {
        struct epoll_event ev = {.events = events[i] | EPOLLONESHOT, .data.u64 = w->id};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fds[i], &ev) != 0)
            rc = -errno;
        else
            w->fds[w->n++] = fds[i];
    }
    if (rc != 0) {
        for (int i = 0; i < w->n; i++)
            epoll_ctl(epfd, EPOLL_CTL_DEL, w->fds[i], NULL);
        pthread_mutex_unlock(&lock);
        br_future_release(w->fut);
        br__free(w);
        return rc;
    }
    w->next = fdws;
    if (fdws)
        fdws->prev = w;
    fdws = w;
    br_future *f = w->fut;
    br_future_retain(f); /* ours; the record keeps its own until the watcher finishes it */
    pthread_mutex_unlock(&lock);
    rc = br_future_wait(f, deadline); /* a thread parks, a coroutine suspends */
    if (rc != 0) {
        /* Gave up (deadline, cancel): unless the watcher took the record meanwhile (it
         * then finishes and frees it), the record and its registrations go here. */
        pthread_mutex_lock(&lock);
        fdw *x = fdws;
        while (x && x != w)
            x = x->next;
        if (x)
            fdw_unlink(w);
        pthread_mutex_unlock(&lock);
        if (x) {
            br_future_release(w->fut);
            br__free(w);
        }
    }
    br_future_release(f);
    return rc;
}

static void *watcher(void *arg) {
    uint64_t gen = (uint64_t)(uintptr_t)arg;
    atomic_store(&watcher_tid, br__thread_native_id());
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        pthread_mutex_lock(&lock);
        bool poll = npolled > 0;
        bool stale = gen != generation;
        pthread_mutex_unlock(&lock);
        if (stale)
            return NULL;
        int n = epoll_wait(epfd, evs, MAX_EVENTS, poll ? POLL_MS : -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 & FDW_TAG) {
                fdw_event(evs[i].data.u64);
                continue;
            }
            entry *e = evs[i].data.ptr;
            if (!e) { /* the eventfd: a polled entry arrived */
                uint64_t v;
                ssize_t rd = read(evfd, &v, sizeof v);
                (void)rd;
                continue;
            }
            if (e->remote)
                remote_event(e);
            else
                try_reap(e);
        }
        if (poll) {
            /* Polled entries: walk a snapshot of the list under the lock, one at a
             * time (try_reap takes the lock itself). */
            for (;;) {
                entry *due = NULL;
                pthread_mutex_lock(&lock);
                for (entry *e = head; e; e = e->next) {
                    if (e->pidfd < 0 && !e->remote) {
                        siginfo_t info = {0};
                        int r = waitid(P_PID, (id_t)e->pid, &info,
                                       WEXITED | WNOHANG | WNOWAIT);
                        if (r != 0 || info.si_pid != 0) {
                            due = e;
                            break;
                        }
                    }
                }
                pthread_mutex_unlock(&lock);
                if (!due || !try_reap(due))
                    break;
            }
        }
    }
}

/* Starts the thread and the descriptors; under `lock`. */
static int start_locked(void) {
    if (started)
        return 0;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return -errno;
    int ev = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ev < 0) {
        int e = -errno;
        close(ep);
        return e;
    }
    struct epoll_event eev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, ev, &eev) != 0) {
        int e = -errno;
        close(ep);
        close(ev);
        return e;
    }
    epfd = ep;
    evfd = ev;
    /* Signals go to the program's own threads, never to the watcher. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t th;
    int rc = pthread_create(&th, &attr, watcher, (void *)(uintptr_t)generation);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        close(ep);
        close(ev);
        epfd = evfd = -1;
        return BR_EAGAIN;
    }
    started = true;
    int none = 0;
    atomic_compare_exchange_strong(&watcher_tid, &none, -1);
    return 0;
}

static int watch(pid_t pid, int pidfd, int sock, br_future **out) {
    if (pid <= 0 || !out)
        return BR_EINVAL;
    *out = NULL;
    if (br__hooks_register(&hooks) != 0)
        return BR_ENOMEM;
    entry *e = br__malloc(sizeof *e);
    if (!e)
        return BR_ENOMEM;
    br_future *f;
    int rc = br_future_new(&f);
    if (rc != 0) {
        br__free(e);
        return rc;
    }
    e->pid = pid;
    e->pidfd = -1;
    e->fut = f;
    e->prev = NULL;
    e->remote = sock >= 0;
    e->sock = sock;
    if (pidfd >= 0) {
        e->pidfd = fcntl(pidfd, F_DUPFD_CLOEXEC, 0);
        if (e->pidfd < 0) {
            rc = -errno;
            goto fail;
        }
    }
    pthread_mutex_lock(&lock);
    rc = start_locked();
    int waitfd = e->remote ? e->sock : e->pidfd;
    if (rc == 0 && waitfd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = e};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, waitfd, &ev) != 0)
            rc = -errno;
    }
    if (rc != 0) {
        pthread_mutex_unlock(&lock);
        goto fail;
    }
    /* Linked before the watcher can see it: an epoll event can arrive as soon as the
     * lock is released, and try_reap unlinks under the lock. */
    e->next = head;
    if (head)
        head->prev = e;
    head = e;
    count++;
    bool first_polled = false;
    if (e->pidfd < 0 && !e->remote)
        first_polled = npolled++ == 0;
    br_future_retain(f); /* the caller's; the entry keeps the one from br_future_new */
    if (first_polled) {
        uint64_t one = 1;
        ssize_t w = write(evfd, &one, sizeof one);
        (void)w;
    }
    pthread_mutex_unlock(&lock);
    *out = f;
    return 0;
fail:
    if (e->pidfd >= 0)
        close(e->pidfd);
    br_future_release(f);
    br__free(e);
    return rc;
}

int br__child_watch(pid_t pid, int pidfd, br_future **out) {
    return watch(pid, pidfd, -1, out);
}

int br__child_watch_remote(pid_t pid, int sock, int pidfd, br_future **out) {
    if (sock < 0)
        return BR_EINVAL;
    return watch(pid, pidfd, sock, out);
}

size_t br__child_watch_count(void) {
    pthread_mutex_lock(&lock);
    size_t n = count;
    pthread_mutex_unlock(&lock);
    return n;
}

int br__child_watch_tid(void) { return atomic_load(&watcher_tid); }

static void child_hook(void) {
    atomic_store(&watcher_tid, 0);
    /* The forking thread is the child's only thread; `lock` may have been held by
     * another thread of the parent at the fork, so it is re-made, not unlocked. */
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    lock = fresh;
    entry *e = head;
    head = NULL;
    while (e) {
        entry *next = e->next;
        if (e->pidfd >= 0)
            close(e->pidfd);
        if (e->remote && e->sock >= 0)
            close(e->sock);
        br_future_release(e->fut);
        br__free(e);
        e = next;
    }
    count = npolled = 0;
    /* Descriptor waits were the parent's threads' (their futures are plain memory). */
    for (fdw *w = fdws, *next; w; w = next) {
        next = w->next;
        br_future_release(w->fut);
        br__free(w);
    }
    fdws = NULL;
    if (epfd >= 0)
        close(epfd);
    if (evfd >= 0)
        close(evfd);
    epfd = evfd = -1;
    started = false;
    generation++;
}
