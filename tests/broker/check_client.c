/*
 * Integration tests for the synchronous libveil client (client-shim/client.c
 * and shim.c) against a real Mosquitto: round trips over MQTT 5 and 3.1.1 at
 * QoS 0/1/2, retained messages, MQTT 5 properties, signed topics, what an
 * eavesdropper on '#' sees, and the broker-side attacks (re-route, replay,
 * tamper, plaintext injection) that must be refused and counted, never
 * delivered. Also sender and receiver restarts with a state dir, and
 * reconnect with a persistent session after a broker restart.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client_fixture.h"
#include "check_run.h"
#include "timing.h"

static struct cfx F;

static void setup(void)
{
	cfx_setup(&F);
	cfx_device(&F, "sensor-1");
	cfx_device(&F, "dash-1");
}

static void teardown(void)
{
	cfx_teardown(&F);
}

static struct veil_client *client_up(struct cfx_opts *fo, struct cfx_sink *sink)
{
	struct veil_client *c = NULL;
	ck_assert_int_eq(veil_client_new(&fo->o, &c), VEIL_OK);
	if (sink)
		ck_assert_int_eq(veil_client_set_callbacks(c, sink, cfx_on_message, cfx_on_refusal, cfx_on_lost), VEIL_OK);
	ck_assert_int_eq(veil_client_connect(c), VEIL_OK);
	return c;
}

static void roundtrip(int version)
{
	struct cfx_opts po, so;
	cfx_options(&F, &po, "sensor-1", version, "sensor-state");
	cfx_options(&F, &so, "dash-1", version, "dash-state");
	struct cfx_sink sink;
	cfx_sink_init(&sink);
	struct cfx_plain eve;
	cfx_plain_connect(&F, &eve, "eve", "#");
	struct veil_client *sub = client_up(&so, &sink);
	ck_assert_int_eq(veil_client_subscribe(sub, "sensors/#", 2), VEIL_OK);
	struct veil_client *pub = client_up(&po, NULL);

	static const char *texts[3] = { "temperature=21.5C qos zero", "temperature=22.0C qos one",
		                        "temperature=22.5C qos two" };
	for (int qos = 0; qos <= 2; qos++) {
		int tok = 0;
		ck_assert_int_eq(veil_client_publish(pub, "sensors/room1/temp", texts[qos], strlen(texts[qos]), qos,
		                                      false, &tok),
		                 VEIL_OK);
		if (qos > 0)
			ck_assert_int_eq(veil_client_wait(pub, tok, (unsigned long)veil_test_ms(5000), NULL), VEIL_OK);
	}
	ck_assert(cfx_wait(&sink, &sink.n, 3, 5000));
	for (int qos = 0; qos <= 2; qos++) {
		struct cfx_msg *m = &sink.msgs[qos];
		ck_assert_str_eq(m->topic, "sensors/room1/temp");
		ck_assert_uint_eq(m->len, strlen(texts[qos]));
		ck_assert(memcmp(m->payload, texts[qos], m->len) == 0);
		ck_assert_int_eq(m->qos, qos);
		ck_assert(!m->retained);
		ck_assert(!m->is_signed);
		ck_assert(!m->plaintext);
		ck_assert_uint_eq(strlen(m->sender_hex), 16);
		if (qos > 0)
			ck_assert(m->seq > sink.msgs[qos - 1].seq);
	}
	/* The eavesdropper got every envelope but none of the plaintext. */
	ck_assert(cfx_plain_wait(&eve, 3, 5000));
	for (int qos = 0; qos <= 2; qos++) {
		ck_assert(!cfx_plain_saw(&eve, texts[qos], strlen(texts[qos])));
		ck_assert(!cfx_plain_saw(&eve, "temperature", 11));
	}
	ck_assert_uint_eq(eve.len[0], strlen(texts[0]) + VEIL_OVERHEAD);

	struct veil_client_stats st;
	veil_client_stats(pub, &st);
	ck_assert_uint_eq(st.published, 3);
	ck_assert_uint_eq(st.published_sealed, 3);
	ck_assert_uint_eq(st.connects, 1);
	veil_client_stats(sub, &st);
	ck_assert_uint_eq(st.received, 3);
	ck_assert_uint_eq(st.delivered, 3);
	ck_assert_uint_eq(st.refused, 0);

	ck_assert_int_eq(veil_client_disconnect(pub, veil_test_ms(1000)), VEIL_OK);
	veil_client_free(&pub);
	ck_assert_ptr_null(pub);
	veil_client_free(&sub);
	cfx_plain_close(&eve);
	cfx_sink_destroy(&sink);
}

START_TEST(test_roundtrip_v5)
{
	roundtrip(VEIL_MQTT_5);
}
END_TEST

START_TEST(test_roundtrip_311_token_password)
{
	/* MQTT 3.1.1 logs in with username = client id, password = token form. */
	roundtrip(VEIL_MQTT_311);
	/* The broker's stdout log is flushed when it exits. */
	ck_assert_int_eq(test_broker_stop(&F.broker), 0);
	ck_assert(test_broker_log_contains(&F.broker, "u'sensor-1')"));
}
END_TEST

START_TEST(test_v5_sends_auth_method)
{
	/* A broker without the plugin refuses the Veil Authentication Method:
	 * that proves CONNECT carried it, and that refusal maps to VEIL_ERR_AUTH. */
	struct cfx_opts po;
	cfx_options(&F, &po, "sensor-1", VEIL_MQTT_5, NULL);
	po.o.auth = VEIL_AUTH_TOKEN;
	struct veil_client *c = NULL;
	ck_assert_int_eq(veil_client_new(&po.o, &c), VEIL_OK);
	ck_assert_int_eq(veil_client_connect(c), VEIL_ERR_AUTH);
	struct veil_client_stats st;
	veil_client_stats(c, &st);
	ck_assert_int_eq(st.last_mqtt_rc, MQTTREASONCODE_BAD_AUTHENTICATION_METHOD);
	ck_assert(!veil_client_is_connected(c));
	veil_client_free(&c);
}
END_TEST

START_TEST(test_properties_retained_signed)
{
	struct cfx_opts po, so;
	cfx_options(&F, &po, "sensor-1", VEIL_MQTT_5, NULL);
	cfx_options(&F, &so, "dash-1", VEIL_MQTT_5, NULL);
	struct veil_client *pub = client_up(&po, NULL);

	/* Retained: published before anyone subscribes. */
	int tok = 0;
	ck_assert_int_eq(veil_client_publish(pub, "sensors/door", "open", 4, 1, true, &tok), VEIL_OK);
	ck_assert_int_eq(veil_client_wait(pub, tok, (unsigned long)veil_test_ms(5000), NULL), VEIL_OK);

	struct cfx_sink sink;
	cfx_sink_init(&sink);
	struct veil_client *sub = client_up(&so, &sink);
	ck_assert_int_eq(veil_client_subscribe(sub, "sensors/#", 1), VEIL_OK);
	ck_assert(cfx_wait(&sink, &sink.n, 1, 5000));
	ck_assert(sink.msgs[0].retained);
	ck_assert_uint_eq(sink.msgs[0].len, 4);
	ck_assert(memcmp(sink.msgs[0].payload, "open", 4) == 0);

	/* MQTT 5 user property travels (in clear, beside the envelope). */
	MQTTProperties props = MQTTProperties_initializer;
	MQTTProperty p;
	memset(&p, 0, sizeof(p));
	p.identifier = MQTTPROPERTY_CODE_USER_PROPERTY;
	p.value.data.data = (char *)"unit";
	p.value.data.len = 4;
	p.value.value.data = (char *)"celsius";
	p.value.value.len = 7;
	ck_assert_int_eq(MQTTProperties_add(&props, &p), 0);
	ck_assert_int_eq(veil_client_publish5(pub, "sensors/t", "19", 2, 1, false, &props, &tok), VEIL_OK);
	ck_assert_int_eq(veil_client_wait(pub, tok, (unsigned long)veil_test_ms(5000), NULL), VEIL_OK);
	MQTTProperties_free(&props);
	ck_assert(cfx_wait(&sink, &sink.n, 2, 5000));
	ck_assert_str_eq(sink.msgs[1].user_prop, "unit=celsius");
	ck_assert(!sink.msgs[1].retained);

	/* Signed policy: the receiver learns the sender's credential client id. */
	ck_assert_int_eq(veil_client_subscribe(sub, "secure/#", 1), VEIL_OK);
	ck_assert_int_eq(veil_client_publish(pub, "secure/cmd", "unlock", 6, 1, false, &tok), VEIL_OK);
	ck_assert_int_eq(veil_client_wait(pub, tok, (unsigned long)veil_test_ms(5000), NULL), VEIL_OK);
	ck_assert(cfx_wait(&sink, &sink.n, 3, 5000));
	ck_assert(sink.msgs[2].is_signed);
	ck_assert_str_eq(sink.msgs[2].sender_client_id, "sensor-1");
	ck_assert_str_eq(sink.msgs[2].sender_hex, sink.msgs[1].sender_hex);
	ck_assert_uint_eq(sink.n_refused, 0);

	veil_client_free(&pub);
	veil_client_free(&sub);
	cfx_sink_destroy(&sink);
}
END_TEST

START_TEST(test_policy_refusals_on_publish)
{
	struct cfx_opts po, so;
	cfx_options(&F, &po, "sensor-1", VEIL_MQTT_5, NULL);
	cfx_options(&F, &so, "dash-1", VEIL_MQTT_5, NULL);
	struct cfx_plain eve;
	cfx_plain_connect(&F, &eve, "eve", "#");
	struct cfx_sink sink;
	cfx_sink_init(&sink);
	struct veil_client *sub = client_up(&so, &sink);
	ck_assert_int_eq(veil_client_subscribe(sub, "public/#", 1), VEIL_OK);
	struct veil_client *pub = client_up(&po, NULL);

	/* No keyring entry: refused before anything is sent. */
	ck_assert_int_eq(veil_client_publish(pub, "other/topic", "secret-ish", 10, 1, false, NULL), VEIL_ERR_NO_POLICY);
	/* Plaintext policy: goes in clear, on purpose, and is marked so. */
	int tok = 0;
	ck_assert_int_eq(veil_client_publish(pub, "public/news", "hello all", 9, 1, false, &tok), VEIL_OK);
	ck_assert_int_eq(veil_client_wait(pub, tok, (unsigned long)veil_test_ms(5000), NULL), VEIL_OK);
	ck_assert(cfx_wait(&sink, &sink.n, 1, 5000));
	ck_assert(sink.msgs[0].plaintext);
	/* "hello all" went after the refused publish, on the same connection:
	 * once eve has it, anything sent before would have reached her first. */
	ck_assert(cfx_plain_wait(&eve, 1, 5000));
	ck_assert(!cfx_plain_saw(&eve, "secret-ish", 10));
	ck_assert(cfx_plain_saw(&eve, "hello all", 9));
	ck_assert_uint_eq(cfx_plain_count(&eve), 1);
	struct veil_client_stats st;
	veil_client_stats(pub, &st);
	ck_assert_uint_eq(st.publish_refused, 1);
	ck_assert_uint_eq(st.published, 1);
	ck_assert_uint_eq(st.published_sealed, 0);
	/* Bad arguments are caller errors. */
	ck_assert_int_eq(veil_client_publish(pub, "sensors/x", "a", 1, 3, false, NULL), VEIL_ERR_INVAL);
	ck_assert_int_eq(veil_client_publish(pub, "sensors/#", "a", 1, 0, false, NULL), VEIL_ERR_INVAL);

	veil_client_free(&pub);
	veil_client_free(&sub);
	cfx_plain_close(&eve);
	cfx_sink_destroy(&sink);
}
END_TEST

static bool refused_with(struct cfx_sink *s, size_t i, int err)
{
	pthread_mutex_lock(&s->lock);
	bool ok = i < s->n_refused && s->refused[i] == err;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

START_TEST(test_broker_side_attacks_refused)
{
	struct cfx_opts po, so, uo;
	cfx_options(&F, &po, "sensor-1", VEIL_MQTT_5, NULL);
	cfx_options(&F, &so, "dash-1", VEIL_MQTT_5, "dash-state");
	cfx_options(&F, &uo, "sensor-1", VEIL_MQTT_5, NULL);
	uo.o.client_id = "sensor-1b"; /* same device key, keyring without 'signed' */
	uo.o.keyring_path = F.keyring_nosign;
	struct cfx_plain eve;
	cfx_plain_connect(&F, &eve, "eve", "sensors/a");
	struct cfx_sink sink;
	cfx_sink_init(&sink);
	struct veil_client *pub = client_up(&po, NULL);
	/* An envelope the receiver never saw (it is not subscribed yet). */
	int tok = 0;
	ck_assert_int_eq(veil_client_publish(pub, "sensors/a", "reading 41", 10, 1, false, &tok), VEIL_OK);
	ck_assert_int_eq(veil_client_wait(pub, tok, (unsigned long)veil_test_ms(5000), NULL), VEIL_OK);
	struct veil_client *sub = client_up(&so, &sink);
	ck_assert_int_eq(veil_client_subscribe(sub, "sensors/#", 1), VEIL_OK);
	ck_assert_int_eq(veil_client_subscribe(sub, "secure/#", 1), VEIL_OK);

	ck_assert_int_eq(veil_client_publish(pub, "sensors/a", "reading 42", 10, 1, false, &tok), VEIL_OK);
	ck_assert_int_eq(veil_client_wait(pub, tok, (unsigned long)veil_test_ms(5000), NULL), VEIL_OK);
	ck_assert(cfx_wait(&sink, &sink.n, 1, 5000));
	ck_assert(cfx_plain_wait(&eve, 2, 5000));
	ck_assert_uint_eq(cfx_plain_count(&eve), 2);
	uint8_t env[512], unseen[512];
	size_t env_len = eve.len[1];
	ck_assert_uint_le(env_len, sizeof(env));
	ck_assert_uint_eq(eve.len[0], env_len);
	memcpy(env, eve.payload[1], env_len);
	memcpy(unseen, eve.payload[0], env_len);
	uint8_t moved[512];
	memcpy(moved, unseen, env_len);

	struct cfx_plain mallory;
	cfx_plain_connect(&F, &mallory, "mallory", NULL);
	/* 1. Moved to another topic under the same key: the AAD binds the topic.
	 * (An envelope the receiver saw would already be refused as a replay.) */
	cfx_plain_publish(&mallory, "sensors/b", moved, env_len);
	ck_assert(cfx_wait(&sink, &sink.n_refused, 1, 5000));
	ck_assert_msg(refused_with(&sink, 0, VEIL_ERR_DECRYPT), "got %s", veil_errname(sink.refused[0]));
	/* 2. Moved to a topic whose filter does not hold that key id. */
	cfx_plain_publish(&mallory, "secure/x", env, env_len);
	ck_assert(cfx_wait(&sink, &sink.n_refused, 2, 5000));
	ck_assert_msg(refused_with(&sink, 1, VEIL_ERR_UNSIGNED) || refused_with(&sink, 1, VEIL_ERR_WRONG_TOPIC),
	              "got %s", veil_errname(sink.refused[1]));
	/* 3. Replayed on its own topic. */
	cfx_plain_publish(&mallory, "sensors/a", env, env_len);
	ck_assert(cfx_wait(&sink, &sink.n_refused, 3, 5000));
	ck_assert_msg(refused_with(&sink, 2, VEIL_ERR_REPLAY), "got %s", veil_errname(sink.refused[2]));
	/* 4. Tampered ciphertext of an envelope the receiver has not seen yet
	 * (a seen one is already refused as a replay before decryption). */
	unseen[VEIL_HEADER_BYTES + 2] ^= 0x01;
	cfx_plain_publish(&mallory, "sensors/a", unseen, env_len);
	ck_assert(cfx_wait(&sink, &sink.n_refused, 4, 5000));
	ck_assert_msg(refused_with(&sink, 3, VEIL_ERR_DECRYPT), "got %s", veil_errname(sink.refused[3]));
	/* 5. Plaintext injected on a protected topic. */
	cfx_plain_publish(&mallory, "sensors/a", "open the door", 13);
	ck_assert(cfx_wait(&sink, &sink.n_refused, 5, 5000));
	ck_assert_msg(refused_with(&sink, 4, VEIL_ERR_PLAINTEXT), "got %s", veil_errname(sink.refused[4]));
	/* 6. Unsigned envelope (valid key) on a topic whose policy requires signatures. */
	struct veil_client *unsig = client_up(&uo, NULL);
	ck_assert_int_eq(veil_client_publish(unsig, "secure/x", "cmd", 3, 1, false, &tok), VEIL_OK);
	ck_assert_int_eq(veil_client_wait(unsig, tok, (unsigned long)veil_test_ms(5000), NULL), VEIL_OK);
	ck_assert(cfx_wait(&sink, &sink.n_refused, 6, 5000));
	ck_assert_msg(refused_with(&sink, 5, VEIL_ERR_UNSIGNED), "got %s", veil_errname(sink.refused[5]));

	/* 7. Tampered header (sequence moved forward): the AAD covers it. */
	unseen[VEIL_HEADER_BYTES + 2] ^= 0x01;
	unseen[23] ^= 0x40;
	cfx_plain_publish(&mallory, "sensors/a", unseen, env_len);
	ck_assert(cfx_wait(&sink, &sink.n_refused, 7, 5000));
	ck_assert_msg(refused_with(&sink, 6, VEIL_ERR_DECRYPT), "got %s", veil_errname(sink.refused[6]));

	/* None reached the app; all were counted by reason. Each of the seven
	 * has had its one outcome (a refusal, awaited above): none is pending. */
	ck_assert_uint_eq(sink.n, 1);
	struct veil_client_stats st;
	veil_client_stats(sub, &st);
	ck_assert_uint_eq(st.refused, 7);
	ck_assert_uint_eq(st.delivered, 1);
	ck_assert_uint_eq(st.refused_by_err[-VEIL_ERR_REPLAY], 1);
	ck_assert_uint_eq(st.refused_by_err[-VEIL_ERR_PLAINTEXT], 1);
	ck_assert_uint_eq(st.refused_by_err[-VEIL_ERR_DECRYPT], 3);

	veil_client_free(&unsig);
	veil_client_free(&pub);
	veil_client_free(&sub);
	cfx_plain_close(&mallory);
	cfx_plain_close(&eve);
	cfx_sink_destroy(&sink);
}
END_TEST

START_TEST(test_sender_and_receiver_restart)
{
	struct cfx_opts po, so;
	cfx_options(&F, &po, "sensor-1", VEIL_MQTT_311, "sensor-state");
	cfx_options(&F, &so, "dash-1", VEIL_MQTT_311, "dash-state");
	struct cfx_plain eve;
	cfx_plain_connect(&F, &eve, "eve", "sensors/#");
	struct cfx_sink sink;
	cfx_sink_init(&sink);
	struct veil_client *sub = client_up(&so, &sink);
	ck_assert_int_eq(veil_client_subscribe(sub, "sensors/#", 1), VEIL_OK);

	/* A sender restarted with the same state dir keeps going forward. */
	for (int round = 0; round < 2; round++) {
		struct veil_client *pub = client_up(&po, NULL);
		char text[32];
		snprintf(text, sizeof(text), "boot %d", round);
		int tok = 0;
		ck_assert_int_eq(veil_client_publish(pub, "sensors/a", text, strlen(text), 1, false, &tok),
		                 VEIL_OK);
		ck_assert_int_eq(veil_client_wait(pub, tok, (unsigned long)veil_test_ms(5000), NULL), VEIL_OK);
		ck_assert_int_eq(veil_client_disconnect(pub, veil_test_ms(1000)), VEIL_OK);
		veil_client_free(&pub);
		ck_assert(cfx_wait(&sink, &sink.n, (size_t)round + 1, 5000));
	}
	ck_assert_uint_eq(sink.n_refused, 0);
	ck_assert(memcmp(sink.msgs[1].payload, "boot 1", 6) == 0);
	ck_assert(sink.msgs[1].seq > sink.msgs[0].seq);
	ck_assert_str_eq(sink.msgs[0].sender_hex, sink.msgs[1].sender_hex);
	char seq_path[512];
	snprintf(seq_path, sizeof(seq_path), "%s/seq", po.state);
	ck_assert_int_eq(access(seq_path, F_OK), 0);

	/* A receiver restarted with its state dir still knows what it has seen. */
	veil_client_free(&sub);
	struct cfx_sink sink2;
	cfx_sink_init(&sink2);
	sub = client_up(&so, &sink2);
	ck_assert_int_eq(veil_client_subscribe(sub, "sensors/#", 1), VEIL_OK);
	ck_assert(cfx_plain_wait(&eve, 2, 5000));
	ck_assert_uint_eq(cfx_plain_count(&eve), 2);
	struct cfx_plain mallory;
	cfx_plain_connect(&F, &mallory, "mallory", NULL);
	cfx_plain_publish(&mallory, "sensors/a", eve.payload[1], eve.len[1]);
	ck_assert(cfx_wait(&sink2, &sink2.n_refused, 1, 5000));
	ck_assert_int_eq(sink2.refused[0], VEIL_ERR_REPLAY);
	ck_assert_uint_eq(sink2.n, 0);

	veil_client_free(&sub);
	cfx_plain_close(&mallory);
	cfx_plain_close(&eve);
	cfx_sink_destroy(&sink);
	cfx_sink_destroy(&sink2);
}
END_TEST

/* The persisted sequence mark, 0 when unreadable. */
static uint64_t seq_mark(const char *path)
{
	char text[64] = "";
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	bool ok = fgets(text, sizeof(text), f) != NULL;
	fclose(f);
	return ok && strncmp(text, "veil-seq-v1 ", 12) == 0 ? strtoull(text + 12, NULL, 10) : 0;
}

/* The session's state writer, while the clients run (neither is freed):
 * a receiver's windows, due after VEIL__SAVE_EVERY (64) accepted messages,
 * reach its replay file; a sender past half a block of sequence numbers has
 * the next block persisted ahead. */
START_TEST(test_state_writer)
{
	struct cfx_opts po, so;
	cfx_options(&F, &po, "sensor-1", VEIL_MQTT_5, "sensor-state");
	cfx_options(&F, &so, "dash-1", VEIL_MQTT_5, "dash-state");
	struct cfx_sink sink;
	cfx_sink_init(&sink);
	struct veil_client *sub = client_up(&so, &sink);
	ck_assert_int_eq(veil_client_subscribe(sub, "sensors/#", 1), VEIL_OK);
	struct veil_client *pub = client_up(&po, NULL);
	char seq_path[512], replay[512];
	snprintf(seq_path, sizeof(seq_path), "%s/seq", po.state);
	snprintf(replay, sizeof(replay), "%s/replay-dash-1", so.state);
	uint64_t mark = seq_mark(seq_path);
	ck_assert_uint_gt(mark, 0);
	ck_assert_int_ne(access(replay, F_OK), 0);
	for (int i = 0; i < 64; i++) {
		int tok = 0;
		ck_assert_int_eq(veil_client_publish(pub, "sensors/w", "w", 1, 1, false, &tok), VEIL_OK);
		ck_assert_int_eq(veil_client_wait(pub, tok, (unsigned long)veil_test_ms(5000), NULL), VEIL_OK);
	}
	ck_assert(cfx_wait(&sink, &sink.total, 64, 5000));
	ck_assert(VEIL_WAIT_UNTIL(access(replay, F_OK) == 0, 5000));
	ck_assert_uint_eq(seq_mark(seq_path), mark); /* a block is 4096 */
	for (unsigned i = 64; i < VEIL_SEQ_BLOCK / 2 + 1; i++)
		ck_assert_int_eq(veil_client_publish(pub, "sensors/w", "w", 1, 0, false, NULL), VEIL_OK);
	ck_assert(VEIL_WAIT_UNTIL(seq_mark(seq_path) == mark + VEIL_SEQ_BLOCK, 5000));
	ck_assert_uint_eq(sink.n_refused, 0);
	veil_client_free(&pub);
	veil_client_free(&sub);
	cfx_sink_destroy(&sink);
}
END_TEST

static void persistent_reconnect(int version)
{
	struct cfx_opts po, so;
	cfx_options(&F, &po, "sensor-1", version, NULL);
	cfx_options(&F, &so, "dash-1", version, "dash-state");
	so.o.persistent_session = true;
	struct cfx_sink sink;
	cfx_sink_init(&sink);
	struct veil_client *sub = client_up(&so, &sink);
	ck_assert_int_eq(veil_client_subscribe(sub, "sensors/#", 1), VEIL_OK);
	ck_assert_int_eq(veil_client_disconnect(sub, veil_test_ms(1000)), VEIL_OK);

	/* Queued by the broker for the offline persistent session. */
	struct cfx_sink psink;
	cfx_sink_init(&psink);
	struct veil_client *pub = client_up(&po, &psink);
	int tok = 0;
	ck_assert_int_eq(veil_client_publish(pub, "sensors/q", "while away", 10, 1, false, &tok), VEIL_OK);
	ck_assert_int_eq(veil_client_wait(pub, tok, (unsigned long)veil_test_ms(5000), NULL), VEIL_OK);
	ck_assert_int_eq(veil_client_connect(sub), VEIL_OK);
	ck_assert(cfx_wait(&sink, &sink.n, 1, 5000));
	ck_assert(memcmp(sink.msgs[0].payload, "while away", 10) == 0);

	/* Broker restart: both notice, reconnect with fresh logins, carry on. */
	ck_assert_int_eq(test_broker_stop(&F.broker) >= 0, 1);
	ck_assert(cfx_wait(&sink, &sink.lost, 1, 5000));
	ck_assert(cfx_wait(&psink, &psink.lost, 1, 5000));
	ck_assert_int_eq(test_broker_restart(&F.broker), 0);
	ck_assert_int_eq(veil_client_connect(sub), VEIL_OK);
	ck_assert_int_eq(veil_client_subscribe(sub, "sensors/#", 1), VEIL_OK);
	ck_assert_int_eq(veil_client_connect(pub), VEIL_OK);
	ck_assert_int_eq(veil_client_publish(pub, "sensors/q", "after restart", 13, 2, false, &tok), VEIL_OK);
	ck_assert_int_eq(veil_client_wait(pub, tok, (unsigned long)veil_test_ms(5000), NULL), VEIL_OK);
	ck_assert(cfx_wait(&sink, &sink.n, 2, 5000));
	ck_assert(memcmp(sink.msgs[1].payload, "after restart", 13) == 0);
	struct veil_client_stats st;
	veil_client_stats(sub, &st);
	ck_assert_uint_eq(st.connects, 3);
	ck_assert_uint_eq(st.refused, 0);

	veil_client_free(&pub);
	veil_client_free(&sub);
	cfx_sink_destroy(&sink);
	cfx_sink_destroy(&psink);
}

START_TEST(test_persistent_session_reconnect_v5)
{
	persistent_reconnect(VEIL_MQTT_5);
}
END_TEST

START_TEST(test_persistent_session_reconnect_311)
{
	persistent_reconnect(VEIL_MQTT_311);
}
END_TEST

START_TEST(test_bad_options)
{
	struct cfx_opts fo;
	cfx_options(&F, &fo, "sensor-1", VEIL_MQTT_5, NULL);
	struct veil_client *c = NULL;
	fo.o.version = 99;
	ck_assert_int_eq(veil_client_new(&fo.o, &c), VEIL_ERR_INVAL);
	fo.o.version = VEIL_CLIENT_OPTIONS_VERSION;
	fo.o.auth = VEIL_AUTH_TOKEN;
	fo.o.credential_path = NULL;
	ck_assert_int_eq(veil_client_new(&fo.o, &c), VEIL_ERR_INVAL);
	ck_assert_ptr_null(c);
	/* A keyring readable by others is refused. */
	cfx_options(&F, &fo, "sensor-1", VEIL_MQTT_5, NULL);
	ck_assert_int_eq(chmod(F.keyring, 0644), 0);
	ck_assert_int_eq(veil_client_new(&fo.o, &c), VEIL_ERR_PERM);
	ck_assert_ptr_null(c);
	ck_assert_int_eq(chmod(F.keyring, 0600), 0);
	/* A corrupt replay state is refused rather than silently reset. */
	cfx_options(&F, &fo, "dash-1", VEIL_MQTT_5, "bad-state");
	ck_assert_int_eq(mkdir(fo.state, 0700), 0);
	char p[512];
	snprintf(p, sizeof(p), "%s/replay", fo.state);
	ck_assert_int_eq(test_write_file(p, "garbage", 0600), 0);
	ck_assert_int_eq(veil_client_new(&fo.o, &c), VEIL_ERR_STATE);
	ck_assert_ptr_null(c);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("client");
	TCase *tc = veil_tcase("sync", 10);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_roundtrip_v5);
	tcase_add_test(tc, test_roundtrip_311_token_password);
	tcase_add_test(tc, test_v5_sends_auth_method);
	tcase_add_test(tc, test_properties_retained_signed);
	tcase_add_test(tc, test_policy_refusals_on_publish);
	tcase_add_test(tc, test_broker_side_attacks_refused);
	tcase_add_test(tc, test_sender_and_receiver_restart);
	tcase_add_test(tc, test_state_writer);
	tcase_add_test(tc, test_persistent_session_reconnect_v5);
	tcase_add_test(tc, test_persistent_session_reconnect_311);
	tcase_add_test(tc, test_bad_options);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
