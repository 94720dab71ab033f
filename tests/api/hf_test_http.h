/*
 * hf_test_http.h - the black-box harness of holdfast's API tests: a small
 * HTTP/1.1 client over plain sockets to 127.0.0.1, and a launcher that runs
 * the real server binary (HF_BINARY) on a fresh data directory.
 *
 * Why our own client and not libcurl: the tests must send what no good client
 * would (a malformed request line, a hundred headers, a body far over the
 * limit) and must see exactly what the server sent back. So the client is
 * small and does only what it is told.
 *
 * Rules the harness keeps, so that a broken server fails a test and never
 * hangs or poisons the next one:
 *   1. Every socket has a receive and a send timeout (HF_TEST_TIMEOUT_MS).
 *   2. Every wait on the server (its start, its exit) is bounded.
 *   3. A launched server dies with the test process (PR_SET_PDEATHSIG).
 *   4. Nothing here asserts: functions return a status (or -1) and say why on
 *      stderr; the tests assert at their own line, so a failure points at
 *      the test, not at the harness.
 */
#ifndef HF_TEST_HTTP_H
#define HF_TEST_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A reply slower than this is a failure, not something to wait for. */
#define HF_TEST_TIMEOUT_MS 10000
/* The server must print its listening line within this (brief: ~10 s). */
#define HF_TEST_START_MS 10000
/* SIGTERM must end the server within this, leak check included. */
#define HF_TEST_STOP_MS 20000

/* ---- replies ---- */

typedef struct {
    int status; /* 0: no reply was read */
    size_t header_count;
    char **header_names;
    char **header_values;
    char *body; /* NUL-terminated; body_len excludes the NUL */
    size_t body_len;
    json_t *json; /* the body parsed, NULL if it is not a JSON document */
} hf_response_t;

void hf_response_free(hf_response_t *r);
/* The first header of that name (case-insensitive), or NULL. */
const char *hf_response_header(const hf_response_t *r, const char *name);
/* error.code and error.field of an error reply, or NULL. */
const char *hf_error_code(const hf_response_t *r);
const char *hf_error_field(const hf_response_t *r);

/* JSON reads that tolerate a missing key or a wrong type: NULL / false. */
const char *hf_json_str(const json_t *object, const char *key);
bool hf_json_int(const json_t *object, const char *key, long long *out);

/* Whether the harness keeps its own complaints (a refused connection, a
 * reply that never came) to itself: for a client that expects many, as
 * one of a cluster that is being failed over. Off at first. */
void hf_test_quiet(bool on);

/* ---- connections ---- */

/* The request line of the last request sent on a connection, for the
 * contract record of its reply (below). */
#define HF_TEST_METHOD_MAX 16
#define HF_TEST_TARGET_MAX 2048

typedef struct {
    int fd;
    uint16_t port;
    const char *bearer; /* sent as "Authorization: Bearer X"; NULL: none */
    char *buf;          /* received, not yet parsed */
    size_t buf_len, buf_cap;
    char method[HF_TEST_METHOD_MAX];  /* "" if the bytes sent began with none */
    char target[HF_TEST_TARGET_MAX];
    bool raw; /* sent with hf_conn_send_raw: perhaps not HTTP at all */
    bool ended; /* the server closed its side: the last read found the end */
} hf_conn_t;

/* Connects to 127.0.0.1:port. Returns 0, or -1 with c->fd == -1. */
int hf_conn_open(hf_conn_t *c, uint16_t port, const char *bearer);
void hf_conn_close(hf_conn_t *c);
/* Sends bytes as they are (malformed requests). Bytes that begin with a
 * request line name the request whose reply hf_conn_read records. Returns
 * 0 or -1. */
int hf_conn_send_raw(hf_conn_t *c, const void *bytes, size_t len);
/* Reads one whole reply (Content-Length, chunked, or until close), and
 * records it for the contract check (below).
 * Returns 0, or -1 if none came (closed, reset or timed out). */
int hf_conn_read(hf_conn_t *c, hf_response_t *r);
/* Sends a request and reads its reply. headers: extra lines, each ending in
 * "\r\n", or NULL. body: NULL for none (no Content-Length), else body_len
 * bytes sent as application/json. A reply that comes while the body is still
 * being sent (a 413 for a huge body) ends the sending and is read.
 * Returns 0, or -1 if no reply came. */
int hf_conn_exchange(hf_conn_t *c, const char *method, const char *target, const char *headers,
                     const char *body, size_t body_len, hf_response_t *r);

/* ---- the contract check ----
 *
 * With HF_CONTRACT_DIR in the environment (ctest sets it for the API
 * suites), every reply read is appended, as one JSON line (method, target,
 * status, Content-Type, a few headers, the body), to NAME-PID.jsonl in that
 * directory, and tests/contract/validate.mjs checks each against
 * docs/openapi.yaml once the suites have run. */

/* ---- one request per connection ---- */

typedef struct {
    uint16_t port;
    const char *bearer; /* NULL: no Authorization header */
    /* Send the remembered secret (below) of the hold or waitlist entry the
     * target names, as its owner would, unless the headers send one. */
    bool secrets;
} hf_client_t;

/* One request on a fresh connection; body is a C string or NULL.
 * Returns 0, or -1 if no reply came. */
int hf_call(const hf_client_t *cl, const char *method, const char *target, const char *headers,
            const char *body, hf_response_t *r);
/* The same with a body of any bytes. */
int hf_call_bytes(const hf_client_t *cl, const char *method, const char *target,
                  const char *headers, const char *body, size_t body_len, hf_response_t *r);

/* ---- secrets ---- */

/* Every reply read is looked at for an "id" with a "secret" (a hold's
 * create, a waitlist join, an offer's "hold"), and the pair remembered
 * (the last 8,192). hf_secret_of copies the secret of id to out; false if
 * none was seen. */
void hf_secrets_learn(const json_t *reply);
bool hf_secret_of(const char *id, char *out, size_t size);

/* ---- the API's own shapes ---- */

typedef struct {
    long long stock, held, sold, available;
} hf_sku_counts_t;

/* PUT /v1/skus/{sku} {"stock": N}; returns the HTTP status, or -1. */
int hf_sku_put(const hf_client_t *cl, const char *sku, long long stock);
/* GET /v1/skus/{sku}; on 200 fills out. Returns the status, or -1. */
int hf_sku_get(const hf_client_t *cl, const char *sku, hf_sku_counts_t *out);
/* POST /v1/holds with body (and an Idempotency-Key unless idem is NULL); on
 * 201 copies the hold id to id_out (HF_TEST_ID_MAX bytes). Returns the
 * status, or -1. r may be NULL if the caller needs only the status. */
#define HF_TEST_ID_MAX 128
int hf_hold_create(const hf_client_t *cl, const char *body, const char *idem, char *id_out,
                   hf_response_t *r);
/* The hold's "state", read with GET; copies it to state_out (32 bytes).
 * Returns the status, or -1. */
int hf_hold_state(const hf_client_t *cl, const char *id, char *state_out);

/* ---- checks that say what differed (for assert_true at the caller) ---- */

bool hf_expect_status(const hf_response_t *r, int status);
/* An error reply: status, error.code, and error.field unless field is NULL.
 * Also checks the JSON shape and that error.message is a string. */
bool hf_expect_error(const hf_response_t *r, int status, const char *code, const char *field);
/* GET of the sku answers 200 with these counts and available =
 * stock - held - sold. */
bool hf_expect_sku(const hf_client_t *cl, const char *sku, long long stock, long long held,
                   long long sold);

/* ---- the server under test ---- */

typedef struct {
    char root[160]; /* mkdtemp: data/, config.json, server-N.log */
    char data_dir[192];
    char config_path[192]; /* empty: no --config */
    char log_path[192];    /* stderr of the current (or last) run */
    unsigned run_count;
    pid_t pid; /* 0: not running */
    uint16_t port;
    bool failed; /* it died on its own or reported a sanitizer error */
} hf_server_t;

/* The exit status of a cluster's node that ends for its supervisor to
 * restart it (docs/OPERATIONS.md, "A cluster"). */
#define HF_EXIT_FOR_RESTART 75

/* The PostgreSQL journal the servers under test use (HF_TEST_PG_ENV), or
 * NULL: the data directory's own. Suites skip what only the latter has. */
const char *hf_test_journal_url(void);

/* Skips the calling test (cmocka's skip()) when the servers keep their
 * journal in PostgreSQL: what it checks belongs to the data directory's
 * own journal (its files, its disk). */
#define HF_SKIP_WITH_PG()                                                                          \
    do {                                                                                           \
        if (hf_test_journal_url() != NULL) {                                                       \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* The shop server s serves: "default", or with the PostgreSQL journal its
 * own (a static buffer, good until the next call). */
const char *hf_server_shop(const hf_server_t *s);

/* Makes a fresh root directory with an empty data directory. 0 or -1. */
int hf_server_init(hf_server_t *s);
/* Every defense switched off: the core suites test the core contract (the
 * defenses' own suite turns them on, one at a time or all at once). */
#define HF_POLICY_OFF                                                                          \
    "{\"quantity\": {\"enabled\": 0}, \"identity\": {\"enabled\": 0},"                         \
    " \"budget\": {\"enabled\": 0}, \"hold_share\": {\"held_pct_max\": 100},"                 \
    " \"ttl\": {\"adaptive\": 0, \"pay_floor\": 0, \"max_ms\": 86400000,"                    \
    " \"life_max_ms\": 86400000}, \"newcomer\": {\"enabled\": 0},"                           \
    " \"reputation\": {\"enabled\": 0}, \"challenge\": {\"enabled\": 0},"                    \
    " \"waitlist\": {\"enabled\": 0}, \"escalation\": {\"enabled\": 0},"                     \
    " \"reclaim\": {\"enabled\": 0}}"
/* Writes json_text as the config file, with "policy": HF_POLICY_OFF added
 * (hf_server_init writes "{}" so); later starts pass --config. */
int hf_server_write_config(hf_server_t *s, const char *json_text);
/* Writes json_text exactly (the defenses' tests choose their policy). */
int hf_server_write_config_raw(hf_server_t *s, const char *json_text);
/* Starts `HF_BINARY serve --listen 127.0.0.1:0 --data DIR [--config F]
 * [extra...]` (extra is NULL-terminated or NULL) and waits for its
 * "msg=listening addr=127.0.0.1:PORT" line. Returns 0 with s->port set, or
 * -1 (the server is killed and its log printed). */
int hf_server_start(hf_server_t *s, const char *const *extra);
/* Starts argv (argv[0] is HF_BINARY, NULL-terminated) with its output to
 * the next server-N.log and returns at once, s->pid set: for a node that
 * waits to own its shop before it listens, which its caller supervises.
 * Returns 0 or -1. */
int hf_server_spawn(hf_server_t *s, const char *const *argv);
/* Sends sig and waits for the exit. Returns the exit status (0-255), 128 +
 * the signal if a signal ended it, or -1 if it outlived HF_TEST_STOP_MS (it
 * is then killed). sig 0 sends nothing: it waits for an exit of the
 * server's own. */
int hf_server_stop(hf_server_t *s, int sig);
/* True if no run's log holds a sanitizer report. */
bool hf_server_logs_clean(const hf_server_t *s);
/* Prints the tail of the current run's log to stderr. */
void hf_server_dump_log(const hf_server_t *s);
/* Kills a running server, removes root (unless HF_TEST_KEEP is set or the
 * server failed: then it is kept and named). Returns 0, or -1 if the server
 * had died on its own or a log holds a sanitizer report. */
int hf_server_deinit(hf_server_t *s);

/* ---- a test's fixture: one server and a client of it ---- */

typedef struct {
    hf_server_t srv;
    hf_client_t cl;
} hf_fixture_t;

/* cmocka setup: a fresh server directory, config written when not NULL, the
 * server started when start is true. Returns 0, or -1 with nothing left. */
int hf_fixture_setup(void **state, const char *config, bool start);
/* cmocka teardown: SIGTERM must end a running server with 0, and no log may
 * hold a sanitizer report. Returns 0 or -1. */
int hf_fixture_teardown(void **state);

/* ---- the command line ---- */

typedef struct {
    int status; /* as hf_server_stop(); -1: killed after timeout_ms */
    char out[16384];
    char err[16384];
} hf_run_result_t;

/* Runs HF_BINARY with argv (NULL-terminated, without argv[0]) and captures
 * stdout and stderr (truncated to the buffers). Returns res->status. */
int hf_run(const char *const *argv, int timeout_ms, hf_run_result_t *res);

/* Call with cmocka's result as main returns: after a failure, the leak check
 * of the test process is turned off, since a test that failed left by
 * longjmp with its replies unfreed, and the report would bury the failure.
 * Returns failed. */
int hf_tests_done(int failed);

/* Milliseconds on the monotonic clock, and on the wall clock. */
long long hf_now_ms(void);
long long hf_wall_ms(void);
/* Parses an RFC 3339 UTC instant with milliseconds ("...T..:..:..mmmZ").
 * Returns milliseconds since the epoch, or -1 if the text is not one. */
long long hf_parse_instant(const char *text);
/* Sleeps ms on the monotonic clock (for wall time to pass, e.g. expiry). */
void hf_sleep_ms(long long ms);

#endif
