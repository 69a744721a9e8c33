/*
 * Replay cache of login-token nonces (pure logic). A token is accepted only
 * within the freshness window around its timestamp, so a nonce must be
 * remembered until timestamp + window; after that the token is stale anyway.
 * Fixed capacity: when it holds that many live nonces the caller must
 * refuse the login (fail closed) rather than forget a live nonce.
 */
#ifndef VP_NONCE_CACHE_H
#define VP_NONCE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "veil/identity.h"

struct vp_nonce_cache;

enum vp_nonce_result {
	VP_NONCE_FRESH = 0,     /* unseen; now remembered */
	VP_NONCE_REPLAY = 1,    /* seen and still live */
	VP_NONCE_FULL = 2       /* capacity reached by live nonces (or out of memory): refuse */
};

/* capacity rounded up to a power of two (minimum 256). VEIL_OK, or
 * VEIL_ERR_INVAL (over 2^26) / VEIL_ERR_NOMEM. */
int vp_nonce_cache__new(size_t capacity, struct vp_nonce_cache **out);
void vp_nonce_cache__free(struct vp_nonce_cache **nc);
/* Check and insert; the entry lives until expires_at (unix seconds). */
enum vp_nonce_result vp_nonce_cache__add(struct vp_nonce_cache *nc, const uint8_t nonce[VEIL_TOKEN_NONCE_BYTES],
                                         uint64_t expires_at, uint64_t now);
/* Live entries at now (for tests and audit). */
size_t vp_nonce_cache__live(const struct vp_nonce_cache *nc, uint64_t now);

/*
 * Persistence, so a token used before a broker restart cannot be used again
 * after it inside its window. The journal (a file of 24-byte records:
 * nonce || u64 BE expires_at, after the 8-byte magic "VEILNCJ1") is read at
 * start (live entries re-enter the cache; a malformed journal is an error,
 * never silently ignored), rewritten with only the live entries, then every
 * fresh nonce is appended with one write() before the login is accepted:
 * that survives a crash or SIGKILL of the broker (the data is in the page
 * cache). vp_nonce_cache__sync (called once a second) makes it durable
 * across a power loss as well, so at most the last second of logins is lost
 * there. VEIL_OK, or VEIL_ERR_IO / VEIL_ERR_PARSE / VEIL_ERR_NOMEM with
 * "path: reason" in err.
 */
int vp_nonce_cache__persist(struct vp_nonce_cache *nc, const char *path, uint64_t now, char *err, size_t errlen);
/* Append failures since the last call (the caller logs them). */
unsigned vp_nonce_cache__write_errors(struct vp_nonce_cache *nc);
/* fdatasync the journal if anything was appended since the last sync; when
 * it holds far more dead records than live ones, rewrite it. */
void vp_nonce_cache__sync(struct vp_nonce_cache *nc, uint64_t now);

#endif
