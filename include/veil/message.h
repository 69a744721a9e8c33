/*
 * One-call seal and open against a keyring: what the shim does per message.
 * veil_message_open runs every check in a fixed order and returns the first
 * failure: structure, policy, key lookup, key check, AEAD, signature and its
 * credential (when signed or required), replay.
 */
#ifndef VEIL_MESSAGE_H
#define VEIL_MESSAGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "veil/export.h"
#include "veil/error.h"
#include "veil/identity.h"
#include "veil/envelope.h"
#include "veil/keyring.h"
#include "veil/replay.h"

#ifdef __cplusplus
extern "C" {
#endif

struct veil_sender {
	const struct veil_identity *identity;   /* device key */
	const uint8_t *credential;              /* authority-signed credential of that key */
	size_t credential_len;
	struct veil_seq *seq;                   /* sequence source */
};

/* Seal pt for topic under the keyring policy. If the policy allows plaintext
 * and the filter has no key, copies pt as is (*sealed = false). Signs when the
 * policy requires it or force_sign is set. out_cap >= veil_sealed_signed_len(pt_len, credential_len). */
VEIL_EXPORT int veil_message_seal(const struct veil_keyring *kr, const struct veil_sender *s, const char *topic,
                                  const uint8_t *pt, size_t pt_len, bool force_sign, uint8_t *out,
                                  size_t out_cap, size_t *out_len, bool *sealed);

struct veil_open_info {
	uint8_t sender[VEIL_SENDER_ID_BYTES];
	uint64_t seq;
	uint32_t key_id;
	bool is_signed;
	bool plaintext;                         /* delivered in clear under a plaintext policy */
	char client_id[VEIL_CLIENT_ID_MAX + 1]; /* from the credential, signed only */
	uint8_t credential_id[VEIL_CREDENTIAL_ID_BYTES]; /* of that credential, signed only */
};

/* Open in (payload received on topic). replay may be NULL (no replay check).
 * now = unix seconds, for credential validity. out_cap >= in_len. */
VEIL_EXPORT int veil_message_open(const struct veil_keyring *kr, struct veil_replay *replay, const char *topic,
                                  const uint8_t *in, size_t in_len, uint64_t now, uint8_t *out,
                                  size_t out_cap, size_t *out_len, struct veil_open_info *info)
	VEIL_WARN_UNUSED;

#ifdef __cplusplus
}
#endif
#endif
