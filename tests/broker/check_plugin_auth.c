/*
 * Plugin authentication against a real Mosquitto 2.0.11 with
 * mosquitto_veil.so and real clients (Paho MQTTClient for MQTT 3.1.1 and 5,
 * raw CONNECT sockets for load): every accept and refuse case with its
 * CONNACK code and audit reason, replay, names, anonymous, password file,
 * revocation by polling and by SIGHUP, expiry kicks. Load (bad-login storm,
 * 1,000 concurrent logins): check_plugin_auth_load.c.
 */
#include "check_plugin_auth_fixture.h"
#include "check_run.h"

/* ---- credential logins ---- */

START_TEST(test_credential_v311_accept_and_replay)
{
	env_start(NULL);
	uint8_t tok[VEIL_TOKEN_MAX];
	char pw[VEIL_PASSWORD_MAX];
	to_password(tok, good_token("dev-1", tok), pw);
	ck_assert_int_eq(login3("dev-1", "dev-1", pw), 0);
	expect_log("veil: auth | accept | client=dev-1 addr=127.0.0.1 method=credential roles=sensor");
	ck_assert_int_eq(login3("dev-1", "dev-1", pw), V3_NOT_AUTHORIZED);
	expect_log("client=dev-1 addr=127.0.0.1 method=credential reason=replayed-token");
	/* Username must be the client id. */
	to_password(tok, good_token("dev-1", tok), pw);
	ck_assert_int_eq(login3("dev-1", "someone", pw), V3_NOT_AUTHORIZED);
	expect_log("reason=username-mismatch");
	/* Prefix but not base64: refused, not tried against the password file. */
	ck_assert_int_eq(login3("dev-1", "dev-1", VEIL_PASSWORD_PREFIX "!!!notbase64"), V3_NOT_AUTHORIZED);
	expect_log("reason=malformed-token");
	ck_assert(!log_has(pw + strlen(VEIL_PASSWORD_PREFIX)));
	env_stop();
}
END_TEST

START_TEST(test_credential_v5_accept_and_replay)
{
	env_start(NULL);
	uint8_t tok[VEIL_TOKEN_MAX];
	size_t n = good_token("dev-5", tok);
	ck_assert_int_eq(login5_token("dev-5", tok, n), 0);
	expect_log("veil: auth | accept | client=dev-5 addr=127.0.0.1 method=credential roles=sensor");
	ck_assert_int_eq(login5_token("dev-5", tok, n), V5_NOT_AUTHORIZED);
	expect_log("client=dev-5 addr=127.0.0.1 method=credential reason=replayed-token");
	/* The MQTT 3.1.1 password form also works over MQTT 5 (BASIC_AUTH). */
	char pw[VEIL_PASSWORD_MAX];
	to_password(tok, good_token("dev-5", tok), pw);
	ck_assert_int_eq(login5("dev-5", "dev-5", pw), 0);
	/* Another plugin's method is not ours: nobody handles it. */
	n = good_token("dev-5", tok);
	ck_assert_int_eq(login5_token("dev-5", NULL, 0), V5_NOT_AUTHORIZED);
	struct pc p;
	ck_assert_int_eq(pc_connect5(&p, "dev-5", NULL, NULL, "SCRAM-SHA-1", tok, n), V5_BAD_AUTH_METHOD);
	pc_close(&p);
	env_stop();
}
END_TEST

/* Each broken token is refused with its own audit reason, over 3.1.1 and 5. */
START_TEST(test_credential_refusals)
{
	env_start(NULL);
	uint8_t cred[VEIL_CREDENTIAL_MAX], tok[VEIL_TOKEN_MAX];
	char pw[VEIL_PASSWORD_MAX];
	size_t cl, n;
	struct {
		const char *reason;
		int version;
	} cases[] = { { "expired-credential", 4 }, { "expired-credential", 5 },   { "unknown-authority", 4 },
		      { "unknown-authority", 5 },  { "client-id-mismatch", 4 },   { "client-id-mismatch", 5 },
		      { "bad-signature", 4 },      { "bad-signature", 5 },        { "stale-token", 4 },
		      { "stale-token", 5 },        { "malformed-token", 5 } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *why = cases[i].reason;
		char cid[32];
		snprintf(cid, sizeof(cid), "bad-%zu", i);
		if (!strcmp(why, "expired-credential")) {
			cl = make_cred(E.authority, E.device, cid, -10, NULL, cred);
			n = make_token(cred, cl, cid, 0, tok);
		} else if (!strcmp(why, "unknown-authority")) {
			cl = make_cred(E.stranger, E.device, cid, 3600, NULL, cred);
			n = make_token(cred, cl, cid, 0, tok);
		} else if (!strcmp(why, "client-id-mismatch")) {
			/* A stolen credential of another device presented under this id. */
			cl = make_cred(E.authority, E.device, "victim", 3600, NULL, cred);
			n = make_token(cred, cl, "victim", 0, tok);
		} else if (!strcmp(why, "bad-signature")) {
			n = good_token(cid, tok);
			tok[n - 1] ^= 0x01;
		} else if (!strcmp(why, "stale-token")) {
			cl = make_cred(E.authority, E.device, cid, 3600, NULL, cred);
			n = make_token(cred, cl, cid, -120, tok);
		} else {
			n = good_token(cid, tok);
			n = 10;
		}
		int rc;
		if (cases[i].version == 4) {
			to_password(tok, n, pw);
			rc = login3(cid, cid, pw);
			ck_assert_msg(rc == V3_NOT_AUTHORIZED, "%s v3: rc %d", why, rc);
		} else {
			rc = login5_token(cid, tok, n);
			ck_assert_msg(rc == V5_NOT_AUTHORIZED, "%s v5: rc %d", why, rc);
		}
		char needle[128];
		snprintf(needle, sizeof(needle), "client=%s addr=127.0.0.1 method=credential reason=%s", cid, why);
		expect_log(needle);
	}
	env_stop();
}
END_TEST

/* ---- names, anonymous, passwords ---- */

/* Raw CONNECTs: a client library may refuse to send these names at all. */
static int raw_login(int version, const char *cid, const char *user, const char *pw)
{
	struct raw_login l = { version, cid, user, pw, NULL, NULL, 0 };
	return raw_login_once(E.b.port, &l, 5000);
}

START_TEST(test_names_refused)
{
	env_start(NULL);
	const char *bad_ids[] = { "dev+1", "dev#", "dev\x01x", "dev\x7f", "\xc3\x28", "\xc2\x85" };
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		/* Mosquitto itself closes on invalid UTF-8 and C0 controls (no
		 * CONNACK, -1); whatever reaches the plugin gets "not authorized". */
		int r4 = raw_login(4, bad_ids[i], "alice", "wonderland");
		int r5 = raw_login(5, bad_ids[i], "alice", "wonderland");
		ck_assert_msg(r4 == V3_NOT_AUTHORIZED || r4 == -1, "id %zu v3: %d", i, r4);
		ck_assert_msg(r5 == V5_NOT_AUTHORIZED || r5 == -1, "id %zu v5: %d", i, r5);
		if (i < 2) {
			ck_assert_int_eq(r4, V3_NOT_AUTHORIZED);
			ck_assert_int_eq(r5, V5_NOT_AUTHORIZED);
		}
	}
	expect_log("client=dev+1 addr=127.0.0.1 method=basic reason=invalid-client-id");
	char longid[VEIL_CLIENT_ID_MAX + 2];
	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	ck_assert_int_eq(login3(longid, "alice", "wonderland"), V3_NOT_AUTHORIZED);
	expect_log("reason=invalid-client-id");
	ck_assert_int_eq(raw_login(4, "ok-id", "ali#ce", "wonderland"), V3_NOT_AUTHORIZED);
	ck_assert_int_eq(raw_login(5, "ok-id", "ali+ce", "wonderland"), V5_NOT_AUTHORIZED);
	int r = raw_login(4, "ok-id", "ali\x1b[31mce", "wonderland");
	ck_assert(r == V3_NOT_AUTHORIZED || r == -1);
	expect_log("reason=invalid-username");
	/* The longest valid id is fine. */
	longid[VEIL_CLIENT_ID_MAX] = '\0';
	ck_assert_int_eq(login3(longid, "alice", "wonderland"), 0);
	env_stop();
}
END_TEST

START_TEST(test_anonymous)
{
	env_start(NULL);
	ck_assert_int_eq(login3("anon-1", NULL, NULL), V3_NOT_AUTHORIZED);
	ck_assert_int_eq(login5("anon-1", NULL, NULL), V5_NOT_AUTHORIZED);
	expect_log("client=anon-1 addr=127.0.0.1 method=anonymous reason=anonymous");
	env_stop();
	/* Allowed by the plugin option even though the broker says false. */
	env_start("plugin_opt_allow_anonymous true\n");
	ck_assert_int_eq(login3("anon-2", NULL, NULL), 0);
	ck_assert_int_eq(login5("anon-3", NULL, NULL), 0);
	expect_log("client=anon-3 addr=127.0.0.1 method=anonymous");
	env_stop();
}
END_TEST

START_TEST(test_password_file)
{
	env_start(NULL);
	ck_assert_int_eq(login3("legacy-1", "alice", "wonderland"), 0);
	expect_log("client=legacy-1 addr=127.0.0.1 method=password user=alice cached=no");
	ck_assert_int_eq(login5("legacy-2", "bob", "builder"), 0);
	ck_assert_int_eq(login3("legacy-1", "alice", "wonderland"), 0);
	expect_log("method=password user=alice cached=yes");
	ck_assert_int_eq(login3("legacy-3", "alice", "wrong"), V3_NOT_AUTHORIZED);
	expect_log("client=legacy-3 addr=127.0.0.1 method=password reason=bad-password");
	ck_assert_int_eq(login5("legacy-4", "mallory", "x"), V5_NOT_AUTHORIZED);
	expect_log("client=legacy-4 addr=127.0.0.1 method=password reason=unknown-user");
	ck_assert(!log_has("wonderland"));
	env_stop();
}
END_TEST

/* plugin_opt_defer_unknown: users not in our file go to Mosquitto's own password_file. */
START_TEST(test_defer_unknown)
{
	char d[256], pf[300], extra[700], cmd[700];
	ck_assert_int_eq(test_mkdtemp(d, sizeof(d)), 0);
	ck_assert_int_eq(chmod(d, 0755), 0);
	snprintf(pf, sizeof(pf), "%s/mosq_passwd", d);
	snprintf(cmd, sizeof(cmd), "mosquitto_passwd -b -c '%s' carol pa55 >/dev/null 2>&1", pf);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(chmod(pf, 0644), 0);
	snprintf(extra, sizeof(extra), "plugin_opt_defer_unknown true\npassword_file %s\n", pf);
	env_start(extra);
	ck_assert_int_eq(login3("c-1", "carol", "pa55"), 0);
	expect_log("client=c-1 addr=127.0.0.1 method=password reason=unknown-user");
	ck_assert_int_eq(login3("c-2", "carol", "nope"), V3_NOT_AUTHORIZED);
	/* Known users are still ours: a wrong password is final. */
	ck_assert_int_eq(login3("c-3", "alice", "nope"), V3_NOT_AUTHORIZED);
	env_stop();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* ---- revocation, deletion, expiry, SIGHUP ---- */

START_TEST(test_revocation_polled_kicks)
{
	env_start(NULL);
	uint8_t tok[VEIL_TOKEN_MAX], cred[VEIL_CREDENTIAL_MAX];
	char pw[VEIL_PASSWORD_MAX];
	struct pc keep, by_client, by_cred, deleted;
	size_t n = good_token("keep", tok);
	ck_assert_int_eq(pc_connect5(&keep, "keep", NULL, NULL, VEIL_AUTH_METHOD, tok, n), 0);
	to_password(tok, good_token("gone-client", tok), pw);
	ck_assert_int_eq(pc_connect3(&by_client, "gone-client", "gone-client", pw), 0);
	size_t cl = make_cred(E.authority, E.device, "gone-cred", 3600, NULL, cred);
	struct veil_credential parsed;
	ck_assert_int_eq(veil_credential_parse(cred, cl, &parsed), VEIL_OK);
	n = make_token(cred, cl, "gone-cred", 0, tok);
	ck_assert_int_eq(pc_connect5(&by_cred, "gone-cred", NULL, NULL, VEIL_AUTH_METHOD, tok, n), 0);
	ck_assert_int_eq(pc_connect3(&deleted, "bobs-box", "bob", "builder"), 0);

	char hex[2 * VEIL_CREDENTIAL_ID_BYTES + 1], text[256], l1[256];
	sodium_bin2hex(hex, sizeof(hex), parsed.id, sizeof(parsed.id));
	snprintf(text, sizeof(text), "client gone-client\ncredential %s\n", hex);
	hash_line(l1, sizeof(l1), "alice", "wonderland");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	write_or_die(E.revoked, text);
	/* bob deleted from the password file (alice's line kept). */
	write_or_die(E.passwd, l1);

	/* Polled every second (plugin_opt_poll_interval 1), kicked at the next
	 * tick: about a second; the bound leaves room for a loaded CI machine. */
	ck_assert_msg(pc_wait_lost(&by_client, 3000), "revoked client id still connected");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "revocation to kick: %.0f ms\n",
	        (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	ck_assert_msg(pc_wait_lost(&by_cred, 3000), "revoked credential still connected");
	ck_assert_msg(pc_wait_lost(&deleted, 3000), "deleted user still connected");
	expect_log("veil: auth | kick | client=gone-client reason=revoked-client");
	expect_log("veil: auth | kick | client=gone-cred reason=revoked-credential");
	expect_log("veil: auth | kick | client=bobs-box reason=user-deleted");
	ck_assert(MQTTClient_isConnected(keep.c));
	ck_assert(!atomic_load(&keep.lost));
	/* And they cannot come back. */
	to_password(tok, good_token("gone-client", tok), pw);
	ck_assert_int_eq(login3("gone-client", "gone-client", pw), V3_NOT_AUTHORIZED);
	n = make_token(cred, cl, "gone-cred", 0, tok);
	ck_assert_int_eq(login5_token("gone-cred", tok, n), V5_NOT_AUTHORIZED);
	ck_assert_int_eq(login3("bobs-box", "bob", "builder"), V3_NOT_AUTHORIZED);
	expect_log("client=bobs-box addr=127.0.0.1 method=password reason=unknown-user");
	/* A broken revocation file keeps the old list, logged with file:line. */
	write_or_die(E.revoked, "client gone-client\nrevoke everything\n");
	expect_log("veil: auth | reload-failed | file=revocation");
	ck_assert(log_wait("revoked:2:", 5000));
	ck_assert_int_eq(login3("gone-client", "gone-client", pw), V3_NOT_AUTHORIZED);
	ck_assert(MQTTClient_isConnected(keep.c));
	pc_close(&keep);
	pc_close(&by_client);
	pc_close(&by_cred);
	pc_close(&deleted);
	env_stop();
}
END_TEST

START_TEST(test_sighup_keeps_authorised)
{
	/* No polling: only the SIGHUP reload notices the new list. */
	env_start("plugin_opt_poll_interval 0\n");
	uint8_t tok[VEIL_TOKEN_MAX];
	char pw[VEIL_PASSWORD_MAX];
	struct pc v5ok, v3ok, pwok, v5gone, v3gone;
	size_t n = good_token("stay-5", tok);
	ck_assert_int_eq(pc_connect5(&v5ok, "stay-5", NULL, NULL, VEIL_AUTH_METHOD, tok, n), 0);
	to_password(tok, good_token("stay-3", tok), pw);
	ck_assert_int_eq(pc_connect3(&v3ok, "stay-3", "stay-3", pw), 0);
	ck_assert_int_eq(pc_connect3(&pwok, "stay-pw", "alice", "wonderland"), 0);
	n = good_token("go-5", tok);
	ck_assert_int_eq(pc_connect5(&v5gone, "go-5", NULL, NULL, VEIL_AUTH_METHOD, tok, n), 0);
	to_password(tok, good_token("go-3", tok), pw);
	ck_assert_int_eq(pc_connect3(&v3gone, "go-3", "go-3", pw), 0);

	write_or_die(E.revoked, "client go-5\nclient go-3\n");
	sleep(2);
	ck_assert(MQTTClient_isConnected(v5gone.c)); /* not polled */
	ck_assert_int_eq(test_broker_reload(&E.b), 0);
	ck_assert_msg(pc_wait_lost(&v5gone, 3000), "revoked v5 client survived SIGHUP");
	ck_assert_msg(pc_wait_lost(&v3gone, 1000), "revoked v3 client survived SIGHUP");
	expect_log("veil: auth | reload | result=ok");
	usleep(500 * 1000);
	ck_assert_msg(!atomic_load(&v5ok.lost) && MQTTClient_isConnected(v5ok.c), "enhanced-auth client dropped");
	ck_assert_msg(!atomic_load(&v3ok.lost) && MQTTClient_isConnected(v3ok.c), "credential v3 client dropped");
	ck_assert_msg(!atomic_load(&pwok.lost) && MQTTClient_isConnected(pwok.c), "password client dropped");
	/* A second reload changes nothing for them. */
	ck_assert_int_eq(test_broker_reload(&E.b), 0);
	sleep(1);
	ck_assert(MQTTClient_isConnected(v5ok.c) && MQTTClient_isConnected(v3ok.c) && MQTTClient_isConnected(pwok.c));
	pc_close(&v5ok);
	pc_close(&v3ok);
	pc_close(&pwok);
	pc_close(&v5gone);
	pc_close(&v3gone);
	env_stop();
}
END_TEST


/* Mosquitto re-checks offline persistent sessions on SIGHUP too. The plugin
 * answers from what it remembered (the stored token would be a replay now):
 * the revoked one is refused as "kick ... when=reload"; the authorised one
 * keeps its session; the revoked one cannot come back. */
static int connect3_persistent(const char *cid, const char *pw, int *session_present)
{
	struct pc p;
	pc_create(&p, cid, MQTTVERSION_3_1_1);
	MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
	o.MQTTVersion = MQTTVERSION_3_1_1;
	o.cleansession = 0;
	o.username = cid;
	o.password = pw;
	o.connectTimeout = 5;
	int rc = MQTTClient_connect(p.c, &o);
	*session_present = o.returned.sessionPresent;
	pc_close(&p);
	return rc;
}

START_TEST(test_sighup_offline_sessions)
{
	env_start("plugin_opt_poll_interval 0\n");
	uint8_t tok[VEIL_TOKEN_MAX];
	char pw[VEIL_PASSWORD_MAX];
	int present = -1;
	to_password(tok, good_token("sleepy", tok), pw);
	ck_assert_int_eq(connect3_persistent("sleepy", pw, &present), 0);
	ck_assert_int_eq(present, 0);
	to_password(tok, good_token("sleepy-gone", tok), pw);
	ck_assert_int_eq(connect3_persistent("sleepy-gone", pw, &present), 0);
	/* Both offline now, sessions kept by the broker. */
	write_or_die(E.revoked, "client sleepy-gone\n");
	ck_assert_int_eq(test_broker_reload(&E.b), 0);
	expect_log("veil: auth | reload | result=ok");
	expect_log("veil: auth | kick | client=sleepy-gone addr=127.0.0.1 reason=revoked-client when=reload");
	ck_assert(!log_has("client=sleepy addr=127.0.0.1 method=credential reason=replayed-token"));
	to_password(tok, good_token("sleepy", tok), pw);
	ck_assert_int_eq(connect3_persistent("sleepy", pw, &present), 0);
	ck_assert_msg(present == 1, "authorised offline session lost on SIGHUP");
	to_password(tok, good_token("sleepy-gone", tok), pw);
	ck_assert_int_eq(connect3_persistent("sleepy-gone", pw, &present), V3_NOT_AUTHORIZED);
	env_stop();
}
END_TEST

START_TEST(test_expiry_kicks)
{
	env_start(NULL);
	uint8_t cred[VEIL_CREDENTIAL_MAX], tok[VEIL_TOKEN_MAX];
	size_t cl = make_cred(E.authority, E.device, "short-lived", 2, NULL, cred);
	size_t n = make_token(cred, cl, "short-lived", 0, tok);
	struct pc p;
	ck_assert_int_eq(pc_connect5(&p, "short-lived", NULL, NULL, VEIL_AUTH_METHOD, tok, n), 0);
	ck_assert_msg(pc_wait_lost(&p, 8000), "expired credential still connected");
	expect_log("veil: auth | kick | client=short-lived reason=expired-credential");
	pc_close(&p);
	env_stop();
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("plugin_auth");
	TCase *t = tcase_create("auth");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, test_credential_v311_accept_and_replay);
	tcase_add_test(t, test_credential_v5_accept_and_replay);
	tcase_add_test(t, test_credential_refusals);
	tcase_add_test(t, test_names_refused);
	tcase_add_test(t, test_anonymous);
	tcase_add_test(t, test_password_file);
	tcase_add_test(t, test_defer_unknown);
	tcase_add_test(t, test_revocation_polled_kicks);
	tcase_add_test(t, test_sighup_keeps_authorised);
	tcase_add_test(t, test_sighup_offline_sessions);
	tcase_add_test(t, test_expiry_kicks);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
