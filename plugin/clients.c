/*
 * Per-client state, keyed by the broker's client pointer. A chained hash
 * table that grows with the number of connected clients; lookups are O(1)
 * on the ACL hot path. Offline persistent sessions stay as "parked" entries
 * (see vp_clients__park), on a FIFO list that bounds them; clients without a
 * session stay as "departed" entries until their Will has been judged (see
 * vp_clients__depart), on a second FIFO list, oldest first.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <sodium.h>

#include "plugin_private.h"

#define MAX_PARKED 100000U
#define PARK_ID_BUCKETS 65536U /* index of parked entries by client id */
#define MAX_DEPARTED 100000U

struct vp_clients {
	struct vp_client **buckets;
	size_t nbuckets;  /* power of two */
	size_t count;
	struct vp_client *park_head, *park_tail; /* oldest first */
	struct vp_client **park_ids;             /* PARK_ID_BUCKETS chains, allocated at first park */
	size_t nparked;
	struct vp_client *dep_head, *dep_tail;   /* departed, oldest first */
	size_t ndeparted;
};

static size_t id_bucket(const char *id)
{
	/* FNV-1a; client ids are attacker-chosen, but a chain only costs the
	 * login of that id, and the parked set is bounded. */
	uint32_t h = 2166136261U;
	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 16777619U;
	return h & (PARK_ID_BUCKETS - 1);
}

static void unpark(struct vp_clients *cl, struct vp_client *c)
{
	if (!c->parked)
		return;
	if (c->client_id && cl->park_ids) {
		struct vp_client **pp = &cl->park_ids[id_bucket(c->client_id)];
		while (*pp && *pp != c)
			pp = &(*pp)->park_id_next;
		if (*pp)
			*pp = c->park_id_next;
		c->park_id_next = NULL;
	}
	if (c->park_prev)
		c->park_prev->park_next = c->park_next;
	else
		cl->park_head = c->park_next;
	if (c->park_next)
		c->park_next->park_prev = c->park_prev;
	else
		cl->park_tail = c->park_prev;
	c->park_prev = c->park_next = NULL;
	c->parked = false;
	cl->nparked--;
}

static void undepart(struct vp_clients *cl, struct vp_client *c)
{
	if (!c->departed)
		return;
	if (c->dep_prev)
		c->dep_prev->dep_next = c->dep_next;
	else
		cl->dep_head = c->dep_next;
	if (c->dep_next)
		c->dep_next->dep_prev = c->dep_prev;
	else
		cl->dep_tail = c->dep_prev;
	c->dep_prev = c->dep_next = NULL;
	c->departed = false;
	c->departed_at = 0;
	cl->ndeparted--;
}

static size_t bucket_of(const struct vp_clients *cl, const struct mosquitto *mosq)
{
	uintptr_t p = (uintptr_t)mosq;
	p ^= p >> 17;
	p *= (uintptr_t)0x9E3779B97F4A7C15ULL;
	p ^= p >> 29;
	return (size_t)p & (cl->nbuckets - 1);
}

int vp_clients__new(struct vp_clients **out)
{
	struct vp_clients *cl = calloc(1, sizeof(*cl));
	if (!cl)
		return MOSQ_ERR_NOMEM;
	cl->nbuckets = 256;
	cl->buckets = calloc(cl->nbuckets, sizeof(*cl->buckets));
	if (!cl->buckets) {
		free(cl);
		return MOSQ_ERR_NOMEM;
	}
	*out = cl;
	return MOSQ_ERR_SUCCESS;
}

static void client_release(struct vp_client *c, void (*acl_cache_free)(void *))
{
	if (c->acl_cache && acl_cache_free)
		acl_cache_free(c->acl_cache);
	c->acl_cache = NULL;
	free(c->client_id);
	free(c->username);
	c->client_id = NULL;
	c->username = NULL;
	/* Identity fields are public data, but a reused entry must start clean. */
	sodium_memzero(c->device_pk, sizeof(c->device_pk));
	sodium_memzero(c->sender_id, sizeof(c->sender_id));
	sodium_memzero(c->credential_id, sizeof(c->credential_id));
	c->roles[0] = '\0';
	c->has_identity = false;
	sodium_memzero(c->authority_id, sizeof(c->authority_id));
	c->login = VP_LOGIN_NONE;
	c->enhanced = false;
	c->auth_after_connect = false;
	c->kick_pending = false;
	c->credential_expires = 0;
}

void vp_clients__free(struct vp_clients **clp, void (*acl_cache_free)(void *))
{
	if (!clp || !*clp)
		return;
	struct vp_clients *cl = *clp;
	for (size_t i = 0; i < cl->nbuckets; i++) {
		struct vp_client *c = cl->buckets[i];
		while (c) {
			struct vp_client *next = c->next;
			client_release(c, acl_cache_free);
			free(c);
			c = next;
		}
	}
	free(cl->buckets);
	free(cl->park_ids);
	free(cl);
	*clp = NULL;
}

static struct vp_client *find(const struct vp_clients *cl, const struct mosquitto *mosq)
{
	for (struct vp_client *c = cl->buckets[bucket_of(cl, mosq)]; c; c = c->next) {
		if (c->mosq == mosq)
			return c;
	}
	return NULL;
}

struct vp_client *vp_clients__get(const struct vp_clients *cl, const struct mosquitto *mosq)
{
	struct vp_client *c = (cl && mosq) ? find(cl, mosq) : NULL;
	if (!c || c->departed || (c->parked && c->kick_pending))
		return NULL;
	return c;
}

bool vp_clients__refused(const struct vp_clients *cl, const struct mosquitto *mosq, const char *client_id)
{
	const struct vp_client *c = (cl && mosq) ? find(cl, mosq) : NULL;
	return c && c->kick_pending && c->client_id && client_id && !strcmp(c->client_id, client_id);
}

struct vp_client *vp_clients__get_publisher(const struct vp_clients *cl, const struct mosquitto *mosq,
                                            const char *client_id)
{
	struct vp_client *c = (cl && mosq) ? find(cl, mosq) : NULL;
	if (!c || !c->departed)
		return vp_clients__get(cl, mosq);
	/* Only the connection that left, under the name it left with; a new
	 * client on a reused pointer has replaced the entry at its login. */
	if (c->kick_pending || !c->client_id || !client_id || strcmp(c->client_id, client_id) != 0)
		return NULL;
	return c;
}

static void grow(struct vp_clients *cl)
{
	size_t n = cl->nbuckets * 2;
	struct vp_client **b = calloc(n, sizeof(*b));
	if (!b)
		return; /* keep the old table: slower, still correct */
	struct vp_clients tmp = { .buckets = b, .nbuckets = n, .count = cl->count };
	for (size_t i = 0; i < cl->nbuckets; i++) {
		struct vp_client *c = cl->buckets[i];
		while (c) {
			struct vp_client *next = c->next;
			size_t k = bucket_of(&tmp, c->mosq);
			c->next = b[k];
			b[k] = c;
			c = next;
		}
	}
	free(cl->buckets);
	cl->buckets = b;
	cl->nbuckets = n;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

struct vp_client *vp_clients__put(struct vp_clients *cl, const struct mosquitto *mosq, const char *client_id,
                                  const char *username, void (*acl_cache_free)(void *))
{
	if (!cl || !mosq)
		return NULL;
	char *id = dup_or_null(client_id);
	char *user = dup_or_null(username);
	if ((client_id && !id) || (username && !user)) {
		free(id);
		free(user);
		return NULL;
	}
	/* An old parked session of this client id is taken over by this one. */
	if (client_id && cl->park_ids) {
		for (struct vp_client *p = cl->park_ids[id_bucket(client_id)], *pn; p; p = pn) {
			pn = p->park_id_next;
			if (p->mosq != mosq && !strcmp(p->client_id, client_id))
				vp_clients__remove(cl, p->mosq, acl_cache_free);
		}
	}
	struct vp_client *c = find(cl, mosq);
	if (c) {
		/* A departed entry here is a freed connection whose pointer a new
		 * client got: it must not inherit anything, not even the Will. */
		unpark(cl, c);
		undepart(cl, c);
		struct vp_client *next = c->next;
		client_release(c, acl_cache_free);
		c->next = next;
	} else {
		if (cl->count + 1 > cl->nbuckets)
			grow(cl);
		c = calloc(1, sizeof(*c));
		if (!c) {
			free(id);
			free(user);
			return NULL;
		}
		c->mosq = mosq;
		size_t k = bucket_of(cl, mosq);
		c->next = cl->buckets[k];
		cl->buckets[k] = c;
		cl->count++;
	}
	c->client_id = id;
	c->username = user;
	return c;
}

void vp_clients__remove(struct vp_clients *cl, const struct mosquitto *mosq, void (*acl_cache_free)(void *))
{
	if (!cl || !mosq)
		return;
	struct vp_client **pp = &cl->buckets[bucket_of(cl, mosq)];
	while (*pp) {
		struct vp_client *c = *pp;
		if (c->mosq == mosq) {
			*pp = c->next;
			unpark(cl, c);
			undepart(cl, c);
			client_release(c, acl_cache_free);
			free(c);
			cl->count--;
			return;
		}
		pp = &c->next;
	}
}

void vp_clients__park(struct vp_clients *cl, const struct mosquitto *mosq, void (*acl_cache_free)(void *))
{
	struct vp_client *c = cl ? find(cl, mosq) : NULL;
	if (!c || c->parked)
		return;
	if (!c->client_id) {
		/* Not indexable: nothing could take it over, so do not keep it. */
		vp_clients__remove(cl, mosq, acl_cache_free);
		return;
	}
	if (!cl->park_ids && !(cl->park_ids = calloc(PARK_ID_BUCKETS, sizeof(*cl->park_ids)))) {
		vp_clients__remove(cl, mosq, acl_cache_free); /* fail closed: offline READ denied */
		return;
	}
	if (cl->nparked >= MAX_PARKED && cl->park_head)
		vp_clients__remove(cl, cl->park_head->mosq, acl_cache_free);
	c->parked = true;
	size_t k = id_bucket(c->client_id);
	c->park_id_next = cl->park_ids[k];
	cl->park_ids[k] = c;
	c->park_next = NULL;
	c->park_prev = cl->park_tail;
	if (cl->park_tail)
		cl->park_tail->park_next = c;
	else
		cl->park_head = c;
	cl->park_tail = c;
	cl->nparked++;
}

void vp_clients__depart(struct vp_clients *cl, const struct mosquitto *mosq, time_t now,
                        void (*acl_cache_free)(void *))
{
	struct vp_client *c = cl ? find(cl, mosq) : NULL;
	if (!c || c->departed)
		return;
	unpark(cl, c);
	if (cl->ndeparted >= MAX_DEPARTED && cl->dep_head)
		vp_clients__remove(cl, cl->dep_head->mosq, acl_cache_free);
	c->departed = true;
	c->departed_at = now;
	c->dep_next = NULL;
	c->dep_prev = cl->dep_tail;
	if (cl->dep_tail)
		cl->dep_tail->dep_next = c;
	else
		cl->dep_head = c;
	cl->dep_tail = c;
	cl->ndeparted++;
}

void vp_clients__forget_departed(struct vp_clients *cl, const struct mosquitto *mosq, void (*acl_cache_free)(void *))
{
	struct vp_client *c = (cl && mosq) ? find(cl, mosq) : NULL;
	if (c && c->departed)
		vp_clients__remove(cl, mosq, acl_cache_free);
}

const char *vp_clients__forget_stale(struct vp_clients *cl, const struct mosquitto *mosq, char *prev_id,
                                     size_t prev_len, void (*acl_cache_free)(void *))
{
	struct vp_client *c = (cl && mosq) ? find(cl, mosq) : NULL;
	if (!c || (!c->parked && !c->departed))
		return NULL;
	const char *state = c->parked ? "parked" : "departed";
	if (prev_id && prev_len)
		snprintf(prev_id, prev_len, "%s", c->client_id ? c->client_id : "");
	vp_clients__remove(cl, mosq, acl_cache_free);
	return state;
}

void vp_clients__tick(struct vp_clients *cl, time_t now, void (*acl_cache_free)(void *))
{
	/* Departure order is time order: stop at the first one still kept. A
	 * TICK never runs between a DISCONNECT event and the Will check that
	 * follows it without delay, so even VP_DEPARTED_KEEP 0 would cover
	 * that check; the rest of the time is for delayed Wills. */
	while (cl && cl->dep_head && now - cl->dep_head->departed_at >= VP_DEPARTED_KEEP)
		vp_clients__remove(cl, cl->dep_head->mosq, acl_cache_free);
}

size_t vp_clients__departed(const struct vp_clients *cl)
{
	return cl ? cl->ndeparted : 0;
}

size_t vp_clients__parked(const struct vp_clients *cl)
{
	return cl ? cl->nparked : 0;
}

size_t vp_clients__count(const struct vp_clients *cl)
{
	return cl ? cl->count : 0;
}

void vp_clients__foreach(struct vp_clients *cl, bool (*fn)(struct vp_client *c, void *arg), void *arg)
{
	if (!cl)
		return;
	for (size_t i = 0; i < cl->nbuckets; i++) {
		struct vp_client *c = cl->buckets[i];
		while (c) {
			struct vp_client *next = c->next; /* fn may not remove, but be safe on reads */
			if (!fn(c, arg))
				return;
			c = next;
		}
	}
}
