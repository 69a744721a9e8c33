/*
 * Plugin authentication under load, against a real Mosquitto with
 * mosquitto_veil.so: a storm of bad logins (bad passwords, bad tokens, from
 * the same address and against the same ids) does not stop valid logins,
 * and 1,000 simultaneous credential logins all succeed. Correctness only:
 * how long the logins took is printed as FIGURE lines, never judged here
 * (speed belongs to the benchmarks, bench/).
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "auth_env.h"
#include "check_run.h"
#include "material.h"
#include "raw_mqtt.h"
#include "timing.h"

/* ---- load ---- */

struct storm {
	int port;
	atomic_int stop;
	atomic_int attempts;
	atomic_int refused; /* CONNACK "not authorized" actually received */
};

static void *storm_thread(void *arg)
{
	struct storm *s = arg;
	char cid[32];
	while (!atomic_load(&s->stop)) {
		int i = atomic_fetch_add(&s->attempts, 1);
		snprintf(cid, sizeof(cid), "%s", i % 2 ? "auto-storm" : "victim");
		/* Bad passwords for a real user and bad tokens for the victim's id. */
		struct raw_login l = { .version = 4, .client_id = cid, .username = i % 2 ? "alice" : "victim",
			               .password = i % 2 ? "guess" : VEIL_PASSWORD_PREFIX "AAAA" };
		/* One login at a time per thread, as fast as the broker answers;
		 * closed with a reset so no local port is left in TIME_WAIT. */
		int fd = raw_connect_send(s->port, &l);
		if (fd < 0)
			continue;
		if (raw_connack(fd, 2000) == V3_NOT_AUTHORIZED)
			atomic_fetch_add(&s->refused, 1);
		raw_abort(fd);
	}
	return NULL;
}

START_TEST(test_storm_does_not_block_good_clients)
{
	auth_env_start(NULL);
	/* alice logged in before the storm: her cached verification still works. */
	ck_assert_int_eq(auth_login3("auto-alice-box", "alice", "wonderland"), 0);
	struct storm s = { auth_env.b.port, 0, 0, 0 };
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, storm_thread, &s), 0);
	/* The storm is on once hundreds of bad logins were refused. */
	ck_assert_msg(VEIL_WAIT_UNTIL(atomic_load(&s.refused) >= 500, 10000), "the storm never got going (%d refused)",
	              atomic_load(&s.refused));
	int good = 0;
	uint64_t worst = 0;
	for (int i = 0; i < 20; i++) {
		uint8_t tok[VEIL_TOKEN_MAX];
		char pw[VEIL_PASSWORD_MAX];
		uint64_t a = veil_test_now_ms();
		int rc;
		if (i % 3 == 0) {
			size_t n = auth_good_token("victim", tok);
			rc = auth_login5_token("victim", tok, n);
		} else if (i % 3 == 1) {
			test_token_password(tok, auth_good_token("victim", tok), pw);
			rc = auth_login3("victim", "victim", pw);
		} else {
			rc = auth_login3("auto-alice-box", "alice", "wonderland");
		}
		uint64_t ms = veil_test_now_ms() - a;
		ck_assert_msg(rc == 0, "good login %d refused (rc %d) during the storm", i, rc);
		if (ms > worst)
			worst = ms;
		good++;
	}
	atomic_store(&s.stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(good, 20);
	fprintf(stderr, "FIGURE storm_good_login refused=%d good=%d slowest_ms=%llu\n", atomic_load(&s.refused), good,
	        (unsigned long long)worst);
	auth_expect_log("method=password reason=rate-limited");
	/* The attacker's right guess is refused too while the back-off lasts. */
	ck_assert_int_eq(auth_login3("bob", "bob", "builder"), V3_NOT_AUTHORIZED);
	auth_expect_log("client=bob addr=127.0.0.1 method=password reason=rate-limited");
	auth_env_stop();
}
END_TEST

START_TEST(test_thousand_concurrent_logins)
{
	auth_env_start(NULL);
	enum { N = 1000 };
	static char pws[N][VEIL_PASSWORD_MAX];
	static uint8_t toks[N][VEIL_TOKEN_MAX];
	static size_t tlen[N];
	static char ids[N][24];
	static int fds[N];
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "fleet-%04d", i);
		tlen[i] = auth_good_token(ids[i], toks[i]);
		test_token_password(toks[i], tlen[i], pws[i]);
	}
	uint64_t t0 = veil_test_now_ms();
	for (int i = 0; i < N; i++) {
		/* Half MQTT 5 enhanced auth, half MQTT 3.1.1 password form. */
		struct raw_login l = { .version = i % 2 ? 5 : 4, .client_id = ids[i], .username = i % 2 ? NULL : ids[i],
			               .password = i % 2 ? NULL : pws[i], .auth_method = i % 2 ? VEIL_AUTH_METHOD : NULL,
			               .auth_data = i % 2 ? toks[i] : NULL, .auth_data_len = tlen[i] };
		fds[i] = raw_connect_send(auth_env.b.port, &l);
		ck_assert_msg(fds[i] >= 0, "socket %d", i);
	}
	int ok = 0;
	for (int i = 0; i < N; i++)
		ok += raw_connack(fds[i], 20000) == 0;
	fprintf(stderr, "FIGURE concurrent_logins n=%d accepted=%d ms=%llu\n", N, ok,
	        (unsigned long long)(veil_test_now_ms() - t0));
	ck_assert_int_eq(ok, N);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	auth_env_stop();
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("plugin_auth_load");
	TCase *t = veil_tcase("load", 40);
	tcase_add_test(t, test_storm_does_not_block_good_clients);
	tcase_add_test(t, test_thousand_concurrent_logins);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
