/*
 * Scope instances and epochs (epochs.h): the in-memory chain per instance,
 * mirrored in the store. Keys live in sodium_malloc'd memory and are wiped
 * when their epoch is deleted.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/error.h"
#include "epochs.h"

static void epoch_wipe(struct kd_epoch *e)
{
	if (e->key)
		sodium_free(e->key);
	e->key = NULL;
}

static void inst_free(struct kd_inst *in)
{
	for (size_t i = 0; i < in->n; i++)
		epoch_wipe(&in->ep[i]);
	free(in->ep);
	free(in);
}

void kd_epochs__free(struct kd_epochs *E)
{
	struct kd_inst *in, *tmp;
	HASH_ITER(hh, E->by_filter, in, tmp) {
		HASH_DEL(E->by_filter, in);
		inst_free(in);
	}
	E->by_filter = NULL;
}

struct kd_inst *kd_epochs__find(const struct kd_epochs *E, const char *filter)
{
	struct kd_inst *in = NULL;
	HASH_FIND_STR(E->by_filter, filter, in);
	return in;
}

/* Insert keeping key-id order (new key ids are the largest, so this
 * appends in practice). Takes e->key. */
static int inst_push(struct kd_inst *in, struct kd_epoch *e)
{
	if (in->n == in->cap) {
		size_t nc = in->cap ? in->cap * 2 : 4;
		void *p = realloc(in->ep, nc * sizeof(*in->ep));
		if (!p)
			return VEIL_ERR_NOMEM;
		in->ep = p;
		in->cap = nc;
	}
	size_t i = in->n;
	while (i > 0 && in->ep[i - 1].key_id > e->key_id) {
		in->ep[i] = in->ep[i - 1];
		i--;
	}
	in->ep[i] = *e;
	in->n++;
	return VEIL_OK;
}

static struct kd_inst *inst_new(const struct kd_instance_row *r)
{
	struct kd_inst *in = calloc(1, sizeof(*in));
	if (!in)
		return NULL;
	in->id = r->id;
	in->scope_id = r->scope_id;
	snprintf(in->scope, sizeof(in->scope), "%s", r->scope);
	snprintf(in->filter, sizeof(in->filter), "%s", r->filter);
	snprintf(in->owner, sizeof(in->owner), "%s", r->owner);
	return in;
}

struct load_ctx {
	struct kd_epochs *E;
	struct kd_store *s;
};

static int load_inst(void *ctx, const struct kd_instance_row *r)
{
	struct load_ctx *l = ctx;
	struct kd_inst *in = inst_new(r);
	if (!in)
		return VEIL_ERR_NOMEM;
	int64_t sid;
	int rc = kd_store__scope(l->s, r->scope, 0, &sid, &in->anchor);
	if (rc != VEIL_OK) {
		free(in);
		return rc;
	}
	in->seq = ++l->E->inst_gen;
	HASH_ADD_STR(l->E->by_filter, filter, in);
	return VEIL_OK;
}

static int load_epoch(void *ctx, const char *filter, struct kd_epoch *e)
{
	struct load_ctx *l = ctx;
	struct kd_inst *in = kd_epochs__find(l->E, filter);
	int rc = in ? inst_push(in, e) : VEIL_ERR_STATE;
	if (rc != VEIL_OK)
		epoch_wipe(e);
	return rc;
}

int kd_epochs__load(struct kd_epochs *E, struct kd_store *s)
{
	memset(E, 0, sizeof(*E));
	struct load_ctx l = { E, s };
	int rc = kd_store__instances_each(s, load_inst, &l);
	if (rc == VEIL_OK)
		rc = kd_store__epochs_each(s, load_epoch, &l);
	if (rc != VEIL_OK)
		kd_epochs__free(E);
	E->gen = 1;
	return rc;
}

int kd_epochs__instance(struct kd_epochs *E, struct kd_store *s, const struct kd_scope_conf *sc, const char *owner,
                        uint64_t now, struct kd_inst **out)
{
	struct kd_instance_row r = { 0 };
	if (!kd_filter__subst(sc->filter, owner, r.filter, sizeof(r.filter)))
		return VEIL_ERR_TOO_LARGE;
	struct kd_inst *in = kd_epochs__find(E, r.filter);
	if (in) {
		*out = in;
		return VEIL_OK;
	}
	snprintf(r.scope, sizeof(r.scope), "%s", sc->filter);
	snprintf(r.owner, sizeof(r.owner), "%s", owner ? owner : "");
	uint64_t anchor;
	int rc = kd_store__scope(s, sc->filter, now, &r.scope_id, &anchor);
	if (rc == VEIL_OK)
		rc = kd_store__instance(s, r.scope_id, r.filter, owner, &r.id);
	if (rc != VEIL_OK)
		return rc;
	in = inst_new(&r);
	if (!in)
		return VEIL_ERR_NOMEM;
	in->anchor = anchor;
	in->seq = ++E->inst_gen;
	HASH_ADD_STR(E->by_filter, filter, in);
	E->gen++;
	*out = in;
	return VEIL_OK;
}

static uint64_t horizon(const struct kd_scope_conf *sc, uint64_t now)
{
	return now + sc->lead + (uint64_t)sc->depth * sc->period;
}

bool kd_epochs__granted(const struct kd_epoch *e, const struct kd_scope_conf *sc, uint64_t now)
{
	return e->superseded_at == 0 && now < e->accept_until && e->send_from <= horizon(sc, now);
}

/* The newest live epoch (largest key id not superseded), or NULL. */
static const struct kd_epoch *newest(const struct kd_inst *in)
{
	for (size_t i = in->n; i > 0; i--)
		if (!in->ep[i - 1].superseded_at)
			return &in->ep[i - 1];
	return NULL;
}

/* Where the epoch after `last` (or the first one) starts, and its number. */
static void next_slot(const struct kd_inst *in, const struct kd_scope_conf *sc, uint64_t now, uint64_t *from,
                      uint32_t *number)
{
	const struct kd_epoch *l = newest(in);
	uint64_t base = l ? l->send_until : in->anchor;
	uint32_t n = l ? l->epoch + 1 : 0;
	if (base + sc->period <= now) { /* skip whole periods nobody sent in */
		uint64_t k = (now - base) / sc->period;
		base += k * sc->period;
		n += (uint32_t)k;
	}
	*from = base;
	*number = n;
}

static int add_epoch(struct kd_epochs *E, struct kd_store *s, struct kd_inst *in, const struct kd_scope_conf *sc,
                     uint64_t from, uint32_t number, uint8_t flags, uint32_t grace)
{
	struct kd_epoch e = { .instance = in->id, .epoch = number, .send_from = from, .flags = flags, .grace_s = grace };
	e.send_until = from + sc->period;
	e.accept_until = e.send_until + sc->grace;
	int rc = kd_store__next_key_id(s, &e.key_id);
	if (rc != VEIL_OK)
		return rc;
	e.key = sodium_malloc(VEIL_KEY_BYTES);
	if (!e.key)
		return VEIL_ERR_NOMEM;
	randombytes_buf(e.key, VEIL_KEY_BYTES);
	rc = kd_store__epoch_add(s, in->filter, &e);
	if (rc == VEIL_OK)
		rc = inst_push(in, &e);
	if (rc != VEIL_OK) {
		epoch_wipe(&e);
		return rc;
	}
	E->gen++;
	return VEIL_OK;
}

int kd_epochs__advance(struct kd_epochs *E, struct kd_store *s, struct kd_inst *in, const struct kd_scope_conf *sc,
                       uint64_t now, size_t *added)
{
	*added = 0;
	for (;;) {
		uint64_t from;
		uint32_t number;
		next_slot(in, sc, now, &from, &number);
		const struct kd_epoch *l = newest(in);
		/* The current epoch always exists; later ones once granted. */
		bool have_current = l && l->send_until > now;
		if (have_current && from > horizon(sc, now))
			return VEIL_OK;
		int rc = add_epoch(E, s, in, sc, from, number, 0, 0);
		if (rc != VEIL_OK)
			return rc;
		(*added)++;
	}
}

uint64_t kd_epochs__next_change(const struct kd_inst *in, const struct kd_scope_conf *sc, uint64_t now)
{
	uint64_t from;
	uint32_t number;
	next_slot(in, sc, now, &from, &number);
	uint64_t ahead = (uint64_t)sc->lead + (uint64_t)sc->depth * sc->period;
	uint64_t t = from > ahead ? from - ahead : 0;
	return t > now ? t : now + 1;
}

int kd_epochs__rotate(struct kd_epochs *E, struct kd_store *s, struct kd_inst *in, const struct kd_scope_conf *sc,
                      uint64_t now, uint32_t skew, uint32_t rekey_grace)
{
	uint32_t number = 0;
	for (size_t i = 0; i < in->n; i++)
		if (in->ep[i].epoch >= number)
			number = in->ep[i].epoch + 1;
	for (size_t i = 0; i < in->n; i++) {
		if (in->ep[i].superseded_at)
			continue;
		int rc = kd_store__epoch_supersede(s, in->ep[i].key_id, now);
		if (rc != VEIL_OK)
			return rc;
		in->ep[i].superseded_at = now;
	}
	return add_epoch(E, s, in, sc, now > skew ? now - skew : 0, number, VEIL__GRANT_SUPERSEDES, rekey_grace);
}

int kd_epochs__purge(struct kd_epochs *E, struct kd_store *s, uint64_t now, uint32_t rekey_grace, size_t *deleted)
{
	*deleted = 0;
	struct kd_inst *in, *tmp;
	int rc = VEIL_OK;
	HASH_ITER(hh, E->by_filter, in, tmp) {
		size_t w = 0;
		for (size_t i = 0; i < in->n; i++) {
			struct kd_epoch *e = &in->ep[i];
			bool gone = now >= e->accept_until || (e->superseded_at && now >= e->superseded_at + rekey_grace);
			if (gone && rc == VEIL_OK && (rc = kd_store__epoch_delete(s, e->key_id)) == VEIL_OK) {
				epoch_wipe(e);
				(*deleted)++;
				continue;
			}
			in->ep[w++] = *e;
		}
		in->n = w;
	}
	if (*deleted)
		E->gen++;
	return rc;
}
