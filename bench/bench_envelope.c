/*
 * Seal and open cost per message, next to the raw libsodium
 * XChaCha20-Poly1305 calls on the same buffers, in the same run. The raw
 * baseline draws its nonce with randombytes_buf too, so both sides pay for
 * the same randomness. Ratio target: unsigned seal+open at 256 B within
 * 1.5x of raw. VEIL_BENCH_QUICK=1 runs a short pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "veil/veil.h"

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static const char *topic = "factory/line1/temperature";

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
			abort();
	}
	return (now_us() - t0) / iters;
}

static double bench_veil(const struct veil_keyring *kr, const struct veil_sender *s, struct veil_replay *rp,
                         const uint8_t *pt, size_t n, bool sign, uint8_t *env, size_t cap, uint8_t *out, int iters,
                         double *seal_us)
{
	double t_seal = 0;
	double t0 = now_us();
	for (int i = 0; i < iters; i++) {
		size_t el = 0, ol = 0;
		bool sealed;
		double a = now_us();
		if (veil_message_seal(kr, s, topic, pt, n, sign, env, cap, &el, &sealed) != VEIL_OK)
			abort();
		t_seal += now_us() - a;
		if (veil_message_open(kr, rp, topic, env, el, (uint64_t)time(NULL), out, cap, &ol, NULL) != VEIL_OK)
			abort();
	}
	*seal_us = t_seal / iters;
	return (now_us() - t0) / iters;
}

int main(void)
{
	if (veil_init() != VEIL_OK)
		return 1;
	bool quick = getenv("VEIL_BENCH_QUICK") != NULL;
	struct veil_identity *auth = NULL, *dev = NULL;
	veil_identity_generate(&auth);
	veil_identity_generate(&dev);
	struct veil_credential c = { 0 };
	veil_identity_public(dev, c.device_pk);
	strcpy(c.client_id, "bench");
	c.issued_at = 1;
	c.expires_at = 4102444800ULL;
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cl = 0;
	veil_credential_issue(auth, &c, cred, sizeof(cred), &cl);
	uint8_t apk[32], key[32];
	veil_identity_public(auth, apk);
	veil_topic_key_generate(key);
	char text[512], a64[64], k64[64];
	sodium_bin2base64(a64, sizeof(a64), apk, 32, sodium_base64_VARIANT_ORIGINAL);
	sodium_bin2base64(k64, sizeof(k64), key, 32, sodium_base64_VARIANT_ORIGINAL);
	snprintf(text, sizeof(text), "authority %s\nkey factory/# 1 %s\n", a64, k64);
	struct veil_keyring *kr = NULL;
	if (veil_keyring_parse(text, strlen(text), "bench", &kr, NULL, 0) != VEIL_OK)
		return 1;
	struct veil_seq *seq = NULL;
	veil_seq_open(NULL, 1, &seq);
	struct veil_replay *rp = NULL;
	veil_replay_new(16, &rp);
	struct veil_sender s = { dev, cred, cl, seq };

	static const size_t sizes[] = { 64, 256, 4096, 65536 };
	printf("%-8s %12s %12s %12s %12s %10s %10s\n", "size", "raw us", "unsig us", "seal us", "signed us",
	       "unsig/raw", "sign/raw");
	double ratio256 = 0;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];
		int iters = (int)((quick ? 2000000 : 20000000) / (n + 512));
		if (iters < 50)
			iters = 50;
		size_t cap = veil_sealed_signed_len(n, cl);
		uint8_t *pt = malloc(n), *env = malloc(cap), *out = malloc(cap);
		randombytes_buf(pt, n);
		/* warm up */
		bench_raw(key, pt, n, env, out, iters / 10 + 1);
		double raw = bench_raw(key, pt, n, env, out, iters);
		double seal_u = 0, seal_s = 0;
		double unsig = bench_veil(kr, &s, rp, pt, n, false, env, cap, out, iters, &seal_u);
		int siters = iters / 20 + 20;
		double sig = bench_veil(kr, &s, rp, pt, n, true, env, cap, out, siters, &seal_s);
		printf("%-8zu %12.2f %12.2f %12.2f %12.2f %10.2f %10.2f\n", n, raw, unsig, seal_u, sig, unsig / raw,
		       sig / raw);
		if (n == 256)
			ratio256 = unsig / raw;
		free(pt);
		free(env);
		free(out);
	}
	printf("unsigned seal+open at 256 B vs raw AEAD: %.2fx (target <= 1.50x): %s\n", ratio256,
	       ratio256 <= 1.5 ? "met" : "NOT met");
	/* Signed open: without receiver state every message verifies its
	 * credential again; with it, verified credentials are cached. */
	{
		uint8_t env[1024], out[1024];
		size_t el = 0, ol = 0;
		bool sealed;
		int iters = quick ? 200 : 2000;
		veil_message_seal(kr, &s, topic, (const uint8_t *)"x", 1, true, env, sizeof(env), &el, &sealed);
		double t0 = now_us();
		for (int i = 0; i < iters; i++)
			if (veil_message_open(kr, NULL, topic, env, el, (uint64_t)time(NULL), out, sizeof(out), &ol, NULL))
				abort();
		double cold = (now_us() - t0) / iters;
		struct veil_replay *cache = NULL;
		veil_replay_new(16, &cache);
		double open_us = 0;
		for (int i = 0; i < iters; i++) {
			veil_message_seal(kr, &s, topic, (const uint8_t *)"x", 1, true, env, sizeof(env), &el, &sealed);
			double a = now_us();
			if (veil_message_open(kr, cache, topic, env, el, (uint64_t)time(NULL), out, sizeof(out), &ol, NULL))
				abort();
			open_us += now_us() - a; /* count only the open */
		}
		double warm = open_us / iters;
		veil_replay_free(&cache);
		printf("signed open: %.1f us without receiver state, %.1f us with cached credentials (%.2fx)\n", cold,
		       warm, cold / warm);
	}
	veil_keyring_free(&kr);
	veil_seq_close(&seq);
	veil_replay_free(&rp);
	veil_identity_free(&auth);
	veil_identity_free(&dev);
	return 0;
}
