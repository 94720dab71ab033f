/*
 * test_keys.c - the API keys from every place an operator may keep them.
 *
 * The promise under test (src/server/keys.h, holdfast(1) KEYS): keys come
 * from the command line, key files (--api-key-file, --admin-key-file, and
 * the configuration file's api_key_file and admin_key_file), the
 * environment (HOLDFAST_API_KEYS, HOLDFAST_ADMIN_KEY) and systemd's
 * credentials ($CREDENTIALS_DIRECTORY/api_keys, admin_key); shop keys from
 * every source add up, the admin key is the first of command line,
 * environment, credential, configuration file; a key given by file or
 * environment never shows in /proc/PID/cmdline; a key file that group or
 * others may use, a missing or empty one, or a malformed key stops the
 * start (exit 2) with a message naming the source, and never the key.
 *
 * The environment is the test process's, inherited by the server it starts;
 * every test that sets a variable unsets it before it asserts anything.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hf_test_http.h"

typedef hf_fixture_t fx_t;

static int setup(void **state)
{
    return hf_fixture_setup(state, NULL, false);
}

static int teardown(void **state)
{
    unsetenv("HOLDFAST_API_KEYS");
    unsetenv("HOLDFAST_ADMIN_KEY");
    unsetenv("CREDENTIALS_DIRECTORY");
    return hf_fixture_teardown(state);
}

static void start(fx_t *fx, const char *const *extra)
{
    assert_int_equal(hf_server_start(&fx->srv, extra), 0);
    fx->cl.port = fx->srv.port;
}

/* Writes text to ROOT/name with mode; the path goes to path (256 bytes). */
static void write_file(fx_t *fx, const char *name, const char *text, mode_t mode, char *path)
{
    snprintf(path, 256, "%s/%s", fx->srv.root, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* The status of one request made with key (NULL: none). */
static int status_as(fx_t *fx, const char *key, const char *method, const char *target,
                     const char *body)
{
    hf_client_t cl = {fx->cl.port, key, false};
    hf_response_t r;
    int status = hf_call(&cl, method, target, NULL, body, &r) == 0 ? r.status : -1;
    hf_response_free(&r);
    return status;
}

/* key is a shop key: it reads, but may not set stock. */
static void expect_shop(fx_t *fx, const char *key)
{
    assert_int_equal(status_as(fx, key, "GET", "/v1/skus", NULL), 200);
    assert_int_equal(status_as(fx, key, "PUT", "/v1/skus/cap-red", "{\"stock\": 5}"), 403);
}

/* key is the admin key: it sets stock (201 made, 200 changed). */
static void expect_admin(fx_t *fx, const char *key)
{
    int status = status_as(fx, key, "PUT", "/v1/skus/cap-red", "{\"stock\": 5}");
    assert_true(status == 201 || status == 200);
}

/* key is no key of this server's. */
static void expect_unknown(fx_t *fx, const char *key)
{
    assert_int_equal(status_as(fx, key, "GET", "/v1/skus", NULL), 401);
}

/* Whether needle is among the n bytes at hay (NULs included). */
static bool bytes_hold(const char *hay, size_t n, const char *needle)
{
    size_t len = strlen(needle);
    for (size_t i = 0; len <= n && i <= n - len; i++) {
        if (memcmp(hay + i, needle, len) == 0) {
            return true;
        }
    }
    return false;
}

/* The server's command line (/proc/PID/cmdline, NULs and all) holds none of
 * keys (NULL-terminated). */
static void expect_not_in_cmdline(fx_t *fx, const char *const *keys)
{
    char path[64], buf[8192];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)fx->srv.pid);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(n > 0 && n < sizeof buf);
    assert_true(bytes_hold(buf, n, "serve")); /* it is the server's */
    for (size_t i = 0; keys[i] != NULL; i++) {
        assert_false(bytes_hold(buf, n, keys[i]));
    }
}

/* Runs `serve` with args (NULL-terminated, at most 12) on the fixture's
 * data directory, expecting a refusal to start: exit status 2, a message
 * holding each of says (NULL-terminated) and none of the secrets. */
static void expect_refused(fx_t *fx, const char *const *args, const char *const *says,
                           const char *const *secrets)
{
    const char *argv[20] = {"serve", "--listen", "127.0.0.1:0", "--data", fx->srv.data_dir};
    size_t n = 5;
    for (size_t i = 0; args[i] != NULL; i++) {
        assert_true(n + 1 < sizeof argv / sizeof argv[0]);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    hf_run_result_t *res = calloc(1, sizeof *res);
    assert_non_null(res);
    int status = hf_run(argv, 10000, res);
    if (status != 2) {
        fprintf(stderr, "exit %d, stderr:\n%s\n", status, res->err);
    }
    assert_int_equal(status, 2);
    for (size_t i = 0; says[i] != NULL; i++) {
        if (strstr(res->err, says[i]) == NULL) {
            fprintf(stderr, "stderr lacks \"%s\":\n%s\n", says[i], res->err);
        }
        assert_non_null(strstr(res->err, says[i]));
    }
    for (size_t i = 0; secrets != NULL && secrets[i] != NULL; i++) {
        assert_null(strstr(res->err, secrets[i]));
    }
    free(res);
}

/* ================================================================ sources */

static void test_keys_from_files_work_and_stay_off_the_command_line(void **state)
{
    fx_t *fx = *state;
    char api[256], admin[256];
    write_file(fx, "api_keys", "# the shop's backend\nfile-shop-1\n\n  file-shop-2  \r\n", 0600,
               api);
    write_file(fx, "admin_key", "file-admin\n", 0400, admin);
    const char *args[] = {"--api-key-file", api, "--admin-key-file", admin, NULL};
    start(fx, args);
    expect_shop(fx, "file-shop-1");
    expect_shop(fx, "file-shop-2");
    expect_admin(fx, "file-admin");
    expect_unknown(fx, "# the shop's backend");
    expect_unknown(fx, NULL);
    const char *keys[] = {"file-shop-1", "file-shop-2", "file-admin", NULL};
    expect_not_in_cmdline(fx, keys);
}

static void test_keys_from_the_environment_work_and_stay_off_the_command_line(void **state)
{
    fx_t *fx = *state;
    setenv("HOLDFAST_API_KEYS", "env-shop-1, env-shop-2", 1);
    setenv("HOLDFAST_ADMIN_KEY", "env-admin", 1);
    int rc = hf_server_start(&fx->srv, NULL);
    unsetenv("HOLDFAST_API_KEYS");
    unsetenv("HOLDFAST_ADMIN_KEY");
    assert_int_equal(rc, 0);
    fx->cl.port = fx->srv.port;
    expect_shop(fx, "env-shop-1");
    expect_shop(fx, "env-shop-2");
    expect_admin(fx, "env-admin");
    expect_unknown(fx, "env-shop-1, env-shop-2");
    const char *keys[] = {"env-shop-1", "env-shop-2", "env-admin", NULL};
    expect_not_in_cmdline(fx, keys);
}

/* systemd's LoadCredential= puts each credential in a file of its own in
 * $CREDENTIALS_DIRECTORY, mode 0400. */
static void test_keys_from_systemd_credentials(void **state)
{
    fx_t *fx = *state;
    char dir[256], api[256], admin[256];
    snprintf(dir, sizeof dir, "%s/credentials", fx->srv.root);
    assert_int_equal(mkdir(dir, 0700), 0);
    write_file(fx, "credentials/api_keys", "cred-shop\n", 0400, api);
    write_file(fx, "credentials/admin_key", "cred-admin", 0400, admin);
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    int rc = hf_server_start(&fx->srv, NULL);
    unsetenv("CREDENTIALS_DIRECTORY");
    assert_int_equal(rc, 0);
    fx->cl.port = fx->srv.port;
    expect_shop(fx, "cred-shop");
    expect_admin(fx, "cred-admin");
    const char *keys[] = {"cred-shop", "cred-admin", NULL};
    expect_not_in_cmdline(fx, keys);
}

/* A credentials directory without holdfast's credentials is no error: the
 * service manager may pass others. */
static void test_a_credentials_directory_without_keys_is_not_an_error(void **state)
{
    fx_t *fx = *state;
    char dir[256], other[256];
    snprintf(dir, sizeof dir, "%s/credentials", fx->srv.root);
    assert_int_equal(mkdir(dir, 0700), 0);
    write_file(fx, "credentials/something_else", "x\n", 0400, other);
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    const char *args[] = {"--admin-key", "flag-admin", NULL};
    int rc = hf_server_start(&fx->srv, args);
    unsetenv("CREDENTIALS_DIRECTORY");
    assert_int_equal(rc, 0);
    fx->cl.port = fx->srv.port;
    expect_admin(fx, "flag-admin");
    expect_unknown(fx, "x");
}

static void test_key_files_named_in_the_config_file(void **state)
{
    fx_t *fx = *state;
    char api[256], admin[256], config[1024];
    write_file(fx, "api_keys", "cfg-file-shop\n", 0600, api);
    write_file(fx, "admin_key", "cfg-file-admin\n", 0600, admin);
    snprintf(config, sizeof config, "{\"api_key_file\": \"%s\", \"admin_key_file\": \"%s\"}", api,
             admin);
    assert_int_equal(hf_server_write_config(&fx->srv, config), 0);
    start(fx, NULL);
    expect_shop(fx, "cfg-file-shop");
    expect_admin(fx, "cfg-file-admin");
}

/* ============================================================= precedence */

/* Every source gives an admin key: the command line's wins, then the
 * environment's, then the credential's, then the file's. The others are no
 * keys at all. Shop keys from every source add up. */
static void test_the_admin_key_comes_from_the_first_source_and_shop_keys_add_up(void **state)
{
    fx_t *fx = *state;
    char dir[256], path[256], admin[256];
    snprintf(dir, sizeof dir, "%s/credentials", fx->srv.root);
    assert_int_equal(mkdir(dir, 0700), 0);
    write_file(fx, "credentials/admin_key", "cred-admin\n", 0400, path);
    write_file(fx, "credentials/api_keys", "cred-shop\n", 0400, path);
    write_file(fx, "admin_key", "flag-file-admin\n", 0600, admin);
    assert_int_equal(hf_server_write_config(&fx->srv, "{\"admin_key\": \"cfg-admin\", "
                                                      "\"api_keys\": [\"cfg-shop\"]}"),
                     0);
    const char *with_flag[] = {"--admin-key-file", admin, "--api-key", "flag-shop", NULL};
    const char *winners[] = {"flag-file-admin", "env-admin", "cred-admin", "cfg-admin"};
    const char *all[] = {"flag-file-admin", "env-admin", "cred-admin", "cfg-admin"};
    for (int round = 0; round < 4; round++) {
        if (round <= 1) {
            setenv("HOLDFAST_ADMIN_KEY", "env-admin", 1);
        }
        setenv("HOLDFAST_API_KEYS", "env-shop", 1);
        if (round <= 2) {
            setenv("CREDENTIALS_DIRECTORY", dir, 1);
        }
        int rc = hf_server_start(&fx->srv, round == 0 ? with_flag : NULL);
        unsetenv("HOLDFAST_ADMIN_KEY");
        unsetenv("HOLDFAST_API_KEYS");
        unsetenv("CREDENTIALS_DIRECTORY");
        assert_int_equal(rc, 0);
        fx->cl.port = fx->srv.port;
        expect_admin(fx, winners[round]);
        for (int other = 0; other < 4; other++) {
            if (other != round) {
                expect_unknown(fx, all[other]);
            }
        }
        expect_shop(fx, "env-shop");
        expect_shop(fx, "cfg-shop");
        if (round <= 2) {
            expect_shop(fx, "cred-shop");
        }
        if (round == 0) {
            expect_shop(fx, "flag-shop");
        }
        assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
    }
}

/* ================================================================ refusals */

static void test_a_key_file_others_may_read_stops_the_start(void **state)
{
    fx_t *fx = *state;
    char path[256];
    const mode_t modes[] = {0644, 0640, 0604, 0620};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        write_file(fx, "api_keys", "open-shop\n", modes[i], path);
        const char *args[] = {"--api-key-file", path, NULL};
        char mode_text[32];
        snprintf(mode_text, sizeof mode_text, "mode %04o", (unsigned)modes[i]);
        const char *says[] = {"--api-key-file", path, "group or others", mode_text, "chmod 600",
                              NULL};
        const char *secrets[] = {"open-shop", NULL};
        expect_refused(fx, args, says, secrets);
    }
    write_file(fx, "admin_key", "open-admin\n", 0644, path);
    const char *args[] = {"--admin-key-file", path, NULL};
    const char *says[] = {"--admin-key-file", path, "group or others", NULL};
    const char *secrets[] = {"open-admin", NULL};
    expect_refused(fx, args, says, secrets);
}

static void test_a_missing_or_empty_key_file_stops_the_start(void **state)
{
    fx_t *fx = *state;
    char path[256], missing[256];
    snprintf(missing, sizeof missing, "%s/no-such-file", fx->srv.root);
    const char *args_missing[] = {"--api-key-file", missing, NULL};
    const char *says_missing[] = {missing, "No such file or directory", NULL};
    expect_refused(fx, args_missing, says_missing, NULL);
    const char *admin_missing[] = {"--admin-key-file", missing, NULL};
    expect_refused(fx, admin_missing, says_missing, NULL);

    const char *empties[] = {"", "\n\n", "# only a comment\n   \n"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        write_file(fx, "keys", empties[i], 0600, path);
        const char *api[] = {"--api-key-file", path, NULL};
        const char *admin[] = {"--admin-key-file", path, NULL};
        const char *says[] = {path, "holds no key", NULL};
        expect_refused(fx, api, says, NULL);
        expect_refused(fx, admin, says, NULL);
    }
    write_file(fx, "keys", "admin-one\nadmin-two\n", 0600, path);
    const char *two[] = {"--admin-key-file", path, NULL};
    const char *says_two[] = {path, "more than one key", NULL};
    const char *secrets_two[] = {"admin-one", "admin-two", NULL};
    expect_refused(fx, two, says_two, secrets_two);

    const char *a_dir[] = {"--api-key-file", fx->srv.root, NULL};
    const char *says_dir[] = {"not a regular file", NULL};
    expect_refused(fx, a_dir, says_dir, NULL);

    /* A key file named in the config file is held to the same rules. */
    char config[512];
    snprintf(config, sizeof config, "{\"admin_key_file\": \"%s\"}", missing);
    assert_int_equal(hf_server_write_config(&fx->srv, config), 0);
    const char *with_config[] = {"--config", fx->srv.config_path, NULL};
    const char *says_config[] = {"admin_key_file", missing, NULL};
    expect_refused(fx, with_config, says_config, NULL);
}

/* A key file may hold up to 16 KiB less a byte (KEYS_FILE_BYTES_MAX): at
 * that size it is read whole, its last key included; a byte more stops the
 * start. */
static void test_a_key_file_at_its_size_limit_is_read_whole(void **state)
{
    fx_t *fx = *state;
    enum { LIMIT = 16 * 1024 };
    static const char key_line[] = "edge-shop-key\n";
    char *text = malloc(LIMIT + 1), *over = malloc(LIMIT + 1);
    assert_non_null(text);
    assert_non_null(over);
    size_t pad = LIMIT - 1 - (sizeof key_line - 1) - 3; /* "# " and its line end */
    text[0] = '#';
    text[1] = ' ';
    memset(text + 2, 'x', pad);
    snprintf(text + 2 + pad, LIMIT + 1 - 2 - pad, "\n%s", key_line);
    assert_int_equal(strlen(text), LIMIT - 1);
    snprintf(over, LIMIT + 1, "%s\n", text); /* one byte past the limit */
    char path[256];
    write_file(fx, "api_keys_over", over, 0600, path);
    free(over);
    const char *over_args[] = {"--api-key-file", path, NULL};
    const char *says[] = {path, "larger than a key file may be (16 KiB)", NULL};
    expect_refused(fx, over_args, says, NULL);

    write_file(fx, "api_keys", text, 0600, path);
    free(text);
    const char *args[] = {"--api-key-file", path, NULL};
    start(fx, args);
    expect_shop(fx, "edge-shop-key");
}

static void test_a_malformed_key_from_any_source_stops_the_start(void **state)
{
    fx_t *fx = *state;
    char path[256];
    write_file(fx, "keys", "good-key\nbad key\n", 0600, path);
    const char *file[] = {"--api-key-file", path, NULL};
    const char *says_file[] = {path, "printable ASCII without spaces", NULL};
    const char *secrets[] = {"bad key", NULL};
    expect_refused(fx, file, says_file, secrets);

    const char *flag[] = {"--api-key", "tab\tkey", NULL};
    const char *says_flag[] = {"--api-key", "printable ASCII without spaces", NULL};
    expect_refused(fx, flag, says_flag, NULL);

    setenv("HOLDFAST_ADMIN_KEY", "", 1);
    const char *none[] = {NULL};
    const char *says_empty[] = {"HOLDFAST_ADMIN_KEY", "empty", NULL};
    expect_refused(fx, none, says_empty, NULL);
    unsetenv("HOLDFAST_ADMIN_KEY");

    /* Blanks around an item are trimmed and empty items skipped, but a
     * list of nothing holds no key. */
    setenv("HOLDFAST_API_KEYS", " , ,", 1);
    const char *says_nothing[] = {"HOLDFAST_API_KEYS", "holds no key", NULL};
    expect_refused(fx, none, says_nothing, NULL);
    setenv("HOLDFAST_API_KEYS", "good,bad\x01key", 1);
    const char *says_list[] = {"HOLDFAST_API_KEYS", "printable ASCII without spaces", NULL};
    const char *secrets_env[] = {"bad\x01key", NULL};
    expect_refused(fx, none, says_list, secrets_env);
    unsetenv("HOLDFAST_API_KEYS");
}

static void test_an_admin_key_twice_on_one_level_stops_the_start(void **state)
{
    fx_t *fx = *state;
    char path[256];
    write_file(fx, "admin_key", "file-admin\n", 0600, path);
    const char *both[] = {"--admin-key", "flag-admin", "--admin-key-file", path, NULL};
    const char *says[] = {"--admin-key or --admin-key-file, not both", NULL};
    expect_refused(fx, both, says, NULL);

    char config[512];
    snprintf(config, sizeof config, "{\"admin_key\": \"cfg-admin\", \"admin_key_file\": \"%s\"}",
             path);
    assert_int_equal(hf_server_write_config(&fx->srv, config), 0);
    const char *with_config[] = {"--config", fx->srv.config_path, NULL};
    const char *says_config[] = {"admin_key and admin_key_file", NULL};
    expect_refused(fx, with_config, says_config, NULL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_keys_from_files_work_and_stay_off_the_command_line),
        T(test_keys_from_the_environment_work_and_stay_off_the_command_line),
        T(test_keys_from_systemd_credentials),
        T(test_a_credentials_directory_without_keys_is_not_an_error),
        T(test_key_files_named_in_the_config_file),
        T(test_the_admin_key_comes_from_the_first_source_and_shop_keys_add_up),
        T(test_a_key_file_others_may_read_stops_the_start),
        T(test_a_missing_or_empty_key_file_stops_the_start),
        T(test_a_key_file_at_its_size_limit_is_read_whole),
        T(test_a_malformed_key_from_any_source_stops_the_start),
        T(test_an_admin_key_twice_on_one_level_stops_the_start),
    };
    return hf_tests_done(cmocka_run_group_tests(tests, NULL, NULL));
}
