/*
 * Token verification with a verified-credential cache (see
 * auth_credcache.h). The token layout and its signature input are the
 * binding wire format of docs/PROTOCOL.md section 4:
 *   0 version 0x01 | 1 timestamp u64 BE | 9 nonce[16] | 25 cred length u16 BE
 *   27 credential | signature[64] over
 *   "veil-token-v1" || bytes 0..end of credential || u8 client id length || client id
 * A miss goes through veil_token_verify itself, so the cache can only skip
 * work the core already did on the same bytes. check_auth_credcache.c
 * compares both paths on valid, tampered and foreign tokens.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/error.h"
#include "auth_credcache.h"

#define TOKEN_DOMAIN "veil-token-v1"
#define TOKEN_FIXED (1U + 8U + VEIL_TOKEN_NONCE_BYTES + 2U)

struct cc_entry {
	uint8_t digest[crypto_generichash_BYTES];
	bool used;
	struct veil_credential cred;
};

struct vp_credcache {
	struct cc_entry *e;
	size_t cap;
};

int vp_credcache__new(size_t capacity, struct vp_credcache **out)
{
	if (!out || capacity > ((size_t)1 << 20))
		return -1;
	size_t cap = 16;
	while (cap < capacity)
		cap <<= 1;
	struct vp_credcache *c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	c->e = calloc(cap, sizeof(*c->e));
	if (!c->e) {
		free(c);
		return -1;
	}
	c->cap = cap;
	*out = c;
	return 0;
}

void vp_credcache__free(struct vp_credcache **cp)
{
	if (!cp || !*cp)
		return;
	free((*cp)->e);
	free(*cp);
	*cp = NULL;
}

void vp_credcache__clear(struct vp_credcache *c)
{
	if (c)
		memset(c->e, 0, c->cap * sizeof(*c->e));
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static int device_signature(const uint8_t *tok, size_t body, const char *client_id,
                            const uint8_t pk[VEIL_PK_BYTES])
{
	uint8_t msg[sizeof(TOKEN_DOMAIN) - 1 + VEIL_TOKEN_MAX + 1 + VEIL_CLIENT_ID_MAX];
	size_t dl = sizeof(TOKEN_DOMAIN) - 1, idl = strlen(client_id);
	if (idl == 0 || idl > VEIL_CLIENT_ID_MAX || body > VEIL_TOKEN_MAX)
		return VEIL_ERR_CLIENT_ID;
	memcpy(msg, TOKEN_DOMAIN, dl);
	memcpy(msg + dl, tok, body);
	msg[dl + body] = (uint8_t)idl;
	memcpy(msg + dl + body + 1, client_id, idl);
	int ok = crypto_sign_verify_detached(tok + body, msg, dl + body + 1 + idl, pk);
	return ok == 0 ? VEIL_OK : VEIL_ERR_BAD_SIGNATURE;
}

int vp_credcache__token_verify(struct vp_credcache *c, const uint8_t *tok, size_t len, const char *client_id,
                               const uint8_t (*authorities)[VEIL_PK_BYTES], size_t n_authorities, uint64_t now,
                               uint32_t window_s, struct veil_token *out, bool *cached)
{
	if (cached)
		*cached = false;
	if (!c || !tok || !client_id || !out)
		return VEIL_ERR_INVAL;
	memset(out, 0, sizeof(*out));
	/* The same structural checks, in the same order, as the core. */
	if (len < TOKEN_FIXED + VEIL_SIG_BYTES)
		return VEIL_ERR_TRUNCATED;
	if (len > VEIL_TOKEN_MAX)
		return VEIL_ERR_TOO_LARGE;
	if (tok[0] != 1)
		return VEIL_ERR_VERSION;
	size_t cred_len = (size_t)get_be(tok + 25, 2);
	if (TOKEN_FIXED + cred_len + VEIL_SIG_BYTES != len)
		return veil_token_verify(tok, len, client_id, authorities, n_authorities, now, window_s, out);
	uint64_t ts = get_be(tok + 1, 8);
	uint64_t skew = ts > now ? ts - now : now - ts;
	if (skew > window_s)
		return VEIL_ERR_STALE;
	uint8_t d[crypto_generichash_BYTES];
	crypto_generichash(d, sizeof(d), tok + TOKEN_FIXED, cred_len, NULL, 0);
	struct cc_entry *e = &c->e[(size_t)get_be(d, 8) & (c->cap - 1)];
	if (!e->used || sodium_memcmp(e->digest, d, sizeof(d)) != 0) {
		int rc = veil_token_verify(tok, len, client_id, authorities, n_authorities, now, window_s, out);
		if (rc == VEIL_OK) {
			/* The core found these exact bytes authority-signed and valid now. */
			memcpy(e->digest, d, sizeof(d));
			e->cred = out->cred;
			e->used = true;
		}
		return rc;
	}
	if (cached)
		*cached = true;
	out->timestamp = ts;
	memcpy(out->nonce, tok + 9, VEIL_TOKEN_NONCE_BYTES);
	out->cred = e->cred;
	if (now < out->cred.issued_at)
		return VEIL_ERR_NOT_YET_VALID;
	if (now >= out->cred.expires_at)
		return VEIL_ERR_EXPIRED;
	size_t idl = strlen(client_id);
	if (idl != strlen(out->cred.client_id) || sodium_memcmp(client_id, out->cred.client_id, idl) != 0)
		return VEIL_ERR_CLIENT_ID;
	return device_signature(tok, TOKEN_FIXED + cred_len, client_id, out->cred.device_pk);
}
