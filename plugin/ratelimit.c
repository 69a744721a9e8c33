/*
 * Failed-login back-off table (see ratelimit.h): uthash (core/table.h, keyed
 * SipHash buckets). A key string is kept only as its 64-bit SipHash under
 * this table's own random key, so no user name or address is stored and an
 * attacker cannot choose two strings that share a counter. Entries are in
 * order of their last failure (a failure moves its entry to the end), so
 * when the table is full the least recently failed entry is reused: O(1)
 * per operation, memory fixed by the capacity.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "veil/error.h"
#include "../core/table.h"
#include "ratelimit.h"

struct rl_entry {
	uint64_t h;            /* keyed hash of the key string: the table key */
	uint64_t blocked_until;
	uint64_t last;         /* ms of the last failure */
	uint32_t failures;
	UT_hash_handle hh;     /* table order: least recently failed first */
};

struct vp_ratelimit {
	struct rl_entry *table;
	size_t count, cap;
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
		return VEIL_ERR_INVAL;
	size_t cap = 64;
	while (cap < capacity)
		cap <<= 1;
	struct vp_ratelimit *rl = calloc(1, sizeof(*rl));
	if (!rl)
		return VEIL_ERR_NOMEM;
	rl->cap = cap;
	rl->base_ms = base_ms;
	rl->max_ms = max_ms;
	randombytes_buf(rl->key, sizeof(rl->key));
	*out = rl;
	return VEIL_OK;
}

static void drop(struct vp_ratelimit *rl, struct rl_entry *e)
{
	HASH_DEL(rl->table, e);
	rl->count--;
	free(e);
}

void vp_ratelimit__free(struct vp_ratelimit **rlp)
{
	if (!rlp || !*rlp)
		return;
	struct vp_ratelimit *rl = *rlp;
	struct rl_entry *e, *tmp;
	HASH_ITER(hh, rl->table, e, tmp) {
		drop(rl, e);
	}
	sodium_memzero(rl->key, sizeof(rl->key));
	free(rl);
	*rlp = NULL;
}

static uint64_t hash_of(const struct vp_ratelimit *rl, const char *key)
{
	uint8_t out[crypto_shorthash_BYTES];
	crypto_shorthash(out, (const unsigned char *)key, strlen(key), rl->key);
	uint64_t h;
	memcpy(&h, out, sizeof(h));
	return h;
}

static struct rl_entry *find(const struct vp_ratelimit *rl, uint64_t h)
{
	struct rl_entry *e = NULL;
	HASH_FIND(hh, rl->table, &h, sizeof(h), e);
	return e;
}

/* An entry whose block ended long ago is forgotten: failures decay. */
static bool stale(const struct vp_ratelimit *rl, const struct rl_entry *e, uint64_t now)
{
	return now > e->blocked_until + 2 * rl->max_ms;
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

uint32_t vp_ratelimit__failures(const struct vp_ratelimit *rl, const char *key, uint64_t now_ms)
{
	if (!rl || !key)
		return 0;
	const struct rl_entry *e = find(rl, hash_of(rl, key));
	return e && !stale(rl, e, now_ms) ? e->failures : 0;
}

uint64_t vp_ratelimit__fail(struct vp_ratelimit *rl, const char *key, uint64_t now_ms)
{
	if (!rl || !key)
		return 0;
	uint64_t h = hash_of(rl, key);
	struct rl_entry *e = find(rl, h);
	if (e) {
		HASH_DEL(rl->table, e); /* re-added below, at the end: the most recent failure */
		rl->count--;
		if (stale(rl, e, now_ms))
			e->failures = 0;
	} else if (rl->count >= rl->cap) {
		e = rl->table; /* full: reuse the least recently failed entry */
		HASH_DEL(rl->table, e);
		rl->count--;
		memset(e, 0, sizeof(*e));
	} else if (!(e = calloc(1, sizeof(*e)))) {
		return rl->base_ms; /* out of memory: not counted, the caller still refuses this login */
	}
	e->h = h;
	if (e->failures < 64)
		e->failures++;
	uint64_t block = rl->base_ms;
	for (uint32_t i = 1; i < e->failures && block < rl->max_ms; i++)
		block *= 2;
	if (block > rl->max_ms)
		block = rl->max_ms;
	e->last = now_ms;
	e->blocked_until = now_ms + block;
	HASH_ADD(hh, rl->table, h, sizeof(e->h), e);
	if (!veil__table_added(e)) {
		free(e);
		return block;
	}
	rl->count++;
	return block;
}

void vp_ratelimit__success(struct vp_ratelimit *rl, const char *key)
{
	if (!rl || !key)
		return;
	struct rl_entry *e = find(rl, hash_of(rl, key));
	if (e)
		drop(rl, e);
}

size_t vp_ratelimit__used(const struct vp_ratelimit *rl)
{
	return rl ? rl->count : 0;
}
