/* The outcome module: the one place that writes what a future ends with besides its
 * state (future/private.h: code, rkind, rlen, r).
 *
 * Design notes.
 *
 * A result (bytes or an in-process pointer) and a failure message never coexist, so
 * they share the block's 32 bytes: up to 32 result bytes or a 31-byte message live
 * inline, longer ones on the heap. Every writer goes through a staged outcome
 * (br__outcome): staging may allocate, putting never does. The common cases (a result
 * of up to 32 bytes, putting, clearing an empty outcome) are inline in
 * future/private.h, so that staging a small result and putting it compiles to the
 * stores a direct write would make; this file has the rest. So a completer that must
 * not change anything when memory runs out (br_future_set_result, br_task_return)
 * stages first and claims or puts only once staging succeeded; and a failure message
 * that can't be copied is cut to what fits inline rather than lost (a task's failure
 * must stay a failure).
 *
 * Who may write: whoever owns the completion, with no lock. That is a claimer between
 * its claim (PENDING or RUNNING -> COMPLETING) and its publish, or, between
 * br__task_begin and br__task_finish, the task or its executor (the INTASK flag keeps
 * every other writer out). After the done state is published nothing writes here
 * until the block is freed (br__outcome_clear from br__future_free), so readers need
 * no lock (future.c, "Publication").
 */
#include "future/private.h"

#include <stdio.h>
#include <string.h>

int br__outcome_bytes_heap(br__outcome *o, const void *data, size_t len) {
    void *heap = br__malloc(len);
    if (heap == NULL)
        return BR_ENOMEM;
    memcpy(heap, data, len);
    br__outcome_heap(o, heap, len);
    return 0;
}

void br__outcome_heap(br__outcome *o, void *heap, size_t len) {
    o->kind = BR__R_HEAP;
    o->len = 0;
    o->r.heap.p = heap;
    o->r.heap.len = len;
}

void br__outcome_ptr(br__outcome *o, void *ptr, void (*dtor)(void *ptr)) {
    o->kind = BR__R_PTR;
    o->len = 0;
    o->r.ptr.p = ptr;
    o->r.ptr.dtor = dtor;
}

int br__outcome_msg(br__outcome *o, const char *msg, size_t len, bool exact) {
    o->kind = BR__R_NONE;
    o->len = 0;
    if (msg == NULL)
        return 0;
    if (len >= BR__INLINE_MSG) {
        char *heap = br__malloc(len + 1);
        if (heap != NULL) {
            memcpy(heap, msg, len);
            heap[len] = '\0';
            o->kind = BR__R_MSGHEAP;
            o->r.heap.p = heap;
            o->r.heap.len = len;
            return 0;
        }
        if (exact)
            return BR_ENOMEM;
        len = BR__INLINE_MSG - 1; /* keep what fits */
    }
    memcpy(o->r.buf, msg, len);
    o->r.buf[len] = '\0';
    o->kind = BR__R_MSG;
    return 0;
}

void br__outcome_msgv(br__outcome *o, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf((char *)o->r.buf, BR__INLINE_MSG, fmt, ap);
    o->kind = n >= 0 ? BR__R_MSG : BR__R_NONE;
    o->len = 0;
    if (n >= BR__INLINE_MSG) {
        char *heap = br__malloc((size_t)n + 1);
        if (heap != NULL) { /* else keep the inline copy, cut */
            vsnprintf(heap, (size_t)n + 1, fmt, ap2);
            o->kind = BR__R_MSGHEAP;
            o->r.heap.p = heap;
            o->r.heap.len = (size_t)n;
        }
    }
    va_end(ap2);
}

void br__outcome_drop(br__outcome *o) {
    if (o->kind == BR__R_HEAP || o->kind == BR__R_MSGHEAP)
        br__free(o->r.heap.p);
    o->kind = BR__R_NONE;
}

void br__outcome_clear_held(br_future *f) {
    switch (f->rkind) {
    case BR__R_HEAP:
    case BR__R_MSGHEAP:
        br__free(f->r.heap.p);
        break;
    case BR__R_PTR:
        /* TAKEN: br_future_take_ptr gave the pointer to its caller. */
        if (f->r.ptr.dtor && !(br__future_state(f) & BR__FF_TAKEN))
            f->r.ptr.dtor(f->r.ptr.p);
        break;
    default:
        break;
    }
    f->rkind = BR__R_NONE;
    f->rlen = 0;
}

const void *br__outcome_data(const br_future *f, size_t *len) {
    *len = 0;
    switch (f->rkind) {
    case BR__R_INLINE:
        *len = f->rlen;
        return f->r.buf;
    case BR__R_HEAP:
        *len = f->r.heap.len;
        return f->r.heap.p;
    case BR__R_PTR:
        return (br__future_state(f) & BR__FF_TAKEN) ? NULL : f->r.ptr.p;
    default:
        return NULL;
    }
}
