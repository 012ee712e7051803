/* The coroutine core (internal): stackful coroutines, their stacks, and the switch.
 * What the loop (aio/loop.c) builds tasks on. Nothing here knows about loops, timers
 * or the waiter: a coroutine is a stack and a saved context, resumed by a scheduler
 * (the code that called br__coro_resume) and suspended back to it.
 *
 * Design notes.
 *
 * Asymmetric: br__coro_resume(co) runs co on the calling thread until co suspends
 * (br__coro_suspend) or its function returns; control always comes back to the
 * resumer. Only a scheduler resumes. The one exception is a hand-off
 * (br__coro_hand_off): an own-stack coroutine suspends and resumes another own-stack
 * one in its place, which then returns to the first one's resumer; the scheduler
 * decides when (the loop: the next runnable of its batch, so the order is the one it
 * would have run them in), and it exists only without sanitizers. No shared stack is
 * ever part of one: that keeps the shared-stack mode simple (only one coroutine's
 * frames are live on a shared stack at a time, and the copy in/out happens in resume)
 * and lets the sanitizer fiber hooks pair every switch.
 *
 * The switch (aio/arch/<cpu>.S) saves only what the ABI says a callee preserves: on
 * x86-64 (System V) rbx, rbp, r12-r15, rsp, and the MXCSR control bits and x87 control
 * word; on AArch64 x19-x29, lr, sp, d8-d15 and FPCR. Everything else is clobbered by
 * the call to the switch, as by any call. CET (IBT, shadow stacks) and BTI: the entry
 * points carry endbr64 / bti c when the compiler defines __CET__ / __ARM_FEATURE_BTI_DEFAULT,
 * and the object is marked with the matching GNU property note.
 *
 * Stacks (aio/stack.c). Own-stack mode: each coroutine has its own stack, carved from
 * big batched mappings (one mmap per many stacks, so the count of mappings stays far
 * below vm.max_map_count even for 1,000,000 coroutines), committed lazily by the
 * kernel (touched pages only), with a guard below each stack (MADV_GUARD_INSTALL where
 * the kernel has it; else mprotect(PROT_NONE) of the guard page, within a budget; and
 * past the budget a canary word at the stack's low end checked at every suspend and at
 * finish). Freed stacks go back to a free list and are reused before any fresh
 * memory; free stacks' pages are released with MADV_DONTNEED only past a bound of
 * free stacks, in batches of adjacent slots, so a steady spawn/finish cycle touches no
 * fresh page and a burst's release costs a few calls. Shared-stack mode: coroutines of one scheduler run on one big stack; at
 * suspend the used part (from sp to the top) is copied out to a buffer owned by the
 * coroutine, and copied back at resume. Pointers into a suspended shared-stack
 * coroutine's stack are invalid while it is suspended: the docs say so.
 *
 * Stack overflow. A fault in a guard page is caught by a SIGSEGV handler running on
 * an alternate signal stack (installed once, chaining to any previous handler for
 * faults that are not a coroutine's guard), which prints
 *   braid: coroutine 'NAME' overflowed its stack (SIZE KiB) at ADDR
 * and aborts. A canary found overwritten prints the same with "(canary)".
 *
 * Sanitizers and debuggers. Every switch is announced: ASan's
 * __sanitizer_start_switch_fiber / __sanitizer_finish_switch_fiber, TSan's
 * __tsan_create_fiber / __tsan_switch_to_fiber / __tsan_destroy_fiber, and Valgrind's
 * VALGRIND_STACK_REGISTER / DEREGISTER for each stack (where valgrind.h exists).
 *
 * Per-thread state. Code that may run inside a coroutine reads braid's per-thread
 * state through br__tls_now() (core/lib.h), never by caching the address of br__tls_v
 * across a call that may switch: a later M:N scheduler may resume a coroutine on
 * another thread.
 */
#ifndef BRAID_AIO_CORO_H
#define BRAID_AIO_CORO_H

#include "core/lib.h"

#include <stddef.h>

typedef struct br__coro br__coro;
typedef void (*br__coro_fn)(void *arg);

typedef enum br__coro_state {
    BR__CORO_NEW,       /* made, never resumed */
    BR__CORO_RUNNING,   /* between resume and suspend/finish */
    BR__CORO_SUSPENDED,
    BR__CORO_DONE       /* its function returned */
} br__coro_state;

/* Where a shared-stack coroutine's copied-out frames go once they outgrow the room it
 * has (br__coro_new_in's memory after the struct, or none): get returns a block of
 * *cap >= len bytes (16-byte aligned) and a tag >= 2 that put takes back, or NULL, and
 * then the frames go to the heap. Called on the thread whose shared stack holds the
 * frames (get: at a copy-out; put: at a later, bigger copy-out and at br__coro_free),
 * so a scheduler can serve them from memory of its thread's own (aio/cells.c). */
typedef struct br__frames_ops br__frames_ops;
struct br__frames_ops {
    void *(*get)(const br__frames_ops *ops, size_t len, size_t *cap, uint8_t *tag);
    void (*put)(const br__frames_ops *ops, void *p, uint8_t tag);
};

typedef struct br__coro_opts {
    size_t stack_size;  /* 0: the default (BR__CORO_DEFAULT_STACK); rounded up to pages */
    bool shared_stack;  /* run on the scheduler thread's shared stack (copied out at suspend) */
    /* Borrowed, not copied: it must outlive the coroutine and stay unchanged. NULL: the
     * name is name_prefix followed by the id in decimal, made when asked for. */
    const char *name;
    const char *name_prefix; /* NULL: "coro-"; borrowed as name is */
    uint64_t id;        /* 0: a fresh one (a counter of this layer's); else the caller's
                         * (the loop gives its task's number: "Task-<n>") */
    const br__frames_ops *frames; /* shared stack: where frames spill to (NULL: the heap);
                                   * must outlive the coroutine */
} br__coro_opts;

/* A coroutine's bytes at most, without sanitizers (coro.c asserts it at compile time): a
 * task cell's room for frames is computed from it (aio/loop.h). */
#define BR__CORO_BYTES ((size_t)128)
/* The buffer br__coro_name fills: a numbered name is cut to BR__CORO_NAME_MAX - 1 bytes. */
#define BR__CORO_NAME_MAX 32

#define BR__CORO_DEFAULT_STACK ((size_t)256 << 10)
#define BR__CORO_MIN_STACK ((size_t)16 << 10)
/* The size of each thread's shared stack: a shared-stack coroutine's limit. */
#define BR__CORO_SHARED_STACK ((size_t)1 << 20)

/* Makes a coroutine that will run fn(arg) when first resumed. BR_EINVAL: a stack_size
 * below BR__CORO_MIN_STACK (or absurdly large); BR_ENOMEM. */
int br__coro_new(br__coro **out, br__coro_fn fn, void *arg, const br__coro_opts *opts);

/* br__coro_new in the caller's memory: mem (16-byte aligned) holds `size` bytes, at
 * least br__coro_sizeof(). The coroutine lives there (br__coro_free gives its stack back
 * but not mem, which stays the caller's, to free after br__coro_free); a shared-stack
 * coroutine copies its frames out into the rest of mem while they fit (to the heap
 * beyond). So a caller that keeps coroutines in its own records makes one allocation
 * per coroutine instead of two or three (aio/task.c's cells). Errors as br__coro_new. */
int br__coro_new_in(br__coro **out, void *mem, size_t size, br__coro_fn fn, void *arg,
                    const br__coro_opts *opts);
/* The bytes a coroutine itself takes in br__coro_new_in's memory (a multiple of 16). */
size_t br__coro_sizeof(void);
/* A suspended shared-stack coroutine's frames: the bytes from its saved stack pointer to
 * its shared stack's top (what is or will be copied out); 0 for any other. */
size_t br__coro_frames_len(const br__coro *co);

/* Runs co on this thread until it suspends or finishes. Returns its state then
 * (BR__CORO_SUSPENDED or BR__CORO_DONE). Not from inside a coroutine of the same
 * scheduler thread that is co itself; resuming a RUNNING or DONE coroutine is a bug
 * (aborts with a message in debug builds). */
br__coro_state br__coro_resume(br__coro *co);

/* From inside a coroutine: back to the resumer. Returns when resumed again. */
void br__coro_suspend(void);

/* Whether br__coro_hand_off exists in this build: not with ASan or TSan, whose fiber
 * hooks pair every switch with its resumer (coro.c, "Hand-offs"). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#  define BR__CORO_HAND_OFF 0
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#    define BR__CORO_HAND_OFF 0
#  endif
#endif
#ifndef BR__CORO_HAND_OFF
#  define BR__CORO_HAND_OFF 1
#endif

/* From inside an own-stack coroutine: suspends it (as br__coro_suspend) and resumes
 * `to`, a SUSPENDED own-stack coroutine of this thread, in its place, without passing
 * through the resumer: `to` takes over the resumer's context, so when it suspends or
 * finishes, the br__coro_resume that resumed the caller returns `to`'s state. The
 * resumer must therefore learn who came back some other way (the loop: the task
 * running on the thread, br__atask_tl). Returns when the caller is resumed again. Only
 * where BR__CORO_HAND_OFF is 1; anything else (a shared stack on either side, `to` not
 * SUSPENDED) aborts with a message. */
void br__coro_hand_off(br__coro *to);
/* Whether co is an own-stack coroutine (so a hand-off's either side). */
bool br__coro_own_stack(const br__coro *co);

/* The coroutine running on this thread, or NULL on a thread's own stack. */
br__coro *br__coro_current(void);

/* Frees a NEW or DONE coroutine and gives its stack back. A DONE one only once the
 * br__coro_resume that returned BR__CORO_DONE has returned (on its scheduler thread, or
 * after a hand-off from it): another thread reading br__coro_state_of may see DONE a
 * few instructions before the coroutine has left its stack (coro.c, "Which side does
 * the bookkeeping"). */
void br__coro_free(br__coro *co);

br__coro_state br__coro_state_of(const br__coro *co);
/* Its name: the one it was given, or its prefix and id written into buf. */
const char *br__coro_name(const br__coro *co, char buf[BR__CORO_NAME_MAX]);
/* Writes v in base (2..16) at out, no terminator, and returns the digits' count (at
 * most 20 in base 10). Async-signal-safe: the overflow handler and the names use it
 * (aio/stack.c). */
size_t br__fmt_u(char *out, uint64_t v, unsigned base);
/* Its id: the one given in its opts, or a fresh one (those grow). */
uint64_t br__coro_id(const br__coro *co);
/* A pointer the scheduler keeps with the coroutine (the loop's task). */
void br__coro_set_user(br__coro *co, void *user);
void *br__coro_user(const br__coro *co);
/* Bytes of stack this coroutine may use, and (own-stack mode) its committed pages. */
size_t br__coro_stack_size(const br__coro *co);

/* Calls visit(co, arg) for every coroutine not yet freed, on every thread (under the
 * registry's lock: visit must not make, free or resume coroutines). For the loop's
 * listing of live coroutines (br_aio_dump). */
void br__coro_foreach(void (*visit)(br__coro *co, void *arg), void *arg);

/* Statistics for tests and benchmarks: mappings made by the stack allocator so far,
 * stacks live, stacks on the free lists; free stacks whose pages were released so far,
 * and the madvise calls that did it (stack.c, "Releasing"). */
typedef struct br__stack_stats {
    size_t mappings, live, free_cached;
    size_t released, release_calls;
} br__stack_stats;
void br__stack_get_stats(br__stack_stats *out);

/* --- the raw switch (aio/arch/<cpu>.S), for coro.c and the benchmark --------------
 *
 * br__ctx_switch saves the callee-saved state on the current stack, stores the stack
 * pointer in *save and continues the context `to` (a value stored by an earlier switch,
 * or made by br__ctx_make), where the switch that saved it returns `pass`.
 * br__ctx_make builds, below top, a context that calls entry(arg) on that stack when
 * first switched to; entry must never return. */
uintptr_t br__ctx_switch(void **save, void *to, uintptr_t pass);
void *br__ctx_make(char *top, void (*entry)(void *), void *arg);

/* --- between coro.c and stack.c (nobody else) ---------------------------------------
 *
 * A stack: usable bytes [base, base + size), the canary word at base, a guard region
 * of BR__STACK_GUARD bytes below base (its kind says how it is enforced). */
enum { BR__GUARD_NONE, BR__GUARD_MADVISE, BR__GUARD_MPROTECT };
#define BR__STACK_GUARD ((size_t)16 << 10)
typedef struct br__stack {
    char *base;
    size_t size;
    int guard; /* BR__GUARD_* */
} br__stack;

/* Takes a stack of `size` bytes (a page multiple) from the pool: a cached one if any,
 * else a fresh slot carved from the current batch mapping (a new batch if none is
 * left). Writes the canary if the stack has no guard. 0 or BR_ENOMEM. */
int br__stack_get(br__stack *s, size_t size);
/* Gives a stack back to its pool's free list (its pages released past a bound). */
void br__stack_put(br__stack *s);
/* Test hook: guards are made as if the kernel had `mode` (BR__GUARD_MADVISE or
 * BR__GUARD_MPROTECT) from now on, with mprotect_left mprotect guards left. */
void br__stack_test_guard(int mode, size_t mprotect_left);
/* False if the stack has no guard pages and the canary at its low end was overwritten
 * (a guarded stack has no canary: see stack.c, "Guards"). */
#define BR__STACK_CANARY 0x6272616964c0de5aull /* "braid", c0de, 5a; xor the address */
static inline bool br__stack_canary_ok(const br__stack *s) {
    return s->guard != BR__GUARD_NONE ||
           *(const volatile uint64_t *)(const void *)s->base ==
               (BR__STACK_CANARY ^ (uint64_t)(uintptr_t)s->base);
}
/* Once per thread that resumes coroutines: the overflow handler (process-wide, once)
 * and this thread's alternate signal stack. */
void br__stack_thread_init(void);
/* For the overflow handler (stack.c): the stack the coroutine running on this thread
 * runs on (its own, or its thread's shared stack) and its name (made in buf if it is
 * a numbered one); false if none. Async-signal-safe. */
bool br__coro_running_stack(br__stack *s, const char **name, char buf[BR__CORO_NAME_MAX]);
/* The room after a shared-stack coroutine's struct in br__coro_new_in's memory, if it
 * holds a park block (BR__PARK_BLOCK bytes), else NULL; *busy is the flag that says it
 * is lent. Lent to the coroutine's park memory while it runs (br__set_context_room):
 * a copy-out while it is busy puts the frames elsewhere. */
void *br__coro_park_room(br__coro *co, bool **busy);
/* The calling thread's shared stack, [*lo, *hi) (made if it has none yet): where every
 * shared-stack coroutine resumed on this thread runs. 0, or BR_ENOMEM (no stack made). */
int br__coro_shared_range(const char **lo, const char **hi);
/* Prints "braid: coroutine 'NAME' overflowed its stack (SIZE KiB) at ADDR[ (canary)]"
 * to stderr with async-signal-safe calls and aborts. */
_Noreturn void br__stack_overflow_report(const char *name, size_t size, const void *addr,
                                         bool canary);

#endif
