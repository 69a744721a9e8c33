/*
 * Identities, credentials and login tokens (docs/PROTOCOL.md, sections 2-4).
 *
 * An identity is an Ed25519 key pair; its secret lives in sodium_malloc'd
 * memory and is wiped by veil_identity_free. A credential is a binary blob
 * an authority signs: client id, device public key, validity, roles. A token
 * is what a device sends at CONNECT to prove it holds the credential's key.
 * Verification needs only public keys, so the broker stores no secret.
 */
#ifndef VEIL_IDENTITY_H
#define VEIL_IDENTITY_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "veil/export.h"
#include "veil/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VEIL_PK_BYTES 32U
#define VEIL_SEED_BYTES 32U
#define VEIL_SIG_BYTES 64U
#define VEIL_SENDER_ID_BYTES 8U
#define VEIL_AUTHORITY_ID_BYTES 8U
#define VEIL_CREDENTIAL_ID_BYTES 16U
#define VEIL_CLIENT_ID_MAX 128U           /* bytes, without the NUL */
#define VEIL_ROLES_MAX 255U               /* bytes, comma separated, without the NUL */
#define VEIL_CREDENTIAL_FIXED 75U         /* bytes before the client id (docs/PROTOCOL.md 3) */
#define VEIL_CREDENTIAL_MAX (VEIL_CREDENTIAL_FIXED + VEIL_CLIENT_ID_MAX + 1U + VEIL_ROLES_MAX + VEIL_SIG_BYTES)
#define VEIL_TOKEN_NONCE_BYTES 16U
#define VEIL_AUDIENCE_MAX 128U            /* bytes of a deployment's name, without the NUL */
/* The largest token of version 1, and of any version (2 adds the audience). */
#define VEIL_TOKEN_V1_MAX (1U + 8U + VEIL_TOKEN_NONCE_BYTES + 2U + VEIL_CREDENTIAL_MAX + VEIL_SIG_BYTES)
#define VEIL_TOKEN_MAX (VEIL_TOKEN_V1_MAX + 1U + VEIL_AUDIENCE_MAX)
#define VEIL_AUTH_METHOD "veil-v1"        /* MQTT 5 Authentication Method */
#define VEIL_PASSWORD_PREFIX "veil1:"     /* MQTT 3.1.1 password = prefix + base64(token) */
/* Worst-case password string length including the NUL. */
#define VEIL_PASSWORD_MAX (sizeof(VEIL_PASSWORD_PREFIX) + ((VEIL_TOKEN_MAX + 2U) / 3U) * 4U + 1U)

VEIL_EXPORT size_t veil_pk_bytes(void);
VEIL_EXPORT size_t veil_sender_id_bytes(void);

/* An Ed25519 identity (device or authority). Opaque secret part. */
struct veil_identity;

VEIL_EXPORT int veil_identity_generate(struct veil_identity **out);
/* Deterministic, for test vectors. */
VEIL_EXPORT int veil_identity_from_seed(const uint8_t seed[VEIL_SEED_BYTES], struct veil_identity **out);
/* Secret file: "veil-identity-v1 <base64 seed>\n"; must not be group/world readable
 * (VEIL_ERR_PERM). errbuf (may be NULL) receives "path: reason". */
VEIL_EXPORT int veil_identity_load(const char *path, struct veil_identity **out, char *errbuf, size_t errlen);
/* Written with mode 0600, refuses to overwrite an existing file. */
VEIL_EXPORT int veil_identity_save(const struct veil_identity *id, const char *path);
VEIL_EXPORT void veil_identity_public(const struct veil_identity *id, uint8_t pk[VEIL_PK_BYTES]);
VEIL_EXPORT void veil_identity_free(struct veil_identity **id);

/* Public key file: "veil-public-key-v1 <base64 pk>\n" (one or more lines; '#' comments).
 * Loads up to max keys; *n receives the count. */
VEIL_EXPORT int veil_public_keys_load(const char *path, uint8_t (*pks)[VEIL_PK_BYTES], size_t max, size_t *n,
                                      char *errbuf, size_t errlen);
VEIL_EXPORT int veil_public_key_save(const uint8_t pk[VEIL_PK_BYTES], const char *path);

/* Sender id: first 8 bytes of BLAKE2b-256("veil-sender-v1" || pk). */
VEIL_EXPORT void veil_sender_id(const uint8_t pk[VEIL_PK_BYTES], uint8_t out[VEIL_SENDER_ID_BYTES]);
/* Authority id: first 8 bytes of BLAKE2b-256("veil-authority-v1" || pk). */
VEIL_EXPORT void veil_authority_id(const uint8_t pk[VEIL_PK_BYTES], uint8_t out[VEIL_AUTHORITY_ID_BYTES]);

/*
 * Names (docs/PROTOCOL.md section 3), the one rule of the broker plugin,
 * the credential issuer and the CLI. A username, and the client id of any
 * login, is 1..VEIL_CLIENT_ID_MAX bytes of well-formed UTF-8 without
 * control characters (C0, DEL, C1), without '+' or '#', and without a space
 * at either end. A credential's client id is such a name without '/', so
 * it is always exactly one topic level.
 *
 *   if (!veil_client_id_valid(argv[1]))
 *           fprintf(stderr, "not a client id a credential can carry\n");
 */
VEIL_EXPORT bool veil_client_id_valid(const char *client_id);
VEIL_EXPORT bool veil_username_valid(const char *username);
/* A deployment's name, the audience of its tokens (docs/PROTOCOL.md
 * section 4): the rule of a credential's client id (a name without '/'). */
VEIL_EXPORT bool veil_audience_valid(const char *audience);

/* Decoded credential. Strings are NUL terminated. */
struct veil_credential {
	uint8_t id[VEIL_CREDENTIAL_ID_BYTES];
	uint8_t authority_id[VEIL_AUTHORITY_ID_BYTES];
	uint64_t issued_at;   /* unix seconds */
	uint64_t expires_at;  /* unix seconds */
	uint8_t device_pk[VEIL_PK_BYTES];
	char client_id[VEIL_CLIENT_ID_MAX + 1];
	char roles[VEIL_ROLES_MAX + 1];
};

/* Sign a credential. Fields taken from *c except id (random, written back) and
 * authority_id (derived from the authority). out must hold VEIL_CREDENTIAL_MAX. */
VEIL_EXPORT int veil_credential_issue(const struct veil_identity *authority, struct veil_credential *c,
                                      uint8_t *out, size_t out_cap, size_t *out_len);
/* Structure only, no signature check (for display and for fuzzing). */
VEIL_EXPORT int veil_credential_parse(const uint8_t *buf, size_t len, struct veil_credential *out);
/* Full check: structure, trusted authority (by id among pks), signature, validity at now.
 * Errors: TRUNCATED/TOO_LARGE/VERSION/PARSE, WRONG_AUTHORITY, BAD_SIGNATURE, EXPIRED, NOT_YET_VALID. */
VEIL_EXPORT int veil_credential_verify(const uint8_t *buf, size_t len, const uint8_t (*authorities)[VEIL_PK_BYTES],
                                       size_t n_authorities, uint64_t now, struct veil_credential *out)
	VEIL_WARN_UNUSED;
/* Credential file: "veil-credential-v1 <base64>\n". */
VEIL_EXPORT int veil_credential_load(const char *path, uint8_t *out, size_t out_cap, size_t *out_len,
                                     char *errbuf, size_t errlen);
VEIL_EXPORT int veil_credential_save(const uint8_t *cred, size_t len, const char *path);

/* Login token, signed by the device key over the client id. now = unix seconds.
 * Version 1: bound to no deployment (docs/PROTOCOL.md section 4). */
VEIL_EXPORT int veil_token_create(const struct veil_identity *device, const uint8_t *cred, size_t cred_len,
                                  const char *client_id, uint64_t now, uint8_t *out, size_t out_cap,
                                  size_t *out_len);
/* The same bound to a deployment: audience NULL gives version 1, byte for
 * byte what veil_token_create gives; a name (veil_audience_valid, else
 * VEIL_ERR_INVAL) gives version 2, whose signature covers it. out holds
 * VEIL_TOKEN_MAX.
 *
 *   rc = veil_token_create_for(dev, cred, cred_len, "sensor-1", "factory-eu", (uint64_t)time(NULL),
 *                              tok, sizeof(tok), &tok_len);
 */
VEIL_EXPORT int veil_token_create_for(const struct veil_identity *device, const uint8_t *cred, size_t cred_len,
                                      const char *client_id, const char *audience, uint64_t now, uint8_t *out,
                                      size_t out_cap, size_t *out_len);
struct veil_token {
	uint64_t timestamp;
	uint8_t nonce[VEIL_TOKEN_NONCE_BYTES];
	struct veil_credential cred;     /* verified credential */
};
/* Verify a token for client_id: credential (authority, validity), credential client id,
 * device signature, |now - timestamp| <= window_s. Replay (nonce reuse) is the caller's
 * cache. Errors as veil_credential_verify plus CLIENT_ID, BAD_SIGNATURE, STALE. As a
 * verifier without an audience: a version 2 token is WRONG_AUDIENCE. */
VEIL_EXPORT int veil_token_verify(const uint8_t *tok, size_t len, const char *client_id,
                                  const uint8_t (*authorities)[VEIL_PK_BYTES], size_t n_authorities,
                                  uint64_t now, uint32_t window_s, struct veil_token *out) VEIL_WARN_UNUSED;
/* veil_token_verify at a deployment named audience (NULL: none), checked
 * right after the structure, before anything else (docs/PROTOCOL.md
 * section 4): a version 2 token must name exactly this audience, else
 * WRONG_AUDIENCE (also when audience is NULL). A version 1 token names no
 * deployment and passes this step: whether a deployment still accepts one
 * is its own policy (veil_token_audience tells the version). */
VEIL_EXPORT int veil_token_verify_for(const uint8_t *tok, size_t len, const char *client_id, const char *audience,
                                      const uint8_t (*authorities)[VEIL_PK_BYTES], size_t n_authorities,
                                      uint64_t now, uint32_t window_s, struct veil_token *out) VEIL_WARN_UNUSED;
/* Structure only: the token's version (1 or 2) and its audience as a
 * string ("" for version 1). Errors as veil_token_parse. */
VEIL_EXPORT int veil_token_audience(const uint8_t *tok, size_t len, unsigned *version,
                                    char audience[VEIL_AUDIENCE_MAX + 1]);
/* Structure of a token (either version) only: timestamp, nonce, and where its
 * credential bytes are (pointers into tok). For a verifier that caches
 * verified credentials. */
VEIL_EXPORT int veil_token_parse(const uint8_t *tok, size_t len, uint64_t *timestamp,
                                 uint8_t nonce[VEIL_TOKEN_NONCE_BYTES], const uint8_t **cred, size_t *cred_len);
/* veil_token_verify for a token whose credential bytes the caller already
 * verified (same bytes, same trusted authorities): checks structure,
 * freshness, the credential's validity at now, client id and the device
 * signature, without verifying the authority's signature again. As a
 * verifier without an audience (veil_token_verify). */
VEIL_EXPORT int veil_token_verify_with(const uint8_t *tok, size_t len, const char *client_id,
                                       const struct veil_credential *verified, uint64_t now, uint32_t window_s,
                                       struct veil_token *out) VEIL_WARN_UNUSED;

/* Password form for MQTT 3.1.1: VEIL_PASSWORD_PREFIX + base64 (original, padded). */
VEIL_EXPORT int veil_token_to_password(const uint8_t *tok, size_t len, char *out, size_t out_cap);
/* Returns VEIL_ERR_PARSE if the password is not in Veil form (so callers can fall back). */
VEIL_EXPORT int veil_password_to_token(const char *password, uint8_t *out, size_t out_cap, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
