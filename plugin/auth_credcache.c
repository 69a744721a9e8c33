/*
 * Login-token verification with the core's verified-credential cache
 * (core/credcache.c, shared with receivers): see auth_credcache.h. Kept as
 * this adapter only until auth.c and auth_config.c call the core directly.
 */
#include <stdlib.h>

#include "veil/error.h"
#include "../core/credcache.h"
#include "auth_credcache.h"

struct vp_credcache {
	struct veil__credcache *cc;
};

int vp_credcache__new(size_t capacity, struct vp_credcache **out)
{
	if (!out)
		return VEIL_ERR_INVAL;
	struct vp_credcache *c = calloc(1, sizeof(*c));
	if (!c)
		return VEIL_ERR_NOMEM;
	int rc = veil__credcache_new(capacity, &c->cc);
	if (rc != VEIL_OK) {
		free(c);
		return rc;
	}
	*out = c;
	return VEIL_OK;
}

void vp_credcache__free(struct vp_credcache **cp)
{
	if (!cp || !*cp)
		return;
	veil__credcache_free(&(*cp)->cc);
	free(*cp);
	*cp = NULL;
}

void vp_credcache__clear(struct vp_credcache *c)
{
	if (c)
		veil__credcache_clear(c->cc);
}

int vp_credcache__token_verify(struct vp_credcache *c, const uint8_t *tok, size_t len, const char *client_id,
                               const uint8_t (*authorities)[VEIL_PK_BYTES], size_t n_authorities, uint64_t now,
                               uint32_t window_s, struct veil_token *out, bool *cached)
{
	if (!c)
		return VEIL_ERR_INVAL;
	return veil__token_verify_cached(c->cc, tok, len, client_id, authorities, n_authorities, now, window_s, out,
	                                 cached);
}
