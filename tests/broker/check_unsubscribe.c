/*
 * Unsubscribing through libveil (client-shim/client.c veil_client_unsubscribe,
 * client-shim/async.c veil_async_unsubscribe) against a real Mosquitto, over
 * MQTT 5 and 3.1.1: a subscriber holds two filters, drops one, and from then
 * on messages to the dropped filter are no longer delivered while the other
 * filter keeps delivering. The absence is proven by order, not by waiting:
 * one publisher sends QoS 1 to the dropped filter first (its PUBACK awaited),
 * then to the kept one; the broker delivers one publisher's messages in
 * order, so when the second arrives the first would already be there.
 * Unsubscribing from a filter never subscribed is answered by the broker
 * (MQTT 5: UNSUBACK 0x11, No subscription existed) and leaves the client
 * connected, its kept filter still delivering.
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

#define DROPPED "sensors/dropped"
#define KEPT "sensors/kept"

/* The publisher: libveil's sync client, each QoS 1 publish acknowledged
 * before the next leaves (the order the proof rests on). */
static struct veil_client *publisher_up(int version)
{
	struct cfx_opts po;
	cfx_options(&F, &po, "sensor-1", version, NULL);
	struct veil_client *c = NULL;
	ck_assert_int_eq(veil_client_new(&po.o, &c), VEIL_OK);
	ck_assert_int_eq(veil_client_connect(c), VEIL_OK);
	return c;
}

static void publish_acked(struct veil_client *pub, const char *topic, const char *text)
{
	int tok = 0;
	ck_assert_int_eq(veil_client_publish(pub, topic, text, strlen(text), 1, false, &tok), VEIL_OK);
	ck_assert_int_eq(veil_client_wait(pub, tok, (unsigned long)veil_test_ms(5000), NULL), VEIL_OK);
}

static void assert_msg(struct cfx_sink *s, size_t i, const char *topic, const char *text)
{
	pthread_mutex_lock(&s->lock);
	ck_assert_uint_gt(s->n, i);
	struct cfx_msg *m = &s->msgs[i];
	ck_assert_msg(strcmp(m->topic, topic) == 0 && m->len == strlen(text) && memcmp(m->payload, text, m->len) == 0,
	              "message %zu: '%s' '%.*s', want '%s' '%s'", i, m->topic, (int)m->len, (const char *)m->payload,
	              topic, text);
	pthread_mutex_unlock(&s->lock);
}

/* Both filters deliver; after the unsubscribe (done by the caller's front
 * end through unsub) only KEPT does. Messages 0-1 before, 2 after. */
static void check_dropped(struct veil_client *pub, struct cfx_sink *sink, void (*unsub)(void *ctx), void *ctx)
{
	publish_acked(pub, DROPPED, "dropped before");
	publish_acked(pub, KEPT, "kept before");
	ck_assert(cfx_wait(sink, &sink->total, 2, 5000));
	assert_msg(sink, 0, DROPPED, "dropped before");
	assert_msg(sink, 1, KEPT, "kept before");
	unsub(ctx);
	publish_acked(pub, DROPPED, "dropped after");
	publish_acked(pub, KEPT, "kept after");
	ck_assert(cfx_wait(sink, &sink->total, 3, 5000));
	/* Had "dropped after" been delivered, it would be message 2. */
	assert_msg(sink, 2, KEPT, "kept after");
}

/* After the unknown filter: still connected (checked by the caller), KEPT
 * still delivers (message 3); the publisher leaves. */
static void check_kept_and_close(struct veil_client **pub, struct cfx_sink *sink)
{
	publish_acked(*pub, KEPT, "kept last");
	ck_assert(cfx_wait(sink, &sink->total, 4, 5000));
	assert_msg(sink, 3, KEPT, "kept last");
	ck_assert_int_eq(veil_client_disconnect(*pub, veil_test_ms(1000)), VEIL_OK);
	veil_client_free(pub);
	cfx_sink_destroy(sink);
}

/* ---- synchronous ---- */

static struct veil_client *sync_sub;

static void sync_unsub(void *ctx)
{
	(void)ctx;
	ck_assert_int_eq(veil_client_unsubscribe(sync_sub, DROPPED), VEIL_OK);
}

static void sync_case(int version)
{
	struct cfx_opts so;
	cfx_options(&F, &so, "dash-1", version, NULL);
	struct cfx_sink sink;
	cfx_sink_init(&sink);
	ck_assert_int_eq(veil_client_new(&so.o, &sync_sub), VEIL_OK);
	ck_assert_int_eq(veil_client_set_callbacks(sync_sub, &sink, cfx_on_message, cfx_on_refusal, cfx_on_lost),
	                 VEIL_OK);
	ck_assert_int_eq(veil_client_connect(sync_sub), VEIL_OK);
	ck_assert_int_eq(veil_client_subscribe(sync_sub, DROPPED, 1), VEIL_OK);
	ck_assert_int_eq(veil_client_subscribe(sync_sub, KEPT, 1), VEIL_OK);
	struct veil_client *pub = publisher_up(version);
	check_dropped(pub, &sink, sync_unsub, NULL);

	ck_assert_int_eq(veil_client_unsubscribe(sync_sub, NULL), VEIL_ERR_INVAL);
	ck_assert_int_eq(veil_client_unsubscribe(NULL, KEPT), VEIL_ERR_INVAL);
	/* A filter never subscribed: VEIL_OK, the client stays connected and
	 * KEPT still delivers. MQTT 3.1.1's UNSUBACK has no code; over MQTT 5 it
	 * says 0x11 (No subscription existed), a success code, which the sync
	 * client reports as the async one does (client.h). */
	ck_assert_int_eq(veil_client_unsubscribe(sync_sub, "sensors/never"), VEIL_OK);
	ck_assert(veil_client_is_connected(sync_sub));
	check_kept_and_close(&pub, &sink);
	veil_client_free(&sync_sub);
}

START_TEST(test_sync_unsubscribe_v5)
{
	sync_case(VEIL_MQTT_5);
}
END_TEST

START_TEST(test_sync_unsubscribe_311)
{
	sync_case(VEIL_MQTT_311);
}
END_TEST

/* ---- asynchronous ---- */

/* Run one request (req returns its veil_err) and wait for its completion. */
#define ASYNC_DONE(d, call)                                                                                 \
	do {                                                                                                \
		cfx_done_init(&(d));                                                                            \
		ck_assert_int_eq((call), VEIL_OK);                                                          \
		ck_assert(cfx_done_wait(&(d), 1, 5000));                     \
	} while (0)

static struct veil_async *async_sub;

static void async_unsub(void *ctx)
{
	(void)ctx;
	struct cfx_done d;
	ASYNC_DONE(d, veil_async_unsubscribe(async_sub, DROPPED, cfx_on_done, &d));
	ck_assert_msg(d.rc == VEIL_OK && d.reason == 0, "rc %d, reason 0x%02x", d.rc, (unsigned)d.reason);
}

static void async_case(int version)
{
	struct cfx_opts so;
	cfx_options(&F, &so, "dash-1", version, NULL);
	struct cfx_sink sink;
	cfx_sink_init(&sink);
	ck_assert_int_eq(veil_async_new(&so.o, &async_sub), VEIL_OK);
	ck_assert_int_eq(veil_async_set_callbacks(async_sub, &sink, cfx_on_message, cfx_on_refusal, cfx_on_lost),
	                 VEIL_OK);
	struct cfx_done d;
	ASYNC_DONE(d, veil_async_connect(async_sub, cfx_on_done, &d));
	ck_assert_int_eq(d.rc, VEIL_OK);
	ASYNC_DONE(d, veil_async_subscribe(async_sub, DROPPED, 1, cfx_on_done, &d));
	ck_assert_int_eq(d.rc, VEIL_OK);
	ASYNC_DONE(d, veil_async_subscribe(async_sub, KEPT, 1, cfx_on_done, &d));
	ck_assert_int_eq(d.rc, VEIL_OK);
	struct veil_client *pub = publisher_up(version);
	check_dropped(pub, &sink, async_unsub, NULL);

	ck_assert_int_eq(veil_async_unsubscribe(async_sub, NULL, cfx_on_done, &d), VEIL_ERR_INVAL);
	ck_assert_int_eq(veil_async_unsubscribe(NULL, KEPT, cfx_on_done, &d), VEIL_ERR_INVAL);
	/* A filter never subscribed: the broker's MQTT 5 reason reaches done. */
	ASYNC_DONE(d, veil_async_unsubscribe(async_sub, "sensors/never", cfx_on_done, &d));
	ck_assert_msg(d.rc == VEIL_OK && d.reason == (version == VEIL_MQTT_5 ? 0x11 : 0), "rc %d, reason 0x%02x",
	              d.rc, (unsigned)d.reason);
	ck_assert(veil_async_is_connected(async_sub));
	check_kept_and_close(&pub, &sink);
	veil_async_free(&async_sub);
}

START_TEST(test_async_unsubscribe_v5)
{
	async_case(VEIL_MQTT_5);
}
END_TEST

START_TEST(test_async_unsubscribe_311)
{
	async_case(VEIL_MQTT_311);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("unsubscribe");
	TCase *tc = veil_tcase("unsubscribe", 10);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_sync_unsubscribe_v5);
	tcase_add_test(tc, test_sync_unsubscribe_311);
	tcase_add_test(tc, test_async_unsubscribe_v5);
	tcase_add_test(tc, test_async_unsubscribe_311);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
