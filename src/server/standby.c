/*
 * standby.c - what a cluster's node answers while another node owns the
 * shop (standby.h).
 *
 * Its own small HTTP daemon on the node's listening socket, so that the
 * server proper (its tables, its journal) starts only once the node owns
 * the shop: every request is redirected (307, method and body kept) to the
 * owner's URL as the lease records it, /healthz says "standby" with a 503
 * (a load balancer's check sends nothing here), and while no owner is
 * known the answer is 503 not_owner with Retry-After.
 */
#include "standby.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_limits.h"

/* A standby answers everyone at once and keeps nobody: small caps. */
#define STANDBY_CONNECTIONS_MAX 1024
#define STANDBY_PER_ADDRESS_MAX 64
#define STANDBY_TIMEOUT_S 5
#define STANDBY_RETRY_AFTER_S "1"
#define STANDBY_URI_BYTES_MAX 4096
#define STANDBY_BODY_BYTES_MAX 1024

struct standby_s {
    struct MHD_Daemon *daemon;
    pthread_mutex_t lock;
    char shop[64];
    char owner_url[256]; /* "" while no owner is known */
};

/* The request line's target, query and all: what the redirect appends. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    size_t n = strnlen(uri, STANDBY_URI_BYTES_MAX + 1);
    return n <= STANDBY_URI_BYTES_MAX ? strndup(uri, n) : NULL;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)conn;
    (void)code;
    free(*con_cls);
    *con_cls = NULL;
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, const char *body,
                              const char *location)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (location != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, location);
    } else {
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, STANDBY_RETRY_AFTER_S);
    }
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)method;
    (void)version;
    (void)upload_data;
    standby_t *sb = cls;
    if (*upload_data_size > 0) {
        *upload_data_size = 0; /* the body goes to the owner, not here */
        return MHD_YES;
    }
    char owner[256], shop[64], body[STANDBY_BODY_BYTES_MAX];
    pthread_mutex_lock(&sb->lock);
    snprintf(owner, sizeof owner, "%s", sb->owner_url);
    snprintf(shop, sizeof shop, "%s", sb->shop);
    pthread_mutex_unlock(&sb->lock);
    if (strcmp(url, "/healthz") == 0) {
        snprintf(body, sizeof body, "{\"status\":\"standby\",\"shop\":\"%s\",\"owner_url\":%s%s%s}",
                 shop, owner[0] ? "\"" : "", owner[0] ? owner : "null", owner[0] ? "\"" : "");
        return answer(conn, MHD_HTTP_SERVICE_UNAVAILABLE, body, NULL);
    }
    const char *target = *con_cls != NULL ? *con_cls : url;
    char location[256 + STANDBY_URI_BYTES_MAX + 1];
    if (owner[0] == '\0' ||
        snprintf(location, sizeof location, "%s%s", owner, target) >= (int)sizeof location) {
        snprintf(body, sizeof body,
                 "{\"error\":{\"code\":\"not_owner\",\"message\":\"this node is a standby "
                 "for shop %s and knows no owner yet; retry\"}}",
                 shop);
        return answer(conn, MHD_HTTP_SERVICE_UNAVAILABLE, body, NULL);
    }
    snprintf(body, sizeof body,
             "{\"error\":{\"code\":\"not_owner\",\"message\":\"this node is a standby for shop "
             "%s: its owner is at %s\"}}",
             shop, owner);
    return answer(conn, MHD_HTTP_TEMPORARY_REDIRECT, body, location);
}

standby_t *standby_start(int listen_fd, const char *shop)
{
    standby_t *sb = calloc(1, sizeof *sb);
    if (sb == NULL) {
        return NULL;
    }
    pthread_mutex_init(&sb->lock, NULL);
    snprintf(sb->shop, sizeof sb->shop, "%s", shop);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_EPOLL;
    sb->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, sb, MHD_OPTION_LISTEN_SOCKET, listen_fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)STANDBY_CONNECTIONS_MAX,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)STANDBY_PER_ADDRESS_MAX,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(2 * HF_HEADER_BYTES_MAX),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)STANDBY_TIMEOUT_S, MHD_OPTION_URI_LOG_CALLBACK,
        on_uri, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (sb->daemon == NULL) {
        pthread_mutex_destroy(&sb->lock);
        free(sb);
        return NULL;
    }
    return sb;
}

void standby_set_owner(standby_t *sb, const char *owner_url)
{
    pthread_mutex_lock(&sb->lock);
    snprintf(sb->owner_url, sizeof sb->owner_url, "%s", owner_url);
    pthread_mutex_unlock(&sb->lock);
}

void standby_stop(standby_t *sb)
{
    if (sb == NULL) {
        return;
    }
    /* Quiesced first, so that stopping leaves the listening socket open
     * for the server proper. */
    MHD_quiesce_daemon(sb->daemon);
    MHD_stop_daemon(sb->daemon);
    pthread_mutex_destroy(&sb->lock);
    free(sb);
}
