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
