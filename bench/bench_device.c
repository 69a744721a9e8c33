/*
 * Applying a key-service bundle on a device (issue 12, "Performance": under
 * 1 ms), for bundles of 1, 8 and 64 grants. In this process, as
 * tests/unit/check_keyd_device.c drives it: libveil's device side
 * (client-shim/device.c), its device messages caught by the send callback,
 * and each bundle built by the core (core/bundle.c) as veil-keyd builds it,
 * signed by an identity with the veil-keyd role.
 *
 * Cases, interleaved and repeated (bench_stats.h), per number of grants:
 *   - baseline "open": veil__bundle_open of a bundle of the same grants,
 *     sealed to a receive key held here: verify the keyd credential and the
 *     signature, check the addressing, X25519 and decrypt, parse the grants;
 *     nothing applied;
 *   - baseline "write": what the device persists before it uses the keys,
 *     alone: veil__file_write_atomic (temporary file, fsync, rename) of as
 *     many bytes as the keys file holds, in the same state directory;
 *   - "apply (memory only)": veil__device_message on "$veil/v1/bundle/<cid>"
 *     on a device without a state directory: the open, then the superseded
 *     epochs, the receive keys spent, the acknowledgement built (a fresh
 *     receive key, signed) and queued;
 *   - "apply": the same on a device with a state directory (libveil's
 *     state_dir set): the keys file is written behind by the keeper
 *     thread (the acknowledgement leaves once it is on disk), so the
 *     call itself only queues that write.
 * Per call: wall time (median and 99th percentile of a run's calls) and the
 * calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID, mean of a run's calls);
 * the spread is over the repetitions.
 * Each apply answers the device's latest message (its receive key; a newer
 * version), so every bundle is built, outside the timed call, from the
 * acknowledgement of the one before; every bundle carries fresh key ids.
 *
 * Target, reported and never judged: apply under 1 ms. The exit status
 * reflects errors only (a bundle refused, no acknowledgement).
 * VEIL_BENCH_QUICK=1: fewer calls per run, same repetitions.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "veil/veil.h"
#include "../core/bundle.h"
#include "../client-shim/device.h"
#include "../core/util.h"
#include "bench_keyd_common.h"
#include "bench_stats.h"
#include "files.h"

static const size_t ngrants[] = { 1, 8, 64 };
#define NSIZES (sizeof(ngrants) / sizeof(ngrants[0]))
#define GRANTS_CAP 64
enum { C_OPEN, C_WRITE, C_APPLY_MEM, C_APPLY, PER_SIZE };
#define NCASES (NSIZES * PER_SIZE)
enum { V_MED_US, V_P99_US, V_CPU_US, NVALUES };

#define CID "bench-dev"
#define BUNDLE_TOPIC "$veil/v1/bundle/" CID
#define ACK_WAIT_S 10.0

/* A device side and its latest device message, from its send callback. */
struct dev {
	struct veil__device *d;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint8_t msg[VEIL__DEVMSG_MAX];
	size_t msg_len, nmsg;
};
enum { D_PERSIST, D_MEMORY, NDEVS }; /* with a state directory, without */

struct bench {
	size_t iters;
	char dir[256];
	struct veil_identity *authority, *device, *keyd;
	uint8_t dcred[VEIL_CREDENTIAL_MAX], kcred[VEIL_CREDENTIAL_MAX];
	size_t dcred_len, kcred_len;
	struct veil_credential dc;
	uint8_t apk[VEIL_PK_BYTES];
	uint8_t sid[VEIL_SENDER_ID_BYTES];
	struct dev dev[NDEVS];
	uint64_t version;     /* of the latest bundle built for the device */
	uint32_t next_key_id; /* fresh key ids for every bundle */
	struct veil__grant g[GRANTS_CAP];
	uint8_t *buf;
	size_t cap;
	double *us;     /* one run's call times */
	double cpu_us;  /* one run's CPU time of this thread in the timed calls */
	char wpath[300]; /* the write baseline's file */
};

/* CPU time (user + system) of the calling thread, microseconds. */
static double thread_cpu_us(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int on_send(void *ctx, const char *topic, const uint8_t *payload, size_t len)
{
	struct dev *b = ctx;
	if (strcmp(topic, "$veil/v1/req/" CID) != 0 || len > sizeof(b->msg))
		return VEIL_ERR_INVAL;
	pthread_mutex_lock(&b->lock);
	memcpy(b->msg, payload, len);
	b->msg_len = len;
	b->nmsg++;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	return VEIL_OK;
}

/* The device's message number want (counted from 1), parsed; false when it
 * did not come within ACK_WAIT_S. */
static bool wait_msg(struct dev *b, size_t want, struct veil__devmsg *m)
{
	veil__device_flush(b->d); /* on this thread, unless the keeper sends it first */
	double until = bench_now_s() + ACK_WAIT_S;
	bool ok = false;
	pthread_mutex_lock(&b->lock);
	while (b->nmsg < want && bench_now_s() < until) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&b->cond, &b->lock, &ts);
	}
	if (b->nmsg >= want)
		ok = veil__devmsg_parse(b->msg, b->msg_len, m) == VEIL_OK;
	pthread_mutex_unlock(&b->lock);
	return ok;
}

/* n grants with fresh key ids (one scope each, the device's own may send),
 * sealed to receive_pk and echoing nonce, the next version. */
static void fill_grants(struct bench *b, size_t n)
{
	uint64_t now = (uint64_t)time(NULL);
	for (size_t i = 0; i < n; i++) {
		struct veil__grant *g = &b->g[i];
		memset(g, 0, sizeof(*g));
		if (i == 0)
			snprintf(g->scope, sizeof(g->scope), "factory/%s/#", CID);
		else
			snprintf(g->scope, sizeof(g->scope), "factory/line-%zu/#", i);
		g->key_id = b->next_key_id++;
		g->epoch = g->key_id - VEIL__GRANT_KEY_ID_MIN;
		g->send_from = now - 10;
		g->send_until = now + 3600;
		g->accept_until = now + 7200;
		g->flags = i == 0 ? VEIL__GRANT_MAY_SEND : 0;
		randombytes_buf(g->key, sizeof(g->key));
	}
}

static int build(struct bench *b, size_t n, const uint8_t *receive_pk, const uint8_t *nonce, size_t *len)
{
	fill_grants(b, n);
	struct veil__bundle_params p = {
		.keyd = b->keyd,
		.credential = b->kcred,
		.credential_len = b->kcred_len,
		.recipient_cred_id = b->dc.id,
		.recipient_sender_id = b->sid,
		.recipient_client_id = CID,
		.receive_pk = receive_pk,
		.echo_nonce = nonce,
		.version = ++b->version,
		.grants = b->g,
		.n_grants = n,
	};
	int rc = veil__bundle_build(&p, b->buf, b->cap, len);
	sodium_memzero(b->g, sizeof(b->g));
	return rc;
}

/* Baseline: open (verify, decrypt, parse) without applying. */
static int run_open(struct bench *b, size_t n)
{
	struct veil__rxkey *rx = NULL;
	int rc = veil__rxkey_generate(&rx);
	uint8_t nonce[VEIL__DEVMSG_NONCE_BYTES];
	randombytes_buf(nonce, sizeof(nonce));
	for (size_t i = 0; i < b->iters && rc == VEIL_OK; i++) {
		size_t len = 0;
		rc = build(b, n, veil__rxkey_public(rx), nonce, &len);
		if (rc != VEIL_OK)
			break;
		struct veil__rxkey *const keys[1] = { rx };
		struct veil__bundle_self self = { &b->dc, keys, 1, 0, nonce };
		struct veil__trust t = { (const uint8_t(*)[VEIL_PK_BYTES])b->apk, 1, (uint64_t)time(NULL), NULL, NULL };
		struct veil__bundle_view v;
		size_t idx = 0;
		struct veil__grants *gs = NULL;
		double c0 = thread_cpu_us(), a = bench_now_s();
		rc = veil__bundle_open(b->buf, len, &t, &self, &v, &idx, &gs);
		b->us[i] = (bench_now_s() - a) * 1e6;
		b->cpu_us += thread_cpu_us() - c0;
		if (rc == VEIL_OK && gs->n != n)
			rc = VEIL_ERR_PARSE;
		veil__grants_free(&gs);
	}
	veil__rxkey_free(&rx);
	if (rc != VEIL_OK)
		fprintf(stderr, "bench_device: open of a %zu-grant bundle: %s\n", n, veil_errname(rc));
	return rc;
}

/* Second baseline: what the device persists before it uses the keys, alone:
 * an atomic write (temporary file, fsync, rename) of as many bytes as its
 * keys file holds for n grants, in the same state directory. */
static int run_write(struct bench *b, size_t n)
{
	fill_grants(b, n);
	size_t len = 16 + VEIL_CREDENTIAL_ID_BYTES + veil__grants_encoded_len(b->g, n);
	sodium_memzero(b->g, sizeof(b->g));
	uint8_t *data = malloc(len);
	if (!data)
		return VEIL_ERR_NOMEM;
	randombytes_buf(data, len);
	int rc = VEIL_OK;
	for (size_t i = 0; i < b->iters && rc == VEIL_OK; i++) {
		double c0 = thread_cpu_us(), a = bench_now_s();
		rc = veil__file_write_atomic(b->wpath, data, len, 0600, false);
		b->us[i] = (bench_now_s() - a) * 1e6;
		b->cpu_us += thread_cpu_us() - c0;
	}
	free(data);
	if (rc != VEIL_OK)
		fprintf(stderr, "bench_device: write of %zu bytes to %s: %s\n", len, b->wpath, veil_errname(rc));
	return rc;
}

/* veil__device_message on the bundle topic, each bundle answering the
 * device's latest message. */
static int run_apply(struct bench *b, struct dev *v, size_t n)
{
	int rc = VEIL_OK;
	for (size_t i = 0; i < b->iters && rc == VEIL_OK; i++) {
		struct veil__devmsg m;
		size_t seen;
		pthread_mutex_lock(&v->lock);
		seen = v->nmsg;
		pthread_mutex_unlock(&v->lock);
		if (!wait_msg(v, seen, &m)) {
			fprintf(stderr, "bench_device: the device's latest message does not parse\n");
			return -1;
		}
		size_t len = 0;
		rc = build(b, n, m.receive_pk, m.nonce, &len);
		if (rc != VEIL_OK)
			break;
		double c0 = thread_cpu_us(), a = bench_now_s();
		rc = veil__device_message(v->d, BUNDLE_TOPIC, b->buf, len);
		b->us[i] = (bench_now_s() - a) * 1e6;
		b->cpu_us += thread_cpu_us() - c0;
		if (rc != VEIL_OK)
			break;
		/* Applied: acknowledged with this version (and a fresh receive key). */
		if (!wait_msg(v, seen + 1, &m) || m.kind != VEIL__KIND_ACK || m.version != b->version) {
			fprintf(stderr, "bench_device: no acknowledgement of version %llu within %.0f s\n",
			        (unsigned long long)b->version, ACK_WAIT_S);
			return -1;
		}
	}
	if (rc != VEIL_OK)
		fprintf(stderr, "bench_device: apply of a %zu-grant bundle: %s\n", n, veil_errname(rc));
	return rc;
}

static int run_case(void *ctx, size_t c, double *v)
{
	struct bench *b = ctx;
	size_t n = ngrants[c / PER_SIZE];
	b->cpu_us = 0;
	int rc;
	switch (c % PER_SIZE) {
	case C_OPEN:
		rc = run_open(b, n);
		break;
	case C_WRITE:
		rc = run_write(b, n);
		break;
	case C_APPLY_MEM:
		rc = run_apply(b, &b->dev[D_MEMORY], n);
		break;
	default:
		rc = run_apply(b, &b->dev[D_PERSIST], n);
		break;
	}
	if (rc != VEIL_OK)
		return -1;
	v[V_CPU_US] = b->cpu_us / (double)b->iters;
	v[V_MED_US] = bench_percentile(b->us, b->iters, 50);
	v[V_P99_US] = bench_percentile(b->us, b->iters, 99);
	return 0;
}

static void report(const struct bench_table *t, void *ctx)
{
	struct bench *b = ctx;
	static const char *const name[PER_SIZE] = { "open", "write", "apply (memory only)", "apply" };
	char m[BENCH_FMT_CAP], p[BENCH_FMT_CAP], u[BENCH_FMT_CAP], r[BENCH_FMT_CAP], w[BENCH_FMT_CAP];
	printf("%-6s %-19s %-24s %-24s %-24s %-24s %s\n", "grants", "case", "median us per call", "p99 us per call",
	       "mean CPU us per call", "median vs open", "median vs write");
	for (size_t k = 0; k < NSIZES; k++) {
		size_t o = k * PER_SIZE + C_OPEN, wr = k * PER_SIZE + C_WRITE;
		for (size_t j = 0; j < PER_SIZE; j++) {
			size_t c = k * PER_SIZE + j;
			printf("%-6zu %-19s %-24s %-24s %-24s", ngrants[k], name[j], bench_fmt_value(m, sizeof(m), t, c, V_MED_US),
			       bench_fmt_value(p, sizeof(p), t, c, V_P99_US), bench_fmt_value(u, sizeof(u), t, c, V_CPU_US));
			if (j == C_APPLY || j == C_APPLY_MEM)
				printf(" %-24s", bench_fmt_vs(r, sizeof(r), t, c, V_MED_US, o));
			if (j == C_APPLY)
				printf(" %s", bench_fmt_vs(w, sizeof(w), t, c, V_MED_US, wr));
			printf("\n");
		}
	}
	for (size_t k = 0; k < NSIZES; k++) {
		for (size_t j = C_APPLY_MEM; j <= C_APPLY; j++) {
			struct bench_summary s, cpu;
			bench_table_summary(t, k * PER_SIZE + j, V_MED_US, BENCH_NO_BASE, &s);
			bench_table_summary(t, k * PER_SIZE + j, V_CPU_US, BENCH_NO_BASE, &cpu);
			printf("%s, %zu grant(s): median %.0f us wall (target < 1000 us): %s; %.0f us of CPU on the caller's "
			       "thread\n",
			       name[j], ngrants[k], s.median, s.median < 1000 ? "met" : "not met", cpu.median);
		}
	}
	printf("(%zu calls per run; state directory %s; write = temporary file, fsync, rename of the keys file's size)\n",
	       b->iters, b->dir);
}

static int setup(struct bench *b)
{
	if (test_mkdtemp(b->dir, sizeof(b->dir)) != 0)
		return -1;
	if (veil_identity_generate(&b->authority) != VEIL_OK || veil_identity_generate(&b->device) != VEIL_OK ||
	    veil_identity_generate(&b->keyd) != VEIL_OK)
		return -1;
	if (bench_keyd_credential(b->authority, b->device, CID, "sensor", b->dcred, &b->dcred_len) != VEIL_OK ||
	    bench_keyd_credential(b->authority, b->keyd, "veil-keyd", "veil-keyd", b->kcred, &b->kcred_len) != VEIL_OK ||
	    veil_credential_parse(b->dcred, b->dcred_len, &b->dc) != VEIL_OK)
		return -1;
	snprintf(b->wpath, sizeof(b->wpath), "%s/write-baseline", b->dir);
	veil_identity_public(b->authority, b->apk);
	veil_sender_id(b->dc.device_pk, b->sid);
	b->next_key_id = VEIL__GRANT_KEY_ID_MIN + 1;
	b->version = 1000;

	/* Room for the largest bundle (the longest scopes build uses). */
	fill_grants(b, GRANTS_CAP);
	struct veil__bundle_params p = { .keyd = b->keyd, .credential = b->kcred, .credential_len = b->kcred_len,
		                         .recipient_cred_id = b->dc.id, .recipient_sender_id = b->sid,
		                         .recipient_client_id = CID, .receive_pk = b->apk, .echo_nonce = b->apk,
		                         .version = 1, .grants = b->g, .n_grants = GRANTS_CAP };
	b->cap = veil__bundle_len(&p);
	sodium_memzero(b->g, sizeof(b->g));
	b->next_key_id = VEIL__GRANT_KEY_ID_MIN + 1;
	b->buf = b->cap ? malloc(b->cap) : NULL;
	b->us = calloc(b->iters, sizeof(*b->us));
	if (!b->buf || !b->us)
		return -1;

	const uint8_t(*auths)[VEIL_PK_BYTES] = (const uint8_t(*)[VEIL_PK_BYTES])b->apk;
	for (size_t k = 0; k < NDEVS; k++) {
		struct dev *v = &b->dev[k];
		struct veil__device_opts o = {
			.client_id = CID,
			.identity = b->device,
			.credential = b->dcred,
			.credential_len = b->dcred_len,
			.authorities = auths,
			.n_authorities = 1,
			.state_dir = k == D_PERSIST ? b->dir : NULL,
		};
		char err[512] = "";
		if (veil__device_new(&o, &v->d, err, sizeof(err)) != VEIL_OK) {
			fprintf(stderr, "bench_device: device: %s\n", err);
			return -1;
		}
		veil__device_set_send(v->d, on_send, v);
		veil__device_connected(v->d); /* its first request */
		struct veil__devmsg m;
		if (!wait_msg(v, 1, &m) || m.kind != VEIL__KIND_REQUEST) {
			fprintf(stderr, "bench_device: the device sent no request within %.0f s\n", ACK_WAIT_S);
			return -1;
		}
	}
	return 0;
}

int main(void)
{
	struct bench_plan plan;
	if (veil_init() != VEIL_OK || bench_plan_init(&plan, 600, 120) != 0)
		return 1;
	static struct bench b;
	for (size_t k = 0; k < NDEVS; k++) {
		pthread_mutex_init(&b.dev[k].lock, NULL);
		pthread_cond_init(&b.dev[k].cond, NULL);
	}
	b.iters = plan.quick ? 30 : 300;
	int rc = setup(&b);
	if (rc == 0) {
		printf("bench_device: a device applying key-service bundles (veil__device_message) vs opening the same "
		       "bundles (veil__bundle_open) and vs the atomic write of its keys file alone, %zu calls per run\n",
		       b.iters);
		rc = bench_measure(&plan, NCASES, NVALUES, run_case, true, report, &b);
	} else {
		fprintf(stderr, "bench_device: setup failed\n");
	}
	for (size_t k = 0; k < NDEVS; k++)
		veil__device_free(&b.dev[k].d);
	if (b.dir[0])
		test_rmtree(b.dir);
	free(b.buf);
	free(b.us);
	veil_identity_free(&b.authority);
	veil_identity_free(&b.device);
	veil_identity_free(&b.keyd);
	for (size_t k = 0; k < NDEVS; k++) {
		pthread_cond_destroy(&b.dev[k].cond);
		pthread_mutex_destroy(&b.dev[k].lock);
	}
	return rc == 0 ? 0 : 1;
}
