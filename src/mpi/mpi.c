/* The executor over MPI ranks (braid/mpi.h): rank 0's executor and progress thread, the
 * worker ranks' loop, and the messages between them.
 *
 * Design notes (the protocol a change must keep).
 *
 * Launch (SPMD). Every rank runs the program; br_mpi_main initialises MPI and diverts
 * ranks 1..N-1 into worker_loop, which returns only at STOP (then MPI_Finalize and
 * exit(0)). Rank 0 broadcasts its host name and pid at init (MPI_Bcast, collective on
 * all ranks): a worker on rank 0's host takes absolute deadlines as they are (one
 * CLOCK_MONOTONIC per host), one elsewhere converts them from the time left. The ranks'
 * communicator, g_comm, is MPI_COMM_WORLD.
 *
 * Launch (spawn). A rank 0 alone in its job (a singleton, or mpirun -n 1) whose executor
 * asks for opts.spawn = n starts n processes of its own binary (/proc/self/exe, its
 * arguments) with MPI_Comm_spawn (on MPI_COMM_SELF, errors returned, not fatal; as a
 * singleton with map_by :OVERSUBSCRIBE). Both sides then: MPI_Intercomm_merge (the
 * parent low: rank 0; a child is 1 + its rank in its own MPI_COMM_WORLD), which is
 * g_comm from then on; the same MPI_Bcast of rank 0's host and pid; an MPI_Gather of
 * the children's pids to rank 0. A child finds its parent (MPI_Comm_get_parent) in
 * br_mpi_main and does its side there, then serves as any worker rank. Everything
 * below is the same over either g_comm. The children stay until rank 0 finalizes and
 * serve every later executor; at STOP both sides free g_comm and MPI_Comm_disconnect
 * the intercommunicator before MPI_Finalize.
 * A spawned worker that dies: Open MPI ends the whole spawned job (every child) and
 * leaves rank 0, another job, running, with no error from MPI: messages to and from the
 * children just never complete. So while anything is in flight rank 0 looks at the
 * children's pids every ALIVE_EVERY_NS (kill 0); once one is gone, lose_workers fails
 * every pending task with BR_EWORKERDIED, breaks the executor (submit: BR_EBROKEN, as a
 * new executor), and finalize skips STOP and the disconnect. A big result's receive
 * still pending from them is cancelled (MPI_Cancel): its task fails as the others. What
 * MPI may still touch, a receive it couldn't cancel (its bytes had begun to arrive)
 * and the sends still pending to them, goes with its memory to the orphans: freed once
 * the request completes, or by br_mpi_finalize after MPI_Finalize; never while MPI may
 * read or write it, and never leaked.
 *
 * Threads and MPI. Rank 0: the main thread calls MPI_Init_thread and MPI_Finalize;
 * between them only the executor's progress thread calls MPI (one executor at a time,
 * its thread joined before the next starts or MPI is finalized), so
 * MPI_THREAD_SERIALIZED is enough. Submitters never call MPI: they push units (one task,
 * or a br_map chunk) on `queue` under `mu` and signal `cv` if the progress thread
 * sleeps there. A worker rank: the main thread does all the MPI (probe, receive, send);
 * its runner threads (one per slot on this rank) run tasks and never call MPI.
 *
 * Messages (tags; all on g_comm, byte buffers, 8-byte aligned fields):
 *   SESSION  0 -> w   int32 threads (runner threads this rank needs for the new
 *                     executor), u32 has_init, u64 arg_len, u64 session (the
 *                     executor's number, process-wide on rank 0, from 1), then with
 *                     has_init the initializer's br__fnref and its argument padded to 8.
 *                     The worker runs the initializer on its main thread before it
 *                     reads anything else, so before the session's first task. If it
 *                     fails, the rank is broken for the session: it sends a result with
 *                     id 0 (FAILED, the code, and as its bytes the u64 session then
 *                     "the initializer failed: ..."), ahead of any other result, and
 *                     answers every task of the session FAILED BR_EBROKEN without
 *                     running it. The next SESSION clears it. Rank 0 acts on a report
 *                     of its own session only: an executor that broke on one rank's
 *                     report (or was freed first) doesn't wait for the others, which
 *                     reach a later executor late and are dropped there.
 *   TASKS    0 -> w   u32 ndefs, u32 first_def, br__fnref defs[ndefs] (function table
 *                     entries this rank hasn't had yet: the table is append-only and
 *                     process-wide on rank 0, and each rank got its entries in order),
 *                     u32 ntasks, u32 0, then per task: u64 id, i64 deadline (absolute,
 *                     rank 0's clock, BR_FOREVER for none), i64 time left then (ns),
 *                     u32 fn (table index), u32 len, the argument padded to 8 -- unless
 *                     len >= BIG_BYTES: then no bytes here, they follow (ARG).
 *                     A br_map chunk is one TASKS message.
 *   ARG      0 -> w   a big argument's bytes, one message per big task of the TASKS
 *                     message just before it, in its order, sent from the task's own
 *                     copy (made at submit; the future is held until the send is done).
 *                     The worker receives them (blocking: they are on their way) as it
 *                     reads the TASKS message, into a buffer the task then reads.
 *   RESULTS  w -> 0   u32 n, u32 0, then per result: u64 id, i32 code, u32 kind (OK:
 *                     the result bytes; FAILED: code and message bytes with their NUL, or
 *                     none; CANCELLED), u64 len, the bytes padded to 8 -- for OK with
 *                     len >= BIG_BYTES no bytes here: they follow (RDATA). A worker sends
 *                     what finished since its last send in one message, when nothing
 *                     is queued behind the running tasks, or OUT_BATCH results wait, or
 *                     the oldest waited OUT_HOLD_NS (a chunk's results go back in a few
 *                     messages, a lone task's at once).
 *   RDATA    w -> 0   a big result's bytes, one message per big result of the RESULTS
 *                     message just before it, in its order, sent from the worker's own
 *                     future (held until the send is done: no outbox or message copy).
 *                     Rank 0 posts a receive for each (MPI_Irecv) as it reads its
 *                     header, into a buffer of the executor's, and tests it in the
 *                     progress loop with everything else (recvs_poll; the loop spins
 *                     while one is pending, as a blocking receive would): once complete
 *                     the buffer becomes the future's result (br__task_result_adopt),
 *                     no copy. Never a blocking receive: a spawned worker that dies
 *                     before or while it sends the bytes leaves a receive pending, and
 *                     the liveness check still runs (lose_workers). If the task is gone
 *                     the bytes are received anyway and dropped, so the stream stays in
 *                     step. ARG and RDATA keep their order behind their message by
 *                     MPI's non-overtaking rule (same source, destination, communicator)
 *                     and because a source's receives match in the order posted (the
 *                     worker reads ARG before probing again; rank 0 posts RDATA's
 *                     receives in header order).
 *   CANCEL   0 -> w   u64 id: a task on that rank was asked to stop (a queued one is
 *                     skipped and answered CANCELLED; a running one sees
 *                     br_task_cancelled turn true).
 *   STOP     0 -> w   empty: rank 0 is finalizing; the worker ends its loop.
 * Every task sent is answered exactly once. Sends are MPI_Isend on both sides (the
 * buffer kept until the request completes), so two large messages crossing never block
 * each other. Rank 0 never blocks in MPI (it receives only what it probed, and RDATA
 * through a pending receive); a worker blocks only on a receive it has probed and on
 * a big argument's bytes behind their TASKS message (ARG).
 *
 * Rank 0's flow. A task is claimed (br__task_begin) when it goes into a TASKS message;
 * the in-flight table maps its id to the task and its rank. At most prefetch x slots
 * tasks are in flight per rank (plus one chunk); work goes to the rank with the most
 * room. Chunks are double-buffered: a rank whose last chunk is half answered takes the
 * next chunk even without room, so it never waits for rank 0 to pack one. Results finish
 * futures on the progress thread (done-callbacks run there). Cancel requests on in-flight
 * tasks are polled (br__task_cancel_requested) every CANCEL_POLL_NS while any are in
 * flight, and forwarded once; with so many in flight that a scan takes longer than
 * CANCEL_POLL_NS / CANCEL_POLL_SHARE (big br_map chunks), every CANCEL_POLL_SHARE x the
 * scan's time (a 5 % share of the progress thread).
 *
 * Waiting without sleep-polling where nothing can arrive. MPI has no descriptor to block
 * on together with a local event, and Open MPI's blocking receive spins a core anyway.
 * So: rank 0's progress thread with nothing in flight and nothing queued blocks on `cv`
 * (no CPU: no result can arrive); with work in flight it probes and yields for SPIN_NS
 * after the last activity, then waits on `cv` for a time that doubles from 1 us to
 * POLL_MAX_NS (a submit wakes it at once). A worker rank has no such local event for "a
 * task came", so it probes with the same back-off, and once it has had nothing at all
 * (no live message, no result unsent) for IDLE_AFTER_NS the back-off goes on doubling
 * up to a tenth of the time it has been idle (IDLE_SHARE), at most IDLE_POLL_MAX_NS:
 * only the first message after a pause waits for it, by at most a tenth of the pause.
 * docs/mpi.md gives the idle CPU this costs. Busy (a worker whose runners all have a
 * task and more wait; rank 0 when every rank holds more tasks than it has slots), with
 * tasks of BUSY_TASK_NS or longer (the worker smooths their running time, rank 0 the
 * gap between results): nothing that can arrive soon is needed to keep a slot working,
 * so neither spins, and the back-off runs from BUSY_POLL_FIRST_NS to
 * BUSY_POLL_MAX_NS (a result or a CANCEL is then seen up to 2 ms late). A compute-bound
 * br_map thus costs a few wake-ups per task instead of a spin and dozens.
 */
#include "braid/mpi.h"

#include "executor/private.h"
#include "mpi/hooks.h"
#include "process/start.h"

#include <mpi.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    TAG_SESSION = 11,
    TAG_TASKS = 12,
    TAG_RESULTS = 13,
    TAG_CANCEL = 14,
    TAG_STOP = 15,
    TAG_ARG = 16,   /* a big argument's bytes, behind its TASKS message */
    TAG_RDATA = 17, /* a big result's bytes, behind its RESULTS message */
    KIND_OK = 0,
    KIND_FAILED = 1,
    KIND_CANCELLED = 2,
    DEFAULT_PREFETCH = 8,
    MAX_PREFETCH = 256,
    MAX_SLOTS_PER_RANK = 64,
    MAX_SPAWN = 1024,
    MSG_SOFT_MAX = 64 << 10, /* a TASKS message of single tasks stops growing here */
    MSG_LIMIT = (1 << 30), /* an argument, a chunk's arguments, a result: at most this */
    OUT_BATCH = 256,         /* a worker sends its results once this many wait... */
    CHUNK_AUTO_BYTES = 32 << 10, /* br_map's automatic chunks: a message at most this */
    BIG_BYTES = 64 << 10, /* an argument or result this long goes as a message of its own */
    HOST_MAX = 256,
    WHY_MAX = 256
};
#define CANCEL_POLL_NS (1000 * 1000)
#define CANCEL_POLL_SHARE 20 /* a cancel scan at most every 20 x its own duration */
#define POLL_MAX_NS (200 * 1000) /* the back-off's longest wait */
#define SPIN_NS (100 * 1000)     /* probing and yielding after the last activity */
#define BUSY_POLL_FIRST_NS (100 * 1000) /* the back-off when busy (next_backoff) */
#define BUSY_POLL_MAX_NS (2000 * 1000)
#define BUSY_TASK_NS (1000 * 1000) /* busy only with tasks of this long or longer */
#define IDLE_AFTER_NS (50 * 1000 * 1000)    /* a worker idle this long backs off further: */
#define IDLE_SHARE 10                       /* to a tenth of its idle time so far... */
#define IDLE_POLL_MAX_NS (10 * 1000 * 1000) /* ...and at most this */
#define OUT_HOLD_NS (200 * 1000) /* ...or its queue is empty, or the oldest waited this */
#define ALIVE_EVERY_NS (20 * 1000 * 1000) /* spawned workers: looked at this often */

/* --- process-wide state ------------------------------------------------------------ */

static int g_rank = -1, g_size = -1, g_root_pid = -1;
static MPI_Comm g_comm = MPI_COMM_NULL; /* the ranks: MPI_COMM_WORLD or the spawn's merge */
static MPI_Comm g_inter = MPI_COMM_NULL; /* spawn: the intercommunicator (either side) */
static int g_spawned;                    /* rank 0: worker processes it spawned */
static char **g_argv;                    /* rank 0: the program's arguments, for spawn */
static int spawn_workers(int n);
static int32_t *g_worker_pids;          /* rank 0, spawned: each worker's pid (by rank) */
static _Atomic bool g_lost;             /* rank 0, spawned: the workers are gone */
static bool g_main_ran, g_finalized, g_same_host;
static char g_host[HOST_MAX];

/* Rank 0's function table (append-only) and what each rank has had of it. */
typedef struct fn_entry {
    br__fnptr fn;
    br__fnref ref;
} fn_entry;
static pthread_mutex_t fn_mu = PTHREAD_MUTEX_INITIALIZER;
static fn_entry *fn_tab;
static uint32_t fn_n, fn_cap;
static uint32_t *fn_sent; /* per rank; the progress thread's */

static pthread_mutex_t cur_mu = PTHREAD_MUTEX_INITIALIZER;
static br_executor *g_current; /* the live MPI executor, or NULL */
static uint64_t g_session;     /* rank 0: the last executor's session number (cur_mu) */

/* Rank 0: transfers to or from lost spawned workers that MPI may still be doing
 * (lose_workers): each request with the memory it reads or writes, a heap block (p) or
 * a future's bytes (hold). Kept until the request completes or MPI is finalized
 * (br_mpi_finalize frees them after MPI_Finalize): never freed while MPI may touch it.
 * The progress thread's while an executor runs, the main thread's after (one executor
 * at a time, its thread joined before the next starts or finalize runs). */
typedef struct orphan {
    MPI_Request req;
    void *p;
    br_future *hold;
} orphan;
static orphan *g_orphans;
static size_t g_norphans, g_caporphans;

/* Test hooks (mpi/hooks.h). */
static _Atomic bool g_die_before_rdata; /* a worker: die after a big result's header */
static bool g_spawn_no_over;            /* rank 0: a singleton's spawn without
                                         * oversubscription */
void br__mpi_test_die_before_rdata(void) { atomic_store(&g_die_before_rdata, true); }
void br__mpi_test_spawn_no_oversubscribe(bool on) { g_spawn_no_over = on; }

/* --- a byte buffer ------------------------------------------------------------------ */

typedef struct buf {
    unsigned char *p;
    size_t len, cap;
} buf;

static int buf_room(buf *b, size_t n) {
    if (b->len + n + 8 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 8)
        cap *= 2;
    unsigned char *p = br__malloc(cap);
    if (p == NULL)
        return BR_ENOMEM;
    if (b->len)
        memcpy(p, b->p, b->len);
    br__free(b->p);
    b->p = p;
    b->cap = cap;
    return 0;
}
/* Appends n bytes and pads to 8. */
static int buf_put(buf *b, const void *data, size_t n) {
    size_t pad = (8 - (n & 7)) & 7;
    if (buf_room(b, n + pad) != 0)
        return BR_ENOMEM;
    if (n)
        memcpy(b->p + b->len, data, n);
    memset(b->p + b->len + n, 0, pad);
    b->len += n + pad;
    return 0;
}

typedef struct rd {
    const unsigned char *p;
    size_t len, at;
} rd;
/* Reads n bytes (padded to 8); NULL if the message is short. */
static const void *rd_get(rd *r, size_t n) {
    size_t pad = (8 - (n & 7)) & 7;
    if (r->len - r->at < n + pad || n + pad < n)
        return NULL;
    const void *q = r->p + r->at;
    r->at += n + pad;
    return q;
}

typedef struct task_hdr {
    uint64_t id;
    int64_t deadline;
    int64_t left;
    uint32_t fn;
    uint32_t len;
} task_hdr;

typedef struct session_hdr {
    int32_t threads;
    uint32_t has_init;
    uint64_t arg_len;
    uint64_t session; /* the executor's number: its "initializer failed" reports carry it */
} session_hdr;

typedef struct result_hdr {
    uint64_t id;
    int32_t code;
    uint32_t kind;
    uint64_t len;
} result_hdr;

/* Sends in flight: the buffer lives until the request completes. */
typedef struct send_req {
    MPI_Request req;
    unsigned char *p;  /* freed when done; or NULL, and: */
    br_future *hold;   /* released when done (the bytes are its argument or result) */
} send_req;
typedef struct sends {
    send_req *v;
    size_t n, cap;
} sends;

static int sends_room(sends *s) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        send_req *v = br__malloc(cap * sizeof *v);
        if (v == NULL)
            return BR_ENOMEM;
        if (s->n)
            memcpy(v, s->v, s->n * sizeof *v);
        br__free(s->v);
        s->v = v;
        s->cap = cap;
    }
    return 0;
}
static int sends_add(sends *s, buf *b, int dest, int tag) {
    if (sends_room(s) != 0)
        return BR_ENOMEM;
    send_req *r = &s->v[s->n];
    if (MPI_Isend(b->p, (int)b->len, MPI_BYTE, dest, tag, g_comm, &r->req) !=
        MPI_SUCCESS)
        return BR_EIO;
    r->p = b->p;
    r->hold = NULL;
    s->n++;
    b->p = NULL;
    b->len = b->cap = 0;
    return 0;
}
/* Sends len bytes at p, which are hold's (a big argument or result: sent from where they
 * are, without a copy); hold is the caller's reference, released when the send is done. */
static int sends_add_held(sends *s, const void *p, size_t len, int dest, int tag,
                          br_future *hold) {
    if (sends_room(s) != 0)
        return BR_ENOMEM;
    send_req *r = &s->v[s->n];
    if (MPI_Isend(p, (int)len, MPI_BYTE, dest, tag, g_comm, &r->req) != MPI_SUCCESS)
        return BR_EIO;
    r->p = NULL;
    r->hold = hold;
    s->n++;
    return 0;
}
static void send_done(send_req *r) {
    if (r->hold)
        br_future_release(r->hold);
    else
        br__free(r->p);
}
/* Completes finished sends; true if any did. */
static bool sends_poll(sends *s) {
    bool any = false;
    for (size_t i = 0; i < s->n;) {
        int done = 0;
        MPI_Test(&s->v[i].req, &done, MPI_STATUS_IGNORE);
        if (done) {
            send_done(&s->v[i]);
            s->v[i] = s->v[--s->n];
            any = true;
        } else {
            i++;
        }
    }
    return any;
}
/* Keeps a request and the memory it reads or writes (p, a heap block, or hold's bytes)
 * until it completes or MPI is finalized. Out of memory, the memory is left to MPI for
 * good: a leak, never a use after free. */
static void orphan_add(MPI_Request req, void *p, br_future *hold) {
    if (g_norphans == g_caporphans) {
        size_t cap = g_caporphans ? g_caporphans * 2 : 8;
        orphan *v = br__malloc(cap * sizeof *v);
        if (v == NULL) {
            MPI_Request_free(&req);
            return;
        }
        if (g_norphans)
            memcpy(v, g_orphans, g_norphans * sizeof *v);
        br__free(g_orphans);
        g_orphans = v;
        g_caporphans = cap;
    }
    g_orphans[g_norphans++] = (orphan){.req = req, .p = p, .hold = hold};
}
static void orphan_drop(orphan *o) {
    if (o->hold)
        br_future_release(o->hold);
    else
        br__free(o->p);
}

static void sends_drain(sends *s) {
    for (size_t i = 0; i < s->n; i++) {
        MPI_Wait(&s->v[i].req, MPI_STATUS_IGNORE);
        send_done(&s->v[i]);
    }
    br__free(s->v);
    memset(s, 0, sizeof *s);
}

/* The waits' first phase (skipped when busy: next_backoff): true once SPIN_NS have passed
 * since *since (set at the first quiet look; 0 = activity just now), after which the
 * caller backs off. */
static bool spin_over(int64_t *since) {
    int64_t now = br_now();
    if (*since == 0)
        *since = now;
    return now - *since >= SPIN_NS;
}

/* The back-off's next wait: doubling from 1 us to POLL_MAX_NS, or when busy (every
 * task slot has a task and more wait behind them) from BUSY_POLL_FIRST_NS to
 * BUSY_POLL_MAX_NS; a worker idle for idle_ns (0: not idle) of IDLE_AFTER_NS or more
 * goes on doubling to idle_ns / IDLE_SHARE, at most IDLE_POLL_MAX_NS. */
static int64_t next_backoff(int64_t backoff, bool busy, int64_t idle_ns) {
    int64_t first = busy ? BUSY_POLL_FIRST_NS : 1000;
    int64_t max = busy ? BUSY_POLL_MAX_NS : POLL_MAX_NS;
    if (!busy && idle_ns >= IDLE_AFTER_NS)
        max = idle_ns / IDLE_SHARE < IDLE_POLL_MAX_NS ? idle_ns / IDLE_SHARE : IDLE_POLL_MAX_NS;
    backoff = backoff ? backoff * 2 : first;
    return backoff > max ? max : backoff < first ? first : backoff;
}

/* Receives the probed message into a new heap buffer. */
static unsigned char *recv_probed(MPI_Status *st, int *len) {
    int n = 0;
    MPI_Get_count(st, MPI_BYTE, &n);
    unsigned char *p = br__malloc(n > 0 ? (size_t)n : 1);
    if (p == NULL)
        return NULL;
    MPI_Recv(p, n, MPI_BYTE, st->MPI_SOURCE, st->MPI_TAG, g_comm,
             MPI_STATUS_IGNORE);
    *len = n;
    return p;
}

/* Waits ns on cv (under mu). */
static void cv_wait_ns(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ns) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)(ns % 1000000000);
    ts.tv_sec += (time_t)(ns / 1000000000) + ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    pthread_cond_timedwait(cv, mu, &ts);
}
static int cv_init_mono(pthread_cond_t *cv) {
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return rc;
}

/* ===================================================================================
 * Worker ranks
 * =================================================================================== */

typedef struct wmsg wmsg;
typedef struct job {
    struct job *next;
    wmsg *msg;
    uint64_t id;
    br__fnptr fn;      /* NULL: unresolved (err, why) */
    int err;
    int64_t deadline;
    const void *arg;
    size_t len;
    void *own;         /* a big argument's bytes (received on their own), or NULL */
    _Atomic uint32_t cancel;
    _Atomic int state; /* 0 queued, 1 running, 2 done */
} job;
struct wmsg {          /* a TASKS message: its bytes and jobs live until the last is done */
    wmsg *next, *prev;
    unsigned char *bytes;
    _Atomic size_t left;
    size_t njobs, cap;
    job jobs[];
};
typedef struct wres {
    struct wres *next;
    result_hdr h;
    br_future *hold;   /* a big result: the bytes are this future's (sent from there) */
    const void *held;
    unsigned char data[];
} wres;

typedef struct wfn {
    br__fnptr fn;
    int err;
    char why[WHY_MAX + 64]; /* "rank R: can't find the task's function: " + the reason */
} wfn;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* runners wait here for jobs */
    pthread_cond_t comm_cv; /* the main thread's back-off wait: a runner's result ends it */
    job *head, *tail;
    wres *out_head, *out_tail;
    size_t nout;            /* results in the outbox */
    int64_t out_since;      /* when the oldest of them came */
    bool comm_waiting;      /* the main thread waits on comm_cv */
    wmsg *msgs;             /* live messages (the main thread's, for CANCEL) */
    bool stop;
    int nthreads;
    pthread_t threads[MAX_SLOTS_PER_RANK];
    wfn *fns;
    uint32_t nfns, capfns;
    wmsg *spare;            /* a freed message kept for its jobs array */
    int64_t task_ns;        /* the tasks' running time, smoothed (busy needs long ones) */
    bool broken;            /* this executor's initializer failed here */
    char broken_why[WHY_MAX + 64];
    uint64_t session;       /* the executor's number (its SESSION message's) */
} W = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void w_queue_result(wres *r);
static void w_push_result(const result_hdr *h, const void *data) {
    wres *r = br__malloc(sizeof *r + (size_t)h->len + 1);
    if (r == NULL) { /* answer without the payload: the task is not lost */
        r = br__malloc(sizeof *r);
        if (r == NULL)
            abort(); /* nothing sane is left: MPI aborts the job */
        r->h = *h;
        r->h.kind = KIND_FAILED;
        r->h.code = BR_ENOMEM;
        r->h.len = 0;
    } else {
        r->h = *h;
        if (h->len)
            memcpy(r->data, data, (size_t)h->len);
    }
    r->hold = NULL;
    r->held = NULL;
    w_queue_result(r);
}

/* A big result, kept where the task put it: f (the caller's reference) goes with it
 * and is released once its bytes are sent. */
static void w_push_held(const result_hdr *h, br_future *f, const void *data) {
    wres *r = br__malloc(sizeof *r);
    if (r == NULL)
        abort(); /* nothing sane is left: MPI aborts the job */
    r->h = *h;
    r->hold = f;
    r->held = data;
    w_queue_result(r);
}

static void w_queue_result(wres *r) {
    r->next = NULL;
    pthread_mutex_lock(&W.mu);
    if (W.out_tail) {
        W.out_tail->next = r;
    } else {
        W.out_head = r;
        W.out_since = br_now();
    }
    W.out_tail = r;
    W.nout++;
    if (W.comm_waiting && (W.head == NULL || W.nout >= OUT_BATCH))
        pthread_cond_signal(&W.comm_cv);
    pthread_mutex_unlock(&W.mu);
}

static void w_run(job *j) {
    result_hdr h = {.id = j->id, .code = 0, .kind = KIND_OK, .len = 0};
    if (atomic_load(&j->cancel)) {
        h.kind = KIND_CANCELLED;
        h.code = BR_ECANCELED;
        w_push_result(&h, NULL);
        return;
    }
    if (j->fn == NULL) { /* the reader left the reason in arg */
        h.kind = KIND_FAILED;
        h.code = j->err;
        const char *why = (const char *)j->arg; /* set by the reader: the reason */
        h.len = why ? strlen(why) + 1 : 0;
        w_push_result(&h, why);
        return;
    }
    br_future *f = br__task_prepare((br_task_fn)j->fn, j->arg, j->len, BR__ARG_BORROW,
                                    j->deadline, 2);
    if (f == NULL) {
        h.kind = KIND_FAILED;
        h.code = BR_ENOMEM;
        w_push_result(&h, NULL);
        return;
    }
    br_task *t = br__future_task(f);
    br__task_set_external_cancel(t, &j->cancel);
    int rc = br__task_run(t);
    br__task_set_external_cancel(NULL, NULL);
    int code = 0;
    const char *msg = NULL;
    if (br_future_cancelled(f) || (rc == BR_ECANCELED && atomic_load(&j->cancel))) {
        h.kind = KIND_CANCELLED;
        h.code = BR_ECANCELED;
        w_push_result(&h, NULL);
    } else if (br_future_exception(f, BR_NOWAIT, &code, &msg) == 0 && code < 0) {
        h.kind = KIND_FAILED;
        h.code = code;
        h.len = msg ? strlen(msg) + 1 : 0;
        w_push_result(&h, msg);
    } else {
        const void *data = NULL;
        size_t len = 0;
        if (br_future_result(f, BR_NOWAIT, &data, &len) != 0 || data == NULL)
            len = 0;
        if (len > MSG_LIMIT) {
            static const char big[] = "the result is too big for one MPI message";
            h.kind = KIND_FAILED;
            h.code = BR_ENOTSUP;
            h.len = sizeof big;
            w_push_result(&h, big);
        } else if (len >= BIG_BYTES) {
            h.len = len;
            w_push_held(&h, f, data); /* f goes with it */
            return;
        } else {
            h.len = len;
            w_push_result(&h, data);
        }
    }
    br_future_release(f);
}

static void *w_runner(void *arg) {
    (void)arg;
    pthread_mutex_lock(&W.mu);
    for (;;) {
        while (W.head == NULL && !W.stop)
            pthread_cond_wait(&W.cv, &W.mu);
        if (W.head == NULL)
            break;
        job *j = W.head;
        W.head = j->next;
        if (W.head == NULL)
            W.tail = NULL;
        atomic_store(&j->state, 1);
        pthread_mutex_unlock(&W.mu);
        int64_t t0 = br_now();
        w_run(j);
        int64_t took = br_now() - t0;
        atomic_store(&j->state, 2);
        atomic_fetch_sub(&j->msg->left, 1);
        pthread_mutex_lock(&W.mu);
        W.task_ns += (took - W.task_ns) / 8; /* the tasks' running time, smoothed */
    }
    pthread_mutex_unlock(&W.mu);
    return NULL;
}

/* The main thread: frees messages whose jobs are all done. */
static void w_reap_msgs(void) {
    for (wmsg *m = W.msgs, *next; m; m = next) {
        next = m->next;
        if (atomic_load(&m->left) != 0)
            continue;
        if (m->prev)
            m->prev->next = m->next;
        else
            W.msgs = m->next;
        if (m->next)
            m->next->prev = m->prev;
        br__free(m->bytes);
        for (size_t i = 0; i < m->njobs; i++)
            br__free(m->jobs[i].own);
        /* the biggest is kept for the next message: a big chunk's jobs are a fresh
         * mmap each time otherwise, and its page faults cost more than the tasks */
        if (W.spare == NULL || W.spare->cap < m->cap) {
            br__free(W.spare);
            W.spare = m;
        } else {
            br__free(m);
        }
    }
}

/* A TASKS message: resolves its function definitions and queues its jobs. */
static void w_tasks(unsigned char *bytes, int n) {
    rd r = {bytes, (size_t)n, 0};
    const uint32_t *hd = rd_get(&r, 8);
    if (hd == NULL)
        abort();
    uint32_t ndefs = hd[0], first = hd[1];
    if (first != W.nfns) /* rank 0 sends each entry once, in order */
        abort();
    for (uint32_t i = 0; i < ndefs; i++) {
        const br__fnref *ref = rd_get(&r, sizeof(br__fnref));
        if (ref == NULL)
            abort();
        if (W.nfns == W.capfns) {
            uint32_t cap = W.capfns ? W.capfns * 2 : 16;
            wfn *v = br__malloc(cap * sizeof *v);
            if (v == NULL)
                abort();
            if (W.nfns)
                memcpy(v, W.fns, W.nfns * sizeof *v);
            br__free(W.fns);
            W.fns = v;
            W.capfns = cap;
        }
        wfn *e = &W.fns[W.nfns++];
        memset(e, 0, sizeof *e);
        char why[WHY_MAX] = "";
        e->err = br__fnref_resolve(ref, &e->fn, why, sizeof why);
        if (e->err != 0) {
            e->fn = NULL;
            snprintf(e->why, sizeof e->why, "rank %d: can't find the task's function: %s",
                     g_rank, why);
        }
    }
    const uint32_t *tc = rd_get(&r, 8);
    if (tc == NULL)
        abort();
    uint32_t ntasks = tc[0];
    wmsg *m = W.spare;
    if (m != NULL && m->cap >= ntasks) {
        W.spare = NULL;
    } else {
        m = br__malloc(sizeof *m + (size_t)ntasks * sizeof(job));
        if (m == NULL)
            abort();
        m->cap = ntasks;
    }
    m->bytes = bytes;
    m->njobs = ntasks;
    atomic_init(&m->left, ntasks);
    int64_t now = br_now();
    for (uint32_t i = 0; i < ntasks; i++) {
        job *j = &m->jobs[i];
        const task_hdr *th = rd_get(&r, sizeof *th);
        if (th == NULL)
            abort();
        memset(j, 0, sizeof *j);
        j->msg = m;
        j->id = th->id;
        if (th->deadline == BR_FOREVER)
            j->deadline = BR_FOREVER;
        else if (g_same_host)
            j->deadline = th->deadline;
        else
            j->deadline = th->left <= 0 ? now : br_deadline_after(th->left);
        j->len = th->len;
        if (th->len >= BIG_BYTES) {
            /* its bytes come on their own, right behind this message, in task order:
             * received where the task reads them, with no copy into a message */
            j->own = br__malloc(th->len);
            if (j->own == NULL)
                abort();
            MPI_Recv(j->own, (int)th->len, MPI_BYTE, 0, TAG_ARG, g_comm, MPI_STATUS_IGNORE);
            j->arg = j->own;
        } else {
            j->arg = rd_get(&r, th->len);
        }
        if (j->arg == NULL)
            abort();
        if (W.broken) {
            j->fn = NULL;
            j->err = BR_EBROKEN;
            j->arg = W.broken_why;
        } else if (th->fn >= W.nfns) {
            j->fn = NULL;
            j->err = BR_EINVAL;
            j->arg = "function index out of range";
        } else if (W.fns[th->fn].fn == NULL) {
            j->fn = NULL;
            j->err = W.fns[th->fn].err;
            j->arg = W.fns[th->fn].why;
        } else {
            j->fn = W.fns[th->fn].fn;
        }
        atomic_init(&j->cancel, 0);
        atomic_init(&j->state, 0);
    }
    m->prev = NULL;
    m->next = W.msgs;
    if (W.msgs)
        W.msgs->prev = m;
    W.msgs = m;
    if (ntasks == 0)
        return;
    pthread_mutex_lock(&W.mu);
    for (uint32_t i = 0; i < ntasks; i++) {
        job *j = &m->jobs[i];
        if (W.tail)
            W.tail->next = j;
        else
            W.head = j;
        W.tail = j;
    }
    if (ntasks == 1)
        pthread_cond_signal(&W.cv);
    else
        pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
}

static void w_cancel(uint64_t id) {
    for (wmsg *m = W.msgs; m; m = m->next)
        for (size_t i = 0; i < m->njobs; i++)
            if (m->jobs[i].id == id && atomic_load(&m->jobs[i].state) != 2) {
                atomic_store(&m->jobs[i].cancel, 1);
                return;
            }
}

/* Runs the session's initializer on this (the main) thread; a failure breaks this
 * rank for the session and goes to rank 0 as the result with id 0. */
static void w_init(const br__fnref *ref, const void *arg, size_t len) {
    br__fnptr fn = NULL;
    char why[WHY_MAX] = "";
    int code = br__fnref_resolve(ref, &fn, why, sizeof why);
    const char *msg = why;
    br_future *f = NULL;
    if (code == 0) {
        f = br__task_prepare((br_task_fn)fn, arg, len, BR__ARG_BORROW, BR_FOREVER, 2);
        if (f == NULL) {
            code = BR_ENOMEM;
            msg = NULL;
        } else {
            (void)br__task_run(br__future_task(f));
            int c = 0;
            const char *m = NULL;
            if (br_future_exception(f, BR_NOWAIT, &c, &m) == 0 && c < 0) {
                code = c;
                msg = m;
            }
        }
    }
    if (code < 0) {
        W.broken = true;
        snprintf(W.broken_why, sizeof W.broken_why, "the initializer failed: %s",
                 msg && *msg ? msg : br_strerror(code));
        /* the report: the session's number, then the message */
        unsigned char rep[sizeof(uint64_t) + sizeof W.broken_why];
        size_t n = strlen(W.broken_why) + 1;
        memcpy(rep, &W.session, sizeof W.session);
        memcpy(rep + sizeof W.session, W.broken_why, n);
        result_hdr h = {.id = 0, .code = code, .kind = KIND_FAILED,
                        .len = sizeof W.session + n};
        w_push_result(&h, rep);
    }
    if (f)
        br_future_release(f);
}

/* A SESSION message: the runner threads, then the initializer (before any task of the
 * session: the TASKS messages behind it are read after it returns). */
static void w_session(const unsigned char *bytes, int n) {
    rd r = {bytes, (size_t)n, 0};
    const session_hdr *sh = rd_get(&r, sizeof *sh);
    if (sh == NULL)
        abort();
    int threads = sh->threads > MAX_SLOTS_PER_RANK ? MAX_SLOTS_PER_RANK : sh->threads;
    while (W.nthreads < threads) {
        if (pthread_create(&W.threads[W.nthreads], NULL, w_runner, NULL) != 0)
            abort();
        W.nthreads++;
    }
    W.broken = false;
    W.session = sh->session;
    if (sh->has_init) {
        const br__fnref *ref = rd_get(&r, sizeof *ref);
        const void *arg = ref ? rd_get(&r, (size_t)sh->arg_len) : NULL;
        if (arg == NULL)
            abort();
        w_init(ref, arg, (size_t)sh->arg_len);
    }
}

/* Packs every finished result into one RESULTS message. */
static void w_send_results(sends *s) {
    pthread_mutex_lock(&W.mu);
    wres *r = W.out_head;
    W.out_head = W.out_tail = NULL;
    W.nout = 0;
    pthread_mutex_unlock(&W.mu);
    if (r == NULL)
        return;
    while (r) { /* one message, or more if they would pass MSG_LIMIT together */
        buf b = {0};
        uint32_t hd[2] = {0, 0};
        if (buf_put(&b, hd, sizeof hd) != 0)
            abort();
        uint32_t n = 0;
        wres *held = NULL, **held_tail = &held; /* big ones: their bytes follow */
        while (r && (n == 0 || b.len + sizeof r->h + (r->hold ? 0 : (size_t)r->h.len) + 8 <=
                                   MSG_LIMIT)) {
            wres *next = r->next;
            if (buf_put(&b, &r->h, sizeof r->h) != 0 ||
                (r->hold == NULL && buf_put(&b, r->data, (size_t)r->h.len) != 0))
                abort();
            n++;
            if (r->hold) {
                r->next = NULL;
                *held_tail = r;
                held_tail = &r->next;
            } else {
                br__free(r);
            }
            r = next;
        }
        memcpy(b.p, &n, sizeof n);
        if (held != NULL && atomic_load(&g_die_before_rdata)) {
            /* test hook (mpi/hooks.h): rank 0 has received the header (a synchronous
             * send), and this worker dies before the bytes */
            MPI_Ssend(b.p, (int)b.len, MPI_BYTE, 0, TAG_RESULTS, g_comm);
            fflush(NULL);
            raise(SIGKILL);
        }
        if (sends_add(s, &b, 0, TAG_RESULTS) != 0)
            abort();
        while (held) { /* in order, from the task's future: no outbox or message copy */
            wres *next = held->next;
            if (sends_add_held(s, held->held, (size_t)held->h.len, 0, TAG_RDATA,
                               held->hold) != 0)
                abort();
            br__free(held);
            held = next;
        }
    }
}

static void worker_loop(void) {
    cv_init_mono(&W.comm_cv);
    pthread_cond_init(&W.cv, NULL);
    sends s = {0};
    int64_t backoff = 0, quiet_since = 0, idle_since = 0;
    for (;;) {
        bool work = false, stop = false;
        for (;;) {
            int flag = 0;
            MPI_Status st;
            MPI_Iprobe(0, MPI_ANY_TAG, g_comm, &flag, &st);
            if (!flag)
                break;
            work = true;
            int n = 0;
            unsigned char *p = recv_probed(&st, &n);
            if (p == NULL)
                abort();
            if (st.MPI_TAG == TAG_TASKS) {
                w_tasks(p, n);
                continue; /* p is the message's now */
            }
            if (st.MPI_TAG == TAG_CANCEL && n >= 8) {
                uint64_t id;
                memcpy(&id, p, sizeof id);
                w_cancel(id);
            } else if (st.MPI_TAG == TAG_SESSION) {
                w_session(p, n);
            } else if (st.MPI_TAG == TAG_STOP) {
                stop = true;
            }
            br__free(p);
            if (stop)
                break;
        }
        if (stop)
            break;
        pthread_mutex_lock(&W.mu);
        bool have = W.out_head != NULL &&
                    (W.head == NULL || W.nout >= OUT_BATCH ||
                     br_now() - W.out_since >= OUT_HOLD_NS);
        pthread_mutex_unlock(&W.mu);
        if (have) {
            w_send_results(&s);
            work = true;
        }
        if (sends_poll(&s))
            work = true;
        w_reap_msgs();
        if (work) {
            quiet_since = idle_since = 0;
            backoff = 0;
            continue;
        }
        /* busy: every runner has a task and more wait here, and tasks take a while, so
         * nothing that can come is urgent (a CANCEL may wait BUSY_POLL_MAX_NS); don't
         * spin, back off long. Short tasks drain the queue before then: not busy.
         * idle: no message live (nothing queued or running), no result unsent or
         * being sent; once that has lasted IDLE_AFTER_NS (longer than any gap
         * between a busy map's chunks, even on a loaded machine), the back-off grows
         * on, to a tenth of the idle time (at most IDLE_POLL_MAX_NS): only the first
         * message after a pause waits for it, and by at most a tenth of the pause. */
        pthread_mutex_lock(&W.mu);
        bool busy = W.head != NULL && W.task_ns >= BUSY_TASK_NS;
        bool idle = W.msgs == NULL && W.out_head == NULL && s.n == 0;
        pthread_mutex_unlock(&W.mu);
        if (!idle)
            idle_since = 0;
        else if (idle_since == 0)
            idle_since = br_now();
        if (!busy && !spin_over(&quiet_since)) {
            sched_yield();
            continue;
        }
        backoff = next_backoff(backoff, busy, idle_since != 0 ? br_now() - idle_since : 0);
        pthread_mutex_lock(&W.mu);
        W.comm_waiting = true;
        if (W.out_head == NULL || (W.head != NULL && W.nout < OUT_BATCH))
            cv_wait_ns(&W.comm_cv, &W.mu, backoff);
        W.comm_waiting = false;
        pthread_mutex_unlock(&W.mu);
    }
    /* STOP: rank 0 had nothing in flight; let the runners go and finish. */
    pthread_mutex_lock(&W.mu);
    W.stop = true;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
    for (int i = 0; i < W.nthreads; i++)
        pthread_join(W.threads[i], NULL);
    w_send_results(&s);
    sends_drain(&s);
    w_reap_msgs();
    br__free(W.spare);
    W.spare = NULL;
    br__free(W.fns);
}

/* ===================================================================================
 * Rank 0: the executor
 * =================================================================================== */

typedef struct unit {
    struct unit *next;
    size_t n;
    br_task *t[];
} unit;

typedef struct slot {  /* the in-flight table: id -> task */
    uint64_t id;       /* 0: empty */
    br_task *t;        /* NULL: failed already (a broken executor); the answer is dropped */
    int rank;
    bool cancel_sent;
} slot;

typedef struct rrecv { /* a big result's bytes on their way (RDATA) */
    MPI_Request req;
    br_task *t;         /* NULL: the task is gone, the bytes are dropped */
    void *p;            /* the executor's until the receive is over */
    size_t len;
    int rank;
} rrecv;

typedef struct mpx {
    br_executor base;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* the progress thread's sleep */
    pthread_cond_t done_cv; /* shutdown(wait) waiters */
    unit *head, *tail;
    bool shut, cancel_all, sleeping, thread_done, joined, joining;
    bool broken;                       /* an initializer failed: submit is BR_EBROKEN */
    pthread_t thr;
    int max_workers, prefetch, nranks; /* nranks: worker ranks used */
    bool plain;
    bool has_init;
    br__fnref init_ref;                /* the initializer, and its argument (owned) */
    void *initarg;
    size_t initarg_len;
    int *slots;                        /* per rank (index = rank) */
    /* the progress thread's own */
    size_t *inflight;                  /* per rank */
    size_t *last_chunk;                /* per rank: the size of the last chunk sent */
    int64_t last_result, result_gap;   /* when results last came; the gap per result,
                                        * smoothed (busy needs long tasks) */
    size_t ninflight;
    slot *tab;
    size_t tabcap;
    uint64_t next_id;
    int rr;
    sends s;
    br_task **bigs;                    /* the TASKS message being packed: its big */
    size_t nbig, capbig;               /* arguments, sent behind it */
    rrecv *recvs;                      /* big results being received */
    size_t nrecv, caprecv;
    uint64_t session;                  /* this executor's number (SESSION) */
} mpx;

static uint64_t hash64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}
static int tab_grow(mpx *m) {
    size_t cap = m->tabcap ? m->tabcap * 2 : 1024;
    slot *t = br__calloc(cap, sizeof *t);
    if (t == NULL)
        return BR_ENOMEM;
    for (size_t i = 0; i < m->tabcap; i++)
        if (m->tab[i].id) {
            size_t j = hash64(m->tab[i].id) & (cap - 1);
            while (t[j].id)
                j = (j + 1) & (cap - 1);
            t[j] = m->tab[i];
        }
    br__free(m->tab);
    m->tab = t;
    m->tabcap = cap;
    return 0;
}
static int tab_put(mpx *m, uint64_t id, br_task *t, int rank) {
    if ((m->ninflight + 1) * 2 > m->tabcap && tab_grow(m) != 0)
        return BR_ENOMEM;
    size_t j = hash64(id) & (m->tabcap - 1);
    while (m->tab[j].id)
        j = (j + 1) & (m->tabcap - 1);
    m->tab[j] = (slot){.id = id, .t = t, .rank = rank};
    m->ninflight++;
    m->inflight[rank]++;
    return 0;
}
/* Removes id; the slot's contents, or id 0 if absent. */
static slot tab_take(mpx *m, uint64_t id) {
    slot none = {0};
    if (m->tabcap == 0)
        return none;
    size_t mask = m->tabcap - 1, j = hash64(id) & mask;
    while (m->tab[j].id && m->tab[j].id != id)
        j = (j + 1) & mask;
    if (m->tab[j].id == 0)
        return none;
    slot out = m->tab[j];
    m->tab[j].id = 0;
    /* backward-shift deletion keeps every probe chain unbroken */
    for (size_t k = (j + 1) & mask; m->tab[k].id; k = (k + 1) & mask) {
        size_t home = hash64(m->tab[k].id) & mask;
        bool between = (j <= k) ? (home > j && home <= k) : (home > j || home <= k);
        if (!between) {
            m->tab[j] = m->tab[k];
            m->tab[k].id = 0;
            j = k;
        }
    }
    m->ninflight--;
    m->inflight[out.rank]--;
    return out;
}

/* The function's index in the table, adding it (and its reference) if new. */
static int fn_index(br__fnptr fn, uint32_t *out) {
    pthread_mutex_lock(&fn_mu);
    for (uint32_t i = fn_n; i-- > 0;)
        if (fn_tab[i].fn == fn) {
            *out = i;
            pthread_mutex_unlock(&fn_mu);
            return 0;
        }
    if (fn_n == fn_cap) {
        uint32_t cap = fn_cap ? fn_cap * 2 : 16;
        fn_entry *v = br__malloc(cap * sizeof *v);
        if (v == NULL) {
            pthread_mutex_unlock(&fn_mu);
            return BR_ENOMEM;
        }
        if (fn_n)
            memcpy(v, fn_tab, fn_n * sizeof *v);
        br__free(fn_tab);
        fn_tab = v;
        fn_cap = cap;
    }
    fn_entry *e = &fn_tab[fn_n];
    char why[WHY_MAX];
    int rc = br__fnref_make(&e->ref, fn, why, sizeof why);
    if (rc != 0) {
        pthread_mutex_unlock(&fn_mu);
        return BR_EINVAL; /* not a function another rank can find (a heap or JIT address) */
    }
    e->fn = fn;
    *out = fn_n++;
    pthread_mutex_unlock(&fn_mu);
    return 0;
}

static void wake(mpx *m) { /* under mu */
    if (m->sleeping)
        pthread_cond_signal(&m->cv);
}

static int enqueue(mpx *m, br_task *const tasks[], size_t n) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        (void)br_task_arg(tasks[i], &len);
        total += len + sizeof(task_hdr) + 8;
        if (len > MSG_LIMIT || total > MSG_LIMIT)
            return BR_EINVAL; /* more than one MPI message can carry (int counts) */
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t ix;
        int rc = fn_index((br__fnptr)tasks[i]->fn, &ix);
        if (rc != 0)
            return rc;
        if (br__task_own_arg(tasks[i]) != 0)
            return BR_ENOMEM;
    }
    unit *u = br__malloc(sizeof *u + n * sizeof(br_task *));
    if (u == NULL)
        return BR_ENOMEM;
    u->next = NULL;
    u->n = n;
    memcpy(u->t, tasks, n * sizeof(br_task *));
    pthread_mutex_lock(&m->mu);
    if (m->shut || m->broken) {
        int rc = m->broken ? BR_EBROKEN : BR_ESHUTDOWN;
        pthread_mutex_unlock(&m->mu);
        br__free(u);
        return rc;
    }
    if (m->tail)
        m->tail->next = u;
    else
        m->head = u;
    m->tail = u;
    wake(m);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static int mpx_submit(br_executor *ex, br_task *t, const br_call *call) {
    (void)call;
    return enqueue((mpx *)ex, &t, 1);
}
static int mpx_submit_chunk(br_executor *ex, br_task *const tasks[], size_t n,
                            const br_call *call) {
    (void)call;
    return enqueue((mpx *)ex, tasks, n);
}

/* Appends t to a TASKS message for rank r (after br__task_begin); a big argument
 * (BIG_BYTES or more) only has its header there and joins m->bigs, to be sent from the
 * task's own copy behind the message. 1, or 0 if t failed (the message unchanged). */
static int pack_task(mpx *m, buf *b, br_task *t, int r) {
    uint32_t ix = 0;
    (void)fn_index((br__fnptr)t->fn, &ix); /* known since submit */
    size_t len = 0;
    const void *arg = br_task_arg(t, &len);
    task_hdr h = {.id = m->next_id++, .deadline = t->deadline, .fn = ix,
                  .len = (uint32_t)len};
    h.left = t->deadline == BR_FOREVER ? 0 : t->deadline - br_now();
    if (len > UINT32_MAX) {
        br_task_fail(t, BR_EINVAL, "argument too big for one MPI message");
        br__task_finish(t, BR_EINVAL);
        return 0;
    }
    bool big = len >= BIG_BYTES;
    if (big && m->nbig == m->capbig) {
        size_t cap = m->capbig ? m->capbig * 2 : 16;
        br_task **v = br__malloc(cap * sizeof *v);
        if (v != NULL) {
            if (m->nbig)
                memcpy(v, m->bigs, m->nbig * sizeof *v);
            br__free(m->bigs);
            m->bigs = v;
            m->capbig = cap;
        }
    }
    size_t at = b->len;
    if ((big && m->nbig == m->capbig) || buf_put(b, &h, sizeof h) != 0 ||
        (!big && buf_put(b, arg, len) != 0) || tab_put(m, h.id, t, r) != 0) {
        b->len = at; /* the message stays as it was: its count leaves t out */
        br_task_fail(t, BR_ENOMEM, "out of memory packing the task");
        br__task_finish(t, BR_ENOMEM);
        return 0;
    }
    if (big)
        m->bigs[m->nbig++] = t;
    return 1;
}

/* Sends the big arguments of the TASKS message just sent to rank r, in its order, each
 * from the task's own copy (made at submit): the future is held until the send is done,
 * so the copy outlives it whatever happens to the task meanwhile. */
static void send_bigs(mpx *m, int r) {
    for (size_t i = 0; i < m->nbig; i++) {
        br_task *t = m->bigs[i];
        size_t len = 0;
        const void *arg = br_task_arg(t, &len);
        br_future *f = br_task_future(t);
        br_future_retain(f);
        if (sends_add_held(&m->s, arg, len, r, TAG_ARG, f) != 0)
            abort(); /* MPI failed: the default error handler would have aborted */
    }
    m->nbig = 0;
}

/* Hands queued work to the ranks with room. true if anything was sent. */
static bool dispatch(mpx *m) {
    bool any = false;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        bool empty = m->head == NULL;
        pthread_mutex_unlock(&m->mu);
        if (empty)
            return any;
        int best = -1;
        size_t room = 0;
        m->rr = m->rr % m->nranks + 1; /* ties go round the ranks */
        for (int k = 0; k < m->nranks; k++) {
            int r = 1 + (m->rr - 1 + k) % m->nranks;
            size_t cap = (size_t)m->slots[r] * (size_t)m->prefetch;
            if (m->inflight[r] < cap && cap - m->inflight[r] > room) {
                room = cap - m->inflight[r];
                best = r;
            }
        }
        if (best < 0) {
            /* Double buffering for chunks: a rank whose last chunk is half answered
             * takes the next one, so it never waits for rank 0 to pack and send it. */
            pthread_mutex_lock(&m->mu);
            bool chunk_next = m->head != NULL && m->head->n > 1;
            pthread_mutex_unlock(&m->mu);
            for (int k = 0; chunk_next && k < m->nranks; k++) {
                int r = 1 + (m->rr - 1 + k) % m->nranks;
                if (m->last_chunk[r] > 0 && m->inflight[r] * 2 <= m->last_chunk[r] &&
                    (best < 0 || m->inflight[r] < m->inflight[best]))
                    best = r;
            }
            if (best < 0)
                return any;
            room = 1; /* that chunk alone */
        }
        buf b = {0};
        pthread_mutex_lock(&fn_mu);
        uint32_t nfn = fn_n;
        uint32_t hd[2] = {nfn - fn_sent[best], fn_sent[best]};
        int rc = buf_put(&b, hd, sizeof hd);
        for (uint32_t i = fn_sent[best]; rc == 0 && i < nfn; i++)
            rc = buf_put(&b, &fn_tab[i].ref, sizeof fn_tab[i].ref);
        pthread_mutex_unlock(&fn_mu);
        uint32_t tc[2] = {0, 0};
        size_t at = b.len;
        if (rc == 0)
            rc = buf_put(&b, tc, sizeof tc);
        if (rc != 0) {
            br__free(b.p);
            return any; /* out of memory: try again later */
        }
        uint32_t ntasks = 0;
        size_t used = 0, bigbytes = 0;
        m->nbig = 0;
        while (used < room && b.len + bigbytes < MSG_SOFT_MAX) {
            pthread_mutex_lock(&m->mu);
            unit *u = m->head;
            if (u && (u->n == 1 || ntasks == 0)) {
                m->head = u->next;
                if (m->head == NULL)
                    m->tail = NULL;
            } else {
                u = NULL;
            }
            pthread_mutex_unlock(&m->mu);
            if (u == NULL)
                break;
            for (size_t i = 0; i < u->n; i++)
                if (br__task_begin(u->t[i])) {
                    size_t len = 0;
                    (void)br_task_arg(u->t[i], &len);
                    if (pack_task(m, &b, u->t[i], best)) {
                        ntasks++;
                        bigbytes += len >= BIG_BYTES ? len : 0;
                    }
                }
            used += u->n;
            bool chunk = u->n > 1;
            if (chunk)
                m->last_chunk[best] = u->n;
            br__free(u);
            if (chunk)
                break;
        }
        if (ntasks == 0) {
            br__free(b.p);
            any = true;
            continue;
        }
        memcpy(b.p + at, &ntasks, sizeof ntasks);
        fn_sent[best] = nfn;
        if (sends_add(&m->s, &b, best, TAG_TASKS) != 0)
            abort(); /* MPI failed: the default error handler would have aborted */
        send_bigs(m, best);
        any = true;
    }
}

/* Gives up every task of a list of units that never went out (code: BR_ECANCELED,
 * BR_EBROKEN), and frees the units. */
static void abandon_units(unit *u, int code) {
    while (u) {
        unit *next = u->next;
        for (size_t i = 0; i < u->n; i++)
            br__task_abandon(u->t[i], code);
        br__free(u);
        u = next;
    }
}

/* Asks s's rank to stop s's task (once). */
static void send_cancel(mpx *m, slot *s) {
    s->cancel_sent = true;
    buf b = {0};
    if (buf_put(&b, &s->id, sizeof s->id) != 0 ||
        sends_add(&m->s, &b, s->rank, TAG_CANCEL) != 0)
        abort();
}

/* why as a task's failure message: "rank R: why", or as it is with plain_messages. */
static void rank_msg(const mpx *m, char *out, size_t n, int rank, const char *why) {
    if (m->plain)
        snprintf(out, n, "%s", why);
    else
        snprintf(out, n, "rank %d: %s", rank, why);
}

/* The executor is broken: submit returns BR_EBROKEN from now on, and every task still
 * queued on rank 0 fails with code and msg (claimed first: a task's failure message can
 * only be set on a running one). */
static void fail_queued(mpx *m, int code, const char *msg) {
    pthread_mutex_lock(&m->mu);
    m->broken = true;
    unit *drop = m->head;
    m->head = m->tail = NULL;
    pthread_mutex_unlock(&m->mu);
    while (drop) {
        unit *next = drop->next;
        for (size_t i = 0; i < drop->n; i++) {
            br_task *t = drop->t[i];
            if (!br__task_begin(t))
                continue; /* cancelled meanwhile, or past its deadline: settled */
            br_task_fail(t, code, "%s", msg);
            br__task_finish(t, code);
        }
        br__free(drop);
        drop = next;
    }
}

/* Rank src's initializer failed: the executor is broken. Queued work and every task in
 * flight (on any rank) fail with BR_EBROKEN and the message now; the tasks in flight
 * stay in the table with t NULL until their rank answers them (a healthy rank is asked to cancel them). */
static void break_executor(mpx *m, int src, const char *why) {
    char msg[WHY_MAX + 96];
    if (why == NULL)
        why = "the initializer failed";
    rank_msg(m, msg, sizeof msg, src, why);
    fail_queued(m, BR_EBROKEN, msg);
    for (size_t i = 0; i < m->tabcap; i++) {
        slot *s = &m->tab[i];
        if (s->id == 0 || s->t == NULL)
            continue;
        br_task *t = s->t;
        s->t = NULL;
        if (!s->cancel_sent)
            send_cancel(m, s);
        br_task_fail(t, BR_EBROKEN, "%s", msg);
        br__task_finish(t, BR_EBROKEN);
    }
}

/* Spawned workers: true once any of them is gone. Open MPI then ends the spawned job,
 * every worker of it, and leaves rank 0 (another job) running with nothing to tell it
 * (no error from MPI: the messages in flight are simply never answered), so rank 0
 * looks: the workers are its host's processes, their pids sent at spawn. */
static bool spawned_lost(void) {
    if (g_spawned == 0 || g_lost)
        return g_lost;
    for (int r = 1; r <= g_spawned; r++)
        if (br__pid_gone(g_worker_pids[r]))
            g_lost = true;
    return g_lost;
}

static void big_done(rrecv *r);
static bool recvs_poll(mpx *m);

/* The spawned workers are gone: every task queued or in flight fails with
 * BR_EWORKERDIED and "rank R: ..." (R the rank it was handed to; queued ones: the
 * rank that died first, as the job went with it), later submits get BR_EBROKEN. So does
 * a task whose big result was on its way: its receive is cancelled, and if MPI can't
 * cancel it (its bytes had begun to arrive) the buffer stays with the request among
 * the orphans, as do the sends still in flight to them (they never complete): freed
 * once the request completes or MPI is finalized, never while MPI may touch them. */
static void lose_workers(mpx *m) {
    static const char why[] = "the worker died (Open MPI ended the spawned workers' job)";
    int dead = 1;
    for (int r = 1; r <= g_spawned; r++)
        if (br__pid_gone(g_worker_pids[r])) {
            dead = r;
            break;
        }
    char msg[sizeof why + 32];
    rank_msg(m, msg, sizeof msg, dead, why);
    fail_queued(m, BR_EWORKERDIED, msg);
    for (size_t i = 0; i < m->tabcap; i++) {
        slot *sl = &m->tab[i];
        if (sl->id == 0)
            continue;
        br_task *t = sl->t;
        int rank = sl->rank;
        sl->id = 0;
        if (t == NULL)
            continue;
        if (m->plain)
            br_task_fail(t, BR_EWORKERDIED, "%s", why);
        else
            br_task_fail(t, BR_EWORKERDIED, "rank %d: %s", rank, why);
        br__task_finish(t, BR_EWORKERDIED);
    }
    m->ninflight = 0;
    for (int r = 0; r < g_size; r++)
        m->inflight[r] = 0;
    (void)recvs_poll(m); /* bytes that did all arrive are a result */
    for (size_t i = 0; i < m->nrecv; i++) {
        rrecv *rv = &m->recvs[i];
        MPI_Status st;
        int done = 0, cancelled = 0;
        MPI_Cancel(&rv->req);
        MPI_Test(&rv->req, &done, &st);
        if (done)
            MPI_Test_cancelled(&st, &cancelled);
        if (done && !cancelled) { /* completed after all */
            big_done(rv);
            continue;
        }
        if (done)
            br__free(rv->p);
        else
            orphan_add(rv->req, rv->p, NULL);
        if (rv->t == NULL)
            continue;
        if (m->plain)
            br_task_fail(rv->t, BR_EWORKERDIED, "%s", why);
        else
            br_task_fail(rv->t, BR_EWORKERDIED, "rank %d: %s", rv->rank, why);
        br__task_finish(rv->t, BR_EWORKERDIED);
    }
    m->nrecv = 0;
    (void)sends_poll(&m->s);
    for (size_t i = 0; i < m->s.n; i++)
        orphan_add(m->s.v[i].req, m->s.v[i].p, m->s.v[i].hold);
    m->s.n = 0;
}

static void finish_result(mpx *m, int src, const result_hdr *h, const unsigned char *data) {
    if (h->id == 0) { /* a rank's initializer failed: the session's number, the message */
        /* Only this executor's: an earlier one that broke on another rank's report
         * (or was freed before any came) doesn't wait for the rest, which then arrive
         * here, late, and are dropped. */
        uint64_t session = 0;
        if (h->len >= sizeof session)
            memcpy(&session, data, sizeof session);
        if (h->kind == KIND_FAILED && session == m->session)
            break_executor(m, src,
                           h->len > sizeof session ? (const char *)data + sizeof session
                                                   : NULL);
        return;
    }
    slot sl = tab_take(m, h->id);
    if (sl.id == 0 || sl.rank != src)
        return; /* not ours: a protocol error, ignored */
    br_task *t = sl.t;
    if (t == NULL)
        return; /* failed when the executor broke */
    if (h->kind == KIND_OK) {
        int rc = h->len ? br_task_return(t, data, (size_t)h->len) : 0;
        br__task_finish(t, rc);
    } else if (h->kind == KIND_CANCELLED) {
        br__task_finish(t, BR_ECANCELED);
    } else {
        int code = h->code < 0 ? h->code : BR_EFAILED;
        if (h->len > 0) {
            if (m->plain)
                br_task_fail(t, code, "%s", (const char *)data);
            else
                br_task_fail(t, code, "rank %d: %s", src, (const char *)data);
        } else if (!m->plain) {
            br_task_fail(t, code, "rank %d: %s", src, br_strerror(code));
        }
        br__task_finish(t, code);
    }
}

/* A big result: its bytes follow its RESULTS message on their own (in order). A
 * receive is posted for them into a buffer of the executor's (MPI matches a source's
 * receives in the order they were posted, so the next ones stay in step), and the
 * progress loop tests it (recvs_poll) with everything else: a worker that dies before
 * or while it sends them leaves a receive pending, not this thread blocked, and the
 * liveness check still runs (lose_workers). Received whatever became of the task
 * (then dropped); once complete the buffer becomes the future's result
 * (br__task_result_adopt), without a copy. */
static void post_big(mpx *m, int src, const result_hdr *h) {
    slot sl = tab_take(m, h->id);
    br_task *t = sl.id != 0 && sl.rank == src ? sl.t : NULL;
    size_t len = (size_t)h->len;
    if (m->nrecv == m->caprecv) {
        size_t cap = m->caprecv ? m->caprecv * 2 : 8;
        rrecv *v = br__malloc(cap * sizeof *v);
        if (v == NULL)
            abort(); /* can't even drop the bytes: nothing sane is left */
        if (m->nrecv)
            memcpy(v, m->recvs, m->nrecv * sizeof *v);
        br__free(m->recvs);
        m->recvs = v;
        m->caprecv = cap;
    }
    void *p = br__malloc(len);
    if (p == NULL)
        abort(); /* as above */
    rrecv *r = &m->recvs[m->nrecv];
    if (MPI_Irecv(p, (int)len, MPI_BYTE, src, TAG_RDATA, g_comm, &r->req) != MPI_SUCCESS)
        abort(); /* MPI failed: the default error handler would have aborted */
    r->t = t;
    r->p = p;
    r->len = len;
    r->rank = src;
    m->nrecv++;
}

/* A big result's bytes are all here: its future's now (or dropped). */
static void big_done(rrecv *r) {
    if (r->t == NULL) {
        br__free(r->p);
    } else if (br__task_result_adopt(r->t, r->p, r->len) != 0) {
        br__free(r->p); /* can't happen: the task is begun until finished here */
        br__task_finish(r->t, BR_ESTATE);
    } else {
        br__task_finish(r->t, 0);
    }
}

/* Completes the big results received. true if any. */
static bool recvs_poll(mpx *m) {
    bool any = false;
    for (size_t i = 0; i < m->nrecv;) {
        int done = 0;
        MPI_Test(&m->recvs[i].req, &done, MPI_STATUS_IGNORE);
        if (!done) {
            i++;
            continue;
        }
        rrecv r = m->recvs[i];
        m->recvs[i] = m->recvs[--m->nrecv];
        big_done(&r);
        any = true;
    }
    return any;
}

/* Reads every RESULTS message waiting. true if any. */
static bool collect(mpx *m) {
    bool any = false;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_RESULTS, g_comm, &flag, &st);
        if (!flag)
            return any;
        any = true;
        int n = 0;
        unsigned char *p = recv_probed(&st, &n);
        if (p == NULL)
            abort();
        rd r = {p, (size_t)n, 0};
        const uint32_t *hd = rd_get(&r, 8);
        uint32_t cnt = hd ? hd[0] : 0;
        for (uint32_t i = 0; i < cnt; i++) {
            const result_hdr *h = rd_get(&r, sizeof *h);
            if (h == NULL)
                break;
            if (h->kind == KIND_OK && h->len >= BIG_BYTES) {
                post_big(m, st.MPI_SOURCE, h);
                continue;
            }
            const unsigned char *data = rd_get(&r, (size_t)h->len);
            if (data == NULL)
                break;
            finish_result(m, st.MPI_SOURCE, h, data);
        }
        br__free(p);
        /* the gap per result since the last message, capped (one slow task, a pause
         * between batches) and not counted across an empty table (an idle spell) */
        int64_t now = br_now();
        if (m->last_result != 0 && cnt > 0) {
            int64_t gap = (now - m->last_result) / cnt;
            if (gap > 4 * BUSY_TASK_NS)
                gap = 4 * BUSY_TASK_NS;
            m->result_gap += (gap - m->result_gap) / 8;
        }
        m->last_result = m->ninflight > 0 ? now : 0;
    }
}

/* Forwards cancel requests on in-flight tasks. */
static void poll_cancels(mpx *m, bool all) {
    for (size_t i = 0; i < m->tabcap; i++) {
        slot *s = &m->tab[i];
        if (s->id == 0 || s->cancel_sent || s->t == NULL)
            continue;
        if (all)
            br_future_request_cancel(br_task_future(s->t));
        if (all || br__task_cancel_requested(s->t))
            send_cancel(m, s);
    }
}

static void *progress_main(void *arg) {
    mpx *m = arg;
    /* the session: each rank's runner threads */
    for (int r = 1; r <= m->nranks; r++) {
        buf b = {0};
        session_hdr sh = {.threads = m->slots[r], .has_init = m->has_init,
                          .arg_len = m->initarg_len, .session = m->session};
        int rc = buf_put(&b, &sh, sizeof sh);
        if (rc == 0 && m->has_init)
            rc = buf_put(&b, &m->init_ref, sizeof m->init_ref);
        if (rc == 0 && m->has_init)
            rc = buf_put(&b, m->initarg, m->initarg_len);
        if (rc != 0 || sends_add(&m->s, &b, r, TAG_SESSION) != 0)
            abort();
    }
    int64_t backoff = 0, last_cancel_poll = 0, quiet_since = 0, cancel_every = CANCEL_POLL_NS;
    int64_t last_alive = br_now();
    for (;;) {
        bool work = dispatch(m);
        if (collect(m))
            work = true;
        if (m->nrecv > 0 && recvs_poll(m))
            work = true;
        if (sends_poll(&m->s))
            work = true;
        if (g_spawned > 0 && (m->ninflight > 0 || m->s.n > 0 || m->nrecv > 0) &&
            br_now() - last_alive >= ALIVE_EVERY_NS) {
            last_alive = br_now();
            if (spawned_lost()) {
                lose_workers(m);
                work = true;
            }
        }
        pthread_mutex_lock(&m->mu);
        bool all = m->cancel_all;
        m->cancel_all = false;
        bool shut = m->shut;
        bool queued = m->head != NULL;
        pthread_mutex_unlock(&m->mu);
        if (m->ninflight > 0) {
            int64_t now = br_now();
            if (all || now - last_cancel_poll >= cancel_every) {
                poll_cancels(m, all);
                /* a scan of many thousand tasks in flight costs milliseconds: keep it
                 * to CANCEL_POLL_SHARE of this thread's time */
                last_cancel_poll = br_now();
                int64_t took = last_cancel_poll - now;
                cancel_every = took * CANCEL_POLL_SHARE > CANCEL_POLL_NS
                                   ? took * CANCEL_POLL_SHARE
                                   : CANCEL_POLL_NS;
            }
        }
        if (shut && !queued && m->ninflight == 0 && m->s.n == 0 && m->nrecv == 0)
            break;
        if (work) {
            quiet_since = 0;
            backoff = 0;
            continue;
        }
        pthread_mutex_lock(&m->mu);
        if (m->ninflight == 0 && m->s.n == 0 && m->nrecv == 0) {
            /* nothing can arrive from MPI: sleep until a submit or shutdown */
            m->sleeping = true;
            while (m->head == NULL && !m->shut && !m->cancel_all)
                pthread_cond_wait(&m->cv, &m->mu);
            m->sleeping = false;
            pthread_mutex_unlock(&m->mu);
            continue;
        }
        /* busy: every rank holds tasks beyond the ones it runs and tasks take a while
         * (results come BUSY_TASK_NS / ranks apart or more), so no rank runs dry while a
         * result waits to be read here (only the futures' waiters, BUSY_POLL_MAX_NS) */
        bool busy = m->result_gap >= BUSY_TASK_NS / m->nranks;
        for (int r = 1; busy && r <= m->nranks; r++)
            busy = m->inflight[r] > (size_t)m->slots[r];
        /* a big result on its way: keep its transfer going (MPI progresses it only in
         * its calls; without single-copy it comes in fragments), as the blocking
         * receive that this replaced did */
        if (m->nrecv > 0 || (!busy && !spin_over(&quiet_since))) {
            pthread_mutex_unlock(&m->mu);
            sched_yield();
            continue;
        }
        backoff = next_backoff(backoff, busy, 0);
        m->sleeping = true;
        cv_wait_ns(&m->cv, &m->mu, backoff);
        m->sleeping = false;
        pthread_mutex_unlock(&m->mu);
    }
    sends_drain(&m->s);
    pthread_mutex_lock(&m->mu);
    m->thread_done = true;
    pthread_cond_broadcast(&m->done_cv);
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

static int mpx_shutdown(br_executor *ex, bool wait, bool cancel_futures) {
    mpx *m = (mpx *)ex;
    unit *drop = NULL;
    pthread_mutex_lock(&m->mu);
    m->shut = true;
    if (cancel_futures) {
        drop = m->head;
        m->head = m->tail = NULL;
        m->cancel_all = true;
    }
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    abandon_units(drop, BR_ECANCELED);
    if (!wait)
        return 0;
    if (pthread_equal(pthread_self(), m->thr))
        return BR_EDEADLK;
    pthread_mutex_lock(&m->mu);
    while (!m->thread_done)
        pthread_cond_wait(&m->done_cv, &m->mu);
    bool join = !m->joined && !m->joining;
    if (join)
        m->joining = true;
    pthread_mutex_unlock(&m->mu);
    if (join) {
        pthread_join(m->thr, NULL);
        pthread_mutex_lock(&m->mu);
        m->joined = true;
        pthread_cond_broadcast(&m->done_cv);
        pthread_mutex_unlock(&m->mu);
    } else {
        pthread_mutex_lock(&m->mu);
        while (!m->joined)
            pthread_cond_wait(&m->done_cv, &m->mu);
        pthread_mutex_unlock(&m->mu);
    }
    return 0;
}

static void mpx_destroy(br_executor *ex) {
    mpx *m = (mpx *)ex;
    pthread_mutex_lock(&cur_mu);
    if (g_current == ex)
        g_current = NULL;
    pthread_mutex_unlock(&cur_mu);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    pthread_cond_destroy(&m->done_cv);
    br__free(m->tab);
    br__free(m->inflight);
    br__free(m->last_chunk);
    br__free(m->slots);
    br__free(m->initarg);
    br__free(m->bigs);
    br__free(m->recvs);
    br__free(m);
}

static int mpx_max_workers(const br_executor *ex) { return ((const mpx *)ex)->max_workers; }

/* br_map's chunksize when the caller leaves it 0: Pool.map's ceil(n / (4 x workers)), at
 * most what fits in a CHUNK_AUTO_BYTES message. A message per input costs far more than a
 * tiny task; four chunks per slot spread uneven tasks over the ranks; and the cap keeps
 * the buffers small and the tasks in flight few: 12,500-task chunks (400 KB messages,
 * 25,000 tasks in flight) ran 100,000 tiny tasks 4x slower than 1,000-task ones
 * (docs/mpi.md, "The default chunksize"). */
static size_t mpx_map_chunksize(const br_executor *ex, size_t count, size_t size) {
    size_t per = 4 * (size_t)((const mpx *)ex)->max_workers;
    size_t cs = count / per + (count % per != 0);
    size_t pad = (8 - (size & 7)) & 7;
    size_t cap = size < CHUNK_AUTO_BYTES ? CHUNK_AUTO_BYTES / (size + pad + sizeof(task_hdr))
                                         : 1;
    return cs < cap ? cs : cap;
}

static const br_executor_vt mpx_vt = {
    .kind = "mpi",
    .in_process = false,
    .submit = mpx_submit,
    .submit_chunk = mpx_submit_chunk,
    .shutdown = mpx_shutdown,
    .destroy = mpx_destroy,
    .max_workers = mpx_max_workers,
    .map_chunksize = mpx_map_chunksize,
};

int br_mpi_executor_new(br_executor **out, const br_mpi_executor_opts *opts) {
    if (out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_mpi_executor_new: out is NULL");
    *out = NULL;
    br_mpi_executor_opts o = {0};
    if (opts)
        o = *opts;
    if (!g_main_ran || g_finalized || g_rank != 0)
        return BR_ESTATE;
    if (o.spawn < 0 || o.spawn > MAX_SPAWN)
        return BR__MISUSE(BR_EINVAL, "br_mpi_executor_new: spawn is out of range");
    if (g_size == 1 && o.spawn > 0) {
        pthread_mutex_lock(&cur_mu); /* spawn while no executor runs (whose thread calls
                                      * MPI) */
        int rc = g_current != NULL ? BR_EBUSY : spawn_workers(o.spawn);
        pthread_mutex_unlock(&cur_mu);
        if (rc != 0)
            return rc;
    }
    if (spawned_lost())
        return BR_EBROKEN; /* the spawned workers are gone (lose_workers) */
    int nw = g_size - 1;
    if (nw < 1)
        return BR_ESTATE;
    if (o.max_workers < 0 || o.max_workers > nw * MAX_SLOTS_PER_RANK || o.prefetch < 0 ||
        o.prefetch > MAX_PREFETCH || (o.initarg == NULL && o.initarg_len > 0) ||
        o.initarg_len > MSG_LIMIT)
        return BR__MISUSE(BR_EINVAL, "br_mpi_executor_new: an option is out of range");
    br__fnref init_ref;
    if (o.initializer &&
        br__fnref_make(&init_ref, (br__fnptr)o.initializer, NULL, 0) != 0)
        return BR__MISUSE(BR_EINVAL, "br_mpi_executor_new: the initializer can't reach "
                                     "another rank (a heap or JIT address)");
    int slots = o.max_workers ? o.max_workers : nw;
    mpx *m = br__calloc(1, sizeof *m);
    if (m == NULL)
        return BR_ENOMEM;
    m->max_workers = slots;
    m->prefetch = o.prefetch ? o.prefetch : DEFAULT_PREFETCH;
    m->plain = o.plain_messages;
    m->has_init = o.initializer != NULL;
    if (m->has_init) {
        m->init_ref = init_ref;
        m->initarg_len = o.initarg_len;
        m->initarg = br__malloc(o.initarg_len ? o.initarg_len : 1);
        if (m->initarg == NULL) {
            br__free(m);
            return BR_ENOMEM;
        }
        if (o.initarg_len)
            memcpy(m->initarg, o.initarg, o.initarg_len);
    }
    m->nranks = slots < nw ? slots : nw;
    m->slots = br__calloc((size_t)g_size, sizeof *m->slots);
    m->inflight = br__calloc((size_t)g_size, sizeof *m->inflight);
    m->last_chunk = br__calloc((size_t)g_size, sizeof *m->last_chunk);
    if (m->slots == NULL || m->inflight == NULL || m->last_chunk == NULL ||
        tab_grow(m) != 0) {
        br__free(m->last_chunk);
        br__free(m->initarg);
        br__free(m->slots);
        br__free(m->inflight);
        br__free(m->tab);
        br__free(m);
        return BR_ENOMEM;
    }
    for (int i = 0; i < slots; i++)
        m->slots[1 + i % nw]++;
    m->next_id = 1;
    pthread_mutex_init(&m->mu, NULL);
    cv_init_mono(&m->cv);
    pthread_cond_init(&m->done_cv, NULL);
    int rc = br_executor_init(&m->base, &mpx_vt);
    pthread_mutex_lock(&cur_mu);
    if (rc == 0 && g_current != NULL)
        rc = BR_EBUSY;
    m->session = g_session + 1; /* read by the progress thread: set before it starts */
    if (rc == 0 && pthread_create(&m->thr, NULL, progress_main, m) != 0)
        rc = BR_EAGAIN;
    if (rc == 0) {
        g_current = &m->base;
        g_session = m->session;
    }
    pthread_mutex_unlock(&cur_mu);
    if (rc != 0) {
        pthread_mutex_destroy(&m->mu);
        pthread_cond_destroy(&m->cv);
        pthread_cond_destroy(&m->done_cv);
        br__free(m->tab);
        br__free(m->inflight);
        br__free(m->last_chunk);
        br__free(m->slots);
        br__free(m->initarg);
        br__free(m);
        return rc;
    }
    *out = &m->base;
    return 0;
}

/* ===================================================================================
 * Launch and finalize
 * =================================================================================== */

int br_mpi_rank(void) { return g_rank; }
int br_mpi_size(void) { return g_size; }
int br_mpi_root_pid(void) { return g_root_pid; }

static void finalize_at_exit(void) { (void)br_mpi_finalize(); }

/* Rank 0 with no worker ranks: starts n of this program with MPI_Comm_spawn, and makes
 * the merge of the intercommunicator (rank 0 here, the children 1..n, in the order of
 * their MPI_COMM_WORLD) the ranks' communicator. The children meet it in br_mpi_main.
 * 0, or BR_EIO (MPI couldn't start them: no runtime to spawn with, not enough slots, the
 * program not found); MPI's errors are returned, not fatal, while it tries. */
static int spawn_workers(int n) {
    char exe[4096];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = '\0';
    } else if (g_argv != NULL && g_argv[0] != NULL) {
        snprintf(exe, sizeof exe, "%s", g_argv[0]);
    } else {
        return BR_ENOENT;
    }
    MPI_Info info = MPI_INFO_NULL;
    /* Started without mpirun (a singleton: Open MPI sets OMPI_COMM_WORLD_SIZE in every
     * process mpirun starts), nothing says how many slots this host has, and Open MPI
     * counts its cores: as braid-mpirun does, more processes than cores are allowed.
     * Under mpirun, its mapping (braid-mpirun: --oversubscribe) applies as given. */
    if (getenv("OMPI_COMM_WORLD_SIZE") == NULL && !g_spawn_no_over /* test hook */) {
        MPI_Info_create(&info);
        MPI_Info_set(info, "map_by", ":OVERSUBSCRIBE");
    }
    MPI_Errhandler old;
    MPI_Comm_get_errhandler(MPI_COMM_SELF, &old);
    MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
    MPI_Comm inter = MPI_COMM_NULL;
    char **args = g_argv != NULL && g_argv[0] != NULL ? g_argv + 1 : MPI_ARGV_NULL;
    int rc = MPI_Comm_spawn(exe, args, n, info, 0, MPI_COMM_SELF, &inter,
                            MPI_ERRCODES_IGNORE);
    MPI_Comm_set_errhandler(MPI_COMM_SELF, old);
    MPI_Errhandler_free(&old);
    if (info != MPI_INFO_NULL)
        MPI_Info_free(&info);
    if (rc != MPI_SUCCESS || inter == MPI_COMM_NULL) {
        /* Open MPI prints its own account above this line; this one says what braid
         * was doing and what the caller gets */
        char why[MPI_MAX_ERROR_STRING] = "no intercommunicator";
        int wl = 0;
        if (rc != MPI_SUCCESS)
            MPI_Error_string(rc, why, &wl);
        fprintf(stderr,
                "braid: br_mpi_executor_new: MPI_Comm_spawn couldn't start %d worker%s "
                "of %s (%s): BR_EIO\n",
                n, n == 1 ? "" : "s", exe, why);
        return BR_EIO;
    }
    MPI_Comm merged;
    if (MPI_Intercomm_merge(inter, 0, &merged) != MPI_SUCCESS)
        return BR_EIO;
    int size = 0;
    MPI_Comm_size(merged, &size);
    uint32_t *sent = br__calloc((size_t)size, sizeof *sent);
    if (sent == NULL)
        abort(); /* the children wait in the broadcast below: nothing sane is left */
    struct {
        int32_t pid;
        char host[HOST_MAX];
    } root = {.pid = (int32_t)getpid()};
    memcpy(root.host, g_host, sizeof root.host);
    MPI_Bcast(&root, (int)sizeof root, MPI_BYTE, 0, merged);
    int32_t *pids = br__calloc((size_t)size, sizeof *pids);
    if (pids == NULL)
        abort(); /* as above */
    int32_t me = root.pid;
    MPI_Gather(&me, 1, MPI_INT32_T, pids, 1, MPI_INT32_T, 0, merged);
    g_worker_pids = pids;
    g_inter = inter;
    g_comm = merged;
    g_size = size;
    g_spawned = n;
    br__free(fn_sent);
    fn_sent = sent;
    return 0;
}

int br_mpi_finalize(void) {
    if (!g_main_ran || g_rank != 0)
        return BR_ESTATE;
    if (g_finalized)
        return 0;
    pthread_mutex_lock(&cur_mu);
    br_executor *ex = g_current;
    pthread_mutex_unlock(&cur_mu);
    if (ex)
        (void)ex->vt->shutdown(ex, true, true);
    g_finalized = true;
    int fin = 0;
    MPI_Finalized(&fin);
    if (fin)
        return 0;
    if (!spawned_lost()) {
        for (int r = 1; r < g_size; r++)
            MPI_Send(NULL, 0, MPI_BYTE, r, TAG_STOP, g_comm);
    }
    /* transfers to or from lost workers (lose_workers): their requests go, their
     * memory only once MPI can't touch it any more */
    for (size_t i = 0; i < g_norphans; i++) {
        int done = 0;
        MPI_Test(&g_orphans[i].req, &done, MPI_STATUS_IGNORE);
        if (!done)
            MPI_Request_free(&g_orphans[i].req);
    }
    if (g_inter != MPI_COMM_NULL) { /* spawned workers: they do the same after STOP */
        MPI_Comm_free(&g_comm);
        if (!g_lost) /* with the workers gone, nobody would meet us there */
            MPI_Comm_disconnect(&g_inter);
    }
    MPI_Finalize();
    for (size_t i = 0; i < g_norphans; i++)
        orphan_drop(&g_orphans[i]);
    br__free(g_orphans);
    g_orphans = NULL;
    g_norphans = g_caporphans = 0;
    return 0;
}

int br_mpi_main(int *argc, char ***argv) {
    if (g_main_ran)
        return BR_ESTATE;
    int init = 0, fin = 0;
    MPI_Finalized(&fin);
    if (fin)
        return BR_ESTATE;
    MPI_Initialized(&init);
    int provided = MPI_THREAD_SINGLE;
    if (!init) {
        if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
            return BR_EIO;
    } else {
        MPI_Query_thread(&provided);
    }
    if (provided < MPI_THREAD_SERIALIZED)
        return BR_ENOTSUP;
    /* A worker spawned by a rank 0 (spawn_workers): its ranks are the merge, the
     * parent first. */
    MPI_Comm parent = MPI_COMM_NULL;
    MPI_Comm_get_parent(&parent);
    if (parent != MPI_COMM_NULL) {
        if (MPI_Intercomm_merge(parent, 1, &g_comm) != MPI_SUCCESS)
            return BR_EIO;
        g_inter = parent;
    } else {
        g_comm = MPI_COMM_WORLD;
    }
    MPI_Comm_rank(g_comm, &g_rank);
    MPI_Comm_size(g_comm, &g_size);
    g_main_ran = true;
    char host[HOST_MAX] = "";
    gethostname(host, sizeof host - 1);
    struct {
        int32_t pid;
        char host[HOST_MAX];
    } root = {0};
    if (g_rank == 0) {
        root.pid = (int32_t)getpid();
        memcpy(root.host, host, sizeof root.host);
    }
    MPI_Bcast(&root, (int)sizeof root, MPI_BYTE, 0, g_comm);
    g_root_pid = root.pid;
    memcpy(g_host, root.host, sizeof g_host);
    g_same_host = strncmp(host, root.host, sizeof host) == 0;
    if (g_inter != MPI_COMM_NULL) { /* spawned: rank 0 learns each worker's pid */
        int32_t me = (int32_t)getpid();
        MPI_Gather(&me, 1, MPI_INT32_T, NULL, 1, MPI_INT32_T, 0, g_comm);
    }
    if (g_rank != 0) {
        worker_loop();
        if (g_inter != MPI_COMM_NULL) {
            MPI_Comm_free(&g_comm);
            MPI_Comm_disconnect(&g_inter);
        }
        MPI_Finalize();
        fflush(NULL);
        exit(0);
    }
    fn_sent = br__calloc((size_t)g_size, sizeof *fn_sent);
    if (fn_sent == NULL)
        return BR_ENOMEM;
    g_argv = argv != NULL ? *argv : NULL;
    atexit(finalize_at_exit);
    return 0;
}
