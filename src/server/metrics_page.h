/*
 * metrics_page.h - the /metrics page (server-private).
 */
#ifndef HF_METRICS_PAGE_H
#define HF_METRICS_PAGE_H

#include "server_state.h"

/* What the page shows of the engine and the defenses, read as one state. */
typedef struct {
    engine_stats_t engine;
    struct defense_figures_s *defenses; /* NULL: no memory for them */
} metrics_figures_t;

/* The engine lock held: copies the engine's and the defenses' figures. */
void metrics_collect(server_t *s, metrics_figures_t *f);
/* After the lock: the whole page, from f and the counters; frees what
 * metrics_collect took. */
void metrics_render(server_t *s, metrics_figures_t *f, json_out_t *out);

#endif
