/*
 * http.h - the HTTP library's side of a request (server-private): its
 * callbacks, a request's life from its head to its reply, and the replies
 * that wait for the journal.
 */
#ifndef HF_HTTP_H
#define HF_HTTP_H

#include "server_state.h"

/* Starts the library's threads (no listening socket: listener.c adds
 * admitted connections). NULL if it cannot. */
struct MHD_Daemon *http_start(server_t *s);
/* The commit thread's news (store_start's callback): the journal is durable
 * up to durable_seq, or failed; resumes every reply it now covers. */
void http_on_durable(void *ctx, uint64_t durable_seq, bool failed);
/* Shutdown, the drain's time up: answers every reply still waiting for the
 * journal (its outcome unknown) and resumes it, before the library stops. */
void http_answer_waiting(server_t *s);

#endif
