/* Core internals shared across core files (not installed). */
#ifndef VEIL_CORE_INTERNAL_H
#define VEIL_CORE_INTERNAL_H

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

/* veil_keyring_find_key that also returns the cached key check value. */
struct veil_keyring;
int veil__keyring_find_key_kcv(const struct veil_keyring *kr, const char *topic, uint32_t key_id,
                               const uint8_t **key, uint16_t *kcv);

/* The verified-credential cache (credcache.h) kept in a receiver's replay
 * state (the caller locks it): signed messages then pay one Ed25519
 * verification, not two. NULL for NULL r. */
struct veil_replay;
struct veil__credcache;
struct veil__credcache *veil__replay_credcache(struct veil_replay *r);
/* The bytes veil_replay_save writes (malloc'd), so a caller can snapshot
 * under its lock and write outside it. */
int veil__replay_serialize(const struct veil_replay *r, uint8_t **out, size_t *out_len);

/* Deterministic variants for test vectors (the public functions draw the
 * random fields themselves). */
struct veil_seal_params;
int veil__envelope_seal_nonce(const struct veil_seal_params *p, const char *topic, const uint8_t *pt,
                              size_t pt_len, const uint8_t nonce[24], uint8_t *out, size_t out_cap,
                              size_t *out_len);
int veil__credential_issue_id(const struct veil_identity *authority, struct veil_credential *c, uint8_t *out,
                              size_t out_cap, size_t *out_len);
int veil__token_create_nonce(const struct veil_identity *device, const uint8_t *cred, size_t cred_len,
                             const char *client_id, uint64_t now, const uint8_t nonce[VEIL_TOKEN_NONCE_BYTES],
                             uint8_t *out, size_t out_cap, size_t *out_len);

#endif
