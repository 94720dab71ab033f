/*
 * static.h - the web pages: the shop at /, the dashboard at /admin
 * (server-private).
 */
#ifndef HF_STATIC_H
#define HF_STATIC_H

#include "pipeline.h"

extern const handler_t static_pages_handler; /* GET /, /admin, and their files */

#endif
