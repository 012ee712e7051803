/* The extension API's task side (braid/executor_impl.h): checked doors to the future
 * layer's task steps (future/for_executors.h) for executors written outside braid.
 * braid's own executors call the br__ functions directly. */
#include "executor/private.h"

br_task **br_task_link(br_task *t) { return t ? &t->next : NULL; }

br_future *br_task_future(br_task *t) { return t ? br__task_future(t) : NULL; }

br_task_fn br_task_function(const br_task *t) { return t ? t->fn : NULL; }

bool br_task_begin(br_task *t) {
    if (t == NULL)
        return BR__MISUSE(BR_EINVAL, "br_task_begin: NULL task"), false;
    return br__task_begin(t);
}

int br_task_call(br_task *t) {
    if (!br__task_begun(t))
        return BR__MISUSE(BR_EINVAL, "br_task_call: the task is not begun");
    return br__task_call(t);
}

int br_task_finish(br_task *t, int rc) {
    if (!br__task_begun(t))
        return BR__MISUSE(BR_EINVAL, "br_task_finish: the task is not begun");
    return br__task_finish(t, rc);
}

int br_task_run(br_task *t) {
    if (t == NULL)
        return BR__MISUSE(BR_EINVAL, "br_task_run: NULL task");
    return br__task_run(t);
}

void br_task_abandon(br_task *t, int code) {
    if (t == NULL || br__task_begun(t)) {
        BR__MISUSE(BR_EINVAL, "br_task_abandon: NULL or begun task");
        return;
    }
    br__task_abandon(t, code);
}
