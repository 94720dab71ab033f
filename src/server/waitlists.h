/*
 * waitlists.h - a sku's waitlist: join, read, cancel (server-private).
 */
#ifndef HF_WAITLISTS_H
#define HF_WAITLISTS_H

#include "pipeline.h"

extern const handler_t waitlists_join_handler;   /* POST /v1/skus/{sku}/waitlist */
extern const handler_t waitlists_get_handler;    /* GET /v1/waitlist/{id} */
extern const handler_t waitlists_cancel_handler; /* DELETE /v1/waitlist/{id} */

#endif
