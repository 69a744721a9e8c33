/*
 * keyd's questions (acl.h) answered by the one ACL engine (core/acl/,
 * veil_acl), the code the plugin decides with, over the same rules file:
 *
 *   read_all    a read rule covers the whole filter (the engine's SUBSCRIBE
 *               coverage, read only) and no deny overlaps it: a deny on a
 *               part of the scope means the key would open topics the
 *               client may not read;
 *   write_some  a write rule overlaps the filter and no deny covers it all;
 *   attrs       the protection rules covering the whole filter; a rule that
 *               overlaps it without covering it and adds an attribute means
 *               its topics differ (straddles).
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

typedef bool (*walk_fn)(const struct vp_trie *, const struct vp_topic_node *, const char *, const struct vp_subst *,
                        struct vp_match *);

/* What the rules of the client's lists and the patterns say about the
 * filter, walked as vp_acl__decide walks them (patterns skipped for a
 * "dangerous" id, as the plugin does). */
static bool walk(const struct kd_acl_view *kv, walk_fn fn, const char *filter, struct vp_match *m)
{
	const struct vp_acl_rules *r = kv->r;
	const struct vp_acl_view *v = kv->v;
	struct vp_subst s = { v->dangerous ? NULL : kv->cid, v->dangerous ? NULL : kv->cid };
	bool ok = true;
	for (size_t i = 0; ok && i < v->n; i++)
		ok = fn(r->trie, v->lists[i], filter, &s, m);
	if (ok && !v->dangerous && r->patterns)
		ok = fn(r->trie, r->patterns, filter, &s, m);
	return ok;
}

void kd_acl__rights(const struct kd_acl_view *v, const char *filter, struct kd_rights *out)
{
	struct vp_match cover = { 0, 0, false }, overlap = { 0, 0, false };
	out->read_all = out->write_some = false;
	if (!v || !v->r || !walk(v, vp_trie__cover, filter, &cover) || !walk(v, vp_trie__overlap, filter, &overlap))
		return;
	out->read_all = (cover.allow & VP_ACC_READ) && !overlap.deny;
	out->write_some = (overlap.allow & VP_ACC_WRITE) && !cover.deny;
}

bool kd_acl__attrs(const struct kd_acl *a, const char *filter, const char *client_id, uint8_t *attrs)
{
	*attrs = 0;
	if (!a || !a->rules->protect)
		return true;
	struct vp_subst s = { client_id, client_id };
	struct vp_match cover = { 0, 0, false }, overlap = { 0, 0, false };
	if (!vp_trie__cover(a->rules->trie, a->rules->protect, filter, &s, &cover) ||
	    !vp_trie__overlap(a->rules->trie, a->rules->protect, filter, &s, &overlap))
		return false;
	*attrs = cover.attrs;
	return (overlap.attrs & (uint8_t)~cover.attrs) == 0;
}
