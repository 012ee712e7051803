/* primes_map.c: is_prime over a list, in one thread and with ThreadPoolExecutor.map.
 *
 * Ports 000_b9e24c88e52a00dc.txt, In [16] and In [17] (single_thread, multi_thread with
 * `pool.map(is_prime, PRIMES)`), the same program in 004_3a0c11dfd5eebac6.txt
 * ("单线程，多线程，多进程计算素数"). In CPython the thread pool is no faster than one
 * thread (26.07 s vs 25.58 s in the notebook: the GIL lets one thread run at a time).
 * In C the pool's threads run in parallel. (multi_process comes with braid's process
 * layer; `braid compare` runs the full-size experiment, 100 calls.)
 *
 * Porting notes: a smaller, mixed list so that the example is quick and the answers
 * say something: the five primes and the one composite of Python's own
 * ProcessPoolExecutor example, the tutorial's 112272535095293 again, and a few small
 * cases. is_prime is the tutorial's, in uint64_t, with sqrt in double. Each input
 * travels to its task as 8 bytes; each answer comes back as an int64.
 */
#include <braid.h>

#include "example.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static const int64_t PRIMES[] = {
    112272535095293, 112582705942171, 112272535095293, 115280095190773,
    115797848077099, 1099726899285419, 1, 2, 9, 97, 2147483649, 999999999991,
};
enum { N = sizeof PRIMES / sizeof PRIMES[0] };

static bool is_prime(uint64_t n) {
    if (n < 2)
        return false;
    if (n == 2)
        return true;
    if (n % 2 == 0)
        return false;
    uint64_t sqrt_n = (uint64_t)floor(sqrt((double)n));
    for (uint64_t i = 3; i <= sqrt_n; i += 2)
        if (n % i == 0)
            return false;
    return true;
}

static int is_prime_task(br_task *t) {
    return br_task_return_i64(t, is_prime((uint64_t)br_task_arg_i64(t)));
}

static void single_thread(bool out[N]) {
    for (int i = 0; i < N; i++)
        out[i] = is_prime((uint64_t)PRIMES[i]);
}

static void multi_thread(bool out[N]) {
    br_executor *pool; /* with ThreadPoolExecutor() as pool: */
    must(br_threadpool_new(&pool, NULL), "pool");
    br_map *m;
    must(br_map_new(&m, pool, is_prime_task, PRIMES, N, sizeof PRIMES[0], NULL), "map");
    for (int i = 0; i < N; i++) {
        int64_t r;
        must(br_map_next_i64(m, &r), "map_next");
        out[i] = r != 0;
    }
    must(br_map_free(m), "map_free");
    must(br_executor_free(pool), "free");
}

int main(void) {
    bool single[N], multi[N];
    int64_t start = br_now();
    single_thread(single);
    printf("single thread, cost: %.3f seconds\n", (double)(br_now() - start) / BR_SEC);

    start = br_now();
    multi_thread(multi);
    printf("multi thread, cost: %.3f seconds\n", (double)(br_now() - start) / BR_SEC);

    int same = 0;
    for (int i = 0; i < N; i++) {
        printf("%lld is prime: %s\n", (long long)PRIMES[i], multi[i] ? "True" : "False");
        same += single[i] == multi[i];
    }
    printf("single thread and thread pool agree on %d of %d\n", same, N);
    return same == N ? 0 : 1;
}
