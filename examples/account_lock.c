/* account_lock.c: two threads withdraw 800 from 1000 under a Lock: one succeeds.
 *
 * Ports 000_b9e24c88e52a00dc.txt, In [13] ("修改线程不安全的代码"): draw() runs its check
 * and debit inside `with lock:`, with a sleep between them ("使用lock后，第二个线程无法
 * 进入，这里会有1秒啥也不干"); scaled from 1 s to 0.05 s. Exactly one withdrawal succeeds,
 * the other is refused, and the balance is 200, whichever thread runs first.
 */
#include <braid.h>

#include "example.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct account {
    long balance;
} account;

typedef struct draw_args {
    account *account;
    long amount;
} draw_args;

static br_lock lock = BR_LOCK_INIT;

static void draw(void *arg) {
    draw_args *d = arg;
    const char *name = br_thread_current_name();
    BR_WITH(&lock) {
        if (d->account->balance >= d->amount) {
            br_sleep_s(0.05); /* time.sleep(1): the other thread waits for the lock */
            printf("%s 取钱成功\n", name);
            d->account->balance -= d->amount;
            printf("%s 余额 %ld\n", name, d->account->balance);
        } else {
            printf("%s 取钱失败，余额不足\n", name);
        }
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
    printf("final balance %ld\n", acct.balance);
    return 0;
}
