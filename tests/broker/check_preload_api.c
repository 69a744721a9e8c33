/*
 * libveil_preload.so on the Paho API paths Debian's sample programs do not
 * take: MQTTClient with callbacks and publishMessage (and an app that refuses
 * a delivery once, so Paho redelivers the same, already opened object), and
 * MQTTAsync with setMessageArrivedCallback and sendMessage (whose nested
 * MQTTAsync_send must pass through exactly once). The apps are this very
 * binary, re-executed with --app / --async-app under LD_PRELOAD, against a
 * real Mosquitto next to a plain observer that must see only envelopes.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <MQTTAsync.h>
#include <MQTTClient.h>
#include <sodium.h>

#include "check_run.h"
#include "preload_fixture.h"
#include "proc.h"
#include "timing.h"

/* ---- MQTTClient app: refuses each first delivery ---- */

static char self_exe[512];
static void *app_last;
static volatile int app_done;

static int app_ma(void *ctx, char *topic, int tlen, MQTTClient_message *m)
{
	(void)ctx;
	(void)tlen;
	if (m != app_last) {
		app_last = m;
		printf("deferred\n");
		fflush(stdout);
		return 0;
	}
	printf("got %s %.*s\n", topic, m->payloadlen, (const char *)m->payload);
	fflush(stdout);
	MQTTClient_freeMessage(&m);
	MQTTClient_free(topic);
	app_done++;
	return 1;
}

/* argv: --app sub|pub PORT TOPIC [MESSAGE] */
static int app_main(int argc, char **argv)
{
	if (argc < 5 || (strcmp(argv[2], "pub") == 0 && argc < 6))
		return 64;
	bool sub = strcmp(argv[2], "sub") == 0;
	char uri[64];
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%s", argv[3]);
	MQTTClient c;
	int rc = MQTTClient_create(&c, uri, "app", MQTTCLIENT_PERSISTENCE_NONE, NULL);
	if (rc != MQTTCLIENT_SUCCESS) {
		printf("create failed %d\n", rc);
		return 2;
	}
	if (sub && MQTTClient_setCallbacks(c, NULL, NULL, app_ma, NULL) != MQTTCLIENT_SUCCESS)
		return 3;
	MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
	/* Paho retries a refused delivery only when the socket is active again:
	 * a short keepalive makes a PINGRESP arrive soon. */
	o.keepAliveInterval = 1;
	if ((rc = MQTTClient_connect(c, &o)) != MQTTCLIENT_SUCCESS) {
		printf("connect failed %d\n", rc);
		return 4;
	}
	if (sub) {
		if (MQTTClient_subscribe(c, argv[4], 1) != MQTTCLIENT_SUCCESS)
			return 5;
		printf("subscribed\n");
		fflush(stdout);
		(void)VEIL_WAIT_UNTIL(app_done, 15000);
	} else {
		MQTTClient_message m = MQTTClient_message_initializer;
		m.payload = argv[5];
		m.payloadlen = (int)strlen(argv[5]);
		m.qos = 1;
		MQTTClient_deliveryToken dt = 0;
		if ((rc = MQTTClient_publishMessage(c, argv[4], &m, &dt)) != MQTTCLIENT_SUCCESS) {
			printf("publish failed %d\n", rc);
			return 6;
		}
		if (MQTTClient_waitForCompletion(c, dt, 5000) != MQTTCLIENT_SUCCESS)
			return 7;
	}
	MQTTClient_disconnect(c, 1000);
	MQTTClient_destroy(&c);
	return sub && !app_done ? 8 : 0;
}

/* Async flavour: setMessageArrivedCallback to receive, sendMessage to publish. */
static volatile int aflag;

static void a_ok(void *ctx, MQTTAsync_successData *d)
{
	(void)ctx;
	(void)d;
	aflag = 1;
}

static void a_fail(void *ctx, MQTTAsync_failureData *d)
{
	(void)ctx;
	(void)d;
	aflag = -1;
}

static int a_ma(void *ctx, char *topic, int tlen, MQTTAsync_message *m)
{
	(void)ctx;
	(void)tlen;
	printf("got %s %.*s\n", topic, m->payloadlen, (const char *)m->payload);
	fflush(stdout);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	app_done++;
	return 1;
}

static bool a_wait(void)
{
	(void)VEIL_WAIT_UNTIL(aflag != 0, 10000);
	bool ok = aflag == 1;
	aflag = 0;
	return ok;
}

/* argv: --async-app sub|pub PORT TOPIC [MESSAGE] */
static int async_app_main(int argc, char **argv)
{
	if (argc < 5 || (strcmp(argv[2], "pub") == 0 && argc < 6))
		return 64;
	bool sub = strcmp(argv[2], "sub") == 0;
	char uri[64];
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%s", argv[3]);
	MQTTAsync c;
	if (MQTTAsync_create(&c, uri, "async-app", MQTTCLIENT_PERSISTENCE_NONE, NULL) != MQTTASYNC_SUCCESS)
		return 2;
	if (sub && MQTTAsync_setMessageArrivedCallback(c, NULL, a_ma) != MQTTASYNC_SUCCESS)
		return 3;
	MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
	o.onSuccess = a_ok;
	o.onFailure = a_fail;
	if (MQTTAsync_connect(c, &o) != MQTTASYNC_SUCCESS || !a_wait())
		return 4;
	MQTTAsync_responseOptions r = MQTTAsync_responseOptions_initializer;
	r.onSuccess = a_ok;
	r.onFailure = a_fail;
	if (sub) {
		if (MQTTAsync_subscribe(c, argv[4], 1, &r) != MQTTASYNC_SUCCESS || !a_wait())
			return 5;
		printf("subscribed\n");
		fflush(stdout);
		(void)VEIL_WAIT_UNTIL(app_done, 15000);
	} else {
		MQTTAsync_message m = MQTTAsync_message_initializer;
		m.payload = argv[5];
		m.payloadlen = (int)strlen(argv[5]);
		m.qos = 1;
		if (MQTTAsync_sendMessage(c, argv[4], &m, &r) != MQTTASYNC_SUCCESS || !a_wait())
			return 6;
	}
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
	d.onSuccess = a_ok;
	d.onFailure = a_fail;
	if (MQTTAsync_disconnect(c, &d) == MQTTASYNC_SUCCESS)
		a_wait();
	MQTTAsync_destroy(&c);
	return sub && !app_done ? 8 : 0;
}

/* Sync subscriber with callbacks <- sync publishMessage, then async
 * subscriber (setMessageArrivedCallback) <- async sendMessage. */
static void app_exchange(const char *mode, bool refuses_once)
{
	char obs_out[300], sub_out[300], pub_out[300], secret[64], want[160];
	pid_t obs = preload_observer_start(obs_out, sizeof(obs_out));
	preload_out_path(sub_out, sizeof(sub_out), "app-sub");
	const char *sargv[] = { self_exe, mode, "sub", preload_env.port_s, PRELOAD_TOPIC, NULL };
	pid_t sub = preload_spawn(sargv, true, preload_env.sub_conf, sub_out);
	if (!test_file_wait(sub_out, "subscribed", 10000))
		test_file_dump("app sub", sub_out);
	ck_assert(test_file_has(sub_out, "subscribed"));
	snprintf(secret, sizeof(secret), "valve-%08x", randombytes_random());
	preload_out_path(pub_out, sizeof(pub_out), "app-pub");
	const char *pargv[] = { self_exe, mode, "pub", preload_env.port_s, PRELOAD_TOPIC, secret, NULL };
	int rc = test_wait_exit(preload_spawn(pargv, true, preload_env.pub_conf, pub_out), 15000);
	if (rc != 0)
		test_file_dump("app pub", pub_out);
	ck_assert_int_eq(rc, 0);
	rc = test_wait_exit(sub, 15000);
	if (rc != 0)
		test_file_dump("app sub", sub_out);
	ck_assert_int_eq(rc, 0);
	snprintf(want, sizeof(want), "got %s %s\n", PRELOAD_TOPIC, secret);
	ck_assert_msg(test_file_has(sub_out, want), "app did not get the plaintext");
	ck_assert(!refuses_once || test_file_has(sub_out, "deferred"));
	ck_assert(!test_file_has(sub_out, "DROPPED"));
	bool enveloped = test_file_wait_n(obs_out, PRELOAD_TOPIC " \x01", strlen(PRELOAD_TOPIC) + 2, 5000);
	test_stop(obs);
	if (!enveloped)
		test_file_dump("observer", obs_out);
	ck_assert_msg(!test_file_has(obs_out, secret), "plaintext visible to a plain subscriber");
	ck_assert(test_file_has_n(obs_out, PRELOAD_TOPIC " \x01", strlen(PRELOAD_TOPIC) + 2));
}

START_TEST(sync_callbacks_and_publish_message)
{
	app_exchange("--app", true);
}
END_TEST

START_TEST(async_arrived_callback_and_send_message)
{
	app_exchange("--async-app", false);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("preload-api");
	TCase *tc = veil_tcase("paho-api", 8);
	tcase_add_unchecked_fixture(tc, preload_plain_broker_start, preload_broker_stop);
	tcase_add_test(tc, sync_callbacks_and_publish_message);
	tcase_add_test(tc, async_arrived_callback_and_send_message);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--app") == 0)
		return app_main(argc, argv);
	if (argc > 1 && strcmp(argv[1], "--async-app") == 0)
		return async_app_main(argc, argv);
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1U);
	if (n <= 0)
		return EXIT_FAILURE;
	self_exe[n] = '\0';
	int rc = veil_check_run(suite());
	preload_cleanup();
	return rc;
}
