/*
 * Password logins through a load balancer (issue 14, docs/AUTH.md "Rate
 * limit", docs/SCALING.md): a real Mosquitto with mosquitto_veil.so behind
 * Debian's HAProxy, so every client appears at HAProxy's address
 * (Mosquitto 2.0 has no PROXY protocol). 100 bad password logins for alice
 * through HAProxy, then bob's valid password login through HAProxy:
 * - with plugin_opt_proxy_addresses naming HAProxy's address, bob is
 *   accepted at once (no back-off on the shared address; the Argon2id
 *   budget leaves him room), while alice's guesses stay throttled;
 * - without it, bob is refused rate-limited: HAProxy's address is in
 *   back-off.
 * The password file has Argon2id hashes at the interactive limits (what
 * `veil passwd` writes), so the budget ("busy") is what it is in service.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "auth_env.h"
#include "check_run.h"
#include "haproxy.h"
#include "raw_mqtt.h"
#include "timing.h"

#define PROXY_SOURCE "127.0.0.9" /* HAProxy's address towards the broker */
#define BURST 100

static void passwd_line(char *out, size_t cap, const char *user, const char *pw)
{
	char h[crypto_pwhash_STRBYTES];
	ck_assert_int_eq(crypto_pwhash_str(h, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                                   crypto_pwhash_MEMLIMIT_INTERACTIVE),
	                 0);
	ck_assert_int_lt(snprintf(out, cap, "%s:%s\n", user, h), (int)cap);
}

/* One MQTT 3.1.1 password login through HAProxy from client address src:
 * its CONNACK code. */
static int login(const struct test_haproxy *h, const char *src, const char *user, const char *pw)
{
	struct raw_login l = { .version = 4, .client_id = user, .username = user, .password = pw };
	int fd = raw_connect_send_from(h->port, src, &l);
	ck_assert_msg(fd >= 0, "no connection to HAProxy");
	int code = raw_connack(fd, 5000);
	raw_abort(fd);
	return code;
}

/* The broker and HAProxy; extra is the plugin's extra configuration. */
static void start(struct test_haproxy *h, const char *extra)
{
	auth_env_prepare();
	char l1[256], l2[256], text[600];
	passwd_line(l1, sizeof(l1), "alice", "wonderland");
	passwd_line(l2, sizeof(l2), "bob", "builder");
	snprintf(text, sizeof(text), "%s%s", l1, l2);
	auth_env_write(auth_env.passwd, text);
	auth_env_launch(extra);
	ck_assert_int_eq(test_haproxy_start(h, &auth_env.b.port, 1, PROXY_SOURCE), 0);
}

/* 100 bad passwords for alice from 127.0.0.5: every one refused, most of
 * them by her back-off before any Argon2id run (it is kept with the
 * option: her guesses stay throttled). */
static void burst(const struct test_haproxy *h)
{
	uint64_t t0 = veil_test_now_ms();
	for (int i = 0; i < BURST; i++)
		ck_assert_int_eq(login(h, "127.0.0.5", "alice", "guess"), V3_NOT_AUTHORIZED);
	uint64_t ms = veil_test_now_ms() - t0;
	/* They reached the broker through HAProxy, at its address. */
	const char *pre = "client=alice addr=" PROXY_SOURCE " method=password reason=";
	char bad[160], limited[160], busy[160];
	snprintf(bad, sizeof(bad), "%sbad-password", pre);
	snprintf(limited, sizeof(limited), "%srate-limited", pre);
	snprintf(busy, sizeof(busy), "%sbusy", pre);
	ck_assert(test_file_wait_count(auth_env.b.log, pre, BURST, 5000));
	int n_bad = test_file_count(auth_env.b.log, bad), n_limited = test_file_count(auth_env.b.log, limited),
	    n_busy = test_file_count(auth_env.b.log, busy);
	fprintf(stderr, "FIGURE proxy_burst logins=%d ms=%llu bad_password=%d rate_limited=%d busy=%d\n", BURST,
	        (unsigned long long)ms, n_bad, n_limited, n_busy);
	ck_assert_int_eq(n_bad + n_limited + n_busy, BURST);
	ck_assert_int_ge(n_bad, 1);
	ck_assert_msg(n_limited > BURST / 2, "alice's back-off refused only %d of %d", n_limited, BURST);
}

START_TEST(test_burst_does_not_block_another_user)
{
	struct test_haproxy h;
	start(&h, "plugin_opt_proxy_addresses 10.0.0.5 " PROXY_SOURCE "\n");
	burst(&h);
	/* bob's valid login right after, from another client: accepted on its
	 * first attempt, his password verified (not a cached verification). */
	int code = login(&h, "127.0.0.6", "bob", "builder");
	if (code != 0)
		test_file_dump("broker log", auth_env.b.log);
	ck_assert_int_eq(code, 0);
	auth_expect_log("client=bob addr=" PROXY_SOURCE " method=password user=bob cached=no");
	ck_assert(!test_file_has(auth_env.b.log, "client=bob addr=" PROXY_SOURCE " method=password reason="));
	test_haproxy_stop(&h);
	auth_env_stop();
}
END_TEST

/* What the option changes: without it, the shared address is throttled.
 * One block of 60 s from the first failure: with the default growing
 * blocks, bob's login could fall in the instant between the end of one
 * block and the next guess; here it cannot, and that is the only
 * difference from the default. */
START_TEST(test_without_option_address_throttled)
{
	struct test_haproxy h;
	start(&h, "plugin_opt_backoff_base_ms 60000\nplugin_opt_backoff_max_ms 60000\n");
	burst(&h);
	ck_assert_int_eq(login(&h, "127.0.0.6", "bob", "builder"), V3_NOT_AUTHORIZED);
	auth_expect_log("client=bob addr=" PROXY_SOURCE " method=password reason=rate-limited");
	test_haproxy_stop(&h);
	auth_env_stop();
}
END_TEST

/* A bad value refuses the start, naming the option and the value. */
START_TEST(test_bad_value_refused)
{
	const char *cases[][2] = {
		{ "127.0.0.1 haproxy.local", "option=plugin_opt_proxy_addresses value=haproxy.local reason=not-an-ip-address" },
		{ "10.0.0.0/8", "option=plugin_opt_proxy_addresses value=10.0.0.0/8 reason=not-an-ip-address" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char conf[1024];
		snprintf(conf, sizeof(conf), "plugin %s\nplugin_opt_proxy_addresses %s\n", test_plugin_path(), cases[i][0]);
		ck_assert_msg(test_broker_start_refused(conf, cases[i][1]) == 0, "expected a refused start saying '%s'",
		              cases[i][1]);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("plugin_auth_proxy");
	TCase *t = veil_tcase("proxy", 30);
	tcase_add_test(t, test_burst_does_not_block_another_user);
	tcase_add_test(t, test_without_option_address_throttled);
	tcase_add_test(t, test_bad_value_refused);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
