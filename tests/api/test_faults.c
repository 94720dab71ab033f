/*
 * test_faults.c - the disk failing under a running server: an fsync that
 * fails, a write that fails, a full disk, a snapshot that cannot be
 * written. The faults come from an LD_PRELOAD shim (tests/fault/hf_fault.c)
 * switched on and off by a flag file, so a test can fail the disk mid-run
 * and then give it back.
 *
 * What must hold: an acknowledged change is never lost; a change whose
 * commit failed is answered 503 outcome_unknown (never "not kept"), and a
 * retry with its Idempotency-Key then tells which; a full disk recovers
 * without anyone deleting files, the running server taking writes again
 * once there is room.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hf_test_http.h"

typedef hf_fixture_t fx_t;

/* Polls for a condition the server reaches on its own (the reopen after a
 * full disk, a snapshot child's end) for at most this long. */
#define SETTLE_MS 20000

static int setup(void **state)
{
    return hf_fixture_setup(state, "{\"compact_records\": 0}", false);
}

static int teardown(void **state)
{
    unsetenv("LD_PRELOAD");
    return hf_fixture_teardown(state);
}

static char flag_path[256];

/* Starts the server with the shim: ops fail on files matching match with
 * err while the flag file exists. */
static void start_faulty(fx_t *fx, const char *match, const char *ops, const char *err)
{
    snprintf(flag_path, sizeof flag_path, "%s/fault-on", fx->srv.root);
    assert_int_equal(setenv("LD_PRELOAD", HF_FAULT_SHIM, 1), 0);
    /* The sanitizer's runtime wants to come first; the shim has none. */
    assert_int_equal(setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1), 0);
    assert_int_equal(setenv("HF_FAULT_FLAG", flag_path, 1), 0);
    assert_int_equal(setenv("HF_FAULT_MATCH", match, 1), 0);
    assert_int_equal(setenv("HF_FAULT_OPS", ops, 1), 0);
    assert_int_equal(setenv("HF_FAULT_ERRNO", err, 1), 0);
    assert_int_equal(hf_server_start(&fx->srv, NULL), 0);
    assert_int_equal(unsetenv("LD_PRELOAD"), 0); /* only the server has it */
    fx->cl.port = fx->srv.port;
}

static void restart_clean(fx_t *fx, int sig)
{
    int want = sig == SIGKILL ? 128 + SIGKILL : 0;
    assert_int_equal(hf_server_stop(&fx->srv, sig), want);
    assert_int_equal(hf_server_start(&fx->srv, NULL), 0);
    fx->cl.port = fx->srv.port;
}

static void fault(bool on)
{
    if (on) {
        FILE *f = fopen(flag_path, "w");
        assert_non_null(f);
        fclose(f);
    } else {
        assert_int_equal(unlink(flag_path), 0);
    }
}

static const char cap_body[] = "{\"customer\": \"u-1\", \"lines\": [{\"sku\": \"cap\", \"qty\": 1}]}";

/* POST /v1/holds with key; returns the status, and whether it was a replay. */
static int create(fx_t *fx, const char *key, bool *replayed, char *id)
{
    hf_response_t r;
    int status = hf_hold_create(&fx->cl, cap_body, key, id, &r);
    if (replayed != NULL) {
        *replayed = hf_response_header(&r, "Idempotent-Replayed") != NULL;
    }
    if (status == 503) {
        assert_true(hf_expect_error(&r, 503, "outcome_unknown", NULL));
    }
    hf_response_free(&r);
    return status;
}

static bool healthy(fx_t *fx)
{
    hf_response_t r;
    bool ok = hf_call(&fx->cl, "GET", "/healthz", NULL, NULL, &r) == 0 && r.status == 200;
    hf_response_free(&r);
    return ok;
}

static bool log_has(const fx_t *fx, const char *needle)
{
    FILE *f = fopen(fx->srv.log_path, "r");
    char line[1024];
    bool found = false;
    while (f != NULL && !found && fgets(line, sizeof line, f) != NULL) {
        found = strstr(line, needle) != NULL;
    }
    if (f != NULL) {
        fclose(f);
    }
    return found;
}

/* An fsync that fails after SQLite wrote the log: the reply cannot know
 * whether the change survives, and here it did. */
static void test_a_failed_fsync_is_unknown_and_the_retry_finds_it_kept(void **state)
{
    HF_SKIP_WITH_PG(); /* the data directory's own */
    fx_t *fx = *state;
    start_faulty(fx, "holdfast.db-wal", "fsync", "EIO");
    assert_int_equal(hf_sku_put(&fx->cl, "cap", 10), 201);
    char kept[HF_TEST_ID_MAX], id[HF_TEST_ID_MAX];
    assert_int_equal(create(fx, "k-kept", NULL, kept), 201);
    fault(true);
    assert_int_equal(create(fx, "k-unknown", NULL, NULL), 503);
    hf_response_t r;
    assert_int_equal(hf_call(&fx->cl, "GET", "/v1/skus/cap", NULL, NULL, &r), 0);
    assert_true(hf_expect_error(&r, 503, "storage_unavailable", NULL));
    hf_response_free(&r);
    fault(false);
    restart_clean(fx, SIGTERM);
    bool replayed = false;
    assert_int_equal(create(fx, "k-unknown", &replayed, id), 201);
    assert_true(replayed); /* it had reached the disk: "not kept" would have lied */
    assert_true(hf_expect_sku(&fx->cl, "cap", 10, 2, 0));
    char st[32];
    assert_int_equal(hf_hold_state(&fx->cl, kept, st), 200);
    assert_string_equal(st, "active");
}

/* A write that fails (EIO): unknown too; here nothing reached the disk, so
 * the retry makes the hold once. */
static void test_a_failed_write_is_unknown_and_the_retry_makes_it_once(void **state)
{
    HF_SKIP_WITH_PG(); /* the data directory's own */
    fx_t *fx = *state;
    start_faulty(fx, "holdfast.db-wal", "write", "EIO");
    assert_int_equal(hf_sku_put(&fx->cl, "cap", 10), 201);
    fault(true);
    assert_int_equal(create(fx, "k-1", NULL, NULL), 503);
    assert_false(healthy(fx));
    fault(false);
    restart_clean(fx, SIGKILL);
    bool replayed = true;
    assert_int_equal(create(fx, "k-1", &replayed, NULL), 201);
    assert_false(replayed);
    assert_int_equal(create(fx, "k-1", &replayed, NULL), 201);
    assert_true(replayed);
    assert_true(hf_expect_sku(&fx->cl, "cap", 10, 1, 0));
}

/* The disk fills (writes fail with ENOSPC, statvfs says no room), then
 * room comes back: the running server reopens its journal by itself, the
 * acknowledged hold is there, the unknown one was not kept and its retry
 * makes it once; a kill -9 after that keeps both. */
static void test_a_full_disk_recovers_without_a_restart(void **state)
{
    HF_SKIP_WITH_PG(); /* the data directory's own */
    fx_t *fx = *state;
    start_faulty(fx, "holdfast.db", "write,statvfs", "ENOSPC");
    assert_int_equal(hf_sku_put(&fx->cl, "cap", 10), 201);
    char a[HF_TEST_ID_MAX];
    assert_int_equal(create(fx, "k-a", NULL, a), 201);
    fault(true);
    assert_int_equal(create(fx, "k-b", NULL, NULL), 503);
    assert_false(healthy(fx));
    fault(false);
    long long until = hf_now_ms() + SETTLE_MS;
    while (!healthy(fx) && hf_now_ms() < until) {
        hf_sleep_ms(50);
    }
    assert_true(healthy(fx));
    assert_true(log_has(fx, "reopening the journal"));
    bool replayed = true;
    assert_int_equal(create(fx, "k-b", &replayed, NULL), 201);
    assert_false(replayed);
    assert_true(hf_expect_sku(&fx->cl, "cap", 10, 2, 0));
    restart_clean(fx, SIGKILL);
    assert_true(hf_expect_sku(&fx->cl, "cap", 10, 2, 0));
    char st[32];
    assert_int_equal(hf_hold_state(&fx->cl, a, st), 200);
    assert_string_equal(st, "active");
}

/* Waits (bounded) until the file exists: what the shim made to say it began. */
static bool appears(const char *path)
{
    long long until = hf_now_ms() + SETTLE_MS;
    while (access(path, F_OK) != 0 && hf_now_ms() < until) {
        hf_sleep_ms(5);
    }
    return access(path, F_OK) == 0;
}

/* A disk that hangs while a reply waits for it, then a stop. The drain's
 * time runs out with the reply still waiting: it must be answered (the
 * HTTP library aborts the process when stopped with a connection
 * suspended), and answered "unknown", since the disk may yet keep it. The
 * stop ends once the disk answers, and here the change was kept. */
static void test_a_stop_answers_a_reply_stuck_on_a_hung_disk(void **state)
{
    HF_SKIP_WITH_PG(); /* the data directory's own */
    fx_t *fx = *state;
    char stalled[320];
    snprintf(stalled, sizeof stalled, "%s/fault-stalled", fx->srv.root);
    assert_int_equal(setenv("HF_FAULT_STALLED", stalled, 1), 0);
    start_faulty(fx, "holdfast.db-wal", "stall", "EIO");
    assert_int_equal(unsetenv("HF_FAULT_STALLED"), 0);
    assert_int_equal(hf_sku_put(&fx->cl, "cap", 10), 201);
    fault(true);
    hf_conn_t c;
    assert_int_equal(hf_conn_open(&c, fx->srv.port, NULL), 0);
    struct timeval wait_reply = {.tv_sec = 40}; /* the drain takes 10 s */
    assert_int_equal(setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &wait_reply, sizeof wait_reply), 0);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /v1/holds HTTP/1.1\r\nHost: t\r\nIdempotency-Key: k-stuck\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(cap_body), cap_body);
    assert_int_equal(hf_conn_send_raw(&c, req, (size_t)n), 0);
    assert_true(appears(stalled)); /* its commit is stuck in fsync */
    assert_int_equal(kill(fx->srv.pid, SIGTERM), 0);
    hf_response_t r;
    assert_int_equal(hf_conn_read(&c, &r), 0);
    assert_true(hf_expect_error(&r, 503, "outcome_unknown", NULL));
    hf_response_free(&r);
    hf_conn_close(&c);
    fault(false); /* the disk answers: the stop can close the journal */
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);
    assert_int_equal(hf_server_start(&fx->srv, NULL), 0);
    fx->cl.port = fx->srv.port;
    bool replayed = false;
    assert_int_equal(create(fx, "k-stuck", &replayed, NULL), 201);
    assert_true(replayed); /* kept after all: "not kept" would have lied */
    assert_true(hf_expect_sku(&fx->cl, "cap", 10, 1, 0));
}

static bool tmp_file_left(const fx_t *fx)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q '\\.tmp$'", fx->srv.data_dir);
    return system(cmd) == 0;
}

/* A snapshot that finds the disk full fails without leaving its temporary
 * file (which would keep the disk full), and the journal goes on; with
 * statvfs saying there is no room, snapshots are put off instead. */
static void test_a_snapshot_on_a_full_disk_leaves_nothing_behind(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(hf_server_write_config(&fx->srv, "{\"compact_records\": 5}"), 0);
    start_faulty(fx, "snapshot-", "write", "ENOSPC");
    fault(true);
    assert_int_equal(hf_sku_put(&fx->cl, "cap", 100), 201);
    for (int i = 0; i < 12; i++) {
        char key[16];
        snprintf(key, sizeof key, "k-%d", i);
        assert_int_equal(create(fx, key, NULL, NULL), 201);
    }
    long long until = hf_now_ms() + SETTLE_MS;
    while (!log_has(fx, "snapshot failed") && hf_now_ms() < until) {
        hf_sleep_ms(20);
    }
    assert_true(log_has(fx, "snapshot failed"));
    assert_false(tmp_file_left(fx));
    fault(false);
    restart_clean(fx, SIGKILL);
    assert_true(hf_expect_sku(&fx->cl, "cap", 100, 12, 0));
    assert_int_equal(hf_server_stop(&fx->srv, SIGTERM), 0);

    start_faulty(fx, "no-file-matches", "statvfs", "ENOSPC");
    fault(true);
    for (int i = 12; i < 24; i++) {
        char key[16];
        snprintf(key, sizeof key, "k-%d", i);
        assert_int_equal(create(fx, key, NULL, NULL), 201);
    }
    until = hf_now_ms() + SETTLE_MS; /* the clock's next step decides */
    while (!log_has(fx, "snapshot put off") && hf_now_ms() < until) {
        hf_sleep_ms(20);
    }
    assert_true(log_has(fx, "snapshot put off"));
    fault(false);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_a_failed_fsync_is_unknown_and_the_retry_finds_it_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_failed_write_is_unknown_and_the_retry_makes_it_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_full_disk_recovers_without_a_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_stop_answers_a_reply_stuck_on_a_hung_disk, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_snapshot_on_a_full_disk_leaves_nothing_behind,
                                        setup, teardown),
    };
    return hf_tests_done(cmocka_run_group_tests(tests, NULL, NULL));
}
