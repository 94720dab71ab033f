/*
 * probe_loop.h - the h2o event loops of the two probes (h2o_probe.c,
 * h2o_holdfast.c). Each loop is a thread with its own listening socket on
 * 127.0.0.1 (SO_REUSEPORT: the kernel spreads the connections), accepts
 * there, and takes the other threads' messages (the commit thread's
 * wake-ups) on one receiver.
 *
 * A probe puts a probe_loop_t first in its own loop record, starts each with
 * probe_loop_start(), and finds the loop it runs on in probe_loop_this.
 */
#ifndef HF_BENCH_PROBE_LOOP_H
#define HF_BENCH_PROBE_LOOP_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#define H2O_USE_LIBUV 0
#include <h2o.h>

#define PROBE_LOOP_BACKLOG 1024

typedef struct {
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    h2o_multithread_receiver_cb on_message;
    h2o_globalconf_t *config;
    pthread_t thread;
    int listen_fd;
} probe_loop_t;

/* The loop this thread runs (NULL on the others). */
static _Thread_local probe_loop_t *probe_loop_this;

static inline void probe_loop_on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL) {
        return;
    }
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock != NULL) {
        h2o_accept(&probe_loop_this->accept, sock);
    }
}

/* A socket listening on 127.0.0.1:port; ends the process, saying who
 * failed, if it cannot. */
static inline int probe_loop_listen(int port, const char *who)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, PROBE_LOOP_BACKLOG) != 0) {
        fprintf(stderr, "%s: cannot listen on 127.0.0.1:%d\n", who, port);
        exit(1);
    }
    return fd;
}

static inline void *probe_loop_main(void *arg)
{
    probe_loop_t *l = arg;
    probe_loop_this = l;
    h2o_context_init(&l->ctx, h2o_evloop_create(), l->config);
    l->accept.ctx = &l->ctx;
    l->accept.hosts = l->config->hosts;
    l->queue = h2o_multithread_create_queue(l->ctx.loop);
    h2o_multithread_register_receiver(l->queue, &l->receiver, l->on_message);
    h2o_socket_t *sock = h2o_evloop_socket_create(l->ctx.loop, l->listen_fd,
                                                  H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(sock, probe_loop_on_accept);
    while (h2o_evloop_run(l->ctx.loop, INT32_MAX) == 0) {
    }
    return NULL;
}

/* Listens on port and starts l's thread; on_message takes what other
 * threads send to l->receiver. */
static inline void probe_loop_start(probe_loop_t *l, h2o_globalconf_t *config, int port,
                                  h2o_multithread_receiver_cb on_message, const char *who)
{
    l->config = config;
    l->on_message = on_message;
    l->listen_fd = probe_loop_listen(port, who);
    if (pthread_create(&l->thread, NULL, probe_loop_main, l) != 0) {
        fprintf(stderr, "%s: cannot start a loop's thread\n", who);
        exit(1);
    }
}

#endif
