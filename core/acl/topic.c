/*
 * Topic trie (see topic.h): node storage, the (parent, level) hash table,
 * topic-vs-rule matching, filter-vs-rule covering and filter-vs-rule
 * overlap. No allocation on the
 * matching paths: topics are split into (pointer, length) levels on the stack.
 *
 * Why the children table is written here and not uthash (STYLE.md 12): it
 * is looked up for every level of every topic the broker checks, and
 * uthash, with this same hash and a (parent, level) key compare, made that
 * decision 8-15% slower (its buckets grow only when a chain reaches ten
 * entries, so chains run about twice as long as this table's, which keeps
 * at most one node per bucket on average), and its 56-byte handle would
 * replace this 8-byte chain pointer in every node of rules files of up to
 * 64 MiB. Only the operator's rules file puts keys in it (clients only look
 * up), so an unkeyed hash cannot be aimed at one chain by a client.
 */
#include <stdlib.h>
#include <string.h>

#include "veil/error.h"
#include "topic.h"

struct vp_topic_node {
	const struct vp_topic_node *parent;
	struct vp_topic_node *hnext;     /* hash chain (literal children only) */
	struct vp_topic_node *all_next;  /* every node, for freeing */
	struct vp_topic_node *plus, *hash, *pc, *pu;
	struct vp_topic_node *kids, *next_kid; /* literal children, for filter-vs-filter overlap */
	char *level;                     /* literal level (not NUL-terminated use: len) */
	size_t len;
	uint8_t allow, attrs;
	bool deny;
};

struct vp_trie {
	struct vp_topic_node **b;
	size_t nb;     /* power of two */
	size_t count;  /* literal children in the table */
	size_t nodes;
	struct vp_topic_node *all;
};

struct lvl {
	const char *p;
	size_t n;
};

static size_t hash_of(const struct vp_topic_node *parent, const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uintptr_t)parent;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ULL;
	}
	h ^= h >> 29;
	return (size_t)h;
}

int vp_trie__new(struct vp_trie **out)
{
	struct vp_trie *t = calloc(1, sizeof(*t));
	if (!t)
		return VEIL_ERR_NOMEM;
	t->nb = 64;
	t->b = calloc(t->nb, sizeof(*t->b));
	if (!t->b) {
		free(t);
		return VEIL_ERR_NOMEM;
	}
	*out = t;
	return VEIL_OK;
}

void vp_trie__free(struct vp_trie **tp)
{
	if (!tp || !*tp)
		return;
	struct vp_trie *t = *tp;
	struct vp_topic_node *n = t->all;
	while (n) {
		struct vp_topic_node *next = n->all_next;
		free(n->level);
		free(n);
		n = next;
	}
	free(t->b);
	free(t);
	*tp = NULL;
}

size_t vp_trie__node_count(const struct vp_trie *t)
{
	return t ? t->nodes : 0;
}

static struct vp_topic_node *node_new(struct vp_trie *t, const struct vp_topic_node *parent)
{
	struct vp_topic_node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->parent = parent;
	n->all_next = t->all;
	t->all = n;
	t->nodes++;
	return n;
}

struct vp_topic_node *vp_trie__new_root(struct vp_trie *t)
{
	return t ? node_new(t, NULL) : NULL;
}

static struct vp_topic_node *find_child(const struct vp_trie *t, const struct vp_topic_node *parent, const char *p,
                                        size_t n)
{
	for (struct vp_topic_node *c = t->b[hash_of(parent, p, n) & (t->nb - 1)]; c; c = c->hnext) {
		if (c->parent == parent && c->len == n && memcmp(c->level, p, n) == 0)
			return c;
	}
	return NULL;
}

static void grow(struct vp_trie *t)
{
	size_t nb = t->nb * 2;
	struct vp_topic_node **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < t->nb; i++) {
		struct vp_topic_node *c = t->b[i];
		while (c) {
			struct vp_topic_node *next = c->hnext;
			size_t k = hash_of(c->parent, c->level, c->len) & (nb - 1);
			c->hnext = b[k];
			b[k] = c;
			c = next;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

static struct vp_topic_node *literal_child(struct vp_trie *t, struct vp_topic_node *parent, const char *p, size_t n)
{
	struct vp_topic_node *c = find_child(t, parent, p, n);
	if (c)
		return c;
	if (t->count + 1 > t->nb)
		grow(t);
	c = node_new(t, parent);
	if (!c)
		return NULL;
	c->level = malloc(n + 1);
	if (!c->level)
		return NULL; /* node stays on the all-list and is freed with the trie */
	memcpy(c->level, p, n);
	c->level[n] = '\0';
	c->len = n;
	size_t k = hash_of(parent, p, n) & (t->nb - 1);
	c->hnext = t->b[k];
	t->b[k] = c;
	t->count++;
	c->next_kid = parent->kids;
	parent->kids = c;
	return c;
}

static struct vp_topic_node *special_child(struct vp_trie *t, struct vp_topic_node *parent,
                                           struct vp_topic_node **slot)
{
	if (!*slot)
		*slot = node_new(t, parent);
	return *slot;
}

/* Split s on '/' into lv; false if more than max levels. */
static bool split(const char *s, struct lvl *lv, size_t max, size_t *n)
{
	size_t k = 0;
	const char *start = s;
	for (const char *p = s;; p++) {
		if (*p == '/' || *p == '\0') {
			if (k == max)
				return false;
			lv[k].p = start;
			lv[k].n = (size_t)(p - start);
			k++;
			if (*p == '\0')
				break;
			start = p + 1;
		}
	}
	*n = k;
	return true;
}

static bool is(const struct lvl *l, const char *word)
{
	size_t wn = strlen(word);
	return l->n == wn && memcmp(l->p, word, wn) == 0;
}

static bool eq_str(const struct lvl *l, const char *s)
{
	return s && strlen(s) == l->n && memcmp(l->p, s, l->n) == 0;
}

int vp_trie__insert(struct vp_trie *t, struct vp_topic_node *root, const char *filter, bool pattern,
                    uint8_t allow, bool deny, uint8_t attrs)
{
	struct lvl lv[VP_TOPIC_MAX_LEVELS];
	size_t n;
	if (!t || !root || !filter || !split(filter, lv, VP_TOPIC_MAX_LEVELS, &n))
		return VEIL_ERR_INVAL;
	struct vp_topic_node *node = root;
	for (size_t i = 0; i < n && node; i++) {
		if (is(&lv[i], "+"))
			node = special_child(t, node, &node->plus);
		else if (is(&lv[i], "#"))
			node = special_child(t, node, &node->hash);
		else if (pattern && is(&lv[i], "%c"))
			node = special_child(t, node, &node->pc);
		else if (pattern && is(&lv[i], "%u"))
			node = special_child(t, node, &node->pu);
		else
			node = literal_child(t, node, lv[i].p, lv[i].n);
	}
	if (!node)
		return VEIL_ERR_NOMEM;
	node->allow |= allow;
	node->deny = node->deny || deny;
	node->attrs |= attrs;
	return VEIL_OK;
}

static void add(const struct vp_topic_node *node, struct vp_match *m)
{
	m->allow |= node->allow;
	m->attrs |= node->attrs;
	m->deny = m->deny || node->deny;
}

static bool dollar(const struct lvl *l)
{
	return l->n > 0 && l->p[0] == '$';
}

static void walk_match(const struct vp_trie *t, const struct vp_topic_node *node, const struct lvl *lv, size_t n,
                       size_t i, const struct vp_subst *s, struct vp_match *m)
{
	if (!node)
		return;
	/* A wildcard in the first level never matches a '$' topic. */
	bool wild_ok = !(i == 0 && dollar(&lv[0]));
	if (node->hash && wild_ok)
		add(node->hash, m);
	if (i == n) {
		add(node, m);
		return;
	}
	walk_match(t, find_child(t, node, lv[i].p, lv[i].n), lv, n, i + 1, s, m);
	if (wild_ok)
		walk_match(t, node->plus, lv, n, i + 1, s, m);
	if (node->pc && s && eq_str(&lv[i], s->client_id))
		walk_match(t, node->pc, lv, n, i + 1, s, m);
	if (node->pu && s && eq_str(&lv[i], s->username))
		walk_match(t, node->pu, lv, n, i + 1, s, m);
}

bool vp_trie__match(const struct vp_trie *t, const struct vp_topic_node *root, const char *topic,
                    const struct vp_subst *s, struct vp_match *m)
{
	struct lvl lv[VP_TOPIC_MAX_LEVELS];
	size_t n;
	if (!t || !topic || !vp_topic__valid_topic(topic) || !split(topic, lv, VP_TOPIC_MAX_LEVELS, &n))
		return false;
	walk_match(t, root, lv, n, 0, s, m);
	return true;
}

static void walk_cover(const struct vp_trie *t, const struct vp_topic_node *node, const struct lvl *lv, size_t n,
                       size_t i, const struct vp_subst *s, struct vp_match *m)
{
	if (!node)
		return;
	/* A filter whose first level is a literal '$' word is only covered by
	 * rules naming it; a filter starting with '+'/'#' never reaches '$'
	 * topics, so wildcard rules may cover it. */
	bool wild_ok = !(i == 0 && dollar(&lv[0]));
	if (node->hash && wild_ok)
		add(node->hash, m); /* "x/#" covers everything below x, and x */
	if (i == n) {
		add(node, m);
		return;
	}
	if (is(&lv[i], "#")) {
		/* A '#' filter level matches its parent topic and every topic
		 * below it; a '#' rule at this node covers both (added above).
		 * A "+/#" rule here covers everything below but not the parent,
		 * so it covers too when there is no parent topic: for the whole
		 * filter "#" (both match every topic whose first level does not
		 * start with '$'), and for "/#", whose parent would be the empty
		 * topic, which MQTT does not allow. */
		bool no_parent = i == 0 || (i == 1 && lv[0].n == 0);
		if (no_parent && node->plus && node->plus->hash)
			add(node->plus->hash, m);
		return;
	}
	if (is(&lv[i], "+")) {
		walk_cover(t, node->plus, lv, n, i + 1, s, m);
		return;
	}
	walk_cover(t, find_child(t, node, lv[i].p, lv[i].n), lv, n, i + 1, s, m);
	if (wild_ok)
		walk_cover(t, node->plus, lv, n, i + 1, s, m);
	if (node->pc && s && eq_str(&lv[i], s->client_id))
		walk_cover(t, node->pc, lv, n, i + 1, s, m);
	if (node->pu && s && eq_str(&lv[i], s->username))
		walk_cover(t, node->pu, lv, n, i + 1, s, m);
}

bool vp_trie__cover(const struct vp_trie *t, const struct vp_topic_node *root, const char *filter,
                    const struct vp_subst *s, struct vp_match *m)
{
	struct lvl lv[VP_TOPIC_MAX_LEVELS];
	size_t n;
	if (!t || !filter || !vp_topic__valid_filter(filter) || !split(filter, lv, VP_TOPIC_MAX_LEVELS, &n))
		return false;
	walk_cover(t, root, lv, n, 0, s, m);
	return true;
}

/* Every rule in the subtree below node (not node itself). At the first
 * level (first) a literal child starting with '$' is never reached by a
 * wildcard filter level. */
static void add_subtree(const struct vp_trie *t, const struct vp_topic_node *node, bool first,
                        const struct vp_subst *s, struct vp_match *m)
{
	for (const struct vp_topic_node *k = node->kids; k; k = k->next_kid) {
		if (first && k->len > 0 && k->level[0] == '$')
			continue;
		add(k, m);
		add_subtree(t, k, false, s, m);
	}
	const struct vp_topic_node *special[] = { node->plus, node->hash, s && s->client_id ? node->pc : NULL,
		                                  s && s->username ? node->pu : NULL };
	for (size_t i = 0; i < 4; i++) {
		if (!special[i])
			continue;
		add(special[i], m);
		add_subtree(t, special[i], false, s, m);
	}
}

static void walk_overlap(const struct vp_trie *t, const struct vp_topic_node *node, const struct lvl *lv, size_t n,
                         size_t i, const struct vp_subst *s, struct vp_match *m)
{
	if (!node)
		return;
	bool wild_ok = !(i == 0 && n > 0 && dollar(&lv[0]));
	/* The filter ends on a one-level topic whose level is empty: that is
	 * "", which MQTT does not allow, so nothing ends here. */
	if (i == n && i == 1 && (lv[0].n == 0 || (node->level && node->len == 0)))
		return;
	if (node->hash && wild_ok)
		add(node->hash, m); /* "x/#" meets every filter that reaches x, x included */
	if (i == n) {
		add(node, m);
		return;
	}
	if (is(&lv[i], "#")) {
		/* The filter's '#' matches its parent topic too, unless that would
		 * be the empty topic ("/#"), which MQTT does not allow. */
		if (i > 0 && !(i == 1 && lv[0].n == 0))
			add(node, m);
		add_subtree(t, node, i == 0, s, m);
		return;
	}
	if (is(&lv[i], "+")) {
		for (const struct vp_topic_node *k = node->kids; k; k = k->next_kid)
			if (!(i == 0 && k->len > 0 && k->level[0] == '$'))
				walk_overlap(t, k, lv, n, i + 1, s, m);
		walk_overlap(t, node->plus, lv, n, i + 1, s, m);
		if (s && s->client_id)
			walk_overlap(t, node->pc, lv, n, i + 1, s, m);
		if (s && s->username)
			walk_overlap(t, node->pu, lv, n, i + 1, s, m);
		return;
	}
	walk_overlap(t, find_child(t, node, lv[i].p, lv[i].n), lv, n, i + 1, s, m);
	if (wild_ok)
		walk_overlap(t, node->plus, lv, n, i + 1, s, m);
	if (node->pc && s && eq_str(&lv[i], s->client_id))
		walk_overlap(t, node->pc, lv, n, i + 1, s, m);
	if (node->pu && s && eq_str(&lv[i], s->username))
		walk_overlap(t, node->pu, lv, n, i + 1, s, m);
}

bool vp_trie__overlap(const struct vp_trie *t, const struct vp_topic_node *root, const char *filter,
                      const struct vp_subst *s, struct vp_match *m)
{
	struct lvl lv[VP_TOPIC_MAX_LEVELS];
	size_t n;
	if (!t || !filter || !vp_topic__valid_filter(filter) || !split(filter, lv, VP_TOPIC_MAX_LEVELS, &n))
		return false;
	walk_overlap(t, root, lv, n, 0, s, m);
	return true;
}

static bool check(const char *s, bool wildcards_ok)
{
	if (!s)
		return false;
	size_t len = 0, slashes = 0;
	char prev = '\0';
	for (const char *p = s; *p; p++, len++) {
		if (*p == '+' || *p == '#') {
			if (!wildcards_ok)
				return false;
			if (prev != '\0' && prev != '/')
				return false;
			if (*p == '+' && p[1] != '\0' && p[1] != '/')
				return false;
			if (*p == '#' && p[1] != '\0')
				return false;
		} else if (*p == '/') {
			slashes++;
		}
		prev = *p;
	}
	return len <= VP_TOPIC_MAX_LEN && slashes < VP_TOPIC_MAX_LEVELS;
}

bool vp_topic__valid_filter(const char *f)
{
	return check(f, true);
}

bool vp_topic__valid_topic(const char *t)
{
	return check(t, false);
}

const char *vp_topic__strip_share(const char *filter)
{
	if (!filter)
		return NULL;
	if (strncmp(filter, "$share/", 7) != 0)
		return filter;
	const char *group = filter + 7;
	const char *slash = strchr(group, '/');
	if (!slash || slash == group)
		return NULL;
	for (const char *p = group; p < slash; p++) {
		if (*p == '+' || *p == '#')
			return NULL;
	}
	return slash[1] ? slash + 1 : NULL;
}
