/*
 * chart.h - GET /v1/history, the last hour of the most recently active
 * skus for the dashboard's chart, and what feeds it (server-private).
 */
#ifndef HF_CHART_H
#define HF_CHART_H

#include "pipeline.h"

extern const handler_t chart_history_handler; /* GET /v1/history */

int chart_init(server_t *s); /* -1: no memory for the rings */
void chart_deinit(server_t *s);
void chart_seed(server_t *s);   /* at start: the catalog's first skus, as never active */
void chart_forget(server_t *s); /* the guard was made anew: its sku indexes are others */
/* The engine lock held: the sku (a hold's skus) active at now_ms. */
void chart_note(server_t *s, uint32_t sku_index, int64_t now_ms);
void chart_note_hold(server_t *s, const engine_hold_create_t *c, int64_t now_ms);
/* The clock thread, the engine lock held, after expiring what was due: a
 * point for every tracked sku once a second. */
void chart_sample(server_t *s, int64_t now_ms);

#endif
