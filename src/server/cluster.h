/*
 * cluster.h - a node of a cluster: the journal in PostgreSQL, the shop it
 * serves, its name and its lease (docs/OPERATIONS.md, "A cluster").
 *
 * Without --journal nothing here applies: the journal is SQLite's, in the
 * data directory, and the server is its shop's only node.
 */
#ifndef HF_CLUSTER_H
#define HF_CLUSTER_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>

#include "server.h"
#include "server_state.h"

/* Whether key is one of the configuration file's cluster keys. */
bool cluster_config_is_key(const char *key);
/* Sets a configuration file key (cluster_config_is_key). 0, or -1 said. */
int cluster_config_key(server_config_t *c, const char *key, json_t *v);
/* Sets a flag if it is a cluster flag (*handled). 0, or -1 said. */
int cluster_config_flag(server_config_t *c, const char *flag, const char *v, bool *handled);
/* Checks the settings together, once all are read. 0, or -1 said. */
int cluster_config_finish(server_config_t *c);

/* Opens the store in PostgreSQL and waits until this node owns the shop
 * (0), a signal in stop arrives (1), or an error (-1, logged). Meanwhile it
 * answers on listen_fd as a standby (standby.h); listen_addr, where that
 * is, makes the default node URL. */
int cluster_take_shop(server_t *s, int listen_fd, const char *listen_addr, const sigset_t *stop);

/* The tick's look at the lease and the journal: a node that may no longer
 * be sure it owns the shop ends at once; one whose journal failed ends once
 * the replies that waited for it have gone out, or a moment later
 * (store_open_pg says why). */
void cluster_check_lease(server_t *s, int64_t mono_ms);

#endif
