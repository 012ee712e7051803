/* braid/pipeline.h: stages joined by bounded queues, each run by N workers of a chosen
 * model: threads, coroutines on a loop, or processes. The producer-consumer crawler of
 * the tutorials (fetchers feeding parsers through a queue.Queue, stopped with None
 * sentinels), made general:
 *
 *   q = queue.Queue(maxsize)                 br_pipeline_new(&p, stages, n, &opts)
 *   threads/coroutines/processes per stage   br_stage_opts.model, .workers
 *   q.put(url)                               br_pipeline_put(p, url, len, deadline)
 *   a stage's fn: out_q.put(result)          br_stage_emit(st, data, len)
 *   q.put(None) per worker, then join        br_pipeline_close(p); br_pipeline_join(p, deadline)
 *   out_q.get()                              br_pipeline_get(p, &data, &len, deadline)
 *
 * Items are bytes, copied at every hand-off. A stage's fn gets one item and emits 0..n
 * items to the next stage; br_stage_emit waits while the next stage's queue is full
 * (backpressure reaches back to br_pipeline_put). br_pipeline_close says no more input:
 * each stage finishes the items it has, then its workers stop, then the next stage's
 * input is closed the same way, in order, so nothing queued is lost.
 * br_pipeline_cancel stops now: the items still queued are counted as dropped.
 *
 * Models:
 *   BR_STAGE_THREADS     N threads.
 *   BR_STAGE_COROUTINES  N coroutines on br_stage_opts.loop (which must be running, or
 *                        run later: its own thread runs it; they are created from a
 *                        callback there, so a failure to create one is not
 *                        br_pipeline_new's error: the stage runs with fewer), or, when
 *                        NULL, on a loop of the stage's own, run by a thread the
 *                        pipeline starts (br_pipeline_new returns once they run). A
 *                        coroutine's waits (the queue, br_stage_emit, its fn's I/O)
 *                        suspend only that coroutine.
 *   BR_STAGE_PROCESSES   a process pool of N workers (braid/processpool.h) started by
 *                        br_stage_opts.start_method, fed by N threads of this process
 *                        (each with up to 4 items in flight); each item goes to a
 *                        worker as bytes and what fn emits there comes back as bytes,
 *                        in one reply per item (so emits in a process are buffered per
 *                        item, not backpressured one by one). Under fork, fn and arg
 *                        are used in the child as they were in this process when the
 *                        pipeline was made (a forked copy): fn any function of the
 *                        program, arg pointing to memory that existed then (or NULL).
 *                        Under spawn and forkserver (which need br_process_main at the
 *                        top of main, as the process pool does), fn crosses as a
 *                        reference (its module and offset, or its br_register_fn
 *                        name) and arg only as bytes (arg_len > 0): a pointer arg
 *                        means nothing there and is BR_EINVAL.
 *
 * Ownership: the pipeline copies every item put and emitted; what br_pipeline_get
 * returns is the caller's (free()). Stage names are copied.
 */
#ifndef BRAID_PIPELINE_H
#define BRAID_PIPELINE_H

#include "braid/aio.h"
#include "braid/core.h"
#include "braid/process.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct br_pipeline br_pipeline;
/* What a stage fn is given to emit with; valid during the call only. */
typedef struct br_stage br_stage;

/* A stage's work on one item (item[0..len), valid during the call; len may be 0). 0, or
 * nonzero: the item counts as an error (br_stage_stats.errors) and the pipeline goes on;
 * what it emitted before stays emitted. */
typedef int (*br_stage_fn)(br_stage *st, const void *item, size_t len, void *arg);

typedef enum br_stage_model {
    BR_STAGE_THREADS = 0,
    BR_STAGE_COROUTINES = 1,
    BR_STAGE_PROCESSES = 2
} br_stage_model;

typedef struct br_stage_opts {
    br_stage_fn fn;        /* required */
    void *arg;             /* passed to fn */
    const char *name;      /* for diagnostics (copied); NULL: "stage-<i>" */
    br_stage_model model;
    int workers;           /* 0: 1 */
    size_t capacity;       /* the bound of the queue feeding this stage (0: 2 * workers,
                            * at least 8) */
    br_loop *loop;         /* BR_STAGE_COROUTINES: the loop to run on (NULL: its own) */
    /* BR_STAGE_PROCESSES: how its workers start (BR_START_DEFAULT, zero:
     * br_get_start_method(), fork unless changed). */
    br_start_method start_method;
    /* 0: arg is passed to fn as it is. > 0: arg[0..arg_len) are bytes, copied at
     * br_pipeline_new; fn gets a pointer to a copy (in a process worker, a copy in
     * that process, under every start method). */
    size_t arg_len;
} br_stage_opts;

typedef struct br_pipeline_opts {
    /* Keep what the last stage emits for br_pipeline_get, in a queue of this bound
     * (the last stage waits while it is full). 0: no output; the last stage's emits are
     * counted and discarded (a sink stage just doesn't emit). */
    size_t output_capacity;
    /* More fields may be added; zero always keeps the default. */
} br_pipeline_opts;

/* Makes the pipeline of stages[0..n) and starts every worker. 0 (*out is yours:
 * br_pipeline_free), BR_EINVAL (out or stages NULL, n 0 or over 1024, a stage without
 * fn, workers < 0 or over 4096, an unknown model or start method, arg NULL with
 * arg_len > 0; a process stage under spawn or forkserver with a pointer arg (arg_len 0)
 * or an fn that can't cross), BR_ESTATE (spawn or forkserver without br_process_main),
 * BR_EAGAIN (a thread or process couldn't start), BR_ENOMEM. On error nothing runs
 * (what had started is stopped). */
BR_API int br_pipeline_new(br_pipeline **out, const br_stage_opts *stages, size_t n,
                           const br_pipeline_opts *opts);

/* Feeds a copy of item[0..len) to the first stage, waiting for room until the deadline.
 * 0, BR_ETIMEDOUT (still full), BR_ESHUTDOWN (closed or cancelled), BR_ECANCELED (the
 * calling coroutine was cancelled; nothing happened), BR_ENOMEM, BR_EINVAL. */
BR_API int br_pipeline_put(br_pipeline *p, const void *item, size_t len, int64_t deadline);

/* No more input: every stage drains what it has and stops, first to last; the output
 * (if any) ends once drained (br_pipeline_get: BR_EOF). Idempotent. 0 or BR_EINVAL. */
BR_API int br_pipeline_close(br_pipeline *p);

/* Stops now: puts and emits fail (BR_ESHUTDOWN), items still queued anywhere are
 * dropped and counted (br_stage_stats.dropped), process workers are killed (their items
 * count as dropped); an fn already running finishes its item. Any thread. 0 or
 * BR_EINVAL. */
BR_API int br_pipeline_cancel(br_pipeline *p);

/* Takes the next item of the last stage's output: *item (malloc'd, NUL-terminated
 * after len bytes: the caller frees it) and *len. 0, BR_EOF (the pipeline is closed and
 * everything came out, or it was cancelled), BR_ETIMEDOUT, BR_ECANCELED (the calling
 * coroutine), BR_ENOMEM, BR_EINVAL (no output_capacity). */
BR_API int br_pipeline_get(br_pipeline *p, void **item, size_t *len, int64_t deadline);

/* Waits until every worker has stopped (after br_pipeline_close or _cancel; with an
 * output, someone must take it to the end, else the last stage waits for room). 0,
 * BR_ETIMEDOUT, BR_ECANCELED (the calling coroutine), BR_EINVAL. */
BR_API int br_pipeline_join(br_pipeline *p, int64_t deadline);

/* Per stage, counted as the pipeline runs (read them any time; exact once joined):
 *   in       items the stage's fn was called with
 *   out      items it emitted that the next stage (or the output) took in
 *   errors   fn calls that returned nonzero (a process worker that died on the item too)
 *   dropped  items that reached this stage's queue but were discarded by a cancel
 * Once joined, stage i-1's out == stage i's in + dropped. stage == n is the output: its
 * in counts the items br_pipeline_get returned, dropped those a cancel discarded. */
typedef struct br_stage_stats {
    uint64_t in, out, errors, dropped;
} br_stage_stats;
BR_API int br_pipeline_stats(const br_pipeline *p, size_t stage, br_stage_stats *out);

/* Cancels (if still running) and joins, then frees. Not from one of its own workers
 * (BR_EDEADLK). 0 or BR_EINVAL. */
BR_API int br_pipeline_free(br_pipeline *p);

/* In a stage fn: hands a copy of item[0..len) to the next stage (or the output),
 * waiting while its queue is full. 0, BR_ESHUTDOWN (cancelled: the item was not taken),
 * BR_ECANCELED (the calling coroutine was cancelled), BR_ENOMEM, BR_EINVAL. */
BR_API int br_stage_emit(br_stage *st, const void *item, size_t len);
/* The index of the stage st belongs to, and of the worker running it (0..workers-1). */
BR_API size_t br_stage_index(const br_stage *st);
BR_API int br_stage_worker(const br_stage *st);

#ifdef __cplusplus
}
#endif
#endif
