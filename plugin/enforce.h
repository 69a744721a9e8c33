/*
 * Envelope enforcement on protected topics (pure logic, unit-testable, no
 * key): a PUBLISH on a topic whose rule says `encrypted` must carry a
 * well-formed Veil envelope whose sender id is the connected client's; with
 * `signed`, the signature must verify against the client's device key.
 */
#ifndef VP_ENFORCE_H
#define VP_ENFORCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/envelope.h"

enum vp_refuse {
	VP_REFUSE_NONE = 0,
	VP_REFUSE_TOO_LARGE,      /* over plugin_opt_max_payload */
	VP_REFUSE_NO_IDENTITY,    /* client logged in without a credential */
	VP_REFUSE_NOT_ENVELOPE,   /* plaintext, truncated, unknown version, reserved flags, too large */
	VP_REFUSE_WRONG_SENDER,   /* header sender id is not the client's */
	VP_REFUSE_UNSIGNED,       /* topic requires a signature */
	VP_REFUSE_BAD_SIGNATURE,  /* signature does not verify with the client's key */
	VP_REFUSE_EMPTY,          /* zero-length, not retained (a retained one deletes) */
	VP_REFUSE_MALFORMED_CREDENTIAL /* signed, but the embedded credential is malformed */
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
};

enum vp_refuse vp_enforce__check(const struct vp_enforce_in *in);
/* Stable token for the audit log: "not-envelope", "wrong-sender", ... */
const char *vp_enforce__reason(enum vp_refuse r);

#endif
