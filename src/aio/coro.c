/* aio/coro.c: stackful coroutines: make, resume, suspend, finish, free, list. The
 * contract and its design notes are in aio/coro.h; the switch is aio/arch/<cpu>.S,
 * the stacks aio/stack.c.
 *
 * Design notes (what this file adds to coro.h's).
 *
 * A resume and its suspend are one pair of br__ctx_switch calls: resume saves the
 * resumer's context in co->ret_sp and loads co->sp; suspend saves co->sp and loads
 * co->ret_sp.
 *
 * Which side does the bookkeeping. Without sanitizers the coroutine does it before it
 * switches back (the thread's current coroutine, the canary, the state SUSPENDED or
 * DONE, a finished shared-stack coroutine leaving its stack), and passes its state
 * through the switch; so resume ends in a tail call of the switch, and the coroutine
 * continues resume's caller directly. Every ret of a resume otherwise mispredicted
 * (the switch leaves the CPU's return stack out of step): a resume/suspend round trip
 * cost 27 ns, 13 ns of it that ret and the work after it. The state may so read
 * SUSPENDED a few instructions before the context is saved: harmless, because only
 * the scheduler thread that is running the coroutine resumes it, and it is busy in
 * this very resume. Likewise DONE before the coroutine has left its stack: so only
 * the scheduler, once resume has returned DONE, may free it (coro.h says so). With ASan or TSan the resumer does it after the switch back, since
 * their hooks must run on the resumer's side after every switch (fiber_left) and a
 * finished coroutine's TSan fiber can only be given back once it is left.
 *
 * Hand-offs (br__coro_hand_off, coro.h). The coroutine handing off does leave()'s
 * bookkeeping, gives `to` its resumer's context (ret_sp, prev) and the thread's
 * current, marks it RUNNING and switches straight to it; `to` continues inside its own
 * suspend (or hand-off) as after a resume. The resumer's br__coro_resume then returns
 * whatever `to` passes back, so the scheduler must know who that is (the loop reads
 * its br__atask_tl). Only between own-stack coroutines (a shared stack's copy in/out
 * is done on the resumer's stack) and only without ASan and TSan, whose hooks are
 * paired with the resumer (fiber_leave/fiber_left): a handed-off coroutine would
 * announce its return to a stack it didn't come from. Valgrind only needs the stacks
 * registered, which they are.
 *
 * A new coroutine's context is a frame built by first_frame, in the switch's layout
 * (see the .S file's notes), that returns into br__ctx_start, which calls coro_main(co).
 * coro_main never returns: after fn it marks co finished and switches back for good.
 *
 * Per-thread state (the running coroutine, the shared stack) is one TLS struct read
 * only through thr(), a function the compiler can neither inline nor treat as pure,
 * so that no address of it is kept across a switch (coro.h: "Per-thread state").
 *
 * Shared stacks. Each thread that runs a shared-stack coroutine has one shared stack
 * (SHARED_SIZE bytes), whose `occupant` is the coroutine whose frames are on it now. A
 * shared-stack coroutine is bound to the first thread that resumes it (its frames hold
 * addresses inside that thread's shared stack), and resuming it on another thread
 * aborts with a message. Copies are lazy: a suspended occupant stays on the stack
 * until another coroutine needs it; then resume copies [occupant->sp, top) out to the
 * occupant's buffer and the resumed coroutine's saved bytes back in. The buffer is the
 * room after the struct in br__coro_new_in's memory while the frames fit there; past
 * that a block from the opts' frames ops (a loop serves them from its cells), else the
 * heap, replaced by a bigger one when the frames grow past it (the old content needn't
 * move: the copy-out writes all of it) and kept when they shrink. While the coroutine
 * runs, the room's content is dead (its frames are on the stack), so the room is lent
 * to its park memory (br__coro_park_room, core/lib.h "park memory"): a park's frames
 * outgrow the room anyway (a sleep copies out 352 bytes, a semaphore's wait 480), and
 * a copy-out while the room is busy goes to a block of its own. save_tag says which,
 * so the right owner gets it back. Running out of memory there aborts with a message:
 * there is no caller to return BR_ENOMEM to. A finished coroutine leaves the stack empty. Under
 * AddressSanitizer the region copied in is unpoisoned first (the poison on a shared
 * stack is some other coroutine's), and the copies themselves are not instrumented.
 * The shared stack is freed when its thread has exited and no coroutine is bound to
 * it any more (a reference count).
 *
 * Sanitizers. ASan: each side of a switch calls __sanitizer_start_switch_fiber before
 * and __sanitizer_finish_switch_fiber after, with the bounds of the stack switched to;
 * the coroutine learns the resumer's bounds from its finish call at every resume (a
 * coroutine may be resumed from different stacks), and a finishing coroutine passes
 * NULL so that ASan drops its fake stack. TSan: a fiber per running or suspended
 * coroutine, switched to before every switch; the resumer's fiber is read at each
 * resume. A fiber is taken at the first resume and given back when the coroutine
 * finishes, to a small pool that the next first resume takes from: TSan counts fibers
 * as threads (8128 at most alive, gcc 12's runtime) and makes one slowly (a
 * create/destroy pair cost ~4 ms here). Reuse is sound because a finished fiber's
 * shadow call stack is empty again: coro_main, the one frame that never returns, is
 * not instrumented; it only adds the old coroutine's history to the new one's (more
 * happens-before, never a false report). Valgrind: each own stack is registered
 * while the coroutine holds it, and each thread's shared stack while it exists.
 *
 * Names. A coroutine keeps a pointer, not a copy: its caller's name (lent for its life)
 * or a prefix ("coro-", or the opts' own) to which name_of appends its id when the
 * name is asked for (the overflow handler too: it formats with no library call). So
 * the loop's unnamed tasks, Task-<n>, format nothing when they start and carry no
 * 32-byte copy: that kept the coroutine at 128 bytes and a task cell at 448.
 *
 * The registry (for br__coro_foreach) is one list under one ilock: a new and a free
 * take it once each.
 */
#include "aio/coro.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#  define CORO_ASAN 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define CORO_ASAN 1
#  endif
#endif
#if defined(__SANITIZE_THREAD__)
#  define CORO_TSAN 1
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define CORO_TSAN 1
#  endif
#endif
#if defined(CORO_ASAN) || defined(CORO_TSAN)
#  define CORO_SANITIZED 1
#endif
#ifdef CORO_ASAN
#  include <sanitizer/common_interface_defs.h>
#  include <sanitizer/asan_interface.h>
#endif
#ifdef CORO_TSAN
#  include <sanitizer/tsan_interface.h>
#endif
#if defined(__has_include)
#  if __has_include(<valgrind/valgrind.h>)
#    include <valgrind/valgrind.h>
#    include <valgrind/memcheck.h>
#    define CORO_VALGRIND 1
#  endif
#endif

/* The first-entry trampoline (aio/arch/<cpu>.S). */
void br__ctx_start(void);
/* The switch declared with resume's return type, so that resume can end in a tail
 * call of it (the state passed is a br__coro_state). */
br__coro_state br__ctx_switch_state(void **save, void *to, uintptr_t pass)
    __asm__("br__ctx_switch");

#define SHARED_SIZE BR__CORO_SHARED_STACK

typedef struct shared_stack {
    br__stack stk;
    br__coro *occupant;
    _Atomic size_t refs; /* bound coroutines + 1 while its thread lives */
    unsigned vg_id;
} shared_stack;

/* Where a shared-stack coroutine's frames are kept (save_tag): none yet or the room
 * after the struct (br__coro_new_in), the heap, or >= 2 the opts' frames ops. */
enum { SAVE_INLINE = 0, SAVE_HEAP = 1 };

/* 128 bytes without sanitizers (BR__CORO_BYTES, asserted below): the fields of the two
 * stack modes share a union, the name is a pointer (made on demand: "Names" in the
 * notes above) and the flags fill the word after the state, so that a task cell
 * (aio/cells.c) keeps room for copied-out frames in 448 bytes. */
struct br__coro {
    void *sp;     /* saved context while not running */
    void *ret_sp; /* the resumer's, while running */
    br__coro_fn fn;
    void *arg;
    void *user;
    br__coro *prev; /* the coroutine current on the thread before this resume */
    _Atomic uint8_t state; /* a br__coro_state */
    bool shared;
    bool finished;
    bool in_place;     /* made by br__coro_new_in: the caller's memory, not freed here */
    uint8_t save_tag;  /* shared mode: SAVE_* or a frames ops' tag */
    bool numbered;     /* its name is `name` followed by its id in decimal */
    /* Shared mode, made by br__coro_new_in with room for a park block after the struct:
     * that room is lent to its park memory (br__coro_park_room) and busy now. */
    bool room_lendable;
    bool room_busy;
    uint64_t id;
    size_t size;       /* usable stack bytes */
    union {
        struct {           /* own-stack mode */
            br__stack stk;
            unsigned vg_id;
        };
        struct {       /* shared mode */
            shared_stack *ss;              /* bound at the first resume */
            char *save;                    /* the frames copied out */
            uint32_t save_len, save_cap;   /* the shared stack is 1 MiB */
            const br__frames_ops *frames;  /* where they spill to, or NULL */
        };
    };
    br__coro *rnext, *rprev;
    const char *name;  /* the caller's (borrowed), or the prefix of a numbered one */
#ifdef CORO_ASAN
    void *asan_fake_co, *asan_fake_res;
    const void *asan_res_bottom;
    size_t asan_res_size;
#endif
#ifdef CORO_TSAN
    void *tsan_fiber, *tsan_res;
#endif
};
#ifndef CORO_SANITIZED
_Static_assert(sizeof(br__coro) <= BR__CORO_BYTES, "a coroutine fits BR__CORO_BYTES");
#endif

/* co's name: its own, or its prefix and id written into buf (BR__CORO_NAME_MAX bytes).
 * Async-signal-safe (the overflow handler calls it). */
static const char *name_of(const br__coro *co, char *buf) {
    if (!co->numbered)
        return co->name;
    char d[24];
    size_t n = br__fmt_u(d, co->id, 10), p = 0;
    while (co->name[p] && p < BR__CORO_NAME_MAX - 1 - n)
        buf[p] = co->name[p], p++;
    for (size_t i = 0; i < n; i++)
        buf[p + i] = d[i];
    buf[p + n] = '\0';
    return buf;
}

typedef struct coro_thread {
    br__coro *current;
    shared_stack *ss;
    bool init;
} coro_thread;

/* Not static: thr() names it in asm. Hidden: nobody else's. */
extern BR__TLS coro_thread br__coro_tl __attribute__((visibility("hidden")));
BR__TLS coro_thread br__coro_tl;
static _Atomic uint64_t next_id = 1;
static br__ilock reg_lock;
static br__coro *reg_head;
static pthread_key_t ss_key;
static pthread_once_t ss_key_once = PTHREAD_ONCE_INIT;

/* This thread's block, its address computed afresh at every call from the thread
 * pointer (core/lib.h's br__tls_now does the same for br__tls_v, and says why); a
 * function the compiler can neither inline into a cached address nor treat as pure
 * where no asm is written. */
#if defined(__GNUC__) && defined(__x86_64__)
static inline coro_thread *thr(void) {
    coro_thread *p;
    __asm__ __volatile__("movq %%fs:0, %0\n\taddq br__coro_tl@gottpoff(%%rip), %0"
                         : "=r"(p));
    return p;
}
#elif defined(__GNUC__) && defined(__aarch64__)
static inline coro_thread *thr(void) {
    coro_thread *p;
    uintptr_t off;
    __asm__ __volatile__("mrs %0, tpidr_el0\n\t"
                         "adrp %1, :gottprel:br__coro_tl\n\t"
                         "ldr %1, [%1, #:gottprel_lo12:br__coro_tl]\n\t"
                         "add %0, %0, %1"
                         : "=r"(p), "=&r"(off));
    return p;
}
#else
BR__NOINLINE static coro_thread *thr(void) {
    coro_thread *p = &br__coro_tl;
    __asm__ __volatile__("" : "+r"(p));
    return p;
}
#endif

_Noreturn BR__COLD static void die(const char *what, const br__coro *co) {
    char nb[BR__CORO_NAME_MAX];
    fprintf(stderr, "braid: coroutine '%s': %s\n", co ? name_of(co, nb) : "?", what);
    abort();
}

/* A canary found overwritten at a switch. */
_Noreturn BR__COLD static void overflowed(const br__coro *co, const br__stack *s) {
    char nb[BR__CORO_NAME_MAX];
    br__stack_overflow_report(name_of(co, nb), co->size, s->base, true);
}

/* --- sanitizer announcements -------------------------------------------------------
 *
 * Always inlined: TSan records a function's entry and exit on the fiber current at the
 * time, and these switch fibers; a call of their own would enter on one fiber and exit
 * on the other. */
#define BR__ALWAYS_INLINE __attribute__((always_inline))

#ifdef CORO_ASAN
static void stack_bounds(const br__coro *co, const void **lo, size_t *size) {
    if (co->shared) {
        *lo = co->ss->stk.base;
        *size = co->ss->stk.size;
    } else {
        *lo = co->stk.base;
        *size = co->stk.size;
    }
}
#endif

/* Resumer, before switching in. */
BR__ALWAYS_INLINE static inline void fiber_enter(br__coro *co) {
#ifdef CORO_ASAN
    const void *lo;
    size_t n;
    stack_bounds(co, &lo, &n);
    __sanitizer_start_switch_fiber(&co->asan_fake_res, lo, n);
#endif
#ifdef CORO_TSAN
    co->tsan_res = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(co->tsan_fiber, 0);
#endif
    (void)co;
}
/* Coroutine, once switched in. */
BR__ALWAYS_INLINE static inline void fiber_entered(br__coro *co) {
#ifdef CORO_ASAN
    __sanitizer_finish_switch_fiber(co->asan_fake_co, &co->asan_res_bottom,
                                    &co->asan_res_size);
#endif
    (void)co;
}
/* Coroutine, before switching out (for good if finished). */
BR__ALWAYS_INLINE static inline void fiber_leave(br__coro *co, bool finished) {
#ifdef CORO_ASAN
    __sanitizer_start_switch_fiber(finished ? NULL : &co->asan_fake_co,
                                   co->asan_res_bottom, co->asan_res_size);
#endif
#ifdef CORO_TSAN
    __tsan_switch_to_fiber(co->tsan_res, 0);
#endif
    (void)co;
    (void)finished;
}
/* Resumer, once back. */
BR__ALWAYS_INLINE static inline void fiber_left(br__coro *co) {
#ifdef CORO_ASAN
    __sanitizer_finish_switch_fiber(co->asan_fake_res, NULL, NULL);
#endif
    (void)co;
}

#ifdef CORO_TSAN
enum { TSAN_POOL = 256 };
static void *tsan_pool[TSAN_POOL];
static int tsan_npool;

static void *tsan_fiber_get(const char *name) {
    void *f = NULL;
    br__ilock_lock(&reg_lock);
    if (tsan_npool > 0)
        f = tsan_pool[--tsan_npool];
    br__ilock_unlock(&reg_lock);
    if (!f)
        f = __tsan_create_fiber(0);
    __tsan_set_fiber_name(f, name);
    return f;
}

static void tsan_fiber_put(void *f) {
    br__ilock_lock(&reg_lock);
    if (tsan_npool < TSAN_POOL) {
        tsan_pool[tsan_npool++] = f;
        f = NULL;
    }
    br__ilock_unlock(&reg_lock);
    if (f)
        __tsan_destroy_fiber(f);
}
#endif

/* --- the first frame ------------------------------------------------------------------ */

static _Noreturn void coro_main(void *arg);

void *br__ctx_make(char *top, void (*entry)(void *), void *arg) {
    uintptr_t t = (uintptr_t)top & ~(uintptr_t)15;
#if defined(__x86_64__)
    uint64_t *f = (uint64_t *)(t - 64);
    f[0] = 0x1f80u | ((uint64_t)0x037fu << 32); /* MXCSR, x87 CW: the ABI's defaults */
    f[1] = 0;                                   /* r15 */
    f[2] = 0;                                   /* r14 */
    f[3] = (uint64_t)(uintptr_t)entry;          /* r13 */
    f[4] = (uint64_t)(uintptr_t)arg;            /* r12 */
    f[5] = 0;                                   /* rbx */
    f[6] = 0;                                   /* rbp */
    f[7] = (uint64_t)(uintptr_t)br__ctx_start;  /* return address */
    return f;
#elif defined(__aarch64__)
    uint64_t *f = (uint64_t *)(t - 176);
    memset(f, 0, 176);
    f[0] = (uint64_t)(uintptr_t)arg;            /* x19 */
    f[1] = (uint64_t)(uintptr_t)entry;          /* x20 */
    f[10] = 0;                                  /* x29 */
    f[11] = (uint64_t)(uintptr_t)br__ctx_start; /* x30 */
    return f;
#else
#  error "aio/coro.c: no coroutine switch for this CPU (aio/arch/)"
#endif
}

/* The context that starts co: coro_main(co) through br__ctx_start. */
static void *first_frame(br__coro *co, char *top) { return br__ctx_make(top, coro_main, co); }

#ifndef CORO_SANITIZED
/* The coroutine's side of giving the thread back, in builds without sanitizers (see
 * "Which side does the bookkeeping"): the thread's current coroutine, the canary, the
 * shared stack's occupant at the end, the state. */
static inline void leave(br__coro *co, int st) {
    coro_thread *t = thr();
    t->current = co->prev;
    const br__stack *s = BR__UNLIKELY(co->shared) ? &co->ss->stk : &co->stk;
    if (BR__UNLIKELY(!br__stack_canary_ok(s)))
        overflowed(co, s);
    if (st == BR__CORO_DONE && co->shared && co->ss->occupant == co)
        co->ss->occupant = NULL;
    atomic_store_explicit(&co->state, st, memory_order_release);
}
#endif

#if defined(CORO_TSAN)
#  define NO_TSAN __attribute__((no_sanitize_thread))
#else
#  define NO_TSAN
#endif

/* Not instrumented by TSan: it never returns, and its entry would stay on its fiber's
 * shadow stack (see "Sanitizers" above). */
NO_TSAN static _Noreturn void coro_main(void *arg) {
    br__coro *co = arg;
    fiber_entered(co);
    co->fn(co->arg);
    co->finished = true;
#ifdef CORO_SANITIZED
    fiber_leave(co, true);
#else
    leave(co, BR__CORO_DONE);
#endif
    br__ctx_switch(&co->sp, co->ret_sp, BR__CORO_DONE);
    __builtin_unreachable();
}

/* --- shared stacks --------------------------------------------------------------------- */

static void ss_unref(shared_stack *ss) {
    if (atomic_fetch_sub(&ss->refs, 1) != 1)
        return;
#ifdef CORO_VALGRIND
    VALGRIND_STACK_DEREGISTER(ss->vg_id);
#endif
    br__stack_put(&ss->stk);
    br__free(ss);
}

static void ss_thread_gone(void *p) { ss_unref(p); }

static void ss_key_make(void) { pthread_key_create(&ss_key, ss_thread_gone); }

/* The thread's shared stack, made on first use; NULL if there is no memory for it. */
static shared_stack *ss_try(coro_thread *t) {
    if (t->ss)
        return t->ss;
    pthread_once(&ss_key_once, ss_key_make);
    shared_stack *ss = br__calloc(1, sizeof *ss);
    if (!ss)
        return NULL;
    if (br__stack_get(&ss->stk, SHARED_SIZE) != 0) {
        br__free(ss);
        return NULL;
    }
    atomic_init(&ss->refs, 1);
#ifdef CORO_VALGRIND
    ss->vg_id = VALGRIND_STACK_REGISTER(ss->stk.base, ss->stk.base + ss->stk.size);
#endif
    pthread_setspecific(ss_key, ss);
    t->ss = ss;
    return ss;
}

static shared_stack *ss_of_thread(coro_thread *t) {
    shared_stack *ss = ss_try(t);
    if (!ss)
        die("out of memory for this thread's shared stack", NULL);
    return ss;
}

#if defined(CORO_ASAN) || defined(CORO_TSAN)
#  define COPY_ATTR __attribute__((no_sanitize("address", "thread"), noinline))
#else
#  define COPY_ATTR
#endif

/* Stack bytes hold other frames' poison and are not the copier's to check. */
COPY_ATTR static void copy_stack(void *dst, const void *src, size_t n) {
#if defined(CORO_ASAN) || defined(CORO_TSAN)
    volatile unsigned char *d = dst;
    const volatile unsigned char *s = src;
    for (size_t i = 0; i < n; i++)
        d[i] = s[i];
#else
    memcpy(dst, src, n);
#endif
}

/* Gives back the block co's frames were copied out to, if it is not the inline room. */
static void save_release(br__coro *co) {
    if (co->save_tag == SAVE_HEAP)
        br__free(co->save);
    else if (co->save_tag != SAVE_INLINE)
        co->frames->put(co->frames, co->save, co->save_tag);
    co->save = NULL;
    co->save_cap = 0;
    co->save_tag = SAVE_INLINE;
}

/* Room for len bytes of co's frames: a block from its frames ops, else the heap. The
 * old content needn't move: the copy-out that follows writes all len bytes. */
static void save_grow(br__coro *co, size_t len) {
    size_t cap = 0;
    uint8_t tag = SAVE_HEAP;
    char *nb = co->frames ? co->frames->get(co->frames, len, &cap, &tag) : NULL;
    if (nb == NULL) {
        cap = (len + 255) & ~(size_t)255;
        tag = SAVE_HEAP;
        nb = br__malloc(cap);
        if (!nb)
            die("out of memory copying a shared-stack coroutine's frames out", co);
    }
    save_release(co);
    co->save = nb;
    co->save_cap = (uint32_t)cap;
    co->save_tag = tag;
}

static void shared_switch_in(coro_thread *t, br__coro *co, int st) {
    shared_stack *ss = ss_of_thread(t);
    if (co->ss == NULL) {
        co->ss = ss;
        atomic_fetch_add(&ss->refs, 1);
    } else if (co->ss != ss) {
        die("a shared-stack coroutine resumed on a thread other than its first", co);
    }
    if (ss->occupant == co)
        return;
    char *top = ss->stk.base + ss->stk.size;
    br__coro *o = ss->occupant;
    if (o && atomic_load_explicit(&o->state, memory_order_relaxed) == BR__CORO_RUNNING)
        die("resumed from a coroutine running on the same shared stack", co);
    if (o) {
        size_t len = (size_t)(top - (char *)o->sp);
        /* The room holds the occupant's park memory: its frames go elsewhere. */
        if (len > o->save_cap || (o->room_busy && o->save_tag == SAVE_INLINE))
            save_grow(o, len);
        copy_stack(o->save, o->sp, len);
        o->save_len = (uint32_t)len;
    }
    if (st == BR__CORO_NEW) {
        co->sp = first_frame(co, top);
    } else {
#ifdef CORO_ASAN
        __asan_unpoison_memory_region((char *)co->sp, co->save_len);
#endif
#ifdef CORO_VALGRIND
        /* Below the stack pointer Valgrind last saw on this stack: writable now. */
        VALGRIND_MAKE_MEM_UNDEFINED(co->sp, co->save_len);
#endif
        copy_stack(co->sp, co->save, co->save_len);
    }
    ss->occupant = co;
}

/* --- the API ---------------------------------------------------------------------------- */

size_t br__coro_sizeof(void) { return (sizeof(br__coro) + 15) & ~(size_t)15; }

size_t br__coro_frames_len(const br__coro *co) {
    if (!co->shared || atomic_load_explicit(&co->state, memory_order_relaxed) !=
                           BR__CORO_SUSPENDED || co->ss == NULL)
        return 0;
    return (size_t)(co->ss->stk.base + co->ss->stk.size - (char *)co->sp);
}

/* Makes a coroutine in co (zeroed by the caller); frees nothing on failure. */
static int coro_make(br__coro *co, br__coro_fn fn, void *arg, const br__coro_opts *opts) {
    static const br__coro_opts defaults = {0};
    if (!opts)
        opts = &defaults;
    size_t size = opts->stack_size ? opts->stack_size : BR__CORO_DEFAULT_STACK;
    if (opts->shared_stack && opts->stack_size == 0)
        size = SHARED_SIZE;
    if (size < BR__CORO_MIN_STACK || size > ((size_t)1 << 36) ||
        (opts->shared_stack && size > SHARED_SIZE))
        return BR__MISUSE(BR_EINVAL, "br__coro_new: stack size out of range");
    co->fn = fn;
    co->arg = arg;
    co->shared = opts->shared_stack;
    if (co->shared)
        co->frames = opts->frames;
    co->id = opts->id ? opts->id : atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    if (co->shared) {
        co->size = size;
    } else {
        int rc = br__stack_get(&co->stk, size);
        if (rc != 0)
            return rc;
        co->size = co->stk.size;
        co->sp = first_frame(co, co->stk.base + co->stk.size);
#ifdef CORO_VALGRIND
        co->vg_id = VALGRIND_STACK_REGISTER(co->stk.base, co->stk.base + co->stk.size);
#endif
    }
    if (opts->name) {
        co->name = opts->name;
    } else {
        co->name = opts->name_prefix ? opts->name_prefix : "coro-";
        co->numbered = true;
    }
    atomic_init(&co->state, BR__CORO_NEW);
    br__ilock_lock(&reg_lock);
    co->rnext = reg_head;
    if (reg_head)
        reg_head->rprev = co;
    reg_head = co;
    br__ilock_unlock(&reg_lock);
    return 0;
}

int br__coro_new(br__coro **out, br__coro_fn fn, void *arg, const br__coro_opts *opts) {
    if (!out || !fn)
        return BR__MISUSE(BR_EINVAL, "br__coro_new: out and fn are required");
    br__coro *co = br__calloc(1, sizeof *co);
    if (!co)
        return BR_ENOMEM;
    int rc = coro_make(co, fn, arg, opts);
    if (rc != 0) {
        br__free(co);
        return rc;
    }
    *out = co;
    return 0;
}

int br__coro_new_in(br__coro **out, void *mem, size_t size, br__coro_fn fn, void *arg,
                    const br__coro_opts *opts) {
    size_t head = br__coro_sizeof();
    if (!out || !fn || !mem || ((uintptr_t)mem & 15) || size < head)
        return BR__MISUSE(BR_EINVAL, "br__coro_new_in: out, fn and room are required");
    br__coro *co = mem;
    memset(co, 0, sizeof *co);
    co->in_place = true;
    if (opts && opts->shared_stack && size > head) {
        co->save = (char *)mem + head; /* SAVE_INLINE */
        co->save_cap = (uint32_t)(size - head > UINT32_MAX ? UINT32_MAX : size - head);
        co->room_lendable = size - head >= BR__PARK_BLOCK;
    }
    int rc = coro_make(co, fn, arg, opts);
    if (rc != 0)
        return rc;
    *out = co;
    return 0;
}

/* The rare parts of a resume, out of line so that the common one stays short: a bad
 * state, the thread's first resume, a shared stack, a TSan fiber. */
BR__NOINLINE static void resume_prepare(coro_thread *t, br__coro *co, int st) {
    if (st != BR__CORO_NEW && st != BR__CORO_SUSPENDED)
        die(st == BR__CORO_DONE ? "resumed after it finished" : "resumed while running",
            co);
    if (!t->init) {
        br__stack_thread_init();
        t->init = true;
    }
    if (co->shared)
        shared_switch_in(t, co, st);
#ifdef CORO_TSAN
    if (st == BR__CORO_NEW) {
        char nb[BR__CORO_NAME_MAX];
        co->tsan_fiber = tsan_fiber_get(name_of(co, nb)); /* TSan copies it */
    }
#endif
}

#ifdef CORO_SANITIZED
BR__NOINLINE static br__coro_state resume_finished(br__coro *co) {
    if (co->shared && co->ss->occupant == co)
        co->ss->occupant = NULL;
#ifdef CORO_TSAN
    tsan_fiber_put(co->tsan_fiber);
    co->tsan_fiber = NULL;
#endif
    atomic_store_explicit(&co->state, BR__CORO_DONE, memory_order_release);
    return BR__CORO_DONE;
}
#endif

br__coro_state br__coro_resume(br__coro *co) {
    int st = atomic_load_explicit(&co->state, memory_order_relaxed);
    coro_thread *t = thr();
#ifdef CORO_TSAN
    bool slow = true;
#else
    bool slow = st != BR__CORO_SUSPENDED || !t->init || co->shared;
#endif
    if (BR__UNLIKELY(slow))
        resume_prepare(t, co, st);
    co->prev = t->current;
    t->current = co;
    atomic_store_explicit(&co->state, BR__CORO_RUNNING, memory_order_relaxed);
#ifndef CORO_SANITIZED
    /* A tail call: the coroutine continues our caller directly, passing its state. */
    return br__ctx_switch_state(&co->ret_sp, co->sp, 0);
#else
    fiber_enter(co);
    br__ctx_switch(&co->ret_sp, co->sp, 0);
    fiber_left(co);
    t = thr();
    t->current = co->prev;
    const br__stack *s = BR__UNLIKELY(co->shared) ? &co->ss->stk : &co->stk;
    if (BR__UNLIKELY(!br__stack_canary_ok(s)))
        overflowed(co, s);
    if (BR__UNLIKELY(co->finished))
        return resume_finished(co);
    atomic_store_explicit(&co->state, BR__CORO_SUSPENDED, memory_order_release);
    return BR__CORO_SUSPENDED;
#endif
}

void br__coro_suspend(void) {
    br__coro *co = thr()->current;
    if (BR__UNLIKELY(!co))
        die("br__coro_suspend called outside a coroutine", NULL);
#ifndef CORO_SANITIZED
    leave(co, BR__CORO_SUSPENDED);
    br__ctx_switch(&co->sp, co->ret_sp, BR__CORO_SUSPENDED);
#else
    fiber_leave(co, false);
    br__ctx_switch(&co->sp, co->ret_sp, 0);
    fiber_entered(co);
#endif
}

#if BR__CORO_HAND_OFF && !defined(CORO_SANITIZED)
void br__coro_hand_off(br__coro *to) {
    br__coro *co = thr()->current;
    if (BR__UNLIKELY(!co || co->shared || to->shared ||
                     atomic_load_explicit(&to->state, memory_order_relaxed) != BR__CORO_SUSPENDED))
        die("br__coro_hand_off: not between two own-stack coroutines", co ? co : to);
    leave(co, BR__CORO_SUSPENDED);
    coro_thread *t = thr();
    to->prev = t->current; /* co->prev: leave made it current */
    t->current = to;
    to->ret_sp = co->ret_sp; /* the resumer's context: `to` returns there */
    atomic_store_explicit(&to->state, BR__CORO_RUNNING, memory_order_relaxed);
    br__ctx_switch(&co->sp, to->sp, 0);
}
#elif BR__CORO_HAND_OFF
#  error "coro.h and coro.c disagree on the sanitizers"
#endif

bool br__coro_own_stack(const br__coro *co) { return !co->shared; }

br__coro *br__coro_current(void) { return thr()->current; }

int br__coro_shared_range(const char **lo, const char **hi) {
    shared_stack *ss = ss_try(thr());
    if (!ss)
        return BR_ENOMEM;
    *lo = ss->stk.base;
    *hi = ss->stk.base + ss->stk.size;
    return 0;
}

void *br__coro_park_room(br__coro *co, bool **busy) {
    if (!co->room_lendable)
        return NULL;
    *busy = &co->room_busy;
    return (char *)co + br__coro_sizeof();
}

bool br__coro_running_stack(br__stack *s, const char **name, char buf[BR__CORO_NAME_MAX]) {
    br__coro *co = br__coro_tl.current; /* a signal handler: no switch under it */
    if (!co)
        return false;
    *s = co->shared ? co->ss->stk : co->stk;
    if (co->shared)
        s->size = co->ss->stk.size;
    *name = name_of(co, buf);
    return true;
}

void br__coro_free(br__coro *co) {
    if (!co)
        return;
    int st = atomic_load_explicit(&co->state, memory_order_acquire);
    if (st != BR__CORO_NEW && st != BR__CORO_DONE)
        die("freed while running or suspended", co);
    br__ilock_lock(&reg_lock);
    if (co->rprev)
        co->rprev->rnext = co->rnext;
    else
        reg_head = co->rnext;
    if (co->rnext)
        co->rnext->rprev = co->rprev;
    br__ilock_unlock(&reg_lock);
    if (co->shared) {
        if (co->ss)
            ss_unref(co->ss);
        save_release(co);
    } else {
#ifdef CORO_VALGRIND
        VALGRIND_STACK_DEREGISTER(co->vg_id);
#endif
        br__stack_put(&co->stk);
    }
    if (!co->in_place)
        br__free(co);
}

br__coro_state br__coro_state_of(const br__coro *co) {
    return (br__coro_state)atomic_load_explicit(&co->state, memory_order_acquire);
}
const char *br__coro_name(const br__coro *co, char buf[BR__CORO_NAME_MAX]) {
    return name_of(co, buf);
}
uint64_t br__coro_id(const br__coro *co) { return co->id; }
void br__coro_set_user(br__coro *co, void *user) { co->user = user; }
void *br__coro_user(const br__coro *co) { return co->user; }
size_t br__coro_stack_size(const br__coro *co) { return co->size; }

void br__coro_foreach(void (*visit)(br__coro *co, void *arg), void *arg) {
    br__ilock_lock(&reg_lock);
    for (br__coro *co = reg_head; co; co = co->rnext)
        visit(co, arg);
    br__ilock_unlock(&reg_lock);
}
