/*
 * listener.h - the accept loop, the connection caps and deadlines
 * (server-private; the table itself is conns.h).
 */
#ifndef HF_LISTENER_H
#define HF_LISTENER_H

#include "server_state.h"

/* Raises the soft RLIMIT_NOFILE to fit the connections; sets *fd_limit.
 * Returns 0, or -1 after logging why they cannot fit. */
int listener_fit_fds(const server_config_t *c, uint32_t *fd_limit);
uint32_t listener_library_limit(const server_config_t *c); /* MHD's connection limit */
/* Accepts on listen_fd (the library must be started). 0, or -1 if the
 * tables or the thread could not be made (listener_deinit cleans up). */
int listener_start(server_t *s, int listen_fd, uint32_t fd_limit);
void listener_stop(server_t *s);   /* stop accepting; close the socket */
void listener_deinit(server_t *s); /* after MHD_stop_daemon */
void listener_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                            enum MHD_ConnectionNotificationCode toe);
void *listener_on_request_line(void *cls, const char *uri, struct MHD_Connection *conn);
conn_t *listener_slot(struct MHD_Connection *conn);
void listener_enter(server_t *s, conn_t *c, conn_phase_t p); /* c may be NULL */

#endif
