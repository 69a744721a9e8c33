/* Error texts and short names for enum veil_err, plus library init. */
#include <sodium.h>

#include "veil/veil.h"

static const struct {
	int code;
	const char *name;
	const char *text;
} errors[] = {
	{ VEIL_OK, "ok", "success" },
	{ VEIL_ERR_INVAL, "invalid-argument", "invalid argument" },
	{ VEIL_ERR_NOMEM, "no-memory", "out of memory" },
	{ VEIL_ERR_AUTH, "auth", "authentication refused" },
	{ VEIL_ERR_IO, "io", "input/output error" },
	{ VEIL_ERR_PARSE, "parse", "malformed input" },
	{ VEIL_ERR_TRUNCATED, "truncated", "input truncated" },
	{ VEIL_ERR_TOO_LARGE, "too-large", "input too large" },
	{ VEIL_ERR_VERSION, "unknown-version", "unknown format version or flags" },
	{ VEIL_ERR_UNKNOWN_KEY, "unknown-key", "key id not in the keyring" },
	{ VEIL_ERR_WRONG_TOPIC, "wrong-topic", "key not valid for this topic (message moved to another topic?)" },
	{ VEIL_ERR_WRONG_KEY, "wrong-key", "key check value mismatch (different key under the same id)" },
	{ VEIL_ERR_DECRYPT, "decrypt-failed", "authentication tag mismatch (tampered or re-routed)" },
	{ VEIL_ERR_BAD_SIGNATURE, "bad-signature", "signature does not verify" },
	{ VEIL_ERR_SENDER, "wrong-sender", "sender id does not match the signer or client" },
	{ VEIL_ERR_REPLAY, "replay", "message replayed or too old for the replay window" },
	{ VEIL_ERR_EXPIRED, "expired-credential", "credential expired" },
	{ VEIL_ERR_NOT_YET_VALID, "credential-not-yet-valid", "credential not yet valid" },
	{ VEIL_ERR_WRONG_AUTHORITY, "wrong-authority", "signed by an untrusted authority" },
	{ VEIL_ERR_CLIENT_ID, "wrong-client-id", "credential or token issued for another client id" },
	{ VEIL_ERR_STALE, "stale-token", "token outside the freshness window" },
	{ VEIL_ERR_NO_POLICY, "no-policy", "no keyring entry for this topic and plaintext not allowed" },
	{ VEIL_ERR_UNSIGNED, "unsigned", "signature required but missing" },
	{ VEIL_ERR_PERM, "insecure-permissions", "secret file is accessible by group or others" },
	{ VEIL_ERR_MQTT, "mqtt", "MQTT client error" },
	{ VEIL_ERR_STATE, "state", "sequence state file unusable" },
	{ VEIL_ERR_PLAINTEXT, "not-envelope", "plaintext where an envelope is required" },
	{ VEIL_ERR_REVOKED, "revoked", "credential or client revoked" },
	{ VEIL_ERR_NOT_FOUND, "not-found", "not found" },
	{ VEIL_ERR_TIMEOUT, "timeout", "operation timed out" },
	{ VEIL_ERR_REPLAY_FULL, "replay-state-full", "no replay window free for a new sender under this key" },
	{ VEIL_ERR_RESERVED_FLAGS, "reserved-flags", "reserved flag bits set" },
	{ VEIL_ERR_EMPTY, "empty-payload", "zero-length payload where an envelope is required" },
	{ VEIL_ERR_NO_KEY, "no-key", "no usable key for this topic now" },
	{ VEIL_ERR_OUTDATED, "outdated", "not newer than what is already held" },
	{ VEIL_ERR_MISADDRESSED, "misaddressed", "addressed to another device" },
	{ VEIL_ERR_WRONG_RECEIVE_KEY, "wrong-receive-key", "sealed to a receive key this device does not hold" },
	{ VEIL_ERR_NO_NONCE_ECHO, "no-nonce-echo", "does not echo the nonce of the latest request" },
	{ VEIL_ERR_WRONG_ROLE, "wrong-role", "signer's credential lacks the required role" },
	{ VEIL_ERR_WRONG_AUDIENCE, "wrong-audience", "token issued for another deployment" },
	{ VEIL_ERR_SUPERSEDED, "superseded", "key epoch superseded by a rekey" },
	{ VEIL_ERR_CLEAR_REFUSED, "clear-refused", "sending in clear refused: the policy says plaintext and it is not allowed" },
};

const char *veil_strerror(int err)
{
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
		if (errors[i].code == err)
			return errors[i].text;
	}
	return "unknown error";
}

const char *veil_errname(int err)
{
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
		if (errors[i].code == err)
			return errors[i].name;
	}
	return "unknown";
}

int veil_init(void)
{
	/* sodium_init fails only when no randomness source can be opened. */
	return sodium_init() < 0 ? VEIL_ERR_IO : VEIL_OK;
}

const char *veil_version(void)
{
	return VEIL_VERSION_STRING;
}

unsigned veil_version_number(void)
{
	return VEIL_VERSION_NUMBER;
}
