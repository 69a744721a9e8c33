/*
 * Keyring: topic filters -> topic keys and policy, plus trusted authorities.
 * Text format (docs/PROTOCOL.md section 6), one directive per line:
 *
 *   authority <base64 Ed25519 public key>
 *   key <topic-filter> <key-id> <base64 32-byte key> [send]
 *   policy <topic-filter> [signed] [plaintext]
 *
 * Comments (docs/PROTOCOL.md section 2): a field that begins with '#' starts
 * a comment to the end of the line, except the <topic-filter> field, where
 * '#' is the MQTT wildcard ("policy # plaintext  # everything else").
 *
 * The first filter (in file order of first appearance) that matches a topic
 * decides its keys and policy. All keys of that filter are accepted on receive;
 * the one marked `send` (or, if none, the highest key id) seals. The file holds
 * secrets: group/world readable files are refused (VEIL_ERR_PERM).
 */
#ifndef VEIL_KEYRING_H
#define VEIL_KEYRING_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "veil/export.h"
#include "veil/error.h"
#include "veil/identity.h"
#include "veil/envelope.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VEIL_MAX_AUTHORITIES 16U

struct veil_keyring;

/* errbuf (may be NULL) receives "file:line: message" on a parse error. */
VEIL_EXPORT int veil_keyring_load(const char *path, struct veil_keyring **out, char *errbuf, size_t errlen);
/* Parse from memory; name is used in error messages. No permission check. */
VEIL_EXPORT int veil_keyring_parse(const char *text, size_t len, const char *name, struct veil_keyring **out,
                                   char *errbuf, size_t errlen);
VEIL_EXPORT void veil_keyring_free(struct veil_keyring **kr);

/* Key ids from here up belong to the key service (veil-keyd): a static
 * keyring refuses them, so a granted epoch and a static key never share an id. */
#define VEIL_GRANTED_KEY_ID_MIN 0x80000000U

struct veil_topic_policy {
	const char *filter;               /* the matching filter (owned by the keyring) */
	unsigned line;                    /* its first line in the keyring file (0: granted) */
	const uint8_t *send_key;          /* NULL if the filter has no key (plaintext-only) */
	uint32_t send_key_id;
	uint16_t send_key_kcv;            /* veil_key_check(send_key), cached */
	bool require_signature;
	bool allow_plaintext;
	bool granted;                     /* a key service scope (keys by epoch) */
};

/* VEIL_ERR_NO_POLICY when no filter matches the topic; VEIL_ERR_NO_KEY for a
 * key service scope with no epoch to send with now. */
VEIL_EXPORT int veil_keyring_policy(const struct veil_keyring *kr, const char *topic, struct veil_topic_policy *out);
/* Receive-side key lookup. Errors: NO_POLICY, UNKNOWN_KEY (id nowhere in the keyring),
 * WRONG_TOPIC (id held only under filters that do not match this topic). */
VEIL_EXPORT int veil_keyring_find_key(const struct veil_keyring *kr, const char *topic, uint32_t key_id,
                                      const uint8_t **key);
/* Trusted authority public keys (for credentials in signed envelopes). */
VEIL_EXPORT size_t veil_keyring_authorities(const struct veil_keyring *kr, const uint8_t (**pks)[VEIL_PK_BYTES]);

/* A new random 32-byte topic key. */
VEIL_EXPORT void veil_topic_key_generate(uint8_t key[VEIL_KEY_BYTES]);

#ifdef __cplusplus
}
#endif
#endif
