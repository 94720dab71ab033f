/*
 * pgjournal.c - the journal in PostgreSQL, and the shop's lease
 * (pgjournal.h).
 *
 * Two connections: the lease's (acquire, then a renewal every lease_ms / 4
 * on a thread of its own) and the journal's (recovery, then the commit
 * thread's commits). Both are named holdfast/<shop>/<role>/<node> in
 * pg_stat_activity, so a node taking the shop over can end the old owner's
 * sessions: waiting for their locks behind a live stream of commits could
 * take seconds.
 */
#include "pgjournal.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hf_clock.h"
#include "hf_thread.h"
#include "pgowners.h"

/* The owner stops counting itself the owner this much before its lease
 * runs out by its own clock: room for the clocks' rates to differ. */
#define LEASE_MARGIN_DIVISOR 8
#define RENEWS_PER_LEASE 4
/* A connection that cannot be made within this long counts as failed. */
#define CONNECT_TIMEOUT_S "2"
/* PostgreSQL keeps 63 bytes of an application_name (NAMEDATALEN). */
#define APP_NAME_MAX 64
/* Other shops' owners (pgowners.h) are read at most this often, all that
 * are wanted in one query: a flood of requests for unknown shops costs
 * PostgreSQL at most 20 small reads a second per node. */
#define OWNERS_READ_GAP_MS 50

/* Any two of these are far apart; the schema is made under this lock so
 * that nodes starting together do not race on CREATE TABLE. */
#define SCHEMA_LOCK_KEY "7306381123712"

static const char schema_sql[] =
    "BEGIN;"
    "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK_KEY ");"
    "CREATE TABLE IF NOT EXISTS holdfast_shops("
    " shop text PRIMARY KEY, epoch bigint NOT NULL, owner text NOT NULL,"
    " owner_url text NOT NULL, expires timestamptz NOT NULL, key bytea NOT NULL,"
    " legacy_hold_seq bigint NOT NULL, snapshot_seq bigint NOT NULL,"
    " trim_chain bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS holdfast_journal("
    " shop text NOT NULL, first_seq bigint NOT NULL, records integer NOT NULL,"
    " epoch bigint NOT NULL, body bytea NOT NULL, chain bigint NOT NULL,"
    " durable_seq bigint NOT NULL DEFAULT 0, PRIMARY KEY (shop, first_seq));"
    /* Tables made before rows said how far the journal was durable: 0 is
     * what their rows, sent one at a time, would have said at most. */
    "ALTER TABLE holdfast_journal ADD COLUMN IF NOT EXISTS"
    " durable_seq bigint NOT NULL DEFAULT 0;"
    "CREATE TABLE IF NOT EXISTS holdfast_snapshots("
    " shop text NOT NULL, seq bigint NOT NULL, body bytea NOT NULL,"
    " PRIMARY KEY (shop, seq));"
    "COMMIT";

/* The row goes in only while the shop's row still has this node's epoch;
 * the key-share lock makes a takeover (FOR UPDATE) wait for it. */
static const char append_sql[] =
    "INSERT INTO holdfast_journal(shop, first_seq, records, epoch, body, chain, durable_seq)"
    " SELECT $1, $2, $3, $4, $5, $6, $7 FROM holdfast_shops"
    " WHERE shop = $1 AND epoch = $4 FOR KEY SHARE";

static const char snapshot_sql[] =
    "INSERT INTO holdfast_snapshots(shop, seq, body)"
    " SELECT $1, $2, $3 FROM holdfast_shops WHERE shop = $1 AND epoch = $4 FOR KEY SHARE";

/* Points the shop at the snapshot and drops the rows it covers, keeping
 * the chain value of the last one dropped (the next row's predecessor). */
static const char adopt_sql[] =
    "WITH gone AS (DELETE FROM holdfast_journal"
    "  WHERE shop = $1 AND first_seq + records - 1 <= $2 RETURNING first_seq, chain)"
    " UPDATE holdfast_shops SET snapshot_seq = $2,"
    "  trim_chain = coalesce((SELECT chain FROM gone ORDER BY first_seq DESC LIMIT 1),"
    "                        trim_chain)"
    " WHERE shop = $1 AND epoch = $3";

struct pgj_s {
    char *url, *shop, *node, *node_url;
    /* Where other shops are served, read by the lease's thread when a
     * request asks (pgowners.h). */
    pgowners_t *owners;
    int64_t owners_read_ms; /* lease's thread: when it last read them */
    bool owners_complained; /* lease's thread: a failed read was logged */
    int64_t lease_ms;
    PGconn *lease_conn;   /* acquire, renewals */
    bool lease_unnamed;   /* reconnected, not yet named as the owner's (lease's thread) */
    PGconn *journal_conn; /* recovery, commits */
    uint64_t epoch;
    bool created;
    int64_t owner_until_ms; /* monotonic; atomic: the renewal thread moves it */
    pthread_t renewer;
    bool renewing, stopping;
    pthread_mutex_t lock;
    pthread_cond_t wake;
};

/* ------------------------------------------------------------- connecting */

static void app_name(const pgj_t *j, const char *role, char *out, size_t size)
{
    snprintf(out, size, "holdfast/%s/%s/%s", j->shop, role, j->node);
}

/* libpq's messages run over lines and quote names: one line, no double
 * quotes, so that they fit in a log line's quoted value. */
static void tidy(char *text)
{
    size_t out = 0;
    for (size_t i = 0; text[i] != '\0'; i++) {
        char ch = text[i] == '"' ? '\'' : text[i];
        bool space = ch == '\n' || ch == '\t' || ch == '\r' || ch == ' ';
        if (space && (out == 0 || text[out - 1] == ' ')) {
            continue;
        }
        text[out++] = space ? ' ' : ch;
    }
    while (out > 0 && text[out - 1] == ' ') {
        out--;
    }
    text[out] = '\0';
}

/* A connection that notices a dead peer within about a lease: without the
 * TCP limits a commit to a database cut off by the network waits for
 * minutes, and with it every reply. The URL's own settings come after ours
 * and win; the session's name comes last, since takeovers rely on it. */
static PGconn *connect_as(const pgj_t *j, const char *role, char *err, size_t err_size)
{
    char name[APP_NAME_MAX], user_timeout[24];
    app_name(j, role, name, sizeof name);
    snprintf(user_timeout, sizeof user_timeout, "%" PRId64, j->lease_ms);
    /* client_min_messages: CREATE TABLE IF NOT EXISTS's notices are noise. */
    const char *keys[] = {"connect_timeout", "tcp_user_timeout", "keepalives_idle",
                          "keepalives_interval", "keepalives_count", "options", "dbname",
                          "application_name", NULL};
    const char *values[] = {CONNECT_TIMEOUT_S, user_timeout, "1", "1", "3",
                            "-c client_min_messages=warning", j->url, name, NULL};
    PGconn *c = PQconnectdbParams(keys, values, 1);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        snprintf(err, err_size, "cannot connect to PostgreSQL: %s",
                 c ? PQerrorMessage(c) : "out of memory");
        tidy(err);
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* The statement's message, without libpq's trailing newline. */
static void sql_error(PGconn *c, const PGresult *r, const char *what, char *err, size_t err_size)
{
    const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
    if (msg == NULL || *msg == '\0') {
        msg = PQerrorMessage(c);
    }
    snprintf(err, err_size, "%s: %s", what, msg);
    tidy(err);
}

/* Runs sql (no parameters); 0 if it returned want. */
static int run(PGconn *c, const char *sql, ExecStatusType want, const char *what, char *err,
               size_t err_size)
{
    PGresult *r = PQexec(c, sql);
    int rc = PQresultStatus(r) == want ? 0 : -1;
    if (rc != 0) {
        sql_error(c, r, what, err, err_size);
    }
    PQclear(r);
    return rc;
}

/* A statement that must give exactly one row: its result, or NULL with
 * err ("what: why", or "what: no such row"). result_format 1: binary. */
static PGresult *one_row(PGconn *c, const char *sql, int n, const char *const *params,
                         int result_format, const char *what, char *err, size_t err_size)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, result_format);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        return r;
    }
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        snprintf(err, err_size, "%s: no such row", what);
    } else {
        sql_error(c, r, what, err, err_size);
    }
    PQclear(r);
    return NULL;
}

static uint64_t be_get(const char *p, int len)
{
    uint64_t v = 0;
    for (int i = 0; i < len; i++) {
        v = v << 8 | (uint8_t)p[i];
    }
    return v;
}

/* A binary result's int8 or int4 column. */
static uint64_t int_at(const PGresult *r, int row, int col)
{
    int len = PQgetlength(r, row, col);
    assert(len == 8 || len == 4);
    return be_get(PQgetvalue(r, row, col), len);
}

pgj_t *pgj_open(const store_pg_t *config, char *err, size_t err_size)
{
    assert(config->lease_ms >= STORE_PG_LEASE_MS_MIN && config->lease_ms <= STORE_PG_LEASE_MS_MAX);
    pgj_t *j = calloc(1, sizeof *j);
    if (j == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    j->url = strdup(config->url);
    j->shop = strdup(config->shop);
    j->node = strdup(config->node);
    j->node_url = strdup(config->node_url);
    j->lease_ms = config->lease_ms;
    pthread_mutex_init(&j->lock, NULL);
    j->owners = pgowners_new();
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&j->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (j->url == NULL || j->shop == NULL || j->node == NULL || j->node_url == NULL ||
        j->owners == NULL) {
        snprintf(err, err_size, "out of memory");
        pgj_close(j);
        return NULL;
    }
    j->lease_conn = connect_as(j, "standby", err, err_size);
    if (j->lease_conn == NULL ||
        run(j->lease_conn, schema_sql, PGRES_COMMAND_OK, "cannot make the tables", err,
            err_size) != 0) {
        pgj_close(j);
        return NULL;
    }
    return j;
}

/* ------------------------------------------------------------- the lease */

static int64_t lease_end_ms(const pgj_t *j, int64_t sent_mono_ms)
{
    return sent_mono_ms + j->lease_ms - j->lease_ms / LEASE_MARGIN_DIVISOR;
}

bool pgj_owner_at(pgj_t *j, int64_t mono_ms)
{
    return j->epoch > 0 && mono_ms < __atomic_load_n(&j->owner_until_ms, __ATOMIC_ACQUIRE);
}

bool pgj_connected(const pgj_t *j)
{
    return PQstatus(j->lease_conn) == CONNECTION_OK &&
           (j->journal_conn == NULL || PQstatus(j->journal_conn) == CONNECTION_OK);
}

uint64_t pgj_epoch(const pgj_t *j)
{
    return j->epoch;
}

/* Sends the renewal; 1 renewed, 0 the epoch is gone, -1 no answer. */
static int renew(pgj_t *j)
{
    char shop_epoch[24], lease[24];
    snprintf(shop_epoch, sizeof shop_epoch, "%" PRIu64, j->epoch);
    snprintf(lease, sizeof lease, "%" PRId64, j->lease_ms);
    const char *params[] = {j->shop, shop_epoch, lease};
    int64_t sent_ms = hf_mono_ms();
    PGresult *r = PQexecParams(j->lease_conn,
                               "UPDATE holdfast_shops"
                               " SET expires = clock_timestamp() + $3 * interval '1 millisecond'"
                               " WHERE shop = $1 AND epoch = $2",
                               3, NULL, params, NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        rc = strcmp(PQcmdTuples(r), "1") == 0 ? 1 : 0;
    }
    PQclear(r);
    if (rc == 1) {
        __atomic_store_n(&j->owner_until_ms, lease_end_ms(j, sent_ms), __ATOMIC_RELEASE);
    }
    return rc;
}

/* Reads where the wanted shops are served (lease's thread), in one query.
 * A failed read leaves them wanted: the next pass tries again. */
static void read_owners(pgj_t *j)
{
    char(*names)[STORE_SHOP_NAME_MAX + 1] = malloc(PGOWNERS_MAX * sizeof *names);
    size_t n = names != NULL ? pgowners_wanted(j->owners, names, PGOWNERS_MAX) : 0;
    /* An array literal: names are [a-z0-9-], so none needs quoting. */
    size_t size = n * (STORE_SHOP_NAME_MAX + 1) + 3, used = 0;
    char *list = n > 0 ? malloc(size) : NULL;
    if (list == NULL) {
        free(names);
        return;
    }
    list[used++] = '{';
    for (size_t i = 0; i < n; i++) {
        used += (size_t)snprintf(list + used, size - used, "%s%s", i > 0 ? "," : "", names[i]);
    }
    snprintf(list + used, size - used, "}");
    const char *params[] = {list};
    PGresult *r = PQexecParams(j->lease_conn,
                               "SELECT shop, owner_url FROM holdfast_shops"
                               " WHERE shop = ANY($1::text[]) AND owner_url <> ''"
                               " AND expires > clock_timestamp() ORDER BY shop COLLATE \"C\"",
                               1, NULL, params, NULL, NULL, 0);
    free(list);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        if (!j->owners_complained) { /* once until a read succeeds */
            char msg[512];
            snprintf(msg, sizeof msg, "%s", PQerrorMessage(j->lease_conn));
            tidy(msg);
            fprintf(stderr, "level=warn msg=\"cannot read other shops' owners; retrying\" "
                            "err=\"%s\"\n", msg);
        }
        j->owners_complained = true;
        PQclear(r);
        free(names);
        return;
    }
    j->owners_complained = false;
    /* Both in bytewise order (pgowners_wanted's, COLLATE "C"): one merge. A
     * shop not in the answer has no live owner. */
    int64_t now_ms = hf_mono_ms();
    int row = 0, rows = PQntuples(r);
    for (size_t i = 0; i < n; i++) {
        while (row < rows && strcmp(PQgetvalue(r, row, 0), names[i]) < 0) {
            row++;
        }
        bool there = row < rows && strcmp(PQgetvalue(r, row, 0), names[i]) == 0;
        pgowners_found(j->owners, names[i], there ? PQgetvalue(r, row, 1) : NULL, now_ms);
    }
    PQclear(r);
    free(names);
}

store_shop_t pgj_owner_of(pgj_t *j, const char *shop, size_t len, char *url, size_t size)
{
    if (!store_name_ok(shop, len, STORE_SHOP_NAME_MAX)) {
        return STORE_SHOP_NONE; /* no shop could have that name */
    }
    char key[STORE_SHOP_NAME_MAX + 1];
    memcpy(key, shop, len);
    key[len] = '\0';
    bool wake = false;
    pgowners_answer_t a = pgowners_find(j->owners, key, hf_mono_ms(), url, size, &wake);
    if (wake) {
        pthread_mutex_lock(&j->lock);
        pthread_cond_signal(&j->wake);
        pthread_mutex_unlock(&j->lock);
    }
    return a == PGOWNERS_AT ? STORE_SHOP_AT : a == PGOWNERS_NONE ? STORE_SHOP_NONE
                                                                 : STORE_SHOP_LOOKING;
}

/* Ends the process at once, as the header says: nothing it did not
 * acknowledge may be acknowledged now, and nothing it did is lost. */
static _Noreturn void lost(const pgj_t *j, const char *why)
{
    fprintf(stderr,
            "level=error msg=\"lost the shop's lease; exiting for a restart as a standby\" "
            "shop=%s node=%s epoch=%" PRIu64 " why=\"%s\"\n",
            j->shop, j->node, j->epoch, why);
    fflush(stderr);
    _exit(STORE_EXIT_LEASE_LOST);
}

/* Names the lease's session as the owner's: a takeover by this node under
 * the same name ends the sessions so named (end_old_owner). */
static int name_lease_owner(pgj_t *j, char *err, size_t err_size)
{
    char name[APP_NAME_MAX];
    app_name(j, "owner", name, sizeof name);
    const char *params[] = {name};
    PGresult *r = one_row(j->lease_conn, "SELECT set_config('application_name', $1, false)", 1,
                          params, 0, "cannot name the lease's session", err, err_size);
    int rc = r != NULL ? 0 : -1;
    PQclear(r);
    return rc;
}

/* One renewal, and what its failure says (lease's thread). */
static void renew_once(pgj_t *j, bool *complained)
{
    int rc = renew(j);
    if (rc == 0) {
        lost(j, "another node took the shop over");
    }
    if (rc < 0 && !*complained) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(j->lease_conn));
        tidy(msg);
        fprintf(stderr, "level=warn msg=\"cannot renew the shop's lease; retrying\" err=\"%s\"\n",
                msg);
    }
    *complained = rc < 0;
    if (rc < 0 && PQstatus(j->lease_conn) != CONNECTION_OK) {
        PQreset(j->lease_conn); /* bounded by connect_timeout */
        j->lease_unnamed = true; /* a new session has a standby's name */
    }
    if (j->lease_unnamed && PQstatus(j->lease_conn) == CONNECTION_OK) {
        char ignored[256]; /* not named yet: tried again at the next renewal */
        j->lease_unnamed = name_lease_owner(j, ignored, sizeof ignored) != 0;
    }
}

/* Waits under j->lock until deadline_ms (monotonic), a stop, or a wake. */
static void wait_until(pgj_t *j, int64_t deadline_ms)
{
    struct timespec until = {.tv_sec = deadline_ms / 1000,
                             .tv_nsec = (deadline_ms % 1000) * 1000000L};
    pthread_cond_timedwait(&j->wake, &j->lock, &until); /* the caller looks again */
}

/* Renews the lease every quarter of it, and reads where other shops are
 * served when a request wants to know (at most every OWNERS_READ_GAP_MS). */
static void *renew_thread(void *arg)
{
    pgj_t *j = arg;
    hf_thread_name("hf-pg-lease");
    int64_t every_ms = j->lease_ms / RENEWS_PER_LEASE;
    int64_t renew_at_ms = hf_mono_ms() + every_ms;
    bool complained = false;
    pthread_mutex_lock(&j->lock);
    while (!j->stopping) {
        int64_t now_ms = hf_mono_ms();
        int64_t read_at_ms = j->owners_read_ms + OWNERS_READ_GAP_MS;
        /* Asked of the shops themselves, not of a flag: a read that failed
         * leaves them wanted, and so it is tried again after the gap. */
        bool wanted = pgowners_any_wanted(j->owners);
        bool read = wanted && now_ms >= read_at_ms;
        if (now_ms < renew_at_ms && !read) {
            wait_until(j, wanted && read_at_ms < renew_at_ms ? read_at_ms : renew_at_ms);
            continue;
        }
        pthread_mutex_unlock(&j->lock);
        if (now_ms >= renew_at_ms) {
            renew_at_ms = now_ms + every_ms;
            renew_once(j, &complained);
        }
        if (read) {
            j->owners_read_ms = now_ms;
            read_owners(j);
        }
        pthread_mutex_lock(&j->lock);
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

/* The lease as it stands, in the acquiring transaction. */
typedef struct {
    uint64_t epoch;
    bool free;
} seen_t;

static store_lease_t look(pgj_t *j, seen_t *seen, store_lease_info_t *held, char *err,
                          size_t err_size)
{
    uint8_t key[STORE_KEY_BYTES];
    if (store_key_random(key, err, err_size) != 0) {
        return STORE_LEASE_ERROR;
    }
    const char *params[] = {j->shop, (const char *)key, j->node};
    int lengths[] = {0, STORE_KEY_BYTES, 0};
    int formats[] = {0, 1, 0};
    PGresult *r = PQexecParams(j->lease_conn,
                               "INSERT INTO holdfast_shops(shop, epoch, owner, owner_url, expires,"
                               " key, legacy_hold_seq, snapshot_seq, trim_chain)"
                               " VALUES ($1, 0, '', '', to_timestamp(0), $2, 0, 0, 0)"
                               " ON CONFLICT (shop) DO NOTHING",
                               2, NULL, params, lengths, formats, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        sql_error(j->lease_conn, r, "cannot read the shop's lease", err, err_size);
        PQclear(r);
        return STORE_LEASE_ERROR;
    }
    j->created = j->created || strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    params[1] = j->node;
    r = one_row(j->lease_conn,
                "SELECT epoch, owner, owner_url, expires <= clock_timestamp() OR owner = $2,"
                " greatest(0, extract(epoch FROM expires - clock_timestamp()) * 1000)::bigint"
                " FROM holdfast_shops WHERE shop = $1",
                2, params, 0, "cannot read the shop's lease", err, err_size);
    if (r == NULL) {
        return STORE_LEASE_ERROR;
    }
    seen->epoch = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    seen->free = PQgetvalue(r, 0, 3)[0] == 't';
    memset(held, 0, sizeof *held);
    held->epoch = seen->epoch;
    snprintf(held->owner, sizeof held->owner, "%s", PQgetvalue(r, 0, 1));
    snprintf(held->owner_url, sizeof held->owner_url, "%s", PQgetvalue(r, 0, 2));
    held->remaining_ms = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
    PQclear(r);
    return seen->free ? STORE_LEASE_OWNED : STORE_LEASE_HELD;
}

/* Ends the sessions of the owner seen (none for a new shop), so that its
 * locks go with them. Only that owner's: a node restarted under the name
 * it owned under sees itself there, maybe before another standby's
 * takeover commits, and must not end the newer owner (its take then finds
 * the epoch moved). An older owner's appends are fenced by the epoch. The
 * name is cut as PostgreSQL cuts application_name (names are ASCII). */
static int end_old_owner(pgj_t *j, const char *owner, char *err, size_t err_size)
{
    if (owner[0] == '\0') {
        return 0;
    }
    char name[APP_NAME_MAX];
    snprintf(name, sizeof name, "holdfast/%s/owner/%s", j->shop, owner);
    const char *params[] = {name};
    PGresult *r = one_row(j->lease_conn,
                          "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                          " WHERE application_name = $1 AND pid <> pg_backend_pid()",
                          1, params, 0, "cannot end the old owner's sessions", err, err_size);
    int rc = r != NULL ? 0 : -1;
    PQclear(r);
    return rc;
}

/* Raises the epoch, if it is still the one seen: another standby may have
 * been quicker. 1 taken, 0 not, -1 error. */
static int take(pgj_t *j, const seen_t *seen, int64_t sent_ms, char *err, size_t err_size)
{
    char seen_epoch[24], lease[24];
    snprintf(seen_epoch, sizeof seen_epoch, "%" PRIu64, seen->epoch);
    snprintf(lease, sizeof lease, "%" PRId64, j->lease_ms);
    const char *params[] = {j->shop, seen_epoch, j->node, j->node_url, lease};
    /* FOR UPDATE waits for every row in flight (they key-share-lock it). */
    PGresult *r = PQexecParams(j->lease_conn,
                               "SELECT epoch FROM holdfast_shops WHERE shop = $1 FOR UPDATE", 1,
                               NULL, params, NULL, NULL, 0);
    bool same = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                strcmp(PQgetvalue(r, 0, 0), seen_epoch) == 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        sql_error(j->lease_conn, r, "cannot lock the shop's lease", err, err_size);
        PQclear(r);
        return -1;
    }
    PQclear(r);
    if (!same) {
        return 0;
    }
    r = one_row(j->lease_conn,
                "UPDATE holdfast_shops SET epoch = epoch + 1, owner = $3, owner_url = $4,"
                " expires = clock_timestamp() + $5 * interval '1 millisecond'"
                " WHERE shop = $1 AND epoch = $2 RETURNING epoch",
                5, params, 0, "cannot take the shop's lease", err, err_size);
    if (r == NULL) {
        return -1;
    }
    j->epoch = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    __atomic_store_n(&j->owner_until_ms, lease_end_ms(j, sent_ms), __ATOMIC_RELEASE);
    return 1;
}

/* From standby to owner: the sessions' names, the journal's connection,
 * the renewals. */
static int become_owner(pgj_t *j, char *err, size_t err_size)
{
    int rc = name_lease_owner(j, err, err_size);
    if (rc == 0) {
        j->journal_conn = connect_as(j, "owner", err, err_size);
        rc = j->journal_conn != NULL ? 0 : -1;
    }
    if (rc == 0 && pthread_create(&j->renewer, NULL, renew_thread, j) != 0) {
        snprintf(err, err_size, "cannot start the lease's thread");
        rc = -1;
    }
    j->renewing = rc == 0;
    return rc;
}

store_lease_t pgj_acquire(pgj_t *j, store_lease_info_t *held, char *err, size_t err_size)
{
    assert(j->epoch == 0); /* once owned, owned until the process ends */
    if (PQstatus(j->lease_conn) != CONNECTION_OK) {
        PQreset(j->lease_conn);
    }
    int64_t sent_ms = hf_mono_ms();
    if (run(j->lease_conn, "BEGIN", PGRES_COMMAND_OK, "cannot read the shop's lease", err,
            err_size) != 0) {
        return STORE_LEASE_ERROR;
    }
    seen_t seen;
    store_lease_t got = look(j, &seen, held, err, err_size);
    int taken = 0;
    if (got == STORE_LEASE_OWNED) {
        taken = end_old_owner(j, held->owner, err, err_size) == 0
                    ? take(j, &seen, sent_ms, err, err_size)
                    : -1;
    }
    if (taken != 1) {
        char ignored[64];
        run(j->lease_conn, "ROLLBACK", PGRES_COMMAND_OK, "rollback", ignored, sizeof ignored);
        j->epoch = 0;
        return taken < 0 || got == STORE_LEASE_ERROR ? STORE_LEASE_ERROR : STORE_LEASE_HELD;
    }
    if (run(j->lease_conn, "COMMIT", PGRES_COMMAND_OK, "cannot take the shop's lease", err,
            err_size) != 0) {
        j->epoch = 0;
        return STORE_LEASE_ERROR;
    }
    if (become_owner(j, err, err_size) != 0) {
        /* The lease is ours, but this node cannot serve it: the next try
         * takes it again (the same node's name), with a new epoch. */
        PQfinish(j->journal_conn);
        j->journal_conn = NULL;
        j->epoch = 0;
        return STORE_LEASE_ERROR;
    }
    held->epoch = j->epoch;
    return STORE_LEASE_OWNED;
}

/* ------------------------------------------------------------ the journal */

int pgj_base(pgj_t *j, pgj_base_t *out, char *err, size_t err_size)
{
    assert(j->journal_conn != NULL);
    const char *params[] = {j->shop};
    PGresult *r = one_row(j->journal_conn,
                          "SELECT snapshot_seq, trim_chain, legacy_hold_seq, key"
                          " FROM holdfast_shops WHERE shop = $1",
                          1, params, 1, "cannot read the shop's row", err, err_size);
    if (r == NULL) {
        return -1;
    }
    if (PQgetlength(r, 0, 3) != STORE_KEY_BYTES) {
        snprintf(err, err_size, "the shop's row has a damaged hold key");
        PQclear(r);
        return -1;
    }
    out->snapshot_seq = int_at(r, 0, 0);
    out->trim_chain = int_at(r, 0, 1);
    out->legacy_hold_seq = int_at(r, 0, 2);
    memcpy(out->key, PQgetvalue(r, 0, 3), STORE_KEY_BYTES);
    out->created = j->created;
    PQclear(r);
    return 0;
}

int pgj_snapshot(pgj_t *j, uint64_t seq, store_buf_t *out, char *err, size_t err_size)
{
    char seq_text[24];
    snprintf(seq_text, sizeof seq_text, "%" PRIu64, seq);
    const char *params[] = {j->shop, seq_text};
    char what[96];
    snprintf(what, sizeof what, "snapshot %" PRIu64 " of shop %s", seq, j->shop);
    PGresult *r = one_row(j->journal_conn,
                          "SELECT body FROM holdfast_snapshots WHERE shop = $1 AND seq = $2", 2,
                          params, 1, what, err, err_size);
    if (r == NULL) {
        return -1;
    }
    size_t size = (size_t)PQgetlength(r, 0, 0);
    out->size = 0;
    record_buf_reserve(out, size);
    memcpy(out->data, PQgetvalue(r, 0, 0), size);
    out->size = size;
    PQclear(r);
    return 0;
}

/* One row of the replay's result; nonzero stops calling fn. */
static int replay_one(const PGresult *r, pgj_row_fn fn, void *ctx, char *err, size_t err_size)
{
    if (PQnfields(r) != 5 || PQgetlength(r, 0, 0) != 8 || PQgetlength(r, 0, 1) != 4 ||
        PQgetlength(r, 0, 3) != 8 || PQgetlength(r, 0, 4) != 8) {
        snprintf(err, err_size, "the journal table has an unexpected shape");
        return -1;
    }
    pgj_row_t row = {.first_seq = int_at(r, 0, 0), .count = int_at(r, 0, 1),
                     .body = (const uint8_t *)PQgetvalue(r, 0, 2),
                     .size = (size_t)PQgetlength(r, 0, 2), .chain = int_at(r, 0, 3),
                     .durable_seq = int_at(r, 0, 4)};
    return fn(ctx, &row, err, err_size);
}

int pgj_replay(pgj_t *j, pgj_row_fn fn, void *ctx, char *err, size_t err_size)
{
    const char *params[] = {j->shop};
    /* One row at a time: a long journal never sits in memory whole. */
    if (!PQsendQueryParams(j->journal_conn,
                           "SELECT first_seq, records, body, chain, durable_seq"
                           " FROM holdfast_journal"
                           " WHERE shop = $1 ORDER BY first_seq",
                           1, NULL, params, NULL, NULL, 1) ||
        !PQsetSingleRowMode(j->journal_conn)) {
        sql_error(j->journal_conn, NULL, "cannot read the journal", err, err_size);
        return -1;
    }
    int rc = 0;
    bool ended = false;
    PGresult *r;
    while ((r = PQgetResult(j->journal_conn)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (rc == 0 && st == PGRES_SINGLE_TUPLE) {
            rc = replay_one(r, fn, ctx, err, err_size);
        } else if (rc == 0 && st == PGRES_TUPLES_OK) {
            ended = true;
        } else if (rc == 0) {
            sql_error(j->journal_conn, r, "cannot read the journal", err, err_size);
            rc = -1;
        }
        PQclear(r); /* after a stop, the rest is read and dropped */
    }
    return rc == 0 && !ended ? -1 : rc;
}

int pgj_drop_after(pgj_t *j, uint64_t last_seq, uint64_t *dropped, char *err, size_t err_size)
{
    char last[24], epoch[24];
    snprintf(last, sizeof last, "%" PRIu64, last_seq);
    snprintf(epoch, sizeof epoch, "%" PRIu64, j->epoch);
    const char *params[] = {j->shop, last, epoch};
    /* Fenced like an append: only the shop's owner trims its journal. */
    PGresult *r = PQexecParams(j->journal_conn,
                               "DELETE FROM holdfast_journal WHERE shop = $1 AND first_seq > $2"
                               " AND EXISTS (SELECT 1 FROM holdfast_shops"
                               "  WHERE shop = $1 AND epoch = $3 FOR KEY SHARE)",
                               3, NULL, params, NULL, NULL, 0);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc == 0) {
        *dropped = strtoull(PQcmdTuples(r), NULL, 10);
    } else {
        sql_error(j->journal_conn, r, "cannot drop the journal's unacknowledged rows", err,
                  err_size);
    }
    PQclear(r);
    return rc;
}

/* Runs a fenced statement; 1 it wrote, 0 the epoch is gone, -1 error. */
static int fenced_exec(PGconn *conn, const char *sql, int n, const char *const *values,
                       const int *lengths, const int *formats, char *err, size_t err_size)
{
    PGresult *r = PQexecParams(conn, sql, n, NULL, values, lengths, formats, 0);
    int rc = -1;
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        rc = strcmp(PQcmdTuples(r), "1") == 0 ? 1 : 0;
    } else {
        sql_error(conn, r, "journal commit failed", err, err_size);
    }
    PQclear(r);
    return rc;
}

static int append_row(pgj_t *j, PGconn *conn, const pgj_commit_t *c, char *err,
                      size_t err_size)
{
    char first[24], count[24], epoch[24], chain[24], durable[24];
    snprintf(first, sizeof first, "%" PRIu64, c->first_seq);
    snprintf(count, sizeof count, "%" PRIu64, c->count);
    snprintf(epoch, sizeof epoch, "%" PRIu64, j->epoch);
    snprintf(chain, sizeof chain, "%" PRId64, (int64_t)c->chain); /* bigint: the bits */
    snprintf(durable, sizeof durable, "%" PRIu64, c->durable_seq);
    const char *values[] = {j->shop, first, count, epoch, (const char *)c->body, chain, durable};
    int lengths[] = {0, 0, 0, 0, (int)c->size, 0, 0};
    int formats[] = {0, 0, 0, 0, 1, 0, 0};
    return fenced_exec(conn, append_sql, 7, values, lengths, formats, err, err_size);
}

int pgj_append(pgj_t *j, struct pg_conn *conn, const pgj_commit_t *c, bool *fenced, char *err,
               size_t err_size)
{
    assert(j->epoch > 0 && c->count > 0 && c->size <= INT32_MAX && c->snapshot == NULL);
    int rc = append_row(j, conn, c, err, err_size);
    *fenced = rc == 0;
    return rc == 1 ? 0 : -1;
}

struct pg_conn *pgj_connect_owner(pgj_t *j, char *err, size_t err_size)
{
    assert(j->epoch > 0);
    return connect_as(j, "owner", err, err_size);
}

void pgj_disconnect(struct pg_conn *conn)
{
    PQfinish(conn);
}

static int adopt(pgj_t *j, const pgj_commit_t *c, char *err, size_t err_size)
{
    char seq[24], epoch[24];
    snprintf(seq, sizeof seq, "%" PRIu64, c->snapshot_seq);
    snprintf(epoch, sizeof epoch, "%" PRIu64, j->epoch);
    const char *values[] = {j->shop, seq, (const char *)c->snapshot->data, epoch};
    int lengths[] = {0, 0, (int)c->snapshot->size, 0};
    int formats[] = {0, 0, 1, 0};
    int rc = fenced_exec(j->journal_conn, snapshot_sql, 4, values, lengths, formats, err,
                         err_size);
    if (rc == 1) {
        const char *adopt_values[] = {j->shop, seq, epoch};
        rc = fenced_exec(j->journal_conn, adopt_sql, 3, adopt_values, NULL, NULL, err, err_size);
    }
    if (rc == 1) {
        const char *drop_values[] = {j->shop, seq};
        PGresult *r = PQexecParams(j->journal_conn,
                                   "DELETE FROM holdfast_snapshots WHERE shop = $1 AND seq < $2",
                                   2, NULL, drop_values, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            sql_error(j->journal_conn, r, "journal commit failed", err, err_size);
            rc = -1;
        }
        PQclear(r);
    }
    return rc;
}

int pgj_commit(pgj_t *j, const pgj_commit_t *c, bool *fenced, char *err, size_t err_size)
{
    assert(j->epoch > 0 && c->size <= INT32_MAX);
    *fenced = false;
    if (c->snapshot == NULL) {
        /* One statement, one round trip, its own commit. */
        assert(c->count > 0);
        int rc = append_row(j, j->journal_conn, c, err, err_size);
        *fenced = rc == 0;
        return rc == 1 ? 0 : -1;
    }
    assert(c->snapshot->size <= INT32_MAX);
    if (run(j->journal_conn, "BEGIN", PGRES_COMMAND_OK, "journal commit failed", err,
            err_size) != 0) {
        return -1;
    }
    int rc = c->count > 0 ? append_row(j, j->journal_conn, c, err, err_size) : 1;
    if (rc == 1) {
        rc = adopt(j, c, err, err_size);
    }
    *fenced = rc == 0;
    if (rc != 1) {
        char ignored[64];
        run(j->journal_conn, "ROLLBACK", PGRES_COMMAND_OK, "rollback", ignored, sizeof ignored);
        return -1;
    }
    return run(j->journal_conn, "COMMIT", PGRES_COMMAND_OK, "journal commit failed", err,
               err_size);
}

/* Lets the lease run out now, so that a standby takes the shop at its
 * next look instead of after a whole lease: a planned stop (an upgrade, a
 * move) costs a fraction of a lease. Only its own epoch's. */
static void release(pgj_t *j)
{
    char epoch[24];
    snprintf(epoch, sizeof epoch, "%" PRIu64, j->epoch);
    const char *params[] = {j->shop, epoch};
    PGresult *r = PQexecParams(j->lease_conn,
                               "UPDATE holdfast_shops SET expires = clock_timestamp()"
                               " WHERE shop = $1 AND epoch = $2",
                               2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdTuples(r), "1") == 0) {
        fprintf(stderr, "level=info msg=\"released the shop's lease\" shop=%s epoch=%" PRIu64 "\n",
                j->shop, j->epoch);
    }
    PQclear(r);
}

void pgj_close(pgj_t *j)
{
    if (j == NULL) {
        return;
    }
    if (j->renewing) {
        pthread_mutex_lock(&j->lock);
        j->stopping = true;
        pthread_cond_signal(&j->wake);
        pthread_mutex_unlock(&j->lock);
        pthread_join(j->renewer, NULL);
        release(j);
    }
    PQfinish(j->journal_conn);
    PQfinish(j->lease_conn);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->wake);
    pgowners_free(j->owners);
    free(j->url);
    free(j->shop);
    free(j->node);
    free(j->node_url);
    free(j);
}
