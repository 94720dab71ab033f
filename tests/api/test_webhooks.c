/*
 * test_webhooks.c - the events a shop is sent (docs/WEBHOOKS.md), against a
 * receiver in this process on 127.0.0.1.
 *
 * What is proved: each kind of event arrives, signed so that a receiver
 * holding the secret can check it; an event is sent only once the journal
 * keeps its change (the disk failing under the server: no event for a
 * change that was not kept); a receiver that fails (500s, or a connection
 * closed without a reply) and then recovers gets every event, in order, the
 * retries carrying the same event id; events pending at SIGTERM or kill -9
 * are delivered after the restart, and events delivered before a clean stop
 * are not sent again; a full outbox drops new events and counts them; a
 * configuration that would send events in the clear off this machine, or
 * unsigned, or over https, is refused at start.
 *
 * Every wait is on a condition with a deadline (the receiver's, or the
 * server's outbox read from /metrics); the only sleep-like wait is for a
 * hold's TTL (one second, the API's minimum) to run out.
 */
#include <setjmp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hf_test_http.h"

#define SECRET "whsec-test-0123456789abcdef"
/* Retries a few milliseconds apart, so a suite of retries takes moments. */
#define RETRY "\"webhook_retry\": {\"min_ms\": 5, \"max_ms\": 40, \"timeout_ms\": 2000}"
#define WAIT_MS 10000

/* ------------------------------------------------------------ the receiver */

#define RX_MAX 512

typedef struct {
    char id[64];
    char type[48];
    char signature[160];
    char attempt[16];
    char *body;
    int status; /* what the receiver answered: 200, 500, or 0 (closed) */
} rx_event_t;

typedef struct {
    int listen_fd;
    int stop_fds[2];
    uint16_t port;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int fail_500;   /* answer the next this many with 500 */
    int fail_close; /* then close this many without a reply */
    bool fail_all;  /* answer everything with 500 */
    size_t count;
    rx_event_t events[RX_MAX];
} rx_t;

static rx_t rx;

static const char *header_of(const char *head, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n;
            while (*v == ' ') {
                v++;
            }
            const char *end = strstr(v, "\r\n");
            size_t len = end != NULL ? (size_t)(end - v) : strlen(v);
            len = len < size - 1 ? len : size - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return out;
        }
    }
    out[0] = '\0';
    return NULL;
}

/* Reads one request (head and Content-Length body); NULL if none came. */
static char *read_request(int fd, char **body_out)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    char *end = NULL;
    long long body_len = -1;
    while (buf != NULL && len < cap) {
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        buf[len] = '\0';
        if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL) {
            char cl[32];
            body_len = header_of(buf, "Content-Length", cl, sizeof cl) ? atoll(cl) : 0;
        }
        if (end != NULL && (long long)(len - (size_t)(end + 4 - buf)) >= body_len) {
            *end = '\0';
            *body_out = end + 4;
            return buf;
        }
    }
    free(buf);
    return NULL;
}

static void rx_handle(int fd)
{
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char *body = NULL;
    char *head = read_request(fd, &body);
    if (head == NULL) {
        return;
    }
    pthread_mutex_lock(&rx.lock);
    int status = 200;
    if (rx.fail_all || rx.fail_500 > 0) {
        status = 500;
        rx.fail_500 -= rx.fail_500 > 0;
    } else if (rx.fail_close > 0) {
        status = 0;
        rx.fail_close--;
    }
    if (rx.count < RX_MAX) {
        rx_event_t *e = &rx.events[rx.count++];
        header_of(head, "Holdfast-Event-Id", e->id, sizeof e->id);
        header_of(head, "Holdfast-Event-Type", e->type, sizeof e->type);
        header_of(head, "Holdfast-Signature", e->signature, sizeof e->signature);
        header_of(head, "Holdfast-Delivery-Attempt", e->attempt, sizeof e->attempt);
        e->body = strdup(body);
        e->status = status;
    }
    pthread_cond_broadcast(&rx.changed);
    pthread_mutex_unlock(&rx.lock);
    free(head);
    if (status != 0) {
        char reply[128];
        int n = snprintf(reply, sizeof reply,
                         "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status,
                         status == 200 ? "OK" : "Internal Server Error");
        ssize_t sent = send(fd, reply, (size_t)n, MSG_NOSIGNAL);
        (void)sent;
    }
}

static void *rx_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = rx.listen_fd, .events = POLLIN},
                              {.fd = rx.stop_fds[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR) {
            return NULL;
        }
        if (p[1].revents != 0) {
            return NULL;
        }
        if (p[0].revents & POLLIN) {
            int fd = accept(rx.listen_fd, NULL, NULL);
            if (fd >= 0) {
                rx_handle(fd);
                close(fd);
            }
        }
    }
}

static void rx_start(void)
{
    memset(&rx, 0, sizeof rx);
    pthread_mutex_init(&rx.lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&rx.changed, &attr);
    pthread_condattr_destroy(&attr);
    rx.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(rx.listen_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(rx.listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(rx.listen_fd, 16), 0);
    assert_int_equal(getsockname(rx.listen_fd, (struct sockaddr *)&a, &len), 0);
    rx.port = ntohs(a.sin_port);
    assert_int_equal(pipe(rx.stop_fds), 0);
    assert_int_equal(pthread_create(&rx.thread, NULL, rx_main, NULL), 0);
}

static void rx_stop(void)
{
    ssize_t n = write(rx.stop_fds[1], "x", 1);
    (void)n;
    pthread_join(rx.thread, NULL);
    close(rx.listen_fd);
    close(rx.stop_fds[0]);
    close(rx.stop_fds[1]);
    for (size_t i = 0; i < rx.count; i++) {
        free(rx.events[i].body);
    }
    pthread_mutex_destroy(&rx.lock);
    pthread_cond_destroy(&rx.changed);
}

static void rx_set(int fail_500, int fail_close, bool fail_all)
{
    pthread_mutex_lock(&rx.lock);
    rx.fail_500 = fail_500;
    rx.fail_close = fail_close;
    rx.fail_all = fail_all;
    pthread_mutex_unlock(&rx.lock);
}

/* Under rx.lock: how many requests of type (NULL: any) whose body holds
 * needle (NULL: any) were answered with status (-1: any). */
static size_t rx_count_locked(const char *type, const char *needle, int status)
{
    size_t n = 0;
    for (size_t i = 0; i < rx.count; i++) {
        const rx_event_t *e = &rx.events[i];
        n += (type == NULL || strcmp(e->type, type) == 0) &&
             (needle == NULL || strstr(e->body, needle) != NULL) &&
             (status < 0 || e->status == status);
    }
    return n;
}

static size_t rx_count(const char *type, const char *needle, int status)
{
    pthread_mutex_lock(&rx.lock);
    size_t n = rx_count_locked(type, needle, status);
    pthread_mutex_unlock(&rx.lock);
    return n;
}

/* How many distinct event ids of type came. */
static size_t rx_distinct(const char *type)
{
    pthread_mutex_lock(&rx.lock);
    size_t n = 0;
    for (size_t i = 0; i < rx.count; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) {
            seen = strcmp(rx.events[j].id, rx.events[i].id) == 0;
        }
        n += !seen && strcmp(rx.events[i].type, type) == 0;
    }
    pthread_mutex_unlock(&rx.lock);
    return n;
}

/* Waits until at least want such requests came; false at the deadline. */
static bool rx_wait(const char *type, const char *needle, int status, size_t want)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&rx.lock);
    int rc = 0;
    while (rx_count_locked(type, needle, status) < want && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&rx.changed, &rx.lock, &until);
    }
    bool ok = rx_count_locked(type, needle, status) >= want;
    pthread_mutex_unlock(&rx.lock);
    if (!ok) {
        fprintf(stderr, "waited in vain for %zu %s events with %s (status %d); got:\n", want,
                type ? type : "(any)", needle ? needle : "(anything)", status);
        for (size_t i = 0; i < rx.count; i++) {
            fprintf(stderr, "  %d %s %s\n", rx.events[i].status, rx.events[i].type,
                    rx.events[i].body);
        }
    }
    return ok;
}

/* The index of the first such request answered 200, or -1. */
static long rx_find(const char *type, const char *needle)
{
    pthread_mutex_lock(&rx.lock);
    long found = -1;
    for (size_t i = 0; i < rx.count && found < 0; i++) {
        if (strcmp(rx.events[i].type, type) == 0 && strstr(rx.events[i].body, needle) != NULL &&
            rx.events[i].status == 200) {
            found = (long)i;
        }
    }
    pthread_mutex_unlock(&rx.lock);
    return found;
}

/* A receiver's check, as docs/WEBHOOKS.md tells it: HMAC-SHA256 of
 * "<t>.<body>" with the secret, t recent, and the id and type in the
 * headers those of the body. */
static bool signed_well(const rx_event_t *e, const char *secret)
{
    long long t;
    char hex[65];
    if (sscanf(e->signature, "t=%lld,v1=%64[0-9a-f]", &t, hex) != 2 || strlen(hex) != 64) {
        fprintf(stderr, "malformed signature: %s\n", e->signature);
        return false;
    }
    size_t size = strlen(e->body) + 32;
    char *msg = malloc(size);
    int len = snprintf(msg, size, "%lld.%s", t, e->body);
    unsigned char mac[32];
    unsigned mac_len = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg, (size_t)len, mac,
         &mac_len);
    free(msg);
    char want[65];
    for (int i = 0; i < 32; i++) {
        snprintf(want + 2 * i, 3, "%02x", mac[i]);
    }
    long long now = hf_wall_ms() / 1000;
    json_t *doc = json_loads(e->body, 0, NULL);
    bool ok = strcmp(want, hex) == 0 && t > now - 300 && t <= now + 5 && doc != NULL &&
              strcmp(e->id, hf_json_str(doc, "id") ? hf_json_str(doc, "id") : "") == 0 &&
              strcmp(e->type, hf_json_str(doc, "type") ? hf_json_str(doc, "type") : "") == 0 &&
              hf_parse_instant(hf_json_str(doc, "created_at")) > 0 &&
              json_is_object(json_object_get(doc, "data"));
    json_decref(doc);
    if (!ok) {
        fprintf(stderr, "bad event: %s %s %s\n", e->signature, e->id, e->body);
    }
    return ok;
}

/* Whether every request whose body holds needle carried one event id. */
static bool one_id_for(const char *needle)
{
    pthread_mutex_lock(&rx.lock);
    const char *id = NULL;
    bool ok = true;
    for (size_t i = 0; i < rx.count; i++) {
        if (strstr(rx.events[i].body, needle) != NULL) {
            ok = ok && (id == NULL || strcmp(id, rx.events[i].id) == 0);
            id = rx.events[i].id;
        }
    }
    pthread_mutex_unlock(&rx.lock);
    return ok && id != NULL;
}

static bool all_signed_well(const char *secret)
{
    pthread_mutex_lock(&rx.lock);
    bool ok = rx.count > 0;
    for (size_t i = 0; i < rx.count; i++) {
        ok = signed_well(&rx.events[i], secret) && ok;
    }
    pthread_mutex_unlock(&rx.lock);
    return ok;
}

/* ----------------------------------------------------------- the server */

typedef hf_fixture_t fx_t;

static int setup(void **state)
{
    rx_start();
    return hf_fixture_setup(state, NULL, false);
}

static int teardown(void **state)
{
    unsetenv("LD_PRELOAD");
    unsetenv("HOLDFAST_WEBHOOK_SECRET");
    int rc = hf_fixture_teardown(state);
    rx_stop();
    return rc;
}

/* The webhook keys for the receiver, then extra (with its leading comma). */
static void config(fx_t *fx, const char *extra)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"webhooks\": [{\"url\": \"http://127.0.0.1:%u/hooks\"}], "
             "\"webhook_secret\": \"" SECRET "\", " RETRY "%s}",
             rx.port, extra != NULL ? extra : "");
    assert_int_equal(hf_server_write_config(&fx->srv, text), 0);
}

static void start(fx_t *fx)
{
    assert_int_equal(hf_server_start(&fx->srv, NULL), 0);
    fx->cl.port = fx->srv.port;
    fx->cl.secrets = true;
}

static void restart(fx_t *fx, int sig)
{
    assert_int_equal(hf_server_stop(&fx->srv, sig), sig == SIGKILL ? 128 + SIGKILL : 0);
    start(fx);
}

static void put(fx_t *fx, const char *sku, long long stock)
{
    int status = hf_sku_put(&fx->cl, sku, stock);
    assert_true(status == 200 || status == 201);
}

/* A hold of qty on sku for customer; its id (the wire's) in id. */
static void hold(fx_t *fx, const char *customer, const char *sku, int qty, long long ttl_ms,
                 char *id)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"customer\": \"%s\", \"lines\": [{\"sku\": \"%s\", \"qty\": %d}], "
             "\"ttl_ms\": %lld}",
             customer, sku, qty, ttl_ms);
    assert_int_equal(hf_hold_create(&fx->cl, body, NULL, id, NULL), 201);
}

static char *scrape(fx_t *fx)
{
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "GET", "/metrics", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    char *text = strdup(r.body);
    hf_response_free(&r);
    return text;
}

static long long metric(const char *text, const char *name)
{
    const char *p = text;
    size_t n = strlen(name);
    while ((p = strstr(p, name)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ') {
            return atoll(p + n + 1);
        }
        p += n;
    }
    return -1;
}

/* Waits until the server has let every event go from its outbox, each
 * delivered (it read the 2xx) or dropped; false at the deadline. The
 * receiver counts a request before it answers, so an event it has seen may
 * still be on the server's way out: only this says the server is done. */
static bool outbox_emptied(fx_t *fx)
{
    long long deadline_ms = hf_now_ms() + WAIT_MS;
    long long depth = -1;
    for (;;) {
        char *m = scrape(fx);
        depth = metric(m, "holdfast_webhook_outbox_depth");
        free(m);
        if (depth == 0 || hf_now_ms() >= deadline_ms) {
            break;
        }
        hf_sleep_ms(5); /* between two looks at the condition */
    }
    if (depth != 0) {
        fprintf(stderr, "waited in vain for an empty outbox: depth %lld\n", depth);
    }
    return depth == 0;
}

/* ============================================================== the events */

/* A policy with only the waitlist and escalation on (the rest as the core
 * suites have it), so that each event comes from one plain step. */
#define POLICY_WAIT_ESCALATE                                                                   \
    "\"policy\": {\"quantity\": {\"enabled\": 0}, \"identity\": {\"enabled\": 0},"             \
    " \"budget\": {\"enabled\": 0}, \"ttl\": {\"adaptive\": 0, \"pay_floor\": 0,"             \
    " \"max_ms\": 86400000, \"life_max_ms\": 86400000}, \"newcomer\": {\"enabled\": 0},"      \
    " \"reputation\": {\"enabled\": 0}, \"challenge\": {\"enabled\": 0},"                    \
    " \"waitlist\": {\"enabled\": 1}, \"escalation\": {\"enabled\": 1},"                     \
    " \"reclaim\": {\"enabled\": 0}}"

static void test_each_event_arrives_signed_in_order(void **state)
{
    fx_t *fx = *state;
    char text[2048];
    snprintf(text, sizeof text,
             "{\"webhooks\": [{\"url\": \"http://127.0.0.1:%u/hooks\"}], "
             "\"webhook_secret\": \"" SECRET "\", " RETRY ", " POLICY_WAIT_ESCALATE "}",
             rx.port);
    assert_int_equal(hf_server_write_config_raw(&fx->srv, text), 0);
    start(fx);
    char id[HF_TEST_ID_MAX], quote[HF_TEST_ID_MAX + 4];

    /* Sold out, then a waitlist; the hold runs out and its units go to the
     * one waiting: expired, then offered, and the sku stays sold out. */
    put(fx, "cap", 1);
    hold(fx, "u-1", "cap", 1, 1000, id);
    /* Joined at once, not after the sold-out event came: the hold's second
     * must not run out before the buyer waits, however slow the delivery. */
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "POST", "/v1/skus/cap/waitlist", NULL,
                             "{\"customer\": \"u-2\", \"qty\": 1}", &r),
                     0);
    assert_int_equal(r.status, 201);
    char wait_id[HF_TEST_ID_MAX];
    snprintf(wait_id, sizeof wait_id, "%s", hf_json_str(r.json, "id"));
    hf_response_free(&r);
    assert_true(rx_wait("sku.sold_out", "\"sku\":\"cap\"", 200, 1));
    snprintf(quote, sizeof quote, "\"%s\"", id);
    assert_true(rx_wait("hold.expired", quote, 200, 1));
    assert_true(rx_wait("waitlist.offered", wait_id, 200, 1));
    assert_true(rx_find("hold.expired", quote) < rx_find("waitlist.offered", wait_id));

    /* The offer cancelled: its units are back. */
    char target[160];
    snprintf(target, sizeof target, "/v1/waitlist/%s", wait_id);
    assert_int_equal(hf_call(&fx->cl, "DELETE", target, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    hf_response_free(&r);
    assert_true(rx_wait("sku.back_in_stock", "\"sku\":\"cap\"", 200, 1));

    /* A revocation that released a hold. */
    put(fx, "mug", 10);
    hold(fx, "t-1", "mug", 1, 600000, id);
    assert_int_equal(hf_call(&fx->cl, "POST", "/v1/identities/customer/t-1/revoke", NULL,
                             "{\"reason\": \"troll\"}", &r),
                     0);
    assert_int_equal(r.status, 200);
    hf_response_free(&r);
    assert_true(rx_wait("identity.revoked", "\"value\":\"t-1\"", 200, 1));
    assert_true(rx_count("identity.revoked", "\"holds_released\":1", 200) == 1);

    /* A raided sku escalates: carts that never pay, while others buy. */
    put(fx, "calm", 1000);
    assert_int_equal(hf_call(&fx->cl, "PUT", "/v1/skus/hot", NULL,
                             "{\"stock\": 10, \"policy\": {\"escalation\": {\"min_holds\": 5, "
                             "\"conversion_pct\": 25, \"available_pct\": 50}}}",
                             &r),
                     0);
    assert_int_equal(r.status, 201);
    hf_response_free(&r);
    for (int i = 0; i < 10; i++) {
        char body[200];
        snprintf(body, sizeof body,
                 "{\"customer\": \"calm-%d\", \"lines\": [{\"sku\": \"calm\", \"qty\": 1}], "
                 "\"commit\": true, \"order_ref\": \"o-%d\"}",
                 i, i);
        assert_int_equal(hf_hold_create(&fx->cl, body, NULL, id, NULL), 201);
    }
    for (int i = 0; i < 10 && rx_count("sku.escalated", "\"sku\":\"hot\"", -1) == 0; i++) {
        char body[200];
        snprintf(body, sizeof body,
                 "{\"customer\": \"raider-%d\", \"lines\": [{\"sku\": \"hot\", \"qty\": 1}]}", i);
        hf_call(&fx->cl, "POST", "/v1/holds", NULL, body, &r);
        hf_response_free(&r);
    }
    assert_true(rx_wait("sku.escalated", "\"sku\":\"hot\"", 200, 1));

    assert_true(all_signed_well(SECRET));
    /* Each event once: the receiver always answered 200. */
    assert_int_equal(rx_count(NULL, NULL, 200), rx_count(NULL, NULL, -1));
    char *m = scrape(fx);
    assert_int_equal(metric(m, "holdfast_webhook_deliveries_total{type=\"hold.expired\","
                               "outcome=\"ok\"}"),
                     1);
    assert_true(metric(m, "holdfast_webhook_last_success_timestamp_seconds{endpoint=\"0\"}") > 0);
    free(m);
}

/* ========================================================= durability */

static void fault_flag(const fx_t *fx, bool on)
{
    char path[256];
    snprintf(path, sizeof path, "%s/fault-on", fx->srv.root);
    if (on) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fclose(f);
    } else {
        unlink(path);
    }
}

static void test_no_event_for_a_change_the_journal_did_not_keep(void **state)
{
    fx_t *fx = *state;
    config(fx, NULL);
    char flag[256];
    snprintf(flag, sizeof flag, "%s/fault-on", fx->srv.root);
    assert_int_equal(setenv("LD_PRELOAD", HF_FAULT_SHIM, 1), 0);
    assert_int_equal(setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1), 0);
    assert_int_equal(setenv("HF_FAULT_FLAG", flag, 1), 0);
    assert_int_equal(setenv("HF_FAULT_MATCH", "holdfast.db-wal", 1), 0);
    assert_int_equal(setenv("HF_FAULT_OPS", "write", 1), 0);
    assert_int_equal(setenv("HF_FAULT_ERRNO", "EIO", 1), 0);
    start(fx);
    assert_int_equal(unsetenv("LD_PRELOAD"), 0);

    put(fx, "cap", 1);
    fault_flag(fx, true);
    char body[] = "{\"customer\": \"u-1\", \"lines\": [{\"sku\": \"cap\", \"qty\": 1}]}";
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "POST", "/v1/holds", NULL, body, &r), 0);
    assert_true(hf_expect_error(&r, 503, "outcome_unknown", NULL));
    hf_response_free(&r);
    /* The change was made in memory and its event written, but the commit
     * that carried them failed: nothing was sent. */
    assert_int_equal(rx_count(NULL, NULL, -1), 0);

    /* After a restart the change is gone (the log's write failed): its
     * event must never come. A later event is the barrier: events arrive
     * in order. */
    fault_flag(fx, false);
    restart(fx, SIGKILL);
    hf_sku_counts_t cap;
    assert_int_equal(hf_sku_get(&fx->cl, "cap", &cap), 200);
    put(fx, "barrier", 1);
    char id[HF_TEST_ID_MAX];
    hold(fx, "u-2", "barrier", 1, 600000, id);
    assert_true(rx_wait("sku.sold_out", "\"sku\":\"barrier\"", 200, 1));
    assert_int_equal(cap.held, 0);
    assert_int_equal(rx_count("sku.sold_out", "\"sku\":\"cap\"", -1), 0);
    assert_true(all_signed_well(SECRET));
}

/* ============================================================ retries */

static void test_failing_receiver_gets_every_event_in_order_once_it_recovers(void **state)
{
    fx_t *fx = *state;
    /* The secret from a file, as a shop would keep it. */
    char path[256], extra[512];
    snprintf(path, sizeof path, "%s/webhook.secret", fx->srv.root);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("file-secret-0123456789abcdef\n", f);
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0); /* others may not read it */
    snprintf(extra, sizeof extra,
             "{\"webhooks\": [{\"url\": \"http://127.0.0.1:%u/hooks\", \"events\": "
             "[\"sku.sold_out\"]}], \"webhook_secret_file\": \"%s\", " RETRY "}",
             rx.port, path);
    assert_int_equal(hf_server_write_config(&fx->srv, extra), 0);
    rx_set(3, 3, false); /* three 500s, then three connections closed unanswered */
    start(fx);
    const char *skus[] = {"a", "b", "c", "d"};
    char id[HF_TEST_ID_MAX];
    for (int i = 0; i < 4; i++) {
        put(fx, skus[i], 1);
        hold(fx, "u-1", skus[i], 1, 600000, id); /* sold out; back in stock is filtered out */
    }
    assert_true(rx_wait("sku.sold_out", NULL, 200, 4));
    assert_true(all_signed_well("file-secret-0123456789abcdef"));
    pthread_mutex_lock(&rx.lock);
    /* Every request was one of the four events; a retry has its event's id
     * and body; the accepted ones came in the order the skus sold out. */
    size_t accepted = 0;
    const rx_event_t *first[4] = {0};
    for (size_t i = 0; i < rx.count; i++) {
        const rx_event_t *e = &rx.events[i];
        int k = -1;
        for (int s = 0; s < 4; s++) {
            char needle[32];
            snprintf(needle, sizeof needle, "\"sku\":\"%s\"", skus[s]);
            k = strstr(e->body, needle) != NULL ? s : k;
        }
        assert_true(k >= 0);
        if (first[k] == NULL) {
            first[k] = e;
        }
        assert_string_equal(e->id, first[k]->id);
        assert_string_equal(e->body, first[k]->body);
        if (e->status == 200) {
            assert_int_equal((size_t)k, accepted);
            accepted++;
        }
    }
    assert_int_equal(accepted, 4);
    assert_int_equal(rx.count, 4 + 6);
    assert_string_equal(rx.events[6].attempt, "7"); /* the first event's seventh attempt */
    pthread_mutex_unlock(&rx.lock);
    assert_true(outbox_emptied(fx)); /* the last 2xx counted by the server too */
    char *m = scrape(fx);
    assert_int_equal(metric(m, "holdfast_webhook_deliveries_total{type=\"sku.sold_out\","
                               "outcome=\"failed\"}"),
                     6);
    assert_int_equal(metric(m, "holdfast_webhook_deliveries_total{type=\"sku.sold_out\","
                               "outcome=\"ok\"}"),
                     4);
    free(m);
}

static void test_events_pending_at_a_stop_are_delivered_after_the_restart(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(setenv("HOLDFAST_WEBHOOK_SECRET", "env-secret-0123456789abcdef", 1), 0);
    char extra[512];
    snprintf(extra, sizeof extra,
             "{\"webhooks\": [{\"url\": \"http://127.0.0.1:%u/hooks\"}], \"webhook_retry\": "
             "{\"min_ms\": 5, \"max_ms\": 40, \"attempts_max\": 1000}}",
             rx.port);
    assert_int_equal(hf_server_write_config(&fx->srv, extra), 0);
    rx_set(0, 0, true);
    start(fx);
    char id[HF_TEST_ID_MAX];
    put(fx, "term", 1);
    hold(fx, "u-1", "term", 1, 600000, id);
    assert_true(rx_wait("sku.sold_out", "\"sku\":\"term\"", 500, 1)); /* in delivery */
    restart(fx, SIGTERM);
    put(fx, "kill", 1);
    hold(fx, "u-1", "kill", 1, 600000, id);
    /* Behind the first in line: committed (the reply waited for it), not sent. */
    char *m = scrape(fx);
    assert_int_equal(metric(m, "holdfast_webhook_outbox_depth"), 2);
    assert_int_equal(metric(m, "holdfast_webhook_outbox_waiting_for_journal"), 0);
    assert_true(metric(m, "holdfast_webhook_oldest_pending_seconds") >= 0);
    free(m);
    rx_set(0, 0, false);
    restart(fx, SIGKILL);
    assert_true(rx_wait("sku.sold_out", "\"sku\":\"term\"", 200, 1));
    assert_true(rx_wait("sku.sold_out", "\"sku\":\"kill\"", 200, 1));
    assert_true(all_signed_well("env-secret-0123456789abcdef"));
    /* The same event, by its id, before and after. */
    assert_true(one_id_for("\"sku\":\"term\""));
    assert_true(one_id_for("\"sku\":\"kill\""));
    /* Delivered before a clean stop: not sent again after it. Delivered is
     * the server's word (it read the 2xx), not the receiver's: a stop that
     * cuts the wait for the reply short rightly sends the event again. */
    assert_true(outbox_emptied(fx));
    size_t before = rx_count(NULL, NULL, 200);
    restart(fx, SIGTERM);
    put(fx, "after", 1);
    hold(fx, "u-1", "after", 1, 600000, id);
    assert_true(rx_wait("sku.sold_out", "\"sku\":\"after\"", 200, 1));
    assert_int_equal(rx_count(NULL, NULL, 200), before + 1);
}

static void test_a_hold_that_expires_while_the_server_is_down_is_announced(void **state)
{
    fx_t *fx = *state;
    config(fx, NULL);
    start(fx);
    char id[HF_TEST_ID_MAX], quote[HF_TEST_ID_MAX + 4];
    put(fx, "cap", 1);
    hold(fx, "u-1", "cap", 1, 1000, id);
    assert_true(rx_wait("sku.sold_out", "\"sku\":\"cap\"", 200, 1));
    assert_int_equal(hf_server_stop(&fx->srv, SIGKILL), 128 + SIGKILL);
    hf_sleep_ms(1100); /* the hold's TTL runs out while no server runs */
    start(fx);
    snprintf(quote, sizeof quote, "\"%s\"", id);
    assert_true(rx_wait("hold.expired", quote, 200, 1));
    assert_true(rx_wait("sku.back_in_stock", "\"sku\":\"cap\"", 200, 1));
    /* A second restart announces neither again (a barrier event shows it). */
    restart(fx, SIGKILL);
    put(fx, "barrier", 1);
    hold(fx, "u-2", "barrier", 1, 600000, id);
    assert_true(rx_wait("sku.sold_out", "\"sku\":\"barrier\"", 200, 1));
    assert_int_equal(rx_distinct("hold.expired"), 1); /* a kill may repeat it, by its id */
    assert_int_equal(rx_distinct("sku.back_in_stock"), 1);
}

/* ============================================================== limits */

static void test_a_full_outbox_drops_new_events_and_counts_them(void **state)
{
    fx_t *fx = *state;
    config(fx, ", \"webhook_outbox_max\": 2");
    rx_set(0, 0, true);
    start(fx);
    char id[HF_TEST_ID_MAX];
    const char *skus[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        put(fx, skus[i], 1);
        hold(fx, "u-1", skus[i], 1, 600000, id);
    }
    char *m = scrape(fx);
    assert_int_equal(metric(m, "holdfast_webhook_drops_total{reason=\"outbox_full\"}"), 2);
    assert_int_equal(metric(m, "holdfast_webhook_deliveries_total{type=\"sku.sold_out\","
                               "outcome=\"dropped\"}"),
                     2);
    assert_int_equal(metric(m, "holdfast_webhook_outbox_depth"), 2);
    free(m);
    rx_set(0, 0, false);
    assert_true(rx_wait("sku.sold_out", NULL, 200, 2));
    assert_true(rx_wait("sku.sold_out", "\"sku\":\"b\"", 200, 1));
    assert_int_equal(rx_count("sku.sold_out", "\"sku\":\"c\"", -1), 0);
}

/* A start with the fixture's configuration is refused (status 2), saying so. */
static void expect_start_refused(const fx_t *fx, size_t case_index, const char *says)
{
    const char *argv[] = {"serve", "--listen", "127.0.0.1:0", "--data", fx->srv.data_dir,
                          "--config", fx->srv.config_path, NULL};
    hf_run_result_t res;
    assert_int_equal(hf_run(argv, HF_TEST_START_MS, &res), 2);
    if (strstr(res.err, says) == NULL) {
        fprintf(stderr, "case %zu: expected \"%s\" in: %s\n", case_index, says, res.err);
    }
    assert_non_null(strstr(res.err, says));
}

static void test_unsafe_or_unsigned_webhooks_are_refused_at_start(void **state)
{
    fx_t *fx = *state;
    static const struct {
        const char *config;
        const char *says;
    } cases[] = {
        {"{\"webhooks\": [{\"url\": \"https://127.0.0.1:9/h\"}], \"webhook_secret\": \"" SECRET
         "\"}",
         "https"},
        {"{\"webhooks\": [{\"url\": \"http://127.0.0.1:9/h\"}]}", "secret"},
        {"{\"webhooks\": [{\"url\": \"http://192.0.2.1:9/h\"}], \"webhook_secret\": \"" SECRET
         "\"}",
         "plain_http"},
        {"{\"webhooks\": [{\"url\": \"http://shop.example:9/h\"}], \"webhook_secret\": \"" SECRET
         "\"}",
         "IP address"},
        {"{\"webhooks\": [{\"url\": \"http://127.0.0.1:9/h\", \"events\": [\"sku.gone\"]}], "
         "\"webhook_secret\": \"" SECRET "\"}",
         "sku.gone"},
        {"{\"webhooks\": [{\"url\": \"http://127.0.0.1:9/h\"}], \"webhook_secret\": \"short\"}",
         "16-256"},
        {"{\"webhooks\": [], \"webhook_retry\": {\"min_ms\": 50, \"max_ms\": 10}}", "min_ms"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(hf_server_write_config_raw(&fx->srv, cases[i].config), 0);
        expect_start_refused(fx, i, cases[i].says);
    }
}

/* The secret forges the shop's events: its file is kept as a key file is. */
static void test_a_secret_file_others_may_read_is_refused_at_start(void **state)
{
    fx_t *fx = *state;
    char path[256], config[512];
    snprintf(path, sizeof path, "%s/webhook.secret", fx->srv.root);
    snprintf(config, sizeof config,
             "{\"webhooks\": [{\"url\": \"http://127.0.0.1:9/h\"}], "
             "\"webhook_secret_file\": \"%s\"}",
             path);
    assert_int_equal(hf_server_write_config_raw(&fx->srv, config), 0);
    static const struct {
        mode_t mode;
        size_t bytes;
        const char *says;
    } cases[] = {
        {0644, 32, "(mode 0644): chmod 600 it"},
        {0640, 32, "(mode 0640)"},
        {0600, 259, "larger than a webhook secret"}, /* 256 and a line end, and one more */
        {0, 0, "not a regular file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].bytes > 0) {
            FILE *f = fopen(path, "w");
            assert_non_null(f);
            for (size_t b = 0; b < cases[i].bytes; b++) {
                fputc('s', f);
            }
            fclose(f);
            assert_int_equal(chmod(path, cases[i].mode), 0);
        } else {
            assert_int_equal(mkdir(path, 0700), 0);
        }
        expect_start_refused(fx, i, cases[i].says);
        assert_int_equal(cases[i].bytes > 0 ? unlink(path) : rmdir(path), 0);
    }
}

/* A secret file at its size limit, the longest secret and a CRLF, is read
 * whole: the events are signed with all 256 bytes of it. */
static void test_a_secret_file_at_its_size_limit_is_read_whole(void **state)
{
    fx_t *fx = *state;
    char path[256], secret[257], extra[1024];
    for (int i = 0; i < 256; i++) {
        secret[i] = (char)('a' + i % 26);
    }
    secret[256] = '\0';
    snprintf(path, sizeof path, "%s/webhook.secret", fx->srv.root);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%s\r\n", secret); /* 258 bytes: the most the file may have */
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0);
    snprintf(extra, sizeof extra,
             "{\"webhooks\": [{\"url\": \"http://127.0.0.1:%u/hooks\", \"events\": "
             "[\"sku.sold_out\"]}], \"webhook_secret_file\": \"%s\", " RETRY "}",
             rx.port, path);
    assert_int_equal(hf_server_write_config(&fx->srv, extra), 0);
    rx_set(0, 0, false);
    start(fx);
    char id[HF_TEST_ID_MAX];
    put(fx, "a", 1);
    hold(fx, "u-1", "a", 1, 600000, id); /* sold out */
    assert_true(rx_wait("sku.sold_out", NULL, 200, 1));
    assert_true(all_signed_well(secret));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_each_event_arrives_signed_in_order),
        T(test_no_event_for_a_change_the_journal_did_not_keep),
        T(test_failing_receiver_gets_every_event_in_order_once_it_recovers),
        T(test_events_pending_at_a_stop_are_delivered_after_the_restart),
        T(test_a_hold_that_expires_while_the_server_is_down_is_announced),
        T(test_a_full_outbox_drops_new_events_and_counts_them),
        T(test_unsafe_or_unsigned_webhooks_are_refused_at_start),
        T(test_a_secret_file_others_may_read_is_refused_at_start),
        T(test_a_secret_file_at_its_size_limit_is_read_whole),
#undef T
    };
    return hf_tests_done(cmocka_run_group_tests(tests, NULL, NULL));
}
