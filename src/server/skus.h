/*
 * skus.h - /v1/skus: the catalog and its stock (server-private).
 */
#ifndef HF_SKUS_H
#define HF_SKUS_H

#include "pipeline.h"

extern const handler_t skus_list_handler; /* GET /v1/skus */
extern const handler_t skus_get_handler;  /* GET /v1/skus/{sku} */
extern const handler_t skus_put_handler;  /* PUT /v1/skus/{sku} */

/* A sku as GET /v1/skus/{sku} shows it (the engine lock held). */
void skus_write_object(server_t *s, json_out_t *j, uint32_t index);
/* The path's sku, if it is a valid name; false after the 400. */
bool skus_path(request_t *r, const route_args_t *a);

#endif
