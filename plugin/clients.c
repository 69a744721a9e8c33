/*
 * Per-client state, keyed by the broker's client pointer. A chained hash
 * table that grows with the number of connected clients; lookups are O(1)
 * on the ACL hot path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <sodium.h>

#include "plugin_private.h"

struct vp_clients {
	struct vp_client **buckets;
	size_t nbuckets;  /* power of two */
	size_t count;
};

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
	c->login = VP_LOGIN_NONE;
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
	free(cl);
	*clp = NULL;
}

struct vp_client *vp_clients__get(const struct vp_clients *cl, const struct mosquitto *mosq)
{
	if (!cl || !mosq)
		return NULL;
	for (struct vp_client *c = cl->buckets[bucket_of(cl, mosq)]; c; c = c->next) {
		if (c->mosq == mosq)
			return c;
	}
	return NULL;
}

static void grow(struct vp_clients *cl)
{
	size_t n = cl->nbuckets * 2;
	struct vp_client **b = calloc(n, sizeof(*b));
	if (!b)
		return; /* keep the old table: slower, still correct */
	struct vp_clients tmp = { b, n, cl->count };
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
	struct vp_client *c = vp_clients__get(cl, mosq);
	if (c) {
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
			client_release(c, acl_cache_free);
			free(c);
			cl->count--;
			return;
		}
		pp = &c->next;
	}
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
