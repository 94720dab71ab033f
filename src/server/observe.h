/*
 * observe.h - what an operator reads of a running server besides /metrics
 * (server-private):
 *
 *   the access log  one logfmt line per request (access_log.c), written by
 *                   a thread of its own from a bounded buffer, so a reply
 *                   never waits for the log's disk: when the buffer is
 *                   full a line is dropped and counted, never waited for;
 *   the audit trail every admin change with who made it (audit.c): the
 *                   entries are the guard's, journaled in the same record
 *                   as the change (guard.h, guard_audit_t).
 *
 * Keys are never logged, nor hold or waitlist secrets, nor a path with a
 * hold id in it: a line names the route's template and the key's id, 8 hex
 * digits of an HMAC of the key under the data directory's key (holdkey.c),
 * which the server prints for each configured key at start.
 */
#ifndef HF_OBSERVE_H
#define HF_OBSERVE_H

#include "pipeline.h"

/* --access-log: where the lines go. */
#define OBSERVE_ACCESS_LOG_OFF "off"
#define OBSERVE_ACCESS_LOG_STDERR "stderr"

/* The keys' ids (after the hold key is loaded) and the access log, as
 * configured; -1 after logging why it cannot (a file that cannot be
 * opened). */
int observe_start(server_t *s);
/* Writes what the access log holds and closes it. */
void observe_stop(server_t *s);
/* SIGHUP: the access log's file is opened again by name before its next
 * write (after logrotate moved it). */
void observe_reopen(server_t *s);

/* The request is complete (or refused before it was): its time starts. */
void observe_request_started(request_t *r);
/* The routes' templates as the log shows them (/v1/holds/{id}/commit),
 * made once the route table is in s (before any request). */
void observe_templates(server_t *s);
const char *observe_route_template(const server_t *s, int route);

/* A reply is queued: counts it in /metrics (status, latency) and writes
 * its access log line. */
void observe_reply(request_t *r, int status, size_t body_bytes);

/* The id of the key the request sent ("-" if none matched). */
const char *observe_key_id(const request_t *r);

/* Lines written and dropped (the buffer was full) so far, for /metrics. */
typedef struct {
    bool on;
    uint64_t written, dropped, write_errors;
} observe_log_stats_t;
observe_log_stats_t observe_log_stats(server_t *s);

/* audit.c: marks op as an operator's change to be kept in the audit trail,
 * with the request's key id and route. Call before applying it. */
void observe_audit(request_t *r, guard_op_t *op);
/* The same for a hold's release or commit when it is an operator's: the
 * admin's powers, and no Hold-Secret (the owner's calls are not audited). */
void observe_audit_operator_hold(request_t *r, guard_op_t *op);
/* The policy a configuration file sets at start (no key, no route). */
void observe_audit_config(guard_op_t *op);
/* GET /v1/audit?limit=N&after=CURSOR: the trail, newest first. */
extern const handler_t observe_audit_handler;

#endif
