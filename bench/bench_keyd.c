/*
 * A rotation of veil-keyd for 1,000 devices (issue 12, "Performance"): from
 * the trigger (`veil keys rotate`'s request row) to the broker's PUBACK of
 * the last bundle, SQLite included, against a real Mosquitto with the Veil
 * plugin and veil-keyd as a child process. Each device has its own scope
 * (factory/%c/#), so a rotation is 1,000 superseding epochs and 1,000
 * bundles sealed to 1,000 receive keys.
 *
 * Cases, interleaved and repeated (bench_stats.h): the raw cost of building
 * the same 1,000 bundles in this process (libsodium X25519 + XChaCha20-
 * Poly1305 + Ed25519 through core/bundle.c: the baseline), and keyd's
 * rotation. Figures: wall seconds, and keyd's CPU seconds (utime + stime
 * from /proc/<pid>/stat, so its own cost, not the broker's). Target,
 * reported and never judged: under 1 s. VEIL_BENCH_QUICK=1: 200 devices.
 *
 * Then publish throughput during rotations (issue 12, "Performance": within
 * 5% of the steady state): a libveil device of the same fleet (veil_client,
 * key service, own scope factory/p0/#) publishes sealed QoS 1 messages for
 * WINDOW_S seconds, one in flight (publish, wait for its PUBACK), as
 * bench_client does; interleaved and repeated:
 *   - steady: no rotation;
 *   - own scope rotating: its own instance rotated (`veil keys rotate
 *     factory/p0/#`) every OWN_EVERY_MS: a new bundle applied and a new key
 *     sealed with each time;
 *   - fleet rotating: every instance (all devices) rotated every
 *     FLEET_EVERY_MS, so keyd seals and publishes the fleet's bundles on
 *     the same two cores meanwhile.
 * Figure: messages per second (PUBACKs), and the ratio to steady per
 * repetition pair. Target, reported and never judged: within 5%.
 * Binaries from $VEIL_PLUGIN, $VEIL_KEYD (or next to this program).
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>

#include <MQTTClient.h>
#include <sodium.h>

#include "veil/client.h"
#include "veil/veil.h"
#include "../core/bundle.h"
#include "bench_keyd_common.h"
#include "bench_stats.h"
#include "broker.h"
#include "files.h"
#include "store.h"

enum { C_RAW, C_ROTATION, NCASES };
static const char *case_name[] = { "raw seal+sign", "keyd rotation" };
enum { V_WALL, V_CPU, NVALUES };

enum { T_STEADY, T_OWN, T_FLEET, NTCASES };
static const char *tcase_name[] = { "steady", "own scope rotating", "fleet rotating" };
enum { T_RATE, T_ROTATIONS, NTVALUES };
#define WINDOW_S 5.0
/* Paho's sync client keeps one QoS 1 message in flight: a second publish
 * waits in 100 ms steps for the first (bench_client.c). */
#define PIPELINE 1
#define OWN_EVERY_MS 500
#define FLEET_EVERY_MS 2000
#define PUB_CID "p0"
#define PUB_TOPIC "factory/" PUB_CID "/data"

struct bench {
	size_t n;                      /* devices */
	char dir[256], db[300], log[300];
	struct test_broker b;
	pid_t keyd;
	struct veil_identity *keyd_id;
	uint8_t keyd_cred[VEIL_CREDENTIAL_MAX];
	size_t keyd_cred_len;
	uint8_t (*rx_pk)[VEIL__X25519_BYTES]; /* one receive key per device, for the baseline */
	int pubacks;                   /* PUBACK lines seen in keyd's log */
	char apub[320];
	struct veil_client *pub;       /* the publishing device */
	pthread_t rot;                 /* asks keyd for rotations during a window */
	const char *rot_scope;
	unsigned rot_every_ms;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool rot_stop;
	size_t rotations;              /* requested in the window */
	size_t pub_errors;             /* publishes refused or not completed */
};

/* Wait until keyd's log holds want PUBACK lines; false after 60 s. */
static bool wait_pubacks(struct bench *b, int want)
{
	double end = bench_now_s() + 60 * 4;
	while (bench_now_s() < end) {
		b->pubacks = test_file_count(b->log, "mqtt | puback");
		if (b->pubacks >= want)
			return true;
		usleep(2000); /* the log is the event; a bench may poll it */
	}
	return false;
}

/* The publishing device: its identity and credential in files, keys from
 * keyd (its first bundle before this returns). */
static int pub_start(struct bench *b, const struct veil_identity *auth, const char *uri)
{
	char idp[320], crp[320];
	int rc = bench_keyd_device_files(auth, b->dir, PUB_CID, "sensor", idp, sizeof(idp), crp, sizeof(crp)) == VEIL_OK
	                 ? 0
	                 : -1;
	struct veil_client_options o = { .version = VEIL_CLIENT_OPTIONS_VERSION, .server_uri = uri,
		                         .client_id = PUB_CID, .identity_path = idp, .credential_path = crp,
		                         .authority_path = b->apub, .key_service = VEIL_KEYS_ON };
	if (rc == 0 && (veil_client_new(&o, &b->pub) != VEIL_OK || veil_client_connect(b->pub) != VEIL_OK ||
	                veil_client_wait_keys(b->pub, 60000) != VEIL_OK))
		rc = -1;
	return rc;
}

static int setup(struct bench *b, const char *plugin, const char *keyd_bin)
{
	struct veil_identity *auth = NULL;
	char apub[320], acl[320], conf[320], bconf[1024], path[400];
	if (test_mkdtemp_readable(b->dir, sizeof(b->dir)) != 0 || veil_identity_generate(&auth) != VEIL_OK ||
	    veil_identity_generate(&b->keyd_id) != VEIL_OK)
		return -1;
	uint8_t pk[VEIL_PK_BYTES];
	veil_identity_public(auth, pk);
	snprintf(apub, sizeof(apub), "%s/authority.pub", b->dir);
	snprintf(b->apub, sizeof(b->apub), "%s", apub);
	snprintf(acl, sizeof(acl), "%s/veil.acl", b->dir);
	snprintf(conf, sizeof(conf), "%s/keyd.conf", b->dir);
	snprintf(b->db, sizeof(b->db), "%s/keyd.db", b->dir);
	snprintf(b->log, sizeof(b->log), "%s/keyd.log", b->dir);
	if (veil_public_key_save(pk, apub) != VEIL_OK || chmod(apub, 0644) != 0 ||
	    test_write_file(acl, "pattern readwrite,encrypted factory/%c/#\n", 0644) != 0)
		return -1;
	snprintf(bconf, sizeof(bconf), "allow_anonymous false\nplugin %s\nplugin_opt_authority_file %s\n"
	                               "plugin_opt_acl_file %s\n", plugin, apub, acl);
	if (test_broker_start(&b->b, bconf) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/keyd.key", b->dir);
	if (veil_identity_save(b->keyd_id, path) != VEIL_OK ||
	    bench_keyd_credential(auth, b->keyd_id, "veil-keyd", "veil-keyd", b->keyd_cred, &b->keyd_cred_len) != VEIL_OK)
		return -1;
	snprintf(path, sizeof(path), "%s/keyd.cred", b->dir);
	if (veil_credential_save(b->keyd_cred, b->keyd_cred_len, path) != VEIL_OK)
		return -1;
	char text[1024];
	snprintf(text, sizeof(text), "broker tcp://127.0.0.1:%d\nclient_id veil-keyd\nidentity keyd.key\n"
	                             "credential keyd.cred\nauthorities authority.pub\nacl_file veil.acl\n"
	                             "database keyd.db\nstorage_key storage.key\nrequest_rate 100000\n"
	                             "scope factory/%%c/# period 3600 lead 300 grace 600 depth 0\n", b->b.port);
	if (test_write_file(conf, text, 0644) != 0)
		return -1;
	const char *init[] = { keyd_bin, "-c", conf, "--init", NULL };
	if (bench_keyd_wait_exit(bench_keyd_spawn(init, NULL)) != 0)
		return -1;
	const char *run[] = { keyd_bin, "-c", conf, "-d", NULL };
	b->keyd = bench_keyd_spawn(run, b->log);
	if (b->keyd < 0 || !test_file_wait(b->log, "mqtt | subscribed", 10000))
		return -1;
	/* The fleet: each device logs in with its token and sends its request
	 * (the plugin lets only the device itself write its request topic), then
	 * leaves: bundles are retained. */
	char uri[64];
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", b->b.port);
	b->rx_pk = calloc(b->n, sizeof(*b->rx_pk));
	int rc = b->rx_pk ? 0 : -1;
	for (size_t i = 0; rc == 0 && i < b->n; i++) {
		struct veil_identity *d = NULL;
		struct veil__rxkey *rx = NULL;
		uint8_t cred[VEIL_CREDENTIAL_MAX], msg[VEIL__DEVMSG_MAX], nonce[VEIL__DEVMSG_NONCE_BYTES], tok[VEIL_TOKEN_MAX];
		size_t cl, ml, tl;
		char cid[32], topic[64], pw[VEIL_PASSWORD_MAX];
		snprintf(cid, sizeof(cid), "s%zu", i);
		snprintf(topic, sizeof(topic), "%s%s", VEIL__TOPIC_REQ_PREFIX, cid);
		randombytes_buf(nonce, sizeof(nonce));
		uint64_t now = (uint64_t)time(NULL);
		rc = veil_identity_generate(&d) == VEIL_OK &&
		             bench_keyd_credential(auth, d, cid, "sensor", cred, &cl) == VEIL_OK &&
		             veil__rxkey_generate(&rx) == VEIL_OK &&
		             veil_token_create(d, cred, cl, cid, now, tok, sizeof(tok), &tl) == VEIL_OK &&
		             veil_token_to_password(tok, tl, pw, sizeof(pw)) == VEIL_OK
		             ? 0
		             : -1;
		MQTTClient c = NULL;
		MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
		o.username = cid;
		o.password = pw;
		if (rc == 0)
			rc = MQTTClient_create(&c, uri, cid, MQTTCLIENT_PERSISTENCE_NONE, NULL) == MQTTCLIENT_SUCCESS &&
			             MQTTClient_connect(c, &o) == MQTTCLIENT_SUCCESS
			             ? 0
			             : -1;
		if (rc == 0) {
			memcpy(b->rx_pk[i], veil__rxkey_public(rx), VEIL__X25519_BYTES);
			struct veil__devmsg_params p = { .device = d, .credential = cred, .credential_len = cl,
				                         .client_id = cid, .kind = VEIL__KIND_REQUEST, .timestamp = now,
				                         .nonce = nonce, .receive_pk = b->rx_pk[i] };
			MQTTClient_deliveryToken t;
			rc = veil__devmsg_build(&p, msg, sizeof(msg), &ml) == VEIL_OK &&
			             MQTTClient_publish(c, topic, (int)ml, msg, 1, 0, &t) == MQTTCLIENT_SUCCESS &&
			             MQTTClient_waitForCompletion(c, t, 10000) == MQTTCLIENT_SUCCESS
			             ? 0
			             : -1;
			MQTTClient_disconnect(c, 1000);
		}
		if (c)
			MQTTClient_destroy(&c);
		sodium_memzero(pw, sizeof(pw));
		veil__rxkey_free(&rx);
		veil_identity_free(&d);
	}
	/* The statement and one bundle per device acknowledged. */
	if (rc != 0 || !wait_pubacks(b, (int)b->n + 1)) {
		veil_identity_free(&auth);
		return -1;
	}
	rc = pub_start(b, auth, uri);
	veil_identity_free(&auth);
	return rc;
}

static int run_raw(struct bench *b, double *v)
{
	struct veil__grants *g = NULL;
	if (veil__grants_new(1, &g) != VEIL_OK)
		return -1;
	g->g[0] = (struct veil__grant){ .key_id = VEIL__GRANT_KEY_ID_MIN, .send_from = 1, .send_until = 2,
		                        .accept_until = 3, .flags = VEIL__GRANT_MAY_SEND | VEIL__GRANT_SUPERSEDES };
	randombytes_buf(g->g[0].key, VEIL_KEY_BYTES);
	uint8_t id[VEIL_CREDENTIAL_ID_BYTES] = { 1 }, sid[VEIL_SENDER_ID_BYTES] = { 2 }, nonce[16] = { 3 };
	uint8_t *out = malloc(4096);
	int rc = out ? 0 : -1;
	double t0 = bench_now_s();
	for (size_t i = 0; rc == 0 && i < b->n; i++) {
		char cid[32];
		snprintf(cid, sizeof(cid), "s%zu", i);
		snprintf(g->g[0].scope, sizeof(g->g[0].scope), "factory/%s/#", cid);
		struct veil__bundle_params p = { .keyd = b->keyd_id, .credential = b->keyd_cred,
			                         .credential_len = b->keyd_cred_len, .recipient_cred_id = id,
			                         .recipient_sender_id = sid, .recipient_client_id = cid,
			                         .receive_pk = b->rx_pk[i], .echo_nonce = nonce, .version = i + 1,
			                         .grants = g->g, .n_grants = 1 };
		size_t len;
		rc = veil__bundle_build(&p, out, 4096, &len) == VEIL_OK ? 0 : -1;
	}
	v[V_WALL] = bench_now_s() - t0;
	v[V_CPU] = v[V_WALL]; /* one thread, nothing else: its wall is its CPU */
	free(out);
	veil__grants_free(&g);
	return rc;
}

static int run_rotation(struct bench *b, double *v)
{
	struct kd_store *s = NULL;
	char err[256];
	int before = b->pubacks;
	double c0 = bench_keyd_cpu_s(b->keyd);
	double t0 = bench_now_s();
	if (kd_store__open(b->db, NULL, false, &s, err, sizeof(err)) != VEIL_OK ||
	    kd_store__rotate_request(s, "factory/%c/#", (uint64_t)time(NULL)) != VEIL_OK) {
		fprintf(stderr, "bench_keyd: %s\n", err);
		kd_store__close(&s);
		return -1;
	}
	kd_store__close(&s);
	if (!wait_pubacks(b, before + (int)b->n)) {
		fprintf(stderr, "bench_keyd: %d of %zu bundles acknowledged\n", b->pubacks - before, b->n);
		if (getenv("VEIL_BENCH_VERBOSE"))
			test_file_dump("keyd", b->log);
		return -1;
	}
	v[V_WALL] = bench_now_s() - t0;
	v[V_CPU] = bench_keyd_cpu_s(b->keyd) - c0;
	return 0;
}

static int run_case(void *ctx, size_t c, double *v)
{
	return c == C_RAW ? run_raw(ctx, v) : run_rotation(ctx, v);
}

static void report(const struct bench_table *t, void *ctx)
{
	struct bench *b = ctx;
	char x[BENCH_FMT_CAP], y[BENCH_FMT_CAP], q[BENCH_FMT_CAP];
	printf("%-26s %-28s %-28s %s\n", "figure", case_name[C_RAW], case_name[C_ROTATION], "rotation vs raw");
	printf("  %-24s %-28s %-28s %s\n", "wall seconds", bench_fmt_value(x, sizeof(x), t, C_RAW, V_WALL),
	       bench_fmt_value(y, sizeof(y), t, C_ROTATION, V_WALL), bench_fmt_vs(q, sizeof(q), t, C_ROTATION, V_WALL, C_RAW));
	printf("  %-24s %-28s %-28s %s\n", "CPU seconds (keyd's)", bench_fmt_value(x, sizeof(x), t, C_RAW, V_CPU),
	       bench_fmt_value(y, sizeof(y), t, C_ROTATION, V_CPU), bench_fmt_vs(q, sizeof(q), t, C_ROTATION, V_CPU, C_RAW));
	struct bench_summary s;
	bench_table_summary(t, C_ROTATION, V_WALL, BENCH_NO_BASE, &s);
	printf("target: a rotation for %zu devices, trigger to last PUBACK, under 1 s: %s (median %.3f s over %zu "
	       "repetitions)\n", b->n, s.median < 1.0 ? "met" : "NOT met", s.median, s.n);
}

/* ---- publish throughput during rotations ----------------------------------- */

/* A rotation request for rot_scope every rot_every_ms until told to stop. */
static void *rot_main(void *arg)
{
	struct bench *b = arg;
	pthread_mutex_lock(&b->lock);
	while (!b->rot_stop) {
		pthread_mutex_unlock(&b->lock);
		struct kd_store *s = NULL;
		char err[256] = "";
		if (kd_store__open(b->db, NULL, false, &s, err, sizeof(err)) == VEIL_OK &&
		    kd_store__rotate_request(s, b->rot_scope, (uint64_t)time(NULL)) == VEIL_OK) {
			pthread_mutex_lock(&b->lock);
			b->rotations++;
			pthread_mutex_unlock(&b->lock);
		} else {
			fprintf(stderr, "bench_keyd: rotation request: %s\n", err);
		}
		kd_store__close(&s);
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_nsec += (long)(b->rot_every_ms % 1000U) * 1000000L;
		dl.tv_sec += (time_t)(b->rot_every_ms / 1000U) + dl.tv_nsec / 1000000000L;
		dl.tv_nsec %= 1000000000L;
		pthread_mutex_lock(&b->lock);
		int rc = 0;
		while (!b->rot_stop && rc == 0) /* the pace of an operator, or the stop */
			rc = pthread_cond_timedwait(&b->cond, &b->lock, &dl);
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

/* Sealed QoS 1 publishes for WINDOW_S, PIPELINE in flight: completed per second. */
static double publish_window(struct bench *b)
{
	int tok[PIPELINE] = { 0 };
	size_t head = 0, inflight = 0, done = 0;
	char msg[64];
	double t0 = bench_now_s(), end = t0 + WINDOW_S;
	for (uint64_t i = 0;; i++) {
		bool more = bench_now_s() < end;
		if (inflight == PIPELINE || (!more && inflight)) {
			if (veil_client_wait(b->pub, tok[head], 10000, NULL) == VEIL_OK)
				done++;
			else
				b->pub_errors++;
			head = (head + 1) % PIPELINE;
			inflight--;
			continue;
		}
		if (!more)
			break;
		int n = snprintf(msg, sizeof(msg), "reading %llu", (unsigned long long)i);
		int t = 0;
		if (veil_client_publish(b->pub, PUB_TOPIC, msg, (size_t)n, 1, false, &t) != VEIL_OK) {
			b->pub_errors++;
			continue;
		}
		tok[(head + inflight) % PIPELINE] = t;
		inflight++;
	}
	return (double)done / (bench_now_s() - t0);
}

static int run_tcase(void *ctx, size_t c, double *v)
{
	struct bench *b = ctx;
	b->rot_stop = false;
	b->rotations = 0;
	b->rot_scope = c == T_OWN ? "factory/" PUB_CID "/#" : "factory/%c/#";
	b->rot_every_ms = c == T_OWN ? OWN_EVERY_MS : FLEET_EVERY_MS;
	bool rot = c != T_STEADY && pthread_create(&b->rot, NULL, rot_main, b) == 0;
	if (c != T_STEADY && !rot)
		return -1;
	v[T_RATE] = publish_window(b);
	if (rot) {
		pthread_mutex_lock(&b->lock);
		b->rot_stop = true;
		pthread_cond_broadcast(&b->cond);
		pthread_mutex_unlock(&b->lock);
		pthread_join(b->rot, NULL);
	}
	v[T_ROTATIONS] = (double)b->rotations;
	return 0;
}

static void report_t(const struct bench_table *t, void *ctx)
{
	struct bench *b = ctx;
	char x[BENCH_FMT_CAP], y[BENCH_FMT_CAP], q[BENCH_FMT_CAP];
	printf("publish throughput of one device (sealed, QoS 1, %d in flight, %.0f s windows), %zu devices in keyd:\n",
	       PIPELINE, WINDOW_S, b->n + 1);
	printf("  %-22s %-30s %-24s %s\n", "case", "messages per second", "vs steady", "rotations requested");
	for (size_t c = 0; c < NTCASES; c++)
		printf("  %-22s %-30s %-24s %s\n", tcase_name[c], bench_fmt_value(x, sizeof(x), t, c, T_RATE),
		       c == T_STEADY ? "-" : bench_fmt_vs(q, sizeof(q), t, c, T_RATE, T_STEADY),
		       bench_fmt_value(y, sizeof(y), t, c, T_ROTATIONS));
	printf("  own scope rotated every %d ms, the fleet's every %d ms\n", OWN_EVERY_MS, FLEET_EVERY_MS);
	for (size_t c = T_OWN; c < NTCASES; c++) {
		struct bench_summary s;
		bench_table_summary(t, c, T_RATE, T_STEADY, &s);
		printf("target: throughput with %s within 5%% of steady: %s (median ratio %.3f)\n", tcase_name[c],
		       s.median >= 0.95 ? "met" : "NOT met", s.median);
	}
	if (b->pub_errors)
		printf("note: %zu publishes refused or not completed\n", b->pub_errors);
}

int main(void)
{
	struct bench_plan plan;
	if (bench_plan_init(&plan, 900, 300) != 0 || veil_init() != VEIL_OK)
		return 1;
	char pbuf[PATH_MAX + 64], kbuf[PATH_MAX + 64];
	const char *plugin = bench_plugin_path(pbuf, sizeof(pbuf));
	const char *keyd = bench_build_path("VEIL_KEYD", "keyd/veil-keyd", kbuf, sizeof(kbuf));
	struct bench b = { .n = plan.quick ? 200 : 1000, .keyd = -1 };
	pthread_mutex_init(&b.lock, NULL);
	pthread_cond_init(&b.cond, NULL);
	printf("bench_keyd: a veil-keyd rotation for %zu devices (own scope each), trigger to the last bundle's "
	       "PUBACK, against building the same bundles in-process\n", b.n);
	int rc = plugin && keyd ? setup(&b, plugin, keyd) : -1;
	if (rc != 0) {
		fprintf(stderr, "bench_keyd: setup failed (broker, keyd or the fleet's requests)\n");
		test_file_dump("keyd", b.log);
	} else {
		rc = bench_measure(&plan, NCASES, NVALUES, run_case, true, report, &b);
		if (rc == 0)
			rc = bench_measure(&plan, NTCASES, NTVALUES, run_tcase, true, report_t, &b);
	}
	if (b.pub) {
		veil_client_disconnect(b.pub, 100);
		veil_client_free(&b.pub);
	}
	if (b.keyd > 0) {
		kill(b.keyd, SIGTERM);
		bench_keyd_wait_exit(b.keyd);
	}
	test_broker_stop(&b.b);
	test_broker_cleanup(&b.b);
	free(b.rx_pk);
	veil_identity_free(&b.keyd_id);
	test_rmtree(b.dir);
	pthread_cond_destroy(&b.cond);
	pthread_mutex_destroy(&b.lock);
	return rc == 0 ? 0 : 1;
}
