/*
 * webhooks.c - the events the server announces, and when (webhooks.h).
 *
 * An event is announced only once the journal covers the change that made
 * it, and then at least once. Both come from the store's outbox: an event
 * is a row written in the same SQLite transaction as the journal records
 * it depends on, so a crash keeps the change and its event, or neither.
 * (The other way, deriving events from journaled ops later and remembering
 * a delivered seq, would need the journal rows after that seq, which
 * snapshots delete; and expiry is not an op at all.)
 *
 * What the events are made from, all read under the engine lock:
 *   waitlist.offered          the guard's offer log
 *   hold.expired              the guard's notice log (an expiry)
 *   sku.sold_out / back_in_stock  the notice log names skus whose held units
 *                             or stock moved; each is compared with what
 *                             was announced last (a bit per sku)
 *   sku.escalated / deescalated  the guard's escalation log
 *   identity.revoked          a journaled revocation that released holds
 *
 * When. webhooks_collect runs after the guard changed: in journal() just
 * before an op is appended (its events need that op: need_seq = appended
 * + 1, so they commit with it), and when the engine lock is let go (events
 * that time made, such as expiries during a read: need_seq = appended).
 *
 * Restarts. Expiry is not journaled: replay gives it back only up to the
 * journal's last record, and the start's advance to now gives the rest. So
 * the start advances with announcing (webhooks_recovered), after first
 * advancing silently to the outbox's marker, the latest engine time whose
 * events were committed: what was announced before the crash is not
 * announced again, and what was not is.
 */
#include "webhooks.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook.h"

struct webhooks_s {
    webhook_t *delivery;
    uint64_t notice_seen, offer_seen, event_seen; /* the guard's logs, read up to */
    uint8_t *in_stock; /* bit per sku: available > 0 when last announced */
    uint32_t skus_known; /* skus below this have their bit */
    uint64_t row_id_max; /* the last outbox row handed to delivery */
    bool full_logged;    /* the outbox-full warning, once per episode */
    json_out_t out;
};

static bool bit_get(const uint8_t *bits, uint32_t i)
{
    return (bits[i / 8] >> (i % 8)) & 1u;
}

static void bit_set(uint8_t *bits, uint32_t i, bool v)
{
    bits[i / 8] = (uint8_t)(v ? bits[i / 8] | (1u << (i % 8)) : bits[i / 8] & ~(1u << (i % 8)));
}

/* ------------------------------------------------------------- outbox glue */

/* Commit thread: a row is durable; delivery takes it from here. */
static void on_committed(void *ctx, const store_outbox_row_t *row)
{
    webhooks_t *h = ctx;
    __atomic_store_n(&h->row_id_max, row->row_id, __ATOMIC_RELAXED); /* rows come in order */
    webhook_enqueue(h->delivery, row->row_id, row->kind, row->event_id, row->at_ms, row->body,
                    row->size, false);
}

static void on_loaded(void *ctx, const store_outbox_row_t *row)
{
    webhooks_t *h = ctx;
    __atomic_store_n(&h->row_id_max, row->row_id, __ATOMIC_RELAXED);
    webhook_enqueue(h->delivery, row->row_id, row->kind, row->event_id, row->at_ms, row->body,
                    row->size, true);
}

static void on_done(void *ctx, uint64_t row_id)
{
    server_t *s = ctx;
    store_outbox_delete(&s->store, row_id);
}

/* -------------------------------------------------------------- an event */

typedef struct {
    server_t *s;
    uint64_t need_seq;
    char id[WEBHOOK_EVENT_ID_MAX + 1];
} emit_t;

static json_out_t *event_begin(emit_t *em, webhook_event_t kind, int64_t at_ms)
{
    json_out_t *j = &em->s->webhooks->out;
    unsigned char rnd[12];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        /* No randomness: an id that is still unique within this run. */
        static uint64_t fallback;
        uint64_t n = __atomic_add_fetch(&fallback, 1, __ATOMIC_RELAXED);
        memset(rnd, 0, sizeof rnd);
        memcpy(rnd, &n, sizeof n);
    }
    int n = snprintf(em->id, sizeof em->id, "evt_");
    for (size_t i = 0; i < sizeof rnd; i++) {
        n += snprintf(em->id + n, sizeof em->id - (size_t)n, "%02x", rnd[i]);
    }
    json_out_reset(j);
    jw_obj_begin(j);
    jw_kcstr(j, "id", em->id);
    jw_kcstr(j, "type", webhook_event_name(kind));
    jw_key(j, "created_at");
    jw_time(j, at_ms);
    jw_key(j, "data");
    jw_obj_begin(j);
    return j;
}

static void event_end(emit_t *em, webhook_event_t kind)
{
    server_t *s = em->s;
    webhooks_t *h = s->webhooks;
    json_out_t *j = &h->out;
    jw_obj_end(j);
    jw_obj_end(j);
    if (!webhook_reserve(h->delivery)) {
        webhook_count_full(h->delivery, kind);
        if (!h->full_logged) {
            h->full_logged = true;
            fprintf(stderr, "level=error msg=\"the webhook outbox is full: new events are "
                            "dropped (holdfast_webhook_drops_total{reason=\\\"outbox_full\\\"})\" "
                            "outbox_max=%u\n",
                    s->config.webhooks.outbox_max);
        }
        return;
    }
    h->full_logged = false;
    /* The row's time is the engine's now: the outbox's marker of how far
     * events were looked for (see the top of this file). */
    int64_t now_ms = engine_now_ms(guard_engine(s->guard));
    if (j->size > WEBHOOK_BODY_BYTES_MAX ||
        store_outbox_add(&s->store, em->need_seq, kind, em->id, now_ms, j->data, j->size) != 0) {
        webhook_unreserve(h->delivery, 1); /* the journal failed: so did its change */
    }
}

static void write_sku_counts(json_out_t *j, const engine_sku_view_t *v)
{
    jw_kstr(j, "sku", v->sku, v->sku_len);
    jw_kint(j, "stock", v->stock);
    jw_kint(j, "held", v->held);
    jw_kint(j, "sold", v->sold);
    jw_kint(j, "available", v->available);
}

static void write_lines(server_t *s, json_out_t *j, const engine_hold_view_t *hv)
{
    jw_key(j, "lines");
    jw_arr_begin(j);
    for (uint16_t i = 0; i < hv->line_count; i++) {
        engine_sku_view_t v;
        engine_sku_view(guard_engine(s->guard), hv->lines[i].sku_index, &v);
        jw_obj_begin(j);
        jw_kstr(j, "sku", v.sku, v.sku_len);
        jw_kint(j, "qty", hv->lines[i].qty);
        jw_obj_end(j);
    }
    jw_arr_end(j);
}

/* --------------------------------------------------------------- sources */

static void stock_changed(emit_t *em, uint32_t sku)
{
    webhooks_t *h = em->s->webhooks;
    if (sku >= h->skus_known) {
        return; /* new: its bit is set as it is, unannounced */
    }
    engine_sku_view_t v;
    engine_sku_view(guard_engine(em->s->guard), sku, &v);
    bool in_stock = v.available > 0;
    if (in_stock == bit_get(h->in_stock, sku)) {
        return;
    }
    bit_set(h->in_stock, sku, in_stock);
    webhook_event_t kind = in_stock ? WEBHOOK_SKU_BACK_IN_STOCK : WEBHOOK_SKU_SOLD_OUT;
    json_out_t *j = event_begin(em, kind, engine_now_ms(guard_engine(em->s->guard)));
    write_sku_counts(j, &v);
    event_end(em, kind);
}

/* Skus made since the last look start with their bit as they are: being
 * created is not selling out. */
static void new_skus(webhooks_t *h, const guard_t *g)
{
    uint32_t count = engine_sku_count(guard_engine(g));
    for (; h->skus_known < count; h->skus_known++) {
        engine_sku_view_t v;
        engine_sku_view(guard_engine(g), h->skus_known, &v);
        bit_set(h->in_stock, h->skus_known, v.available > 0);
    }
}

static void hold_expired(emit_t *em, uint64_t hold_id, int64_t at_ms)
{
    server_t *s = em->s;
    engine_hold_view_t hv;
    char id[HOLDKEY_ID_TEXT_MAX + 1];
    holdkey_id_format(&s->holdkey, hold_id, id);
    json_out_t *j = event_begin(em, WEBHOOK_HOLD_EXPIRED, at_ms);
    jw_key(j, "hold");
    jw_obj_begin(j);
    jw_kcstr(j, "id", id);
    /* Retained for a day, unless its slot went to a newer hold meanwhile. */
    if (engine_hold_view(guard_engine(s->guard), hold_id, &hv) == ENGINE_OK) {
        jw_kstr(j, "customer", hv.customer, hv.customer_len);
        write_lines(s, j, &hv);
        jw_key(j, "created_at");
        jw_time(j, hv.created_ms);
    }
    jw_key(j, "expired_at");
    jw_time(j, at_ms);
    jw_obj_end(j);
    event_end(em, WEBHOOK_HOLD_EXPIRED);
}

/* Expiries and skus whose units moved, since the last look. */
static void read_notices(emit_t *em)
{
    webhooks_t *h = em->s->webhooks;
    const guard_t *g = em->s->guard;
    uint64_t last = guard_notice_seq(g);
    bool overran = last - h->notice_seen > GUARD_NOTICE_LOG_MAX;
    if (overran) {
        webhook_count_lost(h->delivery, last - h->notice_seen - GUARD_NOTICE_LOG_MAX);
        h->notice_seen = last - GUARD_NOTICE_LOG_MAX;
    }
    for (; h->notice_seen < last; h->notice_seen++) {
        guard_notice_t n;
        bool kept = guard_notice(g, h->notice_seen + 1, &n);
        if (kept && n.kind == GUARD_NOTICE_EXPIRED) {
            hold_expired(em, n.id, n.at_ms);
        } else if (kept && n.kind == GUARD_NOTICE_SKU) {
            stock_changed(em, (uint32_t)n.id);
        }
    }
    for (uint32_t sku = 0; overran && sku < h->skus_known; sku++) {
        stock_changed(em, sku); /* the lost notices named some of them */
    }
}

static void read_offers(emit_t *em)
{
    server_t *s = em->s;
    webhooks_t *h = s->webhooks;
    uint64_t last = guard_offer_seq(s->guard);
    if (last - h->offer_seen > GUARD_OFFER_LOG_MAX) {
        webhook_count_lost(h->delivery, last - h->offer_seen - GUARD_OFFER_LOG_MAX);
        h->offer_seen = last - GUARD_OFFER_LOG_MAX;
    }
    for (; h->offer_seen < last; h->offer_seen++) {
        guard_offer_t o;
        guard_wait_view_t w;
        engine_hold_view_t hv;
        if (!guard_offer(s->guard, h->offer_seen + 1, &o) ||
            !guard_wait_view(s->guard, o.wait_id, &w) ||
            engine_hold_view(guard_engine(s->guard), o.hold_id, &hv) != ENGINE_OK) {
            continue; /* gone in the same step (its hold expired at once): nothing to offer */
        }
        char wait_id[24], hold_id[HOLDKEY_ID_TEXT_MAX + 1];
        guard_wait_id_format(o.wait_id, wait_id);
        holdkey_id_format(&s->holdkey, o.hold_id, hold_id);
        engine_sku_view_t v;
        engine_sku_view(guard_engine(s->guard), w.sku_index, &v);
        json_out_t *j = event_begin(em, WEBHOOK_WAITLIST_OFFERED, hv.created_ms);
        jw_kcstr(j, "waitlist_id", wait_id);
        jw_kstr(j, "sku", v.sku, v.sku_len);
        jw_kint(j, "qty", w.qty);
        jw_kstr(j, "customer", w.customer, w.customer_len);
        jw_key(j, "hold");
        jw_obj_begin(j);
        jw_kcstr(j, "id", hold_id);
        jw_key(j, "expires_at");
        jw_time(j, hv.expires_ms);
        jw_obj_end(j);
        event_end(em, WEBHOOK_WAITLIST_OFFERED);
    }
}

static void read_escalations(emit_t *em)
{
    server_t *s = em->s;
    webhooks_t *h = s->webhooks;
    uint64_t last = guard_event_seq(s->guard);
    if (last - h->event_seen > GUARD_EVENTS_MAX) {
        webhook_count_lost(h->delivery, last - h->event_seen - GUARD_EVENTS_MAX);
        h->event_seen = last - GUARD_EVENTS_MAX;
    }
    for (; h->event_seen < last; h->event_seen++) {
        guard_event_t ev;
        if (!guard_event(s->guard, h->event_seen + 1, &ev)) {
            continue;
        }
        engine_sku_view_t v;
        engine_sku_view(guard_engine(s->guard), ev.sku, &v);
        webhook_event_t kind = ev.on ? WEBHOOK_SKU_ESCALATED : WEBHOOK_SKU_DEESCALATED;
        json_out_t *j = event_begin(em, kind, ev.at_ms);
        jw_kstr(j, "sku", v.sku, v.sku_len);
        jw_kcstr(j, "escalation", ev.on ? "escalated" : "normal");
        event_end(em, kind);
    }
}

static void revoked(emit_t *em, const guard_op_t *op, const guard_outcome_t *o)
{
    json_out_t *j = event_begin(em, WEBHOOK_IDENTITY_REVOKED, op->engine.now_ms);
    jw_kcstr(j, "kind", policy_id_kind_name(op->u.revoke.kind));
    jw_kstr(j, "value", op->u.revoke.value, op->u.revoke.value_len);
    jw_kstr(j, "reason", op->reason, op->reason_len);
    jw_kint(j, "holds_released", o->revoked);
    event_end(em, WEBHOOK_IDENTITY_REVOKED);
}

void webhooks_collect(server_t *s, const guard_op_t *op, const guard_outcome_t *o,
                      bool before_append)
{
    webhooks_t *h = s->webhooks;
    if (h == NULL) {
        return;
    }
    const guard_t *g = s->guard;
    bool revocation = op != NULL && op->kind == GUARD_OP_REVOKE && o->revoked > 0;
    if (!revocation && guard_notice_seq(g) == h->notice_seen &&
        guard_offer_seq(g) == h->offer_seen && guard_event_seq(g) == h->event_seen &&
        engine_sku_count(guard_engine(g)) == h->skus_known) {
        return; /* the common case: nothing to announce */
    }
    emit_t em = {.s = s, .need_seq = store_appended_seq(&s->store) + (before_append ? 1 : 0)};
    new_skus(h, g);
    read_escalations(&em);
    read_notices(&em);
    read_offers(&em);
    if (revocation) {
        revoked(&em, op, o);
    }
}

/* ------------------------------------------------------------------ life */

int webhooks_init(server_t *s)
{
    const webhook_config_t *c = &s->config.webhooks;
    if (c->endpoint_count == 0) {
        return 0;
    }
    s->config.guard.notices = true; /* the guard keeps what changed for us */
    webhooks_t *h = calloc(1, sizeof *h);
    uint32_t skus_max = s->config.guard.engine.skus_max;
    if (h != NULL) {
        h->in_stock = calloc((size_t)skus_max / 8 + 1, 1);
        h->delivery = webhook_create(c, on_done, s);
        json_out_init(&h->out);
    }
    s->webhooks = h;
    if (h == NULL || h->in_stock == NULL || h->delivery == NULL) {
        fprintf(stderr, "level=error msg=\"cannot set up webhooks\"\n");
        return -1;
    }
    for (uint32_t i = 0; i < c->endpoint_count; i++) {
        fprintf(stderr, "level=info msg=\"webhook\" endpoint=%u url=%s\n", i, c->endpoints[i].url);
    }
    return 0;
}

/* Sets the cursors and the announced state to the guard as it is now. */
static void look_from_here(webhooks_t *h, const guard_t *g)
{
    h->notice_seen = guard_notice_seq(g);
    h->offer_seen = guard_offer_seq(g);
    h->event_seen = guard_event_seq(g);
    h->skus_known = 0;
    new_skus(h, g);
}

/* Advances to now_ms an expiry instant at a time, announcing each, so that
 * a long stop's expiries cannot overrun the notice log. */
static void advance_announcing(server_t *s, int64_t now_ms)
{
    const engine_t *e = guard_engine(s->guard);
    for (int64_t t = engine_next_expiry_ms(e); t <= now_ms; t = engine_next_expiry_ms(e)) {
        guard_advance(s->guard, t);
        webhooks_collect(s, NULL, NULL, false);
    }
    if (now_ms > engine_now_ms(e)) {
        guard_advance(s->guard, now_ms);
    }
    webhooks_collect(s, NULL, NULL, false);
}

int webhooks_recovered(server_t *s, int64_t now_ms)
{
    webhooks_t *h = s->webhooks;
    const engine_t *e = guard_engine(s->guard);
    char err[256];
    if (h == NULL) {
        if (now_ms > engine_now_ms(e)) {
            guard_advance(s->guard, now_ms);
        }
        return 0;
    }
    if (s->store.outbox == NULL && store_outbox_watch(&s->store, on_committed, h) != 0) {
        fprintf(stderr, "level=error msg=\"cannot set up the webhook outbox\"\n");
        return -1;
    }
    /* A reopened journal forgot the rows that waited for it. */
    webhook_unreserve(h->delivery, UINT32_MAX);
    uint64_t after = __atomic_load_n(&h->row_id_max, __ATOMIC_RELAXED);
    if (store_outbox_load(&s->store, after, on_loaded, h, err, sizeof err) != 0) {
        fprintf(stderr, "level=error msg=\"cannot read the webhook outbox\" err=\"%s\"\n", err);
        return -1;
    }
    int64_t marker_ms = store_outbox_marker_ms(&s->store);
    if (marker_ms > engine_now_ms(e)) {
        guard_advance(s->guard, marker_ms); /* announced before the stop */
    }
    look_from_here(h, s->guard);
    advance_announcing(s, now_ms);
    webhook_stats_t st;
    webhook_stats(h->delivery, &st);
    fprintf(stderr, "level=info msg=\"webhook outbox\" events=%llu\n",
            (unsigned long long)st.depth);
    return 0;
}

int webhooks_start(server_t *s)
{
    if (s->webhooks == NULL) {
        return 0;
    }
    if (webhook_start(s->webhooks->delivery) != 0) {
        fprintf(stderr, "level=error msg=\"cannot start the webhook threads\"\n");
        return -1;
    }
    return 0;
}

void webhooks_stop(server_t *s)
{
    if (s->webhooks != NULL) {
        webhook_stop(s->webhooks->delivery);
    }
}

void webhooks_free(server_t *s)
{
    webhooks_t *h = s->webhooks;
    if (h == NULL) {
        return;
    }
    webhook_destroy(h->delivery);
    json_out_free(&h->out);
    free(h->in_stock);
    free(h);
    s->webhooks = NULL;
}

/* ---------------------------------------------------------------- metrics */

static void render_deliveries(json_out_t *o, const webhook_stats_t *st)
{
    static const char *const outcomes[WEBHOOK_OUTCOME_COUNT] = {"ok", "failed", "dropped"};
    jw_rawf(o, "# HELP holdfast_webhook_deliveries_total Webhook events by type and outcome: ok "
               "(a 2xx from an endpoint), failed (an attempt without one; retried), dropped "
               "(given up, or no room in the outbox).\n"
               "# TYPE holdfast_webhook_deliveries_total counter\n");
    for (int e = 0; e < WEBHOOK_EVENT_COUNT; e++) {
        for (int k = 0; k < WEBHOOK_OUTCOME_COUNT; k++) {
            jw_rawf(o, "holdfast_webhook_deliveries_total{type=\"%s\",outcome=\"%s\"} %llu\n",
                    webhook_event_name((webhook_event_t)e), outcomes[k],
                    (unsigned long long)st->deliveries[e][k]);
        }
    }
    static const char *const reasons[WEBHOOK_DROP_REASON_COUNT] = {"attempts", "age",
                                                                   "outbox_full", "lost"};
    jw_rawf(o, "# HELP holdfast_webhook_drops_total Webhook events given up, by why: attempts "
               "or age (per endpoint), outbox_full (never queued), lost (the server's log of "
               "changes overran between two looks).\n"
               "# TYPE holdfast_webhook_drops_total counter\n");
    for (int r = 0; r < WEBHOOK_DROP_REASON_COUNT; r++) {
        jw_rawf(o, "holdfast_webhook_drops_total{reason=\"%s\"} %llu\n", reasons[r],
                (unsigned long long)st->drops[r]);
    }
}

void webhooks_metrics(server_t *s, json_out_t *o)
{
    webhooks_t *h = s->webhooks;
    if (h == NULL) {
        return;
    }
    webhook_stats_t st;
    webhook_stats(h->delivery, &st);
    uint32_t waiting = store_outbox_waiting(&s->store);
    render_deliveries(o, &st);
    int64_t now_ms = server_now_ms(s);
    double oldest_s = st.oldest_at_ms > 0 && now_ms > st.oldest_at_ms
                          ? (double)(now_ms - st.oldest_at_ms) / 1000.0
                          : 0.0;
    jw_rawf(o, "# HELP holdfast_webhook_outbox_depth Webhook events in the outbox: waiting for "
               "the journal, or for delivery.\n"
               "# TYPE holdfast_webhook_outbox_depth gauge\n"
               "holdfast_webhook_outbox_depth %llu\n"
               "# HELP holdfast_webhook_outbox_waiting_for_journal Of those, events whose change "
               "is not durable yet.\n"
               "# TYPE holdfast_webhook_outbox_waiting_for_journal gauge\n"
               "holdfast_webhook_outbox_waiting_for_journal %u\n"
               "# HELP holdfast_webhook_oldest_pending_seconds Age of the oldest event not yet "
               "delivered to every endpoint (0: none).\n"
               "# TYPE holdfast_webhook_oldest_pending_seconds gauge\n"
               "holdfast_webhook_oldest_pending_seconds %.3f\n",
               (unsigned long long)st.depth, waiting, oldest_s);
    jw_rawf(o, "# HELP holdfast_webhook_last_success_timestamp_seconds When an endpoint last "
               "took an event (unix time; 0: never since start).\n"
               "# TYPE holdfast_webhook_last_success_timestamp_seconds gauge\n");
    for (uint32_t i = 0; i < st.endpoint_count; i++) {
        jw_rawf(o, "holdfast_webhook_last_success_timestamp_seconds{endpoint=\"%u\"} %.3f\n", i,
                (double)st.last_success_ms[i] / 1000.0);
    }
    jw_rawf(o, "# HELP holdfast_webhook_attempts Attempts so far at the event an endpoint is "
               "on (0: the last one went through).\n"
               "# TYPE holdfast_webhook_attempts gauge\n");
    for (uint32_t i = 0; i < st.endpoint_count; i++) {
        jw_rawf(o, "holdfast_webhook_attempts{endpoint=\"%u\"} %u\n", i, st.attempts[i]);
    }
}
