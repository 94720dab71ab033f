/*
 * cli.c - `holdfast` command line and configuration file.
 *
 * The configuration file is JSON; flags given on the command line override
 * it. An unknown key, an unknown flag or a bad value stops the start with a
 * message that names it, so a typo never runs silently with a default.
 */
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster.h"
#include "hf_version.h"
#include "keys.h"
#include "policy_json.h"
#include "pow.h"
#include "server.h"
#include "sim.h"


static const char usage_main[] =
    "holdfast - inventory holds that are correct, fast and hard to hoard\n"
    "\n"
    "usage:\n"
    "  holdfast serve [options]   serve the HTTP API (holdfast serve --help)\n"
    "  holdfast solve PREFIX BITS solve a proof-of-work challenge (prints PREFIX:NONCE)\n"
    "  holdfast sim [options]     replay a denial-of-inventory attack against policies\n"
    "  holdfast backup --data DIR OUT\n"
    "                             copy a data directory consistently, even while served\n"
    "  holdfast recover --data DIR [--config FILE] [--accept-loss]\n"
    "                             check a data directory; with --accept-loss, start it\n"
    "                             again from what a damaged journal still holds\n"
    "  holdfast --version         print the version\n"
    "  holdfast --help            print this help\n";

static const char usage_serve[] =
    "usage: holdfast serve [options]\n"
    "\n"
    "  --listen HOST:PORT        address to listen on (default 127.0.0.1:8080; port 0 picks one)\n"
    "  --data DIR                data directory (default ./data)\n"
    "  --config FILE             JSON configuration; flags override it\n"
    "  --api-key KEY             a key with the shop role (repeatable; visible in ps:\n"
    "                            prefer the file or the environment)\n"
    "  --api-key-file FILE       shop keys, one a line ('#' comments); mode 600 or 400\n"
    "  --admin-key KEY           the key with the admin role (visible in ps, as above)\n"
    "  --admin-key-file FILE     the admin key, alone in the file; mode 600 or 400\n"
    "  --durability MODE         durable (default): reply after fsync;\n"
    "                            relaxed: reply before fsync, lose at most 100 ms on a crash\n"
    "  --web DIR                 the web pages: the shop at /, the dashboard at /admin\n"
    "                            (\"\" serves none; default below)\n"
    "  --hold-secret MODE        required (default): a shop key touches a hold only with\n"
    "                            its Hold-Secret; optional: without one too, counted in\n"
    "                            /metrics (while a shop's clients upgrade)\n"
    "  --access-log WHERE        a line per request: stderr (default), off, or a file's\n"
    "                            path (opened again on SIGHUP, for logrotate)\n"
    "  --attack-panel MODE       off (default) or on: the dashboard's attack panel runs the\n"
    "                            simulator against this server (POST /v1/sim); its buyers'\n"
    "                            purchases are real sales, so only for a demo (make demo)\n"
    "\n"
    "connections (a connection past a cap is answered 503 overloaded and closed):\n"
    "  --connections-max N       open connections (default 4096)\n"
    "  --connections-per-address-max N\n"
    "                            from one client address, IPv6 per /64 (default 64;\n"
    "                            0: no cap, e.g. behind a proxy that is the only client)\n"
    "  --connections-reserve N   kept past the cap for GET /healthz, /metrics and requests\n"
    "                            with the admin key, one request each (default 16)\n"
    "  --keepalive-max N         connections the HTTP threads hold, serving or kept alive;\n"
    "                            past it, a reply closes its connection (default 1024)\n"
    "  --head-timeout-ms MS      a request head must arrive within this, counted from the\n"
    "                            accept or from its request line (default 10000)\n"
    "  --body-timeout-ms MS      a body must arrive within this after its head (default 30000)\n"
    "  --idle-timeout-ms MS      a kept-alive connection waits this long for its next request;\n"
    "                            a reply that does not move for this long is dropped\n"
    "                            (default 15000)\n"
    "\n"
    "a cluster's node (the journal in PostgreSQL; docs/OPERATIONS.md, \"A cluster\"):\n"
    "  --journal URI             postgresql://USER@HOST[:PORT][,HOST2...]/DB?... keeps the\n"
    "                            journal there instead of in --data (which still holds this\n"
    "                            node's lock and its snapshot files on their way there);\n"
    "                            name every server with target_session_attrs=read-write\n"
    "  --shop NAME               the shop this node serves (default \"default\"; a-z 0-9 -)\n"
    "  --node NAME               this node's name, unique in the cluster (default: the host's)\n"
    "  --node-url URL            where clients reach this node (default http://--listen)\n"
    "  --lease-ms MS             how long the shop stays this node's without a renewal; a\n"
    "                            standby takes over once it runs out (default 2000)\n"
    "\n"
    "configuration file keys: listen, data, web_dir, api_keys, api_key_file, admin_key,\n"
    "admin_key_file, durability, skus_max, holds_max, idempotency_keys_max, identities_max,\n"
    "customer_skus_max, waitlist_max, sku_policies_max, proofs_max, connections_max,\n"
    "connections_per_address_max, connections_reserve, keepalive_max, head_timeout_ms,\n"
    "body_timeout_ms, idle_timeout_ms, threads, compact_records, hold_secret, access_log,\n"
    "audit_max, attack_panel, policy, webhooks, webhook_secret_file, webhook_secret,\n"
    "webhook_retry, webhook_outbox_max, journal, shop, node, node_url, lease_ms\n"
    "(policy: the policy document of docs/POLICIES.md a new data directory starts with;\n"
    "webhooks: docs/WEBHOOKS.md; man holdfast says what each key means)\n"
    "\n"
    "keys also come from the environment: HOLDFAST_API_KEYS (comma-separated shop keys),\n"
    "HOLDFAST_ADMIN_KEY; and from systemd's LoadCredential= (api_keys, admin_key in\n"
    "$CREDENTIALS_DIRECTORY). Shop keys from every source add up; the admin key is the\n"
    "first of: the command line, HOLDFAST_ADMIN_KEY, the credential, the config file.\n"
    "The webhooks' secret: webhook_secret_file, webhook_secret or HOLDFAST_WEBHOOK_SECRET,\n"
    "never a flag.\n"
    "\n"
    "Without keys, every request is allowed, so the server refuses to listen on\n"
    "anything but a loopback address unless keys are given.\n"
    "\n"
    "The web pages' default directory: ";

void server_config_default(server_config_t *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    c->port = 8080;
    snprintf(c->data_dir, sizeof c->data_dir, "./data");
    snprintf(c->web_dir, sizeof c->web_dir, "%s", HF_WEB_DIR);
    c->durability = STORE_DURABLE;
    c->guard = guard_config_default();
    c->connections_max = HF_CONNECTIONS_MAX_DEFAULT;
    c->connections_per_address_max = HF_CONNECTIONS_PER_ADDRESS_MAX_DEFAULT;
    c->connections_reserve = HF_CONNECTIONS_RESERVE_DEFAULT;
    c->keepalive_max = HF_KEEPALIVE_MAX_DEFAULT;
    c->head_timeout_ms = HF_HEAD_TIMEOUT_MS_DEFAULT;
    c->body_timeout_ms = HF_BODY_TIMEOUT_MS_DEFAULT;
    c->idle_timeout_ms = HF_IDLE_TIMEOUT_MS_DEFAULT;
    /* Two: one per core here. Throughput is about equal with one, but a
     * single worker accepts a burst of new connections slowly (a 200-400 ms
     * tail when 256 arrive at once, 15-25 ms with two; docs/BENCHMARKS.md). */
    c->threads = 2;
    c->compact_records = HF_COMPACT_RECORDS_DEFAULT;
    snprintf(c->access_log, sizeof c->access_log, "stderr");
    webhook_config_default(&c->webhooks);
}

/* ---------------------------------------------------------------- values */

static int bad(const char *what, const char *value, const char *why)
{
    fprintf(stderr, "holdfast: %s \"%s\": %s\n", what, value, why);
    return -1;
}

static int set_listen(server_config_t *c, const char *v)
{
    const char *colon = strrchr(v, ':');
    if (colon == NULL || colon == v) {
        return bad("--listen", v, "expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080");
    }
    const char *host = v;
    size_t host_len = (size_t)(colon - v);
    if (host[0] == '[' && host_len >= 2 && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    }
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || port > 65535) {
        return bad("--listen", v, "the port must be a number from 0 to 65535");
    }
    if (host_len == 0 || host_len >= sizeof c->host) {
        return bad("--listen", v, "the host is empty or too long");
    }
    memcpy(c->host, host, host_len);
    c->host[host_len] = '\0';
    c->port = (uint16_t)port;
    return 0;
}

static int set_text(char *out, size_t size, const char *what, const char *v)
{
    if (v[0] == '\0' || strlen(v) >= size) {
        return bad(what, v, "must be non-empty and shorter");
    }
    snprintf(out, size, "%s", v);
    return 0;
}

/* "" turns the pages off; anything else must fit. */
static int set_web(server_config_t *c, const char *v)
{
    if (strlen(v) >= sizeof c->web_dir) {
        return bad("--web", v, "the path is too long");
    }
    snprintf(c->web_dir, sizeof c->web_dir, "%s", v);
    return 0;
}

/* A key, or a key file's name, kept for keys_settle; what names it. */
static int set_key_source(char *out, size_t size, const char *what, const char *v)
{
    if (out[0] != '\0') {
        fprintf(stderr, "holdfast: %s is given twice\n", what);
        return -1;
    }
    if (v[0] == '\0' || strlen(v) >= size) {
        fprintf(stderr, "holdfast: %s must be non-empty and shorter than %zu bytes\n", what,
                size);
        return -1;
    }
    snprintf(out, size, "%s", v);
    return 0;
}

static int set_hold_secret(server_config_t *c, const char *v)
{
    if (strcmp(v, "required") == 0) {
        c->hold_secret_optional = false;
    } else if (strcmp(v, "optional") == 0) {
        c->hold_secret_optional = true;
    } else {
        return bad("--hold-secret", v, "must be required or optional");
    }
    return 0;
}

/* "off", "stderr", or a file (opened at start: a bad path stops it). */
static int set_access_log(server_config_t *c, const char *what, const char *v)
{
    if (v[0] == '\0' || strlen(v) >= sizeof c->access_log) {
        return bad(what, v, "must be off, stderr or a file's path");
    }
    snprintf(c->access_log, sizeof c->access_log, "%s", v);
    return 0;
}

static int set_attack_panel(server_config_t *c, const char *v)
{
    if (strcmp(v, "on") == 0 || strcmp(v, "off") == 0) {
        c->attack_panel = strcmp(v, "on") == 0;
        return 0;
    }
    return bad("--attack-panel", v, "must be on or off");
}

static int set_durability(server_config_t *c, const char *v)
{
    if (strcmp(v, "durable") == 0) {
        c->durability = STORE_DURABLE;
    } else if (strcmp(v, "relaxed") == 0) {
        c->durability = STORE_RELAXED;
    } else {
        return bad("--durability", v, "must be durable or relaxed");
    }
    return 0;
}

/* The connection settings, each a configuration key and a flag. */
static const struct {
    const char *key, *flag;
    size_t offset;
    uint32_t lo, hi;
} conn_settings[] = {
    {"connections_max", "--connections-max", offsetof(server_config_t, connections_max), 1,
     HF_CONNECTIONS_MAX_LIMIT},
    {"connections_per_address_max", "--connections-per-address-max",
     offsetof(server_config_t, connections_per_address_max), 0, HF_CONNECTIONS_MAX_LIMIT},
    {"connections_reserve", "--connections-reserve",
     offsetof(server_config_t, connections_reserve), 0, HF_CONNECTIONS_RESERVE_LIMIT},
    {"keepalive_max", "--keepalive-max", offsetof(server_config_t, keepalive_max), 0,
     HF_CONNECTIONS_MAX_LIMIT},
    {"head_timeout_ms", "--head-timeout-ms", offsetof(server_config_t, head_timeout_ms),
     HF_TIMEOUT_MS_MIN, HF_TIMEOUT_MS_LIMIT},
    {"body_timeout_ms", "--body-timeout-ms", offsetof(server_config_t, body_timeout_ms),
     HF_TIMEOUT_MS_MIN, HF_TIMEOUT_MS_LIMIT},
    {"idle_timeout_ms", "--idle-timeout-ms", offsetof(server_config_t, idle_timeout_ms),
     HF_TIMEOUT_MS_MIN, HF_TIMEOUT_MS_LIMIT},
};
#define CONN_SETTING_COUNT (sizeof conn_settings / sizeof conn_settings[0])

static uint32_t *conn_setting(server_config_t *c, size_t i)
{
    return (uint32_t *)((char *)c + conn_settings[i].offset);
}

/* A connection setting given as a flag; sets *handled when flag is one. */
static int flag_conn_setting(server_config_t *c, const char *flag, const char *v, bool *handled)
{
    for (size_t i = 0; i < CONN_SETTING_COUNT; i++) {
        if (strcmp(flag, conn_settings[i].flag) != 0) {
            continue;
        }
        *handled = true;
        char *end;
        errno = 0;
        unsigned long n = strtoul(v, &end, 10);
        if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n < conn_settings[i].lo ||
            n > conn_settings[i].hi) {
            char why[64];
            snprintf(why, sizeof why, "must be an integer from %u to %u", conn_settings[i].lo,
                     conn_settings[i].hi);
            return bad(flag, v, why);
        }
        *conn_setting(c, i) = (uint32_t)n;
        return 0;
    }
    *handled = false;
    return 0;
}

/* -------------------------------------------------------------- the file */

static int file_uint(json_t *v, const char *key, uint32_t lo, uint32_t hi, uint32_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        fprintf(stderr, "holdfast: config key \"%s\" must be an integer from %u to %u\n", key, lo,
                hi);
        return -1;
    }
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

static int file_string(json_t *v, const char *key, const char **out)
{
    if (!json_is_string(v)) {
        fprintf(stderr, "holdfast: config key \"%s\" must be a string\n", key);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

static int file_api_keys(server_config_t *c, json_t *v)
{
    size_t i;
    json_t *k;
    if (!json_is_array(v)) {
        fprintf(stderr, "holdfast: config key \"api_keys\" must be an array of strings\n");
        return -1;
    }
    json_array_foreach(v, i, k) {
        const char *text;
        if (file_string(k, "api_keys", &text) != 0 ||
            keys_add_api(c, "config key \"api_keys\"", text) != 0) {
            return -1;
        }
    }
    return 0;
}

static bool known_key(const char *key)
{
    static const char *const keys[] = {
        "listen",         "data",           "api_keys",          "admin_key",
        "durability",     "skus_max",       "holds_max",         "idempotency_keys_max",
        "identities_max", "customer_skus_max", "waitlist_max",   "sku_policies_max",
        "proofs_max",     "threads",        "compact_records",   "policy",
        "web_dir",        "hold_secret",    "access_log",        "audit_max",
        "api_key_file",   "admin_key_file",
        "attack_panel",   NULL,
    };
    for (size_t i = 0; keys[i] != NULL; i++) {
        if (strcmp(key, keys[i]) == 0) {
            return true;
        }
    }
    for (size_t i = 0; i < CONN_SETTING_COUNT; i++) {
        if (strcmp(key, conn_settings[i].key) == 0) {
            return true;
        }
    }
    return false;
}

/* The table capacities. Sets *handled when key is one of them. */
static int file_capacity(server_config_t *c, const char *key, json_t *v, bool *handled)
{
    static const struct {
        const char *key;
        size_t offset;
        uint32_t max;
    } caps[] = {
        {"skus_max", offsetof(guard_config_t, engine.skus_max), HF_SKUS_MAX_LIMIT},
        {"holds_max", offsetof(guard_config_t, engine.holds_max), HF_HOLDS_MAX_LIMIT},
        {"idempotency_keys_max", offsetof(guard_config_t, engine.idem_keys_max),
         HF_IDEM_KEYS_MAX_LIMIT},
        {"identities_max", offsetof(guard_config_t, identities_max), HF_IDENTITIES_MAX_LIMIT},
        {"customer_skus_max", offsetof(guard_config_t, customer_skus_max),
         HF_CUSTOMER_SKUS_MAX_LIMIT},
        {"waitlist_max", offsetof(guard_config_t, waitlist_max), HF_WAITLIST_MAX_LIMIT},
        {"sku_policies_max", offsetof(guard_config_t, sku_policies_max),
         HF_SKU_POLICIES_MAX_LIMIT},
        {"proofs_max", offsetof(guard_config_t, proofs_max), HF_PROOFS_MAX_LIMIT},
        {"audit_max", offsetof(guard_config_t, audit_max), HF_AUDIT_MAX_LIMIT},
    };
    *handled = false;
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        if (strcmp(key, caps[i].key) == 0) {
            *handled = true;
            uint32_t *field = (uint32_t *)((char *)&c->guard + caps[i].offset);
            return file_uint(v, key, 1, caps[i].max, field);
        }
    }
    return 0;
}

/* The policy to start with: validated now, so a bad file stops the start. */
static int file_policy(server_config_t *c, json_t *v)
{
    policy_config_t p = policy_config_default();
    policy_json_error_t err;
    uint64_t mask;
    policy_field_t bad;
    if (!policy_json_read(v, POLICY_MASK_ALL, &p, &mask, &err)) {
        fprintf(stderr, "holdfast: config key \"policy\": %s\n", err.message);
        return -1;
    }
    if (!policy_config_valid(&p, &bad)) {
        fprintf(stderr, "holdfast: config key \"policy\": %s.%s conflicts with another setting\n",
                policy_field_info(bad)->section, policy_field_info(bad)->key);
        return -1;
    }
    c->policy = p;
    c->has_policy = true;
    return 0;
}

static int file_key(server_config_t *c, keys_sources_t *src, const char *key, json_t *v)
{
    const char *s;
    bool handled;
    if (webhook_config_is_key(key)) {
        return webhook_config_key(&c->webhooks, key, v);
    }
    if (cluster_config_is_key(key)) {
        return cluster_config_key(c, key, v);
    }
    if (!known_key(key)) {
        fprintf(stderr, "holdfast: unknown config key \"%s\"\n", key);
        return -1;
    }
    if (strcmp(key, "api_keys") == 0) {
        return file_api_keys(c, v);
    }
    if (strcmp(key, "policy") == 0) {
        return file_policy(c, v);
    }
    int rc = file_capacity(c, key, v, &handled);
    if (handled) {
        return rc;
    }
    for (size_t i = 0; i < CONN_SETTING_COUNT; i++) {
        if (strcmp(key, conn_settings[i].key) == 0) {
            return file_uint(v, key, conn_settings[i].lo, conn_settings[i].hi,
                             conn_setting(c, i));
        }
    }
    if (strcmp(key, "threads") == 0) {
        return file_uint(v, key, 1, 64, &c->threads);
    }
    if (strcmp(key, "compact_records") == 0) {
        return file_uint(v, key, 0, UINT32_MAX, &c->compact_records);
    }
    if (strcmp(key, "attack_panel") == 0) {
        if (!json_is_boolean(v)) {
            fprintf(stderr, "holdfast: config key \"attack_panel\" must be true or false\n");
            return -1;
        }
        c->attack_panel = json_is_true(v);
        return 0;
    }
    if (file_string(v, key, &s) != 0) {
        return -1;
    }
    if (strcmp(key, "listen") == 0) {
        return set_listen(c, s);
    }
    if (strcmp(key, "data") == 0) {
        return set_text(c->data_dir, sizeof c->data_dir, "data", s);
    }
    if (strcmp(key, "admin_key") == 0) {
        return set_key_source(src->admin_config, sizeof src->admin_config,
                              "config key \"admin_key\"", s);
    }
    if (strcmp(key, "admin_key_file") == 0) {
        return set_key_source(src->admin_config_file, sizeof src->admin_config_file,
                              "config key \"admin_key_file\"", s);
    }
    if (strcmp(key, "api_key_file") == 0) {
        return set_key_source(src->api_config_file, sizeof src->api_config_file,
                              "config key \"api_key_file\"", s);
    }
    if (strcmp(key, "web_dir") == 0) {
        return set_web(c, s);
    }
    if (strcmp(key, "hold_secret") == 0) {
        return set_hold_secret(c, s);
    }
    if (strcmp(key, "access_log") == 0) {
        return set_access_log(c, key, s);
    }
    assert(strcmp(key, "durability") == 0);
    return set_durability(c, s);
}

/* A configuration file that holds keys should be no more readable than a
 * key file; it still starts (a file's mode is the operator's call), but the
 * log says so. */
static void warn_if_keys_readable(const char *path, json_t *root)
{
    struct stat st;
    if ((json_object_get(root, "api_keys") != NULL || json_object_get(root, "admin_key") != NULL) &&
        stat(path, &st) == 0 && (st.st_mode & 077) != 0) {
        fprintf(stderr,
                "level=warn msg=\"the config file holds keys and group or others may read it: "
                "chmod 600 it, or move the keys to api_key_file and admin_key_file\" "
                "config=%s mode=%04o\n",
                path, (unsigned)(st.st_mode & 07777));
    }
}

static int load_file(server_config_t *c, keys_sources_t *src, const char *path)
{
    json_error_t err;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) {
        fprintf(stderr, "holdfast: config %s:%d: %s\n", path, err.line, err.text);
        return -1;
    }
    int rc = 0;
    if (!json_is_object(root)) {
        fprintf(stderr, "holdfast: config %s: must be a JSON object\n", path);
        rc = -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (rc == 0) {
            rc = file_key(c, src, key, v);
        }
    }
    if (rc == 0) {
        warn_if_keys_readable(path, root);
    }
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------ flags */

static int apply_flag(server_config_t *c, keys_sources_t *src, const char *flag, const char *v)
{
    if (strcmp(flag, "--listen") == 0) {
        return set_listen(c, v);
    }
    if (strcmp(flag, "--data") == 0) {
        return set_text(c->data_dir, sizeof c->data_dir, "--data", v);
    }
    if (strcmp(flag, "--api-key") == 0) {
        return keys_add_api(c, "--api-key", v);
    }
    if (strcmp(flag, "--api-key-file") == 0) {
        return set_key_source(src->api_flag_file, sizeof src->api_flag_file, flag, v);
    }
    if (strcmp(flag, "--admin-key") == 0) {
        return set_key_source(src->admin_flag, sizeof src->admin_flag, flag, v);
    }
    if (strcmp(flag, "--admin-key-file") == 0) {
        return set_key_source(src->admin_flag_file, sizeof src->admin_flag_file, flag, v);
    }
    if (strcmp(flag, "--durability") == 0) {
        return set_durability(c, v);
    }
    if (strcmp(flag, "--web") == 0) {
        return set_web(c, v);
    }
    if (strcmp(flag, "--hold-secret") == 0) {
        return set_hold_secret(c, v);
    }
    if (strcmp(flag, "--access-log") == 0) {
        return set_access_log(c, flag, v);
    }
    if (strcmp(flag, "--attack-panel") == 0) {
        return set_attack_panel(c, v);
    }
    if (strcmp(flag, "--config") == 0) {
        return 0; /* read first, in parse_serve */
    }
    bool handled;
    int rc = flag_conn_setting(c, flag, v, &handled);
    if (handled) {
        return rc;
    }
    rc = cluster_config_flag(c, flag, v, &handled);
    if (handled) {
        return rc;
    }
    fprintf(stderr, "holdfast: unknown option %s (see holdfast serve --help)\n", flag);
    return -1;
}

static int parse_serve(server_config_t *c, keys_sources_t *src, int argc, char **argv)
{
    memset(src, 0, sizeof *src);
    for (int i = 0; i < argc; i += 2) {
        if (strncmp(argv[i], "--", 2) != 0) {
            fprintf(stderr, "holdfast: unexpected argument %s\n", argv[i]);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "holdfast: %s needs a value\n", argv[i]);
            return -1;
        }
        if (strcmp(argv[i], "--config") == 0 && load_file(c, src, argv[i + 1]) != 0) {
            return -1;
        }
    }
    /* Flags override the file; the keys are settled later (keys.h). */
    for (int i = 0; i + 1 < argc; i += 2) {
        if (apply_flag(c, src, argv[i], argv[i + 1]) != 0) {
            return -1;
        }
    }
    return 0;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return true;
        }
    }
    return false;
}

static const char usage_backup[] =
    "usage: holdfast backup [--data DIR] OUT\n"
    "\n"
    "Copies the data directory DIR (default ./data) to the new directory OUT,\n"
    "consistently, whether or not a server is running on DIR: OUT holds every\n"
    "change acknowledged before the copy began. Start from it with\n"
    "holdfast serve --data OUT.\n";

static const char usage_recover[] =
    "usage: holdfast recover [--data DIR] [--config FILE] [--accept-loss]\n"
    "\n"
    "Reads the data directory DIR as a start would and reports how far its\n"
    "journal is readable. A server refuses to start on a damaged or cut journal;\n"
    "with --accept-loss this rebuilds DIR from the last good record, says what\n"
    "was lost and moves the damaged files to DIR/damaged-<time>/. Give the\n"
    "server's --config so the tables are as large as the server's.\n"
    "Exit status: 0 whole or rebuilt, 3 damaged (nothing changed), 1 error.\n";

static int backup_main(int argc, char **argv)
{
    const char *dir = "data", *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_backup, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strncmp(argv[i], "--", 2) != 0 && out == NULL) {
            out = argv[i];
        } else {
            fprintf(stderr, "holdfast backup: unexpected argument %s\n\n%s", argv[i],
                    usage_backup);
            return 2;
        }
    }
    if (out == NULL) {
        fprintf(stderr, "holdfast backup: give the directory to copy to\n\n%s", usage_backup);
        return 2;
    }
    return server_backup_cmd(dir, out);
}

static int parse_serve(server_config_t *c, keys_sources_t *src, int argc, char **argv);

static int recover_main(int argc, char **argv)
{
    char *rest[64];
    int n = 0;
    bool accept_loss = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_recover, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--accept-loss") == 0) {
            accept_loss = true;
        } else if ((strcmp(argv[i], "--data") == 0 || strcmp(argv[i], "--config") == 0) &&
                   i + 1 < argc && n + 2 <= 64) {
            rest[n++] = argv[i];
            rest[n++] = argv[++i];
        } else {
            fprintf(stderr, "holdfast recover: unexpected argument %s\n\n%s", argv[i],
                    usage_recover);
            return 2;
        }
    }
    server_config_t c;
    keys_sources_t unused; /* recovering needs no keys */
    server_config_default(&c);
    if (parse_serve(&c, &unused, n, rest) != 0) {
        return 2;
    }
    if (c.journal_url[0] != '\0') {
        fprintf(stderr, "holdfast recover: the configuration keeps the journal in PostgreSQL; "
                        "a node checks it at every start, and PostgreSQL's own tools back it "
                        "up and restore it\n");
        return 2;
    }
    return server_recover_cmd(&c, accept_loss);
}

/* Says where the pages come from, and warns when nothing is there: an
 * installed server started with a build's --web, or the reverse, would
 * otherwise answer 404 at / without a word. */
static void log_web_dir(const server_config_t *c)
{
    struct stat st;
    if (c->web_dir[0] == '\0') {
        fprintf(stderr, "level=info msg=\"serving no web pages\" web=\"\"\n");
    } else if (stat(c->web_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr,
                "level=warn msg=\"no web pages: the directory is missing, so / and /admin answer "
                "404 (--web DIR names another; --web \\\"\\\" serves none)\" web=%s\n",
                c->web_dir);
    } else {
        fprintf(stderr, "level=info msg=\"web pages\" web=%s\n", c->web_dir);
    }
}

int server_main(int argc, char **argv, const char *web_dir)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage_main, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("holdfast %s (commit %s)\n", HF_VERSION, HF_COMMIT);
        return 0;
    }
    if (strcmp(argv[1], "solve") == 0) {
        return pow_cli_solve(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "sim") == 0) {
        return sim_main(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "backup") == 0) {
        return backup_main(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "recover") == 0) {
        return recover_main(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "serve") != 0) {
        fprintf(stderr, "holdfast: unknown command %s\n\n%s", argv[1], usage_main);
        return 2;
    }
    if (wants_help(argc - 2, argv + 2)) {
        printf("%s%s\n", usage_serve, web_dir);
        return 0;
    }
    server_config_t c;
    keys_sources_t src;
    server_config_default(&c);
    assert(strlen(web_dir) < sizeof c.web_dir);
    snprintf(c.web_dir, sizeof c.web_dir, "%s", web_dir);
    if (parse_serve(&c, &src, argc - 2, argv + 2) != 0 || keys_settle(&c, &src) != 0 ||
        webhook_config_finish(&c.webhooks) != 0 || cluster_config_finish(&c) != 0) {
        return 2;
    }
    log_web_dir(&c);
    return server_run(&c);
}
