/*
 * http.c - a request's life in the HTTP library.
 *
 * Connections are accepted by listener.c, which caps them and reaps those
 * past a deadline (conns.h); the library gets only admitted ones.
 *
 * A request goes through the library's access callback several times:
 *   1. headers are in: check header count, Content-Length, and that a
 *      connection of the operators' reserve carries an operator's request;
 *   2. body chunks: collect up to HF_BODY_BYTES_MAX;
 *   3. body complete: route and handle (router.c, pipeline.h). If the
 *      journal already covers r->seq the reply goes now; otherwise the
 *      connection is suspended and the request put on the wait list;
 *   4. resumed by the commit thread's http_on_durable: send the reply (or
 *      the outcome unknown, if the journal failed meanwhile).
 * No thread ever blocks on the disk but the commit thread.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "events.h"
#include "http.h"
#include "listener.h"
#include "observe.h"
#include "router.h"

/* ------------------------------------------------------------------ replies */

static enum MHD_Result send_reply(request_t *r)
{
    server_t *s = r->server;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        r->out.size, r->out.size ? r->out.data : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (resp == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type != NULL ? r->content_type
                            : r->text               ? "text/plain; version=0.0.4"
                                                    : "application/json");
    if (r->replayed != NULL) {
        MHD_add_response_header(resp, "Idempotent-Replayed", r->replayed);
    }
    if (r->status == 405) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    }
    if (r->location != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
    }
    bool crowded = conns_in_library(&s->conns) > s->config.keepalive_max;
    if (crowded && !r->close) {
        conns_count_close(&s->conns, CONNS_CLOSED_KEEPALIVE);
    }
    r->close = r->close || crowded || __atomic_load_n(&s->draining, __ATOMIC_RELAXED);
    if (r->close) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    if (r->retry_after) {
        char seconds[16];
        snprintf(seconds, sizeof seconds, "%d", HF_RETRY_AFTER_S);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
    }
    observe_reply(r, r->status, r->out.size);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The journal failed before it covered this reply. A change it carried was
 * applied and handed to the journal, and the failed commit may still have
 * reached the disk (SQLite wrote the log before the fsync failed; the next
 * start replays what is there): its outcome is unknown, never "not kept".
 * A read only learns that the journal is down, or, on a cluster's node
 * (which ends in a moment), to ask another node. */
static void reply_unknown(request_t *r)
{
    if (r->changed) {
        request_error(r, API_ERR_OUTCOME_UNKNOWN,
                      "the journal failed while this change was being made durable: it may or "
                      "may not have been kept. Once the server is back, send the same request "
                      "again with the same Idempotency-Key to learn which");
    } else if (store_pg_failed(&r->server->store)) {
        request_error(r, API_ERR_NOT_OWNER,
                      "this node's journal failed and it is giving the shop up; retry");
    } else {
        request_error(r, API_ERR_STORAGE_UNAVAILABLE,
                      "the journal failed; the server takes no more changes until it restarts");
    }
}

/* Called on the commit thread: resumes every reply the journal now covers. */
void http_on_durable(void *ctx, uint64_t durable_seq, bool failed)
{
    server_t *s = ctx;
    pthread_mutex_lock(&s->wait_lock);
    request_t **link = &s->wait_head;
    while (*link != NULL) {
        request_t *r = *link;
        if (!failed && r->seq > durable_seq) {
            link = &r->next_waiter;
            continue;
        }
        *link = r->next_waiter;
        s->wait_count--;
        r->parked = false;
        if (failed) {
            reply_unknown(r);
        }
        r->ready = true;
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&s->wait_lock);
}

/* Sends the reply now if the journal covers it, else parks the request.
 * The check and the parking happen under wait_lock, which http_on_durable also
 * takes after publishing a new durable seq, so no wake-up is ever missed. */
static enum MHD_Result reply_or_wait(request_t *r)
{
    server_t *s = r->server;
    pthread_mutex_lock(&s->wait_lock);
    store_reply_t state = store_reply_state(&s->store, r->seq, r->generation, server_mono_ms());
    if (state == STORE_REPLY_UNKNOWN) {
        /* Failed first, or reopened since this reply was made: the state
         * it shows was computed on a guard that is gone. */
        reply_unknown(r);
    }
    if (state != STORE_REPLY_WAIT) {
        pthread_mutex_unlock(&s->wait_lock);
        return send_reply(r);
    }
    r->parked = true;
    r->next_waiter = s->wait_head;
    s->wait_head = r;
    s->wait_count++;
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&s->wait_lock);
    return MHD_YES;
}

/* ------------------------------------------------------- library callbacks */

/* Adds up the header block as the client sent it ("Key: value\r\n"). */
static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    size_t *bytes = cls;
    *bytes += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

/* A connection of the operators' reserve carries one request, and only an
 * operator's; false after writing the 503. */
static bool admit_reserve(request_t *r, const char *url)
{
    if (r->slot == NULL || !conn_reserve(r->slot)) {
        return true;
    }
    if (router_for_operator(r, url)) {
        return true;
    }
    conns_count_refusal(&r->server->conns, CONNS_REFUSED_RESERVE);
    request_error_begin(r, API_ERR_OVERLOADED,
                        "the server is at its connection cap; the connections past it are kept for "
                        "the operator (GET /healthz, /metrics, the admin key)");
    jw_kcstr(&r->out, "reason", "connections");
    request_error_end(r);
    r->retry_after = true;
    return false;
}

/* Checks made once the headers are in; false after writing an error. */
static bool admit(request_t *r, const char *url)
{
    server_t *s = r->server;
    const char *length = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    size_t header_bytes = 0;
    int headers = MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_header, &header_bytes);
    if (__atomic_load_n(&s->draining, __ATOMIC_SEQ_CST)) {
        /* A new request on a kept-alive connection during shutdown: the
         * journal may already be closed, so it must not reach the engine. */
        request_error(r, API_ERR_OVERLOADED, "the server is shutting down");
    } else if (headers > HF_HEADER_COUNT_MAX) {
        request_error(r, API_ERR_HEADER_TOO_LARGE, "more than 64 request headers");
    } else if (header_bytes > HF_HEADER_BYTES_MAX) {
        request_error(r, API_ERR_HEADER_TOO_LARGE, "the request headers are over 16384 bytes");
    } else if (length != NULL && strtoull(length, NULL, 10) > HF_BODY_BYTES_MAX) {
        request_error(r, API_ERR_BODY_TOO_LARGE, "the body is over 65536 bytes");
    } else if (!admit_reserve(r, url)) {
        /* the 503 is written */
    } else if (__atomic_load_n(&s->wait_count, __ATOMIC_RELAXED) >= HF_PENDING_REPLIES_MAX) {
        request_error(r, API_ERR_OVERLOADED, "too many replies are waiting for the journal");
    } else {
        return true;
    }
    return false;
}

static void body_append(request_t *r, const char *data, size_t size)
{
    if (r->body_too_large || r->body_size + size > HF_BODY_BYTES_MAX) {
        r->body_too_large = true; /* keep reading, so the 413 can be sent */
        return;
    }
    char *body = realloc(r->body, r->body_size + size + 1);
    if (body == NULL) {
        r->body_too_large = true;
        return;
    }
    memcpy(body + r->body_size, data, size);
    r->body = body;
    r->body_size += size;
}

/* Whether the client asked for its connection to end after this request
 * (Connection: close, or HTTP/1.0 without keep-alive). */
static bool client_closes(struct MHD_Connection *conn, const char *version)
{
    const char *c = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION);
    if (strcmp(version, MHD_HTTP_VERSION_1_0) == 0) {
        return c == NULL || strncasecmp(c, "keep-alive", 10) != 0;
    }
    return c != NULL && strncasecmp(c, "close", 5) == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    server_t *s = cls;
    request_t *r = *con_cls;
    if (r == NULL) {
        r = calloc(1, sizeof *r);
        if (r == NULL) {
            return MHD_NO;
        }
        r->server = s;
        r->conn = conn;
        r->route = -1;
        r->method = method;
        r->key_slot = -1;
        observe_request_started(r);
        r->slot = listener_slot(conn);
        r->close = r->slot != NULL && conn_reserve(r->slot); /* one request each */
        r->client_closes = client_closes(conn, version);
        json_out_init(&r->out);
        *con_cls = r;
        listener_enter(s, r->slot, CONN_BODY);
        /* Counted before admit() reads draining, and drain() sets draining
         * before it waits for the count: no request slips between them. */
        __atomic_fetch_add(&s->inflight, 1, __ATOMIC_SEQ_CST);
        r->counted = true;
        return admit(r, url) ? MHD_YES : send_reply(r);
    }
    if (*upload_data_size > 0) {
        body_append(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->ready) {
        return send_reply(r);
    }
    listener_enter(s, r->slot, CONN_BUSY);
    observe_request_started(r);
    router_handle(r, method, url);
    return r->stream != NULL ? events_reply(r) : reply_or_wait(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)conn;
    server_t *s = cls;
    request_t *r = *con_cls;
    if (code == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED) {
        conns_count_close(&s->conns, CONNS_CLOSED_STALLED);
    }
    if (r == NULL) {
        return;
    }
    listener_enter(s, r->slot, CONN_IDLE);
    if ((r->close || r->client_closes) && r->slot != NULL) {
        conns_closing(&s->conns, r->slot); /* its client may be reconnecting */
    }
    if (r->counted) {
        __atomic_fetch_sub(&s->inflight, 1, __ATOMIC_SEQ_CST);
    }
    /* A connection closed while its reply waited (only at shutdown, after
     * the drain timed out) must leave the wait list before it is freed. */
    pthread_mutex_lock(&s->wait_lock);
    for (request_t **link = &s->wait_head; r->parked && *link != NULL;
         link = &(*link)->next_waiter) {
        if (*link == r) {
            *link = r->next_waiter;
            s->wait_count--;
            r->parked = false;
            break;
        }
    }
    pthread_mutex_unlock(&s->wait_lock);
    json_out_free(&r->out);
    free(r->body);
    free(r->location);
    free(r);
    *con_cls = NULL;
}

/* The library's own word, at most this many lines a second: clients that
 * vanish mid-request make it talk, and a flood of them must not flood the
 * log. */
#define LIBRARY_LOG_LINES_PER_S 10
#define LIBRARY_LOG_BYTES_MAX 256

/* The library closes a connection it cannot serve (no memory, its own
 * connection limit, a request it cannot parse the start of) without a
 * reply and without a callback of ours: its message is the only trace of
 * that connection, so it goes to the log. Called on any of its threads. */
static void library_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    static int64_t window_s;
    static uint32_t lines;
    int64_t now_s = server_mono_ms() / 1000;
    int64_t seen_s = __atomic_load_n(&window_s, __ATOMIC_RELAXED);
    if (seen_s != now_s &&
        __atomic_compare_exchange_n(&window_s, &seen_s, now_s, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED)) {
        __atomic_store_n(&lines, 0, __ATOMIC_RELAXED);
    }
    if (__atomic_fetch_add(&lines, 1, __ATOMIC_RELAXED) >= LIBRARY_LOG_LINES_PER_S) {
        return;
    }
    char text[LIBRARY_LOG_BYTES_MAX];
    vsnprintf(text, sizeof text, fmt, ap);
    for (char *c = text; *c != '\0'; c++) {
        *c = *c == '"' ? '\'' : *c == '\n' || *c == '\r' ? ' ' : *c; /* one logfmt line */
    }
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == ' ') {
        text[--n] = '\0';
    }
    fprintf(stderr, "level=warn msg=\"from the HTTP library\" said=\"%s\"\n", text);
}

struct MHD_Daemon *http_start(server_t *s)
{
    const server_config_t *c = &s->config;
    /* poll(), not epoll: libmicrohttpd 0.9.75's epoll loop stalls (about
     * 100 requests/s) whenever exactly 128 connections are ready at once,
     * also per worker of a pool; measured equal in speed otherwise. No
     * listening socket: listener.c accepts, and adds what it admits. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_TURBO | MHD_USE_NO_LISTEN_SOCKET |
                     MHD_USE_ERROR_LOG;
    /* The library's timeout restarts with every byte: it ends replies that
     * stopped moving. A second later than ours, so that an idle connection
     * is ours to close and count. */
    unsigned timeout_s = (c->idle_timeout_ms + 999) / 1000 + 1;
    return MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, /* the logger first: it hears every message */
        MHD_OPTION_EXTERNAL_LOGGER, library_log, s, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)c->threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned)listener_library_limit(c),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(2 * HF_HEADER_BYTES_MAX),
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, listener_on_connection, s, MHD_OPTION_URI_LOG_CALLBACK,
        listener_on_request_line, s, MHD_OPTION_END);
}


/* Replies still waiting for the journal when the drain's time is up (a
 * disk that stalls): whether their changes are durable is not known yet,
 * so each is answered so, and resumed, before HTTP stops; the library
 * aborts when stopped with a connection suspended. */
void http_answer_waiting(server_t *s)
{
    pthread_mutex_lock(&s->wait_lock);
    while (s->wait_head != NULL) {
        request_t *r = s->wait_head;
        s->wait_head = r->next_waiter;
        s->wait_count--;
        r->parked = false;
        if (r->changed) {
            request_error(r, API_ERR_OUTCOME_UNKNOWN,
                          "the server stopped before the journal said whether this change is "
                          "durable: it may or may not have been kept. Once the server is back, "
                          "send the same request again with the same Idempotency-Key to learn "
                          "which");
        } else {
            request_error(r, API_ERR_OVERLOADED, "the server is shutting down");
        }
        r->ready = true;
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&s->wait_lock);
}

