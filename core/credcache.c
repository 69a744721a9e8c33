/* Verified-credential cache (see credcache.h). */
#include "credcache.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "table.h"

struct entry {
	uint8_t digest[crypto_generichash_BYTES]; /* BLAKE2b-256 of the credential bytes: the key */
	uint8_t authority[VEIL_PK_BYTES];         /* the trusted key that verified them */
	struct veil_credential cred;
	UT_hash_handle hh;                        /* insertion order = age */
};

struct veil__credcache {
	struct entry *table;
	size_t count, capacity;
};

int veil__credcache_new(size_t capacity, struct veil__credcache **out)
{
	if (!out || capacity == 0 || capacity > VEIL__CREDCACHE_MAX)
		return VEIL_ERR_INVAL;
	struct veil__credcache *c = calloc(1, sizeof(*c));
	if (!c)
		return VEIL_ERR_NOMEM;
	c->capacity = capacity;
	*out = c;
	return VEIL_OK;
}

static void entry_free(struct entry *e)
{
	sodium_memzero(e, sizeof(*e));
	free(e);
}

void veil__credcache_clear(struct veil__credcache *c)
{
	if (!c)
		return;
	struct entry *e, *tmp;
	HASH_ITER(hh, c->table, e, tmp) {
		HASH_DEL(c->table, e);
		entry_free(e);
	}
	c->count = 0;
}

void veil__credcache_free(struct veil__credcache **cp)
{
	if (!cp || !*cp)
		return;
	veil__credcache_clear(*cp);
	free(*cp);
	*cp = NULL;
}

size_t veil__credcache_count(const struct veil__credcache *c)
{
	return c ? c->count : 0;
}

static const uint8_t *trusted(const uint8_t (*authorities)[VEIL_PK_BYTES], size_t n, const uint8_t pk[VEIL_PK_BYTES])
{
	for (size_t i = 0; i < n; i++) {
		if (sodium_memcmp(authorities[i], pk, VEIL_PK_BYTES) == 0)
			return authorities[i];
	}
	return NULL;
}

/* The key among authorities whose id the credential names (as verify picks it). */
static const uint8_t *signer(const uint8_t (*authorities)[VEIL_PK_BYTES], size_t n, const struct veil_credential *cr)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t aid[VEIL_AUTHORITY_ID_BYTES];
		veil_authority_id(authorities[i], aid);
		if (sodium_memcmp(aid, cr->authority_id, sizeof(aid)) == 0)
			return authorities[i];
	}
	return NULL;
}

static void put(struct veil__credcache *c, const uint8_t digest[crypto_generichash_BYTES],
                const uint8_t authority[VEIL_PK_BYTES], const struct veil_credential *cr)
{
	struct entry *e = NULL;
	if (c->count >= c->capacity) {
		e = c->table; /* the oldest: uthash keeps insertion order */
		HASH_DEL(c->table, e);
		c->count--;
	} else if (!(e = malloc(sizeof(*e)))) {
		return; /* a cache: not remembering is always correct */
	}
	memset(e, 0, sizeof(*e));
	memcpy(e->digest, digest, sizeof(e->digest));
	memcpy(e->authority, authority, VEIL_PK_BYTES);
	e->cred = *cr;
	HASH_ADD(hh, c->table, digest, sizeof(e->digest), e);
	if (!veil__table_added(e)) {
		entry_free(e);
		return;
	}
	c->count++;
}

int veil__credential_verify_cached(struct veil__credcache *c, const uint8_t *cred, size_t len,
                                   const uint8_t (*authorities)[VEIL_PK_BYTES], size_t n_authorities, uint64_t now,
                                   struct veil_credential *out, bool *cached)
{
	if (cached)
		*cached = false;
	if (!c)
		return veil_credential_verify(cred, len, authorities, n_authorities, now, out);
	if (!cred)
		return VEIL_ERR_INVAL;
	uint8_t d[crypto_generichash_BYTES];
	crypto_generichash(d, sizeof(d), cred, len, NULL, 0);
	struct entry *e = NULL;
	HASH_FIND(hh, c->table, d, sizeof(d), e);
	if (e && trusted(authorities, n_authorities, e->authority)) {
		/* The same bytes verified under this same key: only time has moved. */
		if (cached)
			*cached = true;
		if (now < e->cred.issued_at)
			return VEIL_ERR_NOT_YET_VALID;
		if (now >= e->cred.expires_at)
			return VEIL_ERR_EXPIRED;
		if (out)
			*out = e->cred;
		return VEIL_OK;
	}
	struct veil_credential cr;
	int rc = veil_credential_verify(cred, len, authorities, n_authorities, now, &cr);
	if (rc != VEIL_OK)
		return rc;
	if (e) {
		/* Verified again under another key (the trusted set changed). */
		HASH_DEL(c->table, e);
		entry_free(e);
		c->count--;
	}
	const uint8_t *by = signer(authorities, n_authorities, &cr);
	if (by)
		put(c, d, by, &cr);
	if (out)
		*out = cr;
	return VEIL_OK;
}
