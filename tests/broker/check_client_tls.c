/*
 * TLS options pass through libveil to Paho unchanged: both flavours reach a
 * Mosquitto TLS listener (self-signed certificate made with the openssl CLI)
 * with the caller's MQTTClient_SSLOptions / MQTTAsync_SSLOptions, and a
 * trust store that does not hold the broker's certificate fails the connect.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client_fixture.h"
#include "check_run.h"
#include "timing.h"

static struct cfx F;
static char ca[400], other_ca[400];

static void make_cert(const char *stem)
{
	char cmd[1600];
	snprintf(cmd, sizeof(cmd),
	         "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1 "
	         "-addext subjectAltName=IP:127.0.0.1 -keyout '%s/%s.key.pem' -out '%s/%s.pem' >/dev/null 2>&1 && "
	         "chmod 0644 '%s/%s.key.pem'",
	         F.dir, stem, F.dir, stem, F.dir, stem);
	ck_assert_int_eq(system(cmd), 0);
}

static void setup(void)
{
	cfx_setup_files(&F);
	cfx_device(&F, "sensor-1");
	cfx_device(&F, "dash-1");
	/* The broker may drop privileges: its certificate files must be readable. */
	ck_assert_int_eq(chmod(F.dir, 0755), 0);
	make_cert("broker");
	make_cert("other");
	snprintf(ca, sizeof(ca), "%s/broker.pem", F.dir);
	snprintf(other_ca, sizeof(other_ca), "%s/other.pem", F.dir);
	char conf[1200];
	snprintf(conf, sizeof(conf), "certfile %s/broker.pem\nkeyfile %s/broker.key.pem\nallow_anonymous true\n", F.dir,
	         F.dir);
	cfx_start(&F, conf);
	snprintf(F.uri, sizeof(F.uri), "ssl://127.0.0.1:%d", F.broker.port);
}

static void teardown(void)
{
	cfx_teardown(&F);
}

START_TEST(test_tls_sync_and_async)
{
	struct cfx_opts so, po;
	cfx_options(&F, &so, "dash-1", VEIL_MQTT_5, NULL);
	so.o.tls.ca_file = ca;
	struct cfx_sink sink;
	cfx_sink_init(&sink);
	struct veil_client *sub = NULL;
	ck_assert_int_eq(veil_client_new(&so.o, &sub), VEIL_OK);
	ck_assert_int_eq(veil_client_set_callbacks(sub, &sink, cfx_on_message, cfx_on_refusal, NULL), VEIL_OK);
	ck_assert_int_eq(veil_client_connect(sub), VEIL_OK);
	ck_assert_int_eq(veil_client_subscribe(sub, "sensors/#", 1), VEIL_OK);

	cfx_options(&F, &po, "sensor-1", VEIL_MQTT_311, NULL);
	po.o.tls.ca_file = ca;
	struct veil_async *pub = NULL;
	ck_assert_int_eq(veil_async_new(&po.o, &pub), VEIL_OK);
	ck_assert_int_eq(veil_async_connect(pub, NULL, NULL), VEIL_OK);
	ck_assert(VEIL_WAIT_UNTIL(veil_async_is_connected(pub), 5000));
	ck_assert_int_eq(veil_async_publish(pub, "sensors/tls", "over tls", 8, 1, false, NULL, NULL), VEIL_OK);
	ck_assert(cfx_wait(&sink, &sink.n, 1, 5000));
	ck_assert(memcmp(sink.msgs[0].payload, "over tls", 8) == 0);
	veil_async_free(&pub);
	veil_client_free(&sub);
	cfx_sink_destroy(&sink);
}
END_TEST

START_TEST(test_tls_wrong_trust_store)
{
	struct cfx_opts so;
	cfx_options(&F, &so, "dash-1", VEIL_MQTT_5, NULL);
	so.o.tls.ca_file = other_ca;
	so.o.connect_timeout_s = veil_test_ms(3000) / 1000;
	struct veil_client *c = NULL;
	ck_assert_int_eq(veil_client_new(&so.o, &c), VEIL_OK);
	ck_assert_int_eq(veil_client_connect(c), VEIL_ERR_MQTT);
	ck_assert(!veil_client_is_connected(c));
	veil_client_free(&c);
	/* Without a CA file the system's trust store does not know the
	 * self-signed broker certificate. */
	cfx_options(&F, &so, "dash-1", VEIL_MQTT_5, NULL);
	so.o.connect_timeout_s = veil_test_ms(3000) / 1000;
	ck_assert_int_eq(veil_client_new(&so.o, &c), VEIL_OK);
	ck_assert_int_ne(veil_client_connect(c), VEIL_OK);
	veil_client_free(&c);
	/* The right CA, but a certificate for another host name: refused
	 * unless the check is turned off. */
	char uri[80];
	snprintf(uri, sizeof(uri), "ssl://localhost:%d", F.broker.port);
	cfx_options(&F, &so, "dash-1", VEIL_MQTT_5, NULL);
	so.o.server_uri = uri;
	so.o.tls.ca_file = ca;
	so.o.connect_timeout_s = veil_test_ms(3000) / 1000;
	ck_assert_int_eq(veil_client_new(&so.o, &c), VEIL_OK);
	ck_assert_int_eq(veil_client_connect(c), VEIL_ERR_MQTT);
	veil_client_free(&c);
	so.o.tls.no_hostname_check = true;
	ck_assert_int_eq(veil_client_new(&so.o, &c), VEIL_OK);
	ck_assert_int_eq(veil_client_connect(c), VEIL_OK);
	veil_client_free(&c);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("client_tls");
	/* Each test's fixture makes two certificates (openssl, EC keys: an
	 * RSA key alone could take seconds on a loaded machine) and starts a
	 * broker; the test makes up to six TLS connections. */
	TCase *tc = veil_tcase("tls", 15);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_tls_sync_and_async);
	tcase_add_test(tc, test_tls_wrong_trust_store);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}
