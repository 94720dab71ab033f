/*
 * simrun.h - the attack panel's bounded `holdfast sim --live` run against
 * this server (server-private).
 */
#ifndef HF_SIMRUN_H
#define HF_SIMRUN_H

#include "pipeline.h"

extern const handler_t simrun_get_handler;   /* GET /v1/sim */
extern const handler_t simrun_start_handler; /* POST /v1/sim */
extern const handler_t simrun_stop_handler;  /* DELETE /v1/sim */

void simrun_init(server_t *s);
void simrun_stop(server_t *s); /* shutdown: stop the run, wait for it */
void simrun_deinit(server_t *s);

#endif
