/* mp_manager.c: processes filling a shared dict and a shared list.
 *
 * Ports three listings:
 *   002 "进程间通信 - Queue、Pipe,Manager", the Manager listing: two processes run
 *       add_data(progress_dict, "jack", 22) and ("hong", 34); the parent prints the
 *       dict: {'jack': 22, 'hong': 34};
 *   003 "9. 进程通信字典": run1 sets dic["name"] = "九问", dic["phone"] = 193;
 *   003 "10. 进程通信列表": run1 appends 1 and 2; the parent prints each.
 *
 * Porting notes. Python's Manager().dict() is a server process that every access
 * reaches through a socket; braid's dict and list live in shared memory (no server,
 * nothing pickled) and grow as needed. Keys and values are bytes; the _i64 and _str
 * helpers store integers and strings. Made before the children fork, a dict is the
 * same handle in them (a global here; Python passes it in args).
 */
#include "example.h"

#include <braid/mp_shared.h>
#include <braid/process.h>

#include <string.h>

typedef struct add_args {
    char key[16];
    int64_t value;
} add_args;

static br_mp_dict *progress_dict;
static br_mp_list *li;

static int add_data(br_task *t) {
    const add_args *a = br_task_arg(t, NULL);
    return br_mp_dict_set_i64(progress_dict, a->key, a->value);
}

static int run1_dict(br_task *t) {
    (void)t;
    must(br_mp_dict_set_str(progress_dict, "name", "九问"), "dic[name]");
    must(br_mp_dict_set_i64(progress_dict, "phone", 193), "dic[phone]");
    printf("run1函数执行完成\n");
    fflush(stdout);
    return 0;
}

static int run1_list(br_task *t) {
    (void)t;
    must(br_mp_list_append_i64(li, 1), "li.append(1)");
    must(br_mp_list_append_i64(li, 2), "li.append(2)");
    printf("run1函数执行完成\n");
    fflush(stdout);
    return 0;
}

static void run(br_task_fn fn, const void *arg, size_t len) {
    br_process *p;
    must(br_process_start(&p, fn, arg, len, NULL), "start");
    must(br_process_join(p, BR_FOREVER), "join");
    int code;
    must(br_process_exitcode(p, &code), "exitcode");
    if (code != 0)
        must(BR_EFAILED, "the child");
    br_process_free(p);
}

int main(int argc, char **argv) {
    br_process_main(argc, argv);

    /* 002: two processes at once, then print the dict. */
    must(br_mp_dict_new(&progress_dict, NULL), "Manager().dict()");
    add_args jack = {"jack", 22}, hong = {"hong", 34};
    br_process *first_progress, *second_progress;
    must(br_process_start(&first_progress, add_data, &jack, sizeof jack, NULL), "first");
    must(br_process_start(&second_progress, add_data, &hong, sizeof hong, NULL), "second");
    must(br_process_join(first_progress, BR_FOREVER), "first.join");
    must(br_process_join(second_progress, BR_FOREVER), "second.join");
    br_process_free(first_progress);
    br_process_free(second_progress);
    br_mp_items *items;
    must(br_mp_dict_items(progress_dict, &items), "items()");
    printf("{");
    for (size_t i = 0; i < items->count; i++) {
        int64_t v;
        memcpy(&v, items->values[i].data, sizeof v);
        printf("%s'%.*s': %lld", i ? ", " : "", (int)items->keys[i].len,
               (const char *)items->keys[i].data, (long long)v);
    }
    printf("}\n");
    br_mp_items_free(items);
    br_mp_dict_free(progress_dict);

    /* 003, 9: the dict. */
    must(br_mp_dict_new(&progress_dict, NULL), "Manager().dict()");
    run(run1_dict, NULL, 0);
    char *name;
    int64_t phone;
    must(br_mp_dict_get_str(progress_dict, "name", &name), "dic['name']");
    must(br_mp_dict_get_i64(progress_dict, "phone", &phone), "dic['phone']");
    printf("name=%s, phone=%lld\n", name, (long long)phone);
    br_mp_bytes_free(name);
    br_mp_dict_free(progress_dict);

    /* 003, 10: the list. */
    must(br_mp_list_new(&li, NULL), "Manager().list()");
    run(run1_list, NULL, 0);
    size_t n;
    must(br_mp_list_len(li, &n), "len(li)");
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        must(br_mp_list_get_i64(li, (int64_t)i, &v), "li[i]");
        printf("%lld\n", (long long)v);
    }
    br_mp_list_free(li);
    return 0;
}
