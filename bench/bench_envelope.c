/*
 * Seal and open cost per message, next to the raw libsodium
 * XChaCha20-Poly1305 calls on the same buffers, in the same run. The raw
 * baseline draws its nonce with randombytes_buf too, so both sides pay for
 * the same randomness. Cases run interleaved (raw, unsigned, signed per
 * size; then signed open without and with cached credentials), repeated
 * VEIL_BENCH_REPEAT times (default 5); each line is the median [min - max]
 * over the repetitions, ratios taken per repetition (bench_stats.h).
 * Target, reported and never judged: unsigned seal+open at 256 B within
 * 1.5x of raw. VEIL_BENCH_QUICK=1 makes each run 10 times shorter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "veil/veil.h"
#include "bench_stats.h"

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static const char *topic = "factory/line1/temperature";
static const size_t sizes[] = { 64, 256, 4096, 65536 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

/* Per size: the raw baseline, then Veil unsigned and signed. Then signed
 * open: without receiver state (baseline) and with cached credentials. */
enum { C_RAW, C_UNSIGNED, C_SIGNED, PER_SIZE };
enum { C_OPEN_COLD = NSIZES * PER_SIZE, C_OPEN_WARM, NCASES };
enum { V_US, V_SEAL_US, NVALUES };

struct env_bench {
	bool quick;
	const uint8_t *key;
	struct veil_keyring *kr;
	struct veil_sender s;
	struct veil_replay *rp;
	size_t cred_len;
	uint8_t *pt[NSIZES], *env[NSIZES], *out[NSIZES];
	size_t cap[NSIZES];
};

/* us per seal+open, or -1 if an open fails. */
static double bench_raw(const uint8_t *key, const uint8_t *pt, size_t n, uint8_t *ct, uint8_t *out, int iters)
{
	uint8_t nonce[24];
	uint8_t aad[48 + 2 + 64];
	size_t aad_len = 48 + 2 + strlen(topic);
	memset(aad, 7, sizeof(aad));
	double t0 = now_us();
	for (int i = 0; i < iters; i++) {
		unsigned long long cl, ol;
		randombytes_buf(nonce, sizeof(nonce));
		crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &cl, pt, n, aad, aad_len, NULL, nonce, key);
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &ol, NULL, ct, cl, aad, aad_len, nonce, key) != 0)
			return -1;
	}
	return (now_us() - t0) / iters;
}

/* us per seal+open (and per seal in *seal_us), or -1 on an error. */
static double bench_veil(struct env_bench *b, size_t k, bool sign, int iters, double *seal_us)
{
	double t_seal = 0;
	double t0 = now_us();
	for (int i = 0; i < iters; i++) {
		size_t el = 0, ol = 0;
		bool sealed;
		double a = now_us();
		if (veil_message_seal(b->kr, &b->s, topic, b->pt[k], sizes[k], sign, b->env[k], b->cap[k], &el,
		                      &sealed) != VEIL_OK)
			return -1;
		t_seal += now_us() - a;
		if (veil_message_open(b->kr, b->rp, topic, b->env[k], el, (uint64_t)time(NULL), b->out[k], b->cap[k], &ol,
		                      NULL) != VEIL_OK)
			return -1;
	}
	*seal_us = t_seal / iters;
	return (now_us() - t0) / iters;
}

/* Signed open of a 1-byte message: without receiver state every message
 * verifies its credential again; with it, verified credentials are cached.
 * Only the open is timed. */
static double bench_open(struct env_bench *b, bool cached, int iters)
{
	uint8_t env[1024], out[1024];
	size_t el = 0, ol = 0;
	bool sealed;
	struct veil_replay *cache = NULL;
	if (cached && veil_replay_new(16, &cache) != VEIL_OK)
		return -1;
	double open_us = 0;
	int rc = VEIL_OK;
	for (int i = 0; i < iters && rc == VEIL_OK; i++) {
		/* A fresh message each time: the cache also rejects replays. */
		rc = veil_message_seal(b->kr, &b->s, topic, (const uint8_t *)"x", 1, true, env, sizeof(env), &el, &sealed);
		double a = now_us();
		if (rc == VEIL_OK)
			rc = veil_message_open(b->kr, cache, topic, env, el, (uint64_t)time(NULL), out, sizeof(out), &ol, NULL);
		open_us += now_us() - a;
	}
	veil_replay_free(&cache);
	return rc == VEIL_OK ? open_us / iters : -1;
}

static int run_case(void *arg, size_t c, double *v)
{
	struct env_bench *b = arg;
	v[V_SEAL_US] = 0;
	if (c >= C_OPEN_COLD) {
		v[V_US] = bench_open(b, c == C_OPEN_WARM, b->quick ? 200 : 2000);
	} else {
		size_t k = c / PER_SIZE;
		int iters = (int)((b->quick ? 2000000 : 20000000) / (sizes[k] + 512));
		if (iters < 50)
			iters = 50;
		switch (c % PER_SIZE) {
		case C_RAW:
			v[V_US] = bench_raw(b->key, b->pt[k], sizes[k], b->env[k], b->out[k], iters);
			break;
		case C_UNSIGNED:
			v[V_US] = bench_veil(b, k, false, iters, &v[V_SEAL_US]);
			break;
		default:
			v[V_US] = bench_veil(b, k, true, iters / 20 + 20, &v[V_SEAL_US]);
			break;
		}
	}
	if (v[V_US] < 0) {
		fprintf(stderr, "bench_envelope: case %zu: seal or open failed\n", c);
		return -1;
	}
	return 0;
}

static void report(const struct bench_table *t, void *ctx)
{
	(void)ctx;
	static const char *const name[PER_SIZE] = { "raw AEAD", "veil unsigned", "veil signed" };
	char a[BENCH_FMT_CAP], s[BENCH_FMT_CAP], r[BENCH_FMT_CAP];
	printf("%-6s %-14s %-28s %-28s %s\n", "size", "case", "us per seal+open", "of which seal us", "vs raw");
	for (size_t k = 0; k < NSIZES; k++) {
		for (size_t j = 0; j < PER_SIZE; j++) {
			size_t c = k * PER_SIZE + j;
			bench_fmt_value(a, sizeof(a), t, c, V_US);
			if (j == C_RAW)
				printf("%-6zu %-14s %s\n", sizes[k], name[j], a);
			else
				printf("%-6zu %-14s %-28s %-28s %s\n", sizes[k], name[j], a,
				       bench_fmt_value(s, sizeof(s), t, c, V_SEAL_US),
				       bench_fmt_vs(r, sizeof(r), t, c, V_US, k * PER_SIZE + C_RAW));
		}
	}
	struct bench_summary r256;
	bench_table_summary(t, 1 * PER_SIZE + C_UNSIGNED, V_US, 1 * PER_SIZE + C_RAW, &r256);
	printf("unsigned seal+open at 256 B vs raw AEAD: median %.2fx (target <= 1.50x): %s\n", r256.median,
	       r256.median <= 1.5 ? "met" : "not met");
	printf("signed open, us: without receiver state %s; with cached credentials %s, %s of uncached\n",
	       bench_fmt_value(a, sizeof(a), t, C_OPEN_COLD, V_US), bench_fmt_value(s, sizeof(s), t, C_OPEN_WARM, V_US),
	       bench_fmt_vs(r, sizeof(r), t, C_OPEN_WARM, V_US, C_OPEN_COLD));
}

int main(void)
{
	struct bench_plan plan;
	if (veil_init() != VEIL_OK || bench_plan_init(&plan, 600, 120) != 0)
		return 1;
	struct env_bench b;
	memset(&b, 0, sizeof(b));
	b.quick = plan.quick;
	struct veil_identity *auth = NULL, *dev = NULL;
	struct veil_credential c = { 0 };
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	uint8_t apk[32], key[32];
	if (veil_identity_generate(&auth) != VEIL_OK || veil_identity_generate(&dev) != VEIL_OK)
		return 1;
	veil_identity_public(dev, c.device_pk);
	strcpy(c.client_id, "bench");
	c.issued_at = 1;
	c.expires_at = 4102444800ULL;
	if (veil_credential_issue(auth, &c, cred, sizeof(cred), &b.cred_len) != VEIL_OK)
		return 1;
	veil_identity_public(auth, apk);
	veil_topic_key_generate(key);
	char text[512], a64[64], k64[64];
	sodium_bin2base64(a64, sizeof(a64), apk, 32, sodium_base64_VARIANT_ORIGINAL);
	sodium_bin2base64(k64, sizeof(k64), key, 32, sodium_base64_VARIANT_ORIGINAL);
	snprintf(text, sizeof(text), "authority %s\nkey factory/# 1 %s\n", a64, k64);
	struct veil_seq *seq = NULL;
	if (veil_keyring_parse(text, strlen(text), "bench", &b.kr, NULL, 0) != VEIL_OK ||
	    veil_seq_open(NULL, 1, &seq) != VEIL_OK || veil_replay_new(16, &b.rp) != VEIL_OK)
		return 1;
	b.key = key;
	b.s = (struct veil_sender){ dev, cred, b.cred_len, seq };
	for (size_t k = 0; k < NSIZES; k++) {
		b.cap[k] = veil_sealed_signed_len(sizes[k], b.cred_len);
		b.pt[k] = malloc(sizes[k]);
		b.env[k] = malloc(b.cap[k]);
		b.out[k] = malloc(b.cap[k]);
		if (!b.pt[k] || !b.env[k] || !b.out[k])
			return 1;
		randombytes_buf(b.pt[k], sizes[k]);
	}

	printf("bench_envelope: seal+open vs raw XChaCha20-Poly1305 on the same buffers\n");
	int rc = bench_measure(&plan, NCASES, NVALUES, run_case, true, report, &b);
	for (size_t k = 0; k < NSIZES; k++) {
		free(b.pt[k]);
		free(b.env[k]);
		free(b.out[k]);
	}
	sodium_memzero(key, sizeof(key));
	veil_keyring_free(&b.kr);
	veil_seq_close(&seq);
	veil_replay_free(&b.rp);
	veil_identity_free(&auth);
	veil_identity_free(&dev);
	return rc == 0 ? 0 : 1;
}
