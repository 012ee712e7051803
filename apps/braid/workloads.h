/* workloads.h: the CPU-bound work of BENCH.md W1/N1 and W2, the work `braid compare`
 * runs. The benchmarks (bench/) include it from here, so the two always time the same
 * loop; it uses nothing but the C library, so the program stays on the public API.
 *
 * W1/N1: is_prime(112272535095293) by trial division, exactly as
 * ../shared/peers/native/README.md defines N1: uint64_t, one division per odd
 * candidate, sqrt in double; the number is read from a volatile, so the compiler can
 * neither fold nor hoist the calls, and is_prime is never inlined into the timed loop.
 * W2: the naive recursive fib, the tutorials' fib.
 */
#ifndef BRAID_APPS_WORKLOADS_H
#define BRAID_APPS_WORKLOADS_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#define W1_NUMBER 112272535095293ull /* a prime: every call returns true */

static volatile uint64_t w1_number = W1_NUMBER;

__attribute__((noinline, unused)) static bool is_prime(uint64_t n) {
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

__attribute__((noinline, unused)) static int64_t fib(int64_t n) {
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

#endif
