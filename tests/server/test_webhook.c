/*
 * test_webhook.c - the webhook module's pure pieces: the backoff, the URLs
 * it accepts, the signature (tests/api/test_webhooks.c drives the rest).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hf_mix.h"
#include "webhook.h"

static void test_backoff_doubles_to_its_cap_within_half_to_all_of_each_step(void **state)
{
    (void)state;
    uint64_t seed = 42;
    fprintf(stderr, "seed %llu\n", (unsigned long long)seed);
    uint64_t rng = seed;
    for (uint32_t attempt = 1; attempt <= 40; attempt++) {
        uint64_t step = 1000ull << (attempt - 1 < 20 ? attempt - 1 : 20);
        step = step < 300000 ? step : 300000;
        for (int i = 0; i < 100; i++) {
            uint32_t ms = webhook_backoff_ms(1000, 300000, attempt, hf_splitmix64(&rng));
            assert_true(ms >= step - step / 2 && ms <= step);
        }
    }
    assert_int_equal(webhook_backoff_ms(1, 1, 1, 0), 1);
    assert_int_equal(webhook_backoff_ms(7, 7, 1000, UINT64_MAX), 7);
}

static void test_urls_are_addresses_and_https_is_refused(void **state)
{
    (void)state;
    webhook_endpoint_t e;
    char err[256];
    assert_int_equal(webhook_url_parse("http://127.0.0.1:9000/hooks?x=1", &e, err, sizeof err), 0);
    assert_string_equal(e.path, "/hooks?x=1");
    assert_string_equal(e.host, "127.0.0.1:9000");
    assert_true(e.loopback);
    assert_int_equal(webhook_url_parse("http://localhost", &e, err, sizeof err), 0);
    assert_string_equal(e.path, "/");
    assert_string_equal(e.host, "localhost:80");
    assert_int_equal(webhook_url_parse("http://[::1]:8/x", &e, err, sizeof err), 0);
    assert_true(e.loopback);
    assert_int_equal(webhook_url_parse("http://10.1.2.3:8/x", &e, err, sizeof err), 0);
    assert_false(e.loopback);
    const char *bad[] = {"https://127.0.0.1/x", "http://shop.example/x", "http://127.0.0.1:0/",
                         "http://127.0.0.1:70000/", "http://u:p@127.0.0.1/", "http:///x",
                         "http://127.0.0.1/a b", "ftp://127.0.0.1/", "http://[::1/x",
                         "http://127.0.0.1:80x/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (webhook_url_parse(bad[i], &e, err, sizeof err) == 0) {
            fail_msg("accepted %s", bad[i]);
        }
        assert_true(err[0] != '\0');
    }
}

static void test_signature_is_hmac_sha256_of_t_dot_body(void **state)
{
    (void)state;
    char out[128];
    /* From another implementation (Python's hmac). */
    assert_true(webhook_sign("0123456789abcdef", 16, 1700000000, "{\"a\":1}", 7, out, sizeof out));
    assert_string_equal(out, "t=1700000000,v1=9eb18f493f8ec135d9eb2dad817c369bb4e9cbfa818657897a"
                             "7437c1cd8c3a23");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_doubles_to_its_cap_within_half_to_all_of_each_step),
        cmocka_unit_test(test_urls_are_addresses_and_https_is_refused),
        cmocka_unit_test(test_signature_is_hmac_sha256_of_t_dot_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
