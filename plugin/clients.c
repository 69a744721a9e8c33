/*
 * Per-client state, keyed by the broker's client pointer: a uthash table,
 * O(1) lookups on the ACL hot path. Offline persistent sessions stay as
 * "parked" entries (see vp_clients__park), on a FIFO list that bounds them
 * and in a second table by client id (a login takes its old session over);
 * clients without a session stay as "departed" entries until their Will has
 * been judged (see vp_clients__depart), on a second FIFO list, oldest first.
 *
 * Client ids are chosen by clients: the by-id table hashes them with the
 * keyed SipHash of core/table.h. Client pointers come from the broker's
 * allocator, not from clients, and are looked up on every ACL check: that
 * table is hashed with a cheap multiplicative mix instead (the _BYHASHVALUE
 * forms of uthash, below).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <sodium.h>
#include <utlist.h>

#include "veil/error.h"
#include "plugin_private.h"

#define MAX_PARKED 100000U
#define MAX_DEPARTED 100000U
/* Refused clients whose departed entry is gone, for their delayed Wills. */
#define MAX_GONE 10000U

/* A client the plugin had refused (kick_pending) when its departed entry
 * was dropped: a Will delayed past VP_DEPARTED_KEEP is still refused. Keyed
 * by pointer (a new login on it forgets it), checked with the client id. */
struct vp_gone {
	const struct mosquitto *mosq;
	char *client_id;
	struct vp_gone *prev, *next; /* oldest first */
	UT_hash_handle hh;
};

struct vp_clients {
	struct vp_client *table;      /* every entry, by mosq */
	struct vp_client *park_ids;   /* parked entries, by client id (hh_park) */
	struct vp_client *park_head;  /* parked, oldest first (utlist: head->park_prev is the newest) */
	size_t nparked;
	struct vp_client *dep_head;   /* departed, oldest first */
	size_t ndeparted;
	struct vp_gone *gone;         /* refused and gone, by mosq */
	struct vp_gone *gone_head;    /* the same, oldest first */
	size_t ngone;
};

static void gone_drop(struct vp_clients *cl, struct vp_gone *g)
{
	HASH_DEL(cl->gone, g);
	DL_DELETE(cl->gone_head, g);
	cl->ngone--;
	free(g->client_id);
	free(g);
}

static struct vp_gone *gone_find(const struct vp_clients *cl, const struct mosquitto *mosq)
{
	struct vp_gone *g = NULL;
	HASH_FIND(hh, cl->gone, &mosq, sizeof(mosq), g);
	return g;
}

/* Out of memory: the Will is judged by its names, as before this list. */
static void gone_add(struct vp_clients *cl, const struct vp_client *c)
{
	if (!c->kick_pending || !c->client_id)
		return;
	struct vp_gone *old = gone_find(cl, c->mosq);
	if (old)
		gone_drop(cl, old);
	if (cl->ngone >= MAX_GONE && cl->gone_head)
		gone_drop(cl, cl->gone_head);
	struct vp_gone *g = calloc(1, sizeof(*g));
	if (!g || !(g->client_id = strdup(c->client_id))) {
		free(g);
		return;
	}
	g->mosq = c->mosq;
	HASH_ADD(hh, cl->gone, mosq, sizeof(g->mosq), g);
	if (!veil__table_added(g)) {
		free(g->client_id);
		free(g);
		return;
	}
	DL_APPEND(cl->gone_head, g);
	cl->ngone++;
}

static unsigned mosq_hash(const struct mosquitto *mosq)
{
	uint64_t p = (uint64_t)(uintptr_t)mosq;
	p ^= p >> 17;
	p *= 0x9E3779B97F4A7C15ULL;
	p ^= p >> 29;
	return (unsigned)p;
}

static struct vp_client *find(const struct vp_clients *cl, const struct mosquitto *mosq)
{
	struct vp_client *c = NULL;
	HASH_FIND_BYHASHVALUE(hh, cl->table, &mosq, sizeof(mosq), mosq_hash(mosq), c);
	return c;
}

static struct vp_client *find_parked(const struct vp_clients *cl, const char *client_id)
{
	struct vp_client *c = NULL;
	HASH_FIND(hh_park, cl->park_ids, client_id, strlen(client_id), c);
	return c;
}

static void unpark(struct vp_clients *cl, struct vp_client *c)
{
	if (!c->parked)
		return;
	HASH_DELETE(hh_park, cl->park_ids, c);
	DL_DELETE2(cl->park_head, c, park_prev, park_next);
	c->park_prev = c->park_next = NULL;
	c->parked = false;
	cl->nparked--;
}

static void undepart(struct vp_clients *cl, struct vp_client *c)
{
	if (!c->departed)
		return;
	DL_DELETE2(cl->dep_head, c, dep_prev, dep_next);
	c->dep_prev = c->dep_next = NULL;
	c->departed = false;
	c->departed_at = 0;
	cl->ndeparted--;
}

int vp_clients__new(struct vp_clients **out)
{
	struct vp_clients *cl = calloc(1, sizeof(*cl));
	if (!cl)
		return VEIL_ERR_NOMEM;
	*out = cl;
	return VEIL_OK;
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
	c->bridge = false;
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
	while (cl->gone_head)
		gone_drop(cl, cl->gone_head);
	HASH_CLEAR(hh_park, cl->park_ids);
	struct vp_client *c, *tmp;
	HASH_ITER(hh, cl->table, c, tmp) {
		HASH_DELETE(hh, cl->table, c);
		client_release(c, acl_cache_free);
		free(c);
	}
	free(cl);
	*clp = NULL;
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
	if (!c && cl && mosq && client_id) {
		const struct vp_gone *g = gone_find(cl, mosq);
		return g && !strcmp(g->client_id, client_id);
	}
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
	struct vp_client *old = client_id ? find_parked(cl, client_id) : NULL;
	if (old && old->mosq != mosq)
		vp_clients__remove(cl, old->mosq, acl_cache_free);
	struct vp_client *c = find(cl, mosq);
	if (c) {
		/* A departed entry here is a freed connection whose pointer a new
		 * client got: it must not inherit anything, not even the Will. */
		unpark(cl, c);
		undepart(cl, c);
		client_release(c, acl_cache_free);
	} else {
		c = calloc(1, sizeof(*c));
		if (c) {
			c->mosq = mosq;
			HASH_ADD_BYHASHVALUE(hh, cl->table, mosq, sizeof(c->mosq), mosq_hash(mosq), c);
		}
		if (!c || !veil__table_added(c)) {
			free(c);
			free(id);
			free(user);
			return NULL;
		}
	}
	c->client_id = id;
	c->username = user;
	return c;
}

void vp_clients__remove(struct vp_clients *cl, const struct mosquitto *mosq, void (*acl_cache_free)(void *))
{
	struct vp_client *c = (cl && mosq) ? find(cl, mosq) : NULL;
	if (!c)
		return;
	HASH_DELETE(hh, cl->table, c);
	unpark(cl, c);
	undepart(cl, c);
	client_release(c, acl_cache_free);
	free(c);
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
	/* Mosquitto keeps one session per client id: an older parked entry of
	 * this id (its session was taken over) goes. */
	struct vp_client *old = find_parked(cl, c->client_id);
	if (old)
		vp_clients__remove(cl, old->mosq, acl_cache_free);
	if (cl->nparked >= MAX_PARKED && cl->park_head)
		vp_clients__remove(cl, cl->park_head->mosq, acl_cache_free);
	HASH_ADD_KEYPTR(hh_park, cl->park_ids, c->client_id, strlen(c->client_id), c);
	if (!c->hh_park.tbl) {
		vp_clients__remove(cl, mosq, acl_cache_free); /* out of memory: fail closed, offline READ denied */
		return;
	}
	c->parked = true;
	DL_APPEND2(cl->park_head, c, park_prev, park_next);
	cl->nparked++;
}

void vp_clients__depart(struct vp_clients *cl, const struct mosquitto *mosq, time_t now,
                        void (*acl_cache_free)(void *))
{
	struct vp_client *c = cl ? find(cl, mosq) : NULL;
	if (!c || c->departed)
		return;
	unpark(cl, c);
	if (cl->ndeparted >= MAX_DEPARTED && cl->dep_head) {
		gone_add(cl, cl->dep_head);
		vp_clients__remove(cl, cl->dep_head->mosq, acl_cache_free);
	}
	c->departed = true;
	c->departed_at = now;
	DL_APPEND2(cl->dep_head, c, dep_prev, dep_next);
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
	struct vp_gone *g = (cl && mosq) ? gone_find(cl, mosq) : NULL;
	if (g) /* a refused client's pointer, now someone else's */
		gone_drop(cl, g);
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
	while (cl && cl->dep_head && now - cl->dep_head->departed_at >= VP_DEPARTED_KEEP) {
		gone_add(cl, cl->dep_head);
		vp_clients__remove(cl, cl->dep_head->mosq, acl_cache_free);
	}
}

size_t vp_clients__gone(const struct vp_clients *cl)
{
	return cl ? cl->ngone : 0;
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
	return cl ? HASH_COUNT(cl->table) : 0;
}

void vp_clients__foreach(struct vp_clients *cl, bool (*fn)(struct vp_client *c, void *arg), void *arg)
{
	if (!cl)
		return;
	struct vp_client *c, *tmp; /* fn may not remove, but be safe on reads */
	HASH_ITER(hh, cl->table, c, tmp) {
		if (!fn(c, arg))
			return;
	}
}
