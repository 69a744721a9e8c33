/*
 * One-call seal and open against a keyring (include/veil/message.h). The
 * order of checks in veil_message_open is part of the protocol's error
 * semantics (docs/PROTOCOL.md section 8): cheap structural checks first,
 * nothing is released to the caller until every check passed, and the
 * replay window only moves for messages that authenticated.
 */
#include <string.h>

#include <sodium.h>

#include "veil/message.h"
#include "credcache.h"
#include "internal.h"
#include "util.h"

int veil_message_seal(const struct veil_keyring *kr, const struct veil_sender *s, const char *topic,
                      const uint8_t *pt, size_t pt_len, bool force_sign, uint8_t *out, size_t out_cap,
                      size_t *out_len, bool *sealed)
{
	if (!kr || !s || !topic || (!pt && pt_len) || !out || !out_len)
		return VEIL_ERR_INVAL;
	if (!veil__topic_valid(topic))
		return VEIL_ERR_INVAL;
	struct veil_topic_policy pol;
	int rc = veil_keyring_policy(kr, topic, &pol);
	if (rc != VEIL_OK)
		return rc;
	if (!pol.send_key) {
		/* Plaintext-only filter (the parser refuses keyless filters otherwise). */
		if (!pol.allow_plaintext)
			return VEIL_ERR_NO_POLICY;
		if (out_cap < pt_len)
			return VEIL_ERR_INVAL;
		if (pt_len)
			memmove(out, pt, pt_len);
		*out_len = pt_len;
		if (sealed)
			*sealed = false;
		return VEIL_OK;
	}
	bool sign = pol.require_signature || force_sign;
	if (!s->identity || !s->seq || (sign && (!s->credential || !s->credential_len)))
		return VEIL_ERR_INVAL;
	struct veil_seal_params p = { 0 };
	p.key = pol.send_key;
	p.key_id = pol.send_key_id;
	p.has_kcv = true;
	p.kcv = pol.send_key_kcv;
	memcpy(p.sender, veil__identity_sender_id(s->identity), VEIL_SENDER_ID_BYTES);
	rc = veil_seq_next(s->seq, &p.seq);
	if (rc != VEIL_OK)
		return rc;
	if (sign) {
		p.signer = s->identity;
		p.credential = s->credential;
		p.credential_len = s->credential_len;
	}
	rc = veil_envelope_seal(&p, topic, pt, pt_len, out, out_cap, out_len);
	if (rc == VEIL_OK && sealed)
		*sealed = true;
	return rc;
}

/* A payload that does not even start like an envelope is plaintext; one
 * that starts with a small version byte is an envelope of another version. */
static int classify_parse_error(const uint8_t *in, size_t in_len, int rc)
{
	if (rc == VEIL_ERR_VERSION && in_len > 0 && in[0] != VEIL_ENVELOPE_VERSION && (in[0] == 0 || in[0] > 0x0f))
		return VEIL_ERR_PLAINTEXT;
	if (rc == VEIL_ERR_TRUNCATED && in_len > 0 && (in[0] == 0 || in[0] > 0x0f))
		return VEIL_ERR_PLAINTEXT;
	return rc;
}

int veil__envelope_verify_signer(const struct veil_envelope_view *v, const char *topic,
                                 const uint8_t (*authorities)[VEIL_PK_BYTES], size_t n_authorities, uint64_t now,
                                 struct veil__credcache *cache, struct veil_credential *cred)
{
	if (!v || !topic || !cred)
		return VEIL_ERR_INVAL;
	if (!(v->h.flags & VEIL_FLAG_SIGNED))
		return VEIL_ERR_UNSIGNED;
	/* A cached verification counts only under an authority the caller
	 * still trusts: it does not outlive a reload that dropped it. */
	int rc = veil__credential_verify_cached(cache, v->credential, v->credential_len, authorities, n_authorities,
	                                        now, cred, NULL);
	if (rc != VEIL_OK)
		return rc;
	uint8_t sid[VEIL_SENDER_ID_BYTES];
	veil_sender_id(cred->device_pk, sid);
	if (sodium_memcmp(sid, v->h.sender, sizeof(sid)) != 0)
		return VEIL_ERR_SENDER;
	return veil_envelope_verify_signature(v, topic, cred->device_pk);
}

static int check_signature(const struct veil_keyring *kr, struct veil_replay *replay,
                           const struct veil_envelope_view *v, const char *topic, uint64_t now,
                           struct veil_open_info *info)
{
	const uint8_t(*auth)[VEIL_PK_BYTES] = NULL;
	size_t nauth = veil_keyring_authorities(kr, &auth);
	struct veil_credential cred;
	int rc = veil__envelope_verify_signer(v, topic, auth, nauth, now, veil__replay_credcache(replay), &cred);
	if (rc != VEIL_OK)
		return rc;
	memcpy(info->client_id, cred.client_id, sizeof(info->client_id));
	memcpy(info->credential_id, cred.id, sizeof(info->credential_id));
	return VEIL_OK;
}

/* Replay windows are kept per (key id, sender id), in one partition per key
 * (replay.h), not per sender id. An unsigned envelope is authenticated by
 * its topic key alone, so a holder of one unsigned topic's key could
 * otherwise seal under any sender id with a huge sequence and push that
 * sender's only window forward: its real messages on every topic would
 * then be refused as replays; or fill a shared table with forged senders
 * until another key's windows had to go. A partition only sees messages
 * that the holders of its key could forge anyway, and it never evicts. */

int veil_message_open(const struct veil_keyring *kr, struct veil_replay *replay, const char *topic,
                      const uint8_t *in, size_t in_len, uint64_t now, uint8_t *out, size_t out_cap,
                      size_t *out_len, struct veil_open_info *info)
{
	return veil__message_open_rev(kr, replay, NULL, topic, in, in_len, now, out, out_cap, out_len, info);
}

int veil__message_open_rev(const struct veil_keyring *kr, struct veil_replay *replay,
                           const struct veil__revoked *rev, const char *topic, const uint8_t *in, size_t in_len,
                           uint64_t now, uint8_t *out, size_t out_cap, size_t *out_len,
                           struct veil_open_info *info)
{
	struct veil_open_info scratch;
	if (!info)
		info = &scratch;
	if (!kr || !topic || (!in && in_len) || !out_len || (!out && in_len) || out_cap < in_len)
		return VEIL_ERR_INVAL;
	memset(info, 0, sizeof(*info));
	struct veil_topic_policy pol;
	int rc = veil__keyring_policy_at(kr, topic, now, &pol);
	/* A key service scope with no epoch to send with can still receive. */
	if (rc != VEIL_OK && rc != VEIL_ERR_NO_KEY)
		return rc;
	struct veil_envelope_view v;
	rc = veil_envelope_parse(in, in_len, &v);
	if (rc != VEIL_OK) {
		if (pol.allow_plaintext) {
			if (in_len)
				memmove(out, in, in_len);
			*out_len = in_len;
			info->plaintext = true;
			return VEIL_OK;
		}
		return classify_parse_error(in, in_len, rc);
	}
	bool is_signed = (v.h.flags & VEIL_FLAG_SIGNED) != 0;
	if (pol.require_signature && !is_signed)
		return VEIL_ERR_UNSIGNED;
	const uint8_t *key = NULL;
	uint16_t kcv = 0;
	rc = veil__keyring_find_key_kcv(kr, topic, v.h.key_id, now, &key, &kcv);
	if (rc != VEIL_OK)
		return rc;
	if (is_signed) {
		rc = check_signature(kr, replay, &v, topic, now, info);
		if (rc != VEIL_OK)
			return rc;
	}
	/* Authenticate before the replay check: only an authentic duplicate is
	 * a replay; a moved or tampered copy of a seen message is reported as
	 * what it is (decrypt-failed), and never moves the window. */
	size_t n = 0;
	uint8_t *dst = out;
	/* In-place use (out == in) is allowed: decrypt aside, then copy down. */
	bool overlap = out < in + in_len && in < out + out_cap;
	if (overlap && !(dst = sodium_malloc(v.ciphertext_len)))
		return VEIL_ERR_NOMEM;
	rc = veil__envelope_open_kcv(&v, topic, key, kcv, dst, overlap ? v.ciphertext_len : out_cap, &n);
	if (overlap) {
		if (rc == VEIL_OK)
			memmove(out, dst, n);
		sodium_free(dst);
	}
	if (rc != VEIL_OK)
		return rc;
	/* Revoked by the key service's statements (the receiver's own view, even
	 * through a broker that does not check): a signed envelope by its
	 * credential, an unsigned one by its sender id. After authentication,
	 * so a forgery is reported as what it is. */
	if (rev && ((is_signed && rev->credential && rev->credential(rev->ctx, info->credential_id)) ||
	            (!is_signed && rev->sender && rev->sender(rev->ctx, v.h.sender)))) {
		sodium_memzero(out, n);
		return VEIL_ERR_REVOKED;
	}
	if (replay && (rc = veil_replay_accept(replay, v.h.key_id, v.h.sender, v.h.seq)) != VEIL_OK) {
		sodium_memzero(out, n);
		return rc;
	}
	memcpy(info->sender, v.h.sender, VEIL_SENDER_ID_BYTES);
	info->seq = v.h.seq;
	info->key_id = v.h.key_id;
	info->is_signed = is_signed;
	*out_len = n;
	return VEIL_OK;
}
