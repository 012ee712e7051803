/* The monotonic clock, deadlines and sleeping. */
#include "core/lib.h"

#include <math.h>
#include <time.h>

int64_t br_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * BR_SEC + ts.tv_nsec;
}

int64_t br_deadline_after(int64_t ns) {
    int64_t now = br_now();
    if (ns <= 0)
        return now;
    if (ns >= BR_FOREVER - now)
        return BR_FOREVER;
    return now + ns;
}

int64_t br_deadline_after_s(double seconds) {
    if (isnan(seconds) || seconds <= 0)
        return br_now();
    if (seconds >= 9.2e9) /* > INT64_MAX ns; +inf lands here too */
        return BR_FOREVER;
    return br_deadline_after((int64_t)(seconds * 1e9));
}

int64_t br_deadline_left(int64_t deadline) {
    if (deadline == BR_FOREVER)
        return INT64_MAX;
    int64_t left = deadline - br_now();
    return left > 0 ? left : 0;
}

int br_sleep_until(int64_t deadline) {
    /* A waiter nobody will wake: parks the thread (or, later, suspends the coroutine)
     * until the deadline, through the same path as every other blocking call. The park
     * ends at the deadline (BR_ETIMEDOUT: the sleep is over, 0) or, for a coroutine, at
     * a cancel (BR_ECANCELED, reported as it is: nothing is linked anywhere, so there
     * is nothing to undo). Whether a park whose deadline has already passed reports a
     * pending cancel (making br_sleep(0) a cancellation point, like asyncio.sleep(0))
     * is the parker's choice; the tests' parker does. */
    BR__PARKED(br__waiter, w);
    br__waiter_init(w);
    int rc;
    while ((rc = br__waiter_park(w, deadline)) == 0 && deadline == BR_FOREVER)
        ; /* nobody signals a sleeper; a FOREVER sleep never returns */
    return rc == BR_ECANCELED ? BR_ECANCELED : 0;
}

int br_sleep(int64_t ns) { return br_sleep_until(br_deadline_after(ns)); }

int br_sleep_s(double seconds) { return br_sleep_until(br_deadline_after_s(seconds)); }
