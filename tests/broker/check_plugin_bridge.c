/*
 * Bridges and the plugin (docs/ACL.md "Bridges"), with real brokers joined
 * by a real Mosquitto 2.0 bridge (MQTT 3.1.1, try_private true, topics both
 * ways): node B bridges to node A and logs in there as the declared bridge
 * user node-b (plugin_opt_bridge_user, its password in the plugin's file).
 *   sealed_messages_cross: envelopes on encrypted and signed topics, and
 *     the key service's bundle, cross in both directions, byte for byte,
 *     retained ones still retained at the far node (late subscribers get
 *     them with the retain flag), each delivered exactly once (no echo
 *     back over the bridge: try_private);
 *   bridge_login_checks: what a bridge login (a compromised node) can and
 *     cannot publish at A: no plaintext on protected topics, no unsigned
 *     envelope on signed topics, no forged or moved signature, no
 *     credential of an untrusted authority or expired one, no forged or
 *     misaddressed key service message; envelopes of any sender on
 *     encrypted topics are its to carry. A password user that is not a
 *     declared bridge gets none of it, and a bridge name is only a bridge
 *     with its password, its own client id, and never with a token;
 *   initiator_unchecked: what Mosquitto does not show the plugin: messages
 *     arriving over a node's own outgoing bridge skip its ACL (checked
 *     only where they entered), while the accepting node checks the
 *     bridge's publications;
 *   relay_records: the relay's records (plugin/relay.h, docs/SCALING.md):
 *     a client cannot write one, a bridge only a retained one that is
 *     exactly the entry its topic names; an accepted one reaches the
 *     accepting node's runtime file and, over the other node's own
 *     outgoing bridge (the message event, no ACL question), that node's;
 *     the device is refused at both; an empty record removes nothing.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/stat.h>

#include <sodium.h>

#include "veil/veil.h"
#include "veil/envelope.h"
#include "../../core/bundle.h"
#include "acl_client.h"
#include "check_run.h"
#include "files.h"
#include "material.h"
#include "relay.h"
#include "timing.h"

static const char *const users[] = { "node-b", "node-c", "zgod", "legacy", NULL };
static struct acl_env env;
static uint8_t key[VEIL_KEY_BYTES];
static struct test_broker A, B;

static void setup(void)
{
	acl_env_init(&env, users);
	randombytes_buf(key, sizeof(key));
	memset(&A, 0, sizeof(A));
	memset(&B, 0, sizeof(B));
}

static void teardown(void)
{
	test_broker_stop(&B); /* the bridge first */
	test_broker_stop(&A);
	test_broker_cleanup(&B);
	test_broker_cleanup(&A);
	acl_env_free(&env);
}

/* The rules every node shares; bridges carry everything the rules name. */
#define RULES                                                                                                      \
	"user node-b\ntopic readwrite #\n"                                                                         \
	"user node-c\ntopic readwrite #\n"                                                                         \
	"user zgod\ntopic read #\n"                                                                                \
	"user legacy\ntopic readwrite #\n"                                                                         \
	"role dev\ntopic readwrite,encrypted enc/#\ntopic readwrite,signed sig/#\n"

static void write_rules(const char *name, const char *text, char *path, size_t cap)
{
	snprintf(path, cap, "%s/%s", env.dir, name);
	ck_assert_int_eq(test_write_file(path, text, 0644), 0);
}

/* Node A (accepts the bridge) and node B (bridges to A with topics), each
 * with its extra config lines. */
static void start_nodes_with(const char *rules_a, const char *rules_b, const char *topics, const char *extra_a,
                             const char *extra_b)
{
	char acl_a[400], acl_b[400], conf[2048], conf_a[1024];
	write_rules("acl-a", rules_a, acl_a, sizeof(acl_a));
	write_rules("acl-b", rules_b, acl_b, sizeof(acl_b));
	snprintf(conf_a, sizeof(conf_a), "plugin_opt_bridge_user node-b\nplugin_opt_bridge_user node-c\n%s", extra_a);
	acl_env_start_plugin(&env, &A, acl_a, conf_a);
	snprintf(conf, sizeof(conf),
	         "connection to-a\n"
	         "address 127.0.0.1:%d\n"
	         "bridge_protocol_version mqttv311\n"
	         "remote_clientid node-b\n"
	         "remote_username node-b\n"
	         "remote_password pw-node-b\n"
	         "try_private true\n"
	         "cleansession true\n"
	         "notifications false\n"
	         "%s%s",
	         A.port, topics, extra_b);
	acl_env_start_plugin(&env, &B, acl_b, conf);
	/* The bridge logged in as a bridge (try_private: Mosquitto's "New
	 * bridge" line), the plugin took it as the declared bridge, and A
	 * answered every one of its SUBSCRIBEs. */
	ck_assert(test_broker_log_wait(&A, "New bridge connected from 127.0.0.1", 10000));
	ck_assert(test_broker_log_wait(&A, "veil: auth | accept | client=node-b addr=127.0.0.1 method=bridge user=node-b",
	                               5000));
	int n = 0; /* one SUBSCRIBE per "topic" line */
	for (const char *p = topics; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
		n += !strncmp(p, "topic ", 6);
	ck_assert(test_file_wait_count(A.log, "Sending SUBACK to node-b", n, 10000));
}

static void start_nodes(const char *rules_a, const char *rules_b, const char *topics)
{
	start_nodes_with(rules_a, rules_b, topics, "", "");
}

/* Envelope of "hi" (sender sid, signed by signer or not), sealed for topic. */
static size_t seal(const char *topic, const uint8_t sid[VEIL_SENDER_ID_BYTES], const struct veil_identity *signer,
                   const uint8_t *cred, size_t cred_len, uint8_t *out, size_t cap)
{
	uint64_t seq = (uint64_t)time(NULL) * 1000000U + randombytes_uniform(1000000);
	return test_envelope_make(key, 7, topic, sid, seq, signer, cred, cred_len, "hi", out, cap);
}

static size_t seal_by(const char *topic, const struct test_device *d, bool sign, uint8_t *out, size_t cap)
{
	return seal(topic, d->sender, sign ? d->id : NULL, d->cred, d->cred_len, out, cap);
}

/* A device login with a fresh token (tokens are single use per node). */
static int connect_device(struct acl_pc *p, int port, const char *cid, struct test_device *d)
{
	uint8_t tok[VEIL_TOKEN_MAX];
	size_t tl = test_token_make(d->id, d->cred, d->cred_len, cid, 0, tok);
	test_token_password(tok, tl, d->pw);
	return acl_pc_connect_will(p, port, cid, cid, d->pw, NULL, NULL, 0, 0);
}

/* The message p received on topic (the last one), or NULL. */
static const struct acl_pc_msg *received(struct acl_pc *p, const char *topic)
{
	const struct acl_pc_msg *m = NULL;
	pthread_mutex_lock(&p->mu);
	for (int i = 0; i < p->nmsgs; i++) {
		if (!strcmp(p->msgs[i].topic, topic))
			m = &p->msgs[i];
	}
	pthread_mutex_unlock(&p->mu);
	return m;
}

/* p got exactly these bytes (as far as the fixture keeps: 63) on topic, with
 * this retain flag. */
static void expect_msg(struct acl_pc *p, const char *what, const char *topic, const uint8_t *env_bytes,
                       size_t n, int retained)
{
	const struct acl_pc_msg *m = received(p, topic);
	ck_assert_msg(m != NULL, "%s: nothing on %s", what, topic);
	size_t cmp = n < sizeof(m->payload) - 1 ? n : sizeof(m->payload) - 1;
	ck_assert_msg(memcmp(m->payload, env_bytes, cmp) == 0, "%s: other bytes on %s", what, topic);
	ck_assert_msg(m->retained == retained, "%s: %s retained=%d, want %d", what, topic, m->retained, retained);
}

/* A bundle from keyd (credential keyd_cred, role veil-keyd) for device d,
 * client id cid: a real one, sealed to a fresh receive key. */
static size_t make_bundle(const struct veil_identity *keyd, const uint8_t *keyd_cred, size_t keyd_cred_len,
                          const struct test_device *d, const char *cid, uint8_t **out)
{
	struct veil_credential dc;
	ck_assert_int_eq(veil_credential_parse(d->cred, d->cred_len, &dc), VEIL_OK);
	struct veil__rxkey *rx = NULL;
	ck_assert_int_eq(veil__rxkey_generate(&rx), VEIL_OK);
	uint8_t echo[VEIL__DEVMSG_NONCE_BYTES];
	randombytes_buf(echo, sizeof(echo));
	struct veil__grant g;
	memset(&g, 0, sizeof(g));
	snprintf(g.scope, sizeof(g.scope), "enc/%s/#", cid);
	g.key_id = VEIL__GRANT_KEY_ID_MIN + 1;
	g.epoch = 1;
	g.send_from = (uint64_t)time(NULL);
	g.send_until = g.send_from + 3600;
	g.accept_until = g.send_until + 60;
	g.flags = VEIL__GRANT_MAY_SEND;
	memcpy(g.key, key, sizeof(g.key));
	struct veil__bundle_params p = {
		.keyd = keyd, .credential = keyd_cred, .credential_len = keyd_cred_len, .recipient_cred_id = dc.id,
		.recipient_sender_id = d->sender, .recipient_client_id = cid, .receive_pk = veil__rxkey_public(rx),
		.echo_nonce = echo, .version = (uint64_t)time(NULL) * 1000000U, .grants = &g, .n_grants = 1,
	};
	size_t cap = veil__bundle_len(&p), n = 0;
	ck_assert_uint_gt(cap, 0);
	*out = malloc(cap);
	ck_assert_ptr_nonnull(*out);
	ck_assert_int_eq(veil__bundle_build(&p, *out, cap, &n), VEIL_OK);
	veil__rxkey_free(&rx);
	sodium_memzero(&g, sizeof(g));
	return n;
}

/* A revocation statement signed by signer (credential cred). */
static size_t make_statement(const struct veil_identity *signer, const uint8_t *cred, size_t cred_len, uint8_t *out,
                             size_t cap)
{
	struct veil__rev_entry e = { .kind = VEIL__REV_CREDENTIAL, .keep_until = 4000000000ULL };
	memset(e.id, 0x52, sizeof(e.id));
	struct veil__revstmt_params p = { .keyd = signer, .credential = cred, .credential_len = cred_len,
		                          .version = (uint64_t)time(NULL) * 1000000U, .issued_at = (uint64_t)time(NULL),
		                          .entries = &e, .n_entries = 1 };
	size_t n = 0;
	ck_assert_int_eq(veil__revstmt_build(&p, out, cap, &n), VEIL_OK);
	return n;
}

START_TEST(sealed_messages_cross)
{
	start_nodes(RULES, RULES, "topic enc/# both 1\ntopic sig/# both 1\ntopic $veil/v1/# both 1\n");
	struct test_device alice, bob;
	test_device_new(&alice, env.authority, "alice", "dev");
	test_device_new(&bob, env.authority, "bob", "dev");
	struct acl_pc obs_a, obs_b, dev_b, dev_a;
	ck_assert_int_eq(acl_pc_connect(&obs_a, A.port, "zgod", "zgod"), 0);
	ck_assert_int_eq(acl_pc_connect(&obs_b, B.port, "zgod", "zgod"), 0);
	static const char *const all[] = { "enc/#", "sig/#", "$veil/v1/revocation" };
	acl_pc_sub_many(&obs_a, all, 3, false);
	acl_pc_sub_many(&obs_b, all, 3, false);
	ck_assert_int_eq(connect_device(&dev_b, B.port, "alice", &alice), 0);
	ck_assert_int_eq(connect_device(&dev_a, A.port, "bob", &bob), 0);

	/* B -> A: checked by A's plugin as the bridge node-b's publications. */
	uint8_t e1[2048], e2[2048], e3[2048], e4[2048], e5[2048], e6[2048];
	size_t n1 = seal_by("enc/alice", &alice, false, e1, sizeof(e1));
	size_t n2 = seal_by("sig/alice", &alice, true, e2, sizeof(e2));
	size_t n3 = seal_by("enc/alice/live", &alice, false, e3, sizeof(e3));
	ck_assert_int_eq(acl_pc_pub(&dev_b, "enc/alice", e1, (int)n1, 1, 1), 0);
	ck_assert_int_eq(acl_pc_pub(&dev_b, "sig/alice", e2, (int)n2, 1, 1), 0);
	ck_assert_int_eq(acl_pc_pub(&dev_b, "enc/alice/live", e3, (int)n3, 1, 0), 0);
	/* A -> B: read by the bridge at A, stored at B as published. */
	size_t n4 = seal_by("enc/bob", &bob, false, e4, sizeof(e4));
	size_t n5 = seal_by("sig/bob", &bob, true, e5, sizeof(e5));
	ck_assert_int_eq(acl_pc_pub(&dev_a, "enc/bob", e4, (int)n4, 1, 1), 0);
	ck_assert_int_eq(acl_pc_pub(&dev_a, "sig/bob", e5, (int)n5, 1, 1), 0);
	/* The key service's messages cross too: a revocation statement keyd
	 * publishes at A (retained) reaches devices at B. */
	struct veil_identity *keyd = NULL;
	ck_assert_int_eq(veil_identity_generate(&keyd), VEIL_OK);
	uint8_t keyd_cred[VEIL_CREDENTIAL_MAX], stmt[1024];
	size_t kcl = test_credential_make(env.authority, keyd, "veil-keyd", "veil-keyd", 3600, keyd_cred);
	size_t sn = make_statement(keyd, keyd_cred, kcl, stmt, sizeof(stmt));
	struct acl_pc kd;
	struct test_device keyd_dev = { .id = keyd, .cred_len = kcl };
	memcpy(keyd_dev.cred, keyd_cred, kcl);
	ck_assert_int_eq(connect_device(&kd, A.port, "veil-keyd", &keyd_dev), 0);
	ck_assert_int_eq(acl_pc_pub(&kd, "$veil/v1/revocation", stmt, (int)sn, 1, 1), 0);
	/* The markers: bob's last publish has reached B after everything A
	 * forwarded before it, alice's after everything B did. */
	size_t n6 = seal_by("enc/bob/marker", &bob, false, e6, sizeof(e6));
	ck_assert_int_eq(acl_pc_pub(&dev_a, "enc/bob/marker", e6, (int)n6, 1, 0), 0);
	ck_assert(acl_pc_wait_topic(&obs_a, "enc/alice/live", 1, 5000));
	ck_assert(acl_pc_wait_topic(&obs_b, "enc/bob/marker", 1, 5000));
	ck_assert(acl_pc_wait_topic(&obs_b, "$veil/v1/revocation", 1, 5000));
	ck_assert(acl_pc_wait_topic(&obs_a, "sig/alice", 1, 5000));
	expect_msg(&obs_a, "live at A", "enc/alice", e1, n1, 0);
	expect_msg(&obs_a, "live at A", "sig/alice", e2, n2, 0);
	expect_msg(&obs_b, "live at B", "sig/bob", e5, n5, 0);
	expect_msg(&obs_b, "live at B", "$veil/v1/revocation", stmt, sn, 0);
	/* Exactly once at both ends: nothing came back over the bridge. */
	acl_pc_sync(&obs_a);
	acl_pc_sync(&obs_b);
	static const char *const topics[] = { "enc/alice", "sig/alice", "enc/alice/live", "enc/bob", "sig/bob",
		                              "enc/bob/marker" };
	for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
		ck_assert_msg(acl_pc_count(&obs_a, topics[i]) == 1, "A: %d on %s", acl_pc_count(&obs_a, topics[i]),
		              topics[i]);
		ck_assert_msg(acl_pc_count(&obs_b, topics[i]) == 1, "B: %d on %s", acl_pc_count(&obs_b, topics[i]),
		              topics[i]);
	}
	/* Late subscribers: each node holds the other's retained messages,
	 * still retained, byte for byte. */
	struct acl_pc late_a, late_b;
	ck_assert_int_eq(acl_pc_connect(&late_a, A.port, "auto-late-a", "zgod"), 0);
	ck_assert_int_eq(acl_pc_connect(&late_b, B.port, "auto-late-b", "zgod"), 0);
	acl_pc_sub_many(&late_a, all, 3, false);
	acl_pc_sub_many(&late_b, all, 3, false);
	acl_pc_sync(&late_a);
	acl_pc_sync(&late_b);
	expect_msg(&late_a, "retained at A", "enc/alice", e1, n1, 1);
	expect_msg(&late_a, "retained at A", "sig/alice", e2, n2, 1);
	expect_msg(&late_b, "retained at B", "enc/bob", e4, n4, 1);
	expect_msg(&late_b, "retained at B", "sig/bob", e5, n5, 1);
	expect_msg(&late_b, "retained at B", "$veil/v1/revocation", stmt, sn, 1);
	expect_msg(&late_a, "retained at A", "$veil/v1/revocation", stmt, sn, 1);
	ck_assert_int_eq(acl_pc_count(&late_a, NULL), 5); /* alice's two, bob's two, the statement */
	ck_assert_int_eq(acl_pc_count(&late_b, NULL), 5);
	ck_assert(!test_broker_log_contains(&A, "veil: acl | refuse"));
	ck_assert(!test_broker_log_contains(&B, "veil: acl | refuse"));
	acl_pc_close(&late_a);
	acl_pc_close(&late_b);
	acl_pc_close(&kd);
	acl_pc_close(&dev_a);
	acl_pc_close(&dev_b);
	acl_pc_close(&obs_a);
	acl_pc_close(&obs_b);
	veil_identity_free(&keyd);
	test_device_free(&alice);
	test_device_free(&bob);
}
END_TEST

/* A publish by p on topic that A refuses with reason (PUBACK 0x87). */
static void expect_refused(struct acl_pc *p, const char *who, const char *topic, const void *payload, size_t n,
                           int retain, const char *reason)
{
	ck_assert_msg(acl_pc_pub(p, topic, payload, (int)n, 1, retain) == 0x87, "%s on %s not refused", who, topic);
	char needle[300];
	snprintf(needle, sizeof(needle), "veil: acl | refuse | client=%s topic=%s reason=%s ", who, topic, reason);
	ck_assert_msg(test_broker_log_wait(&A, needle, 3000), "no '%s'", needle);
}

START_TEST(bridge_login_checks)
{
	start_nodes(RULES, RULES, "topic enc/# both 1\n");
	struct test_device alice, mallory;
	test_device_new(&alice, env.authority, "alice", "dev");
	test_device_new(&mallory, env.authority, "mallory", "dev");
	struct acl_pc obs, br;
	ck_assert_int_eq(acl_pc_connect(&obs, A.port, "zgod", "zgod"), 0);
	static const char *const all[] = { "enc/#", "sig/#", "$veil/v1/revocation" };
	acl_pc_sub_many(&obs, all, 3, false);
	/* node-c: a declared bridge, logging in as a compromised node would. */
	ck_assert_int_eq(acl_pc_connect(&br, A.port, "node-c", "node-c"), 0);
	ck_assert(test_broker_log_wait(&A, "client=node-c addr=127.0.0.1 method=bridge user=node-c", 3000));
	uint8_t e[2048];
	size_t n;
	/* Protected topics: never plaintext, never an empty message. */
	expect_refused(&br, "node-c", "enc/x", "plaintext", 9, 0, "not-envelope");
	expect_refused(&br, "node-c", "sig/x", "plaintext", 9, 1, "not-envelope");
	expect_refused(&br, "node-c", "enc/x", "", 0, 0, "empty-payload");
	n = seal_by("enc/x", &alice, false, e, sizeof(e));
	expect_refused(&br, "node-c", "enc/x", e, 40, 0, "not-envelope"); /* truncated */
	/* Encrypted topics: anyone's envelope (the sender binding is the one
	 * check a bridge skips; receivers still need the topic key). */
	ck_assert_int_eq(acl_pc_pub(&br, "enc/x", e, (int)n, 1, 0), 0);
	n = seal_by("enc/y", &mallory, false, e, sizeof(e));
	ck_assert_int_eq(acl_pc_pub(&br, "enc/y", e, (int)n, 1, 0), 0);
	/* Signed topics: signed, by whom the embedded credential says. */
	n = seal_by("sig/x", &alice, false, e, sizeof(e));
	expect_refused(&br, "node-c", "sig/x", e, n, 0, "unsigned");
	n = seal("sig/x", alice.sender, mallory.id, alice.cred, alice.cred_len, e, sizeof(e)); /* forged */
	expect_refused(&br, "node-c", "sig/x", e, n, 0, "bad-signature");
	n = seal_by("sig/other", &alice, true, e, sizeof(e)); /* moved from another topic */
	expect_refused(&br, "node-c", "sig/x", e, n, 0, "bad-signature");
	n = seal("sig/x", mallory.sender, alice.id, alice.cred, alice.cred_len, e, sizeof(e)); /* another's id */
	expect_refused(&br, "node-c", "sig/x", e, n, 0, "wrong-sender");
	struct veil_identity *stranger = NULL;
	ck_assert_int_eq(veil_identity_generate(&stranger), VEIL_OK);
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cl = test_credential_make(stranger, alice.id, "alice", "dev", 3600, cred);
	n = seal("sig/x", alice.sender, alice.id, cred, cl, e, sizeof(e));
	expect_refused(&br, "node-c", "sig/x", e, n, 0, "wrong-authority");
	cl = test_credential_make(env.authority, alice.id, "alice", "dev", -60, cred);
	n = seal("sig/x", alice.sender, alice.id, cred, cl, e, sizeof(e));
	expect_refused(&br, "node-c", "sig/x", e, n, 0, "expired-credential");
	n = seal_by("sig/x", &alice, true, e, sizeof(e));
	ck_assert_int_eq(acl_pc_pub(&br, "sig/x", e, (int)n, 1, 1), 0);

	/* The key service's topics: only its signed messages. */
	struct veil_identity *keyd = NULL;
	ck_assert_int_eq(veil_identity_generate(&keyd), VEIL_OK);
	uint8_t keyd_cred[VEIL_CREDENTIAL_MAX], stmt[1024];
	size_t kcl = test_credential_make(env.authority, keyd, "veil-keyd", "veil-keyd", 3600, keyd_cred);
	uint8_t *bundle = NULL;
	size_t bn = make_bundle(keyd, keyd_cred, kcl, &alice, "alice", &bundle);
	expect_refused(&br, "node-c", "$veil/v1/bundle/mallory", bundle, bn, 1, "misaddressed");
	bundle[bn - 1] ^= 1;
	expect_refused(&br, "node-c", "$veil/v1/bundle/alice", bundle, bn, 1, "bad-signature");
	bundle[bn - 1] ^= 1;
	expect_refused(&br, "node-c", "$veil/v1/bundle/alice", "forged", 6, 1, "malformed-key-service-message");
	ck_assert_int_eq(acl_pc_pub(&br, "$veil/v1/bundle/alice", "", 0, 1, 1), 0x87); /* deleting a bundle */
	ck_assert(test_broker_log_wait(&A, "client=node-c access=write topic=$veil/v1/bundle/alice "
	                                   "reason=veil-topic-empty-retained", 3000));
	ck_assert_int_lt(acl_pc_pub(&br, "$veil/v1/bundle/alice", bundle, (int)bn, 1, 1), 0x80); /* 0x10: no subscriber */
	size_t sn = make_statement(mallory.id, mallory.cred, mallory.cred_len, stmt, sizeof(stmt)); /* not keyd */
	expect_refused(&br, "node-c", "$veil/v1/revocation", stmt, sn, 1, "wrong-role");
	sn = make_statement(keyd, keyd_cred, kcl, stmt, sizeof(stmt));
	ck_assert_int_eq(acl_pc_pub(&br, "$veil/v1/revocation", stmt, (int)sn, 1, 1), 0);

	/* A password user that is not a declared bridge: nothing of the above. */
	struct acl_pc legacy;
	ck_assert_int_eq(acl_pc_connect(&legacy, A.port, "legacy", "legacy"), 0);
	n = seal_by("sig/x", &alice, true, e, sizeof(e));
	ck_assert_int_eq(acl_pc_pub(&legacy, "sig/x", e, (int)n, 1, 0), 0x87);
	ck_assert(test_broker_log_wait(&A, "client=legacy topic=sig/x reason=no-identity", 3000));
	ck_assert_int_eq(acl_pc_pub(&legacy, "$veil/v1/bundle/alice", bundle, (int)bn, 1, 1), 0x87);
	ck_assert(test_broker_log_wait(&A, "client=legacy access=write topic=$veil/v1/bundle/alice "
	                                   "reason=veil-topic-keyd-only", 3000));
	acl_pc_close(&legacy);
	/* A bridge name is a bridge only with its own client id, its password,
	 * and never through a token (it is a password-file user). */
	struct acl_pc x;
	ck_assert_int_eq(acl_pc_connect(&x, A.port, "auto-1", "node-c"), 0x87);
	acl_pc_close(&x);
	ck_assert(test_broker_log_wait(&A, "client=auto-1 addr=127.0.0.1 method=bridge reason=client-id-not-allowed",
	                               3000));
	ck_assert_int_eq(acl_pc_connect_will(&x, A.port, "node-c", "node-c", "pw-legacy", NULL, NULL, 0, 0), 0x87);
	acl_pc_close(&x);
	ck_assert(test_broker_log_wait(&A, "client=node-c addr=127.0.0.1 method=bridge reason=bad-password", 3000));
	struct test_device fake;
	test_device_new(&fake, env.authority, "node-c", "dev");
	ck_assert_int_eq(acl_pc_connect_will(&x, A.port, "node-c", "node-c", fake.pw, NULL, NULL, 0, 0), 0x87);
	acl_pc_close(&x);
	ck_assert(test_broker_log_wait(&A, "client=node-c addr=127.0.0.1 method=credential reason=client-id-reserved",
	                               3000));
	test_device_free(&fake);

	/* What got through, and nothing else: the marker is the last publish. */
	ck_assert_int_eq(acl_pc_pub(&br, "enc/marker", e, 0, 1, 1), 0); /* an empty retained message deletes */
	n = seal_by("enc/marker2", &alice, false, e, sizeof(e));
	ck_assert_int_eq(acl_pc_pub(&br, "enc/marker2", e, (int)n, 1, 0), 0);
	ck_assert(acl_pc_wait_topic(&obs, "enc/marker2", 1, 5000));
	acl_pc_sync(&obs);
	ck_assert_int_eq(acl_pc_count(&obs, "enc/x"), 1);
	ck_assert_int_eq(acl_pc_count(&obs, "enc/y"), 1);
	ck_assert_int_eq(acl_pc_count(&obs, "sig/x"), 1);
	ck_assert_int_eq(acl_pc_count(&obs, "$veil/v1/revocation"), 1);
	free(bundle);
	veil_identity_free(&keyd);
	veil_identity_free(&stranger);
	acl_pc_close(&br);
	acl_pc_close(&obs);
	test_device_free(&alice);
	test_device_free(&mallory);
}
END_TEST

/* Mosquitto skips the ACL for messages a node receives over its own
 * outgoing bridge (security.c: a bridge context is always allowed), so
 * node B's plugin never sees them; node A's plugin checks everything the
 * bridge publishes there. Here the nodes' rules differ on purpose: open/#
 * is protected at B only, shut/# at A only. */
START_TEST(initiator_unchecked)
{
	start_nodes(RULES "user legacy\ntopic readwrite,encrypted shut/#\n",
	            RULES "user legacy\ntopic readwrite,encrypted open/#\n", "topic open/# both 1\ntopic shut/# both 1\n");
	struct acl_pc obs_b, obs_a, pub_a, pub_b;
	ck_assert_int_eq(acl_pc_connect(&obs_a, A.port, "zgod", "zgod"), 0);
	ck_assert_int_eq(acl_pc_connect(&obs_b, B.port, "zgod", "zgod"), 0);
	static const char *const both[] = { "open/#", "shut/#" };
	acl_pc_sub_many(&obs_a, both, 2, false);
	acl_pc_sub_many(&obs_b, both, 2, false);
	ck_assert_int_eq(acl_pc_connect(&pub_a, A.port, "legacy", "legacy"), 0);
	ck_assert_int_eq(acl_pc_connect(&pub_b, B.port, "legacy", "legacy"), 0);
	/* Plaintext where A allows it reaches B, whose rules protect open/#:
	 * B's plugin is not asked. */
	ck_assert_int_eq(acl_pc_pub(&pub_a, "open/x", "in clear", 8, 1, 0), 0);
	ck_assert(acl_pc_wait_topic(&obs_b, "open/x", 1, 5000));
	/* Directly at B it is refused: the same plugin, the same rules. */
	ck_assert_int_eq(acl_pc_pub(&pub_b, "open/y", "in clear", 8, 1, 0), 0x87);
	/* Plaintext where B allows it is refused by A, as the bridge's. */
	ck_assert_int_eq(acl_pc_pub(&pub_b, "shut/x", "in clear", 8, 1, 0), 0);
	ck_assert(test_broker_log_wait(&A, "veil: acl | refuse | client=node-b topic=shut/x reason=not-envelope", 5000));
	ck_assert(acl_pc_wait_topic(&obs_b, "shut/x", 1, 5000)); /* delivered at B, where it entered */
	ck_assert_int_eq(acl_pc_pub(&pub_b, "open/marker", "m", 1, 1, 0), 0x87);
	ck_assert_int_eq(acl_pc_pub(&pub_a, "open/marker", "m", 1, 1, 0), 0);
	ck_assert(acl_pc_wait_topic(&obs_a, "open/marker", 1, 5000));
	acl_pc_sync(&obs_a);
	ck_assert_int_eq(acl_pc_count(&obs_a, "shut/x"), 0);
	ck_assert_int_eq(acl_pc_count(&obs_b, "open/y"), 0);
	ck_assert(!test_broker_log_contains(&B, "topic=open/x"));
	acl_pc_close(&pub_a);
	acl_pc_close(&pub_b);
	acl_pc_close(&obs_a);
	acl_pc_close(&obs_b);
}
END_TEST

/* The runtime revocation file in dir holds exactly the line. */
static bool runtime_has(const char *dir, const char *line)
{
	char path[400], want[200];
	snprintf(path, sizeof(path), "%s/revocations", dir);
	snprintf(want, sizeof(want), "\n%s\n", line);
	return test_file_wait(path, want, 5000);
}

START_TEST(relay_records)
{
	char sa[300], sb[300], xa[400], xb[400];
	snprintf(sa, sizeof(sa), "%s/state-a", env.dir);
	snprintf(sb, sizeof(sb), "%s/state-b", env.dir);
	ck_assert_int_eq(mkdir(sa, 0700), 0);
	ck_assert_int_eq(mkdir(sb, 0700), 0);
	snprintf(xa, sizeof(xa), "plugin_opt_state_dir %s\n", sa);
	snprintf(xb, sizeof(xb), "plugin_opt_state_dir %s\n", sb);
	start_nodes_with(RULES, RULES, "topic $veil/v1/# both 1\n", xa, xb);
	struct test_device mallory;
	test_device_new(&mallory, env.authority, "mallory", "dev");
	struct acl_pc br, legacy, m;
	ck_assert_int_eq(acl_pc_connect(&br, A.port, "node-c", "node-c"), 0);
	ck_assert_int_eq(acl_pc_connect(&legacy, A.port, "legacy", "legacy"), 0);
	char topic[VP_RELAY_TOPIC_MAX], needle[400];
	ck_assert(vp_relay__topic(NULL, "mallory", topic, sizeof(topic)));
	/* A client is no node: not even a retained, well-formed record. */
	ck_assert_int_eq(acl_pc_pub(&legacy, topic, "client mallory", 14, 1, 1), 0x87);
	snprintf(needle, sizeof(needle), "client=legacy access=write topic=%s reason=veil-topic", topic);
	ck_assert(test_broker_log_wait(&A, needle, 3000));
	/* A bridge: retained only, exactly the entry its topic names. */
	ck_assert_int_eq(acl_pc_pub(&br, topic, "client mallory", 14, 1, 0), 0x87);
	snprintf(needle, sizeof(needle), "client=node-c access=write topic=%s reason=veil-topic-relay-not-retained",
	         topic);
	ck_assert(test_broker_log_wait(&A, needle, 3000));
	expect_refused(&br, "node-c", topic, "client alice", 12, 1, "relay-topic-mismatch");
	expect_refused(&br, "node-c", topic, "client mallory\nclient alice", 27, 1, "relay-malformed");
	expect_refused(&br, "node-c", topic, "client  mallory", 15, 1, "relay-topic-mismatch");
	ck_assert(!test_broker_log_contains(&A, "relay | apply"));
	ck_assert_int_eq(connect_device(&m, A.port, "mallory", &mallory), 0);
	acl_pc_close(&m);
	/* The record: applied at A, and at B over B's own outgoing bridge. */
	ck_assert_int_lt(acl_pc_pub(&br, topic, "client mallory", 14, 1, 1), 0x80);
	ck_assert(test_broker_log_wait(&A, "veil: relay | apply | entry=client:mallory from=node-c", 5000));
	ck_assert(test_broker_log_wait(&B, "veil: relay | apply | entry=client:mallory from=", 5000));
	ck_assert(runtime_has(sa, "client mallory"));
	ck_assert(runtime_has(sb, "client mallory"));
	ck_assert_int_eq(connect_device(&m, A.port, "mallory", &mallory), 0x87);
	acl_pc_close(&m);
	ck_assert_int_eq(connect_device(&m, B.port, "mallory", &mallory), 0x87);
	acl_pc_close(&m);
	ck_assert(test_broker_log_wait(&B, "client=mallory addr=127.0.0.1 method=credential reason=revoked-client", 3000));
	/* Records only add: the empty one (a record cleared on its node)
	 * passes and takes nothing away. */
	ck_assert_int_lt(acl_pc_pub(&br, topic, "", 0, 1, 1), 0x80);
	ck_assert_int_eq(connect_device(&m, A.port, "mallory", &mallory), 0x87);
	acl_pc_close(&m);
	ck_assert(runtime_has(sa, "client mallory"));
	acl_pc_close(&br);
	acl_pc_close(&legacy);
	test_device_free(&mallory);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("plugin_bridge");
	TCase *tc = veil_tcase("bridge", 40);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, sealed_messages_cross);
	tcase_add_test(tc, bridge_login_checks);
	tcase_add_test(tc, initiator_unchecked);
	tcase_add_test(tc, relay_records);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
