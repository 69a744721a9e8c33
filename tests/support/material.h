/*
 * Test material made with the core API: credentials, login tokens and their
 * password form, devices (identity + credential, in memory or as files), an
 * authority's public key file, password-file lines. Every function fails the
 * running Check test when the core refuses.
 */
#ifndef VEIL_TEST_MATERIAL_H
#define VEIL_TEST_MATERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "veil/identity.h"

/* A credential for client_id (roles may be NULL) binding device's key,
 * signed by authority, issued an hour ago and valid valid_s seconds from
 * now (negative: already expired). Returns its length. */
size_t test_credential_make(const struct veil_identity *authority, const struct veil_identity *device,
                            const char *client_id, const char *roles, int64_t valid_s,
                            uint8_t out[VEIL_CREDENTIAL_MAX]);
/* A login token for client_id signed by device, dated now + skew_s. */
size_t test_token_make(const struct veil_identity *device, const uint8_t *cred, size_t cred_len,
                       const char *client_id, int64_t skew_s, uint8_t out[VEIL_TOKEN_MAX]);
/* The MQTT 3.1.1 password form of a token. */
void test_token_password(const uint8_t *tok, size_t len, char out[VEIL_PASSWORD_MAX]);
/* The password form of a fresh token for client_id, made from a device's
 * identity file (key) and credential file (cred). */
void test_token_password_files(const char *key, const char *cred, const char *client_id,
                               char out[VEIL_PASSWORD_MAX]);

/* A device in memory: identity, sender id, a credential (valid an hour) and
 * the password form of a fresh token for its client id. */
struct test_device {
	struct veil_identity *id;
	uint8_t sender[VEIL_SENDER_ID_BYTES];
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cred_len;
	char pw[VEIL_PASSWORD_MAX];
};
void test_device_new(struct test_device *d, const struct veil_identity *authority, const char *client_id,
                     const char *roles);
void test_device_free(struct test_device *d);
/* A device on disk for client_id: <dir>/<stem>.key (mode 0600, checked) and
 * <dir>/<stem>.cred, valid a day. */
void test_device_save(const struct veil_identity *authority, const char *dir, const char *stem,
                      const char *client_id);
/* The same with the credential's roles (comma separated, may be NULL). */
void test_device_save_roles(const struct veil_identity *authority, const char *dir, const char *stem,
                            const char *client_id, const char *roles);

/* <dir>/authority.pub (mode 0644, for a broker that drops privileges); its
 * path in out. */
void test_authority_save(const struct veil_identity *authority, const char *dir, char *out, size_t cap);
/* A password-file line "user:$argon2id$...\n". Cheap Argon2id parameters:
 * tests check logins, not the cost of the hash. */
void test_passwd_line(char *out, size_t cap, const char *user, const char *password);
/* Standard base64 (keyring and config files). */
void test_b64(char *out, size_t cap, const uint8_t *in, size_t n);
/* An envelope of the string pt on topic under key (VEIL_KEY_BYTES) and
 * key_id, claiming sender at sequence seq, signed by signer with its
 * credential cred (signer NULL: unsigned). Returns its length. */
size_t test_envelope_make(const uint8_t *key, uint32_t key_id, const char *topic,
                          const uint8_t sender[VEIL_SENDER_ID_BYTES], uint64_t seq, const struct veil_identity *signer,
                          const uint8_t *cred, size_t cred_len, const char *pt, uint8_t *out, size_t cap);

#endif
