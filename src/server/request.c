/*
 * request.c - the helpers every handler shares: error replies, the body as
 * JSON, its members, the query's numbers, and the hold secrets' check.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

/* ----------------------------------------------------------------- errors */

/* Opens {"error": {"code": ..., "message": ...; the caller may add fields. */
void request_error_begin(request_t *r, api_error_t e, const char *message)
{
    const api_error_info_t *info = api_error(e);
    json_out_reset(&r->out);
    r->status = info->status;
    r->error_code = info->code;
    jw_obj_begin(&r->out);
    jw_key(&r->out, "error");
    jw_obj_begin(&r->out);
    jw_kcstr(&r->out, "code", info->code);
    jw_kcstr(&r->out, "message", message != NULL ? message : info->meaning);
}

void request_error_end(request_t *r)
{
    jw_obj_end(&r->out);
    jw_obj_end(&r->out);
}

void request_error(request_t *r, api_error_t e, const char *message)
{
    request_error_begin(r, e, message);
    request_error_end(r);
}

/* A redirect's target, growing: base, path, then the query's arguments. */
typedef struct {
    char *text;
    size_t size, capacity;
    bool failed;
    unsigned args; /* query arguments added */
} target_t;

static void target_add(target_t *t, const char *bytes, size_t n)
{
    if (t->failed || n == 0) {
        return;
    }
    if (t->size + n + 1 > t->capacity) {
        size_t want = (t->size + n + 1) * 2;
        char *grown = realloc(t->text, want);
        if (grown == NULL) {
            t->failed = true;
            return;
        }
        t->text = grown;
        t->capacity = want;
    }
    memcpy(t->text + t->size, bytes, n);
    t->size += n;
    t->text[t->size] = '\0';
}

/* Percent-encodes all but RFC 3986's unreserved characters: the library
 * gave the arguments decoded, and they go back as a query that means the
 * same. */
static void target_add_encoded(target_t *t, const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
        target_add(t, plain ? (const char *)p : esc, plain ? 1 : 3);
    }
}

static enum MHD_Result target_add_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    target_t *t = cls;
    target_add(t, t->args++ == 0 ? "?" : "&", 1);
    target_add_encoded(t, key);
    if (value != NULL) {
        target_add(t, "=", 1);
        target_add_encoded(t, value);
    }
    return MHD_YES;
}

bool request_redirect(request_t *r, api_error_t e, const char *base, const char *path,
                      const char *message)
{
    target_t t = {0};
    target_add(&t, base, strlen(base));
    target_add(&t, path, strlen(path));
    if (r->conn != NULL) {
        MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, target_add_arg, &t);
    }
    if (t.failed || t.text == NULL) {
        free(t.text);
        return false;
    }
    free(r->location);
    r->location = t.text;
    request_error(r, e, message);
    return true;
}

void request_error_field(request_t *r, api_error_t e, const char *field, const char *message)
{
    request_error_begin(r, e, message);
    jw_kcstr(&r->out, "field", field);
    request_error_end(r);
}

void request_invalid_field(request_t *r, const char *field, const char *message)
{
    request_error_field(r, API_ERR_INVALID_FIELD, field, message);
}

/* ------------------------------------------------------------------- body */

bool request_field_allowed(const char *key, const char *const *allowed)
{
    for (size_t i = 0; allowed[i] != NULL; i++) {
        if (strcmp(key, allowed[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* The body as a JSON object whose keys are all in allowed (NULL-terminated).
 * An empty body is an empty object unless required. On error replies and
 * returns NULL. */
json_t *request_body(request_t *r, const char *const *allowed, bool required)
{
    if (r->body_size == 0 && !required) {
        return json_object();
    }
    if (r->body_size == 0) {
        request_error(r, API_ERR_INVALID_JSON, "a JSON object body is required");
        return NULL;
    }
    json_error_t err;
    json_t *root = json_loadb(r->body, r->body_size, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) {
        char message[200];
        bool overflow = json_error_code(&err) == json_error_numeric_overflow;
        snprintf(message, sizeof message, "%s at byte %d",
                 overflow ? "number out of range" : err.text, err.position);
        request_error(r, API_ERR_INVALID_JSON, message);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        request_error(r, API_ERR_INVALID_JSON, "the body must be a JSON object");
        return NULL;
    }
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (!request_field_allowed(key, allowed)) {
            char message[300];
            snprintf(message, sizeof message, "unknown field \"%.200s\"", key);
            request_error_field(r, API_ERR_UNKNOWN_FIELD, key, message);
            json_decref(root);
            return NULL;
        }
    }
    return root;
}

/* Reads an integer member in [lo, hi]; absent is fine unless required. */
bool request_int(request_t *r, json_t *obj, const char *key, const char *field, int64_t lo,
                 int64_t hi, bool required, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL && !required) {
        return true;
    }
    if (v == NULL || !json_is_integer(v) || json_integer_value(v) < lo ||
        json_integer_value(v) > hi) {
        char message[200];
        snprintf(message, sizeof message, "%s must be an integer from %lld to %lld", field,
                 (long long)lo, (long long)hi);
        request_invalid_field(r, field, message);
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

/* Reads a name member (customer, fingerprint, order_ref). */
bool request_name(request_t *r, json_t *obj, const char *key, bool required, const char **out,
                  size_t *len_out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL && !required) {
        *out = NULL;
        *len_out = 0;
        return true;
    }
    if (v == NULL || !json_is_string(v) ||
        !valid_name(json_string_value(v), json_string_length(v))) {
        char message[200];
        snprintf(message, sizeof message,
                 "%s must be 1-128 bytes of UTF-8 without control characters", key);
        request_invalid_field(r, key, message);
        return false;
    }
    *out = json_string_value(v);
    *len_out = json_string_length(v);
    return true;
}

bool request_idem_key(request_t *r, char *out, uint8_t *len_out)
{
    const char *key = request_value(r, MHD_HEADER_KIND, "Idempotency-Key");
    *len_out = 0;
    if (key == NULL) {
        return true;
    }
    size_t len = strlen(key);
    if (!valid_idem_key(key, len)) {
        request_invalid_field(r, "Idempotency-Key", "Idempotency-Key must be 1-64 printable bytes");
        return false;
    }
    assert(len <= HF_IDEM_KEY_BYTES_MAX);
    memcpy(out, key, len);
    *len_out = (uint8_t)len;
    return true;
}

/* ------------------------------------------------------------------ query */

request_query_t request_query_number(request_t *r, const char *name, uint64_t min, uint64_t max,
                            uint64_t *out)
{
    const char *text = request_value(r, MHD_GET_ARGUMENT_KIND, name);
    if (text == NULL) {
        return REQUEST_QUERY_ABSENT;
    }
    uint64_t v = 0;
    size_t n = 0;
    for (; text[n] >= '0' && text[n] <= '9'; n++) {
        if (v > (UINT64_MAX - 9) / 10) {
            return REQUEST_QUERY_BAD; /* past any max */
        }
        v = v * 10 + (uint64_t)(text[n] - '0');
    }
    if (n == 0 || text[n] != '\0' || v < min || v > max) {
        return REQUEST_QUERY_BAD;
    }
    *out = v;
    return REQUEST_QUERY_OK;
}

bool request_query_limit(request_t *r, int64_t max, int64_t def, int64_t *limit)
{
    assert(max >= 1);
    uint64_t v = (uint64_t)def;
    if (request_query_number(r, "limit", 1, (uint64_t)max, &v) == REQUEST_QUERY_BAD) {
        char message[80];
        snprintf(message, sizeof message, "limit must be an integer from 1 to %lld",
                 (long long)max);
        request_invalid_field(r, "limit", message);
        return false;
    }
    *limit = (int64_t)v;
    return true;
}

/* ---------------------------------------------------------------- secrets */

static const struct {
    const char *header;
    api_error_t required, wrong;
    const char *what;
} secret_wire[2] = {
    [HOLDKEY_HOLD] = {"Hold-Secret", API_ERR_HOLD_SECRET_REQUIRED, API_ERR_HOLD_SECRET_WRONG,
                      "the hold's secret (\"secret\" in the reply that created it)"},
    [HOLDKEY_WAIT] = {"Waitlist-Secret", API_ERR_WAITLIST_SECRET_REQUIRED,
                      API_ERR_WAITLIST_SECRET_WRONG,
                      "the waitlist entry's secret (\"secret\" in the reply that joined it)"},
};

static void count_secret(request_t *r, holdkey_kind_t kind, secret_outcome_t outcome)
{
    __atomic_fetch_add(&r->server->metrics.secrets[kind][outcome], 1, __ATOMIC_RELAXED);
}

/* Checked before anything is looked up, so a refusal says nothing about
 * whether the id names anything: a guessed id teaches nothing. */
bool request_secret_allows(request_t *r, holdkey_kind_t kind, uint64_t id)
{
    server_t *s = r->server;
    char message[160];
    const char *sent = request_value(r, MHD_HEADER_KIND, secret_wire[kind].header);
    if (sent != NULL && holdkey_secret_matches(&s->holdkey, kind, id, sent)) {
        count_secret(r, kind, SECRET_GOOD);
        return true;
    }
    if (sent != NULL) {
        count_secret(r, kind, SECRET_WRONG);
        snprintf(message, sizeof message, "%s is not %s", secret_wire[kind].header,
                 secret_wire[kind].what);
        request_error(r, secret_wire[kind].wrong, message);
        return false;
    }
    if (r->role == ROLE_ADMIN || s->config.hold_secret_optional) {
        count_secret(r, kind, r->role == ROLE_ADMIN ? SECRET_ADMIN : SECRET_MISSING_ALLOWED);
        return true;
    }
    count_secret(r, kind, SECRET_MISSING);
    snprintf(message, sizeof message, "send %s: %s", secret_wire[kind].header,
             secret_wire[kind].what);
    request_error(r, secret_wire[kind].required, message);
    return false;
}
