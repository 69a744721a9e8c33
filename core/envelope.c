/*
 * Envelope v1: seal, parse, open, and the keyless signature check. Layout
 * and the exact AEAD/signature inputs are in include/veil/envelope.h and
 * docs/PROTOCOL.md section 5.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/envelope.h"
#include "internal.h"
#include "util.h"

#define SIG_DOMAIN "veil-sig-v1"
#define KCV_DOMAIN "veil-kcv-v1"
#define AAD_STACK 512U

size_t veil_overhead_bytes(void)
{
	return VEIL_OVERHEAD;
}

size_t veil_sealed_len(size_t n)
{
	return n + VEIL_OVERHEAD;
}

size_t veil_sealed_signed_len(size_t n, size_t cred_len)
{
	return n + VEIL_OVERHEAD + 2U + cred_len + VEIL_SIG_BYTES;
}

uint16_t veil_key_check(const uint8_t key[VEIL_KEY_BYTES])
{
	uint8_t h[16];
	crypto_generichash(h, sizeof(h), (const uint8_t *)KCV_DOMAIN, strlen(KCV_DOMAIN), key, VEIL_KEY_BYTES);
	return veil__get_u16(h);
}

/* AAD = header || u16 topic length || topic; uses buf when it fits. */
static uint8_t *build_aad(const uint8_t *header, const char *topic, size_t tl, uint8_t *buf, size_t *len)
{
	size_t n = VEIL_HEADER_BYTES + 2U + tl;
	uint8_t *aad = n <= AAD_STACK ? buf : malloc(n);
	if (!aad)
		return NULL;
	memcpy(aad, header, VEIL_HEADER_BYTES);
	veil__put_u16(aad + VEIL_HEADER_BYTES, (uint16_t)tl);
	memcpy(aad + VEIL_HEADER_BYTES + 2U, topic, tl);
	*len = n;
	return aad;
}

static void free_aad(uint8_t *aad, const uint8_t *buf)
{
	if (aad != buf)
		free(aad);
}

static int sig_parts_verify_or_sign(const struct veil_identity *signer, const uint8_t *pk, const uint8_t *header,
                                    const char *topic, size_t tl, const uint8_t *ct, size_t ct_len,
                                    const uint8_t *cred, size_t cred_len, uint8_t *sig_out,
                                    const uint8_t *sig_in)
{
	uint8_t tl16[2], cl16[2];
	veil__put_u16(tl16, (uint16_t)tl);
	veil__put_u16(cl16, (uint16_t)cred_len);
	struct veil__part parts[] = {
		{ SIG_DOMAIN, strlen(SIG_DOMAIN) }, { header, VEIL_HEADER_BYTES }, { tl16, 2 }, { topic, tl },
		{ ct, ct_len }, { cl16, 2 }, { cred, cred_len },
	};
	size_t np = sizeof(parts) / sizeof(parts[0]);
	if (signer)
		return veil__identity_sign(signer, parts, np, sig_out);
	return veil__verify(pk, parts, np, sig_in);
}

int veil_envelope_seal(const struct veil_seal_params *p, const char *topic, const uint8_t *pt, size_t pt_len,
                       uint8_t *out, size_t out_cap, size_t *out_len)
{
	uint8_t nonce[VEIL_NONCE_BYTES];
	randombytes_buf(nonce, sizeof(nonce));
	return veil__envelope_seal_nonce(p, topic, pt, pt_len, nonce, out, out_cap, out_len);
}

int veil__envelope_seal_nonce(const struct veil_seal_params *p, const char *topic, const uint8_t *pt,
                              size_t pt_len, const uint8_t nonce[24], uint8_t *out, size_t out_cap,
                              size_t *out_len)
{
	if (!p || !p->key || !topic || (!pt && pt_len) || !out || !out_len)
		return VEIL_ERR_INVAL;
	size_t tl = strlen(topic);
	if (tl == 0 || tl > VEIL_MAX_TOPIC)
		return VEIL_ERR_INVAL;
	if (pt_len > VEIL_MAX_PLAINTEXT)
		return VEIL_ERR_TOO_LARGE;
	bool sign = p->signer != NULL;
	if (sign && (!p->credential || p->credential_len == 0 || p->credential_len > VEIL_CREDENTIAL_MAX))
		return VEIL_ERR_INVAL;
	size_t need = sign ? veil_sealed_signed_len(pt_len, p->credential_len) : veil_sealed_len(pt_len);
	if (out_cap < need)
		return VEIL_ERR_INVAL;

	uint8_t *h = out;
	h[0] = VEIL_ENVELOPE_VERSION;
	h[1] = sign ? VEIL_FLAG_SIGNED : 0;
	veil__put_u32(h + 2, p->key_id);
	veil__put_u16(h + 6, p->has_kcv ? p->kcv : veil_key_check(p->key));
	memcpy(h + 8, p->sender, VEIL_SENDER_ID_BYTES);
	veil__put_u64(h + 16, p->seq);
	memcpy(h + 24, nonce, VEIL_NONCE_BYTES);

	uint8_t aadbuf[AAD_STACK];
	size_t aad_len = 0;
	uint8_t *aad = build_aad(h, topic, tl, aadbuf, &aad_len);
	if (!aad)
		return VEIL_ERR_NOMEM;
	uint8_t *ct = out + VEIL_HEADER_BYTES;
	unsigned long long clen = 0;
	/* pt may alias ct (in-place sealing is allowed by libsodium when pt == ct). */
	crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &clen, pt, pt_len, aad, aad_len, NULL, h + 24, p->key);
	free_aad(aad, aadbuf);
	size_t ct_len = (size_t)clen;
	size_t off = VEIL_HEADER_BYTES + ct_len;
	if (sign) {
		memcpy(out + off, p->credential, p->credential_len);
		veil__put_u16(out + off + p->credential_len, (uint16_t)p->credential_len);
		uint8_t *sig = out + off + p->credential_len + 2;
		int rc = sig_parts_verify_or_sign(p->signer, NULL, h, topic, tl, ct, ct_len, p->credential,
		                                  p->credential_len, sig, NULL);
		if (rc != VEIL_OK) {
			sodium_memzero(out, need);
			return rc;
		}
		off += 2 + p->credential_len + VEIL_SIG_BYTES;
	}
	*out_len = off;
	return VEIL_OK;
}

int veil_envelope_parse(const uint8_t *buf, size_t len, struct veil_envelope_view *v)
{
	if ((!buf && len) || !v)
		return VEIL_ERR_INVAL;
	memset(v, 0, sizeof(*v));
	if (len == 0)
		return VEIL_ERR_EMPTY;
	if (len < 2)
		return VEIL_ERR_TRUNCATED;
	if (buf[0] != VEIL_ENVELOPE_VERSION)
		return VEIL_ERR_VERSION;
	if ((buf[1] & ~VEIL_FLAG_SIGNED) != 0)
		return VEIL_ERR_RESERVED_FLAGS;
	bool sign = (buf[1] & VEIL_FLAG_SIGNED) != 0;
	size_t tail = 0; /* signed: credential | u16 length | signature, read from the end */
	if (sign) {
		if (len < VEIL_OVERHEAD + 2U + VEIL_SIG_BYTES)
			return VEIL_ERR_TRUNCATED;
		size_t cl = veil__get_u16(buf + len - VEIL_SIG_BYTES - 2U);
		if (cl > len - (VEIL_OVERHEAD + 2U + VEIL_SIG_BYTES))
			return VEIL_ERR_TRUNCATED;
		/* Only the trailer's lengths are checked here: the credential
		 * itself is checked where section 8 says (step 5), after the key
		 * id, by whoever verifies it. */
		v->credential_len = cl;
		tail = cl + 2U + VEIL_SIG_BYTES;
	} else if (len < VEIL_OVERHEAD) {
		return VEIL_ERR_TRUNCATED;
	}
	/* The plaintext bound uses the real trailer, so a signed envelope with
	 * a short credential cannot carry more than VEIL_MAX_PLAINTEXT. */
	size_t ct_len = len - VEIL_HEADER_BYTES - tail;
	if (ct_len - VEIL_TAG_BYTES > VEIL_MAX_PLAINTEXT) {
		v->credential_len = 0;
		return VEIL_ERR_TOO_LARGE;
	}
	v->header = buf;
	v->h.version = buf[0];
	v->h.flags = buf[1];
	v->h.key_id = veil__get_u32(buf + 2);
	v->h.kcv = veil__get_u16(buf + 6);
	memcpy(v->h.sender, buf + 8, VEIL_SENDER_ID_BYTES);
	v->h.seq = veil__get_u64(buf + 16);
	memcpy(v->h.nonce, buf + 24, VEIL_NONCE_BYTES);
	v->ciphertext = buf + VEIL_HEADER_BYTES;
	v->ciphertext_len = ct_len;
	if (sign) {
		v->credential = buf + VEIL_HEADER_BYTES + ct_len;
		v->signature = buf + len - VEIL_SIG_BYTES;
	}
	return VEIL_OK;
}

int veil_envelope_open(const struct veil_envelope_view *v, const char *topic, const uint8_t key[VEIL_KEY_BYTES],
                       uint8_t *pt_out, size_t pt_cap, size_t *pt_len)
{
	if (!key)
		return VEIL_ERR_INVAL;
	return veil__envelope_open_kcv(v, topic, key, veil_key_check(key), pt_out, pt_cap, pt_len);
}

int veil__envelope_open_kcv(const struct veil_envelope_view *v, const char *topic, const uint8_t *key,
                            uint16_t kcv, uint8_t *pt_out, size_t pt_cap, size_t *pt_len)
{
	if (!v || !v->header || !topic || !key || !pt_len || (!pt_out && v->ciphertext_len > VEIL_TAG_BYTES))
		return VEIL_ERR_INVAL;
	size_t tl = strlen(topic);
	if (tl == 0 || tl > VEIL_MAX_TOPIC || v->ciphertext_len < VEIL_TAG_BYTES)
		return VEIL_ERR_INVAL;
	if (pt_cap < v->ciphertext_len - VEIL_TAG_BYTES)
		return VEIL_ERR_INVAL;
	if (kcv != v->h.kcv)
		return VEIL_ERR_WRONG_KEY;
	uint8_t aadbuf[AAD_STACK];
	size_t aad_len = 0;
	uint8_t *aad = build_aad(v->header, topic, tl, aadbuf, &aad_len);
	if (!aad)
		return VEIL_ERR_NOMEM;
	unsigned long long n = 0;
	int r = crypto_aead_xchacha20poly1305_ietf_decrypt(pt_out, &n, NULL, v->ciphertext, v->ciphertext_len, aad,
	                                                   aad_len, v->h.nonce, key);
	free_aad(aad, aadbuf);
	if (r != 0) {
		/* libsodium leaves the output untouched on failure; be explicit anyway. */
		if (pt_out)
			sodium_memzero(pt_out, v->ciphertext_len - VEIL_TAG_BYTES);
		return VEIL_ERR_DECRYPT;
	}
	*pt_len = (size_t)n;
	return VEIL_OK;
}

int veil_envelope_verify_signature(const struct veil_envelope_view *v, const char *topic,
                                   const uint8_t signer_pk[VEIL_PK_BYTES])
{
	if (!v || !v->header || !topic || !signer_pk)
		return VEIL_ERR_INVAL;
	if (!(v->h.flags & VEIL_FLAG_SIGNED) || !v->signature)
		return VEIL_ERR_UNSIGNED;
	size_t tl = strlen(topic);
	if (tl == 0 || tl > VEIL_MAX_TOPIC)
		return VEIL_ERR_INVAL;
	return sig_parts_verify_or_sign(NULL, signer_pk, v->header, topic, tl, v->ciphertext, v->ciphertext_len,
	                                v->credential, v->credential_len, NULL, v->signature);
}
