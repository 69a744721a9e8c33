/*
 * libveil against a broker running the Veil plugin (mosquitto_veil.so):
 * token login over MQTT 5 (Authentication Method/Data) and MQTT 3.1.1
 * (password form), a fresh token on every connect (the plugin keeps a nonce
 * replay cache), a credential from an untrusted authority refused, and
 * libveil envelopes (unsigned and signed) accepted by the plugin's
 * enforcement on protected topics while a plain client's cleartext is not;
 * a client the broker disconnects (revoked: the plugin kicks it) learns it
 * through its connection-lost callback with the reason, on every front end
 * and MQTT version.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "client_fixture.h"
#include "check_run.h"
#include "material.h"
#include "timing.h"

static struct cfx F;
static char revoked[400];

static void setup(void)
{
	const char *plugin = test_plugin_path();
	ck_assert_msg(plugin != NULL, "VEIL_PLUGIN not set (run through ctest)");
	cfx_setup_files(&F);
	cfx_device(&F, "sensor-1");
	cfx_device(&F, "dash-1");
	/* The broker may drop privileges: its files must be world-readable. */
	ck_assert_int_eq(chmod(F.dir, 0755), 0);
	char auth_pub[400], acl[400], conf[2048];
	test_authority_save(F.authority, F.dir, auth_pub, sizeof(auth_pub));
	snprintf(acl, sizeof(acl), "%s/acl", F.dir);
	snprintf(revoked, sizeof(revoked), "%s/revoked", F.dir);
	ck_assert_int_eq(test_write_file(revoked, "# none yet\n", 0644), 0);
	ck_assert_int_eq(test_write_file(acl,
	                                 "pattern readwrite,encrypted sensors/#\n"
	                                 "pattern readwrite,signed secure/#\n"
	                                 "pattern readwrite public/#\n",
	                                 0644),
	                 0);
	snprintf(conf, sizeof(conf),
	         "allow_anonymous true\n"
	         "plugin %s\n"
	         "plugin_opt_allow_anonymous true\n"
	         "plugin_opt_authority_file %s\n"
	         "plugin_opt_acl_file %s\n"
	         "plugin_opt_revocation_file %s\n",
	         plugin, auth_pub, acl, revoked);
	cfx_start(&F, conf);
}

static void teardown(void)
{
	cfx_teardown(&F);
}

static struct veil_client *token_client(struct cfx_opts *fo, const char *id, int version, struct cfx_sink *sink)
{
	cfx_options(&F, fo, id, version, NULL);
	fo->o.auth = VEIL_AUTH_TOKEN;
	struct veil_client *c = NULL;
	ck_assert_int_eq(veil_client_new(&fo->o, &c), VEIL_OK);
	if (sink)
		ck_assert_int_eq(veil_client_set_callbacks(c, sink, cfx_on_message, cfx_on_refusal, cfx_on_lost), VEIL_OK);
	int rc = veil_client_connect(c);
	ck_assert_msg(rc == VEIL_OK, "%s login over MQTT %d: %s", id, version, veil_errname(rc));
	return c;
}

static void login_and_roundtrip(int pub_version, int sub_version)
{
	struct cfx_opts po, so;
	struct cfx_sink sink;
	cfx_sink_init(&sink);
	struct veil_client *sub = token_client(&so, "dash-1", sub_version, &sink);
	ck_assert_int_eq(veil_client_subscribe(sub, "sensors/#", 1), VEIL_OK);
	ck_assert_int_eq(veil_client_subscribe(sub, "secure/#", 1), VEIL_OK);
	struct veil_client *pub = token_client(&po, "sensor-1", pub_version, NULL);
	int tok = 0;
	ck_assert_int_eq(veil_client_publish(pub, "sensors/a", "via plugin", 10, 1, false, &tok), VEIL_OK);
	ck_assert_int_eq(veil_client_wait(pub, tok, (unsigned long)veil_test_ms(5000), NULL), VEIL_OK);
	ck_assert_int_eq(veil_client_publish(pub, "secure/door", "unlock", 6, 1, false, &tok), VEIL_OK);
	ck_assert_int_eq(veil_client_wait(pub, tok, (unsigned long)veil_test_ms(5000), NULL), VEIL_OK);
	ck_assert(cfx_wait(&sink, &sink.n, 2, 5000));
	ck_assert(memcmp(sink.msgs[0].payload, "via plugin", 10) == 0);
	ck_assert(sink.msgs[1].is_signed);
	ck_assert_str_eq(sink.msgs[1].sender_client_id, "sensor-1");

	/* Reconnect at once: a fresh token, so the plugin's nonce cache lets it in. */
	ck_assert_int_eq(veil_client_disconnect(pub, veil_test_ms(1000)), VEIL_OK);
	ck_assert_int_eq(veil_client_connect(pub), VEIL_OK);
	ck_assert_int_eq(veil_client_publish(pub, "sensors/a", "again", 5, 1, false, &tok), VEIL_OK);
	ck_assert_int_eq(veil_client_wait(pub, tok, (unsigned long)veil_test_ms(5000), NULL), VEIL_OK);
	ck_assert(cfx_wait(&sink, &sink.n, 3, 5000));
	ck_assert_uint_eq(sink.n_refused, 0);
	veil_client_free(&pub);
	veil_client_free(&sub);
	cfx_sink_destroy(&sink);
}

START_TEST(test_token_login_v5)
{
	login_and_roundtrip(VEIL_MQTT_5, VEIL_MQTT_5);
}
END_TEST

START_TEST(test_token_login_311)
{
	login_and_roundtrip(VEIL_MQTT_311, VEIL_MQTT_311);
}
END_TEST

START_TEST(test_untrusted_authority_refused)
{
	/* Same client id, credential signed by an authority the broker does not
	 * trust. The client's own keyring names that authority (libveil checks
	 * its credential against it before logging in): only the broker refuses. */
	struct veil_identity *trusted = F.authority;
	ck_assert_int_eq(veil_identity_generate(&F.authority), VEIL_OK);
	cfx_device_as(&F, "rogue", "sensor-1");
	char rogue_keyring[400];
	snprintf(rogue_keyring, sizeof(rogue_keyring), "%s/keyring-rogue", F.dir);
	cfx_write_keyring(&F, rogue_keyring, true);
	veil_identity_free(&F.authority);
	F.authority = trusted;
	for (int v = 0; v < 2; v++) {
		struct cfx_opts po;
		cfx_options(&F, &po, "rogue", v ? VEIL_MQTT_311 : VEIL_MQTT_5, NULL);
		po.o.client_id = "sensor-1";
		po.o.auth = VEIL_AUTH_TOKEN;
		po.o.keyring_path = rogue_keyring;
		struct veil_client *c = NULL;
		ck_assert_int_eq(veil_client_new(&po.o, &c), VEIL_OK);
		ck_assert_int_eq(veil_client_connect(c), VEIL_ERR_AUTH);
		veil_client_free(&c);
	}
}
END_TEST

START_TEST(test_async_token_login)
{
	struct cfx_opts po;
	cfx_options(&F, &po, "sensor-1", VEIL_MQTT_5, NULL);
	po.o.auth = VEIL_AUTH_TOKEN;
	struct cfx_sink sink;
	cfx_sink_init(&sink);
	struct cfx_opts so;
	struct veil_client *sub = token_client(&so, "dash-1", VEIL_MQTT_5, &sink);
	ck_assert_int_eq(veil_client_subscribe(sub, "sensors/#", 1), VEIL_OK);
	struct veil_async *a = NULL;
	ck_assert_int_eq(veil_async_new(&po.o, &a), VEIL_OK);
	ck_assert_int_eq(veil_async_connect(a, NULL, NULL), VEIL_OK);
	ck_assert(VEIL_WAIT_UNTIL(veil_async_is_connected(a), 5000));
	ck_assert_int_eq(veil_async_publish(a, "sensors/async", "async via plugin", 16, 1, false, NULL, NULL),
	                 VEIL_OK);
	ck_assert(cfx_wait(&sink, &sink.n, 1, 5000));
	ck_assert(memcmp(sink.msgs[0].payload, "async via plugin", 16) == 0);
	veil_async_free(&a);
	veil_client_free(&sub);
	cfx_sink_destroy(&sink);
}
END_TEST

START_TEST(test_plaintext_blocked_by_plugin)
{
	struct cfx_sink sink;
	cfx_sink_init(&sink);
	struct cfx_opts so;
	struct veil_client *sub = token_client(&so, "dash-1", VEIL_MQTT_5, &sink);
	ck_assert_int_eq(veil_client_subscribe(sub, "sensors/#", 1), VEIL_OK);
	ck_assert_int_eq(veil_client_subscribe(sub, "public/#", 1), VEIL_OK);
	/* An anonymous plain client (a broker-assigned "auto-" id): its
	 * cleartext never reaches the receiver. */
	struct cfx_plain mallory;
	cfx_plain_connect(&F, &mallory, "auto-mallory", NULL);
	MQTTClient_deliveryToken dt;
	MQTTClient_publish(mallory.mc, "sensors/a", 6, "forged", 1, 0, &dt);
	MQTTClient_waitForCompletion(mallory.mc, dt, (unsigned long)veil_test_ms(2000));
	/* The marker: "news" follows "forged" on the same connection at the
	 * same QoS, so had "forged" passed the broker it would arrive first. */
	cfx_plain_publish(&mallory, "public/x", "news", 4);
	ck_assert(cfx_wait(&sink, &sink.n, 1, 5000));
	ck_assert_uint_eq(sink.n, 1);
	ck_assert_uint_eq(sink.n_refused, 0);
	ck_assert_str_eq(sink.msgs[0].topic, "public/x");
	ck_assert(sink.msgs[0].plaintext);
	cfx_plain_close(&mallory);
	veil_client_free(&sub);
	cfx_sink_destroy(&sink);
}
END_TEST

/* Revoked while connected: the plugin kicks the client. With MQTT 5 the
 * broker says so in a DISCONNECT (Paho reports it only to its
 * "disconnected" callback); with 3.1.1 the connection just closes. Either
 * way the app's connection-lost callback hears of it, once. */
START_TEST(test_kicked_client_told)
{
	struct cfx_sink s5, s311, sa;
	cfx_sink_init(&s5);
	cfx_sink_init(&s311);
	cfx_sink_init(&sa);
	struct cfx_opts o5, o311, oa;
	struct veil_client *c5 = token_client(&o5, "sensor-1", VEIL_MQTT_5, &s5);
	struct veil_client *c311 = token_client(&o311, "dash-1", VEIL_MQTT_311, &s311);
	cfx_device(&F, "sensor-2");
	cfx_options(&F, &oa, "sensor-2", VEIL_MQTT_5, NULL);
	oa.o.auth = VEIL_AUTH_TOKEN;
	struct veil_async *a = NULL;
	ck_assert_int_eq(veil_async_new(&oa.o, &a), VEIL_OK);
	ck_assert_int_eq(veil_async_set_callbacks(a, &sa, cfx_on_message, cfx_on_refusal, cfx_on_lost), VEIL_OK);
	ck_assert_int_eq(veil_async_connect(a, NULL, NULL), VEIL_OK);
	ck_assert(VEIL_WAIT_UNTIL(veil_async_is_connected(a), 5000));

	ck_assert_int_eq(test_write_file(revoked, "client sensor-1\nclient dash-1\nclient sensor-2\n", 0644), 0);
	ck_assert_msg(cfx_wait(&s5, &s5.lost, 1, 5000), "MQTT 5 sync client not told");
	ck_assert_msg(strstr(s5.lost_cause, "the broker disconnected this client: reason code 0x"), "cause: %s",
	              s5.lost_cause);
	ck_assert_msg(cfx_wait(&sa, &sa.lost, 1, 5000), "MQTT 5 async client not told");
	ck_assert_msg(strstr(sa.lost_cause, "the broker disconnected this client: reason code 0x"), "cause: %s",
	              sa.lost_cause);
	ck_assert_msg(cfx_wait(&s311, &s311.lost, 1, 5000), "MQTT 3.1.1 client not told");
	ck_assert(!veil_client_is_connected(c5));
	ck_assert(!veil_async_is_connected(a));
	/* Told once: the same revocation list, re-read, kicks nobody twice. */
	ck_assert_uint_eq(s5.lost, 1);
	ck_assert_uint_eq(sa.lost, 1);
	veil_async_free(&a);
	veil_client_free(&c311);
	veil_client_free(&c5);
	cfx_sink_destroy(&sa);
	cfx_sink_destroy(&s311);
	cfx_sink_destroy(&s5);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("client_plugin");
	TCase *tc = veil_tcase("plugin", 5);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_token_login_v5);
	tcase_add_test(tc, test_token_login_311);
	tcase_add_test(tc, test_untrusted_authority_refused);
	tcase_add_test(tc, test_async_token_login);
	tcase_add_test(tc, test_plaintext_blocked_by_plugin);
	tcase_add_test(tc, test_kicked_client_told);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
