/*
 * Login tokens (docs/PROTOCOL.md section 4): a device proves, at CONNECT,
 * that it holds the key of its credential, freshly and for this client id.
 *
 *   0 version 0x01 | 1 timestamp u64 (unix s) | 9 nonce[16]
 *   25 credential length u16 | 27 credential | signature[64]
 *   signature = Ed25519(device, "veil-token-v1" || all bytes before it
 *                               || u8 client id length || client id)
 * The client id is signed but not carried: the broker knows it.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "veil/identity.h"
#include "credcache.h"
#include "internal.h"
#include "util.h"

#define TOKEN_DOMAIN "veil-token-v1"
#define TOKEN_VERSION 1U
#define TOKEN_FIXED (1U + 8U + VEIL_TOKEN_NONCE_BYTES + 2U)

int veil_token_create(const struct veil_identity *device, const uint8_t *cred, size_t cred_len,
                      const char *client_id, uint64_t now, uint8_t *out, size_t out_cap, size_t *out_len)
{
	uint8_t nonce[VEIL_TOKEN_NONCE_BYTES];
	randombytes_buf(nonce, sizeof(nonce));
	return veil__token_create_nonce(device, cred, cred_len, client_id, now, nonce, out, out_cap, out_len);
}

int veil__token_create_nonce(const struct veil_identity *device, const uint8_t *cred, size_t cred_len,
                             const char *client_id, uint64_t now, const uint8_t nonce[VEIL_TOKEN_NONCE_BYTES],
                             uint8_t *out, size_t out_cap, size_t *out_len)
{
	if (!device || !cred || !client_id || !out || !out_len || cred_len > VEIL_CREDENTIAL_MAX)
		return VEIL_ERR_INVAL;
	size_t idl = strlen(client_id);
	size_t need = TOKEN_FIXED + cred_len + VEIL_SIG_BYTES;
	if (idl == 0 || idl > VEIL_CLIENT_ID_MAX || out_cap < need)
		return VEIL_ERR_INVAL;
	uint8_t *p = out;
	*p++ = TOKEN_VERSION;
	veil__put_u64(p, now);
	p += 8;
	memcpy(p, nonce, VEIL_TOKEN_NONCE_BYTES);
	p += VEIL_TOKEN_NONCE_BYTES;
	veil__put_u16(p, (uint16_t)cred_len);
	p += 2;
	memcpy(p, cred, cred_len);
	p += cred_len;
	size_t body = (size_t)(p - out);
	uint8_t idl8 = (uint8_t)idl;
	struct veil__part parts[] = {
		{ TOKEN_DOMAIN, strlen(TOKEN_DOMAIN) }, { out, body }, { &idl8, 1 }, { client_id, idl }
	};
	int rc = veil__identity_sign(device, parts, 4, p);
	if (rc != VEIL_OK)
		return rc;
	*out_len = body + VEIL_SIG_BYTES;
	return VEIL_OK;
}

int veil_token_parse(const uint8_t *tok, size_t len, uint64_t *timestamp, uint8_t nonce[VEIL_TOKEN_NONCE_BYTES],
                     const uint8_t **cred, size_t *cred_len)
{
	if (!tok || !timestamp || !nonce || !cred || !cred_len)
		return VEIL_ERR_INVAL;
	if (len < TOKEN_FIXED + VEIL_SIG_BYTES)
		return VEIL_ERR_TRUNCATED;
	if (len > VEIL_TOKEN_MAX)
		return VEIL_ERR_TOO_LARGE;
	if (tok[0] != TOKEN_VERSION)
		return VEIL_ERR_VERSION;
	size_t cl = veil__get_u16(tok + 25);
	if (TOKEN_FIXED + cl + VEIL_SIG_BYTES > len)
		return VEIL_ERR_TRUNCATED;
	if (TOKEN_FIXED + cl + VEIL_SIG_BYTES < len)
		return VEIL_ERR_PARSE;
	*timestamp = veil__get_u64(tok + 1);
	memcpy(nonce, tok + 9, VEIL_TOKEN_NONCE_BYTES);
	*cred = tok + TOKEN_FIXED;
	*cred_len = cl;
	return VEIL_OK;
}

static bool fresh(uint64_t ts, uint64_t now, uint32_t window_s)
{
	uint64_t skew = ts > now ? ts - now : now - ts;
	return skew <= window_s;
}

/* The checks after the credential: its client id, and the device's signature. */
static int check_device(const uint8_t *tok, size_t body, const char *client_id, const struct veil_credential *c)
{
	size_t idl = strlen(client_id);
	if (idl != strlen(c->client_id) || sodium_memcmp(client_id, c->client_id, idl) != 0)
		return VEIL_ERR_CLIENT_ID;
	uint8_t idl8 = (uint8_t)idl;
	struct veil__part parts[] = {
		{ TOKEN_DOMAIN, strlen(TOKEN_DOMAIN) }, { tok, body }, { &idl8, 1 }, { client_id, idl }
	};
	return veil__verify(c->device_pk, parts, 4, tok + body);
}

int veil_token_verify(const uint8_t *tok, size_t len, const char *client_id,
                      const uint8_t (*authorities)[VEIL_PK_BYTES], size_t n_authorities, uint64_t now,
                      uint32_t window_s, struct veil_token *out)
{
	return veil__token_verify_cached(NULL, tok, len, client_id, authorities, n_authorities, now, window_s, out, NULL);
}

int veil__token_verify_cached(struct veil__credcache *c, const uint8_t *tok, size_t len, const char *client_id,
                              const uint8_t (*authorities)[VEIL_PK_BYTES], size_t n_authorities, uint64_t now,
                              uint32_t window_s, struct veil_token *out, bool *cached)
{
	if (cached)
		*cached = false;
	if (!tok || !client_id || !out)
		return VEIL_ERR_INVAL;
	memset(out, 0, sizeof(*out));
	const uint8_t *cred = NULL;
	size_t cred_len = 0;
	int rc = veil_token_parse(tok, len, &out->timestamp, out->nonce, &cred, &cred_len);
	if (rc != VEIL_OK)
		return rc;
	/* Freshness first: cheapest, and stale tokens need no signature work. */
	if (!fresh(out->timestamp, now, window_s))
		return VEIL_ERR_STALE;
	rc = veil__credential_verify_cached(c, cred, cred_len, authorities, n_authorities, now, &out->cred, cached);
	if (rc != VEIL_OK)
		return rc;
	return check_device(tok, TOKEN_FIXED + cred_len, client_id, &out->cred);
}

int veil_token_verify_with(const uint8_t *tok, size_t len, const char *client_id,
                           const struct veil_credential *verified, uint64_t now, uint32_t window_s,
                           struct veil_token *out)
{
	if (!tok || !client_id || !verified || !out)
		return VEIL_ERR_INVAL;
	memset(out, 0, sizeof(*out));
	const uint8_t *cred = NULL;
	size_t cred_len = 0;
	int rc = veil_token_parse(tok, len, &out->timestamp, out->nonce, &cred, &cred_len);
	if (rc != VEIL_OK)
		return rc;
	if (!fresh(out->timestamp, now, window_s))
		return VEIL_ERR_STALE;
	if (now < verified->issued_at)
		return VEIL_ERR_NOT_YET_VALID;
	if (now >= verified->expires_at)
		return VEIL_ERR_EXPIRED;
	out->cred = *verified;
	return check_device(tok, TOKEN_FIXED + cred_len, client_id, &out->cred);
}

int veil_token_to_password(const uint8_t *tok, size_t len, char *out, size_t out_cap)
{
	size_t pre = strlen(VEIL_PASSWORD_PREFIX);
	if (!tok || !out || len > VEIL_TOKEN_MAX || out_cap < pre + 1)
		return VEIL_ERR_INVAL;
	memcpy(out, VEIL_PASSWORD_PREFIX, pre);
	return veil__b64_encode(tok, len, out + pre, out_cap - pre);
}

int veil_password_to_token(const char *password, uint8_t *out, size_t out_cap, size_t *out_len)
{
	size_t pre = strlen(VEIL_PASSWORD_PREFIX);
	if (!password || !out || !out_len)
		return VEIL_ERR_INVAL;
	if (strncmp(password, VEIL_PASSWORD_PREFIX, pre) != 0)
		return VEIL_ERR_PARSE;
	const char *b = password + pre;
	size_t bl = strlen(b);
	if (bl > ((VEIL_TOKEN_MAX + 2U) / 3U) * 4U)
		return VEIL_ERR_TOO_LARGE;
	return veil__b64_decode(b, bl, out, out_cap, out_len);
}
