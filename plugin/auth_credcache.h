/*
 * Login-token verification with a cache of authority-verified credentials
 * (pure logic; the cache is the core's, core/credcache.h, one for the plugin
 * and receivers). A device presents the same credential at every login; only
 * the token (fresh timestamp, nonce, device signature) changes. Caching the
 * authority's verdict on the exact credential bytes halves the Ed25519 work
 * per login on the broker's single thread. The cache is cleared whenever the
 * trusted authority keys change; validity times are re-checked on every hit.
 * Results and error codes are those of veil_token_verify.
 */
#ifndef VP_AUTH_CREDCACHE_H
#define VP_AUTH_CREDCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/identity.h"

struct vp_credcache;

/* VEIL_OK, VEIL_ERR_INVAL (capacity 0 or too large) or VEIL_ERR_NOMEM. */
int vp_credcache__new(size_t capacity, struct vp_credcache **out);
void vp_credcache__free(struct vp_credcache **c);
void vp_credcache__clear(struct vp_credcache *c);
/* As veil_token_verify. *cached (may be NULL) tells whether the credential's
 * signature check was skipped thanks to the cache. */
int vp_credcache__token_verify(struct vp_credcache *c, const uint8_t *tok, size_t len, const char *client_id,
                               const uint8_t (*authorities)[VEIL_PK_BYTES], size_t n_authorities, uint64_t now,
                               uint32_t window_s, struct veil_token *out, bool *cached);

#endif
