/* Value, Array and SharedMemory (braid/mp_shared.h): fixed-size shared objects.
 *
 * A Value or an Array is one memfd (process/shm.h) holding a header with a robust
 * process-shared lock (process/mp_region.h's wrapper) and the data after it, at DATA_OFF
 * (the header rounded up to 64 bytes). The header is written in full before the magic
 * is stored (release), and attach checks the magic, kind and sizes against the file.
 *
 * Crashes: every read and write takes the lock. An int64 or double is written with one
 * 8-byte store, so a process that dies while holding the lock leaves the old value or
 * the new; the next locker finds the lock EOWNERDEAD and just marks it consistent
 * (nothing else to repair). A BR_MP_BYTES element or a slice written by br_mp_array_write
 * is a plain copy: a writer killed in the middle of it leaves that element or slice part
 * old, part new (as Python's Array would); so does an _update callback that dies half
 * way through its own stores.
 *
 * SharedMemory is a br__shm with a handle around it: nothing shared but the bytes.
 */
#include "process/mp_region.h"
#include "process/shm.h"

#include <braid/mp_shared.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#define VALUE_KIND 0x756c6176u /* "valu" */
#define ARRAY_KIND 0x79617261u /* "aray" */
#define OBJ_MAGIC 0x6272616964766131ull
#define HANDLE_MAGIC 0x6d707376u

typedef struct fixed_hdr {
    uint64_t magic;
    uint32_t kind;
    uint32_t type;
    uint64_t length;    /* elements (1 for a Value) */
    uint64_t elem_size; /* bytes per element */
    br__mplock lock;
} fixed_hdr;

#define DATA_OFF ((sizeof(fixed_hdr) + 63) & ~(size_t)63)

/* The Value and the Array share their representation. */
typedef struct fixed {
    uint32_t magic;
    br__shm s;
} fixed;

struct br_mp_value {
    fixed f;
};
struct br_mp_array {
    fixed f;
};

static fixed_hdr *hdr(const fixed *f) {
    return (fixed_hdr *)f->s.base;
}

static void *data(const fixed *f) {
    return (char *)f->s.base + DATA_OFF;
}

static int fixed_new(fixed **out, uint32_t kind, br_mp_type type, size_t length,
                     size_t elem_size, const char *label) {
    if (length > (BR_MP_MAX_BYTES - DATA_OFF) / elem_size)
        return BR_ENOMEM;
    fixed *f = br__malloc(sizeof *f);
    if (!f)
        return BR_ENOMEM;
    int rc = br__shm_new(&f->s, DATA_OFF + length * elem_size, label);
    if (rc) {
        br__free(f);
        return rc == -EFBIG || rc == BR_ENOSPC ? BR_ENOMEM : rc;
    }
    fixed_hdr *h = hdr(f);
    rc = br__mplock_init(&h->lock);
    if (rc) {
        br__shm_close(&f->s);
        br__free(f);
        return rc;
    }
    h->kind = kind;
    h->type = (uint32_t)type;
    h->length = length;
    h->elem_size = elem_size;
    __atomic_store_n(&h->magic, OBJ_MAGIC, __ATOMIC_RELEASE);
    f->magic = HANDLE_MAGIC;
    *out = f;
    return 0;
}

static int fixed_attach(fixed **out, int fd, uint32_t kind) {
    if (fd < 0)
        return BR_EINVAL;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < DATA_OFF + 8)
        return BR_EINVAL;
    fixed *f = br__malloc(sizeof *f);
    if (!f)
        return BR_ENOMEM;
    int rc = br__shm_attach(&f->s, fd, (size_t)st.st_size);
    if (rc) {
        br__free(f);
        return rc;
    }
    fixed_hdr *h = hdr(f);
    if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != OBJ_MAGIC || h->kind != kind ||
        h->elem_size == 0 || h->length == 0 ||
        h->length > ((uint64_t)st.st_size - DATA_OFF) / h->elem_size) {
        br__shm_close(&f->s);
        br__free(f);
        return BR_EINVAL;
    }
    f->magic = HANDLE_MAGIC;
    *out = f;
    return 0;
}

static void fixed_free(fixed *f) {
    br__shm_close(&f->s);
    f->magic = 0;
    br__free_poisoned(f, sizeof *f);
}

static bool fixed_ok(const fixed *f, const char *what) {
    if (f && f->magic == HANDLE_MAGIC)
        return true;
    (void)BR__MISUSE(BR_EINVAL, what);
    return false;
}

/* Takes the object's lock; an owner's death needs no repair (see the note above). */
static int fixed_lock(fixed *f, int64_t deadline) {
    int rc = br__mplock_lock(&hdr(f)->lock, deadline);
    if (rc == BR__MPLOCK_OWNERDEAD) {
        br__mplock_consistent(&hdr(f)->lock);
        rc = 0;
    }
    return rc;
}

static void fixed_unlock(fixed *f) {
    br__mplock_unlock(&hdr(f)->lock);
}

/* ================================ Value =============================================== */

#define VALUE_CHECK(v, name)                                                               \
    do {                                                                                   \
        if (!fixed_ok((v) ? &(v)->f : NULL, name ": not a value"))                         \
            return BR_EINVAL;                                                              \
    } while (0)

int br_mp_value_new(br_mp_value **out, br_mp_type type) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_value_new: out is NULL");
    *out = NULL;
    if (type != BR_MP_I64 && type != BR_MP_F64)
        return BR__MISUSE(BR_EINVAL, "br_mp_value_new: type is not BR_MP_I64 or BR_MP_F64");
    fixed *f;
    int rc = fixed_new(&f, VALUE_KIND, type, 1, 8, "braid-mp-value");
    if (!rc)
        *out = (br_mp_value *)f;
    return rc;
}

int br_mp_value_attach(br_mp_value **out, int fd) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_value_attach: out is NULL");
    *out = NULL;
    fixed *f;
    int rc = fixed_attach(&f, fd, VALUE_KIND);
    if (!rc)
        *out = (br_mp_value *)f;
    return rc;
}

int br_mp_value_fd(const br_mp_value *v) {
    VALUE_CHECK(v, "br_mp_value_fd");
    return v->f.s.fd;
}

void br_mp_value_free(br_mp_value *v) {
    if (v)
        fixed_free(&v->f);
}

/* Reads or changes the word under the lock: op 0 get, 1 set, 2 add. */
static int value_op(br_mp_value *v, br_mp_type type, int op, uint64_t *io) {
    if (hdr(&v->f)->type != (uint32_t)type)
        return BR_EINVAL;
    int rc = fixed_lock(&v->f, BR_FOREVER);
    if (rc)
        return rc;
    uint64_t *w = data(&v->f);
    if (op == 0) {
        *io = *w;
    } else if (op == 1) {
        __atomic_store_n(w, *io, __ATOMIC_RELAXED);
    } else if (type == BR_MP_I64) {
        uint64_t x = *w + *io;
        __atomic_store_n(w, x, __ATOMIC_RELAXED);
        *io = x;
    } else {
        double a, b;
        memcpy(&a, w, 8);
        memcpy(&b, io, 8);
        a += b;
        uint64_t x;
        memcpy(&x, &a, 8);
        __atomic_store_n(w, x, __ATOMIC_RELAXED);
        *io = x;
    }
    fixed_unlock(&v->f);
    return 0;
}

int br_mp_value_get_i64(br_mp_value *v, int64_t *out) {
    VALUE_CHECK(v, "br_mp_value_get_i64");
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_value_get_i64: out is NULL");
    uint64_t x;
    int rc = value_op(v, BR_MP_I64, 0, &x);
    if (!rc)
        *out = (int64_t)x;
    return rc;
}

int br_mp_value_set_i64(br_mp_value *v, int64_t x) {
    VALUE_CHECK(v, "br_mp_value_set_i64");
    uint64_t u = (uint64_t)x;
    return value_op(v, BR_MP_I64, 1, &u);
}

int br_mp_value_add_i64(br_mp_value *v, int64_t delta, int64_t *result) {
    VALUE_CHECK(v, "br_mp_value_add_i64");
    uint64_t u = (uint64_t)delta;
    int rc = value_op(v, BR_MP_I64, 2, &u);
    if (!rc && result)
        *result = (int64_t)u;
    return rc;
}

int br_mp_value_get_f64(br_mp_value *v, double *out) {
    VALUE_CHECK(v, "br_mp_value_get_f64");
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_value_get_f64: out is NULL");
    uint64_t x;
    int rc = value_op(v, BR_MP_F64, 0, &x);
    if (!rc)
        memcpy(out, &x, 8);
    return rc;
}

int br_mp_value_set_f64(br_mp_value *v, double x) {
    VALUE_CHECK(v, "br_mp_value_set_f64");
    uint64_t u;
    memcpy(&u, &x, 8);
    return value_op(v, BR_MP_F64, 1, &u);
}

int br_mp_value_add_f64(br_mp_value *v, double delta, double *result) {
    VALUE_CHECK(v, "br_mp_value_add_f64");
    uint64_t u;
    memcpy(&u, &delta, 8);
    int rc = value_op(v, BR_MP_F64, 2, &u);
    if (!rc && result)
        memcpy(result, &u, 8);
    return rc;
}

int br_mp_value_update(br_mp_value *v, int (*fn)(void *value, void *arg), void *arg,
                       int64_t deadline) {
    VALUE_CHECK(v, "br_mp_value_update");
    if (!fn)
        return BR__MISUSE(BR_EINVAL, "br_mp_value_update: fn is NULL");
    int rc = fixed_lock(&v->f, deadline);
    if (rc)
        return rc;
    rc = fn(data(&v->f), arg);
    fixed_unlock(&v->f);
    return rc;
}

/* ================================ Array =============================================== */

#define ARRAY_CHECK(a, name)                                                               \
    do {                                                                                   \
        if (!fixed_ok((a) ? &(a)->f : NULL, name ": not an array"))                        \
            return BR_EINVAL;                                                              \
    } while (0)

int br_mp_array_new(br_mp_array **out, br_mp_type type, size_t length, size_t elem_size) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_array_new: out is NULL");
    *out = NULL;
    if (type == BR_MP_I64 || type == BR_MP_F64)
        elem_size = 8;
    else if (type != BR_MP_BYTES)
        return BR__MISUSE(BR_EINVAL, "br_mp_array_new: unknown type");
    if (length == 0 || elem_size == 0)
        return BR__MISUSE(BR_EINVAL, "br_mp_array_new: zero length or element size");
    fixed *f;
    int rc = fixed_new(&f, ARRAY_KIND, type, length, elem_size, "braid-mp-array");
    if (!rc)
        *out = (br_mp_array *)f;
    return rc;
}

int br_mp_array_attach(br_mp_array **out, int fd) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_array_attach: out is NULL");
    *out = NULL;
    fixed *f;
    int rc = fixed_attach(&f, fd, ARRAY_KIND);
    if (!rc)
        *out = (br_mp_array *)f;
    return rc;
}

int br_mp_array_fd(const br_mp_array *a) {
    ARRAY_CHECK(a, "br_mp_array_fd");
    return a->f.s.fd;
}

void br_mp_array_free(br_mp_array *a) {
    if (a)
        fixed_free(&a->f);
}

size_t br_mp_array_len(const br_mp_array *a) {
    return a && a->f.magic == HANDLE_MAGIC ? (size_t)hdr(&a->f)->length : 0;
}

size_t br_mp_array_elem_size(const br_mp_array *a) {
    return a && a->f.magic == HANDLE_MAGIC ? (size_t)hdr(&a->f)->elem_size : 0;
}

br_mp_type br_mp_array_type(const br_mp_array *a) {
    return a && a->f.magic == HANDLE_MAGIC ? (br_mp_type)hdr(&a->f)->type : (br_mp_type)0;
}

/* One 8-byte element: op 0 get, 1 set. */
static int array_word(br_mp_array *a, br_mp_type type, size_t i, int op, uint64_t *io) {
    fixed_hdr *h = hdr(&a->f);
    if (h->type != (uint32_t)type)
        return BR_EINVAL;
    if (i >= h->length)
        return BR_ERANGE;
    int rc = fixed_lock(&a->f, BR_FOREVER);
    if (rc)
        return rc;
    uint64_t *w = (uint64_t *)data(&a->f) + i;
    if (op == 0)
        *io = *w;
    else
        __atomic_store_n(w, *io, __ATOMIC_RELAXED);
    fixed_unlock(&a->f);
    return 0;
}

int br_mp_array_get_i64(br_mp_array *a, size_t i, int64_t *out) {
    ARRAY_CHECK(a, "br_mp_array_get_i64");
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_array_get_i64: out is NULL");
    uint64_t x;
    int rc = array_word(a, BR_MP_I64, i, 0, &x);
    if (!rc)
        *out = (int64_t)x;
    return rc;
}

int br_mp_array_set_i64(br_mp_array *a, size_t i, int64_t x) {
    ARRAY_CHECK(a, "br_mp_array_set_i64");
    uint64_t u = (uint64_t)x;
    return array_word(a, BR_MP_I64, i, 1, &u);
}

int br_mp_array_get_f64(br_mp_array *a, size_t i, double *out) {
    ARRAY_CHECK(a, "br_mp_array_get_f64");
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_array_get_f64: out is NULL");
    uint64_t x;
    int rc = array_word(a, BR_MP_F64, i, 0, &x);
    if (!rc)
        memcpy(out, &x, 8);
    return rc;
}

int br_mp_array_set_f64(br_mp_array *a, size_t i, double x) {
    ARRAY_CHECK(a, "br_mp_array_set_f64");
    uint64_t u;
    memcpy(&u, &x, 8);
    return array_word(a, BR_MP_F64, i, 1, &u);
}

static int array_copy(br_mp_array *a, size_t start, size_t count, void *buf, bool in) {
    fixed_hdr *h = hdr(&a->f);
    if (start > h->length || count > h->length - start)
        return BR_ERANGE;
    if (count == 0)
        return 0;
    int rc = fixed_lock(&a->f, BR_FOREVER);
    if (rc)
        return rc;
    char *p = (char *)data(&a->f) + start * h->elem_size;
    size_t n = count * (size_t)h->elem_size;
    if (in)
        memcpy(p, buf, n);
    else
        memcpy(buf, p, n);
    fixed_unlock(&a->f);
    return 0;
}

int br_mp_array_read(br_mp_array *a, size_t start, size_t count, void *buf) {
    ARRAY_CHECK(a, "br_mp_array_read");
    if (!buf && count)
        return BR__MISUSE(BR_EINVAL, "br_mp_array_read: buf is NULL");
    return array_copy(a, start, count, buf, false);
}

int br_mp_array_write(br_mp_array *a, size_t start, size_t count, const void *buf) {
    ARRAY_CHECK(a, "br_mp_array_write");
    if (!buf && count)
        return BR__MISUSE(BR_EINVAL, "br_mp_array_write: buf is NULL");
    return array_copy(a, start, count, (void *)(uintptr_t)buf, true);
}

int br_mp_array_update(br_mp_array *a, int (*fn)(void *data, size_t len, void *arg),
                       void *arg, int64_t deadline) {
    ARRAY_CHECK(a, "br_mp_array_update");
    if (!fn)
        return BR__MISUSE(BR_EINVAL, "br_mp_array_update: fn is NULL");
    int rc = fixed_lock(&a->f, deadline);
    if (rc)
        return rc;
    rc = fn(data(&a->f), (size_t)hdr(&a->f)->length, arg);
    fixed_unlock(&a->f);
    return rc;
}

/* ============================== SharedMemory ========================================== */

struct br_shared_memory {
    uint32_t magic;
    br__shm s;
};

int br_shared_memory_new(br_shared_memory **out, size_t size) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_shared_memory_new: out is NULL");
    *out = NULL;
    if (size == 0 || size > PTRDIFF_MAX)
        return BR__MISUSE(BR_EINVAL,
                          "br_shared_memory_new: size is 0 or above PTRDIFF_MAX");
    br_shared_memory *m = br__malloc(sizeof *m);
    if (!m)
        return BR_ENOMEM;
    int rc = br__shm_new(&m->s, size, "braid-shared-memory");
    if (rc) {
        br__free(m);
        return rc == -EFBIG || rc == BR_ENOSPC ? BR_ENOMEM : rc;
    }
    m->magic = HANDLE_MAGIC;
    *out = m;
    return 0;
}

int br_shared_memory_attach(br_shared_memory **out, int fd) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_shared_memory_attach: out is NULL");
    *out = NULL;
    if (fd < 0)
        return BR_EINVAL;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_size <= 0)
        return BR_EINVAL;
    br_shared_memory *m = br__malloc(sizeof *m);
    if (!m)
        return BR_ENOMEM;
    int rc = br__shm_attach(&m->s, fd, (size_t)st.st_size);
    if (rc) {
        br__free(m);
        return rc;
    }
    m->magic = HANDLE_MAGIC;
    *out = m;
    return 0;
}

static bool shm_ok(const br_shared_memory *m) {
    return m && m->magic == HANDLE_MAGIC;
}

void *br_shared_memory_buf(const br_shared_memory *m) {
    return shm_ok(m) ? m->s.base : NULL;
}

size_t br_shared_memory_size(const br_shared_memory *m) {
    return shm_ok(m) ? m->s.size : 0;
}

int br_shared_memory_fd(const br_shared_memory *m) {
    if (!shm_ok(m))
        return BR__MISUSE(BR_EINVAL, "br_shared_memory_fd: not a shared memory block");
    return m->s.fd;
}

void br_shared_memory_close(br_shared_memory *m) {
    if (!m)
        return;
    br__shm_close(&m->s);
    m->magic = 0;
    br__free_poisoned(m, sizeof *m);
}
