/*
 * The key service's wire formats (docs/PROTOCOL.md sections 10-13), shared by
 * veil-keyd (keyd/) and the device side of the client session core
 * (client-shim/session.c). Internal to veil_core: not installed, not exported
 * from libveil.
 *
 *   device message  $veil/v1/req/<client id>   device -> keyd: request or ack,
 *                   signed by the device, carries its credential and a fresh
 *                   X25519 receive key
 *   bundle          $veil/v1/bundle/<client id> keyd -> device: topic-key grants
 *                   sealed to that receive key, signed by keyd
 *   revocation      $veil/v1/revocation         keyd -> all: revoked credential
 *                   ids and sender ids, signed by keyd
 *
 * All integers big endian. Every parser is bounded before it reads a length,
 * refuses trailing bytes, and hands out pointers into the caller's buffer
 * (no allocation); only bundle opening allocates, in sodium_malloc'd memory.
 *
 * What these functions do NOT decide (the caller's state, applied with the
 * fields they hand back):
 *   keyd:   revoked (veil__trust.revoked), nonce replay, "not newer than the
 *           newest accepted message of this credential" (outdated);
 *   device: which receive secrets it holds, its held bundle version and
 *           whether a nonce echo is required (veil__bundle_self), the union of
 *           revocation entries and statement versions.
 */
#ifndef VEIL_CORE_BUNDLE_H
#define VEIL_CORE_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/envelope.h"
#include "veil/keyring.h"
#include "veil/identity.h"

/* Reserved topics (docs/PROTOCOL.md section 10). */
#define VEIL__TOPIC_REQ_PREFIX "$veil/v1/req/"       /* + client id; QoS 1, not retained */
#define VEIL__TOPIC_BUNDLE_PREFIX "$veil/v1/bundle/" /* + client id; QoS 1, retained */
#define VEIL__TOPIC_REVOCATION "$veil/v1/revocation" /* QoS 1, retained */
/* The role a credential needs to sign bundles and revocation statements. */
#define VEIL__ROLE_KEYD "veil-keyd"

#define VEIL__KS_VERSION 0x01U
#define VEIL__KIND_REQUEST 0x01U
#define VEIL__KIND_ACK 0x02U
#define VEIL__KIND_BUNDLE 0x03U
#define VEIL__KIND_REVOCATION 0x04U

#define VEIL__X25519_BYTES 32U          /* receive and ephemeral keys, public and secret */
#define VEIL__DEVMSG_NONCE_BYTES 16U
#define VEIL__DEVMSG_FIXED 68U          /* bytes before the credential */
#define VEIL__DEVMSG_MAX (VEIL__DEVMSG_FIXED + VEIL_CREDENTIAL_MAX + VEIL_SIG_BYTES)

#define VEIL__GRANT_SCOPE_MAX 255U
#define VEIL__GRANT_KEY_ID_MIN VEIL_GRANTED_KEY_ID_MIN /* keyd's key ids; static keyrings use the ids below */
#define VEIL__GRANT_SIGNED 0x01U         /* the scope's policy requires signatures */
#define VEIL__GRANT_MAY_SEND 0x02U       /* the device may seal with this key */
#define VEIL__GRANT_SUPERSEDES 0x04U     /* older epochs (smaller key ids) of this scope are superseded */
#define VEIL__GRANT_FLAGS (VEIL__GRANT_SIGNED | VEIL__GRANT_MAY_SEND | VEIL__GRANT_SUPERSEDES)
#define VEIL__GRANT_FIXED 70U            /* bytes of a grant besides its scope (S + 70 in all) */
#define VEIL__GRANTS_MAX 65535U
#define VEIL__BUNDLE_PT_MAX (2U + VEIL__GRANTS_MAX * (VEIL__GRANT_FIXED + VEIL__GRANT_SCOPE_MAX))
#define VEIL__BUNDLE_FIXED 143U          /* bytes before the ciphertext, client id not counted */
#define VEIL__BUNDLE_MAX                                                                                  \
	(VEIL__BUNDLE_FIXED + VEIL_CLIENT_ID_MAX + VEIL__BUNDLE_PT_MAX + VEIL_TAG_BYTES + 2U +              \
	 VEIL_CREDENTIAL_MAX + VEIL_SIG_BYTES)

#define VEIL__REV_CREDENTIAL 0x01U       /* entry names a credential id (16 bytes) */
#define VEIL__REV_SENDER 0x02U           /* entry names a sender id (8 bytes, then 8 zero bytes) */
#define VEIL__REV_ENTRY_BYTES 25U
#define VEIL__REV_ENTRIES_MAX 1048576U
#define VEIL__REVSTMT_FIXED 22U          /* bytes before the entries */
#define VEIL__REVSTMT_MAX                                                                                 \
	(VEIL__REVSTMT_FIXED + (size_t)VEIL__REV_ENTRIES_MAX * VEIL__REV_ENTRY_BYTES + 2U +                 \
	 VEIL_CREDENTIAL_MAX + VEIL_SIG_BYTES)

/* What a verifier trusts: its authorities, its clock, and optionally its own
 * revocation knowledge (keyd: the plugin's revocation list; device: the union
 * of revocation statements it holds). revoked() is asked about a credential
 * that verified and returns true to refuse it with VEIL_ERR_REVOKED. */
struct veil__trust {
	const uint8_t (*authorities)[VEIL_PK_BYTES];
	size_t n_authorities;
	uint64_t now; /* unix seconds */
	bool (*revoked)(const struct veil_credential *c, void *ctx); /* NULL: none */
	void *revoked_ctx;
};

/* Whether the comma separated roles of c include role exactly. */
bool veil__credential_has_role(const struct veil_credential *c, const char *role);
/* Whether role is one role name a credential can carry ([A-Za-z0-9_.-],
 * 1..255 bytes, no comma): the rule credential.c applies to a role list. */
bool veil__role_valid(const char *role);

/* ---- X25519 receive keys ------------------------------------------------ */

/* A receive key pair: the secret lives in sodium_malloc'd memory. */
struct veil__rxkey;
int veil__rxkey_generate(struct veil__rxkey **out);
/* Deterministic, for test vectors. */
int veil__rxkey_from_secret(const uint8_t sk[VEIL__X25519_BYTES], struct veil__rxkey **out);
const uint8_t *veil__rxkey_public(const struct veil__rxkey *k); /* VEIL__X25519_BYTES */
/* Wipes and frees; sets *k = NULL. */
void veil__rxkey_free(struct veil__rxkey **k);

/* ---- device message (section 11) ---------------------------------------- */

struct veil__devmsg_params {
	const struct veil_identity *device;
	const uint8_t *credential;  /* the device's own, carried in the message */
	size_t credential_len;
	const char *client_id;      /* = the credential's; the request topic's level */
	uint8_t kind;               /* VEIL__KIND_REQUEST or VEIL__KIND_ACK */
	uint64_t timestamp;         /* unix seconds, device clock */
	const uint8_t *nonce;       /* VEIL__DEVMSG_NONCE_BYTES, random per message */
	const uint8_t *receive_pk;  /* VEIL__X25519_BYTES, fresh for this message */
	uint64_t version;           /* request: bundle version held (0 none); ack: version applied */
};
/* Exact size of a device message carrying a credential of cred_len bytes. */
size_t veil__devmsg_len(size_t cred_len);
/* Errors: INVAL (also when the credential does not parse, names another
 * client id or another device key: keyd would refuse the message), NOMEM. */
int veil__devmsg_build(const struct veil__devmsg_params *p, uint8_t *out, size_t out_cap, size_t *out_len);

struct veil__devmsg {
	uint8_t kind;
	uint64_t timestamp;
	uint8_t nonce[VEIL__DEVMSG_NONCE_BYTES];
	uint8_t receive_pk[VEIL__X25519_BYTES];
	uint64_t version;
	const uint8_t *credential; /* into the message */
	size_t credential_len;
	struct veil_credential cred; /* parse: structure only; verify: verified */
};
/* Structure, including the embedded credential's structure. Errors:
 * TRUNCATED, TOO_LARGE, VERSION, PARSE (unknown kind, trailing bytes), and the
 * credential's TRUNCATED, TOO_LARGE, VERSION, RESERVED_FLAGS, PARSE. */
int veil__devmsg_parse(const uint8_t *buf, size_t len, struct veil__devmsg *out) VEIL_WARN_UNUSED;
/* keyd's checks, in section 11's order: structure; CLIENT_ID (topic's client
 * id != credential's); credential (WRONG_AUTHORITY, BAD_SIGNATURE,
 * NOT_YET_VALID, EXPIRED); REVOKED (t->revoked); BAD_SIGNATURE (device);
 * STALE (|now - timestamp| > window_s); PARSE (receive key of small order).
 * Nonce replay and "outdated" are keyd's state: check them after this. When
 * the structure passed, *out keeps the parsed fields (credential id, client
 * id) for the audit line even if a later check fails. */
int veil__devmsg_verify(const uint8_t *buf, size_t len, const char *topic_client_id, const struct veil__trust *t,
                        uint32_t window_s, struct veil__devmsg *out) VEIL_WARN_UNUSED;

/* ---- grants and bundles (section 12) ------------------------------------ */

struct veil__grant {
	char scope[VEIL__GRANT_SCOPE_MAX + 1]; /* topic filter, %c substituted; NUL terminated */
	uint32_t key_id;                       /* >= VEIL__GRANT_KEY_ID_MIN */
	uint32_t epoch;
	uint64_t send_from;                    /* unix s; send_from <= send_until <= accept_until */
	uint64_t send_until;
	uint64_t accept_until;
	uint32_t grace_s;                      /* receiving grace of the epochs this one supersedes */
	uint8_t flags;                         /* VEIL__GRANT_* */
	uint8_t key[VEIL_KEY_BYTES];
};
/* Grants in sodium_malloc'd memory (they hold topic keys). */
struct veil__grants {
	size_t n;
	struct veil__grant g[];
};
int veil__grants_new(size_t n, struct veil__grants **out); /* zeroed; n <= VEIL__GRANTS_MAX */
void veil__grants_free(struct veil__grants **g);          /* wipes; sets *g = NULL */
/* The bundle plaintext's encoding of a list of grants (u16 N, then N
 * grants), for a device's persisted key state: one format, one parser. */
size_t veil__grants_encoded_len(const struct veil__grant *g, size_t n);
int veil__grants_encode(const struct veil__grant *g, size_t n, uint8_t *out, size_t cap, size_t *out_len);
int veil__grants_parse(const uint8_t *buf, size_t len, struct veil__grants **out);

struct veil__bundle_params {
	const struct veil_identity *keyd;
	const uint8_t *credential;          /* keyd's, with role veil-keyd */
	size_t credential_len;
	const uint8_t *recipient_cred_id;   /* VEIL_CREDENTIAL_ID_BYTES */
	const uint8_t *recipient_sender_id; /* VEIL_SENDER_ID_BYTES */
	const char *recipient_client_id;
	const uint8_t *receive_pk;          /* of the device message answered */
	const uint8_t *echo_nonce;          /* that message's nonce */
	uint64_t version;                   /* max(last + 1, clock in microseconds), committed first */
	const struct veil__grant *grants;
	size_t n_grants;
};
/* Exact bundle size for p, or 0 when p is invalid (the checks of build). */
size_t veil__bundle_len(const struct veil__bundle_params *p);
/* Seal (fresh ephemeral X25519 key, random nonce) and sign. Errors: INVAL
 * (p or a grant invalid: scope, key id, flags, times, duplicate key id; out
 * too small), PARSE (receive key of small order), NOMEM. out holds no
 * plaintext on any return. */
int veil__bundle_build(const struct veil__bundle_params *p, uint8_t *out, size_t out_cap, size_t *out_len);
/* The same with the ephemeral secret and the XChaCha20 nonce given (vectors). */
int veil__bundle_build_det(const struct veil__bundle_params *p, const uint8_t eph_sk[VEIL__X25519_BYTES],
                           const uint8_t xnonce[VEIL_NONCE_BYTES], uint8_t *out, size_t out_cap,
                           size_t *out_len);

/* A parsed bundle: pointers into the caller's buffer. */
struct veil__bundle_view {
	uint64_t version;
	const uint8_t *echo_nonce;        /* VEIL__DEVMSG_NONCE_BYTES */
	const uint8_t *receive_pk;        /* VEIL__X25519_BYTES */
	const uint8_t *cred_id;           /* VEIL_CREDENTIAL_ID_BYTES */
	const uint8_t *sender_id;         /* VEIL_SENDER_ID_BYTES */
	const uint8_t *client_id;         /* not NUL terminated, 1..VEIL_CLIENT_ID_MAX bytes */
	size_t client_id_len;
	const uint8_t *eph_pk;            /* VEIL__X25519_BYTES */
	const uint8_t *xnonce;            /* VEIL_NONCE_BYTES */
	const uint8_t *ciphertext;        /* with the tag */
	size_t ciphertext_len;
	const uint8_t *credential;        /* keyd's */
	size_t credential_len;
	struct veil_credential signer;    /* parse: structure only; open: verified */
	const uint8_t *signature;
	const uint8_t *buf;               /* the whole bundle */
	size_t len;
};
/* Structure, including the keyd credential's structure. Errors: TRUNCATED,
 * TOO_LARGE, VERSION, PARSE (kind, client id length, ciphertext length
 * under 18, trailing bytes), and the credential's structure errors. */
int veil__bundle_parse(const uint8_t *buf, size_t len, struct veil__bundle_view *out)
	VEIL_WARN_UNUSED;

/* A bundle's signer, as anyone can check it (the broker plugin, for a
 * bundle a bridge forwards): structure; keyd credential against t
 * (WRONG_AUTHORITY, BAD_SIGNATURE, NOT_YET_VALID, EXPIRED), WRONG_ROLE,
 * REVOKED (t->revoked); BAD_SIGNATURE (bundle). Nothing is opened: the
 * addressing and the version are the device's to judge. view (may be
 * NULL) gets the fields (zero when the structure failed). */
int veil__bundle_verify(const uint8_t *buf, size_t len, const struct veil__trust *t, struct veil__bundle_view *view)
	VEIL_WARN_UNUSED;

/* The device opening a bundle: who it is, which receive secrets it holds,
 * and its version policy (the caller's decision, section 12):
 *   held_version  the version of the bundle it applied last (0: none); the
 *                 bundle must be newer (OUTDATED otherwise);
 *   echo_nonce    NULL, or, when the device has no persisted version, the
 *                 nonce of its latest device message: the bundle must echo
 *                 it (NO_NONCE_ECHO otherwise). */
struct veil__bundle_self {
	const struct veil_credential *cred;     /* its own: id, client id, key (-> sender id) */
	struct veil__rxkey *const *rxkeys;      /* receive keys it holds the secret of */
	size_t n_rxkeys;
	uint64_t held_version;
	const uint8_t *echo_nonce;
};
/* Verify and open, in section 12's order: structure; keyd credential against
 * t (WRONG_AUTHORITY, BAD_SIGNATURE, NOT_YET_VALID, EXPIRED), WRONG_ROLE (no
 * veil-keyd), REVOKED (t->revoked); BAD_SIGNATURE (bundle); MISADDRESSED
 * (credential id, sender id or client id not the device's); WRONG_RECEIVE_KEY;
 * OUTDATED; NO_NONCE_ECHO; DECRYPT; plaintext (TRUNCATED, PARSE,
 * RESERVED_FLAGS). On success *grants (free with veil__grants_free) and
 * *rxkey_index (which of self->rxkeys opened it: wipe it and every older one
 * once the grants are applied); view (may be NULL) gets the fields, also
 * on a failure after the structure check (for the audit line). On failure
 * *grants is NULL and nothing secret is left behind. */
int veil__bundle_open(const uint8_t *buf, size_t len, const struct veil__trust *t,
                      const struct veil__bundle_self *self, struct veil__bundle_view *view, size_t *rxkey_index,
                      struct veil__grants **grants) VEIL_WARN_UNUSED;

/* ---- revocation statement (section 13) ---------------------------------- */

struct veil__rev_entry {
	uint8_t kind;                          /* VEIL__REV_CREDENTIAL or VEIL__REV_SENDER */
	uint8_t id[VEIL_CREDENTIAL_ID_BYTES];  /* sender id: 8 bytes, then 8 zero bytes */
	uint64_t keep_until;                   /* the revoked credential's expires_at */
};
struct veil__revstmt_params {
	const struct veil_identity *keyd;
	const uint8_t *credential; /* keyd's, with role veil-keyd */
	size_t credential_len;
	uint64_t version;          /* max(last + 1, clock in microseconds) */
	uint64_t issued_at;        /* unix seconds */
	const struct veil__rev_entry *entries;
	size_t n_entries;
};
/* Exact size, or 0 when n_entries or cred_len is out of range. */
size_t veil__revstmt_len(size_t n_entries, size_t cred_len);
/* Errors: INVAL (bad kind, non-zero sender padding, sizes), NOMEM. */
int veil__revstmt_build(const struct veil__revstmt_params *p, uint8_t *out, size_t out_cap, size_t *out_len);

struct veil__revstmt_view {
	uint64_t version;
	uint64_t issued_at;
	size_t n_entries;
	const uint8_t *entries;           /* n_entries x VEIL__REV_ENTRY_BYTES, all checked */
	const uint8_t *credential;
	size_t credential_len;
	struct veil_credential signer;    /* parse: structure only; verify: verified */
	const uint8_t *signature;
};
/* Structure, every entry (PARSE: unknown kind, non-zero sender padding), the
 * keyd credential's structure. Errors: TRUNCATED, TOO_LARGE (more than
 * VEIL__REV_ENTRIES_MAX entries), VERSION, PARSE. */
int veil__revstmt_parse(const uint8_t *buf, size_t len, struct veil__revstmt_view *out)
	VEIL_WARN_UNUSED;
/* Structure, keyd credential against t (its errors), WRONG_ROLE, REVOKED,
 * BAD_SIGNATURE. Versions and the union of entries are the device's state. */
int veil__revstmt_verify(const uint8_t *buf, size_t len, const struct veil__trust *t,
                         struct veil__revstmt_view *out) VEIL_WARN_UNUSED;
/* Entry i (< v->n_entries) of a parsed statement. */
void veil__revstmt_entry(const struct veil__revstmt_view *v, size_t i, struct veil__rev_entry *e);

#endif
