/*
 * keys.c - the API keys from the command line, key files, the environment,
 * systemd's credentials and the configuration file; keys.h says the order.
 */
#include "keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_secret_file.h"

int keys_check(const char *what, const char *key)
{
    size_t n = strlen(key);
    if (n == 0) {
        fprintf(stderr, "holdfast: %s: a key is empty\n", what);
        return -1;
    }
    if (n >= SERVER_KEY_BYTES_MAX) {
        fprintf(stderr, "holdfast: %s: a key is longer than %d bytes\n", what,
                SERVER_KEY_BYTES_MAX - 1);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (key[i] <= ' ' || key[i] > '~') {
            fprintf(stderr,
                    "holdfast: %s: a key must be printable ASCII without spaces (it is sent as "
                    "\"Authorization: Bearer KEY\"); character %zu is not\n",
                    what, i + 1);
            return -1;
        }
    }
    return 0;
}

int keys_add_api(server_config_t *c, const char *what, const char *key)
{
    if (keys_check(what, key) != 0) {
        return -1;
    }
    for (uint32_t i = 0; i < c->api_key_count; i++) {
        if (strcmp(c->api_keys[i], key) == 0) {
            return 0;
        }
    }
    if (c->api_key_count == SERVER_API_KEYS_MAX) {
        fprintf(stderr, "holdfast: %s: more than %d shop keys in all\n", what,
                SERVER_API_KEYS_MAX);
        return -1;
    }
    snprintf(c->api_keys[c->api_key_count++], SERVER_KEY_BYTES_MAX, "%s", key);
    return 0;
}

/* ------------------------------------------------------------ key files */

/* Reads the key file path into buf (NUL-terminated). Returns 0, 1 if it
 * does not exist and missing_ok, or -1 after saying why. */
static int read_key_file(const char *what, const char *path, bool missing_ok, char *buf,
                         size_t size)
{
    size_t len;
    int open_errno;
    char why_buf[128];
    const char *why = hf_secret_file_read(path, buf, size,
                                          "it is larger than a key file may be (16 KiB)", &len,
                                          &open_errno, why_buf, sizeof why_buf);
    if (why == NULL) {
        return 0;
    }
    if (open_errno == ENOENT && missing_ok) {
        return 1;
    }
    fprintf(stderr, "holdfast: %s %s: %s%s\n", what, path,
            open_errno != 0 ? "cannot open it: " : "", why);
    return -1;
}

/* The next key of a key file's text at *p (advanced past its line), or NULL
 * at the end. Lines are trimmed of blanks; blank and '#' lines skipped. */
static char *next_key(char **p)
{
    while (**p != '\0') {
        char *line = *p;
        char *end = strchr(line, '\n');
        *p = end != NULL ? end + 1 : line + strlen(line);
        if (end != NULL) {
            *end = '\0';
        }
        while (*line == ' ' || *line == '\t') {
            line++;
        }
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r')) {
            line[--n] = '\0';
        }
        if (n > 0 && line[0] != '#') {
            return line;
        }
    }
    return NULL;
}

/* Adds the shop keys of a key file. Returns the keys read, or -1. */
static int api_file(server_config_t *c, const char *what, const char *path, bool missing_ok)
{
    char buf[KEYS_FILE_BYTES_MAX];
    int rc = read_key_file(what, path, missing_ok, buf, sizeof buf);
    if (rc != 0) {
        return rc > 0 ? 0 : -1;
    }
    char label[PATH_MAX + 64];
    snprintf(label, sizeof label, "%s %s", what, path);
    int count = 0;
    char *p = buf, *key;
    while (rc == 0 && (key = next_key(&p)) != NULL) {
        rc = keys_add_api(c, label, key);
        count++;
    }
    explicit_bzero(buf, sizeof buf);
    if (rc == 0 && count == 0) {
        fprintf(stderr, "holdfast: %s: holds no key (one a line; '#' starts a comment)\n",
                label);
        return -1;
    }
    return rc == 0 ? count : -1;
}

/* Sets the admin key from a key file holding exactly one. Returns 1 if it
 * was set, 0 if the file does not exist and missing_ok, or -1. */
static int admin_file(server_config_t *c, const char *what, const char *path, bool missing_ok)
{
    char buf[KEYS_FILE_BYTES_MAX];
    int rc = read_key_file(what, path, missing_ok, buf, sizeof buf);
    if (rc != 0) {
        return rc > 0 ? 0 : -1;
    }
    char label[PATH_MAX + 64];
    snprintf(label, sizeof label, "%s %s", what, path);
    char *p = buf;
    char *key = next_key(&p);
    const char *why = key == NULL               ? "holds no key"
                      : next_key(&p) != NULL    ? "holds more than one key (the admin key is one)"
                      : keys_check(label, key) != 0 ? ""
                                                    : NULL;
    if (why == NULL) {
        snprintf(c->admin_key, sizeof c->admin_key, "%s", key);
    } else if (why[0] != '\0') {
        fprintf(stderr, "holdfast: %s: %s\n", label, why);
    }
    explicit_bzero(buf, sizeof buf);
    return why == NULL ? 1 : -1;
}

/* ---------------------------------------------------------- environment */

/* Adds the comma-separated shop keys of HOLDFAST_API_KEYS, if set (blanks
 * around a key trimmed, empty items skipped). Returns the keys read, or -1. */
static int api_env(server_config_t *c)
{
    const char *v = getenv(KEYS_ENV_API);
    if (v == NULL) {
        return 0;
    }
    char list[SERVER_API_KEYS_MAX * SERVER_KEY_BYTES_MAX];
    if (strlen(v) >= sizeof list) {
        fprintf(stderr, "holdfast: %s is longer than 16 keys can be\n", KEYS_ENV_API);
        return -1;
    }
    snprintf(list, sizeof list, "%s", v);
    int count = 0, rc = 0;
    char *save = NULL;
    for (char *item = strtok_r(list, ",", &save); item != NULL && rc == 0;
         item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ') {
            item++;
        }
        size_t n = strlen(item);
        while (n > 0 && item[n - 1] == ' ') {
            item[--n] = '\0';
        }
        if (n > 0) {
            rc = keys_add_api(c, KEYS_ENV_API, item);
            count++;
        }
    }
    explicit_bzero(list, sizeof list);
    if (rc == 0 && count == 0) {
        fprintf(stderr, "holdfast: %s is set but holds no key (KEY1,KEY2,...)\n", KEYS_ENV_API);
        return -1;
    }
    return rc == 0 ? count : -1;
}

/* ------------------------------------------------------------- settling */

/* The credential file name of systemd's LoadCredential=, or "" if the
 * service manager passed no credentials. */
static void credential_path(const char *name, char *out, size_t size)
{
    const char *dir = getenv(KEYS_CREDENTIALS_ENV);
    out[0] = '\0';
    if (dir != NULL && dir[0] != '\0') {
        snprintf(out, size, "%s/%s", dir, name);
    }
}

/* The admin key from the first source that gives one (keys.h). On success
 * *from names it ("none" if no source did). */
static int settle_admin(server_config_t *c, const keys_sources_t *src, const char **from)
{
    char cred[PATH_MAX + 32];
    credential_path(KEYS_CREDENTIAL_ADMIN, cred, sizeof cred);
    const char *env = getenv(KEYS_ENV_ADMIN);
    int rc;
    c->admin_key[0] = '\0';
    *from = "none";
    if (src->admin_flag[0] != '\0' || src->admin_flag_file[0] != '\0') {
        if (src->admin_flag[0] != '\0' && src->admin_flag_file[0] != '\0') {
            fprintf(stderr, "holdfast: give --admin-key or --admin-key-file, not both\n");
            return -1;
        }
        *from = src->admin_flag[0] != '\0' ? "--admin-key" : "--admin-key-file";
        if (src->admin_flag[0] != '\0') {
            snprintf(c->admin_key, sizeof c->admin_key, "%s", src->admin_flag);
            return keys_check("--admin-key", c->admin_key);
        }
        return admin_file(c, "--admin-key-file", src->admin_flag_file, false) < 0 ? -1 : 0;
    }
    if (env != NULL) {
        *from = KEYS_ENV_ADMIN;
        if (env[0] == '\0') {
            fprintf(stderr, "holdfast: %s is set but empty\n", KEYS_ENV_ADMIN);
            return -1;
        }
        snprintf(c->admin_key, sizeof c->admin_key, "%s", env);
        return keys_check(KEYS_ENV_ADMIN, env);
    }
    if (cred[0] != '\0') {
        rc = admin_file(c, "the credential", cred, true);
        if (rc != 0) {
            *from = "credential";
            return rc < 0 ? -1 : 0;
        }
    }
    if (src->admin_config[0] != '\0' && src->admin_config_file[0] != '\0') {
        fprintf(stderr, "holdfast: the config file gives admin_key and admin_key_file: "
                        "keep one\n");
        return -1;
    }
    if (src->admin_config[0] != '\0') {
        *from = "config";
        snprintf(c->admin_key, sizeof c->admin_key, "%s", src->admin_config);
        return keys_check("config key \"admin_key\"", c->admin_key);
    }
    if (src->admin_config_file[0] != '\0') {
        *from = "admin_key_file";
        return admin_file(c, "config key \"admin_key_file\"", src->admin_config_file, false) < 0
                   ? -1
                   : 0;
    }
    return 0;
}

int keys_settle(server_config_t *c, const keys_sources_t *src)
{
    char cred[PATH_MAX + 32];
    credential_path(KEYS_CREDENTIAL_API, cred, sizeof cred);
    int from_flag_file = 0, from_env, from_cred = 0, from_config_file = 0;
    uint32_t before = c->api_key_count; /* --api-key and the file's api_keys */
    if ((src->api_flag_file[0] != '\0' &&
         (from_flag_file = api_file(c, "--api-key-file", src->api_flag_file, false)) < 0) ||
        (from_env = api_env(c)) < 0 ||
        (cred[0] != '\0' && (from_cred = api_file(c, "the credential", cred, true)) < 0) ||
        (src->api_config_file[0] != '\0' &&
         (from_config_file =
              api_file(c, "config key \"api_key_file\"", src->api_config_file, false)) < 0)) {
        return -1;
    }
    const char *admin_from;
    if (settle_admin(c, src, &admin_from) != 0) {
        return -1;
    }
    fprintf(stderr,
            "level=info msg=keys shop=%u shop_listed=%u shop_files=%d shop_env=%d "
            "shop_credential=%d admin=%s\n",
            c->api_key_count, before, from_flag_file + from_config_file, from_env, from_cred,
            admin_from);
    return 0;
}
