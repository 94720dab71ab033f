/*
 * test_flood.c - a connection flood cannot stop the shop: connections are
 * capped per address and in all, answered 503 overloaded past a cap, closed
 * at deadlines that dribbled bytes do not move, and a reserve past the cap
 * still serves the operator.
 *
 * Each test starts its own server with the flags it is about (short
 * deadlines, small caps), so that what it proves takes moments. A close is
 * seen as the client sees it: read() returning 0 or ECONNRESET, waited for
 * with poll() and a bound, never guessed by sleeping. The flood test needs
 * a few thousand file descriptors: it raises its soft limit to the hard one
 * and is skipped (cmocka's skip, with the reason on stderr) when even that
 * is too low.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "hf_test_http.h"

typedef hf_fixture_t fx_t;

/* The flood of the first test: connections that never send a byte, and
 * connections that send their head a byte at a time. */
#define IDLE_COUNT 2000
#define SLOW_COUNT 2000
#define FLOOD_ROUNDS 5
#define HOLDS_PER_ROUND 20
/* Descriptors for the flood besides its connections (the client's own, the
 * harness's, the sanitizer's). */
#define FDS_SPARE 64
/* The deadline a deadline test is about: short, so that it takes moments,
 * yet far longer than the test's own whole requests need to arrive (every
 * other deadline stays at its default). */
#define DEADLINE_MS "1000"
/* A dribbling client sends a byte this often, far more often than any idle
 * timeout would need. */
#define DRIP_MS 50

static int teardown(void **state)
{
    return *state == NULL ? 0 : hf_fixture_teardown(state); /* NULL: skipped */
}

/* A server started with extra flags (NULL-terminated) and the defenses
 * off; the test's client uses bearer. */
static fx_t *start(void **state, const char *const *flags, const char *bearer)
{
    assert_int_equal(hf_fixture_setup(state, "{}", false), 0);
    fx_t *fx = *state;
    assert_int_equal(hf_server_start(&fx->srv, flags), 0);
    fx->cl.port = fx->srv.port;
    fx->cl.bearer = bearer;
    return fx;
}

/* ---- raw connections ---- */

/* A plain connection to the server, bounded in time; the caller closes it. */
static int raw_connect(uint16_t port)
{
    hf_conn_t c;
    if (hf_conn_open(&c, port, NULL) != 0) {
        return -1;
    }
    int fd = c.fd;
    c.fd = -1;
    hf_conn_close(&c); /* frees the buffer; fd stays open */
    return fd;
}

static int send_text(int fd, const char *text)
{
    size_t len = strlen(text);
    return send(fd, text, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

typedef enum { STILL_OPEN, CLOSED, ANSWERED } ending_t;

/* Waits up to bound_ms for the server to end the connection, sending one
 * byte of drip (if not NULL) every DRIP_MS meanwhile. CLOSED: read() gave 0
 * or ECONNRESET with nothing before it; ANSWERED: bytes came instead. */
static ending_t await_close(int fd, const char *drip, long long bound_ms)
{
    long long until_ms = hf_now_ms() + bound_ms;
    size_t dripped = 0;
    while (hf_now_ms() < until_ms) {
        if (drip != NULL && send(fd, drip + dripped % strlen(drip), 1, MSG_NOSIGNAL) == 1) {
            dripped++;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, DRIP_MS) <= 0) {
            continue;
        }
        char buf[512];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            return CLOSED;
        }
        if (n > 0) {
            fprintf(stderr, "instead of a close: %.*s\n", (int)n, buf);
            return ANSWERED;
        }
    }
    return STILL_OPEN;
}

/* True if the connection is open and the server sent nothing on it. */
static bool quiet_and_open(int fd)
{
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* ---- metrics ---- */

/* The value of one series on /metrics, or -1 if it is not there. A test
 * that just closed its connections may still find its address at the cap
 * (the server hears of closes asynchronously): a 503 is asked again, a
 * bounded number of times. */
static double metric(fx_t *fx, const char *series)
{
    hf_response_t r = {0};
    for (int attempt = 0; attempt < 100; attempt++) {
        assert_int_equal(hf_call(&fx->cl, "GET", "/metrics", NULL, NULL, &r), 0);
        if (r.status != 503) {
            break;
        }
        hf_response_free(&r);
        hf_sleep_ms(20);
    }
    assert_true(hf_expect_status(&r, 200));
    double value = -1;
    size_t n = strlen(series);
    for (const char *line = r.body; line != NULL; line = strchr(line, '\n')) {
        line += *line == '\n';
        if (strncmp(line, series, n) == 0 && line[n] == ' ') {
            value = strtod(line + n + 1, NULL);
        }
    }
    hf_response_free(&r);
    return value;
}

/* ---- a flood, and the shop still sells ---- */

/* Raises the soft descriptor limit to the hard one if needed is more than
 * the soft; false if even the hard one is too low. */
static bool fds_for(rlim_t needed, rlim_t *hard)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return false;
    }
    *hard = rl.rlim_max;
    if (rl.rlim_cur >= needed) {
        return true;
    }
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < needed) {
        return false;
    }
    rl.rlim_cur = rl.rlim_max;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

static void test_holds_are_answered_while_thousands_of_connections_idle_or_dribble(void **state)
{
    /* The client's flood, plus the server's own connections and reserve. */
    rlim_t needed = IDLE_COUNT + SLOW_COUNT + FDS_SPARE, hard = 0;
    if (!fds_for(2 * needed, &hard)) {
        fprintf(stderr, "skipped: the flood needs %llu file descriptors, the hard limit is %llu\n",
                (unsigned long long)(2 * needed), (unsigned long long)hard);
        skip();
    }
    /* Deadlines far off: this test is about room, not time (no flood
     * connection may be reaped before the end). */
    char max[16];
    snprintf(max, sizeof max, "%d", IDLE_COUNT + SLOW_COUNT + FDS_SPARE);
    const char *flags[] = {"--connections-max", max, "--connections-per-address-max", "0",
                           "--head-timeout-ms", "600000", "--idle-timeout-ms", "600000",
                           NULL};
    fx_t *fx = start(state, flags, NULL);
    assert_int_equal(hf_sku_put(&fx->cl, "flood", 1000000), 201);
    static int idle[IDLE_COUNT], slow[SLOW_COUNT];
    for (int i = 0; i < IDLE_COUNT; i++) {
        idle[i] = raw_connect(fx->cl.port);
        assert_true(idle[i] >= 0);
    }
    for (int i = 0; i < SLOW_COUNT; i++) {
        slow[i] = raw_connect(fx->cl.port);
        assert_true(slow[i] >= 0);
        assert_int_equal(send_text(slow[i], "POST /v1/holds HTTP/1.1\r\nHost: x\r\n"), 0);
    }
    const char drip[] = "X-Slow: still coming";
    for (int round = 0; round < FLOOD_ROUNDS; round++) {
        for (int i = 0; i < SLOW_COUNT; i++) {
            assert_int_equal(send(slow[i], drip + round, 1, MSG_NOSIGNAL), 1);
        }
        for (int k = 0; k < HOLDS_PER_ROUND; k++) {
            const char *body = "{\"customer\": \"c-1\", \"lines\": [{\"sku\": \"flood\", "
                               "\"qty\": 1}]}";
            assert_int_equal(hf_hold_create(&fx->cl, body, NULL, NULL, NULL), 201);
        }
    }
    /* The flood was there all along: every connection of it is open,
     * unanswered, and counted. */
    for (int i = 0; i < IDLE_COUNT; i++) {
        assert_true(quiet_and_open(idle[i]));
    }
    for (int i = 0; i < SLOW_COUNT; i++) {
        assert_true(quiet_and_open(slow[i]));
    }
    assert_true(metric(fx, "holdfast_connections") >= IDLE_COUNT + SLOW_COUNT);
    assert_true(hf_expect_sku(&fx->cl, "flood", 1000000, FLOOD_ROUNDS * HOLDS_PER_ROUND, 0));
    for (int i = 0; i < IDLE_COUNT; i++) {
        close(idle[i]);
    }
    for (int i = 0; i < SLOW_COUNT; i++) {
        close(slow[i]);
    }
}

/* ---- the caps ---- */

static void test_an_address_past_its_cap_is_answered_503_overloaded(void **state)
{
    const char *flags[] = {"--connections-per-address-max", "8", NULL};
    fx_t *fx = start(state, flags, NULL);
    hf_conn_t held[8];
    for (int i = 0; i < 8; i++) {
        assert_int_equal(hf_conn_open(&held[i], fx->cl.port, NULL), 0);
        hf_response_t r;
        assert_int_equal(hf_conn_exchange(&held[i], "GET", "/healthz", NULL, NULL, 0, &r), 0);
        assert_true(hf_expect_status(&r, 200));
        hf_response_free(&r);
    }
    /* The ninth from this address: 503 at once, then the close. */
    hf_conn_t ninth;
    assert_int_equal(hf_conn_open(&ninth, fx->cl.port, NULL), 0);
    hf_response_t r;
    assert_int_equal(hf_conn_exchange(&ninth, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    assert_true(hf_expect_error(&r, 503, "overloaded", NULL));
    const json_t *error = json_object_get(r.json, "error");
    assert_string_equal(hf_json_str(error, "reason"), "connections_per_address");
    assert_non_null(hf_response_header(&r, "Retry-After"));
    assert_string_equal(hf_response_header(&r, "Connection"), "close");
    hf_response_free(&r);
    assert_int_equal(await_close(ninth.fd, NULL, HF_TEST_TIMEOUT_MS), CLOSED);
    hf_conn_close(&ninth);
    /* One of the eight leaves: the server hears of it asynchronously, so a
     * newcomer is admitted within a bounded number of tries. */
    hf_conn_close(&held[0]);
    int status = 0;
    for (int attempt = 0; attempt < 100 && status != 200; attempt++) {
        if (hf_call(&fx->cl, "GET", "/healthz", NULL, NULL, &r) == 0) {
            status = r.status;
            hf_response_free(&r);
        }
        if (status != 200) {
            hf_sleep_ms(20);
        }
    }
    assert_int_equal(status, 200);
    for (int i = 1; i < 8; i++) {
        hf_conn_close(&held[i]);
    }
    assert_true(metric(fx, "holdfast_connections_refused_total{reason=\"per_address\"}") >= 1);
}

/* ---- the deadlines ---- */

static void test_a_dribbled_head_is_closed_at_its_deadline(void **state)
{
    const char *flags[] = {"--head-timeout-ms", DEADLINE_MS, NULL};
    fx_t *fx = start(state, flags, NULL);
    int dribbler = raw_connect(fx->cl.port);
    int silent = raw_connect(fx->cl.port);
    assert_true(dribbler >= 0 && silent >= 0);
    assert_int_equal(send_text(dribbler, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Drip: "), 0);
    /* A byte every DRIP_MS would keep an idle timeout from ever firing. */
    assert_int_equal(await_close(dribbler, "a", HF_TEST_TIMEOUT_MS), CLOSED);
    assert_int_equal(await_close(silent, NULL, HF_TEST_TIMEOUT_MS), CLOSED);
    close(dribbler);
    close(silent);
    assert_true(metric(fx, "holdfast_connections_closed_total{reason=\"head_deadline\"}") == 2);
}

static void test_a_dribbled_body_is_closed_at_its_deadline(void **state)
{
    const char *flags[] = {"--body-timeout-ms", DEADLINE_MS, NULL};
    fx_t *fx = start(state, flags, NULL);
    int fd = raw_connect(fx->cl.port);
    assert_true(fd >= 0);
    assert_int_equal(send_text(fd, "POST /v1/holds HTTP/1.1\r\nHost: x\r\n"
                                   "Content-Type: application/json\r\nContent-Length: 4000\r\n"
                                   "\r\n"),
                     0);
    assert_int_equal(await_close(fd, " ", HF_TEST_TIMEOUT_MS), CLOSED);
    close(fd);
    assert_true(metric(fx, "holdfast_connections_closed_total{reason=\"body_deadline\"}") == 1);
}

static void test_an_idle_kept_alive_connection_is_closed(void **state)
{
    const char *flags[] = {"--idle-timeout-ms", DEADLINE_MS, NULL};
    fx_t *fx = start(state, flags, NULL);
    hf_conn_t c;
    assert_int_equal(hf_conn_open(&c, fx->cl.port, NULL), 0);
    hf_response_t r;
    assert_int_equal(hf_conn_exchange(&c, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    assert_true(hf_expect_status(&r, 200));
    hf_response_free(&r);
    assert_int_equal(await_close(c.fd, NULL, HF_TEST_TIMEOUT_MS), CLOSED);
    hf_conn_close(&c);
    assert_true(metric(fx, "holdfast_connections_closed_total{reason=\"idle_deadline\"}") == 1);
}

/* Each request on a kept-alive connection gets its own head deadline: a
 * client that sends whole requests is never cut off, however long the
 * connection lives. */
static void test_a_kept_alive_connection_outlives_the_head_deadline(void **state)
{
    const char *flags[] = {"--head-timeout-ms", DEADLINE_MS, NULL};
    fx_t *fx = start(state, flags, NULL);
    hf_conn_t c;
    assert_int_equal(hf_conn_open(&c, fx->cl.port, NULL), 0);
    long long head_ms = atoll(DEADLINE_MS);
    long long opened_ms = hf_now_ms();
    int requests = 0;
    /* Requests paced over three head deadlines (pacing, not waiting for
     * anything: each request is sent whole). */
    while (hf_now_ms() - opened_ms < 3 * head_ms) {
        hf_response_t r;
        assert_int_equal(hf_conn_exchange(&c, "GET", "/healthz", NULL, NULL, 0, &r), 0);
        assert_true(hf_expect_status(&r, 200));
        hf_response_free(&r);
        requests++;
        hf_sleep_ms(head_ms / 4);
    }
    hf_conn_close(&c);
    assert_true(requests > 3);
    assert_true(metric(fx, "holdfast_connections_closed_total{reason=\"head_deadline\"}") == 0);
}

/* Past keepalive_max connections held by the HTTP threads, a reply closes
 * its connection: an idle crowd cannot camp where every request pays for it. */
static void test_past_keepalive_max_a_reply_closes_its_connection(void **state)
{
    const char *flags[] = {"--keepalive-max", "4", NULL};
    fx_t *fx = start(state, flags, NULL);
    hf_conn_t kept[5];
    for (int i = 0; i < 5; i++) {
        assert_int_equal(hf_conn_open(&kept[i], fx->cl.port, NULL), 0);
        hf_response_t r;
        assert_int_equal(hf_conn_exchange(&kept[i], "GET", "/healthz", NULL, NULL, 0, &r), 0);
        assert_true(hf_expect_status(&r, 200));
        const char *connection = hf_response_header(&r, "Connection");
        bool closes = connection != NULL && strcmp(connection, "close") == 0;
        assert_true(closes == (i == 4)); /* the fifth is one too many */
        hf_response_free(&r);
    }
    assert_int_equal(await_close(kept[4].fd, NULL, HF_TEST_TIMEOUT_MS), CLOSED);
    for (int i = 0; i < 4; i++) {
        assert_true(quiet_and_open(kept[i].fd));
    }
    assert_true(metric(fx, "holdfast_connections_closed_total{reason=\"keepalive_max\"}") == 1);
    for (int i = 0; i < 5; i++) {
        hf_conn_close(&kept[i]);
    }
}

/* ---- the operators' reserve ---- */

#define SHOP_KEY "shop-key"
#define ADMIN_KEY "admin-key"

/* One request on a fresh connection; the connection must close after it.
 * Returns the status. */
static int reserve_call(fx_t *fx, const char *bearer, const char *target, hf_response_t *r)
{
    hf_conn_t c;
    assert_int_equal(hf_conn_open(&c, fx->cl.port, bearer), 0);
    assert_int_equal(hf_conn_exchange(&c, "GET", target, NULL, NULL, 0, r), 0);
    assert_string_equal(hf_response_header(r, "Connection"), "close");
    assert_int_equal(await_close(c.fd, NULL, HF_TEST_TIMEOUT_MS), CLOSED);
    hf_conn_close(&c);
    return r->status;
}

static void test_the_reserve_serves_the_operator_while_the_shop_is_full(void **state)
{
    const char *flags[] = {"--connections-max", "16",       "--connections-reserve", "4",
                           "--connections-per-address-max", "0", "--head-timeout-ms", "600000",
                           "--api-key", SHOP_KEY,           "--admin-key", ADMIN_KEY,
                           NULL};
    fx_t *fx = start(state, flags, ADMIN_KEY);
    /* The shop's slots, then the reserve's, taken by connections that send
     * nothing (the server takes them in the order they came). */
    int shop[16], squatters[4];
    for (int i = 0; i < 16; i++) {
        assert_true((shop[i] = raw_connect(fx->cl.port)) >= 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_true((squatters[i] = raw_connect(fx->cl.port)) >= 0);
    }
    /* The operator's requests get in, each evicting the oldest squatter. */
    hf_response_t r;
    assert_int_equal(reserve_call(fx, NULL, "/healthz", &r), 200);
    hf_response_free(&r);
    assert_int_equal(await_close(squatters[0], NULL, HF_TEST_TIMEOUT_MS), CLOSED);
    /* A shop request is not the operator's: 503, and the connection ends. */
    assert_int_equal(reserve_call(fx, SHOP_KEY, "/v1/skus", &r), 503);
    assert_true(hf_expect_error(&r, 503, "overloaded", NULL));
    assert_non_null(hf_response_header(&r, "Retry-After"));
    hf_response_free(&r);
    assert_int_equal(reserve_call(fx, ADMIN_KEY, "/v1/policy", &r), 200);
    hf_response_free(&r);
    assert_int_equal(reserve_call(fx, ADMIN_KEY, "/metrics", &r), 200);
    /* The first squatter was evicted for /healthz; whether later requests
     * evicted more depends on how soon the server closed the earlier ones. */
    double evicted = -1, refused = -1;
    for (const char *line = r.body; line != NULL; line = strchr(line, '\n')) {
        line += *line == '\n';
        sscanf(line, "holdfast_connections_closed_total{reason=\"evicted\"} %lf", &evicted);
        sscanf(line, "holdfast_connections_refused_total{reason=\"reserve\"} %lf", &refused);
    }
    hf_response_free(&r);
    assert_true(evicted >= 1 && evicted <= 4);
    assert_true(refused == 1);
    /* The shop's connections were not touched. */
    for (int i = 0; i < 16; i++) {
        assert_true(quiet_and_open(shop[i]));
        close(shop[i]);
    }
    for (int i = 0; i < 4; i++) {
        close(squatters[i]);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#define T(name) cmocka_unit_test_teardown(name, teardown)
    const struct CMUnitTest tests[] = {
        T(test_holds_are_answered_while_thousands_of_connections_idle_or_dribble),
        T(test_an_address_past_its_cap_is_answered_503_overloaded),
        T(test_a_dribbled_head_is_closed_at_its_deadline),
        T(test_a_dribbled_body_is_closed_at_its_deadline),
        T(test_an_idle_kept_alive_connection_is_closed),
        T(test_a_kept_alive_connection_outlives_the_head_deadline),
        T(test_past_keepalive_max_a_reply_closes_its_connection),
        T(test_the_reserve_serves_the_operator_while_the_shop_is_full),
    };
#undef T
    return hf_tests_done(cmocka_run_group_tests_name("flood", tests, NULL, NULL));
}
