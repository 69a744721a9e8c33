/*
 * Topic trie for ACL decisions (pure logic, no broker calls, unit-testable).
 *
 * One vp_trie holds every node of one loaded rules file; each rule list
 * (anonymous, a user, a role, the patterns, the protection index) is a root
 * node in it. Children are found through one hash table keyed by
 * (parent, level), so a decision costs O(topic levels), not O(rules).
 *
 * Node kinds: literal level, '+', '#', and for pattern rules '%c' / '%u'
 * (a whole level equal to the client id / username). A level that only
 * contains %c (e.g. "dev-%c") is a literal: substitution is whole-level only,
 * so a client id can never add or remove levels.
 *
 * Matching follows Mosquitto: '+' matches one (possibly empty) level, '#'
 * matches the rest including the parent level ("a/#" matches "a"), and a
 * wildcard in the first level never matches a topic starting with '$'.
 */
#ifndef VP_TOPIC_H
#define VP_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Access bits: the same values as MOSQ_ACL_READ/WRITE/SUBSCRIBE. */
#define VP_ACC_READ 0x01U
#define VP_ACC_WRITE 0x02U
#define VP_ACC_SUBSCRIBE 0x04U

/* Protection attributes of a rule. */
#define VP_ATTR_ENCRYPTED 0x01U
#define VP_ATTR_SIGNED 0x02U

/* Mosquitto allows TOPIC_HIERARCHY_LIMIT (200) slashes; deeper is refused. */
#define VP_TOPIC_MAX_LEVELS 201U
#define VP_TOPIC_MAX_LEN 65535U

struct vp_trie;
struct vp_topic_node;

/* What the rules ending on the matched nodes say, OR-ed together. */
struct vp_match {
	uint8_t allow;  /* VP_ACC_* granted by matching allow rules */
	uint8_t attrs;  /* VP_ATTR_* of every matching rule */
	bool deny;      /* a matching explicit deny rule */
};

/* Values substituted for '%c' / '%u' levels; NULL never matches. */
struct vp_subst {
	const char *client_id;
	const char *username;
};

/* VEIL_OK or VEIL_ERR_NOMEM. */
int vp_trie__new(struct vp_trie **out);
void vp_trie__free(struct vp_trie **t);
/* A new empty root (a rule list); owned by the trie. NULL on ENOMEM. */
struct vp_topic_node *vp_trie__new_root(struct vp_trie *t);
size_t vp_trie__node_count(const struct vp_trie *t);

/* Add a rule under root. pattern: whole "%c"/"%u" levels are substitution
 * nodes, otherwise literal. The filter must be valid (vp_topic__valid_filter).
 * Returns VEIL_OK, VEIL_ERR_NOMEM, or VEIL_ERR_INVAL (too many levels). */
int vp_trie__insert(struct vp_trie *t, struct vp_topic_node *root, const char *filter, bool pattern,
                    uint8_t allow, bool deny, uint8_t attrs);

/* Rules of root that match the concrete topic (PUBLISH / delivery). Adds to
 * *m (does not clear it). Returns false if the topic is unusable (too deep,
 * contains wildcards): callers deny. */
bool vp_trie__match(const struct vp_trie *t, const struct vp_topic_node *root, const char *topic,
                    const struct vp_subst *s, struct vp_match *m);

/* Rules of root whose filter covers the whole subscription filter, i.e.
 * every topic the filter matches is matched by the rule. Adds to *m. */
bool vp_trie__cover(const struct vp_trie *t, const struct vp_topic_node *root, const char *filter,
                    const struct vp_subst *s, struct vp_match *m);

/* Rules of root that match at least one topic the filter matches (they
 * overlap): "write at least one topic of a scope", "does a deny cut it",
 * "which protection attributes do its topics carry". '+' and '#' in the
 * filter stand for any level, except that a first level '+'/'#' never
 * reaches a '$' topic; a '%c'/'%u' rule level overlaps a wildcard filter
 * level when s names that id. Adds to *m. False if the filter is invalid. */
bool vp_trie__overlap(const struct vp_trie *t, const struct vp_topic_node *root, const char *filter,
                      const struct vp_subst *s, struct vp_match *m);

/* mosquitto_sub_topic_check / mosquitto_pub_topic_check semantics. */
bool vp_topic__valid_filter(const char *f);
bool vp_topic__valid_topic(const char *t);

/* For SUBSCRIBE: "$share/<group>/<filter>" -> "<filter>"; other filters are
 * returned unchanged; NULL when a $share filter is malformed. */
const char *vp_topic__strip_share(const char *filter);

#endif
