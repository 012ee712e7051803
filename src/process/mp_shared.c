/* The shared dict and list (braid/mp_shared.h), each in a growable region
 * (process/mp_region.h: read its design note first; every rule there holds here).
 *
 * Dict. Open addressing with linear probing over a table of slots, in a block of the
 * region: [cap][slot 0 .. cap-1], cap a power of two. A slot is 0 (empty), 1 (a
 * tombstone: a deleted entry, probing goes on past it) or (tag << 48 | offset): the
 * entry's offset and the top 16 bits of its key's hash, so that most mismatches are
 * rejected without touching the entry. An entry is a block: [hash][klen][vlen][key,
 * padded to 8][value], the value 8-aligned so that an int64 value can be changed in
 * place by one store. The header's words: user[0] the table's offset (0 before the
 * first set), user[1] the number of entries, user[2] the slots in use (entries and
 * tombstones; kept under three quarters of cap: at that point the table is rebuilt,
 * twice the entries' count in size, without tombstones).
 *
 * How each change publishes (one store, then the old block is freed):
 *   set of a present key    a new entry is written, then its slot is stored;
 *   set of a new key        the entry is written, the table rebuilt if due (the new
 *                           table is filled, then user[0] stored), then the slot;
 *                           user[1] and user[2] follow;
 *   delete                  the slot becomes a tombstone, then user[1] follows;
 *   add_i64 of a present key  the value's 8 bytes, in place, one store.
 * A crash leaves user[1] or user[2] stale at worst: the repair recounts them from the
 * slots (and turns any slot that fails a check into a tombstone).
 *
 * List. user[0] is an array block [cap][offset 0 .. cap-1], user[1] the length; an
 * element is a block [n][bytes]. Append writes the element, grows the array if full
 * (copy, then store user[0]), stores the offset at [len], and publishes by storing
 * len + 1. set stores the new element's offset over the old one. The repair cuts len at
 * the first element that fails a check (never one that was published whole).
 */
#include "process/mp_region.h"

#include <braid/mp_shared.h>

#include <string.h>

#define DICT_KIND 0x74636964u /* "dict" */
#define LIST_KIND 0x7473696cu /* "list" */
#define HANDLE_MAGIC 0x6d707368u
#define DEFAULT_INITIAL ((size_t)64 << 10)

#define OFF_MASK ((UINT64_C(1) << 48) - 1)
#define SLOT_EMPTY UINT64_C(0)
#define SLOT_TOMB UINT64_C(1)
#define ENTRY_HDR 24u
#define MIN_TABLE 16u

_Static_assert(sizeof(br__mpr_hdr) <= BR__MPR_HDR, "the region's header fits its page");
_Static_assert(BR_MP_MAX_BYTES <= OFF_MASK, "offsets fit under a slot's tag");

/* A dict's or a list's handle: this process's view of the region. */
typedef struct handle {
    uint32_t magic;
    br__mpr r;
} handle;

struct br_mp_dict {
    handle h;
};

struct br_mp_list {
    handle h;
};

/* Makes a handle (the start of a dict's or a list's) on a new region of `kind` (attach
 * false: initial size from opts) or on the region behind fd (attach true). */
static int handle_open(handle **out, int kind, bool attach, int fd,
                       const br_mp_shared_opts *opts, const char *label) {
    *out = NULL;
    handle *h = br__malloc(sizeof *h);
    if (!h)
        return BR_ENOMEM;
    int rc;
    if (!attach) {
        size_t initial = opts && opts->initial_bytes ? opts->initial_bytes : DEFAULT_INITIAL;
        rc = br__mpr_new(&h->r, kind, initial, label);
    } else {
        rc = br__mpr_attach(&h->r, fd, kind);
    }
    if (rc) {
        br__free(h);
        return rc;
    }
    h->magic = HANDLE_MAGIC;
    *out = h;
    return 0;
}

static void handle_close(handle *h) {
    br__mpr_close(&h->r);
    h->magic = 0;
    br__free_poisoned(h, sizeof *h);
}

br__mpr *br__mp_dict_region(br_mp_dict *d) {
    return &d->h.r;
}

br__mpr *br__mp_list_region(br_mp_list *l) {
    return &l->h.r;
}

static size_t round8(size_t n) {
    return (n + 7) & ~(size_t)7;
}

static uint64_t *u64_at(br__mpr *r, uint64_t off) {
    return (uint64_t *)br__mpr_at(r, off);
}

/* --- bytes handed out -------------------------------------------------------------------
 */

void br_mp_bytes_free(void *p) {
    br__free(p);
}

void br_mp_items_free(br_mp_items *items) {
    br__free(items);
}

/* Copies n bytes into a new NUL-terminated buffer. */
static int copy_out(const void *src, size_t n, void **out) {
    char *p = br__malloc(n + 1);
    if (!p)
        return BR_ENOMEM;
    if (n)
        memcpy(p, src, n);
    p[n] = 0;
    *out = p;
    return 0;
}

/* A snapshot of `count` items whose bytes total `bytes`: one allocation, arrays first. */
static br_mp_items *items_alloc(size_t count, bool values, size_t bytes) {
    size_t arrays = count * sizeof(br_mp_bytes) * (values ? 2 : 1);
    br_mp_items *it = br__malloc(sizeof *it + arrays + bytes);
    if (!it)
        return NULL;
    it->count = 0;
    it->keys = (br_mp_bytes *)(it + 1);
    it->values = values ? it->keys + count : NULL;
    return it;
}

static char *items_bytes(br_mp_items *it, size_t count) {
    return (char *)(it->keys + count * (it->values ? 2 : 1));
}

static char *put_bytes(br_mp_bytes *b, char *dst, const void *src, size_t n) {
    if (n)
        memcpy(dst, src, n);
    dst[n] = 0;
    b->data = dst;
    b->len = n;
    return dst + n + 1;
}

/* --- hashing
 * ------------------------------------------------------------------------------- */

static uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

static uint64_t hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h =
        UINT64_C(0x9e3779b97f4a7c15) ^ ((uint64_t)n * UINT64_C(0xbf58476d1ce4e5b9));
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * UINT64_C(0x94d049bb133111eb);
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * UINT64_C(0x94d049bb133111eb);
    }
    return mix(h);
}

/* ================================ dict ================================================ */

typedef struct entry {
    uint64_t hash, klen, vlen;
} entry;

static size_t value_off(uint64_t klen) {
    return ENTRY_HDR + round8((size_t)klen);
}

static uint64_t slot_of(uint64_t hash, uint64_t off) {
    return (hash >> 48) << 48 | off;
}

static bool dict_ok(const br_mp_dict *d, const char *fn) {
    if (d && d->h.magic == HANDLE_MAGIC)
        return true;
    (void)BR__MISUSE(BR_EINVAL, fn);
    return false;
}

#define DICT_CHECK(d, name)                                                                \
    do {                                                                                   \
        if (!dict_ok((d), name ": not a dict"))                                            \
            return BR_EINVAL;                                                              \
    } while (0)

/* Table slots, or NULL before the first set. */
static uint64_t *table(br__mpr *r, uint64_t *cap) {
    uint64_t t = r->h->user[0];
    if (!t) {
        *cap = 0;
        return NULL;
    }
    *cap = *u64_at(r, t);
    return u64_at(r, t + 8);
}

/* The slot index of key, or -1; *ins gets where an insert would go (the first
 * tombstone on the way, else the empty slot that ended the search). */
static int64_t lookup(br__mpr *r, uint64_t hash, const void *key, size_t klen,
                      uint64_t *ins) {
    uint64_t cap;
    uint64_t *slots = table(r, &cap);
    *ins = UINT64_MAX;
    if (!slots)
        return -1;
    uint64_t mask = cap - 1, tag = hash >> 48;
    for (uint64_t i = hash & mask, n = 0; n < cap; i = (i + 1) & mask, n++) {
        uint64_t s = slots[i];
        if (s == SLOT_EMPTY) {
            if (*ins == UINT64_MAX)
                *ins = i;
            return -1;
        }
        if (s == SLOT_TOMB) {
            if (*ins == UINT64_MAX)
                *ins = i;
            continue;
        }
        if (s >> 48 != tag)
            continue;
        const entry *e = br__mpr_at(r, s & OFF_MASK);
        if (e->hash == hash && e->klen == klen &&
            (klen == 0 || memcmp((const char *)(e + 1), key, klen) == 0))
            return (int64_t)i;
    }
    return -1;
}

/* Rebuilds the table with room for `want` entries at half load; publishes it. */
static int rehash(br__mpr *r, uint64_t want) {
    uint64_t cap = MIN_TABLE;
    while (cap < want * 2)
        cap *= 2;
    if (cap > BR_MP_MAX_BYTES / 8)
        return BR_ENOMEM;
    uint64_t nt;
    int rc = br__mpr_alloc(r, (size_t)(8 + cap * 8), &nt);
    if (rc)
        return rc;
    uint64_t *ns = u64_at(r, nt + 8);
    memset(ns, 0, (size_t)cap * 8);
    *u64_at(r, nt) = cap;
    uint64_t ocap, live = 0, old = r->h->user[0];
    uint64_t *os = table(r, &ocap);
    for (uint64_t i = 0; i < ocap; i++) {
        uint64_t s = os[i];
        if (s <= SLOT_TOMB)
            continue;
        const entry *e = br__mpr_at(r, s & OFF_MASK);
        uint64_t j = e->hash & (cap - 1);
        while (ns[j])
            j = (j + 1) & (cap - 1);
        ns[j] = s;
        live++;
    }
    BR__MPR_PUBLISH(&r->h->user[0], nt);
    r->h->user[1] = live;
    r->h->user[2] = live;
    if (old)
        br__mpr_free(r, old);
    return 0;
}

static void dict_repair(br__mpr *r) {
    uint64_t t = r->h->user[0];
    if (t &&
        (!br__mpr_valid(r, t, 8) || !*u64_at(r, t) ||
         (*u64_at(r, t) & (*u64_at(r, t) - 1)) || *u64_at(r, t) > BR_MP_MAX_BYTES / 8 ||
         !br__mpr_valid(r, t, 8 + *u64_at(r, t) * 8)))
        BR__MPR_PUBLISH(&r->h->user[0], 0); /* never happens by the protocol */
    uint64_t cap, live = 0, used = 0;
    uint64_t *slots = table(r, &cap);
    for (uint64_t i = 0; i < cap; i++) {
        uint64_t s = slots[i];
        if (s == SLOT_EMPTY)
            continue;
        used++;
        if (s == SLOT_TOMB)
            continue;
        uint64_t off = s & OFF_MASK;
        const entry *e = br__mpr_valid(r, off, ENTRY_HDR) ? br__mpr_at(r, off) : NULL;
        if (!e || e->klen > BR_MP_MAX_BYTES || e->vlen > BR_MP_MAX_BYTES ||
            !br__mpr_valid(r, off, value_off(e->klen) + e->vlen) ||
            e->hash >> 48 != s >> 48) {
            BR__MPR_PUBLISH(&slots[i], SLOT_TOMB);
            continue;
        }
        live++;
    }
    r->h->user[1] = live;
    r->h->user[2] = used;
}

int br_mp_dict_new(br_mp_dict **out, const br_mp_shared_opts *opts) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_dict_new: out is NULL");
    handle *h;
    int rc = handle_open(&h, DICT_KIND, false, -1, opts, "braid-mp-dict");
    *out = (br_mp_dict *)h; /* a br_mp_dict begins with its handle */
    return rc;
}

int br_mp_dict_attach(br_mp_dict **out, int fd) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_dict_attach: out is NULL");
    handle *h;
    int rc = handle_open(&h, DICT_KIND, true, fd, NULL, NULL);
    *out = (br_mp_dict *)h;
    return rc;
}

int br_mp_dict_fd(const br_mp_dict *d) {
    if (!dict_ok(d, "br_mp_dict_fd: not a dict"))
        return BR_EINVAL;
    return d->h.r.fd;
}

void br_mp_dict_free(br_mp_dict *d) {
    if (d)
        handle_close(&d->h);
}

/* Inserts or replaces, lock held. */
static int dict_put(br__mpr *r, uint64_t hash, const void *key, size_t klen,
                    const void *value, size_t vlen) {
    if (klen > BR_MP_MAX_BYTES || vlen > BR_MP_MAX_BYTES)
        return BR_ENOMEM;
    size_t voff = value_off(klen);
    uint64_t off;
    int rc = br__mpr_alloc(r, voff + vlen, &off);
    if (rc)
        return rc;
    entry *e = br__mpr_at(r, off);
    e->hash = hash;
    e->klen = klen;
    e->vlen = vlen;
    if (klen)
        memcpy(e + 1, key, klen);
    if (vlen)
        memcpy((char *)e + voff, value, vlen);

    uint64_t ins;
    int64_t at = lookup(r, hash, key, klen, &ins);
    uint64_t cap;
    uint64_t *slots = table(r, &cap);
    if (at >= 0) {
        uint64_t old = slots[at] & OFF_MASK;
        BR__MPR_PUBLISH(&slots[at], slot_of(hash, off));
        br__mpr_free(r, old);
        return 0;
    }
    if (!slots || ins == UINT64_MAX ||
        (slots[ins] == SLOT_EMPTY && (r->h->user[2] + 1) * 4 > cap * 3)) {
        rc = rehash(r, r->h->user[1] + 1);
        if (rc) {
            br__mpr_free(r, off);
            return rc;
        }
        (void)lookup(r, hash, key, klen, &ins);
        slots = table(r, &cap);
    }
    bool was_empty = slots[ins] == SLOT_EMPTY;
    BR__MPR_PUBLISH(&slots[ins], slot_of(hash, off));
    r->h->user[1]++;
    if (was_empty)
        r->h->user[2]++;
    return 0;
}

static bool bytes_ok(const void *p, size_t n) {
    return p || n == 0;
}

int br_mp_dict_set(br_mp_dict *d, const void *key, size_t klen, const void *value,
                   size_t vlen) {
    DICT_CHECK(d, "br_mp_dict_set");
    if (!bytes_ok(key, klen) || !bytes_ok(value, vlen))
        return BR__MISUSE(BR_EINVAL, "br_mp_dict_set: NULL key or value with a length");
    if (klen > BR_MP_MAX_BYTES || vlen > BR_MP_MAX_BYTES)
        return BR_ENOMEM; /* can't fit: refused before the bytes are read */
    uint64_t hash = hash_bytes(key, klen);
    int rc = br__mpr_lock(&d->h.r, dict_repair);
    if (rc)
        return rc;
    rc = dict_put(&d->h.r, hash, key, klen, value, vlen);
    br__mpr_unlock(&d->h.r);
    return rc;
}

/* Finds key with the lock held: its entry, or NULL. */
static const entry *dict_find(br__mpr *r, uint64_t hash, const void *key, size_t klen,
                              int64_t *at) {
    uint64_t ins, cap;
    int64_t i = lookup(r, hash, key, klen, &ins);
    if (at)
        *at = i;
    if (i < 0)
        return NULL;
    return br__mpr_at(r, table(r, &cap)[i] & OFF_MASK);
}

int br_mp_dict_get(br_mp_dict *d, const void *key, size_t klen, void **value,
                   size_t *vlen) {
    if (value)
        *value = NULL;
    DICT_CHECK(d, "br_mp_dict_get");
    if (!bytes_ok(key, klen) || !value)
        return BR__MISUSE(BR_EINVAL, "br_mp_dict_get: NULL key or value pointer");
    if (klen > BR_MP_MAX_BYTES)
        return BR_ENOENT; /* no such key can be stored */
    uint64_t hash = hash_bytes(key, klen);
    int rc = br__mpr_lock(&d->h.r, dict_repair);
    if (rc)
        return rc;
    const entry *e = dict_find(&d->h.r, hash, key, klen, NULL);
    if (!e) {
        rc = BR_ENOENT;
    } else {
        rc = copy_out((const char *)e + value_off(e->klen), (size_t)e->vlen, value);
        if (!rc && vlen)
            *vlen = (size_t)e->vlen;
    }
    br__mpr_unlock(&d->h.r);
    return rc;
}

int br_mp_dict_get_into(br_mp_dict *d, const void *key, size_t klen, void *buf, size_t cap,
                        size_t *vlen) {
    DICT_CHECK(d, "br_mp_dict_get_into");
    if (!bytes_ok(key, klen) || !bytes_ok(buf, cap) || !vlen)
        return BR__MISUSE(BR_EINVAL, "br_mp_dict_get_into: NULL key, buffer or length");
    *vlen = 0;
    if (klen > BR_MP_MAX_BYTES)
        return BR_ENOENT;
    uint64_t hash = hash_bytes(key, klen);
    int rc = br__mpr_lock(&d->h.r, dict_repair);
    if (rc)
        return rc;
    const entry *e = dict_find(&d->h.r, hash, key, klen, NULL);
    if (!e) {
        rc = BR_ENOENT;
    } else {
        *vlen = (size_t)e->vlen;
        if (e->vlen > cap)
            rc = BR_ERANGE;
        else if (e->vlen)
            memcpy(buf, (const char *)e + value_off(e->klen), (size_t)e->vlen);
    }
    br__mpr_unlock(&d->h.r);
    return rc;
}

int br_mp_dict_delete(br_mp_dict *d, const void *key, size_t klen) {
    DICT_CHECK(d, "br_mp_dict_delete");
    if (!bytes_ok(key, klen))
        return BR__MISUSE(BR_EINVAL, "br_mp_dict_delete: NULL key with a length");
    if (klen > BR_MP_MAX_BYTES)
        return BR_ENOENT;
    uint64_t hash = hash_bytes(key, klen);
    int rc = br__mpr_lock(&d->h.r, dict_repair);
    if (rc)
        return rc;
    int64_t at;
    if (!dict_find(&d->h.r, hash, key, klen, &at)) {
        rc = BR_ENOENT;
    } else {
        uint64_t cap;
        uint64_t *slots = table(&d->h.r, &cap);
        uint64_t off = slots[at] & OFF_MASK;
        BR__MPR_PUBLISH(&slots[at], SLOT_TOMB);
        d->h.r.h->user[1]--;
        br__mpr_free(&d->h.r, off);
    }
    br__mpr_unlock(&d->h.r);
    return rc;
}

int br_mp_dict_contains(br_mp_dict *d, const void *key, size_t klen, bool *found) {
    DICT_CHECK(d, "br_mp_dict_contains");
    if (!bytes_ok(key, klen) || !found)
        return BR__MISUSE(BR_EINVAL, "br_mp_dict_contains: NULL key or result");
    *found = false;
    if (klen > BR_MP_MAX_BYTES)
        return 0;
    uint64_t hash = hash_bytes(key, klen);
    int rc = br__mpr_lock(&d->h.r, dict_repair);
    if (rc)
        return rc;
    *found = dict_find(&d->h.r, hash, key, klen, NULL) != NULL;
    br__mpr_unlock(&d->h.r);
    return 0;
}

int br_mp_dict_len(br_mp_dict *d, size_t *len) {
    DICT_CHECK(d, "br_mp_dict_len");
    if (!len)
        return BR__MISUSE(BR_EINVAL, "br_mp_dict_len: len is NULL");
    int rc = br__mpr_lock(&d->h.r, dict_repair);
    if (rc)
        return rc;
    *len = (size_t)d->h.r.h->user[1];
    br__mpr_unlock(&d->h.r);
    return 0;
}

static int dict_snapshot(br_mp_dict *d, br_mp_items **out, bool values) {
    int rc = br__mpr_lock(&d->h.r, dict_repair);
    if (rc)
        return rc;
    br__mpr *r = &d->h.r;
    uint64_t cap;
    uint64_t *slots = table(r, &cap);
    size_t count = 0, bytes = 0;
    for (uint64_t i = 0; i < cap; i++) {
        if (slots[i] <= SLOT_TOMB)
            continue;
        const entry *e = br__mpr_at(r, slots[i] & OFF_MASK);
        count++;
        bytes += (size_t)e->klen + 1 + (values ? (size_t)e->vlen + 1 : 0);
    }
    br_mp_items *it = items_alloc(count, values, bytes);
    if (!it) {
        br__mpr_unlock(r);
        return BR_ENOMEM;
    }
    char *dst = items_bytes(it, count);
    size_t k = 0;
    for (uint64_t i = 0; i < cap; i++) {
        if (slots[i] <= SLOT_TOMB)
            continue;
        const entry *e = br__mpr_at(r, slots[i] & OFF_MASK);
        dst = put_bytes(&it->keys[k], dst, e + 1, (size_t)e->klen);
        if (values)
            dst = put_bytes(&it->values[k], dst, (const char *)e + value_off(e->klen),
                            (size_t)e->vlen);
        k++;
    }
    it->count = count;
    br__mpr_unlock(r);
    *out = it;
    return 0;
}

int br_mp_dict_keys(br_mp_dict *d, br_mp_items **out) {
    if (out)
        *out = NULL;
    DICT_CHECK(d, "br_mp_dict_keys");
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_dict_keys: out is NULL");
    return dict_snapshot(d, out, false);
}

int br_mp_dict_items(br_mp_dict *d, br_mp_items **out) {
    if (out)
        *out = NULL;
    DICT_CHECK(d, "br_mp_dict_items");
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_dict_items: out is NULL");
    return dict_snapshot(d, out, true);
}

int br_mp_dict_set_str(br_mp_dict *d, const char *key, const char *value) {
    if (!key || !value)
        return BR__MISUSE(BR_EINVAL, "br_mp_dict_set_str: NULL key or value");
    return br_mp_dict_set(d, key, strlen(key), value, strlen(value));
}

int br_mp_dict_get_str(br_mp_dict *d, const char *key, char **value) {
    if (value)
        *value = NULL;
    if (!key || !value)
        return BR__MISUSE(BR_EINVAL, "br_mp_dict_get_str: NULL key or value");
    return br_mp_dict_get(d, key, strlen(key), (void **)value, NULL);
}

int br_mp_dict_set_i64(br_mp_dict *d, const char *key, int64_t value) {
    if (!key)
        return BR__MISUSE(BR_EINVAL, "br_mp_dict_set_i64: NULL key");
    return br_mp_dict_set(d, key, strlen(key), &value, sizeof value);
}

int br_mp_dict_get_i64(br_mp_dict *d, const char *key, int64_t *value) {
    if (!key || !value)
        return BR__MISUSE(BR_EINVAL, "br_mp_dict_get_i64: NULL key or value");
    size_t n;
    int rc = br_mp_dict_get_into(d, key, strlen(key), value, sizeof *value, &n);
    if (rc == BR_ERANGE || (rc == 0 && n != sizeof *value))
        return BR_EINVAL;
    return rc;
}

int br_mp_dict_add_i64(br_mp_dict *d, const char *key, int64_t delta, int64_t *result) {
    DICT_CHECK(d, "br_mp_dict_add_i64");
    if (!key)
        return BR__MISUSE(BR_EINVAL, "br_mp_dict_add_i64: NULL key");
    size_t klen = strlen(key);
    uint64_t hash = hash_bytes(key, klen);
    int rc = br__mpr_lock(&d->h.r, dict_repair);
    if (rc)
        return rc;
    const entry *e = dict_find(&d->h.r, hash, key, klen, NULL);
    int64_t v = delta;
    if (!e) {
        rc = dict_put(&d->h.r, hash, key, klen, &v, sizeof v);
    } else if (e->vlen != sizeof v) {
        rc = BR_EINVAL;
    } else {
        uint64_t *p = (uint64_t *)((char *)e + value_off(e->klen));
        v = (int64_t)(*p + (uint64_t)delta);
        BR__MPR_PUBLISH(p, (uint64_t)v);
    }
    br__mpr_unlock(&d->h.r);
    if (!rc && result)
        *result = v;
    return rc;
}

/* ================================ list ================================================ */

static bool list_ok(const br_mp_list *l, const char *fn) {
    if (l && l->h.magic == HANDLE_MAGIC)
        return true;
    (void)BR__MISUSE(BR_EINVAL, fn);
    return false;
}

#define LIST_CHECK(l, name)                                                                \
    do {                                                                                   \
        if (!list_ok((l), name ": not a list"))                                            \
            return BR_EINVAL;                                                              \
    } while (0)

/* The offsets array, or NULL before the first append. */
static uint64_t *items_of(br__mpr *r, uint64_t *cap) {
    uint64_t a = r->h->user[0];
    if (!a) {
        *cap = 0;
        return NULL;
    }
    *cap = *u64_at(r, a);
    return u64_at(r, a + 8);
}

static void list_repair(br__mpr *r) {
    uint64_t a = r->h->user[0];
    if (a && (!br__mpr_valid(r, a, 8) || *u64_at(r, a) > BR_MP_MAX_BYTES / 8 ||
              !br__mpr_valid(r, a, 8 + *u64_at(r, a) * 8)))
        BR__MPR_PUBLISH(&r->h->user[0], 0); /* never happens by the protocol */
    uint64_t cap, len = r->h->user[1];
    uint64_t *items = items_of(r, &cap);
    if (len > cap)
        len = cap;
    for (uint64_t i = 0; i < len; i++) {
        uint64_t off = items[i];
        if (!br__mpr_valid(r, off, 8) || *u64_at(r, off) > BR_MP_MAX_BYTES ||
            !br__mpr_valid(r, off, 8 + *u64_at(r, off))) {
            len = i;
            break;
        }
    }
    BR__MPR_PUBLISH(&r->h->user[1], len);
}

int br_mp_list_new(br_mp_list **out, const br_mp_shared_opts *opts) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_list_new: out is NULL");
    handle *h;
    int rc = handle_open(&h, LIST_KIND, false, -1, opts, "braid-mp-list");
    *out = (br_mp_list *)h; /* a br_mp_list begins with its handle */
    return rc;
}

int br_mp_list_attach(br_mp_list **out, int fd) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_list_attach: out is NULL");
    handle *h;
    int rc = handle_open(&h, LIST_KIND, true, fd, NULL, NULL);
    *out = (br_mp_list *)h;
    return rc;
}

int br_mp_list_fd(const br_mp_list *l) {
    if (!list_ok(l, "br_mp_list_fd: not a list"))
        return BR_EINVAL;
    return l->h.r.fd;
}

void br_mp_list_free(br_mp_list *l) {
    if (l)
        handle_close(&l->h);
}

/* A new element block holding p[0..n), lock held. */
static int new_elem(br__mpr *r, const void *p, size_t n, uint64_t *off) {
    if (n > BR_MP_MAX_BYTES)
        return BR_ENOMEM;
    int rc = br__mpr_alloc(r, 8 + n, off);
    if (rc)
        return rc;
    *u64_at(r, *off) = n;
    if (n)
        memcpy(u64_at(r, *off) + 1, p, n);
    return 0;
}

int br_mp_list_append(br_mp_list *l, const void *p, size_t n) {
    LIST_CHECK(l, "br_mp_list_append");
    if (!bytes_ok(p, n))
        return BR__MISUSE(BR_EINVAL, "br_mp_list_append: NULL bytes with a length");
    br__mpr *r = &l->h.r;
    int rc = br__mpr_lock(r, list_repair);
    if (rc)
        return rc;
    uint64_t off;
    rc = new_elem(r, p, n, &off);
    if (rc)
        goto out;
    uint64_t cap, len = r->h->user[1];
    uint64_t *items = items_of(r, &cap);
    if (len == cap) {
        uint64_t ncap = cap ? cap * 2 : 16, na;
        if (ncap > BR_MP_MAX_BYTES / 8 || (rc = br__mpr_alloc(r, 8 + ncap * 8, &na))) {
            br__mpr_free(r, off);
            rc = rc ? rc : BR_ENOMEM;
            goto out;
        }
        uint64_t old = r->h->user[0];
        *u64_at(r, na) = ncap;
        if (len)
            memcpy(u64_at(r, na + 8), items_of(r, &cap), (size_t)len * 8);
        BR__MPR_PUBLISH(&r->h->user[0], na);
        if (old)
            br__mpr_free(r, old);
        items = items_of(r, &cap);
    }
    BR__MPR_PUBLISH(&items[len], off);
    BR__MPR_PUBLISH(&r->h->user[1], len + 1);
out:
    br__mpr_unlock(r);
    return rc;
}

/* Resolves a Python index against len, lock held: the element's slot or NULL. */
static uint64_t *list_slot(br__mpr *r, int64_t i) {
    uint64_t cap, len = r->h->user[1];
    uint64_t *items = items_of(r, &cap);
    if (i < 0)
        i += (int64_t)len;
    if (i < 0 || (uint64_t)i >= len)
        return NULL;
    return &items[i];
}

int br_mp_list_get(br_mp_list *l, int64_t i, void **p, size_t *n) {
    if (p)
        *p = NULL;
    LIST_CHECK(l, "br_mp_list_get");
    if (!p)
        return BR__MISUSE(BR_EINVAL, "br_mp_list_get: p is NULL");
    int rc = br__mpr_lock(&l->h.r, list_repair);
    if (rc)
        return rc;
    uint64_t *s = list_slot(&l->h.r, i);
    if (!s) {
        rc = BR_ERANGE;
    } else {
        uint64_t *e = u64_at(&l->h.r, *s);
        rc = copy_out(e + 1, (size_t)e[0], p);
        if (!rc && n)
            *n = (size_t)e[0];
    }
    br__mpr_unlock(&l->h.r);
    return rc;
}

int br_mp_list_get_into(br_mp_list *l, int64_t i, void *buf, size_t cap, size_t *n) {
    LIST_CHECK(l, "br_mp_list_get_into");
    if (!bytes_ok(buf, cap) || !n)
        return BR__MISUSE(BR_EINVAL, "br_mp_list_get_into: NULL buffer or length");
    *n = 0;
    int rc = br__mpr_lock(&l->h.r, list_repair);
    if (rc)
        return rc;
    uint64_t *s = list_slot(&l->h.r, i);
    if (!s) {
        rc = BR_ERANGE;
    } else {
        uint64_t *e = u64_at(&l->h.r, *s);
        *n = (size_t)e[0];
        if (e[0] > cap)
            rc = BR_ERANGE;
        else if (e[0])
            memcpy(buf, e + 1, (size_t)e[0]);
    }
    br__mpr_unlock(&l->h.r);
    return rc;
}

int br_mp_list_set(br_mp_list *l, int64_t i, const void *p, size_t n) {
    LIST_CHECK(l, "br_mp_list_set");
    if (!bytes_ok(p, n))
        return BR__MISUSE(BR_EINVAL, "br_mp_list_set: NULL bytes with a length");
    br__mpr *r = &l->h.r;
    int rc = br__mpr_lock(r, list_repair);
    if (rc)
        return rc;
    uint64_t *s = list_slot(r, i);
    if (!s) {
        rc = BR_ERANGE;
    } else {
        uint64_t cap, at = (uint64_t)(s - items_of(r, &cap)), off;
        rc = new_elem(r, p, n, &off);
        if (!rc) {
            s = items_of(r, &cap) + at; /* again: the allocation may have remapped */
            uint64_t old = *s;
            BR__MPR_PUBLISH(s, off);
            br__mpr_free(r, old);
        }
    }
    br__mpr_unlock(r);
    return rc;
}

int br_mp_list_len(br_mp_list *l, size_t *len) {
    LIST_CHECK(l, "br_mp_list_len");
    if (!len)
        return BR__MISUSE(BR_EINVAL, "br_mp_list_len: len is NULL");
    int rc = br__mpr_lock(&l->h.r, list_repair);
    if (rc)
        return rc;
    *len = (size_t)l->h.r.h->user[1];
    br__mpr_unlock(&l->h.r);
    return 0;
}

int br_mp_list_snapshot(br_mp_list *l, br_mp_items **out) {
    if (out)
        *out = NULL;
    LIST_CHECK(l, "br_mp_list_snapshot");
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_list_snapshot: out is NULL");
    br__mpr *r = &l->h.r;
    int rc = br__mpr_lock(r, list_repair);
    if (rc)
        return rc;
    uint64_t cap, len = r->h->user[1];
    uint64_t *items = items_of(r, &cap);
    size_t bytes = 0;
    for (uint64_t i = 0; i < len; i++)
        bytes += (size_t)*u64_at(r, items[i]) + 1;
    br_mp_items *it = items_alloc((size_t)len, false, bytes);
    if (!it) {
        br__mpr_unlock(r);
        return BR_ENOMEM;
    }
    char *dst = items_bytes(it, (size_t)len);
    for (uint64_t i = 0; i < len; i++) {
        uint64_t *e = u64_at(r, items[i]);
        dst = put_bytes(&it->keys[i], dst, e + 1, (size_t)e[0]);
    }
    it->count = (size_t)len;
    br__mpr_unlock(r);
    *out = it;
    return 0;
}

int br_mp_list_append_str(br_mp_list *l, const char *s) {
    if (!s)
        return BR__MISUSE(BR_EINVAL, "br_mp_list_append_str: NULL string");
    return br_mp_list_append(l, s, strlen(s));
}

int br_mp_list_append_i64(br_mp_list *l, int64_t v) {
    return br_mp_list_append(l, &v, sizeof v);
}

int br_mp_list_get_i64(br_mp_list *l, int64_t i, int64_t *v) {
    if (!v)
        return BR__MISUSE(BR_EINVAL, "br_mp_list_get_i64: v is NULL");
    size_t n;
    int rc = br_mp_list_get_into(l, i, v, sizeof *v, &n);
    if ((rc == BR_ERANGE && n > 0) || (rc == 0 && n != sizeof *v))
        return BR_EINVAL;
    return rc;
}
