/*
 * Entitlement and grant lists (grants.h). The decisions are the ACL
 * engine's (acl.h); this file only applies them to scope instances and
 * epochs.
 */
#include <stdlib.h>
#include <string.h>

#include "veil/error.h"
#include "grants.h"

int kd_grants__entitle(const struct kd_epochs *E, const struct kd_acl *acl, const struct kd_who *w,
                       uint64_t since_seq, struct kd_ent **out, size_t *n)
{
	size_t cap = *n;
	struct kd_acl_view *v = NULL;
	for (struct kd_inst *in = E->by_filter; in; in = in->hh.next) {
		if (!in->usable || in->seq <= since_seq)
			continue;
		if (!v && !(v = kd_acl__view(acl, w)))
			return VEIL_ERR_NOMEM;
		struct kd_rights r;
		kd_acl__rights(v, in->filter, &r);
		if (!r.read_all && !r.write_some)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			void *p = realloc(*out, cap * sizeof(**out));
			if (!p) {
				kd_acl__view_free(&v);
				return VEIL_ERR_NOMEM;
			}
			*out = p;
		}
		struct kd_ent *e = &(*out)[(*n)++];
		e->in = in;
		e->flags = (uint8_t)((r.write_some ? VEIL__GRANT_MAY_SEND : 0) |
		                     ((in->attrs & KD_ATTR_SIGNED) ? VEIL__GRANT_SIGNED : 0));
		e->write_only = !r.read_all;
	}
	kd_acl__view_free(&v);
	return VEIL_OK;
}

static int cmp_ref(const void *a, const void *b)
{
	const struct kd_grant_ref *x = a, *y = b;
	return x->key_id < y->key_id ? -1 : x->key_id > y->key_id;
}

int kd_grants__collect(const struct kd_ent *ent, size_t n_ent, const struct kd_config *cfg, uint64_t now,
                       struct veil__grants **g, struct kd_grant_ref **refs)
{
	*g = NULL;
	*refs = NULL;
	size_t total = 0;
	for (size_t i = 0; i < n_ent; i++) {
		const struct kd_scope_conf *sc = kd_config__scope(cfg, ent[i].in->scope);
		for (size_t k = 0; sc && k < ent[i].in->n; k++)
			total += kd_epochs__granted(&ent[i].in->ep[k], sc, now);
	}
	if (total > VEIL__GRANTS_MAX)
		return VEIL_ERR_TOO_LARGE;
	int rc = veil__grants_new(total, g);
	if (rc != VEIL_OK)
		return rc;
	*refs = calloc(total ? total : 1, sizeof(**refs));
	if (!*refs) {
		veil__grants_free(g);
		return VEIL_ERR_NOMEM;
	}
	size_t j = 0;
	for (size_t i = 0; i < n_ent; i++) {
		const struct kd_inst *in = ent[i].in;
		const struct kd_scope_conf *sc = kd_config__scope(cfg, in->scope);
		for (size_t k = 0; sc && k < in->n; k++) {
			const struct kd_epoch *e = &in->ep[k];
			if (!kd_epochs__granted(e, sc, now))
				continue;
			struct veil__grant *out = &(*g)->g[j];
			snprintf(out->scope, sizeof(out->scope), "%s", in->filter);
			out->key_id = e->key_id;
			out->epoch = e->epoch;
			out->send_from = e->send_from;
			out->send_until = e->send_until;
			out->accept_until = e->accept_until;
			out->grace_s = e->grace_s;
			out->flags = (uint8_t)(ent[i].flags | (e->flags & VEIL__GRANT_SUPERSEDES));
			memcpy(out->key, e->key, VEIL_KEY_BYTES);
			(*refs)[j].key_id = e->key_id;
			(*refs)[j].flags = out->flags;
			j++;
		}
	}
	qsort(*refs, total, sizeof(**refs), cmp_ref);
	return VEIL_OK;
}

bool kd_grants__news(const struct kd_grant_ref *cur, size_t n_cur, const struct kd_grant_ref *last, size_t n_last)
{
	/* Both sorted by key id. */
	size_t j = 0;
	for (size_t i = 0; i < n_cur; i++) {
		while (j < n_last && last[j].key_id < cur[i].key_id)
			j++;
		if (j == n_last || last[j].key_id != cur[i].key_id || last[j].flags != cur[i].flags)
			return true;
	}
	return false;
}
