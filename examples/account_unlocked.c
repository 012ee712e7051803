/* account_unlocked.c: two threads withdraw 800 from an account of 1000, with no lock.
 *
 * Ports 000_b9e24c88e52a00dc.txt, In [11] and In [12] ("线程安全概念介绍"): draw() checks
 * the balance, then debits it. In [11] usually looks fine; In [12] sleeps between the
 * check and the debit ("加上这句后必然出问题"), so both threads pass the check and the
 * balance ends at -600. This port runs In [12], the sleep scaled from 0.1 s to 0.05 s.
 *
 * A demonstration, not a test: the outcome depends on timing (with the sleep, both
 * withdrawals almost always succeed). The balance is read and written with relaxed
 * atomic loads and stores, so the race is the tutorial's check-then-act race, not a C
 * data race (which would be undefined behaviour and fail under ThreadSanitizer). The
 * fix is account_lock.c.
 */
#include <braid.h>

#include "example.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct account {
    _Atomic long balance;
} account;

typedef struct draw_args {
    account *account;
    long amount;
} draw_args;

static long get_balance(account *a) {
    return atomic_load_explicit(&a->balance, memory_order_relaxed);
}

static void draw(void *arg) {
    draw_args *d = arg;
    const char *name = br_thread_current_name();
    if (get_balance(d->account) >= d->amount) {
        br_sleep_s(0.05); /* time.sleep(0.1): the other thread checks meanwhile */
        printf("%s 取钱成功\n", name);
        atomic_store_explicit(&d->account->balance, get_balance(d->account) - d->amount,
                              memory_order_relaxed); /* account.balance -= amount */
        printf("%s 余额 %ld\n", name, get_balance(d->account));
    } else {
        printf("%s 取钱失败，余额不足\n", name);
    }
}

int main(void) {
    account acct = {1000};
    draw_args args = {&acct, 800};
    br_thread *ta, *tb;
    must(br_thread_start(&ta, draw, &args, &(br_thread_opts){.name = "ta"}), "start ta");
    must(br_thread_start(&tb, draw, &args, &(br_thread_opts){.name = "tb"}), "start tb");
    must(br_thread_join(ta, BR_FOREVER), "join ta");
    must(br_thread_join(tb, BR_FOREVER), "join tb");
    br_thread_free(ta);
    br_thread_free(tb);
    printf("final balance %ld (with a lock it would be 200)\n", get_balance(&acct));
    return 0;
}
