/*
 * config.c - the webhook keys of the configuration file (webhook.h).
 *
 *   "webhooks": [{"url": "http://127.0.0.1:9000/hooks",
 *                 "events": ["sku.sold_out", ...],   (optional: all)
 *                 "plain_http": true}]               (only for a host off loopback)
 *   "webhook_secret_file": "/etc/holdfast/webhook.secret"
 *   "webhook_secret": "..."                          (or this; or the environment)
 *   "webhook_retry": {"min_ms", "max_ms", "attempts_max", "age_max_ms", "timeout_ms"}
 *   "webhook_outbox_max": 100000
 *
 * The secret is never a flag: a command line is visible to every user of
 * the machine (ps, /proc). https is refused at start: holdfast speaks plain
 * HTTP to a relay on its own machine, which holds the TLS configuration
 * (certificates, trust store, proxies) a shop already manages elsewhere;
 * docs/WEBHOOKS.md shows one.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_secret_file.h"
#include "webhook.h"

#define SECRET_ENV "HOLDFAST_WEBHOOK_SECRET"

static const char *const event_names[WEBHOOK_EVENT_COUNT] = {
#define WEBHOOK_EVENT_NAME(name, text) [name] = text,
    WEBHOOK_EVENTS(WEBHOOK_EVENT_NAME)
#undef WEBHOOK_EVENT_NAME
};

const char *webhook_event_name(webhook_event_t e)
{
    return (unsigned)e < WEBHOOK_EVENT_COUNT ? event_names[e] : "unknown";
}

bool webhook_event_parse(const char *text, webhook_event_t *out)
{
    for (int i = 0; i < WEBHOOK_EVENT_COUNT; i++) {
        if (strcmp(text, event_names[i]) == 0) {
            *out = (webhook_event_t)i;
            return true;
        }
    }
    return false;
}

void webhook_config_default(webhook_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->retry_min_ms = WEBHOOK_RETRY_MIN_MS_DEFAULT;
    c->retry_max_ms = WEBHOOK_RETRY_MAX_MS_DEFAULT;
    c->attempts_max = WEBHOOK_ATTEMPTS_MAX_DEFAULT;
    c->age_max_ms = WEBHOOK_AGE_MAX_MS_DEFAULT;
    c->timeout_ms = WEBHOOK_TIMEOUT_MS_DEFAULT;
    c->outbox_max = WEBHOOK_OUTBOX_MAX_DEFAULT;
}

static const char *const keys[] = {"webhooks", "webhook_secret", "webhook_secret_file",
                                   "webhook_retry", "webhook_outbox_max"};

bool webhook_config_is_key(const char *key)
{
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(key, keys[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int bad(const char *key, const char *why)
{
    fprintf(stderr, "holdfast: config key \"%s\": %s\n", key, why);
    return -1;
}

/* ------------------------------------------------------------------- URLs */

static bool host_is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)a;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
}

/* Fills e's address from host (an IP literal, or localhost) and port. */
static int set_address(webhook_endpoint_t *e, const char *host, long port, char *err,
                       size_t err_size)
{
    memset(&e->addr, 0, sizeof e->addr);
    struct sockaddr_in *in = (struct sockaddr_in *)&e->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&e->addr;
    const char *literal = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    if (inet_pton(AF_INET, literal, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        e->addr_len = sizeof *in;
        snprintf(e->host, sizeof e->host, "%s:%ld", host, port);
    } else if (inet_pton(AF_INET6, literal, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        e->addr_len = sizeof *in6;
        snprintf(e->host, sizeof e->host, "[%s]:%ld", host, port);
    } else {
        snprintf(err, err_size,
                 "the host must be an IP address or localhost (holdfast looks up no names: "
                 "put a relay on this machine, docs/WEBHOOKS.md)");
        return -1;
    }
    e->loopback = host_is_loopback(&e->addr);
    return 0;
}

/* "host[:port]" or "[v6][:port]", len bytes of it. */
static int parse_authority(const char *text, size_t len, webhook_endpoint_t *e, char *err,
                           size_t err_size)
{
    char auth[64];
    if (len == 0 || len >= sizeof auth) {
        snprintf(err, err_size, "the URL has no host, or one too long");
        return -1;
    }
    memcpy(auth, text, len);
    auth[len] = '\0';
    char *host = auth;
    char *rest;
    if (auth[0] == '[') {
        host = auth + 1;
        rest = strchr(host, ']');
        if (rest == NULL) {
            snprintf(err, err_size, "an IPv6 host must be in brackets: [::1]");
            return -1;
        }
        *rest++ = '\0';
    } else {
        rest = strchr(auth, ':');
        rest = rest != NULL ? rest : auth + len;
    }
    long port = 80;
    if (*rest != '\0') {
        char *end;
        port = *rest == ':' ? strtol(rest + 1, &end, 10) : 0;
        if (*rest != ':' || end == rest + 1 || *end != '\0' || port < 1 || port > 65535) {
            snprintf(err, err_size, "the URL's port must be 1-65535");
            return -1;
        }
        *rest = '\0';
    }
    if (host[0] == '\0') {
        snprintf(err, err_size, "the URL has no host");
        return -1;
    }
    return set_address(e, host, port, err, err_size);
}

int webhook_url_parse(const char *url, webhook_endpoint_t *e, char *err, size_t err_size)
{
    static const char scheme[] = "http://";
    size_t n = strlen(url);
    if (strncmp(url, "https://", 8) == 0) {
        snprintf(err, err_size,
                 "https is not spoken here: point the webhook at a TLS relay on this machine "
                 "(http://127.0.0.1:PORT/..., docs/WEBHOOKS.md shows one)");
        return -1;
    }
    if (strncmp(url, scheme, sizeof scheme - 1) != 0 || n > WEBHOOK_URL_BYTES_MAX) {
        snprintf(err, err_size, "expected http://HOST[:PORT]/PATH, at most %d bytes",
                 WEBHOOK_URL_BYTES_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (url[i] <= ' ' || url[i] == 0x7f || url[i] == '#') {
            snprintf(err, err_size, "the URL may hold no spaces, control characters or '#'");
            return -1;
        }
    }
    const char *auth = url + sizeof scheme - 1;
    const char *slash = strchr(auth, '/');
    size_t auth_len = slash != NULL ? (size_t)(slash - auth) : strlen(auth);
    if (memchr(auth, '@', auth_len) != NULL) {
        snprintf(err, err_size, "no user or password in the URL: the signature authenticates");
        return -1;
    }
    if (parse_authority(auth, auth_len, e, err, err_size) != 0) {
        return -1;
    }
    snprintf(e->url, sizeof e->url, "%s", url);
    snprintf(e->path, sizeof e->path, "%s", slash != NULL ? slash : "/");
    return 0;
}

/* -------------------------------------------------------------- the keys */

static int read_events(json_t *v, webhook_endpoint_t *e)
{
    size_t i;
    json_t *name;
    if (!json_is_array(v) || json_array_size(v) == 0) {
        return bad("webhooks", "\"events\" must be a non-empty array of event names (omit it "
                               "for every event)");
    }
    e->events = 0;
    json_array_foreach(v, i, name) {
        webhook_event_t ev;
        if (!json_is_string(name) || !webhook_event_parse(json_string_value(name), &ev)) {
            char why[160];
            snprintf(why, sizeof why, "unknown event \"%s\"",
                     json_is_string(name) ? json_string_value(name) : "(not a string)");
            return bad("webhooks", why);
        }
        e->events |= 1u << ev;
    }
    return 0;
}

static int read_endpoint(json_t *o, webhook_endpoint_t *e)
{
    const char *key;
    json_t *v;
    bool plain = false;
    *e = (webhook_endpoint_t){.events = (1u << WEBHOOK_EVENT_COUNT) - 1};
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "url"))) {
        return bad("webhooks", "each webhook is an object with a \"url\"");
    }
    json_object_foreach(o, key, v) {
        if (strcmp(key, "url") == 0) {
            char err[256];
            if (webhook_url_parse(json_string_value(v), e, err, sizeof err) != 0) {
                char why[400];
                snprintf(why, sizeof why, "\"%s\": %s", json_string_value(v), err);
                return bad("webhooks", why);
            }
        } else if (strcmp(key, "events") == 0) {
            if (read_events(v, e) != 0) {
                return -1;
            }
        } else if (strcmp(key, "plain_http") == 0 && json_is_boolean(v)) {
            plain = json_is_true(v);
        } else {
            char why[160];
            snprintf(why, sizeof why,
                     "unknown or malformed member \"%s\" (url, events, plain_http)", key);
            return bad("webhooks", why);
        }
    }
    if (!e->loopback && !plain) {
        char why[700];
        snprintf(why, sizeof why,
                 "\"%s\" leaves this machine in plain HTTP: use a TLS relay on loopback, or say "
                 "\"plain_http\": true if a private network or proxy protects it",
                 e->url);
        return bad("webhooks", why);
    }
    return 0;
}

static int read_endpoints(webhook_config_t *c, json_t *v)
{
    size_t i;
    json_t *o;
    if (!json_is_array(v) || json_array_size(v) > WEBHOOK_ENDPOINTS_MAX) {
        return bad("webhooks", "must be an array of at most 8 webhooks");
    }
    c->endpoint_count = 0;
    json_array_foreach(v, i, o) {
        if (read_endpoint(o, &c->endpoints[i]) != 0) {
            return -1;
        }
        c->endpoint_count++;
    }
    return 0;
}

static int read_uint(json_t *v, const char *key, uint32_t lo, uint32_t hi, uint32_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        char why[96];
        snprintf(why, sizeof why, "must be an integer from %u to %u", lo, hi);
        return bad(key, why);
    }
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

static int read_retry(webhook_config_t *c, json_t *v)
{
    const char *key;
    json_t *m;
    if (!json_is_object(v)) {
        return bad("webhook_retry", "must be an object");
    }
    json_object_foreach(v, key, m) {
        int rc;
        if (strcmp(key, "min_ms") == 0) {
            rc = read_uint(m, "webhook_retry.min_ms", 1, WEBHOOK_RETRY_MS_LIMIT, &c->retry_min_ms);
        } else if (strcmp(key, "max_ms") == 0) {
            rc = read_uint(m, "webhook_retry.max_ms", 1, WEBHOOK_RETRY_MS_LIMIT, &c->retry_max_ms);
        } else if (strcmp(key, "attempts_max") == 0) {
            rc = read_uint(m, "webhook_retry.attempts_max", 1, WEBHOOK_ATTEMPTS_LIMIT,
                           &c->attempts_max);
        } else if (strcmp(key, "age_max_ms") == 0) {
            rc = read_uint(m, "webhook_retry.age_max_ms", 1, 30u * 24 * 3600 * 1000,
                           &c->age_max_ms);
        } else if (strcmp(key, "timeout_ms") == 0) {
            rc = read_uint(m, "webhook_retry.timeout_ms", WEBHOOK_TIMEOUT_MS_MIN,
                           WEBHOOK_TIMEOUT_MS_LIMIT, &c->timeout_ms);
        } else {
            char why[160];
            snprintf(why, sizeof why,
                     "unknown member \"%s\" (min_ms, max_ms, attempts_max, age_max_ms, timeout_ms)",
                     key);
            return bad("webhook_retry", why);
        }
        if (rc != 0) {
            return -1;
        }
    }
    if (c->retry_min_ms > c->retry_max_ms) {
        return bad("webhook_retry", "min_ms must not be above max_ms");
    }
    return 0;
}

static int set_secret(webhook_config_t *c, const char *key, const char *text, size_t len)
{
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) {
        len--; /* a file written with echo ends in a newline */
    }
    if (len < WEBHOOK_SECRET_BYTES_MIN || len > WEBHOOK_SECRET_BYTES_MAX) {
        return bad(key, "the webhook secret must be 16-256 bytes (e.g. openssl rand -hex 32)");
    }
    memcpy(c->secret, text, len);
    c->secret[len] = '\0';
    c->secret_len = len;
    return 0;
}

int webhook_config_key(webhook_config_t *c, const char *key, json_t *v)
{
    if (strcmp(key, "webhooks") == 0) {
        return read_endpoints(c, v);
    }
    if (strcmp(key, "webhook_retry") == 0) {
        return read_retry(c, v);
    }
    if (strcmp(key, "webhook_outbox_max") == 0) {
        return read_uint(v, key, 1, WEBHOOK_OUTBOX_MAX_LIMIT, &c->outbox_max);
    }
    if (!json_is_string(v)) {
        return bad(key, "must be a string");
    }
    if (strcmp(key, "webhook_secret_file") == 0) {
        if (snprintf(c->secret_file, sizeof c->secret_file, "%s", json_string_value(v)) >=
            (int)sizeof c->secret_file) {
            return bad(key, "the path is too long");
        }
        return 0;
    }
    c->secret_given = true;
    return set_secret(c, key, json_string_value(v), json_string_length(v));
}

/* The signing secret lets anyone forge the shop's events, so its file is
 * read as a key file is (hf_secret_file.h). */
static int read_secret_file(webhook_config_t *c)
{
    char text[WEBHOOK_SECRET_BYTES_MAX + 3]; /* the secret and a line end */
    size_t n;
    int open_errno;
    char why_buf[128];
    const char *why = hf_secret_file_read(
        c->secret_file, text, sizeof text,
        "larger than a webhook secret may be (256 bytes and a line end)", &n, &open_errno,
        why_buf, sizeof why_buf);
    if (why != NULL) {
        fprintf(stderr, "holdfast: webhook_secret_file %s: %s\n", c->secret_file, why);
        return -1;
    }
    int rc = set_secret(c, "webhook_secret_file", text, n);
    memset(text, 0, sizeof text);
    return rc;
}

int webhook_config_finish(webhook_config_t *c)
{
    if (c->secret_given && c->secret_file[0] != '\0') {
        return bad("webhook_secret", "give webhook_secret or webhook_secret_file, not both");
    }
    if (c->secret_file[0] != '\0' && read_secret_file(c) != 0) {
        return -1;
    }
    const char *env = getenv(SECRET_ENV);
    if (c->secret_len == 0 && env != NULL && env[0] != '\0' &&
        set_secret(c, SECRET_ENV, env, strlen(env)) != 0) {
        return -1;
    }
    if (c->endpoint_count > 0 && c->secret_len == 0) {
        return bad("webhooks", "webhooks need a signing secret: webhook_secret_file, "
                               "webhook_secret, or the environment variable " SECRET_ENV);
    }
    return 0;
}
