/*
 * Envelope v1 (docs/PROTOCOL.md section 5): the bytes that travel as the MQTT
 * payload on protected topics.
 *
 *   off len  field
 *     0   1  version (0x01)
 *     1   1  flags   (bit 0: signed; other bits must be 0)
 *     2   4  key id, big endian
 *     6   2  key check value: BLAKE2b-256(key=topic key, "veil-kcv-v1")[0..1]
 *     8   8  sender id
 *    16   8  sequence, big endian
 *    24  24  XChaCha20-Poly1305 nonce (random)
 *    48   n  ciphertext, then the 16-byte tag
 *  signed only, after the tag (parsed from the end):
 *         c  credential (authority-signed, identity.h)
 *         2  credential length c, big endian
 *        64  Ed25519 signature by the credential's device key
 *
 * AEAD additional data = header (48 bytes) || u16 BE topic length || topic.
 * Signature input       = "veil-sig-v1" || header || u16 topic length || topic
 *                         || ciphertext+tag || u16 credential length || credential.
 * The signature covers ciphertext, so the broker can check it without any key.
 */
#ifndef VEIL_ENVELOPE_H
#define VEIL_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "veil/export.h"
#include "veil/error.h"
#include "veil/identity.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VEIL_ENVELOPE_VERSION 1U
#define VEIL_FLAG_SIGNED 0x01U
#define VEIL_KEY_BYTES 32U
#define VEIL_NONCE_BYTES 24U
#define VEIL_TAG_BYTES 16U
#define VEIL_HEADER_BYTES 48U
#define VEIL_OVERHEAD (VEIL_HEADER_BYTES + VEIL_TAG_BYTES)   /* 64, unsigned */
#define VEIL_MAX_PLAINTEXT (16U * 1024U * 1024U)
#define VEIL_MAX_TOPIC 65535U

VEIL_EXPORT size_t veil_overhead_bytes(void);
/* Envelope size for a plaintext of n bytes; unsigned when cred_len == 0 and !sign. */
VEIL_EXPORT size_t veil_sealed_len(size_t n);
VEIL_EXPORT size_t veil_sealed_signed_len(size_t n, size_t cred_len);

struct veil_envelope_header {
	uint8_t version;
	uint8_t flags;
	uint32_t key_id;
	uint16_t kcv;
	uint8_t sender[VEIL_SENDER_ID_BYTES];
	uint64_t seq;
	uint8_t nonce[VEIL_NONCE_BYTES];
};

/* A parsed envelope: pointers into the caller's buffer, no copy. */
struct veil_envelope_view {
	struct veil_envelope_header h;
	const uint8_t *header;            /* the 48 raw header bytes */
	const uint8_t *ciphertext;        /* ciphertext followed by the tag */
	size_t ciphertext_len;            /* includes VEIL_TAG_BYTES */
	const uint8_t *credential;        /* signed only, else NULL */
	size_t credential_len;
	const uint8_t *signature;         /* signed only, else NULL */
};

/* Structure check only (no key): version, flags, lengths (docs/PROTOCOL.md
 * section 8, step 2). Errors: EMPTY (len 0), TRUNCATED, VERSION,
 * RESERVED_FLAGS, TOO_LARGE (plaintext over VEIL_MAX_PLAINTEXT). For a signed
 * envelope only the trailer's lengths are checked: the embedded credential is
 * not parsed here (veil_credential_parse / _verify report its errors). */
VEIL_EXPORT int veil_envelope_parse(const uint8_t *buf, size_t len, struct veil_envelope_view *out)
	VEIL_WARN_UNUSED;

/* Key check value of a topic key (stored in the header). */
VEIL_EXPORT uint16_t veil_key_check(const uint8_t key[VEIL_KEY_BYTES]);

struct veil_seal_params {
	const uint8_t *key;               /* VEIL_KEY_BYTES topic key */
	uint32_t key_id;
	uint8_t sender[VEIL_SENDER_ID_BYTES];
	uint64_t seq;
	const struct veil_identity *signer; /* NULL: unsigned */
	const uint8_t *credential;        /* required when signer != NULL */
	size_t credential_len;
	bool has_kcv;                     /* kcv below is veil_key_check(key), precomputed */
	uint16_t kcv;
};

/* Seal pt into out (capacity out_cap >= veil_sealed_len / veil_sealed_signed_len). */
VEIL_EXPORT int veil_envelope_seal(const struct veil_seal_params *p, const char *topic, const uint8_t *pt,
                                   size_t pt_len, uint8_t *out, size_t out_cap, size_t *out_len);

/* Open a parsed envelope with the topic key. pt_out capacity >= ciphertext_len - TAG.
 * Errors: WRONG_KEY (kcv), DECRYPT. Does not check signature or replay. */
VEIL_EXPORT int veil_envelope_open(const struct veil_envelope_view *v, const char *topic,
                                   const uint8_t key[VEIL_KEY_BYTES], uint8_t *pt_out, size_t pt_cap,
                                   size_t *pt_len) VEIL_WARN_UNUSED;

/* Keyless signature check (used by the plugin): signature by signer_pk over the
 * signature input for this topic. Errors: UNSIGNED, BAD_SIGNATURE. */
VEIL_EXPORT int veil_envelope_verify_signature(const struct veil_envelope_view *v, const char *topic,
                                               const uint8_t signer_pk[VEIL_PK_BYTES]) VEIL_WARN_UNUSED;

#ifdef __cplusplus
}
#endif
#endif
