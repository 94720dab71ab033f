/*
 * holdfast's limits, all in one place.
 *
 * Everything has a maximum. Each is checked at the edge with a clear error
 * and asserted inside. A limit's comment says where its number comes from.
 * Capacities marked "default" are configuration; the rest are fixed by the
 * API contract (docs/API.md) or by the wire format.
 */
#ifndef HF_LIMITS_H
#define HF_LIMITS_H

/* docs/API.md: a sku is 1-64 bytes of [A-Za-z0-9._:-]. */
#define HF_SKU_BYTES_MAX 64
/* docs/API.md: customer, fingerprint and order_ref are 1-128 bytes of UTF-8. */
#define HF_NAME_BYTES_MAX 128
/* The longest IPv6 literal (with an embedded IPv4 address) is 45 bytes. */
#define HF_IP_TEXT_BYTES_MAX 45
/* docs/API.md: Idempotency-Key is 1-64 bytes. */
#define HF_IDEM_KEY_BYTES_MAX 64
/* docs/API.md: 1-64 lines per hold, one per SKU. */
#define HF_LINES_PER_HOLD_MAX 64
/* docs/API.md: 1 <= qty <= 1,000,000. */
#define HF_QTY_MAX 1000000LL
/* docs/API.md: 0 <= stock <= 2^40; held and sold never exceed stock. */
#define HF_STOCK_MAX (1LL << 40)
/* A TTL longer than a day is a forgotten cart, not a hold. */
#define HF_TTL_MS_MAX (24LL * 3600 * 1000)
/* Below a second a hold cannot survive a client's round trip. */
#define HF_TTL_MS_MIN 1000LL
/* Used when a request names no ttl_ms: ten minutes, a cart's usual life. */
#define HF_TTL_MS_DEFAULT (10LL * 60 * 1000)
/* Idempotency keys are remembered for a day (the usual retry horizon). */
#define HF_IDEM_RETENTION_MS (24LL * 3600 * 1000)
/* Finished holds stay readable for a day, unless their slot is needed. */
#define HF_FINISHED_RETENTION_MS (24LL * 3600 * 1000)
/* GET /v1/skus pages: large enough to page a big catalog, small enough
 * that one reply stays well under a megabyte. */
#define HF_SKU_PAGE_MAX 1000
#define HF_SKU_PAGE_DEFAULT 100

/* Defaults sized for a large shop. Memory is reserved, not touched, until
 * used, so an idle server with these capacities stays small. */
#define HF_SKUS_MAX_DEFAULT 1000000u
#define HF_HOLDS_MAX_DEFAULT 10000000u
#define HF_IDEM_KEYS_MAX_DEFAULT 1000000u
/* Hard ceilings for the configuration: ids carry a 32-bit slot. */
#define HF_SKUS_MAX_LIMIT 50000000u
#define HF_HOLDS_MAX_LIMIT 200000000u
#define HF_IDEM_KEYS_MAX_LIMIT 50000000u

/* Defenses. Identities (customers, IP prefixes, fingerprints) and
 * customer-and-sku pairs with units: a flash sale of a million buyers fits
 * the defaults; idle entries are swept, so these bound the live ones. */
#define HF_IDENTITIES_MAX_DEFAULT 2000000u
#define HF_IDENTITIES_MAX_LIMIT 50000000u
#define HF_CUSTOMER_SKUS_MAX_DEFAULT 4000000u
#define HF_CUSTOMER_SKUS_MAX_LIMIT 200000000u
/* Waitlist entries, waiting or finished (finished ones are reused oldest
 * first); ids carry a 28-bit slot. */
#define HF_WAITLIST_MAX_DEFAULT 1000000u
#define HF_WAITLIST_MAX_LIMIT ((1u << 28) - 1)
/* One sku's waitlist: a position is counted by walking it, and a hundred
 * thousand people in one queue is a sale, not a waitlist. */
#define HF_WAITLIST_PER_SKU_MAX 100000u
/* Skus with their own policy: the interesting few of a catalog. */
#define HF_SKU_POLICIES_MAX_DEFAULT 65536u
#define HF_SKU_POLICIES_MAX_LIMIT 1000000u
/* Spent proofs of work remembered until they expire (a challenge lives two
 * minutes by default: a million covers 8,000 proofs a second). */
#define HF_PROOFS_MAX_DEFAULT 1000000u
#define HF_PROOFS_MAX_LIMIT 50000000u
/* GET /v1/identities/top?limit=N. */
#define HF_TOP_IDENTITIES_MAX 1000u
#define HF_TOP_IDENTITIES_DEFAULT 20u

/* HTTP edge. docs/API.md: a 64 KiB body is 413. 64 lines of the longest SKU
 * and a 128-byte customer need under 8 KiB, so 64 KiB is generous. */
#define HF_BODY_BYTES_MAX (64 * 1024)
/* Header block: a browser sends about 1-2 KiB; 16 KiB leaves room for
 * cookies yet stops a client from pinning memory with junk headers. */
#define HF_HEADER_BYTES_MAX (16 * 1024)
#define HF_HEADER_COUNT_MAX 64
/* Open connections, each a file descriptor and a slot of the connection
 * table; past this a new connection is answered 503 rather than starving
 * the ones in flight. */
#define HF_CONNECTIONS_MAX_DEFAULT 4096u
#define HF_CONNECTIONS_MAX_LIMIT 60000u
/* Per client address (IPv6: per /64). A browser opens 6 per host and a shop
 * backend's pool is some tens; at 64, one address holds at most 1/64 of the
 * default cap. 0 in the configuration: no cap (behind a proxy, say). */
#define HF_CONNECTIONS_PER_ADDRESS_MAX_DEFAULT 64u
/* Connections past the cap for the operator (GET /healthz, /metrics, the
 * admin key): a dashboard, a scraper and a shell or two. */
#define HF_CONNECTIONS_RESERVE_DEFAULT 16u
#define HF_CONNECTIONS_RESERVE_LIMIT 1024u
/* Connections the HTTP threads hold (a request under way, or kept alive
 * after one); past this a reply closes its connection, and the client's
 * next request comes on a new one, which waits for its head in the accept
 * loop. Every turn of an HTTP thread's poll() costs time per connection it
 * holds, so an idle crowd kept alive there would slow every request. */
#define HF_KEEPALIVE_MAX_DEFAULT 1024u
/* A request head must be in this long after the accept (or after its
 * request line on a kept-alive connection): a real client sends it in one
 * packet, and 10 s outlasts a lossy mobile link's retransmissions. No byte
 * extends it. */
#define HF_HEAD_TIMEOUT_MS_DEFAULT 10000
/* A body (at most HF_BODY_BYTES_MAX) must be in this long after its head:
 * 64 KiB at 20 kbit/s takes 26 s. */
#define HF_BODY_TIMEOUT_MS_DEFAULT 30000
/* A kept-alive connection may wait this long for its next request, and a
 * reply that no byte of moves for this long is dropped: a shopper's next
 * click reuses the connection, a squatter's slot comes back. */
#define HF_IDLE_TIMEOUT_MS_DEFAULT 15000
/* The timeouts' bounds in the configuration. */
#define HF_TIMEOUT_MS_MIN 100
#define HF_TIMEOUT_MS_LIMIT 3600000
/* The Retry-After of a refused connection, in seconds: long enough for a
 * flood's connections to be reaped, short enough for a shopper to retry. */
#define HF_RETRY_AFTER_S 2
/* Replies waiting for the journal's group commit; beyond this a request
 * is answered 503 overloaded instead of queueing without bound. */
#define HF_PENDING_REPLIES_MAX 65536u

/* Journal. In relaxed mode an acknowledged change reaches the disk within
 * this bound (the documented worst-case loss on a crash). */
#define HF_RELAXED_FLUSH_MS 100
/* Relaxed mode commits at most this often: a tenth of what it may lose. */
#define HF_RELAXED_COMMIT_MS 10
/* After this many journaled records the live state is snapshotted and the
 * journal before it deleted, so recovery never replays a year of traffic. */
#define HF_COMPACT_RECORDS_DEFAULT 1000000u

/* GET /v1/events: open streams (each is a connection held open), the skus
 * one follows, how often totals are compared and sent, how much a slow
 * reader may fall behind before its stream is closed (it reconnects). */
#define HF_EVENT_STREAMS_MAX 32u
#define HF_EVENT_SKUS_MAX 64u
#define HF_EVENT_INTERVAL_MS 100
#define HF_EVENT_PING_MS 15000
#define HF_EVENT_BUFFER_BYTES_MAX (256 * 1024)
/* Refusals by rule are counted per sku for the dashboard for the first this
 * many skus of the catalog (about 1 MB); the others show their totals only. */
#define HF_SKU_RULE_STATS_MAX 4096u
/* GET /v1/history: the dashboard's chart opens with the last hour of a sku
 * at a point a second, kept for as many skus as one event stream follows
 * (the ones most recently active): 64 x 3600 points, 11 MB (history.h). */
#define HF_HISTORY_SKUS_MAX HF_EVENT_SKUS_MAX
#define HF_HISTORY_SECONDS 3600u
/* The web pages (web/): the largest file served. */
#define HF_STATIC_BYTES_MAX (2 * 1024 * 1024)
/* The audit trail (GET /v1/audit): the latest admin changes kept, about
 * 500 bytes each in memory and in every snapshot. Ten thousand is years of
 * a shop's operators at work; a script that changes stock all day wants
 * more (audit_max). A page of it. */
#define HF_AUDIT_MAX_DEFAULT 10000u
#define HF_AUDIT_MAX_LIMIT 1000000u
#define HF_AUDIT_PAGE_MAX 1000
#define HF_AUDIT_PAGE_DEFAULT 100

#endif
