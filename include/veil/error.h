/* Veil error codes. The numbers are frozen: never renumber, only append. */
#ifndef VEIL_ERROR_H
#define VEIL_ERROR_H

#include "veil/export.h"

#ifdef __cplusplus
extern "C" {
#endif

enum veil_err {
	VEIL_OK = 0,
	/* caller bugs */
	VEIL_ERR_INVAL = -1,            /* invalid argument (NULL, too small buffer, bad size) */
	VEIL_ERR_NOMEM = -2,            /* allocation failed */
	/* untrusted input */
	VEIL_ERR_AUTH = -3,             /* authentication refused (generic) */
	VEIL_ERR_IO = -4,               /* file or socket I/O failed, see errno */
	VEIL_ERR_PARSE = -5,            /* malformed text (config, keyring, key file) */
	VEIL_ERR_TRUNCATED = -6,        /* binary input shorter than its format requires */
	VEIL_ERR_TOO_LARGE = -7,        /* input larger than the format allows */
	VEIL_ERR_VERSION = -8,          /* unknown format version or flags */
	VEIL_ERR_UNKNOWN_KEY = -9,      /* key id not in the keyring */
	VEIL_ERR_WRONG_TOPIC = -10,     /* key id known, but not for this topic */
	VEIL_ERR_WRONG_KEY = -11,       /* key check value mismatch: same id, other key bytes */
	VEIL_ERR_DECRYPT = -12,         /* AEAD authentication failed: tampered or re-routed */
	VEIL_ERR_BAD_SIGNATURE = -13,   /* Ed25519 signature does not verify */
	VEIL_ERR_SENDER = -14,          /* sender id does not match the signer / client */
	VEIL_ERR_REPLAY = -15,          /* sequence already seen or older than the window */
	VEIL_ERR_EXPIRED = -16,         /* credential expired */
	VEIL_ERR_NOT_YET_VALID = -17,   /* credential issued in the future */
	VEIL_ERR_WRONG_AUTHORITY = -18, /* signed by an authority we do not trust */
	VEIL_ERR_CLIENT_ID = -19,       /* credential or token for another client id */
	VEIL_ERR_STALE = -20,           /* token timestamp outside the freshness window */
	VEIL_ERR_NO_POLICY = -21,       /* topic has no keyring entry and plaintext is not allowed */
	VEIL_ERR_UNSIGNED = -22,        /* policy requires a signature, message has none */
	VEIL_ERR_PERM = -23,            /* secret file readable by group or others */
	VEIL_ERR_MQTT = -24,            /* the MQTT library reported an error */
	VEIL_ERR_STATE = -25,           /* sequence state file unusable */
	VEIL_ERR_PLAINTEXT = -26,       /* not an envelope on a topic that requires one */
	VEIL_ERR_REVOKED = -27,         /* credential or client revoked */
	VEIL_ERR_NOT_FOUND = -28,       /* entry not found (password file, ...) */
	VEIL_ERR_TIMEOUT = -29,         /* operation timed out */
	VEIL_ERR_REPLAY_FULL = -30,     /* no replay window free for a new sender under this key (none evicted) */
	VEIL_ERR_RESERVED_FLAGS = -31,  /* reserved flag bits set */
	VEIL_ERR_EMPTY = -32,           /* zero-length payload where an envelope is required */
	VEIL_ERR_NO_KEY = -33,          /* no usable key (epoch) to seal with: never falls back */
	VEIL_ERR_OUTDATED = -34,        /* not newer than what is held (bundle, device message, statement) */
	VEIL_ERR_MISADDRESSED = -35,    /* addressed to another device */
	VEIL_ERR_WRONG_RECEIVE_KEY = -36, /* sealed to a receive key this device does not hold */
	VEIL_ERR_NO_NONCE_ECHO = -37,   /* does not echo the nonce of the device's latest request */
	VEIL_ERR_WRONG_ROLE = -38,      /* signer's credential lacks the required role */
	VEIL_ERR_WRONG_AUDIENCE = -39,  /* token for another deployment */
	VEIL_ERR_SUPERSEDED = -40,      /* key epoch superseded (rekey after a revocation) */
	VEIL_ERR_CLEAR_REFUSED = -41    /* sending in clear refused: the policy says plaintext, the client does not allow it */
};

/* Static English text for an error code; never NULL. */
VEIL_EXPORT const char *veil_strerror(int err);
/* Short stable token (e.g. "replay", "bad-signature") for audit logs and counters. */
VEIL_EXPORT const char *veil_errname(int err);

#ifdef __cplusplus
}
#endif
#endif
