/*
 * The plugin's ACL module on a real broker with real Paho MQTT 5 clients:
 *   enforcement on protected topics (plaintext, truncated, wrong sender,
 *   unsigned, bad signature, no identity, retained, Will) with devices that
 *   log in with real credential tokens, each refusal seen as PUBACK 0x87 and
 *   an audit line, and nothing refused ever delivered;
 *   hot reload: 100 SIGHUPs swapping the rules under QoS 1 traffic (no loss
 *   on allowed topics, nothing on denied ones, no crash), new rules applying
 *   to existing subscriptions, file polling, and a broken file keeping the
 *   old rules with file:line in the log.
 */
#include <signal.h>
#include <sys/types.h>

#include "veil/envelope.h"
#include "check_plugin_acl_fixture.h"
#include "check_run.h"

static const char *const users[] = { "zgod", "bob", NULL };
static struct pa_env env;
static uint8_t key[VEIL_KEY_BYTES];

struct device {
	struct veil_identity *id;
	uint8_t sender[VEIL_SENDER_ID_BYTES];
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cred_len;
	char pw[VEIL_PASSWORD_MAX];
};

static void device_new(struct device *d, const char *client_id, const char *roles)
{
	memset(d, 0, sizeof(*d));
	ck_assert_int_eq(veil_identity_generate(&d->id), VEIL_OK);
	struct veil_credential c;
	memset(&c, 0, sizeof(c));
	veil_identity_public(d->id, c.device_pk);
	veil_sender_id(c.device_pk, d->sender);
	snprintf(c.client_id, sizeof(c.client_id), "%s", client_id);
	snprintf(c.roles, sizeof(c.roles), "%s", roles);
	c.issued_at = (uint64_t)time(NULL) - 60;
	c.expires_at = (uint64_t)time(NULL) + 3600;
	ck_assert_int_eq(veil_credential_issue(env.authority, &c, d->cred, sizeof(d->cred), &d->cred_len), VEIL_OK);
	uint8_t tok[VEIL_TOKEN_MAX];
	size_t tn = 0;
	ck_assert_int_eq(veil_token_create(d->id, d->cred, d->cred_len, client_id, (uint64_t)time(NULL), tok,
	                                   sizeof(tok), &tn),
	                 VEIL_OK);
	ck_assert_int_eq(veil_token_to_password(tok, tn, d->pw, sizeof(d->pw)), VEIL_OK);
}

/* Envelope of "hi" on topic claiming sender, signed by signer (or not). */
static size_t seal(const char *topic, const uint8_t sender[VEIL_SENDER_ID_BYTES], const struct device *signer,
                   uint8_t *out, size_t cap)
{
	struct veil_seal_params p;
	memset(&p, 0, sizeof(p));
	p.key = key;
	p.key_id = 7;
	memcpy(p.sender, sender, VEIL_SENDER_ID_BYTES);
	p.seq = (uint64_t)time(NULL);
	p.signer = signer ? signer->id : NULL;
	p.credential = signer ? signer->cred : NULL;
	p.credential_len = signer ? signer->cred_len : 0;
	size_t n = 0;
	ck_assert_int_eq(veil_envelope_seal(&p, topic, (const uint8_t *)"hi", 2, out, cap, &n), VEIL_OK);
	return n;
}

static void setup(void)
{
	pa_env_init(&env, users);
	randombytes_buf(key, sizeof(key));
}

static void teardown(void)
{
	pa_env_free(&env);
}

static const char *enforce_rules = "user bob\n"
                                   "topic readwrite enc/#\n"
                                   "user zgod\n"
                                   "topic read #\n"
                                   "role dev\n"
                                   "topic readwrite,encrypted enc/#\n"
                                   "topic readwrite,signed sig/#\n"
                                   "topic readwrite plain/#\n"
                                   "topic readwrite,encrypted will/#\n";

static void write_acl(char *path, size_t cap, const char *name, const char *text)
{
	snprintf(path, cap, "%s/%s", env.dir, name);
	ck_assert_int_eq(test_write_file(path, text, 0644), 0);
}

START_TEST(enforcement)
{
	char acl[400];
	write_acl(acl, sizeof(acl), "enforce.acl", enforce_rules);
	struct test_broker b;
	pa_start_plugin(&env, &b, acl, NULL);
	struct device alice, mallory;
	device_new(&alice, "alice", "dev");
	device_new(&mallory, "mallory", "dev");
	struct pc obs, a, bob;
	ck_assert_int_eq(pc_connect(&obs, b.port, "observer", "zgod"), 0);
	ck_assert_int_eq(pc_sub(&obs, "#", 1), 1);
	ck_assert_int_eq(pc_connect_will(&a, b.port, "alice", "alice", alice.pw, NULL, NULL, 0, 0), 0);

	uint8_t env_buf[2048];
	size_t n;
	/* Plaintext and truncated envelopes. */
	ck_assert_int_eq(pc_pub(&a, "enc/t", "plaintext", 9, 1, 0), 0x87);
	ck_assert(test_broker_log_wait(&b, "veil: acl | refuse | client=alice topic=enc/t reason=not-envelope", 2000));
	n = seal("enc/t", alice.sender, NULL, env_buf, sizeof(env_buf));
	ck_assert_int_eq(pc_pub(&a, "enc/t", env_buf, (int)(n - 20), 1, 0), 0x87);
	/* A client cannot forge another client's sender id. */
	n = seal("enc/t", mallory.sender, NULL, env_buf, sizeof(env_buf));
	ck_assert_int_eq(pc_pub(&a, "enc/t", env_buf, (int)n, 1, 0), 0x87);
	ck_assert(test_broker_log_wait(&b, "reason=wrong-sender", 2000));
	/* Its own envelope passes. */
	n = seal("enc/t", alice.sender, NULL, env_buf, sizeof(env_buf));
	ck_assert_int_eq(pc_pub(&a, "enc/t", env_buf, (int)n, 1, 0), 0);
	/* Signed topic: unsigned, signed by another key, then good. */
	n = seal("sig/t", alice.sender, NULL, env_buf, sizeof(env_buf));
	ck_assert_int_eq(pc_pub(&a, "sig/t", env_buf, (int)n, 1, 0), 0x87);
	ck_assert(test_broker_log_wait(&b, "reason=unsigned", 2000));
	n = seal("sig/t", alice.sender, &mallory, env_buf, sizeof(env_buf));
	ck_assert_int_eq(pc_pub(&a, "sig/t", env_buf, (int)n, 1, 0), 0x87);
	ck_assert(test_broker_log_wait(&b, "reason=bad-signature", 2000));
	n = seal("sig/other", alice.sender, &alice, env_buf, sizeof(env_buf)); /* sealed for another topic */
	ck_assert_int_eq(pc_pub(&a, "sig/t", env_buf, (int)n, 1, 0), 0x87);
	n = seal("sig/t", alice.sender, &alice, env_buf, sizeof(env_buf));
	ck_assert_int_eq(pc_pub(&a, "sig/t", env_buf, (int)n, 1, 0), 0);
	/* Unprotected topic. */
	ck_assert_int_eq(pc_pub(&a, "plain/t", "plain", 5, 1, 0), 0);
	/* A password user (no identity) may write enc/# by its rule, but only
	 * envelopes with an identity pass: refused whatever it sends. */
	ck_assert_int_eq(pc_connect(&bob, b.port, "bob1", "bob"), 0);
	n = seal("enc/t", alice.sender, NULL, env_buf, sizeof(env_buf));
	ck_assert_int_eq(pc_pub(&bob, "enc/t", env_buf, (int)n, 1, 0), 0x87);
	ck_assert(test_broker_log_wait(&b, "client=bob1 topic=enc/t reason=no-identity", 2000));
	pc_close(&bob);

	/* Retained: a refused retained message is not stored either. */
	ck_assert_int_eq(pc_pub(&a, "enc/r", "plain-retained", 14, 1, 1), 0x87);
	n = seal("enc/r2", alice.sender, NULL, env_buf, sizeof(env_buf));
	ck_assert_int_eq(pc_pub(&a, "enc/r2", env_buf, (int)n, 1, 1), 0);

	pc_wait(&obs, 4, 2000);
	pc_sleep_ms(200);
	ck_assert_int_eq(pc_count(&obs, "enc/t"), 1);
	ck_assert_int_eq(pc_count(&obs, "sig/t"), 1);
	ck_assert_int_eq(pc_count(&obs, "plain/t"), 1);
	ck_assert_int_eq(pc_count(&obs, "enc/r"), 0);
	ck_assert_int_eq(pc_count(&obs, "enc/r2"), 1);
	struct pc late;
	ck_assert_int_eq(pc_connect(&late, b.port, "late", "zgod"), 0);
	ck_assert_int_eq(pc_sub(&late, "enc/#", 1), 1);
	pc_wait(&late, 1, 1000);
	pc_sleep_ms(200);
	ck_assert_int_eq(pc_count(&late, "enc/r2"), 1);
	ck_assert_int_eq(pc_count(&late, NULL), 1); /* the refused retained one was never stored */
	pc_close(&late);
	pc_close(&a);
	pc_close(&obs);
	veil_identity_free(&alice.id);
	veil_identity_free(&mallory.id);
	test_broker_cleanup(&b);
}
END_TEST

START_TEST(will_messages)
{
	char acl[400];
	write_acl(acl, sizeof(acl), "will.acl", enforce_rules);
	struct test_broker b;
	pa_start_plugin(&env, &b, acl, NULL);
	struct device d1, d2, d3;
	device_new(&d1, "dev1", "dev");
	device_new(&d2, "dev2", "dev");
	device_new(&d3, "dev3", "dev");
	struct pc obs, c1, c2, c3;
	ck_assert_int_eq(pc_connect(&obs, b.port, "observer", "zgod"), 0);
	ck_assert_int_eq(pc_sub(&obs, "will/#", 1), 1);
	/* Mosquitto 2.0.11 does not check the Will at CONNECT (CONNACK 0): it
	 * runs ACL_CHECK WRITE with the Will payload when it is about to send
	 * it, after the DISCONNECT event removed the client from the registry;
	 * the plugin still judges it with the client's identity. */
	ck_assert_int_eq(pc_connect_will(&c1, b.port, "dev1", "dev1", d1.pw, "will/plain", "bye", 3, 0), 0);
	pc_sleep_ms(300); /* past a TICK, where the plugin builds the client's ACL cache */
	MQTTClient_disconnect5(c1.c, 100, MQTTREASONCODE_DISCONNECT_WITH_WILL_MESSAGE, NULL);
	ck_assert(test_broker_log_wait(&b, "client=dev1 topic=will/plain reason=not-envelope retain=0 bytes=3 will=1", 3000));
	/* A Will forging another sender, and a correct one. */
	uint8_t buf[1024];
	size_t n = seal("will/forged", d1.sender, NULL, buf, sizeof(buf));
	ck_assert_int_eq(pc_connect_will(&c2, b.port, "dev2", "dev2", d2.pw, "will/forged", buf, (int)n, 0), 0);
	pc_sleep_ms(300);
	MQTTClient_disconnect5(c2.c, 100, MQTTREASONCODE_DISCONNECT_WITH_WILL_MESSAGE, NULL);
	ck_assert(test_broker_log_wait(&b, "client=dev2 topic=will/forged reason=wrong-sender", 3000));
	n = seal("will/good", d3.sender, NULL, buf, sizeof(buf));
	ck_assert_int_eq(pc_connect_will(&c3, b.port, "dev3", "dev3", d3.pw, "will/good", buf, (int)n, 0), 0);
	pc_sleep_ms(300);
	MQTTClient_disconnect5(c3.c, 100, MQTTREASONCODE_DISCONNECT_WITH_WILL_MESSAGE, NULL);
	ck_assert_int_eq(pc_wait(&obs, 1, 3000), 1);
	pc_sleep_ms(300);
	ck_assert_int_eq(pc_count(&obs, "will/plain"), 0);
	ck_assert_int_eq(pc_count(&obs, "will/forged"), 0);
	ck_assert_int_eq(pc_count(&obs, "will/good"), 1); /* granted by a role, checked with its identity */
	pc_close(&c1);
	pc_close(&c2);
	pc_close(&c3);
	pc_close(&obs);
	veil_identity_free(&d1.id);
	veil_identity_free(&d2.id);
	veil_identity_free(&d3.id);
	test_broker_cleanup(&b);
}
END_TEST

/*
 * Several clients leave one after the other and each Will is judged with
 * the identity and roles of the client that set it, however the checks
 * interleave: the registry keeps every departed client (not one slot), and
 * a Will is found there by its own connection.
 *   - dev1 and dev2 leave back to back with a Will Delay Interval (MQTT 5):
 *     Mosquitto checks both Wills a second or two later, after both
 *     DISCONNECT events; dev1's is delivered (granted by its role, sealed
 *     with its own sender id), dev2's claims dev1's sender and is refused as
 *     wrong-sender, which can only be decided with dev2's identity.
 *   - dev3 and dev4 set Wills without delay and are dropped right after
 *     CONNACK, before any TICK built an ACL cache for them: judged with the
 *     identity their login left in the registry.
 * Without their identities both Wills would be denied as unknown clients.
 */
START_TEST(will_messages_back_to_back)
{
	char acl[400];
	write_acl(acl, sizeof(acl), "will2.acl", enforce_rules);
	struct test_broker b;
	pa_start_plugin(&env, &b, acl, NULL);
	struct device d[4];
	const char *ids[4] = { "dev1", "dev2", "dev3", "dev4" };
	for (int i = 0; i < 4; i++)
		device_new(&d[i], ids[i], "dev");
	struct pc obs, c[4];
	ck_assert_int_eq(pc_connect(&obs, b.port, "observer", "zgod"), 0);
	ck_assert_int_eq(pc_sub(&obs, "will/#", 1), 1);
	uint8_t buf[1024];
	size_t n = seal("will/d1", d[0].sender, NULL, buf, sizeof(buf));
	ck_assert_int_eq(pc_connect_will_delay(&c[0], b.port, "dev1", "dev1", d[0].pw, "will/d1", buf, (int)n, 0, 1), 0);
	n = seal("will/d2", d[0].sender, NULL, buf, sizeof(buf)); /* dev2 claims dev1's sender */
	ck_assert_int_eq(pc_connect_will_delay(&c[1], b.port, "dev2", "dev2", d[1].pw, "will/d2", buf, (int)n, 0, 1), 0);
	MQTTClient_disconnect5(c[0].c, 100, MQTTREASONCODE_DISCONNECT_WITH_WILL_MESSAGE, NULL);
	MQTTClient_disconnect5(c[1].c, 100, MQTTREASONCODE_DISCONNECT_WITH_WILL_MESSAGE, NULL);
	ck_assert(test_broker_log_wait(&b, "client=dev2 topic=will/d2 reason=wrong-sender", 5000));
	ck_assert_int_eq(pc_wait(&obs, 1, 5000), 1);
	ck_assert_int_eq(pc_count(&obs, "will/d1"), 1);

	n = seal("will/d3", d[2].sender, NULL, buf, sizeof(buf));
	ck_assert_int_eq(pc_connect_will(&c[2], b.port, "dev3", "dev3", d[2].pw, "will/d3", buf, (int)n, 0), 0);
	n = seal("will/d4", d[2].sender, NULL, buf, sizeof(buf)); /* dev4 claims dev3's sender */
	ck_assert_int_eq(pc_connect_will(&c[3], b.port, "dev4", "dev4", d[3].pw, "will/d4", buf, (int)n, 0), 0);
	MQTTClient_disconnect5(c[2].c, 100, MQTTREASONCODE_DISCONNECT_WITH_WILL_MESSAGE, NULL);
	MQTTClient_disconnect5(c[3].c, 100, MQTTREASONCODE_DISCONNECT_WITH_WILL_MESSAGE, NULL);
	ck_assert(test_broker_log_wait(&b, "client=dev4 topic=will/d4 reason=wrong-sender", 3000));
	ck_assert_int_eq(pc_wait(&obs, 2, 3000), 2);
	pc_sleep_ms(300);
	ck_assert_int_eq(pc_count(&obs, "will/d3"), 1);
	ck_assert_int_eq(pc_count(&obs, "will/d2"), 0);
	ck_assert_int_eq(pc_count(&obs, "will/d4"), 0);
	for (int i = 0; i < 4; i++) {
		pc_close(&c[i]);
		veil_identity_free(&d[i].id);
	}
	pc_close(&obs);
	test_broker_cleanup(&b);
}
END_TEST

/* Publisher thread for the reload test: QoS 1 on ok/<i> and no/<i>. */
struct load {
	int port;
	int sent_ok, refused_ok, sent_no;
	volatile int stop;
};

static void *publisher(void *arg)
{
	struct load *L = arg;
	struct pc p;
	if (pc_connect(&p, L->port, "pub", NULL) != 0)
		return NULL;
	char t[32];
	for (int i = 0; !L->stop; i++) {
		snprintf(t, sizeof(t), "ok/%d", i);
		int rc = pc_pub(&p, t, "x", 1, 1, 0);
		if (rc >= 0 && rc < 0x80)
			L->sent_ok++;
		else
			L->refused_ok++;
		snprintf(t, sizeof(t), "no/%d", i);
		pc_pub(&p, t, "x", 1, 1, 0);
		L->sent_no++;
	}
	pc_close(&p);
	return NULL;
}

START_TEST(reload_under_load)
{
	/* Two policies that differ (a user block appears and disappears) but
	 * both allow ok/# and deny no/# to the anonymous publisher. */
	const char *v1 = "topic write ok/#\ntopic write no/#\ntopic deny no/#\nuser zgod\ntopic read ok/#\n"
	                 "topic read no/#\n";
	const char *v2 = "user someone\ntopic readwrite x/#\nuser zgod\ntopic read #\n"
	                 "pattern read %u/#\n"
	                 "user anyone\ntopic read a/#\n"
	                 "topic write ok/#\n";
	char acl[400];
	write_acl(acl, sizeof(acl), "reload.acl", v1);
	/* v2 puts the anonymous rules in a separate file swapped by rename. */
	const char *v2_full = "topic write ok/#\nuser someone\ntopic readwrite x/#\nuser zgod\ntopic read #\n"
	                      "pattern read %u/#\nuser anyone\ntopic read a/#\n";
	(void)v2;
	struct test_broker b;
	pa_start_plugin(&env, &b, acl, "plugin_opt_acl_poll_interval 0\n");
	struct pc sub;
	ck_assert_int_eq(pc_connect(&sub, b.port, "sub", "zgod"), 0);
	sub.watch = "no/";
	ck_assert_int_eq(pc_sub(&sub, "ok/#", 1), 1);
	ck_assert_int_eq(pc_sub(&sub, "no/#", 1), 1);
	struct load L = { b.port, 0, 0, 0, 0 };
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, publisher, &L), 0);
	char tmp[420];
	snprintf(tmp, sizeof(tmp), "%s.new", acl);
	for (int i = 0; i < 100; i++) {
		ck_assert_int_eq(test_write_file(tmp, (i % 2) ? v1 : v2_full, 0644), 0);
		ck_assert_int_eq(rename(tmp, acl), 0);
		ck_assert_int_eq(test_broker_reload(&b), 0);
		pc_sleep_ms(20);
	}
	L.stop = 1;
	pthread_join(th, NULL);
	ck_assert(kill(b.pid, 0) == 0); /* still running */
	pc_sleep_ms(300);
	pthread_mutex_lock(&sub.mu);
	int got_no = sub.nwatch;
	int got_ok = sub.ntotal - sub.nwatch;
	pthread_mutex_unlock(&sub.mu);
	fprintf(stderr, "reload: %d ok sent, %d ok received, %d no sent, %d no received, %d ok refused\n", L.sent_ok,
	        got_ok, L.sent_no, got_no, L.refused_ok);
	ck_assert_int_gt(L.sent_ok, 50);
	ck_assert_int_eq(L.refused_ok, 0);
	ck_assert_int_eq(got_no, 0);
	ck_assert_int_eq(got_ok, L.sent_ok); /* QoS 1 end to end: nothing lost across 100 swaps */
	ck_assert(test_broker_log_contains(&b, "veil: acl | loaded | why=reload"));

	/* New rules apply to the existing subscription at the next message. */
	pc_close(&sub);
	ck_assert_int_eq(pc_connect(&sub, b.port, "sub2", "zgod"), 0);
	ck_assert_int_eq(pc_sub(&sub, "ok/#", 1), 1);
	struct pc p;
	ck_assert_int_eq(pc_connect(&p, b.port, "pub2", NULL), 0);
	ck_assert_int_eq(pc_pub(&p, "ok/before", "x", 1, 1, 0), 0);
	ck_assert_int_eq(pc_wait(&sub, 1, 2000), 1);
	ck_assert_int_eq(test_write_file(acl, "topic write ok/#\nuser zgod\ntopic read other/#\n", 0644), 0);
	ck_assert_int_eq(test_broker_reload(&b), 0);
	pc_sleep_ms(300);
	ck_assert_int_lt(pc_pub(&p, "ok/after", "x", 1, 1, 0), 0x80); /* still allowed to write */
	pc_sleep_ms(300);
	ck_assert_int_eq(pc_count(&sub, "ok/after"), 0); /* no longer allowed to read */
	pc_close(&p);
	pc_close(&sub);
	test_broker_cleanup(&b);
}
END_TEST

START_TEST(poll_and_broken_file)
{
	char acl[400];
	write_acl(acl, sizeof(acl), "poll.acl", "topic write a/#\n");
	struct test_broker b;
	pa_start_plugin(&env, &b, acl, "plugin_opt_acl_poll_interval 1\n");
	struct pc p;
	ck_assert_int_eq(pc_connect(&p, b.port, "p", NULL), 0);
	ck_assert_int_lt(pc_pub(&p, "a/1", "x", 1, 1, 0), 0x80);
	ck_assert_int_eq(pc_pub(&p, "b/1", "x", 1, 1, 0), 0x87);
	/* Changed on disk, no SIGHUP: picked up by polling. */
	ck_assert_int_eq(test_write_file(acl, "topic write b/#\n", 0644), 0);
	ck_assert(test_broker_log_wait(&b, "why=file-changed", 5000));
	ck_assert_int_eq(pc_pub(&p, "a/1", "x", 1, 1, 0), 0x87);
	ck_assert_int_lt(pc_pub(&p, "b/1", "x", 1, 1, 0), 0x80);
	/* A broken file keeps the old rules; the log names file:line. */
	ck_assert_int_eq(test_write_file(acl, "topic write c/#\ntopic wrong c/#\n", 0644), 0);
	char want[500];
	snprintf(want, sizeof(want), "kept=old-rules error=%s:2: invalid access", acl);
	ck_assert(test_broker_log_wait(&b, want, 5000));
	ck_assert_int_lt(pc_pub(&p, "b/1", "x", 1, 1, 0), 0x80);
	ck_assert_int_eq(pc_pub(&p, "c/1", "x", 1, 1, 0), 0x87);
	/* SIGHUP with the broken file: same. */
	ck_assert_int_eq(test_broker_reload(&b), 0);
	ck_assert(test_broker_log_wait(&b, "why=reload kept=old-rules", 3000));
	ck_assert_int_lt(pc_pub(&p, "b/1", "x", 1, 1, 0), 0x80);
	pc_close(&p);
	test_broker_cleanup(&b);
}
END_TEST

/* SUBSCRIBE is checked filter against filter; $share/<group>/ is understood. */
START_TEST(shared_subscriptions)
{
	char acl[400];
	write_acl(acl, sizeof(acl), "share.acl", "user zgod\ntopic read a/#\ntopic deny a/secret/#\n"
	                                         "topic write #\n");
	struct test_broker b;
	pa_start_plugin(&env, &b, acl, NULL);
	struct pc s1, pub;
	ck_assert_int_eq(pc_connect(&s1, b.port, "s1", "zgod"), 0);
	ck_assert_int_eq(pc_sub(&s1, "$share/g/a/#", 1), 1);
	ck_assert_int_eq(pc_sub(&s1, "$share/g/#", 1), 0x87);
	ck_assert_int_eq(pc_sub(&s1, "a/secret/#", 1), 0x87);
	ck_assert_int_eq(pc_sub(&s1, "+/x", 1), 0x87);
	ck_assert_int_eq(pc_connect(&pub, b.port, "p1", "zgod"), 0);
	ck_assert_int_lt(pc_pub(&pub, "a/x", "1", 1, 1, 0), 0x80);
	ck_assert_int_eq(pc_pub(&pub, "a/secret/y", "2", 1, 1, 0), 0x87); /* deny is for every access */
	ck_assert_int_lt(pc_pub(&pub, "b/x", "3", 1, 1, 0), 0x80);
	pc_wait(&s1, 1, 2000);
	pc_sleep_ms(300);
	ck_assert_int_eq(pc_count(&s1, "a/x"), 1);
	ck_assert_int_eq(pc_count(&s1, NULL), 1);
	ck_assert(test_broker_log_contains(&b, "veil: acl | deny | client=s1 access=subscribe topic=$share/g/#"));
	pc_close(&pub);
	pc_close(&s1);
	test_broker_cleanup(&b);
}
END_TEST

/* Without plugin_opt_acl_file every check is deferred: Mosquitto's own
 * acl_file decides; without one, 2.0.11 denies (all plugins deferred). */
START_TEST(no_rules_file_defers)
{
	char acl[400], conf[2048];
	write_acl(acl, sizeof(acl), "builtin.acl", "topic write a/#\n");
	for (int with_builtin = 0; with_builtin < 2; with_builtin++) {
		snprintf(conf, sizeof(conf),
		         "allow_anonymous true\nplugin %s\nplugin_opt_allow_anonymous true\n"
		         "plugin_opt_authority_file %s\n%s%s\n",
		         test_plugin_path(), env.authority_pub, with_builtin ? "acl_file " : "", with_builtin ? acl : "");
		struct test_broker b;
		ck_assert_int_eq(test_broker_start(&b, conf), 0);
		ck_assert(test_broker_log_wait(&b, "veil: acl | no-rules-file | decision=defer", 2000));
		struct pc p;
		ck_assert_int_eq(pc_connect(&p, b.port, "c", NULL), 0);
		ck_assert_int_eq(pc_pub(&p, "a/1", "x", 1, 1, 0) < 0x80, with_builtin);
		ck_assert_int_eq(pc_pub(&p, "b/1", "x", 1, 1, 0), 0x87);
		pc_close(&p);
		test_broker_cleanup(&b);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("plugin_acl");
	TCase *tc = tcase_create("broker");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, enforcement);
	tcase_add_test(tc, will_messages);
	tcase_add_test(tc, will_messages_back_to_back);
	tcase_add_test(tc, reload_under_load);
	tcase_add_test(tc, poll_and_broken_file);
	tcase_add_test(tc, no_rules_file_defers);
	tcase_add_test(tc, shared_subscriptions);
	suite_add_tcase(s, tc);
	return veil_check_run(s);
}
