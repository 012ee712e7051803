/* The per-thread cache of future blocks: its slow paths and its life with the thread.
 * The fast paths and the design are in future/cache.h; the shared layer behind it is
 * blocks.c. */
#include "future/cache.h"

#include <pthread.h>

BR__TLS br__fcache br__tcache;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

/* The thread is exiting: its lists go back to the shared layer, and from now on every
 * block it frees goes straight there (state 2). */
static void cache_thread_exit(void *arg) {
    br__fcache *c = arg;
    c->state = 2;
    if (c->fl)
        br__blocks_put(c->fl, c->nfl);
    if (c->al)
        br__blocks_put(c->al, c->nal);
    c->fl = c->al = NULL;
    c->nfl = c->nal = 0;
}

/* fork() while another thread holds the shared layer's lock would leave it held
 * forever in the child: the future layer holds it across the fork instead. */
static br__hooks future_hooks = {
    .order = BR__ORDER_FUTURE,
    .name = "future",
    .prepare = br__blocks_lock,
    .parent = br__blocks_fork_parent,
    .child = br__blocks_fork_child,
};

static void cache_key_init(void) {
    if (pthread_key_create(&cache_key, cache_thread_exit) != 0)
        cache_key = (pthread_key_t)-1;
    (void)br__hooks_register(&future_hooks); /* fails only with too many hooks */
}

static void cache_register(br__fcache *c) {
    pthread_once(&cache_once, cache_key_init);
    if (cache_key != (pthread_key_t)-1)
        pthread_setspecific(cache_key, c);
    c->state = 1;
}

br_future *br__cache_get_slow(br__fcache *c) {
    if (c->state == 0)
        cache_register(c);
    uint32_t n = 0;
    br_future *chain = br__blocks_get(&n);
    if (chain == NULL)
        return NULL;
    br_future *f = chain;
    chain = f->u.cache_next;
    if (c->state == 1) {
        c->al = chain;
        c->nal = n - 1;
    } else if (chain) { /* this thread's cache is gone: keep one block only */
        br__blocks_put(chain, n - 1);
    }
    BR__UNPOISON_BODY(f);
    return f;
}

void br__cache_put_slow(br__fcache *c, br_future *f) {
    if (c->state == 2) { /* this thread's cache is gone: straight to the shared layer */
        f->u.cache_next = NULL;
        br__blocks_put(f, 1);
        return;
    }
    cache_register(c);
    f->u.cache_next = c->fl;
    c->fl = f;
    c->nfl++;
}

void br__cache_flush_fl(br__fcache *c) {
    if (c->al == NULL) {
        c->al = c->fl;
        c->nal = BR__BLOCK_BATCH;
    } else {
        br__blocks_put(c->fl, BR__BLOCK_BATCH);
    }
    c->fl = NULL;
    c->nfl = 0;
}
