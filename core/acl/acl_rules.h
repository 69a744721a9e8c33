/*
 * ACL rules file: parser and the loaded, immutable rule set (pure logic,
 * unit-testable). Syntax is Mosquitto 2.0.11's acl_file, parsed the same
 * way (see docs/ACL.md), plus extensions that Mosquitto itself would refuse,
 * so no valid Mosquitto file changes meaning:
 *   role <name>                      rules for clients whose credential has <name>
 *   topic|pattern <access>[,<access>...] <topic>
 *       access words: read write readwrite deny subscribe encrypted signed
 */
#ifndef VP_ACL_RULES_H
#define VP_ACL_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "topic.h"

/* Veil's own topics' first level: rules on them are refused (the plugin
 * protects them itself, docs/ACL.md). */
#define VP_VEIL_ROOT "$veil"
#define VP_ACL_MAX_LINE 70000U               /* a topic is at most 65535 bytes */
#define VP_ACL_DEFAULT_MAX_BYTES (64U * 1024U * 1024U)

struct vp_acl_rules {
	struct vp_trie *trie;
	struct vp_topic_node *anon;      /* rules before any user/role line; NULL if none */
	struct vp_topic_node *patterns;  /* pattern rules (all clients); NULL if none */
	struct vp_topic_node *protect;   /* every rule with attributes (all clients) */
	struct vp_owner *users;          /* `user` lists by name (uthash) */
	struct vp_owner *roles;          /* `role` lists by name (uthash) */
	size_t nrules, nusers, nroles, npatterns;
	bool has_attrs;
};

/* Parse a whole file image. name is used in errors: "name:line: reason".
 * Returns VEIL_OK, or VEIL_ERR_PARSE / VEIL_ERR_NOMEM / VEIL_ERR_INVAL with
 * err filled (the rule set is not created). */
int vp_acl_rules__parse(const char *name, const char *buf, size_t len, struct vp_acl_rules **out, char *err,
                        size_t errlen);
/* Read and parse path; files over max_bytes are refused (VEIL_ERR_TOO_LARGE),
 * as are files that cannot be read (VEIL_ERR_IO; err "path: reason"). */
int vp_acl_rules__load(const char *path, size_t max_bytes, struct vp_acl_rules **out, char *err, size_t errlen);
void vp_acl_rules__free(struct vp_acl_rules **r);

/* The list of `user <name>` (exact match), or NULL. */
const struct vp_topic_node *vp_acl_rules__user(const struct vp_acl_rules *r, const char *username);
/* The list of `role <name>` (name of length n), or NULL. */
const struct vp_topic_node *vp_acl_rules__role(const struct vp_acl_rules *r, const char *name, size_t n);

#endif
