/*
 * fuzz_http.c - libFuzzer target for the HTTP API: a session of requests in,
 * every reply checked, the shop's state checked after each request.
 *
 *   make fuzz       builds build/fuzz/fuzz_http; then, for a minute:
 *   build/fuzz/fuzz_http -dict=fuzz/http.dict -max_total_time=60 \
 *       build/fuzz/http fuzz/corpus/http
 *
 * (libFuzzer adds what it finds to the first directory, so the seeds in
 * fuzz/corpus/http stay as written.) `make test` replays fuzz/corpus/http
 * through the same checks (replay.c): an input saved there is a test.
 *
 * For a long run add -entropic=0 -rss_limit_mb=0 -malloc_limit_mb=2048
 * -close_fd_mask=2 and ASAN_OPTIONS=quarantine_size_mb=16: on a two-core
 * VM that ran several times as many inputs a second. libFuzzer's RSS
 * thread makes each munmap (a guard per input) interrupt the other core,
 * and entropic scheduling and a 256 MB quarantine cost most of the rest.
 * A crash's check message is then in no log: replay the crash file with
 * the test build's fuzz_http_replay to read it.
 *
 * An input is text, requests separated by a line "~~~":
 *
 *   PUT /v1/skus/cap?x=1           METHOD TARGET (the query is split and
 *   Authorization: Bearer admin-key  %-decoded as the HTTP library does)
 *                                  headers, a blank line, then the body
 *   {"stock": 5}
 *   ~~~
 *   advance 600000                 the clock moves on (ms), the server ticks
 *
 * In a target, {h} is the id of the latest hold the session made (201 from
 * POST /v1/holds, or offered on a waitlist entry shown) and {h0}..{h7} the
 * first eight; {w} and {w0}..{w7} the same for waitlist entries. So a
 * session acts on what it made without guessing opaque ids. A header value
 * {hs}, {hs3}, {ws}... is the secret of the hold or entry the same
 * reference names (Hold-Secret: {hs} with the shop key). The header
 * "Holdfast-Proof: solve" is replaced by a solution of the latest challenge
 * (up to FUZZ_SOLVE_BITS_MAX bits), so proofs get through. The keys are
 * "shop-key" and "admin-key". With FUZZ_HTTP_TRACE set in the environment
 * every request and its reply are printed (to write and read seeds).
 *
 * How it runs. The handlers are called directly (router_handle()) with a
 * request whose headers and query come from the input (request_t.lookup):
 * no libmicrohttpd, no socket, as the HTTP library is not ours to fuzz and
 * without it a request costs microseconds. The server starts once as it
 * does in production (server_start(): recovery, the defenses) but without
 * its network or the journal's commit thread, on a data directory in
 * /dev/shm. Every input then gets a shop of its own, as a new data directory
 * would: a new guard with small tables (so the "full" paths are reached), a
 * fixed challenge secret, and a clock fixed at FUZZ_EPOCH_MS that moves only
 * by "advance" (and by the microseconds a session takes). So no reply
 * depends on an earlier input, and a crash replays from its file. Journaled
 * ops wait in memory, never written; the server restarts after
 * FUZZ_RESTART_RECORDS of them to bound that. Durability itself is tested
 * by tests/api/test_restart.c and `make torture`.
 *
 * Checked after every request; a failed check prints the request and the
 * reply and aborts:
 *   1. the status is one the server declares (SERVER_STATUSES), never 500;
 *   2. the reply is one complete JSON object (valid UTF-8), or the metrics'
 *      text, or a page, or an event stream whose events are JSON;
 *   3. an error has the API's shape {"error": {"code", "message", ...}}, a
 *      code that goes with its status and the members its code promises;
 *   4. a refusal of bad input (400, 401, 403, 405, 413) journaled nothing;
 *   5. every sku object adds up (available = stock - held - sold, nothing
 *      negative, held + sold <= stock) and is what the engine has; every
 *      hold and waitlist entry shown is in the state the guard has it in; a
 *      commit, release or extend that succeeded shows the state it made;
 *   6. an Idempotency-Key that made a hold makes that same hold again;
 *   7. guard_check(): the engine's and the defenses' invariants.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "pow.h"
#include "app.h"
#include "chart.h"
#include "events.h"
#include "metrics.h"
#include "router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A session is short: enough to open every event stream (32) and more. */
#define FUZZ_STEPS_MAX 48
#define FUZZ_HEADERS_MAX 16
#define FUZZ_ARGS_MAX 16
#define FUZZ_TARGET_BYTES_MAX 4096
#define FUZZ_IDS_MAX 8
#define FUZZ_IDEM_MAX 16
/* Two days: past every TTL, retention and window the policy has. */
#define FUZZ_ADVANCE_MS_MAX (2 * 24 * 3600 * 1000LL)
/* 2^12 hashes at most per solved proof: under a millisecond. */
#define FUZZ_SOLVE_BITS_MAX 12
/* About 100 MB of journal records waiting in memory. */
#define FUZZ_RESTART_RECORDS (1u << 20)
/* 2026-11-25T10:00:00Z */
#define FUZZ_EPOCH_MS 1795600800000LL

static const char separator[] = "\n~~~\n";
#define SEPARATOR_LEN (sizeof separator - 1)

/* Small tables: a session of 48 requests fills any of them. */
static const guard_config_t fuzz_tables = {
    .engine = {.skus_max = 16, .holds_max = 64, .idem_keys_max = 16},
    .identities_max = 64,
    .customer_skus_max = 64,
    .waitlist_max = 16,
    .sku_policies_max = 4,
    .proofs_max = 16,
};

typedef struct {
    const char *name, *value;
} pair_t;

/* One request of the input; the strings point into text and args_text. */
typedef struct {
    char *text; /* the block, copied and cut into NUL-terminated pieces */
    const char *method;
    char path[FUZZ_TARGET_BYTES_MAX];
    char query[FUZZ_TARGET_BYTES_MAX]; /* as sent */
    char args_text[FUZZ_TARGET_BYTES_MAX]; /* cut into the arguments */
    pair_t headers[FUZZ_HEADERS_MAX];
    uint32_t header_count;
    pair_t args[FUZZ_ARGS_MAX];
    uint32_t arg_count;
    char *body; /* exactly body_size bytes, so reading past them is caught */
    size_t body_size;
    bool body_too_large;
    char proof[POW_MESSAGE_BYTES_MAX + 1];
} fuzz_request_t;

typedef struct {
    char text[HOLDKEY_ID_TEXT_MAX + 1];
    char secret[HOLDKEY_SECRET_TEXT_MAX + 1]; /* "" if the reply had none */
} id_text_t;

/* What the session saw, for the checks across requests. */
typedef struct {
    server_t *server;
    id_text_t holds[FUZZ_IDS_MAX + 1], waits[FUZZ_IDS_MAX + 1]; /* [FUZZ_IDS_MAX]: latest */
    uint32_t hold_count, wait_count;
    char challenge[POW_PREFIX_BYTES_MAX + 1];
    unsigned challenge_bits;
    struct {
        char key[HF_IDEM_KEY_BYTES_MAX + 1];
        id_text_t hold;
        int64_t advanced_ms; /* when it was made */
    } idem[FUZZ_IDEM_MAX];
    uint32_t idem_count;
    int64_t advanced_ms;
    size_t stream_checked[HF_EVENT_STREAMS_MAX]; /* stream text checked so far */
} session_t;

/* ------------------------------------------------------------------ failing */

_Noreturn static void fail(const fuzz_request_t *q, const request_t *r, const char *what)
{
    fprintf(stderr, "fuzz_http: check failed: %s\n", what);
    if (q != NULL) {
        fprintf(stderr, "  request: %s %s%s%s\n", q->method, q->path, q->query[0] ? "?" : "",
                q->query);
        for (uint32_t i = 0; i < q->header_count; i++) {
            fprintf(stderr, "  %s: %s\n", q->headers[i].name, q->headers[i].value);
        }
        fprintf(stderr, "  body: %.*s\n", (int)q->body_size, q->body ? q->body : "");
    }
    if (r != NULL) {
        fprintf(stderr, "  reply: %d %.*s\n", r->status, (int)r->out.size,
                r->out.data ? r->out.data : "");
    }
    abort();
}

#define CHECK(cond, what)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fail(q, r, what);                                                                      \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------------ parsing */

/* Where the next separator starts, or size if there is none. */
static size_t block_len(const uint8_t *p, size_t size)
{
    for (size_t i = 0; i + SEPARATOR_LEN <= size; i++) {
        if (p[i] == '\n' && memcmp(p + i, separator, SEPARATOR_LEN) == 0) {
            return i;
        }
    }
    return size;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* %XX-decodes s in place (and '+' to a space in a query), as libmicrohttpd
 * does; a decoded NUL ends the string, as it would in the library's. */
static void unescape(char *s, bool query)
{
    char *out = s;
    for (; *s != '\0'; s++) {
        if (*s == '%' && hex_value(s[1]) >= 0 && hex_value(s[2]) >= 0) {
            *out++ = (char)(hex_value(s[1]) * 16 + hex_value(s[2]));
            s += 2;
        } else {
            *out++ = query && *s == '+' ? ' ' : *s;
        }
    }
    *out = '\0';
}

/* Splits q->query into arguments: "k=v" pairs joined by '&'; "k" alone has
 * no value (the library's lookup answers NULL for it, as for no k). */
static void parse_query(fuzz_request_t *q)
{
    snprintf(q->args_text, sizeof q->args_text, "%s", q->query);
    char *p = q->args_text;
    while (*p != '\0' && q->arg_count < FUZZ_ARGS_MAX) {
        char *end = strchr(p, '&');
        char *next = end != NULL ? end + 1 : p + strlen(p);
        if (end != NULL) {
            *end = '\0';
        }
        char *eq = strchr(p, '=');
        if (eq != NULL) {
            *eq = '\0';
            unescape(eq + 1, true);
        }
        unescape(p, true);
        q->args[q->arg_count++] = (pair_t){p, eq != NULL ? eq + 1 : NULL};
        p = next;
    }
}

/* The id a {h}, {h3}, {w} or {w0} names (at *p, just past the '{'), or
 * NULL if it is none of those; advances *p past the '}'. */
static const char *id_reference(const session_t *ss, const char **p)
{
    const char *s = *p;
    const id_text_t *ids = s[0] == 'h' ? ss->holds : s[0] == 'w' ? ss->waits : NULL;
    uint32_t count = s[0] == 'h' ? ss->hold_count : ss->wait_count;
    if (ids == NULL) {
        return NULL;
    }
    uint32_t index = FUZZ_IDS_MAX;
    if (s[1] >= '0' && s[1] < '0' + FUZZ_IDS_MAX && s[2] == '}') {
        index = (uint32_t)(s[1] - '0');
    } else if (s[1] != '}') {
        return NULL;
    }
    *p = s + (index == FUZZ_IDS_MAX ? 2 : 3);
    /* One not made yet is an id no hold has. */
    return count > 0 && (index == FUZZ_IDS_MAX || index < count) ? ids[index].text
                                                                 : (s[0] == 'h' ? "h_0" : "w_0");
}

/* The target with ids filled in, split into q->path (decoded) and q->query. */
static void parse_target(const session_t *ss, const char *target, fuzz_request_t *q)
{
    char expanded[FUZZ_TARGET_BYTES_MAX];
    size_t n = 0;
    for (const char *p = target; *p != '\0' && n + 1 < sizeof expanded;) {
        const char *after = p + 1;
        const char *id = *p == '{' ? id_reference(ss, &after) : NULL;
        if (id == NULL) {
            expanded[n++] = *p++;
            continue;
        }
        p = after;
        size_t len = strlen(id);
        len = n + len + 1 < sizeof expanded ? len : sizeof expanded - n - 1;
        memcpy(expanded + n, id, len);
        n += len;
    }
    expanded[n] = '\0';
    char *question = strchr(expanded, '?');
    if (question != NULL) {
        *question = '\0';
        snprintf(q->query, sizeof q->query, "%s", question + 1);
    }
    snprintf(q->path, sizeof q->path, "%s", expanded);
    unescape(q->path, false);
    parse_query(q);
}

/* Cuts "Name: value" lines into q->headers (lines without a colon are
 * skipped, as junk the library would refuse before any handler ran). */
static void parse_headers(char *lines, fuzz_request_t *q)
{
    for (char *line = lines; line != NULL && q->header_count < FUZZ_HEADERS_MAX;) {
        char *end = strchr(line, '\n');
        char *next = end != NULL ? end + 1 : NULL;
        if (end != NULL) {
            *end = '\0';
        }
        char *colon = strchr(line, ':');
        if (colon != NULL && colon != line) {
            *colon = '\0';
            char *value = colon + 1 + strspn(colon + 1, " \t");
            size_t len = strlen(value);
            while (len > 0 && (value[len - 1] == '\r' || value[len - 1] == ' ')) {
                value[--len] = '\0';
            }
            q->headers[q->header_count++] = (pair_t){line, value};
        }
        line = next;
    }
}

/* A header value "{hs}", "{hs3}", "{ws}" or "{ws0}" becomes the secret of
 * the hold or waitlist entry {h}, {h3}, {w} or {w0} names, so a session
 * with the shop key can act on its own holds. */
static void fill_secrets(const session_t *ss, fuzz_request_t *q)
{
    for (uint32_t i = 0; i < q->header_count; i++) {
        const char *v = q->headers[i].value;
        if (v[0] != '{' || (v[1] != 'h' && v[1] != 'w') || v[2] != 's') {
            continue;
        }
        char ref[8]; /* "h}" or "h3}": the id reference, without the 's' */
        snprintf(ref, sizeof ref, "%c%s", v[1], v + 3);
        const char *at = ref;
        const char *id = id_reference(ss, &at);
        if (id == NULL || *at != '\0') {
            continue;
        }
        const id_text_t *ids = v[1] == 'h' ? ss->holds : ss->waits;
        for (uint32_t k = 0; k <= FUZZ_IDS_MAX; k++) {
            if (ids[k].text == id) {
                q->headers[i].value = ids[k].secret;
            }
        }
    }
}

/* "Holdfast-Proof: solve" becomes a proof of the latest challenge. */
static void solve_proof(const session_t *ss, fuzz_request_t *q)
{
    for (uint32_t i = 0; i < q->header_count; i++) {
        pair_t *h = &q->headers[i];
        if (strcasecmp(h->name, "Holdfast-Proof") != 0 || strcmp(h->value, "solve") != 0 ||
            ss->challenge[0] == '\0' || ss->challenge_bits > FUZZ_SOLVE_BITS_MAX) {
            continue;
        }
        char nonce[POW_NONCE_BYTES_MAX + 1];
        uint64_t tries;
        if (pow_solve(ss->challenge, strlen(ss->challenge), ss->challenge_bits,
                      (uint64_t)1 << (FUZZ_SOLVE_BITS_MAX + 4), nonce, &tries)) {
            snprintf(q->proof, sizeof q->proof, "%s:%s", ss->challenge, nonce);
            h->value = q->proof;
        }
    }
}

/* Parses a request block; false if it has no request line (METHOD TARGET). */
static bool parse_request(const session_t *ss, const uint8_t *data, size_t size,
                          fuzz_request_t *q)
{
    memset(q, 0, sizeof *q);
    q->text = malloc(size + 1);
    if (q->text == NULL) {
        return false;
    }
    memcpy(q->text, data, size);
    q->text[size] = '\0';
    char *blank = strstr(q->text, "\n\n"); /* a NUL before it ends the head */
    if (blank != NULL) {
        size_t head = (size_t)(blank - q->text);
        q->body_size = size - head - 2;
        q->body_too_large = q->body_size > HF_BODY_BYTES_MAX;
        q->body_size = q->body_too_large ? 0 : q->body_size;
        q->body = q->body_size > 0 ? malloc(q->body_size) : NULL;
        if (q->body != NULL) {
            memcpy(q->body, blank + 2, q->body_size);
        }
        q->body_size = q->body != NULL ? q->body_size : 0;
        *blank = '\0';
    }
    char *line_end = strchr(q->text, '\n');
    if (line_end != NULL) {
        *line_end = '\0';
        parse_headers(line_end + 1, q);
    }
    char *space = strchr(q->text, ' ');
    if (space == NULL || space == q->text) {
        return false;
    }
    *space = '\0';
    q->method = q->text;
    space[1 + strcspn(space + 1, "\r ")] = '\0'; /* "GET / HTTP/1.1" works too */
    parse_target(ss, space + 1, q);
    solve_proof(ss, q);
    fill_secrets(ss, q);
    return true;
}

static void request_free(fuzz_request_t *q)
{
    free(q->text);
    free(q->body);
    q->text = NULL;
    q->body = NULL;
}

/* request_t.lookup: the input's headers and query, names in any case. */
static const char *lookup(void *ctx, enum MHD_ValueKind kind, const char *key)
{
    const fuzz_request_t *q = ctx;
    const pair_t *pairs = kind == MHD_HEADER_KIND ? q->headers : q->args;
    uint32_t count = kind == MHD_HEADER_KIND        ? q->header_count
                     : kind == MHD_GET_ARGUMENT_KIND ? q->arg_count
                                                     : 0;
    for (uint32_t i = 0; i < count; i++) {
        if (strcasecmp(pairs[i].name, key) == 0) {
            return pairs[i].value;
        }
    }
    return NULL;
}

/* request_t.arg_name: the input's query arguments, in order. */
static const char *arg_name(void *ctx, uint32_t index)
{
    const fuzz_request_t *q = ctx;
    return index < q->arg_count ? q->args[index].name : NULL;
}

/* ------------------------------------------------------------ reply checks */

static bool status_declared(int status)
{
    static const int statuses[] = {
#define FUZZ_STATUS(code) code,
        SERVER_STATUSES(FUZZ_STATUS)
#undef FUZZ_STATUS
    };
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        if (statuses[i] == status) {
            return true;
        }
    }
    return false;
}

/* The error codes each status may carry (docs/API.md, docs/openapi.yaml). */
static bool code_fits(int status, const char *code)
{
    static const struct {
        int status;
        const char *codes;
    } table[] = {
        {400, " invalid_json invalid_field unknown_field "},
        {401, " unauthorized "},
        {403, " forbidden hold_secret_required hold_secret_wrong waitlist_secret_required "
              "waitlist_secret_wrong "},
        {404, " not_found "},
        {405, " method_not_allowed "},
        {409, " insufficient_stock stock_below_committed hold_committed waitlist_off "
              "wait_finished units_available already_waiting no_loopback sim_running "},
        {410, " hold_expired hold_released "},
        {413, " body_too_large "},
        {422, " idempotency_mismatch "},
        {428, " challenge_required "},
        {429, " policy_denied "},
        {431, " header_too_large "},
        {503, " overloaded storage_unavailable outcome_unknown "},
    };
    char word[64];
    if (strlen(code) + 3 > sizeof word || strspn(code, "abcdefghijklmnopqrstuvwxyz_") !=
                                              strlen(code)) {
        return false;
    }
    snprintf(word, sizeof word, " %s ", code);
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (table[i].status == status) {
            return strstr(table[i].codes, word) != NULL;
        }
    }
    return false;
}

static bool is_text(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0;
}

static void check_error(const fuzz_request_t *q, const request_t *r, const json_t *doc)
{
    const json_t *e = json_object_get(doc, "error");
    CHECK(json_object_size(doc) == 1 && json_is_object(e), "an error is {\"error\": {...}} alone");
    const json_t *code = json_object_get(e, "code");
    CHECK(is_text(code) && is_text(json_object_get(e, "message")),
          "an error has a code and a message");
    const char *c = json_string_value(code);
    CHECK(code_fits(r->status, c), "the error code goes with the status (docs/API.md)");
    if (strcmp(c, "invalid_field") == 0) {
        CHECK(is_text(json_object_get(e, "field")), "an invalid field is named");
    }
    if (strcmp(c, "unknown_field") == 0) { /* the client's own key: "" is one */
        CHECK(json_is_string(json_object_get(e, "field")), "an unknown field is named");
    }
    if (strcmp(c, "insufficient_stock") == 0) {
        const json_t *available = json_object_get(e, "available");
        CHECK(json_is_integer(available) && json_integer_value(available) >= 0,
              "insufficient_stock says what is available");
    }
    if (strcmp(c, "policy_denied") == 0 || strcmp(c, "challenge_required") == 0) {
        CHECK(is_text(json_object_get(e, "rule")), "a policy's refusal names its rule");
    }
    if (strcmp(c, "challenge_required") == 0) {
        const json_t *ch = json_object_get(e, "challenge");
        CHECK(is_text(json_object_get(ch, "prefix")) &&
                  json_is_integer(json_object_get(ch, "bits")),
              "a challenge has a prefix and bits");
    }
}

static int64_t int_member(const json_t *obj, const char *key, bool *ok)
{
    const json_t *v = json_object_get(obj, key);
    *ok = *ok && json_is_integer(v);
    return json_integer_value(v);
}

/* A sku object adds up and is the engine's. */
static void check_sku(const fuzz_request_t *q, const request_t *r, const json_t *o)
{
    bool ok = true;
    int64_t stock = int_member(o, "stock", &ok), held = int_member(o, "held", &ok);
    int64_t sold = int_member(o, "sold", &ok), available = int_member(o, "available", &ok);
    CHECK(ok, "a sku has integer stock, held, sold and available");
    CHECK(held >= 0 && sold >= 0 && held + sold <= stock && stock <= HF_STOCK_MAX &&
              available == stock - held - sold,
          "a sku's counts add up");
    const json_t *name = json_object_get(o, "sku");
    const engine_t *e = guard_engine(r->server->guard);
    uint32_t index;
    CHECK(json_is_string(name) &&
              engine_sku_find(e, json_string_value(name), json_string_length(name), &index),
          "a sku shown is in the engine");
    engine_sku_view_t v;
    engine_sku_view(e, index, &v);
    CHECK(v.stock == stock && v.held == held && v.sold == sold && v.available == available,
          "a sku shows the engine's counts");
}

/* GET /v1/history: columns of count points each, every point's counts add
 * up, at most an hour of them, of a sku the engine has. */
static void check_history(const fuzz_request_t *q, const request_t *r, const json_t *o)
{
    static const char *const columns[] = {"stock", "held",       "sold",     "available",
                                           "denials", "challenges", "waitlist", "escalated"};
    const json_t *col[8];
    bool ok = true;
    int64_t count = int_member(o, "count", &ok);
    CHECK(ok && count >= 0 && count <= HF_HISTORY_SECONDS, "a history has a count, an hour at most");
    CHECK(json_is_integer(json_object_get(o, "first_ms")) == (count > 0),
          "a history's first point has a time when there is one");
    for (size_t c = 0; c < 8; c++) {
        col[c] = json_object_get(o, columns[c]);
        CHECK(json_is_array(col[c]) && (int64_t)json_array_size(col[c]) == count,
              "a history has every column, count long");
    }
    for (size_t i = 0; i < (size_t)count; i++) {
        int64_t v[8];
        for (size_t c = 0; c < 8; c++) {
            const json_t *x = json_array_get(col[c], i);
            CHECK(json_is_integer(x) && json_integer_value(x) >= 0, "a history point is counts");
            v[c] = json_integer_value(x);
        }
        CHECK(v[1] + v[2] <= v[0] && v[3] == v[0] - v[1] - v[2] && v[7] <= 1,
              "a history point adds up");
    }
    const json_t *name = json_object_get(o, "sku");
    uint32_t index;
    CHECK(json_is_string(name) && engine_sku_find(guard_engine(r->server->guard),
                                                  json_string_value(name),
                                                  json_string_length(name), &index),
          "a history is of a sku in the engine");
}

/* A hold (h_) or waitlist entry (w_) shown is in the state the guard has. */
static void check_state(const fuzz_request_t *q, const request_t *r, const json_t *o)
{
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *state = json_string_value(json_object_get(o, "state"));
    const guard_t *g = r->server->guard;
    uint64_t n;
    if (strncmp(id, "h_", 2) == 0) {
        engine_hold_view_t h;
        CHECK(engine_hold_id_parse(id, strlen(id), &n) &&
                  engine_hold_view(guard_engine(g), n, &h) == ENGINE_OK,
              "a hold shown is in the engine");
        CHECK(strcmp(engine_hold_state_name(h.state), state) == 0,
              "a hold shows the engine's state");
    } else if (strncmp(id, "w_", 2) == 0) {
        guard_wait_state_t w;
        uint64_t hold;
        CHECK(guard_wait_id_parse(id, strlen(id), &n) && guard_wait_state(g, n, &w, &hold),
              "a waitlist entry shown is in the guard");
        CHECK(strcmp(guard_wait_state_name(w), state) == 0,
              "a waitlist entry shows the guard's state");
    }
}

/* Every sku, hold and waitlist entry anywhere in a reply. */
static void check_objects(const fuzz_request_t *q, const request_t *r, const json_t *v, int depth)
{
    CHECK(depth <= JSON_OUT_DEPTH_MAX, "a reply nests no deeper than its writer can");
    const char *key;
    json_t *member;
    size_t i;
    if (json_is_object(v)) {
        if (json_is_array(json_object_get(v, "stock")) && json_object_get(v, "sku") != NULL) {
            check_history(q, r, v);
        } else if (json_object_get(v, "stock") != NULL && json_object_get(v, "sku") != NULL) {
            check_sku(q, r, v);
        }
        if (json_is_string(json_object_get(v, "id")) &&
            json_is_string(json_object_get(v, "state"))) {
            check_state(q, r, v);
        }
        json_object_foreach((json_t *)v, key, member) {
            check_objects(q, r, member, depth + 1);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, member) {
            check_objects(q, r, member, depth + 1);
        }
    }
}

/* Prometheus text: "# HELP"/"# TYPE" lines and samples "name{...} number". */
static void check_metrics(const fuzz_request_t *q, const request_t *r)
{
    CHECK(r->status == 200 && r->out.size > 0 && r->out.data[r->out.size - 1] == '\n' &&
              memchr(r->out.data, '\0', r->out.size) == NULL,
          "the metrics are lines of text");
    for (const char *line = r->out.data; line < r->out.data + r->out.size;) {
        const char *end = memchr(line, '\n', (size_t)(r->out.data + r->out.size - line));
        const char *space = end;
        while (space > line && *space != ' ') {
            space--;
        }
        space = *space == ' ' ? space : NULL;
        char number[64];
        bool comment = strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0;
        CHECK(comment || (strncmp(line, "holdfast_", 9) == 0 && space != NULL &&
                          (size_t)(end - space) < sizeof number),
              "a metrics line is a comment or a holdfast_ sample");
        if (!comment) {
            snprintf(number, sizeof number, "%.*s", (int)(end - space - 1), space + 1);
            char *stop;
            strtod(number, &stop);
            CHECK(number[0] != '\0' && *stop == '\0', "a sample ends in a number");
        }
        line = end + 1;
    }
}

/* Publishes, as the clock thread does on its step, and checks the events
 * written to open streams since the last look: "retry", pings, and "event:
 * sku" whose data is a sku object that checks out. */
static void check_streams(session_t *ss, const fuzz_request_t *q, const request_t *r)
{
    server_t *s = ss->server;
    s->events_published_ms = 0; /* the clock is fixed: publish now */
    events_publish(s);
    pthread_mutex_lock(&s->events_lock);
    for (uint32_t i = 0; i < HF_EVENT_STREAMS_MAX; i++) {
        const event_stream_t *st = &s->streams[i];
        for (size_t at = ss->stream_checked[i]; st->used && at < st->len;) {
            const char *p = st->text + at, *end = NULL;
            for (size_t k = 0; at + k + 1 < st->len && end == NULL; k++) {
                end = p[k] == '\n' && p[k + 1] == '\n' ? p + k : NULL;
            }
            if (end == NULL) {
                break; /* the rest comes with the next publish */
            }
            json_t *doc = NULL;
            bool ok = (at == 0 && strncmp(p, "retry: 2000\n", 12) == 0) ||
                      strncmp(p, ": ping\n", 7) == 0;
            if (!ok && strncmp(p, "event: sku\ndata: ", 17) == 0) {
                doc = json_loadb(p + 17, (size_t)(end - p - 17), JSON_REJECT_DUPLICATES, NULL);
                ok = json_is_object(doc);
            }
            CHECK(ok, "an event stream holds retry, pings and sku events of JSON");
            if (doc != NULL) {
                check_sku(q, r != NULL ? r : &(request_t){.server = s}, doc);
            }
            json_decref(doc);
            at = (size_t)(end + 2 - st->text);
            ss->stream_checked[i] = at;
        }
    }
    pthread_mutex_unlock(&s->events_lock);
}

static void remember_id(id_text_t *ids, uint32_t *count, const char *id, const char *secret)
{
    if (strlen(id) >= sizeof ids[0].text) {
        return;
    }
    id_text_t t;
    snprintf(t.text, sizeof t.text, "%s", id);
    snprintf(t.secret, sizeof t.secret, "%s", secret != NULL ? secret : "");
    if (*count < FUZZ_IDS_MAX) {
        ids[(*count)++] = t;
    }
    ids[FUZZ_IDS_MAX] = t;
}

/* An Idempotency-Key makes one hold: a 201 for it names the first one,
 * while the key is remembered (a day; a second less here, as the clock also
 * moves by the time a session takes). */
static void check_idempotency(session_t *ss, const fuzz_request_t *q, const request_t *r,
                              const char *id)
{
    const char *key = lookup((void *)q, MHD_HEADER_KIND, "Idempotency-Key");
    if (key == NULL || strlen(key) > HF_IDEM_KEY_BYTES_MAX) {
        return;
    }
    for (uint32_t i = 0; i < ss->idem_count; i++) {
        if (strcmp(ss->idem[i].key, key) == 0 &&
            ss->advanced_ms - ss->idem[i].advanced_ms < HF_IDEM_RETENTION_MS - 1000) {
            CHECK(strcmp(ss->idem[i].hold.text, id) == 0,
                  "an Idempotency-Key that made a hold makes the same hold again");
            return;
        }
    }
    if (ss->idem_count < FUZZ_IDEM_MAX && strlen(id) < sizeof ss->idem[0].hold.text) {
        snprintf(ss->idem[ss->idem_count].key, sizeof ss->idem[0].key, "%s", key);
        snprintf(ss->idem[ss->idem_count].hold.text, sizeof ss->idem[0].hold.text, "%s", id);
        ss->idem[ss->idem_count++].advanced_ms = ss->advanced_ms;
    }
}

/* What a successful hold or waitlist request promises about its object. */
static void check_success(session_t *ss, const fuzz_request_t *q, const request_t *r,
                          const json_t *doc)
{
    const char *route = server_route_label(r->server, r->route);
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *state = json_string_value(json_object_get(doc, "state"));
    const char *want = NULL, *or = NULL;
    if (strcmp(route, "/v1/holds/*/commit") == 0) {
        want = "committed";
    } else if (strcmp(route, "/v1/holds/*/extend") == 0) {
        want = "active";
    } else if (strcmp(route, "/v1/holds/*") == 0 && strcmp(q->method, "DELETE") == 0) {
        want = "released", or = "expired"; /* one that ran out has nothing to release */
    }
    CHECK(want == NULL ||
              (state != NULL && (strcmp(state, want) == 0 || (or && strcmp(state, or) == 0))),
          "a commit, release or extend shows the state it made");
    if (strcmp(route, "/v1/holds") == 0) {
        CHECK(r->status == 201 && id != NULL && state != NULL, "a hold made is shown");
        CHECK(r->replayed != NULL || strcmp(state, "active") == 0 ||
                  strcmp(state, "committed") == 0,
              "a new hold is active, or committed when bought now");
        remember_id(ss->holds, &ss->hold_count, id,
                    json_string_value(json_object_get(doc, "secret")));
        check_idempotency(ss, q, r, id);
    } else if (strcmp(route, "/v1/skus/*/waitlist") == 0) {
        CHECK(r->status == 201 && id != NULL, "a waitlist entry made is shown");
        remember_id(ss->waits, &ss->wait_count, id,
                    json_string_value(json_object_get(doc, "secret")));
    }
    const char *offered = json_string_value(json_object_get(json_object_get(doc, "hold"), "id"));
    if (offered != NULL) { /* a waitlist entry's offer: a hold to commit or release */
        remember_id(ss->holds, &ss->hold_count, offered,
                    json_string_value(json_object_get(json_object_get(doc, "hold"), "secret")));
    }
}

static void remember_challenge(session_t *ss, const json_t *doc)
{
    const json_t *ch = json_object_get(json_object_get(doc, "error"), "challenge");
    const char *prefix = json_string_value(json_object_get(ch, "prefix"));
    if (prefix != NULL && strlen(prefix) < sizeof ss->challenge) {
        snprintf(ss->challenge, sizeof ss->challenge, "%s", prefix);
        ss->challenge_bits = (unsigned)json_integer_value(json_object_get(ch, "bits"));
    }
}

static void check_json(session_t *ss, const fuzz_request_t *q, const request_t *r)
{
    json_error_t err;
    json_t *doc = json_loadb(r->out.data != NULL ? r->out.data : "", r->out.size,
                             JSON_REJECT_DUPLICATES, &err);
    CHECK(json_is_object(doc), "the reply is one complete JSON object in UTF-8");
    if (r->status >= 400) {
        check_error(q, r, doc);
    } else {
        CHECK(json_object_get(doc, "error") == NULL, "a success is not an error");
        check_objects(q, r, doc, 0);
        check_success(ss, q, r, doc);
    }
    if (r->status == 428) {
        remember_challenge(ss, doc);
    }
    json_decref(doc);
}

/* Statuses that refuse input as bad: they must change nothing. */
static bool refuses_input(int status)
{
    return status == 400 || status == 401 || status == 403 || status == 405 || status == 413;
}

static void check_reply(session_t *ss, const fuzz_request_t *q, const request_t *r,
                        uint64_t seq_before)
{
    server_t *s = ss->server;
    CHECK(status_declared(r->status), "the status is in SERVER_STATUSES");
    CHECK(r->status != 500, "no request meets a result without a reply of its own");
    CHECK(r->status != 405 || r->allow[0] != '\0', "a 405 says which methods the path takes");
    CHECK(!refuses_input(r->status) || store_appended_seq(&s->store) == seq_before,
          "a refusal of bad input changed nothing");
    if (r->stream != NULL) {
        CHECK(r->status == 200, "an event stream is a 200");
    } else if (r->content_type != NULL) {
        CHECK(r->status == 200 && r->out.size > 0, "a page is a 200 with the page");
    } else if (r->text) {
        check_metrics(q, r);
    } else {
        check_json(ss, q, r);
    }
    CHECK(guard_check(s->guard), "guard_check(): the engine's and the defenses' invariants");
    if (r->stream != NULL) {
        check_streams(ss, q, r); /* its first events; later ones come with "advance" */
    }
}

/* ------------------------------------------------------------------ session */

static void run_request(session_t *ss, fuzz_request_t *q)
{
    server_t *s = ss->server;
    request_t req = {.server = s,
                     .route = -1,
                     .lookup = lookup,
                     .arg_name = arg_name,
                     .lookup_ctx = q,
                     .body = q->body,
                     .body_size = q->body_size,
                     .body_too_large = q->body_too_large};
    json_out_init(&req.out);
    uint64_t seq_before = store_appended_seq(&s->store);
    router_handle(&req, q->method, q->path);
    /* As the reply is sent (http.c, events.c). */
    metrics_count(s, req.route, req.stream != NULL ? 200 : req.status);
    if (getenv("FUZZ_HTTP_TRACE") != NULL) { /* to write and read seeds */
        fprintf(stderr, "%s %s%s%s -> %d %.*s\n", q->method, q->path, q->query[0] ? "?" : "",
                q->query, req.status, req.text || req.content_type ? 0 : (int)req.out.size,
                req.out.data != NULL ? req.out.data : "");
    }
    check_reply(ss, q, &req, seq_before);
    json_out_free(&req.out);
}

/* "advance MS": the clock moves on, and the clock thread's step runs. */
static void run_advance(session_t *ss, const uint8_t *data, size_t size)
{
    const fuzz_request_t *q = NULL;
    const request_t *r = NULL;
    server_t *s = ss->server;
    char text[24];
    size_t n = size - 8 < sizeof text - 1 ? size - 8 : sizeof text - 1;
    memcpy(text, data + 8, n);
    text[n] = '\0';
    long long ms = strtoll(text, NULL, 10);
    ms = ms < 0 ? 0 : ms > FUZZ_ADVANCE_MS_MAX ? FUZZ_ADVANCE_MS_MAX : ms;
    s->clock_base_ms += ms;
    ss->advanced_ms += ms;
    server_tick(s);
    CHECK(guard_check(s->guard), "guard_check() after the clock's step");
    check_streams(ss, q, r);
}

static void run_block(session_t *ss, const uint8_t *data, size_t size)
{
    if (size >= 8 && memcmp(data, "advance ", 8) == 0) {
        run_advance(ss, data, size);
        return;
    }
    fuzz_request_t *q = malloc(sizeof *q);
    if (q != NULL && parse_request(ss, data, size, q)) {
        run_request(ss, q);
    }
    if (q != NULL) {
        request_free(q);
    }
    free(q);
}

/* A new shop, as a new data directory starts: see the top of the file. */
static void session_begin(session_t *ss, server_t *s)
{
    memset(ss, 0, sizeof *ss);
    ss->server = s;
    guard_destroy(s->guard); /* the one recovery made, before the first input */
    s->guard = guard_create(&s->config.guard, 0);
    if (s->guard == NULL) {
        fprintf(stderr, "fuzz_http: cannot create a guard\n");
        abort();
    }
    s->clock_base_ms = FUZZ_EPOCH_MS;
    s->mono_start_ms = server_mono_ms();
    s->events_logged = 0;
    memset(&s->metrics, 0, sizeof s->metrics);
    memset(s->sku_refusals, 0, fuzz_tables.engine.skus_max * sizeof *s->sku_refusals);
    chart_forget(s); /* its skus were the last input's */
    guard_op_t op = {.kind = GUARD_OP_SECRET};
    memset(op.u.secret, 0x5a, sizeof op.u.secret);
    op.engine.now_ms = server_now_ms(s);
    if (guard_apply(s->guard, &op).result != GUARD_OK) {
        abort();
    }
}

static void session_end(session_t *ss)
{
    server_t *s = ss->server;
    for (uint32_t i = 0; i < HF_EVENT_STREAMS_MAX; i++) {
        if (s->streams[i].used) {
            events_stream_free(&s->streams[i]);
        }
    }
    guard_destroy(s->guard);
    s->guard = NULL;
}

/* ------------------------------------------------------------------- server */

static server_t *server;
static char data_dir[64];

static void server_gone(void)
{
    server_free(server);
    server = NULL;
    DIR *d = opendir(data_dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[sizeof data_dir + 300];
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%s", data_dir, e->d_name);
            unlink(path);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    rmdir(data_dir);
}

/* The server, started on first use and again after FUZZ_RESTART_RECORDS. */
static server_t *server_ready(void)
{
    if (server != NULL && store_appended_seq(&server->store) < FUZZ_RESTART_RECORDS) {
        return server;
    }
    if (server != NULL) {
        server_free(server);
    } else {
        snprintf(data_dir, sizeof data_dir, "%s/holdfast-fuzz-XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (mkdtemp(data_dir) == NULL) {
            perror("fuzz_http: mkdtemp");
            abort();
        }
        atexit(server_gone);
    }
    server_config_t c;
    server_config_default(&c);
    c.guard = fuzz_tables;
    snprintf(c.data_dir, sizeof c.data_dir, "%s", data_dir);
    snprintf(c.api_keys[0], sizeof c.api_keys[0], "shop-key");
    c.api_key_count = 1;
    snprintf(c.admin_key, sizeof c.admin_key, "admin-key");
    c.compact_records = 0; /* never fork a snapshot */
    snprintf(c.access_log, sizeof c.access_log, "off");
    server = server_new(&c);
    if (server == NULL || server_start(server, false) != 0) {
        fprintf(stderr, "fuzz_http: the server did not start on %s\n", data_dir);
        abort();
    }
    return server;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    session_t ss;
    session_begin(&ss, server_ready());
    for (uint32_t step = 0; step < FUZZ_STEPS_MAX; step++) {
        size_t len = block_len(data, size);
        if (len > 0) {
            run_block(&ss, data, len);
        }
        if (len == size) {
            break;
        }
        data += len + SEPARATOR_LEN;
        size -= len + SEPARATOR_LEN;
    }
    session_end(&ss);
    return 0;
}
