/*
 * events.h - GET /v1/events: the sku totals as server-sent events
 * (server-private).
 */
#ifndef HF_EVENTS_H
#define HF_EVENTS_H

#include "pipeline.h"

extern const handler_t events_stream_handler; /* GET /v1/events */

enum MHD_Result events_reply(request_t *r); /* queues r->stream's response */
void events_stream_free(void *stream);      /* its reader is gone: the slot is free */
void events_publish(server_t *s);           /* the clock thread, every tick */
void events_close_all(server_t *s);         /* shutdown: end every stream */

#endif
