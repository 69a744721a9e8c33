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

#include <MQTTClient.h>
#include <sodium.h>

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
};

/* keyd's CPU seconds so far. */
static double proc_cpu(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	unsigned long long ut = 0, st = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

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
	                             "scope factory/%%c/# period 3600 lead 300 grace 600 depth 1\n", b->b.port);
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
	veil_identity_free(&auth);
	/* The statement and one bundle per device acknowledged. */
	if (rc != 0 || !wait_pubacks(b, (int)b->n + 1))
		return -1;
	return 0;
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
	double c0 = proc_cpu(b->keyd);
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
	v[V_CPU] = proc_cpu(b->keyd) - c0;
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

int main(void)
{
	struct bench_plan plan;
	if (bench_plan_init(&plan, 900, 300) != 0 || veil_init() != VEIL_OK)
		return 1;
	char pbuf[PATH_MAX + 64], kbuf[PATH_MAX + 64];
	const char *plugin = bench_plugin_path(pbuf, sizeof(pbuf));
	const char *keyd = bench_build_path("VEIL_KEYD", "keyd/veil-keyd", kbuf, sizeof(kbuf));
	struct bench b = { .n = plan.quick ? 200 : 1000, .keyd = -1 };
	printf("bench_keyd: a veil-keyd rotation for %zu devices (own scope each), trigger to the last bundle's "
	       "PUBACK, against building the same bundles in-process\n", b.n);
	int rc = plugin && keyd ? setup(&b, plugin, keyd) : -1;
	if (rc != 0) {
		fprintf(stderr, "bench_keyd: setup failed (broker, keyd or the fleet's requests)\n");
		test_file_dump("keyd", b.log);
	} else {
		rc = bench_measure(&plan, NCASES, NVALUES, run_case, true, report, &b);
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
	return rc == 0 ? 0 : 1;
}
