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
 * Each repetition (and the warm-up) revokes another device; the fleet
 * shrinks by one each time. Both notices are polls of the files' change
 * signature each second (the plugin's TICK, keyd's watch), so (a) and (b)
 * hold up to a second of waiting that the forced rotation, polled by keyd
 * every 0.1 s, does not. The devices' own work (open, sign the
 * acknowledgement) runs here on Paho's one callback thread, one device
 * after another, on the machine that runs the broker and keyd.
 * (c), the first superseded-epoch message refused, is not measured: a
 * receiver refuses it `rekey_grace` seconds (monotonic) after it applied
 * the superseding bundle, by construction (client-shim/device.c).
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

#include "veil/veil.h"
#include "../core/bundle.h"
#include "bench_keyd_common.h"
#include "bench_stats.h"
#include "broker.h"
#include "files.h"
#include "store.h"

enum { C_ROTATION, C_REVOCATION, NCASES };
static const char *case_name[] = { "forced rotation", "revocation" };
enum { V_ACKED, V_KICK, NVALUES };

#define WAIT_S 240.0

#define RX_MAX 8 /* receive keys a device keeps (the oldest goes) */

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
	size_t acks;         /* `ack | record` lines in it */
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
			b->acks += strstr(line, "ack | record | ") != NULL;
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
	if (v->n_rx == RX_MAX) {
		veil__rxkey_free(&v->rx[0]);
		memmove(v->rx, v->rx + 1, (RX_MAX - 1) * sizeof(v->rx[0]));
		v->n_rx--;
	}
	if (veil__rxkey_generate(&v->rx[v->n_rx]) != VEIL_OK)
		return -1;
	v->n_rx++;
	randombytes_buf(v->nonce, sizeof(v->nonce));
	uint64_t ts = (uint64_t)time(NULL);
	if (ts <= v->last_ts)
		ts = v->last_ts + 1; /* strictly growing per credential */
	v->last_ts = ts;
	struct veil__devmsg_params p = { .device = v->id, .credential = v->cred, .credential_len = v->cred_len,
		                         .client_id = v->c.client_id, .kind = kind, .timestamp = ts, .nonce = v->nonce,
		                         .receive_pk = veil__rxkey_public(v->rx[v->n_rx - 1]),
		                         .version = v->held_version };
	uint8_t m[VEIL__DEVMSG_MAX];
	size_t n = 0;
	if (veil__devmsg_build(&p, m, sizeof(m), &n) != VEIL_OK)
		return -1;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	return MQTTAsync_send(v->c_mqtt, v->topic_req, (int)n, m, 1, 0, &ro) == MQTTASYNC_SUCCESS ? 0 : -1;
}

/* Open a bundle as a device does (docs/PROTOCOL.md section 12): its
 * authority, held version, nonce echo while it holds none; the receive
 * keys up to the one used are spent. */
static int dev_open(struct dev *v, const uint8_t *buf, size_t len)
{
	struct veil__trust t = { .authorities = (const uint8_t(*)[VEIL_PK_BYTES])v->b->auth_pk, .n_authorities = 1,
		                 .now = (uint64_t)time(NULL) };
	struct veil__bundle_self self = { .cred = &v->c, .rxkeys = v->rx, .n_rxkeys = v->n_rx,
		                          .held_version = v->held_version,
		                          .echo_nonce = v->held_version ? NULL : v->nonce };
	struct veil__bundle_view bv;
	struct veil__grants *g = NULL;
	size_t idx = 0;
	int rc = veil__bundle_open(buf, len, &t, &self, &bv, &idx, &g);
	veil__grants_free(&g);
	if (rc != VEIL_OK)
		return rc;
	v->held_version = bv.version;
	for (size_t i = 0; i <= idx; i++)
		veil__rxkey_free(&v->rx[i]);
	memmove(v->rx, v->rx + idx + 1, (v->n_rx - idx - 1) * sizeof(v->rx[0]));
	v->n_rx -= idx + 1;
	return VEIL_OK;
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

/* ---- the fleet ----------------------------------------------------------- */

static int setup(struct bench *b, const char *plugin, const char *keyd_bin)
{
	struct veil_identity *auth = NULL, *kid = NULL;
	char apub[320], acl[320], conf[320], path[400], bconf[PATH_MAX + 1600], text[1024];
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
	                             "request_rate 100000\nscope fleet/# period 3600 lead 300 grace 600 depth 1\n",
	         b->br.port);
	if (rc == 0 && test_write_file(conf, text, 0644) != 0)
		rc = -1;
	const char *init[] = { keyd_bin, "-c", conf, "--init", NULL };
	if (rc == 0 && bench_keyd_wait_exit(bench_keyd_spawn(init, NULL)) != 0)
		rc = -1;
	const char *run[] = { keyd_bin, "-c", conf, NULL };
	if (rc == 0 && ((b->keyd = bench_keyd_spawn(run, b->log)) < 0 || !test_file_wait(b->log, "mqtt | subscribed", 10000)))
		rc = -1;
	char uri[64];
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", b->br.port);
	b->devs = rc == 0 ? calloc(b->n, sizeof(*b->devs)) : NULL;
	if (!b->devs)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < b->n; i++)
		rc = dev_start(b, &b->devs[i], auth, i, uri);
	veil_identity_free(&auth);
	/* Every device holds its first bundle and keyd recorded its ack. */
	if (rc == 0 && wait_acks(b, b->n) < 0)
		rc = -1;
	return rc;
}

static void teardown(struct bench *b)
{
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

static int run_rotation(struct bench *b, double *v)
{
	struct kd_store *s = NULL;
	char err[256] = "";
	size_t before = acks_now(b), want = before + remaining(b);
	double t0 = bench_now_s();
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

static int run_revocation(struct bench *b, double *v)
{
	if (b->next_revoked >= b->n)
		return -1;
	struct dev *x = &b->devs[b->next_revoked++];
	size_t before = acks_now(b), want = before + remaining(b);
	double t0 = bench_now_s();
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

static int run_case(void *ctx, size_t c, double *v)
{
	return c == C_ROTATION ? run_rotation(ctx, v) : run_revocation(ctx, v);
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
