/* mp_pipe.c: two processes talking through a Pipe.
 *
 * Ports 002 "进程间通信 - Queue、Pipe,Manager", the Pipe listing:
 *   recevie_pipe, send_pipe = Pipe()    # pipe只能用于2个进程间的通信
 *   producer: pipe.send("a")     consumer: print(pipe.recv())
 * and, beyond the listing, what a Pipe's ends do when the other side goes away: the
 * receiver gets EOF (Python's EOFError) once everything sent was read, and a send to a
 * closed end is an error (BrokenPipeError), never a SIGPIPE death.
 *
 * Porting notes. Messages are bytes. Each process closes the end it doesn't use, as
 * with Python's Pipe: an end stays open while any process holds it.
 */
#include "example.h"

#include <braid/mp_queue.h>
#include <braid/process.h>

static br_pipe *recevie_pipe, *send_pipe;

static int producer(br_task *t) {
    (void)t;
    br_pipe_close(recevie_pipe);
    must(br_pipe_send(send_pipe, "a", 1, BR_FOREVER), "pipe.send");
    br_pipe_close(send_pipe);
    return 0;
}

static int consumer(br_task *t) {
    (void)t;
    br_pipe_close(send_pipe);
    char buf[16];
    size_t len;
    must(br_pipe_recv_into(recevie_pipe, buf, sizeof buf - 1, &len, BR_FOREVER),
         "pipe.recv");
    buf[len] = '\0';
    printf("%s\n", buf);
    /* The producer has closed its end: the next recv is EOF, not a hang. */
    int rc = br_pipe_recv_into(recevie_pipe, buf, sizeof buf, &len, BR_FOREVER);
    printf("then: %s\n", br_err_name(rc));
    fflush(stdout);
    br_pipe_close(recevie_pipe);
    return 0;
}

int main(int argc, char **argv) {
    br_process_main(argc, argv);
    must(br_pipe_new(&recevie_pipe, &send_pipe, true), "Pipe()");
    br_process *my_producer, *my_consumer;
    must(br_process_start(&my_producer, producer, NULL, 0, NULL), "my_producer.start");
    must(br_process_start(&my_consumer, consumer, NULL, 0, NULL), "my_consumer.start");
    br_pipe_close(recevie_pipe); /* the parent uses neither end */
    br_pipe_close(send_pipe);
    must(br_process_join(my_producer, BR_FOREVER), "my_producer.join");
    must(br_process_join(my_consumer, BR_FOREVER), "my_consumer.join");
    br_process_free(my_producer);
    br_process_free(my_consumer);

    /* A send once every reader is gone is BrokenPipeError, and the process lives on. */
    br_pipe *r, *w;
    must(br_pipe_new(&r, &w, false), "Pipe(duplex=False)");
    br_pipe_close(r);
    int rc = br_pipe_send(w, "b", 1, BR_FOREVER);
    printf("send after the reader left: %s\n", br_err_name(rc));
    br_pipe_close(w);
    return 0;
}
