/*
 * Veil's own topics, decided by the plugin (see veil_topics.h): the key
 * service's, whose names come from the core (core/bundle.h), which keyd and
 * the devices build them with, and the admin API's.
 */
#include <stdio.h>
#include <string.h>

#include "veil/identity.h"
#include "../core/bundle.h"
#include "relay.h"
#include "topic.h"
#include "veil_topics.h"

bool vp_vtopic__has_role(const char *roles, const char *role)
{
	if (!roles || !role)
		return false;
	struct veil_credential c; /* the core's one role test reads a credential's roles */
	snprintf(c.roles, sizeof(c.roles), "%s", roles);
	return veil__credential_has_role(&c, role);
}

/* Roles count only when a credential carries them. */
static bool is_keyd(const struct vp_vtopic_who *w)
{
	return w->has_identity && vp_vtopic__has_role(w->roles, VEIL__ROLE_KEYD);
}

static bool is_admin(const struct vp_vtopic_who *w)
{
	return w->has_identity && vp_vtopic__has_role(w->roles, w->admin_role);
}

/* The level after prefix when topic is prefix + one whole level, else NULL. */
static const char *last_level(const char *topic, const char *prefix)
{
	size_t n = strlen(prefix);
	if (strncmp(topic, prefix, n) != 0 || !topic[n] || strchr(topic + n, '/'))
		return NULL;
	return topic + n;
}

static bool mine(const struct vp_vtopic_who *w, const char *level)
{
	return w->client_id && level && !strcmp(w->client_id, level);
}

static enum vp_vtopic deny(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return VP_VTOPIC_DENY;
}

static enum vp_vtopic subscribe(const struct vp_vtopic_who *w, const char *f, const char **why)
{
	const char *req = last_level(f, VEIL__TOPIC_REQ_PREFIX);
	if (req || !strcmp(f, VEIL__TOPIC_REQ_PREFIX "#"))
		return is_keyd(w) ? VP_VTOPIC_ALLOW : deny(why, "veil-topic-keyd-only");
	const char *bundle = last_level(f, VEIL__TOPIC_BUNDLE_PREFIX);
	if (bundle && strcmp(bundle, "+") != 0 && strcmp(bundle, "#") != 0)
		return mine(w, bundle) ? VP_VTOPIC_ALLOW : deny(why, "veil-topic-not-own-bundle");
	if (!strcmp(f, VEIL__TOPIC_REVOCATION))
		return VP_VTOPIC_ALLOW;
	/* "$veil/#", "$veil/v1/bundle/+", ...: someone else's topics too. */
	return deny(why, "veil-topic");
}

/* A relay record's topic, $veil/v1/revoked/credential/<hex> or
 * .../client/<hex>: what follows the prefix, else NULL. */
static const char *relay_record(const char *topic)
{
	size_t n = strlen(VP_RELAY_PREFIX);
	if (strncmp(topic, VP_RELAY_PREFIX, n) != 0)
		return NULL;
	const char *rest = topic + n;
	const char *hex = !strncmp(rest, "credential/", 11) ? rest + 11 : !strncmp(rest, "client/", 7) ? rest + 7 : NULL;
	if (!hex || !*hex || strspn(hex, "0123456789abcdef") != strlen(hex))
		return NULL;
	return rest;
}

/* topic is root or lies under it. */
static bool under(const char *topic, const char *root)
{
	size_t rl = strlen(root);
	return !strncmp(topic, root, rl) && (topic[rl] == '/' || topic[rl] == '\0');
}

/* The admin API's topics: requests in, responses out, admins only. */
static enum vp_vtopic control(const struct vp_vtopic_who *w, unsigned access, const char *topic, const char **why)
{
	bool admin = is_admin(w);
	if (access == VP_ACC_SUBSCRIBE)
		return admin ? VP_VTOPIC_ALLOW : deny(why, "veil-control-admin-only");
	if (access == VP_ACC_READ && !strcmp(topic, VP_CONTROL_RESPONSE_TOPIC))
		return admin ? VP_VTOPIC_ALLOW : deny(why, "veil-control-admin-only");
	if (access == VP_ACC_WRITE && !strcmp(topic, VP_CONTROL_TOPIC))
		return admin ? VP_VTOPIC_ALLOW : deny(why, "veil-control-admin-only");
	return deny(why, "veil-control"); /* the response topic is the plugin's, the rest nobody's */
}

enum vp_vtopic vp_vtopic__bridge(unsigned access, const char *topic, size_t payloadlen, bool retain,
                                 enum vp_vkind *kind, const char **level, const char **why)
{
	*kind = VP_VKIND_NONE;
	*level = NULL;
	if (why)
		*why = NULL;
	if (!topic)
		return deny(why, "veil-topic");
	if (access == VP_ACC_SUBSCRIBE) {
		topic = vp_topic__strip_share(topic);
		if (!topic)
			return VP_VTOPIC_NOT_VEIL;
	}
	if (under(topic, VP_CONTROL_ROOT)) {
		struct vp_vtopic_who nobody = { NULL, false, NULL, NULL };
		return control(&nobody, access, topic, why);
	}
	if (!under(topic, VP_VEIL_TOPIC_ROOT))
		return VP_VTOPIC_NOT_VEIL;
	if (access == VP_ACC_SUBSCRIBE)
		return VP_VTOPIC_ALLOW; /* delivers only what READ lets through */
	const char *req = last_level(topic, VEIL__TOPIC_REQ_PREFIX);
	const char *bundle = last_level(topic, VEIL__TOPIC_BUNDLE_PREFIX);
	bool revocation = !strcmp(topic, VEIL__TOPIC_REVOCATION);
	const char *record = relay_record(topic);
	if (!req && !bundle && !revocation && !record)
		return deny(why, "veil-topic");
	if (access == VP_ACC_READ)
		return VP_VTOPIC_ALLOW;
	if (access != VP_ACC_WRITE)
		return deny(why, "veil-topic");
	if (record) {
		if (!retain)
			return deny(why, "veil-topic-relay-not-retained");
		if (payloadlen == 0)
			return VP_VTOPIC_ALLOW; /* cleared on its node: stays revoked everywhere else */
		*kind = VP_VKIND_RELAY;
		*level = record;
		return VP_VTOPIC_ALLOW;
	}
	if (retain && payloadlen == 0)
		return deny(why, "veil-topic-empty-retained");
	if (req && retain)
		return deny(why, "veil-topic-retained-request");
	*kind = req ? VP_VKIND_REQUEST : bundle ? VP_VKIND_BUNDLE : VP_VKIND_REVOCATION;
	*level = req ? req : bundle;
	return VP_VTOPIC_ALLOW;
}

enum vp_vtopic vp_vtopic__decide(const struct vp_vtopic_who *w, unsigned access, const char *topic,
                                 size_t payloadlen, bool retain, const char **why)
{
	if (why)
		*why = NULL;
	if (!w || !topic)
		return deny(why, "veil-topic");
	if (access == VP_ACC_SUBSCRIBE) {
		topic = vp_topic__strip_share(topic);
		if (!topic)
			return VP_VTOPIC_NOT_VEIL; /* malformed $share: the rules refuse it */
	}
	if (under(topic, VP_CONTROL_ROOT))
		return control(w, access, topic, why);
	if (!under(topic, VP_VEIL_TOPIC_ROOT))
		return VP_VTOPIC_NOT_VEIL;
	if (access == VP_ACC_SUBSCRIBE)
		return subscribe(w, topic, why);
	const char *req = last_level(topic, VEIL__TOPIC_REQ_PREFIX);
	const char *bundle = last_level(topic, VEIL__TOPIC_BUNDLE_PREFIX);
	bool revocation = !strcmp(topic, VEIL__TOPIC_REVOCATION);
	if (access == VP_ACC_READ) {
		if (req)
			return is_keyd(w) ? VP_VTOPIC_ALLOW : deny(why, "veil-topic-keyd-only");
		if (bundle)
			return mine(w, bundle) ? VP_VTOPIC_ALLOW : deny(why, "veil-topic-not-own-bundle");
		return revocation ? VP_VTOPIC_ALLOW : deny(why, "veil-topic");
	}
	if (access != VP_ACC_WRITE)
		return deny(why, "veil-topic");
	if (retain && payloadlen == 0)
		return deny(why, "veil-topic-empty-retained");
	if (req) {
		if (!w->has_identity || !mine(w, req))
			return deny(why, "veil-topic-not-own-request");
		return retain ? deny(why, "veil-topic-retained-request") : VP_VTOPIC_ALLOW;
	}
	if (bundle || revocation)
		return is_keyd(w) ? VP_VTOPIC_ALLOW : deny(why, "veil-topic-keyd-only");
	return deny(why, "veil-topic");
}
