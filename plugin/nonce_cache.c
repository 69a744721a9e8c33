/*
 * Token nonce replay cache (see nonce_cache.h). Open addressing with a
 * 32-slot probe window: a slot whose entry has expired is free, so no sweep
 * or tombstones are needed and every operation is O(1). Nonces come from
 * signed tokens, but they are hashed with a per-process key anyway so a
 * device cannot aim its nonces at one probe window.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "nonce_cache.h"

#define PROBE 32U

struct nc_entry {
	uint8_t nonce[VEIL_TOKEN_NONCE_BYTES];
	uint64_t expires_at;   /* 0 = empty */
};

struct vp_nonce_cache {
	struct nc_entry *e;
	size_t cap;
	uint8_t key[crypto_shorthash_KEYBYTES];
};

int vp_nonce_cache__new(size_t capacity, struct vp_nonce_cache **out)
{
	if (!out || capacity > ((size_t)1 << 26))
		return -1;
	size_t cap = 256;
	while (cap < capacity)
		cap <<= 1;
	struct vp_nonce_cache *nc = calloc(1, sizeof(*nc));
	if (!nc)
		return -1;
	nc->e = calloc(cap, sizeof(*nc->e));
	if (!nc->e) {
		free(nc);
		return -1;
	}
	nc->cap = cap;
	randombytes_buf(nc->key, sizeof(nc->key));
	*out = nc;
	return 0;
}

void vp_nonce_cache__free(struct vp_nonce_cache **ncp)
{
	if (!ncp || !*ncp)
		return;
	sodium_memzero((*ncp)->key, sizeof((*ncp)->key));
	free((*ncp)->e);
	free(*ncp);
	*ncp = NULL;
}

enum vp_nonce_result vp_nonce_cache__add(struct vp_nonce_cache *nc, const uint8_t nonce[VEIL_TOKEN_NONCE_BYTES],
                                         uint64_t expires_at, uint64_t now)
{
	if (!nc || !nonce)
		return VP_NONCE_FULL;
	uint8_t hb[crypto_shorthash_BYTES];
	crypto_shorthash(hb, nonce, VEIL_TOKEN_NONCE_BYTES, nc->key);
	uint64_t h;
	memcpy(&h, hb, sizeof(h));
	struct nc_entry *free_slot = NULL;
	for (size_t i = 0; i < PROBE; i++) {
		struct nc_entry *e = &nc->e[(h + i) & (nc->cap - 1)];
		bool live = e->expires_at != 0 && e->expires_at >= now;
		if (live && sodium_memcmp(e->nonce, nonce, VEIL_TOKEN_NONCE_BYTES) == 0)
			return VP_NONCE_REPLAY;
		if (!live && !free_slot)
			free_slot = e;
	}
	if (!free_slot)
		return VP_NONCE_FULL;
	memcpy(free_slot->nonce, nonce, VEIL_TOKEN_NONCE_BYTES);
	free_slot->expires_at = expires_at ? expires_at : 1;
	return VP_NONCE_FRESH;
}

size_t vp_nonce_cache__live(const struct vp_nonce_cache *nc, uint64_t now)
{
	size_t n = 0;
	for (size_t i = 0; nc && i < nc->cap; i++)
		n += nc->e[i].expires_at != 0 && nc->e[i].expires_at >= now;
	return n;
}
