/*
 * app.c - the server's life: start-up and recovery, the clock tick, and
 * shutdown. Requests are http.c's.
 *
 * Clock. The engine's time is ms since the epoch, but advanced by the
 * monotonic clock: base + (monotonic - monotonic at start), where base is the
 * wall clock at start or the journal's last time, whichever is later. So time
 * never goes back within a run, and recorded times compare across restarts.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "chart.h"
#include "cluster.h"
#include "events.h"
#include "hf_clock.h"
#include "http.h"
#include "listener.h"
#include "observe.h"
#include "router.h"
#include "simrun.h"
#include "webhooks.h"

/* The clock tick: how late an expiry may be seen by the metrics, not by the
 * API (every request expires what is due first). */
#define TICK_MS 10
/* Shutdown waits this long for requests in flight before closing anyway. */
#define DRAIN_MS_MAX 10000
/* ... and this long more for the replies it then answers itself to go out. */
#define DRAIN_ANSWER_MS_MAX 1000

/* --------------------------------------------------------------- start-up */

static bool is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)a;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
}

static bool parse_addr(const server_config_t *c, struct sockaddr_storage *a, socklen_t *len)
{
    memset(a, 0, sizeof *a);
    const char *host = strcmp(c->host, "localhost") == 0 ? "127.0.0.1" : c->host;
    struct sockaddr_in *in = (struct sockaddr_in *)a;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)a;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(c->port);
        *len = sizeof *in;
        return true;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(c->port);
        *len = sizeof *in6;
        return true;
    }
    return false;
}

/* The URL a client on this machine reaches the socket bound to a at:
 * the address itself if loopback, loopback if bound to all; "" if none. */
static void loopback_url_of(const struct sockaddr_storage *a, const char *addr_text,
                            uint16_t port, char *out, size_t size)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)a;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
    if (is_loopback(a)) {
        snprintf(out, size, "http://%s", addr_text);
    } else if (a->ss_family == AF_INET && in->sin_addr.s_addr == htonl(INADDR_ANY)) {
        snprintf(out, size, "http://127.0.0.1:%u", port);
    } else if (a->ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) {
        snprintf(out, size, "http://[::1]:%u", port);
    } else {
        out[0] = '\0';
    }
}

/* Binds the listening socket; returns it, or -1 after logging why. */
static int listen_on(server_t *s, char *addr_text, size_t addr_text_size)
{
    const server_config_t *c = &s->config;
    struct sockaddr_storage a;
    socklen_t len;
    if (!parse_addr(c, &a, &len)) {
        fprintf(stderr, "level=error msg=\"--listen needs an IP address or localhost\" host=%s\n",
                c->host);
        return -1;
    }
    if (!is_loopback(&a) && c->api_key_count == 0 && c->admin_key[0] == '\0') {
        fprintf(stderr, "level=error msg=\"refusing to listen on a non-loopback address without "
                        "keys: give --api-key and --admin-key\" host=%s\n",
                c->host);
        return -1;
    }
    int fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, len) != 0 || listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        fprintf(stderr, "level=error msg=\"cannot listen\" host=%s port=%u err=\"%s\"\n", c->host,
                c->port, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    char host[INET6_ADDRSTRLEN];
    uint16_t port;
    if (a.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&a)->sin_addr, host, sizeof host);
        port = ntohs(((struct sockaddr_in *)&a)->sin_port);
        snprintf(addr_text, addr_text_size, "%s:%u", host, port);
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a)->sin6_addr, host, sizeof host);
        port = ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
        snprintf(addr_text, addr_text_size, "[%s]:%u", host, port);
    }
    loopback_url_of(&a, addr_text, port, s->loopback_url, sizeof s->loopback_url);
    return fd;
}

/* Applies and journals an op of the server's own (not a client's). */
static int apply_own(server_t *s, guard_op_t *op)
{
    op->engine.now_ms = engine_now_ms(guard_engine(s->guard));
    guard_outcome_t o = guard_apply(s->guard, op);
    assert(o.result == GUARD_OK);
    return o.changed && store_append(&s->store, op, server_mono_ms()) == 0 ? -1 : 0;
}

/* A data directory gets its challenge secret once; it is journaled, so
 * challenges issued before a restart still verify after it. The policy of
 * the configuration file is what a new data directory starts with: once a
 * policy was applied (by PUT /v1/policy or an earlier start), the journal's
 * is kept, so a restart never undoes an operator's change. */
static int start_defenses(server_t *s)
{
    guard_op_t op;
    if (!guard_has_secret(s->guard)) {
        op = (guard_op_t){.kind = GUARD_OP_SECRET};
        if (RAND_bytes(op.u.secret, GUARD_SECRET_BYTES) != 1 || apply_own(s, &op) != 0) {
            fprintf(stderr, "level=error msg=\"cannot make the challenge secret\"\n");
            return -1;
        }
    }
    bool differs = s->config.has_policy &&
                   memcmp(&s->config.policy, guard_policy(s->guard), sizeof(policy_config_t)) != 0;
    if (differs && guard_policy_chosen(s->guard)) {
        fprintf(stderr, "level=warn msg=\"the configuration file's policy is not applied: this "
                        "data directory has its own (GET /v1/policy; PUT /v1/policy changes it)\"\n");
    } else if (differs) {
        uint32_t sku;
        policy_field_t bad;
        if (!guard_policy_fits(s->guard, &s->config.policy, &sku, &bad)) {
            engine_sku_view_t v;
            engine_sku_view(guard_engine(s->guard), sku, &v);
            fprintf(stderr,
                    "level=error msg=\"the configuration file's policy conflicts with a sku's "
                    "own settings\" sku=%.*s field=%s.%s\n",
                    (int)v.sku_len, v.sku, policy_field_info(bad)->section,
                    policy_field_info(bad)->key);
            return -1;
        }
        op = (guard_op_t){.kind = GUARD_OP_POLICY_PUT, .u.policy = s->config.policy};
        observe_audit_config(&op);
        if (apply_own(s, &op) != 0) {
            fprintf(stderr, "level=error msg=\"cannot journal the configured policy\"\n");
            return -1;
        }
        fprintf(stderr, "level=info msg=\"policy from the configuration file applied\"\n");
    }
    return 0;
}

/* The data directory's key for the hold ids and secrets on the wire
 * (store.h): made at the first start and read at every later one, so an id
 * names the same hold, and its secret stays good, across restarts. */
static int load_hold_key(server_t *s)
{
    char err[512];
    store_key_t k;
    uint64_t seq = engine_hold_seq(guard_engine(s->guard));
    if (store_hold_key(&s->store, seq, &k, err, sizeof err) != 0) {
        fprintf(stderr, "level=error msg=\"cannot start without the hold key\" err=\"%s\"\n",
                err);
        return -1;
    }
    int rc = holdkey_init(&s->holdkey, &k);
    OPENSSL_cleanse(&k.key, sizeof k.key);
    if (rc != 0) {
        fprintf(stderr, "level=error msg=\"cannot make hold ids: this OpenSSL lacks HMAC or "
                        "SipHash, or our SipHash disagrees with it\"\n");
        return -1;
    }
    if (k.created && seq > 0) {
        fprintf(stderr, "level=warn msg=\"made a hold key for a data directory with holds: their "
                        "ids given out before keep working (h_...); if it had a key file that "
                        "was lost, ids and secrets given out with that key no longer work\" "
                        "file=%s/%s\n",
                s->config.data_dir, STORE_KEY_FILE);
    }
    if (k.mode_loose) {
        fprintf(stderr, "level=warn msg=\"the hold key file is readable by others: chmod 600 "
                        "it\" file=%s/%s\n",
                s->config.data_dir, STORE_KEY_FILE);
    }
    if (s->config.hold_secret_optional) {
        fprintf(stderr, "level=warn msg=\"hold secrets are optional: a shop key may touch any "
                        "hold it names; switch to required once holdfast_secret_checks_total"
                        "{outcome=\\\"missing_allowed\\\"} stays still\"\n");
    }
    return 0;
}

/* Ids skipped at a relaxed start: more holds (and waitlist entries) than
 * HF_RELAXED_FLUSH_MS of the fastest load could make, with room to spare. */
#define RELAXED_ID_SKIP (1ull << 20)

/* Relaxed durability may lose the last acknowledged changes in a crash, and
 * with them the ids they used: the engine would hand those ids (and, since
 * secrets derive from ids, their secrets) out again, to other customers. A
 * relaxed start therefore skips past them, journaled like any change. */
static int skip_lost_ids(server_t *s)
{
    if (s->config.durability != STORE_RELAXED) {
        return 0;
    }
    guard_op_t op = {.kind = GUARD_OP_ID_SKIP};
    uint64_t hold_seq = engine_hold_seq(guard_engine(s->guard));
    uint64_t wait_seq = guard_wait_seq(s->guard);
    op.u.id_skip.hold_seq = hold_seq + RELAXED_ID_SKIP;
    op.u.id_skip.wait_seq = wait_seq + RELAXED_ID_SKIP;
    if (op.u.id_skip.hold_seq > ENGINE_HOLD_SEQ_MAX || op.u.id_skip.wait_seq > GUARD_WAIT_SEQ_MAX) {
        fprintf(stderr, "level=error msg=\"hold or waitlist ids are used up\"\n");
        return -1;
    }
    if (apply_own(s, &op) != 0) {
        fprintf(stderr, "level=error msg=\"cannot journal the id skip\"\n");
        return -1;
    }
    return 0;
}

/* Test hook: HOLDFAST_FAULT_JOURNAL_AFTER=N makes journal commits fail past
 * the Nth record written after start-up (the server's own records, such as a
 * new challenge secret, come before and do not count). */
static int arm_fault(server_t *s)
{
    const char *fault = getenv("HOLDFAST_FAULT_JOURNAL_AFTER");
    if (fault != NULL) {
        store_fail_after(&s->store, store_appended_seq(&s->store) + strtoull(fault, NULL, 10));
        fprintf(stderr, "level=warn msg=\"journal fault injection on\" after=%s\n", fault);
    }
    return 0;
}

/* Rebuilds the guard from the journal (opened, or failed and to be
 * reopened) and sets the server's clock from it. */
static int catch_up(server_t *s);

static int load_journal(server_t *s, bool reopen)
{
    char err[640];
    const server_config_t *c = &s->config;
    /* Time 0: no advance to now inside; catch_up advances, so that what
     * time did while the server was down is announced (webhooks.c). */
    int rc = reopen ? store_reopen(&s->store, s->guard, 0, &s->recovery, err, sizeof err)
                    : store_recover(&s->store, s->guard, 0, &s->recovery, err, sizeof err);
    if (rc != 0 && store_pg_lost(&s->store)) {
        /* Not damage: the shop was taken over, or PostgreSQL went away,
         * while this node read it. A restart waits for it again. */
        fprintf(stderr, "level=error msg=\"lost PostgreSQL while recovering; exiting for a "
                        "restart\" err=\"%s\"\n",
                err);
        fflush(stderr);
        _exit(STORE_EXIT_LEASE_LOST);
    }
    if (rc != 0) {
        fprintf(stderr, "level=error msg=\"cannot recover\" data=%s err=\"%s\"\n", c->data_dir,
                err);
        return -1;
    }
    /* A first start catches up once the hold key is loaded: the events
     * name holds by their ids on the wire. */
    return reopen ? catch_up(s) : 0;
}

/* Brings the recovered guard to now (holds that ran out while the server
 * was down expire) and sets the server's clock from it. */
static int catch_up(server_t *s)
{
    uint64_t expired = engine_stats(guard_engine(s->guard)).holds_expired;
    if (webhooks_recovered(s, hf_wall_ms()) != 0) {
        return -1;
    }
    s->recovery.holds_expired =
        (uint32_t)(engine_stats(guard_engine(s->guard)).holds_expired - expired);
    /* Time never goes back, even if the wall clock did while we were down. */
    int64_t now_wall_ms = hf_wall_ms(); /* read both clocks at one moment */
    s->mono_start_ms = server_mono_ms();
    int64_t engine_ms = engine_now_ms(guard_engine(s->guard));
    s->clock_base_ms = now_wall_ms > engine_ms ? now_wall_ms : engine_ms;
    s->events_logged = guard_event_seq(s->guard); /* logged by the run that switched them */
    engine_stats_t st = engine_stats(guard_engine(s->guard));
    fprintf(stderr,
            "level=info msg=recovered skus=%u holds=%u finished=%u records=%llu expired=%u "
            "ms=%lld\n",
            st.skus, st.holds_active, st.holds_retained,
            (unsigned long long)(s->recovery.snapshot_records + s->recovery.journal_records),
            s->recovery.holds_expired, (long long)s->recovery.duration_ms);
    if (s->recovery.journal_records > 0) {
        store_snapshot(&s->store, s->guard); /* replay less next time */
    }
    return 0;
}

static bool create_guard(server_t *s)
{
    s->guard = guard_create(&s->config.guard, 0);
    if (s->guard == NULL) {
        fprintf(stderr, "level=error msg=\"cannot reserve the tables\" bytes=%zu\n",
                guard_reserved_bytes(&s->config.guard));
    }
    return s->guard != NULL;
}

/* Opens the journal and rebuilds the guard (engine and defenses) from it. */
static int recover(server_t *s)
{
    char err[640];
    const server_config_t *c = &s->config;
    if (!create_guard(s)) {
        return -1;
    }
    /* A cluster's node opened its journal and took the shop before
     * (cluster_take_shop). */
    if (c->journal_url[0] == '\0' &&
        store_open(&s->store, c->data_dir, c->durability, c->compact_records, err,
                   sizeof err) != 0) {
        fprintf(stderr, "level=error msg=\"cannot recover\" data=%s err=\"%s\"\n", c->data_dir,
                err);
        return -1;
    }
    s->started_epoch_ms = hf_wall_ms();
    return load_journal(s, false);
}

/* ------------------------------------------------------------- run, stop */

/* How often a journal that failed for want of space looks for room. */
#define REOPEN_EVERY_MS 1000

/* A journal that failed because the disk was full takes writes again once
 * there is room, without a restart: the guard is rebuilt from what was
 * durable (everything the failed commit carried was answered "unknown" and
 * is gone from memory with the old guard, as a restart would have it). The
 * old guard goes first, since the tables are sized for the whole machine;
 * if the rebuild then fails, there is nothing to serve from, so the process
 * ends for its supervisor to start it again. */
static void reopen_after_full_disk(server_t *s)
{
    int64_t now_ms = server_mono_ms();
    if (now_ms < s->reopen_at_ms || !store_failed_for_space(&s->store)) {
        return;
    }
    s->reopen_at_ms = now_ms + REOPEN_EVERY_MS;
    if (!store_has_room(s->config.data_dir)) {
        return;
    }
    fprintf(stderr, "level=info msg=\"the disk has room again: reopening the journal\"\n");
    events_close_all(s); /* their text came from the guard that goes */
    pthread_mutex_lock(&s->events_lock);
    pthread_mutex_lock(&s->engine_lock);
    guard_destroy(s->guard);
    bool ok = create_guard(s) && load_journal(s, true) == 0 && skip_lost_ids(s) == 0;
    if (ok) { /* the lost changes may have made skus that are gone */
        chart_forget(s);
        chart_seed(s);
    }
    pthread_mutex_unlock(&s->engine_lock);
    pthread_mutex_unlock(&s->events_lock);
    if (!ok) {
        fprintf(stderr, "level=error msg=\"cannot reopen the journal; exiting\"\n");
        exit(1);
    }
}

/* The engine's own clock: expire what is due, take carts back for buyers
 * who wait, keep the dashboard's history, and compact when it is time. */
void server_tick(server_t *s)
{
    if (s->config.journal_url[0] != '\0') {
        cluster_check_lease(s, server_mono_ms());
    }
    reopen_after_full_disk(s);
    store_snapshot_poll(&s->store, false, server_mono_ms());
    pthread_mutex_lock(&s->engine_lock);
    int64_t now_ms = server_now_ms(s);
    guard_op_t op;
    guard_outcome_t o = guard_reclaim(s->guard, now_ms, &op);
    webhooks_collect(s, o.changed ? &op : NULL, &o, o.changed); /* expiries, the reclaim's */
    if (o.changed && store_append(&s->store, &op, server_mono_ms()) == 0) {
        /* The store is failed for good: every reply says so from now on. */
        fprintf(stderr, "level=error msg=\"a reclaim could not be journaled\"\n");
    }
    chart_sample(s, now_ms);
    if (store_wants_snapshot(&s->store, server_mono_ms())) {
        store_snapshot(&s->store, s->guard);
    }
    pthread_mutex_unlock(&s->engine_lock);
}

/* Ticks until SIGTERM or SIGINT arrives. */
static int wait_for_signal(server_t *s, const sigset_t *signals)
{
    struct timespec timeout = {.tv_sec = 0, .tv_nsec = TICK_MS * 1000000L};
    for (;;) {
        int sig = sigtimedwait(signals, NULL, &timeout);
        if (sig == SIGTERM || sig == SIGINT) {
            return sig;
        }
        if (sig == SIGHUP) {
            observe_reopen(s); /* logrotate moved the access log */
        }
        server_tick(s);
        events_publish(s);
    }
}

/* Waits, at most max_ms, until no request is in flight. */
static void wait_inflight(server_t *s, int64_t max_ms)
{
    int64_t deadline_ms = server_mono_ms() + max_ms;
    while (__atomic_load_n(&s->inflight, __ATOMIC_SEQ_CST) > 0 && server_mono_ms() < deadline_ms) {
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 2000000L};
        nanosleep(&pause, NULL);
    }
}

/* Stop accepting, let requests in flight finish (their replies wait for the
 * journal, which keeps committing), then commit the rest and close. */
static void drain(server_t *s, int sig)
{
    fprintf(stderr, "level=info msg=stopping signal=%s inflight=%d\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", __atomic_load_n(&s->inflight, __ATOMIC_RELAXED));
    __atomic_store_n(&s->draining, 1, __ATOMIC_SEQ_CST);
    events_close_all(s); /* streams never finish on their own */
    simrun_stop(s);
    listener_stop(s);
    wait_inflight(s, DRAIN_MS_MAX);
    http_answer_waiting(s);
    /* Stopping the library closes its connections at once: let the answers
     * just given be sent first. */
    wait_inflight(s, DRAIN_ANSWER_MS_MAX);
    /* No handler may run once the journal is closed: stop HTTP first. */
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    listener_deinit(s);
    if (s->store.since_snapshot > 0 && !store_failed(&s->store)) {
        store_snapshot(&s->store, s->guard); /* a fast start next time */
    }
    webhooks_stop(s); /* what was delivered leaves the outbox in the last commit */
    store_close(&s->store);
}

void server_free(server_t *s)
{
    listener_stop(s); /* it adds connections to the library */
    if (s->daemon != NULL) {
        MHD_stop_daemon(s->daemon);
    }
    listener_deinit(s);
    webhooks_stop(s);
    store_close(&s->store);
    webhooks_free(s);
    guard_destroy(s->guard);
    pthread_mutex_destroy(&s->engine_lock);
    pthread_mutex_destroy(&s->wait_lock);
    pthread_mutex_destroy(&s->events_lock);
    simrun_deinit(s);
    observe_stop(s);
    chart_deinit(s);
    holdkey_deinit(&s->holdkey);
    free(s->sku_refusals);
    free(s);
}

server_t *server_new(const server_config_t *c)
{
    server_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->config = *c;
    s->listen_fd = -1;
    s->wake_fds[0] = s->wake_fds[1] = s->epoll_fd = -1;
    s->sku_refusals = calloc(HF_SKU_RULE_STATS_MAX, sizeof *s->sku_refusals);
    if (s->sku_refusals == NULL) {
        free(s);
        return NULL;
    }
    if (chart_init(s) != 0) {
        chart_deinit(s);
        free(s->sku_refusals);
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->engine_lock, NULL);
    pthread_mutex_init(&s->wait_lock, NULL);
    pthread_mutex_init(&s->events_lock, NULL);
    simrun_init(s);
    s->route_patterns = router_patterns(&s->route_count);
    s->route_methods = router_methods();
    observe_templates(s);
    return s;
}

int server_start(server_t *s, bool commit_thread)
{
    if (webhooks_init(s) != 0 || recover(s) != 0 || load_hold_key(s) != 0 ||
        observe_start(s) != 0 || catch_up(s) != 0 ||
        (commit_thread && store_start(&s->store, http_on_durable, s) != 0) ||
        start_defenses(s) != 0 || skip_lost_ids(s) != 0 ||
        (commit_thread && webhooks_start(s) != 0)) {
        return -1;
    }
    chart_seed(s);
    return 0;
}

/* Waits for the shop's lease, a standby on fd meanwhile; TERM or INT stop
 * the wait (1). */
static int take_shop(server_t *s, int fd, const char *addr)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    return cluster_take_shop(s, fd, addr, &stop);
}

int server_run(const server_config_t *c)
{
    server_t *s = server_new(c);
    if (s == NULL) {
        return 1;
    }
    /* Signals are taken by sigtimedwait on this thread only. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    char addr[INET6_ADDRSTRLEN + 16];
    uint32_t fd_limit;
    int fd = listener_fit_fds(c, &fd_limit) == 0 ? listen_on(s, addr, sizeof addr) : -1;
    int taken = fd >= 0 && c->journal_url[0] != '\0' ? take_shop(s, fd, addr) : 0;
    if (taken != 0) {
        close(fd);
        server_free(s);
        return taken > 0 ? 0 : 1;
    }
    if (fd < 0 || server_start(s, true) != 0 || arm_fault(s) != 0 ||
        (s->daemon = http_start(s)) == NULL || listener_start(s, fd, fd_limit) != 0) {
        if (fd >= 0 && s->listen_fd < 0) {
            close(fd);
        }
        server_free(s);
        return 1;
    }
    fprintf(stderr, "level=info msg=listening addr=%s durability=%s data=%s\n", addr,
            c->durability == STORE_DURABLE ? "durable" : "relaxed", c->data_dir);
    if (c->attack_panel) {
        fprintf(stderr, "level=warn msg=\"the attack panel is on: its runs make real sales "
                        "(a demo server only)\"\n");
    }
    int sig = wait_for_signal(s, &signals);
    drain(s, sig);
    fprintf(stderr, "level=info msg=stopped\n");
    server_free(s);
    return 0;
}
