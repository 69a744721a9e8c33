/*
 * Envelope enforcement (see enforce.h). The broker holds no topic key, so it
 * checks what it can without one: structure, the sender binding and, when
 * required, the Ed25519 signature that covers header, topic and ciphertext.
 */
#include <sodium.h>

#include "enforce.h"
#include "topic.h"

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
	if (!in->has_identity || !in->sender_id || !in->device_pk)
		return VP_REFUSE_NO_IDENTITY;
	if (in->len == 0)
		return VP_REFUSE_EMPTY;
	struct veil_envelope_view v;
	if (!in->payload || veil_envelope_parse(in->payload, in->len, &v) != VEIL_OK)
		return VP_REFUSE_NOT_ENVELOPE;
	if (sodium_memcmp(v.h.sender, in->sender_id, VEIL_SENDER_ID_BYTES) != 0)
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
	}
	return "unknown";
}
