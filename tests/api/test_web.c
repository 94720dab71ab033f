/*
 * test_web.c - what the web pages stand on: GET /v1/events (server-sent
 * events of sku totals) and the static pages, against the real binary.
 */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hf_test_http.h"

typedef hf_fixture_t fx_t;

/* How long a test waits for an event the server must send within
 * HF_EVENT_INTERVAL_MS (100 ms) and a journal commit: a bound on a hang,
 * not a speed claim. */
#define EVENT_WAIT_MS 10000
/* HF_STATIC_BYTES_MAX: the largest page served */
#define HF_PAGE_BYTES_MAX (2 * 1024 * 1024)

static int setup(void **state)
{
    return hf_fixture_setup(state, "{}", true);
}

static int setup_idle(void **state)
{
    return hf_fixture_setup(state, "{}", false);
}

static int teardown(void **state)
{
    return hf_fixture_teardown(state);
}

/* ------------------------------------------------------ an event stream */

typedef struct {
    hf_conn_t conn;
    char head[4096];   /* the reply's status line and headers */
    char text[65536];  /* the stream's text, de-chunked */
    size_t text_len;
    char raw[65536];   /* received, not yet de-chunked */
    size_t raw_len;
    bool head_done, ended;
} sse_t;

/* Moves whole chunks from raw to text; ended at the last (empty) chunk. */
static void dechunk(sse_t *e)
{
    for (;;) {
        char *eol = memmem(e->raw, e->raw_len, "\r\n", 2);
        if (eol == NULL) {
            return;
        }
        size_t size = strtoul(e->raw, NULL, 16);
        size_t line = (size_t)(eol - e->raw) + 2;
        if (e->raw_len < line + size + 2) {
            return;
        }
        assert_true(e->text_len + size < sizeof e->text);
        memcpy(e->text + e->text_len, e->raw + line, size);
        e->text_len += size;
        e->text[e->text_len] = '\0';
        memmove(e->raw, e->raw + line + size + 2, e->raw_len - line - size - 2);
        e->raw_len -= line + size + 2;
        e->ended |= size == 0;
    }
}

/* Reads what is there within timeout_ms; false on end of file or nothing. */
static bool sse_read(sse_t *e, int timeout_ms)
{
    struct pollfd p = {.fd = e->conn.fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1) {
        return false;
    }
    ssize_t n = recv(e->conn.fd, e->raw + e->raw_len, sizeof e->raw - e->raw_len - 1, 0);
    if (n <= 0) {
        return false;
    }
    e->raw_len += (size_t)n;
    e->raw[e->raw_len] = '\0';
    if (!e->head_done) {
        char *blank = strstr(e->raw, "\r\n\r\n");
        if (blank == NULL) {
            return true;
        }
        size_t head_len = (size_t)(blank - e->raw) + 4;
        assert_true(head_len < sizeof e->head);
        memcpy(e->head, e->raw, head_len);
        e->head[head_len] = '\0';
        memmove(e->raw, e->raw + head_len, e->raw_len - head_len);
        e->raw_len -= head_len;
        e->head_done = true;
    }
    dechunk(e);
    return true;
}

/* Waits until the stream's text, from *from on, holds needle; moves *from
 * past it. False if it does not come within EVENT_WAIT_MS. */
static bool sse_wait(sse_t *e, const char *needle, size_t *from)
{
    long long deadline = hf_now_ms() + EVENT_WAIT_MS;
    for (;;) {
        const char *hit = strstr(e->text + *from, needle);
        if (hit != NULL) {
            *from = (size_t)(hit - e->text) + strlen(needle);
            return true;
        }
        long long left = deadline - hf_now_ms();
        if (left <= 0 || !sse_read(e, (int)left)) {
            return false;
        }
    }
}

static void sse_open(sse_t *e, uint16_t port, const char *target, const char *bearer)
{
    memset(e, 0, sizeof *e);
    assert_int_equal(hf_conn_open(&e->conn, port, bearer), 0);
    char req[2048];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%s\r\n",
                     target, bearer ? "Authorization: Bearer " : "", bearer ? bearer : "",
                     bearer ? "\r\n" : "");
    assert_true(n > 0 && (size_t)n < sizeof req);
    assert_int_equal(hf_conn_send_raw(&e->conn, req, (size_t)n), 0);
    long long deadline = hf_now_ms() + EVENT_WAIT_MS;
    while (!e->head_done && hf_now_ms() < deadline) {
        assert_true(sse_read(e, EVENT_WAIT_MS));
    }
    assert_true(e->head_done);
}

static void sse_close(sse_t *e)
{
    hf_conn_close(&e->conn);
}

static void put_sku(fx_t *fx, const char *sku, long long stock)
{
    int status = hf_sku_put(&fx->cl, sku, stock);
    assert_true(status == 200 || status == 201);
}

static void hold(fx_t *fx, const char *body, char *id)
{
    assert_int_equal(hf_hold_create(&fx->cl, body, NULL, id, NULL), 201);
}

/* ------------------------------------------------------------------ events */

static void test_events_send_totals_then_every_change(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 5);
    put_sku(fx, "cap-blue", 3);
    sse_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    sse_open(e, fx->srv.port, "/v1/events?skus=cap-red,cap-blue", NULL);
    assert_non_null(strstr(e->head, " 200 "));
    assert_non_null(strcasestr(e->head, "Content-Type: text/event-stream"));
    size_t at = 0;
    assert_true(sse_wait(e, "retry: 2000\n\n", &at));
    /* each sku once at the start, as GET /v1/skus/{sku} shows it */
    size_t red = at, blue = at;
    assert_true(sse_wait(e, "event: sku\ndata: {\"sku\":\"cap-red\",\"stock\":5,\"held\":0,"
                            "\"sold\":0,\"available\":5,",
                         &red));
    assert_true(sse_wait(e, "event: sku\ndata: {\"sku\":\"cap-blue\",\"stock\":3,\"held\":0,", &blue));
    at = red > blue ? red : blue;
    char id[HF_TEST_ID_MAX];
    hold(fx, "{\"customer\": \"u-1\", \"lines\": [{\"sku\": \"cap-red\", \"qty\": 2}]}", id);
    assert_true(sse_wait(e, "{\"sku\":\"cap-red\",\"stock\":5,\"held\":2,\"sold\":0,\"available\":3",
                         &at));
    char path[HF_TEST_ID_MAX + 32];
    snprintf(path, sizeof path, "/v1/holds/%s/commit", id);
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "POST", path, NULL, "{}", &r), 0);
    assert_int_equal(r.status, 200);
    hf_response_free(&r);
    assert_true(sse_wait(e, "{\"sku\":\"cap-red\",\"stock\":5,\"held\":0,\"sold\":2,\"available\":3",
                         &at));
    /* cap-blue did not change: it is not sent again */
    assert_null(strstr(e->text + blue, "\"sku\":\"cap-blue\""));
    sse_close(e);
    free(e);
}

/* Without ?skus= the catalog's first skus are followed. */
static void test_events_follow_the_catalog_by_default(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "a-1", 1);
    put_sku(fx, "b-2", 2);
    sse_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    sse_open(e, fx->srv.port, "/v1/events", NULL);
    size_t a = 0, b = 0;
    assert_true(sse_wait(e, "\"sku\":\"a-1\"", &a));
    assert_true(sse_wait(e, "\"sku\":\"b-2\"", &b));
    sse_close(e);
    free(e);
}

static void test_events_refuse_bad_skus(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 5);
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "GET", "/v1/events?skus=cap-red,nope", NULL, NULL, &r), 0);
    assert_true(hf_expect_error(&r, 404, "not_found", NULL));
    assert_string_equal(hf_json_str(json_object_get(r.json, "error"), "sku"), "nope");
    hf_response_free(&r);
    const char *bad[] = {"/v1/events?skus=", "/v1/events?skus=cap-red,,cap-red",
                         "/v1/events?skus=cap%20red", NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        assert_int_equal(hf_call(&fx->cl, "GET", bad[i], NULL, NULL, &r), 0);
        assert_true(hf_expect_error(&r, 400, "invalid_field", "skus"));
        hf_response_free(&r);
    }
    /* 64 skus is the most a stream follows: 64 pass, 65 do not */
    char target[2048] = "/v1/events?skus=";
    for (int i = 0; i < 64; i++) {
        strcat(target, i ? ",cap-red" : "cap-red");
    }
    sse_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    sse_open(e, fx->srv.port, target, NULL);
    assert_non_null(strstr(e->head, " 200 "));
    sse_close(e);
    free(e);
    strcat(target, ",cap-red");
    assert_int_equal(hf_call(&fx->cl, "GET", target, NULL, NULL, &r), 0);
    assert_true(hf_expect_error(&r, 400, "invalid_field", "skus"));
    hf_response_free(&r);
}

/* At most HF_EVENT_STREAMS_MAX (32) at once; a closed one frees its place. */
static void test_events_are_bounded(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 50);
    sse_t *e = calloc(33, sizeof *e);
    assert_non_null(e);
    for (int i = 0; i < 32; i++) {
        sse_open(&e[i], fx->srv.port, "/v1/events?skus=cap-red", NULL);
        assert_non_null(strstr(e[i].head, " 200 "));
    }
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "GET", "/v1/events", NULL, NULL, &r), 0);
    assert_true(hf_expect_error(&r, 503, "overloaded", NULL));
    assert_string_equal(hf_json_str(json_object_get(r.json, "error"), "reason"),
                        "event_streams_full");
    hf_response_free(&r);
    sse_close(&e[0]);
    /* A suspended stream is not watched: the server learns of the close
     * when a write to it fails, which takes a write or two after the peer
     * is gone (the first may still be buffered). So each round changes
     * cap-red (an event for every stream), waits until a live stream has
     * it (the write to the closed one was tried too), then asks for a
     * stream again. */
    bool opened = false;
    for (int round = 1; !opened && round <= 20; round++) {
        char id[HF_TEST_ID_MAX], held[32];
        hold(fx, "{\"customer\": \"u-1\", \"lines\": [{\"sku\": \"cap-red\", \"qty\": 1}]}", id);
        snprintf(held, sizeof held, "\"held\":%d", round);
        size_t at = 0;
        assert_true(sse_wait(&e[1], held, &at));
        for (int tries = 0; !opened && tries < 100; tries++) {
            sse_open(&e[32], fx->srv.port, "/v1/events?skus=cap-red", NULL);
            opened = strstr(e[32].head, " 200 ") != NULL;
            sse_close(&e[32]);
        }
    }
    assert_true(opened);
    for (int i = 1; i < 32; i++) {
        sse_close(&e[i]);
    }
    free(e);
}

/* SIGTERM ends open streams (their last chunk comes) and the server exits 0. */
static void test_events_end_at_shutdown(void **state)
{
    fx_t *fx = *state;
    put_sku(fx, "cap-red", 5);
    sse_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    sse_open(e, fx->srv.port, "/v1/events?skus=cap-red", NULL);
    size_t at = 0;
    assert_true(sse_wait(e, "\"sku\":\"cap-red\"", &at));
    assert_int_equal(kill(fx->srv.pid, SIGTERM), 0);
    long long deadline = hf_now_ms() + EVENT_WAIT_MS;
    while (!e->ended && hf_now_ms() < deadline && sse_read(e, EVENT_WAIT_MS)) {
    }
    assert_true(e->ended);
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
    sse_close(e);
    free(e);
}

/* With keys, a stream needs one (shop or admin). */
static void test_events_need_a_key_when_keys_are_set(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(hf_server_write_config(
                         &fx->srv, "{\"api_keys\": [\"shop-key\"], \"admin_key\": \"admin-key\"}"),
                     0);
    assert_int_equal(hf_server_start(&fx->srv, NULL), 0);
    fx->cl.port = fx->srv.port;
    fx->cl.bearer = "admin-key";
    put_sku(fx, "cap-red", 5);
    fx->cl.bearer = NULL;
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "GET", "/v1/events", NULL, NULL, &r), 0);
    assert_true(hf_expect_error(&r, 401, "unauthorized", NULL));
    hf_response_free(&r);
    sse_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    sse_open(e, fx->srv.port, "/v1/events?skus=cap-red", "shop-key");
    size_t at = 0;
    assert_true(sse_wait(e, "\"sku\":\"cap-red\"", &at));
    sse_close(e);
    /* the pages are public: a browser loads them before it has a key */
    assert_int_equal(hf_call(&fx->cl, "GET", "/", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    hf_response_free(&r);
    free(e);
}

/* ------------------------------------------------------------------- pages */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* A web directory of the test's own: what is served, and what never is. */
static void test_pages_are_served_from_the_web_directory_only(void **state)
{
    fx_t *fx = *state;
    char web[256], path[320];
    snprintf(web, sizeof web, "%s/web", fx->srv.root);
    const char *dirs[] = {"", "/shop", "/admin", "/pow"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s%s", web, dirs[i]);
        assert_int_equal(mkdir(path, 0755), 0);
    }
    snprintf(path, sizeof path, "%s/shop/index.html", web);
    write_file(path, "<title>the shop</title>");
    snprintf(path, sizeof path, "%s/shop/shop.js", web);
    write_file(path, "export {};");
    snprintf(path, sizeof path, "%s/shop/.secret.js", web);
    write_file(path, "hidden");
    snprintf(path, sizeof path, "%s/shop/notes.txt", web);
    write_file(path, "no type");
    snprintf(path, sizeof path, "%s/admin/index.html", web);
    write_file(path, "<title>the dashboard</title>");
    snprintf(path, sizeof path, "%s/secret.html", web);
    write_file(path, "outside");
    /* links: one out of the web directory (never followed), one inside it */
    char outside[320];
    snprintf(outside, sizeof outside, "%s/outside.js", fx->srv.root);
    write_file(outside, "not for the web");
    snprintf(path, sizeof path, "%s/shop/leak.js", web);
    assert_int_equal(symlink(outside, path), 0);
    snprintf(path, sizeof path, "%s/shop/same.js", web);
    assert_int_equal(symlink("shop.js", path), 0);
    /* a page at the size limit, and one byte over */
    char *big = malloc(HF_PAGE_BYTES_MAX + 2);
    assert_non_null(big);
    memset(big, 'x', HF_PAGE_BYTES_MAX + 1);
    big[HF_PAGE_BYTES_MAX + 1] = '\0';
    snprintf(path, sizeof path, "%s/shop/huge.js", web);
    write_file(path, big);
    big[HF_PAGE_BYTES_MAX] = '\0';
    snprintf(path, sizeof path, "%s/shop/big.js", web);
    write_file(path, big);
    free(big);
    const char *extra[] = {"--web", web, NULL};
    assert_int_equal(hf_server_start(&fx->srv, extra), 0);
    fx->cl.port = fx->srv.port;
    const struct {
        const char *target;
        int status;
        const char *body, *type;
    } cases[] = {
        {"/", 200, "<title>the shop</title>", "text/html"},
        {"/shop/index.html", 200, "<title>the shop</title>", "text/html"},
        {"/shop/shop.js", 200, "export {};", "text/javascript"},
        {"/admin", 200, "<title>the dashboard</title>", "text/html"},
        {"/admin/index.html", 200, "<title>the dashboard</title>", "text/html"},
        {"/shop/.secret.js", 404, NULL, NULL},
        {"/shop/notes.txt", 404, NULL, NULL},
        {"/shop/../secret.html", 404, NULL, NULL},
        {"/shop/%2e%2e/secret.html", 404, NULL, NULL},
        {"/secret.html", 404, NULL, NULL},
        {"/shop/missing.js", 404, NULL, NULL},
        {"/pow/worker.js", 404, NULL, NULL},
        {"/vendor/uplot/uPlot.iife.min.js", 404, NULL, NULL},
        {"/shop/huge.js", 404, NULL, NULL},
        {"/shop/leak.js", 404, NULL, NULL},
        {"/shop/same.js", 200, "export {};", "text/javascript"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hf_response_t r;
        assert_int_equal(hf_call(&fx->cl, "GET", cases[i].target, NULL, NULL, &r), 0);
        if (r.status != cases[i].status) {
            fprintf(stderr, "%s: %d\n", cases[i].target, r.status);
        }
        assert_int_equal(r.status, cases[i].status);
        if (cases[i].body != NULL) {
            assert_string_equal(r.body, cases[i].body);
            assert_non_null(strstr(hf_response_header(&r, "Content-Type"), cases[i].type));
        } else {
            assert_true(hf_expect_error(&r, 404, "not_found", NULL));
        }
        hf_response_free(&r);
    }
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "GET", "/shop/big.js", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, HF_PAGE_BYTES_MAX);
    hf_response_free(&r);
    assert_int_equal(hf_call(&fx->cl, "GET", "/shop/huge.js", NULL, NULL, &r), 0);
    assert_non_null(strstr(hf_json_str(json_object_get(r.json, "error"), "message"), "2 MiB"));
    hf_response_free(&r);
}

static void test_pages_can_be_turned_off(void **state)
{
    fx_t *fx = *state;
    const char *extra[] = {"--web", "", NULL};
    assert_int_equal(hf_server_start(&fx->srv, extra), 0);
    fx->cl.port = fx->srv.port;
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "GET", "/", NULL, NULL, &r), 0);
    assert_true(hf_expect_error(&r, 404, "not_found", NULL));
    assert_non_null(strstr(r.body, "no web pages"));
    hf_response_free(&r);
}

/* The build's own pages, with the chart library npm installed. */
static void test_the_projects_pages_are_served_by_default(void **state)
{
    fx_t *fx = *state;
    const char *targets[] = {"/", "/admin", "/pow/worker.js", "/pow/solver.js",
                             "/vendor/uplot/uPlot.iife.min.js", "/vendor/uplot/uPlot.min.css",
                             NULL};
    for (size_t i = 0; targets[i] != NULL; i++) {
        hf_response_t r;
        assert_int_equal(hf_call(&fx->cl, "GET", targets[i], NULL, NULL, &r), 0);
        if (r.status != 200) {
            fprintf(stderr, "%s: %d %s\n", targets[i], r.status, r.body);
        }
        assert_int_equal(r.status, 200);
        assert_true(r.body_len > 100);
        hf_response_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_events_send_totals_then_every_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_follow_the_catalog_by_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_refuse_bad_skus, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_are_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_end_at_shutdown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_need_a_key_when_keys_are_set, setup_idle,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pages_are_served_from_the_web_directory_only,
                                        setup_idle, teardown),
        cmocka_unit_test_setup_teardown(test_pages_can_be_turned_off, setup_idle, teardown),
        cmocka_unit_test_setup_teardown(test_the_projects_pages_are_served_by_default, setup,
                                        teardown),
    };
    return hf_tests_done(cmocka_run_group_tests_name("web", tests, NULL, NULL));
}
