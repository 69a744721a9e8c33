/*
 * Mosquitto with mosquitto_veil.so under valgrind memcheck through an auth
 * scenario: credential logins (MQTT 5 and 3.1.1), replay, password good and
 * bad, anonymous and bad names refused, a revoked client kicked by polling,
 * another by SIGHUP, a broken file kept-old, then a clean shutdown. Passes
 * only if memcheck reports no errors and nothing definitely lost. Built
 * only without sanitizers (valgrind cannot host the ASan runtime); there a
 * missing valgrind fails it.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"
#include "broker.h"
#include "check_run.h"
#include "material.h"
#include "raw_mqtt.h"
#include "timing.h"

static struct veil_identity *authority, *device;

static size_t token_for(const char *cid, uint8_t tok[VEIL_TOKEN_MAX])
{
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cl = test_credential_make(authority, device, cid, "sensor", 3600, cred);
	return test_token_make(device, cred, cl, cid, 0, tok);
}

/* A credential client that stays connected (raw MQTT 5 socket). */
static int stay_connected(int port, const char *cid)
{
	uint8_t tok[VEIL_TOKEN_MAX];
	size_t n = token_for(cid, tok);
	struct raw_login l = { .version = 5, .client_id = cid, .auth_method = VEIL_AUTH_METHOD, .auth_data = tok,
	                       .auth_data_len = n };
	int fd = raw_connect_send(port, &l);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(raw_connack(fd, 3000), 0);
	return fd;
}

START_TEST(test_auth_scenario_memcheck_clean)
{
	/* Registered only in builds without sanitizers (tests/CMakeLists.txt):
	 * here valgrind must run, a missing one is a failure, never a skip. */
	ck_assert_msg(system("valgrind --version >/dev/null 2>&1") == 0,
	              "valgrind is not installed (tools/install-deps.sh installs it)");
	/* From here on every deadline is scaled for memcheck (x10, timing.h). */
	setenv("VEIL_VALGRIND", "1", 1);
	ck_assert_int_eq(veil_init(), VEIL_OK);
	char dir[256];
	ck_assert_int_eq(test_mkdtemp_readable(dir, sizeof(dir)), 0);
	ck_assert_int_eq(veil_identity_generate(&authority), VEIL_OK);
	ck_assert_int_eq(veil_identity_generate(&device), VEIL_OK);
	char apub[300], pw[300], rv[300], conf[2048], hl[300];
	test_authority_save(authority, dir, apub, sizeof(apub));
	test_passwd_line(hl, sizeof(hl), "alice", "wonderland");
	snprintf(pw, sizeof(pw), "%s/passwd", dir);
	ck_assert_int_eq(test_write_file(pw, hl, 0644), 0);
	snprintf(rv, sizeof(rv), "%s/revoked", dir);
	ck_assert_int_eq(test_write_file(rv, "# none\n", 0644), 0);
	snprintf(conf, sizeof(conf),
	         "allow_anonymous false\nplugin %s\nplugin_opt_authority_file %s\n"
	         "plugin_opt_password_file %s\nplugin_opt_revocation_file %s\n",
	         test_plugin_path(), apub, pw, rv);
	struct test_broker b;
	ck_assert_int_eq(test_broker_start(&b, conf), 0);
	int port = b.port;

	uint8_t tok[VEIL_TOKEN_MAX];
	char pwd[VEIL_PASSWORD_MAX];
	size_t n = token_for("vg-3", tok);
	ck_assert_int_eq(veil_token_to_password(tok, n, pwd, sizeof(pwd)), VEIL_OK);
	struct raw_login l3 = { .version = 4, .client_id = "vg-3", .username = "vg-3", .password = pwd };
	ck_assert_int_eq(raw_login_once(port, &l3, 3000), 0);
	ck_assert_int_eq(raw_login_once(port, &l3, 3000), 5); /* replay */
	struct raw_login good = { .version = 4, .client_id = "alice", .username = "alice", .password = "wonderland" };
	ck_assert_int_eq(raw_login_once(port, &good, 3000), 0);
	ck_assert_int_eq(raw_login_once(port, &good, 3000), 0); /* cached */
	struct raw_login bad = { .version = 5, .client_id = "alice", .username = "alice", .password = "nope" };
	ck_assert_int_eq(raw_login_once(port, &bad, 3000), 135);
	struct raw_login anon = { .version = 4, .client_id = "vg-anon" };
	ck_assert_int_eq(raw_login_once(port, &anon, 3000), 5);
	struct raw_login wild = { .version = 5, .client_id = "vg+x", .username = "alice", .password = "wonderland" };
	ck_assert_int_eq(raw_login_once(port, &wild, 3000), 135);
	struct raw_login junk = { .version = 5, .client_id = "vg-junk", .auth_method = VEIL_AUTH_METHOD,
	                          .auth_data = (const uint8_t *)"junk", .auth_data_len = 4 };
	ck_assert_int_eq(raw_login_once(port, &junk, 3000), 135);

	int keep = stay_connected(port, "vg-keep");
	int polled = stay_connected(port, "vg-polled");
	int hup = stay_connected(port, "vg-hup");
	ck_assert_int_eq(test_write_file(rv, "client vg-polled\n", 0644), 0);
	ck_assert_msg(raw_closed_by_peer(polled, 2000), "revoked client not kicked under memcheck");
	ck_assert_int_eq(test_write_file(rv, "client vg-polled\nclient vg-hup\n", 0644), 0);
	ck_assert_int_eq(test_broker_reload(&b), 0);
	ck_assert_msg(raw_closed_by_peer(hup, 2000), "revoked client survived SIGHUP under memcheck");
	ck_assert_int_eq(test_write_file(rv, "client vg-polled\nnonsense\n", 0644), 0);
	ck_assert(test_broker_log_wait(&b, "veil: auth | reload-failed | file=revocation", 2000));
	/* Still served after the kicks and the failed reload: a round trip. */
	ck_assert_msg(raw_ping(keep, 2000), "an authorised client was dropped under memcheck");
	close(keep);
	close(polled);
	close(hup);

	int status = test_broker_stop(&b);
	char summary[256];
	bool clean = test_broker_valgrind_clean(&b, summary, sizeof(summary));
	fprintf(stderr, "check_plugin_auth_valgrind: %s (exit status %d)\n", summary, status);
	ck_assert_msg(clean, "memcheck not clean: %s (logs in %s)", summary, b.dir);
	test_broker_cleanup(&b);
	veil_identity_free(&authority);
	veil_identity_free(&device);
	ck_assert_int_eq(test_rmtree(dir), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("plugin_auth_valgrind");
	/* Sized for the broker under memcheck (this test sets VEIL_VALGRIND
	 * itself, after the case is made). */
	TCase *t = veil_tcase("memcheck", 50);
	tcase_add_test(t, test_auth_scenario_memcheck_clean);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
