/*
 * Ed25519 identities: generation, secret and public key files, sender and
 * authority ids, and the multi-part signing used by credentials, tokens and
 * signed envelopes. Secret keys live in sodium_malloc'd memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/identity.h"
#include "internal.h"
#include "util.h"

#define ID_TAG "veil-identity-v1"
#define PK_TAG "veil-public-key-v1"

struct veil_identity {
	uint8_t pk[VEIL_PK_BYTES];
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	uint8_t sender_id[VEIL_SENDER_ID_BYTES]; /* derived once: hot path of sealing */
};

size_t veil_pk_bytes(void)
{
	return VEIL_PK_BYTES;
}

size_t veil_sender_id_bytes(void)
{
	return VEIL_SENDER_ID_BYTES;
}

int veil_identity_from_seed(const uint8_t seed[VEIL_SEED_BYTES], struct veil_identity **out)
{
	if (!seed || !out)
		return VEIL_ERR_INVAL;
	struct veil_identity *id = sodium_malloc(sizeof(*id));
	if (!id)
		return VEIL_ERR_NOMEM;
	crypto_sign_seed_keypair(id->pk, id->sk, seed);
	veil_sender_id(id->pk, id->sender_id);
	*out = id;
	return VEIL_OK;
}

int veil_identity_generate(struct veil_identity **out)
{
	uint8_t seed[VEIL_SEED_BYTES];
	randombytes_buf(seed, sizeof(seed));
	int rc = veil_identity_from_seed(seed, out);
	sodium_memzero(seed, sizeof(seed));
	return rc;
}

const uint8_t *veil__identity_sender_id(const struct veil_identity *id)
{
	return id->sender_id;
}

void veil_identity_free(struct veil_identity **id)
{
	if (!id || !*id)
		return;
	sodium_free(*id); /* wipes */
	*id = NULL;
}

void veil_identity_public(const struct veil_identity *id, uint8_t pk[VEIL_PK_BYTES])
{
	memcpy(pk, id->pk, VEIL_PK_BYTES);
}

/* "<tag> <base64>" with exactly want bytes; comments and blank lines skipped. */
static int parse_tagged(struct veil__lines *it, const char *path, const char *tag, uint8_t *out, size_t want,
                        char *errbuf, size_t errlen)
{
	/* For an identity file this line holds the secret seed in base64: it is
	 * wiped on every way out. */
	char line[512];
	enum veil__line ls;
	int rc = VEIL_ERR_NOT_FOUND;
	while ((ls = veil__lines_next(it, line, sizeof(line))) != VEIL__LINE_END) {
		if (ls != VEIL__LINE_OK) {
			veil__errf(errbuf, errlen, "%s:%u: %s", path, it->lineno,
			           ls == VEIL__LINE_NUL ? "NUL byte in the line" : "line too long");
			rc = VEIL_ERR_PARSE;
			break;
		}
		if (!line[0])
			continue;
		char *f[3];
		size_t n = veil__split(line, f, 2);
		if (n != 2 || strcmp(f[0], tag) != 0) {
			veil__errf(errbuf, errlen, "%s:%u: expected '%s <base64>'", path, it->lineno, tag);
			rc = VEIL_ERR_PARSE;
			break;
		}
		size_t got = 0;
		if (veil__b64_decode(f[1], strlen(f[1]), out, want, &got) != VEIL_OK || got != want) {
			veil__errf(errbuf, errlen, "%s:%u: bad base64 (want %zu bytes)", path, it->lineno, want);
			rc = VEIL_ERR_PARSE;
			break;
		}
		rc = VEIL_OK;
		break;
	}
	sodium_memzero(line, sizeof(line));
	return rc;
}

int veil_identity_load(const char *path, struct veil_identity **out, char *errbuf, size_t errlen)
{
	if (!path || !out)
		return VEIL_ERR_INVAL;
	struct veil__text t;
	int rc = veil__file_read(path, VEIL__FILE_SECRET, 4096, &t, errbuf, errlen);
	if (rc != VEIL_OK)
		return rc;
	uint8_t *seed = sodium_malloc(VEIL_SEED_BYTES);
	if (!seed) {
		veil__text_free(&t);
		return VEIL_ERR_NOMEM;
	}
	struct veil__lines it = { .text = t.text, .len = t.len };
	rc = parse_tagged(&it, path, ID_TAG, seed, VEIL_SEED_BYTES, errbuf, errlen);
	if (rc == VEIL_ERR_NOT_FOUND) {
		veil__errf(errbuf, errlen, "%s: no '%s' line", path, ID_TAG);
		rc = VEIL_ERR_PARSE;
	}
	if (rc == VEIL_OK)
		rc = veil_identity_from_seed(seed, out);
	sodium_free(seed);
	veil__text_free(&t);
	return rc;
}

int veil_identity_save(const struct veil_identity *id, const char *path)
{
	if (!id || !path)
		return VEIL_ERR_INVAL;
	/* The seed is the first half of libsodium's Ed25519 secret key. */
	char b64[sodium_base64_ENCODED_LEN(VEIL_SEED_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	char *text = sodium_malloc(256);
	if (!text)
		return VEIL_ERR_NOMEM;
	veil__b64_encode(id->sk, VEIL_SEED_BYTES, b64, sizeof(b64));
	int n = snprintf(text, 256, "# Veil identity: SECRET, keep mode 0600\n%s %s\n", ID_TAG, b64);
	int rc = veil__file_write_atomic(path, text, (size_t)n, 0600, true);
	sodium_memzero(b64, sizeof(b64));
	sodium_free(text);
	return rc;
}

int veil_public_keys_load(const char *path, uint8_t (*pks)[VEIL_PK_BYTES], size_t max, size_t *n, char *errbuf,
                          size_t errlen)
{
	if (!path || !pks || !n)
		return VEIL_ERR_INVAL;
	struct veil__text t;
	int rc = veil__file_read(path, 0, 1U << 20, &t, errbuf, errlen);
	if (rc != VEIL_OK)
		return rc;
	struct veil__lines it = { .text = t.text, .len = t.len };
	size_t count = 0;
	uint8_t pk[VEIL_PK_BYTES];
	while ((rc = parse_tagged(&it, path, PK_TAG, pk, VEIL_PK_BYTES, errbuf, errlen)) == VEIL_OK) {
		if (count == max) {
			veil__errf(errbuf, errlen, "%s:%u: more than %zu keys", path, it.lineno, max);
			rc = VEIL_ERR_TOO_LARGE;
			break;
		}
		memcpy(pks[count++], pk, VEIL_PK_BYTES);
	}
	veil__text_free(&t);
	if (rc == VEIL_ERR_NOT_FOUND) {
		if (count == 0) {
			veil__errf(errbuf, errlen, "%s: no '%s' line", path, PK_TAG);
			return VEIL_ERR_PARSE;
		}
		rc = VEIL_OK;
	}
	*n = count;
	return rc;
}

int veil_public_key_save(const uint8_t pk[VEIL_PK_BYTES], const char *path)
{
	char b64[sodium_base64_ENCODED_LEN(VEIL_PK_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	char text[160];
	veil__b64_encode(pk, VEIL_PK_BYTES, b64, sizeof(b64));
	int n = snprintf(text, sizeof(text), "%s %s\n", PK_TAG, b64);
	return veil__file_write_atomic(path, text, (size_t)n, 0644, false);
}

static void derive_id(const char *domain, const uint8_t pk[VEIL_PK_BYTES], uint8_t *out, size_t outlen)
{
	uint8_t h[32];
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const uint8_t *)domain, strlen(domain));
	crypto_generichash_update(&st, pk, VEIL_PK_BYTES);
	crypto_generichash_final(&st, h, sizeof(h));
	memcpy(out, h, outlen);
}

void veil_sender_id(const uint8_t pk[VEIL_PK_BYTES], uint8_t out[VEIL_SENDER_ID_BYTES])
{
	derive_id("veil-sender-v1", pk, out, VEIL_SENDER_ID_BYTES);
}

void veil_authority_id(const uint8_t pk[VEIL_PK_BYTES], uint8_t out[VEIL_AUTHORITY_ID_BYTES])
{
	derive_id("veil-authority-v1", pk, out, VEIL_AUTHORITY_ID_BYTES);
}

/*
 * Ed25519 over the concatenation of parts. The parts are copied into one
 * buffer: pure Ed25519 (not Ed25519ph) so any implementation can verify.
 */
static uint8_t *concat(const struct veil__part *parts, size_t nparts, size_t *len)
{
	size_t total = 0;
	for (size_t i = 0; i < nparts; i++)
		total += parts[i].n;
	uint8_t *buf = malloc(total ? total : 1);
	if (!buf)
		return NULL;
	size_t off = 0;
	for (size_t i = 0; i < nparts; i++) {
		if (parts[i].n)
			memcpy(buf + off, parts[i].p, parts[i].n);
		off += parts[i].n;
	}
	*len = total;
	return buf;
}

int veil__identity_sign(const struct veil_identity *id, const struct veil__part *parts, size_t nparts,
                        uint8_t sig[VEIL_SIG_BYTES])
{
	size_t len = 0;
	uint8_t *buf = concat(parts, nparts, &len);
	if (!buf)
		return VEIL_ERR_NOMEM;
	crypto_sign_detached(sig, NULL, buf, len, id->sk);
	free(buf);
	return VEIL_OK;
}

int veil__verify(const uint8_t pk[VEIL_PK_BYTES], const struct veil__part *parts, size_t nparts,
                 const uint8_t sig[VEIL_SIG_BYTES])
{
	size_t len = 0;
	uint8_t *buf = concat(parts, nparts, &len);
	if (!buf)
		return VEIL_ERR_NOMEM;
	int ok = crypto_sign_verify_detached(sig, buf, len, pk);
	free(buf);
	return ok == 0 ? VEIL_OK : VEIL_ERR_BAD_SIGNATURE;
}
