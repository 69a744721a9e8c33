/*
 * Each credential's share of the token replay cache (see login_quota.h).
 * Two counters per credential, for the current period and the one before:
 * their sum is at least the number of the credential's live nonces.
 */
#include <stdlib.h>
#include <string.h>

#include "veil/error.h"
#include "../core/table.h" /* uthash with the keyed hash: credential ids come from clients */
#include "login_quota.h"

struct entry {
	uint8_t id[VEIL_CREDENTIAL_ID_BYTES];
	uint64_t period;     /* index of the current period (now / period_s) */
	uint32_t cur, prev;  /* accepted logins in it and in the one before */
	UT_hash_handle hh;
};

struct vp_login_quota {
	struct entry *by_id;
	uint32_t quota, period_s;
	size_t max;
};

int vp_login_quota__new(uint32_t quota, uint32_t period_s, size_t max_credentials, struct vp_login_quota **out)
{
	if (!out || !quota || !period_s || !max_credentials)
		return VEIL_ERR_INVAL;
	struct vp_login_quota *q = calloc(1, sizeof(*q));
	if (!q)
		return VEIL_ERR_NOMEM;
	q->quota = quota;
	q->period_s = period_s;
	q->max = max_credentials;
	*out = q;
	return VEIL_OK;
}

void vp_login_quota__free(struct vp_login_quota **qp)
{
	if (!qp || !*qp)
		return;
	struct vp_login_quota *q = *qp;
	struct entry *e, *tmp;
	HASH_ITER(hh, q->by_id, e, tmp) {
		HASH_DEL(q->by_id, e);
		free(e);
	}
	free(q);
	*qp = NULL;
}

/* Roll e's counters to the period of now. */
static void roll(const struct vp_login_quota *q, struct entry *e, uint64_t now)
{
	uint64_t p = now / q->period_s;
	if (p == e->period)
		return;
	e->prev = p == e->period + 1 ? e->cur : 0;
	e->cur = 0;
	e->period = p;
}

static struct entry *find(const struct vp_login_quota *q, const uint8_t *id)
{
	struct entry *e = NULL;
	HASH_FIND(hh, q->by_id, id, VEIL_CREDENTIAL_ID_BYTES, e);
	return e;
}

bool vp_login_quota__room(struct vp_login_quota *q, const uint8_t id[VEIL_CREDENTIAL_ID_BYTES], uint64_t now)
{
	if (!q || !id)
		return false;
	struct entry *e = find(q, id);
	if (!e)
		return true;
	roll(q, e, now);
	return (uint64_t)e->cur + e->prev < q->quota;
}

bool vp_login_quota__count(struct vp_login_quota *q, const uint8_t id[VEIL_CREDENTIAL_ID_BYTES], uint64_t now)
{
	if (!q || !id)
		return false;
	struct entry *e = find(q, id);
	if (!e) {
		if (HASH_COUNT(q->by_id) >= q->max)
			vp_login_quota__prune(q, now);
		if (HASH_COUNT(q->by_id) >= q->max)
			return false;
		e = calloc(1, sizeof(*e));
		if (!e)
			return false;
		memcpy(e->id, id, VEIL_CREDENTIAL_ID_BYTES);
		e->period = now / q->period_s;
		HASH_ADD(hh, q->by_id, id, VEIL_CREDENTIAL_ID_BYTES, e);
		if (!veil__table_added(e)) {
			free(e);
			return false;
		}
	}
	roll(q, e, now);
	if (e->cur < UINT32_MAX)
		e->cur++;
	return true;
}

void vp_login_quota__prune(struct vp_login_quota *q, uint64_t now)
{
	if (!q)
		return;
	uint64_t p = now / q->period_s;
	struct entry *e, *tmp;
	HASH_ITER(hh, q->by_id, e, tmp) {
		if (e->period + 1 < p) { /* nothing in this period or the one before */
			HASH_DEL(q->by_id, e);
			free(e);
		}
	}
}

size_t vp_login_quota__tracked(const struct vp_login_quota *q)
{
	return q ? HASH_COUNT(q->by_id) : 0;
}

uint32_t vp_login_quota__quota(const struct vp_login_quota *q)
{
	return q ? q->quota : 0;
}
