/*
 * The one cache of verified credentials, for every verifier that sees the
 * same credential again and again: the broker plugin (a device presents its
 * credential at every login) and receivers (a signed message carries its
 * sender's credential). Caching the authority's verdict on the exact
 * credential bytes saves one Ed25519 verification per use.
 *
 * An entry is the credential's BLAKE2b-256 digest, the authority key that
 * verified it, and the decoded credential. A hit counts only while that
 * authority key is still among the trusted ones passed in (so a dropped
 * authority never keeps a credential alive), and the validity times are
 * checked at every hit: results and errors are exactly those of
 * veil_credential_verify. Bounded: when full, the oldest entry goes. The
 * caller clears it when its trusted authorities change (the plugin) or
 * relies on the authority check (receivers), and locks it if it shares it
 * between threads.
 */
#ifndef VEIL_CORE_CREDCACHE_H
#define VEIL_CORE_CREDCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/identity.h"

#define VEIL__CREDCACHE_MAX ((size_t)1 << 20)

struct veil__credcache;

/* capacity 1..VEIL__CREDCACHE_MAX entries. */
int veil__credcache_new(size_t capacity, struct veil__credcache **out);
void veil__credcache_free(struct veil__credcache **c);
void veil__credcache_clear(struct veil__credcache *c);
size_t veil__credcache_count(const struct veil__credcache *c);

/* veil_credential_verify through the cache (c may be NULL: no cache).
 * *cached (may be NULL): the authority's signature check was skipped. */
int veil__credential_verify_cached(struct veil__credcache *c, const uint8_t *cred, size_t len,
                                   const uint8_t (*authorities)[VEIL_PK_BYTES], size_t n_authorities, uint64_t now,
                                   struct veil_credential *out, bool *cached);

/* veil_token_verify_for through the cache: the same checks in the same
 * order (structure, audience, freshness, credential, client id, device
 * signature). audience: the verifier's deployment, NULL for none. */
int veil__token_verify_cached(struct veil__credcache *c, const uint8_t *tok, size_t len, const char *client_id,
                              const char *audience, const uint8_t (*authorities)[VEIL_PK_BYTES],
                              size_t n_authorities, uint64_t now, uint32_t window_s, struct veil_token *out,
                              bool *cached);

#endif
