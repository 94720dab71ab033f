/*
 * live.c - the simulation's shop as a running server (see live.h): each
 * guard question a request, each reply a guard_outcome_t.
 *
 * The server's hold and waitlist ids are opaque text, and touching a hold
 * (or entry) takes the secret handed out once, in the reply that made it.
 * The agents keep a handle instead, where an in-process run keeps the
 * engine's ids; refs_* below turn a handle back into the id and the secret.
 */
#include "live.h"

#include <assert.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_client.h"
#include "policy_json.h"
#include "pow.h"

/* Challenges solved and not yet sent again: a ring (an agent waits for its
 * proof at most a few scenario minutes, a handful of real seconds). */
#define LIVE_PROOFS_MAX 4096
#define LIVE_BODY_BYTES_MAX 768
#define LIVE_TAG_BYTES_MAX 12
/* The hardest proof a live run solves: about 2 s of one core in C. A run
 * is bounded in time; a harder challenge is refused, as a browser would
 * give up. */
#define LIVE_BITS_MAX 24
/* The share of a run's wall time the hoarders' proofs may take. A
 * hoarder's tab needs about 2^bits / 85,000 s a proof; solving it here in C
 * is ~100 times faster, but the scenario runs thousands of times faster
 * than life, so paying every proof a day of hoarding buys would stall the
 * run. Past this share a hoarder is out of CPU, as it would be on its own
 * machine; genuine buyers' proofs (cheap) are always solved. */
#define LIVE_HOARDER_PROOF_SHARE 0.25

typedef struct {
    uint32_t tag; /* 0: free */
    char header[48 + POW_PREFIX_BYTES_MAX + POW_NONCE_BYTES_MAX];
    char body[LIVE_BODY_BYTES_MAX];
} live_proof_t;

/* Holds (and waitlist entries) this run made, by handle: a ring, so a
 * handle is good until this many newer ones were made. A run's holds live
 * a few real seconds at most (its clock is compressed); this many is tens
 * of seconds of a run's fastest creating. An older handle fails as an
 * unknown hold would, and is counted. */
#define LIVE_REFS_MAX 65536
/* The longest id and secret kept; holdfast's are 16 and 25 bytes. */
#define LIVE_REF_TEXT_MAX 31

typedef struct {
    uint64_t handle; /* 0: free */
    char id[LIVE_REF_TEXT_MAX + 1];
    char secret[LIVE_REF_TEXT_MAX + 1]; /* "": none was given */
    uint64_t offer; /* a waitlist entry's: the handle of its offered hold, 0: none */
} live_ref_t;

typedef struct {
    live_ref_t *ring;
    uint64_t made;
} live_refs_t;

struct live {
    http_client_t http;
    char tag[LIVE_TAG_BYTES_MAX];
    uint32_t sku_count;
    char skus[SIM_SKUS_MAX][HF_SKU_BYTES_MAX + 1];
    engine_sku_view_t views[SIM_SKUS_MAX];
    int64_t sold_at_start[SIM_SKUS_MAX];
    policy_config_t shop_policy, sku_policies[SIM_SKUS_MAX];
    /* the last challenged request */
    bool challenged;
    char challenge_body[LIVE_BODY_BYTES_MAX];
    char challenge_prefix[POW_PREFIX_BYTES_MAX + 1];
    uint32_t challenge_bits;
    live_proof_t *proofs;
    uint32_t proof_seq;
    live_refs_t holds, waits;
    struct timespec opened;
    uint64_t requests_max;
    double hoarder_proof_s;
    live_stats_t stats;
};

/* ------------------------------------------------------------- requests */

/* One exchange; the reply's JSON (a new reference) or NULL, with the status
 * in *status (0: no reply). */
static json_t *call(live_t *l, const char *method, const char *path, const char *header,
                    const char *body, int *status)
{
    http_reply_t reply;
    char err[160];
    *status = 0;
    if (l->stats.requests >= l->requests_max) {
        return NULL; /* the run's budget is spent: nothing more is sent */
    }
    l->stats.requests++;
    if (http_request(&l->http, method, path, header, body, body ? strlen(body) : 0, &reply, err,
                     sizeof err) != 0) {
        l->stats.failed++;
        snprintf(l->stats.last_error, sizeof l->stats.last_error, "%s", err);
        return NULL;
    }
    *status = reply.status;
    l->stats.status[reply.status / 100]++;
    json_t *doc = json_loadb(reply.body, reply.body_len, 0, NULL);
    if (doc == NULL) {
        l->stats.failed++;
        snprintf(l->stats.last_error, sizeof l->stats.last_error,
                 "%s %s: %d with a body that is not JSON", method, path, reply.status);
    }
    return doc;
}

static int64_t int_at(const json_t *o, const char *key, int64_t otherwise)
{
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : otherwise;
}

static const char *str_at(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* A reply the agents have no answer for. A refusal (409, 410, 428, 429...)
 * is an answer: the agent gives up that step. A 400 or 404 says the run
 * sent what it should not, and a 5xx that the server could not answer:
 * those are failures, counted and shown at the end. */
static guard_outcome_t unexpected(live_t *l, int status, const json_t *doc, const char *what)
{
    bool failure = status == 400 || status == 404 || status >= 500;
    if (failure && doc != NULL) { /* call() counted the others */
        l->stats.failed++;
        snprintf(l->stats.last_error, sizeof l->stats.last_error, "%s: %d %s", what, status,
                 str_at(json_object_get(doc, "error"), "code"));
    }
    return (guard_outcome_t){.result = GUARD_ENGINE,
                             .engine = {.result = status == 503 ? ENGINE_HOLDS_FULL
                                                                : ENGINE_HOLD_NOT_FOUND}};
}

/* --------------------------------------------------------------- catalog */

static bool sku_name_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= HF_SKU_BYTES_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") == n;
}

static void read_view(const json_t *o, engine_sku_view_t *v)
{
    v->stock = int_at(o, "stock", 0);
    v->held = int_at(o, "held", 0);
    v->sold = int_at(o, "sold", 0);
    v->available = int_at(o, "available", 0);
}

/* The shop's settings overlaid with the sku's own ("policy", if any). */
static void read_sku_policy(live_t *l, uint32_t k, const json_t *o)
{
    l->sku_policies[k] = l->shop_policy;
    const json_t *own = json_object_get(o, "policy");
    policy_config_t c = l->shop_policy;
    uint64_t mask;
    policy_json_error_t e;
    if (json_is_object(own) && policy_json_read(own, policy_mask_sku(), &c, &mask, &e)) {
        l->sku_policies[k] = c;
    }
}

static int64_t price_for(const sim_scenario_t *s, const char *sku)
{
    int64_t total = 0;
    for (uint32_t i = 0; i < s->sku_count; i++) {
        if (strcmp(s->skus[i].sku, sku) == 0) {
            return s->skus[i].price_cents;
        }
        total += s->skus[i].price_cents;
    }
    return s->sku_count > 0 ? total / s->sku_count : 0;
}

/* The first page of the catalog: its skus with units on sale become the
 * run's (a refresh later reads the same page and matches by name). */
static int read_catalog(live_t *l, sim_scenario_t *s, char *err, size_t err_size)
{
    int status;
    json_t *doc = call(l, "GET", "/v1/skus?limit=1000", NULL, NULL, &status);
    const json_t *list = json_object_get(doc, "skus");
    if (status != 200 || !json_is_array(list)) {
        snprintf(err, err_size, "GET /v1/skus: %s",
                 status == 0 ? l->stats.last_error : "no catalog in the reply");
        json_decref(doc);
        return -1;
    }
    sim_scenario_t scenario = *s;
    size_t i;
    const json_t *o;
    json_array_foreach(list, i, o) {
        const char *name = str_at(o, "sku");
        if (l->sku_count == SIM_SKUS_MAX || !sku_name_ok(name) || int_at(o, "available", 0) < 1) {
            continue;
        }
        uint32_t k = l->sku_count++;
        snprintf(l->skus[k], sizeof l->skus[k], "%s", name);
        read_view(o, &l->views[k]);
        l->sold_at_start[k] = l->views[k].sold;
        read_sku_policy(l, k, o);
        sim_sku_t *mine = &s->skus[k];
        snprintf(mine->sku, sizeof mine->sku, "%s", name);
        mine->stock = l->views[k].available;
        mine->price_cents = price_for(&scenario, name);
    }
    json_decref(doc);
    s->sku_count = l->sku_count;
    if (l->sku_count == 0) {
        snprintf(err, err_size, "the server has nothing on sale (no sku with units available)");
        return -1;
    }
    return 0;
}

static void read_policy(live_t *l, bool *policy_read)
{
    int status;
    json_t *doc = call(l, "GET", "/v1/policy", NULL, NULL, &status);
    policy_config_t c = policy_config_default();
    uint64_t mask;
    policy_json_error_t e;
    *policy_read = status == 200 && policy_json_read(doc, POLICY_MASK_ALL, &c, &mask, &e);
    l->shop_policy = *policy_read ? c : policy_config_default();
    json_decref(doc);
}

static void live_free(live_t *l)
{
    if (l != NULL) {
        free(l->proofs);
        free(l->holds.ring);
        free(l->waits.ring);
        free(l);
    }
}

live_t *live_open(const char *url, const char *key, uint64_t requests_max, uint64_t run_tag,
                  sim_scenario_t *s, policy_config_t *policy, bool *policy_read, char *err,
                  size_t err_size)
{
    live_t *l = calloc(1, sizeof *l);
    if (l == NULL || (l->proofs = calloc(LIVE_PROOFS_MAX, sizeof *l->proofs)) == NULL ||
        (l->holds.ring = calloc(LIVE_REFS_MAX, sizeof(live_ref_t))) == NULL ||
        (l->waits.ring = calloc(LIVE_REFS_MAX, sizeof(live_ref_t))) == NULL) {
        live_free(l);
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    if (http_client_init(&l->http, url, key, err, err_size) != 0) {
        live_free(l);
        return NULL;
    }
    l->requests_max = requests_max;
    snprintf(l->tag, sizeof l->tag, "r%llx", (unsigned long long)(run_tag & 0xffffffffull));
    clock_gettime(CLOCK_MONOTONIC, &l->opened);
    read_policy(l, policy_read);
    if (read_catalog(l, s, err, err_size) != 0) {
        live_close(l);
        return NULL;
    }
    *policy = l->shop_policy;
    return l;
}

void live_close(live_t *l)
{
    if (l != NULL) {
        http_client_deinit(&l->http);
        live_free(l);
    }
}

int live_refresh(live_t *l, int64_t *sold_since_start)
{
    int status;
    json_t *doc = call(l, "GET", "/v1/skus?limit=1000", NULL, NULL, &status);
    const json_t *list = json_object_get(doc, "skus");
    int rc = status == 200 && json_is_array(list) ? 0 : -1;
    size_t i;
    const json_t *o;
    json_array_foreach(list, i, o) {
        const char *name = str_at(o, "sku");
        for (uint32_t k = 0; k < l->sku_count; k++) {
            if (strcmp(l->skus[k], name) == 0) {
                read_view(o, &l->views[k]);
                break;
            }
        }
    }
    json_decref(doc);
    *sold_since_start = 0;
    for (uint32_t k = 0; k < l->sku_count; k++) {
        *sold_since_start += l->views[k].sold - l->sold_at_start[k];
    }
    return rc;
}

engine_sku_view_t live_sku_view(const live_t *l, uint32_t sku)
{
    assert(sku < l->sku_count);
    engine_sku_view_t v = l->views[sku];
    v.sku = l->skus[sku];
    v.sku_len = (uint8_t)strlen(l->skus[sku]);
    return v;
}

void live_note_expired(live_t *l, uint32_t sku, uint32_t qty)
{
    assert(sku < l->sku_count);
    engine_sku_view_t *v = &l->views[sku];
    int64_t back = qty < v->held ? qty : v->held;
    v->held -= back;
    v->available += back;
}

const policy_config_t *live_sku_policy(const live_t *l, uint32_t sku)
{
    assert(sku < l->sku_count);
    return &l->sku_policies[sku];
}

const live_stats_t *live_stats(const live_t *l)
{
    return &l->stats;
}

/* ------------------------------------------------------------------ refs */

/* A new handle for the id and secret of a reply (a hold, or an entry);
 * 0, counted as a failure, if the reply has no id that fits. */
static uint64_t refs_add(live_t *l, live_refs_t *refs, const json_t *obj, const char *what)
{
    const char *id = str_at(obj, "id"), *secret = str_at(obj, "secret");
    if (id[0] == '\0' || strlen(id) > LIVE_REF_TEXT_MAX || strlen(secret) > LIVE_REF_TEXT_MAX) {
        l->stats.failed++;
        snprintf(l->stats.last_error, sizeof l->stats.last_error, "%s: no id that fits", what);
        return 0;
    }
    uint64_t handle = ++refs->made;
    live_ref_t *ref = &refs->ring[handle % LIVE_REFS_MAX];
    *ref = (live_ref_t){.handle = handle};
    snprintf(ref->id, sizeof ref->id, "%s", id);
    snprintf(ref->secret, sizeof ref->secret, "%s", secret);
    return handle;
}

/* The ref of a handle, or NULL (counted) if the ring has moved past it. */
static live_ref_t *refs_get(live_t *l, live_refs_t *refs, uint64_t handle, const char *what)
{
    live_ref_t *ref = &refs->ring[handle % LIVE_REFS_MAX];
    if (handle != 0 && ref->handle == handle) {
        return ref;
    }
    l->stats.failed++;
    snprintf(l->stats.last_error, sizeof l->stats.last_error,
             "%s: %u newer ones were made since, it is forgotten", what, LIVE_REFS_MAX);
    return NULL;
}

/* The header that shows the run owns what ref names (NULL if it has no secret). */
static const char *owner_header(const live_ref_t *ref, const char *name, char *out, size_t size)
{
    if (ref->secret[0] == '\0') {
        return NULL;
    }
    snprintf(out, size, "%s: %s", name, ref->secret);
    return out;
}

/* ----------------------------------------------------------------- holds */

/* The request's JSON. The names the simulation makes are plain ASCII and
 * the skus passed sku_name_ok(), so nothing here needs escaping. */
/* `{"customer": ..., "ip": ..., "fingerprint": ...`, the names a hold and
 * a waitlist join both carry (customer and fingerprint with the run tag);
 * returns the length written. */
static int names_json(const live_t *l, char *out, size_t size, const char *customer,
                      size_t customer_len, const char *ip, size_t ip_len,
                      const char *fingerprint, size_t fingerprint_len)
{
    int n = snprintf(out, size, "{\"customer\": \"%s-%.*s\"", l->tag, (int)customer_len,
                     customer);
    if (ip_len > 0) {
        n += snprintf(out + n, size - (size_t)n, ", \"ip\": \"%.*s\"", (int)ip_len, ip);
    }
    if (fingerprint_len > 0) {
        n += snprintf(out + n, size - (size_t)n, ", \"fingerprint\": \"%s-%.*s\"", l->tag,
                      (int)fingerprint_len, fingerprint);
    }
    assert(n > 0 && (size_t)n < size);
    return n;
}

static void hold_body(const live_t *l, const guard_hold_request_t *req, char *out, size_t size)
{
    const engine_hold_create_t *c = &req->create;
    assert(c->line_count == 1);
    int n = names_json(l, out, size, c->customer, c->customer_len, c->ip, c->ip_len,
                       c->fingerprint, c->fingerprint_len);
    if (c->ttl_ms > 0) {
        n += snprintf(out + n, size - (size_t)n, ", \"ttl_ms\": %lld", (long long)c->ttl_ms);
    }
    n += snprintf(out + n, size - (size_t)n, ", \"lines\": [{\"sku\": \"%.*s\", \"qty\": %u}]%s}",
                  c->lines[0].sku_len, c->lines[0].sku, c->lines[0].qty,
                  req->buy_now ? ", \"commit\": true" : "");
    assert(n > 0 && (size_t)n < size);
}

static policy_rule_t rule_named(const char *name)
{
    for (int r = 0; r < POLICY_RULE_COUNT; r++) {
        if (strcmp(policy_rule_name((policy_rule_t)r), name) == 0) {
            return (policy_rule_t)r;
        }
    }
    return POLICY_RULE_NONE;
}

/* A 428: the challenge kept for live_take_challenge(). */
static guard_outcome_t challenged(live_t *l, const json_t *error, const char *body)
{
    const json_t *ch = json_object_get(error, "challenge");
    const char *prefix = str_at(ch, "prefix");
    int64_t bits = int_at(ch, "bits", -1);
    l->challenged = strlen(prefix) <= POW_PREFIX_BYTES_MAX && bits >= 0 && bits <= POW_BITS_MAX;
    if (l->challenged) {
        snprintf(l->challenge_prefix, sizeof l->challenge_prefix, "%s", prefix);
        snprintf(l->challenge_body, sizeof l->challenge_body, "%s", body);
        l->challenge_bits = (uint32_t)bits;
    }
    guard_outcome_t o = {.result = GUARD_CHALLENGED};
    o.decision.rule = rule_named(str_at(error, "rule"));
    o.decision.bits = l->challenged ? (uint32_t)bits : 0;
    return o;
}

/* Keeps the sku's totals as this run changed them until the next refresh
 * (other clients' changes show then). The sku is the reply's: a request
 * sent again with a proof is the one challenged, not the agent's latest. */
static void note_hold(live_t *l, const json_t *doc, const guard_outcome_t *o, uint32_t qty,
                      bool buy_now)
{
    const char *sku = o->result == GUARD_OK
                          ? str_at(json_array_get(json_object_get(doc, "lines"), 0), "sku")
                          : str_at(json_object_get(doc, "error"), "sku");
    for (uint32_t k = 0; k < l->sku_count; k++) {
        if (strcmp(l->skus[k], sku) != 0) {
            continue;
        }
        engine_sku_view_t *v = &l->views[k];
        if (o->result == GUARD_OK) {
            v->available -= qty;
            *(buy_now ? &v->sold : &v->held) += qty;
        } else if (o->result == GUARD_ENGINE && o->engine.result == ENGINE_INSUFFICIENT_STOCK) {
            v->available = o->engine.available;
        }
        return;
    }
}

static guard_outcome_t hold_reply(live_t *l, int status, const json_t *doc, const char *body,
                                  uint32_t *qty_out, int64_t *expires_in_ms_out)
{
    const json_t *error = json_object_get(doc, "error");
    const char *code = str_at(error, "code");
    if (status == 201) {
        const json_t *lines = json_object_get(doc, "lines");
        guard_outcome_t o = {.result = GUARD_OK};
        o.engine.hold_id = refs_add(l, &l->holds, doc, "POST /v1/holds");
        if (o.engine.hold_id == 0) {
            return (guard_outcome_t){.result = GUARD_ENGINE,
                                     .engine = {.result = ENGINE_HOLD_NOT_FOUND}};
        }
        *qty_out = (uint32_t)int_at(json_array_get(lines, 0), "qty", 0);
        *expires_in_ms_out = int_at(doc, "expires_in_ms", 0);
        return o;
    }
    if (status == 428 && strcmp(code, "challenge_required") == 0) {
        return challenged(l, error, body);
    }
    if (status == 429 && strcmp(code, "policy_denied") == 0) {
        guard_outcome_t o = {.result = GUARD_DENIED};
        o.decision.rule = rule_named(str_at(error, "rule"));
        o.decision.limit = int_at(error, "limit", 0);
        o.decision.current = int_at(error, "current", 0);
        o.decision.retry_after_ms = int_at(error, "retry_after_ms", -1);
        return o;
    }
    if (status == 409 && strcmp(code, "insufficient_stock") == 0) {
        return (guard_outcome_t){.result = GUARD_ENGINE,
                                 .engine = {.result = ENGINE_INSUFFICIENT_STOCK,
                                            .available = int_at(error, "available", 0)}};
    }
    return unexpected(l, status, doc, "POST /v1/holds");
}

/* The proof kept under tag, or NULL if the ring has moved past it. */
static live_proof_t *proof_for(live_t *l, uint64_t tag)
{
    live_proof_t *p = &l->proofs[tag % LIVE_PROOFS_MAX];
    return tag != 0 && p->tag == tag ? p : NULL;
}

guard_outcome_t live_hold(live_t *l, const guard_hold_request_t *req, uint32_t *qty_out,
                          int64_t *expires_in_ms_out)
{
    char body[LIVE_BODY_BYTES_MAX];
    const char *header = NULL;
    live_proof_t *proof = proof_for(l, req->proof_tag);
    if (proof != NULL) {
        snprintf(body, sizeof body, "%s", proof->body); /* the same request, now with a proof */
        header = proof->header;
        proof->tag = 0;
    } else {
        hold_body(l, req, body, sizeof body);
    }
    l->challenged = false;
    int status;
    json_t *doc = call(l, "POST", "/v1/holds", header, body, &status);
    *qty_out = 0;
    guard_outcome_t o = hold_reply(l, status, doc, body, qty_out, expires_in_ms_out);
    note_hold(l, doc, &o, *qty_out, strstr(body, "\"commit\": true") != NULL);
    json_decref(doc);
    return o;
}

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

uint32_t live_take_challenge(live_t *l, bool hoarder)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool affordable =
        !hoarder || l->hoarder_proof_s <= LIVE_HOARDER_PROOF_SHARE * seconds_between(&l->opened, &t0);
    if (!l->challenged || l->challenge_bits > LIVE_BITS_MAX || !affordable) {
        l->challenged = false;
        return 0;
    }
    l->challenged = false;
    char nonce[POW_NONCE_BYTES_MAX + 1];
    uint64_t tries;
    bool solved = pow_solve(l->challenge_prefix, strlen(l->challenge_prefix),
                            l->challenge_bits, 1ull << (l->challenge_bits + 8), nonce, &tries);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    l->stats.proof_wall_s += seconds_between(&t0, &t1);
    l->hoarder_proof_s += hoarder ? seconds_between(&t0, &t1) : 0;
    if (!solved) {
        return 0;
    }
    l->stats.proofs_solved++;
    uint32_t tag = ++l->proof_seq;
    if (tag == 0) {
        tag = ++l->proof_seq; /* 0 means none */
    }
    live_proof_t *p = &l->proofs[tag % LIVE_PROOFS_MAX];
    p->tag = tag;
    snprintf(p->header, sizeof p->header, "Holdfast-Proof: %s:%s", l->challenge_prefix, nonce);
    snprintf(p->body, sizeof p->body, "%s", l->challenge_body);
    return tag;
}

guard_outcome_t live_hold_op(live_t *l, engine_op_kind_t kind, uint64_t hold_id)
{
    char path[96], header[LIVE_REF_TEXT_MAX + 32];
    bool commit = kind == ENGINE_OP_HOLD_COMMIT;
    assert(commit || kind == ENGINE_OP_HOLD_RELEASE);
    const live_ref_t *ref = refs_get(l, &l->holds, hold_id, commit ? "commit" : "release");
    if (ref == NULL) {
        return (guard_outcome_t){.result = GUARD_ENGINE,
                                 .engine = {.result = ENGINE_HOLD_NOT_FOUND}};
    }
    snprintf(path, sizeof path, commit ? "/v1/holds/%s/commit" : "/v1/holds/%s", ref->id);
    int status;
    json_t *doc = call(l, commit ? "POST" : "DELETE", path,
                       owner_header(ref, "Hold-Secret", header, sizeof header),
                       commit ? "{}" : NULL, &status);
    const char *code = str_at(json_object_get(doc, "error"), "code");
    guard_outcome_t o = {.result = GUARD_OK};
    if (status == 410) {
        o = (guard_outcome_t){.result = GUARD_ENGINE,
                              .engine = {.result = strcmp(code, "hold_released") == 0
                                                       ? ENGINE_HOLD_RELEASED
                                                       : ENGINE_HOLD_EXPIRED}};
    } else if (status != 200) {
        o = unexpected(l, status, doc, commit ? "commit" : "release");
    }
    json_decref(doc);
    return o;
}

/* -------------------------------------------------------------- waitlist */

guard_outcome_t live_wait_join(live_t *l, const guard_op_t *join)
{
    assert(join->kind == GUARD_OP_WAIT_JOIN);
    const __typeof__(join->u.wait_join) *w = &join->u.wait_join;
    char path[128], body[LIVE_BODY_BYTES_MAX];
    snprintf(path, sizeof path, "/v1/skus/%.*s/waitlist", w->sku_len, w->sku);
    int n = names_json(l, body, sizeof body, w->customer, w->customer_len, w->ip, w->ip_len,
                       w->fingerprint, w->fingerprint_len);
    snprintf(body + n, sizeof body - (size_t)n, ", \"qty\": %u}", w->qty);
    int status;
    json_t *doc = call(l, "POST", path, NULL, body, &status);
    const char *code = str_at(json_object_get(doc, "error"), "code");
    guard_outcome_t o = {.result = GUARD_OK};
    if (status == 409 && strcmp(code, "units_available") == 0) {
        o.result = GUARD_WAIT_AVAILABLE;
    } else if (status == 409 && strcmp(code, "waitlist_off") == 0) {
        o.result = GUARD_WAITLIST_OFF;
    } else if (status != 201) {
        o = unexpected(l, status, doc, "waitlist join");
    } else if ((o.id = refs_add(l, &l->waits, doc, "waitlist join")) == 0) {
        o = (guard_outcome_t){.result = GUARD_ENGINE, .engine = {.result = ENGINE_HOLD_NOT_FOUND}};
    }
    json_decref(doc);
    return o;
}

static bool state_named(const char *name, guard_wait_state_t *out)
{
    for (guard_wait_state_t s = GUARD_WAIT_WAITING; s <= GUARD_WAIT_CANCELLED; s++) {
        if (strcmp(guard_wait_state_name(s), name) == 0) {
            *out = s;
            return true;
        }
    }
    return false;
}

/* The handle of an entry's offered hold: the one made at the first look
 * at the offer, or a new one. */
static uint64_t offer_handle(live_t *l, live_ref_t *entry, const json_t *hold)
{
    const char *id = str_at(hold, "id");
    uint64_t known = entry->offer;
    const live_ref_t *ref = &l->holds.ring[known % LIVE_REFS_MAX];
    if (known != 0 && ref->handle == known && strcmp(ref->id, id) == 0) {
        return known;
    }
    entry->offer = refs_add(l, &l->holds, hold, "waitlist offer");
    return entry->offer;
}

bool live_wait_state(live_t *l, uint64_t wait_id, guard_wait_state_t *state, uint64_t *hold_id)
{
    char path[96], header[LIVE_REF_TEXT_MAX + 32];
    *hold_id = 0;
    live_ref_t *entry = refs_get(l, &l->waits, wait_id, "waitlist entry");
    if (entry == NULL) {
        return false;
    }
    snprintf(path, sizeof path, "/v1/waitlist/%s", entry->id);
    int status;
    const char *owner = owner_header(entry, "Waitlist-Secret", header, sizeof header);
    json_t *doc = call(l, "GET", path, owner, NULL, &status);
    bool ok = status == 200 && state_named(str_at(doc, "state"), state);
    if (!ok) {
        unexpected(l, status, doc, "waitlist entry");
    } else if (*state == GUARD_WAIT_OFFERED) {
        *hold_id = offer_handle(l, entry, json_object_get(doc, "hold"));
        ok = *hold_id != 0;
    }
    json_decref(doc);
    return ok;
}
