/*
 * metrics_page.c - GET /metrics in the Prometheus text format, rendered on
 * demand from the counters (metrics.c) and the parts' own figures.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

#include "hf_version.h"
#include "metrics.h"
#include "metrics_page.h"
#include "observe.h"
#include "webhooks.h"

/* One route's histogram; nothing for a route not asked yet. The count is
 * the buckets' sum as read, so it always equals the +Inf bucket. */
static void render_route_latency(server_t *s, int r, json_out_t *o)
{
    uint64_t counts[METRICS_LATENCY_BUCKETS + 1], total = 0;
    for (int b = 0; b <= METRICS_LATENCY_BUCKETS; b++) {
        counts[b] = __atomic_load_n(&s->metrics.latency[r][b], __ATOMIC_RELAXED);
        total += counts[b];
    }
    if (total == 0) {
        return;
    }
    int route = r == SERVER_ROUTE_COUNT_MAX ? -1 : r;
    const char *label = server_route_label(s, route), *method = server_route_method(s, route);
    uint64_t cumulative = 0;
    for (int b = 0; b <= METRICS_LATENCY_BUCKETS; b++) {
        cumulative += counts[b];
        char le[32];
        if (b < METRICS_LATENCY_BUCKETS) {
            snprintf(le, sizeof le, "%g", (double)metrics_latency_bucket_us[b] / 1e6);
        } else {
            snprintf(le, sizeof le, "+Inf");
        }
        jw_rawf(o,
                "holdfast_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\","
                "le=\"%s\"} %llu\n",
                label, method, le, (unsigned long long)cumulative);
    }
    uint64_t sum_us = __atomic_load_n(&s->metrics.latency_sum_us[r], __ATOMIC_RELAXED);
    jw_rawf(o,
            "holdfast_http_request_duration_seconds_sum{route=\"%s\",method=\"%s\"} %.6f\n"
            "holdfast_http_request_duration_seconds_count{route=\"%s\",method=\"%s\"} %llu\n",
            label, method, (double)sum_us / 1e6, label, method, (unsigned long long)total);
}

/* Labelled by the route table's entries (route and method), plus one
 * series for requests that matched none: a bounded set, whatever clients
 * send. */
static void render_latency(server_t *s, json_out_t *o)
{
    jw_rawf(o, "# HELP holdfast_http_request_duration_seconds Time from a complete request to "
               "its reply, the handler and the wait for the journal, by route and method.\n"
               "# TYPE holdfast_http_request_duration_seconds histogram\n");
    for (int r = 0; r <= SERVER_ROUTE_COUNT_MAX; r++) {
        if (r < s->route_count || r == SERVER_ROUTE_COUNT_MAX) {
            render_route_latency(s, r, o);
        }
    }
}

static void render_requests(server_t *s, json_out_t *o)
{
    jw_rawf(o, "# HELP holdfast_http_requests_total HTTP requests by route and status.\n"
                 "# TYPE holdfast_http_requests_total counter\n");
    for (int r = 0; r <= SERVER_ROUTE_COUNT_MAX; r++) {
        if (r >= s->route_count && r != SERVER_ROUTE_COUNT_MAX) {
            continue;
        }
        for (int i = 0; i < SERVER_STATUS_COUNT; i++) {
            uint64_t n = __atomic_load_n(&s->metrics.requests[r][i], __ATOMIC_RELAXED);
            if (n > 0) {
                jw_rawf(o, "holdfast_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                        server_route_label(s, r == SERVER_ROUTE_COUNT_MAX ? -1 : r),
                        metrics_statuses[i], (unsigned long long)n);
            }
        }
    }
    jw_rawf(o, "# HELP holdfast_hold_requests_total Hold requests by engine result.\n"
                 "# TYPE holdfast_hold_requests_total counter\n");
    for (int i = 0; i < ENGINE_RESULT_COUNT; i++) {
        uint64_t n = __atomic_load_n(&s->metrics.hold_results[i], __ATOMIC_RELAXED);
        jw_rawf(o, "holdfast_hold_requests_total{result=\"%s\"} %llu\n",
                  engine_result_name((engine_result_t)i), (unsigned long long)n);
    }
}

/* Whether clients send their holds' secrets: with --hold-secret optional,
 * missing_allowed counts the requests that would be refused once it is
 * required. */
static void render_secrets(server_t *s, json_out_t *o)
{
    static const char *const kinds[2] = {[HOLDKEY_HOLD] = "hold", [HOLDKEY_WAIT] = "waitlist"};
    static const char *const outcomes[SECRET_OUTCOME_COUNT] = {
#define SECRET_LABEL(name, label) [name] = label,
        SECRET_OUTCOMES(SECRET_LABEL)
#undef SECRET_LABEL
    };
    jw_rawf(o, "# HELP holdfast_secret_checks_total Requests naming a hold or waitlist entry, "
               "by what their secret was.\n"
               "# TYPE holdfast_secret_checks_total counter\n");
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < SECRET_OUTCOME_COUNT; i++) {
            uint64_t n = __atomic_load_n(&s->metrics.secrets[k][i], __ATOMIC_RELAXED);
            jw_rawf(o, "holdfast_secret_checks_total{kind=\"%s\",outcome=\"%s\"} %llu\n",
                    kinds[k], outcomes[i], (unsigned long long)n);
        }
    }
}

static void render_engine(const engine_stats_t *e, json_out_t *o)
{
    jw_rawf(o,
              "# HELP holdfast_holds_total Holds by outcome.\n"
              "# TYPE holdfast_holds_total counter\n"
              "holdfast_holds_total{outcome=\"created\"} %llu\n"
              "holdfast_holds_total{outcome=\"committed\"} %llu\n"
              "holdfast_holds_total{outcome=\"released\"} %llu\n"
              "holdfast_holds_total{outcome=\"expired\"} %llu\n"
              "holdfast_holds_total{outcome=\"forgotten\"} %llu\n"
              "# HELP holdfast_holds Holds in memory by state.\n"
              "# TYPE holdfast_holds gauge\n"
              "holdfast_holds{state=\"active\"} %u\n"
              "holdfast_holds{state=\"finished\"} %u\n"
              "# HELP holdfast_units Units across all skus.\n"
              "# TYPE holdfast_units gauge\n"
              "holdfast_units{state=\"stock\"} %lld\n"
              "holdfast_units{state=\"held\"} %lld\n"
              "holdfast_units{state=\"sold\"} %lld\n"
              "holdfast_units{state=\"available\"} %lld\n"
              "# HELP holdfast_skus SKUs.\n# TYPE holdfast_skus gauge\nholdfast_skus %u\n"
              "# HELP holdfast_idempotency_keys Idempotency keys remembered.\n"
              "# TYPE holdfast_idempotency_keys gauge\nholdfast_idempotency_keys %u\n"
              "# HELP holdfast_idempotent_replays_total Requests answered from a key.\n"
              "# TYPE holdfast_idempotent_replays_total counter\n"
              "holdfast_idempotent_replays_total %llu\n",
              (unsigned long long)e->holds_created, (unsigned long long)e->holds_committed,
              (unsigned long long)e->holds_released, (unsigned long long)e->holds_expired,
              (unsigned long long)e->holds_evicted, e->holds_active, e->holds_retained,
              (long long)e->units_stock, (long long)e->units_held, (long long)e->units_sold,
              (long long)(e->units_stock - e->units_held - e->units_sold), e->skus, e->idem_keys,
              (unsigned long long)e->idem_replays);
}

static void render_journal(server_t *s, json_out_t *o)
{
    store_stats_t st = store_stats(&s->store);
    jw_rawf(o, "# HELP holdfast_journal_commit_seconds Group commit latency.\n"
                 "# TYPE holdfast_journal_commit_seconds histogram\n");
    uint64_t cumulative = 0;
    for (int i = 0; i <= STORE_LATENCY_BUCKETS; i++) {
        cumulative += st.latency_count[i];
        if (i < STORE_LATENCY_BUCKETS) {
            jw_rawf(o, "holdfast_journal_commit_seconds_bucket{le=\"%g\"} %llu\n",
                      store_latency_bucket_us[i] / 1e6, (unsigned long long)cumulative);
        } else {
            jw_rawf(o, "holdfast_journal_commit_seconds_bucket{le=\"+Inf\"} %llu\n",
                      (unsigned long long)cumulative);
        }
    }
    jw_rawf(o,
              "holdfast_journal_commit_seconds_sum %.6f\n"
              "holdfast_journal_commit_seconds_count %llu\n"
              "# HELP holdfast_journal_records_total Records (applied ops) made durable.\n"
            "# TYPE holdfast_journal_records_total counter\n"
              "holdfast_journal_records_total %llu\n"
              "# HELP holdfast_journal_bytes_total Bytes of records made durable.\n"
            "# TYPE holdfast_journal_bytes_total counter\n"
              "holdfast_journal_bytes_total %llu\n"
              "# HELP holdfast_journal_snapshots_total Snapshots adopted by the journal.\n"
            "# TYPE holdfast_journal_snapshots_total counter\n"
              "holdfast_journal_snapshots_total %llu\n"
              "# HELP holdfast_journal_failed 1 once the journal has failed (writes refused).\n"
              "# TYPE holdfast_journal_failed gauge\nholdfast_journal_failed %d\n"
              "# HELP holdfast_recovery_seconds How long the last start-up recovery took.\n"
              "# TYPE holdfast_recovery_seconds gauge\nholdfast_recovery_seconds %.3f\n"
              "# HELP holdfast_recovery_records Records the last start-up recovery read (snapshot and journal).\n"
            "# TYPE holdfast_recovery_records gauge\nholdfast_recovery_records %llu\n"
              "# HELP holdfast_recovery_timestamp_seconds When the last recovery ran.\n"
              "# TYPE holdfast_recovery_timestamp_seconds gauge\n"
              "holdfast_recovery_timestamp_seconds %.3f\n",
              st.latency_sum_s, (unsigned long long)cumulative, (unsigned long long)st.records,
              (unsigned long long)st.bytes, (unsigned long long)st.snapshots,
              store_failed(&s->store) ? 1 : 0, (double)s->recovery.duration_ms / 1000.0,
              (unsigned long long)(s->recovery.snapshot_records + s->recovery.journal_records),
              (double)s->started_epoch_ms / 1000.0);
}

/* Per-sku conversion for this many skus at most (the first with recent
 * holds, in creation order): enough for a dashboard, bounded for a catalog. */
#define METRICS_SKUS_MAX 100

typedef struct {
    char sku[HF_SKU_BYTES_MAX + 1];
    double conversion;
    bool escalated;
} sku_line_t;

typedef struct defense_figures_s {
    guard_stats_t g;
    uint32_t sku_count;
    sku_line_t skus[METRICS_SKUS_MAX];
} defense_figures_t;

static void collect_defenses(const guard_t *g, defense_figures_t *d)
{
    d->g = guard_stats(g);
    d->g.skus_escalated = guard_skus_escalated_now(g); /* as GET /v1/skus shows them */
    d->sku_count = 0;
    for (uint32_t i = 0; i < engine_sku_count(guard_engine(g)) && d->sku_count < METRICS_SKUS_MAX;
         i++) {
        guard_sku_view_t v;
        if (!guard_sku_has_holds(g, i)) {
            continue; /* the scrape holds the engine lock: no view of a quiet sku */
        }
        guard_sku_view(g, i, &v);
        if (v.conversion < 0 && !v.escalated) {
            continue;
        }
        engine_sku_view_t e;
        engine_sku_view(guard_engine(g), i, &e);
        sku_line_t *l = &d->skus[d->sku_count++];
        snprintf(l->sku, sizeof l->sku, "%.*s", (int)e.sku_len, e.sku);
        l->conversion = v.conversion < 0 ? 0.0 : v.conversion;
        l->escalated = v.escalated;
    }
}

static void render_rules(const uint64_t *counts, const char *name, json_out_t *o)
{
    for (int r = 1; r < POLICY_RULE_COUNT; r++) {
        if (counts[r] > 0) {
            jw_rawf(o, "%s{rule=\"%s\"} %llu\n", name, policy_rule_name((policy_rule_t)r),
                    (unsigned long long)counts[r]);
        }
    }
}

static void render_defenses(const defense_figures_t *d, json_out_t *o)
{
    const guard_stats_t *g = &d->g;
    jw_rawf(o, "# HELP holdfast_policy_denials_total Holds denied (429) by rule.\n"
               "# TYPE holdfast_policy_denials_total counter\n");
    render_rules(g->denials, "holdfast_policy_denials_total", o);
    jw_rawf(o, "# HELP holdfast_policy_challenges_total Holds challenged (428) by rule.\n"
               "# TYPE holdfast_policy_challenges_total counter\n");
    render_rules(g->challenges, "holdfast_policy_challenges_total", o);
    jw_rawf(o,
            "# HELP holdfast_proofs_total Proofs of work by outcome (stale: issued at a lower price than now asked).\n"
            "# TYPE holdfast_proofs_total counter\n"
            "holdfast_proofs_total{outcome=\"accepted\"} %llu\n"
            "holdfast_proofs_total{outcome=\"refused\"} %llu\n"
            "holdfast_proofs_total{outcome=\"stale\"} %llu\n"
            "# HELP holdfast_escalations_total SKUs switched to stricter settings and back.\n"
            "# TYPE holdfast_escalations_total counter\n"
            "holdfast_escalations_total{to=\"escalated\"} %llu\n"
            "holdfast_escalations_total{to=\"normal\"} %llu\n"
            "# HELP holdfast_skus_escalated SKUs on stricter settings now.\n"
            "# TYPE holdfast_skus_escalated gauge\nholdfast_skus_escalated %u\n"
            "# HELP holdfast_waitlist_total Waitlist entries by event.\n"
            "# TYPE holdfast_waitlist_total counter\n"
            "holdfast_waitlist_total{event=\"joined\"} %llu\n"
            "holdfast_waitlist_total{event=\"offered\"} %llu\n"
            "holdfast_waitlist_total{event=\"fulfilled\"} %llu\n"
            "holdfast_waitlist_total{event=\"expired\"} %llu\n"
            "holdfast_waitlist_total{event=\"cancelled\"} %llu\n"
            "holdfast_waitlist_total{event=\"refused\"} %llu\n"
            "# HELP holdfast_waitlist_waiting Waitlist entries waiting now.\n"
            "# TYPE holdfast_waitlist_waiting gauge\nholdfast_waitlist_waiting %u\n"
            "# HELP holdfast_revoked_holds_total Active holds released by identity revocations.\n"
            "# TYPE holdfast_revoked_holds_total counter\nholdfast_revoked_holds_total %llu\n"
            "# HELP holdfast_buy_now_total Holds bought outright (buy now).\n"
            "# TYPE holdfast_buy_now_total counter\nholdfast_buy_now_total %llu\n"
            "# HELP holdfast_reclaimed_holds_total Stale carts taken back for buyers who wait.\n"
            "# TYPE holdfast_reclaimed_holds_total counter\nholdfast_reclaimed_holds_total %llu\n"
            "# HELP holdfast_reclaimed_units_total Units those carts held.\n"
            "# TYPE holdfast_reclaimed_units_total counter\nholdfast_reclaimed_units_total %llu\n"
            "# HELP holdfast_identities Identities (customers, IP prefixes, fingerprints) tracked now.\n"
            "# TYPE holdfast_identities gauge\nholdfast_identities %u\n",
            (unsigned long long)g->proofs_accepted, (unsigned long long)g->proofs_refused,
            (unsigned long long)g->proofs_stale,
            (unsigned long long)g->escalations_on, (unsigned long long)g->escalations_off,
            g->skus_escalated, (unsigned long long)g->wait_joined,
            (unsigned long long)g->wait_offered, (unsigned long long)g->wait_fulfilled,
            (unsigned long long)g->wait_expired, (unsigned long long)g->wait_cancelled,
            (unsigned long long)g->wait_refused,
            g->waiting, (unsigned long long)g->revoked_holds, (unsigned long long)g->buy_now,
            (unsigned long long)g->reclaimed_holds, (unsigned long long)g->reclaimed_units,
            g->identities);
    /* The escalation is its own gauge: as a label of the conversion it
     * would end one series and start another at every switch. */
    jw_rawf(o, "# HELP holdfast_sku_conversion Recent hold-to-purchase conversion per sku.\n"
               "# TYPE holdfast_sku_conversion gauge\n");
    for (uint32_t i = 0; i < d->sku_count; i++) {
        jw_rawf(o, "holdfast_sku_conversion{sku=\"%s\"} %.4f\n", d->skus[i].sku,
                d->skus[i].conversion);
    }
    jw_rawf(o, "# HELP holdfast_sku_escalated 1 while the sku is on stricter settings, else 0 "
               "(the skus of holdfast_sku_conversion).\n"
               "# TYPE holdfast_sku_escalated gauge\n");
    for (uint32_t i = 0; i < d->sku_count; i++) {
        jw_rawf(o, "holdfast_sku_escalated{sku=\"%s\"} %d\n", d->skus[i].sku,
                d->skus[i].escalated ? 1 : 0);
    }
}

static void render_connections(server_t *s, json_out_t *o)
{
    /* A server without its network (the HTTP fuzz target) has no table. */
    conns_stats_t st = s->conns_ready ? conns_stats(&s->conns) : (conns_stats_t){0};
    jw_rawf(o,
            "# HELP holdfast_connections Open connections.\n"
            "# TYPE holdfast_connections gauge\nholdfast_connections %u\n"
            "# HELP holdfast_connections_waiting Open connections whose request head is not "
            "all in yet (held by the accept loop).\n"
            "# TYPE holdfast_connections_waiting gauge\nholdfast_connections_waiting %u\n"
            "# HELP holdfast_connections_reserve Open connections past the cap, kept for the "
            "operator.\n"
            "# TYPE holdfast_connections_reserve gauge\nholdfast_connections_reserve %u\n"
            "# HELP holdfast_connection_addresses Client addresses (IPv6: /64s) with open "
            "connections.\n"
            "# TYPE holdfast_connection_addresses gauge\nholdfast_connection_addresses %u\n"
            "# HELP holdfast_connections_accepted_total Connections admitted.\n"
            "# TYPE holdfast_connections_accepted_total counter\n"
            "holdfast_connections_accepted_total %llu\n"
            "# HELP holdfast_connections_refused_total Connections answered 503 overloaded and "
            "closed, by reason.\n"
            "# TYPE holdfast_connections_refused_total counter\n",
            st.open_shop + st.open_reserve, st.open_shop + st.open_reserve - st.in_library,
            st.open_reserve, st.addresses,
            (unsigned long long)st.accepted);
    for (int i = 0; i < CONNS_REFUSAL_COUNT; i++) {
        jw_rawf(o, "holdfast_connections_refused_total{reason=\"%s\"} %llu\n",
                conns_refusal_label((conns_refusal_t)i), (unsigned long long)st.refused[i]);
    }
    jw_rawf(o, "# HELP holdfast_connections_closed_total Connections the server closed for "
               "time, by reason.\n"
               "# TYPE holdfast_connections_closed_total counter\n");
    for (int i = 0; i < CONNS_CLOSE_COUNT; i++) {
        jw_rawf(o, "holdfast_connections_closed_total{reason=\"%s\"} %llu\n",
                conns_close_label((conns_close_t)i), (unsigned long long)st.closed[i]);
    }
}

static void render_access_log(server_t *s, json_out_t *o)
{
    observe_log_stats_t st = observe_log_stats(s);
    jw_rawf(o,
            "# HELP holdfast_access_log_lines_total Access log lines by outcome (dropped: "
            "the buffer was full, the line was not waited for).\n"
            "# TYPE holdfast_access_log_lines_total counter\n"
            "holdfast_access_log_lines_total{outcome=\"logged\"} %llu\n"
            "holdfast_access_log_lines_total{outcome=\"dropped\"} %llu\n"
            "# HELP holdfast_access_log_write_errors_total Writes of the access log that "
            "failed (their lines are lost).\n"
            "# TYPE holdfast_access_log_write_errors_total counter\n"
            "holdfast_access_log_write_errors_total %llu\n",
            (unsigned long long)st.written, (unsigned long long)st.dropped,
            (unsigned long long)st.write_errors);
}


void metrics_collect(server_t *s, metrics_figures_t *f)
{
    f->engine = engine_stats(guard_engine(s->guard));
    f->defenses = malloc(sizeof *f->defenses);
    if (f->defenses != NULL) {
        collect_defenses(s->guard, f->defenses);
    }
}

void metrics_render(server_t *s, metrics_figures_t *f, json_out_t *o)
{
    render_requests(s, o);
    render_latency(s, o);
    render_secrets(s, o);
    render_engine(&f->engine, o);
    if (f->defenses != NULL) {
        render_defenses(f->defenses, o);
    }
    free(f->defenses);
    f->defenses = NULL;
    render_journal(s, o);
    render_connections(s, o);
    render_access_log(s, o);
    webhooks_metrics(s, o);
    /* Both values are tokens checked at build time: no escaping needed. */
    jw_rawf(o,
            "# HELP holdfast_build_info The version and commit of this server; always 1.\n"
            "# TYPE holdfast_build_info gauge\n"
            "holdfast_build_info{version=\"%s\",commit=\"%s\"} 1\n",
            HF_VERSION, HF_COMMIT);
}
