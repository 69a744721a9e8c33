/*
 * Token verification with a verified-credential cache (see
 * auth_credcache.h), keyed by a BLAKE2b-256 digest of the credential bytes.
 * A miss goes through veil_token_verify itself, so the cache can only skip
 * work the core already did on the same bytes; a hit is finished by
 * veil_token_verify_with (freshness, validity, client id, device signature).
 * check_auth_credcache.c compares both paths on valid, tampered and foreign
 * tokens.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/error.h"
#include "auth_credcache.h"


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

int vp_credcache__token_verify(struct vp_credcache *c, const uint8_t *tok, size_t len, const char *client_id,
                               const uint8_t (*authorities)[VEIL_PK_BYTES], size_t n_authorities, uint64_t now,
                               uint32_t window_s, struct veil_token *out, bool *cached)
{
	if (cached)
		*cached = false;
	if (!c || !tok || !client_id || !out)
		return VEIL_ERR_INVAL;
	uint64_t ts;
	uint8_t nonce[VEIL_TOKEN_NONCE_BYTES];
	const uint8_t *cred = NULL;
	size_t cred_len = 0;
	if (veil_token_parse(tok, len, &ts, nonce, &cred, &cred_len) != VEIL_OK)
		return veil_token_verify(tok, len, client_id, authorities, n_authorities, now, window_s, out);
	uint8_t d[crypto_generichash_BYTES];
	crypto_generichash(d, sizeof(d), cred, cred_len, NULL, 0);
	uint64_t slot;
	memcpy(&slot, d, sizeof(slot));
	struct cc_entry *e = &c->e[(size_t)slot & (c->cap - 1)];
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
	return veil_token_verify_with(tok, len, client_id, &e->cred, now, window_s, out);
}
