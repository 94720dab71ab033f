/*
 * h2o_holdfast.c - holdfast's own request path on h2o's event loop: a
 * probe, not a server (docs/BENCHMARKS.md, "What bounds a hold").
 *
 * h2o_probe measures the other threading shape with a stand-in for a
 * hold's work. This probe does the work itself: every request goes through
 * holdfast's router, handlers, pipeline, guard and journal (holdfast_core),
 * as in the server, and only the HTTP library and the waiting differ. A
 * reply that must wait for the journal is parked on its event loop's list;
 * the commit thread wakes each loop that has any, once per group commit,
 * and the loop sends every reply the journal now covers in one turn.
 *
 * What the server has and this probe has not: the listener's admission,
 * caps and deadlines, the operators' reserve, event streams, query
 * arguments, the drain, request and header limits of holdfast's own (h2o's
 * apply), the access log. So its figures say what the shape gives the hold
 * path, nothing more.
 *
 *   h2o_holdfast --port P --data DIR [--threads N] [--policy FILE]
 *
 * The journal is durable; --policy is a policy document to start with
 * (bench/policy-off.json switches the defenses off, as make bench does).
 * Listens on 127.0.0.1 only; runs until killed.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "app.h"
#include "events.h"
#include "probe_loop.h"
#include "observe.h"
#include "policy_json.h"
#include "router.h"
#include "server_state.h"

#define THREADS_MAX 8
#define TICK_US 100000 /* the server's clock tick (expiries, the defenses' windows) */

/* A request on its loop; parked while its reply waits for the journal. */
typedef struct waiter_s waiter_t;
struct waiter_s {
    h2o_req_t *req; /* NULL once the client has gone */
    waiter_t **slot; /* in req's pool: points back here until the reply goes */
    request_t *r;
    waiter_t *next;
};

typedef struct {
    probe_loop_t base;  /* first: probe_loop_this points here */
    waiter_t *parked; /* under park_lock */
    bool woken;       /* a wake-up is on its way (under park_lock) */
} loop_t;

static server_t *server;
static h2o_globalconf_t config;
static loop_t loops[THREADS_MAX];
static int loop_count = 2;
/* Parking and waking, as http.c's wait_lock: a reply checked and parked
 * under it cannot miss the commit that covers it. */
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
#define this_loop ((loop_t *)probe_loop_this)

/* request_t.lookup: a header of the h2o request (a query argument: none). */
static const char *lookup(void *ctx, enum MHD_ValueKind kind, const char *key)
{
    h2o_req_t *req = ctx;
    if (kind != MHD_HEADER_KIND) {
        return NULL;
    }
    size_t len = strlen(key);
    for (size_t i = 0; i != req->headers.size; i++) {
        const h2o_header_t *h = req->headers.entries + i;
        if (h->name->len == len && h2o_lcstris(key, len, h->name->base, len) /* names come lowercase */) {
            return h2o_strdup(&req->pool, h->value.base, h->value.len).base;
        }
    }
    return NULL;
}

static const char *no_arg(void *ctx, uint32_t index)
{
    (void)ctx;
    (void)index;
    return NULL;
}

/* The journal failed before it covered r's reply (http.c says more). */
static void reply_failed(request_t *r)
{
    if (r->changed) {
        request_error(r, API_ERR_OUTCOME_UNKNOWN, "the journal failed: outcome unknown");
    } else {
        request_error(r, API_ERR_STORAGE_UNAVAILABLE, "the journal failed");
    }
}

static void request_free(request_t *r)
{
    json_out_free(&r->out);
    free(r->body);
    free(r->location);
    free(r);
}

static void send_reply(h2o_req_t *req, request_t *r)
{
    observe_reply(r, r->status, r->out.size);
    req->res.status = r->status;
    req->res.reason = r->status < 300 ? "OK" : "Error";
    const char *type = r->content_type != NULL ? r->content_type
                       : r->text               ? "text/plain; version=0.0.4"
                                               : "application/json";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type,
                   strlen(type));
    if (r->replayed != NULL) {
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("idempotent-replayed"), 0,
                              NULL, r->replayed, strlen(r->replayed));
    }
    if (r->location != NULL) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, r->location,
                       strlen(r->location));
    }
    req->res.content_length = r->out.size; /* keeps a non-200 reply's connection */
    h2o_send_inline(req, r->out.size ? r->out.data : "", r->out.size);
    request_free(r);
}

/* The request's pool is going: a parked waiter is left for its loop. */
static void on_req_gone(void *p)
{
    waiter_t *w = *(waiter_t **)p;
    if (w != NULL) {
        pthread_mutex_lock(&park_lock);
        w->req = NULL;
        pthread_mutex_unlock(&park_lock);
    }
}

/* Sends now if the journal covers the reply, else parks it (under the lock,
 * so that the commit that covers it finds it). */
static void reply_or_park(h2o_req_t *req, request_t *r)
{
    pthread_mutex_lock(&park_lock);
    store_reply_t state =
        store_reply_state(&server->store, r->seq, r->generation, server_mono_ms());
    if (state != STORE_REPLY_WAIT) {
        pthread_mutex_unlock(&park_lock);
        if (state == STORE_REPLY_UNKNOWN) {
            reply_failed(r);
        }
        send_reply(req, r);
        return;
    }
    waiter_t *w = calloc(1, sizeof *w);
    waiter_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof *slot, on_req_gone);
    if (w == NULL) {
        pthread_mutex_unlock(&park_lock);
        exit(1);
    }
    *slot = w;
    w->slot = slot;
    w->req = req;
    w->r = r;
    w->next = this_loop->parked;
    this_loop->parked = w;
    pthread_mutex_unlock(&park_lock);
}

static int on_request(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    request_t *r = calloc(1, sizeof *r);
    char *body = malloc(req->entity.len + 1);
    if (r == NULL || body == NULL) {
        exit(1);
    }
    memcpy(body, req->entity.base, req->entity.len);
    body[req->entity.len] = '\0';
    *r = (request_t){.server = server, .lookup = lookup, .arg_name = no_arg, .lookup_ctx = req,
                     .body = body, .body_size = req->entity.len, .route = -1, .key_slot = -1};
    r->method = h2o_strdup(&req->pool, req->method.base, req->method.len).base;
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    const char *path = h2o_strdup(&req->pool, req->path.base, path_len).base;
    json_out_init(&r->out);
    observe_request_started(r);
    router_handle(r, r->method, path);
    if (r->stream != NULL) {
        events_stream_free(r->stream); /* its slot back: no streams here */
        r->stream = NULL;
        json_out_reset(&r->out);
        request_error(r, API_ERR_NOT_FOUND, "event streams are not served by this probe");
    }
    reply_or_park(req, r);
    return 0;
}

/* On a loop: every parked reply the journal now covers is sent. */
static void on_durable_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        free(m);
    }
    waiter_t *ready = NULL;
    pthread_mutex_lock(&park_lock);
    this_loop->woken = false;
    for (waiter_t **link = &this_loop->parked; *link != NULL;) {
        waiter_t *w = *link;
        store_reply_t state = w->req == NULL ? STORE_REPLY_GO
                              : store_reply_state(&server->store, w->r->seq, w->r->generation,
                                                  server_mono_ms());
        if (state == STORE_REPLY_WAIT) {
            link = &w->next;
            continue;
        }
        *link = w->next;
        if (state == STORE_REPLY_UNKNOWN) {
            reply_failed(w->r);
        }
        w->next = ready;
        ready = w;
    }
    pthread_mutex_unlock(&park_lock);
    while (ready != NULL) {
        waiter_t *w = ready;
        ready = w->next;
        if (w->req != NULL) {
            *w->slot = NULL; /* the pool may go with the reply; this waiter goes now */
            send_reply(w->req, w->r);
        } else {
            request_free(w->r);
        }
        free(w);
    }
}

/* The commit thread's callback: one message to each loop with parked
 * replies, however many they are. */
static void on_durable(void *ctx, uint64_t durable_seq, bool failed)
{
    (void)ctx;
    (void)durable_seq;
    (void)failed;
    pthread_mutex_lock(&park_lock);
    for (int i = 0; i < loop_count; i++) {
        if (loops[i].parked == NULL || loops[i].woken) {
            continue;
        }
        h2o_multithread_message_t *m = calloc(1, sizeof *m);
        if (m == NULL) {
            exit(1);
        }
        loops[i].woken = true;
        h2o_multithread_send_message(&loops[i].base.receiver, m);
    }
    pthread_mutex_unlock(&park_lock);
}

/* The policy document at path, into c; false after saying why. */
static bool read_policy(const char *path, server_config_t *c)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    policy_json_error_t err;
    uint64_t mask;
    c->policy = policy_config_default();
    bool ok = doc != NULL && policy_json_read(doc, POLICY_MASK_ALL, &c->policy, &mask, &err);
    json_decref(doc);
    if (!ok) {
        fprintf(stderr, "h2o_holdfast: %s: not a policy document\n", path);
    }
    c->has_policy = ok;
    return ok;
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *data = NULL;
    const char *policy = NULL;
    bool unknown = argc % 2 == 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0) {
            port = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--threads") == 0) {
            loop_count = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--data") == 0) {
            data = argv[i + 1];
        } else if (strcmp(argv[i], "--policy") == 0) {
            policy = argv[i + 1];
        } else {
            unknown = true;
        }
    }
    if (unknown || port <= 0 || data == NULL || loop_count < 1 || loop_count > THREADS_MAX) {
        fprintf(stderr, "usage: h2o_holdfast --port P --data DIR [--threads 1..%d] [--policy FILE]\n",
                THREADS_MAX);
        return 2;
    }
    server_config_t c;
    server_config_default(&c);
    snprintf(c.data_dir, sizeof c.data_dir, "%s", data);
    c.durability = STORE_DURABLE;
    c.compact_records = 0;
    snprintf(c.access_log, sizeof c.access_log, "off");
    if (policy != NULL && !read_policy(policy, &c)) {
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    server = server_new(&c);
    if (server == NULL || server_start(server, false) != 0 ||
        store_start(&server->store, on_durable, NULL) != 0) {
        fprintf(stderr, "h2o_holdfast: the server did not start on %s\n", data);
        return 1;
    }
    h2o_config_init(&config);
    h2o_hostconf_t *host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")),
                                                    65535);
    h2o_pathconf_t *root = h2o_config_register_path(host, "/", 0);
    h2o_create_handler(root, sizeof(h2o_handler_t))->on_req = on_request;
    for (int i = 0; i < loop_count; i++) {
        probe_loop_start(&loops[i].base, &config, port, on_durable_message, "h2o_holdfast");
    }
    fprintf(stderr, "h2o_holdfast: listening on 127.0.0.1:%d, %d loops, data %s\n", port,
            loop_count, data);
    for (;;) {
        usleep(TICK_US);
        server_tick(server);
    }
    return 0;
}
