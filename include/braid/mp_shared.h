/* braid/mp_shared.h: state shared between processes, in shared memory, with no server
 * process. Python's Manager().dict() and Manager().list(), multiprocessing.Value and
 * Array, and multiprocessing.shared_memory.SharedMemory.
 *
 *   Python                                  braid
 *   d = Manager().dict()                    br_mp_dict_new(&d, NULL)
 *   d[k] = v / d[k] / del d[k] / k in d     br_mp_dict_set / _get / _delete / _contains
 *   len(d), d.keys(), d.items()             br_mp_dict_len / _keys / _items (snapshots)
 *   l = Manager().list(); l.append(x)       br_mp_list_new(&l, NULL); br_mp_list_append
 *   l[i], l[i] = x, len(l), list(l)         br_mp_list_get / _set / _len / _snapshot
 *   Value('q', 0); with v.get_lock(): ...   br_mp_value_new(&v, BR_MP_I64);
 * br_mp_value_update Array('d', 10); a[i]; a[2:5]            br_mp_array_new(&a, BR_MP_F64,
 * 10, 0); _get_f64; _read SharedMemory(create=True, size=n)       br_shared_memory_new(&s,
 * n)
 *
 * Where the objects live. Each object is one anonymous shared-memory file (memfd): a
 * process that forks after making it shares it with the child (the handle is valid there
 * as it is), and a spawned child gets it from its descriptor (br_..._fd, passed or
 * inherited) with br_..._attach. The memory is freed by the kernel when the last process
 * using it has freed its handle or died, whichever way: nothing is ever left in /dev/shm.
 * Each process frees its own handle (br_..._free); freeing in one process never affects
 * the others.
 *
 * Safety. Every operation is atomic with respect to every other process and thread: the
 * object holds a process-shared robust lock, taken for the operation's few instructions
 * and copies. A process that dies in the middle of an operation (SIGKILL included)
 * leaves the object as it was before that operation or after it, never in between: the
 * next user repairs what the dead one left half-done (docs/multiprocessing.md, "Shared state", "Crashes").
 * Two exceptions, copies of the caller's bytes into place: br_mp_array_write (and a
 * BR_MP_BYTES element) and the _update callbacks' own stores, which a writer killed half
 * way leaves part old, part new, as in Python.
 * The lock is held only for one operation (no user code runs under it, except in the
 * _update calls), so these calls take no deadline; the _update calls do.
 *
 * Growth. A dict or a list grows as it fills: no capacity is fixed at creation. The only
 * bound is BR_MP_MAX_BYTES of shared memory per object (and the machine's memory):
 * beyond either, a call returns BR_ENOMEM and the object is unchanged.
 *
 * Bytes out. A call that hands back bytes (br_mp_dict_get, br_mp_list_get...) allocates
 * them for the caller, who frees them with br_mp_bytes_free; they are NUL-terminated
 * (the NUL not counted in the length), so a string stored with its length comes back as
 * a C string. Snapshots (br_mp_items) are one allocation, freed with br_mp_items_free.
 *
 * Errors: BR_EINVAL for a NULL handle or pointer, a zero size where one is needed, a
 * wrong type or a descriptor that isn't one of these objects; BR_ENOENT for a missing
 * key; BR_ERANGE for an index out of range; BR_ENOMEM when memory (private or shared)
 * runs out; BR_EBROKEN if an object's shared state is found damaged beyond repair (only
 * a program writing over it by hand can do that).
 */
#ifndef BRAID_MP_SHARED_H
#define BRAID_MP_SHARED_H

#include <braid/core.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The most shared memory one dict or list may grow to (1 TiB); a bigger request is
 * BR_ENOMEM. */
#define BR_MP_MAX_BYTES ((size_t)1 << 40)

/* Options of br_mp_dict_new and br_mp_list_new; NULL or zeroed means the defaults. */
typedef struct br_mp_shared_opts {
    /* Shared memory to start with, in bytes (0: 64 KiB; at least 8 KiB is used). Only a
     * starting point: the object grows past it as needed. */
    size_t initial_bytes;
} br_mp_shared_opts;

/* One item of a snapshot: bytes and their length (data[len] is a NUL, not counted). */
typedef struct br_mp_bytes {
    const void *data;
    size_t len;
} br_mp_bytes;

/* A snapshot: count keys (a dict's keys, or a list's elements in order) and, for
 * br_mp_dict_items, count values (values[i] belongs to keys[i]); values is NULL for
 * br_mp_dict_keys and br_mp_list_snapshot. One allocation holds everything. */
typedef struct br_mp_items {
    size_t count;
    br_mp_bytes *keys;
    br_mp_bytes *values;
} br_mp_items;

/* Frees what br_mp_dict_get, br_mp_dict_get_str, br_mp_list_get handed back. NULL is
 * fine. */
BR_API void br_mp_bytes_free(void *p);
/* Frees a snapshot. NULL is fine. */
BR_API void br_mp_items_free(br_mp_items *items);

/* --- dict: bytes keys to bytes values ---------------------------------------------- */

typedef struct br_mp_dict br_mp_dict;

/* A new empty dict; *out is the caller's handle (free with br_mp_dict_free). 0,
 * BR_EINVAL (out NULL), BR_ENOMEM, BR_EMFILE. */
BR_API int br_mp_dict_new(br_mp_dict **out, const br_mp_shared_opts *opts);
/* The descriptor to give a spawned child (it stays the handle's: don't close it). It is
 * close-on-exec, like every descriptor braid opens: whoever spawns the child passes it
 * (dup2 in the child, or the spawn layer's inherited descriptors). The same holds for
 * br_mp_list_fd, br_mp_value_fd, br_mp_array_fd and br_shared_memory_fd. */
BR_API int br_mp_dict_fd(const br_mp_dict *d);
/* A handle on the dict behind fd (from br_mp_dict_fd in another process); takes a
 * duplicate of fd, the caller keeps its own. 0, BR_EINVAL (not a dict), BR_ENOMEM, or
 * another -errno (BR_EBADF...). */
BR_API int br_mp_dict_attach(br_mp_dict **out, int fd);
/* Frees this process's handle; the dict lives on in other processes. NULL is fine. */
BR_API void br_mp_dict_free(br_mp_dict *d);

/* d[key] = value (copied). A zero-length key or value is allowed (key/value may then be
 * NULL). 0, BR_EINVAL, BR_ENOMEM (the dict is then unchanged). */
BR_API int br_mp_dict_set(br_mp_dict *d, const void *key, size_t klen, const void *value,
                          size_t vlen);
/* A copy of d[key] in *value (the caller's: br_mp_bytes_free), its length in *vlen
 * (vlen may be NULL). 0, BR_ENOENT (absent; *value is NULL), BR_EINVAL, BR_ENOMEM. */
BR_API int br_mp_dict_get(br_mp_dict *d, const void *key, size_t klen, void **value,
                          size_t *vlen);
/* The same, into the caller's buf of cap bytes, allocating nothing: *vlen is the
 * value's length; if it is more than cap, nothing is copied and BR_ERANGE returned
 * (call again with a buffer of *vlen bytes). */
BR_API int br_mp_dict_get_into(br_mp_dict *d, const void *key, size_t klen, void *buf,
                               size_t cap, size_t *vlen);
/* del d[key]: 0, or BR_ENOENT when absent. */
BR_API int br_mp_dict_delete(br_mp_dict *d, const void *key, size_t klen);
/* *found = key in d. 0 or BR_EINVAL. */
BR_API int br_mp_dict_contains(br_mp_dict *d, const void *key, size_t klen, bool *found);
/* *len = len(d). */
BR_API int br_mp_dict_len(br_mp_dict *d, size_t *len);
/* One consistent snapshot of the keys (or keys and values), taken at one instant;
 * *out is the caller's (br_mp_items_free). Order unspecified. 0, BR_EINVAL, BR_ENOMEM. */
BR_API int br_mp_dict_keys(br_mp_dict *d, br_mp_items **out);
BR_API int br_mp_dict_items(br_mp_dict *d, br_mp_items **out);

/* C strings (the NUL isn't stored): set, and get into a string the caller frees with
 * br_mp_bytes_free. Same codes as above. */
BR_API int br_mp_dict_set_str(br_mp_dict *d, const char *key, const char *value);
BR_API int br_mp_dict_get_str(br_mp_dict *d, const char *key, char **value);
/* int64 values under C-string keys, stored as 8 bytes in native byte order. get: 0,
 * BR_ENOENT, BR_EINVAL (the value isn't 8 bytes). add: d[key] += delta atomically (an
 * absent key counts as 0), the new value in *result (may be NULL). */
BR_API int br_mp_dict_set_i64(br_mp_dict *d, const char *key, int64_t value);
BR_API int br_mp_dict_get_i64(br_mp_dict *d, const char *key, int64_t *value);
BR_API int br_mp_dict_add_i64(br_mp_dict *d, const char *key, int64_t delta,
                              int64_t *result);

/* --- list: bytes elements ----------------------------------------------------------
 *
 * Indexes are Python's: 0 is the first element, -1 the last; anything outside
 * [-len, len) is BR_ERANGE. */

typedef struct br_mp_list br_mp_list;

BR_API int br_mp_list_new(br_mp_list **out, const br_mp_shared_opts *opts);
BR_API int br_mp_list_fd(const br_mp_list *l);
BR_API int br_mp_list_attach(br_mp_list **out, int fd);
BR_API void br_mp_list_free(br_mp_list *l);

/* l.append(bytes) (copied). 0, BR_EINVAL, BR_ENOMEM (unchanged). */
BR_API int br_mp_list_append(br_mp_list *l, const void *p, size_t n);
/* A copy of l[i] (br_mp_bytes_free); n may be NULL. 0, BR_ERANGE, BR_EINVAL, BR_ENOMEM. */
BR_API int br_mp_list_get(br_mp_list *l, int64_t i, void **p, size_t *n);
/* Into the caller's buf; BR_ERANGE also when the element is longer than cap (*n says
 * how long; *n is 0 when the index is out of range). */
BR_API int br_mp_list_get_into(br_mp_list *l, int64_t i, void *buf, size_t cap, size_t *n);
/* l[i] = bytes (copied). 0, BR_ERANGE, BR_EINVAL, BR_ENOMEM (unchanged). */
BR_API int br_mp_list_set(br_mp_list *l, int64_t i, const void *p, size_t n);
BR_API int br_mp_list_len(br_mp_list *l, size_t *len);
/* list(l), at one instant: the elements in order in keys[0..count) (values is NULL). */
BR_API int br_mp_list_snapshot(br_mp_list *l, br_mp_items **out);
/* Helpers: a C string (NUL not stored), an int64 (8 bytes). */
BR_API int br_mp_list_append_str(br_mp_list *l, const char *s);
BR_API int br_mp_list_append_i64(br_mp_list *l, int64_t v);
BR_API int br_mp_list_get_i64(br_mp_list *l, int64_t i, int64_t *v);

/* --- Value and Array ----------------------------------------------------------------- */

typedef enum br_mp_type {
    BR_MP_I64 = 1,  /* int64_t: Python's 'q' */
    BR_MP_F64 = 2,  /* double: 'd' */
    BR_MP_BYTES = 3 /* fixed-size byte elements (Array only): 'c' with a width */
} br_mp_type;

typedef struct br_mp_value br_mp_value;

/* A shared scalar of `type` (BR_MP_I64 or BR_MP_F64), zero, with its own lock. */
BR_API int br_mp_value_new(br_mp_value **out, br_mp_type type);
BR_API int br_mp_value_fd(const br_mp_value *v);
BR_API int br_mp_value_attach(br_mp_value **out, int fd);
BR_API void br_mp_value_free(br_mp_value *v);
/* Each under the lock. BR_EINVAL for the wrong type. add: += delta, the new value in
 * *result (may be NULL): atomic, unlike Python's v.value += 1. */
BR_API int br_mp_value_get_i64(br_mp_value *v, int64_t *out);
BR_API int br_mp_value_set_i64(br_mp_value *v, int64_t x);
BR_API int br_mp_value_add_i64(br_mp_value *v, int64_t delta, int64_t *result);
BR_API int br_mp_value_get_f64(br_mp_value *v, double *out);
BR_API int br_mp_value_set_f64(br_mp_value *v, double x);
BR_API int br_mp_value_add_f64(br_mp_value *v, double delta, double *result);
/* `with v.get_lock(): ...`: runs fn(value, arg) with the lock held, value pointing at
 * the shared int64_t or double; fn returns 0 or a code, which this returns. fn must not
 * call br_mp_value_ on v (that call returns BR_EDEADLK). 0, fn's code, BR_ETIMEDOUT
 * (deadline passed: fn didn't run), BR_EINVAL. If fn's process dies inside fn, the value
 * keeps whatever fn had stored. */
BR_API int br_mp_value_update(br_mp_value *v, int (*fn)(void *value, void *arg), void *arg,
                              int64_t deadline);

typedef struct br_mp_array br_mp_array;

/* A fixed-length shared array of `length` (> 0) zeroed elements: BR_MP_I64, BR_MP_F64
 * (elem_size ignored: 8), or BR_MP_BYTES of elem_size (> 0) bytes each. BR_ENOMEM when
 * length * elem_size is beyond BR_MP_MAX_BYTES or memory. */
BR_API int br_mp_array_new(br_mp_array **out, br_mp_type type, size_t length,
                           size_t elem_size);
BR_API int br_mp_array_fd(const br_mp_array *a);
BR_API int br_mp_array_attach(br_mp_array **out, int fd);
BR_API void br_mp_array_free(br_mp_array *a);
/* Length, element size and type (0 / BR_MP_I64 ... for a NULL handle). */
BR_API size_t br_mp_array_len(const br_mp_array *a);
BR_API size_t br_mp_array_elem_size(const br_mp_array *a);
BR_API br_mp_type br_mp_array_type(const br_mp_array *a);
/* a[i] (i in [0, len), else BR_ERANGE), of the array's type (else BR_EINVAL). */
BR_API int br_mp_array_get_i64(br_mp_array *a, size_t i, int64_t *out);
BR_API int br_mp_array_set_i64(br_mp_array *a, size_t i, int64_t x);
BR_API int br_mp_array_get_f64(br_mp_array *a, size_t i, double *out);
BR_API int br_mp_array_set_f64(br_mp_array *a, size_t i, double x);
/* a[start:start+count], count elements copied out to / in from buf (count *
 * elem_size bytes), under the lock, any type. BR_ERANGE if the slice runs past the end;
 * count 0 copies nothing. */
BR_API int br_mp_array_read(br_mp_array *a, size_t start, size_t count, void *buf);
BR_API int br_mp_array_write(br_mp_array *a, size_t start, size_t count, const void *buf);
/* `with a.get_lock(): ...`: fn(data, len, arg) with the lock held, data the elements.
 * As br_mp_value_update. */
BR_API int br_mp_array_update(br_mp_array *a, int (*fn)(void *data, size_t len, void *arg),
                              void *arg, int64_t deadline);

/* --- SharedMemory -----------------------------------------------------------------
 *
 * A block of raw shared bytes, Python's shared_memory.SharedMemory without a name: the
 * descriptor is how another process finds it (inherited through fork, or passed to a
 * spawned child and attached). There is no unlink: the kernel frees it with its last
 * user. */

typedef struct br_shared_memory br_shared_memory;

/* size (> 0, at most PTRDIFF_MAX) zeroed bytes, mapped read-write. 0, BR_EINVAL,
 * BR_ENOMEM, BR_EMFILE. */
BR_API int br_shared_memory_new(br_shared_memory **out, size_t size);
/* Maps the block behind fd (its whole size); takes a duplicate of fd. 0, BR_EINVAL,
 * BR_ENOMEM, or another -errno. */
BR_API int br_shared_memory_attach(br_shared_memory **out, int fd);
/* The mapping (Python's .buf), its size, the descriptor (the handle's own). */
BR_API void *br_shared_memory_buf(const br_shared_memory *s);
BR_API size_t br_shared_memory_size(const br_shared_memory *s);
BR_API int br_shared_memory_fd(const br_shared_memory *s);
/* Unmaps, closes the descriptor and frees the handle (Python's close()). NULL is fine. */
BR_API void br_shared_memory_close(br_shared_memory *s);

#ifdef __cplusplus
}
#endif
#endif
