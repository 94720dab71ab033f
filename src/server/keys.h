/*
 * keys.h - the API keys, from wherever an operator keeps secrets
 * (server-private; cli.c settles them before a start).
 *
 * A key on the command line is visible to every user of the machine in
 * /proc/PID/cmdline and `ps`, so keys can also come from files (one key a
 * line), from the environment (/proc/PID/environ is readable by the
 * process's own user and root only), and from systemd's credentials
 * (LoadCredential=, read from $CREDENTIALS_DIRECTORY). The sources and their
 * precedence (keys_settle):
 *
 *   admin key: the first that gives one, in this order:
 *     1. the command line: --admin-key KEY or --admin-key-file FILE (not both)
 *     2. the environment: HOLDFAST_ADMIN_KEY
 *     3. the credential admin_key: $CREDENTIALS_DIRECTORY/admin_key
 *     4. the configuration file: admin_key or admin_key_file (not both)
 *   shop keys: every source adds its keys (--api-key, --api-key-file,
 *     HOLDFAST_API_KEYS (comma-separated), the credential api_keys, the
 *     file's api_keys and api_key_file), duplicates once, at most
 *     SERVER_API_KEYS_MAX in all.
 *
 * A key is 1 to SERVER_KEY_BYTES_MAX - 1 printable ASCII characters without
 * spaces (it travels in "Authorization: Bearer KEY"). A key file is a
 * regular file, at most KEYS_FILE_BYTES_MAX, with no permission for group or
 * others (as ssh asks of a private key: a key anyone can read is no key);
 * blank lines and lines starting with '#' are skipped; an admin key file
 * holds exactly one key. Every refusal stops the start with a message that
 * names the source and says what to do; a key's text is never printed.
 */
#ifndef HF_SERVER_KEYS_H
#define HF_SERVER_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#include "server.h"

/* 16 keys of 255 bytes with a comment each fit with room to spare. */
#define KEYS_FILE_BYTES_MAX (16 * 1024)

#define KEYS_ENV_API "HOLDFAST_API_KEYS"
#define KEYS_ENV_ADMIN "HOLDFAST_ADMIN_KEY"
#define KEYS_CREDENTIALS_ENV "CREDENTIALS_DIRECTORY"
#define KEYS_CREDENTIAL_API "api_keys"
#define KEYS_CREDENTIAL_ADMIN "admin_key"

/* The sources named on the command line and in the configuration file,
 * gathered while they are read; the files and the environment are read only
 * by keys_settle, so `holdfast recover`, which needs no keys, never does. */
typedef struct {
    char admin_flag[SERVER_KEY_BYTES_MAX]; /* --admin-key */
    char admin_flag_file[PATH_MAX];        /* --admin-key-file */
    char api_flag_file[PATH_MAX];          /* --api-key-file */
    char admin_config[SERVER_KEY_BYTES_MAX]; /* "admin_key" */
    char admin_config_file[PATH_MAX];        /* "admin_key_file" */
    char api_config_file[PATH_MAX];          /* "api_key_file" */
} keys_sources_t;

/* 0 if key may be a key, else -1 after saying why (naming what, not key). */
int keys_check(const char *what, const char *key);

/* Adds key to c's shop keys unless it is there already; -1 (said) if it
 * is malformed or the 16 are taken. */
int keys_add_api(server_config_t *c, const char *what, const char *key);

/* Reads every source in src, the environment and the credentials into c, in
 * the order above, then logs how many keys came from where (never a key).
 * Returns 0, or -1 after saying why on stderr. */
int keys_settle(server_config_t *c, const keys_sources_t *src);

#endif
