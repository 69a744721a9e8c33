/*
 * Bridges (see bridge.h): who is one, what a bridged signature is checked
 * against, and the key service's messages a bridge forwards. Every check
 * uses public information only; the broker still holds no topic key.
 */
#include <string.h>
#include <time.h>

#include "veil/error.h"
#include "../core/bundle.h"
#include "auth_private.h"
#include "bridge.h"
#include "plugin_private.h"
#include "relay.h"
#include "revoke.h"

bool vp_bridge__declared(const struct vp_auth *a, const char *user)
{
	for (size_t i = 0; a && user && a->bridge_users && a->bridge_users[i]; i++) {
		if (!strcmp(a->bridge_users[i], user))
			return true;
	}
	return false;
}

/* The plugin's revocation list, as a verifier's trust asks it. */
static bool revoked(const struct veil_credential *c, void *ctx)
{
	const struct vp_auth *a = ctx;
	return vp_revoke__credential(a->revoke, c->id) || vp_revoke__client(a->revoke, c->client_id);
}

void vp_bridge__trust(struct vp_ctx *ctx, struct veil__trust *t, struct veil__credcache **cache)
{
	struct vp_auth *a = ctx ? ctx->auth : NULL;
	memset(t, 0, sizeof(*t));
	*cache = a ? a->credcache : NULL;
	if (!a)
		return; /* no authority: every signature fails, fail closed */
	t->authorities = (const uint8_t(*)[VEIL_PK_BYTES])a->authorities;
	t->n_authorities = a->authorities ? a->n_authorities : 0;
	t->now = (uint64_t)time(NULL);
	t->revoked = revoked;
	t->revoked_ctx = a;
}

/* The names receivers and keyd use for the same conditions (PROTOCOL.md
 * sections 3, 11 to 13), so the log reads alike everywhere. */
static const char *reason(int rc)
{
	switch (rc) {
	case VEIL_ERR_TRUNCATED:
	case VEIL_ERR_TOO_LARGE:
	case VEIL_ERR_VERSION:
	case VEIL_ERR_RESERVED_FLAGS:
	case VEIL_ERR_PARSE: return "malformed-key-service-message";
	default: return veil_errname(rc);
	}
}

const char *vp_bridge__veil_payload(struct vp_ctx *ctx, enum vp_vkind kind, const char *level,
                                    const uint8_t *payload, size_t len)
{
	struct veil__trust t;
	struct veil__credcache *cache = NULL;
	vp_bridge__trust(ctx, &t, &cache);
	int rc = VEIL_ERR_INVAL;
	switch (kind) {
	case VP_VKIND_REQUEST: {
		/* A device's request or acknowledgement, signed for this client
		 * id. Its freshness and nonce are keyd's to judge (a request held
		 * by a bridge across a partition arrives late): no window here. */
		struct veil__devmsg m;
		rc = level ? veil__devmsg_verify(payload, len, level, &t, UINT32_MAX, &m) : VEIL_ERR_INVAL;
		break;
	}
	case VP_VKIND_BUNDLE: {
		/* Signed by a credential with the role veil-keyd, addressed to the
		 * client id of its topic (only that device could open it anyway). */
		struct veil__bundle_view v;
		rc = veil__bundle_verify(payload, len, &t, &v);
		if (rc == VEIL_OK && (!level || v.client_id_len != strlen(level) ||
		                      memcmp(v.client_id, level, v.client_id_len) != 0))
			rc = VEIL_ERR_MISADDRESSED;
		break;
	}
	case VP_VKIND_REVOCATION: {
		struct veil__revstmt_view v;
		rc = veil__revstmt_verify(payload, len, &t, &v);
		break;
	}
	case VP_VKIND_RELAY:
		/* Unsigned: nodes trust each other's records (relay.h); only
		 * that it is the entry its topic names is checked. */
		return vp_relay__check(level, payload, len);
	case VP_VKIND_NONE:
		break;
	}
	return rc == VEIL_OK ? NULL : reason(rc);
}
