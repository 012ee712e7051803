/* The process pool (braid/processpool.h): ProcessPoolExecutor on the extension API,
 * and the engine under multiprocessing.Pool's face (process/mp_pool.c).
 *
 * Design notes.
 *
 * Who does what. Submitters (any thread) copy the argument, push the task on the
 * pool's `pending` list under `mu` and ring the doorbell (a batch, and Pool.map's
 * chunksize 1, is one push and one ring for all its tasks). One manager thread per pool
 * does everything else: it starts the workers (start_worker: br__child_start, daemon, so
 * PR_SET_PDEATHSIG, which follows the starting thread, kills them if the process goes
 * away; under fork or spawn), hands tasks to them, reads their results and finishes
 * the futures (done-callbacks run on it), watches for cancel requests, replaces dead
 * workers and, at shutdown, stops them. Each worker process runs worker_main (as the
 * task br__pool_worker_task): read a request, run its tasks, write one result per task.
 * Under fork, br_processpool_new returns only once the manager's first round of starts
 * is done (first_starts): the initial workers are forked while the creating thread
 * waits, not while it goes on allocating (a fork while another thread holds an
 * allocator's lock leaves the child stuck on it under the sanitizers' allocators, which
 * take no locks around fork() as glibc's malloc does). A replacement worker is forked
 * while the program runs, with that risk under the sanitizers only.
 * Under spawn, a function crosses once per worker as a reference (a DEF entry before
 * the first task that names it) and tasks name it by its index in the pool's table.
 *
 * Channels. Each worker has its own `chan` in a br__shm (memfd) created before it
 * starts (inherited at the same descriptor number) and mapped with every page present
 * on both sides before the first task (chan_populate: otherwise the tasks would pay a
 * fault per ring page on each side as they first sweep the rings): a request ring
 * (manager -> worker) and a result ring (worker -> manager), each
 * single-producer single-consumer, of variable-size messages (16-byte aligned; a PAD
 * message fills the end of the buffer when the next one doesn't fit there). A request
 * carries up to MAX_MSG_TASKS tasks (the manager packs queued submits, and br_map's
 * chunks, into one message); each task has a sequence number, per worker, from 0. A
 * result answers one task, in sequence order: the manager's in-flight table is indexed
 * by seq % SLOTS, and results arrive in the order the tasks were sent. A payload (an
 * argument, a result, a failure message) of up to INLINE_MAX bytes travels in the
 * ring; a bigger one in a memfd of its own whose descriptor crosses the worker's
 * socketpair with SCM_RIGHTS, sent before the ring message that needs it (so the
 * reader, which takes descriptors in ring order, always finds it waiting). The worker
 * runs a big argument in place in its mapping. Copies of a big argument: one at submit
 * (into its memfd); of a big result: the task's br_task_return, one into the memfd, one
 * into the future.
 *
 * The handshake (rings). Producer: write the message at head, then store head
 * (release). Consumer: load head (acquire), read, store tail (release). Sleeping uses
 * a futex word and a waiting flag per direction, with seq_cst fences (Dekker): the
 * sleeper reads the word, then sets its flag, fences, re-checks the ring, and
 * futex-waits on the value it read first (never one read after the flag: see the
 * manager's sleep); the waker publishes, fences, and only if the flag is
 * 1 turns it to 2 (woken: a later waker that finds 2 makes no syscall), bumps the word
 * and wakes (shared futex); the sleeper clears the flag once awake (wake_word says why
 * that is enough). So nobody makes a syscall while the other side is awake, and at
 * most one per sleep. The manager sleeps on one word for everything, the
 * pool's `doorbell` (its own shm, inherited by every worker): submitters, workers
 * (after each result) and worker deaths ring it. A worker sleeps on its request ring's
 * word, and on its result ring's space word when that ring is full (the manager wakes
 * it after consuming). The manager never waits for ring space: it sends only what fits.
 *
 * Flow control. At most `prefetch` tasks (plus one chunk) are in flight per worker;
 * fewer than SLOTS always. The default prefetch adapts to the tasks' length (each
 * result carries the worker's time for it; prefetch_now): 32 for tasks of 8 us or more,
 * up to 512 for quick ones. Work goes to the worker with the most room first (dispatch),
 * so tasks that arrive a few at a time spread over the workers instead of piling up on
 * the first one in the list. A task is claimed (br__task_begin: RUNNING) when it is put
 * in a message, so from then on br_future_cancel refuses it; a cancel request reaches
 * it through chan.cancel[seq % SLOTS], which the manager raises when it sees the
 * request (it polls the futures in flight every POLL_NS while any are) and the worker's
 * br_task_cancelled reads (task.c's external-cancel hook, set around the call). The
 * worker skips a task whose flag is up before it starts. The worker advances the
 * request ring's tail before it publishes the last result of a message: a manager that
 * sees a result also sees the room the message left.
 *
 * Liveness. Every worker's exit future (br__child_watch) has a done-callback (on_worker_exit,
 * on the watcher thread) that records the death and rings the doorbell; the manager
 * sleeps only on the doorbell, so no wait in this file outlives a worker unnoticed.
 * Workers only sleep while the manager lives (PDEATHSIG). On a death the manager first
 * reads the results already published, then the task the worker had started
 * (chan.started, written before each call) fails with BR_EWORKERDIED, and the tasks
 * handed to it but not started are queued again, first (they stay claimed). A worker
 * whose initializer failed (chan.state) breaks the pool. The worker struct lives until
 * its callback has returned (cb_gone), so the callback never touches freed memory.
 *
 * Shutdown. The manager leaves when the pool is shut down, nothing is pending or in
 * flight, and every worker (sent STOP) has exited and been reaped. shutdown(wait)
 * joins it; destroy frees what is left.
 */
#include "process/pool.h"

#include "braid/thread.h"
#include "executor/private.h"
#include "platform/platform.h"
#include "process/shm.h"
#include "process/start.h"
#include "process/watch.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    RING_SIZE = 1 << 18,       /* bytes per direction per worker */
    INLINE_MAX = 8 << 10,      /* payloads up to this travel in the ring */
    MSG_MAX = 64 << 10,        /* a packed request stops growing here */
    MAX_MSG_TASKS = 256,
    SLOTS = 1024,              /* > tasks in flight per worker (prefetch + a chunk) */
    DEFAULT_PREFETCH = 32,
    FN_MAX = 256,              /* distinct task functions per pool under spawn */
    MAX_PREFETCH = 512
};
#define POLL_NS (1000 * 1000)  /* cancel-request polling while tasks are in flight */
#define PREFETCH_BUDGET_NS (250 * 1000) /* work handed ahead per worker (prefetch_now) */
/* How long a side looks before it sleeps: SPIN_NS, read from the clock once every 64
 * looks (reading it costs more than a look on some virtual machines). */
#define SPIN_NS (50 * 1000)
/* A worker spins less: on a machine with fewer cores than workers + manager, a spinning
 * worker takes the core the manager needs to feed it. */
#define WORKER_SPIN_NS (5 * 1000)

/* Spins until look(arg) is true or budget ns passed; the last look's answer. */
static bool spin_until(bool (*look)(void *), void *arg, int64_t budget) {
    int64_t until = 0;
    for (unsigned i = 1;; i++) {
        if (look(arg))
            return true;
        br__cpu_relax();
        if ((i & 63) == 0) {
            int64_t now = br_now();
            if (until == 0)
                until = now + budget;
            else if (now >= until)
                return look(arg);
        }
    }
}
#define LAZY_NS (20 * 1000)    /* how long a worker may leave a result unannounced */

/* --- shared memory ------------------------------------------------------------------ */

typedef struct ring {
    _Alignas(64) _Atomic uint64_t head; /* producer's: bytes published */
    _Alignas(64) _Atomic uint64_t tail; /* consumer's: bytes consumed */
    _Alignas(64) _Atomic uint32_t data_word; /* consumer sleeps here for data */
    _Atomic uint32_t data_waiting;
    _Alignas(64) _Atomic uint32_t space_word; /* producer sleeps here for room */
    _Atomic uint32_t space_waiting;
} ring;

enum { ST_STARTING = 0, ST_READY = 1, ST_INIT_FAILED = 2 };

typedef struct chan {
    ring req, res;
    _Alignas(64) _Atomic uint64_t started; /* seq + 1 of the last task started */
    _Atomic uint32_t state;                /* ST_* */
    _Atomic uint64_t big_res_done;         /* big results the manager has read */
    _Atomic int32_t init_rc;
    _Atomic uint32_t cancel[SLOTS];
    _Alignas(64) unsigned char reqbuf[RING_SIZE];
    unsigned char resbuf[RING_SIZE];
} chan;

typedef struct doorbell {
    _Alignas(64) _Atomic uint32_t word;
    _Atomic uint32_t waiting;
} doorbell;

enum { M_PAD = 1, M_TASKS = 2, M_STOP = 3, M_RESULT = 4 };

typedef struct msg {
    uint32_t size; /* the whole message, a multiple of 16 */
    uint32_t kind;
    uint32_t n;    /* tasks */
    uint32_t pad;
} msg;

enum { ENT_INLINE = 0, ENT_BIG = 1, ENT_DEF = 2 };

typedef struct ent {
    uint64_t fn;       /* the pointer (fork), or its index in the function table (spawn) */
    int64_t deadline;
    uint64_t seq;
    uint64_t len;
    uint32_t big;  /* ENT_*: ENT_BIG, the argument is in a memfd that crossed the socket;
                    * ENT_DEF (spawn), no task: defines function `fn` by the br__fnref
                    * that follows */
    uint32_t size; /* this entry with its inline bytes, a multiple of 16 */
    uint64_t pad;
} ent;

typedef struct res {
    msg h;
    int32_t code;
    uint32_t big;
    uint64_t seq;
    uint64_t len;
    uint64_t ns; /* the worker's time for this task, start to result (flow control) */
} res;

_Static_assert(sizeof(msg) == 16 && sizeof(ent) == 48 && sizeof(res) == 48, "layouts");

static inline uint64_t up16(uint64_t n) { return (n + 15) & ~(uint64_t)15; }

/* A full fence between processes. ThreadSanitizer doesn't model fences (gcc warns);
 * the instruction is still there and still orders, which is what the other process
 * needs. */
static inline void fence_sc(void) {
#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Wpragmas"
#  pragma GCC diagnostic ignored "-Wtsan"
#endif
    atomic_thread_fence(memory_order_seq_cst);
#if defined(__GNUC__) && !defined(__clang__)
#  pragma GCC diagnostic pop
#endif
}

/* The waker's half of the handshake. It never clears the flag (the sleeper does, once
 * awake): with several wakers, one clearing it could hide the sleeper from another
 * whose news the sleeper's re-check missed. The first waker to see the flag up turns
 * it from 1 to 2 ("woken") and makes the syscall; a waker that finds 2 makes none: the
 * sleeper is certain to wake, and it sets its flag (0, later 1), fences and looks
 * again before it can sleep once more, so it sees this waker's news (published before
 * the waker's fence, and the 2 it read is older than the sleeper's next store). Until
 * the sleeper runs again, every submit would otherwise pay a futex wake for nothing. */
static void wake_word(_Atomic uint32_t *word, _Atomic uint32_t *waiting) {
    fence_sc();
    uint32_t up = 1;
    if (atomic_load_explicit(waiting, memory_order_relaxed) == 1 &&
        atomic_compare_exchange_strong_explicit(waiting, &up, 2, memory_order_relaxed,
                                                memory_order_relaxed)) {
        atomic_fetch_add_explicit(word, 1, memory_order_release);
        br__futex_wake(word, 1, true);
    }
}

/* Producer side: a place for `need` bytes (need <= RING_SIZE / 2), or NULL if the ring
 * hasn't room. *adv is what head must move by when the message is published (it
 * includes a PAD written here). */
static void *ring_reserve(ring *r, unsigned char *buf, uint64_t need, uint64_t *adv) {
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    uint64_t off = head % RING_SIZE, contig = RING_SIZE - off;
    if (need <= contig) {
        if (head + need - tail > RING_SIZE)
            return NULL;
        *adv = need;
        return buf + off;
    }
    if (head + contig + need - tail > RING_SIZE)
        return NULL;
    msg *pad = (msg *)(void *)(buf + off);
    pad->size = (uint32_t)contig;
    pad->kind = M_PAD;
    *adv = contig + need;
    return buf;
}

static void ring_publish(ring *r, uint64_t adv) {
    atomic_store_explicit(&r->head,
                          atomic_load_explicit(&r->head, memory_order_relaxed) + adv,
                          memory_order_release);
}

/* Consumer side: the next message (PADs skipped), or NULL if none. */
static msg *ring_peek(ring *r, unsigned char *buf) {
    for (;;) {
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        if (atomic_load_explicit(&r->head, memory_order_acquire) == tail)
            return NULL;
        msg *m = (msg *)(void *)(buf + tail % RING_SIZE);
        if (m->kind != M_PAD)
            return m;
        atomic_store_explicit(&r->tail, tail + m->size, memory_order_release);
    }
}

static void ring_consume(ring *r, uint64_t size) {
    atomic_store_explicit(&r->tail,
                          atomic_load_explicit(&r->tail, memory_order_relaxed) + size,
                          memory_order_release);
}

static bool ring_has_data(ring *r) {
    return atomic_load_explicit(&r->head, memory_order_acquire) !=
           atomic_load_explicit(&r->tail, memory_order_relaxed);
}

/* Mappings of memfds that came over a socket, kept for reuse: the other side reuses its
 * memfds (warm pages), and mapping one again would cost a populate and an unmap each
 * time. A memfd is known by its inode (it can't be reused while we map it). */
enum { MAPC_N = 8 };
typedef struct mapcache {
    struct {
        dev_t dev;
        ino_t ino;
        void *base;
        size_t size;
        uint64_t used;
    } e[MAPC_N];
    uint64_t tick;
} mapcache;

static void mapcache_clear(mapcache *mc) {
    for (int i = 0; i < MAPC_N; i++)
        if (mc->e[i].base) {
            munmap(mc->e[i].base, mc->e[i].size);
            mc->e[i].base = NULL;
        }
}

/* Takes the next descriptor off sock: *out maps at least len bytes of it (read only),
 * from mc when the same memfd was mapped before; n (<= MAPC_N) entries of mc are used.
 * The descriptor is closed. 0 or a code. */
static int recv_mapped(int sock, size_t len, mapcache *mc, int n, const void **out, bool wait) {
    int fd = br__fdpass_recv(sock, wait);
    if (fd < 0)
        return fd;
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < len) {
        close(fd);
        return BR_EIO;
    }
    int victim = 0;
    mc->tick++;
    for (int i = 0; i < n; i++) {
        if (mc->e[i].base && mc->e[i].dev == st.st_dev && mc->e[i].ino == st.st_ino &&
            mc->e[i].size >= len) {
            mc->e[i].used = mc->tick;
            close(fd);
            *out = mc->e[i].base;
            return 0;
        }
        if (mc->e[i].base == NULL || (mc->e[victim].base && mc->e[i].used < mc->e[victim].used))
            victim = i;
    }
    size_t size = (size_t)st.st_size;
    void *p = mmap(NULL, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    int e = p == MAP_FAILED ? -errno : 0;
    close(fd);
    if (e)
        return e;
    if (mc->e[victim].base)
        munmap(mc->e[victim].base, mc->e[victim].size);
    mc->e[victim].dev = st.st_dev;
    mc->e[victim].ino = st.st_ino;
    mc->e[victim].base = p;
    mc->e[victim].size = size;
    mc->e[victim].used = mc->tick;
    *out = p;
    return 0;
}

#ifndef MADV_POPULATE_WRITE
#  define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* Maps every page of a channel into this process now, writable: the rings' pages are
 * otherwise first touched by the tasks themselves, a fault per page on each side (the
 * first 10,000 no-ops sweep both rings of both workers once). A hint: an older kernel
 * leaves the faults to the tasks. */
static void chan_populate(chan *ch) {
    (void)madvise(ch, sizeof *ch, MADV_POPULATE_WRITE);
}

/* --- the worker process ---------------------------------------------------------------- */

typedef struct wctx {
    chan *ch;
    doorbell *db;
    int sock;
    br_task_fn init;
    const void *initarg;
    size_t initarg_len;
    br__shm rbuf;      /* the big-result memfd */
    uint64_t big_sent; /* big results sent */
    mapcache args;     /* the parent's argument memfds */
    bool spawned;      /* functions arrive as references (DEF entries), by index */
    br_task_fn fns[FN_MAX];
    bool more;         /* the message has tasks after this one */
    bool unrung;       /* a result was published without ringing */
    int64_t first_unrung, task_start;
} wctx;

/* Runs fn(arg) here as a local task; the outcome is read from f (the caller releases
 * it). NULL: out of memory. */
static br_future *run_local(br_task_fn fn, const void *arg, size_t len, int64_t deadline,
                            const _Atomic uint32_t *cancel) {
    br_future *f = br__task_prepare(fn, arg, len, BR__ARG_BORROW, deadline, 2);
    if (f == NULL)
        return NULL;
    br_task *t = br__future_task(f);
    if (br__task_begin(t)) {
        br__task_set_external_cancel(t, cancel);
        int rc = br__task_call(t);
        br__task_set_external_cancel(NULL, NULL);
        br__task_finish(t, rc);
    }
    return f;
}

static void ring_doorbell(doorbell *db) { wake_word(&db->word, &db->waiting); }

/* Writes one result (waiting for room), and publishes it. */
/* A big result goes through the worker's own memfd, kept mapped and reused once the
 * manager has read every big result sent before (chan.big_res_done): its pages stay
 * warm. A new one is made when it is busy or too small. */
static int send_big_result(wctx *w, const void *data, size_t len) {
    if (w->rbuf.base == NULL || w->rbuf.size < len ||
        atomic_load_explicit(&w->ch->big_res_done, memory_order_acquire) != w->big_sent) {
        br__shm_close(&w->rbuf);
        int rc = br__shm_new(&w->rbuf, len, "braid-pool-res");
        if (rc != 0)
            return rc;
    }
    memcpy(w->rbuf.base, data, len);
    int rc = br__fdpass_send(w->sock, w->rbuf.fd);
    if (rc == 0)
        w->big_sent++;
    return rc;
}

static void worker_put_result(wctx *w, uint64_t seq, int code, const void *data, size_t len) {
    chan *ch = w->ch;
    bool big = len > INLINE_MAX;
    if (big && send_big_result(w, data, len) != 0) {
        static const char oom[] = "result too big to pass (out of memory)";
        code = BR_ENOMEM;
        data = oom;
        len = sizeof oom;
        big = false;
    }
    uint64_t need = sizeof(res) + (big ? 0 : up16(len)), adv;
    res *r;
    for (;;) {
        r = ring_reserve(&ch->res, ch->resbuf, need, &adv);
        if (r)
            break;
        uint32_t v = atomic_load_explicit(&ch->res.space_word, memory_order_acquire);
        atomic_store_explicit(&ch->res.space_waiting, 1, memory_order_relaxed);
        fence_sc();
        ring_doorbell(w->db); /* the manager may be asleep with our results unread */
        if ((r = ring_reserve(&ch->res, ch->resbuf, need, &adv)) != NULL) {
            atomic_store_explicit(&ch->res.space_waiting, 0, memory_order_relaxed);
            break;
        }
        br__futex_wait(&ch->res.space_word, v, BR_FOREVER, true);
        atomic_store_explicit(&ch->res.space_waiting, 0, memory_order_relaxed);
    }
    /* One clock read per task: the end of this one is the start of the next. */
    int64_t now = br_now();
    int64_t took = now - w->task_start;
    r->h.size = (uint32_t)need;
    r->h.kind = M_RESULT;
    r->h.n = 1;
    r->code = code;
    r->big = big;
    r->seq = seq;
    r->len = len;
    r->ns = took > 0 ? (uint64_t)took : 0;
    if (!big && len)
        memcpy(r + 1, data, len);
    ring_publish(&ch->res, adv);
    /* The doorbell (a syscall when the manager sleeps) once per message of quick tasks;
     * at once after a slow task, or when a result has waited LAZY_NS. */
    bool slow = took >= LAZY_NS;
    w->task_start = now;
    if (!w->more || slow || (w->unrung && now - w->first_unrung >= LAZY_NS)) {
        ring_doorbell(w->db);
        w->unrung = false;
    } else if (!w->unrung) {
        w->unrung = true;
        w->first_unrung = now;
    }
}

int br__pool_outcome(br_future *f, const void **data, size_t *len) {
    int code = br_future_result(f, BR_NOWAIT, data, len);
    if (code != 0) {
        const char *m = NULL;
        int c = code;
        if (br_future_exception(f, BR_NOWAIT, &c, &m) == 0 && c != 0)
            code = c;
        *data = m;
        *len = m ? strlen(m) + 1 : 0;
    }
    return code;
}

static void worker_result_of(wctx *w, uint64_t seq, br_future *f) {
    if (f == NULL) {
        worker_put_result(w, seq, BR_ENOMEM, NULL, 0);
        return;
    }
    const void *data = NULL;
    size_t len = 0;
    int code = br__pool_outcome(f, &data, &len);
    worker_put_result(w, seq, code, data, len);
    br_future_release(f);
}

static bool req_ready(void *c) { return ring_has_data(&((chan *)c)->req); }

/* Waits for a request (spins a little, then sleeps on the request ring's word). */
static msg *worker_next(wctx *w) {
    chan *ch = w->ch;
    msg *m = ring_peek(&ch->req, ch->reqbuf);
    if (m)
        return m;
    if (spin_until(req_ready, ch, WORKER_SPIN_NS))
        m = ring_peek(&ch->req, ch->reqbuf);
    while (m == NULL) {
        uint32_t v = atomic_load_explicit(&ch->req.data_word, memory_order_acquire);
        atomic_store_explicit(&ch->req.data_waiting, 1, memory_order_relaxed);
        fence_sc();
        if ((m = ring_peek(&ch->req, ch->reqbuf)) != NULL) {
            atomic_store_explicit(&ch->req.data_waiting, 0, memory_order_relaxed);
            break;
        }
        br__futex_wait(&ch->req.data_word, v, BR_FOREVER, true);
        atomic_store_explicit(&ch->req.data_waiting, 0, memory_order_relaxed);
        m = ring_peek(&ch->req, ch->reqbuf);
    }
    return m;
}

static int init_unresolved(br_task *t) {
    return br_task_fail(t, BR_ENOENT, "the initializer can't be found in the worker");
}

static int worker_main(wctx *w) {
    chan *ch = w->ch;
    if (w->init) {
        br_future *f = run_local(w->init, w->initarg, w->initarg_len, BR_FOREVER, NULL);
        int code = f ? br_future_result(f, BR_NOWAIT, NULL, NULL) : BR_ENOMEM;
        if (f)
            br_future_release(f);
        if (code != 0) {
            atomic_store(&ch->init_rc, code);
            atomic_store(&ch->state, ST_INIT_FAILED);
            return 0;
        }
    }
    atomic_store(&ch->state, ST_READY);
    ring_doorbell(w->db);
    for (;;) {
        msg *m = worker_next(w);
        if (m->kind == M_STOP)
            return 0; /* the start's child side flushes stdio and exits */
        uint32_t n = m->n, size = m->size;
        unsigned char *p = (unsigned char *)(m + 1);
        for (uint32_t i = 0; i < n; i++) {
            ent *e = (ent *)(void *)p;
            p += e->size;
            if (e->big == ENT_DEF) { /* spawn: function e->fn is the reference that follows */
                br__fnptr f = NULL;
                char why[128];
                if (e->fn < FN_MAX &&
                    br__fnref_resolve((const br__fnref *)(const void *)(e + 1), &f, why,
                                      sizeof why) == 0)
                    w->fns[e->fn] = (br_task_fn)f;
                continue;
            }
            uint64_t seq = e->seq;
            br_task_fn fn = (br_task_fn)(uintptr_t)e->fn;
            if (w->spawned)
                fn = e->fn < FN_MAX ? w->fns[e->fn] : NULL;
            const void *arg = e + 1;
            int bad = fn ? 0 : BR_ENOENT; /* a function the worker couldn't resolve */
            if (e->big)
                bad = recv_mapped(w->sock, (size_t)e->len, &w->args, MAPC_N, &arg, true);
            atomic_store_explicit(&ch->started, seq + 1, memory_order_release);
            w->more = i + 1 < n;
            if (i == 0)
                w->task_start = br_now();
            const _Atomic uint32_t *cancel = &ch->cancel[seq % SLOTS];
            br_future *f = NULL;
            int code = 0;
            if (bad)
                code = bad;
            else if (atomic_load_explicit(cancel, memory_order_acquire))
                code = BR_ECANCELED;
            else
                f = run_local(fn, e->len ? arg : NULL, (size_t)e->len, e->deadline, cancel);
            if (i + 1 == n)
                ring_consume(&ch->req, size); /* before the last result: see the notes */
            if (code != 0)
                worker_put_result(w, seq, code, NULL, 0);
            else
                worker_result_of(w, seq, f);
        }
    }
}

/* What a worker is started with (its task's argument bytes), then initarg_len bytes. */
typedef struct wspec {
    uint32_t magic;
    int32_t method;
    int32_t chan_fd, db_fd, sock_fd; /* the same numbers in the child */
    uint32_t has_init;
    uint64_t chan_size, db_size;
    uint64_t init_ptr;   /* fork: the initializer as it is */
    br__fnref init_ref;  /* spawn: its reference */
    uint64_t initarg_len;
} wspec;
#define WSPEC_MAGIC 0x62727077u /* "brpw" */

/* The worker process's main, as a task (process/pool.h): what br__child_start runs, in
 * a forked child or a spawned one. */
int br__pool_worker_task(br_task *t) {
    size_t len;
    const wspec *sp = br_task_arg(t, &len);
    if (sp == NULL || len < sizeof *sp || sp->magic != WSPEC_MAGIC ||
        len != sizeof *sp + sp->initarg_len)
        return br_task_fail(t, BR_EINVAL, "not a pool worker's start");
    br__shm chs, dbs;
    int rc = br__shm_attach(&chs, sp->chan_fd, (size_t)sp->chan_size);
    if (rc == 0 && (rc = br__shm_attach(&dbs, sp->db_fd, (size_t)sp->db_size)) != 0)
        br__shm_close(&chs);
    if (rc != 0)
        return br_task_fail(t, rc, "can't map the pool's channel");
    chan_populate(chs.base);
    wctx *c = br__calloc(1, sizeof *c); /* big (the function table): not on the stack */
    if (c == NULL)
        return BR_ENOMEM;
    c->ch = chs.base;
    c->db = dbs.base;
    c->sock = sp->sock_fd;
    c->rbuf = (br__shm){NULL, 0, -1};
    c->spawned = sp->method != BR_START_FORK; /* spawn, forkserver: references */
    c->initarg = sp + 1;
    c->initarg_len = (size_t)sp->initarg_len;
    if (sp->has_init) {
        if (c->spawned) {
            br__fnptr f = NULL;
            if (br__fnref_resolve(&sp->init_ref, &f, NULL, 0) == 0)
                c->init = (br_task_fn)f;
            else
                c->init = init_unresolved;
        } else {
            c->init = (br_task_fn)(uintptr_t)sp->init_ptr;
        }
    }
    worker_main(c);
    return 0;
}

/* --- the parent's side ------------------------------------------------------------------ */

typedef struct bigarg {
    br__shm shm; /* the argument's memfd, kept until the task is done (a retry resends it) */
} bigarg;

typedef struct worker {
    struct pp *pp;
    bool tried; /* dispatch's: offered work in this pass */
    br__shm shm;
    chan *ch;
    int sock;   /* the parent's end */
    pid_t pid;
    int pidfd;
    br_future *exit;
    _Atomic int dead;     /* set by on_worker_exit */
    _Atomic int cb_gone;  /* on_worker_exit has returned: w may be freed */
    int64_t exit_rc;      /* written before dead */
    br_task *slot[SLOTS]; /* in flight: seq in [done, next) */
    uint64_t next, done;
    uint64_t cancelled_upto; /* cancel flags raised for seq < this are remembered in slot */
    unsigned long handed;    /* tasks handed over (max_tasks_per_child) */
    bool retiring, stop_sent, killed, no_cb;
    mapcache results;        /* the worker's result memfd, mapped */
    uint8_t defined[FN_MAX]; /* spawn: function i was sent to this worker */
    uint32_t msg_defs;       /* DEF entries in the message being built */
    struct worker *next_w;
} worker;

typedef struct chunk_node {
    struct chunk_node *next;
    uint64_t ticket; /* singles queued before it */
    size_t n, at;
    br_task *tasks[];
} chunk_node;

typedef struct fnent {
    br_task_fn fn;
    br__fnref ref;
} fnent;

typedef struct pp {
    br_executor base;
    br_processpool_opts o;
    int method;          /* BR_START_FORK, BR_START_SPAWN or BR_START_FORKSERVER */
    br__fnref init_ref;  /* spawn: the initializer's reference */
    pthread_mutex_t fn_mu; /* guards fns, nfns (spawn) */
    fnent *fns;
    int nfns;
    void *initarg;       /* our copy */
    br__shm dbshm;
    doorbell *db;
    pthread_t mgr;
    bool mgr_started, joined;
    pthread_mutex_t join_mu;
    pid_t owner;

    pthread_mutex_t mu; /* guards the fields down to `npending` */
    br_task *pend_head, *pend_tail;
    uint64_t pend_singles; /* singles ever pushed */
    uint64_t pend_taken;   /* of which the manager took */
    chunk_node *chunks_head, *chunks_tail;
    bool shutdown, cancel_req, terminate_req, broken;
    _Atomic int npending;  /* pushes not yet taken by the manager (a hint for sleeping) */
    _Atomic int deaths;    /* on_worker_exit calls not yet handled */
    _Atomic bool mgr_done;
    _Atomic uint32_t cancel_seen; /* 1 once the manager has cancelled what was queued */
    br__ilock cancel_lock;          /* guards cancel_waiters */
    br__waiter *cancel_waiters;     /* shutdowns waiting for cancel_seen (a chain) */

    /* the manager's own */
    br_task *q_head, *q_tail;   /* singles taken from pend */
    size_t q_count;
    uint64_t q_taken;           /* singles taken from the queue so far */
    chunk_node *cq_head, *cq_tail;
    br_task *retry_head, *retry_tail; /* claimed tasks to hand out again */
    worker *workers;   /* live and retiring */
    worker *grave;     /* dead, waiting for cb_gone */
    int nlive;         /* not retiring, not dead */
    int64_t last_poll;
    int64_t task_ns;     /* the workers' time per task, a moving average (prefetch_now) */
    bool prefetch_auto;  /* .prefetch was 0: prefetch_now adapts it */
    bool stop_all;
    int last_start_error;
    br_event first_starts; /* set once the manager's first round of starts is done */
} pp;

static const br_executor_vt pp_vt;
static _Thread_local pp *tls_manager_of;

static pp *as_pp(br_executor *ex) {
    return (br__executor_ok(ex) && ex->vt == &pp_vt) ? (pp *)ex : NULL;
}

static void poke(pp *p) { ring_doorbell(p->db); }

/* --- functions under spawn ----------------------------------------------------------------- */

/* fn's index in the pool's function table, adding it (with its reference) if make. Under
 * spawn a function crosses to a worker once, as a reference (process/start.h), and tasks
 * name it by index. BR_EINVAL: fn can't cross (not module code: the reason is printed
 * by nobody, the code is the answer at submit); BR_ENOSPC: more than FN_MAX functions. */
static int fn_index(pp *p, br_task_fn fn, bool make) {
    pthread_mutex_lock(&p->fn_mu);
    int idx = -1;
    for (int i = p->nfns - 1; i >= 0; i--)
        if (p->fns[i].fn == fn) {
            idx = i;
            break;
        }
    if (idx < 0 && make) {
        if (p->fns == NULL)
            p->fns = br__calloc(FN_MAX, sizeof *p->fns);
        if (p->fns == NULL) {
            idx = BR_ENOMEM;
        } else if (p->nfns == FN_MAX) {
            idx = BR_ENOSPC;
        } else if (br__fnref_make(&p->fns[p->nfns].ref, (br__fnptr)fn, NULL, 0) != 0) {
            idx = BR_EINVAL;
        } else {
            p->fns[p->nfns].fn = fn;
            idx = p->nfns++;
        }
    }
    pthread_mutex_unlock(&p->fn_mu);
    return idx;
}

static int check_fn(pp *p, br_task_fn fn) {
    if (p->method == BR_START_FORK)
        return 0;
    int idx = fn_index(p, fn, true);
    return idx < 0 ? idx : 0;
}

/* --- arguments ----------------------------------------------------------------------- */

static bigarg *cache_get(size_t len);

/* Makes t's argument the pool's own: inline/heap copy, or a memfd for a big one. */
static int own_arg(br_task *t) {
    size_t len;
    const void *arg = br_task_arg(t, &len);
    if (len <= INLINE_MAX)
        return br__task_own_arg(t);
    bigarg *b = cache_get(len);
    if (b == NULL) {
        if ((b = br__malloc(sizeof *b)) == NULL)
            return BR_ENOMEM;
        int rc = br__shm_new(&b->shm, len, "braid-pool-arg");
        if (rc != 0) {
            br__free(b);
            return rc == BR_EMFILE || rc == BR_ENFILE ? rc : BR_ENOMEM;
        }
    }
    memcpy(b->shm.base, arg, len);
    br__task_swap_arg(t, b, len);
    return 0;
}

/* Big-argument memfds are kept for reuse (warm pages: a fresh page costs a fault and
 * a clear), up to CACHE_N of them and CACHE_BYTES in all. */
enum { CACHE_N = 8 };
#define CACHE_BYTES ((size_t)256 << 20)
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static bigarg *cache[CACHE_N];
static size_t cache_bytes;
static pid_t cache_pid;

static bigarg *cache_get(size_t len) {
    bigarg *b = NULL;
    pthread_mutex_lock(&cache_mu);
    if (cache_pid == getpid()) {
        int best = -1;
        for (int i = 0; i < CACHE_N; i++)
            if (cache[i] && cache[i]->shm.size >= len && cache[i]->shm.size <= 2 * len + (1 << 20) &&
                (best < 0 || cache[i]->shm.size < cache[best]->shm.size))
                best = i;
        if (best >= 0) {
            b = cache[best];
            cache[best] = NULL;
            cache_bytes -= b->shm.size;
        }
    }
    pthread_mutex_unlock(&cache_mu);
    return b;
}

static bool cache_put(bigarg *b) {
    bool kept = false;
    pthread_mutex_lock(&cache_mu);
    if (cache_pid != getpid()) { /* a forked child's copy of the list: not ours */
        memset(cache, 0, sizeof cache);
        cache_bytes = 0;
        cache_pid = getpid();
    }
    if (cache_bytes + b->shm.size <= CACHE_BYTES)
        for (int i = 0; i < CACHE_N && !kept; i++)
            if (cache[i] == NULL) {
                cache[i] = b;
                cache_bytes += b->shm.size;
                kept = true;
            }
    pthread_mutex_unlock(&cache_mu);
    return kept;
}

/* Empties the cache (a pool's end, so that no memfd outlives the last pool). */
static void cache_flush(void) {
    pthread_mutex_lock(&cache_mu);
    if (cache_pid == getpid())
        for (int i = 0; i < CACHE_N; i++)
            if (cache[i]) {
                br__shm_close(&cache[i]->shm);
                br__free(cache[i]);
                cache[i] = NULL;
            }
    cache_bytes = 0;
    pthread_mutex_unlock(&cache_mu);
}

static _Atomic int live_pools;

static bigarg *big_of(br_task *t) {
    size_t len;
    bigarg *b = (bigarg *)br_task_arg(t, &len);
    return len > INLINE_MAX ? b : NULL;
}

static void free_big(bigarg *b) {
    if (b && !cache_put(b)) {
        br__shm_close(&b->shm);
        br__free(b);
    }
}

/* Drops a big argument's memfd (before t is finished or abandoned). */
static void drop_arg(br_task *t) {
    bigarg *b = big_of(t);
    if (b) {
        free_big(b);
        br__task_swap_arg(t, NULL, 0);
    }
}

static void abandon(br_task *t, int code) {
    drop_arg(t);
    br__task_abandon(t, code);
}

/* Finishes a claimed task with a failure. */
static void fail_claimed(br_task *t, int code, const char *m) {
    drop_arg(t);
    if (m)
        br_task_fail(t, code, "%s", m);
    br__task_finish(t, code);
}

/* --- workers -------------------------------------------------------------------------- */

static void on_worker_exit(br_future *f, void *arg) {
    worker *w = arg;
    pp *p = w->pp;
    int64_t rc = 0;
    if (br_future_result_i64(f, BR_NOWAIT, &rc) != 0)
        rc = -SIGKILL; /* BR_ECHILD: someone else reaped it; it is gone anyway */
    w->exit_rc = rc;
    atomic_store_explicit(&w->dead, 1, memory_order_release);
    atomic_fetch_add(&p->deaths, 1);
    poke(p);
    atomic_store_explicit(&w->cb_gone, 1, memory_order_release);
}

/* The one place workers start (the start methods plug in here). */

/* The one place workers start: through the process layer's start methods
 * (process/start.h), as a task that runs the worker's loop, with the channel, the
 * doorbell and the socket inherited at the same descriptor numbers. Daemon: the kernel
 * kills the worker when the manager thread (the starter) ends. */
static int start_worker(pp *p) {
    worker *w = br__calloc(1, sizeof *w);
    if (w == NULL)
        return BR_ENOMEM;
    w->pp = p;
    w->sock = w->pidfd = -1;
    int rc = br__shm_new(&w->shm, sizeof(chan), "braid-pool-chan");
    if (rc != 0) {
        br__free(w);
        return rc;
    }
    w->ch = w->shm.base;
    chan_populate(w->ch);
    int sv[2];
    if ((rc = br__fdpass_pair(sv)) != 0) {
        br__shm_close(&w->shm);
        br__free(w);
        return rc;
    }
    size_t speclen = sizeof(wspec) + p->o.initarg_len;
    wspec *sp = br__calloc(1, speclen);
    if (sp == NULL) {
        close(sv[0]);
        close(sv[1]);
        br__shm_close(&w->shm);
        br__free(w);
        return BR_ENOMEM;
    }
    sp->magic = WSPEC_MAGIC;
    sp->method = p->method;
    sp->chan_fd = w->shm.fd;
    sp->db_fd = p->dbshm.fd;
    sp->sock_fd = sv[1];
    sp->chan_size = w->shm.size;
    sp->db_size = p->dbshm.size;
    sp->has_init = p->o.initializer != NULL;
    sp->init_ptr = (uint64_t)(uintptr_t)p->o.initializer;
    sp->init_ref = p->init_ref;
    sp->initarg_len = p->o.initarg_len;
    if (p->o.initarg_len)
        memcpy(sp + 1, p->initarg, p->o.initarg_len);
    int fds[3] = {w->shm.fd, p->dbshm.fd, sv[1]};
    br__child_spec cs = {.fn = br__pool_worker_task, .arg = sp, .len = speclen,
                         .name = "braid-pool-worker", .daemon = true, .method = p->method,
                         .fds = fds, .nfds = 3, .quiet = true};
    br__child c;
    rc = br__child_start(&cs, &c, NULL, 0);
    br__free(sp);
    close(sv[1]);
    if (rc != 0) {
        close(sv[0]);
        br__shm_close(&w->shm);
        br__free(w);
        return rc;
    }
    w->sock = sv[0];
    w->pid = c.pid;
    w->pidfd = c.pidfd;
    w->exit = c.exit;
    pthread_mutex_lock(&p->mu); /* the list is the manager's; mu for br_processpool_pids */
    w->next_w = p->workers;
    p->workers = w;
    pthread_mutex_unlock(&p->mu);
    p->nlive++;
    if (br_future_add_done_callback(w->exit, on_worker_exit, w) != 0)
        w->no_cb = true; /* out of memory for the callback: reap() polls the future */
    return 0;
}

static void kill_worker(worker *w) {
    if (!w->killed) {
        w->killed = true;
        if (w->pidfd >= 0)
            br__pidfd_signal(w->pidfd, SIGKILL);
        else
            kill(w->pid, SIGKILL);
    }
}

static void send_stop(worker *w) {
    if (w->stop_sent)
        return;
    uint64_t adv;
    msg *m = ring_reserve(&w->ch->req, w->ch->reqbuf, sizeof(msg), &adv);
    if (m == NULL)
        return; /* full: the worker is reading; try again next round */
    m->size = sizeof(msg);
    m->kind = M_STOP;
    m->n = 0;
    ring_publish(&w->ch->req, adv);
    wake_word(&w->ch->req.data_word, &w->ch->req.data_waiting);
    w->stop_sent = true;
}

/* --- breaking ------------------------------------------------------------------------- */

static void fail_queued(pp *p, int code) {
    pthread_mutex_lock(&p->mu);
    br_task *a = p->pend_head;
    chunk_node *c = p->chunks_head;
    p->pend_head = p->pend_tail = NULL;
    p->chunks_head = p->chunks_tail = NULL;
    p->q_taken += p->pend_singles - p->pend_taken; /* chunk tickets stay comparable */
    p->pend_taken = p->pend_singles;
    atomic_store(&p->npending, 0);
    pthread_mutex_unlock(&p->mu);
    for (br_task *t = p->q_head, *nx; t; t = nx) {
        nx = t->next;
        abandon(t, code);
    }
    p->q_head = p->q_tail = NULL;
    p->q_count = 0;
    for (br_task *t = a, *nx; t; t = nx) {
        nx = t->next;
        abandon(t, code);
    }
    chunk_node *lists[2] = {p->cq_head, c};
    for (int k = 0; k < 2; k++)
        for (chunk_node *cn = lists[k], *nx; cn; cn = nx) {
            nx = cn->next;
            for (size_t i = cn->at; i < cn->n; i++)
                abandon(cn->tasks[i], code);
            br__free(cn);
        }
    p->cq_head = p->cq_tail = NULL;
    for (br_task *t = p->retry_head, *nx; t; t = nx) { /* claimed already */
        nx = t->next;
        if (code == BR_ECANCELED)
            br_future_request_cancel(br__task_future(t));
        fail_claimed(t, code, NULL);
    }
    p->retry_head = p->retry_tail = NULL;
}

static void break_pool(pp *p) {
    pthread_mutex_lock(&p->mu);
    p->broken = true;
    pthread_mutex_unlock(&p->mu);
    fail_queued(p, BR_EBROKEN);
    p->stop_all = true;
}

/* --- results ----------------------------------------------------------------------------- */

/* Reads every published result of w; true if any. */
static bool collect(pp *p, worker *w) {
    chan *ch = w->ch;
    bool any = false;
    res *r;
    while ((r = (res *)ring_peek(&ch->res, ch->resbuf)) != NULL) {
        any = true;
        br_task *t = w->slot[r->seq % SLOTS];
        w->slot[r->seq % SLOTS] = NULL;
        w->done = r->seq + 1;
        /* flow control: a moving average over the last eight or so tasks */
        p->task_ns += ((int64_t)(r->ns < INT64_MAX / 2 ? r->ns : INT64_MAX / 2) - p->task_ns) / 8;
        int code = r->code;
        const void *data = r + 1;
        if (r->big) {
            int e = recv_mapped(w->sock, (size_t)r->len, &w->results, 2, &data, false);
            if (e != 0) {
                code = e;
                data = NULL;
            }
        }
        size_t len = (size_t)r->len;
        drop_arg(t);
        if (code == 0) {
            if (len && br_task_return(t, data, len) != 0)
                code = BR_ENOMEM;
        } else if (data && len) {
            br_task_fail(t, code, "%s", (const char *)data);
        }
        if (r->big)
            atomic_fetch_add_explicit(&ch->big_res_done, 1, memory_order_release);
        ring_consume(&ch->res, r->h.size);
        br__task_finish(t, code);
    }
    if (any) /* one look for a worker waiting for room, after the batch */
        wake_word(&ch->res.space_word, &ch->res.space_waiting);
    return any;
}

static void describe_death(char *buf, size_t n, pid_t pid, int64_t rc) {
    if (rc < 0)
        snprintf(buf, n, "worker %d killed by signal %d", (int)pid, (int)-rc);
    else
        snprintf(buf, n, "worker %d exited with status %d", (int)pid, (int)rc);
}

static void push_retry_front(pp *p, br_task *first, br_task *last) {
    last->next = p->retry_head;
    p->retry_head = first;
    if (p->retry_tail == NULL)
        p->retry_tail = last;
}

/* A worker ended: settle what it held, bury it. */
static void handle_death(pp *p, worker *w) {
    collect(p, w);
    uint64_t started = atomic_load_explicit(&w->ch->started, memory_order_acquire);
    bool init_failed = atomic_load(&w->ch->state) == ST_INIT_FAILED ||
                       (p->o.initializer && atomic_load(&w->ch->state) == ST_STARTING);
    char m[96];
    describe_death(m, sizeof m, w->pid, w->exit_rc);
    br_task *rf = NULL, *rl = NULL;
    for (uint64_t s = w->done; s < w->next; s++) {
        br_task *t = w->slot[s % SLOTS];
        w->slot[s % SLOTS] = NULL;
        if (t == NULL)
            continue;
        if (init_failed) {
            fail_claimed(t, BR_EBROKEN, "a worker's initializer failed");
        } else if (s + 1 == started || p->terminate_req) {
            if (br__task_cancel_requested(t))
                fail_claimed(t, BR_ECANCELED, NULL); /* kill_on_cancel, or terminate */
            else if (p->terminate_req) {
                br_future_request_cancel(br__task_future(t));
                fail_claimed(t, BR_ECANCELED, NULL);
            } else
                fail_claimed(t, BR_EWORKERDIED, m);
        } else {
            t->next = NULL; /* handed over, never started: hand it out again */
            if (rl)
                rl->next = t;
            else
                rf = t;
            rl = t;
        }
    }
    w->done = w->next;
    if (rf)
        push_retry_front(p, rf, rl);
    pthread_mutex_lock(&p->mu);
    for (worker **pw = &p->workers; *pw; pw = &(*pw)->next_w)
        if (*pw == w) {
            *pw = w->next_w;
            break;
        }
    pthread_mutex_unlock(&p->mu);
    if (!w->retiring)
        p->nlive--;
    mapcache_clear(&w->results);
    br__shm_close(&w->shm);
    close(w->sock);
    w->sock = -1;
    if (w->pidfd >= 0)
        close(w->pidfd);
    w->pidfd = -1;
    br_future_release(w->exit);
    w->exit = NULL;
    w->next_w = p->grave;
    p->grave = w;
    if (init_failed) {
        break_pool(p);
    } else if (!p->stop_all && !p->terminate_req && w->exit_rc != 0 && !w->stop_sent &&
               p->o.on_worker_death == BR_WORKER_DEATH_BREAK) {
        break_pool(p);
    }
}

static bool reap(pp *p) {
    bool any = false;
    if (atomic_load(&p->deaths) > 0 || p->workers) {
        for (worker *w = p->workers, *nx; w; w = nx) {
            nx = w->next_w;
            if (w->no_cb && !atomic_load(&w->dead) && br_future_done(w->exit)) {
                on_worker_exit(w->exit, w); /* the callback that couldn't be added */
            }
            if (atomic_load_explicit(&w->dead, memory_order_acquire)) {
                atomic_fetch_sub(&p->deaths, 1);
                handle_death(p, w);
                any = true;
            }
        }
    }
    for (worker **pw = &p->grave; *pw;) {
        worker *w = *pw;
        if (atomic_load_explicit(&w->cb_gone, memory_order_acquire)) {
            *pw = w->next_w;
            br__free(w);
        } else {
            pw = &w->next_w;
        }
    }
    return any;
}

/* --- handing tasks out ------------------------------------------------------------------ */

/* Appends t (claimed) to the message being built at *pp_ (room permitting). false: it
 * doesn't fit (t untouched). */
static bool put_entry(worker *w, unsigned char **cur, unsigned char *end, br_task *t) {
    size_t len;
    const void *arg = br_task_arg(t, &len);
    bool big = len > INLINE_MAX;
    uint64_t esz = sizeof(ent) + (big ? 0 : up16(len));
    if (*cur + esz > end)
        return false;
    uint64_t fnval = (uint64_t)(uintptr_t)br_task_function(t);
    pp *p = w->pp;
    int def = -1;
    if (p->method != BR_START_FORK) { /* spawn, forkserver */
        int idx = fn_index(p, br_task_function(t), true); /* checked at submit */
        if (idx < 0)
            return false;
        fnval = (uint64_t)idx;
        if (!w->defined[idx]) {
            def = idx;
            if (*cur + sizeof(ent) + up16(sizeof(br__fnref)) + esz > end)
                return false;
        }
    }
    if (big) {
        bigarg *b = (bigarg *)arg;
        if (br__fdpass_send(w->sock, b->shm.fd) != 0)
            return false; /* the worker is gone: its death is being reported */
    }
    if (def >= 0) {
        /* spawn: the function crosses once, as a reference, before its first task */
        uint64_t dsz = sizeof(ent) + up16(sizeof(br__fnref));
        ent *d = (ent *)(void *)*cur;
        memset(d, 0, sizeof *d);
        d->fn = (uint64_t)def;
        d->big = ENT_DEF;
        d->len = sizeof(br__fnref);
        d->size = (uint32_t)dsz;
        pthread_mutex_lock(&p->fn_mu);
        memcpy(d + 1, &p->fns[def].ref, sizeof(br__fnref));
        pthread_mutex_unlock(&p->fn_mu);
        *cur += dsz;
        w->defined[def] = 1;
        w->msg_defs++; /* an entry of the message, not a task */
    }
    ent *e = (ent *)(void *)*cur;
    uint64_t seq = w->next++;
    e->fn = fnval;
    e->deadline = br_task_deadline(t);
    e->seq = seq;
    e->len = len;
    e->big = big ? ENT_BIG : ENT_INLINE;
    e->size = (uint32_t)esz;
    if (!big && len)
        memcpy(e + 1, arg, len);
    atomic_store_explicit(&w->ch->cancel[seq % SLOTS], 0, memory_order_relaxed);
    w->slot[seq % SLOTS] = t;
    w->handed++;
    *cur += esz;
    return true;
}

/* A claimed task that couldn't be put in a message: first in line again. */
static void requeue_claimed(pp *p, br_task *t) {
    t->next = p->retry_head;
    p->retry_head = t;
    if (!p->retry_tail)
        p->retry_tail = t;
}

static br_task *pop_single(pp *p) {
    br_task *t = p->q_head;
    if (t) {
        p->q_head = t->next;
        if (!p->q_head)
            p->q_tail = NULL;
        p->q_taken++;
        p->q_count--;
    }
    return t;
}

/* Tasks in flight per worker. An explicit .prefetch is kept. The default follows how
 * long tasks take (the workers report each task's time): enough tasks to keep
 * PREFETCH_BUDGET_NS of work handed to each worker, no fewer than DEFAULT_PREFETCH, no
 * more than MAX_PREFETCH. Quick tasks then travel hundreds to a round trip instead of
 * 32 (a 2-CPU machine spends most of a no-op task's time waking the other side), and
 * what a worker holds ahead (uncancellable by br_future_cancel, not given to an idle
 * worker) stays a quarter of a millisecond of work, or 32 tasks. */
static int prefetch_now(const pp *p) {
    if (!p->prefetch_auto)
        return p->o.prefetch;
    int64_t n = PREFETCH_BUDGET_NS / (p->task_ns > 0 ? p->task_ns : 1);
    return n < DEFAULT_PREFETCH ? DEFAULT_PREFETCH : n > MAX_PREFETCH ? MAX_PREFETCH : (int)n;
}

/* Builds and sends one message to w; true if it sent one. */
static bool dispatch_one(pp *p, worker *w) {
    int room = prefetch_now(p) - (int)(w->next - w->done);
    if (room <= 0)
        return false;
    bool chunk_due = p->cq_head && p->cq_head->ticket <= p->q_taken;
    if (!p->retry_head && !p->q_head && !chunk_due)
        return false;
    uint64_t adv;
    msg *m = ring_reserve(&w->ch->req, w->ch->reqbuf, MSG_MAX, &adv);
    if (m == NULL)
        return false;
    unsigned char *cur = (unsigned char *)(m + 1), *end = (unsigned char *)m + MSG_MAX;
    uint32_t n = 0;
    w->msg_defs = 0;
    int limit = room;
    if (p->o.max_tasks_per_child > 0) {
        long left = (long)p->o.max_tasks_per_child - (long)w->handed;
        if (left < limit)
            limit = (int)left;
    }
    /* Claimed tasks first (they were handed to a worker that died before starting them). */
    bool stuck = false;
    while (p->retry_head && (int)n < limit && n < MAX_MSG_TASKS) {
        br_task *t = p->retry_head;
        if (!put_entry(w, &cur, end, t)) {
            stuck = true;
            break;
        }
        p->retry_head = t->next;
        if (!p->retry_head)
            p->retry_tail = NULL;
        n++;
    }
    bool consumed = false;
    if (stuck) {
        /* nothing more for this worker now */
    } else
    if (n == 0 && chunk_due) {
        /* A chunk goes whole (up to a message), whatever the prefetch room. */
        chunk_node *c = p->cq_head;
        int climit = MAX_MSG_TASKS;
        if (p->o.max_tasks_per_child > 0 && limit < climit)
            climit = limit;
        while (c->at < c->n && (int)n < climit) {
            br_task *t = c->tasks[c->at];
            size_t len;
            (void)br_task_arg(t, &len);
            uint64_t esz = sizeof(ent) + (len > INLINE_MAX ? 0 : up16(len));
            if (cur + esz > end)
                break;
            c->at++;
            consumed = true;
            bigarg *b = big_of(t);
            if (!br__task_begin(t)) {
                free_big(b); /* cancelled while queued, or expired (now failed): gone */
                continue;
            }
            if (!put_entry(w, &cur, end, t)) {
                requeue_claimed(p, t);
                break;
            }
            n++;
        }
        if (c->at == c->n) {
            p->cq_head = c->next;
            if (!p->cq_head)
                p->cq_tail = NULL;
            br__free(c);
        }
    } else {
        /* Singles, packed: no more than an even share of what is queued, so that
         * idle workers get some too. */
        size_t share = (p->q_count + (size_t)p->nlive - 1) / (size_t)(p->nlive > 0 ? p->nlive : 1);
        if (share < 1)
            share = 1;
        if ((size_t)limit > share)
            limit = (int)share;
        while ((int)n < limit && n < MAX_MSG_TASKS && p->q_head) {
            if (p->cq_head && p->cq_head->ticket <= p->q_taken)
                break; /* a chunk's turn */
            br_task *t = p->q_head;
            size_t len;
            (void)br_task_arg(t, &len);
            uint64_t esz = sizeof(ent) + (len > INLINE_MAX ? 0 : up16(len));
            if (cur + esz > end)
                break;
            pop_single(p);
            consumed = true;
            bigarg *b = big_of(t);
            if (!br__task_begin(t)) {
                free_big(b); /* cancelled while queued, or expired (now failed): gone */
                continue;
            }
            if (!put_entry(w, &cur, end, t)) {
                requeue_claimed(p, t);
                break;
            }
            n++;
        }
    }
    if (n == 0) {
        /* Nothing to send (everything looked at was cancelled, or the worker can't take
         * a descriptor now); a PAD written for the reservation stays unpublished. */
        return consumed;
    }
    m->size = (uint32_t)((size_t)(cur - (unsigned char *)m));
    m->kind = M_TASKS;
    m->n = n + w->msg_defs; /* entries */
    /* The reservation was MSG_MAX; publish only what was used (a PAD placed for it
     * stays valid: the message starts at the same place). */
    ring_publish(&w->ch->req, adv - MSG_MAX + m->size);
    wake_word(&w->ch->req.data_word, &w->ch->req.data_waiting);
    return true;
}

/* Sends work while any worker can take it, always to the worker with the most room (the
 * fewest tasks in flight): tasks that arrive a few at a time (br_map tops its inputs up
 * as results are read) would otherwise all go to the first worker of the list, which
 * always has room, and leave the others idle. */
static bool dispatch(pp *p) {
    bool any = false;
    for (;;) {
        if (!p->retry_head && !p->q_head && !p->cq_head)
            return any;
        /* One pass over the workers, most room first; stop when none took anything. */
        bool sent = false;
        for (worker *w = p->workers; w; w = w->next_w)
            w->tried = false;
        for (;;) {
            worker *best = NULL;
            int best_room = 0;
            for (worker *w = p->workers; w; w = w->next_w) {
                if (w->tried || w->retiring || w->stop_sent || atomic_load(&w->dead))
                    continue;
                int room = prefetch_now(p) - (int)(w->next - w->done);
                if (best == NULL || room > best_room) {
                    best = w;
                    best_room = room;
                }
            }
            if (best == NULL)
                break;
            best->tried = true;
            if (!p->retry_head && !p->q_head && !p->cq_head)
                break;
            if (dispatch_one(p, best)) {
                any = sent = true;
                if (p->o.max_tasks_per_child > 0 &&
                    best->handed >= (unsigned long)p->o.max_tasks_per_child) {
                    best->retiring = true; /* no more for it; a replacement starts now */
                    p->nlive--;
                }
            }
        }
        if (!sent)
            return any;
    }
}

/* --- the manager --------------------------------------------------------------------------- */

/* Raises the shared cancel flag of every task in flight whose future was asked to
 * cancel; with kill_on_cancel, kills the worker running one. */
static void poll_cancels(pp *p) {
    for (worker *w = p->workers; w; w = w->next_w) {
        if (atomic_load(&w->dead))
            continue;
        uint64_t started = atomic_load_explicit(&w->ch->started, memory_order_acquire);
        for (uint64_t s = w->done; s < w->next; s++) {
            br_task *t = w->slot[s % SLOTS];
            _Atomic uint32_t *flag = &w->ch->cancel[s % SLOTS];
            if (t == NULL || atomic_load_explicit(flag, memory_order_relaxed))
                continue;
            if (!br__task_cancel_requested(t))
                continue;
            atomic_store_explicit(flag, 1, memory_order_release);
            if (p->o.kill_on_cancel && s + 1 == started)
                kill_worker(w);
        }
    }
}

static bool inflight_any(pp *p) {
    for (worker *w = p->workers; w; w = w->next_w)
        if (w->next != w->done)
            return true;
    return false;
}

/* Takes what submitters pushed; true if anything (or a control change) came. */
static bool take_pending(pp *p, bool *shutdown, bool *cancel, bool *terminate) {
    pthread_mutex_lock(&p->mu);
    br_task *h = p->pend_head, *tl = p->pend_tail;
    size_t nh = (size_t)(p->pend_singles - p->pend_taken);
    p->pend_taken = p->pend_singles;
    chunk_node *ch = p->chunks_head, *ct = p->chunks_tail;
    p->pend_head = p->pend_tail = NULL;
    p->chunks_head = p->chunks_tail = NULL;
    atomic_store_explicit(&p->npending, 0, memory_order_relaxed);
    *shutdown = p->shutdown;
    *cancel = p->cancel_req;
    *terminate = p->terminate_req;
    pthread_mutex_unlock(&p->mu);
    p->q_count += nh;
    if (h) {
        if (p->q_tail)
            p->q_tail->next = h;
        else
            p->q_head = h;
        p->q_tail = tl;
    }
    if (ch) {
        if (p->cq_tail)
            p->cq_tail->next = ch;
        else
            p->cq_head = ch;
        p->cq_tail = ct;
    }
    return h || ch;
}

static bool work_queued(pp *p) { return p->q_head || p->cq_head || p->retry_head; }

static bool anything_to_do(pp *p) {
    if (atomic_load_explicit(&p->npending, memory_order_relaxed) ||
        atomic_load_explicit(&p->deaths, memory_order_relaxed))
        return true;
    for (worker *w = p->workers; w; w = w->next_w)
        if (ring_has_data(&w->ch->res))
            return true;
    return false;
}

static bool mgr_has_work(void *p) { return anything_to_do(p); }

/* The queued tasks are cancelled (and those in flight asked to stop): a shutdown with
 * cancel_futures waiting for that (pp_shutdown) may return. */
static void cancel_seen(pp *p) {
    br__ilock_lock(&p->cancel_lock);
    atomic_store_explicit(&p->cancel_seen, 1, memory_order_release);
    br__waiter *chain = p->cancel_waiters;
    p->cancel_waiters = NULL;
    br__ilock_unlock(&p->cancel_lock);
    br__wake_chain(chain);
}

/* Waits (through the waiter: a thread parks, a coroutine suspends) until the manager
 * has cancelled what was queued. Can't be cancelled, as shutdown's contract says: the
 * manager does it at once, so the wait is short. */
static void wait_cancel_seen(pp *p) {
    if (atomic_load_explicit(&p->cancel_seen, memory_order_acquire))
        return;
    BR__PARKED(br__waiter, w);
    br__waiter_init(w);
    br__ilock_lock(&p->cancel_lock);
    if (atomic_load_explicit(&p->cancel_seen, memory_order_relaxed)) {
        br__ilock_unlock(&p->cancel_lock);
        return;
    }
    w->next = p->cancel_waiters;
    p->cancel_waiters = w;
    br__ilock_unlock(&p->cancel_lock);
    /* Only cancel_seen pops the chain, and it signals everyone it popped. */
    br__waiter_park_until_signalled(w);
}

static void *manager(void *arg) {
    pp *p = arg;
    tls_manager_of = p;
    int64_t next_start_try = 0;
    bool cancel_done = false, terminate_done = false, idle_spun = false, started = false;
    for (;;) {
        bool progress = false, shutdown, cancel, terminate;
        progress |= reap(p);
        for (worker *w = p->workers; w; w = w->next_w)
            progress |= collect(p, w);
        progress |= take_pending(p, &shutdown, &cancel, &terminate);
        if (terminate && !terminate_done) {
            terminate_done = cancel_done = true;
            fail_queued(p, BR_ECANCELED);
            for (worker *w = p->workers; w; w = w->next_w) {
                for (uint64_t s = w->done; s < w->next; s++)
                    if (w->slot[s % SLOTS])
                        br_future_request_cancel(br__task_future(w->slot[s % SLOTS]));
                kill_worker(w);
            }
            p->stop_all = true;
        }
        if (cancel && !cancel_done) {
            cancel_done = true;
            fail_queued(p, BR_ECANCELED);
            for (worker *w = p->workers; w; w = w->next_w)
                for (uint64_t s = w->done; s < w->next; s++)
                    if (w->slot[s % SLOTS])
                        br_future_request_cancel(br__task_future(w->slot[s % SLOTS]));
            p->last_poll = 0;
        }
        if (cancel_done && !atomic_load_explicit(&p->cancel_seen, memory_order_relaxed))
            cancel_seen(p);
        bool inflight = inflight_any(p);
        int64_t now = br_now();
        if (inflight && now - p->last_poll >= POLL_NS) {
            p->last_poll = now;
            poll_cancels(p);
        }
        /* workers: replace the missing, retire the done, stop all at the end */
        while (!p->stop_all && !p->broken && p->nlive < p->o.max_workers &&
               (!shutdown || work_queued(p)) && now >= next_start_try) {
            int rc = start_worker(p);
            if (rc == 0) {
                progress = true;
            } else {
                p->last_start_error = rc;
                next_start_try = now + 10 * BR_MSEC;
                if (p->workers == NULL)
                    break_pool(p);
            }
        }
        if (!started) {
            started = true;
            br_event_set(&p->first_starts);
        }
        if (!p->stop_all)
            progress |= dispatch(p);
        if (shutdown && !work_queued(p) && !inflight_any(p) &&
            atomic_load(&p->npending) == 0)
            p->stop_all = true;
        for (worker *w = p->workers; w; w = w->next_w)
            if ((p->stop_all || w->retiring) && w->next == w->done && !atomic_load(&w->dead))
                send_stop(w);
        if (p->stop_all && p->workers == NULL && p->grave == NULL) {
            /* A shutdown can't be undone: nothing new can arrive. */
            pthread_mutex_lock(&p->mu);
            bool more = p->pend_head || p->chunks_head;
            pthread_mutex_unlock(&p->mu);
            if (!more)
                break;
            fail_queued(p, p->broken ? BR_EBROKEN : BR_ESHUTDOWN);
            continue;
        }
        if (progress) {
            idle_spun = false;
            continue;
        }
        if (!idle_spun) {
            /* Look a little longer before sleeping: results come back fast. */
            idle_spun = true;
            spin_until(mgr_has_work, p, SPIN_NS);
            continue;
        }
        idle_spun = false;
        doorbell *db = p->db;
        /* The word first, then the flag: a waker that finds the flag at 2 counts on
         * this sleep ending, and it ends only if the bump that made it 2 came after v
         * was read. (Read after the flag, v could already include a bump from a waker
         * with nothing this re-check can see, a worker's "ready", and the next
         * waker, finding 2, would ring no one: a pool asleep with 50 tasks pending.) */
        uint32_t v = atomic_load_explicit(&db->word, memory_order_acquire);
        atomic_store_explicit(&db->waiting, 1, memory_order_relaxed);
        fence_sc();
        if (!anything_to_do(p)) {
            int64_t dl = BR_FOREVER;
            if (inflight_any(p) || p->grave || p->stop_all)
                dl = br_now() + POLL_NS;
            if (p->workers && p->o.max_workers > p->nlive && !p->stop_all)
                dl = br_deadline_min(dl, next_start_try);
            br__futex_wait(&db->word, v, dl, true);
        }
        atomic_store_explicit(&db->waiting, 0, memory_order_relaxed);
    }
    cancel_seen(p); /* nothing is left queued: no shutdown waits for more */
    atomic_store(&p->mgr_done, true);
    return NULL;
}

/* --- the executor face ------------------------------------------------------------------ */

static int push_checked(pp *p) {
    if (p->shutdown)
        return BR_ESHUTDOWN;
    if (p->broken)
        return BR_EBROKEN;
    return 0;
}

static int pp_submit(br_executor *ex, br_task *t, const br_call *call) {
    (void)call;
    pp *p = (pp *)ex;
    int rc = check_fn(p, br_task_function(t));
    if (rc == 0)
        rc = own_arg(t);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&p->mu);
    if ((rc = push_checked(p)) != 0) {
        pthread_mutex_unlock(&p->mu);
        drop_arg(t);
        return rc;
    }
    t->next = NULL;
    if (p->pend_tail)
        p->pend_tail->next = t;
    else
        p->pend_head = t;
    p->pend_tail = t;
    p->pend_singles++;
    atomic_fetch_add_explicit(&p->npending, 1, memory_order_relaxed);
    pthread_mutex_unlock(&p->mu);
    poke(p);
    return 0;
}

static int own_all(br_task *const tasks[], size_t n) {
    for (size_t i = 0; i < n; i++) {
        int rc = own_arg(tasks[i]);
        if (rc != 0) {
            for (size_t j = 0; j < i; j++)
                drop_arg(tasks[j]);
            return rc;
        }
    }
    return 0;
}

static int pp_submit_batch(br_executor *ex, br_task *const tasks[], size_t n,
                           const br_call *call, size_t *queued) {
    (void)call;
    pp *p = (pp *)ex;
    *queued = 0;
    int rc = check_fn(p, br_task_function(tasks[0]));
    if (rc == 0)
        rc = own_all(tasks, n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i + 1 < n; i++)
        tasks[i]->next = tasks[i + 1];
    tasks[n - 1]->next = NULL;
    pthread_mutex_lock(&p->mu);
    if ((rc = push_checked(p)) != 0) {
        pthread_mutex_unlock(&p->mu);
        for (size_t i = 0; i < n; i++)
            drop_arg(tasks[i]);
        return rc;
    }
    if (p->pend_tail)
        p->pend_tail->next = tasks[0];
    else
        p->pend_head = tasks[0];
    p->pend_tail = tasks[n - 1];
    p->pend_singles += n;
    atomic_fetch_add_explicit(&p->npending, 1, memory_order_relaxed);
    pthread_mutex_unlock(&p->mu);
    *queued = n;
    poke(p);
    return 0;
}

static int pp_submit_chunk(br_executor *ex, br_task *const tasks[], size_t n,
                           const br_call *call) {
    (void)call;
    pp *p = (pp *)ex;
    int rc = check_fn(p, br_task_function(tasks[0]));
    if (rc != 0)
        return rc;
    chunk_node *c = br__malloc(sizeof *c + n * sizeof(br_task *));
    if (c == NULL)
        return BR_ENOMEM;
    rc = own_all(tasks, n);
    if (rc != 0) {
        br__free(c);
        return rc;
    }
    c->next = NULL;
    c->n = n;
    c->at = 0;
    memcpy(c->tasks, tasks, n * sizeof(br_task *));
    pthread_mutex_lock(&p->mu);
    if ((rc = push_checked(p)) != 0) {
        pthread_mutex_unlock(&p->mu);
        for (size_t i = 0; i < n; i++)
            drop_arg(tasks[i]);
        br__free(c);
        return rc;
    }
    c->ticket = p->pend_singles;
    if (p->chunks_tail)
        p->chunks_tail->next = c;
    else
        p->chunks_head = c;
    p->chunks_tail = c;
    atomic_fetch_add_explicit(&p->npending, 1, memory_order_relaxed);
    pthread_mutex_unlock(&p->mu);
    poke(p);
    return 0;
}

static int join_manager(pp *p) {
    pthread_mutex_lock(&p->join_mu);
    if (!p->joined && p->mgr_started) {
        pthread_join(p->mgr, NULL);
        p->joined = true;
    }
    pthread_mutex_unlock(&p->join_mu);
    return 0;
}

static int control(pp *p, bool cancel, bool terminate) {
    pthread_mutex_lock(&p->mu);
    p->shutdown = true;
    if (cancel)
        p->cancel_req = true;
    if (terminate)
        p->terminate_req = p->cancel_req = true;
    atomic_fetch_add_explicit(&p->npending, 1, memory_order_relaxed); /* "look" */
    pthread_mutex_unlock(&p->mu);
    poke(p);
    return 0;
}

static int pp_shutdown(br_executor *ex, bool wait, bool cancel_futures) {
    pp *p = (pp *)ex;
    if (getpid() != p->owner)
        return 0; /* a forked child's copy: the workers are the parent's */
    control(p, cancel_futures, false);
    if (cancel_futures && tls_manager_of != p) {
        /* As the thread pool does, return only once every task still queued is
         * cancelled: the manager holds them, so wait for it to have done that (it
         * does at once; a manager that has left had nothing queued). */
        wait_cancel_seen(p);
    }
    if (!wait)
        return 0;
    if (tls_manager_of == p)
        return BR_EDEADLK;
    return join_manager(p);
}

static void pp_destroy(br_executor *ex) {
    pp *p = (pp *)ex;
    if (getpid() == p->owner)
        join_manager(p);
    br__shm_close(&p->dbshm);
    br__free(p->initarg);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->join_mu);
    pthread_mutex_destroy(&p->fn_mu);
    br_event_destroy(&p->first_starts);
    br__free(p->fns);
    if (atomic_fetch_sub(&live_pools, 1) == 1)
        cache_flush();
    p->base.magic = BR__EXECUTOR_DEAD;
    br__free(p);
}

static int pp_max_workers(const br_executor *ex) { return ((const pp *)ex)->o.max_workers; }

static const br_executor_vt pp_vt = {
    .kind = "process",
    .in_process = false,
    .submit = pp_submit,
    .submit_chunk = pp_submit_chunk,
    .shutdown = pp_shutdown,
    .destroy = pp_destroy,
    .max_workers = pp_max_workers,
    .parallel_for = NULL,
    .submit_batch = pp_submit_batch,
};

int br_processpool_new(br_executor **out, const br_processpool_opts *opts) {
    if (out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_processpool_new: out is NULL");
    *out = NULL;
    br_processpool_opts o = {0};
    if (opts)
        o = *opts;
    if (o.max_workers < 0 || o.max_tasks_per_child < 0 || o.prefetch < 0 ||
        o.prefetch > MAX_PREFETCH || (o.initarg == NULL && o.initarg_len > 0) ||
        (unsigned)o.on_worker_death > BR_WORKER_DEATH_BREAK)
        return BR__MISUSE(BR_EINVAL, "br_processpool_new: bad options");
    int method = (int)br_get_start_method();
    switch (o.start_method) {
    case BR_START_DEFAULT:
        break;
    case BR_START_FORK:
    case BR_START_SPAWN:
    case BR_START_FORKSERVER:
        method = (int)o.start_method;
        break;
    default:
        return BR__MISUSE(BR_EINVAL, "br_processpool_new: unknown start method");
    }
    if (method != BR_START_FORK && !br__process_main_seen())
        return BR_ESTATE; /* a spawned worker (or the forkserver) would not divert */
    br__fnref init_ref;
    memset(&init_ref, 0, sizeof init_ref);
    if (method != BR_START_FORK && o.initializer &&
        br__fnref_make(&init_ref, (br__fnptr)o.initializer, NULL, 0) != 0)
        return BR__MISUSE(BR_EINVAL, "br_processpool_new: the initializer can't reach a "
                                     "spawned worker");
    if (o.max_workers == 0)
        o.max_workers = br_cpu_count() > 0 ? br_cpu_count() : 1;
    bool prefetch_auto = o.prefetch == 0;
    if (o.prefetch == 0)
        o.prefetch = DEFAULT_PREFETCH;
    /* The parker's calibration (a helper thread, once per process) happens here, before
     * any fork: a worker that ran it would start a thread in a forked child. */
    (void)br__calib_spin_ns();
    /* Likewise the future blocks' one-time setup (a pthread_once): a worker forked while
     * another thread is inside it would wait for it forever (ThreadSanitizer's once
     * doesn't reset in a fork child). One block made and freed here completes it. */
    br_future *warm;
    if (br_future_new(&warm) == 0)
        br_future_release(warm);
    pp *p = br__calloc(1, sizeof *p);
    if (p == NULL)
        return BR_ENOMEM;
    p->o = o;
    p->o.initarg = NULL;
    p->prefetch_auto = prefetch_auto;
    p->task_ns = PREFETCH_BUDGET_NS / DEFAULT_PREFETCH; /* starts at the default */
    p->method = method;
    p->init_ref = init_ref;
    if (o.initarg_len) {
        if ((p->initarg = br__malloc(o.initarg_len)) == NULL) {
            br__free(p);
            return BR_ENOMEM;
        }
        memcpy(p->initarg, o.initarg, o.initarg_len);
    }
    int rc = br__shm_new(&p->dbshm, sizeof(doorbell), "braid-pool-doorbell");
    if (rc != 0) {
        br__free(p->initarg);
        br__free(p);
        return rc == BR_EMFILE || rc == BR_ENFILE ? rc : BR_ENOMEM;
    }
    p->db = p->dbshm.base;
    p->owner = getpid();
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->join_mu, NULL);
    pthread_mutex_init(&p->fn_mu, NULL);
    br_event_init(&p->first_starts);
    rc = br_executor_init(&p->base, &pp_vt);
    if (rc == 0 && pthread_create(&p->mgr, NULL, manager, p) != 0)
        rc = BR_EAGAIN;
    if (rc != 0) {
        br_event_destroy(&p->first_starts);
        br__shm_close(&p->dbshm);
        pthread_mutex_destroy(&p->mu);
        pthread_mutex_destroy(&p->join_mu);
        pthread_mutex_destroy(&p->fn_mu);
        br__free(p->initarg);
        br__free(p);
        return rc;
    }
    p->mgr_started = true;
    atomic_fetch_add(&live_pools, 1);
    if (p->method == BR_START_FORK) /* see "Who does what" above */
        br_event_wait(&p->first_starts, BR_FOREVER);
    *out = &p->base;
    return 0;
}

int br_processpool_terminate(br_executor *ex) {
    pp *p = as_pp(ex);
    if (p == NULL)
        return BR__MISUSE(BR_EINVAL, "br_processpool_terminate: not a process pool");
    if (getpid() != p->owner)
        return 0;
    control(p, true, true);
    if (tls_manager_of == p)
        return BR_EDEADLK;
    return join_manager(p);
}

int br_processpool_pids(br_executor *ex, int *pids, int cap) {
    pp *p = as_pp(ex);
    if (p == NULL || (pids == NULL && cap > 0) || cap < 0)
        return BR__MISUSE(BR_EINVAL, "br_processpool_pids: bad arguments");
    pthread_mutex_lock(&p->mu);
    int n = 0;
    for (worker *w = p->workers; w; w = w->next_w) {
        if (!atomic_load(&w->dead) && !w->retiring) {
            if (n < cap)
                pids[n] = (int)w->pid;
            n++;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return n;
}
