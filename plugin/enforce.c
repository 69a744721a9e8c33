/*
 * Envelope enforcement (see enforce.h). The broker holds no topic key, so it
 * checks what it can without one: structure, the sender binding and, when
 * required, the Ed25519 signature that covers header, topic and ciphertext.
 */
#include <sodium.h>

#include "../core/bundle.h"   /* struct veil__trust */
#include "../core/internal.h" /* the one signer check, shared with receivers */
#include "enforce.h"
#include "topic.h"

/* A bridged envelope on a `signed` topic: signed by whom its credential
 * says, under a trusted authority, valid now, not revoked (PROTOCOL.md
 * section 8, step 5, as receivers check it). */
static enum vp_refuse bridged_signer(const struct vp_enforce_in *in, const struct veil_envelope_view *v)
{
	if (!(v->h.flags & VEIL_FLAG_SIGNED))
		return VP_REFUSE_UNSIGNED;
	if (!in->trust)
		return VP_REFUSE_WRONG_AUTHORITY; /* nothing to trust: fail closed */
	struct veil_credential c;
	int rc = veil__envelope_verify_signer(v, in->topic, in->trust->authorities, in->trust->n_authorities,
	                                      in->trust->now, in->credcache, &c);
	switch (rc) {
	case VEIL_OK:
		break;
	case VEIL_ERR_WRONG_AUTHORITY: return VP_REFUSE_WRONG_AUTHORITY;
	case VEIL_ERR_EXPIRED: return VP_REFUSE_EXPIRED_CREDENTIAL;
	case VEIL_ERR_NOT_YET_VALID: return VP_REFUSE_CREDENTIAL_NOT_YET_VALID;
	case VEIL_ERR_SENDER: return VP_REFUSE_WRONG_SENDER;
	default: return VP_REFUSE_BAD_SIGNATURE;
	}
	if (in->trust->revoked && in->trust->revoked(&c, in->trust->revoked_ctx))
		return VP_REFUSE_REVOKED;
	return VP_REFUSE_NONE;
}

enum vp_refuse vp_enforce__check(const struct vp_enforce_in *in)
{
	if (!in)
		return VP_REFUSE_NOT_ENVELOPE;
	if (in->max_payload && in->len > in->max_payload)
		return VP_REFUSE_TOO_LARGE;
	if (!(in->attrs & (VP_ATTR_ENCRYPTED | VP_ATTR_SIGNED)))
		return VP_REFUSE_NONE;
	/* An empty retained PUBLISH deletes the retained message: it delivers
	 * nothing readable, and any allowed writer could overwrite it anyway. */
	if (in->len == 0 && in->retain)
		return VP_REFUSE_NONE;
	if (!in->bridge && (!in->has_identity || !in->sender_id || !in->device_pk))
		return VP_REFUSE_NO_IDENTITY;
	if (in->len == 0)
		return VP_REFUSE_EMPTY;
	struct veil_envelope_view v;
	if (!in->payload || veil_envelope_parse(in->payload, in->len, &v) != VEIL_OK)
		return VP_REFUSE_NOT_ENVELOPE;
	/* The one check a bridge skips: it forwards others' envelopes. */
	if (!in->bridge && sodium_memcmp(v.h.sender, in->sender_id, VEIL_SENDER_ID_BYTES) != 0)
		return VP_REFUSE_WRONG_SENDER;
	/* veil_envelope_parse checks only the signed trailer's lengths (the
	 * receiver reports credential errors at step 5 of PROTOCOL.md section
	 * 8). A signed envelope whose credential is not even well formed can
	 * never be opened by anyone: refuse it on every protected topic. */
	if (v.h.flags & VEIL_FLAG_SIGNED) {
		struct veil_credential c;
		if (veil_credential_parse(v.credential, v.credential_len, &c) != VEIL_OK)
			return VP_REFUSE_MALFORMED_CREDENTIAL;
	}
	if ((in->attrs & VP_ATTR_SIGNED) && in->bridge)
		return bridged_signer(in, &v);
	if (in->attrs & VP_ATTR_SIGNED) {
		int rc = veil_envelope_verify_signature(&v, in->topic, in->device_pk);
		if (rc == VEIL_ERR_UNSIGNED)
			return VP_REFUSE_UNSIGNED;
		if (rc != VEIL_OK)
			return VP_REFUSE_BAD_SIGNATURE;
	}
	return VP_REFUSE_NONE;
}

const char *vp_enforce__reason(enum vp_refuse r)
{
	switch (r) {
	case VP_REFUSE_NONE:
		return "none";
	case VP_REFUSE_TOO_LARGE:
		return "too-large";
	case VP_REFUSE_NO_IDENTITY:
		return "no-identity";
	case VP_REFUSE_NOT_ENVELOPE:
		return "not-envelope";
	case VP_REFUSE_WRONG_SENDER:
		return "wrong-sender";
	case VP_REFUSE_UNSIGNED:
		return "unsigned";
	case VP_REFUSE_BAD_SIGNATURE:
		return "bad-signature";
	case VP_REFUSE_EMPTY:
		return "empty-payload";
	case VP_REFUSE_MALFORMED_CREDENTIAL:
		return "malformed-credential";
	case VP_REFUSE_WRONG_AUTHORITY:
		return "wrong-authority";
	case VP_REFUSE_EXPIRED_CREDENTIAL:
		return "expired-credential";
	case VP_REFUSE_CREDENTIAL_NOT_YET_VALID:
		return "credential-not-yet-valid";
	case VP_REFUSE_REVOKED:
		return "revoked";
	}
	return "unknown";
}
