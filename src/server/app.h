/*
 * app.h - the server without its network (server-private): server_run()
 * (server.h) listens around these, and the HTTP fuzz target drives the
 * router between them.
 */
#ifndef HF_APP_H
#define HF_APP_H

#include "server_state.h"

/* server_new() copies c (NULL if out of memory); server_start() recovers
 * c->data_dir and starts the defenses, and the journal's commit thread if
 * commit_thread (without it, journaled ops wait in memory and never become
 * durable); -1 if it cannot. server_free() undoes both, whatever was
 * reached. */
server_t *server_new(const server_config_t *c);
int server_start(server_t *s, bool commit_thread);
void server_free(server_t *s);
/* The clock thread's step: expire, reclaim, compact when due. */
void server_tick(server_t *s);

#endif
