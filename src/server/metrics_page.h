/*
 * metrics_page.h - the /metrics page (server-private).
 */
#ifndef HF_METRICS_PAGE_H
#define HF_METRICS_PAGE_H

#include "server_state.h"

/* The whole page, the engine lock held (its figures are one state). */
void metrics_render(server_t *s, json_out_t *out);

#endif
