/*
 * ACL decisions over a loaded rule set (pure logic, unit-testable): which
 * rule lists apply to a client (its per-client view, built once per rules
 * generation and cached in vp_client.acl_cache) and the allow/deny decision
 * for READ, WRITE and SUBSCRIBE with the protection attributes of the topic.
 */
#ifndef VP_ACL_DECIDE_H
#define VP_ACL_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl_rules.h"

/* Who asks: strings owned by the caller (the client registry or the broker). */
struct vp_acl_who {
	const char *client_id;
	const char *username;   /* NULL: anonymous (Mosquitto's rules before any `user`) */
	const char *roles;      /* comma separated credential roles, or NULL */
};

/* The rule lists that apply to one client; heap allocated, flexible array. */
struct vp_acl_view {
	uint64_t gen;           /* rules generation this view was built for */
	bool dangerous;         /* '+'/'#' in client id or username while patterns exist */
	size_t n;
	const struct vp_topic_node *lists[];
};

/* Build the view (NULL on ENOMEM). Free with free(). */
struct vp_acl_view *vp_acl_view__new(const struct vp_acl_rules *r, const struct vp_acl_who *w, uint64_t gen);

struct vp_acl_result {
	bool allowed;
	uint8_t attrs;          /* VP_ATTR_* protecting the topic (WRITE only) */
};

/* access: VP_ACC_READ, VP_ACC_WRITE or VP_ACC_SUBSCRIBE (topic is then the raw
 * filter, "$share/<group>/" understood). Deny by default; an explicit deny
 * that matches (covers, for SUBSCRIBE) always wins. */
void vp_acl__decide(const struct vp_acl_rules *r, const struct vp_acl_view *v, const struct vp_acl_who *w,
                    unsigned access, const char *topic, struct vp_acl_result *out);

#endif
