/*
 * router.c - API v1's route table: for each route its method, path, the
 * role its key needs, the query parameters it takes, and its handler
 * (parse, run, reply: pipeline.h). Matching, keys and the checks every
 * route shares are here; what a route does is its handler's file.
 */
#include <assert.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "chart.h"
#include "defenses.h"
#include "events.h"
#include "holds.h"
#include "identities.h"
#include "observe.h"
#include "ops.h"
#include "pipeline.h"
#include "router.h"
#include "simrun.h"
#include "skus.h"
#include "static.h"
#include "waitlists.h"

/* An unknown query parameter's name is quoted back up to this length. */
#define QUERY_NAME_SHOWN_BYTES_MAX 64

typedef struct {
    const char *method;
    const char *pattern; /* '*' matches one path segment */
    role_t role;
    /* The query parameters it takes (NULL-terminated); any other is a 400,
     * so that a misspelt one (?cursor= for ?after=) never passes silently.
     * NULL: the query is not looked at (pages, health, metrics). */
    const char *const *params;
    const handler_t *handler;
} route_t;

static const char *const no_params[] = {NULL};
static const char *const page_params[] = {"after", "limit", NULL};
static const char *const top_params[] = {"by", "limit", NULL};
static const char *const event_params[] = {"skus", NULL};
static const char *const history_params[] = {"sku", "since", NULL};

/* docs/openapi.yaml documents each of these (tests/contract checks it). */
static const route_t routes[] = {
    {"GET", "/healthz", ROLE_NONE, NULL, &ops_healthz_handler},
    {"GET", "/metrics", ROLE_ADMIN, NULL, &ops_metrics_handler},
    {"GET", "/v1/skus", ROLE_SHOP, page_params, &skus_list_handler},
    {"GET", "/v1/skus/*", ROLE_SHOP, no_params, &skus_get_handler},
    {"PUT", "/v1/skus/*", ROLE_ADMIN, no_params, &skus_put_handler},
    {"POST", "/v1/holds", ROLE_SHOP, no_params, &holds_create_handler},
    {"GET", "/v1/holds/*", ROLE_SHOP, no_params, &holds_get_handler},
    {"DELETE", "/v1/holds/*", ROLE_SHOP, no_params, &holds_release_handler},
    {"POST", "/v1/holds/*/commit", ROLE_SHOP, no_params, &holds_commit_handler},
    {"POST", "/v1/holds/*/extend", ROLE_SHOP, no_params, &holds_extend_handler},
    {"GET", "/v1/policy", ROLE_ADMIN, no_params, &defenses_get_handler},
    {"PUT", "/v1/policy", ROLE_ADMIN, no_params, &defenses_put_handler},
    {"POST", "/v1/skus/*/waitlist", ROLE_SHOP, no_params, &waitlists_join_handler},
    {"GET", "/v1/waitlist/*", ROLE_SHOP, no_params, &waitlists_get_handler},
    {"DELETE", "/v1/waitlist/*", ROLE_SHOP, no_params, &waitlists_cancel_handler},
    {"GET", "/v1/identities/top", ROLE_ADMIN, top_params, &identities_top_handler},
    /* '+' takes the rest up to the literal suffix: an IP prefix has a '/' */
    {"POST", "/v1/identities/*/+/revoke", ROLE_ADMIN, no_params, &identities_revoke_handler},
    {"GET", "/v1/events", ROLE_SHOP, event_params, &events_stream_handler},
    {"POST", "/v1/sim", ROLE_ADMIN, no_params, &simrun_start_handler},
    {"GET", "/v1/sim", ROLE_ADMIN, no_params, &simrun_get_handler},
    {"DELETE", "/v1/sim", ROLE_ADMIN, no_params, &simrun_stop_handler},
    {"GET", "/v1/audit", ROLE_ADMIN, page_params, &observe_audit_handler},
    {"GET", "/v1/history", ROLE_ADMIN, history_params, &chart_history_handler},
    /* the web pages: public; what they show comes from the API above */
    {"GET", "/", ROLE_NONE, NULL, &static_pages_handler},
    {"GET", "/admin", ROLE_NONE, NULL, &static_pages_handler},
    {"GET", "/shop/*", ROLE_NONE, NULL, &static_pages_handler},
    {"GET", "/admin/*", ROLE_NONE, NULL, &static_pages_handler},
    {"GET", "/pow/*", ROLE_NONE, NULL, &static_pages_handler},
    {"GET", "/vendor/uplot/*", ROLE_NONE, NULL, &static_pages_handler},
};
#define ROUTE_COUNT (sizeof routes / sizeof routes[0])
_Static_assert(ROUTE_COUNT <= SERVER_ROUTE_COUNT_MAX, "metrics has room for every route");

/* The labels, in the table's order (server_state.h's route_patterns). */
static const char *patterns[ROUTE_COUNT];
static const char *methods[ROUTE_COUNT];
static pthread_once_t labels_once = PTHREAD_ONCE_INIT;

static void make_labels(void)
{
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        patterns[i] = routes[i].pattern;
        methods[i] = routes[i].method;
    }
}

const char *const *router_patterns(int *count)
{
    pthread_once(&labels_once, make_labels);
    *count = (int)ROUTE_COUNT;
    return patterns;
}

const char *const *router_methods(void)
{
    pthread_once(&labels_once, make_labels);
    return methods;
}

/* Matches url against a pattern, capturing the '*' segments. */
static bool path_matches(const char *pattern, const char *url, route_args_t *a)
{
    int captured = 0;
    while (*pattern != '\0') {
        if (*pattern == '+') {
            /* The rest of the pattern is a literal suffix of the url. */
            size_t rest = strlen(pattern + 1), left = strlen(url);
            if (left <= rest || captured == 2 || strcmp(url + left - rest, pattern + 1) != 0) {
                return false;
            }
            a->value[captured] = url;
            a->len[captured++] = left - rest;
            return true;
        }
        if (*pattern == '*') {
            size_t n = strcspn(url, "/");
            if (n == 0 || captured == 2) {
                return false;
            }
            a->value[captured] = url;
            a->len[captured++] = n;
            url += n;
            pattern++;
        } else if (*pattern++ != *url++) {
            return false;
        }
    }
    return *url == '\0';
}

/* The key's role, compared in constant time against every configured key;
 * *slot is the matching key's index in server_t.key_ids (-1: none). */
static role_t role_of(const server_config_t *c, const char *header, int *slot)
{
    *slot = -1;
    if (header == NULL || strncmp(header, "Bearer ", 7) != 0) {
        return ROLE_NONE;
    }
    const char *key = header + 7;
    size_t len = strnlen(key, SERVER_KEY_BYTES_MAX);
    role_t role = ROLE_NONE;
    /* Every key is compared in full, whatever matches first; the time taken
     * depends on the configured keys' lengths, never on how much of one the
     * client guessed right. */
    for (uint32_t i = 0; i <= c->api_key_count; i++) {
        const char *k = i < c->api_key_count ? c->api_keys[i] : c->admin_key;
        size_t klen = strlen(k);
        unsigned diff = (unsigned)(klen != len) | (klen == 0);
        for (size_t b = 0; b < klen; b++) {
            diff |= (unsigned)(unsigned char)k[b] ^ (unsigned char)(b < len ? key[b] : 0);
        }
        if (diff == 0) {
            role = i < c->api_key_count ? (role == ROLE_ADMIN ? ROLE_ADMIN : ROLE_SHOP)
                                        : ROLE_ADMIN;
            *slot = (int)i;
        }
    }
    return role;
}

bool router_for_operator(request_t *r, const char *url)
{
    if (strcmp(url, "/healthz") == 0 || strcmp(url, "/metrics") == 0) {
        return true;
    }
    const server_config_t *c = &r->server->config;
    if (c->admin_key[0] == '\0') {
        return false; /* no keys: nobody is known to be the operator */
    }
    const char *auth = request_value(r, MHD_HEADER_KIND, "Authorization");
    return role_of(c, auth, &r->key_slot) == ROLE_ADMIN;
}

typedef struct {
    const char *const *allowed;
    const char *unknown; /* the first argument not allowed, or NULL */
} arg_check_t;

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    arg_check_t *c = cls;
    (void)kind;
    (void)value;
    if (request_field_allowed(key, c->allowed)) {
        return MHD_YES;
    }
    c->unknown = key;
    return MHD_NO;
}

/* Refuses a query parameter the route does not take; false after the 400. */
static bool params_known(request_t *r, const char *const *allowed)
{
    arg_check_t c = {.allowed = allowed, .unknown = NULL};
    if (allowed == NULL) {
        return true;
    }
    if (r->lookup == NULL) {
        MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, check_arg, &c);
    }
    for (uint32_t i = 0; r->lookup != NULL && r->arg_name != NULL && c.unknown == NULL; i++) {
        const char *key = r->arg_name(r->lookup_ctx, i);
        if (key == NULL) {
            break;
        }
        check_arg(&c, MHD_GET_ARGUMENT_KIND, key, NULL);
    }
    if (c.unknown == NULL) {
        return true;
    }
    char field[QUERY_NAME_SHOWN_BYTES_MAX + 1], takes[80] = "", message[300];
    snprintf(field, sizeof field, "%s", c.unknown);
    for (size_t i = 0; allowed[i] != NULL; i++) {
        size_t n = strlen(takes);
        snprintf(takes + n, sizeof takes - n, "%s%s", i > 0 ? ", " : "", allowed[i]);
    }
    snprintf(message, sizeof message, "unknown query parameter \"%s\" (this route takes %s)",
             field, takes[0] != '\0' ? takes : "none");
    request_error_field(r, API_ERR_UNKNOWN_FIELD, field, message);
    return false;
}

static bool authorised(request_t *r, role_t needed)
{
    const server_config_t *c = &r->server->config;
    if (c->api_key_count == 0 && c->admin_key[0] == '\0') {
        r->role = ROLE_ADMIN; /* no keys: loopback only, and everything is allowed */
        return true;
    }
    const char *auth = request_value(r, MHD_HEADER_KIND, "Authorization");
    role_t role = role_of(c, auth, &r->key_slot);
    r->role = role;
    if (needed == ROLE_NONE) {
        return true;
    }
    if (role == ROLE_NONE) {
        request_error(r, API_ERR_UNAUTHORIZED, "send Authorization: Bearer KEY");
        return false;
    }
    if (needed == ROLE_ADMIN && role != ROLE_ADMIN) {
        request_error(r, API_ERR_FORBIDDEN, "this needs the admin key");
        return false;
    }
    return true;
}

/* The checks every route shares, then its handler: parse without the lock,
 * the rest through the pipeline. */
static void dispatch(request_t *r, const route_t *route, const route_args_t *a)
{
    if (!authorised(r, route->role)) {
        return;
    }
    if (r->body_too_large) {
        request_error(r, API_ERR_BODY_TOO_LARGE, "the body is over 65536 bytes");
        return;
    }
    if (!params_known(r, route->params)) {
        return; /* the 400 is written */
    }
    const handler_t *h = route->handler;
    assert(h->parse != NULL || h->reply != NULL); /* one of them answers */
    if (h != &ops_healthz_handler && store_failed(&r->server->store)) {
        if (store_pg_failed(&r->server->store)) { /* the node ends in a moment */
            request_error(r, API_ERR_NOT_OWNER,
                          "this node's journal failed and it is giving the shop up; retry");
        } else {
            request_error(r, API_ERR_STORAGE_UNAVAILABLE, "the journal cannot be written");
        }
        return;
    }
    _Alignas(max_align_t) unsigned char args[REQUEST_ARGS_BYTES_MAX];
    if ((h->parse != NULL && !h->parse(r, a, args)) || h->reply == NULL) {
        return;
    }
    if (pipeline_run(r, args, h->run, h->reply) && h->finish != NULL) {
        h->finish(r, args);
    }
}

/* /v1/shops/{shop}/REST is /v1/REST, for the shop this server serves
 * (its --shop; "default" when it is no cluster's node). */
#define SHOP_PATH_BYTES_MAX 2048

/* Another shop's path: a cluster's node sends it to that shop's owner if
 * its lease is live (the same path; a shop lives in one process per
 * node, and the owner answers there), asks for a retry while it looks the
 * shop up, else answers 404, naming this shop. */
static void other_shop(request_t *r, const char *url, const char *name, size_t n,
                       const char *own)
{
    char owner[256], msg[96];
    store_shop_t where = store_shop_owner(&r->server->store, name, n, owner, sizeof owner);
    if (where == STORE_SHOP_AT &&
        request_redirect(r, API_ERR_SHOP_ELSEWHERE, owner, url,
                         "another node serves that shop: follow Location")) {
        return;
    }
    if (where == STORE_SHOP_LOOKING) {
        request_error(r, API_ERR_NOT_OWNER,
                      "looking up which node serves that shop; retry in a moment");
        r->retry_after = true;
        return;
    }
    snprintf(msg, sizeof msg, "this server serves shop \"%s\" only", own);
    request_error(r, API_ERR_NOT_FOUND, msg);
}

/* The path to route: url, or its /v1/REST in buf; NULL when url names
 * another shop (answered). */
static const char *shop_path(request_t *r, const char *url, char *buf, size_t size)
{
    static const char prefix[] = "/v1/shops/";
    if (strncmp(url, prefix, sizeof prefix - 1) != 0) {
        return url;
    }
    const char *name = url + sizeof prefix - 1;
    size_t n = strcspn(name, "/");
    const char *own = r->server->config.shop[0] != '\0' ? r->server->config.shop : "default";
    if (n != strlen(own) || strncmp(name, own, n) != 0) {
        other_shop(r, url, name, n, own);
        return NULL;
    }
    if (snprintf(buf, size, "/v1%s", name + n) >= (int)size) {
        request_error(r, API_ERR_NOT_FOUND, "no such route");
        return NULL;
    }
    return buf;
}

void router_handle(request_t *r, const char *method, const char *url)
{
    route_args_t a;
    char path[SHOP_PATH_BYTES_MAX];
    r->route = -1;
    r->key_slot = -1;
    url = shop_path(r, url, path, sizeof path);
    if (url == NULL) {
        return;
    }
    r->url = url;
    r->allow[0] = '\0';
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        memset(&a, 0, sizeof a);
        if (!path_matches(routes[i].pattern, url, &a)) {
            continue;
        }
        if (strcmp(routes[i].method, method) != 0) {
            size_t n = strlen(r->allow);
            snprintf(r->allow + n, sizeof r->allow - n, "%s%s", n ? ", " : "", routes[i].method);
            continue;
        }
        r->route = (int)i;
        dispatch(r, &routes[i], &a);
        return;
    }
    if (r->allow[0] != '\0') {
        request_error(r, API_ERR_METHOD_NOT_ALLOWED, "this path does not take that method");
    } else {
        request_error(r, API_ERR_NOT_FOUND, "no such route");
    }
}
