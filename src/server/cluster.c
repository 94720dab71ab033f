/*
 * cluster.c - a node of a cluster: its settings, taking the shop's lease,
 * and the tick's look at it (cluster.h).
 */
#include "cluster.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hf_clock.h"
#include "standby.h"

#define SHOP_DEFAULT "default"
/* How soon a standby looks again once the holder's lease has run out by
 * PostgreSQL's clock: a little after, so one look usually finds it free. */
#define LOOK_AFTER_EXPIRY_MS 20
#define LOOK_EVERY_MS_MIN 20

static int bad(const char *what, const char *value, const char *why)
{
    fprintf(stderr, "holdfast: %s %s: %s\n", what, value, why);
    return -1;
}

static bool starts_with(const char *v, const char *prefix)
{
    return strncmp(v, prefix, strlen(prefix)) == 0;
}

/* The URI is never echoed: it may carry a password. */
static int bad_journal(const char *what, const char *why)
{
    fprintf(stderr, "holdfast: %s: %s\n", what, why);
    return -1;
}

static int set_journal(server_config_t *c, const char *what, const char *v)
{
    if (!starts_with(v, "postgresql://") && !starts_with(v, "postgres://")) {
        return bad_journal(what, "expected a PostgreSQL URI, postgresql://USER@HOST:PORT/DB?...");
    }
    if (strlen(v) >= sizeof c->journal_url) {
        return bad_journal(what, "the URI is too long (1023 bytes at most)");
    }
    snprintf(c->journal_url, sizeof c->journal_url, "%s", v);
    return 0;
}

static int set_value(server_config_t *c, const char *what, const char *name, const char *v)
{
    if (strcmp(name, "journal") == 0) {
        return set_journal(c, what, v);
    }
    if (strcmp(name, "shop") == 0) {
        if (!store_name_ok(v, strlen(v), STORE_SHOP_NAME_MAX)) {
            return bad(what, v, "1 to 32 of a-z, 0-9 and -");
        }
        snprintf(c->shop, sizeof c->shop, "%s", v);
        return 0;
    }
    if (strcmp(name, "node") == 0) {
        if (!store_name_ok(v, strlen(v), STORE_NODE_NAME_MAX)) {
            return bad(what, v, "1 to 24 of a-z, 0-9 and -");
        }
        snprintf(c->node, sizeof c->node, "%s", v);
        return 0;
    }
    if (strcmp(name, "node_url") == 0) {
        if ((!starts_with(v, "http://") && !starts_with(v, "https://")) ||
            strlen(v) >= sizeof c->node_url || strpbrk(v, " \"\r\n") != NULL) {
            return bad(what, v, "expected http://HOST:PORT or https://HOST:PORT");
        }
        snprintf(c->node_url, sizeof c->node_url, "%s", v);
        return 0;
    }
    assert(strcmp(name, "lease_ms") == 0);
    char *end;
    errno = 0;
    long long ms = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno != 0 || ms < STORE_PG_LEASE_MS_MIN ||
        ms > STORE_PG_LEASE_MS_MAX) {
        return bad(what, v, "a number of ms from 500 to 60000");
    }
    c->lease_ms = (uint32_t)ms;
    return 0;
}

static const char *const keys[] = {"journal", "shop", "node", "node_url", "lease_ms", NULL};
static const char *const flags[] = {"--journal", "--shop", "--node", "--node-url", "--lease-ms",
                                    NULL};

bool cluster_config_is_key(const char *key)
{
    for (size_t i = 0; keys[i] != NULL; i++) {
        if (strcmp(key, keys[i]) == 0) {
            return true;
        }
    }
    return false;
}

int cluster_config_key(server_config_t *c, const char *key, json_t *v)
{
    char what[64];
    snprintf(what, sizeof what, "config key \"%s\"", key);
    if (strcmp(key, "lease_ms") == 0) {
        if (!json_is_integer(v)) {
            return bad_journal(what, "must be a number");
        }
        char text[32];
        snprintf(text, sizeof text, "%lld", (long long)json_integer_value(v));
        return set_value(c, what, key, text);
    }
    if (!json_is_string(v)) {
        return bad_journal(what, "must be a string");
    }
    return set_value(c, what, key, json_string_value(v));
}

int cluster_config_flag(server_config_t *c, const char *flag, const char *v, bool *handled)
{
    *handled = false;
    for (size_t i = 0; flags[i] != NULL; i++) {
        if (strcmp(flag, flags[i]) == 0) {
            *handled = true;
            return set_value(c, flag, keys[i], v);
        }
    }
    return 0;
}

/* The host's name, as a node name: lower case, anything else a dash. */
static void default_node(char *out, size_t size)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') {
        snprintf(host, sizeof host, "node");
    }
    size_t n = 0;
    for (size_t i = 0; host[i] != '\0' && n + 1 < size && n < STORE_NODE_NAME_MAX; i++) {
        char ch = host[i];
        ch = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
        out[n++] = ok ? ch : '-';
    }
    out[n] = '\0';
}

int cluster_config_finish(server_config_t *c)
{
    bool clustered = c->journal_url[0] != '\0';
    if (!clustered && (c->node[0] != '\0' || c->node_url[0] != '\0' || c->lease_ms != 0 ||
                       (c->shop[0] != '\0' && strcmp(c->shop, SHOP_DEFAULT) != 0))) {
        fprintf(stderr, "holdfast: --shop, --node, --node-url and --lease-ms need --journal "
                        "(the journal in PostgreSQL)\n");
        return -1;
    }
    if (!clustered) {
        return 0;
    }
    if (c->webhooks.endpoint_count > 0) {
        fprintf(stderr, "holdfast: webhooks need the journal in the data directory: their "
                        "outbox commits with it, and is not in PostgreSQL yet\n");
        return -1;
    }
    if (c->shop[0] == '\0') {
        snprintf(c->shop, sizeof c->shop, SHOP_DEFAULT);
    }
    if (c->node[0] == '\0') {
        default_node(c->node, sizeof c->node);
    }
    if (c->lease_ms == 0) {
        c->lease_ms = STORE_PG_LEASE_MS_DEFAULT;
    }
    return 0;
}

/* ---------------------------------------------------------- the lease */

static void log_held(const store_lease_info_t *held, const char *shop)
{
    fprintf(stderr,
            "level=info msg=\"waiting for the shop's lease\" shop=%s owner=%s owner_url=%s "
            "epoch=%llu remaining_ms=%lld\n",
            shop, held->owner[0] ? held->owner : "-", held->owner_url[0] ? held->owner_url : "-",
            (unsigned long long)held->epoch, (long long)held->remaining_ms);
}

/* Sleeps ms unless a stop signal comes first (then returns true). */
static bool stopped_within(const sigset_t *stop, int64_t ms)
{
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    int sig = sigtimedwait(stop, NULL, &t);
    return sig > 0;
}

/* Tries until the shop is this node's; 0 owned, 1 stopped, -1 error.
 * Meanwhile sb sends requests to the owner. */
static int wait_for_lease(server_t *s, standby_t *sb, const char *node_url, const sigset_t *stop)
{
    const server_config_t *c = &s->config;
    char err[640], said[640] = "";
    char last_owner[STORE_NODE_NAME_MAX + 1] = "\1";
    for (;;) {
        store_lease_info_t held;
        store_lease_t got = store_lease_take(&s->store, &held, err, sizeof err);
        if (got == STORE_LEASE_OWNED) {
            fprintf(stderr, "level=info msg=\"this node owns the shop\" shop=%s node=%s epoch=%llu\n",
                    c->shop, c->node, (unsigned long long)held.epoch);
            return 0;
        }
        int64_t wait_ms = c->lease_ms / 4;
        if (got == STORE_LEASE_HELD) {
            /* Never to itself: its own record is a run of its that ended. */
            standby_set_owner(sb, strcmp(held.owner_url, node_url) != 0 ? held.owner_url : "");
            if (strcmp(held.owner, last_owner) != 0) {
                log_held(&held, c->shop);
                snprintf(last_owner, sizeof last_owner, "%s", held.owner);
            }
            int64_t soon_ms = held.remaining_ms + LOOK_AFTER_EXPIRY_MS;
            wait_ms = soon_ms < wait_ms ? soon_ms : wait_ms;
            wait_ms = wait_ms < LOOK_EVERY_MS_MIN ? LOOK_EVERY_MS_MIN : wait_ms;
            said[0] = '\0';
        } else if (strcmp(err, said) != 0) {
            fprintf(stderr, "level=warn msg=\"cannot take the shop's lease; retrying\" err=\"%s\"\n",
                    err);
            snprintf(said, sizeof said, "%s", err);
        }
        if (stopped_within(stop, wait_ms)) {
            fprintf(stderr, "level=info msg=\"stopped while waiting for the shop's lease\"\n");
            return 1;
        }
    }
}

/* Opens the journal, trying again until PostgreSQL answers: a node may
 * start before its database, or while the database fails over. 0 opened,
 * 1 stopped. */
static int open_journal(server_t *s, const store_pg_t *pg, const sigset_t *stop)
{
    const server_config_t *c = &s->config;
    char err[640], said[640] = "";
    while (store_open_pg(&s->store, c->data_dir, pg, c->durability, c->compact_records, err,
                         sizeof err) != 0) {
        if (strcmp(err, said) != 0) {
            fprintf(stderr, "level=warn msg=\"cannot open the journal in PostgreSQL; retrying\" "
                            "err=\"%s\"\n",
                    err);
            snprintf(said, sizeof said, "%s", err);
        }
        if (stopped_within(stop, c->lease_ms / 4)) {
            fprintf(stderr, "level=info msg=\"stopped while waiting for PostgreSQL\"\n");
            return 1;
        }
    }
    return 0;
}

int cluster_take_shop(server_t *s, int listen_fd, const char *listen_addr, const sigset_t *stop)
{
    const server_config_t *c = &s->config;
    char node_url[SERVER_NODE_URL_BYTES_MAX + 16];
    snprintf(node_url, sizeof node_url, "%s", c->node_url);
    if (node_url[0] == '\0') {
        snprintf(node_url, sizeof node_url, "http://%s", listen_addr);
    }
    store_pg_t pg = {.url = c->journal_url, .shop = c->shop, .node = c->node,
                     .node_url = node_url, .lease_ms = c->lease_ms};
    standby_t *sb = standby_start(listen_fd, c->shop);
    if (sb == NULL) {
        fprintf(stderr, "level=error msg=\"cannot answer as a standby: the HTTP library did not "
                        "start\"\n");
        return -1;
    }
    fprintf(stderr, "level=info msg=\"journal in PostgreSQL; a standby until this node owns the "
                    "shop\" shop=%s node=%s node_url=%s lease_ms=%u addr=%s\n",
            c->shop, c->node, node_url, c->lease_ms, listen_addr);
    int rc = open_journal(s, &pg, stop);
    if (rc == 0) {
        rc = wait_for_lease(s, sb, node_url, stop);
    }
    standby_stop(sb);
    return rc;
}

/* A node whose journal failed has answered what waited (outcome unknown)
 * and refuses the rest (503 not_owner); it ends once those answers are out,
 * but keeps the shop from the next owner no longer than this. */
#define FAILED_ANSWER_MS 300

/* Ends the node once its failed journal's answers have gone out. */
static void end_after_answers(server_t *s, int64_t mono_ms)
{
    if (s->journal_failed_ms == 0) {
        s->journal_failed_ms = mono_ms;
    }
    int inflight = __atomic_load_n(&s->inflight, __ATOMIC_SEQ_CST);
    if (inflight > 0 && mono_ms - s->journal_failed_ms < FAILED_ANSWER_MS) {
        return;
    }
    fprintf(stderr, "level=error msg=\"the journal failed; what waited for it was answered, "
                    "exiting for a restart\" shop=%s node=%s inflight=%d\n",
            s->config.shop, s->config.node, inflight);
    fflush(stderr);
    _exit(STORE_EXIT_LEASE_LOST);
}

void cluster_check_lease(server_t *s, int64_t mono_ms)
{
    if (store_pg_failed(&s->store)) {
        end_after_answers(s, mono_ms);
        return;
    }
    if (store_owner_at(&s->store, mono_ms)) {
        return;
    }
    fprintf(stderr, "level=error msg=\"the shop's lease ran out before it was renewed; exiting "
                    "for a restart as a standby\" shop=%s node=%s\n",
            s->config.shop, s->config.node);
    fflush(stderr);
    _exit(STORE_EXIT_LEASE_LOST);
}
