/*
 * bench_client: one publisher to one subscriber through one local Mosquitto
 * that this program starts, comparing plain Paho MQTTClient (the baseline)
 * with libveil (unsigned envelopes, and signed envelopes whose credential and
 * signature the receiver verifies), all in the same run, MQTT 5, QoS 0 and 1,
 * 256 B and 4 KiB payloads.
 *
 * Throughput: the publisher sends N messages flat out (QoS 1: waiting for
 * each PUBACK, Paho's sync shape); messages/s = messages
 * received / (last receive - first send). Latency: one message at a time,
 * publish-to-callback (after opening, for libveil), median of the run.
 * Every case runs VEIL_BENCH_REPEAT times (default 5), interleaved plain,
 * unsigned, signed, plain, ...; each line is the median [min - max] over
 * the repetitions, ratios taken per repetition (bench_stats.h), because the
 * machine is shared. Figures are reported, never judged.
 *
 * Methodology, the same for every flavour:
 *   - one broker for the whole run, fresh clients and a fresh topic per run;
 *   - the subscriber runs in a process of its own (this program again,
 *     with --subscriber), as on a real fleet, where the sending and the
 *     reading device do not share a Paho runtime; VEIL_BENCH_SAME_PROCESS=1
 *     runs both clients in this process (see receiver_up);
 *   - the message count of a (QoS, size) is calibrated once, before
 *     anything is recorded, on plain Paho: enough messages that a plain run
 *     lasts RUN_SECONDS (runs of a few hundred ms swung 0.66x - 1.31x); every
 *     flavour then sends that same count;
 *   - one unrecorded warm-up pass over every case;
 *   - within a repetition the three flavours of a (QoS, size) run back to
 *     back, plain first and plain last in turn from one repetition to the
 *     next, so that neither side always follows the other (each ratio pair
 *     stays within one repetition).
 *
 * VEIL_BENCH_QUICK=1 runs shorter runs (fewer messages), same repetitions.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <MQTTClient.h>

#include "veil/veil.h"
#include "veil/client.h"
#include "broker.h"
#include "bench_stats.h"

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
	size_t want;              /* rx_wait's target: rx_got wakes it only then */
	uint64_t last_ns;
	uint64_t lat_ns;          /* latency of the last message */
};

static struct rx RX = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0 };

/* The condition variables wait on the monotonic clock (cond_init). */
static void cond_init(pthread_cond_t *c)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

static struct timespec ns_to_ts(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000U), (long)(ns % 1000000000U) };
	return ts;
}

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
	/* Only the message rx_wait waits for wakes it: a wake per message
	 * (a futex call in each thread) was measured, and cost the side that
	 * keeps a backlog longest the most. */
	if (RX.count == RX.want)
		pthread_cond_signal(&RX.cond);
	pthread_mutex_unlock(&RX.lock);
}

static void rx_reset(void)
{
	pthread_mutex_lock(&RX.lock);
	RX.count = 0;
	RX.want = 0;
	pthread_mutex_unlock(&RX.lock);
}

/* Wait until count >= want or no progress for idle_ms (looked at every
 * 10 ms). Returns count. */
static size_t rx_wait(size_t want, int idle_ms)
{
	pthread_mutex_lock(&RX.lock);
	RX.want = want;
	size_t seen = RX.count;
	uint64_t last_progress = now_ns();
	while (RX.count < want) {
		struct timespec until = ns_to_ts(now_ns() + 10000000U);
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

/* The newest message's receive time and latency. */
static void rx_last(uint64_t *last_ns, uint64_t *lat_ns)
{
	pthread_mutex_lock(&RX.lock);
	*last_ns = RX.last_ns;
	*lat_ns = RX.lat_ns;
	pthread_mutex_unlock(&RX.lock);
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
			struct timespec until = ns_to_ts(now_ns() + 5000000000U); /* as veil_client_wait below */
			pthread_mutex_lock(&dc_lock);
			while (dc_count == before && rc == 0)
				rc = pthread_cond_timedwait(&dc_cond, &dc_lock, &until);
			if (dc_count != before)
				rc = 0;
			pthread_mutex_unlock(&dc_lock);
		}
		return rc;
	}
	int tok = 0;
	int rc = veil_client_publish(c->vc, topic, p, n, qos, false, &tok);
	if (rc == VEIL_OK && qos > 0)
		rc = veil_client_wait(c->vc, tok, 5000, NULL);
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

/* ---- the subscriber: in a process of its own, or in this one ---- */

/* By default the subscriber runs in a child process (this program run
 * again with --subscriber), as a publishing device and a reading one do:
 * with both clients in one process they share Paho's one receive thread
 * and its global mutex, so each side's per-message work also slows the
 * other (measured on 2026-11-30: the shared receive thread is the
 * bottleneck at QoS 0). VEIL_BENCH_SAME_PROCESS=1 keeps both in this
 * process, the shape this benchmark had before.
 *
 * The child answers commands on its stdin, one line each, on its stdout:
 *   "reset"                 -> "ok"
 *   "wait <want> <idle_ms>" -> "<count> <last receive ns> <last latency ns>"
 * Times are CLOCK_MONOTONIC, the same clock in both processes. */
static bool same_process;
static char self_exe[PATH_MAX];

struct receiver {
	struct client local;
	pid_t pid;
	FILE *to, *from;
};

/* The child's one-line answer. Every command is answered in bounded time
 * (its waits end after idle_ms without a message, or at the count), so a
 * child silent for RECEIVER_REPLY_MS is stuck: it is killed and the run
 * fails instead of hanging the benchmark. One line per command, so stdio's
 * buffer is empty whenever poll is asked. */
enum { RECEIVER_REPLY_MS = 300000 };

static int receiver_line(struct receiver *r, char *out, size_t cap)
{
	struct pollfd p = { .fd = fileno(r->from), .events = POLLIN };
	int rc;
	do
		rc = poll(&p, 1, RECEIVER_REPLY_MS);
	while (rc < 0 && errno == EINTR);
	if (rc <= 0) {
		fprintf(stderr, "bench: the subscriber process did not answer in %d s; killed\n", RECEIVER_REPLY_MS / 1000);
		if (r->pid > 0)
			kill(r->pid, SIGKILL);
		return -1;
	}
	return fgets(out, (int)cap, r->from) ? 0 : -1;
}

static int receiver_up(struct receiver *r, enum flavour f, const char *id, const char *topic, int qos)
{
	memset(r, 0, sizeof(*r));
	r->pid = -1;
	rx_reset();
	if (same_process)
		return client_up(&r->local, f, id, true, topic, qos);
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) != 0)
		return -1;
	if (pipe2(out, O_CLOEXEC) != 0) {
		close(in[0]);
		close(in[1]);
		return -1;
	}
	char fl[16], q[16];
	snprintf(fl, sizeof(fl), "%d", (int)f);
	snprintf(q, sizeof(q), "%d", qos);
	char *const argv[] = { self_exe, (char *)"--subscriber", fl, q, (char *)id, (char *)topic, uri, dir, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	int rc = posix_spawn(&r->pid, self_exe, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	if (rc != 0) {
		r->pid = -1;
		close(in[1]);
		close(out[0]);
		return -1;
	}
	r->to = fdopen(in[1], "w");
	if (!r->to)
		close(in[1]);
	r->from = fdopen(out[0], "r");
	if (!r->from)
		close(out[0]);
	char line[64];
	if (!r->to || !r->from || receiver_line(r, line, sizeof(line)) != 0 || strcmp(line, "ready\n") != 0)
		return -1; /* receiver_down reaps it */
	return 0;
}

static int receiver_ask(struct receiver *r, const char *cmd, char *reply, size_t cap)
{
	if (fprintf(r->to, "%s\n", cmd) < 0 || fflush(r->to) != 0 || receiver_line(r, reply, cap) != 0)
		return -1;
	return 0;
}

static void receiver_reset(struct receiver *r)
{
	char reply[64];
	if (same_process)
		rx_reset();
	else if (receiver_ask(r, "reset", reply, sizeof(reply)) != 0)
		fprintf(stderr, "bench: the subscriber process stopped answering\n");
}

/* rx_wait and rx_last, wherever the subscriber runs. */
static size_t receiver_wait(struct receiver *r, size_t want, int idle_ms, uint64_t *last_ns, uint64_t *lat_ns)
{
	if (same_process) {
		size_t n = rx_wait(want, idle_ms);
		rx_last(last_ns, lat_ns);
		return n;
	}
	char cmd[64], reply[128];
	snprintf(cmd, sizeof(cmd), "wait %zu %d", want, idle_ms);
	unsigned long long n = 0, last = 0, lat = 0;
	if (receiver_ask(r, cmd, reply, sizeof(reply)) != 0 || sscanf(reply, "%llu %llu %llu", &n, &last, &lat) != 3)
		return 0;
	*last_ns = last;
	*lat_ns = lat;
	return (size_t)n;
}

static void receiver_down(struct receiver *r)
{
	if (same_process) {
		client_down(&r->local);
		return;
	}
	if (r->to)
		fclose(r->to); /* end of its commands: it disconnects and exits */
	else if (r->pid > 0)
		kill(r->pid, SIGKILL);
	if (r->from)
		fclose(r->from);
	if (r->pid > 0) {
		int st;
		waitpid(r->pid, &st, 0);
	}
}

/* The child: subscribe, then answer commands until stdin closes. */
static int subscriber_main(char **argv)
{
	enum flavour f = (enum flavour)atoi(argv[2]);
	int qos = atoi(argv[3]);
	snprintf(uri, sizeof(uri), "%s", argv[6]);
	snprintf(dir, sizeof(dir), "%s", argv[7]);
	snprintf(sub_key, sizeof(sub_key), "%s/sub.key", dir);
	snprintf(sub_cred, sizeof(sub_cred), "%s/sub.cred", dir);
	snprintf(keyring, sizeof(keyring), "%s/keyring", dir);
	cond_init(&RX.cond);
	struct client c;
	if (veil_init() != VEIL_OK || client_up(&c, f, argv[4], true, argv[5], qos) != 0) {
		fprintf(stderr, "bench: the %s subscriber process cannot connect\n", flavour_name[f]);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	char line[128];
	while (fgets(line, sizeof(line), stdin)) {
		size_t want = 0;
		int idle = 0;
		if (!strcmp(line, "reset\n")) {
			rx_reset();
			printf("ok\n");
		} else if (sscanf(line, "wait %zu %d", &want, &idle) == 2) {
			uint64_t last, lat;
			size_t n = rx_wait(want, idle);
			rx_last(&last, &lat);
			printf("%zu %llu %llu\n", n, (unsigned long long)last, (unsigned long long)lat);
		} else {
			break;
		}
		fflush(stdout);
	}
	client_down(&c);
	return 0;
}

/* ---- one measurement ---- */

enum { V_TPUT, V_LAT_US, V_DELIVERED, NVALUES };

/* One run of flavour f: fills v[V_*]. Returns -1 on an error (clients that
 * cannot connect, a publish that fails or is not acknowledged in time). */
static int measure(enum flavour f, int qos, size_t size, size_t n, size_t n_lat, double *v)
{
	static unsigned run;
	char topic[64], pid[32], sid[32];
	run++;
	snprintf(topic, sizeof(topic), "%s/%u", f == VEIL_SIGNED ? "benchs" : "bench", run);
	snprintf(pid, sizeof(pid), "pub-%u", run);
	snprintf(sid, sizeof(sid), "sub-%u", run);
	struct client pub;
	struct receiver sub;
	if (receiver_up(&sub, f, sid, topic, qos) != 0) {
		fprintf(stderr, "bench: cannot connect the %s subscriber\n", flavour_name[f]);
		receiver_down(&sub);
		return -1;
	}
	if (client_up(&pub, f, pid, false, topic, qos) != 0) {
		fprintf(stderr, "bench: cannot connect the %s publisher\n", flavour_name[f]);
		receiver_down(&sub);
		return -1;
	}
	uint8_t *payload = malloc(size);
	double *lat = calloc(n_lat, sizeof(*lat));
	int rc = payload && lat ? 0 : -1;
	if (payload)
		randombytes_buf(payload, size);

	/* Throughput. */
	uint64_t t0 = now_ns();
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint64_t t = now_ns();
		memcpy(payload, &t, sizeof(t));
		rc = client_publish(&pub, topic, payload, size, qos);
	}
	uint64_t t1 = 0, lat_ns = 0;
	size_t got = rc == 0 ? receiver_wait(&sub, n, 2000, &t1, &lat_ns) : 0;
	v[V_DELIVERED] = (double)got / (double)n;
	v[V_TPUT] = got && t1 > t0 ? (double)got / ((double)(t1 - t0) / 1e9) : 0;

	/* Latency, one message in flight; a message not seen within 1 s is
	 * left out of the median (QoS 0 may drop it). */
	size_t n_ok = 0;
	for (size_t i = 0; i < n_lat && rc == 0; i++) {
		receiver_reset(&sub);
		uint64_t t = now_ns();
		memcpy(payload, &t, sizeof(t));
		rc = client_publish(&pub, topic, payload, size, qos);
		if (rc != 0 || receiver_wait(&sub, 1, 1000, &t1, &lat_ns) < 1)
			continue;
		lat[n_ok++] = (double)lat_ns / 1000.0;
	}
	struct bench_summary ls;
	bench_summarize(lat, n_ok, &ls);
	v[V_LAT_US] = ls.median;
	if (rc != 0)
		fprintf(stderr, "bench: %s publish failed (%d)\n", flavour_name[f], rc);
	else if (n_ok == 0 || got == 0)
		fprintf(stderr, "bench: %s: nothing received\n", flavour_name[f]);
	free(lat);
	free(payload);
	client_down(&pub);
	receiver_down(&sub);
	return rc == 0 && n_ok > 0 && got > 0 ? 0 : -1;
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

/* ---- the cases: every (QoS, size) with each flavour, interleaved ---- */

static const int qoss[] = { 0, 1 };
static const size_t sizes[] = { 256, 4096 };
#define NCONFIGS (2 * 2)
#define NCASES (NCONFIGS * N_FLAVOURS)

static int config_qos(size_t cfg)
{
	return qoss[cfg / 2];
}

static size_t config_size(size_t cfg)
{
	return sizes[cfg % 2];
}

/* Messages per throughput run, per (QoS, size): calibrate() sets them. */
static size_t msgs[NCONFIGS];
#define RUN_SECONDS 2.0
#define RUN_SECONDS_QUICK 0.3

static size_t probe_count(int qos, bool quick)
{
	return qos == 0 ? (quick ? 5000 : 20000) : (quick ? 500 : 2000);
}

/* One plain Paho run per (QoS, size), unrecorded: the count that makes a
 * plain run last RUN_SECONDS, between the probe and 50 times it. */
static int calibrate(const struct bench_plan *p)
{
	double target = p->quick ? RUN_SECONDS_QUICK : RUN_SECONDS;
	for (size_t cfg = 0; cfg < NCONFIGS; cfg++) {
		int qos = config_qos(cfg);
		size_t probe = probe_count(qos, p->quick);
		double v[NVALUES];
		if (measure(PLAIN, qos, config_size(cfg), probe, 20, v) != 0)
			return -1;
		double want = v[V_TPUT] * target;
		msgs[cfg] = want < (double)probe ? probe : want > 50.0 * (double)probe ? 50 * probe : (size_t)want;
		printf("QoS %d, %zu B: %zu messages per throughput run (plain Paho at %.0f msgs/s in the probe)\n", qos,
		       config_size(cfg), msgs[cfg], v[V_TPUT]);
	}
	fflush(stdout);
	return 0;
}

/* The three flavours of one (QoS, size) run when its first case is asked
 * for, in an order that alternates between repetitions; the other two cases
 * return what was measured then. */
static double block[N_FLAVOURS][NVALUES];
static unsigned blocks_run[NCONFIGS];

static int run_case(void *arg, size_t c, double *v)
{
	const struct bench_plan *p = arg;
	size_t cfg = c / N_FLAVOURS;
	size_t f = c % N_FLAVOURS;
	if (f == 0) {
		bool plain_last = blocks_run[cfg]++ % 2 == 1;
		for (size_t i = 0; i < N_FLAVOURS; i++) {
			size_t run = plain_last ? N_FLAVOURS - 1 - i : i;
			if (measure((enum flavour)run, config_qos(cfg), config_size(cfg), msgs[cfg], p->quick ? 200 : 1000,
			            block[run]) != 0)
				return -1;
		}
	}
	memcpy(v, block[f], sizeof(block[f]));
	return 0;
}

static void report(const struct bench_table *t, void *ctx)
{
	(void)ctx;
	char a[BENCH_FMT_CAP], r[BENCH_FMT_CAP], l[BENCH_FMT_CAP], lr[BENCH_FMT_CAP];
	printf("%-18s %-28s %-24s %-24s %-24s %s\n", "flavour", "msgs/s", "vs plain", "latency us", "vs plain",
	       "delivered (min)");
	for (size_t cfg = 0; cfg < NCONFIGS; cfg++) {
		printf("QoS %d, %zu B:\n", config_qos(cfg), config_size(cfg));
		size_t base = cfg * N_FLAVOURS + PLAIN;
		for (size_t f = 0; f < N_FLAVOURS; f++) {
			size_t c = cfg * N_FLAVOURS + f;
			struct bench_summary d;
			bench_table_summary(t, c, V_DELIVERED, BENCH_NO_BASE, &d);
			bench_fmt_value(a, sizeof(a), t, c, V_TPUT);
			bench_fmt_value(l, sizeof(l), t, c, V_LAT_US);
			if (f == PLAIN) {
				r[0] = lr[0] = '\0';
			} else {
				bench_fmt_vs(r, sizeof(r), t, c, V_TPUT, base);
				bench_fmt_vs(lr, sizeof(lr), t, c, V_LAT_US, base);
			}
			printf("  %-16s %-28s %-24s %-24s %-24s %.1f%%\n", flavour_name[f], a, r, l, lr, 100.0 * d.min);
		}
		fflush(stdout);
	}
}

int main(int argc, char **argv)
{
	if (argc == 8 && !strcmp(argv[1], "--subscriber"))
		return subscriber_main(argv);
	signal(SIGPIPE, SIG_IGN); /* a subscriber process gone: an error, not the end of this one */
	const char *sp = getenv("VEIL_BENCH_SAME_PROCESS");
	same_process = sp && *sp && strcmp(sp, "0") != 0;
	ssize_t len = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (len <= 0) {
		fprintf(stderr, "bench: cannot find this program (/proc/self/exe)\n");
		return 1;
	}
	self_exe[len] = '\0';
	struct bench_plan plan;
	if (bench_plan_init(&plan, 900, 300) != 0)
		return 1;
	cond_init(&RX.cond);
	cond_init(&dc_cond);
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
	printf("bench_client: plain Paho vs libveil, MQTT 5, 1 publisher -> 1 subscriber via local mosquitto, %s\n",
	       same_process ? "both in this process (VEIL_BENCH_SAME_PROCESS=1)" : "the subscriber in a process of its own");
	int rc = calibrate(&plan);
	if (rc == 0)
		rc = bench_measure(&plan, NCASES, NVALUES, run_case, true, report, &plan);
	test_broker_stop(&broker);
	test_broker_cleanup(&broker);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: cleanup of %s failed\n", dir);
	return rc == 0 ? 0 : 1;
}
