/*
 * post.h - one bounded HTTP POST (post.c), private to src/webhook/.
 */
#ifndef HF_WEBHOOK_POST_H
#define HF_WEBHOOK_POST_H

#include "webhook.h"

/* Sends head (the request line and headers, ending in a blank line) and
 * body to e, and reads the reply's status line, all within timeout_ms, or
 * until cancel_fd (-1: none) is readable. The status (100-599), or -1 with
 * why in err. */
int webhook_post(const webhook_endpoint_t *e, const char *head, size_t head_len,
                 const char *body, size_t body_len, uint32_t timeout_ms, int cancel_fd, char *err,
                 size_t err_size);

#endif
