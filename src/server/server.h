/*
 * server.h - the front door of the server module: configuration and the
 * `holdfast` command line.
 *
 * The server owns one guard (the engine with its defenses) and one store. Requests are handled on the
 * HTTP library's thread(s); every engine access is under one mutex, and every
 * reply waits (suspended, not blocking a thread) until the journal has made
 * durable everything the reply could reveal.
 */
#ifndef HF_SERVER_H
#define HF_SERVER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "guard.h"
#include "store.h"
#include "webhook.h"

/* Where the web pages are in a configuration made by server_config_default
 * (CMake passes the source tree's web/). The holdfast executable passes its
 * own default to server_main instead (main.c). */
#ifndef HF_WEB_DIR
#define HF_WEB_DIR "web"
#endif

/* A handful of shop keys is what integrations need; 16 bounds the constant-
 * time comparison loop. */
#define SERVER_API_KEYS_MAX 16
#define SERVER_KEY_BYTES_MAX 256
#define SERVER_HOST_BYTES_MAX 256
#define SERVER_JOURNAL_URL_BYTES_MAX 1024
#define SERVER_NODE_URL_BYTES_MAX 256

typedef struct {
    char host[SERVER_HOST_BYTES_MAX];
    uint16_t port; /* 0: pick a free port; the log line says which */
    char data_dir[PATH_MAX];
    char web_dir[PATH_MAX]; /* the pages served at / and /admin ("": none) */
    char api_keys[SERVER_API_KEYS_MAX][SERVER_KEY_BYTES_MAX];
    uint32_t api_key_count;
    char admin_key[SERVER_KEY_BYTES_MAX];
    store_durability_t durability;
    guard_config_t guard; /* the engine's tables and the defenses' */
    policy_config_t policy; /* with has_policy: applied at start if it differs */
    bool has_policy;
    uint32_t connections_max;
    uint32_t connections_per_address_max; /* 0: no cap */
    uint32_t connections_reserve;         /* past connections_max, for the operator */
    uint32_t keepalive_max;               /* held by the HTTP threads; past it, close */
    uint32_t head_timeout_ms, body_timeout_ms, idle_timeout_ms;
    uint32_t threads; /* HTTP threads; the engine is behind one lock anyway */
    uint32_t compact_records;
    /* --hold-secret optional: a shop key may still touch a hold (or waitlist
     * entry) without its secret, counted, while a shop's clients upgrade. */
    bool hold_secret_optional;
    /* --access-log: "off", "stderr" or a file's path (observe.h) */
    char access_log[PATH_MAX];
    webhook_config_t webhooks; /* the shop's URLs, secret and retries (docs/WEBHOOKS.md) */
    /* --attack-panel on: the dashboard's attack panel (POST /v1/sim) may run
     * the simulator against this server. Its buyers' purchases are real
     * sales, so it is off unless the server is a demo (make demo). */
    bool attack_panel;
    /* A cluster's node (cluster.h): journal_url "" keeps the journal in
     * data_dir; otherwise it is PostgreSQL's, shared by every node of the
     * shop, and this node serves the shop only while it holds the lease. */
    char journal_url[SERVER_JOURNAL_URL_BYTES_MAX];
    char shop[STORE_SHOP_NAME_MAX + 1];
    char node[STORE_NODE_NAME_MAX + 1];
    char node_url[SERVER_NODE_URL_BYTES_MAX]; /* "": http://<the listening address> */
    uint32_t lease_ms;
} server_config_t;

void server_config_default(server_config_t *c);

/* Runs `holdfast ARGS...`; returns the process exit code. web_dir is where
 * the pages are unless --web or web_dir says otherwise. */
int server_main(int argc, char **argv, const char *web_dir);

/* Serves until SIGTERM or SIGINT; returns 0 after a clean shutdown, non-zero
 * (with a logged reason) if it could not start. */
int server_run(const server_config_t *c);

/* `holdfast recover`: checks c's data directory as a start would and says
 * what a damaged journal still holds; with accept_loss, rebuilds it from
 * what is readable (store_rebuild). Returns the exit code. */
int server_recover_cmd(const server_config_t *c, bool accept_loss);

/* `holdfast backup`: a consistent copy of dir in out (store_backup). */
int server_backup_cmd(const char *dir, const char *out);

#endif
