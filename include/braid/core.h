/* braid/core.h: what every layer shares. Error codes, deadlines, the misuse policy.
 *
 * Errors. A braid function that can fail returns int: 0, or a negative BR_E... code.
 * Codes that POSIX has are -errno (BR_ETIMEDOUT == -ETIMEDOUT); braid's own codes live
 * in -3000..-3099, well away from any errno. errno never carries a braid error.
 * br_strerror() and br_err_name() never allocate and return string literals only.
 *
 * Time. Every blocking call ends with `int64_t deadline`: an absolute time on the
 * monotonic clock, in nanoseconds (br_now()). Two values are special:
 *   BR_FOREVER  wait as long as it takes;
 *   BR_NOWAIT   don't wait at all (any deadline in the past behaves the same).
 * A call whose deadline passes returns BR_ETIMEDOUT. Under BR_NOWAIT that same code
 * means "would have blocked" (queue empty, lock taken, ...): one code for both.
 * Absolute deadlines compose: pass the same one to every nested call of a request.
 *
 * Option structs. Constructors take `const br_x_opts *`; NULL or a zeroed struct means
 * the defaults, and zero will always mean "the default" for fields added later. So in an
 * option struct, and only there, a deadline field of 0 means "no deadline".
 */
#ifndef BRAID_CORE_H
#define BRAID_CORE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- export macro -------------------------------------------------------------- */
#if defined(_WIN32) && !defined(BRAID_STATIC)
#  ifdef BRAID_BUILDING
#    define BR_API __declspec(dllexport)
#  else
#    define BR_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__)
#  define BR_API __attribute__((visibility("default")))
#else
#  define BR_API
#endif

#if defined(__GNUC__)
#  define BR_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#  define BR_NODISCARD __attribute__((warn_unused_result))
#else
#  define BR_PRINTF(fmt, args)
#  define BR_NODISCARD
#endif

/* BR_ALIGNAS(n): alignas in C++11, _Alignas in C11, so that the public headers (the
 * opaque storage of br_lock and friends) compile as both. */
#if defined(__cplusplus) && (__cplusplus >= 201103L || (defined(_MSVC_LANG) && _MSVC_LANG >= 201103L))
#  define BR_ALIGNAS(n) alignas(n)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#  define BR_ALIGNAS(n) _Alignas(n)
#elif defined(__GNUC__)
#  define BR_ALIGNAS(n) __attribute__((aligned(n)))
#else
#  error "braid's headers need C11 or C++11"
#endif

#define BRAID_VERSION_MAJOR 0
#define BRAID_VERSION_MINOR 1
#define BRAID_VERSION_PATCH 0
/* "0.1.0" */
BR_API const char *br_version(void);

/* --- errors -------------------------------------------------------------------- */

/* The one table of error codes. XX(NAME, value, "message"). POSIX codes are the
 * platform's -errno values (so BR_ETIMEDOUT == -ETIMEDOUT wherever braid builds);
 * braid's own live in -3000..-3099, clear of every errno. */
#define BR_ERRNO_MAP(XX)                                                             \
    XX(EPERM, -EPERM, "operation not permitted (not the owner)")                        \
    XX(ENOENT, -ENOENT, "no such file or directory")                                    \
    XX(ESRCH, -ESRCH, "no such process")                                                \
    XX(EINTR, -EINTR, "interrupted system call")                                        \
    XX(EIO, -EIO, "i/o error")                                                          \
    XX(EBADF, -EBADF, "bad file descriptor")                                            \
    XX(ECHILD, -ECHILD, "no child processes")                                           \
    XX(EAGAIN, -EAGAIN, "resource temporarily unavailable")                             \
    XX(ENOMEM, -ENOMEM, "out of memory")                                                \
    XX(EACCES, -EACCES, "permission denied")                                            \
    XX(EBUSY, -EBUSY, "resource busy or still in use")                                  \
    XX(EEXIST, -EEXIST, "already exists")                                               \
    XX(EINVAL, -EINVAL, "invalid argument")                                             \
    XX(ENFILE, -ENFILE, "file table overflow")                                          \
    XX(EMFILE, -EMFILE, "too many open files")                                          \
    XX(ENOSPC, -ENOSPC, "no space left on device")                                      \
    XX(EPIPE, -EPIPE, "broken pipe")                                                    \
    XX(ERANGE, -ERANGE, "result out of range")                                          \
    XX(EDEADLK, -EDEADLK, "resource deadlock avoided")                                  \
    XX(ENAMETOOLONG, -ENAMETOOLONG, "name too long")                                    \
    XX(ENOSYS, -ENOSYS, "function not implemented")                                     \
    XX(EOVERFLOW, -EOVERFLOW, "value too large (released too many times)")              \
    XX(ENOTSUP, -ENOTSUP, "operation not supported")                                    \
    XX(ECONNRESET, -ECONNRESET, "connection reset by peer")                             \
    XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                              \
    XX(ECONNREFUSED, -ECONNREFUSED, "connection refused")                               \
    XX(EADDRINUSE, -EADDRINUSE, "address already in use")                               \
    XX(ENOTCONN, -ENOTCONN, "not connected")                                            \
    XX(ENETUNREACH, -ENETUNREACH, "network unreachable")                                \
    XX(EHOSTUNREACH, -EHOSTUNREACH, "host unreachable")                                 \
    XX(ECANCELED, -ECANCELED, "operation canceled")                                     \
    XX(EPROTO, -EPROTO, "protocol error (a malformed or unexpected reply)")             \
    XX(EMSGSIZE, -EMSGSIZE, "message too long (over a configured size cap)")            \
    XX(EOWNERDEAD, -EOWNERDEAD, "the previous owner died holding it")                   \
    XX(ENOTRECOVERABLE, -ENOTRECOVERABLE, "not recoverable (owner died, never made consistent)") \
    XX(ESHUTDOWN, -3001, "shut down")                                                   \
    XX(EBROKEN, -3002, "broken (a barrier was aborted or a pool's initializer failed)") \
    XX(EWORKERDIED, -3003, "a worker died while running the task")                      \
    XX(ESTATE, -3004, "invalid state for this operation")                               \
    XX(EOF, -3005, "end of stream")                                                     \
    XX(EFAILED, -3006, "the task failed")                                               \
    XX(ENAME, -3007, "host name not resolved")                                          \
    XX(EREDIRECT, -3008, "too many redirects, or a redirect to a refused scheme")       \
    XX(ETLS, -3009, "TLS handshake or certificate verification failed")

enum br_errno {
#define BR_ERRNO_ENUM_(name, value, msg) BR_##name = (value),
    BR_ERRNO_MAP(BR_ERRNO_ENUM_)
#undef BR_ERRNO_ENUM_
    BR_OK = 0
};

/* A short message for `code` ("timed out"). Unknown codes give "unknown error". */
BR_API const char *br_strerror(int code);
/* The code's name ("BR_ETIMEDOUT", "BR_OK"). Unknown codes give "BR_UNKNOWN". */
BR_API const char *br_err_name(int code);
/* Formats the message into buf (always NUL-terminated when len > 0); unknown codes
 * are written as "unknown error -N". Returns buf. */
BR_API char *br_strerror_r(int code, char *buf, size_t len);

/* Misuse (a null handle, releasing a lock you don't own, submitting to a shut-down
 * pool) returns BR_EINVAL, BR_EPERM or BR_ESHUTDOWN. With panic_on_misuse on, BR_EINVAL
 * and BR_EPERM caused by misuse abort() instead (SIGABRT), so that a bug fails a test
 * where it happens, after writing to stderr:
 *
 *   braid: misuse: br_lock_release: the caller doesn't hold the lock (BR_EPERM)
 *   braid: called from ./app+0x1192 (misuse_here+0x22)
 *   braid: backtrace, innermost first:
 *   ./app(misuse_here+0x22)[0x563311b0b192]
 *   ./app(main+0x13)[0x563311b0b073]
 *   ...
 *
 * The first line names the API function, what was wrong and the code. The second names
 * the caller, the innermost frame outside libbraid: its module, the offset of the return
 * address in it (`addr2line -f -e ./app 0x1192` names the function, and the line if the
 * program has debug info; for a position-independent program or a library), and its
 * symbol if the module exports one. That line is there only when libbraid is a shared
 * library; linked statically, braid is part of the program's module, and the caller is
 * the first frame of the backtrace that isn't braid's. The backtrace follows, one frame
 * per line, as "module(symbol+offset)[address]". A function whose last act was a call
 * (a tail call) has left the stack and shows nowhere: often braid's own, and a caller
 * that ends with `return br_x(...)`, whose own caller is then named instead. A program's
 * functions have names there only if it is linked with -rdynamic (and they are visible);
 * module and offset are always there. Where the C library has no unwinder, only the
 * first line is written. Off by default; process-wide. */
BR_API void br_set_panic_on_misuse(bool on);

/* --- time and deadlines ------------------------------------------------------- */

#define BR_FOREVER INT64_MAX
#define BR_NOWAIT ((int64_t)0)

#define BR_USEC ((int64_t)1000)
#define BR_MSEC ((int64_t)1000000)
#define BR_SEC ((int64_t)1000000000)

/* Now, on the monotonic clock, in nanoseconds. */
BR_API int64_t br_now(void);
/* br_now() + ns, saturating: a negative ns gives now, a huge one BR_FOREVER. */
BR_API int64_t br_deadline_after(int64_t ns);
/* The same, from seconds (Python's timeout=): NaN or negative gives now; +inf and
 * anything past the representable range give BR_FOREVER. */
BR_API int64_t br_deadline_after_s(double seconds);
/* The earlier of two deadlines. */
static inline int64_t br_deadline_min(int64_t a, int64_t b) { return a < b ? a : b; }
/* Nanoseconds left until `deadline` (0 if past, INT64_MAX for BR_FOREVER). */
BR_API int64_t br_deadline_left(int64_t deadline);

/* Sleeps until `deadline` (a thread parks; later, a coroutine will suspend). Returns
 * 0 once the deadline has passed (signals don't cut it short), or BR_ECANCELED: the
 * calling coroutine was cancelled (never for a thread); the sleep ended early and
 * nothing else happened. The same for br_sleep and br_sleep_s. */
BR_API int br_sleep_until(int64_t deadline);
/* Sleeps `ns` nanoseconds; br_sleep_s takes seconds (Python's time.sleep). */
BR_API int br_sleep(int64_t ns);
BR_API int br_sleep_s(double seconds);

/* --- the machine --------------------------------------------------------------- */

/* CPUs this process may use now: the CPU affinity mask, further limited by a cgroup v2
 * (or v1) CPU quota, rounded up; at least 1. Python's os.process_cpu_count(), made
 * cgroup-aware. Read afresh at each call (a few syscalls; cache it if it's hot). */
BR_API int br_cpu_count(void);

#ifdef __cplusplus
}
#endif
#endif
