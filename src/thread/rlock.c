/* threading.RLock: a br__lock plus a recursion count that only the holder touches.
 *
 * The owner check is lock.c's: only a context stores its own br__self() in owner, so
 * owner == br__self() means the caller holds it and may bump the count without any
 * atomic. The count is handed from holder to holder by the lock's acquire/release
 * ordering, like any data the lock protects.
 */
#include "thread/private.h"

#include <string.h>

BR__CHECK_STORAGE(br_rlock, struct br__rlock);

int br_rlock_init(br_rlock *pub) {
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_rlock_init: NULL rlock");
    memset(pub, 0, sizeof *pub);
    return 0;
}

int br_rlock_destroy(br_rlock *pub) {
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_rlock_destroy: NULL rlock");
    return br__lock_destroy(&BR__RLOCK_IMPL(pub)->lock);
}

int br_rlock_acquire(br_rlock *pub, int64_t deadline) {
    struct br__rlock *r = BR__RLOCK_IMPL(pub);
    if (BR__UNLIKELY(!pub))
        return BR__MISUSE(BR_EINVAL, "br_rlock_acquire: NULL rlock");
    if (br__lock_owned(&r->lock)) {
        if (BR__UNLIKELY(r->count == UINT32_MAX))
            return BR_EOVERFLOW;
        r->count++;
        return 0;
    }
    int rc = br__lock_acquire(&r->lock, deadline);
    if (BR__UNLIKELY(rc != 0))
        return rc == BR_EINVAL ? BR__MISUSE(rc, "br_rlock_acquire: destroyed rlock") : rc;
    r->count = 1;
    return 0;
}

int br_rlock_release(br_rlock *pub) {
    struct br__rlock *r = BR__RLOCK_IMPL(pub);
    if (BR__UNLIKELY(!pub))
        return BR__MISUSE(BR_EINVAL, "br_rlock_release: NULL rlock");
    if (BR__UNLIKELY(!br__lock_owned(&r->lock))) {
        if (atomic_load_explicit(&r->lock.state, memory_order_relaxed) ==
            BR__LOCK_DESTROYED)
            return BR__MISUSE(BR_EINVAL, "br_rlock_release: destroyed rlock");
        return BR__MISUSE(BR_EPERM, "br_rlock_release: the caller doesn't hold it");
    }
    if (--r->count == 0)
        br__lock_release(&r->lock);
    return 0;
}

bool br_rlock_owned(const br_rlock *pub) {
    return pub && br__lock_owned(&BR__RLOCK_IMPL(pub)->lock);
}

unsigned br_rlock_count(const br_rlock *pub) {
    if (!pub || !br__lock_owned(&BR__RLOCK_IMPL(pub)->lock))
        return 0; /* only the holder may read count */
    return BR__RLOCK_IMPL(pub)->count;
}
