/*
 * Integration tests for the asynchronous libveil client (client-shim/async.c)
 * against a real Mosquitto: round trips over MQTT 5 and 3.1.1 at QoS 0/1/2
 * with completion callbacks, publishing from several threads at once while
 * Paho delivers on its own thread, refusal of the Veil Authentication Method
 * by a broker without the plugin, and automatic reconnect (fresh login) after
 * a broker restart.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

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

static struct veil_async *async_up(struct cfx_opts *fo, struct cfx_sink *sink)
{
	struct veil_async *a = NULL;
	ck_assert_int_eq(veil_async_new(&fo->o, &a), VEIL_OK);
	if (sink)
		ck_assert_int_eq(veil_async_set_callbacks(a, sink, cfx_on_message, cfx_on_refusal, cfx_on_lost), VEIL_OK);
	struct cfx_done d;
	cfx_done_init(&d);
	ck_assert_int_eq(veil_async_connect(a, cfx_on_done, &d), VEIL_OK);
	ck_assert(cfx_done_wait(&d, 1, 5000));
	ck_assert_int_eq(d.rc, VEIL_OK);
	ck_assert(veil_async_is_connected(a));
	return a;
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
	struct veil_async *sub = async_up(&so, &sink);
	struct cfx_done sd;
	cfx_done_init(&sd);
	ck_assert_int_eq(veil_async_subscribe(sub, "sensors/#", 2, cfx_on_done, &sd), VEIL_OK);
	ck_assert(cfx_done_wait(&sd, 1, 5000));
	ck_assert_int_eq(sd.rc, VEIL_OK);
	struct veil_async *pub = async_up(&po, NULL);

	struct cfx_done pd;
	cfx_done_init(&pd);
	static const char *texts[3] = { "async qos 0 payload", "async qos 1 payload", "async qos 2 payload" };
	for (int qos = 0; qos <= 2; qos++)
		ck_assert_int_eq(veil_async_publish(pub, "sensors/x", texts[qos], strlen(texts[qos]), qos, qos == 2,
		                                    cfx_on_done, &pd),
		                 VEIL_OK);
	ck_assert(cfx_done_wait(&pd, 3, 5000));
	ck_assert_uint_eq(pd.n_ok, 3);
	ck_assert(cfx_wait(&sink, &sink.n, 3, 5000));
	/* QoS 0/1/2 may overtake each other on the wire: match by content. */
	for (int qos = 0; qos <= 2; qos++) {
		bool found = false;
		for (size_t i = 0; i < sink.n; i++) {
			struct cfx_msg *m = &sink.msgs[i];
			if (m->len == strlen(texts[qos]) && memcmp(m->payload, texts[qos], m->len) == 0) {
				found = true;
				ck_assert_int_eq(m->qos, qos);
				ck_assert(!m->retained); /* live delivery of a retained publish */
			}
		}
		ck_assert_msg(found, "qos %d message not delivered", qos);
		ck_assert(!cfx_plain_saw(&eve, texts[qos], strlen(texts[qos])));
	}
	ck_assert(!cfx_plain_saw(&eve, "payload", 7));
	if (version == VEIL_MQTT_5) {
		/* MQTT 5 properties pass through the async flavour too. */
		MQTTProperties props = MQTTProperties_initializer;
		MQTTProperty p;
		memset(&p, 0, sizeof(p));
		p.identifier = MQTTPROPERTY_CODE_USER_PROPERTY;
		p.value.data.data = (char *)"site";
		p.value.data.len = 4;
		p.value.value.data = (char *)"lab";
		p.value.value.len = 3;
		ck_assert_int_eq(MQTTProperties_add(&props, &p), 0);
		ck_assert_int_eq(veil_async_publish5(pub, "sensors/p", "with props", 10, 1, false, &props, cfx_on_done, &pd),
		                 VEIL_OK);
		MQTTProperties_free(&props);
		ck_assert(cfx_done_wait(&pd, 4, 5000));
		ck_assert_uint_eq(pd.n_ok, 4);
		ck_assert(cfx_wait(&sink, &sink.n, 4, 5000));
		ck_assert_str_eq(sink.msgs[3].user_prop, "site=lab");
		ck_assert(memcmp(sink.msgs[3].payload, "with props", 10) == 0);
	}
	/* Retained through the async client too. */
	struct cfx_sink sink2;
	cfx_sink_init(&sink2);
	struct cfx_opts so2;
	cfx_options(&F, &so2, "dash-1", version, NULL);
	so2.o.client_id = "dash-1-late";
	so2.o.auth = VEIL_AUTH_NONE; /* a token login needs the credential's client id */
	struct veil_async *late = async_up(&so2, &sink2);
	ck_assert_int_eq(veil_async_subscribe(late, "sensors/#", 1, NULL, NULL), VEIL_OK);
	ck_assert(cfx_wait(&sink2, &sink2.n, 1, 5000));
	ck_assert(sink2.msgs[0].retained);
	ck_assert(memcmp(sink2.msgs[0].payload, texts[2], strlen(texts[2])) == 0);

	struct cfx_done dd;
	cfx_done_init(&dd);
	ck_assert_int_eq(veil_async_disconnect(pub, veil_test_ms(1000), cfx_on_done, &dd), VEIL_OK);
	ck_assert(cfx_done_wait(&dd, 1, 5000));
	ck_assert_int_eq(dd.rc, VEIL_OK);
	veil_async_free(&pub);
	ck_assert_ptr_null(pub);
	veil_async_free(&sub);
	veil_async_free(&late);
	cfx_plain_close(&eve);
	cfx_sink_destroy(&sink);
	cfx_sink_destroy(&sink2);
}

START_TEST(test_async_roundtrip_v5)
{
	roundtrip(VEIL_MQTT_5);
}
END_TEST

START_TEST(test_async_roundtrip_311)
{
	roundtrip(VEIL_MQTT_311);
}
END_TEST

START_TEST(test_async_auth_method_refused)
{
	struct cfx_opts po;
	cfx_options(&F, &po, "sensor-1", VEIL_MQTT_5, NULL);
	po.o.auth = VEIL_AUTH_TOKEN;
	struct veil_async *a = NULL;
	ck_assert_int_eq(veil_async_new(&po.o, &a), VEIL_OK);
	struct cfx_done d;
	cfx_done_init(&d);
	ck_assert_int_eq(veil_async_connect(a, cfx_on_done, &d), VEIL_OK);
	ck_assert(cfx_done_wait(&d, 1, 5000));
	ck_assert_int_eq(d.rc, VEIL_ERR_AUTH);
	struct veil_client_stats st;
	veil_async_stats(a, &st);
	ck_assert_int_eq(st.last_mqtt_rc, MQTTREASONCODE_BAD_AUTHENTICATION_METHOD);
	ck_assert_uint_eq(st.connects, 0);
	veil_async_free(&a);
}
END_TEST

#define THREADS 4
#define PER_THREAD 25

struct pub_arg {
	struct veil_async *a;
	int index;
	int failures;
};

static void *publisher(void *p)
{
	struct pub_arg *arg = p;
	for (int i = 0; i < PER_THREAD; i++) {
		char text[64];
		snprintf(text, sizeof(text), "thread %d message %d", arg->index, i);
		if (veil_async_publish(arg->a, "sensors/mt", text, strlen(text), 1, false, NULL, NULL) != VEIL_OK)
			arg->failures++;
	}
	return NULL;
}

START_TEST(test_async_threads)
{
	struct cfx_opts po, so;
	cfx_options(&F, &po, "sensor-1", VEIL_MQTT_5, "sensor-state");
	cfx_options(&F, &so, "dash-1", VEIL_MQTT_5, "dash-state");
	struct cfx_sink sink;
	cfx_sink_init(&sink);
	struct veil_async *sub = async_up(&so, &sink);
	struct cfx_done sd;
	cfx_done_init(&sd);
	ck_assert_int_eq(veil_async_subscribe(sub, "sensors/#", 1, cfx_on_done, &sd), VEIL_OK);
	ck_assert(cfx_done_wait(&sd, 1, 5000));
	struct veil_async *pub = async_up(&po, NULL);
	pthread_t t[THREADS];
	struct pub_arg args[THREADS];
	for (int i = 0; i < THREADS; i++) {
		args[i] = (struct pub_arg){ pub, i, 0 };
		ck_assert_int_eq(pthread_create(&t[i], NULL, publisher, &args[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(args[i].failures, 0);
	}
	/* CFX_MAX_MSGS caps what the sink stores; total and the stats count
	 * everything. */
	ck_assert(cfx_wait(&sink, &sink.total, THREADS * PER_THREAD, 5000));
	struct veil_client_stats st;
	veil_async_stats(sub, &st);
	ck_assert_uint_eq(st.delivered, THREADS * PER_THREAD);
	ck_assert_uint_eq(st.refused, 0);
	/* Every sequence number was handed out once. */
	for (size_t i = 0; i < sink.n; i++)
		for (size_t j = i + 1; j < sink.n; j++)
			ck_assert(sink.msgs[i].seq != sink.msgs[j].seq);
	veil_async_stats(pub, &st);
	ck_assert_uint_eq(st.published_sealed, THREADS * PER_THREAD);
	veil_async_free(&pub);
	veil_async_free(&sub);
	cfx_sink_destroy(&sink);
}
END_TEST

struct resub {
	struct veil_async *a;
	struct cfx_done d;
};

/* Clean sessions lose subscriptions: resubscribe on every (re)connect;
 * r->d counts the SUBACKs (or a subscribe that could not be sent). */
static void on_connected(void *ctx, int rc, int reason_code)
{
	struct resub *r = ctx;
	if (rc != VEIL_OK)
		return;
	int src = veil_async_subscribe(r->a, "sensors/#", 1, cfx_on_done, &r->d);
	if (src != VEIL_OK)
		cfx_on_done(&r->d, src, 0);
}

static void auto_reconnect(int version)
{
	struct cfx_opts po, so;
	cfx_options(&F, &po, "sensor-1", version, NULL);
	cfx_options(&F, &so, "dash-1", version, NULL);
	po.o.auto_reconnect = true;
	so.o.auto_reconnect = true;
	struct cfx_sink sink;
	cfx_sink_init(&sink);
	struct veil_async *sub = NULL;
	ck_assert_int_eq(veil_async_new(&so.o, &sub), VEIL_OK);
	ck_assert_int_eq(veil_async_set_callbacks(sub, &sink, cfx_on_message, cfx_on_refusal, cfx_on_lost), VEIL_OK);
	struct resub rs;
	rs.a = sub;
	cfx_done_init(&rs.d);
	ck_assert_int_eq(veil_async_set_connected(sub, on_connected, &rs), VEIL_OK);
	ck_assert_int_eq(veil_async_connect(sub, NULL, NULL), VEIL_OK);
	ck_assert(cfx_done_wait(&rs.d, 1, 5000));
	ck_assert_int_eq(rs.d.rc, VEIL_OK);
	/* pconn counts the publisher's successful connects. */
	struct veil_async *pub = NULL;
	struct cfx_done pconn;
	cfx_done_init(&pconn);
	ck_assert_int_eq(veil_async_new(&po.o, &pub), VEIL_OK);
	ck_assert_int_eq(veil_async_set_connected(pub, cfx_on_done, &pconn), VEIL_OK);
	ck_assert_int_eq(veil_async_connect(pub, NULL, NULL), VEIL_OK);
	ck_assert(cfx_done_wait(&pconn, 1, 5000));

	ck_assert_int_eq(test_broker_stop(&F.broker), 0);
	ck_assert(cfx_wait(&sink, &sink.lost, 1, 5000));
	ck_assert_int_eq(test_broker_restart(&F.broker), 0);
	/* Both come back on their own, each with a fresh login; the subscriber
	 * has its subscription back (SUBACK) before anything is published. */
	ck_assert(cfx_done_wait(&rs.d, 2, 15000));
	ck_assert_int_eq(rs.d.rc, VEIL_OK);
	ck_assert(cfx_done_wait(&pconn, 2, 15000));
	struct cfx_done pd;
	cfx_done_init(&pd);
	ck_assert_int_eq(veil_async_publish(pub, "sensors/r", "back again", 10, 1, false, cfx_on_done, &pd), VEIL_OK);
	ck_assert(cfx_done_wait(&pd, 1, 5000));
	ck_assert_int_eq(pd.rc, VEIL_OK);
	ck_assert(cfx_wait(&sink, &sink.n, 1, 5000));
	ck_assert(memcmp(sink.msgs[0].payload, "back again", 10) == 0);
	struct veil_client_stats st;
	veil_async_stats(pub, &st);
	ck_assert_uint_eq(st.connects, 2);
	veil_async_stats(sub, &st);
	ck_assert_uint_eq(st.connects, 2);

	/* After an app disconnect nothing reconnects. The marker: the
	 * publisher loses its connection afterwards (a plain client takes its
	 * client id over) and comes back through the same reconnect path, with
	 * the same back-off; had the subscriber been set to reconnect, it would
	 * have started earlier and been back by then. */
	struct cfx_done dd;
	cfx_done_init(&dd);
	ck_assert_int_eq(veil_async_disconnect(sub, veil_test_ms(500), cfx_on_done, &dd), VEIL_OK);
	ck_assert(cfx_done_wait(&dd, 1, 5000));
	struct cfx_plain usurper;
	cfx_plain_connect(&F, &usurper, "sensor-1", NULL);
	ck_assert(cfx_done_wait(&pconn, 3, 15000));
	ck_assert(!veil_async_is_connected(sub));
	veil_async_stats(sub, &st);
	ck_assert_uint_eq(st.connects, 2);
	cfx_plain_close(&usurper);
	veil_async_free(&pub);
	veil_async_free(&sub);
	cfx_sink_destroy(&sink);
}

START_TEST(test_async_auto_reconnect_v5)
{
	auto_reconnect(VEIL_MQTT_5);
}
END_TEST

START_TEST(test_async_auto_reconnect_311)
{
	auto_reconnect(VEIL_MQTT_311);
	/* MQTT 3.1.1 token login each time (broker log flushed at exit). */
	ck_assert_int_eq(test_broker_stop(&F.broker), 0);
	ck_assert(test_broker_log_contains(&F.broker, "u'sensor-1'"));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("client_async");
	TCase *tc = veil_tcase("async", 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_async_roundtrip_v5);
	tcase_add_test(tc, test_async_roundtrip_311);
	tcase_add_test(tc, test_async_auth_method_refused);
	tcase_add_test(tc, test_async_threads);
	tcase_add_test(tc, test_async_auto_reconnect_v5);
	tcase_add_test(tc, test_async_auto_reconnect_311);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
