/*
 * Veil's own topics (docs/PROTOCOL.md section 10), protected by the plugin
 * itself whatever the operator's rules say (pure logic, unit-testable):
 *
 *   $veil/v1/req/<cid>     written by the credential login of client <cid>
 *                          (never retained); read by veil-keyd credentials
 *   $veil/v1/bundle/<cid>  written by veil-keyd credentials; read by <cid>
 *   $veil/v1/revocation    written by veil-keyd credentials; read by anyone
 *
 * A zero-length retained publish (which would delete a retained bundle or
 * statement) is refused on all three; every other $veil/... topic is
 * refused.
 *
 * The admin API (plugin/control.c, docs/OPERATIONS.md):
 *
 *   $CONTROL/veil/v1           written by credentials with the admin role
 *                              (plugin_opt_admin_role); Mosquitto hands it to
 *                              the plugin's CONTROL event, never to clients
 *   $CONTROL/veil/v1/response  read by credentials with the admin role; only
 *                              the plugin publishes there (its publications
 *                              skip the WRITE check)
 *
 * A client without a credential (password, anonymous) never has the role.
 * Every other $CONTROL/veil/... topic is refused; an admin may subscribe to
 * any filter under $CONTROL/veil (it can only ever deliver responses). SUBSCRIBE is judged filter against these rules: a filter is
 * allowed only if every topic it can match may be read (so veil-keyd may
 * subscribe $veil/v1/req/+, a device exactly its own bundle topic and the
 * revocation topic). A filter or topic whose first level is not "$veil" is
 * not Veil's: the rules decide (a first-level wildcard never matches it);
 * neither is a $CONTROL filter that does not start with $CONTROL/veil
 * ("$CONTROL/#"): the rules decide the subscription, and every message it
 * could deliver from Veil's response topic is checked as READ here.
 */
#ifndef VP_VEIL_TOPICS_H
#define VP_VEIL_TOPICS_H

#include <stdbool.h>
#include <stddef.h>

#define VP_VEIL_TOPIC_ROOT "$veil"
#define VP_CONTROL_ROOT "$CONTROL/veil"
#define VP_CONTROL_TOPIC VP_CONTROL_ROOT "/v1"
#define VP_CONTROL_RESPONSE_TOPIC VP_CONTROL_TOPIC "/response"
#define VP_ADMIN_ROLE_DEFAULT "veil-admin"

enum vp_vtopic {
	VP_VTOPIC_NOT_VEIL = 0, /* the rules decide */
	VP_VTOPIC_ALLOW,
	VP_VTOPIC_DENY
};

/* Who asks: the registry's view of the client. */
struct vp_vtopic_who {
	const char *client_id;
	bool has_identity;  /* logged in with a credential */
	const char *roles;  /* the credential's, comma separated (NULL: none) */
	const char *admin_role; /* plugin_opt_admin_role (NULL: nobody is an admin) */
};

/* Whether the comma-separated roles (NULL: none) hold role exactly. */
bool vp_vtopic__has_role(const char *roles, const char *role);

/* access: VP_ACC_READ, VP_ACC_WRITE or VP_ACC_SUBSCRIBE (topic is then the
 * raw filter, "$share/<group>/" understood). payloadlen and retain are the
 * PUBLISH's (WRITE only). *why (may be NULL) names a refusal for the log. */
enum vp_vtopic vp_vtopic__decide(const struct vp_vtopic_who *w, unsigned access, const char *topic,
                                 size_t payloadlen, bool retain, const char **why);

/* Which of the key service's topics a topic is. */
enum vp_vkind {
	VP_VKIND_NONE = 0,
	VP_VKIND_REQUEST,     /* $veil/v1/req/<cid> */
	VP_VKIND_BUNDLE,      /* $veil/v1/bundle/<cid> */
	VP_VKIND_REVOCATION,  /* $veil/v1/revocation */
	VP_VKIND_RELAY        /* $veil/v1/revoked/<kind>/<hex>: a node's runtime revocation (relay.h) */
};

/* The same decision for a declared bridge (bridge.h), which carries Veil's
 * topics between nodes for everyone: any filter under $veil may be
 * subscribed, the three kinds read; a PUBLISH of one of them is allowed
 * (never empty and retained, never a retained request) with *kind and
 * *level (the topic's client id, NULL for the revocation topic) set: the
 * caller then verifies its signature (vp_bridge__veil_payload). The relay's
 * records ($veil/v1/revoked/..., relay.h) are read and written by bridges
 * only, always retained: *level is what follows "$veil/v1/revoked/", the
 * caller checks the record against it; an empty retained one (a record
 * cleared on its node) needs no check (*kind stays NONE). The admin
 * API's topics are node-local: as for any client that is not an admin. */
enum vp_vtopic vp_vtopic__bridge(unsigned access, const char *topic, size_t payloadlen, bool retain,
                                 enum vp_vkind *kind, const char **level, const char **why);

#endif
