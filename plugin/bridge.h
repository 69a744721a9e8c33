/*
 * Bridges (docs/ACL.md "Bridges"). A Mosquitto bridge logs in to a node
 * like a client and then forwards what other clients published elsewhere:
 * envelopes whose sender is not the bridge. The plugin knows a bridge only
 * by the operator's declaration (plugin_opt_bridge_user, repeatable) and
 * the password of that user in plugin_opt_password_file: nothing a client
 * sends (a token, the try_private flag, a client id or username pattern)
 * makes it one, so no device's secret can ever become a bridge's.
 *
 * What a bridge login may carry is decided as for any client (the rules
 * file's user block, Veil's own topics), and what it publishes is checked
 * with public information only: on protected topics everything but the
 * sender-id binding (the envelope's structure; on `signed` topics the
 * signature against the embedded credential, the trusted authorities, the
 * clock and the revocation list: enforce.c), and on Veil's own topics the
 * signature of the key service's messages (this file).
 */
#ifndef VP_BRIDGE_H
#define VP_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil_topics.h"

struct vp_auth;
struct vp_ctx;
struct veil__trust;
struct veil__credcache;

/* Whether user is one of plugin_opt_bridge_user. */
bool vp_bridge__declared(const struct vp_auth *a, const char *user);

/* What a bridged signature is verified against: the authority keys, the
 * clock, the revocation list (credential ids and client ids), and the
 * plugin's verified-credential cache. Valid until the next event. */
void vp_bridge__trust(struct vp_ctx *ctx, struct veil__trust *t, struct veil__credcache **cache);

/* A bridge's PUBLISH on one of Veil's own topics (vp_vtopic__bridge said
 * which kind; level is the topic's client id for requests and bundles):
 * NULL when its payload is the key service's, signed as PROTOCOL.md
 * sections 11 to 13 say, else the reason, for the log. */
const char *vp_bridge__veil_payload(struct vp_ctx *ctx, enum vp_vkind kind, const char *level,
                                    const uint8_t *payload, size_t len);

#endif
