// The public headers compile as C++11 (they carry extern "C" guards, so they must),
// and the library links and works from C++: every header through <braid.h>, the
// static inline functions, the zero initializers, and a call into each layer.
//
// Not a cmocka table: a plain program that exits 0 when every check passes. Built and
// registered only when a C++ compiler is available (see tests/CMakeLists.txt). The
// _Generic-based macros (br_cond_init, BR_WITH) are C only; C++ code calls
// br_cond_init_lock / br_cond_init_rlock and acquires and releases explicitly (or
// wraps them in RAII).
#include <braid.h>

#include <cstdio>
#include <cstring>

static_assert(sizeof(br_lock) == 40 && alignof(br_lock) == 8, "br_lock layout differs from C");
static_assert(sizeof(br_rlock) == 48 && alignof(br_rlock) == 8, "br_rlock layout differs from C");
static_assert(sizeof(br_cond) == 104 && alignof(br_cond) == 8, "br_cond layout differs from C");
static_assert(sizeof(br_sem) == 40 && alignof(br_sem) == 8, "br_sem layout differs from C");
static_assert(sizeof(br_event) == 32 && alignof(br_event) == 8, "br_event layout differs from C");
static_assert(sizeof(br_barrier) == 104 && alignof(br_barrier) == 8,
              "br_barrier layout differs from C");

static int failures;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                               \
        }                                                                             \
    } while (0)

static br_lock counter_lock = BR_LOCK_INIT;
static long counter;

static void worker(void *arg) {
    long n = *static_cast<long *>(arg);
    for (long i = 0; i < n; i++) {
        br_lock_acquire(&counter_lock, BR_FOREVER);
        counter++;
        br_lock_release(&counter_lock);
    }
}

static int square(br_task *t) {
    int64_t x = br_task_arg_i64(t);
    return br_task_return_i64(t, x * x);
}

int main() {
    // core: the inline function, error names, deadlines
    CHECK(br_deadline_min(1, 2) == 1);
    CHECK(std::strcmp(br_err_name(BR_ETIMEDOUT), "BR_ETIMEDOUT") == 0);
    CHECK(br_deadline_after(BR_FOREVER) == BR_FOREVER);

    // thread: zero-initialised storage, the guard's inline release, a thread
    br_lock l = BR_LOCK_INIT;
    CHECK(br_lock_acquire(&l, BR_NOWAIT) == 0);
    CHECK(br_lock_owned(&l));
    CHECK(br_lock_release(&l) == 0);
    br_guard_ g = br_guard_lock_(&l);
    CHECK(g.obj != NULL && br_lock_owned(&l));
    br_guard_release_(&g);
    CHECK(!br_lock_locked(&l));

    br_rlock r = BR_RLOCK_INIT;
    CHECK(br_rlock_acquire(&r, BR_FOREVER) == 0 && br_rlock_acquire(&r, BR_FOREVER) == 0);
    CHECK(br_rlock_count(&r) == 2);
    CHECK(br_rlock_release(&r) == 0 && br_rlock_release(&r) == 0);

    br_cond c = BR_COND_INIT;
    CHECK(br_cond_acquire(&c, BR_FOREVER) == 0);
    CHECK(br_cond_wait(&c, BR_NOWAIT) == BR_ETIMEDOUT);
    CHECK(br_cond_release(&c) == 0);
    CHECK(br_cond_init_lock(&c, &l) == 0);
    CHECK(br_cond_destroy(&c) == 0);

    br_sem s = BR_SEM_INIT;
    CHECK(br_sem_release(&s, 2) == 0 && br_sem_value(&s) == 2);
    br_event e = BR_EVENT_INIT;
    CHECK(br_event_set(&e) == 0 && br_event_wait(&e, BR_NOWAIT) == 0);
    br_barrier b;
    CHECK(br_barrier_init(&b, 1, NULL, NULL) == 0);
    CHECK(br_barrier_wait(&b, BR_NOWAIT) == 0);
    CHECK(br_barrier_destroy(&b) == 0);

    long n = 10000;
    br_thread *t[2];
    for (int i = 0; i < 2; i++)
        CHECK(br_thread_start(&t[i], worker, &n, NULL) == 0);
    for (int i = 0; i < 2; i++) {
        CHECK(br_thread_join(t[i], BR_FOREVER) == 0);
        CHECK(br_thread_free(t[i]) == 0);
    }
    CHECK(counter == 2 * n);

    // queue
    br_queue *q = NULL;
    CHECK(br_queue_new(&q, NULL) == 0);
    int item = 7;
    void *got = NULL;
    CHECK(br_queue_put(q, &item, BR_NOWAIT) == 0);
    CHECK(br_queue_get(q, &got, BR_NOWAIT) == 0 && got == &item);
    CHECK(br_queue_free(q) == 0);

    // future and executor
    br_executor *ex = NULL;
    CHECK(br_threadpool_new(&ex, NULL) == 0);
    br_future *f = NULL;
    CHECK(br_submit_i64(ex, square, 12, &f) == 0);
    int64_t v = 0;
    CHECK(br_future_result_i64(f, BR_FOREVER, &v) == 0 && v == 144);
    br_future_release(f);
    CHECK(br_executor_free(ex) == 0);

    if (failures == 0)
        std::printf("headers_cxx: ok\n");
    return failures == 0 ? 0 : 1;
}
