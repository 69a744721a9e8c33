/* Core internals shared across core files (not installed). */
#ifndef VEIL_CORE_INTERNAL_H
#define VEIL_CORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/identity.h"

/* Detached Ed25519 signature over the concatenation of n parts. */
struct veil__part {
	const void *p;
	size_t n;
};
int veil__identity_sign(const struct veil_identity *id, const struct veil__part *parts, size_t nparts,
                         uint8_t sig[VEIL_SIG_BYTES]);
int veil__verify(const uint8_t pk[VEIL_PK_BYTES], const struct veil__part *parts, size_t nparts,
                 const uint8_t sig[VEIL_SIG_BYTES]);


/* The identity's sender id, derived once at creation. */
const uint8_t *veil__identity_sender_id(const struct veil_identity *id);

/* Open with a key check value the caller already knows (keyring cache). */
struct veil_envelope_view;
int veil__envelope_open_kcv(const struct veil_envelope_view *v, const char *topic, const uint8_t *key,
                            uint16_t kcv, uint8_t *pt_out, size_t pt_cap, size_t *pt_len);

/* Who signed a signed envelope, with public information only (PROTOCOL.md
 * section 8, step 5), the one rule of receivers and of the broker plugin
 * (bridged envelopes): the embedded credential verifies against the
 * authorities at now (section 3's errors; through cache, which may be
 * NULL), its key gives the header's sender id (VEIL_ERR_SENDER), and the
 * signature verifies (VEIL_ERR_BAD_SIGNATURE; VEIL_ERR_UNSIGNED if v is not
 * signed). *cred gets the verified credential. */
struct veil__credcache;
int veil__envelope_verify_signer(const struct veil_envelope_view *v, const char *topic,
                                 const uint8_t (*authorities)[VEIL_PK_BYTES], size_t n_authorities, uint64_t now,
                                 struct veil__credcache *cache, struct veil_credential *cred);

/* veil_keyring_find_key at time now (granted epochs end at accept-until),
 * also returning the cached key check value. */
struct veil_keyring;
struct veil_topic_policy;
int veil__keyring_find_key_kcv(const struct veil_keyring *kr, const char *topic, uint32_t key_id, uint64_t now,
                               const uint8_t **key, uint16_t *kcv);
/* veil_keyring_policy at time now. */
int veil__keyring_policy_at(const struct veil_keyring *kr, const char *topic, uint64_t now,
                            struct veil_topic_policy *out);
/* Whether topic falls under a key service scope of kr. */
bool veil__keyring_granted_topic(const struct veil_keyring *kr, const char *topic);

/* One epoch granted by the key service (a bundle's grant, or a superseded
 * epoch kept for receiving during its grace: may_send false). */
struct veil__keyring_grant {
	const char *filter;
	uint32_t key_id;                  /* >= VEIL_GRANTED_KEY_ID_MIN */
	const uint8_t *key;               /* VEIL_KEY_BYTES */
	uint64_t send_from, send_until, accept_until;
	bool require_signature;
	bool may_send;
};
/* A new keyring: base's filters and keys (may be NULL), then the grants under
 * their scopes. A grant whose scope overlaps a static filter (a topic is
 * key-service managed or static, never both), whose id is below the key
 * service's range or already held, is left out and reported to refused
 * (may be NULL) with base_name:line. Errors: INVAL, NOMEM. */
int veil__keyring_compose(const struct veil_keyring *base, const char *base_name,
                          const struct veil__keyring_grant *g, size_t n, struct veil_keyring **out,
                          void (*refused)(void *ctx, const char *why), void *ctx);
/* Trust these authorities too (those not held yet): a device's authorities
 * file, besides its keyring's "authority" lines. VEIL_ERR_INVAL past
 * VEIL_MAX_AUTHORITIES (those before it are added). */
int veil__keyring_add_authorities(struct veil_keyring *kr, const uint8_t (*pks)[VEIL_PK_BYTES], size_t n);

/* Write-ahead of a sender sequence's persisted mark (veil_seq_open with a
 * path), for a caller with a thread to spare, so that the fsync is off the
 * publish path: veil__seq_ahead_due is true, once, when less than half a
 * block of persisted numbers is left and no write-ahead is under way; the
 * caller then calls veil__seq_write_ahead from that other thread, which
 * persists one more block. veil_seq_next still never hands out a number at
 * or above the persisted mark: if the write-ahead falls behind, it writes
 * the mark itself (after the write-ahead under way) before going on. Both
 * are thread-safe against veil_seq_next; veil_seq_close only once neither
 * runs. */
struct veil_seq;
bool veil__seq_ahead_due(struct veil_seq *s);
int veil__seq_write_ahead(struct veil_seq *s);

/* The verified-credential cache (credcache.h) kept in a receiver's replay
 * state (the caller locks it): signed messages then pay one Ed25519
 * verification, not two. NULL for NULL r. */
struct veil_replay;
struct veil__credcache;
struct veil__credcache *veil__replay_credcache(struct veil_replay *r);
/* The bytes veil_replay_save writes (malloc'd), so a caller can snapshot
 * under its lock and write outside it. */
int veil__replay_serialize(const struct veil_replay *r, uint8_t **out, size_t *out_len);

/* The receiver's revocation knowledge (the union of the key service's
 * statements, client-shim/session.c): either callback may be NULL. */
struct veil__revoked {
	bool (*credential)(void *ctx, const uint8_t id[VEIL_CREDENTIAL_ID_BYTES]);
	bool (*sender)(void *ctx, const uint8_t id[VEIL_SENDER_ID_BYTES]);
	void *ctx;
};
struct veil_replay;
struct veil_open_info;
/* veil_message_open that also refuses (VEIL_ERR_REVOKED) an authentic
 * envelope from a revoked credential (signed) or sender id (unsigned). */
int veil__message_open_rev(const struct veil_keyring *kr, struct veil_replay *replay,
                           const struct veil__revoked *rev, const char *topic, const uint8_t *in, size_t in_len,
                           uint64_t now, uint8_t *out, size_t out_cap, size_t *out_len,
                           struct veil_open_info *info);

/* Deterministic variants for test vectors (the public functions draw the
 * random fields themselves). */
struct veil_seal_params;
int veil__envelope_seal_nonce(const struct veil_seal_params *p, const char *topic, const uint8_t *pt,
                              size_t pt_len, const uint8_t nonce[24], uint8_t *out, size_t out_cap,
                              size_t *out_len);
int veil__credential_issue_id(const struct veil_identity *authority, struct veil_credential *c, uint8_t *out,
                              size_t out_cap, size_t *out_len);
int veil__token_create_nonce(const struct veil_identity *device, const uint8_t *cred, size_t cred_len,
                             const char *client_id, const char *audience, uint64_t now,
                             const uint8_t nonce[VEIL_TOKEN_NONCE_BYTES], uint8_t *out, size_t out_cap,
                             size_t *out_len);

#endif
