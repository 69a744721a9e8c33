/*
 * Revocation to containment with veil-keyd (issue 13, "Revocation triggers
 * rekey", benchmark), for 100 and 1,000 devices on one shared scope
 * (fleet/#), against a real Mosquitto with the Veil plugin and veil-keyd as
 * a child process. The devices are key-service devices in this process
 * (core/bundle.c only, one MQTT 3.1.1 connection each; the test support's
 * keyd_device.c reports through Check, which a benchmark does not run):
 * they open every bundle sealed to them and acknowledge it, as libveil
 * does.
 *
 * Cases, interleaved and repeated (bench_stats.h):
 *   - baseline: a forced rotation of the scope (`veil keys rotate`'s
 *     request row in keyd's store), from the request to keyd's log holding
 *     an acknowledgement from every device (keyd's `ack | record` lines);
 *   - revocation: one more device's client id appended to the revocation
 *     list that the plugin and keyd both read, from the rename to (a) that
 *     device's connection lost (the plugin's kick) and (b) keyd's log
 *     holding an acknowledgement from every remaining device of the
 *     superseding epoch's bundle (the last of them: the maximum).
 * In both cases, (c): one remaining device keeps sending (every 10 ms, on
 * fleet/watch) messages sealed under the epoch it held before the trigger,
 * and a libveil receiver (veil_client with the key service, in this
 * process, not counted in (b)) reads them: from the trigger to the first
 * of them it no longer opens (it holds or refuses it: the epoch was
 * dropped `rekey_grace` seconds after the receiver applied the superseding
 * bundle, keyd's default 5 s here). Old-epoch messages it still opened
 * after the trigger are counted.
 * Each repetition (and the warm-up) revokes another device; the fleet
 * shrinks by one each time. The plugin notices a revocation at its TICK
 * (once a second), so (a) holds up to a second of waiting; keyd reads the
 * list when inotify reports it written (the forced rotation's request is
 * polled every 0.1 s). The devices' own work (open, sign the
 * acknowledgement) runs here on Paho's one callback thread, one device
 * after another, on the machine that runs the broker and keyd.
 *
 * Target, reported and never judged: (b) within 2 s for 1,000 devices.
 * VEIL_BENCH_QUICK=1: 100 devices only. Binaries from $VEIL_PLUGIN,
 * $VEIL_KEYD (or next to this program).
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>
#include <sodium.h>
#include <sqlite3.h>

#include "veil/client.h"
#include "veil/veil.h"
#include "../core/bundle.h"
#include "bench_keyd_common.h"
#include "bench_stats.h"
#include "broker.h"
#include "files.h"
#include "keyd.h"
#include "store.h"

enum { C_ROTATION, C_REVOCATION, NCASES };
static const char *case_name[] = { "forced rotation", "revocation" };
enum { V_ACKED, V_KICK, V_REFUSED, V_OLD_OPENED, V_CPU, V_BUNDLE_KIB, V_ACK_KIB, V_DB_KIB, NVALUES };

#define WAIT_S 240.0

#define RX_MAX 8 /* receive keys a device keeps (the oldest goes) */
#define WATCH_TOPIC "fleet/watch"
#define WATCH_CID "w0"
#define OLD_EVERY_US 10000 /* the superseded-epoch sender's pace */
#define IDLE_S 10U

struct dev {
	struct bench *b;
	struct veil_identity *id;
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cred_len;
	struct veil_credential c;
	struct veil__rxkey *rx[RX_MAX];
	size_t n_rx;
	uint8_t nonce[VEIL__DEVMSG_NONCE_BYTES]; /* of its latest message */
	uint64_t held_version;
	struct veil__grant cur; /* the epoch it would seal with (the newest sendable) */
	bool has_cur;
	MQTTAsync c_mqtt;
	char topic_req[64];
	uint64_t last_ts;
	bool up, subscribed, lost;
	double lost_at;
};

struct bench {
	size_t n;
	char dir[256], log[300], revoked[300], db[300];
	uint8_t auth_pk[VEIL_PK_BYTES];
	struct test_broker br;
	pid_t keyd;
	struct dev *devs;
	size_t next_revoked; /* devs[0 .. next_revoked - 1] are revoked */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int errors;          /* bundles a device could not open, acks not sent */
	long log_off;        /* keyd's log read so far */
	size_t acks;         /* `ack | record` lines of the fleet (d<i>) in it */
	uint64_t bundle_bytes; /* bytes= of its `bundle | issue` lines */
	uint64_t ack_bytes;  /* acknowledgements the fleet sent */
	/* (c): the receiver, and the sender of superseded-epoch messages. */
	struct veil_client *watch;
	pthread_t old_thread;
	bool old_running, old_stop;
	struct veil__grant old;  /* the epoch the sender keeps sealing with */
	uint64_t old_seq;
	double refused_at;       /* first old-epoch message not opened (0: none yet) */
	size_t old_opened;       /* old-epoch messages opened since the trigger */
	bool watch_armed;
	bool old_drained;        /* the receiver opened the sender's closing message */
	double idle_cpu_min;     /* keyd's CPU seconds per minute with nothing to do */
};

/* keyd's `ack | record` lines so far: the log read from where the last
 * call stopped, whole lines only. */
static size_t acks_now(struct bench *b)
{
	FILE *f = fopen(b->log, "r");
	if (!f)
		return b->acks;
	char line[1024];
	if (fseek(f, b->log_off, SEEK_SET) == 0) {
		while (fgets(line, sizeof(line), f)) {
			size_t len = strlen(line);
			if (len == 0 || line[len - 1] != '\n')
				break; /* being written: read again next time */
			b->log_off += (long)len;
			b->acks += strstr(line, "ack | record | client=d") != NULL; /* not the receiver's */
			const char *p = strstr(line, "bundle | issue | ");
			if (p && (p = strstr(p, " bytes=")) != NULL)
				b->bundle_bytes += strtoull(p + 7, NULL, 10);
		}
	}
	fclose(f);
	return b->acks;
}

/* Until keyd's log holds want acknowledgements; the time then, or a
 * negative value after WAIT_S. */
static double wait_acks(struct bench *b, size_t want)
{
	double end = bench_now_s() + WAIT_S;
	while (bench_now_s() < end) {
		if (acks_now(b) >= want)
			return bench_now_s();
		usleep(1000); /* the log is the event; a bench may poll it */
	}
	return -1;
}

/* ---- devices (Paho's callback thread) ------------------------------------ */

/* A request or acknowledgement with a fresh receive key (kept) and nonce. */
static int dev_send(struct dev *v, uint8_t kind)
{
	struct veil__devmsg_params p = { .device = v->id, .credential = v->cred, .credential_len = v->cred_len,
		                         .client_id = v->c.client_id, .kind = kind, .version = v->held_version };
	uint8_t m[VEIL__DEVMSG_MAX];
	size_t n = 0;
	if (bench_keyd_devmsg(&p, v->rx, &v->n_rx, RX_MAX, v->nonce, &v->last_ts, m, sizeof(m), &n) != 0)
		return -1;
	if (kind == VEIL__KIND_ACK) {
		pthread_mutex_lock(&v->b->lock);
		v->b->ack_bytes += n;
		pthread_mutex_unlock(&v->b->lock);
	}
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	return MQTTAsync_send(v->c_mqtt, v->topic_req, (int)n, m, 1, 0, &ro) == MQTTASYNC_SUCCESS ? 0 : -1;
}

/* Open a bundle as a device does (docs/PROTOCOL.md section 12): its
 * authority, held version, nonce echo while it holds none; the receive
 * keys up to the one used are spent. */
static int dev_open(struct dev *v, const uint8_t *buf, size_t len)
{
	struct veil__grant send;
	bool has = false;
	int rc = bench_keyd_bundle_open(v->b->auth_pk, &v->c, v->rx, &v->n_rx, &v->held_version, v->nonce, buf, len,
	                                &send, &has);
	if (rc == VEIL_OK) {
		pthread_mutex_lock(&v->b->lock);
		v->cur = send;
		v->has_cur = has;
		pthread_mutex_unlock(&v->b->lock);
	}
	sodium_memzero(&send, sizeof(send));
	return rc;
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct dev *v = ctx;
	(void)topic_len;
	int rc = m->payloadlen > 0 ? dev_open(v, m->payload, (size_t)m->payloadlen) : VEIL_ERR_INVAL;
	if (rc == VEIL_OK && dev_send(v, VEIL__KIND_ACK) != 0)
		rc = VEIL_ERR_MQTT;
	if (rc != VEIL_OK && rc != VEIL_ERR_OUTDATED) {
		pthread_mutex_lock(&v->b->lock);
		v->b->errors++;
		pthread_mutex_unlock(&v->b->lock);
	}
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void on_lost(void *ctx, char *cause)
{
	struct dev *v = ctx;
	(void)cause;
	pthread_mutex_lock(&v->b->lock);
	v->lost = true;
	v->lost_at = bench_now_s();
	pthread_cond_broadcast(&v->b->cond);
	pthread_mutex_unlock(&v->b->lock);
}

static void on_connected(void *ctx, MQTTAsync_successData *r)
{
	struct dev *v = ctx;
	(void)r;
	pthread_mutex_lock(&v->b->lock);
	v->up = true;
	pthread_cond_broadcast(&v->b->cond);
	pthread_mutex_unlock(&v->b->lock);
}

static void on_subscribed(void *ctx, MQTTAsync_successData *r)
{
	struct dev *v = ctx;
	(void)r;
	pthread_mutex_lock(&v->b->lock);
	v->subscribed = true;
	pthread_cond_broadcast(&v->b->cond);
	pthread_mutex_unlock(&v->b->lock);
}

/* Wait (WAIT_S) until *flag; false at the deadline. */
static bool wait_flag(struct bench *b, const bool *flag)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += (time_t)WAIT_S;
	pthread_mutex_lock(&b->lock);
	int rc = 0;
	while (!*flag && rc == 0)
		rc = pthread_cond_timedwait(&b->cond, &b->lock, &dl);
	bool ok = *flag;
	pthread_mutex_unlock(&b->lock);
	return ok;
}

static int dev_start(struct bench *b, struct dev *v, const struct veil_identity *auth, size_t i, const char *uri)
{
	char cid[32], topic[64], pw[VEIL_PASSWORD_MAX];
	uint8_t tok[VEIL_TOKEN_MAX];
	size_t tl = 0;
	v->b = b;
	snprintf(cid, sizeof(cid), "d%zu", i);
	snprintf(v->topic_req, sizeof(v->topic_req), "%s%s", VEIL__TOPIC_REQ_PREFIX, cid);
	snprintf(topic, sizeof(topic), "%s%s", VEIL__TOPIC_BUNDLE_PREFIX, cid);
	if (veil_identity_generate(&v->id) != VEIL_OK ||
	    bench_keyd_credential(auth, v->id, cid, "fleet", v->cred, &v->cred_len) != VEIL_OK ||
	    veil_credential_parse(v->cred, v->cred_len, &v->c) != VEIL_OK ||
	    veil_token_create(v->id, v->cred, v->cred_len, cid, (uint64_t)time(NULL), tok, sizeof(tok), &tl) !=
	            VEIL_OK ||
	    veil_token_to_password(tok, tl, pw, sizeof(pw)) != VEIL_OK)
		return -1;
	if (MQTTAsync_create(&v->c_mqtt, uri, cid, MQTTCLIENT_PERSISTENCE_NONE, NULL) != MQTTASYNC_SUCCESS ||
	    MQTTAsync_setCallbacks(v->c_mqtt, v, on_lost, on_message, NULL) != MQTTASYNC_SUCCESS)
		return -1;
	MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
	o.username = cid;
	o.password = pw;
	o.cleansession = 1;
	o.keepAliveInterval = 600;
	o.onSuccess = on_connected;
	o.context = v;
	int rc = MQTTAsync_connect(v->c_mqtt, &o) == MQTTASYNC_SUCCESS && wait_flag(b, &v->up) ? 0 : -1;
	sodium_memzero(pw, sizeof(pw));
	if (rc != 0)
		return -1;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess = on_subscribed;
	ro.context = v;
	if (MQTTAsync_subscribe(v->c_mqtt, topic, 1, &ro) != MQTTASYNC_SUCCESS || !wait_flag(b, &v->subscribed))
		return -1;
	return dev_send(v, VEIL__KIND_REQUEST);
}

/* ---- (c): superseded-epoch messages and a libveil receiver ---------------- */

static void watch_not_opened(struct bench *b)
{
	pthread_mutex_lock(&b->lock);
	if (b->watch_armed && b->refused_at == 0) {
		b->refused_at = bench_now_s();
		pthread_cond_broadcast(&b->cond);
	}
	pthread_mutex_unlock(&b->lock);
}

static void watch_message(void *ctx, const struct veil_message *m)
{
	struct bench *b = ctx;
	pthread_mutex_lock(&b->lock);
	if (m->len == 3 && !memcmp(m->payload, "end", 3)) {
		b->old_drained = true; /* every message sent before it has arrived */
		pthread_cond_broadcast(&b->cond);
	} else if (b->watch_armed && m->key_id == b->old.key_id) {
		b->old_opened++;
	}
	pthread_mutex_unlock(&b->lock);
}

static void watch_refusal(void *ctx, const struct veil_refusal *r)
{
	(void)r;
	watch_not_opened(ctx);
}

/* libveil holds a message under a key it lacks on a topic of its scopes
 * (and asks keyd for its bundle) before it refuses it for good: for an
 * epoch it dropped, holding it is already not opening it. */
static void watch_log(void *ctx, int level, const char *msg)
{
	(void)level;
	if (strstr(msg, "'" WATCH_TOPIC "' held"))
		watch_not_opened(ctx);
}

/* One message on fleet/watch from the sender device (devs[n - 1]), sealed
 * under g; its sequence numbers only grow. */
static int old_send(struct bench *b, const struct veil__grant *g, const char *text)
{
	struct dev *v = &b->devs[b->n - 1];
	uint8_t pk[VEIL_PK_BYTES], out[256];
	struct veil_seal_params p = { .key = g->key, .key_id = g->key_id };
	veil_identity_public(v->id, pk);
	veil_sender_id(pk, p.sender);
	pthread_mutex_lock(&b->lock);
	p.seq = ++b->old_seq;
	pthread_mutex_unlock(&b->lock);
	size_t n = 0;
	if (veil_envelope_seal(&p, WATCH_TOPIC, (const uint8_t *)text, strlen(text), out, sizeof(out), &n) != VEIL_OK)
		return -1;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	return MQTTAsync_send(v->c_mqtt, WATCH_TOPIC, (int)n, out, 1, 0, &ro) == MQTTASYNC_SUCCESS ? 0 : -1;
}

static void *old_main(void *arg)
{
	struct bench *b = arg;
	for (;;) {
		pthread_mutex_lock(&b->lock);
		bool stop = b->old_stop;
		pthread_mutex_unlock(&b->lock);
		if (stop || old_send(b, &b->old, "old") != 0)
			break;
		usleep(OLD_EVERY_US); /* the pace of a sender, not a wait for an event */
	}
	return NULL;
}

/* The sender starts on the epoch it holds now; the receiver is armed. */
static int old_start(struct bench *b)
{
	struct dev *v = &b->devs[b->n - 1];
	pthread_mutex_lock(&b->lock);
	bool ok = v->has_cur;
	if (ok) {
		b->old = v->cur;
		b->old_stop = false;
		b->refused_at = 0;
		b->old_opened = 0;
		b->watch_armed = true;
	}
	pthread_mutex_unlock(&b->lock);
	if (!ok || pthread_create(&b->old_thread, NULL, old_main, b) != 0)
		return -1;
	b->old_running = true;
	return 0;
}

/* Stop the sender, then one message under its newest epoch: once the
 * receiver opened it, every old-epoch one has arrived (one publisher, one
 * topic, QoS 1: in order), none is left for the next case. */
static int old_finish(struct bench *b)
{
	if (!b->old_running)
		return 0;
	pthread_mutex_lock(&b->lock);
	b->old_stop = true;
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->old_thread, NULL);
	b->old_running = false;
	pthread_mutex_lock(&b->lock);
	b->watch_armed = false;
	b->old_drained = false;
	struct veil__grant g = b->devs[b->n - 1].cur;
	pthread_mutex_unlock(&b->lock);
	int rc = old_send(b, &g, "end") == 0 && wait_flag(b, &b->old_drained) ? 0 : -1;
	sodium_memzero(&g, sizeof(g));
	return rc;
}

static int watch_start(struct bench *b, const struct veil_identity *auth, const char *apub, const char *uri)
{
	char idp[320], crp[320];
	int rc = bench_keyd_device_files(auth, b->dir, WATCH_CID, "fleet", idp, sizeof(idp), crp, sizeof(crp)) == VEIL_OK
	                 ? 0
	                 : -1;
	struct veil_client_options o = { .version = VEIL_CLIENT_OPTIONS_VERSION, .server_uri = uri,
		                         .client_id = WATCH_CID, .identity_path = idp, .credential_path = crp,
		                         .authority_path = apub, .key_service = VEIL_KEYS_ON, .log = watch_log,
		                         .log_ctx = b };
	if (rc == 0 && (veil_client_new(&o, &b->watch) != VEIL_OK ||
	                veil_client_set_callbacks(b->watch, b, watch_message, watch_refusal, NULL) != VEIL_OK ||
	                veil_client_connect(b->watch) != VEIL_OK ||
	                veil_client_wait_keys(b->watch, (unsigned long)(WAIT_S * 1000)) != VEIL_OK ||
	                veil_client_subscribe(b->watch, WATCH_TOPIC, 1) != VEIL_OK))
		rc = -1;
	return rc;
}

/* ---- the fleet ----------------------------------------------------------- */

static int setup(struct bench *b, const char *plugin, const char *keyd_bin)
{
	struct veil_identity *auth = NULL, *kid = NULL;
	char apub[320], acl[320], conf[320], path[400], bconf[PATH_MAX + 1600], text[1024], uri[64];
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	if (test_mkdtemp_readable(b->dir, sizeof(b->dir)) != 0 || veil_identity_generate(&auth) != VEIL_OK ||
	    veil_identity_generate(&kid) != VEIL_OK)
		return -1;
	veil_identity_public(auth, b->auth_pk);
	snprintf(apub, sizeof(apub), "%s/authority.pub", b->dir);
	snprintf(acl, sizeof(acl), "%s/veil.acl", b->dir);
	snprintf(conf, sizeof(conf), "%s/keyd.conf", b->dir);
	snprintf(b->log, sizeof(b->log), "%s/keyd.log", b->dir);
	snprintf(b->db, sizeof(b->db), "%s/keyd.db", b->dir);
	snprintf(b->revoked, sizeof(b->revoked), "%s/revoked", b->dir);
	int rc = veil_public_key_save(b->auth_pk, apub) == VEIL_OK &&
	                         test_write_file(acl, "role fleet\ntopic readwrite,encrypted fleet/#\n", 0644) == 0 &&
	                         test_write_file(b->revoked, "", 0644) == 0
	                 ? 0
	                 : -1;
	if (snprintf(bconf, sizeof(bconf), "allow_anonymous false\nplugin %s\nplugin_opt_authority_file %s\n"
	                                   "plugin_opt_acl_file %s\nplugin_opt_revocation_file %s\n", plugin, apub, acl,
	             b->revoked) >= (int)sizeof(bconf))
		rc = -1;
	if (rc == 0)
		rc = test_broker_start(&b->br, bconf);
	size_t cl = 0;
	if (rc == 0 && bench_keyd_credential(auth, kid, "veil-keyd", "veil-keyd", cred, &cl) != VEIL_OK)
		rc = -1;
	snprintf(path, sizeof(path), "%s/keyd.key", b->dir);
	if (rc == 0 && veil_identity_save(kid, path) != VEIL_OK)
		rc = -1;
	snprintf(path, sizeof(path), "%s/keyd.cred", b->dir);
	if (rc == 0 && veil_credential_save(cred, cl, path) != VEIL_OK)
		rc = -1;
	veil_identity_free(&kid);
	snprintf(text, sizeof(text), "broker tcp://127.0.0.1:%d\nclient_id veil-keyd\nidentity keyd.key\n"
	                             "credential keyd.cred\nauthorities authority.pub\nacl_file veil.acl\n"
	                             "revocation_file revoked\ndatabase keyd.db\nstorage_key storage.key\n"
	                             "request_rate 100000\nscope fleet/# period 3600 lead 300 grace 600 depth 0\n",
	         b->br.port);
	if (rc == 0 && test_write_file(conf, text, 0644) != 0)
		rc = -1;
	const char *init[] = { keyd_bin, "-c", conf, "--init", NULL };
	if (rc == 0 && bench_keyd_wait_exit(bench_keyd_spawn(init, NULL)) != 0)
		rc = -1;
	const char *run[] = { keyd_bin, "-c", conf, NULL };
	if (rc == 0 && ((b->keyd = bench_keyd_spawn(run, b->log)) < 0 || !test_file_wait(b->log, "mqtt | subscribed", 10000)))
		rc = -1;
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", b->br.port);
	b->devs = rc == 0 ? calloc(b->n, sizeof(*b->devs)) : NULL;
	if (!b->devs)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < b->n; i++)
		rc = dev_start(b, &b->devs[i], auth, i, uri);
	if (rc == 0)
		rc = watch_start(b, auth, apub, uri);
	veil_identity_free(&auth);
	/* Every device holds its first bundle and keyd recorded its ack. */
	if (rc == 0 && wait_acks(b, b->n) < 0)
		rc = -1;
	return rc;
}

static void teardown(struct bench *b)
{
	old_finish(b);
	if (b->watch) {
		veil_client_disconnect(b->watch, 100);
		veil_client_free(&b->watch);
	}
	for (size_t i = 0; b->devs && i < b->n; i++) {
		struct dev *v = &b->devs[i];
		if (v->c_mqtt) {
			MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
			d.timeout = 100;
			MQTTAsync_disconnect(v->c_mqtt, &d);
			MQTTAsync_destroy(&v->c_mqtt);
		}
		for (size_t k = 0; k < v->n_rx; k++)
			veil__rxkey_free(&v->rx[k]);
		veil_identity_free(&v->id);
	}
	free(b->devs);
	b->devs = NULL;
	if (b->keyd > 0) {
		kill(b->keyd, SIGTERM);
		bench_keyd_wait_exit(b->keyd);
		b->keyd = -1;
	}
	test_broker_stop(&b->br);
	test_broker_cleanup(&b->br);
	test_rmtree(b->dir);
}

/* ---- the cases ------------------------------------------------------------ */

static size_t remaining(const struct bench *b)
{
	return b->n - b->next_revoked;
}

static int run_rotation(struct bench *b, double *v, double *t0p)
{
	struct kd_store *s = NULL;
	char err[256] = "";
	size_t before = acks_now(b), want = before + remaining(b);
	double t0 = *t0p = bench_now_s();
	if (kd_store__open(b->db, NULL, false, &s, err, sizeof(err)) != VEIL_OK ||
	    kd_store__rotate_request(s, "fleet/#", (uint64_t)time(NULL)) != VEIL_OK) {
		fprintf(stderr, "bench_keyd_revoke: rotation request: %s\n", err);
		kd_store__close(&s);
		return -1;
	}
	kd_store__close(&s);
	double t = wait_acks(b, want);
	if (t < 0) {
		fprintf(stderr, "bench_keyd_revoke: %zu of %zu acknowledgements after a rotation\n", acks_now(b) - before,
		        remaining(b));
		return -1;
	}
	v[V_ACKED] = t - t0;
	v[V_KICK] = 0;
	return 0;
}

/* The revocation list with one more client id, written beside and renamed
 * (the plugin and keyd never read half of it). */
static int list_revoke(struct bench *b, size_t i)
{
	char tmp[320], line[64];
	size_t len = 0;
	char *was = test_file_read(b->revoked, &len);
	if (!was)
		return -1;
	snprintf(tmp, sizeof(tmp), "%s.tmp", b->revoked);
	snprintf(line, sizeof(line), "client d%zu\n", i);
	FILE *f = fopen(tmp, "w");
	int rc = f && fwrite(was, 1, len, f) == len && fputs(line, f) >= 0 ? 0 : -1;
	if (f && fclose(f) != 0)
		rc = -1;
	free(was);
	return rc == 0 && rename(tmp, b->revoked) == 0 ? 0 : -1;
}

static int run_revocation(struct bench *b, double *v, double *t0p)
{
	if (b->next_revoked + 1 >= b->n) /* devs[n - 1] sends the old-epoch messages */
		return -1;
	struct dev *x = &b->devs[b->next_revoked++];
	size_t before = acks_now(b), want = before + remaining(b);
	double t0 = *t0p = bench_now_s();
	if (list_revoke(b, b->next_revoked - 1) != 0) {
		fprintf(stderr, "bench_keyd_revoke: revocation list not written\n");
		return -1;
	}
	double t = wait_acks(b, want);
	if (t < 0 || !wait_flag(b, &x->lost)) {
		fprintf(stderr, "bench_keyd_revoke: %zu of %zu acknowledgements after a revocation, revoked device %s\n",
		        acks_now(b) - before, remaining(b), x->lost ? "disconnected" : "still connected");
		return -1;
	}
	pthread_mutex_lock(&b->lock);
	v[V_KICK] = x->lost_at - t0;
	pthread_mutex_unlock(&b->lock);
	v[V_ACKED] = t - t0;
	return 0;
}

/* Bytes of keyd's store in use (pages less the free list, as a reader
 * sees it, WAL included), -1 on error. */
static double db_used(const char *path)
{
	sqlite3 *db = NULL;
	double v[3] = { -1, -1, -1 };
	static const char *const q[3] = { "PRAGMA page_count", "PRAGMA freelist_count", "PRAGMA page_size" };
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		for (size_t i = 0; i < 3; i++) {
			sqlite3_stmt *st = NULL;
			if (sqlite3_prepare_v2(db, q[i], -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
				v[i] = (double)sqlite3_column_int64(st, 0);
			sqlite3_finalize(st);
		}
	}
	sqlite3_close(db);
	return v[0] < 0 || v[1] < 0 || v[2] < 0 ? -1 : (v[0] - v[1]) * v[2];
}

/* The first old-epoch message the receiver did not open: its time, or a
 * negative value after WAIT_S. */
static double wait_refused(struct bench *b)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += (time_t)WAIT_S;
	pthread_mutex_lock(&b->lock);
	int rc = 0;
	while (b->refused_at == 0 && rc == 0)
		rc = pthread_cond_timedwait(&b->cond, &b->lock, &dl);
	double t = b->refused_at > 0 ? b->refused_at : -1;
	pthread_mutex_unlock(&b->lock);
	return t;
}

static int run_case(void *ctx, size_t c, double *v)
{
	struct bench *b = ctx;
	double t0 = 0;
	if (old_start(b) != 0) {
		fprintf(stderr, "bench_keyd_revoke: the superseded-epoch sender did not start\n");
		return -1;
	}
	acks_now(b);
	pthread_mutex_lock(&b->lock);
	double bytes0 = (double)b->bundle_bytes, ack0 = (double)b->ack_bytes;
	pthread_mutex_unlock(&b->lock);
	double cpu0 = bench_keyd_cpu_s(b->keyd), db0 = db_used(b->db);
	int rc = c == C_ROTATION ? run_rotation(b, v, &t0) : run_revocation(b, v, &t0);
	/* What the rekey cost keyd, once every device acknowledged it. */
	v[V_CPU] = bench_keyd_cpu_s(b->keyd) - cpu0;
	v[V_DB_KIB] = (db_used(b->db) - db0) / 1024.0;
	acks_now(b);
	pthread_mutex_lock(&b->lock);
	v[V_BUNDLE_KIB] = ((double)b->bundle_bytes - bytes0) / 1024.0;
	v[V_ACK_KIB] = ((double)b->ack_bytes - ack0) / 1024.0;
	pthread_mutex_unlock(&b->lock);
	double refused = rc == 0 ? wait_refused(b) : -1;
	if (rc == 0 && refused < 0) {
		fprintf(stderr, "bench_keyd_revoke: the receiver still opens superseded-epoch messages after %.0f s\n",
		        WAIT_S);
		rc = -1;
	}
	pthread_mutex_lock(&b->lock);
	v[V_REFUSED] = refused - t0;
	v[V_OLD_OPENED] = (double)b->old_opened;
	pthread_mutex_unlock(&b->lock);
	if (old_finish(b) != 0 && rc == 0) {
		fprintf(stderr, "bench_keyd_revoke: the sender's closing message never reached the receiver\n");
		rc = -1;
	}
	return rc;
}

static void report(const struct bench_table *t, void *ctx)
{
	struct bench *b = ctx;
	char x[BENCH_FMT_CAP], y[BENCH_FMT_CAP], q[BENCH_FMT_CAP];
	printf("%zu devices: %-40s %-28s %-28s %s\n", b->n, "figure (seconds)", case_name[C_ROTATION],
	       case_name[C_REVOCATION], "revocation vs rotation");
	printf("  %-50s %-28s %-28s %s\n", "(b) trigger to every device's ack (keyd's log)",
	       bench_fmt_value(x, sizeof(x), t, C_ROTATION, V_ACKED), bench_fmt_value(y, sizeof(y), t, C_REVOCATION, V_ACKED),
	       bench_fmt_vs(q, sizeof(q), t, C_REVOCATION, V_ACKED, C_ROTATION));
	printf("  %-50s %-28s %-28s %s\n", "(a) revocation to the revoked device disconnected", "-",
	       bench_fmt_value(y, sizeof(y), t, C_REVOCATION, V_KICK), "-");
	printf("  %-50s %-28s %-28s %s\n", "(c) trigger to the first old-epoch message refused",
	       bench_fmt_value(x, sizeof(x), t, C_ROTATION, V_REFUSED),
	       bench_fmt_value(y, sizeof(y), t, C_REVOCATION, V_REFUSED),
	       bench_fmt_vs(q, sizeof(q), t, C_REVOCATION, V_REFUSED, C_ROTATION));
	printf("  %-50s %-28s %-28s %s\n", "    old-epoch messages opened before it (count)",
	       bench_fmt_value(x, sizeof(x), t, C_ROTATION, V_OLD_OPENED),
	       bench_fmt_value(y, sizeof(y), t, C_REVOCATION, V_OLD_OPENED), "-");
	static const struct { size_t k; const char *name; } cost[] = {
		{ V_CPU, "keyd's CPU seconds (utime + stime), trigger to (b)" },
		{ V_BUNDLE_KIB, "bundles keyd published (KiB of payload)" },
		{ V_ACK_KIB, "acknowledgements the devices sent (KiB of payload)" },
		{ V_DB_KIB, "keyd's store growth (KiB in use)" },
	};
	for (size_t i = 0; i < sizeof(cost) / sizeof(cost[0]); i++)
		printf("  %-50s %-28s %-28s %s\n", cost[i].name, bench_fmt_value(x, sizeof(x), t, C_ROTATION, cost[i].k),
		       bench_fmt_value(y, sizeof(y), t, C_REVOCATION, cost[i].k),
		       bench_fmt_vs(q, sizeof(q), t, C_REVOCATION, cost[i].k, C_ROTATION));
	printf("  keyd idle (no rotation): %.3f CPU seconds per minute\n", b->idle_cpu_min);
	printf("  (c) includes the receiver's rekey_grace (keyd's default, %u s) after it applied the superseding bundle\n",
	       (unsigned)KD_DEFAULT_REKEY_GRACE);
	struct bench_summary s;
	bench_table_summary(t, C_REVOCATION, V_ACKED, BENCH_NO_BASE, &s);
	if (b->n >= 1000)
		printf("target: (b) for %zu devices within 2 s: %s (median %.3f s over %zu repetitions)\n", b->n,
		       s.median <= 2.0 ? "met" : "NOT met", s.median, s.n);
	if (b->errors)
		printf("note: %d bundles the devices could not open or acknowledge\n", b->errors);
}

static int measure(const struct bench_plan *plan, size_t n, const char *plugin, const char *keyd)
{
	struct bench b = { .n = n, .keyd = -1 };
	pthread_mutex_init(&b.lock, NULL);
	pthread_cond_init(&b.cond, NULL);
	int rc = setup(&b, plugin, keyd);
	if (rc != 0) {
		fprintf(stderr, "bench_keyd_revoke: setup failed for %zu devices (broker, keyd or the fleet)\n", n);
		test_file_dump("keyd", b.log);
	} else {
		/* keyd's cost between rotations, over a window with nothing to do
		 * (a measurement window, not a wait for an event). */
		double c0 = bench_keyd_cpu_s(b.keyd), t0 = bench_now_s();
		sleep(IDLE_S);
		b.idle_cpu_min = (bench_keyd_cpu_s(b.keyd) - c0) * 60.0 / (bench_now_s() - t0);
		rc = bench_measure(plan, NCASES, NVALUES, run_case, true, report, &b);
	}
	teardown(&b);
	pthread_cond_destroy(&b.cond);
	pthread_mutex_destroy(&b.lock);
	return rc;
}

int main(void)
{
	struct bench_plan plan;
	if (bench_plan_init(&plan, 900, 300) != 0 || veil_init() != VEIL_OK)
		return 1;
	/* A thousand connections here and at the broker (which inherits it). */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	char pbuf[PATH_MAX + 64], kbuf[PATH_MAX + 64];
	const char *plugin = bench_plugin_path(pbuf, sizeof(pbuf));
	const char *keyd = bench_build_path("VEIL_KEYD", "keyd/veil-keyd", kbuf, sizeof(kbuf));
	printf("bench_keyd_revoke: revocation of one device to (a) its disconnection and (b) every remaining device's "
	       "acknowledgement of the superseding epoch, against a forced rotation of the same scope; one shared "
	       "scope, devices in this process\n");
	int rc = plugin && keyd ? 0 : -1;
	const size_t sizes[] = { 100, 1000 };
	for (size_t i = 0; rc == 0 && i < (plan.quick ? 1U : 2U); i++)
		rc = measure(&plan, sizes[i], plugin, keyd);
	return rc == 0 ? 0 : 1;
}
