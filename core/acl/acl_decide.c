/*
 * ACL decisions (see acl_decide.h). The order mirrors Mosquitto 2.0.11's
 * mosquitto_acl_check_default where it can: the client's own list (its
 * `user` block, or the anonymous rules), then the patterns, with the
 * "dangerous id" refusal in between. One deliberate difference: an explicit
 * deny anywhere (including a pattern) wins over any allow (docs/ACL.md).
 */
#include <stdlib.h>
#include <string.h>

#include "acl_decide.h"

struct vp_acl_view *vp_acl_view__new(const struct vp_acl_rules *r, const struct vp_acl_who *w, uint64_t gen)
{
	size_t nroles = 0;
	if (w->roles) {
		nroles = 1;
		for (const char *p = w->roles; *p; p++)
			nroles += *p == ',';
	}
	struct vp_acl_view *v = calloc(1, sizeof(*v) + (1 + nroles) * sizeof(v->lists[0]));
	if (!v)
		return NULL;
	v->gen = gen;
	if (!r)
		return v;
	/* Mosquitto: a client with a username gets that user's block only
	 * (none if absent); a client without one gets the anonymous rules. */
	const struct vp_topic_node *own = w->username ? vp_acl_rules__user(r, w->username) : r->anon;
	if (own)
		v->lists[v->n++] = own;
	if (w->roles) {
		const char *p = w->roles;
		while (*p) {
			const char *end = strchr(p, ',');
			size_t len = end ? (size_t)(end - p) : strlen(p);
			const struct vp_topic_node *role = len ? vp_acl_rules__role(r, p, len) : NULL;
			bool dup = false;
			for (size_t i = 0; i < v->n && role; i++)
				dup = dup || v->lists[i] == role;
			if (role && !dup)
				v->lists[v->n++] = role;
			p += len;
			if (*p == ',')
				p++;
		}
	}
	bool has_patterns = r->npatterns > 0 || r->nroles > 0;
	v->dangerous = has_patterns && ((w->client_id && strpbrk(w->client_id, "+#")) ||
	                                (w->username && strpbrk(w->username, "+#")));
	return v;
}

typedef bool (*walk_fn)(const struct vp_trie *, const struct vp_topic_node *, const char *, const struct vp_subst *,
                        struct vp_match *);

void vp_acl__decide(const struct vp_acl_rules *r, const struct vp_acl_view *v, const struct vp_acl_who *w,
                    unsigned access, const char *topic, struct vp_acl_result *out)
{
	out->allowed = false;
	out->attrs = 0;
	if (!r || !v || !w || !topic)
		return;
	walk_fn walk = vp_trie__match;
	unsigned need = access;
	if (access == VP_ACC_SUBSCRIBE) {
		/* The shared group is not part of what is received. */
		topic = vp_topic__strip_share(topic);
		if (!topic)
			return;
		walk = vp_trie__cover;
		need = VP_ACC_READ | VP_ACC_SUBSCRIBE; /* read implies subscribe */
	} else if (access != VP_ACC_READ && access != VP_ACC_WRITE) {
		return;
	}
	/* Ids with '+'/'#' are never substituted (Mosquitto refuses them when
	 * patterns exist; for us whole-level matching makes them harmless, but
	 * we keep Mosquitto's decision). */
	struct vp_subst s = { v->dangerous ? NULL : w->client_id, v->dangerous ? NULL : w->username };
	struct vp_match m = { 0, 0, false };
	for (size_t i = 0; i < v->n; i++) {
		if (!walk(r->trie, v->lists[i], topic, &s, &m))
			return; /* unusable topic or filter: deny */
	}
	if (m.deny)
		return;
	if (v->dangerous) {
		out->allowed = (m.allow & need) != 0;
	} else {
		if (r->patterns && !walk(r->trie, r->patterns, topic, &s, &m))
			return;
		if (m.deny)
			return;
		out->allowed = (m.allow & need) != 0;
	}
	if (out->allowed && access == VP_ACC_WRITE && r->protect) {
		struct vp_match p = { 0, 0, false };
		if (!vp_trie__match(r->trie, r->protect, topic, &s, &p)) {
			out->allowed = false;
			return;
		}
		out->attrs = p.attrs;
	}
}
