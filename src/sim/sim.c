/*
 * sim.c - the simulation loop (see sim.h): agents, their events, and the
 * shop they all talk to (shop.h).
 *
 * Events are (time, sequence, agent, kind) in a binary min-heap; the
 * sequence breaks ties in the order events were scheduled, so a run is a
 * function of its seed. Each event asks the shop at its instant what the
 * request it stands for would ask: the guard in process (sim_run), or a
 * running server (sim_live). Which one answers, this file never asks.
 */
#include "sim.h"

#include "hf_mix.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shop.h"

/* ------------------------------------------------------------ randomness */

typedef struct {
    uint64_t s[4];
} rng_t;

static void rng_seed(rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        r->s[i] = hf_splitmix64(&seed);
    }
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
static uint64_t rng_next(rng_t *r)
{
    uint64_t result = rotl(r->s[1] * 5, 7) * 9;
    uint64_t t = r->s[1] << 17;
    r->s[2] ^= r->s[0];
    r->s[3] ^= r->s[1];
    r->s[1] ^= r->s[2];
    r->s[0] ^= r->s[3];
    r->s[2] ^= t;
    r->s[3] = rotl(r->s[3], 45);
    return result;
}

/* Uniform in [0, 1). */
static double rng_unit(rng_t *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static uint32_t rng_below(rng_t *r, uint32_t n)
{
    return (uint32_t)(rng_unit(r) * n);
}

static bool rng_pct(rng_t *r, uint32_t pct)
{
    return rng_below(r, 100) < pct;
}

static double rng_normal(rng_t *r)
{
    double u = rng_unit(r), v = rng_unit(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(2.0 * M_PI * v);
}

/* ---------------------------------------------------------------- events */

typedef enum {
    EV_ARRIVE = 1, /* a buyer adds to cart */
    EV_PAY,        /* ... and goes to pay (or not) */
    EV_RETRY,      /* ... tries again after "sold out" */
    EV_PROOF,      /* ... has solved a proof of work */
    EV_BUY_NOW,    /* ... pays directly (holds refused, or no holds at all) */
    EV_WAIT_CHECK, /* ... looks at its waitlist entry */
    EV_HOARD,      /* a hoarder holds again */
    EV_HOARD_EXPIRED, /* ... as its hold runs out */
    EV_HOARD_PROOF,
    EV_SAMPLE,
    EV_SCALP_PAY, /* a scalper pays for its hold */
} event_kind_t;

typedef struct {
    int64_t at_ms;
    uint64_t seq;
    uint32_t agent;
    uint8_t kind;
} event_t;

/* Every event is scheduled in the heap but the buyers' arrivals, which are
 * known at the start: they wait in a sorted array and merge in, so the heap
 * holds only what is in flight (a million arrivals in a heap would cost a
 * cache miss a level on every step). */
typedef struct {
    event_t *heap;
    uint32_t count, capacity;
    uint64_t seq;
    event_t *arrivals;
    uint32_t arrival_count, arrival_next;
} queue_t;

static bool before(const event_t *a, const event_t *b)
{
    return a->at_ms != b->at_ms ? a->at_ms < b->at_ms : a->seq < b->seq;
}

static void push(queue_t *q, int64_t at_ms, uint32_t agent, event_kind_t kind)
{
    if (q->count == q->capacity) {
        q->capacity = q->capacity == 0 ? 1024 : 2 * q->capacity;
        q->heap = realloc(q->heap, q->capacity * sizeof *q->heap);
        assert(q->heap != NULL);
    }
    event_t e = {.at_ms = at_ms, .seq = q->seq++, .agent = agent, .kind = (uint8_t)kind};
    uint32_t i = q->count++;
    while (i > 0 && before(&e, &q->heap[(i - 1) / 2])) {
        q->heap[i] = q->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    q->heap[i] = e;
}

static int by_time(const void *a, const void *b)
{
    const event_t *x = a, *y = b;
    return before(x, y) ? -1 : before(y, x) ? 1 : 0;
}

static bool queue_empty(const queue_t *q)
{
    return q->count == 0 && q->arrival_next == q->arrival_count;
}

/* The next event's time (the queue is not empty). */
static int64_t queue_next_ms(const queue_t *q)
{
    bool arrival = q->arrival_next < q->arrival_count &&
                   (q->count == 0 || before(&q->arrivals[q->arrival_next], &q->heap[0]));
    return arrival ? q->arrivals[q->arrival_next].at_ms : q->heap[0].at_ms;
}

static event_t pop_heap(queue_t *q);

static event_t pop(queue_t *q)
{
    if (q->arrival_next < q->arrival_count &&
        (q->count == 0 || before(&q->arrivals[q->arrival_next], &q->heap[0]))) {
        return q->arrivals[q->arrival_next++];
    }
    return pop_heap(q);
}

static event_t pop_heap(queue_t *q)
{
    assert(q->count > 0);
    event_t top = q->heap[0], last = q->heap[--q->count];
    uint32_t i = 0;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= q->count) {
            break;
        }
        if (c + 1 < q->count && before(&q->heap[c + 1], &q->heap[c])) {
            c++;
        }
        if (!before(&q->heap[c], &last)) {
            break;
        }
        q->heap[i] = q->heap[c];
        i = c;
    }
    if (q->count > 0) {
        q->heap[i] = last;
    }
    return top;
}

/* ---------------------------------------------------------------- agents */

enum {
    G_CHALLENGED = 1,
    G_DENIED = 2,
    G_SAW_HELD = 4,
    G_SERVED = 8,
    G_WAITLISTED = 16,
    G_OFFERED_WAIT = 32, /* shown the waitlist once: joined it or not */
};

typedef struct {
    uint64_t hold_id, wait_id;
    uint32_t proof_tag;
    float proof_s; /* browser seconds spent on proofs so far */
    uint8_t sku, qty, tries, flags, polls;
    uint8_t proof_bits; /* the price its proof was issued at */
} buyer_t;

/* A bot: a hoarder, or a scalper (which pays). */
typedef struct {
    uint64_t holds; /* made so far: a rotating bot's next customer id */
    uint64_t hold_id; /* its hold: a scalper's until it pays, a hoarder's until it ends */
    int64_t hold_expires_ms; /* a hoarder's hold's expiry (-1: taken back before it) */
    uint32_t proof_tag;
    uint8_t proof_bits;
    double cpu_left_s;
    uint16_t bought; /* a scalper's units so far */
    uint8_t sku;
    uint8_t held_sku, held_qty; /* its hold, until EV_HOARD_EXPIRED or EV_SCALP_PAY */
    uint8_t misses;   /* refusals in a row: it waits longer after each */
    uint8_t watching; /* in the line of bots watching a sold-out shop */
    uint8_t scalper, buy_now; /* a scalper; one that found the carts full */
    uint8_t ask; /* units it asks next (0: the most the page offers), learned from a refusal */
} hoarder_t;

typedef struct {
    const sim_scenario_t *s;
    const sim_policy_t *p;
    const sim_options_t *o;
    sim_result_t *r;
    shop_t shop;
    rng_t rng;
    queue_t q;
    buyer_t *buyers;
    hoarder_t *hoarders;
    int64_t now_ms;
    uint32_t sample_next;
    uint32_t *watchers; /* a ring of bots watching a sold-out shop */
    uint32_t watch_head, watch_count;
    uint32_t bots;      /* hoarders, then scalpers */
} sim_t;

/* Agents 0..genuine-1 are buyers; bot a is agent genuine + a: hoarders
 * first (a < attackers), then scalpers. */

static int64_t arrival_ms(sim_t *m)
{
    const sim_scenario_t *s = m->s;
    double t;
    switch (s->curve) {
    case SIM_CURVE_FLASH: /* exponential from the opening */
        t = -log(1.0 - rng_unit(&m->rng)) * (double)s->spread_ms;
        break;
    case SIM_CURVE_VIRAL: /* a wave around the peak */
        t = (double)s->peak_ms + rng_normal(&m->rng) * (double)s->spread_ms;
        break;
    default:
        t = rng_unit(&m->rng) * (double)s->duration_ms;
    }
    if (t < 0) {
        t = 0;
    }
    return t >= (double)s->duration_ms ? s->duration_ms - 1 : (int64_t)t;
}

/* A sku drawn in proportion to its stock: what people come for. */
static uint8_t pick_sku(sim_t *m)
{
    int64_t total = 0;
    for (uint32_t i = 0; i < m->s->sku_count; i++) {
        total += m->s->skus[i].stock;
    }
    int64_t x = (int64_t)(rng_unit(&m->rng) * (double)total);
    for (uint32_t i = 0; i < m->s->sku_count; i++) {
        x -= m->s->skus[i].stock;
        if (x < 0) {
            return (uint8_t)i;
        }
    }
    return (uint8_t)(m->s->sku_count - 1);
}

static int64_t think_ms(sim_t *m)
{
    double t = (double)m->s->think_ms_median * exp(m->s->think_sigma * rng_normal(&m->rng));
    return t < 1000 ? 1000 : (int64_t)t;
}

/* -------------------------------------------------------------- the shop
 * What the agents ask of it (shop.h), at the run's instant. */

static engine_sku_view_t sku_view(const sim_t *m, uint8_t sku)
{
    return m->shop.ops->sku_view(m->shop.ctx, sku);
}

static const policy_config_t *sku_policy(const sim_t *m, uint8_t sku)
{
    return m->shop.ops->sku_policy(m->shop.ctx, sku);
}

/* A duration the shop gave (a TTL, a retry-after), in scenario time. */
static int64_t scenario_ms(const sim_t *m, int64_t shop_ms)
{
    return m->shop.ops->scenario_ms(m->shop.ctx, shop_ms);
}

/* A hold. A bot (qty and expires_ms set) also learns, on GUARD_OK, the
 * units held and when the hold runs out. */
static guard_outcome_t place_hold(sim_t *m, guard_hold_request_t *req, uint8_t sku, uint32_t *qty,
                                  int64_t *expires_ms)
{
    bool bot = qty != NULL;
    assert(bot == (expires_ms != NULL));
    return m->shop.ops->hold(m->shop.ctx, req, sku, bot, m->now_ms, qty, expires_ms);
}

/* After a challenge the agent pays for: the tag its next request carries,
 * 0 if the proof cannot be had. */
static uint32_t proof_tag(sim_t *m, bool bot)
{
    return m->shop.ops->proof_tag(m->shop.ctx, bot);
}

static guard_outcome_t hold_op(sim_t *m, engine_op_kind_t kind, uint64_t hold_id)
{
    return m->shop.ops->hold_op(m->shop.ctx, kind, hold_id, m->now_ms);
}

static guard_outcome_t wait_join(sim_t *m, guard_op_t *op)
{
    return m->shop.ops->wait_join(m->shop.ctx, op);
}

static bool wait_state(sim_t *m, uint64_t wait_id, guard_wait_state_t *state, uint64_t *hold_id)
{
    return m->shop.ops->wait_state(m->shop.ctx, wait_id, state, hold_id);
}

/* -------------------------------------------------------- guard requests */

static void set_line(const sim_t *m, engine_hold_create_t *c, uint8_t sku, uint32_t qty)
{
    const sim_sku_t *k = &m->s->skus[sku];
    c->line_count = 1;
    c->lines[0].sku_len = (uint8_t)strlen(k->sku);
    memcpy(c->lines[0].sku, k->sku, c->lines[0].sku_len);
    c->lines[0].qty = qty;
}

static void set_proof(sim_t *m, guard_hold_request_t *req, uint32_t *tag, uint8_t bits)
{
    if (*tag == 0) {
        return;
    }
    /* The sim skips the hashing, not the rule: a proof is a fresh tag at the
     * price it was asked, good for the challenge's life, spent once, as a
     * verified header would be. */
    req->proof_tag = *tag;
    req->proof_expires_ms = m->now_ms + m->p->config.challenge_ttl_ms;
    req->proof_bits = bits;
    *tag = 0;
}

/* The address of a carrier NAT's customer: one of the scenario's NAT /24s
 * (in 100.64.0.0/10, where carriers number them), one of 250 hosts. */
static uint8_t nat_address(const sim_scenario_t *s, uint32_t who, char *out, size_t size)
{
    uint32_t p = who % s->nat_prefixes;
    return (uint8_t)snprintf(out, size, "100.%u.%u.%u", 64 + (p >> 8 & 63), p & 255,
                             who / s->nat_prefixes % 250 + 1);
}

/* A genuine buyer: its own account, its own browser, and an address shared
 * with 15 neighbours (one /24 for 16 buyers) or, for nat_pct of them, with
 * everyone behind a carrier's NAT. */
static void buyer_request(sim_t *m, uint32_t i, guard_hold_request_t *req, bool buy_now)
{
    buyer_t *b = &m->buyers[i];
    memset(req, 0, offsetof(guard_hold_request_t, create) + offsetof(engine_hold_create_t, lines));
    memset(&req->buy_now, 0, sizeof *req - offsetof(guard_hold_request_t, buy_now));
    engine_hold_create_t *c = &req->create;
    c->customer_len = (uint8_t)snprintf(c->customer, sizeof c->customer, "g%u", i);
    uint32_t net = i / 16;
    if (m->s->nat_prefixes > 0 && i % 100 < m->s->nat_pct) {
        c->ip_len = nat_address(m->s, i, c->ip, sizeof c->ip);
    } else {
        c->ip_len = (uint8_t)snprintf(c->ip, sizeof c->ip, "10.%u.%u.%u", net >> 8 & 255,
                                      net & 255, i % 16 + 1);
    }
    c->fingerprint_len = (uint8_t)snprintf(c->fingerprint, sizeof c->fingerprint, "gf%u", i);
    set_line(m, c, b->sku, b->qty);
    req->buy_now = buy_now;
    set_proof(m, req, &b->proof_tag, b->proof_bits);
}

/* The most the page offers (10, or what is left) within the sku's cap. */
static uint32_t hoard_qty(const sim_t *m, const hoarder_t *h, uint8_t sku)
{
    int64_t qty = h->ask > 0 ? h->ask : 10;
    const policy_config_t *c = sku_policy(m, sku);
    if (c->quantity_enabled && qty > c->quantity_line_qty_max) {
        qty = c->quantity_line_qty_max;
    }
    int64_t available = sku_view(m, sku).available;
    if (qty > available && available > 0) {
        qty = available;
    }
    return (uint32_t)qty;
}

static void hoarder_request(sim_t *m, uint32_t a, guard_hold_request_t *req, uint32_t qty)
{
    const sim_scenario_t *s = m->s;
    hoarder_t *h = &m->hoarders[a];
    memset(req, 0, offsetof(guard_hold_request_t, create) + offsetof(engine_hold_create_t, lines));
    memset(&req->buy_now, 0, sizeof *req - offsetof(guard_hold_request_t, buy_now));
    engine_hold_create_t *c = &req->create;
    char kind = h->scalper ? 's' : 'h'; /* a scalper's names and networks are its own */
    c->customer_len =
        (uint8_t)(s->rotate_ids
                      ? snprintf(c->customer, sizeof c->customer, "%c%u-%llu", kind, a,
                                 (unsigned long long)h->holds)
                      : snprintf(c->customer, sizeof c->customer, "%c%u", kind, a));
    if (s->ip_prefixes > 0) {
        uint32_t p = a % s->ip_prefixes;
        c->ip_len = (uint8_t)snprintf(c->ip, sizeof c->ip, "%u.%u.%u.%u", h->scalper ? 12 : 11,
                                      p >> 8 & 255, p & 255, a % 200 + 1);
    } else if (s->nat_prefixes > 0) {
        c->ip_len = nat_address(s, a, c->ip, sizeof c->ip); /* behind the buyers' carriers */
    }
    if (s->fingerprints > 0) {
        c->fingerprint_len = (uint8_t)snprintf(c->fingerprint, sizeof c->fingerprint, "%cf%u",
                                               kind, a % s->fingerprints);
    }
    set_line(m, c, h->sku, qty);
    c->ttl_ms = h->scalper ? 0 : s->hoard_ttl_ms;
    set_proof(m, req, &h->proof_tag, h->proof_bits);
}

static double proof_s(uint32_t bits, double hashes_per_s)
{
    return ldexp(1.0, (int)bits) / hashes_per_s;
}

/* ---------------------------------------------------------------- buyers */

/* A waiting buyer is told of an offer (an email, a push); looking every
 * half hour as well catches one whose notice was lost. */
#define WAIT_POLL_MS (30 * 60 * 1000)
/* From the notice to paying for the offer. */
#define OFFER_REACTION_MS 30000

static void bought(sim_t *m, uint32_t i)
{
    buyer_t *b = &m->buyers[i];
    m->r->genuine_units_bought += b->qty;
    m->r->revenue_cents += m->s->skus[b->sku].price_cents * b->qty;
    b->flags |= G_SERVED;
}

static bool waitlist_on(const sim_t *m, uint8_t sku)
{
    return !m->p->no_holds && sku_policy(m, sku)->waitlist_enabled;
}

/* When a waiting buyer looks at its entry next. A shop that tells of its
 * offers tells the buyer (offer_made), and a slow look, less often as the
 * wait grows, covers a notice lost to a burst of offers. Where offers reach
 * no one but by a look (a live server), the buyer takes one as often as a
 * notice would come (the shop's e-mail or push, modelled), but no more
 * than four times in an offer's life on the shop's clock, which is enough
 * to catch every offer and keeps a compressed run's looks from eating its
 * requests. */
static int64_t wait_poll_ms(const sim_t *m, buyer_t *b)
{
    if (!m->shop.ops->tells_offers) {
        int64_t quarter_ms = scenario_ms(m, sku_policy(m, b->sku)->waitlist_offer_ttl_ms / 4);
        return quarter_ms > OFFER_REACTION_MS ? quarter_ms : OFFER_REACTION_MS;
    }
    int64_t ms = (int64_t)WAIT_POLL_MS << b->polls;
    b->polls += b->polls < 6;
    return ms;
}

/* Joins the sku's waitlist with the names a hold of theirs carries; false
 * if the shop would not have them. */
static bool buyer_join(sim_t *m, uint32_t i)
{
    buyer_t *b = &m->buyers[i];
    guard_op_t op = {.kind = GUARD_OP_WAIT_JOIN};
    op.engine.now_ms = m->now_ms;
    const sim_sku_t *k = &m->s->skus[b->sku];
    op.u.wait_join.sku_len = (uint8_t)strlen(k->sku);
    memcpy(op.u.wait_join.sku, k->sku, op.u.wait_join.sku_len);
    guard_hold_request_t who;
    buyer_request(m, i, &who, false);
    const engine_hold_create_t *c = &who.create;
    memcpy(op.u.wait_join.customer, c->customer, c->customer_len);
    op.u.wait_join.customer_len = c->customer_len;
    memcpy(op.u.wait_join.ip, c->ip, c->ip_len);
    op.u.wait_join.ip_len = c->ip_len;
    memcpy(op.u.wait_join.fingerprint, c->fingerprint, c->fingerprint_len);
    op.u.wait_join.fingerprint_len = c->fingerprint_len;
    op.u.wait_join.qty = b->qty;
    guard_outcome_t o = wait_join(m, &op);
    if (o.result == GUARD_WAIT_AVAILABLE) {
        push(&m->q, m->now_ms + 1, i, EV_RETRY); /* units came back meanwhile: hold them */
        return true;
    }
    if (o.result != GUARD_OK) {
        return false;
    }
    b->wait_id = o.id;
    b->flags |= G_WAITLISTED;
    push(&m->q, m->now_ms + wait_poll_ms(m, b), i, EV_WAIT_CHECK);
    return true;
}

/* Told "sold out": the page offers the waitlist, which some join at once;
 * the others try again later, a few times, then give up. */
static void sold_out(sim_t *m, uint32_t i)
{
    buyer_t *b = &m->buyers[i];
    if (sku_view(m, b->sku).held > 0) {
        b->flags |= G_SAW_HELD; /* sold out while stock sat in carts */
    }
    if (waitlist_on(m, b->sku) && !(b->flags & G_OFFERED_WAIT)) {
        b->flags |= G_OFFERED_WAIT;
        if (rng_pct(&m->rng, m->s->waitlist_pct) && buyer_join(m, i)) {
            return;
        }
    }
    if (b->tries < m->s->retries) {
        b->tries++;
        push(&m->q, m->now_ms + m->s->retry_wait_ms, i, EV_RETRY);
    }
}

static void buyer_denied(sim_t *m, uint32_t i, const policy_decision_t *d)
{
    buyer_t *b = &m->buyers[i];
    if (d->rule == POLICY_RULE_HOLD_SHARE) {
        /* Carts are full: the shop sells the rest only by buying now. */
        push(&m->q, m->now_ms + think_ms(m), i, EV_BUY_NOW);
        return;
    }
    b->flags |= G_DENIED;
    if (d->retry_after_ms >= 0 && b->tries < m->s->retries) {
        b->tries++;
        push(&m->q, m->now_ms + scenario_ms(m, d->retry_after_ms) + 1, i, EV_RETRY);
    }
}

/* Add to cart: ask for a hold (or, in a shop without holds, look). */
static void buyer_attempt(sim_t *m, uint32_t i)
{
    buyer_t *b = &m->buyers[i];
    if (m->p->no_holds) {
        if (sku_view(m, b->sku).available >= b->qty) {
            push(&m->q, m->now_ms + think_ms(m), i, EV_BUY_NOW);
        } else {
            sold_out(m, i);
        }
        return;
    }
    guard_hold_request_t req;
    buyer_request(m, i, &req, false);
    guard_outcome_t o = place_hold(m, &req, b->sku, NULL, NULL);
    if (o.result == GUARD_OK) {
        b->hold_id = o.engine.hold_id;
        push(&m->q, m->now_ms + think_ms(m), i, EV_PAY);
    } else if (o.result == GUARD_CHALLENGED) {
        b->flags |= G_CHALLENGED;
        double s = proof_s(o.decision.bits, m->s->browser_hashes_per_s);
        m->r->genuine_proof_s += s;
        b->proof_s += (float)s;
        b->proof_tag = proof_tag(m, false);
        b->proof_bits = (uint8_t)o.decision.bits;
        if (b->proof_tag != 0) { /* else too hard a proof: the buyer leaves */
            push(&m->q, m->now_ms + (int64_t)(s * 1000.0) + 1, i, EV_PROOF);
        }
    } else if (o.result == GUARD_DENIED) {
        buyer_denied(m, i, &o.decision);
    } else if (o.result == GUARD_ENGINE && o.engine.result == ENGINE_INSUFFICIENT_STOCK) {
        sold_out(m, i);
    }
}

/* Whether the buyer goes through with paying: most carts are abandoned,
 * and some payments fail. */
static bool pays(sim_t *m, bool *failed)
{
    *failed = false;
    if (rng_pct(&m->rng, m->s->abandon_pct)) {
        return false;
    }
    *failed = rng_pct(&m->rng, m->s->pay_fail_pct);
    return !*failed;
}

static void buyer_pay(sim_t *m, uint32_t i)
{
    buyer_t *b = &m->buyers[i];
    bool failed;
    if (!pays(m, &failed)) {
        if (failed) {
            hold_op(m, ENGINE_OP_HOLD_RELEASE, b->hold_id); /* the shop lets go */
        }
        return; /* abandoned: the hold runs out on its own */
    }
    guard_outcome_t o = hold_op(m, ENGINE_OP_HOLD_COMMIT, b->hold_id);
    if (o.result == GUARD_OK) {
        bought(m, i);
    } else if (b->tries < m->s->retries) {
        b->tries++; /* the cart ran out while paying: add to cart again */
        buyer_attempt(m, i);
    }
}

static void buyer_buy_now(sim_t *m, uint32_t i)
{
    buyer_t *b = &m->buyers[i];
    bool failed;
    if (!pays(m, &failed)) {
        return;
    }
    guard_hold_request_t req;
    buyer_request(m, i, &req, true);
    guard_outcome_t o = place_hold(m, &req, b->sku, NULL, NULL);
    if (o.result == GUARD_OK) {
        bought(m, i);
    } else if (m->p->no_holds) {
        m->r->oversells++; /* paid, then refunded: the stock was gone */
    } else if (o.result == GUARD_ENGINE && o.engine.result == ENGINE_INSUFFICIENT_STOCK) {
        sold_out(m, i);
    } else if (o.result == GUARD_DENIED) {
        b->flags |= G_DENIED;
    }
}

static void buyer_wait_check(sim_t *m, uint32_t i)
{
    buyer_t *b = &m->buyers[i];
    guard_wait_state_t state;
    uint64_t hold_id;
    if (!wait_state(m, b->wait_id, &state, &hold_id)) {
        return;
    }
    if (state == GUARD_WAIT_WAITING) {
        push(&m->q, m->now_ms + wait_poll_ms(m, b), i, EV_WAIT_CHECK);
    } else if (state == GUARD_WAIT_OFFERED && !rng_pct(&m->rng, m->s->abandon_pct / 2)) {
        guard_outcome_t o = hold_op(m, ENGINE_OP_HOLD_COMMIT, hold_id);
        if (o.result == GUARD_OK) {
            bought(m, i);
            m->r->genuine_served_from_waitlist++;
        }
    }
}

/* The agent a customer name of the run names: kind, then its number (and,
 * for a rotating bot, '-' and its hold count). Names are not terminated,
 * and the bytes past len are another name's, so only len bytes are read. */
static bool agent_of(const char *name, uint8_t len, const char *kinds, uint32_t limit,
                     uint32_t *out)
{
    if (len < 2 || name[0] == '\0' || strchr(kinds, name[0]) == NULL) {
        return false;
    }
    uint64_t n = 0;
    uint8_t i = 1;
    for (; i < len && name[i] >= '0' && name[i] <= '9' && n < limit; i++) {
        n = n * 10 + (uint64_t)(name[i] - '0');
    }
    *out = (uint32_t)n;
    return i > 1 && (i == len || name[i] == '-') && n < limit;
}

/* The shop told of an offer: its buyer, if one of the run's and still
 * waiting on that entry, goes to pay. */
static void news_offer_made(void *agents, uint64_t wait_id, const char *customer,
                            uint8_t customer_len)
{
    sim_t *m = agents;
    uint32_t i;
    if (agent_of(customer, customer_len, "g", m->s->genuine, &i) &&
        m->buyers[i].wait_id == wait_id) {
        push(&m->q, m->now_ms + OFFER_REACTION_MS, i, EV_WAIT_CHECK);
    }
}

/* -------------------------------------------------------------- hoarders */

/* A bot looks at the shop (its cart, the stock page) this often. */
#define HOARD_REACTION_MS 30000
/* A bot's checkout and its next try: seconds, not a person's minutes. */
#define SCALP_PAY_MS 3000
#define SCALP_NEXT_MS 1000

static void hoarder_reclaimed(sim_t *m, uint32_t a);

/* The shop took a cart back for buyers who wait: a bot whose cart it was
 * sees it. */
static void news_hold_taken_back(void *agents, const char *customer, uint8_t customer_len)
{
    sim_t *m = agents;
    uint32_t a;
    if (agent_of(customer, customer_len, "hs", m->bots, &a)) {
        hoarder_reclaimed(m, a);
    }
}

#define HOARD_WAIT_MS_MAX (30 * 60 * 1000)

static void hoarder_next_sku(sim_t *m, hoarder_t *h)
{
    h->sku = (uint8_t)((h->sku + 1) % m->s->sku_count);
    h->ask = 0; /* another sku: the most the page offers again */
}

/* A bot refused for how many units it asked learns from the reply how many
 * it may have (the limit less what it holds or bought), or, refused by the
 * newcomer pool, that an ordinary cart's units still pass. True if it asks
 * again for fewer, at once. */
static bool bot_learns(sim_t *m, hoarder_t *h, const policy_decision_t *d, uint32_t asked)
{
    int64_t may = 0;
    switch (d->rule) {
    case POLICY_RULE_LINE_QTY:
    case POLICY_RULE_CUSTOMER_UNITS_PER_SKU:
    case POLICY_RULE_FINGERPRINT_UNITS_PER_SKU:
    case POLICY_RULE_IP_PREFIX_UNITS_PER_SKU:
    case POLICY_RULE_CUSTOMER_UNITS:
    case POLICY_RULE_IP_PREFIX_UNITS:
    case POLICY_RULE_FINGERPRINT_UNITS:
        may = d->rule == POLICY_RULE_LINE_QTY ? d->limit : d->limit - d->current;
        break;
    case POLICY_RULE_NEWCOMER_POOL:
        may = sku_policy(m, h->sku)->newcomer_free_units;
        break;
    default:
        return false;
    }
    if (may < 1 || may >= (int64_t)asked) {
        return false;
    }
    h->ask = (uint8_t)(may < 255 ? may : 255);
    return true;
}

static void hoarder_held(sim_t *m, uint32_t agent, hoarder_t *h, uint32_t qty, int64_t expires_ms,
                         uint64_t hold_id)
{
    int64_t until_ms = expires_ms < m->s->duration_ms ? expires_ms : m->s->duration_ms;
    m->r->attacker_unit_hours += (double)qty * (double)(until_ms - m->now_ms) / 3.6e6;
    m->r->attacker_holds++;
    m->r->attacker_identities += m->s->rotate_ids; /* the next hold has a new name */
    h->holds++;
    h->held_sku = h->sku;
    h->held_qty = (uint8_t)(qty < 255 ? qty : 255);
    h->hold_id = hold_id;
    h->hold_expires_ms = expires_ms;
    hoarder_next_sku(m, h);
    push(&m->q, expires_ms, agent, EV_HOARD_EXPIRED); /* hold again as it runs out */
}

/* The shop took a hoarder's hold back (reclaim): the bot sees its cart
 * emptied at its next look and tries again; what it had counted as held
 * to the end of the hold ends now. */
static void hoarder_reclaimed(sim_t *m, uint32_t a)
{
    hoarder_t *h = &m->hoarders[a];
    if (h->scalper || h->held_qty == 0 || h->hold_expires_ms < 0) {
        return;
    }
    int64_t until_ms = h->hold_expires_ms < m->s->duration_ms ? h->hold_expires_ms
                                                             : m->s->duration_ms;
    m->r->attacker_unit_hours -= (double)h->held_qty * (double)(until_ms - m->now_ms) / 3.6e6;
    h->held_qty = 0;
    h->hold_expires_ms = -1; /* its EV_HOARD_EXPIRED is stale now */
    push(&m->q, m->now_ms + 1 + rng_below(&m->rng, HOARD_REACTION_MS), m->s->genuine + a,
         EV_HOARD);
}

/* A bot on a sold-out shop watches the stock page (reads, not holds) and
 * pounces when units appear. The simulation keeps the watchers in a line
 * and wakes as many as the freed units could feed, each after a random
 * reaction (HOARD_REACTION_MS above), instead of stepping every bot
 * through every poll. */

static void watch(sim_t *m, uint32_t a)
{
    hoarder_t *h = &m->hoarders[a];
    if (h->watching) {
        return;
    }
    h->watching = 1;
    m->watchers[(m->watch_head + m->watch_count++) % m->bots] = a;
}

/* After each event: units on sale and bots watching? Wake some. */
static void wake_watchers(sim_t *m)
{
    if (m->watch_count == 0 || m->now_ms >= m->s->attack_end_ms) {
        return;
    }
    int64_t available = 0;
    for (uint32_t k = 0; k < m->s->sku_count; k++) {
        available += sku_view(m, (uint8_t)k).available;
    }
    for (int64_t fed = 0; fed < available && m->watch_count > 0; fed += 10) {
        uint32_t a = m->watchers[m->watch_head];
        m->watch_head = (m->watch_head + 1) % m->bots;
        m->watch_count--;
        m->hoarders[a].watching = 0;
        push(&m->q, m->now_ms + 1 + rng_below(&m->rng, HOARD_REACTION_MS), m->s->genuine + a,
             EV_HOARD);
    }
}

/* Moves the hoarder to the next sku with units available; false if none. */
static bool hoarder_find_stock(sim_t *m, hoarder_t *h)
{
    for (uint32_t k = 0; k < m->s->sku_count; k++) {
        if (sku_view(m, h->sku).available > 0) {
            return true;
        }
        hoarder_next_sku(m, h);
    }
    return false;
}

/* Its hold has run out: the shop is told, as a shop that learns its totals
 * only every so often (a live server) must be, so that the hoarder finds
 * the units again. */
static void hoarder_expired(sim_t *m, uint32_t agent)
{
    hoarder_t *h = &m->hoarders[agent - m->s->genuine];
    if (h->held_qty > 0) {
        m->shop.ops->hold_expired(m->shop.ctx, h->held_sku, h->held_qty);
    }
    h->held_qty = 0;
}

/* A bot challenged: it pays the proof from its CPU budget if it can, and
 * tries again when solved. False if it cannot. */
static bool bot_pays_proof(sim_t *m, uint32_t agent, hoarder_t *h, uint32_t bits)
{
    double s = proof_s(bits, m->s->attacker_hashes_per_s);
    if (s > h->cpu_left_s || (h->proof_tag = proof_tag(m, true)) == 0) {
        return false;
    }
    h->proof_bits = (uint8_t)bits;
    h->cpu_left_s -= s;
    m->r->attacker_cpu_s += s;
    push(&m->q, m->now_ms + (int64_t)(s * 1000.0) + 1, agent, EV_HOARD_PROOF);
    return true;
}

/* A bot polls a sold-out or refusing shop, backing off from a minute to
 * half an hour as refusals pile up. */
static int64_t bot_backoff_ms(hoarder_t *h)
{
    h->misses += h->misses < 5;
    return 60000LL << h->misses > HOARD_WAIT_MS_MAX ? HOARD_WAIT_MS_MAX : 60000LL << h->misses;
}

static void scalper_attempt(sim_t *m, uint32_t agent, hoarder_t *h);

/* A hoarder holds the most it may, and pays for proofs while it can. */
static void hoarder_attempt(sim_t *m, uint32_t agent)
{
    hoarder_t *h = &m->hoarders[agent - m->s->genuine];
    if (h->scalper) {
        scalper_attempt(m, agent, h);
        return;
    }
    if (m->now_ms >= m->s->attack_end_ms || m->p->no_holds) {
        return; /* a shop without holds has nothing to hoard */
    }
    if (!hoarder_find_stock(m, h)) {
        watch(m, agent - m->s->genuine); /* sold out everywhere: watch the stock page */
        return;
    }
    guard_hold_request_t req;
    uint32_t qty;
    int64_t expires_ms;
    uint32_t asked = hoard_qty(m, h, h->sku);
    hoarder_request(m, agent - m->s->genuine, &req, asked);
    guard_outcome_t o = place_hold(m, &req, h->sku, &qty, &expires_ms);
    if (o.result == GUARD_OK) {
        h->misses = 0;
        hoarder_held(m, agent, h, qty, expires_ms, o.engine.hold_id);
        return;
    }
    int64_t wait_ms = bot_backoff_ms(h);
    if (o.result == GUARD_CHALLENGED) {
        m->r->attacker_challenged++;
        if (bot_pays_proof(m, agent, h, o.decision.bits)) {
            return;
        }
        wait_ms = HOARD_WAIT_MS_MAX; /* out of CPU: try elsewhere, later */
    } else if (o.result == GUARD_DENIED && bot_learns(m, h, &o.decision, asked)) {
        m->r->attacker_denied++;
        push(&m->q, m->now_ms + SCALP_NEXT_MS, agent, EV_HOARD); /* the same sku, fewer */
        return;
    } else if (o.result == GUARD_DENIED) {
        m->r->attacker_denied++;
        int64_t retry_ms = scenario_ms(m, o.decision.retry_after_ms);
        if (o.decision.retry_after_ms >= 0 && retry_ms < wait_ms) {
            wait_ms = retry_ms + 1;
        }
    }
    hoarder_next_sku(m, h);
    push(&m->q, m->now_ms + wait_ms, agent, EV_HOARD);
}

/* -------------------------------------------------------------- scalpers */

static void scalper_bought(sim_t *m, hoarder_t *h, uint8_t sku, uint32_t qty)
{
    h->bought = (uint16_t)(h->bought + qty);
    m->r->scalper_units_bought += qty;
    m->r->revenue_cents += m->s->skus[sku].price_cents * qty;
}

/* Holds what it may (or buys outright once carts were full, or in a shop
 * without holds) until it has scalper_units. */
static void scalper_attempt(sim_t *m, uint32_t agent, hoarder_t *h)
{
    const sim_scenario_t *s = m->s;
    if (m->now_ms >= s->attack_end_ms || h->bought >= s->scalper_units) {
        return;
    }
    if (!hoarder_find_stock(m, h)) {
        watch(m, agent - s->genuine); /* sold out: watch for units coming back */
        return;
    }
    uint32_t qty = hoard_qty(m, h, h->sku), left = s->scalper_units - h->bought;
    guard_hold_request_t req;
    uint32_t held;
    int64_t expires_ms;
    uint32_t asked = qty < left ? qty : left;
    hoarder_request(m, agent - s->genuine, &req, asked);
    req.buy_now = m->p->no_holds || h->buy_now;
    guard_outcome_t o = place_hold(m, &req, h->sku, &held, &expires_ms);
    if (o.result == GUARD_OK) {
        h->misses = 0;
        h->holds++; /* a rotating bot's next account */
        if (req.buy_now) {
            scalper_bought(m, h, h->sku, held);
            push(&m->q, m->now_ms + SCALP_NEXT_MS, agent, EV_HOARD);
        } else {
            h->hold_id = o.engine.hold_id;
            h->held_sku = h->sku;
            h->held_qty = (uint8_t)held;
            push(&m->q, m->now_ms + SCALP_PAY_MS, agent, EV_SCALP_PAY);
        }
        return;
    }
    int64_t wait_ms = bot_backoff_ms(h);
    if (req.buy_now && m->p->no_holds) {
        m->r->oversells++; /* paid, then refunded: the stock was gone */
    } else if (o.result == GUARD_CHALLENGED) {
        if (bot_pays_proof(m, agent, h, o.decision.bits)) {
            return;
        }
        wait_ms = HOARD_WAIT_MS_MAX;
    } else if (o.result == GUARD_DENIED && o.decision.rule == POLICY_RULE_HOLD_SHARE) {
        h->buy_now = 1; /* carts are full: buy outright from now on */
        wait_ms = SCALP_NEXT_MS;
    } else if (o.result == GUARD_DENIED && bot_learns(m, h, &o.decision, asked)) {
        push(&m->q, m->now_ms + SCALP_NEXT_MS, agent, EV_HOARD); /* the same sku, fewer */
        return;
    } else if (o.result == GUARD_DENIED && o.decision.retry_after_ms >= 0) {
        int64_t retry_ms = scenario_ms(m, o.decision.retry_after_ms) + 1;
        wait_ms = retry_ms < wait_ms ? retry_ms : wait_ms;
    }
    hoarder_next_sku(m, h);
    push(&m->q, m->now_ms + wait_ms, agent, EV_HOARD);
}

static void scalper_pay(sim_t *m, uint32_t agent)
{
    hoarder_t *h = &m->hoarders[agent - m->s->genuine];
    if (hold_op(m, ENGINE_OP_HOLD_COMMIT, h->hold_id).result == GUARD_OK) {
        scalper_bought(m, h, h->held_sku, h->held_qty);
    }
    h->held_qty = 0;
    push(&m->q, m->now_ms + SCALP_NEXT_MS, agent, EV_HOARD);
}

/* ------------------------------------------------------------------ run */

/* The units of all the run's skus. */
static engine_sku_view_t totals(const sim_t *m)
{
    engine_sku_view_t t = {0};
    for (uint32_t i = 0; i < m->s->sku_count; i++) {
        engine_sku_view_t v = sku_view(m, (uint8_t)i);
        t.available += v.available;
        t.held += v.held;
        t.sold += v.sold;
    }
    return t;
}

static void sample(sim_t *m)
{
    sim_result_t *r = m->r;
    engine_sku_view_t t = totals(m);
    uint32_t k = m->sample_next++;
    r->sample_ms[k] = m->now_ms;
    r->sample_available[k] = t.available;
    r->sample_held[k] = t.held;
    r->sample_sold[k] = t.sold;
    if (m->sample_next < r->samples) {
        push(&m->q, (int64_t)m->sample_next * m->s->duration_ms / (r->samples - 1), 0, EV_SAMPLE);
    }
}

static void dispatch(sim_t *m, const event_t *e)
{
    switch ((event_kind_t)e->kind) {
    case EV_ARRIVE:
    case EV_RETRY:
    case EV_PROOF:
        buyer_attempt(m, e->agent);
        break;
    case EV_PAY:
        buyer_pay(m, e->agent);
        break;
    case EV_BUY_NOW:
        buyer_buy_now(m, e->agent);
        break;
    case EV_WAIT_CHECK:
        buyer_wait_check(m, e->agent);
        break;
    case EV_HOARD_EXPIRED:
        if (m->hoarders[e->agent - m->s->genuine].hold_expires_ms == e->at_ms) {
            hoarder_expired(m, e->agent);
            hoarder_attempt(m, e->agent);
        } /* else a hold taken back earlier: the bot has moved on */
        break;
    case EV_HOARD:
    case EV_HOARD_PROOF:
        hoarder_attempt(m, e->agent);
        break;
    case EV_SAMPLE:
        sample(m);
        break;
    case EV_SCALP_PAY:
        scalper_pay(m, e->agent);
        break;
    }
}

static void populate(sim_t *m)
{
    const sim_scenario_t *s = m->s;
    m->q.arrivals = malloc((s->genuine + 1) * sizeof *m->q.arrivals);
    assert(m->q.arrivals != NULL);
    for (uint32_t i = 0; i < s->genuine; i++) {
        buyer_t *b = &m->buyers[i];
        b->sku = pick_sku(m);
        b->qty = (uint8_t)(s->qty_max <= 1 || rng_pct(&m->rng, 70)
                               ? 1
                               : 2 + rng_below(&m->rng, s->qty_max - 1));
        m->r->genuine_units_wanted += b->qty;
        m->q.arrivals[i] = (event_t){.at_ms = arrival_ms(m), .seq = m->q.seq++, .agent = i,
                                     .kind = EV_ARRIVE};
    }
    m->q.arrival_count = s->genuine;
    qsort(m->q.arrivals, s->genuine, sizeof *m->q.arrivals, by_time);
    for (uint32_t a = 0; a < m->bots; a++) {
        hoarder_t *h = &m->hoarders[a];
        h->scalper = a >= s->attackers;
        h->cpu_left_s = s->attacker_cpu_s;
        h->sku = (uint8_t)(a % s->sku_count);
        /* A coordinated start, spread over the ramp. */
        int64_t ramp_ms = s->attack_ramp_ms > 0 ? s->attack_ramp_ms : 1;
        push(&m->q, s->attack_start_ms + (int64_t)(rng_unit(&m->rng) * (double)ramp_ms),
             s->genuine + a, EV_HOARD);
    }
    m->r->attacker_identities = s->attackers;
    m->r->genuine_buyers = s->genuine;
    if (m->r->samples > 0) {
        push(&m->q, 0, 0, EV_SAMPLE);
    }
}

static void tally(sim_t *m)
{
    sim_result_t *r = m->r;
    for (uint32_t i = 0; i < m->s->genuine; i++) {
        uint8_t f = m->buyers[i].flags;
        r->genuine_buyers_served += (f & G_SERVED) != 0;
        r->genuine_saw_sold_out_while_held += (f & G_SAW_HELD) != 0;
        r->genuine_challenged += (f & G_CHALLENGED) != 0;
        r->genuine_denied += (f & G_DENIED) != 0;
        r->genuine_burdened +=
            (f & G_DENIED) != 0 || m->buyers[i].proof_s > (float)SIM_BURDEN_PROOF_S;
        r->genuine_waitlisted += (f & G_WAITLISTED) != 0;
    }
}

static int sim_check(const sim_scenario_t *s, char *err, size_t err_size)
{
    if (s->sku_count < 1 || s->sku_count > SIM_SKUS_MAX || s->genuine > SIM_GENUINE_MAX ||
        s->attackers > SIM_ATTACKERS_MAX || s->scalpers > SIM_SCALPERS_MAX ||
        (s->scalpers > 0 && (s->scalper_units < 1 || s->scalper_units > SIM_SCALPER_UNITS_MAX)) ||
        s->duration_ms < 1 ||
        s->duration_ms > SIM_DURATION_MS_MAX || s->qty_max < 1 || s->qty_max > 255 ||
        s->abandon_pct > 100 || s->pay_fail_pct > 100 || s->waitlist_pct > 100 ||
        s->browser_hashes_per_s <= 0 ||
        (s->attackers + s->scalpers > 0 && s->attacker_hashes_per_s <= 0)) {
        snprintf(err, err_size, "scenario %s: a setting is out of range", s->name);
        return -1;
    }
    return 0;
}

/* The agents and the series. */
static int sim_start(sim_t *m, char *err, size_t err_size)
{
    const sim_scenario_t *s = m->s;
    m->buyers = calloc(s->genuine + 1, sizeof *m->buyers);
    m->bots = s->attackers + s->scalpers;
    m->hoarders = calloc(m->bots + 1, sizeof *m->hoarders);
    m->watchers = calloc(m->bots + 1, sizeof *m->watchers);
    uint32_t n = m->o->samples;
    m->r->samples = n;
    m->r->sample_ms = calloc(n + 1, sizeof(int64_t));
    m->r->sample_available = calloc(n + 1, sizeof(int64_t));
    m->r->sample_held = calloc(n + 1, sizeof(int64_t));
    m->r->sample_sold = calloc(n + 1, sizeof(int64_t));
    if (m->buyers == NULL || m->hoarders == NULL || m->watchers == NULL ||
        m->r->sample_sold == NULL || m->r->sample_held == NULL ||
        m->r->sample_available == NULL || m->r->sample_ms == NULL) {
        snprintf(err, err_size, "cannot reserve the tables for %u buyers and %u hoarders",
                 s->genuine, s->attackers);
        return -1;
    }
    return 0;
}

static void sim_stop(sim_t *m)
{
    if (m->shop.ops != NULL) {
        m->shop.ops->close(m->shop.ctx);
    }
    free(m->buyers);
    free(m->hoarders);
    free(m->watchers);
    free(m->q.heap);
    free(m->q.arrivals);
}

static int options_check(const sim_options_t *o, char *err, size_t err_size)
{
    if (o->samples == 1 || o->samples > 100000) {
        snprintf(err, err_size, "samples must be 0 or 2 to 100000");
        return -1;
    }
    return 0;
}

/* Every operation of the shop's table is set (shop.h): none is optional. */
static bool shop_complete(const shop_ops_t *ops)
{
    return ops->sku_view != NULL && ops->sku_policy != NULL && ops->hold != NULL &&
           ops->proof_tag != NULL && ops->hold_op != NULL && ops->wait_join != NULL &&
           ops->wait_state != NULL && ops->hold_expired != NULL && ops->scenario_ms != NULL &&
           ops->start != NULL && ops->pace != NULL && ops->tick != NULL && ops->check != NULL &&
           ops->finish != NULL && ops->close != NULL;
}

/* Every event in its turn, at the pace the shop sets, to the scenario's
 * end (or the shop's); then the shop's last word and the tally. */
static void play(sim_t *m)
{
    const shop_ops_t *ops = m->shop.ops;
    void *ctx = m->shop.ctx;
    assert(ops != NULL && shop_complete(ops));
    const shop_news_t news = {.hold_taken_back = news_hold_taken_back,
                              .offer_made = news_offer_made,
                              .agents = m};
    ops->start(ctx);
    while (!queue_empty(&m->q) && queue_next_ms(&m->q) <= m->s->duration_ms) {
        shop_pace_t pace = ops->pace(ctx, m->now_ms, queue_next_ms(&m->q));
        if (pace == SHOP_PACE_STOP) {
            break;
        }
        if (pace == SHOP_PACE_WAIT) {
            continue;
        }
        event_t e = pop(&m->q);
        m->now_ms = e.at_ms;
        dispatch(m, &e);
        if (e.kind == EV_SAMPLE) {
            continue; /* a sample reads, so a run with plots runs as one without */
        }
        ops->tick(ctx, m->now_ms, &news);
        wake_watchers(m);
        m->r->events++;
        if (m->o->check_invariants && (m->r->events & 1023) == 0) {
            assert(ops->check(ctx));
        }
    }
    m->r->units_sold = ops->finish(ctx, m->s->duration_ms);
    assert(!m->o->check_invariants || ops->check(ctx));
    tally(m);
}

int sim_run(const sim_scenario_t *s, const sim_policy_t *p, const sim_options_t *o,
            sim_result_t *r, char *err, size_t err_size)
{
    memset(r, 0, sizeof *r);
    snprintf(r->policy, sizeof r->policy, "%s", p->name);
    if (sim_check(s, err, err_size) != 0 || options_check(o, err, err_size) != 0) {
        return -1;
    }
    sim_t m = {.s = s, .p = p, .o = o, .r = r};
    rng_seed(&m.rng, o->seed);
    int rc = shop_guard_open(&m.shop, s, p, err, err_size);
    if (rc == 0) {
        rc = sim_start(&m, err, err_size);
    }
    if (rc == 0) {
        populate(&m);
        play(&m);
    }
    sim_stop(&m);
    return rc;
}

void sim_result_free(sim_result_t *r)
{
    free(r->sample_ms);
    free(r->sample_available);
    free(r->sample_held);
    free(r->sample_sold);
    r->sample_ms = NULL;
    r->sample_available = r->sample_held = r->sample_sold = NULL;
}

/* The shop, its catalog and its policy are the server's (shop_live_open()
 * reads them, and sizes the populations to its stock). */
int sim_live(sim_scenario_t *s, const sim_live_options_t *lo, const sim_options_t *o,
             sim_result_t *r, sim_live_report_t *lr, char *err, size_t err_size)
{
    memset(r, 0, sizeof *r);
    memset(lr, 0, sizeof *lr);
    snprintf(r->policy, sizeof r->policy, "server");
    if (lo->seconds < 1 || lo->seconds > SIM_LIVE_SECONDS_MAX ||
        lo->requests_max < SIM_LIVE_REQUESTS_MIN ||
        lo->requests_max > SIM_LIVE_REQUESTS_MAX || lo->genuine > (int64_t)SIM_LIVE_GENUINE_MAX ||
        lo->attackers > (int64_t)SIM_LIVE_ATTACKERS_MAX) {
        snprintf(err, err_size, "a live run's seconds, requests or populations are out of range");
        return -1;
    }
    if (sim_check(s, err, err_size) != 0 || options_check(o, err, err_size) != 0) {
        return -1;
    }
    sim_policy_t p = {.name = "server"};
    sim_t m = {.s = s, .p = &p, .o = o, .r = r};
    rng_seed(&m.rng, o->seed);
    int rc = shop_live_open(&m.shop, s, &p.config, lo, o->seed, lr, err, err_size);
    if (rc == 0) {
        rc = sim_check(s, err, err_size); /* the populations as scaled */
    }
    if (rc == 0) {
        rc = sim_start(&m, err, err_size);
    }
    if (rc == 0) {
        populate(&m);
        play(&m);
    }
    sim_stop(&m);
    return rc;
}
