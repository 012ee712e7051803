/* ppe_primes.c: ProcessPoolExecutor with submit, map and as_completed on the primes.
 *
 * Ports 000_b9e24c88e52a00dc.txt's `with ProcessPoolExecutor() as pool:` and
 * 004_3a0c11dfd5eebac6.txt's multi_process: is_prime over the PRIMES list, in worker
 * processes. The task is the thread pool's, unchanged (README.md's first program): only
 * the constructor differs. map gives input order; as_completed completion order;
 * submit's futures mix with any others.
 */
#include <braid.h>
#include <braid/processpool.h>

#include "example.h"

#include <stdio.h>

static int is_prime_task(br_task *t) {
    int64_t n = br_task_arg_i64(t);
    for (int64_t i = 3; i * i <= n; i += 2)
        if (n % i == 0)
            return br_task_return_i64(t, 0);
    return br_task_return_i64(t, n > 1 && (n == 2 || n % 2));
}

static const int64_t PRIMES[] = {112272535095293, 112582705942171, 112272535095293,
                                 115280095190773, 115797848077099, 1099726899285419};
enum { N = sizeof PRIMES / sizeof PRIMES[0] };

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    br_executor *pool;
    must(br_processpool_new(&pool, NULL), "ProcessPoolExecutor"); /* with ... as pool */

    /* map: input order */
    br_map *m;
    must(br_map_new(&m, pool, is_prime_task, PRIMES, N, sizeof PRIMES[0], NULL), "map");
    int64_t ok;
    int rc;
    for (int i = 0; (rc = br_map_next_i64(m, &ok)) == 0; i++)
        printf("map %lld is prime: %s\n", (long long)PRIMES[i], ok ? "True" : "False");
    if (rc != BR_EOF)
        must(rc, "map_next");
    br_map_free(m);

    /* submit + as_completed: completion order */
    br_future *fs[N];
    for (int i = 0; i < N; i++)
        must(br_submit_i64(pool, is_prime_task, PRIMES[i], &fs[i]), "submit");
    br_as_completed *it;
    must(br_as_completed_new(&it, fs, N, BR_FOREVER), "as_completed");
    br_future *f;
    size_t i;
    int primes = 0;
    while ((rc = br_as_completed_next_index(it, &f, &i)) == 0) {
        must(br_future_result_i64(f, BR_NOWAIT, &ok), "result");
        primes += ok != 0;
        printf("done %lld is prime: %s\n", (long long)PRIMES[i], ok ? "True" : "False");
    }
    if (rc != BR_EOF)
        must(rc, "as_completed_next");
    must(br_as_completed_free(it), "free");
    for (int k = 0; k < N; k++)
        br_future_release(fs[k]);
    printf("%d of %d are prime\n", primes, N);
    must(br_executor_free(pool), "free"); /* shutdown(wait=True) */
    return 0;
}
