/*
 * Plugin authentication under load, against a real Mosquitto with
 * mosquitto_veil.so: a storm of bad logins (bad passwords, bad tokens, from
 * the same address and against the same ids) does not stop or noticeably
 * delay valid logins, and 1,000 simultaneous credential logins all succeed.
 */
#include <pthread.h>

#include "check_plugin_auth_fixture.h"
#include "check_run.h"

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
		snprintf(cid, sizeof(cid), "%s", i % 2 ? "victim-x" : "victim");
		/* Bad passwords for a real user and bad tokens for the victim's id. */
		struct raw_login l = { 4, cid, i % 2 ? "alice" : "victim", i % 2 ? "guess" : VEIL_PASSWORD_PREFIX "AAAA",
			               NULL, NULL, 0 };
		if (raw_login_once(s->port, &l, 2000) == V3_NOT_AUTHORIZED)
			atomic_fetch_add(&s->refused, 1);
		/* ~1,000 attempts/s per thread: a storm, without exhausting local ports. */
		usleep(1000);
	}
	return NULL;
}

START_TEST(test_storm_does_not_block_good_clients)
{
	env_start(NULL);
	/* alice logged in before the storm: her cached verification still works. */
	ck_assert_int_eq(login3("alice-box", "alice", "wonderland"), 0);
	struct storm s = { E.b.port, 0, 0, 0 };
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, storm_thread, &s), 0);
	usleep(500 * 1000);
	int good = 0;
	double worst = 0;
	for (int i = 0; i < 20; i++) {
		uint8_t tok[VEIL_TOKEN_MAX];
		char pw[VEIL_PASSWORD_MAX];
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		int rc;
		if (i % 3 == 0) {
			size_t n = good_token("victim", tok);
			rc = login5_token("victim", tok, n);
		} else if (i % 3 == 1) {
			to_password(tok, good_token("victim", tok), pw);
			rc = login3("victim", "victim", pw);
		} else {
			rc = login3("alice-box", "alice", "wonderland");
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
		ck_assert_msg(rc == 0, "good login %d refused (rc %d) during the storm", i, rc);
		ck_assert_msg(ms < 5000, "good login %d took %.0f ms during the storm", i, ms);
		if (ms > worst)
			worst = ms;
		good++;
	}
	atomic_store(&s.stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(good, 20);
	fprintf(stderr, "storm: %d bad logins refused, 20 good logins, slowest %.0f ms\n", atomic_load(&s.refused),
	        worst);
	ck_assert_int_gt(atomic_load(&s.refused), 500);
	expect_log("method=password reason=rate-limited");
	/* The attacker's right guess is refused too while the back-off lasts. */
	ck_assert_int_eq(login3("bob-box", "bob", "builder"), V3_NOT_AUTHORIZED);
	env_stop();
}
END_TEST

START_TEST(test_thousand_concurrent_logins)
{
	env_start(NULL);
	enum { N = 1000 };
	static char pws[N][VEIL_PASSWORD_MAX];
	static uint8_t toks[N][VEIL_TOKEN_MAX];
	static size_t tlen[N];
	static char ids[N][24];
	static int fds[N];
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "fleet-%04d", i);
		tlen[i] = good_token(ids[i], toks[i]);
		to_password(toks[i], tlen[i], pws[i]);
	}
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < N; i++) {
		/* Half MQTT 5 enhanced auth, half MQTT 3.1.1 password form. */
		struct raw_login l = { i % 2 ? 5 : 4, ids[i], i % 2 ? NULL : ids[i], i % 2 ? NULL : pws[i],
			               i % 2 ? VEIL_AUTH_METHOD : NULL, i % 2 ? toks[i] : NULL, tlen[i] };
		fds[i] = raw_connect_send(E.b.port, &l);
		ck_assert_msg(fds[i] >= 0, "socket %d", i);
	}
	int ok = 0;
	for (int i = 0; i < N; i++)
		ok += raw_connack(fds[i], 20000) == 0;
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	fprintf(stderr, "1000 concurrent credential logins: %d accepted in %.2f s\n", ok, s);
	ck_assert_int_eq(ok, N);
	ck_assert(s < 30.0);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	env_stop();
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("plugin_auth_load");
	TCase *t = tcase_create("load");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, test_storm_does_not_block_good_clients);
	tcase_add_test(t, test_thousand_concurrent_logins);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
