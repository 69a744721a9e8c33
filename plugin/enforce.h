/*
 * Envelope enforcement on protected topics (pure logic, unit-testable, no
 * key): a PUBLISH on a topic whose rule says `encrypted` must carry a
 * well-formed Veil envelope whose sender id is the connected client's; with
 * `signed`, the signature must verify against the client's device key. A
 * declared bridge (bridge.h) forwards others' envelopes: for it only the
 * sender binding is skipped, and on `signed` topics the signature is
 * verified against the envelope's own credential, which must chain to a
 * trusted authority, be valid now, give the header's sender id and not be
 * revoked.
 */
#ifndef VP_ENFORCE_H
#define VP_ENFORCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/envelope.h"

struct veil__trust;
struct veil__credcache;

enum vp_refuse {
	VP_REFUSE_NONE = 0,
	VP_REFUSE_TOO_LARGE,      /* over plugin_opt_max_payload */
	VP_REFUSE_NO_IDENTITY,    /* client logged in without a credential */
	VP_REFUSE_NOT_ENVELOPE,   /* plaintext, truncated, unknown version, reserved flags, too large */
	VP_REFUSE_WRONG_SENDER,   /* header sender id is not the client's */
	VP_REFUSE_UNSIGNED,       /* topic requires a signature */
	VP_REFUSE_BAD_SIGNATURE,  /* signature does not verify with the client's key */
	VP_REFUSE_EMPTY,          /* zero-length, not retained (a retained one deletes) */
	VP_REFUSE_MALFORMED_CREDENTIAL, /* signed, but the embedded credential is malformed */
	/* bridged signed envelopes: the embedded credential (PROTOCOL.md 3) */
	VP_REFUSE_WRONG_AUTHORITY,      /* signed by an authority the plugin does not trust */
	VP_REFUSE_EXPIRED_CREDENTIAL,   /* expired */
	VP_REFUSE_CREDENTIAL_NOT_YET_VALID,
	VP_REFUSE_REVOKED               /* its id or client id is on the revocation list */
};

struct vp_enforce_in {
	const char *topic;
	const uint8_t *payload;
	size_t len;
	bool retain;
	uint8_t attrs;            /* VP_ATTR_* of the topic */
	size_t max_payload;       /* 0: no limit */
	bool has_identity;
	const uint8_t *sender_id; /* VEIL_SENDER_ID_BYTES, when has_identity */
	const uint8_t *device_pk; /* VEIL_PK_BYTES, when has_identity */
	bool bridge;              /* a declared bridge login: others' envelopes */
	const struct veil__trust *trust;   /* bridge: authorities, now, revocation */
	struct veil__credcache *credcache; /* bridge: verified credentials (may be NULL) */
};

enum vp_refuse vp_enforce__check(const struct vp_enforce_in *in);
/* Stable token for the audit log: "not-envelope", "wrong-sender", ... */
const char *vp_enforce__reason(enum vp_refuse r);

#endif
