/*
 * bench_client: one publisher to one subscriber through one local Mosquitto
 * that this program starts, comparing plain Paho MQTTClient with libveil
 * (unsigned envelopes, and signed envelopes whose credential and signature
 * the receiver verifies), all in the same run, MQTT 5, QoS 0 and 1, 256 B and
 * 4 KiB payloads.
 *
 * Throughput: the publisher sends N messages flat out (QoS 1: waiting for
 * each PUBACK, Paho's sync shape); messages/s = messages
 * received / (last receive - first send). Latency: one message at a time,
 * publish-to-callback (after opening, for libveil), median. Each
 * configuration runs ROUNDS times interleaved across the three flavours and
 * the median round is reported, because the machine is shared.
 *
 * VEIL_BENCH_QUICK=1 runs a short version (one round, fewer messages).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <MQTTClient.h>

#include "veil/veil.h"
#include "veil/client.h"
#include "broker.h"

enum flavour { PLAIN, VEIL_UNSIGNED, VEIL_SIGNED, N_FLAVOURS };
static const char *flavour_name[N_FLAVOURS] = { "plain paho", "libveil unsigned", "libveil signed" };

static char dir[256], uri[64], keyring[300], pub_key[300], pub_cred[300], sub_key[300], sub_cred[300];

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000U + (uint64_t)ts.tv_nsec;
}

/* ---- receive side, shared by both flavours ---- */

struct rx {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t count;
	uint64_t last_ns;
	uint64_t lat_ns;          /* latency of the last message */
};

static struct rx RX = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0 };

static void rx_got(const void *payload, size_t len)
{
	uint64_t t = now_ns();
	uint64_t sent = 0;
	if (len >= sizeof(sent))
		memcpy(&sent, payload, sizeof(sent));
	pthread_mutex_lock(&RX.lock);
	RX.count++;
	RX.last_ns = t;
	RX.lat_ns = t - sent;
	pthread_cond_signal(&RX.cond);
	pthread_mutex_unlock(&RX.lock);
}

static void rx_reset(void)
{
	pthread_mutex_lock(&RX.lock);
	RX.count = 0;
	pthread_mutex_unlock(&RX.lock);
}

/* Wait until count >= want or no progress for idle_ms. Returns count. */
static size_t rx_wait(size_t want, int idle_ms)
{
	pthread_mutex_lock(&RX.lock);
	size_t seen = RX.count;
	uint64_t last_progress = now_ns();
	while (RX.count < want) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 10000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&RX.cond, &RX.lock, &until);
		if (RX.count != seen) {
			seen = RX.count;
			last_progress = now_ns();
		} else if (now_ns() - last_progress > (uint64_t)idle_ms * 1000000U) {
			break;
		}
	}
	size_t n = RX.count;
	pthread_mutex_unlock(&RX.lock);
	return n;
}

static int plain_arrived(void *ctx, char *topic, int topic_len, MQTTClient_message *m)
{
	(void)ctx;
	(void)topic_len;
	rx_got(m->payload, (size_t)m->payloadlen);
	MQTTClient_freeMessage(&m);
	MQTTClient_free(topic);
	return 1;
}

/* QoS 1 completions of the plain publisher (one in flight at a time). */
static pthread_mutex_t dc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dc_cond = PTHREAD_COND_INITIALIZER;
static uint64_t dc_count;

static void plain_delivered(void *ctx, MQTTClient_deliveryToken dt)
{
	(void)ctx;
	(void)dt;
	pthread_mutex_lock(&dc_lock);
	dc_count++;
	pthread_cond_signal(&dc_cond);
	pthread_mutex_unlock(&dc_lock);
}

static void plain_lost(void *ctx, char *cause)
{
	(void)ctx;
	fprintf(stderr, "bench: plain connection lost: %s\n", cause ? cause : "?");
}

static void veil_arrived(void *ctx, const struct veil_message *m)
{
	(void)ctx;
	rx_got(m->payload, m->len);
}

static void veil_refused(void *ctx, const struct veil_refusal *r)
{
	(void)ctx;
	fprintf(stderr, "bench: refused on %s: %s\n", r->topic, veil_errname(r->err));
}

/* ---- clients ---- */

struct client {
	enum flavour f;
	MQTTClient mc;
	struct veil_client *vc;
};

static int client_up(struct client *c, enum flavour f, const char *id, bool subscriber, const char *topic, int qos)
{
	memset(c, 0, sizeof(*c));
	c->f = f;
	if (f == PLAIN) {
		MQTTClient_createOptions co = MQTTClient_createOptions_initializer;
		co.MQTTVersion = MQTTVERSION_5;
		if (MQTTClient_createWithOptions(&c->mc, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co) != 0 ||
		    MQTTClient_setCallbacks(c->mc, NULL, plain_lost, plain_arrived, plain_delivered) != 0)
			return -1;
		MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer5;
		MQTTProperties props = MQTTProperties_initializer;
		MQTTResponse r = MQTTClient_connect5(c->mc, &o, &props, NULL);
		int rc = r.reasonCode;
		MQTTResponse_free(r);
		if (rc != 0)
			return -1;
		if (subscriber) {
			r = MQTTClient_subscribe5(c->mc, topic, qos, NULL, NULL);
			rc = r.reasonCode;
			MQTTResponse_free(r);
			if (rc != qos)
				return -1;
		}
		return 0;
	}
	struct veil_client_options o;
	memset(&o, 0, sizeof(o));
	o.version = VEIL_CLIENT_OPTIONS_VERSION;
	o.server_uri = uri;
	o.client_id = id;
	o.mqtt_version = VEIL_MQTT_5;
	o.identity_path = subscriber ? sub_key : pub_key;
	o.credential_path = subscriber ? sub_cred : pub_cred;
	o.keyring_path = keyring;
	o.auth = VEIL_AUTH_NONE; /* plain broker, no plugin: measure the shim alone */
	if (veil_client_new(&o, &c->vc) != VEIL_OK ||
	    veil_client_set_callbacks(c->vc, NULL, veil_arrived, veil_refused, NULL) != VEIL_OK ||
	    veil_client_connect(c->vc) != VEIL_OK)
		return -1;
	if (subscriber && veil_client_subscribe(c->vc, topic, qos) != VEIL_OK)
		return -1;
	return 0;
}

static int client_publish(struct client *c, const char *topic, const void *p, size_t n, int qos)
{
	if (c->f == PLAIN) {
		MQTTClient_message m = MQTTClient_message_initializer;
		m.payload = (void *)p;
		m.payloadlen = (int)n;
		m.qos = qos;
		MQTTClient_deliveryToken dt;
		pthread_mutex_lock(&dc_lock);
		uint64_t before = dc_count;
		pthread_mutex_unlock(&dc_lock);
		MQTTResponse r = MQTTClient_publishMessage5(c->mc, topic, &m, &dt);
		int rc = r.reasonCode;
		MQTTResponse_free(r);
		/* Paho's sync client keeps one QoS>0 message in flight ("reliable")
		 * and its waitForCompletion polls in 100 ms steps: wait on the
		 * deliveryComplete callback, as libveil's veil_client_wait does. */
		if (rc == 0 && qos > 0) {
			pthread_mutex_lock(&dc_lock);
			while (dc_count == before)
				pthread_cond_wait(&dc_cond, &dc_lock);
			pthread_mutex_unlock(&dc_lock);
		}
		return rc;
	}
	int tok = 0;
	int rc = veil_client_publish5(c->vc, topic, p, n, qos, false, NULL, &tok);
	if (rc == VEIL_OK && qos > 0)
		rc = veil_client_wait(c->vc, tok, 5000);
	return rc;
}

static void client_down(struct client *c)
{
	if (c->f == PLAIN) {
		MQTTClient_disconnect(c->mc, 1000);
		MQTTClient_destroy(&c->mc);
	} else {
		veil_client_disconnect(c->vc, 1000);
		veil_client_free(&c->vc);
	}
}

/* ---- one measurement ---- */

struct result {
	double msgs_per_s;
	double median_us;
	double delivered;         /* fraction received */
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int measure(enum flavour f, int qos, size_t size, size_t n, size_t n_lat, struct result *out)
{
	static unsigned run;
	char topic[64], pid[32], sid[32];
	run++;
	snprintf(topic, sizeof(topic), "%s/%u", f == VEIL_SIGNED ? "benchs" : "bench", run);
	snprintf(pid, sizeof(pid), "pub-%u", run);
	snprintf(sid, sizeof(sid), "sub-%u", run);
	struct client pub, sub;
	rx_reset();
	if (client_up(&sub, f, sid, true, topic, qos) != 0 || client_up(&pub, f, pid, false, topic, qos) != 0) {
		fprintf(stderr, "bench: cannot connect %s clients\n", flavour_name[f]);
		return -1;
	}
	uint8_t *payload = malloc(size);
	randombytes_buf(payload, size);

	/* Throughput. */
	uint64_t t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		uint64_t t = now_ns();
		memcpy(payload, &t, sizeof(t));
		if (client_publish(&pub, topic, payload, size, qos) != 0) {
			fprintf(stderr, "bench: publish failed\n");
			break;
		}
	}
	size_t got = rx_wait(n, 2000);
	pthread_mutex_lock(&RX.lock);
	uint64_t t1 = RX.last_ns;
	pthread_mutex_unlock(&RX.lock);
	out->delivered = (double)got / (double)n;
	out->msgs_per_s = got && t1 > t0 ? (double)got / ((double)(t1 - t0) / 1e9) : 0;

	/* Latency, one message in flight. */
	uint64_t *lat = calloc(n_lat, sizeof(*lat));
	size_t n_ok = 0;
	for (size_t i = 0; i < n_lat; i++) {
		rx_reset();
		uint64_t t = now_ns();
		memcpy(payload, &t, sizeof(t));
		if (client_publish(&pub, topic, payload, size, qos) != 0 || rx_wait(1, 1000) < 1)
			continue;
		pthread_mutex_lock(&RX.lock);
		lat[n_ok++] = RX.lat_ns;
		pthread_mutex_unlock(&RX.lock);
	}
	qsort(lat, n_ok, sizeof(*lat), cmp_u64);
	out->median_us = n_ok ? (double)lat[n_ok / 2] / 1000.0 : 0;
	free(lat);
	free(payload);
	client_down(&pub);
	client_down(&sub);
	return 0;
}

/* ---- setup ---- */

static int make_device(struct veil_identity *authority, const char *id, const char *key_path, const char *cred_path)
{
	struct veil_identity *dev = NULL;
	struct veil_credential c;
	memset(&c, 0, sizeof(c));
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t n = 0;
	if (veil_identity_generate(&dev) != VEIL_OK || veil_identity_save(dev, key_path) != VEIL_OK)
		return -1;
	veil_identity_public(dev, c.device_pk);
	snprintf(c.client_id, sizeof(c.client_id), "%s", id);
	c.issued_at = (uint64_t)time(NULL) - 60;
	c.expires_at = (uint64_t)time(NULL) + 86400;
	int rc = veil_credential_issue(authority, &c, cred, sizeof(cred), &n);
	veil_identity_free(&dev);
	return rc == VEIL_OK && veil_credential_save(cred, n, cred_path) == VEIL_OK ? 0 : -1;
}

static int make_files(void)
{
	struct veil_identity *authority = NULL;
	if (veil_identity_generate(&authority) != VEIL_OK)
		return -1;
	snprintf(pub_key, sizeof(pub_key), "%s/pub.key", dir);
	snprintf(pub_cred, sizeof(pub_cred), "%s/pub.cred", dir);
	snprintf(sub_key, sizeof(sub_key), "%s/sub.key", dir);
	snprintf(sub_cred, sizeof(sub_cred), "%s/sub.cred", dir);
	int rc = make_device(authority, "bench-pub", pub_key, pub_cred) | make_device(authority, "bench-sub", sub_key,
	                                                                              sub_cred);
	uint8_t apk[VEIL_PK_BYTES], k1[VEIL_KEY_BYTES], k2[VEIL_KEY_BYTES];
	veil_identity_public(authority, apk);
	veil_identity_free(&authority);
	veil_topic_key_generate(k1);
	veil_topic_key_generate(k2);
	char a64[64], k164[64], k264[64], text[512];
	sodium_bin2base64(a64, sizeof(a64), apk, sizeof(apk), sodium_base64_VARIANT_ORIGINAL);
	sodium_bin2base64(k164, sizeof(k164), k1, sizeof(k1), sodium_base64_VARIANT_ORIGINAL);
	sodium_bin2base64(k264, sizeof(k264), k2, sizeof(k2), sodium_base64_VARIANT_ORIGINAL);
	snprintf(text, sizeof(text),
	         "authority %s\nkey bench/# 1 %s send\nkey benchs/# 2 %s send\npolicy benchs/# signed\n", a64, k164,
	         k264);
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));
	snprintf(keyring, sizeof(keyring), "%s/keyring", dir);
	rc |= test_write_file(keyring, text, 0600);
	sodium_memzero(text, sizeof(text));
	return rc;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(void)
{
	bool quick = getenv("VEIL_BENCH_QUICK") && !strcmp(getenv("VEIL_BENCH_QUICK"), "1");
	int rounds = quick ? 1 : 3;
	if (veil_init() != VEIL_OK || test_mkdtemp(dir, sizeof(dir)) != 0 || make_files() != 0) {
		fprintf(stderr, "bench: setup failed\n");
		return 1;
	}
	struct test_broker broker;
	/* No queue limits, so QoS 0 bursts are not dropped by the broker. */
	if (test_broker_start(&broker, "allow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n") != 0) {
		fprintf(stderr, "bench: cannot start mosquitto\n");
		return 1;
	}
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", broker.port);
	printf("bench_client: plain Paho vs libveil, MQTT 5, 1 publisher -> 1 subscriber via local mosquitto%s\n",
	       quick ? " (quick)" : "");
	printf("%-4s %-6s %-18s %12s %8s %12s %10s\n", "qos", "size", "flavour", "msgs/s", "ratio", "median us",
	       "delivered");
	static const int qoss[] = { 0, 1 };
	static const size_t sizes[] = { 256, 4096 };
	int status = 0;
	for (size_t qi = 0; qi < 2; qi++) {
		for (size_t si = 0; si < 2; si++) {
			int qos = qoss[qi];
			size_t size = sizes[si];
			size_t n = qos == 0 ? (quick ? 5000 : 40000) : (quick ? 500 : 3000);
			size_t n_lat = quick ? 200 : 1000;
			double tput[N_FLAVOURS][3], lat[N_FLAVOURS][3], dl[N_FLAVOURS][3];
			for (int r = 0; r < rounds; r++) {
				for (int f = 0; f < N_FLAVOURS; f++) {
					struct result res;
					if (measure((enum flavour)f, qos, size, n, n_lat, &res) != 0) {
						status = 1;
						memset(&res, 0, sizeof(res));
					}
					tput[f][r] = res.msgs_per_s;
					lat[f][r] = res.median_us;
					dl[f][r] = res.delivered;
				}
			}
			double base = 0;
			for (int f = 0; f < N_FLAVOURS; f++) {
				qsort(tput[f], (size_t)rounds, sizeof(double), cmp_double);
				qsort(lat[f], (size_t)rounds, sizeof(double), cmp_double);
				qsort(dl[f], (size_t)rounds, sizeof(double), cmp_double);
				double t = tput[f][rounds / 2];
				if (f == PLAIN)
					base = t;
				printf("%-4d %-6zu %-18s %12.0f %7.2fx %12.1f %9.1f%%\n", qos, size, flavour_name[f], t,
				       base > 0 ? t / base : 0, lat[f][rounds / 2], 100.0 * dl[f][0]);
			}
			fflush(stdout);
		}
	}
	test_broker_stop(&broker);
	test_broker_cleanup(&broker);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: cleanup of %s failed\n", dir);
	return status;
}
