/*
 * keyd's questions (acl.h) answered by the plugin's ACL engine, linked from
 * the plugin's pure archive (vp_internal: topic.c, acl_rules.c,
 * acl_decide.c), so the rules file is parsed and matched by one piece of
 * code for both.
 *
 * TEMPORARY until the engine moves to core with filter-vs-filter overlap
 * (issue 12): the engine offers rule-covers-filter (SUBSCRIBE) but no
 * overlap, so here
 *   - write_some is "a write rule covers the whole scope" (fails closed:
 *     a device with write on part of a scope gets no key);
 *   - read_all ignores a deny that covers only part of the scope;
 *   - attrs are those of protection rules covering the whole scope; a
 *     scope straddling protected and unprotected topics is not detected.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/error.h"
#include "veil/identity.h"
#include "acl_decide.h"
#include "acl_rules.h"
#include "acl.h"

_Static_assert(KD_ATTR_ENCRYPTED == VP_ATTR_ENCRYPTED && KD_ATTR_SIGNED == VP_ATTR_SIGNED, "attribute bits");

struct kd_acl {
	struct vp_acl_rules *rules;
};

int kd_acl__load(const char *path, struct kd_acl **out, char *err, size_t errlen)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return VEIL_ERR_NOMEM;
	int rc = vp_acl_rules__load(path, VP_ACL_DEFAULT_MAX_BYTES, &(*out)->rules, err, errlen);
	if (rc != VEIL_OK) {
		free(*out);
		*out = NULL;
		return rc < 0 ? rc : VEIL_ERR_PARSE;
	}
	return VEIL_OK;
}

void kd_acl__free(struct kd_acl **a)
{
	if (!a || !*a)
		return;
	vp_acl_rules__free(&(*a)->rules);
	free(*a);
	*a = NULL;
}

struct kd_acl_view {
	const struct vp_acl_rules *r;
	struct vp_acl_view *v;
	char cid[VEIL_CLIENT_ID_MAX + 1];
};

struct kd_acl_view *kd_acl__view(const struct kd_acl *a, const struct kd_who *w)
{
	struct kd_acl_view *kv = calloc(1, sizeof(*kv));
	if (!kv)
		return NULL;
	kv->r = a ? a->rules : NULL;
	snprintf(kv->cid, sizeof(kv->cid), "%s", w->client_id);
	struct vp_acl_who who = { kv->cid, kv->cid, w->roles };
	kv->v = kv->r ? vp_acl_view__new(kv->r, &who, 0) : NULL;
	if (kv->r && !kv->v) {
		free(kv);
		return NULL;
	}
	return kv;
}

void kd_acl__view_free(struct kd_acl_view **v)
{
	if (!v || !*v)
		return;
	free((*v)->v);
	free(*v);
	*v = NULL;
}

/* What the rules covering the whole filter say, over the client's lists
 * and the patterns, as vp_acl__decide walks them. */
static bool covering(const struct kd_acl_view *kv, const char *filter, struct vp_match *m)
{
	const struct vp_acl_rules *r = kv->r;
	const struct vp_acl_view *v = kv->v;
	struct vp_subst s = { v->dangerous ? NULL : kv->cid, v->dangerous ? NULL : kv->cid };
	bool ok = true;
	for (size_t i = 0; ok && i < v->n; i++)
		ok = vp_trie__cover(r->trie, v->lists[i], filter, &s, m);
	if (ok && !v->dangerous && r->patterns)
		ok = vp_trie__cover(r->trie, r->patterns, filter, &s, m);
	return ok;
}

void kd_acl__rights(const struct kd_acl_view *v, const char *filter, struct kd_rights *out)
{
	struct vp_match m = { 0, 0, false };
	out->read_all = out->write_some = false;
	if (!v || !v->r || !covering(v, filter, &m) || m.deny)
		return;
	out->read_all = (m.allow & VP_ACC_READ) != 0;
	out->write_some = (m.allow & VP_ACC_WRITE) != 0;
}

bool kd_acl__attrs(const struct kd_acl *a, const char *filter, const char *client_id, uint8_t *attrs)
{
	*attrs = 0;
	if (!a || !a->rules->protect)
		return true;
	struct vp_subst s = { client_id, client_id };
	struct vp_match m = { 0, 0, false };
	if (!vp_trie__cover(a->rules->trie, a->rules->protect, filter, &s, &m))
		return false;
	*attrs = m.attrs;
	return true;
}
