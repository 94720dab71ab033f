/*
 * identities.h - who holds what, and revoking an identity (server-private).
 */
#ifndef HF_IDENTITIES_H
#define HF_IDENTITIES_H

#include "pipeline.h"

extern const handler_t identities_top_handler;    /* GET /v1/identities/top */
extern const handler_t identities_revoke_handler; /* POST /v1/identities/{kind}/{value}/revoke */

#endif
