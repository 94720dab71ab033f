/*
 * test_observe.c - what an operator reads: the access log and /metrics'
 * request latency and per-sku series (docs/OBSERVABILITY.md).
 *
 * The access log is flushed by a thread of its own; these tests read it
 * after SIGTERM (which writes out what is buffered), never after a sleep.
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hf_test_http.h"

typedef hf_fixture_t fx_t;

#define SHOP "shop-key-observe"
#define ADMIN "admin-key-observe"
#define KEYS "\"api_keys\": [\"" SHOP "\"], \"admin_key\": \"" ADMIN "\""

static int setup(void **state)
{
    return hf_fixture_setup(state, "{" KEYS "}", false);
}

static int teardown(void **state)
{
    return hf_fixture_teardown(state);
}

static const char *or_missing(const char *s)
{
    return s != NULL ? s : "(missing)";
}

static hf_client_t as(const fx_t *fx, const char *key)
{
    return (hf_client_t){.port = fx->srv.port, .bearer = key, .secrets = false};
}

static void start(fx_t *fx, const char *const *extra)
{
    assert_int_equal(hf_server_start(&fx->srv, extra), 0);
    fx->cl.port = fx->srv.port;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    assert_non_null(text);
    size_t n = fread(text, 1, (size_t)size, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static hf_response_t call(const hf_client_t *cl, const char *method, const char *target,
                          const char *headers, const char *body)
{
    hf_response_t r;
    assert_int_equal(hf_call(cl, method, target, headers, body, &r), 0);
    return r;
}

static void expect_call(const hf_client_t *cl, const char *method, const char *target,
                        const char *headers, const char *body, int status)
{
    hf_response_t r = call(cl, method, target, headers, body);
    assert_true(hf_expect_status(&r, status));
    hf_response_free(&r);
}

/* The line of text holding needle (a copy), or NULL. */
static char *line_with(const char *text, const char *needle)
{
    const char *at = strstr(text, needle);
    if (at == NULL) {
        return NULL;
    }
    const char *start = at;
    while (start > text && start[-1] != '\n') {
        start--;
    }
    const char *end = strchr(at, '\n');
    size_t n = end != NULL ? (size_t)(end - start) : strlen(start);
    char *line = malloc(n + 1);
    assert_non_null(line);
    memcpy(line, start, n);
    line[n] = '\0';
    return line;
}

/* The key id the server printed for a role at start ("key id" role=R ...). */
static void key_id_of(const fx_t *fx, const char *role, char *out, size_t size)
{
    char *log = read_text(fx->srv.log_path);
    assert_non_null(log);
    char needle[64];
    snprintf(needle, sizeof needle, "msg=\"key id\" role=%s", role);
    char *line = line_with(log, needle);
    assert_non_null(line);
    const char *key = strstr(line, " key=");
    assert_non_null(key);
    snprintf(out, size, "%.8s", key + 5);
    assert_int_equal(strlen(out), 8);
    free(line);
    free(log);
}

/* ============================== access log ============================== */

static void test_access_log_has_a_line_per_request_without_ids_secrets_or_keys(void **state)
{
    fx_t *fx = *state;
    char path[256];
    snprintf(path, sizeof path, "%s/access.log", fx->srv.root);
    const char *extra[] = {"--access-log", path, NULL};
    start(fx, extra);
    hf_client_t admin = as(fx, ADMIN), shop = as(fx, SHOP);
    expect_call(&admin, "PUT", "/v1/skus/cap-red", NULL, "{\"stock\": 5}", 201);
    hf_response_t r = call(&shop, "POST", "/v1/holds", "X-Request-Id: req-42\r\n",
                           "{\"customer\": \"u-1\", \"lines\": [{\"sku\": \"cap-red\", \"qty\": 1}]}");
    assert_true(hf_expect_status(&r, 201));
    char id[64], secret[64], target[128], headers[128];
    snprintf(id, sizeof id, "%s", or_missing(hf_json_str(r.json, "id")));
    snprintf(secret, sizeof secret, "%s", or_missing(hf_json_str(r.json, "secret")));
    hf_response_free(&r);
    snprintf(target, sizeof target, "/v1/holds/%s/commit", id);
    snprintf(headers, sizeof headers, "Hold-Secret: %s\r\nX-Request-Id: bad id!\r\n", secret);
    expect_call(&shop, "POST", target, headers, "{\"order_ref\": \"o-1\"}", 200);
    expect_call(&shop, "POST", target, headers, NULL, 200); /* committing again: harmless */
    expect_call(&shop, "GET", "/v1/holds/hold_0000000000x", NULL, NULL, 403);
    expect_call(&shop, "GET", "/no/such/route", NULL, NULL, 404);
    char admin_id[16], shop_id[16];
    key_id_of(fx, "admin", admin_id, sizeof admin_id);
    key_id_of(fx, "shop", shop_id, sizeof shop_id);
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0); /* writes out the buffer */

    char *text = read_text(path);
    assert_non_null(text);
    fprintf(stderr, "access log:\n%s", text);
    /* Nothing that would let a reader of the log touch a hold or use a key. */
    assert_null(strstr(text, id));
    assert_null(strstr(text, secret));
    assert_null(strstr(text, "hs_"));
    assert_null(strstr(text, SHOP));
    assert_null(strstr(text, ADMIN));
    assert_null(strstr(text, "/no/such"));
    int lines = 0;
    for (const char *p = text; (p = strchr(p, '\n')) != NULL; p++) {
        lines++;
    }
    assert_int_equal(lines, 6);
    const char *fields[] = {"time=", " method=", " route=", " status=", " ms=",
                            " bytes=", " client=127.0.0.1 ", " key="};
    for (const char *line = text; *line != '\0'; line = strchr(line, '\n') + 1) {
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            const char *end = strchr(line, '\n');
            const char *hit = strstr(line, fields[i]);
            assert_true(hit != NULL && hit < end);
        }
    }
    char *put = line_with(text, "method=PUT");
    assert_non_null(put);
    assert_non_null(strstr(put, "route=/v1/skus/{sku} status=201 "));
    assert_non_null(strstr(put, admin_id));
    char *hold = line_with(text, "request_id=req-42");
    assert_non_null(hold);
    assert_non_null(strstr(hold, "method=POST route=/v1/holds status=201 "));
    assert_non_null(strstr(hold, shop_id));
    char *commit = line_with(text, "route=/v1/holds/{id}/commit");
    assert_non_null(commit);
    assert_non_null(strstr(commit, "status=200 ms="));
    assert_null(strstr(commit, "request_id")); /* "bad id!" is not logged */
    char *refused = line_with(text, "status=403");
    assert_non_null(refused);
    assert_non_null(strstr(refused, "route=/v1/holds/{id} status=403 error=hold_secret_required "));
    char *unmatched = line_with(text, "status=404");
    assert_non_null(unmatched);
    assert_non_null(strstr(unmatched, "route=unmatched status=404 error=not_found "));
    free(put);
    free(hold);
    free(commit);
    free(refused);
    free(unmatched);
    free(text);
}

static void test_access_log_goes_to_stderr_by_default_and_off_is_off(void **state)
{
    fx_t *fx = *state;
    start(fx, NULL);
    expect_call(&fx->cl, "GET", "/healthz", NULL, NULL, 200);
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
    char *log = read_text(fx->srv.log_path);
    assert_non_null(log);
    assert_non_null(strstr(log, "method=GET route=/healthz status=200 "));
    free(log);

    const char *off[] = {"--access-log", "off", NULL};
    start(fx, off);
    expect_call(&fx->cl, "GET", "/healthz", NULL, NULL, 200);
    hf_client_t admin = as(fx, ADMIN);
    hf_response_t r = call(&admin, "GET", "/metrics", NULL, NULL);
    assert_true(hf_expect_status(&r, 200));
    assert_non_null(strstr(r.body, "holdfast_access_log_lines_total{outcome=\"logged\"} 0\n"));
    assert_non_null(strstr(r.body, "holdfast_access_log_lines_total{outcome=\"dropped\"} 0\n"));
    hf_response_free(&r);
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
    log = read_text(fx->srv.log_path);
    assert_non_null(log);
    assert_null(strstr(log, "route=/healthz"));
    free(log);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_access_log_file_is_opened_again_on_sighup(void **state)
{
    fx_t *fx = *state;
    char path[256], rotated[272];
    snprintf(path, sizeof path, "%s/access.log", fx->srv.root);
    snprintf(rotated, sizeof rotated, "%s.1", path);
    const char *extra[] = {"--access-log", path, NULL};
    start(fx, extra);
    expect_call(&fx->cl, "GET", "/healthz", "X-Request-Id: before-rotation\r\n", NULL, 200);
    assert_int_equal(rename(path, rotated), 0); /* as logrotate does */
    assert_int_equal(kill(fx->srv.pid, SIGHUP), 0);
    /* The file comes back when the log's thread opens it again (its next
     * flush, 50 ms): wait for that, bounded. */
    long long deadline_ms = hf_now_ms() + 5000;
    while (!exists(path) && hf_now_ms() < deadline_ms) {
        hf_sleep_ms(10);
    }
    assert_true(exists(path));
    expect_call(&fx->cl, "GET", "/healthz", "X-Request-Id: after-rotation\r\n", NULL, 200);
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
    char *old = read_text(rotated), *now = read_text(path);
    assert_non_null(old);
    assert_non_null(now);
    assert_non_null(strstr(old, "request_id=before-rotation"));
    assert_null(strstr(old, "request_id=after-rotation"));
    assert_non_null(strstr(now, "request_id=after-rotation"));
    free(old);
    free(now);
}

static void test_access_log_that_cannot_be_opened_stops_the_start(void **state)
{
    fx_t *fx = *state;
    const char *argv[] = {"serve",        "--listen", "127.0.0.1:0",
                          "--data",       fx->srv.data_dir, "--access-log",
                          "/nonexistent-dir/access.log", NULL};
    hf_run_result_t res;
    assert_true(hf_run(argv, 10000, &res) > 0);
    assert_non_null(strstr(res.err, "cannot open the access log"));
    const char *config[] = {"serve", "--listen", "127.0.0.1:0", "--data", fx->srv.data_dir,
                            "--access-log", "", NULL};
    assert_int_equal(hf_run(config, 10000, &res), 2);
    assert_non_null(strstr(res.err, "--access-log"));
}

/* =============================== metrics =============================== */

static char *scrape(const fx_t *fx)
{
    hf_client_t admin = as(fx, ADMIN);
    hf_response_t r = call(&admin, "GET", "/metrics", NULL, NULL);
    assert_true(hf_expect_status(&r, 200));
    char *text = strdup(r.body);
    hf_response_free(&r);
    return text;
}

/* The value of the series named exactly so (labels included); -1 if none. */
static double series(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = text; line != NULL && *line != '\0';
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, name, n) == 0 && line[n] == ' ') {
            return strtod(line + n + 1, NULL);
        }
    }
    return -1;
}

/* Buckets of one route's histogram: cumulative, ending in +Inf == count. */
static void expect_histogram(const char *text, const char *labels, double count)
{
    char name[256], prefix[256];
    snprintf(name, sizeof name, "holdfast_http_request_duration_seconds_count{%s}", labels);
    if (series(text, name) != count) {
        fprintf(stderr, "%s: %g, not %g\n", name, series(text, name), count);
    }
    assert_true(series(text, name) == count);
    snprintf(prefix, sizeof prefix, "holdfast_http_request_duration_seconds_bucket{%s,le=\"",
             labels);
    double last = 0;
    int buckets = 0;
    for (const char *at = strstr(text, prefix); at != NULL; at = strstr(at + 1, prefix)) {
        const char *value = strchr(at, ' ');
        assert_non_null(value);
        double v = strtod(value + 1, NULL);
        assert_true(v >= last);
        last = v;
        buckets++;
    }
    assert_int_equal(buckets, 16);
    snprintf(name, sizeof name, "holdfast_http_request_duration_seconds_bucket{%s,le=\"+Inf\"}",
             labels);
    assert_true(series(text, name) == count);
    snprintf(name, sizeof name, "holdfast_http_request_duration_seconds_sum{%s}", labels);
    assert_true(series(text, name) >= 0);
}

static void test_latency_histogram_counts_each_route_and_method(void **state)
{
    fx_t *fx = *state;
    start(fx, NULL);
    hf_client_t admin = as(fx, ADMIN), shop = as(fx, SHOP);
    for (int i = 0; i < 3; i++) {
        expect_call(&admin, "PUT", "/v1/skus/cap", NULL, "{\"stock\": 5}", i == 0 ? 201 : 200);
    }
    for (int i = 0; i < 7; i++) {
        expect_call(&shop, "GET", "/v1/skus/cap", NULL, NULL, 200);
    }
    expect_call(&shop, "GET", "/v1/skus/nope", NULL, NULL, 404);
    expect_call(&shop, "GET", "/not/a/route", NULL, NULL, 404);
    expect_call(&shop, "GET", "/not/another", NULL, NULL, 404);
    char *m = scrape(fx);
    assert_non_null(strstr(m, "# HELP holdfast_http_request_duration_seconds "));
    assert_non_null(strstr(m, "# TYPE holdfast_http_request_duration_seconds histogram\n"));
    expect_histogram(m, "route=\"/v1/skus/*\",method=\"PUT\"", 3);
    expect_histogram(m, "route=\"/v1/skus/*\",method=\"GET\"", 8); /* the 404 too */
    expect_histogram(m, "route=\"unmatched\",method=\"other\"", 2);
    /* Routes not asked have no series: the page stays small. */
    assert_null(strstr(m, "holdfast_http_request_duration_seconds_count{route=\"/v1/policy\""));
    free(m);
}

static int hold_state_is(const fx_t *fx, const char *sku, const char *state)
{
    char target[64];
    snprintf(target, sizeof target, "/v1/skus/%s", sku);
    hf_client_t admin = as(fx, ADMIN);
    hf_response_t r = call(&admin, "GET", target, NULL, NULL);
    assert_true(hf_expect_status(&r, 200));
    const char *now = hf_json_str(json_object_get(r.json, "escalation"), "state");
    int same = now != NULL && strcmp(now, state) == 0;
    hf_response_free(&r);
    return same;
}

/* A sku that escalates keeps its conversion series: the switch is a gauge
 * of its own, not a label whose change would start a new series. */
static void test_sku_conversion_keeps_its_labels_across_an_escalation(void **state)
{
    fx_t *fx = *state;
    char config[2048];
    snprintf(config, sizeof config, "{" KEYS ", \"policy\": %s}", HF_POLICY_OFF);
    char *on = strstr(config, "\"escalation\": {\"enabled\": 0}");
    assert_non_null(on);
    on[strlen("\"escalation\": {\"enabled\": ")] = '1';
    assert_int_equal(hf_server_write_config_raw(&fx->srv, config), 0);
    start(fx, NULL);
    hf_client_t admin = as(fx, ADMIN), shop = as(fx, SHOP);
    expect_call(&admin, "PUT", "/v1/skus/calm", NULL, "{\"stock\": 1000}", 201);
    expect_call(&admin, "PUT", "/v1/skus/hot",
                NULL,
                "{\"stock\": 10, \"policy\": {\"escalation\": {\"min_holds\": 5, "
                "\"conversion_pct\": 25, \"available_pct\": 50}}}",
                201);
    char body[256];
    for (int i = 0; i < 10; i++) { /* the shop converts well elsewhere */
        snprintf(body, sizeof body,
                 "{\"customer\": \"calm-%d\", \"lines\": [{\"sku\": \"calm\", \"qty\": 1}], "
                 "\"commit\": true, \"order_ref\": \"o-%d\"}",
                 i, i);
        expect_call(&shop, "POST", "/v1/holds", NULL, body, 201);
    }
    int held = 0;
    char *before = NULL;
    while (held < 10 && !hold_state_is(fx, "hot", "escalated")) {
        snprintf(body, sizeof body,
                 "{\"customer\": \"raider-%d\", \"lines\": [{\"sku\": \"hot\", \"qty\": 1}]}",
                 held);
        expect_call(&shop, "POST", "/v1/holds", NULL, body, 201);
        held++;
        char *m = scrape(fx); /* the first with the sku's series, before the switch */
        if (before == NULL && series(m, "holdfast_sku_conversion{sku=\"hot\"}") >= 0 &&
            hold_state_is(fx, "hot", "normal")) {
            before = m;
        } else {
            free(m);
        }
    }
    assert_true(hold_state_is(fx, "hot", "escalated"));
    char *after = scrape(fx);
    assert_non_null(before);
    assert_true(series(before, "holdfast_sku_conversion{sku=\"hot\"}") >= 0);
    assert_true(series(before, "holdfast_sku_escalated{sku=\"hot\"}") == 0);
    assert_true(series(after, "holdfast_sku_conversion{sku=\"hot\"}") >= 0);
    assert_true(series(after, "holdfast_sku_escalated{sku=\"hot\"}") == 1);
    assert_true(series(after, "holdfast_sku_escalated{sku=\"calm\"}") == 0);
    assert_null(strstr(after, "holdfast_sku_conversion{sku=\"hot\","));
    assert_non_null(strstr(after, "# HELP holdfast_sku_escalated "));
    free(before);
    free(after);
}

/* Lines past what the log's two 1 MiB buffers hold while its file does not
 * take them are dropped and counted; the replies never wait. The file is a
 * pipe nobody reads: full at 64 KiB, then the log's writer waits in write(). */
#define FULL_LOG_REQUESTS 20000
#define FULL_LOG_BATCH 50
/* A line here has at least the time, method, route, status, client and the
 * request id: 150 bytes. So the pipe and the buffers hold at most this many. */
#define FULL_LOG_LINES_HELD ((64 * 1024 + 2 * 1024 * 1024) / 150)

static void test_a_stuck_access_log_drops_lines_never_a_reply(void **state)
{
    HF_SKIP_WITH_PG(); /* the log is the same whichever journal */
    fx_t *fx = *state;
    char path[256];
    snprintf(path, sizeof path, "%s/access.fifo", fx->srv.root);
    assert_int_equal(mkfifo(path, 0600), 0);
    int reader = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* so the server's open returns */
    assert_true(reader >= 0);
    const char *extra[] = {"--access-log", path, NULL};
    start(fx, extra);
    hf_conn_t c;
    assert_int_equal(hf_conn_open(&c, fx->srv.port, NULL), 0);
    /* Sent FULL_LOG_BATCH at a time on one connection (pipelined), so the
     * sanitized server answers 20,000 in a few seconds. */
    static const char one[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "X-Request-Id: a-request-id-of-sixty-characters-to-make-each-line-long\r\n\r\n";
    char batch[FULL_LOG_BATCH * (sizeof one - 1)];
    for (int i = 0; i < FULL_LOG_BATCH; i++) {
        memcpy(batch + (size_t)i * (sizeof one - 1), one, sizeof one - 1);
    }
    for (int sent = 0; sent < FULL_LOG_REQUESTS; sent += FULL_LOG_BATCH) {
        assert_int_equal(hf_conn_send_raw(&c, batch, sizeof batch), 0);
        for (int i = 0; i < FULL_LOG_BATCH; i++) {
            hf_response_t r;
            assert_int_equal(hf_conn_read(&c, &r), 0);
            assert_true(hf_expect_status(&r, 200));
            hf_response_free(&r);
        }
    }
    hf_conn_close(&c);
    char *m = scrape(fx);
    double logged = series(m, "holdfast_access_log_lines_total{outcome=\"logged\"}");
    double dropped = series(m, "holdfast_access_log_lines_total{outcome=\"dropped\"}");
    free(m);
    /* Every request's line is one or the other (a line is counted before
     * its reply is sent; the start's probes add a few); no more was kept
     * than the pipe and the two buffers hold. */
    assert_true(logged + dropped >= FULL_LOG_REQUESTS && logged + dropped <= FULL_LOG_REQUESTS + 100);
    assert_true(logged <= FULL_LOG_LINES_HELD);
    assert_true(dropped >= FULL_LOG_REQUESTS - FULL_LOG_LINES_HELD);
    fprintf(stderr, "stuck access log: %.0f lines logged, %.0f dropped\n", logged, dropped);
    /* The writer stuck in write() gets EPIPE: the stop is still clean. */
    close(reader);
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
}

/* ================================ threads ================================ */

/* How many of the server's threads have this name (/proc/PID/task/N/comm). */
static int threads_named(pid_t pid, const char *name)
{
    char dir_path[64];
    snprintf(dir_path, sizeof dir_path, "/proc/%d/task", (int)pid);
    DIR *dir = opendir(dir_path);
    assert_non_null(dir);
    int count = 0;
    for (struct dirent *d = readdir(dir); d != NULL; d = readdir(dir)) {
        if (d->d_name[0] == '.') {
            continue;
        }
        char path[384], comm[32] = "";
        snprintf(path, sizeof path, "%s/%s/comm", dir_path, d->d_name);
        FILE *f = fopen(path, "r"); /* procfs: no size to seek to */
        if (f != NULL && fgets(comm, sizeof comm, f) != NULL) {
            comm[strcspn(comm, "\n")] = '\0';
            count += strcmp(comm, name) == 0;
        }
        if (f != NULL) { /* NULL: the thread ended meanwhile */
            fclose(f);
        }
    }
    closedir(dir);
    return count;
}

/* Operators and the benchmark tell the threads apart by name (top -H). */
static void test_threads_are_named_for_what_they_do(void **state)
{
    fx_t *fx = *state;
    start(fx, NULL);
    hf_client_t admin = as(fx, ADMIN);
    expect_call(&admin, "PUT", "/v1/skus/named", NULL, "{\"stock\": 5}", 201);
    pid_t pid = fx->srv.pid;
    assert_int_equal(threads_named(pid, "hf-journal"), 1);
    assert_int_equal(threads_named(pid, "hf-accept"), 1);
    assert_int_equal(threads_named(pid, "MHD-worker"), 2); /* threads: 2, the default */
    assert_int_equal(threads_named(pid, "holdfast"), 1);   /* the main thread: the tick */
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_access_log_has_a_line_per_request_without_ids_secrets_or_keys),
        T(test_access_log_goes_to_stderr_by_default_and_off_is_off),
        T(test_access_log_file_is_opened_again_on_sighup),
        T(test_access_log_that_cannot_be_opened_stops_the_start),
        T(test_a_stuck_access_log_drops_lines_never_a_reply),
        T(test_latency_histogram_counts_each_route_and_method),
        T(test_sku_conversion_keeps_its_labels_across_an_escalation),
        T(test_threads_are_named_for_what_they_do),
    };
    return hf_tests_done(cmocka_run_group_tests(tests, NULL, NULL));
}
