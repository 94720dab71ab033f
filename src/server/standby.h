/*
 * standby.h - a cluster's node while it waits for its shop: every request
 * redirected to the owner (docs/OPERATIONS.md, "A cluster").
 */
#ifndef HF_STANDBY_H
#define HF_STANDBY_H

typedef struct standby_s standby_t;

/* Answers on listen_fd (bound and listening) from a thread of its own
 * until standby_stop. NULL if the HTTP library cannot start. */
standby_t *standby_start(int listen_fd, const char *shop);

/* Where requests go from now on ("" : nowhere yet, 503 not_owner). */
void standby_set_owner(standby_t *sb, const char *owner_url);

/* Stops answering; listen_fd stays open for the server proper. Connections
 * still open are closed. NULL does nothing. */
void standby_stop(standby_t *sb);

#endif
