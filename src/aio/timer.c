/* The loop's timer heap (aio/loop.h): a binary min-heap of intrusive nodes keyed by
 * (when, seq). Design note: seq is a per-heap counter stamped at push, so nodes due at
 * the same instant come out in the order they were armed (call_at's documented order)
 * and the comparison is a strict total order. Every node stores its own index, which
 * every swap keeps true: that is what lets a park's or a scope's timer be disarmed in
 * O(log n) without a search. Loop thread only: no locks. */
#include "aio/loop.h"

static bool before(const br__tnode *x, const br__tnode *y) {
    return x->when < y->when || (x->when == y->when && x->seq < y->seq);
}

static void put(br__theap *h, size_t i, br__tnode *t) {
    h->a[i] = t;
    t->idx = i;
}

static void sift_up(br__theap *h, size_t i) {
    br__tnode *t = h->a[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(t, h->a[p]))
            break;
        put(h, i, h->a[p]);
        i = p;
    }
    put(h, i, t);
}

static void sift_down(br__theap *h, size_t i) {
    br__tnode *t = h->a[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && before(h->a[c + 1], h->a[c]))
            c++;
        if (!before(h->a[c], t))
            break;
        put(h, i, h->a[c]);
        i = c;
    }
    put(h, i, t);
}

int br__theap_reserve(br__theap *h, size_t n) {
    if (n <= h->cap)
        return 0;
    size_t cap = h->cap ? h->cap : 16;
    while (cap < n)
        cap *= 2;
    br__tnode **a = br__malloc(cap * sizeof *a);
    if (a == NULL)
        return BR_ENOMEM;
    for (size_t i = 0; i < h->n; i++)
        a[i] = h->a[i];
    br__free(h->a);
    h->a = a;
    h->cap = cap;
    return 0;
}

int br__theap_push(br__theap *h, br__tnode *t, int64_t when) {
    if (h->n == h->cap && br__theap_reserve(h, h->n + 1) != 0)
        return BR_ENOMEM;
    t->when = when;
    t->seq = h->seq++;
    put(h, h->n++, t);
    sift_up(h, t->idx);
    return 0;
}

void br__theap_remove(br__theap *h, br__tnode *t) {
    size_t i = t->idx;
    if (i == BR__TNODE_OFF)
        return;
    t->idx = BR__TNODE_OFF;
    br__tnode *last = h->a[--h->n];
    if (i == h->n)
        return;
    put(h, i, last);
    if (i > 0 && before(last, h->a[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

br__tnode *br__theap_pop(br__theap *h) {
    br__tnode *t = br__theap_top(h);
    if (t)
        br__theap_remove(h, t);
    return t;
}

void br__theap_free(br__theap *h) {
    for (size_t i = 0; i < h->n; i++)
        h->a[i]->idx = BR__TNODE_OFF;
    br__free(h->a);
    h->a = NULL;
    h->n = h->cap = 0;
}
