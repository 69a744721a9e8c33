/*
 * bench_cluster_scale: one worker process of the cluster scale benchmark
 * (bench/cluster_scale.sh, docs/SCALING.md "Scale"). It holds COUNT
 * key-service devices, each its own MQTT 3.1.1 connection (Paho MQTTAsync:
 * one pair of threads for all of them), logged in through HAProxy with a
 * Veil credential token (version 2, the deployment's audience); the first
 * PUBLISHERS of them also publish sealed envelopes.
 *
 *   bench_cluster_scale --uri URI --authority KEY --audience NAME --first I --count N
 *       --publishers P --ctl DIR --out FILE [--window W] [--deadline S]
 *
 * Provisioning is in-process: an identity and a credential (role sensor,
 * client id s<I..I+N-1>) issued here with the authority's key, as `veil
 * credential issue` would, and a fresh token at each device's connect.
 * The devices are the key-service devices of bench_keyd_revoke.c (core/
 * bundle.c only): each subscribes to its bundle topic, sends a key request
 * to veil-keyd, opens every bundle sealed to it and acknowledges it. A
 * publisher seals (veil_envelope_seal, unsigned) with the key of its
 * bundle's current grant and publishes at QoS 1 on fleet/<id>/t, one
 * message in flight: the next leaves when the broker acknowledged the last
 * (a closed loop, so the figure is what the deployment carries).
 *
 * Connects are paced: at most W (default 200) in flight. A connect that
 * fails, and a connection lost, is counted and never retried: the script
 * fails loudly on either instead of quietly holding fewer clients.
 * The script steers the phase through DIR/phase ("hold": idle; "publish";
 * "stop": disconnect and exit); --deadline bounds the whole run (default
 * 900 s). Several times a second it writes FILE (key=value, one line):
 * provisioning time, connects started/ok/failed, connected, subscribed,
 * keyed (holds a bundle), lost, bundles opened, bundles it could not open
 * (each answered by a new request), acked and
 * failed publishes, and the wall-clock millisecond time of the first
 * connect and of the last successful one. It judges nothing.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>
#include <sodium.h>

#include "veil/veil.h"
#include "../core/bundle.h"
#include "bench_keyd_common.h"
#include "bench_stats.h"

#define RX_MAX 4 /* receive keys a device keeps (the oldest goes) */
#define PAYLOAD_BYTES 64

struct worker;

struct dev {
	struct worker *w;
	char cid[24];
	char topic_req[64], topic_bundle[64], topic_pub[64];
	struct veil_identity *id;
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cred_len;
	struct veil_credential c;
	struct veil__rxkey *rx[RX_MAX];
	size_t n_rx;
	uint8_t nonce[VEIL__DEVMSG_NONCE_BYTES]; /* of its latest device message */
	uint64_t held_version, last_ts;
	MQTTAsync m;
	bool started, connected, subscribed, lost, failed;
	/* publishers only */
	bool publisher, has_key, in_flight;
	uint8_t key[VEIL_KEY_BYTES];
	uint32_t key_id;
	uint8_t sender[VEIL_SENDER_ID_BYTES];
	uint64_t seq;
};

struct worker {
	pthread_mutex_t mu;
	struct dev *devs;
	size_t n;
	uint8_t auth_pk[VEIL_PK_BYTES];
	const char *audience;
	bool publishing;
	/* counters (under mu) */
	long started, ok, conn_failed, connected, subscribed, keyed, lost, bundles, open_errors, send_errors;
	long acked, pub_failed, pending_connects;
	long long first_connect_ms, last_connect_ms;
	double provision_s;
};

static struct worker W = { .mu = PTHREAD_MUTEX_INITIALIZER };
static volatile sig_atomic_t stop_now;

static void on_signal(int sig)
{
	(void)sig;
	stop_now = 1;
}

static long long wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- key-service device (as bench_keyd_revoke.c's) ------------------------ */

/* A device message (request or acknowledgement) built under W.mu, sent
 * after it is released: no lock of ours is held while Paho is called (its
 * callbacks take W.mu, some with Paho's own lock held). */
struct devmsg {
	uint8_t b[VEIL__DEVMSG_MAX];
	size_t n;
};

/* A request or acknowledgement with a fresh receive key (kept) and nonce.
 * Called with W.mu held. */
static int dev_build(struct dev *v, uint8_t kind, struct devmsg *out)
{
	struct veil__devmsg_params p = { .device = v->id, .credential = v->cred, .credential_len = v->cred_len,
		                         .client_id = v->cid, .kind = kind, .version = v->held_version };
	return bench_keyd_devmsg(&p, v->rx, &v->n_rx, RX_MAX, v->nonce, &v->last_ts, out->b, sizeof(out->b), &out->n);
}

/* Send a built device message; W.mu not held. */
static void dev_post(struct dev *v, const struct devmsg *m)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	if (m->n && MQTTAsync_send(v->m, v->topic_req, (int)m->n, m->b, 1, 0, &ro) == MQTTASYNC_SUCCESS)
		return;
	pthread_mutex_lock(&W.mu);
	W.send_errors++;
	pthread_mutex_unlock(&W.mu);
}

/* Open a bundle as a device does (docs/PROTOCOL.md section 12). W.mu held. */
static int dev_open(struct dev *v, const uint8_t *buf, size_t len)
{
	struct veil__grant send;
	bool has = false, first = !v->held_version;
	int rc = bench_keyd_bundle_open(W.auth_pk, &v->c, v->rx, &v->n_rx, &v->held_version, v->nonce, buf, len,
	                                v->publisher ? &send : NULL, v->publisher ? &has : NULL);
	if (rc == VEIL_OK && has) { /* a publisher seals with it from now on */
		memcpy(v->key, send.key, sizeof(v->key));
		v->key_id = send.key_id;
		v->has_key = true;
	}
	sodium_memzero(&send, sizeof(send));
	if (rc == VEIL_OK && first)
		W.keyed++;
	return rc;
}

/* ---- publishing ------------------------------------------------------------ */

static void on_pub_ok(void *ctx, MQTTAsync_successData *r);
static void on_pub_fail(void *ctx, MQTTAsync_failureData *r);

struct pubmsg {
	uint8_t b[256];
	size_t n; /* 0: nothing to send */
};

/* The publisher's next sealed message, if it may send one (then it is in
 * flight). W.mu held. */
static void pub_build(struct dev *v, struct pubmsg *out)
{
	out->n = 0;
	if (!W.publishing || !v->publisher || !v->has_key || v->in_flight || !v->connected || v->lost)
		return;
	uint8_t pt[PAYLOAD_BYTES];
	memset(pt, 'x', sizeof(pt));
	struct veil_seal_params p = { .key = v->key, .key_id = v->key_id, .seq = ++v->seq };
	memcpy(p.sender, v->sender, sizeof(p.sender));
	if (veil_envelope_seal(&p, v->topic_pub, pt, sizeof(pt), out->b, sizeof(out->b), &out->n) != VEIL_OK) {
		out->n = 0;
		W.send_errors++;
		return;
	}
	v->in_flight = true;
}

/* Send it; W.mu not held. */
static void pub_post(struct dev *v, const struct pubmsg *m)
{
	if (!m->n)
		return;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess = on_pub_ok;
	ro.onFailure = on_pub_fail;
	ro.context = v;
	if (MQTTAsync_send(v->m, v->topic_pub, (int)m->n, m->b, 1, 0, &ro) == MQTTASYNC_SUCCESS)
		return;
	pthread_mutex_lock(&W.mu);
	v->in_flight = false;
	W.send_errors++;
	pthread_mutex_unlock(&W.mu);
}

static void on_pub_ok(void *ctx, MQTTAsync_successData *r)
{
	struct dev *v = ctx;
	(void)r;
	struct pubmsg next;
	pthread_mutex_lock(&W.mu);
	v->in_flight = false;
	W.acked++;
	pub_build(v, &next);
	pthread_mutex_unlock(&W.mu);
	pub_post(v, &next);
}

static void on_pub_fail(void *ctx, MQTTAsync_failureData *r)
{
	struct dev *v = ctx;
	(void)r;
	pthread_mutex_lock(&W.mu);
	v->in_flight = false;
	W.pub_failed++;
	pthread_mutex_unlock(&W.mu);
}

/* ---- Paho callbacks ---------------------------------------------------------- */

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct dev *v = ctx;
	(void)topic_len;
	struct devmsg ack = { .n = 0 };
	struct pubmsg pub = { .n = 0 };
	pthread_mutex_lock(&W.mu);
	int rc = m->payloadlen > 0 ? dev_open(v, m->payload, (size_t)m->payloadlen) : VEIL_ERR_INVAL;
	if (rc == VEIL_OK) {
		W.bundles++;
		if (dev_build(v, VEIL__KIND_ACK, &ack) != 0)
			ack.n = 0;
		pub_build(v, &pub);
	} else if (rc != VEIL_ERR_OUTDATED) {
		/* Sealed to a receive key it no longer holds (keyd refused the
		 * acknowledgement that carried the newer one, e.g. stale-token
		 * after waiting in keyd's queue): it asks again, as libveil's
		 * device does when it has no usable bundle. */
		W.open_errors++;
		if (dev_build(v, VEIL__KIND_REQUEST, &ack) != 0)
			ack.n = 0;
	}
	pthread_mutex_unlock(&W.mu);
	if (rc != VEIL_ERR_OUTDATED)
		dev_post(v, &ack);
	pub_post(v, &pub);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void on_lost(void *ctx, char *cause)
{
	struct dev *v = ctx;
	(void)cause;
	pthread_mutex_lock(&W.mu);
	if (v->connected && !v->lost) {
		v->lost = true;
		W.lost++;
		W.connected--;
	}
	pthread_mutex_unlock(&W.mu);
}

static void on_subscribed(void *ctx, MQTTAsync_successData *r)
{
	struct dev *v = ctx;
	(void)r;
	struct devmsg req;
	pthread_mutex_lock(&W.mu);
	v->subscribed = true;
	W.subscribed++;
	if (dev_build(v, VEIL__KIND_REQUEST, &req) != 0)
		req.n = 0;
	pthread_mutex_unlock(&W.mu);
	dev_post(v, &req);
}

static void on_sub_fail(void *ctx, MQTTAsync_failureData *r)
{
	(void)ctx;
	(void)r;
	pthread_mutex_lock(&W.mu);
	W.send_errors++;
	pthread_mutex_unlock(&W.mu);
}

static void on_connected(void *ctx, MQTTAsync_successData *r)
{
	struct dev *v = ctx;
	(void)r;
	pthread_mutex_lock(&W.mu);
	v->connected = true;
	W.ok++;
	W.connected++;
	W.pending_connects--;
	W.last_connect_ms = wall_ms();
	pthread_mutex_unlock(&W.mu);
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess = on_subscribed;
	ro.onFailure = on_sub_fail;
	ro.context = v;
	if (MQTTAsync_subscribe(v->m, v->topic_bundle, 1, &ro) != MQTTASYNC_SUCCESS)
		on_sub_fail(v, NULL);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *r)
{
	struct dev *v = ctx;
	pthread_mutex_lock(&W.mu);
	if (W.conn_failed < 5)
		fprintf(stderr, "bench_cluster_scale: %s: connect failed: code %d %s\n", v->cid, r ? r->code : 0,
		        r && r->message ? r->message : "");
	v->failed = true;
	W.conn_failed++;
	W.pending_connects--;
	pthread_mutex_unlock(&W.mu);
}

/* ---- the worker ---------------------------------------------------------------- */

static int dev_provision(struct dev *v, const struct veil_identity *auth, long i, bool publisher)
{
	v->w = &W;
	v->publisher = publisher;
	snprintf(v->cid, sizeof(v->cid), "s%ld", i);
	snprintf(v->topic_req, sizeof(v->topic_req), "%s%s", VEIL__TOPIC_REQ_PREFIX, v->cid);
	snprintf(v->topic_bundle, sizeof(v->topic_bundle), "%s%s", VEIL__TOPIC_BUNDLE_PREFIX, v->cid);
	snprintf(v->topic_pub, sizeof(v->topic_pub), "fleet/%s/t", v->cid);
	if (veil_identity_generate(&v->id) != VEIL_OK ||
	    bench_keyd_credential(auth, v->id, v->cid, "sensor", v->cred, &v->cred_len) != VEIL_OK ||
	    veil_credential_parse(v->cred, v->cred_len, &v->c) != VEIL_OK)
		return -1;
	uint8_t pk[VEIL_PK_BYTES];
	veil_identity_public(v->id, pk);
	veil_sender_id(pk, v->sender);
	return 0;
}

static int dev_connect(struct dev *v, const char *uri)
{
	uint8_t tok[VEIL_TOKEN_MAX];
	char pw[VEIL_PASSWORD_MAX];
	size_t tl = 0;
	v->started = true;
	if (veil_token_create_for(v->id, v->cred, v->cred_len, v->cid, W.audience, (uint64_t)time(NULL), tok,
	                          sizeof(tok), &tl) != VEIL_OK ||
	    veil_token_to_password(tok, tl, pw, sizeof(pw)) != VEIL_OK)
		return -1;
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	co.MQTTVersion = MQTTVERSION_3_1_1;
	if (MQTTAsync_createWithOptions(&v->m, uri, v->cid, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co) !=
	            MQTTASYNC_SUCCESS ||
	    MQTTAsync_setCallbacks(v->m, v, on_lost, on_message, NULL) != MQTTASYNC_SUCCESS)
		return -1;
	MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
	o.MQTTVersion = MQTTVERSION_3_1_1;
	o.username = v->cid;
	o.password = pw;
	o.cleansession = 1;
	o.keepAliveInterval = 60; /* idle devices ping, as a fleet's do */
	o.connectTimeout = 30;
	o.onSuccess = on_connected;
	o.onFailure = on_connect_fail;
	o.context = v;
	int rc = MQTTAsync_connect(v->m, &o) == MQTTASYNC_SUCCESS ? 0 : -1;
	sodium_memzero(pw, sizeof(pw));
	sodium_memzero(tok, sizeof(tok));
	return rc;
}

static void write_status(const char *path)
{
	char tmp[1100];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	pthread_mutex_lock(&W.mu);
	fprintf(f,
	        "now_ms=%lld provision_s=%.3f started=%ld ok=%ld conn_failed=%ld connected=%ld subscribed=%ld keyed=%ld "
	        "lost=%ld bundles=%ld open_errors=%ld send_errors=%ld acked=%ld pub_failed=%ld first_connect_ms=%lld "
	        "last_connect_ms=%lld\n",
	        wall_ms(), W.provision_s, W.started, W.ok, W.conn_failed, W.connected, W.subscribed, W.keyed, W.lost,
	        W.bundles, W.open_errors, W.send_errors, W.acked, W.pub_failed, W.first_connect_ms,
	        W.last_connect_ms);
	pthread_mutex_unlock(&W.mu);
	if (fclose(f) == 0)
		rename(tmp, path);
}

static void read_phase(const char *ctl, char out[32])
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/phase", ctl);
	out[0] = '\0';
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (fscanf(f, "%31s", out) != 1)
		out[0] = '\0';
	fclose(f);
}

/* The main loop's tick: pacing and the poll of the control file; the script
 * waits on the status file this program writes, not on this. */
static void tick(void)
{
	struct timespec ts = { 0, 20 * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_now) {
	}
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "uri", required_argument, NULL, 'u' },        { "authority", required_argument, NULL, 'a' },
		{ "audience", required_argument, NULL, 'A' },   { "first", required_argument, NULL, 'f' },
		{ "count", required_argument, NULL, 'n' },      { "publishers", required_argument, NULL, 'p' },
		{ "ctl", required_argument, NULL, 'C' },        { "out", required_argument, NULL, 'o' },
		{ "window", required_argument, NULL, 'w' },     { "deadline", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	const char *uri = NULL, *authf = NULL, *ctl = NULL, *out = NULL;
	long first = 0, count = 0, pubs = 0, window = 200;
	double deadline = 900;
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'u': uri = optarg; break;
		case 'a': authf = optarg; break;
		case 'A': W.audience = optarg; break;
		case 'f': first = atol(optarg); break;
		case 'n': count = atol(optarg); break;
		case 'p': pubs = atol(optarg); break;
		case 'C': ctl = optarg; break;
		case 'o': out = optarg; break;
		case 'w': window = atol(optarg); break;
		case 'd': deadline = atof(optarg); break;
		default: return 2;
		}
	}
	if (!uri || !authf || !W.audience || !ctl || !out || count <= 0 || pubs < 0 || pubs > count || window <= 0) {
		fprintf(stderr, "usage: bench_cluster_scale --uri URI --authority KEY --audience NAME --first I --count N "
		                "--publishers P --ctl DIR --out FILE [--window W] [--deadline S]\n");
		return 2;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	/* One descriptor per device: the hard limit, or say why not. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < (rlim_t)count + 64) {
		fprintf(stderr, "bench_cluster_scale: RLIMIT_NOFILE %llu is below %ld devices + 64\n",
		        (unsigned long long)rl.rlim_cur, count);
		return 1;
	}
	if (veil_init() != VEIL_OK)
		return 1;
	struct veil_identity *auth = NULL;
	char err[256] = "";
	if (veil_identity_load(authf, &auth, err, sizeof(err)) != VEIL_OK) {
		fprintf(stderr, "bench_cluster_scale: %s: %s\n", authf, err);
		return 1;
	}
	veil_identity_public(auth, W.auth_pk);
	MQTTAsync_init_options io = MQTTAsync_init_options_initializer;
	MQTTAsync_global_init(&io);

	W.n = (size_t)count;
	W.devs = calloc(W.n, sizeof(*W.devs));
	int rc = W.devs ? 0 : 1;
	double t0 = bench_now_s();
	for (size_t i = 0; rc == 0 && i < W.n; i++) {
		if (dev_provision(&W.devs[i], auth, first + (long)i, (long)i < pubs) != 0) {
			fprintf(stderr, "bench_cluster_scale: provisioning device %zu failed\n", i);
			rc = 1;
		}
	}
	W.provision_s = bench_now_s() - t0;
	veil_identity_free(&auth);

	double end_by = bench_now_s() + deadline;
	size_t next = 0;
	char phase[32];
	int n_tick = 0;
	while (rc == 0 && !stop_now && bench_now_s() < end_by) {
		read_phase(ctl, phase);
		if (!strcmp(phase, "stop"))
			break;
		/* Connects, W in flight at most. */
		pthread_mutex_lock(&W.mu);
		long room = window - W.pending_connects;
		pthread_mutex_unlock(&W.mu);
		for (; room > 0 && next < W.n; room--, next++) {
			pthread_mutex_lock(&W.mu);
			if (!W.first_connect_ms)
				W.first_connect_ms = wall_ms();
			W.started++;
			W.pending_connects++;
			pthread_mutex_unlock(&W.mu);
			if (dev_connect(&W.devs[next], uri) != 0) {
				pthread_mutex_lock(&W.mu);
				W.conn_failed++;
				W.pending_connects--;
				W.devs[next].failed = true;
				pthread_mutex_unlock(&W.mu);
			}
		}
		bool publish = !strcmp(phase, "publish");
		pthread_mutex_lock(&W.mu);
		bool start = publish && !W.publishing;
		W.publishing = publish;
		pthread_mutex_unlock(&W.mu);
		for (size_t i = 0; start && i < W.n && (long)i < pubs; i++) {
			struct pubmsg msg0;
			pthread_mutex_lock(&W.mu);
			pub_build(&W.devs[i], &msg0);
			pthread_mutex_unlock(&W.mu);
			pub_post(&W.devs[i], &msg0);
		}
		if (++n_tick % 10 == 0)
			write_status(out);
		tick();
	}
	if (rc == 0 && bench_now_s() >= end_by)
		fprintf(stderr, "bench_cluster_scale: deadline of %.0f s reached\n", deadline);
	pthread_mutex_lock(&W.mu);
	W.publishing = false;
	pthread_mutex_unlock(&W.mu);
	write_status(out);
	for (size_t i = 0; W.devs && i < W.n; i++) {
		struct dev *v = &W.devs[i];
		if (v->m) {
			MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
			d.timeout = 0;
			if (MQTTAsync_isConnected(v->m))
				MQTTAsync_disconnect(v->m, &d);
		}
	}
	for (size_t i = 0; W.devs && i < W.n; i++) {
		struct dev *v = &W.devs[i];
		if (v->m)
			MQTTAsync_destroy(&v->m);
		pthread_mutex_lock(&W.mu);
		for (size_t k = 0; k < v->n_rx; k++)
			veil__rxkey_free(&v->rx[k]);
		v->n_rx = 0;
		sodium_memzero(v->key, sizeof(v->key));
		pthread_mutex_unlock(&W.mu);
		veil_identity_free(&v->id);
	}
	free(W.devs);
	return rc;
}
