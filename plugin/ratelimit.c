/*
 * Failed-login back-off table (see ratelimit.h). Keys are hashed with
 * SipHash under a per-process random key, so an attacker cannot aim many
 * strings at one slot to evict a victim's counter. Probing is bounded (16
 * slots), so every operation is O(1) and memory never grows.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "ratelimit.h"

#define PROBE 16U

struct rl_entry {
	uint64_t h;            /* keyed hash, 0 = empty */
	uint64_t blocked_until;
	uint64_t last;         /* ms of the last failure */
	uint32_t failures;
};

struct vp_ratelimit {
	struct rl_entry *e;
	size_t cap;            /* power of two */
	uint64_t base_ms, max_ms;
	uint8_t key[crypto_shorthash_KEYBYTES];
};

uint64_t vp_ratelimit__now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000U + (uint64_t)ts.tv_nsec / 1000000U;
}

int vp_ratelimit__new(size_t capacity, uint32_t base_ms, uint32_t max_ms, struct vp_ratelimit **out)
{
	if (!out || base_ms == 0 || max_ms < base_ms || capacity > ((size_t)1 << 24))
		return -1;
	size_t cap = 64;
	while (cap < capacity)
		cap <<= 1;
	struct vp_ratelimit *rl = calloc(1, sizeof(*rl));
	if (!rl)
		return -1;
	rl->e = calloc(cap, sizeof(*rl->e));
	if (!rl->e) {
		free(rl);
		return -1;
	}
	rl->cap = cap;
	rl->base_ms = base_ms;
	rl->max_ms = max_ms;
	randombytes_buf(rl->key, sizeof(rl->key));
	*out = rl;
	return 0;
}

void vp_ratelimit__free(struct vp_ratelimit **rlp)
{
	if (!rlp || !*rlp)
		return;
	struct vp_ratelimit *rl = *rlp;
	sodium_memzero(rl->key, sizeof(rl->key));
	free(rl->e);
	free(rl);
	*rlp = NULL;
}

static uint64_t hash_of(const struct vp_ratelimit *rl, const char *key)
{
	uint8_t out[crypto_shorthash_BYTES];
	crypto_shorthash(out, (const unsigned char *)key, strlen(key), rl->key);
	uint64_t h;
	memcpy(&h, out, sizeof(h));
	return h ? h : 1; /* 0 marks an empty slot */
}

static struct rl_entry *find(const struct vp_ratelimit *rl, uint64_t h)
{
	for (size_t i = 0; i < PROBE; i++) {
		struct rl_entry *e = &rl->e[(h + i) & (rl->cap - 1)];
		if (e->h == h)
			return e;
	}
	return NULL;
}

/* An entry whose block ended long ago is forgotten: failures decay. */
static bool stale(const struct vp_ratelimit *rl, const struct rl_entry *e, uint64_t now)
{
	return e->h == 0 || now > e->blocked_until + 2 * rl->max_ms;
}

uint64_t vp_ratelimit__blocked_ms(const struct vp_ratelimit *rl, const char *key, uint64_t now_ms)
{
	if (!rl || !key)
		return 0;
	const struct rl_entry *e = find(rl, hash_of(rl, key));
	if (!e || e->blocked_until <= now_ms)
		return 0;
	return e->blocked_until - now_ms;
}

uint64_t vp_ratelimit__fail(struct vp_ratelimit *rl, const char *key, uint64_t now_ms)
{
	if (!rl || !key)
		return 0;
	uint64_t h = hash_of(rl, key);
	struct rl_entry *e = find(rl, h);
	if (e && stale(rl, e, now_ms))
		e->failures = 0;
	if (!e) {
		/* Reuse an empty or stale slot, else the least recently failed one. */
		struct rl_entry *victim = NULL;
		for (size_t i = 0; i < PROBE; i++) {
			struct rl_entry *c = &rl->e[(h + i) & (rl->cap - 1)];
			if (stale(rl, c, now_ms)) {
				victim = c;
				break;
			}
			if (!victim || c->last < victim->last)
				victim = c;
		}
		e = victim;
		memset(e, 0, sizeof(*e));
		e->h = h;
	}
	if (e->failures < 64)
		e->failures++;
	uint64_t block = rl->base_ms;
	for (uint32_t i = 1; i < e->failures && block < rl->max_ms; i++)
		block *= 2;
	if (block > rl->max_ms)
		block = rl->max_ms;
	e->last = now_ms;
	e->blocked_until = now_ms + block;
	return block;
}

void vp_ratelimit__success(struct vp_ratelimit *rl, const char *key)
{
	if (!rl || !key)
		return;
	struct rl_entry *e = find(rl, hash_of(rl, key));
	if (e)
		memset(e, 0, sizeof(*e));
}

size_t vp_ratelimit__used(const struct vp_ratelimit *rl)
{
	size_t n = 0;
	for (size_t i = 0; rl && i < rl->cap; i++)
		n += rl->e[i].h != 0;
	return n;
}
