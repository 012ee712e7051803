/* BR_WITH: `with lock:`, released however the block is left. */
#include "thread_util.h"

static br_lock lk = BR_LOCK_INIT;

static int leave_by_return(void) {
    BR_WITH(&lk) {
        if (br_lock_owned(&lk))
            return 1;
    }
    return 0;
}

static void lock_released_however_the_block_is_left(void **state) {
    (void)state;
    int ran = 0;

    BR_WITH(&lk) { /* the end of the block */
        ran++;
        BR_CHECK(br_lock_owned(&lk));
    }
    BR_CHECK_EQ(ran, 1);
    BR_CHECK(!br_lock_locked(&lk));

    BR_WITH(&lk) { /* break leaves the BR_WITH itself */
        ran++;
        break;
    }
    BR_CHECK_EQ(ran, 2);
    BR_CHECK(!br_lock_locked(&lk));

    BR_WITH(&lk) { /* so does continue */
        ran++;
        continue;
    }
    BR_CHECK_EQ(ran, 3);
    BR_CHECK(!br_lock_locked(&lk));

    BR_CHECK_EQ(leave_by_return(), 1); /* return */
    BR_CHECK(!br_lock_locked(&lk));

    BR_WITH(&lk) { /* goto */
        ran++;
        goto out;
    }
    fail_msg("goto skipped");
out:
    BR_CHECK_EQ(ran, 4);
    BR_CHECK(!br_lock_locked(&lk));

    /* inside a loop: break and continue act on the BR_WITH, not on the loop */
    int iterations = 0;
    for (int i = 0; i < 3; i++) {
        BR_WITH(&lk) {
            if (i == 1)
                break; /* leaves the block only */
            if (i == 2)
                continue;
        }
        iterations++;
        BR_CHECK(!br_lock_locked(&lk));
    }
    BR_CHECK_EQ(iterations, 3);

    /* the documented ways to leave the loop itself: a flag tested after the block... */
    iterations = 0;
    for (int i = 0; i < 5; i++) {
        bool stop = false;
        BR_WITH(&lk) {
            stop = i == 1;
        }
        if (stop)
            break;
        iterations++;
    }
    BR_CHECK_EQ(iterations, 1); /* Python's `with` + break: the loop ends at i == 1 */
    BR_CHECK(!br_lock_locked(&lk));
    /* ...or a goto past the loop, which releases the lock on the way out */
    iterations = 0;
    for (int i = 0; i < 5; i++) {
        iterations++;
        BR_WITH(&lk) {
            if (i == 1)
                goto left_the_loop;
        }
    }
    fail_msg("goto didn't leave the loop");
left_the_loop:
    BR_CHECK_EQ(iterations, 2);
    BR_CHECK(!br_lock_locked(&lk));
}

static void nested_rlock_and_other_kinds(void **state) {
    (void)state;
    br_rlock r = BR_RLOCK_INIT;
    BR_WITH(&r) {
        BR_CHECK_EQ(br_rlock_count(&r), 1);
        BR_WITH(&r) {
            BR_CHECK_EQ(br_rlock_count(&r), 2);
            break;
        }
        BR_CHECK_EQ(br_rlock_count(&r), 1);
    }
    BR_CHECK_EQ(br_rlock_count(&r), 0);
    BR_CHECK(!br_rlock_owned(&r));

    br_sem s;
    BR_CHECK_OK(br_sem_init_bounded(&s, 2));
    BR_WITH(&s) {
        BR_CHECK_EQ(br_sem_value(&s), 1);
        BR_WITH(&s) {
            BR_CHECK_EQ(br_sem_value(&s), 0);
        }
        BR_CHECK_EQ(br_sem_value(&s), 1);
    }
    BR_CHECK_EQ(br_sem_value(&s), 2);

    br_lock l = BR_LOCK_INIT;
    br_cond c;
    BR_CHECK_OK(br_cond_init(&c, &l));
    BR_WITH(&c) {
        BR_CHECK(br_lock_owned(&l));
        BR_CHECK_ERR(br_cond_wait(&c, BR_NOWAIT), BR_ETIMEDOUT); /* and holds it again */
        BR_CHECK(br_lock_owned(&l));
    }
    BR_CHECK(!br_lock_locked(&l));
}

/* A failed acquire (misuse) skips the block. */
static void failed_acquire_skips_the_block(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    int ran = 0;
    BR_CHECK_OK(br_lock_acquire(&l, BR_FOREVER));
    BR_WITH(&l) {
        ran++;
    } /* already ours: BR_EDEADLK, block skipped */
    BR_CHECK_EQ(ran, 0);
    BR_CHECK(br_lock_owned(&l)); /* our own hold is untouched */
    BR_CHECK_OK(br_lock_release(&l));
    BR_CHECK_OK(br_lock_destroy(&l));
    BR_WITH(&l) {
        ran++;
    } /* destroyed: BR_EINVAL, block skipped */
    BR_CHECK_EQ(ran, 0);
    br_sem s = BR_SEM_INIT;
    BR_CHECK_OK(br_sem_destroy(&s));
    BR_WITH(&s) {
        ran++;
    }
    BR_CHECK_EQ(ran, 0);
}

/* BR_WITH as the critical section of a multi-threaded counter. */
enum { THREADS = 4 };
static long guarded_counter;

static void with_worker(void *arg) {
    long n = *(long *)arg;
    for (long i = 0; i < n; i++)
        BR_WITH(&lk) {
            guarded_counter++;
        }
}

static void guards_a_counter(void **state) {
    (void)state;
    long n = br_test_scaled(100000, 1000);
    br_thread *t[THREADS];
    tu_spawn_n(t, THREADS, with_worker, &n);
    tu_join_n(t, THREADS);
    BR_CHECK_EQ(guarded_counter, THREADS * n);
    BR_CHECK(!br_lock_locked(&lk));
}

BR_TEST_MAIN(cmocka_unit_test(lock_released_however_the_block_is_left),
             cmocka_unit_test(nested_rlock_and_other_kinds),
             cmocka_unit_test(failed_acquire_skips_the_block),
             cmocka_unit_test(guards_a_counter))
