/*
 * server.c - the server's life: start-up and recovery, the HTTP library's
 * callbacks, replies that wait for the journal, the clock tick, shutdown.
 *
 * Connections are accepted by listener.c, which caps them and reaps those
 * past a deadline (conns.h); the library gets only admitted ones.
 *
 * A request goes through the library's access callback several times:
 *   1. headers are in: check header count, Content-Length, and that a
 *      connection of the operators' reserve carries an operator's request;
 *   2. body chunks: collect up to HF_BODY_BYTES_MAX;
 *   3. body complete: route and handle (routes.c). If the journal already
 *      covers r->seq the reply goes now; otherwise the connection is
 *      suspended and the request put on the wait list;
 *   4. resumed by the commit thread's on_durable: send the reply (or 503 if
 *      the journal failed meanwhile).
 * No thread ever blocks on the disk but the commit thread.
 *
 * Clock. The engine's time is ms since the epoch, but advanced by the
 * monotonic clock: base + (monotonic - monotonic at start), where base is the
 * wall clock at start or the journal's last time, whichever is later. So time
 * never goes back within a run, and recorded times compare across restarts.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hf_clock.h"
#include "observe.h"
#include "server_internal.h"
#include "webhooks.h"

/* The clock tick: how late an expiry may be seen by the metrics, not by the
 * API (every request expires what is due first). */
#define TICK_MS 10
/* Shutdown waits this long for requests in flight before closing anyway. */
#define DRAIN_MS_MAX 10000
/* ... and this long more for the replies it then answers itself to go out. */
#define DRAIN_ANSWER_MS_MAX 1000

int64_t server_mono_ms(void)
{
    return hf_mono_ms();
}

int64_t server_now_ms(server_t *s)
{
    return s->clock_base_ms + (server_mono_ms() - s->mono_start_ms);
}

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
 * A read only learns that the journal is down. */
static void reply_unknown(request_t *r)
{
    if (r->changed) {
        reply_error(r, API_ERR_OUTCOME_UNKNOWN,
                    "the journal failed while this change was being made durable: it may or "
                    "may not have been kept. Once the server is back, send the same request "
                    "again with the same Idempotency-Key to learn which");
    } else {
        reply_error(r, API_ERR_STORAGE_UNAVAILABLE,
                    "the journal failed; the server takes no more changes until it restarts");
    }
}

/* Called on the commit thread: resumes every reply the journal now covers. */
static void on_durable(void *ctx, uint64_t durable_seq, bool failed)
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
 * The check and the parking happen under wait_lock, which on_durable also
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
    if (routes_for_operator(r, url)) {
        return true;
    }
    conns_count_refusal(&r->server->conns, CONNS_REFUSED_RESERVE);
    error_begin(r, API_ERR_OVERLOADED,
                "the server is at its connection cap; the connections past it are kept for "
                "the operator (GET /healthz, /metrics, the admin key)");
    jw_kcstr(&r->out, "reason", "connections");
    error_end(r);
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
        reply_error(r, API_ERR_OVERLOADED, "the server is shutting down");
    } else if (headers > HF_HEADER_COUNT_MAX) {
        reply_error(r, API_ERR_HEADER_TOO_LARGE, "more than 64 request headers");
    } else if (header_bytes > HF_HEADER_BYTES_MAX) {
        reply_error(r, API_ERR_HEADER_TOO_LARGE, "the request headers are over 16384 bytes");
    } else if (length != NULL && strtoull(length, NULL, 10) > HF_BODY_BYTES_MAX) {
        reply_error(r, API_ERR_BODY_TOO_LARGE, "the body is over 65536 bytes");
    } else if (!admit_reserve(r, url)) {
        /* the 503 is written */
    } else if (__atomic_load_n(&s->wait_count, __ATOMIC_RELAXED) >= HF_PENDING_REPLIES_MAX) {
        reply_error(r, API_ERR_OVERLOADED, "too many replies are waiting for the journal");
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
    routes_handle(r, method, url);
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
    free(r);
    *con_cls = NULL;
}

/* --------------------------------------------------------------- start-up */

static bool is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)a;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
}

static bool parse_addr(const server_config_t *c, struct sockaddr_storage *a, socklen_t *len)
{
    memset(a, 0, sizeof *a);
    const char *host = strcmp(c->host, "localhost") == 0 ? "127.0.0.1" : c->host;
    struct sockaddr_in *in = (struct sockaddr_in *)a;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)a;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(c->port);
        *len = sizeof *in;
        return true;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(c->port);
        *len = sizeof *in6;
        return true;
    }
    return false;
}

/* The URL a client on this machine reaches the socket bound to a at:
 * the address itself if loopback, loopback if bound to all; "" if none. */
static void loopback_url_of(const struct sockaddr_storage *a, const char *addr_text,
                            uint16_t port, char *out, size_t size)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)a;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
    if (is_loopback(a)) {
        snprintf(out, size, "http://%s", addr_text);
    } else if (a->ss_family == AF_INET && in->sin_addr.s_addr == htonl(INADDR_ANY)) {
        snprintf(out, size, "http://127.0.0.1:%u", port);
    } else if (a->ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) {
        snprintf(out, size, "http://[::1]:%u", port);
    } else {
        out[0] = '\0';
    }
}

/* Binds the listening socket; returns it, or -1 after logging why. */
static int listen_on(server_t *s, char *addr_text, size_t addr_text_size)
{
    const server_config_t *c = &s->config;
    struct sockaddr_storage a;
    socklen_t len;
    if (!parse_addr(c, &a, &len)) {
        fprintf(stderr, "level=error msg=\"--listen needs an IP address or localhost\" host=%s\n",
                c->host);
        return -1;
    }
    if (!is_loopback(&a) && c->api_key_count == 0 && c->admin_key[0] == '\0') {
        fprintf(stderr, "level=error msg=\"refusing to listen on a non-loopback address without "
                        "keys: give --api-key and --admin-key\" host=%s\n",
                c->host);
        return -1;
    }
    int fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, len) != 0 || listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        fprintf(stderr, "level=error msg=\"cannot listen\" host=%s port=%u err=\"%s\"\n", c->host,
                c->port, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    char host[INET6_ADDRSTRLEN];
    uint16_t port;
    if (a.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&a)->sin_addr, host, sizeof host);
        port = ntohs(((struct sockaddr_in *)&a)->sin_port);
        snprintf(addr_text, addr_text_size, "%s:%u", host, port);
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a)->sin6_addr, host, sizeof host);
        port = ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
        snprintf(addr_text, addr_text_size, "[%s]:%u", host, port);
    }
    loopback_url_of(&a, addr_text, port, s->loopback_url, sizeof s->loopback_url);
    return fd;
}

/* Applies and journals an op of the server's own (not a client's). */
static int apply_own(server_t *s, guard_op_t *op)
{
    op->engine.now_ms = engine_now_ms(guard_engine(s->guard));
    guard_outcome_t o = guard_apply(s->guard, op);
    assert(o.result == GUARD_OK);
    return o.changed && store_append(&s->store, op, server_mono_ms()) == 0 ? -1 : 0;
}

/* A data directory gets its challenge secret once; it is journaled, so
 * challenges issued before a restart still verify after it. The policy of
 * the configuration file is what a new data directory starts with: once a
 * policy was applied (by PUT /v1/policy or an earlier start), the journal's
 * is kept, so a restart never undoes an operator's change. */
static int start_defenses(server_t *s)
{
    guard_op_t op;
    if (!guard_has_secret(s->guard)) {
        op = (guard_op_t){.kind = GUARD_OP_SECRET};
        if (RAND_bytes(op.u.secret, GUARD_SECRET_BYTES) != 1 || apply_own(s, &op) != 0) {
            fprintf(stderr, "level=error msg=\"cannot make the challenge secret\"\n");
            return -1;
        }
    }
    bool differs = s->config.has_policy &&
                   memcmp(&s->config.policy, guard_policy(s->guard), sizeof(policy_config_t)) != 0;
    if (differs && guard_policy_chosen(s->guard)) {
        fprintf(stderr, "level=warn msg=\"the configuration file's policy is not applied: this "
                        "data directory has its own (GET /v1/policy; PUT /v1/policy changes it)\"\n");
    } else if (differs) {
        uint32_t sku;
        policy_field_t bad;
        if (!guard_policy_fits(s->guard, &s->config.policy, &sku, &bad)) {
            engine_sku_view_t v;
            engine_sku_view(guard_engine(s->guard), sku, &v);
            fprintf(stderr,
                    "level=error msg=\"the configuration file's policy conflicts with a sku's "
                    "own settings\" sku=%.*s field=%s.%s\n",
                    (int)v.sku_len, v.sku, policy_field_info(bad)->section,
                    policy_field_info(bad)->key);
            return -1;
        }
        op = (guard_op_t){.kind = GUARD_OP_POLICY_PUT, .u.policy = s->config.policy};
        observe_audit_config(&op);
        if (apply_own(s, &op) != 0) {
            fprintf(stderr, "level=error msg=\"cannot journal the configured policy\"\n");
            return -1;
        }
        fprintf(stderr, "level=info msg=\"policy from the configuration file applied\"\n");
    }
    return 0;
}

/* The data directory's key for the hold ids and secrets on the wire
 * (store.h): made at the first start and read at every later one, so an id
 * names the same hold, and its secret stays good, across restarts. */
static int load_hold_key(server_t *s)
{
    char err[512];
    store_key_t k;
    uint64_t seq = engine_hold_seq(guard_engine(s->guard));
    if (store_key_load(s->config.data_dir, seq, &k, err, sizeof err) != 0) {
        fprintf(stderr, "level=error msg=\"cannot start without the hold key\" err=\"%s\"\n",
                err);
        return -1;
    }
    int rc = holdkey_init(&s->holdkey, &k);
    OPENSSL_cleanse(&k.key, sizeof k.key);
    if (rc != 0) {
        fprintf(stderr, "level=error msg=\"cannot make hold ids: this OpenSSL lacks HMAC or "
                        "SipHash, or our SipHash disagrees with it\"\n");
        return -1;
    }
    if (k.created && seq > 0) {
        fprintf(stderr, "level=warn msg=\"made a hold key for a data directory with holds: their "
                        "ids given out before keep working (h_...); if it had a key file that "
                        "was lost, ids and secrets given out with that key no longer work\" "
                        "file=%s/%s\n",
                s->config.data_dir, STORE_KEY_FILE);
    }
    if (k.mode_loose) {
        fprintf(stderr, "level=warn msg=\"the hold key file is readable by others: chmod 600 "
                        "it\" file=%s/%s\n",
                s->config.data_dir, STORE_KEY_FILE);
    }
    if (s->config.hold_secret_optional) {
        fprintf(stderr, "level=warn msg=\"hold secrets are optional: a shop key may touch any "
                        "hold it names; switch to required once holdfast_secret_checks_total"
                        "{outcome=\\\"missing_allowed\\\"} stays still\"\n");
    }
    return 0;
}

/* Ids skipped at a relaxed start: more holds (and waitlist entries) than
 * HF_RELAXED_FLUSH_MS of the fastest load could make, with room to spare. */
#define RELAXED_ID_SKIP (1ull << 20)

/* Relaxed durability may lose the last acknowledged changes in a crash, and
 * with them the ids they used: the engine would hand those ids (and, since
 * secrets derive from ids, their secrets) out again, to other customers. A
 * relaxed start therefore skips past them, journaled like any change. */
static int skip_lost_ids(server_t *s)
{
    if (s->config.durability != STORE_RELAXED) {
        return 0;
    }
    guard_op_t op = {.kind = GUARD_OP_ID_SKIP};
    uint64_t hold_seq = engine_hold_seq(guard_engine(s->guard));
    uint64_t wait_seq = guard_wait_seq(s->guard);
    op.u.id_skip.hold_seq = hold_seq + RELAXED_ID_SKIP;
    op.u.id_skip.wait_seq = wait_seq + RELAXED_ID_SKIP;
    if (op.u.id_skip.hold_seq > ENGINE_HOLD_SEQ_MAX || op.u.id_skip.wait_seq > GUARD_WAIT_SEQ_MAX) {
        fprintf(stderr, "level=error msg=\"hold or waitlist ids are used up\"\n");
        return -1;
    }
    if (apply_own(s, &op) != 0) {
        fprintf(stderr, "level=error msg=\"cannot journal the id skip\"\n");
        return -1;
    }
    return 0;
}

/* Test hook: HOLDFAST_FAULT_JOURNAL_AFTER=N makes journal commits fail past
 * the Nth record written after start-up (the server's own records, such as a
 * new challenge secret, come before and do not count). */
static int arm_fault(server_t *s)
{
    const char *fault = getenv("HOLDFAST_FAULT_JOURNAL_AFTER");
    if (fault != NULL) {
        store_fail_after(&s->store, store_appended_seq(&s->store) + strtoull(fault, NULL, 10));
        fprintf(stderr, "level=warn msg=\"journal fault injection on\" after=%s\n", fault);
    }
    return 0;
}

/* Rebuilds the guard from the journal (opened, or failed and to be
 * reopened) and sets the server's clock from it. */
static int catch_up(server_t *s);

static int load_journal(server_t *s, bool reopen)
{
    char err[640];
    const server_config_t *c = &s->config;
    /* Time 0: no advance to now inside; catch_up advances, so that what
     * time did while the server was down is announced (webhooks.c). */
    int rc = reopen ? store_reopen(&s->store, s->guard, 0, &s->recovery, err, sizeof err)
                    : store_recover(&s->store, s->guard, 0, &s->recovery, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "level=error msg=\"cannot recover\" data=%s err=\"%s\"\n", c->data_dir,
                err);
        return -1;
    }
    /* A first start catches up once the hold key is loaded: the events
     * name holds by their ids on the wire. */
    return reopen ? catch_up(s) : 0;
}

/* Brings the recovered guard to now (holds that ran out while the server
 * was down expire) and sets the server's clock from it. */
static int catch_up(server_t *s)
{
    uint64_t expired = engine_stats(guard_engine(s->guard)).holds_expired;
    if (webhooks_recovered(s, hf_wall_ms()) != 0) {
        return -1;
    }
    s->recovery.holds_expired =
        (uint32_t)(engine_stats(guard_engine(s->guard)).holds_expired - expired);
    /* Time never goes back, even if the wall clock did while we were down. */
    int64_t now_wall_ms = hf_wall_ms(); /* read both clocks at one moment */
    s->mono_start_ms = server_mono_ms();
    int64_t engine_ms = engine_now_ms(guard_engine(s->guard));
    s->clock_base_ms = now_wall_ms > engine_ms ? now_wall_ms : engine_ms;
    s->events_logged = guard_event_seq(s->guard); /* logged by the run that switched them */
    engine_stats_t st = engine_stats(guard_engine(s->guard));
    fprintf(stderr,
            "level=info msg=recovered skus=%u holds=%u finished=%u records=%llu expired=%u "
            "ms=%lld\n",
            st.skus, st.holds_active, st.holds_retained,
            (unsigned long long)(s->recovery.snapshot_records + s->recovery.journal_records),
            s->recovery.holds_expired, (long long)s->recovery.duration_ms);
    if (s->recovery.journal_records > 0) {
        store_snapshot(&s->store, s->guard); /* replay less next time */
    }
    return 0;
}

static bool create_guard(server_t *s)
{
    s->guard = guard_create(&s->config.guard, 0);
    if (s->guard == NULL) {
        fprintf(stderr, "level=error msg=\"cannot reserve the tables\" bytes=%zu\n",
                guard_reserved_bytes(&s->config.guard));
    }
    return s->guard != NULL;
}

/* Opens the journal and rebuilds the guard (engine and defenses) from it. */
static int recover(server_t *s)
{
    char err[640];
    const server_config_t *c = &s->config;
    if (!create_guard(s)) {
        return -1;
    }
    if (store_open(&s->store, c->data_dir, c->durability, c->compact_records, err, sizeof err) !=
        0) {
        fprintf(stderr, "level=error msg=\"cannot recover\" data=%s err=\"%s\"\n", c->data_dir,
                err);
        return -1;
    }
    s->started_epoch_ms = hf_wall_ms();
    return load_journal(s, false);
}

static struct MHD_Daemon *start_http(server_t *s)
{
    const server_config_t *c = &s->config;
    /* poll(), not epoll: libmicrohttpd 0.9.75's epoll loop stalls (about
     * 100 requests/s) whenever exactly 128 connections are ready at once,
     * also per worker of a pool; measured equal in speed otherwise. No
     * listening socket: listener.c accepts, and adds what it admits. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_TURBO | MHD_USE_NO_LISTEN_SOCKET;
    /* The library's timeout restarts with every byte: it ends replies that
     * stopped moving. A second later than ours, so that an idle connection
     * is ours to close and count. */
    unsigned timeout_s = (c->idle_timeout_ms + 999) / 1000 + 1;
    return MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)c->threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)listener_library_limit(c),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(2 * HF_HEADER_BYTES_MAX),
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, listener_on_connection, s, MHD_OPTION_URI_LOG_CALLBACK,
        listener_on_request_line, s, MHD_OPTION_END);
}

/* ------------------------------------------------------------- run, stop */

/* How often a journal that failed for want of space looks for room. */
#define REOPEN_EVERY_MS 1000

/* A journal that failed because the disk was full takes writes again once
 * there is room, without a restart: the guard is rebuilt from what was
 * durable (everything the failed commit carried was answered "unknown" and
 * is gone from memory with the old guard, as a restart would have it). The
 * old guard goes first, since the tables are sized for the whole machine;
 * if the rebuild then fails, there is nothing to serve from, so the process
 * ends for its supervisor to start it again. */
static void reopen_after_full_disk(server_t *s)
{
    int64_t now_ms = server_mono_ms();
    if (now_ms < s->reopen_at_ms || !store_failed_for_space(&s->store)) {
        return;
    }
    s->reopen_at_ms = now_ms + REOPEN_EVERY_MS;
    if (!store_has_room(s->config.data_dir)) {
        return;
    }
    fprintf(stderr, "level=info msg=\"the disk has room again: reopening the journal\"\n");
    events_close_all(s); /* their text came from the guard that goes */
    pthread_mutex_lock(&s->events_lock);
    pthread_mutex_lock(&s->engine_lock);
    guard_destroy(s->guard);
    bool ok = create_guard(s) && load_journal(s, true) == 0 && skip_lost_ids(s) == 0;
    if (ok) { /* the lost changes may have made skus that are gone */
        chart_forget(s);
        chart_seed(s);
    }
    pthread_mutex_unlock(&s->engine_lock);
    pthread_mutex_unlock(&s->events_lock);
    if (!ok) {
        fprintf(stderr, "level=error msg=\"cannot reopen the journal; exiting\"\n");
        exit(1);
    }
}

/* The engine's own clock: expire what is due, take carts back for buyers
 * who wait, keep the dashboard's history, and compact when it is time. */
void server_tick(server_t *s)
{
    reopen_after_full_disk(s);
    store_snapshot_poll(&s->store, false);
    pthread_mutex_lock(&s->engine_lock);
    int64_t now_ms = server_now_ms(s);
    guard_op_t op;
    guard_outcome_t o = guard_reclaim(s->guard, now_ms, &op);
    webhooks_collect(s, o.changed ? &op : NULL, &o, o.changed); /* expiries, the reclaim's */
    if (o.changed && store_append(&s->store, &op, server_mono_ms()) == 0) {
        /* The store is failed for good: every reply says so from now on. */
        fprintf(stderr, "level=error msg=\"a reclaim could not be journaled\"\n");
    }
    chart_sample(s, now_ms);
    if (store_wants_snapshot(&s->store)) {
        store_snapshot(&s->store, s->guard);
    }
    pthread_mutex_unlock(&s->engine_lock);
}

/* Ticks until SIGTERM or SIGINT arrives. */
static int wait_for_signal(server_t *s, const sigset_t *signals)
{
    struct timespec timeout = {.tv_sec = 0, .tv_nsec = TICK_MS * 1000000L};
    for (;;) {
        int sig = sigtimedwait(signals, NULL, &timeout);
        if (sig == SIGTERM || sig == SIGINT) {
            return sig;
        }
        if (sig == SIGHUP) {
            observe_reopen(s); /* logrotate moved the access log */
        }
        server_tick(s);
        events_publish(s);
    }
}

/* Replies still waiting for the journal when the drain's time is up (a
 * disk that stalls): whether their changes are durable is not known yet,
 * so each is answered so, and resumed, before HTTP stops; the library
 * aborts when stopped with a connection suspended. */
static void answer_waiting_at_stop(server_t *s)
{
    pthread_mutex_lock(&s->wait_lock);
    while (s->wait_head != NULL) {
        request_t *r = s->wait_head;
        s->wait_head = r->next_waiter;
        s->wait_count--;
        r->parked = false;
        if (r->changed) {
            reply_error(r, API_ERR_OUTCOME_UNKNOWN,
                        "the server stopped before the journal said whether this change is "
                        "durable: it may or may not have been kept. Once the server is back, "
                        "send the same request again with the same Idempotency-Key to learn "
                        "which");
        } else {
            reply_error(r, API_ERR_OVERLOADED, "the server is shutting down");
        }
        r->ready = true;
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&s->wait_lock);
}

/* Waits, at most max_ms, until no request is in flight. */
static void wait_inflight(server_t *s, int64_t max_ms)
{
    int64_t deadline_ms = server_mono_ms() + max_ms;
    while (__atomic_load_n(&s->inflight, __ATOMIC_SEQ_CST) > 0 && server_mono_ms() < deadline_ms) {
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 2000000L};
        nanosleep(&pause, NULL);
    }
}

/* Stop accepting, let requests in flight finish (their replies wait for the
 * journal, which keeps committing), then commit the rest and close. */
static void drain(server_t *s, int sig)
{
    fprintf(stderr, "level=info msg=stopping signal=%s inflight=%d\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", __atomic_load_n(&s->inflight, __ATOMIC_RELAXED));
    __atomic_store_n(&s->draining, 1, __ATOMIC_SEQ_CST);
    events_close_all(s); /* streams never finish on their own */
    simrun_stop(s);
    listener_stop(s);
    wait_inflight(s, DRAIN_MS_MAX);
    answer_waiting_at_stop(s);
    /* Stopping the library closes its connections at once: let the answers
     * just given be sent first. */
    wait_inflight(s, DRAIN_ANSWER_MS_MAX);
    /* No handler may run once the journal is closed: stop HTTP first. */
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    listener_deinit(s);
    if (s->store.since_snapshot > 0 && !store_failed(&s->store)) {
        store_snapshot(&s->store, s->guard); /* a fast start next time */
    }
    webhooks_stop(s); /* what was delivered leaves the outbox in the last commit */
    store_close(&s->store);
}

void server_free(server_t *s)
{
    listener_stop(s); /* it adds connections to the library */
    if (s->daemon != NULL) {
        MHD_stop_daemon(s->daemon);
    }
    listener_deinit(s);
    webhooks_stop(s);
    store_close(&s->store);
    webhooks_free(s);
    guard_destroy(s->guard);
    pthread_mutex_destroy(&s->engine_lock);
    pthread_mutex_destroy(&s->wait_lock);
    pthread_mutex_destroy(&s->events_lock);
    simrun_deinit(s);
    observe_stop(s);
    chart_deinit(s);
    holdkey_deinit(&s->holdkey);
    free(s->sku_refusals);
    free(s);
}

server_t *server_new(const server_config_t *c)
{
    server_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->config = *c;
    s->listen_fd = -1;
    s->wake_fds[0] = s->wake_fds[1] = s->epoll_fd = -1;
    s->sku_refusals = calloc(HF_SKU_RULE_STATS_MAX, sizeof *s->sku_refusals);
    if (s->sku_refusals == NULL) {
        free(s);
        return NULL;
    }
    if (chart_init(s) != 0) {
        chart_deinit(s);
        free(s->sku_refusals);
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->engine_lock, NULL);
    pthread_mutex_init(&s->wait_lock, NULL);
    pthread_mutex_init(&s->events_lock, NULL);
    simrun_init(s);
    return s;
}

int server_start(server_t *s, bool commit_thread)
{
    if (webhooks_init(s) != 0 || recover(s) != 0 || load_hold_key(s) != 0 ||
        observe_start(s) != 0 || catch_up(s) != 0 ||
        (commit_thread && store_start(&s->store, on_durable, s) != 0) ||
        start_defenses(s) != 0 || skip_lost_ids(s) != 0 ||
        (commit_thread && webhooks_start(s) != 0)) {
        return -1;
    }
    chart_seed(s);
    return 0;
}

int server_run(const server_config_t *c)
{
    server_t *s = server_new(c);
    if (s == NULL) {
        return 1;
    }
    /* Signals are taken by sigtimedwait on this thread only. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    char addr[INET6_ADDRSTRLEN + 16];
    uint32_t fd_limit;
    int fd = listener_fit_fds(c, &fd_limit) == 0 ? listen_on(s, addr, sizeof addr) : -1;
    if (fd < 0 || server_start(s, true) != 0 || arm_fault(s) != 0 ||
        (s->daemon = start_http(s)) == NULL || listener_start(s, fd, fd_limit) != 0) {
        if (fd >= 0 && s->listen_fd < 0) {
            close(fd);
        }
        server_free(s);
        return 1;
    }
    fprintf(stderr, "level=info msg=listening addr=%s durability=%s data=%s\n", addr,
            c->durability == STORE_DURABLE ? "durable" : "relaxed", c->data_dir);
    if (c->attack_panel) {
        fprintf(stderr, "level=warn msg=\"the attack panel is on: its runs make real sales "
                        "(a demo server only)\"\n");
    }
    int sig = wait_for_signal(s, &signals);
    drain(s, sig);
    fprintf(stderr, "level=info msg=stopped\n");
    server_free(s);
    return 0;
}
