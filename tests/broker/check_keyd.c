/*
 * veil-keyd against a real Mosquitto with the Veil plugin: keyd runs as a
 * child process (its own identity, credential with role veil-keyd, token
 * login), devices are simulated with core/bundle.c (tests/support/
 * keyd_device.c) over real Paho connections that log in with tokens.
 *
 * A sensor requests and receives a bundle it opens with its receive key,
 * holding exactly the grants the ACL gives it (its own %c scope, may send);
 * a dashboard gets the sensor's key for reading; a device cannot publish
 * on another device's request topic; keyd survives garbage on its request
 * topic; SIGHUP reloads; SIGTERM stops it cleanly; a restarted keyd serves
 * the same keys from its store; after a broker restart keyd logs in again
 * with a fresh token; the crash hook of issue 13's drill kills it after N
 * acknowledged bundles and a restart serves on.
 *
 * The rules file holds only the fleet's rules: the plugin protects Veil's
 * own topics itself (plugin/veil_topics.c): a device cannot read another's
 * bundle topic nor publish bundles.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <MQTTClient.h>
#include <sodium.h>

#include "veil/veil.h"
#include "../../core/bundle.h"

#include "broker.h"
#include "check_run.h"
#include "files.h"
#include "keyd_device.h"
#include "material.h"
#include "proc.h"
#include "timing.h"

static struct test_broker B;
static char dir[256], conf[320], keyd_log[320], revpath[320];
static struct veil_identity *auth;
static uint8_t auth_pk[VEIL_PK_BYTES];
static pid_t keyd = -1;

/* The fleet's rules only: the plugin protects Veil's own topics itself. */
static const char *ACL = "pattern readwrite,encrypted factory/%c/#\n"
                         "role dashboard\n"
                         "topic read factory/#\n";

static const char *keyd_bin_named(const char *name)
{
	const char *p = getenv(name);
	ck_assert_msg(p != NULL, "%s not set (run through ctest)", name);
	return p;
}

static const char *keyd_bin(void)
{
	return keyd_bin_named("VEIL_KEYD");
}

/* With an environment (the crash hook's), the test-only build that has
 * the hook (veil-keyd-test-hooks); the installed veil-keyd has none. */
static void start_keyd_env(const char *const *env)
{
	const char *argv[] = { env ? keyd_bin_named("VEIL_KEYD_HOOKS") : keyd_bin(), "-c", conf, "-d", NULL };
	struct test_spawn o = { .err = keyd_log, .env = env };
	keyd = test_spawn(argv, &o);
	if (!test_file_wait(keyd_log, "mqtt | subscribed", 10000)) {
		test_file_dump("keyd", keyd_log);
		test_file_dump("broker", B.log);
		int status = test_wait_exit(keyd, 100);
		keyd = -1;
		ck_abort_msg("keyd did not subscribe (exit status %d)", status);
	}
}

static void start_keyd(void)
{
	start_keyd_env(NULL);
}

static void stop_keyd(void)
{
	if (keyd > 0) {
		kill(keyd, SIGTERM);
		ck_assert_int_eq(test_wait_exit(keyd, 10000), 0);
		keyd = -1;
	}
}

static void setup(void)
{
	ck_assert_int_eq(test_mkdtemp_readable(dir, sizeof(dir)), 0);
	ck_assert_int_eq(veil_identity_generate(&auth), VEIL_OK);
	veil_identity_public(auth, auth_pk);
	char auth_pub[400], acl[320], path[400];
	test_authority_save(auth, dir, auth_pub, sizeof(auth_pub));
	snprintf(acl, sizeof(acl), "%s/veil.acl", dir);
	ck_assert_int_eq(test_write_file(acl, ACL, 0644), 0);
	snprintf(revpath, sizeof(revpath), "%s/revoked.txt", dir);
	ck_assert_int_eq(test_write_file(revpath, "# none\n", 0644), 0);
	char bconf[2048];
	snprintf(bconf, sizeof(bconf),
	         "allow_anonymous false\n"
	         "plugin %s\n"
	         "plugin_opt_authority_file %s\n"
	         "plugin_opt_acl_file %s\n"
	         "plugin_opt_revocation_file %s\n",
	         test_plugin_path(), auth_pub, acl, revpath);
	ck_assert_int_eq(test_broker_start(&B, bconf), 0);
	/* keyd's identity and credential. */
	struct veil_identity *k = NULL;
	ck_assert_int_eq(veil_identity_generate(&k), VEIL_OK);
	snprintf(path, sizeof(path), "%s/keyd.key", dir);
	ck_assert_int_eq(veil_identity_save(k, path), VEIL_OK);
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t n = test_credential_make(auth, k, "veil-keyd", "veil-keyd", 86400, cred);
	snprintf(path, sizeof(path), "%s/keyd.cred", dir);
	ck_assert_int_eq(veil_credential_save(cred, n, path), VEIL_OK);
	veil_identity_free(&k);
	snprintf(conf, sizeof(conf), "%s/keyd.conf", dir);
	snprintf(keyd_log, sizeof(keyd_log), "%s/keyd.log", dir);
	char text[2048];
	snprintf(text, sizeof(text),
	         "broker tcp://127.0.0.1:%d\nclient_id veil-keyd\nidentity keyd.key\ncredential keyd.cred\n"
	         "authorities authority.pub\nacl_file veil.acl\nrevocation_file revoked.txt\n"
	         "database keyd.db\nstorage_key storage.key\n"
	         "scope factory/%%c/# period 3600 lead 300 grace 600 depth 1\n",
	         B.port);
	ck_assert_int_eq(test_write_file(conf, text, 0644), 0);
	char out[400];
	snprintf(out, sizeof(out), "%s/init.log", dir);
	const char *argv[] = { keyd_bin(), "-c", conf, "--init", NULL };
	struct test_spawn o = { .out = out };
	ck_assert_int_eq(test_wait_exit(test_spawn(argv, &o), 10000), 0);
	snprintf(path, sizeof(path), "%s/storage.key", dir);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 077, 0);
}

static void teardown(void)
{
	if (keyd > 0) {
		test_stop(keyd);
		keyd = -1;
	}
	test_broker_stop(&B);
	test_broker_cleanup(&B);
	veil_identity_free(&auth);
	test_rmtree(dir);
}

/* A device on a real connection: token login (password form). */
struct dev {
	struct test_kd_device d;
	MQTTClient c;
	uint64_t last_ts; /* device messages carry strictly growing timestamps */
};

static void dev_connect(struct dev *v, const char *cid, const char *roles)
{
	test_kd_device_new(&v->d, auth, cid, roles, 86400);
	v->last_ts = 0;
	char uri[64], pw[VEIL_PASSWORD_MAX];
	uint8_t tok[VEIL_TOKEN_MAX];
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", B.port);
	ck_assert_int_eq(MQTTClient_create(&v->c, uri, cid, MQTTCLIENT_PERSISTENCE_NONE, NULL), MQTTCLIENT_SUCCESS);
	size_t n = test_token_make(v->d.id, v->d.cred, v->d.cred_len, cid, 0, tok);
	test_token_password(tok, n, pw);
	MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
	o.username = cid;
	o.password = pw;
	o.cleansession = 1;
	ck_assert_int_eq(MQTTClient_connect(v->c, &o), MQTTCLIENT_SUCCESS);
	char bundle[200];
	snprintf(bundle, sizeof(bundle), "%s%s", VEIL__TOPIC_BUNDLE_PREFIX, cid);
	ck_assert_int_eq(MQTTClient_subscribe(v->c, bundle, 1), MQTTCLIENT_SUCCESS);
}

static void dev_close(struct dev *v)
{
	MQTTClient_disconnect(v->c, 1000);
	MQTTClient_destroy(&v->c);
	test_kd_device_free(&v->d);
}

static int dev_send(struct dev *v, const char *topic, uint8_t kind, uint64_t version)
{
	uint8_t m[VEIL__DEVMSG_MAX];
	uint64_t ts = (uint64_t)time(NULL);
	if (ts <= v->last_ts)
		ts = v->last_ts + 1;
	v->last_ts = ts;
	size_t n = test_kd_devmsg(&v->d, kind, ts, version, m);
	MQTTClient_deliveryToken tk;
	int rc = MQTTClient_publish(v->c, topic, (int)n, m, 1, 0, &tk);
	if (rc == MQTTCLIENT_SUCCESS)
		rc = MQTTClient_waitForCompletion(v->c, tk, (unsigned long)veil_test_ms(5000));
	return rc;
}

static void dev_request(struct dev *v)
{
	char topic[200];
	snprintf(topic, sizeof(topic), "%s%s", VEIL__TOPIC_REQ_PREFIX, v->d.c.client_id);
	ck_assert_int_eq(dev_send(v, topic, VEIL__KIND_REQUEST, v->d.held_version), MQTTCLIENT_SUCCESS);
}

/* Wait for a bundle that opens (older retained ones are skipped as they
 * are refused); its grants in *g. */
static bool dev_bundle(struct dev *v, struct veil__grants **g, int base_ms)
{
	struct veil_deadline dl = veil_deadline_in(base_ms);
	while (!veil_deadline_passed(&dl)) {
		char *topic = NULL;
		int tl = 0;
		MQTTClient_message *m = NULL;
		int left = veil_deadline_left_ms(&dl);
		if (MQTTClient_receive(v->c, &topic, &tl, &m, (unsigned long)(left > 0 ? left : 1)) != MQTTCLIENT_SUCCESS)
			return false;
		if (!m)
			continue;
		int rc = test_kd_open(&v->d, auth_pk, (uint64_t)time(NULL), m->payload, (size_t)m->payloadlen, g);
		MQTTClient_freeMessage(&m);
		MQTTClient_free(topic);
		if (rc == VEIL_OK)
			return true;
	}
	return false;
}

/* In `veil keys devices` output: the block of the device whose line starts
 * with who has an epoch line holding both what and state. */
static bool device_epoch_line(const char *path, const char *who, const char *what, const char *state)
{
	size_t n = 0;
	char *text = test_file_read(path, &n);
	ck_assert_ptr_nonnull(text);
	bool found = false, in = false;
	for (char *line = strtok(text, "\n"); line && !found; line = strtok(NULL, "\n")) {
		if (line[0] != ' ')
			in = !strncmp(line, who, strlen(who));
		else if (in && strstr(line, what) && strstr(line, state))
			found = true;
	}
	free(text);
	return found;
}

START_TEST(devices_get_their_grants)
{
	start_keyd();
	struct dev s1, dash;
	dev_connect(&s1, "sensor-1", "sensor");
	dev_request(&s1);
	struct veil__grants *g = NULL;
	ck_assert_msg(dev_bundle(&s1, &g, 10000), "no bundle for sensor-1");
	ck_assert_uint_eq(g->n, 2);
	for (size_t i = 0; i < g->n; i++) {
		ck_assert_str_eq(g->g[i].scope, "factory/sensor-1/#");
		ck_assert_uint_eq(g->g[i].flags, VEIL__GRANT_MAY_SEND);
		ck_assert_uint_ge(g->g[i].key_id, VEIL__GRANT_KEY_ID_MIN);
	}
	uint32_t key_id = g->g[0].key_id;
	uint8_t key[VEIL_KEY_BYTES];
	memcpy(key, g->g[0].key, sizeof(key));
	veil__grants_free(&g);
	/* The dashboard reads factory/#: it gets sensor-1's key, without may-send. */
	dev_connect(&dash, "dash-1", "dashboard");
	dev_request(&dash);
	ck_assert_msg(dev_bundle(&dash, &g, 10000), "no bundle for dash-1");
	const struct veil__grant *dg = test_kd_grant(g, "factory/sensor-1/#");
	ck_assert_ptr_nonnull(dg);
	ck_assert_uint_eq(dg->flags, 0);
	veil__grants_free(&g);
	/* The acknowledgement is recorded. */
	char topic[200];
	snprintf(topic, sizeof(topic), "%s%s", VEIL__TOPIC_REQ_PREFIX, "sensor-1");
	ck_assert_int_eq(dev_send(&s1, topic, VEIL__KIND_ACK, s1.d.held_version), MQTTCLIENT_SUCCESS);
	ck_assert(test_file_wait(keyd_log, "ack | record | client=sensor-1", 5000));
	/* A device cannot speak for another: the plugin drops sensor-1's publish
	 * on dash-1's request topic (its PUBACK comes back first, so the broker
	 * handled it before dash-1's own garbage below), keyd never sees it. */
	MQTTClient_deliveryToken tk;
	uint8_t junk[8] = { 1 };
	ck_assert_int_eq(MQTTClient_publish(s1.c, VEIL__TOPIC_REQ_PREFIX "dash-1", sizeof(junk), junk, 1, 0, &tk),
	                 MQTTCLIENT_SUCCESS);
	ck_assert_int_eq(MQTTClient_waitForCompletion(s1.c, tk, (unsigned long)veil_test_ms(5000)), MQTTCLIENT_SUCCESS);
	/* Nor read another's bundles, nor publish one (only veil-keyd may). */
	char other[200];
	snprintf(other, sizeof(other), "%s%s", VEIL__TOPIC_BUNDLE_PREFIX, "sensor-1");
	ck_assert_int_ne(MQTTClient_subscribe(dash.c, other, 1), MQTTCLIENT_SUCCESS);
	ck_assert(test_broker_log_wait(&B, "client=dash-1 access=subscribe topic=$veil/v1/bundle/sensor-1 "
	                                   "reason=veil-topic-not-own-bundle", 5000));
	ck_assert_int_eq(MQTTClient_publish(s1.c, other, sizeof(junk), junk, 1, 1, &tk), MQTTCLIENT_SUCCESS);
	ck_assert_int_eq(MQTTClient_waitForCompletion(s1.c, tk, (unsigned long)veil_test_ms(5000)), MQTTCLIENT_SUCCESS);
	ck_assert(test_broker_log_wait(&B, "client=sensor-1 access=write topic=$veil/v1/bundle/sensor-1 "
	                                   "reason=veil-topic-keyd-only", 5000));
	/* Garbage on its own request topic: refused and audited, keyd lives on. */
	snprintf(topic, sizeof(topic), "%s%s", VEIL__TOPIC_REQ_PREFIX, "dash-1");
	ck_assert_int_eq(MQTTClient_publish(dash.c, topic, sizeof(junk), junk, 1, 0, &tk), MQTTCLIENT_SUCCESS);
	ck_assert(test_file_wait(keyd_log, "request | refuse | client=dash-1 cred=- reason=truncated", 5000));
	ck_assert_int_eq(test_file_count(keyd_log, "request | refuse | client=dash-1"), 1);
	/* `veil keys` reads the store while keyd runs, and queues a rotation
	 * that reaches the sensor as a superseding epoch. */
	char db[320], out[320];
	snprintf(db, sizeof(db), "%s/keyd.db", dir);
	snprintf(out, sizeof(out), "%s/cli.out", dir);
	const char *cli = getenv("VEIL_CLI");
	ck_assert_ptr_nonnull(cli);
	const char *devices[] = { cli, "keys", "--db", db, "devices", NULL };
	struct test_spawn so = { .out = out };
	ck_assert_int_eq(test_wait_exit(test_spawn(devices, &so), 10000), 0);
	ck_assert(test_file_has(out, "sensor-1"));
	ck_assert(test_file_has(out, "dash-1"));
	/* Which device acknowledged which epoch: sensor-1 acknowledged the
	 * bundle that carried key_id, dash-1 (which holds it too) did not. */
	char want[64];
	snprintf(want, sizeof(want), "0x%08x in version", (unsigned)key_id);
	ck_assert_msg(device_epoch_line(out, "sensor-1 ", want, ": acknowledged"), "veil keys devices: sensor-1");
	ck_assert_msg(device_epoch_line(out, "dash-1 ", want, ": not acknowledged"), "veil keys devices: dash-1");
	const char *status[] = { cli, "keys", "--db", db, "status", NULL };
	ck_assert_int_eq(test_wait_exit(test_spawn(status, &so), 10000), 0);
	ck_assert(test_file_has(out, "factory/sensor-1/#"));
	const char *rot[] = { cli, "keys", "--db", db, "rotate", "factory/%c/#", NULL };
	ck_assert_int_eq(test_wait_exit(test_spawn(rot, &so), 10000), 0);
	ck_assert(test_file_wait(keyd_log, "epoch | rotate | instance=factory/sensor-1/# ", 5000));
	ck_assert_msg(dev_bundle(&s1, &g, 10000), "no bundle after the rotation");
	bool sup = false;
	uint8_t old_key[VEIL_KEY_BYTES];
	memcpy(old_key, key, sizeof(key));
	for (size_t i = 0; i < g->n; i++) {
		if (g->g[i].flags & VEIL__GRANT_SUPERSEDES && g->g[i].key_id > key_id) {
			sup = true;
			key_id = g->g[i].key_id;
			memcpy(key, g->g[i].key, sizeof(key));
		}
	}
	ck_assert(sup);
	veil__grants_free(&g);
	/* An unknown scope is refused where the operator looks, naming the known ones. */
	const char *nope[] = { cli, "keys", "--db", db, "rotate", "factory/#", NULL };
	ck_assert_int_eq(test_wait_exit(test_spawn(nope, &so), 10000), 1);
	ck_assert(test_file_has(out, "no scope or scope instance named 'factory/#'"));
	ck_assert(test_file_has(out, "  factory/%c/#"));
	const char *bad[] = { cli, "keys", "--db", db, "frobnicate", NULL };
	ck_assert_int_eq(test_wait_exit(test_spawn(bad, &so), 10000), 2);
	/* SIGHUP reloads. */
	kill(keyd, SIGHUP);
	ck_assert(test_file_wait(keyd_log, "config | reload | ", 5000));
	/* Restarted, keyd serves the same keys from its store. */
	stop_keyd();
	ck_assert(test_file_has(keyd_log, "daemon | stop | signal=15"));
	start_keyd();
	dev_request(&s1);
	ck_assert_msg(dev_bundle(&s1, &g, 10000), "no bundle after the restart");
	bool same = false;
	for (size_t i = 0; i < g->n; i++)
		same = same || (g->g[i].key_id == key_id && !sodium_memcmp(g->g[i].key, key, sizeof(key)));
	ck_assert(same);
	veil__grants_free(&g);
	/* No topic key anywhere in keyd's files or log. */
	char wal[330];
	snprintf(wal, sizeof(wal), "%s-wal", db);
	const uint8_t *keys[] = { key, old_key };
	for (size_t i = 0; i < 2; i++) {
		ck_assert(!test_file_has_n(db, keys[i], VEIL_KEY_BYTES));
		ck_assert(!test_file_has_n(wal, keys[i], VEIL_KEY_BYTES));
		ck_assert(!test_file_has_n(keyd_log, keys[i], VEIL_KEY_BYTES));
	}
	dev_close(&s1);
	dev_close(&dash);
	stop_keyd();
}
END_TEST

START_TEST(reconnect_and_crash)
{
	/* The broker restarts: keyd logs in again with a fresh token (the
	 * plugin refuses a replayed one) and serves requests sent after it. */
	start_keyd();
	ck_assert_int_eq(test_broker_stop(&B), 0);
	ck_assert(test_file_wait(keyd_log, "mqtt | lost", 5000));
	ck_assert_int_eq(test_broker_restart(&B), 0);
	ck_assert(test_file_wait_count(keyd_log, "mqtt | subscribed", 2, 20000));
	struct dev s1;
	dev_connect(&s1, "sensor-1", "sensor");
	dev_request(&s1);
	struct veil__grants *g = NULL;
	ck_assert_msg(dev_bundle(&s1, &g, 10000), "no bundle after the broker restart");
	veil__grants_free(&g);
	stop_keyd();
	/* Issue 13's crash hook (test builds): keyd dies by SIGKILL right
	 * after the broker acknowledged its first bundle... */
	const char *env[] = { "VEIL_KEYD_CRASH_AFTER=1", NULL };
	start_keyd_env(env);
	dev_request(&s1);
	ck_assert_int_eq(test_wait_exit(keyd, 10000), 128 + SIGKILL);
	keyd = -1;
	ck_assert(test_file_has(keyd_log, "test | crash | after=1"));
	ck_assert_msg(dev_bundle(&s1, &g, 10000), "the bundle acknowledged before the crash");
	veil__grants_free(&g);
	/* ...and, restarted, serves on with a newer version. */
	uint64_t v = s1.d.held_version;
	start_keyd();
	dev_request(&s1);
	ck_assert_msg(dev_bundle(&s1, &g, 10000), "no bundle after the crash");
	ck_assert_uint_gt(s1.d.held_version, v);
	veil__grants_free(&g);
	dev_close(&s1);
	stop_keyd();
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("keyd");
	TCase *tc = veil_tcase("keyd", 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, devices_get_their_grants);
	tcase_add_test(tc, reconnect_and_crash);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
