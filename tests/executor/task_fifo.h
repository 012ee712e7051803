/* An intrusive FIFO of tasks through their links (br_task_link), for the test
 * executors written against the installed extension API alone (mini_executor.h,
 * test_extension.c). Not locked: the executor holds its own lock around it. */
#ifndef BRAID_TESTS_TASK_FIFO_H
#define BRAID_TESTS_TASK_FIFO_H

#include <braid.h>
#include <braid/executor_impl.h>

typedef struct task_fifo {
    br_task *head, *tail;
} task_fifo;

static inline void task_fifo_push(task_fifo *q, br_task *t) {
    *br_task_link(t) = NULL;
    if (q->tail)
        *br_task_link(q->tail) = t;
    else
        q->head = t;
    q->tail = t;
}

/* The oldest task, or NULL. */
static inline br_task *task_fifo_pop(task_fifo *q) {
    br_task *t = q->head;
    if (t) {
        q->head = *br_task_link(t);
        if (q->head == NULL)
            q->tail = NULL;
    }
    return t;
}

/* Empties q: its tasks, linked oldest first. */
static inline br_task *task_fifo_take_all(task_fifo *q) {
    br_task *t = q->head;
    q->head = q->tail = NULL;
    return t;
}

/* Gives up every task of a list from task_fifo_take_all with `code` (call it without
 * the executor's lock: abandoning runs the futures' callbacks). */
static inline void task_abandon_all(br_task *list, int code) {
    while (list) {
        br_task *next = *br_task_link(list);
        br_task_abandon(list, code);
        list = next;
    }
}

#endif
